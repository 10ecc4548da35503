"""Redeeming vouchers at the till: the code a customer shows, what staff see when they scan
it, the redemption itself (exactly once), its reversal, and the lists.

Exactly once: the voucher goes from ``available`` to ``used`` by one conditional UPDATE
(compare-and-set) in the transaction that also writes the redemption row and its audit
entry. Of any number of concurrent attempts one updates the row; the others update
nothing and are told when and where it was used. Retries are recognised by the
``Idempotency-Key`` or the ``order_ref`` (each unique per store) and get the first
redemption back, changing nothing.

Never log or put into an error message a voucher code or a scanned payload: lists and
exports show codes masked (``mask_code``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.functions import Count, Sum
from tortoise.transactions import in_transaction

from models.audit import AuditEntry
from models.campaigns import CouponTemplate
from models.customers import Customer
from models.redemptions import Redemption
from models.stores import StaffMember, Store
from models.vouchers import Voucher
from services.core import audit, errors
from services.core.audit import Actor
from services.core.pagination import newest_first
from services.core.redis import AnyRedis
from services.stock.coupon_cache import CouponCache
from services.stock.gate import Stock
from services.wallet import qr, redemption_write
from services.wallet import vouchers as wallet
from services.wallet.redemption_write import VoucherUse, voucher_columns

#: The channel of a store's till: a coupon whose channels leave it out is not for tills.
TILL_CHANNEL = "pos"


def mask_code(code: str) -> str:
    """A voucher code as lists and exports show it: all but the last 4 characters hidden."""
    return "*" * max(0, len(code) - 4) + code[-4:]


@dataclass(frozen=True)
class Till:
    """Who redeems: a staff member at their store (from the staff token)."""

    store_id: int
    staff_id: int
    role: str


@dataclass(frozen=True)
class CodeConfig:
    keyring: qr.Keyring
    ttl: int


# --------------------------------------------------------------------------- the customer's code


@dataclass(frozen=True)
class IssuedCode:
    payload: str
    expires_at: datetime
    refresh_after: int


def refresh_after(ttl: int) -> int:
    """Seconds after which the app should fetch a fresh code: a quarter of the lifetime
    early, so a code being scanned never lapses mid-scan."""
    return max(1, ttl - max(1, ttl // 4))


async def _showable(customer_id: int, claim_id: str, stock: Stock, cache: CouponCache) -> Voucher:
    voucher = await wallet.ensure_persisted(customer_id, claim_id, stock, cache)
    status = wallet.effective_status(voucher.status, voucher.valid_until, datetime.now(UTC))
    if status == "used":
        raise await _already_used(voucher)
    if status == "expired":
        raise errors.VoucherExpired(details={"valid_until": voucher.valid_until.isoformat()})
    if status != "available":
        raise errors.VoucherNotFound("the voucher was withdrawn")
    return voucher


async def qr_code(customer_id: int, claim_id: str, stock: Stock, cache: CouponCache, config: CodeConfig) -> IssuedCode:
    """A fresh signed payload for the customer's own, available voucher."""
    voucher = await _showable(customer_id, claim_id, stock, cache)
    issued = int(time.time())
    payload = qr.mint(config.keyring, voucher.id, issued)
    return IssuedCode(payload, datetime.fromtimestamp(issued + config.ttl, UTC), refresh_after(config.ttl))


async def numeric_code(
    customer_id: int, claim_id: str, stock: Stock, cache: CouponCache, redis: AnyRedis, ttl: int
) -> IssuedCode:
    """A fresh numeric code (for a Code 128 barcode) for the customer's own, available voucher."""
    voucher = await _showable(customer_id, claim_id, stock, cache)
    code, expires = await qr.mint_numeric(redis, voucher.id, ttl)
    return IssuedCode(code, datetime.fromtimestamp(expires, UTC), refresh_after(ttl))


# --------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Coupon:
    """What redeeming needs of a voucher's coupon template (read as values: building the
    whole model costs several times more on the hot path)."""

    id: int
    campaign_id: int
    kind: str
    title: dict[str, str]
    percent_off: int | None
    min_spend: int
    item_name: str | None
    store_ids: list[int] | None
    channels: list[str] | None
    #: The campaign's: whether it runs in every store (else CampaignStore rows say where).
    all_stores: bool


@dataclass
class Scanned:
    voucher: Voucher
    template: Coupon
    #: Whether the campaign's store list names the till's store (read with the voucher).
    store_listed: bool
    #: The clerk's and the till's store's names (read with the voucher, for the answer).
    staff_name: str | None
    store_name: str | None


