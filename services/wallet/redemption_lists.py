"""Redemptions as people read them: each with its voucher's public id and masked code,
its coupon's title, store and staff names (``describe``), and the filtered lists, totals
and exports staff and admins ask for.

Lists and exports show voucher codes masked (``mask_code``), never whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from tortoise.functions import Count, Sum

from models.campaigns import CouponTemplate
from models.redemptions import Redemption
from models.stores import StaffMember, Store
from models.vouchers import Voucher
from services.core import newest_first


def mask_code(code: str) -> str:
    """A voucher code as lists and exports show it: all but the last 4 characters hidden."""
    return "*" * max(0, len(code) - 4) + code[-4:]


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


async def describe(rows: list[Redemption]) -> list[RedemptionView]:
    """Rows with what a person reads: the voucher's public id and masked code, the
    coupon's title, store and staff names (a few queries per page, none per row)."""
    if not rows:
        return []
    vouchers = {
        vid: (claim, code)
        for vid, claim, code in await Voucher.filter(id__in={r.voucher_id for r in rows}).values_list(
            "id", "claim_id", "code"
        )
    }
    templates = {
        tid: (title, kind)
        for tid, title, kind in await CouponTemplate.filter(id__in={r.template_id for r in rows}).values_list(
            "id", "title", "kind"
        )
    }
    stores = dict(await Store.filter(id__in={r.store_id for r in rows}).values_list("id", "name"))
    staff = dict(await StaffMember.filter(id__in={r.staff_id for r in rows}).values_list("id", "display_name"))
    out = []
    for r in rows:
        claim, code = vouchers[r.voucher_id]
        title, kind = templates.get(r.template_id, ({}, ""))
        out.append(
            RedemptionView(
                id=r.id, voucher_id=claim, voucher_code_masked=mask_code(code), coupon_id=r.template_id,
                campaign_id=r.campaign_id, customer_id=r.customer_id, title=title, kind=kind,
                face_value=r.face_value, store_id=r.store_id, store_name=stores.get(r.store_id, ""),
                staff_id=r.staff_id, staff_name=staff.get(r.staff_id, ""),
                order_ref=r.order_ref, order_amount=r.order_amount, created_at=r.created_at,
                reversed_at=r.reversed_at, reversed_by=r.reversed_by_id,
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
    #: Instants, for a day that is not a UTC day (a store's local day): [since, until).
    since: datetime | None = None
    until: datetime | None = None


def local_day(day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """[the day's first instant, the next day's first instant) in ``zone``, in UTC: 24
    hours, or 23 or 25 across a daylight-saving change."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


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
    if f.since is not None:
        query = query.filter(created_at__gte=f.since)
    if f.until is not None:
        query = query.filter(created_at__lt=f.until)
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
