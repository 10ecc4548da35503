"""From the Redis claim streams to vouchers in the database: at least once from Redis,
exactly once in the database (the claim id is unique).

Each stream entry is acknowledged and deleted only after the transaction holding its
voucher committed. Entries a consumer left pending (it died, or was cancelled mid-batch)
are re-claimed by another after ``min_idle_ms``; persisting one twice is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from models.campaigns import Campaign, CouponTemplate
from models.vouchers import Voucher
from services import outbound
from services.core import AnyRedis, Params, dialect_of, random_token, run_to_end, text
from services.stock.keys import CONSUMER_GROUP, STREAMS_REGISTRY

log = logging.getLogger("wxcampaign.claims")

#: Streams one XREADGROUP names on one Redis (the worker's reads; see ClaimsWorker.run_once).
STREAMS_PER_READ = 500
#: Streams a recovery pass re-claims stale entries of, in turn (ClaimsWorker._recovery_window).
RECOVER_STREAMS_PER_PASS = 500


@dataclass(frozen=True)
class ClaimEntry:
    entry_id: str
    claim_id: str
    code: str
    template_id: int
    customer_id: int
    face_value: int
    grabbed_at: datetime
    #: The id of the request that made the claim ("" for claims recorded without one).
    request_id: str = ""
    #: A manual grant's admin (the stream entry's optional "by"); None for grabs and rewards.
    granted_by: int | None = None
    #: The experiment and arm whose stock share the grab took (the entry's optional "xa",
    #: "x<experiment>:<arm>", services/stock/arms.py); None otherwise.
    experiment_id: int | None = None
    experiment_arm: int | None = None


def _parse(entry_id: Any, fields: dict[Any, Any]) -> ClaimEntry:
    f = {text(k): text(v) for k, v in fields.items()}
    experiment, arm = f["xa"][1:].split(":") if "xa" in f else (None, None)
    return ClaimEntry(
        entry_id=text(entry_id),
        claim_id=f["claim"],
        code=f["code"],
        template_id=int(f["tpl"]),
        customer_id=int(f["uid"]),
        face_value=int(f["face"]),
        grabbed_at=datetime.fromtimestamp(int(f["at"]) / 1000, UTC),
        request_id=f.get("rid", ""),
        granted_by=int(f["by"]) if "by" in f else None,
        experiment_id=None if experiment is None else int(experiment),
        experiment_arm=None if arm is None else int(arm),
    )


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


#: The columns persist() writes (every other column of ``vouchers`` is NULL when unset;
#: ``stock_returned`` has no database default, so it is written, false).
_VOUCHER_COLUMNS = (
    "claim_id", "template_id", "campaign_id", "customer_id", "code", "status", "face_value", "valid_from",
    "valid_until", "issued_at", "granted_by", "stock_returned", "experiment_id", "experiment_arm",
)  # fmt: skip


async def _voucher_rows(entries: list[ClaimEntry]) -> list[tuple[Any, ...]]:
    """Each claim's voucher as values in the order of _VOUCHER_COLUMNS (plain tuples: the
    worker shares the grab's CPU, and building models costs more than the insert)."""
    templates = {t.id: t for t in await CouponTemplate.filter(id__in={e.template_id for e in entries})}
    rows = []
    for e in entries:
        template = templates[e.template_id]
        if template.validity_kind == "fixed":
            valid_from, valid_until = template.valid_from, template.valid_until
        else:
            valid_from, valid_until = e.grabbed_at, e.grabbed_at + timedelta(days=template.valid_days or 0)
        rows.append(
            (
                e.claim_id, e.template_id, template.campaign_id,
                e.customer_id, e.code, "available", e.face_value, valid_from, valid_until, e.grabbed_at,
                e.granted_by, False, e.experiment_id, e.experiment_arm,
            )
        )  # fmt: skip
    return rows


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