def _json(field: str, raw: Any) -> Any:
    return CouponTemplate._meta.fields_map[field].to_python_value(raw)


def _scanned(row: dict[str, Any]) -> Scanned:
    """A row of ``redemption_write.read_sql`` as values (pure: it may run on SQLite's
    database thread)."""
    # The public constructor (it converts each value as loading from the database does):
    # tortoise's private ``_init_from_db`` saved 10-20 µs of ~1 ms a redemption, under the
    # 10% a private call must save to stay (issue 13). Read only: never saved.
    voucher = Voucher(**{c: row[c] for c in voucher_columns()})
    coupon = Coupon(
        id=row["template_id"], campaign_id=row["campaign_id"], kind=row["t_kind"],
        title=_json("title", row["t_title"]), percent_off=row["t_percent_off"],
        min_spend=row["t_min_spend"], item_name=row["t_item_name"],
        store_ids=_json("store_ids", row["t_store_ids"]),
        channels=_json("channels", row["t_channels"]), all_stores=bool(row["c_all_stores"]),
    )  # fmt: skip
    return Scanned(voucher, coupon, bool(row["c_store_listed"]), row["n_staff"], row["n_store"])


async def _load(voucher_id: int, till: Till) -> Scanned:
    """The voucher, what its coupon allows at the till's store, and the names the answer shows."""
    row = await redemption_write.read(voucher_id, till.store_id, till.staff_id)
    if row is None:
        raise errors.VoucherNotFound()
    return _scanned(row)


async def _already_used(voucher: Voucher) -> errors.AppError:
    details: dict[str, Any] = {"used_at": voucher.used_at.isoformat() if voucher.used_at else None}
    details["store_id"] = voucher.used_store_id
    store = await Store.get_or_none(id=voucher.used_store_id) if voucher.used_store_id else None
    details["store_name"] = store.name if store else None
    last = await Redemption.filter(voucher_id=voucher.id, reversed_at=None).order_by("-id").first()
    details["redemption_id"] = last.id if last else None
    when = voucher.used_at.strftime("%Y-%m-%d %H:%M:%S UTC") if voucher.used_at else "earlier"
    where = f" at {store.name}" if store else ""
    return errors.VoucherAlreadyUsed(f"the voucher was already used on {when}{where}", details=details)


def _store_allowed(s: Scanned, store_id: int) -> bool:
    """``s`` must have been read for ``store_id`` (its ``store_listed``)."""
    if s.template.store_ids is not None:
        return store_id in s.template.store_ids
    return s.template.all_stores or s.store_listed


async def refusal(s: Scanned, store_id: int, order_amount: int | None, now: datetime) -> errors.AppError | None:
    """Why this store may not redeem the voucher now, or None (``rule_refusal`` with the
    details of an earlier use looked up). ``s`` must have been read for ``store_id``."""
    found = rule_refusal(s, store_id, order_amount, now)
    if isinstance(found, errors.VoucherAlreadyUsed):
        return await _already_used(s.voucher)
    return found


def rule_refusal(s: Scanned, store_id: int, order_amount: int | None, now: datetime) -> errors.AppError | None:
    """Why this store may not redeem the voucher now, or None; pure (it may run on SQLite's
    database thread), so a used voucher is answered without its details (``refusal`` adds
    them). Checked in this order: used, withdrawn, expired, not yet valid, store, channel,
    minimum spend. ``s`` must have been read for ``store_id``."""
    v, t = s.voucher, s.template
    if v.status == "used":
        return errors.VoucherAlreadyUsed()
    if v.status not in ("available", "expired"):
        return errors.VoucherNotFound("the voucher was withdrawn")
    if wallet.effective_status(v.status, v.valid_until, now) == "expired":
        return errors.VoucherExpired(details={"valid_until": v.valid_until.isoformat()})
    if v.valid_from > now:
        return errors.VoucherNotYetValid(details={"valid_from": v.valid_from.isoformat()})
    if not _store_allowed(s, store_id):
        return errors.StoreNotAllowed(details={"store_id": store_id})
    if t.channels is not None and TILL_CHANNEL not in t.channels:
        return errors.ChannelNotAllowed(details={"channel": TILL_CHANNEL, "channels": list(t.channels)})
    if t.min_spend > 0 and (order_amount is None or order_amount < t.min_spend):
        message = None if order_amount is not None else "this voucher has a minimum spend: send order_amount"
        return errors.MinSpendNotMet(message, details={"min_spend": t.min_spend, "order_amount": order_amount})
    return None


