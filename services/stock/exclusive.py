"""Mutual exclusivity decided atomically: a per-customer marker in Redis.

Two campaigns marked exclusive (``services.campaigns.exclusivity``) may not both count a
customer: holding a coupon of one (a grab) or having joined it excludes the other. The
database check that comes first (participations, vouchers, claims not yet persisted) sees
only what is finished; two requests of one customer arriving together (grab A and grab B,
join A and grab B) both pass it. So every grab or join of a campaign with exclusivity
links also goes through this customer's marker, where the decision is atomic.

**Where the marker lives.** One Redis hash per customer under the customer's own hash
tag, ``{xcl:<customer>}`` (``exclusive.lua`` documents its fields). Exclusivity is a
relation between pairs of campaigns, not a partition: A-B and B-C exclusive does not make
A-C exclusive, and links change while campaigns run, so there is no stable "group" whose
hash tag the campaigns' stock keys could share. The campaigns' keys therefore stay on
their own slots (``{cmp:ID}``), and the customer's marker is on a third one: a grab
cannot check both in one script on Redis Cluster. Hence two phases, each atomic in its
own slot:

1. **Reserve** (the customer's slot): refused with ``exclusive_conflict`` if the customer
   holds, or has a live *lease* on, any campaign exclusive with this one; else a lease on
   this campaign is taken (a random token, expiring after ``LEASE_MS``).
2. **Decide** (the campaign's slot): the grab script or the join, unchanged.
3. **Settle** (the customer's slot): when the customer now takes part, the lease becomes
   a holding (``h:<campaign>``); when the grab or join was refused, the lease is dropped.

Of two exclusive requests in flight, whichever reserves second sees the other's lease and
is refused, so at most one reaches step 2: no interleaving gives a customer both. Two
requests for the *same* campaign each take their own lease (a token each), so one's
refusal never drops the other's.

**Crash and retry.** A process that dies (or is cancelled, or loses its Redis connection)
between reserve and settle leaves its lease; the lease expires after ``LEASE_MS`` and the
customer is refused exclusive campaigns only until then (fail-safe: a false refusal, never
a double). An outcome that is not known (a Redis timeout: the script may have run) also
keeps the lease. Once a lease expired, what it guarded is visible to the database check
(the grab's claim is in the customer's recent claims at once and in the vouchers table
after persistence; a join's participation row committed before settling). A replayed
grab (``Idempotency-Key``) is answered from its record before reaching this module; a
repeated join returns the existing participation first; either way the marker is not
touched twice.

**Redis loss.** The markers hold only what the database also knows once persisted, so
they are an accelerator of the database check, not its replacement; reconciliation
(``services.stock.reconcile``) rebuilds the holdings of every live exclusive campaign
from participations and vouchers all the same. Unwritten holdings expire after
``MARK_TTL_MS`` without activity; the database check covers older history.

Campaigns without exclusivity links never touch the marker: their grabs cost nothing more.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from services.core import AnyRedis, call_script, errors, run_to_end, text

#: How long a reservation guards an unsettled grab or join: longer than any grab or join
#: takes (an on-demand stock load and a database transaction included).
LEASE_MS = 120_000
#: A customer's marker is dropped after this long without a write (the database check
#: covers older history).
MARK_TTL_MS = 30 * 24 * 3600 * 1000


@dataclass(frozen=True)
class Lease:
    customer_id: int
    campaign_id: int
    token: str


class ExclusiveMarks:
    """The customers' exclusivity markers. One per process, holding its registered script."""

    def __init__(self, redis: AnyRedis) -> None:
        self.redis = redis
        self._script = redis.register_script((Path(__file__).parent / "exclusive.lua").read_text())

    @staticmethod
    def key(customer_id: int) -> str:
        return f"{{xcl:{customer_id}}}"

    async def reserve(self, customer_id: int, campaign_id: int, exclusive_with: Iterable[int]) -> Lease:
        """Take a lease on ``campaign_id`` for the customer, or raise ``exclusive_conflict``
        naming the exclusive campaigns the customer holds or has in flight. Precondition:
        ``exclusive_with`` is the campaign's current exclusivity set (non-empty)."""
        lease = Lease(customer_id, campaign_id, secrets.token_hex(8))
        reply = await call_script(
            self._script,
            keys=[self.key(customer_id)],
            args=["reserve", campaign_id, lease.token, LEASE_MS, MARK_TTL_MS, *sorted(exclusive_with)],
        )
        parts = [text(p) for p in reply]
        if parts[0] == "conflict":
            raise errors.ExclusiveConflict(details={"campaign_ids": sorted(int(p) for p in parts[1:])})
        return lease

    async def settle(self, lease: Lease, *, took_part: bool) -> None:
        """End a lease: the customer now takes part in its campaign, or not."""
        await call_script(
            self._script,
            keys=[self.key(lease.customer_id)],
            args=["settle", lease.campaign_id, lease.token, "1" if took_part else "0", MARK_TTL_MS],
        )

    @asynccontextmanager
    async def taking_part(
        self, customer_id: int, campaign_id: int, exclusive_with: Iterable[int]
    ) -> AsyncIterator[Lease]:
        """Reserve, run the body (the grab or join), settle. The body returning means the
        customer takes part; a refusal (an AppError below 500) means not, except
        ``coupon_limit_reached``, which says the customer already holds the coupon. Any
        other failure leaves the lease to expire: the outcome is not known."""
        lease = await self.reserve(customer_id, campaign_id, exclusive_with)
        async with self.settling(lease) as held:
            yield held

    @asynccontextmanager
    async def settling(self, lease: Lease) -> AsyncIterator[Lease]:
        """Run the body (the grab or join) under a reserved lease, then settle it as
        ``taking_part`` does."""
        try:
            yield lease
        except errors.CouponLimitReached:
            await run_to_end(self.settle(lease, took_part=True))
            raise
        except errors.AppError as exc:
            if exc.status < 500:
                await run_to_end(self.settle(lease, took_part=False))
            raise
        await run_to_end(self.settle(lease, took_part=True))

    async def held(self, customer_id: int) -> set[int]:
        """The campaigns the marker says the customer takes part in (tests, diagnostics)."""
        fields = await self.redis.hkeys(self.key(customer_id))
        return {int(f[2:]) for f in map(text, fields) if f.startswith("h:")}

    async def hold(self, campaign_id: int, customer_ids: Iterable[int]) -> int:
        """Record that these customers take part in the campaign (rebuilding from the
        database). Additive: a holding is never removed here. Returns how many."""
        ids = sorted(set(customer_ids))
        for start in range(0, len(ids), 500):
            # Not a transaction: the markers are on many slots; each write stands alone.
            async with self.redis.pipeline(transaction=False) as pipe:
                for customer_id in ids[start : start + 500]:
                    pipe.hset(self.key(customer_id), f"h:{campaign_id}", "1")
                    pipe.pexpire(self.key(customer_id), MARK_TTL_MS)
                await pipe.execute()
        return len(ids)
