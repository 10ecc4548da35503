"""Audience rules' syntax: a small JSON language over customers, checked and expanded
(pure functions: no database).

A rule is a tree: ``{"all": [r, ...]}``, ``{"any": [r, ...]}``, ``{"not": r}``, or a
predicate ``{"<name>": <value>}`` (see PREDICATES).

- ``parse_rule``: the JSON's shape, every value, and the size limits; all problems at
  once as a 422 whose ``details.errors[].field`` is the JSON path of each bad node
  (``rule.all[2].spend_at_least.days``). It never recurses deeper than MAX_DEPTH + 1, so
  a rule nested 50 levels is a 422, not a RecursionError.
- ``expand``: replaces ``{"segment": name}`` by the saved segment's rule, refusing
  cycles and oversized expansions.

services/audience/rules.py compiles the checked tree to SQL and runs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from models.audience import LIFECYCLE_STAGES, WINDOWS
from models.customers import MEMBERSHIP_TIERS
from services.core import errors

#: Limits of one written rule (a saved segment's rule included).
MAX_DEPTH = 10
MAX_NODES = 200
#: The serialized size a request may send (the body model checks it).
MAX_RULE_BYTES = 16_384
#: Limits after segments are expanded (each segment was within the limits above).
MAX_EXPANDED_DEPTH = 40
MAX_EXPANDED_NODES = 1_000
#: Values in one predicate's list.
MAX_LIST = 100
MAX_ID = 2**63 - 1
MAX_AMOUNT = 2**63 - 1
MAX_COUNT = 2**31 - 1
MAX_REGISTERED_DAYS = 3650

PREDICATES: tuple[str, ...] = (
    "tier",
    "interest_tags_any",
    "city",
    "preferred_store",
    "visited_store",
    "lifecycle_stage",
    "spend_at_least",
    "visits_at_least",
    "registered_within_days",
    "joined_campaign",
    "completed_campaign",
    "holds_coupon",
    "segment",
)
COMBINATORS = ("all", "any", "not")


# --- the tree -----------------------------------------------------------------------


@dataclass(frozen=True)
class Pred:
    """A checked predicate. ``value`` is normalized: a tuple for one-or-many predicates,
    ``(days, threshold)`` for the window ones, an int or a str otherwise."""

    name: str
    value: Any
    path: str


@dataclass(frozen=True)
class Combo:
    op: Literal["all", "any"]
    children: tuple[Node, ...]
    path: str


@dataclass(frozen=True)
class Not:
    child: Node
    path: str


Node = Pred | Combo | Not


def rule_problem(field: str, message: str, kind: str) -> dict[str, str]:
    """One entry of a 422's ``details.errors``: the JSON path of the bad node, what is wrong, its type."""
    return {"field": field, "message": message, "type": kind}


def raise_problems(problems: list[dict[str, str]]) -> NoReturn:
    """Raise ValidationFailed (422) listing ``problems`` (at least one), the first in its message."""
    first = problems[0]
    raise errors.ValidationFailed(f"{first['field']}: {first['message']}", details={"errors": problems})


# --- parsing ------------------------------------------------------------------------


