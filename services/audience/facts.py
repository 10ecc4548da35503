"""Customers' derived facts: recorded as activity arrives, rebuilt nightly from history.

``record_activity`` adds one customer's activity for a day to the daily table (the source
of truth) and to the precomputed facts (spend and visits per window, totals, dates,
lifecycle stage) in one transaction, safely under concurrency on SQLite and PostgreSQL.
``recompute_facts`` rebuilds the facts from the daily table: windows slide with time, so
it runs nightly (and repairs any drift).

Windows are fixed (7/30/90/180/365 days) on purpose: one precomputed column per window
turns "spent at least X in the last N days" into an index lookup on one column, where an
arbitrary N would need a scan of every customer's history at request time.

Days are UTC calendar days. A window of N days holds ``today`` and the N - 1 days
before it (later days, sent by a clock ahead of ours, count as today). Lifecycle
thresholds are in models.audience.

Its SQL is written by hand with services.core.sql's numbered placeholders.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.models import Model
from tortoise.transactions import in_transaction

from models.audience import (
    ACTIVE_DAYS,
    NEW_DAYS,
    SILENT_DAYS,
    WINDOWS,
    CustomerDailyActivity,
    CustomerFacts,
    CustomerStoreVisit,
)
from services.core import Dialect, Params, dialect_of

#: Customers per statement when recomputing everyone: bounded transactions and locks.
RECOMPUTE_BATCH = 10_000


def utc_today() -> date:
    return datetime.now(UTC).date()


def window_start(today: date, days: int) -> date:
    """The first day inside a window of ``days`` days ending today."""
    return today - timedelta(days=days - 1)


def new_since(today: date) -> datetime:
    """Customers registered at or after this instant are "new"."""
    return datetime.combine(today - timedelta(days=NEW_DAYS), time.min, tzinfo=UTC)


def stage_case(p: Params, today: date, *, last_purchase: str, created_at: str) -> str:
    """SQL for the lifecycle stage, given SQL expressions for the last purchase day and
    the registration time. The one definition used by the nightly recompute, by
    record_activity, and by the rule compiler."""
    return (
        f"CASE WHEN {created_at} >= {p(new_since(today))} THEN 'new' "
        f"WHEN {last_purchase} IS NULL THEN 'unactivated' "
        f"WHEN {last_purchase} >= {p(today - timedelta(days=ACTIVE_DAYS))} THEN 'active' "
        f"WHEN {last_purchase} >= {p(today - timedelta(days=SILENT_DAYS))} THEN 'silent' "
        "ELSE 'churned' END"
    )


# --- recording activity -------------------------------------------------------------


async def record_activity(
    customer_id: int,
    day: date,
    *,
    spend: int = 0,
    visits: int = 0,
    purchases: int = 0,
    store_id: int | None = None,
    today: date | None = None,
) -> None:
    """Add a customer's activity on ``day`` (amounts add up: call it once per event).

    Preconditions: the customer (and store, if given) exist, else IntegrityError; amounts
    are non-negative integers, spend in fen. Activity with a store also records that the
    customer has been to that store. Safe to call concurrently for one customer and day:
    counters are added with ``UPDATE ... SET x = x + n``, and a lost race to create a
    row retries as an update.
    """
    if min(spend, visits, purchases) < 0:
        raise ValueError("activity amounts must be non-negative")
    today = today or utc_today()
    now = datetime.now(UTC)
    in_windows = [w for w in WINDOWS if day >= window_start(today, w)]
    fact_increments = {
        **{f"spend_{w}d": spend for w in in_windows},
        **{f"visits_{w}d": visits for w in in_windows},
        "purchases_total": purchases,
        "spend_total": spend,
    }
    active = spend > 0 or visits > 0 or purchases > 0
    first_facts = {
        "first_purchase_at": day if purchases else None,
        "last_purchase_at": day if purchases else None,
        "last_visit_at": day if visits else None,
        "last_active_at": day if active else None,
    }
    # One transaction, rows always locked in this order (daily, facts, store visit), so
    # two calls cannot deadlock and the facts never disagree with the daily row.
    async with in_transaction() as conn:
        await _add(
            CustomerDailyActivity,
            {"customer_id": customer_id, "day": day},
            {"spend": spend, "visits": visits, "purchases": purchases},
        )
        created = await _add(
            CustomerFacts,
            {"customer_id": customer_id},
            fact_increments,
            extra={"updated_at": now},
            on_create=first_facts,
        )
        if not created:
            await _advance_dates(conn, customer_id, day, purchases=purchases, visits=visits, active=active)
        p = Params(dialect_of(conn))
        stage = stage_case(
            p, today, last_purchase="last_purchase_at",
            created_at="(SELECT c.created_at FROM customers c WHERE c.id = customer_facts.customer_id)",
        )  # fmt: skip
        await conn.execute_query(
            f"UPDATE customer_facts SET lifecycle_stage = {stage} WHERE customer_id = {p(customer_id)}", p.values
        )
        if store_id is not None:
            visit_created = await _add(
                CustomerStoreVisit,
                {"customer_id": customer_id, "store_id": store_id},
                {"visits": visits},
                on_create={"last_visit_at": day},
            )
            if not visit_created:
                await CustomerStoreVisit.filter(
                    customer_id=customer_id, store_id=store_id, last_visit_at__lt=day
                ).update(last_visit_at=day)


async def _add(
    model: type[Model],
    key: dict[str, Any],
    increments: dict[str, int],
    *,
    extra: dict[str, Any] | None = None,
    on_create: dict[str, Any] | None = None,
) -> bool:
    """Add ``increments`` to the row at ``key``, creating it if missing; True if created.

    Precondition: runs inside a transaction (the create is a savepoint within it).
    """
    rows = model.filter(**key)
    changes: dict[str, Any] = {name: F(name) + n for name, n in increments.items() if n}
    if changes:
        if await rows.update(**changes, **(extra or {})):
            return False
    elif await rows.exists():
        return False
    try:
        # A savepoint: on PostgreSQL a failed INSERT would otherwise abort the whole
        # transaction. The INSERT waits for a concurrent creator to commit, then fails.
        async with in_transaction():
            row: dict[str, Any] = {**key, **increments, **(extra or {}), **(on_create or {})}
            await model.create(**row)
        return True
    except IntegrityError as exc:
        # Lost the race (the row is there and committed now), or a foreign key is
        # wrong (then there is still no row to add to, and the error stands).
        if changes and await rows.update(**changes, **(extra or {})):
            return False
        if not changes and await rows.exists():
            return False
        raise exc


def _move(column: str, behind: str, day: str) -> str:
    """``column = day`` where the column is NULL or ``column <behind> day``."""
    return f"{column} = CASE WHEN {column} IS NULL OR {column} {behind} {day} THEN {day} ELSE {column} END"


async def _advance_dates(
    conn: BaseDBAsyncClient, customer_id: int, day: date, *, purchases: int, visits: int, active: bool
) -> None:
    """Move the first/last dates to cover ``day``, in one atomic UPDATE (each CASE reads
    the row as locked, so concurrent calls cannot move a date backwards)."""
    p = Params(dialect_of(conn))
    d = p(day)
    sets = []
    if purchases:
        sets += [_move("first_purchase_at", ">", d), _move("last_purchase_at", "<", d)]
    if visits:
        sets.append(_move("last_visit_at", "<", d))
    if active:
        sets.append(_move("last_active_at", "<", d))
    if sets:
        await conn.execute_query(
            f"UPDATE customer_facts SET {', '.join(sets)} WHERE customer_id = {p(customer_id)}", p.values
        )


# --- recomputing from history -------------------------------------------------------

_FACT_COLUMNS = [
    *(f"spend_{w}d" for w in WINDOWS),
    *(f"visits_{w}d" for w in WINDOWS),
    "purchases_total",
    "spend_total",
    "first_purchase_at",
    "last_purchase_at",
    "last_visit_at",
    "last_active_at",
]


def _recompute_statements(dialect: Dialect, today: date, now: datetime, lo: int, hi: int) -> list[tuple[str, list]]:
    """The set-based SQL that rebuilds the facts of customers with ``lo <= id < hi``."""
    statements: list[tuple[str, list]] = []

    # 1. A facts row for every customer (zeros), so each gets a stage.
    p = Params(dialect)
    zero_columns = [c for c in _FACT_COLUMNS if not c.endswith("_at")]
    statements.append((
        f"INSERT INTO customer_facts (customer_id, {', '.join(zero_columns)}, lifecycle_stage, updated_at) "
        f"SELECT c.id, {', '.join('0' for _ in zero_columns)}, 'new', {p(now)} FROM customers c "
        # An erased customer (services/privacy) has no facts: profiling is what was erased.
        f"WHERE c.id >= {p(lo)} AND c.id < {p(hi)} AND c.erased_at IS NULL ON CONFLICT (customer_id) DO NOTHING",
        p.values,
    ))  # fmt: skip

    # 2. Windows, totals and dates from the daily rows: one correlated aggregate per
    # customer, served by the (customer_id, day) unique index.
    p = Params(dialect)
    sums = [
        f"COALESCE(SUM(CASE WHEN d.day >= {p(window_start(today, w))} THEN d.{kind} ELSE 0 END), 0)"
        for kind in ("spend", "visits")
        for w in WINDOWS
    ]
    sums += [
        "COALESCE(SUM(d.purchases), 0)",
        "COALESCE(SUM(d.spend), 0)",
        "MIN(CASE WHEN d.purchases > 0 THEN d.day END)",
        "MAX(CASE WHEN d.purchases > 0 THEN d.day END)",
        "MAX(CASE WHEN d.visits > 0 THEN d.day END)",
        "MAX(CASE WHEN d.spend > 0 OR d.visits > 0 OR d.purchases > 0 THEN d.day END)",
    ]
    statements.append((
        f"UPDATE customer_facts SET ({', '.join(_FACT_COLUMNS)}) = (SELECT {', '.join(sums)} "
        "FROM customer_daily_activity d WHERE d.customer_id = customer_facts.customer_id), "
        f"updated_at = {p(now)} WHERE customer_id >= {p(lo)} AND customer_id < {p(hi)}",
        p.values,
    ))  # fmt: skip

    # 3. The stage, from the dates just written (a separate statement sees them).
    p = Params(dialect)
    stage = stage_case(
        p, today, last_purchase="last_purchase_at",
        created_at="(SELECT c.created_at FROM customers c WHERE c.id = customer_facts.customer_id)",
    )  # fmt: skip
    statements.append((
        f"UPDATE customer_facts SET lifecycle_stage = {stage} WHERE customer_id >= {p(lo)} AND customer_id < {p(hi)}",
        p.values,
    ))  # fmt: skip
    return statements


async def recompute_facts(customer_id: int | None = None, *, today: date | None = None) -> int:
    """Rebuild facts from the daily table: one customer, or everyone (None) in batches of
    RECOMPUTE_BATCH ids. Returns how many id batches ran. Customers without a facts row
    get one. Safe to run while activity is being recorded: each batch first locks its
    facts rows, so a concurrent record_activity lands either before (and is read) or
    after (and adds on top)."""
    today = today or utc_today()
    now = datetime.now(UTC)
    if customer_id is not None:
        await _recompute_range(today, now, customer_id, customer_id + 1)
        return 1
    async with in_transaction() as conn:
        _, rows = await conn.execute_query("SELECT MIN(id) AS lo, MAX(id) AS hi FROM customers")
    lo, hi = (rows[0]["lo"], rows[0]["hi"]) if rows else (None, None)
    if lo is None or hi is None:
        return 0
    batches = 0
    for start in range(lo, hi + 1, RECOMPUTE_BATCH):
        await _recompute_range(today, now, start, start + RECOMPUTE_BATCH)
        batches += 1
    return batches


async def _recompute_range(today: date, now: datetime, lo: int, hi: int) -> None:
    async with in_transaction() as conn:
        dialect = dialect_of(conn)
        insert, windows, stage = _recompute_statements(dialect, today, now, lo, hi)
        await conn.execute_query(*insert)
        # Lock before reading the daily rows: see the docstring of recompute_facts.
        # (SQLite has one writer at a time: the transaction itself is the lock.)
        # Raw SQL: tortoise drops FOR UPDATE from a values_list() query.
        if dialect == "postgres":
            await conn.execute_query(
                "SELECT id FROM customer_facts WHERE customer_id >= $1 AND customer_id < $2 FOR UPDATE", [lo, hi]
            )
        await conn.execute_query(*windows)
        await conn.execute_query(*stage)
