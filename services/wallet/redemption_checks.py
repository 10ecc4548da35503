"""What the till may do with a scanned voucher: who redeems (``Till``), the voucher and
its coupon's rules as one read (``Scanned``), and why a store may not redeem it now
(``rule_refusal``, pure; ``refusal`` with the details of an earlier use), which is also
what staff see when they scan a code (``preview``).

Never log or put into an error message a voucher code or a scanned payload.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from models.campaigns import Campaign, CouponTemplate
from models.customers import Customer
from models.redemptions import Redemption
from models.stores import Store
from models.vouchers import Voucher
from services.core import AnyRedis, errors
from services.wallet import qr, redemption_write
from services.wallet import vouchers as wallet
from services.wallet.redemption_rows import voucher_columns

#: The channel of a store's till: a coupon whose channels leave it out is not for tills.
TILL_CHANNEL = "pos"


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
    #: The campaign's: the end of its cool-down, after which none of its vouchers is
    #: redeemed whatever their own validity (None: no such end).
    redeem_until: datetime | None


@dataclass
class Scanned:
    voucher: Voucher
    template: Coupon
    #: Whether the campaign's store list names the till's store (read with the voucher).
    store_listed: bool
    #: The clerk's and the till's store's names (read with the voucher, for the answer).
    staff_name: str | None
    store_name: str | None
    #: A redemption standing on the same order (read for an order_ref) of a campaign
    #: exclusive with this voucher's: the two cannot share the order.
    exclusive_on_order: int | None = None
    #: The till's store is closed (its opening state, read with the voucher).
    store_closed: bool = False


def _json(field: str, raw: Any) -> Any:
    return CouponTemplate._meta.fields_map[field].to_python_value(raw)


_REDEEM_UNTIL = Campaign._meta.fields_map["redeem_until"]


def scanned_of(row: dict[str, Any]) -> Scanned:
    """A row of ``redemption_rows.read_sql`` as values (pure: it may run on SQLite's
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
        redeem_until=_REDEEM_UNTIL.to_python_value(row["c_redeem_until"]),
    )  # fmt: skip
    return Scanned(
        voucher, coupon, bool(row["c_store_listed"]), row["n_staff"], row["n_store"], row["o_exclusive_redemption"],
        store_closed=row["s_state"] == "closed",
    )  # fmt: skip


#: A voucher code as the wallet shows it (Crockford base32, services.core.codes), once
#: normalised: 16 characters today, a little latitude either way.
_TYPED = re.compile(r"^[0-9A-HJKMNP-TV-Z]{12,24}$")
#: What people type for what they read: Crockford's look-alikes, and no case, spaces or dashes.
_READ_BACK = str.maketrans({"I": "1", "L": "1", "O": "0", " ": None, "-": None})


def typed_code(payload: str) -> str | None:
    """``payload`` as a voucher code typed by hand (any case; I and L read as 1, O as 0;
    spaces and dashes ignored), or None if it cannot be one."""
    code = payload.strip().upper().translate(_READ_BACK)
    return code if _TYPED.match(code) else None


async def resolve(config: CodeConfig, redis: AnyRedis, payload: str, *, check_age: bool = True) -> int:
    """The voucher id behind what the till sent: a scanned QR payload, a barcode number, or
    the voucher's code typed by hand (it does not expire: the scan limits,
    services/wallet/scan_limits.py, are what stop guessing). QrInvalid / QrExpired as
    ``qr.resolve``; a code naming no voucher is QrInvalid (``unknown_code``).
    ``check_age=False`` only checks a QR payload's signature (an idempotent replay)."""
    stripped = payload.strip()
    if stripped.startswith(f"{qr.VERSION}."):
        return await qr.resolve(config.keyring, redis, stripped, config.ttl, check_age=check_age)
    if qr.is_numeric(stripped):
        # A barcode number. A voucher code of 16 digits only (one in 10^8) cannot be typed:
        # looking every unknown number up as a code too would slow the guesses the scan
        # limits count, letting more of them run at once.
        return await qr.resolve_numeric(redis, stripped, config.ttl, check_age=check_age)
    code = typed_code(stripped)
    if code is None:
        return await qr.resolve(config.keyring, redis, stripped, config.ttl, check_age=check_age)
    found = await Voucher.filter(code=code).only("id").first()
    if found is None:
        raise errors.QrInvalid("unknown or long-expired code", details={"reason": "unknown_code"})
    return found.id