@dataclass(frozen=True)
class Preview:
    voucher: Voucher
    template: Coupon
    customer: Customer
    status: str
    refusal: errors.AppError | None


async def preview(config: CodeConfig, redis: AnyRedis, till: Till, payload: str, order_amount: int | None) -> Preview:
    """What a scanned code is, whose, and whether this store may redeem it now (or why not).
    A code that is malformed, forged, stale or names no voucher is raised."""
    voucher_id = await qr.resolve(config.keyring, redis, payload, config.ttl)
    scanned = await _load(voucher_id, till)
    now = datetime.now(UTC)
    customer = await Customer.get(id=scanned.voucher.customer_id)  # type: ignore[attr-defined]
    return Preview(
        scanned.voucher,
        scanned.template,
        customer,
        wallet.effective_status(scanned.voucher.status, scanned.voucher.valid_until, now),
        await refusal(scanned, till.store_id, order_amount, now),
    )


# --------------------------------------------------------------------------- redeem


async def _prior(store_id: int, idempotency_key: str | None, order_ref: str | None) -> Redemption | None:
    if idempotency_key is not None:
        found = await Redemption.get_or_none(store_id=store_id, idempotency_key=idempotency_key)
        if found is not None:
            return found
    if order_ref is not None:
        return await Redemption.get_or_none(store_id=store_id, order_ref=order_ref)
    return None


async def _replay(prior: Redemption, config: CodeConfig, redis: AnyRedis, payload: str) -> Redemption:
    """The first answer again, if this retry names the same voucher (its code may have
    expired since: only its signature is checked). Another voucher is a conflict."""
    try:
        voucher_id: int | None = await qr.resolve(config.keyring, redis, payload, config.ttl, check_age=False)
    except errors.QrInvalid:
        voucher_id = None  # e.g. a numeric code long gone: the key decides
    if voucher_id is not None and voucher_id != prior.voucher_id:  # type: ignore[attr-defined]
        raise errors.Conflict(
            "this Idempotency-Key or order_ref was already used at this store for another voucher",
            details={"redemption_id": prior.id},
        )
    return prior


async def redeem(
    config: CodeConfig,
    redis: AnyRedis,
    till: Till,
    actor: Actor,
    payload: str,
    order_amount: int | None,
    order_ref: str | None,
    idempotency_key: str | None,
) -> tuple[RedemptionView, bool]:
    """Redeem the voucher behind ``payload`` at the till's store, exactly once.
    Returns (the redemption, replayed)."""
    if idempotency_key is not None or order_ref is not None:
        prior = await _prior(till.store_id, idempotency_key, order_ref)
        if prior is not None:
            [view] = await describe([await _replay(prior, config, redis, payload)])
            return view, True
    voucher_id = await qr.resolve(config.keyring, redis, payload, config.ttl)
    now = datetime.now(UTC)
    before, after = _audit_snapshots(voucher_id, till, order_amount, order_ref)

    def decide(row: dict[str, Any]) -> tuple[Scanned, VoucherUse | None]:
        # Pure: on SQLite this runs on the database thread, inside the transaction.
        scanned = _scanned(row)
        if rule_refusal(scanned, till.store_id, order_amount, now) is not None:
            return scanned, None
        v = scanned.voucher
        return scanned, VoucherUse(
            voucher_id=v.id, store_id=till.store_id, staff_id=till.staff_id,
            customer_id=v.customer_id,  # type: ignore[attr-defined]
            campaign_id=v.campaign_id, template_id=scanned.template.id, face_value=v.face_value,
            order_ref=order_ref, order_amount=order_amount, idempotency_key=idempotency_key, at=now,
            actor_kind=actor.kind, actor_id=actor.id, request_id=actor.request_id,
            audit_before=before, audit_after=after,
        )  # fmt: skip

    try:
        outcome = await _redeem_once(voucher_id, till, decide)
    except IntegrityError:
        # The key or order_ref was taken meanwhile (the whole transaction rolled back).
        prior = await _prior(till.store_id, idempotency_key, order_ref)
        if prior is not None:
            [view] = await describe([await _replay(prior, config, redis, payload)])
            return view, True
        raise
    scanned = outcome.decided
    if outcome.redemption_id is not None:
        return view_of(outcome.redemption_id, scanned, till, order_ref, order_amount, now), False
    if outcome.attempted or scanned.voucher.status == "used":
        # Someone else used the voucher first (before the read, or between the read and the
        # compare-and-set on PostgreSQL). A concurrent retry of this same request may have
        # won: it is then a replay.
        prior = await _prior(till.store_id, idempotency_key, order_ref)
        if prior is not None and prior.voucher_id == voucher_id:  # type: ignore[attr-defined]
            [view] = await describe([prior])
            return view, True
    if not outcome.attempted:
        raise await refusal(scanned, till.store_id, order_amount, now) or errors.VoucherAlreadyUsed()
    scanned = await _load(voucher_id, till)
    lost_to = await refusal(scanned, till.store_id, order_amount, datetime.now(UTC))
    raise lost_to or errors.VoucherAlreadyUsed()