@dataclass
class _Parser:
    problems: list[dict[str, str]] = field(default_factory=list)
    nodes: int = 0
    too_many: bool = False

    def fail(self, path: str, message: str, kind: str = "invalid_rule") -> None:
        if len(self.problems) < 50:  # enough to fix a rule by; bounded for a hostile one
            self.problems.append(rule_problem(path, message, kind))

    def node(self, raw: Any, path: str, depth: int) -> Node | None:
        if self.too_many:
            return None
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.too_many = True
            self.fail(path, f"a rule may have at most {MAX_NODES} nodes", "rule_too_large")
            return None
        if depth > MAX_DEPTH:
            self.fail(path, f"a rule may nest at most {MAX_DEPTH} levels", "rule_too_deep")
            return None
        if not isinstance(raw, dict) or len(raw) != 1:
            self.fail(path, 'each rule node is an object with exactly one key: "all", "any", "not" or a predicate')
            return None
        ((key, value),) = raw.items()
        if key in ("all", "any"):
            return self.combo(key, value, path, depth)
        if key == "not":
            child = self.node(value, f"{path}.not", depth + 1)
            return Not(child, path) if child is not None else None
        if key not in _CHECKS:
            self.fail(
                f"{path}.{key}", f"unknown predicate; use one of {', '.join((*COMBINATORS, *PREDICATES))}",
                "unknown_predicate",
            )  # fmt: skip
            return None
        checked = _CHECKS[key](self, value, f"{path}.{key}")
        return Pred(key, checked, path) if checked is not None else None

    def combo(self, op: Literal["all", "any"], value: Any, path: str, depth: int) -> Node | None:
        here = f"{path}.{op}"
        if not isinstance(value, list):
            self.fail(here, "must be a list of rules")
            return None
        if not value:
            self.fail(here, "must not be empty", "empty_combinator")
            return None
        children = [self.node(child, f"{here}[{i}]", depth + 1) for i, child in enumerate(value)]
        if any(child is None for child in children):
            return None
        return Combo(op, tuple(c for c in children if c is not None), path)

    # value checks: each returns the normalized value, or None after recording a problem

    def one_or_many(self, value: Any, path: str, item: Any, what: str) -> tuple | None:
        items = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not value:
            self.fail(path, "must not be empty")
            return None
        if len(items) > MAX_LIST:
            self.fail(path, f"at most {MAX_LIST} values")
            return None
        ok = True
        for i, one in enumerate(items):
            if not item(one):
                self.fail(f"{path}[{i}]" if isinstance(value, list) else path, f"must be {what}")
                ok = False
        return tuple(dict.fromkeys(items)) if ok else None

    def object(self, value: Any, path: str, keys: dict[str, Any]) -> dict[str, Any] | None:
        """An object with exactly ``keys`` (name -> (check, description))."""
        if not isinstance(value, dict):
            self.fail(path, f"must be an object with {', '.join(keys)}")
            return None
        ok = True
        for name in value:
            if name not in keys:
                self.fail(f"{path}.{name}", "unknown field")
                ok = False
        for name, (check, what) in keys.items():
            if name not in value:
                self.fail(f"{path}.{name}", "required")
                ok = False
            elif not check(value[name]):
                self.fail(f"{path}.{name}", f"must be {what}")
                ok = False
        return value if ok else None