async def load_scanned(voucher_id: int, till: Till, order_ref: str | None = None) -> Scanned:
    """The voucher, what its coupon allows at the till's store (on this order), and the
    names the answer shows."""
    row = await redemption_write.read(voucher_id, till.store_id, till.staff_id, order_ref)
    if row is None:
        raise errors.VoucherNotFound()
    return scanned_of(row)


async def already_used(voucher: Voucher) -> errors.AppError:
    """The 409 for a used voucher, saying when and where it was used (its last redemption)."""
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
        return await already_used(s.voucher)
    return found


def rule_refusal(s: Scanned, store_id: int, order_amount: int | None, now: datetime) -> errors.AppError | None:
    """Why this store may not redeem the voucher now, or None; pure (it may run on SQLite's
    database thread), so a used voucher is answered without its details (``refusal`` adds
    them). Checked in this order: used, withdrawn, expired, the campaign's redemption
    period over, not yet valid, store, channel, minimum spend, stacking on the order;
    before all of them, the store being closed. ``s`` must have been read for ``store_id``."""
    v, t = s.voucher, s.template
    if s.store_closed:
        return errors.StoreClosed(details={"store_id": store_id})
    if v.status == "used":
        return errors.VoucherAlreadyUsed()
    if v.status not in ("available", "expired"):
        return errors.VoucherNotFound("the voucher was withdrawn")
    if wallet.effective_status(v.status, v.valid_until, now) == "expired":
        return errors.VoucherExpired(details={"valid_until": v.valid_until.isoformat()})
    if t.redeem_until is not None and now >= t.redeem_until:
        return errors.RedeemPeriodOver(details={"redeem_until": t.redeem_until.isoformat()})
    if v.valid_from > now:
        return errors.VoucherNotYetValid(details={"valid_from": v.valid_from.isoformat()})
    if not _store_allowed(s, store_id):
        return errors.StoreNotAllowed(details={"store_id": store_id})
    if t.channels is not None and TILL_CHANNEL not in t.channels:
        return errors.ChannelNotAllowed(details={"channel": TILL_CHANNEL, "channels": list(t.channels)})
    if t.min_spend > 0 and (order_amount is None or order_amount < t.min_spend):
        message = None if order_amount is not None else "this voucher has a minimum spend: send order_amount"
        return errors.MinSpendNotMet(message, details={"min_spend": t.min_spend, "order_amount": order_amount})
    if s.exclusive_on_order is not None:
        return errors.VoucherNotStackable(details={"redemption_id": s.exclusive_on_order})
    return None


@dataclass(frozen=True)
class Preview:
    voucher: Voucher
    template: Coupon
    customer: Customer
    status: str
    refusal: errors.AppError | None


async def preview(config: CodeConfig, redis: AnyRedis, till: Till, payload: str, order_amount: int | None) -> Preview:
    """What a scanned or typed code is, whose, and whether this store may redeem it now
    (or why not). A code that is malformed, forged, stale or names no voucher is raised;
    so is a closed store (store_closed: it takes no redemptions)."""
    voucher_id = await resolve(config, redis, payload)
    scanned = await load_scanned(voucher_id, till)
    if scanned.store_closed:
        raise errors.StoreClosed(details={"store_id": till.store_id})
    now = datetime.now(UTC)
    customer = await Customer.get(id=scanned.voucher.customer_id)
    return Preview(
        scanned.voucher,
        scanned.template,
        customer,
        wallet.effective_status(scanned.voucher.status, scanned.voucher.valid_until, now),
        await refusal(scanned, till.store_id, order_amount, now),
    )
