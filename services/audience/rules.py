"""Audience rules compiled to one SQL query and run: who a rule matches.

- ``compile_query`` (pure): (rule, dialect) -> (sql, params). One statement over
  ``customers c``, joined to ``customer_facts f`` when a predicate needs it, with EXISTS
  subqueries for store visits, participations and vouchers. Values only ever travel as
  parameters. Customers are never loaded into Python to be filtered.
- The async functions (``validate_rule``, ``preview``, ``customer_ids_matching``,
  ``matches``) load the segments a rule uses and run the query.

The rule language itself (parsing, checking, expanding segments) is
services/audience/rule_syntax.py; saved segments are services/audience/segments.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from tortoise import connections
from tortoise.models import Model

from models.audience import Segment
from models.campaigns import Campaign, CouponTemplate
from models.stores import Store
from services.audience.facts import new_since
from services.audience.rule_syntax import (
    MAX_EXPANDED_NODES,
    Combo,
    Node,
    Not,
    Pred,
    expand,
    parse_rule,
    raise_problems,
    rule_problem,
    walk,
)
from services.core import Dialect, Params, column, dialect_of

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
    # An erased customer (services/privacy) is in no audience: targeting is profiling.
    where = f"c.erased_at IS NULL AND ({where})"
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


_REFERENCED: dict[str, tuple[type[Model], str]] = {
    "preferred_store": (Store, "store"),
    "visited_store": (Store, "store"),
    "joined_campaign": (Campaign, "campaign"),
    "completed_campaign": (Campaign, "campaign"),
    "holds_coupon": (CouponTemplate, "coupon template"),
}


async def _check_references(node: Node) -> None:
    """Every store, campaign and coupon id the rule names exists (else a 422 at its path)."""
    wanted: dict[type[Model], set[int]] = {}
    for pred in walk(node):
        if pred.name in _REFERENCED:
            ids = pred.value if isinstance(pred.value, tuple) else (pred.value,)
            wanted.setdefault(_REFERENCED[pred.name][0], set()).update(ids)
    existing: dict[type[Model], set[int]] = {}
    for model, model_ids in wanted.items():
        existing[model] = set(await column(model.filter(id__in=sorted(model_ids)), "id"))
    problems = []
    for pred in walk(node):
        if pred.name not in _REFERENCED:
            continue
        model, what = _REFERENCED[pred.name]
        ids = pred.value if isinstance(pred.value, tuple) else (pred.value,)
        for i, one in enumerate(ids):
            if one not in existing[model]:
                where = f"{pred.path}.{pred.name}" + (f"[{i}]" if len(ids) > 1 else "")
                problems.append(rule_problem(where, f"no {what} has id {one}", "not_found"))
    if problems:
        raise_problems(problems)


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


async def members_query(rule: Any, dialect: Dialect) -> tuple[str, list[Any]]:
    """A statement selecting the ids of the customers a saved rule matches now (``SELECT
    c.id ...``), and its parameters (numbered from 1), to embed as ``x IN (...)`` in a
    statement whose own parameters are numbered after these. Precondition as for
    customer_ids_matching."""
    prepared = await _prepare(rule)
    return compile_query(prepared.node, dialect, purpose="ids", segments=prepared.segments)


async def matches(rule: Any, customer_id: int) -> bool:
    """Whether one customer matches: the rule plus a primary-key lookup. Precondition as
    for customer_ids_matching."""
    return bool(await _run(await _prepare(rule), "match", customer_id=customer_id))