async def _redeem_once(
    voucher_id: int, till: Till, decide: redemption_write.Decide[Scanned]
) -> redemption_write.Outcome[Scanned]:
    """``redemption_write.redeem_once``; VoucherNotFound when the voucher does not exist,
    IntegrityError when the key or order_ref is taken (nothing written)."""
    outcome = await redemption_write.redeem_once(voucher_id, till.store_id, till.staff_id, decide)
    if outcome is None:
        raise errors.VoucherNotFound()
    return outcome


def _audit_snapshots(
    voucher_id: int, till: Till, order_amount: int | None, order_ref: str | None
) -> tuple[str | None, str | None]:
    """The audit entry's before/after as the database stores them (JSON text), made before
    the trip so the database thread (SQLite) does as little as possible."""
    after = {
        "voucher_status": "used", "voucher_id": voucher_id, "store_id": till.store_id,
        "staff_id": till.staff_id, "order_ref": order_ref, "order_amount": order_amount,
    }  # fmt: skip
    before_d, after_d = audit.diff({"voucher_status": "available"}, after)
    field = AuditEntry._meta.fields_map["after"]
    return field.to_db_value(before_d, AuditEntry), field.to_db_value(after_d, AuditEntry)


# --------------------------------------------------------------------------- reverse


async def reverse(till: Till, actor: Actor, redemption_id: int, reason: str, window_seconds: int) -> Redemption:
    """Undo a redemption: managers of its store, within the window, once. The voucher is
    available again, or expired if its time has passed meanwhile."""
    r = await Redemption.get_or_none(id=redemption_id)
    if r is None:
        raise errors.NotFound("no such redemption")
    if r.store_id != till.store_id or till.role != "manager":  # type: ignore[attr-defined]
        raise errors.Forbidden("only a manager of the store that redeemed it may reverse a redemption")
    if r.reversed_at is not None:
        raise errors.AlreadyReversed(details={"reversed_at": r.reversed_at.isoformat()})
    now = datetime.now(UTC)
    deadline = r.created_at + timedelta(seconds=window_seconds)
    if now > deadline:
        raise errors.ReversalWindowPassed(
            details={"redeemed_at": r.created_at.isoformat(), "window_seconds": window_seconds}
        )
    async with in_transaction():
        changed = await Redemption.filter(id=r.id, reversed_at=None).update(
            reversed_at=now, reversed_by_id=till.staff_id, reverse_reason=reason
        )
        if changed != 1:
            raise errors.AlreadyReversed()
        voucher = await Voucher.get(id=r.voucher_id)  # type: ignore[attr-defined]
        status = "available" if voucher.valid_until > now else "expired"
        await Voucher.filter(id=voucher.id, status="used").update(
            status=status, used_at=None, used_store_id=None, used_by_staff_id=None
        )
        await audit.record(
            actor, "voucher.redeem.reverse", "redemption", r.id,
            before={"voucher_status": "used", "reversed": False},
            after={"voucher_status": status, "reversed": True, "reason": reason},
        )  # fmt: skip
    return await Redemption.get(id=r.id)


# --------------------------------------------------------------------------- lists


@dataclass(frozen=True)
class RedemptionView:
    id: int
    voucher_id: str
    voucher_code_masked: str
    coupon_id: int
    campaign_id: int
    customer_id: int
    title: dict[str, str]
    kind: str
    face_value: int
    store_id: int
    store_name: str
    staff_id: int
    staff_name: str
    order_ref: str | None
    order_amount: int | None
    created_at: datetime
    reversed_at: datetime | None
    reversed_by: int | None
    reverse_reason: str | None