async def persist(entries: list[ClaimEntry]) -> int:
    """Write the vouchers of these claims that are not in the database yet, and count
    their face value against the campaign budget, in one transaction. Returns how many
    were new. Idempotent: a claim already persisted is skipped."""
    if not entries:
        return 0
    for attempt in range(3):
        try:
            async with in_transaction() as conn:
                known = set(
                    await Voucher.filter(claim_id__in=[e.claim_id for e in entries]).values_list("claim_id", flat=True)
                )
                fresh = [e for e in {e.claim_id: e for e in entries}.values() if e.claim_id not in known]
                if not fresh:
                    return 0
                rows = await _voucher_rows(fresh)
                p = Params(dialect_of(conn))
                marks = ", ".join(p(None) for _ in _VOUCHER_COLUMNS)
                await conn.execute_many(
                    f"INSERT INTO vouchers ({', '.join(_VOUCHER_COLUMNS)}) VALUES ({marks})", [list(r) for r in rows]
                )
                spent: dict[int, int] = {}
                for row in rows:
                    spent[row[2]] = spent.get(row[2], 0) + row[6]
                for campaign_id, value in spent.items():
                    await Campaign.filter(id=campaign_id).update(budget_spent=F("budget_spent") + value)
                # The webhook outbox, in this transaction: an issued voucher and its event commit together.
                await outbound.enqueue_many(
                    (
                        "voucher.issued",
                        f"voucher:{row[0]}",
                        outbound.voucher_payload(
                            claim_id=row[0], campaign_id=row[2], template_id=row[1], customer_id=row[3],
                            face_value=row[6], valid_from=_iso(row[7]), valid_until=_iso(row[8]),
                            issued_at=_iso(row[9]), granted_by=row[10],
                        ),
                    )
                    for row in rows
                )  # fmt: skip
                return len(fresh)
        except IntegrityError:
            # Another consumer persisted some of these meanwhile (a re-claim race), or,
            # astronomically rarely, a random code collided: re-check and, for the
            # latter, give the colliding claims new codes.
            taken = set(await Voucher.filter(code__in=[e.code for e in entries]).values_list("code", flat=True))
            known = set(
                await Voucher.filter(claim_id__in=[e.claim_id for e in entries]).values_list("claim_id", flat=True)
            )
            entries = [e if e.code not in taken or e.claim_id in known else _recoded(e) for e in entries]
            log.warning("claims batch conflicted (attempt %d); retrying", attempt + 1)
    raise RuntimeError("could not persist a claims batch after 3 attempts")


def _recoded(entry: ClaimEntry) -> ClaimEntry:
    log.error("voucher code collision for claim %s: issuing a new code", entry.claim_id)
    return ClaimEntry(**{**entry.__dict__, "code": random_token(16)})


#: At most this many request ids on a batch's log line (a flash-sale batch holds hundreds).
_LOGGED_REQUEST_IDS = 100


def _log_persisted(stream: str, entries: list[ClaimEntry], fresh: int) -> None:
    """One INFO line per batch naming the requests whose grabs it wrote (``request_ids``;
    ``request_id`` too when the batch came from one request), and one DEBUG line per
    claim logged under its own request's id."""
    if not log.isEnabledFor(logging.INFO):
        return
    rids = list(dict.fromkeys(e.request_id for e in entries if e.request_id))
    extra: dict[str, object] = {"request_ids": rids[:_LOGGED_REQUEST_IDS], "stream": stream}
    if len(rids) == 1:
        extra["request_id"] = rids[0]
    log.info("claims: %d written to the database (%d new) from %s", len(entries), fresh, stream, extra=extra)
    if log.isEnabledFor(logging.DEBUG):
        for e in entries:
            log.debug(
                "claim %s of customer %d persisted", e.claim_id, e.customer_id, extra={"request_id": e.request_id}
            )


@dataclass(frozen=True)
class ClaimsBacklog:
    """What waits in the claim streams: per stream its length and its consumer group's
    lag (entries not read yet), and the age of the oldest claim not yet written."""

    lengths: dict[str, int]
    lags: dict[str, int]
    oldest_age_seconds: float


