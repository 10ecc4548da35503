"""Group buy (拼团): a customer opens a group in a ``group_buy`` campaign, others join it
by id, and when it reaches its size every member is rewarded, once.

Deciding. Every action is one Lua script in the campaign's Redis slot (all its keys carry
the campaign's hash tag, ``GroupKeys``): opening (``group_open.lua``: at most
``max_open_per_customer`` open groups per customer), joining (``group_join.lua``: never
more members than the size, never the same customer twice, nothing after the expiry) and
closing an expired group (``group_expire.lua``: failed, or filled with virtual members when
the campaign says ``virtual_fill``). The script appends its decision to the campaign's
group stream in the same step; the join that fills a group says so in its entry, naming
every member. A group's id comes from a Redis counter (``GROUP_SEQ``) before the script.

Persisting. ``GroupWorker`` reads the streams (consumer group, re-claiming what a dead
consumer left, like the claims worker) and writes each decision in its own transaction.
Rows are unique by what a decision names (the group's id; a member's place in its group,
and a customer once per group), so a decision written twice is a no-op. A fill moves the
group from ``open`` to ``filled`` with a compare-and-set and, in that transaction,
grants each real member's reward (points: ledger ref ``group:<group>:<customer>``;
coupons: pending RewardGrant rows, ref ``group:<group>:<customer>:<coupon>``, issued after
the commit through the grab gate's stock and budget, ``services.journey.RewardIssuer``)
and queues each member's ``group_result`` notification (key ``group:<group>:<customer>``):
exactly once however often the entry is read. A failed group notifies its members; an
open group reserves nothing but its place under its members' open-group limit, which
closing gives back in the script.

Reconciling. A campaign's Redis state is rebuilt from the database (``load``) when the
"loaded" marker is missing (a script answers ``not_loaded``), or on demand
(``reconcile``: drain the streams first, then rebuild) after a Redis loss.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from redis import exceptions as redis_errors
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q, Subquery
from tortoise.functions import Max
from tortoise.transactions import in_transaction

from models.campaigns import Campaign
from models.customers import Customer
from models.group_buy import GroupBuy, GroupMember
from models.journey import RewardGrant
from services.campaigns import CampaignSnapshot
from services.core import AnyRedis, call_script, campaign_tag, column, errors, run_to_end, text
from services.journey import Journey, join_refusal, points, visible_snapshot
from services.notify import outbox as notify_outbox

log = logging.getLogger("wxcampaign.group_buy")

CAMPAIGN_TYPE = "group_buy"
#: The group streams the worker reads (one per campaign).
GROUP_STREAMS = "forms:group:streams"
#: Where group ids come from (raised to the database's largest by ``load``).
GROUP_SEQ = "forms:group:seq"
CONSUMER_GROUP = "persist"
#: How long a closed group's state stays in Redis (its page reads the database after).
CLOSED_KEEP_SECONDS = 3 * 24 * 3600
#: How long a process waits for another rebuilding a campaign's state, at most.
LOAD_WAIT_SECONDS = 5.0
#: Open groups listed for a campaign's page, at most.
JOINABLE_LIMIT = 50
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_RAISE_SEQ = (
    "local n = tonumber(redis.call('get', KEYS[1]) or '0') "
    "if n < tonumber(ARGV[1]) then redis.call('set', KEYS[1], ARGV[1]) end return 0"
)
_REFUSALS: dict[str, type[errors.AppError]] = {
    "group_full": errors.GroupFull,
    "already_in_group": errors.AlreadyInGroup,
    "group_expired": errors.GroupExpired,
    "group_limit_reached": errors.GroupLimitReached,
}


@dataclass(frozen=True)
class GroupKeys:
    """A group buy campaign's keys, all in the campaign's slot."""

    campaign_id: int

    @property
    def tag(self) -> str:
        return campaign_tag(self.campaign_id)

    def group(self, group_id: int) -> str:
        return f"{self.tag}:grp:{group_id}"

    def members(self, group_id: int) -> str:
        return f"{self.tag}:grp:{group_id}:m"

    @property
    def mine(self) -> str:
        """customer -> how many open groups of the campaign they are in."""
        return f"{self.tag}:grp:mine"

    @property
    def open(self) -> str:
        """The open groups, scored by expiry (ms)."""
        return f"{self.tag}:grp:open"

    @property
    def stream(self) -> str:
        return f"{self.tag}:grp:log"

    @property
    def loaded(self) -> str:
        return f"{self.tag}:grp:loaded"

    @property
    def lock(self) -> str:
        return f"{self.tag}:grp:loading"

    def script_keys(self, group_id: int) -> list[str]:
        return [self.group(group_id), self.members(group_id), self.mine, self.open, self.stream, self.loaded]


def campaign_key(group_id: int) -> str:
    """Which campaign a group belongs to (outside any campaign's slot: looked up first)."""
    return f"forms:group:{group_id}:cmp"


@dataclass(frozen=True)
class GroupRules:
    size: int
    group_hours: int
    max_open_per_customer: int
    virtual_fill: bool
    reward: Literal["coupons", "points"]
    reward_points: int

    @classmethod
    def of(cls, snap: CampaignSnapshot) -> GroupRules:
        """Precondition: ``snap`` is a group_buy (its spec has a group block)."""
        spec: Mapping[str, Any] = snap.group_spec or {}
        return cls(
            size=int(spec["size"]), group_hours=int(spec["group_hours"]),
            max_open_per_customer=int(spec.get("max_open_per_customer", 1)),
            virtual_fill=bool(spec.get("virtual_fill", False)),
            reward="points" if spec.get("reward") == "points" else "coupons",
            reward_points=int(spec.get("reward_points") or 0),
        )  # fmt: skip


@dataclass(frozen=True)
class Member:
    position: int
    customer_id: int | None  # None: a virtual member
    nickname: str | None = None

    @property
    def virtual(self) -> bool:
        return self.customer_id is None


@dataclass(frozen=True)
class GroupView:
    id: int
    campaign_id: int
    size: int
    status: str
    leader_id: int
    opened_at: datetime
    expires_at: datetime
    members: list[Member] = field(default_factory=list)

    @property
    def real_members(self) -> int:
        return sum(1 for m in self.members if not m.virtual)

    @property
    def virtual_members(self) -> int:
        return sum(1 for m in self.members if m.virtual)

    def seconds_left(self, now: datetime) -> int:
        if self.status != "open":
            return 0
        return max(0, int((self.expires_at - now).total_seconds()))

    def has(self, customer_id: int) -> bool:
        return any(m.customer_id == customer_id for m in self.members)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _at(ms: int | str) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def _members_of(listed: str) -> list[tuple[int, int]]:
    """``customer:position,...`` as the scripts list them: (customer, position) pairs."""
    out = []
    for part in filter(None, listed.split(",")):
        customer, position = part.split(":")
        out.append((int(customer), int(position)))
    return out


class GroupBuys:
    """Per-process runtime of group buys."""

    def __init__(self, redis: AnyRedis, journey: Journey) -> None:
        self.redis = redis
        self.journey = journey
        here = Path(__file__).parent
        self._open = redis.register_script((here / "group_open.lua").read_text())
        self._join = redis.register_script((here / "group_join.lua").read_text())
        self._expire = redis.register_script((here / "group_expire.lua").read_text())

    # --- campaign checks --------------------------------------------------------------

    async def _snapshot(self, campaign_id: int, now: datetime) -> CampaignSnapshot:
        snap = await visible_snapshot(self.journey, campaign_id, now)
        if snap.type != CAMPAIGN_TYPE or snap.group_spec is None:
            raise errors.NotFound(f"campaign {campaign_id} is not a group buy")
        return snap

    async def _check(self, snap: CampaignSnapshot, customer_id: int, now: datetime) -> None:
        """Running, offered in the mini program, the customer in its audience, no
        exclusive conflict, budget left: as joining a campaign checks."""
        refusal = await join_refusal(self.journey, snap, customer_id, now, check_cap=False)
        if refusal is not None:
            raise refusal

    async def campaign_of(self, group_id: int) -> int:
        cached = await self.redis.get(campaign_key(group_id))
        if cached is not None:
            return int(text(cached))
        row = await GroupBuy.get_or_none(id=group_id).only("id", "campaign_id")
        if row is None:
            raise errors.NotFound(f"no group {group_id}")
        return row.campaign_id

    # --- actions ----------------------------------------------------------------------

    async def _run(self, script: Any, campaign_id: int, keys: list[str], args: list[Any]) -> list[str]:
        """Run a decision script, rebuilding the campaign's state first when Redis lost it."""
        deadline = time.monotonic() + LOAD_WAIT_SECONDS
        while True:
            reply = [text(p) for p in await call_script(script, keys, args)]
            if reply[0] != "not_loaded":
                return reply
            if await self.load(campaign_id) is None:
                if time.monotonic() > deadline:
                    raise errors.RedisUnavailable("the group buy's state is being rebuilt; retry")
                await asyncio.sleep(0.02)

    async def open(self, *, campaign_id: int, customer_id: int, now: datetime) -> GroupView:
        """Open a group led by the customer. Raises what joining a campaign raises,
        ``GroupLimitReached``, or 404 for a campaign that is not a group buy."""
        snap = await self._snapshot(campaign_id, now)
        await self._check(snap, customer_id, now)
        rules = GroupRules.of(snap)
        expires = min(now + timedelta(hours=rules.group_hours), snap.ends_at)
        group_id = int(await self.redis.incr(GROUP_SEQ))
        keys = GroupKeys(campaign_id)
        reply = await self._run(
            self._open, campaign_id, keys.script_keys(group_id),
            [group_id, customer_id, rules.size, _ms(expires), _ms(now), rules.max_open_per_customer],
        )  # fmt: skip
        if reply[0] == "group_limit_reached":
            raise errors.GroupLimitReached(details={"max_open_per_customer": rules.max_open_per_customer})
        if reply[0] != "ok":  # "dup": the counter was behind the database (a Redis loss)
            await self._raise_seq()
            raise errors.RedisUnavailable("the group counter was rebuilt; retry")
        ttl = int((expires - now).total_seconds()) + CLOSED_KEEP_SECONDS
        await self.redis.set(campaign_key(group_id), campaign_id, ex=max(1, ttl))
        return GroupView(
            id=group_id, campaign_id=campaign_id, size=rules.size, status="open", leader_id=customer_id,
            opened_at=_at(_ms(now)), expires_at=_at(_ms(expires)), members=[Member(1, customer_id)],
        )  # fmt: skip

    async def join(self, *, group_id: int, customer_id: int, now: datetime, screen: Any = None) -> tuple[int, bool]:
        """Join a group: (the caller's position, whether this join filled the group).
        ``screen``, when given, is awaited after the campaign checks and before the
        decision (the risk gate). Raises the four group errors, or what joining a
        campaign raises."""
        campaign_id = await self.campaign_of(group_id)
        snap = await self._snapshot(campaign_id, now)
        await self._check(snap, customer_id, now)
        if screen is not None:
            await screen()
        rules = GroupRules.of(snap)
        reply = await self._run(
            self._join, campaign_id, GroupKeys(campaign_id).script_keys(group_id),
            [group_id, customer_id, _ms(now), rules.max_open_per_customer, CLOSED_KEEP_SECONDS],
        )  # fmt: skip
        if reply[0] == "ok":
            return int(reply[1]), reply[2] == "1"
        if reply[0] == "no_group":
            # Closed long ago (gone from Redis), or never: the database knows.
            row = await GroupBuy.get_or_none(id=group_id)
            if row is None:
                raise errors.NotFound(f"no group {group_id}")
            if await GroupMember.filter(group_id=group_id, customer_id=customer_id).exists():
                raise errors.AlreadyInGroup()
            raise errors.GroupFull() if row.status == "filled" else errors.GroupExpired()
        refusal = _REFUSALS[reply[0]]
        if refusal is errors.GroupLimitReached:
            raise refusal(details={"max_open_per_customer": rules.max_open_per_customer})
        raise refusal()

    # --- reads ------------------------------------------------------------------------

    async def view(self, group_id: int) -> GroupView:
        """A group as Redis has it (decided), else as the database has it; 404 if neither."""
        campaign_id = await self.campaign_of(group_id)
        keys = GroupKeys(campaign_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.group(group_id))
            pipe.hgetall(keys.members(group_id))
            raw_group, raw_members = await pipe.execute()
        if raw_group:
            g = {text(k): text(v) for k, v in raw_group.items()}
            found = sorted((int(text(p)), int(text(c))) for c, p in raw_members.items())
            members = [Member(p, c) for p, c in found]
            members += [Member(len(members) + i + 1, None) for i in range(int(g.get("v", "0")))]
            view = GroupView(
                id=group_id, campaign_id=campaign_id, size=int(g["size"]), status=g["status"],
                leader_id=int(g["leader"]), opened_at=_at(g["at"]), expires_at=_at(g["exp"]), members=members,
            )  # fmt: skip
        else:
            row = await GroupBuy.get_or_none(id=group_id)
            if row is None:
                raise errors.NotFound(f"no group {group_id}")
            rows = await GroupMember.filter(group_id=group_id).order_by("position")
            view = GroupView(
                id=row.id, campaign_id=row.campaign_id, size=row.size, status=row.status, leader_id=row.leader_id,
                opened_at=row.opened_at, expires_at=row.expires_at,
                members=[Member(m.position, None if m.virtual else m.customer_id) for m in rows],
            )  # fmt: skip
        return await _with_nicknames(view)

    async def joinable(self, *, campaign_id: int, customer_id: int, now: datetime) -> list[GroupView]:
        """Open groups of the campaign the customer could join now (not full, not theirs,
        not expired), soonest to expire first."""
        await self._snapshot(campaign_id, now)
        keys = GroupKeys(campaign_id)
        if not await self.redis.exists(keys.loaded):
            await self.load(campaign_id)
        ids = [int(text(g)) for g in await self.redis.zrangebyscore(keys.open, _ms(now) + 1, "+inf", 0, JOINABLE_LIMIT)]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for group_id in ids:
                pipe.hgetall(keys.group(group_id))
                pipe.hgetall(keys.members(group_id))
            replies = await pipe.execute()
        out = []
        for i, group_id in enumerate(ids):
            g = {text(k): text(v) for k, v in replies[2 * i].items()}
            found = sorted((int(text(p)), int(text(c))) for c, p in replies[2 * i + 1].items())
            if not g or g.get("status") != "open" or any(c == customer_id for _, c in found):
                continue
            out.append(
                GroupView(
                    id=group_id, campaign_id=campaign_id, size=int(g["size"]), status="open",
                    leader_id=int(g["leader"]), opened_at=_at(g["at"]), expires_at=_at(g["exp"]),
                    members=[Member(p, c) for p, c in found],
                )
            )  # fmt: skip
        return [await _with_nicknames(v) for v in out]

    # --- expiry -------------------------------------------------------------------------

    async def expire_due(self, now: datetime | None = None) -> dict[str, int]:
        """Close every open group past its expiry, in every group buy campaign that may
        hold one: ``{"failed": n, "virtual": n}``. Idempotent (the script closes a group
        once); safe in several processes at once.

        Which campaigns: the active and paused ones, and an ended one only while the
        database still holds an open group of it. Every ended group buy was looked at on
        every pass before (two Redis calls each, and a reload after a Redis restart): work
        that grew with the product's history. A group expires by its campaign's end at the
        latest, so an ended campaign without an open group has nothing left to close; a
        group opened just before the end reaches the database through the stream and is
        found on the pass after."""
        now = now or datetime.now(UTC)
        done = {"failed": 0, "virtual": 0}
        still_open = GroupBuy.filter(status="open").values("campaign_id")
        campaigns = await Campaign.filter(
            Q(status__in=("active", "paused")) | Q(status="ended", id__in=Subquery(still_open)), type=CAMPAIGN_TYPE
        ).values_list("id", "group_spec")
        for campaign_id, spec in campaigns:
            keys = GroupKeys(campaign_id)
            if not await self.redis.exists(keys.loaded):
                await self.load(campaign_id)
            virtual = "1" if (spec or {}).get("virtual_fill") else "0"
            due = [int(text(g)) for g in await self.redis.zrangebyscore(keys.open, "-inf", _ms(now))]
            for group_id in due:
                reply = [
                    text(p)
                    for p in await call_script(
                        self._expire, keys.script_keys(group_id), [group_id, _ms(now), virtual, CLOSED_KEEP_SECONDS]
                    )
                ]
                if reply[0] in done:
                    done[reply[0]] += 1
                elif reply[0] == "gone":  # the zset outlived the group: drop it
                    await self.redis.zrem(keys.open, group_id)
        return done

    # --- reconciling ----------------------------------------------------------------------

    async def _raise_seq(self) -> None:
        top = (await GroupBuy.annotate(top=Max("id")).first().values_list("top", flat=True)) or 0
        await self.redis.eval(_RAISE_SEQ, 1, GROUP_SEQ, int(top))  # type: ignore[arg-type]

    async def load(self, campaign_id: int, *, force: bool = False) -> int | None:
        """Rebuild the campaign's group state in Redis from the database under a lock:
        its open groups (members, the per-customer open counts, the expiry index), and
        the group counter above every id the database holds. Returns the open groups
        loaded, or None when another process holds the lock. Precondition for ``force``:
        the campaign's stream is drained (decisions not in the database would be lost)."""
        keys = GroupKeys(campaign_id)
        token = secrets.token_hex(8)
        if not await self.redis.set(keys.lock, token, nx=True, px=30_000):
            return None
        try:
            if not force and await self.redis.exists(keys.loaded):
                return int(await self.redis.zcard(keys.open))
            await self._raise_seq()
            stale = [int(text(g)) for g in await self.redis.zrange(keys.open, 0, -1)]
            groups = await GroupBuy.filter(campaign_id=campaign_id, status="open")
            members: dict[int, list[GroupMember]] = {}
            for m in await GroupMember.filter(group_id__in=[g.id for g in groups]).order_by("position"):
                members.setdefault(m.group_id, []).append(m)
            gone = {g for g in stale} | {g.id for g in groups}
            await self.redis.delete(keys.loaded, keys.mine, keys.open)
            for group_id in gone:
                await self.redis.delete(keys.group(group_id), keys.members(group_id))
            mine: dict[int, int] = {}
            for g in groups:
                real = [m for m in members.get(g.id, []) if m.customer_id is not None]
                await self.redis.hset(
                    keys.group(g.id),
                    mapping={
                        "size": g.size, "exp": _ms(g.expires_at), "status": "open", "leader": g.leader_id,
                        "n": len(real), "v": 0, "at": _ms(g.opened_at),
                    },
                )  # fmt: skip
                if real:
                    await self.redis.hset(keys.members(g.id), mapping={m.customer_id: m.position for m in real})
                await self.redis.zadd(keys.open, {str(g.id): _ms(g.expires_at)})
                for m in real:
                    assert m.customer_id is not None
                    mine[m.customer_id] = mine.get(m.customer_id, 0) + 1
            if mine:
                await self.redis.hset(keys.mine, mapping=mine)  # type: ignore[arg-type]
            await self.redis.sadd(GROUP_STREAMS, keys.stream)
            await self.redis.set(keys.loaded, "1")
            return len(groups)
        finally:
            await self.redis.eval(_RELEASE, 1, keys.lock, token)

    async def reconcile(self, campaign_id: int) -> int:
        """After a Redis loss or a crash: write every decision still in the streams, then
        rebuild the campaign's state from the database (waits for a rebuild in progress).
        Returns the open groups loaded."""
        await GroupWorker(self.redis, self.journey, min_idle_ms=0).drain()
        for _ in range(int(LOAD_WAIT_SECONDS / 0.02)):
            count = await self.load(campaign_id, force=True)
            if count is not None:
                return count
            await asyncio.sleep(0.02)
        raise errors.RedisUnavailable("the group buy's state is being rebuilt; retry")


async def _with_nicknames(view: GroupView) -> GroupView:
    ids = [m.customer_id for m in view.members if m.customer_id is not None]
    names = dict(await Customer.filter(id__in=ids).values_list("id", "nickname")) if ids else {}
    members = [Member(m.position, m.customer_id, names.get(m.customer_id)) for m in view.members]
    return GroupView(**{**view.__dict__, "members": members})


async def summary(campaign_id: int) -> dict[str, int]:
    """What the database holds of a campaign's groups: groups per status, those filled
    with virtual members, and real and virtual members (virtual ones shown as such).
    404 for no such campaign."""
    if not await Campaign.filter(id=campaign_id).exists():
        raise errors.NotFound(f"no campaign {campaign_id}")
    out = {"open": 0, "filled": 0, "failed": 0, "filled_with_virtual": 0, "real_members": 0, "virtual_members": 0}
    for status, virtual in await GroupBuy.filter(campaign_id=campaign_id).values_list("status", "virtual_members"):
        out[status] = out.get(status, 0) + 1
        if virtual:
            out["filled_with_virtual"] += 1
    group_ids = await column(GroupBuy.filter(campaign_id=campaign_id), "id")
    out["real_members"] = await GroupMember.filter(group_id__in=group_ids, virtual=False).count()
    out["virtual_members"] = await GroupMember.filter(group_id__in=group_ids, virtual=True).count()
    return out


# --- persisting -----------------------------------------------------------------------------


def _campaign_of_stream(stream: str) -> int:
    return int(stream[len("{cmp:") : stream.index("}")])


@dataclass(frozen=True)
class Decision:
    entry_id: str
    campaign_id: int
    kind: str  # open, join, virtual, fail
    fields: dict[str, str]

    @property
    def group_id(self) -> int:
        return int(self.fields["g"])


async def _ensure_group(d: Decision) -> None:
    """The group's row (every entry carries what it needs: entries may be written out of
    order when a dead consumer's are re-claimed)."""
    f = d.fields
    if await GroupBuy.filter(id=d.group_id).exists():
        return
    try:
        async with in_transaction():
            await GroupBuy.create(
                id=d.group_id, campaign_id=d.campaign_id, leader_id=int(f["leader"]), size=int(f["size"]),
                opened_at=_at(f["op"]), expires_at=_at(f["exp"]),
            )  # fmt: skip
    except IntegrityError:
        pass  # written concurrently


async def _ensure_member(group_id: int, customer_id: int | None, position: int, at: datetime) -> None:
    if customer_id is not None:
        if await GroupMember.filter(group_id=group_id, customer_id=customer_id).exists():
            return
    elif await GroupMember.filter(group_id=group_id, position=position).exists():
        return
    try:
        async with in_transaction():
            await GroupMember.create(
                group_id=group_id, customer_id=customer_id, position=position, virtual=customer_id is None, joined_at=at
            )
    except IntegrityError:
        pass  # written concurrently


class GroupWorker:
    """Moves group decisions from every campaign's stream into the database."""

    def __init__(self, redis: AnyRedis, journey: Journey, *, batch: int = 200, min_idle_ms: int = 30_000) -> None:
        self.redis = redis
        self.journey = journey
        self.batch = batch
        self.min_idle_ms = min_idle_ms
        self.name = f"groups-{secrets.token_hex(4)}"
        self._groups: set[str] = set()

    async def _ensure_group(self, stream: str) -> None:
        if stream in self._groups:
            return
        try:
            await self.redis.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
        except redis_errors.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(stream)

    async def run_once(self, *, recover: bool = True) -> int:
        """One pass over every stream (re-claiming stale entries with ``recover``):
        persist each decision, oldest first, then acknowledge and delete. Returns the
        entries handled."""
        handled = 0
        for stream in sorted(text(s) for s in await self.redis.smembers(GROUP_STREAMS)):
            await self._ensure_group(stream)
            raw: dict[str, Any] = {}
            if recover:
                claimed: Any = await self.redis.xautoclaim(
                    stream, CONSUMER_GROUP, self.name, min_idle_time=self.min_idle_ms, start_id="0-0", count=self.batch
                )
                for entry_id, fields in claimed[1]:
                    raw[text(entry_id)] = fields
                mine: Any = await self.redis.xreadgroup(CONSUMER_GROUP, self.name, {stream: "0"}, count=self.batch)
                for _, items in mine or []:
                    for entry_id, fields in items:
                        raw[text(entry_id)] = fields
            new: Any = await self.redis.xreadgroup(CONSUMER_GROUP, self.name, {stream: ">"}, count=self.batch)
            for _, items in new or []:
                for entry_id, fields in items:
                    raw[text(entry_id)] = fields
            if not raw:
                continue
            campaign_id = _campaign_of_stream(stream)
            ordered = sorted(raw, key=lambda e: tuple(int(p) for p in e.split("-")))
            decisions = []
            for entry_id in ordered:
                if raw[entry_id]:  # a deleted entry still pending shows up empty
                    fields = {text(k): text(v) for k, v in raw[entry_id].items()}
                    decisions.append(Decision(entry_id, campaign_id, fields["k"], fields))
            # Cancelled here, the batch still commits; it just stays unacknowledged.
            await run_to_end(self.persist(decisions))
            await self.redis.xack(stream, CONSUMER_GROUP, *ordered)
            await self.redis.xdel(stream, *ordered)
            handled += len(ordered)
        return handled

    async def persist(self, decisions: list[Decision]) -> None:
        """Write these decisions (idempotent: see the module docstring), then issue the
        coupon grants the fills decided."""
        grant_ids: list[int] = []
        for d in decisions:
            grant_ids += await self._persist_one(d)
        if grant_ids:
            await self.journey.rewards.issue_pending(grant_ids)

    async def _persist_one(self, d: Decision) -> list[int]:
        f = d.fields
        await _ensure_group(d)
        at = _at(f["at"])
        if d.kind in ("open", "join"):
            await _ensure_member(d.group_id, int(f["c"]), int(f["pos"]), at)
        listed = _members_of(f.get("ms", ""))
        for customer_id, position in listed:
            await _ensure_member(d.group_id, customer_id, position, at)
        if d.kind == "join" and f.get("full") == "1":
            return await self._close(d, "filled", [c for c, _ in listed], virtual=0)
        if d.kind == "virtual":
            virtual = int(f["size"]) - len(listed)
            for i in range(virtual):
                await _ensure_member(d.group_id, None, len(listed) + i + 1, at)
            return await self._close(d, "filled", [c for c, _ in listed], virtual=virtual)
        if d.kind == "fail":
            await self._close(d, "failed", [c for c, _ in listed], virtual=0)
        return []

    async def _close(self, d: Decision, status: str, customer_ids: list[int], *, virtual: int) -> list[int]:
        """Move the group from open to ``status`` (a compare-and-set: once) and, in the
        same transaction, reward (filled) and notify its real members."""
        snap = await self.journey.catalog.get(d.campaign_id)
        grant_ids: list[int] = []
        async with in_transaction():
            won = await GroupBuy.filter(id=d.group_id, status="open").update(
                status=status, virtual_members=virtual, closed_at=_at(d.fields["at"])
            )
            if not won:
                return []
            for customer_id in customer_ids:
                if status == "filled" and snap is not None:
                    grant_ids += await _reward(snap, d.group_id, customer_id)
                    await GroupMember.filter(group_id=d.group_id, customer_id=customer_id).update(rewarded=True)
                await notify_outbox.enqueue(
                    f"group:{d.group_id}:{customer_id}", "group_result", customer_id,
                    {
                        "campaign_id": d.campaign_id, "group_id": d.group_id,
                        "campaign_title": notify_outbox.title_of(snap.content, snap.default_language) if snap else "",
                        "result": "拼团成功" if status == "filled" else "拼团未成功",
                        "closed_at": _at(d.fields["at"]).isoformat(),
                    },
                )  # fmt: skip
        return grant_ids

    async def drain(self, max_passes: int = 1000) -> int:
        """Persist until every stream is empty (tests, reconciling, shutdown)."""
        total = 0
        for _ in range(max_passes):
            handled = await self.run_once()
            total += handled
            if handled == 0:
                return total
        return total

    async def run_forever(
        self, idle_sleep: float = 0.05, max_idle_sleep: float = 0.5, recover_every: float = 5.0
    ) -> None:
        """Pass after pass (the pause doubles while idle); re-claiming every ``recover_every`` s."""
        me = asyncio.current_task()
        pause = idle_sleep
        next_recovery = 0.0
        while me is None or not me.cancelling():
            recover = time.monotonic() >= next_recovery
            if recover:
                next_recovery = time.monotonic() + recover_every
            try:
                handled = await self.run_once(recover=recover)
            except Exception:  # a failed pass must not kill the worker; entries stay pending
                if me is not None and me.cancelling():
                    raise asyncio.CancelledError from None
                log.exception("group decisions pass failed")
                handled = 0
            if handled:
                pause = idle_sleep
            else:
                await asyncio.sleep(pause)
                pause = min(max_idle_sleep, pause * 2)
        raise asyncio.CancelledError


async def _reward(snap: CampaignSnapshot, group_id: int, customer_id: int) -> list[int]:
    """One member's reward: points into the ledger, or a pending grant per coupon (issued
    after the commit). Unique refs make a second call a no-op. Precondition: inside the
    transaction that closed the group as filled."""
    rules = GroupRules.of(snap)
    ref = f"group:{group_id}:{customer_id}"
    if rules.reward == "points":
        await points.add(customer_id, rules.reward_points, "group_reward", ref, campaign_id=snap.id)
        return []
    grant_ids = []
    for coupon in snap.coupons:
        try:
            async with in_transaction():
                grant = await RewardGrant.create(
                    participation_id=None, ref=f"{ref}:{coupon.id}", customer_id=customer_id, campaign_id=snap.id,
                    template_id=coupon.id, trigger="group",
                )  # fmt: skip
            grant_ids.append(grant.id)
        except IntegrityError:
            pass  # already owed
    return grant_ids
