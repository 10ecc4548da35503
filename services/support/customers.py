"""Customer service's view of customers: the searchable list and one customer's detail.

Search is by exact id, exact openid, the phone number's last four digits (the stored
``phone_suffix`` column and its index: a lookup, not a scan, at any number of
customers) or a part of the nickname, filtered by tier, city and lifecycle stage; newest
first, with the opaque cursors of every admin list.

Phone numbers are masked (``138****5678``) unless the caller may see them in full
(``full_phone``: decided by the handler from the admin's role).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Q, Subquery

from models.audience import CustomerFacts
from models.campaigns import Campaign, CouponTemplate
from models.customers import Customer, TierChange
from models.journey import PointsEntry
from models.notifications import Notification
from models.participations import Participation
from models.redemptions import Redemption
from models.vouchers import Voucher
from services.audience import new_since, utc_today
from services.core import errors, newest_first
from services.journey import points

#: How many of each kind of recent row the detail carries (the ledger pages on through
#: GET /api/v1/admin/customers/{id}/points).
RECENT = 20
#: Vouchers in the detail, newest first.
WALLET_SIZE = 50
#: Fact columns the detail shows.
FACT_COLUMNS = (
    "spend_7d", "spend_30d", "spend_90d", "spend_180d", "spend_365d", "visits_7d", "visits_30d", "visits_90d",
    "visits_180d", "visits_365d", "purchases_total", "spend_total", "first_purchase_at", "last_purchase_at",
    "last_visit_at", "last_active_at",
)  # fmt: skip


def mask_phone(number: str | None) -> str | None:
    """``13812345678`` -> ``138****5678``: the carrier prefix and the last four digits, the
    part customers read out to support. Shorter numbers keep only their last four."""
    if not number:
        return None
    if len(number) >= 8:
        return number[:3] + "****" + number[-4:]
    return "****" + number[-4:]


@dataclass(frozen=True, kw_only=True)
class Search:
    """What the list filters on (all optional, combined with AND)."""

    customer_id: int | None = None
    openid: str | None = None
    phone_suffix: str | None = None
    nickname: str | None = None
    tier: str | None = None
    city: str | None = None
    lifecycle_stage: str | None = None


def _stage_filter(stage: str) -> Q:
    """Customers in a lifecycle stage: their facts row says so, or (no row yet) they are
    "new" or "unactivated" by registration date, as the audience rules count them."""
    with_facts = Q(id__in=Subquery(CustomerFacts.filter(lifecycle_stage=stage).values("customer_id")))
    if stage not in ("new", "unactivated"):
        return with_facts
    since = new_since(utc_today())
    no_facts = Q(id__not_in=Subquery(CustomerFacts.all().values("customer_id")))
    by_date = Q(created_at__gte=since) if stage == "new" else Q(created_at__lt=since)
    return with_facts | (no_facts & by_date)


async def search(query: Search, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """One page of customers matching ``query``, newest first, as list rows (phone not
    yet masked: ``phone_number`` is the stored number)."""
    qs = Customer.all()
    if query.customer_id is not None:
        qs = qs.filter(id=query.customer_id)
    if query.openid is not None:
        qs = qs.filter(openid=query.openid)
    if query.phone_suffix is not None:
        qs = qs.filter(phone_suffix=query.phone_suffix)
    if query.nickname is not None:
        qs = qs.filter(nickname__icontains=query.nickname)
    if query.tier is not None:
        qs = qs.filter(membership_tier=query.tier)
    if query.city is not None:
        qs = qs.filter(city=query.city)
    if query.lifecycle_stage is not None:
        qs = qs.filter(_stage_filter(query.lifecycle_stage))
    page, nxt = await newest_first(qs, cursor, limit)
    stages = await _stages(page)
    return [_row(c, stages[c.id]) for c in page], nxt


async def _stages(customers: list[Customer]) -> dict[int, str]:
    found = dict(
        await CustomerFacts.filter(customer_id__in=[c.id for c in customers]).values_list(
            "customer_id", "lifecycle_stage"
        )
    )
    since = new_since(utc_today())
    return {
        c.id: str(found[c.id]) if c.id in found else ("new" if c.created_at >= since else "unactivated")
        for c in customers
    }


def _row(c: Customer, stage: str) -> dict[str, Any]:
    return {
        "id": c.id, "openid": c.openid, "nickname": c.nickname, "phone_number": c.phone_number,
        "phone_country_code": c.phone_country_code, "membership_tier": c.membership_tier, "city": c.city,
        "lifecycle_stage": stage, "created_at": c.created_at, "last_login_at": c.last_login_at,
    }  # fmt: skip


async def get_customer(customer_id: int) -> Customer:
    customer = await Customer.get_or_none(id=customer_id)
    if customer is None:
        raise errors.NotFound(f"no customer {customer_id}", details={"customer_id": customer_id})
    return customer


def voucher_row(v: Voucher, now: datetime) -> dict[str, Any]:
    status = "expired" if v.status == "available" and v.valid_until <= now else v.status
    return {
        "id": v.id, "claim_id": v.claim_id, "code": v.code, "coupon_id": v.template_id,
        "campaign_id": v.campaign_id, "status": status, "face_value": v.face_value, "valid_from": v.valid_from,
        "valid_until": v.valid_until, "issued_at": v.issued_at, "used_at": v.used_at,
        "used_store_id": v.used_store_id, "manual_grant": v.granted_by is not None, "granted_by": v.granted_by,
        "voided_at": v.voided_at, "voided_by": v.voided_by, "void_reason": v.void_reason,
        "stock_returned": v.stock_returned,
    }  # fmt: skip


def ledger_row(e: PointsEntry) -> dict[str, Any]:
    return {
        "id": e.id, "delta": e.delta, "balance_after": e.balance_after, "reason": e.reason, "note": e.note,
        "admin_id": e.admin_id, "campaign_id": e.campaign_id, "created_at": e.created_at,
    }  # fmt: skip


async def ledger(customer_id: int, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the customer's points ledger, newest first."""
    await get_customer(customer_id)
    entries, nxt = await points.history(customer_id, cursor, limit)
    return [ledger_row(e) for e in entries], nxt