async def backlog(redis: AnyRedis, now_ms: int | None = None) -> ClaimsBacklog:
    """Read the claims backlog: the length of every registered stream in one pipelined
    round trip, then the first entry and the group's lag of the streams not empty in a
    second (an idle stream needs nothing more: an entry is deleted once its voucher is
    committed, so the first entry of a stream is its oldest unwritten claim). /readyz,
    the metrics and the alerts read it; per-stream round trips took seconds at 5,000
    live coupon campaigns."""
    streams = sorted(text(s) for s in await redis.smembers(STREAMS_REGISTRY))
    if not streams:
        return ClaimsBacklog({}, {}, 0.0)
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xlen(stream)
        lengths = {stream: int(n) for stream, n in zip(streams, await pipe.execute(), strict=True)}
    # No group yet (no worker has read a stream), or an empty stream: nothing of it was read.
    lags = dict(lengths)
    waiting = [stream for stream in streams if lengths[stream]]
    oldest: int | None = None
    if waiting:
        async with redis.pipeline(transaction=False) as pipe:
            for stream in waiting:
                pipe.xrange(stream, "-", "+", count=1)
                pipe.xinfo_groups(stream)
            replies = await pipe.execute(raise_on_error=False)
        for i, stream in enumerate(waiting):
            first, groups = replies[2 * i], replies[2 * i + 1]
            if first and not isinstance(first, Exception):
                at_ms = int(text(first[0][0]).split("-", 1)[0])
                oldest = at_ms if oldest is None else min(oldest, at_ms)
            if isinstance(groups, Exception):  # the stream is gone (no key): nothing waits
                continue
            for group in groups:
                if text(group.get("name", b"")) == CONSUMER_GROUP:
                    lag = group.get("lag")
                    # None: Redis cannot tell (entries were deleted mid-range); the length bounds it.
                    lags[stream] = lengths[stream] if lag is None else int(lag)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    age = 0.0 if oldest is None else max(0.0, (now - oldest) / 1000)
    return ClaimsBacklog(lengths, lags, age)