def view_of(
    redemption_id: int,
    scanned: Scanned,
    till: Till,
    order_ref: str | None,
    order_amount: int | None,
    at: datetime,
) -> RedemptionView:
    """A redemption just made as a view, from what redeeming read (names included): no query."""
    v, t = scanned.voucher, scanned.template
    return RedemptionView(
        id=redemption_id, voucher_id=v.claim_id, voucher_code_masked=mask_code(v.code),
        coupon_id=t.id, campaign_id=v.campaign_id, customer_id=v.customer_id,  # type: ignore[attr-defined]
        title=t.title, kind=t.kind, face_value=v.face_value,
        store_id=till.store_id, store_name=scanned.store_name or "",
        staff_id=till.staff_id, staff_name=scanned.staff_name or "",
        order_ref=order_ref, order_amount=order_amount, created_at=at,
        reversed_at=None, reversed_by=None, reverse_reason=None,
    )  # fmt: skip


async def describe(rows: list[Redemption]) -> list[RedemptionView]:
    """Rows with what a person reads: the voucher's public id and masked code, the
    coupon's title, store and staff names (a few queries per page, none per row)."""
    if not rows:
        return []
    vouchers = {
        vid: (claim, code)
        for vid, claim, code in await Voucher.filter(id__in={r.voucher_id for r in rows}).values_list(  # type: ignore[attr-defined]
            "id", "claim_id", "code"
        )
    }
    templates = {
        tid: (title, kind)
        for tid, title, kind in await CouponTemplate.filter(id__in={r.template_id for r in rows}).values_list(
            "id", "title", "kind"
        )
    }
    stores = dict(await Store.filter(id__in={r.store_id for r in rows}).values_list("id", "name"))  # type: ignore[attr-defined]
    staff = dict(
        await StaffMember.filter(id__in={r.staff_id for r in rows}).values_list("id", "display_name")  # type: ignore[attr-defined]
    )
    out = []
    for r in rows:
        claim, code = vouchers[r.voucher_id]  # type: ignore[attr-defined]
        title, kind = templates.get(r.template_id, ({}, ""))
        out.append(
            RedemptionView(
                id=r.id, voucher_id=claim, voucher_code_masked=mask_code(code), coupon_id=r.template_id,
                campaign_id=r.campaign_id, customer_id=r.customer_id, title=title, kind=kind,
                face_value=r.face_value, store_id=r.store_id, store_name=stores.get(r.store_id, ""),  # type: ignore[attr-defined]
                staff_id=r.staff_id, staff_name=staff.get(r.staff_id, ""),  # type: ignore[attr-defined]
                order_ref=r.order_ref, order_amount=r.order_amount, created_at=r.created_at,
                reversed_at=r.reversed_at, reversed_by=r.reversed_by_id,  # type: ignore[attr-defined]
                reverse_reason=r.reverse_reason,
            )
        )  # fmt: skip
    return out


@dataclass(frozen=True)
class Filters:
    store_id: int | None = None
    campaign_id: int | None = None
    staff_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _filtered(f: Filters) -> Any:
    query = Redemption.all()
    if f.store_id is not None:
        query = query.filter(store_id=f.store_id)
    if f.campaign_id is not None:
        query = query.filter(campaign_id=f.campaign_id)
    if f.staff_id is not None:
        query = query.filter(staff_id=f.staff_id)
    if f.date_from is not None:
        query = query.filter(created_at__gte=_day_start(f.date_from))
    if f.date_to is not None:
        query = query.filter(created_at__lt=_day_start(f.date_to) + timedelta(days=1))
    return query


@dataclass(frozen=True)
class Totals:
    count: int
    face_value: int
    order_amount: int
    reversed: int


async def totals(f: Filters) -> Totals:
    """Over the filtered redemptions that stand (reversed ones only counted apart)."""
    rows = await (
        _filtered(f)
        .filter(reversed_at=None)
        .annotate(n=Count("id"), face=Sum("face_value"), amount=Sum("order_amount"))
        .values("n", "face", "amount")
    )
    row = rows[0] if rows else {}
    reversed_count = await _filtered(f).filter(reversed_at__not_isnull=True).count()
    return Totals(int(row.get("n") or 0), int(row.get("face") or 0), int(row.get("amount") or 0), reversed_count)


async def page(f: Filters, cursor: str | None, limit: int) -> tuple[list[RedemptionView], str | None]:
    rows, nxt = await newest_first(_filtered(f), cursor, limit)
    return await describe(rows), nxt


async def export(f: Filters, batch: int = 500) -> AsyncIterator[list[RedemptionView]]:
    """Every filtered redemption, newest first, in batches (keyset: constant memory)."""
    before: int | None = None
    while True:
        query = _filtered(f)
        if before is not None:
            query = query.filter(id__lt=before)
        rows = await query.order_by("-id").limit(batch)
        if not rows:
            return
        yield await describe(rows)
        if len(rows) < batch:
            return
        before = rows[-1].id