def _is_int(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _is_text(value: Any, max_length: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= max_length and "\x00" not in value


def _id(value: Any) -> bool:
    return _is_int(value, 1, MAX_ID)


def _windowed(unit: str, maximum: int) -> Check:
    def check(parser: _Parser, value: Any, path: str) -> tuple[int, int] | None:
        checked = parser.object(
            value, path,
            {"days": (lambda v: v in WINDOWS and _is_int(v, 1, 365), f"one of {', '.join(map(str, WINDOWS))}"),
             unit: (lambda v: _is_int(v, 0, maximum), "an integer >= 0")},
        )  # fmt: skip
        return (checked["days"], checked[unit]) if checked is not None else None

    return check


def _single_id(parser: _Parser, value: Any, path: str) -> int | None:
    if not _id(value):
        parser.fail(path, "must be an id (a positive integer)")
        return None
    return int(value)


def _segment_name(parser: _Parser, value: Any, path: str) -> str | None:
    if not _is_text(value, 64):
        parser.fail(path, "must be a saved segment's name")
        return None
    return str(value)


def _registered(parser: _Parser, value: Any, path: str) -> int | None:
    if not _is_int(value, 1, MAX_REGISTERED_DAYS):
        parser.fail(path, f"must be a number of days from 1 to {MAX_REGISTERED_DAYS}")
        return None
    return int(value)


#: A predicate's value check: (parser, value, path) -> normalized value, or None after
#: recording the problem on the parser.
Check = Callable[[_Parser, Any, str], Any]

_CHECKS: dict[str, Check] = {
    "tier": lambda p, v, path: p.one_or_many(
        v, path, lambda x: x in MEMBERSHIP_TIERS, f"a membership tier ({', '.join(MEMBERSHIP_TIERS)})"
    ),
    "interest_tags_any": lambda p, v, path: (
        p.one_or_many(v, path, lambda x: _is_text(x, 64), "a tag (text, 1-64 characters)")
        if isinstance(v, list)
        else p.fail(path, "must be a list of tags")
    ),
    "city": lambda p, v, path: p.one_or_many(v, path, lambda x: _is_text(x, 64), "a city name (1-64 characters)"),
    "preferred_store": lambda p, v, path: p.one_or_many(v, path, _id, "a store id"),
    "visited_store": lambda p, v, path: p.one_or_many(v, path, _id, "a store id"),
    "lifecycle_stage": lambda p, v, path: p.one_or_many(
        v, path, lambda x: x in LIFECYCLE_STAGES, f"a lifecycle stage ({', '.join(LIFECYCLE_STAGES)})"
    ),
    "spend_at_least": _windowed("amount", MAX_AMOUNT),
    "visits_at_least": _windowed("count", MAX_COUNT),
    "registered_within_days": _registered,
    "joined_campaign": _single_id,
    "completed_campaign": _single_id,
    "holds_coupon": _single_id,
    "segment": _segment_name,
}


def parse_rule(raw: Any, path: str = "rule") -> Node:
    """Check a rule's shape, values and size; raise ValidationFailed (422) naming each bad
    node's JSON path, or return the checked tree. Segment names are not resolved here."""
    parser = _Parser()
    node = parser.node(raw, path, 1)
    if parser.problems or node is None:
        raise_problems(parser.problems or [rule_problem(path, "invalid rule", "invalid_rule")])
    return node


def rule_size_ok(raw: Any) -> bool:
    """Whether a rule serializes within MAX_RULE_BYTES (for request body models)."""
    return len(json.dumps(raw, ensure_ascii=False, separators=(",", ":")).encode()) <= MAX_RULE_BYTES


def walk(node: Node) -> list[Pred]:
    """The predicates of a tree, depth first (the tree is bounded by the limits)."""
    if isinstance(node, Pred):
        return [node]
    if isinstance(node, Not):
        return walk(node.child)
    return [pred for child in node.children for pred in walk(child)]


# --- segments -----------------------------------------------------------------------


@dataclass
class _Expander:
    segments: Mapping[str, Node]
    nodes: int = 0

    def expand(self, node: Node, depth: int, stack: tuple[str, ...], origin: str | None) -> Node:
        self.nodes += 1
        where = origin or node.path
        if self.nodes > MAX_EXPANDED_NODES or depth > MAX_EXPANDED_DEPTH:
            raise_problems(
                [rule_problem(where, "the rule is too large once its segments are expanded", "rule_too_large")]
            )
        if isinstance(node, Combo):
            return Combo(node.op, tuple(self.expand(c, depth + 1, stack, origin) for c in node.children), node.path)
        if isinstance(node, Not):
            return Not(self.expand(node.child, depth + 1, stack, origin), node.path)
        if node.name != "segment":
            return node
        name: str = node.value
        here = origin or f"{node.path}.segment"
        if name in stack:
            chain = " -> ".join((*stack[stack.index(name) :], name))
            raise_problems([rule_problem(here, f"segments refer to each other in a cycle: {chain}", "segment_cycle")])
        if name not in self.segments:
            via = f"segment {stack[-1]!r} refers to {name!r}, but " if stack else ""
            raise_problems([rule_problem(here, f"{via}no saved segment is named {name!r}", "unknown_segment")])
        return self.expand(self.segments[name], depth + 1, (*stack, name), here)


def expand(node: Node, segments: Mapping[str, Node], *, within: str | None = None) -> Node:
    """Replace segment references by the segments' (parsed) rules. ``within`` names the
    segment this rule belongs to, so a reference back to it counts as a cycle. Errors
    name the path of the reference in ``node`` through which the problem was reached."""
    return _Expander(segments).expand(node, 1, (within,) if within else (), None)
