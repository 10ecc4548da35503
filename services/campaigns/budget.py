"""Campaign budgets: top-up requests and their approval."""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from models.campaigns import BudgetTopUp, Campaign
from services.campaigns.editing import get
from services.core import audit, errors


async def request_topup(campaign_id: int, amount: int, reason: str, actor: audit.Actor) -> BudgetTopUp:
    campaign = await get(campaign_id)
    if campaign.budget_limit is None:
        raise errors.BudgetUncapped()
    if campaign.status in ("ended", "archived"):
        raise errors.CampaignNotEditable(f"a campaign that is {campaign.status} takes no top-up")
    async with in_transaction():
        topup = await BudgetTopUp.create(campaign_id=campaign.id, amount=amount, reason=reason, requested_by=actor.id)
        await audit.record(actor, "budget.request", "budget_topup", topup.id, None,
                           {"campaign_id": campaign.id, "amount": amount, "reason": reason})  # fmt: skip
    return topup


async def decide_topup(topup_id: int, approve: bool, comment: str, actor: audit.Actor) -> BudgetTopUp:
    """Approve (the campaign's cap grows by the amount) or reject a pending request.

    A compare-and-set on the request's status: of two deciders, one wins.
    """
    topup = await BudgetTopUp.get_or_none(id=topup_id)
    if topup is None:
        raise errors.NotFound(f"no budget top-up {topup_id}")
    if topup.requested_by == actor.id:
        raise errors.SelfApprovalForbidden("nobody decides their own budget request")
    if topup.status != "pending":
        raise errors.InvalidTransition(f"the request is already {topup.status}", details={"status": topup.status})
    status = "approved" if approve else "rejected"
    async with in_transaction():
        changed = await BudgetTopUp.filter(id=topup.id, status="pending").update(
            status=status, decided_by=actor.id, decided_at=datetime.now(UTC)
        )
        if changed != 1:
            raise errors.CampaignStateChanged("the request was decided meanwhile")
        if approve:
            await Campaign.filter(id=topup.campaign_id).update(
                budget_limit=F("budget_limit") + topup.amount, version=F("version") + 1
            )
        await audit.record(actor, f"budget.{'approve' if approve else 'reject'}", "budget_topup", topup.id,
                           {"status": "pending"}, {"status": status, "comment": comment})  # fmt: skip
    return await BudgetTopUp.get(id=topup.id)
