"""`python -m server`, with some of its library overrides replaced by the plain library,
for measuring what each override saves (issue 13). Bench-only: the product has no switch.

    BENCH_PLAIN=sqlite_batch,feed_cards .venv/bin/python -m bench.plain [server args]

* ``sqlite_batch``: a redemption batch on SQLite through aiosqlite's public coroutines (a
  hop to the database thread per statement) instead of one ``Connection._execute`` call
  running the whole transaction on the database thread;
* ``feed_cards``: the feed's answers built as their pydantic models (``FeedOut``,
  ``SectionsOut``, ``FeedItemOut`` per card) and serialized, instead of
  ``handlers.customer.feed_cards``'s dicts; the same campaigns in the same order.

Names of overrides that are no longer in the tree are refused (nothing left to compare).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any


def _feed_cards() -> None:
    from handlers.customer import feed_cards
    from handlers.customer.feed_schemas import FeedItemOut, FeedOut, SectionsOut, ThemeSectionOut
    from services.feed import presentation as feed

    def item(ranking: Any, s: Any, accept: str | None, written: dict[int, FeedItemOut]) -> FeedItemOut:
        found = written.get(s.id)
        if found is not None:
            return found
        r = ranking.explain(s)
        snap = r.snap
        language, title, summary = feed.texts_of(snap, accept)
        shown = [x for x in r.reasons if x.text]
        running = r.phase == "running"
        found = written[s.id] = FeedItemOut(
            id=snap.id, type=snap.type, phase=r.phase, teaser=not running, joinable=running and not r.joined,
            joined=r.joined, language=language, title=title, summary=summary, tags=list(snap.tags),
            theme_id=snap.theme_id, banner_media_id=snap.banner_media_id, starts_at=snap.starts_at,
            ends_at=snap.ends_at, participants=r.participants,
            distance_km=None if r.distance_km is None else round(r.distance_km, 2), score=r.score,
            reason=next((x.text for x in shown if x.code != "joined"), shown[0].text if shown else None),
            reasons=[{"code": x.code, "text": x.text, "points": x.points} for x in shown],  # type: ignore[misc]
        )  # fmt: skip
        return found

    # ``taken`` (live seats) is read by the handler either way; these cards ignore it.
    def page_json(
        ranking: Any, chosen: list[Any], next_cursor: str | None, accept: str | None, taken: Any = None
    ) -> bytes:
        written: dict[int, FeedItemOut] = {}
        out = FeedOut(items=[item(ranking, s, accept, written) for s in chosen], next_cursor=next_cursor)
        return FeedOut.__pydantic_serializer__.to_json(out)

    def sections_json(ranking: Any, n: int, accept: str | None, taken: Any = None, chosen: Any = None) -> bytes:
        chosen = chosen or ranking.sections(n)
        written: dict[int, FeedItemOut] = {}

        def items(picked: list[Any]) -> list[FeedItemOut]:
            return [item(ranking, s, accept, written) for s in picked]

        out = SectionsOut(
            recommended=items(chosen.recommended), ending_soon=items(chosen.ending_soon),
            near_you=items(chosen.near_you),
            themed=[ThemeSectionOut(theme_id=t, name=name, items=items(picked)) for t, name, picked in chosen.themed],
        )  # fmt: skip
        return SectionsOut.__pydantic_serializer__.to_json(out)

    feed_cards.page_json = page_json
    feed_cards.sections_json = sections_json


def _sqlite_batch() -> None:
    from services.wallet import redemption_write as w

    async def one(db: Any, read_params: tuple[int, int, int], decide: Any) -> Any:
        """``_sqlite_one`` through aiosqlite's public coroutines: a hop to the database
        thread per statement, ``decide`` on the event loop."""
        row = await (await db.execute(w.read_sql("sqlite"), read_params)).fetchone()
        if row is None:
            return None
        decided, u = decide(w._row(row, "sqlite"))
        if u is None:
            return w.Outcome(decided, False, None)
        used = await db.execute(w._SQLITE_USE, (u.at, u.store_id, u.staff_id, u.voucher_id, u.at))
        if used.rowcount != 1:
            return w.Outcome(decided, True, None)
        redemption = await db.execute(
            w._SQLITE_REDEMPTION,
            (
                u.voucher_id, u.store_id, u.staff_id, u.customer_id, u.campaign_id, u.template_id, u.face_value,
                u.order_ref, u.order_amount, u.idempotency_key, u.at,
            ),
        )  # fmt: skip
        await db.execute(
            w._SQLITE_AUDIT,
            (u.actor_kind, u.actor_id, redemption.lastrowid, u.audit_before, u.audit_after, u.request_id, u.at),
        )
        return w.Outcome(decided, True, redemption.lastrowid)

    async def batch(conn: Any, works: list[Any]) -> list[Any]:
        """``_sqlite_transaction``, the same statements, under tortoise's lock."""
        async with conn.acquire_connection() as db:
            await db.execute("BEGIN IMMEDIATE")
            try:
                results: list[Any] = []
                for read_params, decide in works:
                    await db.execute("SAVEPOINT till")
                    try:
                        results.append((True, await one(db, read_params, decide)))
                    except Exception as exc:
                        await db.execute("ROLLBACK TO till")
                        results.append((False, exc))
                    await db.execute("RELEASE till")
                await db.execute("COMMIT")
                return results
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    w._sqlite_batch = batch  # type: ignore[assignment]


PATCHES: dict[str, Callable[[], None]] = {
    "sqlite_batch": _sqlite_batch,
    "feed_cards": _feed_cards,
}


def apply(names: list[str]) -> None:
    """Apply the named replacements."""
    unknown = set(names) - set(PATCHES)
    if unknown:
        raise SystemExit(f"BENCH_PLAIN: unknown {sorted(unknown)}; known: {sorted(PATCHES)}")
    for name in names:
        PATCHES[name]()


if __name__ == "__main__":
    apply([n for n in os.environ.get("BENCH_PLAIN", "").split(",") if n])
    from server.cli import main

    sys.exit(main())
