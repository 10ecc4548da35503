"""Audience rules: a small JSON language over customers, checked and compiled to one SQL query.

A rule is a tree: ``{"all": [r, ...]}``, ``{"any": [r, ...]}``, ``{"not": r}``, or a
predicate ``{"<name>": <value>}`` (see PREDICATES). Three steps, each its own function:

- ``parse_rule`` (pure): the JSON's shape, every value, and the size limits; all
  problems at once as a 422 whose ``details.errors[].field`` is the JSON path of each bad
  node (``rule.all[2].spend_at_least.days``). It never recurses deeper than MAX_DEPTH + 1,
  so a rule nested 50 levels is a 422, not a RecursionError.
- ``expand`` (pure): replaces ``{"segment": name}`` by the saved segment's rule, refusing
  cycles and oversized expansions.
- ``compile_query`` (pure): (rule, dialect) -> (sql, params). One statement over
  ``customers c``, joined to ``customer_facts f`` when a predicate needs it, with EXISTS
  subqueries for store visits, participations and vouchers. Values only ever travel as
  parameters. Customers are never loaded into Python to be filtered.

The async functions at the end (``validate_rule``, ``preview``, ``customer_ids_matching``,
``matches``) load the segments a rule uses and run the query.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NoReturn

from tortoise import connections
from tortoise.exceptions import IntegrityError

from models.audience import LIFECYCLE_STAGES, WINDOWS, Segment
from models.campaigns import Campaign, CouponTemplate
from models.customers import MEMBERSHIP_TIERS
from models.stores import Store
from services.audience.facts import new_since
from services.core import errors
from services.core.sql import Dialect, Params, dialect_of

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


def _error(field: str, message: str, kind: str) -> dict[str, str]:
    return {"field": field, "message": message, "type": kind}


def _raise(problems: list[dict[str, str]]) -> NoReturn:
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
            self.problems.append(_error(path, message, kind))

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
        _raise(parser.problems or [_error(path, "invalid rule", "invalid_rule")])
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
            _raise([_error(where, "the rule is too large once its segments are expanded", "rule_too_large")])
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
            _raise([_error(here, f"segments refer to each other in a cycle: {chain}", "segment_cycle")])
        if name not in self.segments:
            via = f"segment {stack[-1]!r} refers to {name!r}, but " if stack else ""
            _raise([_error(here, f"{via}no saved segment is named {name!r}", "unknown_segment")])
        return self.expand(self.segments[name], depth + 1, (*stack, name), here)


def expand(node: Node, segments: Mapping[str, Node], *, within: str | None = None) -> Node:
    """Replace segment references by the segments' (parsed) rules. ``within`` names the
    segment this rule belongs to, so a reference back to it counts as a cycle. Errors
    name the path of the reference in ``node`` through which the problem was reached."""
    return _Expander(segments).expand(node, 1, (within,) if within else (), None)


# --- compiling ----------------------------------------------------------------------


@dataclass
class _Compiler:
    p: Params
    now: datetime
    uses_facts: bool = False

    def expr(self, node: Node) -> tuple[str, bool]:
        """SQL for a node, and whether it can be NULL (a missing facts row, a NULL city).

        Where it can, ``not`` wraps it in COALESCE so "not X" means "X is not known to
        hold". Otherwise it stays a plain NOT, which PostgreSQL turns into an anti-join.
        """
        if isinstance(node, Combo):
            parts = [self.expr(child) for child in node.children]
            if len(parts) == 1:
                return parts[0]
            joiner = " AND " if node.op == "all" else " OR "
            return "(" + joiner.join(sql for sql, _ in parts) + ")", any(nullable for _, nullable in parts)
        if isinstance(node, Not):
            sql, nullable = self.expr(node.child)
            return (f"NOT COALESCE({sql}, FALSE)" if nullable else f"NOT {sql}"), False
        return self.predicate(node)

    def predicate(self, pred: Pred) -> tuple[str, bool]:
        p, value = self.p, pred.value
        name = pred.name
        if name == "tier":
            return p.one_of("c.membership_tier", value), False
        if name == "city":
            return p.one_of("c.city", value), True
        if name == "preferred_store":
            return p.one_of("c.preferred_store_id", value), True
        if name == "interest_tags_any":
            if p.dialect == "postgres":
                # jsonb "any of these strings is an element": served by the GIN index.
                return f"c.interest_tags ?| {p(list(value))}::text[]", False
            return (
                "EXISTS (SELECT 1 FROM json_each(c.interest_tags) tag WHERE "
                + p.one_of("tag.value", value) + ")"
            ), False  # fmt: skip
        if name == "visited_store":
            return (
                "EXISTS (SELECT 1 FROM customer_store_visits sv WHERE sv.customer_id = c.id AND "
                + p.one_of("sv.store_id", value) + ")"
            ), False  # fmt: skip
        if name == "registered_within_days":
            return f"c.created_at >= {p(self.now - timedelta(days=value))}", False
        if name in ("joined_campaign", "completed_campaign"):
            completed = " AND pa.status = 'completed'" if name == "completed_campaign" else ""
            return (
                f"EXISTS (SELECT 1 FROM participations pa WHERE pa.customer_id = c.id "
                f"AND pa.campaign_id = {p(value)}{completed})"
            ), False
        if name == "holds_coupon":
            return (
                f"EXISTS (SELECT 1 FROM vouchers vo WHERE vo.customer_id = c.id AND vo.template_id = {p(value)} "
                f"AND vo.status = 'available' AND vo.valid_until > {p(self.now)})"
            ), False
        if name in ("spend_at_least", "visits_at_least"):
            days, threshold = value
            if threshold == 0:
                return "1=1", False  # everyone has at least zero, with or without a facts row
            self.uses_facts = True
            # The column name comes from the checked window, never from the request's text.
            column = f"f.{'spend' if name == 'spend_at_least' else 'visits'}_{days}d"
            # "> 0" repeats what ">= threshold" implies so the planner may use the
            # partial index (WHERE column > 0) whatever the parameter's value.
            return f"({column} > 0 AND {column} >= {p(threshold)})", True
        if name == "lifecycle_stage":
            self.uses_facts = True
            sql = p.one_of("f.lifecycle_stage", value)
            # No facts row yet (no activity since registering): new or unactivated by age.
            fallbacks = []
            if "new" in value:
                fallbacks.append(f"(f.customer_id IS NULL AND c.created_at >= {p(new_since(self.now.date()))})")
            if "unactivated" in value:
                fallbacks.append(f"(f.customer_id IS NULL AND c.created_at < {p(new_since(self.now.date()))})")
            return ("(" + " OR ".join([sql, *fallbacks]) + ")" if fallbacks else sql), True
        raise ValueError(f"predicate {name!r} reached the compiler unexpanded")  # a bug: expand() first


Purpose = Literal["count", "sample", "ids", "match"]
SAMPLE_COLUMNS = ("id", "nickname", "city", "membership_tier", "lifecycle_stage")


def compile_query(
    rule: Any,
    dialect: Dialect,
    *,
    purpose: Purpose = "count",
    now: datetime | None = None,
    segments: Mapping[str, Node] | None = None,
    limit: int | None = None,
    after_id: int = 0,
    until_id: int | None = None,
    customer_id: int | None = None,
) -> tuple[str, list[Any]]:
    """One SQL statement for a rule (raw JSON or a parsed tree) and its parameters.

    - count: ``SELECT COUNT(*)``
    - sample: SAMPLE_COLUMNS of the newest ``limit`` matches
    - ids: matching ids above ``after_id`` (and up to ``until_id``, if given), ascending,
      at most ``limit`` (if given)
    - match: one row if ``customer_id`` matches
    ``now`` fixes "the last N days" and voucher validity (default: the current time).
    ``segments`` maps segment names to their parsed rules (see expand).
    """
    node = rule if isinstance(rule, Pred | Combo | Not) else parse_rule(rule)
    node = expand(node, segments or {})
    now = now or datetime.now(UTC)
    p = Params(dialect)
    compiler = _Compiler(p, now)
    where, _ = compiler.expr(node)
    source = "customers c"
    if compiler.uses_facts or purpose == "sample":
        source += " LEFT JOIN customer_facts f ON f.customer_id = c.id"
    if purpose == "count":
        return f"SELECT COUNT(*) AS n FROM {source} WHERE {where}", p.values
    if purpose == "sample":
        stage = (
            f"CASE WHEN f.customer_id IS NOT NULL THEN f.lifecycle_stage "
            f"WHEN c.created_at >= {p(new_since(now.date()))} THEN 'new' ELSE 'unactivated' END"
        )
        return (
            f"SELECT c.id, c.nickname, c.city, c.membership_tier, {stage} AS lifecycle_stage "
            f"FROM {source} WHERE {where} ORDER BY c.id DESC LIMIT {p(limit or 20)}"
        ), p.values
    if purpose == "ids":
        tail = f" LIMIT {p(limit)}" if limit is not None else ""
        upper = f" AND c.id <= {p(until_id)}" if until_id is not None else ""
        return f"SELECT c.id FROM {source} WHERE c.id > {p(after_id)}{upper} AND {where} ORDER BY c.id{tail}", p.values
    if customer_id is None:
        raise ValueError("purpose 'match' needs a customer_id")
    return f"SELECT 1 AS one FROM {source} WHERE c.id = {p(customer_id)} AND {where}", p.values


# --- running against the database ---------------------------------------------------


async def load_segments(node: Node, *, overrides: Mapping[str, Node] | None = None) -> dict[str, Node]:
    """The parsed rules of every segment ``node`` refers to, directly or through other
    segments. ``overrides`` stand in for stored rules (a segment being saved). Unknown
    names are left out: expand() reports them with the path of the reference."""
    found: dict[str, Node] = dict(overrides or {})
    wanted = {pred.value for pred in walk(node) if pred.name == "segment"} - set(found)
    # Bounded: each round loads new names only, and expansion caps the total size.
    while wanted and len(found) <= MAX_EXPANDED_NODES:
        rows = await Segment.filter(name__in=sorted(wanted)).values("name", "rule")
        wanted = set()
        for row in rows:
            parsed = parse_rule(row["rule"], f"segment({row['name']})")
            found[row["name"]] = parsed
            wanted |= {pred.value for pred in walk(parsed) if pred.name == "segment"}
        wanted -= set(found)
    return found


_REFERENCED: dict[str, tuple[type, str]] = {
    "preferred_store": (Store, "store"),
    "visited_store": (Store, "store"),
    "joined_campaign": (Campaign, "campaign"),
    "completed_campaign": (Campaign, "campaign"),
    "holds_coupon": (CouponTemplate, "coupon template"),
}


async def _check_references(node: Node) -> None:
    """Every store, campaign and coupon id the rule names exists (else a 422 at its path)."""
    wanted: dict[type, set[int]] = {}
    for pred in walk(node):
        if pred.name in _REFERENCED:
            ids = pred.value if isinstance(pred.value, tuple) else (pred.value,)
            wanted.setdefault(_REFERENCED[pred.name][0], set()).update(ids)
    existing: dict[type, set[int]] = {}
    for model, ids in wanted.items():
        existing[model] = set(await model.filter(id__in=sorted(ids)).values_list("id", flat=True))
    problems = []
    for pred in walk(node):
        if pred.name not in _REFERENCED:
            continue
        model, what = _REFERENCED[pred.name]
        ids = pred.value if isinstance(pred.value, tuple) else (pred.value,)
        for i, one in enumerate(ids):
            if one not in existing[model]:
                where = f"{pred.path}.{pred.name}" + (f"[{i}]" if len(ids) > 1 else "")
                problems.append(_error(where, f"no {what} has id {one}", "not_found"))
    if problems:
        _raise(problems)


@dataclass(frozen=True)
class Prepared:
    """A parsed rule with the segments it uses, ready to compile (see validate_rule)."""

    node: Node
    segments: Mapping[str, Node]


async def validate_rule(rule: Any, *, field: str = "rule", segment_name: str | None = None) -> Prepared:
    """Check a rule completely: shape and values, the segments it uses (they exist and
    form no cycle), and the stores, campaigns and coupons it names. Raises
    ValidationFailed (422) with paths starting at ``field``. ``segment_name``: the rule
    is being saved as that segment (a reference back to it is a cycle)."""
    node = parse_rule(rule, field)
    overrides = {segment_name: node} if segment_name else None
    segments = await load_segments(node, overrides=overrides)
    expand(node, segments, within=segment_name)
    await _check_references(node)
    return Prepared(node, segments)


async def _prepare(rule: Any) -> Prepared:
    """Parse and resolve segments, without the id checks (for rules saved earlier)."""
    if isinstance(rule, Prepared):
        return rule
    node = parse_rule(rule)
    return Prepared(node, await load_segments(node))


async def _run(prepared: Prepared, purpose: Purpose, **options: Any) -> list[dict[str, Any]]:
    db = connections.get("default")
    sql, params = compile_query(prepared.node, dialect_of(db), purpose=purpose, segments=prepared.segments, **options)
    _, rows = await db.execute_query(sql, params)
    return [dict(row) for row in rows]


async def preview(rule: Any, sample_size: int = 20) -> tuple[int, list[dict[str, Any]]]:
    """How many customers a rule matches, and the newest ``sample_size`` of them.

    The rule is validated first (422 with paths under ``rule``)."""
    prepared = await validate_rule(rule)
    count = int((await _run(prepared, "count"))[0]["n"])
    # Nothing to sample from an empty audience: skip a query that would walk the whole
    # primary key looking for a first match.
    sample = await _run(prepared, "sample", limit=sample_size) if count and sample_size > 0 else []
    return count, sample


async def customer_ids_matching(
    rule: Any, *, after_id: int = 0, until_id: int | None = None, limit: int | None = None
) -> list[int]:
    """Ids of matching customers, ascending. Page through a large audience with
    ``after_id`` (the last id of the previous page) and ``limit``, or look at one id range
    with ``until_id``. Precondition: the rule was validated when it was saved (it is
    parsed again: a broken one is a 422)."""
    rows = await _run(await _prepare(rule), "ids", after_id=after_id, until_id=until_id, limit=limit)
    return [int(row["id"]) for row in rows]


async def matches(rule: Any, customer_id: int) -> bool:
    """Whether one customer matches: the rule plus a primary-key lookup. Precondition as
    for customer_ids_matching."""
    return bool(await _run(await _prepare(rule), "match", customer_id=customer_id))


# --- saved segments -----------------------------------------------------------------


async def create_segment(name: str, rule: Any, description: str, admin_id: int) -> Segment:
    """Save a rule under a unique name (409 conflict if taken; 422 if the rule is bad)."""
    if await Segment.filter(name=name).exists():
        raise _name_taken(name)
    await validate_rule(rule, segment_name=name)
    try:
        return await Segment.create(name=name, rule=rule, description=description, created_by=admin_id)
    except IntegrityError:  # created by someone else since the check above
        raise _name_taken(name) from None


async def get_segment(segment_id: int) -> Segment:
    segment = await Segment.get_or_none(id=segment_id)
    if segment is None:
        raise errors.NotFound("no such segment")
    return segment


async def replace_segment(segment_id: int, rule: Any, description: str) -> Segment:
    """Replace a segment's rule and description; a rule that would make segments refer
    to each other in a cycle is a 422."""
    segment = await get_segment(segment_id)
    await validate_rule(rule, segment_name=segment.name)
    segment.rule = rule
    segment.description = description
    await segment.save(update_fields=["rule", "description", "updated_at"])
    return segment


async def delete_segment(segment_id: int) -> None:
    """Delete a segment no other segment or unfinished campaign refers to (else 409
    segment_in_use, naming them): those rules would stop compiling."""
    segment = await get_segment(segment_id)
    used_by = [
        name
        for name, rule in await Segment.exclude(id=segment.id).values_list("name", "rule")
        if segment.name in segment_names_in(rule)
    ]
    campaigns = (
        await Campaign.filter(audience_rule__isnull=False)
        .exclude(status__in=("ended", "archived"))
        .values_list("id", "audience_rule")
    )
    used_in = [campaign_id for campaign_id, rule in campaigns if segment.name in segment_names_in(rule)]
    if used_by or used_in:
        raise errors.SegmentInUse(
            f"segment {segment.name!r} is used by other rules",
            details={"segments": sorted(used_by), "campaign_ids": sorted(used_in)},
        )
    await segment.delete()


def segment_names_in(raw: Any) -> set[str]:
    """Names of the segments a stored rule refers to (tolerant of any JSON: iterative, so
    no depth can exhaust the stack)."""
    names: set[str] = set()
    stack = [raw]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("segment"), str):
                names.add(item["segment"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return names


def _name_taken(name: str) -> errors.AppError:
    return errors.Conflict(f"a segment named {name!r} already exists", details={"field": "name"})
