"""Erasing a customer's personal data (PIPL / GDPR), keeping what finance and the audit
need under an id that no longer names anybody.

One database transaction: the customers row is anonymized (openid replaced by a
tombstone ``erased:<random>`` that no WeChat login can produce, so the same WeChat
account logging in again is a new customer; every personal column nulled; ``erased_at``
set), the tables ``catalog.HOLDINGS`` marks ``delete`` lose the customer's rows,
outstanding vouchers are voided, pending reward grants refused, personal values in audit
snapshots about the customer redacted, and the erasure itself audited. Then Redis: the
erasure is published to every process (their access-token gate, services/privacy/gate.py)
and the customer's keys go (services/privacy/redis_data.py).

Voided vouchers do not give their stock or budget back: the claim was spent when it was
issued (reconciliation counts every voucher row, void ones included), and an erasure is
no reason to re-offer a coupon. docs/data-rights.md says so.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise.transactions import in_transaction

from models.audit import AuditEntry
from models.customers import Customer
from models.journey import RewardGrant
from models.vouchers import Voucher
from services.core import Actor, AnyRedis, column, errors, random_token
from services.core import audit as audit_log
from services.privacy import gate, redis_data
from services.privacy.catalog import HOLDINGS, PERSONAL_AUDIT_KEYS

log = logging.getLogger("wxcampaign.privacy")

TOMBSTONE_PREFIX = "erased:"
REDACTED = "[erased]"
#: The personal columns of the customers row, and what they become.
_CLEARED: dict[str, Any] = {
    "unionid": None, "session_key": None, "nickname": None, "interest_tags": [], "city": None,
    "preferred_store_id": None, "phone_number": None, "phone_country_code": None, "phone_bound_at": None,
    "phone_suffix": None, "last_login_at": None, "membership_tier": "standard",
}  # fmt: skip


async def _erase_in_redis(
    redis: AnyRedis, customer_id: int, token_ttl_seconds: int, erased: gate.ErasedCustomers | None
) -> int:
    """The Redis part, after the commit: publish the erasure to every process's token
    gate, delete the customer's keys. A failure leaves the database erased: it is logged,
    and repeating the erasure (which answers ``customer_erased``) does this part again."""
    if erased is not None:
        erased.add(customer_id)
    try:
        await gate.mark_erased(redis, customer_id, token_ttl_seconds)
        return await redis_data.erase(redis, customer_id)
    except Exception:
        log.error(
            "customer %d: erased in the database, not yet in Redis; repeat the erasure", customer_id, exc_info=True
        )
        raise


@dataclass(frozen=True)
class ErasureReport:
    customer_id: int
    erased_at: datetime
    rows_deleted: dict[str, int] = field(default_factory=dict)
    vouchers_voided: list[int] = field(default_factory=list)
    grants_refused: int = 0
    audit_entries_redacted: int = 0
    redis_keys_deleted: int = 0


def _redact(snapshot: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
    if not snapshot:
        return snapshot, False
    hit = PERSONAL_AUDIT_KEYS & snapshot.keys()
    if not hit:
        return snapshot, False
    return {k: (REDACTED if k in hit else v) for k, v in snapshot.items()}, True


async def erase_customer(
    redis: AnyRedis, customer_id: int, *, actor: Actor, reason: str, token_ttl_seconds: int,
    erased: gate.ErasedCustomers | None = None, now: datetime | None = None,
) -> ErasureReport:  # fmt: skip
    """Erase one customer. ``reason`` is recorded in the audit entry (the customer's own
    request says so); ``erased`` is this process's token gate, updated at once.

    Raises NotFound for no such customer, CustomerErased when already erased (after doing
    the Redis part again: the first erasure may have failed there after its commit).
    """
    at = now or datetime.now(UTC)
    async with in_transaction():
        customer = await Customer.filter(id=customer_id).select_for_update().first()
        if customer is None:
            raise errors.NotFound("no such customer")
        already = customer.erased_at
        if already is None:
            report = await _erase_rows(customer, actor=actor, reason=reason, at=at)
    if already is not None:
        await _erase_in_redis(redis, customer_id, token_ttl_seconds, erased)
        raise errors.CustomerErased(details={"erased_at": already.isoformat()})
    keys = await _erase_in_redis(redis, customer_id, token_ttl_seconds, erased)
    log.info(
        "customer %d erased: %d vouchers voided, %d Redis keys deleted", customer_id, len(report.vouchers_voided), keys
    )
    return dataclasses.replace(report, redis_keys_deleted=keys)


async def _erase_rows(customer: Customer, *, actor: Actor, reason: str, at: datetime) -> ErasureReport:
    """The database part, inside the caller's transaction, the customers row locked."""
    customer_id = customer.id
    before = {"erased": False, "membership_tier": customer.membership_tier}
    await Customer.filter(id=customer_id).update(
        openid=f"{TOMBSTONE_PREFIX}{random_token(32)}", erased_at=at, **_CLEARED
    )
    deleted: dict[str, int] = {}
    for holding in HOLDINGS:
        if holding.erasure == "delete":
            deleted[holding.table] = await holding.model.filter(holding.rows_of(customer_id)).delete()
    outstanding = Voucher.filter(customer_id=customer_id, status="available")
    voided = [int(i) for i in await column(outstanding, "id")]
    if voided:
        await Voucher.filter(id__in=voided, status="available").update(status="void")
    refused = await RewardGrant.filter(customer_id=customer_id, status="pending").update(
        status="refused", refusal="customer_erased"
    )
    redacted = 0
    audit_rows = next(h for h in HOLDINGS if h.model is AuditEntry).rows_of(customer_id)
    for entry in await AuditEntry.filter(audit_rows).select_for_update():
        new_before, hit_before = _redact(entry.before)
        new_after, hit_after = _redact(entry.after)
        if hit_before or hit_after:
            await AuditEntry.filter(id=entry.id).update(before=new_before, after=new_after)
            redacted += 1
    after = {
        "erased": True, "membership_tier": "standard", "reason": reason, "vouchers_voided": voided,
        "grants_refused": refused, "rows_deleted": {k: v for k, v in deleted.items() if v},
    }  # fmt: skip
    await audit_log.record(actor, "customer.erase", "customer", customer_id, before, after)
    return ErasureReport(
        customer_id=customer_id, erased_at=at, rows_deleted=deleted, vouchers_voided=voided,
        grants_refused=refused, audit_entries_redacted=redacted,
    )  # fmt: skip
