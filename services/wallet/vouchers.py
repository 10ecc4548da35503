"""The customer's voucher wallet: what the database holds, plus claims Redis decided that
the worker has not written yet (read your own writes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from tortoise.expressions import Q

from models.campaigns import CouponTemplate
from models.vouchers import Voucher
from services.core import CouponFace, errors, face_of, newest_first
from services.stock import CouponCache, Stock

WalletStatus = Literal["available", "used", "expired"]


@dataclass(frozen=True, kw_only=True)
class VoucherView(CouponFace):
    id: str
    code: str
    coupon_id: int
    campaign_id: int
    status: str
    store_ids: list[int] | None
    channels: list[str] | None
    valid_from: datetime
    valid_until: datetime
    issued_at: datetime
    used_at: datetime | None
    used_store_id: int | None
    pending: bool


def effective_status(stored: str, valid_until: datetime, now: datetime) -> str:
    """Expiry is exact: an available voucher past valid_until is expired, whether or not
    a job has flipped it yet."""
    if stored == "available" and valid_until <= now:
        return "expired"
    return stored


def _status_filter(status: WalletStatus | None, now: datetime) -> Q:
    if status == "available":
        return Q(status="available", valid_until__gt=now)
    if status == "expired":
        return Q(status="expired") | Q(status="available", valid_until__lte=now)
    if status == "used":
        return Q(status="used")
    return Q()


def _view(v: Voucher, t: CouponTemplate, now: datetime) -> VoucherView:
    return VoucherView(
        id=v.claim_id, code=v.code, coupon_id=t.id, campaign_id=v.campaign_id,
        status=effective_status(v.status, v.valid_until, now), **face_of(t, face_value=v.face_value),
        store_ids=t.store_ids, channels=t.channels, valid_from=v.valid_from, valid_until=v.valid_until,
        issued_at=v.issued_at, used_at=v.used_at, used_store_id=v.used_store_id, pending=False,
    )  # fmt: skip


async def _pending(customer_id: int, stock: Stock, cache: CouponCache, now: datetime) -> list[VoucherView]:
    recent = await stock.recent_claims(customer_id)
    if not recent:
        return []
    persisted = set(await Voucher.filter(claim_id__in=[r["claim"] for r in recent]).values_list("claim_id", flat=True))
    views = []
    for r in recent:
        if r["claim"] in persisted:
            continue
        info = await cache.get(int(r["tpl"]))
        template = await CouponTemplate.get(id=info.template_id)
        grabbed = datetime.fromtimestamp(int(r["at"]) / 1000, UTC)
        valid_from, valid_until = info.validity(grabbed)
        # A voucher with its own face value (a cut voucher, a red packet's) shows it, as
        # the worker will write it; any other shows its coupon's.
        own = {} if r["fv"] is None else {"face_value": int(r["fv"])}
        views.append(
            VoucherView(
                id=r["claim"],
                code=r["code"],
                coupon_id=info.template_id,
                campaign_id=info.campaign_id,
                status=effective_status("available", valid_until, now),
                **face_of(info, **own),
                store_ids=template.store_ids,
                channels=template.channels,
                valid_from=valid_from,
                valid_until=valid_until,
                issued_at=grabbed,
                used_at=None,
                used_store_id=None,
                pending=True,
            )
        )
    return views


async def list_vouchers(
    customer_id: int, status: WalletStatus | None, cursor: str | None, limit: int, stock: Stock, cache: CouponCache
) -> tuple[list[VoucherView], str | None]:
    now = datetime.now(UTC)
    rows, nxt = await newest_first(Voucher.filter(_status_filter(status, now), customer_id=customer_id), cursor, limit)
    templates = {t.id: t for t in await CouponTemplate.filter(id__in={v.template_id for v in rows})}
    views = [_view(v, templates[v.template_id], now) for v in rows]
    if cursor is None and status in (None, "available", "expired"):
        pending = [p for p in await _pending(customer_id, stock, cache, now) if status in (None, p.status)]
        views = pending + views
    return views, nxt


# --------------------------------------------------------------------------- one voucher


@dataclass(frozen=True)
class HistoryEvent:
    event: Literal["issued", "used", "reversed", "expired"]
    at: datetime
    store_id: int | None = None
    store_name: str | None = None
    redemption_id: int | None = None


async def ensure_persisted(customer_id: int, claim_id: str, stock: Stock, cache: CouponCache) -> Voucher:
    """The customer's voucher of this claim, written to the database now if the worker
    has not yet (a code shown at the till must be redeemable at once). Another
    customer's voucher, or an unknown claim, is ``voucher_not_found``."""
    # Imported here: claims imports the stock machinery the wallet only reads.
    from services.stock import ClaimEntry, persist

    voucher = await Voucher.get_or_none(claim_id=claim_id, customer_id=customer_id)
    if voucher is not None:
        return voucher
    entry = next((r for r in await stock.recent_claims(customer_id) if r["claim"] == claim_id), None)
    if entry is None:
        raise errors.VoucherNotFound()
    info = await cache.get(int(entry["tpl"]))
    await persist(
        [
            ClaimEntry(
                entry_id="", claim_id=entry["claim"], code=entry["code"], template_id=info.template_id,
                customer_id=customer_id, face_value=info.face_value if entry["fv"] is None else int(entry["fv"]),
                grabbed_at=datetime.fromtimestamp(int(entry["at"]) / 1000, UTC),
            )
        ]
    )  # fmt: skip
    voucher = await Voucher.get_or_none(claim_id=claim_id, customer_id=customer_id)
    if voucher is None:  # the claim's code collided and was re-issued under another claim: never seen
        raise errors.VoucherNotFound()
    return voucher


async def history_of(voucher: Voucher, now: datetime) -> list[HistoryEvent]:
    """Issued, each use (when, where) and reversal, and expiry once it happened."""
    from models.redemptions import Redemption
    from models.stores import Store

    redemptions = await Redemption.filter(voucher_id=voucher.id).order_by("created_at", "id")
    names = dict(await Store.filter(id__in={r.store_id for r in redemptions}).values_list("id", "name"))
    events = [HistoryEvent("issued", voucher.issued_at)]
    for r in redemptions:
        store_id = r.store_id
        events.append(HistoryEvent("used", r.created_at, store_id, names.get(store_id), r.id))
        if r.reversed_at is not None:
            events.append(HistoryEvent("reversed", r.reversed_at, store_id, names.get(store_id), r.id))
    if effective_status(voucher.status, voucher.valid_until, now) == "expired":
        events.append(HistoryEvent("expired", voucher.valid_until))
    return sorted(events, key=lambda e: e.at)


async def voucher_detail(
    customer_id: int, claim_id: str, stock: Stock, cache: CouponCache
) -> tuple[VoucherView, list[HistoryEvent]]:
    """One voucher of the customer's wallet (persisted or still pending) and its history."""
    now = datetime.now(UTC)
    voucher = await Voucher.get_or_none(claim_id=claim_id, customer_id=customer_id)
    if voucher is None:
        for view in await _pending(customer_id, stock, cache, now):
            if view.id == claim_id:
                events = [HistoryEvent("issued", view.issued_at)]
                if view.status == "expired":
                    events.append(HistoryEvent("expired", view.valid_until))
                return view, events
        raise errors.VoucherNotFound()
    template = await CouponTemplate.get(id=voucher.template_id)
    return _view(voucher, template, now), await history_of(voucher, now)


async def store_names(store_ids: set[int]) -> dict[int, str]:
    from models.stores import Store

    return dict(await Store.filter(id__in=store_ids).values_list("id", "name")) if store_ids else {}
