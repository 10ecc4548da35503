"""Admin changes to coupon stock."""

from __future__ import annotations

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from models.campaigns import Campaign, CouponTemplate
from services.core import audit, errors
from services.stock.gate import Stock


async def add_stock(stock: Stock, coupon_id: int, amount: int, actor: audit.Actor) -> CouponTemplate:
    """Raise a coupon's total stock. Refused for ended campaigns, and when the campaign's
    budget cannot cover even one more coupon (top the budget up first)."""
    template = await CouponTemplate.get_or_none(id=coupon_id)
    if template is None:
        raise errors.NotFound(f"no coupon {coupon_id}")
    campaign = await Campaign.get(id=template.campaign_id)
    if campaign.status in ("ended", "archived"):
        raise errors.CampaignNotEditable(f"the campaign is {campaign.status}", details={"status": campaign.status})
    if campaign.budget_limit is not None and campaign.budget_limit - campaign.budget_spent < template.face_value:
        raise errors.BudgetExhausted(
            "the budget cannot cover another coupon: request a budget top-up first",
            details={"budget_left": campaign.budget_limit - campaign.budget_spent, "face_value": template.face_value},
        )
    async with in_transaction():
        await CouponTemplate.filter(id=template.id).update(total_stock=F("total_stock") + amount)
        await audit.record(
            actor, "coupon.add_stock", "coupon", template.id, {"total_stock": template.total_stock},
            {"total_stock": template.total_stock + amount},
        )  # fmt: skip
    # After the commit: if Redis fails here, the database is ahead and reconcile repairs it.
    await stock.add_stock(template.id, amount)
    return await CouponTemplate.get(id=template.id)