def _pick(texts: dict[str, Any], language: str) -> str | None:
    """A text in ``language``, else Chinese, English or any language there is."""
    for lang in (language, "zh-CN", "en", *texts):
        if texts.get(lang):
            return str(texts[lang])
    return None


def _title(content: dict[str, Any], language: str) -> str | None:
    return _pick({lang: (part or {}).get("title") for lang, part in content.items()}, language)


async def detail(customer_id: int) -> dict[str, Any]:
    """Everything customer service sees of one customer (see the module docstring): the
    profile, facts, wallet, points, campaigns and progress, recent redemptions,
    notifications and tier changes."""
    c = await get_customer(customer_id)
    now = datetime.now(UTC)
    [stage] = (await _stages([c])).values()
    facts_row = await CustomerFacts.get_or_none(customer_id=c.id)
    facts: dict[str, Any] = {name: getattr(facts_row, name) if facts_row else None for name in FACT_COLUMNS}
    if facts_row is None:  # no activity yet: zero in every window
        facts.update({name: 0 for name in FACT_COLUMNS if not name.endswith("_at")})
    facts["lifecycle_stage"] = stage

    vouchers = await Voucher.filter(customer_id=c.id).order_by("-id").limit(WALLET_SIZE)
    counts: dict[str, int] = {}
    for status in ("available", "used", "expired", "void"):
        counts[status] = await Voucher.filter(customer_id=c.id, status=status).count()

    entries, ledger_next = await points.history(c.id, None, RECENT)

    parts = await Participation.filter(customer_id=c.id).order_by("-id").limit(RECENT)
    campaigns = {
        row.id: row for row in await Campaign.filter(id__in={p.campaign_id for p in parts} | {0}).only(
            "id", "content", "default_language", "status", "goal_metric", "goal_target"
        )
    }  # fmt: skip

    redemptions = await Redemption.filter(customer_id=c.id).order_by("-id").limit(RECENT)
    notes = await Notification.filter(customer_id=c.id).order_by("-id").limit(RECENT)
    tiers = await TierChange.filter(customer_id=c.id).order_by("-id").limit(RECENT)
    titles = dict(
        await CouponTemplate.filter(id__in={v.template_id for v in vouchers} | {0}).values_list("id", "title")
    )

    profile = {
        **_row(c, stage),
        "unionid": c.unionid,
        "interest_tags": c.interest_tags,
        "preferred_store_id": c.preferred_store_id,
        "phone_bound_at": c.phone_bound_at,
    }
    wallet = [{**voucher_row(v, now), "title": _pick(titles.get(v.template_id) or {}, "zh-CN")} for v in vouchers]
    return {
        "profile": profile,
        "facts": facts,
        "wallet": {"counts": counts, "vouchers": wallet},
        "points": {
            "balance": await points.balance_of(c.id),
            "ledger": [ledger_row(e) for e in entries],
            "ledger_next_cursor": ledger_next,
        },
        "campaigns": [_participation_row(p, campaigns.get(p.campaign_id)) for p in parts],
        "redemptions": [_redemption_row(r) for r in redemptions],
        "notifications": [
            {"id": n.id, "kind": n.kind, "status": n.status, "created_at": n.created_at, "sent_at": n.sent_at}
            for n in notes
        ],
        "tier_changes": [_tier_row(t) for t in tiers],
    }


def _participation_row(p: Participation, campaign: Campaign | None) -> dict[str, Any]:
    return {
        "participation_id": p.id, "campaign_id": p.campaign_id,
        "title": _title(campaign.content, campaign.default_language) if campaign else None,
        "campaign_status": campaign.status if campaign else None, "status": p.status, "progress": p.progress,
        "goal_metric": campaign.goal_metric if campaign else None,
        "goal_target": campaign.goal_target if campaign else None,
        "joined_at": p.joined_at, "completed_at": p.completed_at,
    }  # fmt: skip


def _redemption_row(r: Redemption) -> dict[str, Any]:
    return {
        "id": r.id, "voucher_id": r.voucher_id, "store_id": r.store_id, "staff_id": r.staff_id,
        "campaign_id": r.campaign_id, "face_value": r.face_value, "order_ref": r.order_ref,
        "created_at": r.created_at, "reversed_at": r.reversed_at,
    }  # fmt: skip


def _tier_row(t: TierChange) -> dict[str, Any]:
    return {
        "id": t.id, "from_tier": t.from_tier, "to_tier": t.to_tier, "source": t.source, "admin_id": t.admin_id,
        "integration_id": t.integration_id, "reason": t.reason, "created_at": t.created_at,
    }  # fmt: skip
