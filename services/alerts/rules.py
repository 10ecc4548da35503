"""The alert rules and their evaluation pass.

Each rule looks at one subject and says whether its condition holds now; the pass raises an
episode where it holds and none is open, and clears the open one where it no longer holds
(``services.outbound.raise_alert`` / ``clear_alert``: raised once per episode, each raise an
``alert.raised`` webhook event). Rules, with their subject's key:

- ``budget_runout`` (per active campaign with a budget, ``budget_runout:<campaign>``): the
  budget spent so far, at the average rate since the campaign started, runs out before the
  campaign ends (or is already spent while it runs), and, with a ``budget_horizon_hours``,
  within that many hours.
- ``stock_sold_out`` (per coupon of an active campaign, ``stock_sold_out:<campaign>:<coupon>``):
  no stock left.
- ``redemption_spike`` / ``redemption_drop`` (per active campaign): redemptions in the last 24
  hours above ``spike_factor`` times, or below 1/``drop_factor`` of, the daily average of the
  ``days`` days before, judged only when that average is at least ``min_baseline``.
- ``notify_failures`` (global, ``notify_failures``): at least ``notify_failures`` notifications
  failed in the last hour.
- ``claims_backlog`` (global, ``claims_backlog``): the oldest claim not yet written to the
  database is older than ``claims_backlog_seconds``.

Open campaign alerts of campaigns no longer active are cleared (the episode ended with them).
A campaign's own rules (``campaign_rules``) replace the policy's thresholds for it, and a rule
it mutes is never raised for it (an open episode is cleared by the next pass).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from models.campaigns import Campaign, CouponTemplate
from models.notifications import Notification
from models.redemptions import Redemption
from models.webhooks import Alert
from services import outbound
from services.alerts.campaign_rules import applied, muted_of, rules_by_campaign
from services.alerts.policy import CAMPAIGN_RULES, AlertPolicy
from services.core import AnyRedis
from services.stock import backlog, stock_left

#: ``judge(holds, rule=, key=, message=, details=, campaign_id=)``: raise or clear one subject.
_Judge = Callable[..., Awaitable[None]]


@dataclass
class AlertReport:
    raised: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)


class _Pass:
    def __init__(self, report: AlertReport, muted: frozenset[str] = frozenset()) -> None:
        self.report = report
        #: Rules muted for the subject being judged: never raised, an open episode cleared.
        self.muted = muted

    async def judge(
        self, holds: bool, *, rule: str, key: str, message: str, details: dict[str, object],
        campaign_id: int | None = None,
    ) -> None:  # fmt: skip
        if holds and rule not in self.muted:
            opened = await outbound.raise_alert(
                rule=rule, key=key, message=message, details=details, campaign_id=campaign_id
            )
            if opened is not None:
                self.report.raised.append(key)
        elif await outbound.clear_alert(key):
            self.report.cleared.append(key)


async def evaluate(redis: AnyRedis, policy: AlertPolicy, now: datetime | None = None) -> AlertReport:
    """One pass over every rule (see the module docstring). Safe to run twice at once (an
    open episode is unique per key); the worker runs it in one process at a time anyway."""
    now = now or datetime.now(UTC)
    report = AlertReport()
    judge = _Pass(report).judge
    campaigns = await Campaign.filter(status="active").order_by("id")
    active_ids = {c.id for c in campaigns}
    own = await rules_by_campaign(sorted(active_ids))
    for campaign in campaigns:
        # The campaign's own rules where it has them, the settings' otherwise.
        row = own.get(campaign.id)
        mine = applied(policy, row)
        judge_campaign = _Pass(report, muted_of(row)).judge
        await _budget(judge_campaign, campaign, mine, now)
        await _stock(judge_campaign, redis, campaign)
        await _redemptions(judge_campaign, campaign, mine, now)
    # Episodes of campaigns that stopped running end with them.
    for alert in await Alert.filter(open_key__not_isnull=True, rule__in=CAMPAIGN_RULES):
        if alert.campaign_id not in active_ids and await outbound.clear_alert(alert.key):
            report.cleared.append(alert.key)
    failed = await Notification.filter(status="failed", finished_at__gte=now - timedelta(hours=1)).count()
    await judge(
        failed >= policy.notify_failures, rule="notify_failures", key="notify_failures",
        message=f"{failed} notifications failed in the last hour (threshold {policy.notify_failures})",
        details={"failed_last_hour": failed, "threshold": policy.notify_failures},
    )  # fmt: skip
    waiting = await backlog(redis, int(now.timestamp() * 1000))
    await judge(
        waiting.oldest_age_seconds > policy.claims_backlog_seconds, rule="claims_backlog", key="claims_backlog",
        message=f"the oldest claim not yet written is {waiting.oldest_age_seconds:.0f} s old"
        f" (threshold {policy.claims_backlog_seconds:.0f} s)",
        details={"oldest_age_seconds": round(waiting.oldest_age_seconds, 1),
                 "threshold_seconds": policy.claims_backlog_seconds},
    )  # fmt: skip
    return report


async def _budget(judge: _Judge, campaign: Campaign, policy: AlertPolicy, now: datetime) -> None:
    key = f"budget_runout:{campaign.id}"
    limit, spent = campaign.budget_limit, campaign.budget_spent
    started = campaign.activated_at or campaign.starts_at
    if limit is None or limit <= 0 or now >= campaign.ends_at:
        await judge(False, rule="budget_runout", key=key, message="", details={})
        return
    elapsed = max(60.0, (now - started).total_seconds())
    rate = spent / elapsed  # per second
    runout: datetime | None
    if spent >= limit:
        runout = now
    elif rate > 0:
        runout = now + timedelta(seconds=(limit - spent) / rate)
    else:
        runout = None
    holds = runout is not None and runout < campaign.ends_at
    if holds and runout is not None and policy.budget_horizon_hours > 0:
        # Only a run-out within the horizon is worth an alert (a far one may still change).
        holds = runout <= now + timedelta(hours=policy.budget_horizon_hours)
    await judge(
        holds, rule="budget_runout", key=key, campaign_id=campaign.id,
        message=f"campaign {campaign.id}'s budget runs out before it ends"
        + (f" (projected {runout.isoformat()}, ends {campaign.ends_at.isoformat()})" if runout else ""),
        details={"budget_limit": limit, "budget_spent": spent,
                 "projected_runout": runout.isoformat() if runout else None, "ends_at": campaign.ends_at.isoformat(),
                 "horizon_hours": policy.budget_horizon_hours},
    )  # fmt: skip


async def _stock(judge: _Judge, redis: AnyRedis, campaign: Campaign) -> None:
    totals = dict(await CouponTemplate.filter(campaign_id=campaign.id).values_list("id", "total_stock"))
    left = await stock_left(redis, campaign.id, {int(k): int(v) for k, v in totals.items()})
    for coupon_id, (count, _source) in sorted(left.items()):
        await judge(
            count <= 0, rule="stock_sold_out", key=f"stock_sold_out:{campaign.id}:{coupon_id}",
            campaign_id=campaign.id, message=f"coupon {coupon_id} of campaign {campaign.id} is sold out",
            details={"coupon_id": coupon_id, "total_stock": totals[coupon_id]},
        )  # fmt: skip


async def _redemptions(judge: _Judge, campaign: Campaign, policy: AlertPolicy, now: datetime) -> None:
    day_start = now - timedelta(days=1)
    base_start = day_start - timedelta(days=policy.days)
    before = await Redemption.filter(
        campaign_id=campaign.id, reversed_at=None, created_at__gte=base_start, created_at__lt=day_start
    ).count()
    today = await Redemption.filter(
        campaign_id=campaign.id, reversed_at=None, created_at__gte=day_start, created_at__lt=now
    ).count()
    baseline = before / policy.days
    judged = baseline >= policy.min_baseline
    details: dict[str, object] = {"last_24h": today, "daily_average": round(baseline, 2), "days": policy.days}
    await judge(
        judged and today > baseline * policy.spike_factor, rule="redemption_spike",
        key=f"redemption_spike:{campaign.id}", campaign_id=campaign.id,
        message=f"campaign {campaign.id}: {today} redemptions in 24 h, over {policy.spike_factor:g}x the daily"
        f" average of {baseline:.1f}",
        details=details,
    )  # fmt: skip
    await judge(
        judged and today < baseline / policy.drop_factor, rule="redemption_drop",
        key=f"redemption_drop:{campaign.id}", campaign_id=campaign.id,
        message=f"campaign {campaign.id}: {today} redemptions in 24 h, under 1/{policy.drop_factor:g} of the"
        f" daily average of {baseline:.1f}",
        details=details,
    )  # fmt: skip