class ClaimsWorker:
    """Moves claims from every registered stream into the database."""

    def __init__(self, redis: AnyRedis, *, batch: int = 500, min_idle_ms: int = 30_000, name: str | None = None):
        self.redis = redis
        self.batch = batch
        self.min_idle_ms = min_idle_ms
        self.name = name or consumer_name()
        self._groups: set[str] = set()
        self._recover_at = 0  # where the next recovery window starts (_recovery_window)

    async def _ensure_group(self, stream: str) -> None:
        if stream in self._groups:
            return
        try:
            await self.redis.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
        except redis_errors.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(stream)

    async def _streams(self) -> list[str]:
        return sorted(text(s) for s in await self.redis.smembers(STREAMS_REGISTRY))

    async def run_once(self, *, recover: bool = True) -> int:
        """One pass over every stream: read new entries and, with ``recover``, our own
        pending ones (we failed after reading them) and stale ones of other consumers (a
        dead one's; ``RECOVER_STREAMS_PER_PASS`` streams a pass, in turn); persist, then
        acknowledge and delete. All reads go in one pipelined round trip: on one Redis
        an XREADGROUP names ``STREAMS_PER_READ`` streams, so an idle pass over 5,000
        streams is 10 commands, not 5,000 (which held the event loop ~200 ms every
        0.4 s); on a cluster each stream is its own slot, so one command each. Returns
        the number of entries handled."""
        streams = await self._streams()
        if not streams:
            return 0
        for stream in streams:
            await self._ensure_group(stream)
        stale_of = self._recovery_window(streams) if recover else []
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in stale_of:
                pipe.xautoclaim(
                    stream, CONSUMER_GROUP, self.name, min_idle_time=self.min_idle_ms, start_id="0-0",
                    count=self.batch,
                )  # fmt: skip
            for chunk in self._read_chunks(streams):
                if recover:
                    pipe.xreadgroup(CONSUMER_GROUP, self.name, dict.fromkeys(chunk, "0"), count=self.batch)
                pipe.xreadgroup(CONSUMER_GROUP, self.name, dict.fromkeys(chunk, ">"), count=self.batch)
            replies = await pipe.execute()
        raw: dict[str, dict[str, Any]] = {}
        gone: dict[str, list[Any]] = {}
        for stream, (_, stale, _) in zip(stale_of, replies[: len(stale_of)], strict=True):
            for entry_id, fields in stale:
                raw.setdefault(stream, {})[text(entry_id)] = fields
        for reply in replies[len(stale_of) :]:
            for name, items in reply or []:
                stream = text(name)
                for entry_id, fields in items:
                    if fields:
                        raw.setdefault(stream, {})[text(entry_id)] = fields
                    else:
                        gone.setdefault(stream, []).append(entry_id)  # a deleted entry still pending shows up empty
        handled = 0
        for stream in streams:
            if stream in gone:
                await self.redis.xack(stream, CONSUMER_GROUP, *gone[stream])
            found = raw.get(stream)
            if not found:
                continue
            entries = [_parse(entry_id, fields) for entry_id, fields in found.items() if fields]
            # Cancelled here, the batch still commits; it just stays unacknowledged.
            fresh = await run_to_end(persist(entries))
            _log_persisted(stream, entries, fresh)
            ids = list(found)
            await self.redis.xack(stream, CONSUMER_GROUP, *ids)
            await self.redis.xdel(stream, *ids)
            handled += len(ids)
        return handled

    def _read_chunks(self, streams: list[str]) -> list[list[str]]:
        """The streams one XREADGROUP names each: ``STREAMS_PER_READ`` on one Redis, one
        on a cluster (a command's keys must share a slot)."""
        size = 1 if isinstance(self.redis, RedisCluster) else STREAMS_PER_READ
        return [streams[k : k + size] for k in range(0, len(streams), size)]

    def _recovery_window(self, streams: list[str]) -> list[str]:
        """The streams this recovery pass re-claims stale entries of: all of them, or
        ``RECOVER_STREAMS_PER_PASS`` in turn where there are more (XAUTOCLAIM takes one
        stream, and a dead consumer's entries wait ``min_idle_ms`` anyway)."""
        if len(streams) <= RECOVER_STREAMS_PER_PASS:
            return streams
        start = self._recover_at % len(streams)
        self._recover_at = start + RECOVER_STREAMS_PER_PASS
        return (streams + streams)[start : start + RECOVER_STREAMS_PER_PASS]

    async def drain(self, max_passes: int = 1000) -> int:
        """Persist until every stream is empty (tests, reconciliation, shutdown)."""
        total = 0
        for _ in range(max_passes):
            handled = await self.run_once()
            total += handled
            if handled == 0:
                return total
        return total

    async def run_forever(
        self, idle_sleep: float = 0.05, max_idle_sleep: float = 0.4, recover_every: float = 5.0
    ) -> None:
        """Pass after pass. Idle, the pause doubles up to ``max_idle_sleep`` (with many
        campaigns a pass is a round trip per node, and the wallet shows unpersisted claims
        anyway); re-claiming, which no grab waits for, runs every ``recover_every`` s."""
        me = asyncio.current_task()
        pause = idle_sleep
        next_recovery = 0.0
        # Checked each pass: a library may swallow the CancelledError it was given.
        while me is None or not me.cancelling():
            recover = time.monotonic() >= next_recovery
            if recover:
                next_recovery = time.monotonic() + recover_every
            try:
                handled = await self.run_once(recover=recover)
            except Exception:  # a failed pass must not kill the worker; entries stay pending
                # A cancellation that arrived inside a client library may surface as
                # another exception (redis-py turns some into ConnectionError): honour it.
                if me is not None and me.cancelling():
                    raise asyncio.CancelledError from None
                log.exception("claims pass failed")
                handled = 0
            if handled:
                pause = idle_sleep
            else:
                await asyncio.sleep(pause)
                pause = min(max_idle_sleep, pause * 2)
        raise asyncio.CancelledError
