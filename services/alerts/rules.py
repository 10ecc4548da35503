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
from typing import NamedTuple

from tortoise.functions import Count

from models.campaigns import Campaign, CouponTemplate
from models.notifications import Notification
from models.redemptions import Redemption
from models.webhooks import Alert
from services import outbound
from services.alerts.campaign_rules import applied, muted_of, rules_by_campaign
from services.alerts.policy import CAMPAIGN_RULES, AlertPolicy
from services.core import AnyRedis
from services.stock import StockSource, backlog, stocks_left

#: ``judge(holds, rule=, key=, message=, details=, campaign_id=)``: raise or clear one subject.
_Judge = Callable[..., Awaitable[None]]


@dataclass
class AlertReport:
    raised: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)


#: Active campaigns judged per step of a pass: each step reads its campaigns' rows,
#: coupons, stock and redemption counts in a few grouped statements, whatever the number of
#: campaigns, and a pass over 10,000 of them never holds the event loop for long (one
#: statement of every campaign as ORM objects held it 1.3 s in bench.console).
PAGE = 200


class _Running(NamedTuple):
    """What the campaign rules read of an active campaign (its row's columns)."""

    id: int
    budget_limit: int | None
    budget_spent: int
    activated_at: datetime | None
    starts_at: datetime
    ends_at: datetime


class _Pass:
    """One pass's judgements. ``open_keys``: the keys with an open episode when the pass
    began, kept current as it raises and clears, so that a subject whose condition does
    not hold and has nothing open costs no statement. An episode another pass opens
    meanwhile (two passes at once, which the worker's lock prevents) is cleared by the
    next pass."""

    def __init__(self, report: AlertReport, open_keys: set[str]) -> None:
        self.report = report
        self.open_keys = open_keys

    def judge(self, muted: frozenset[str] = frozenset()) -> _Judge:
        """``judge(holds, rule=, key=, ...)`` for one subject; a rule in ``muted`` (the
        campaign's own rules mute it) is never raised, and an open episode of it cleared."""

        async def judge(
            holds: bool, *, rule: str, key: str, message: str, details: dict[str, object],
            campaign_id: int | None = None,
        ) -> None:  # fmt: skip
            if holds and rule not in muted:
                if key in self.open_keys:
                    return  # once per episode
                opened = await outbound.raise_alert(
                    rule=rule, key=key, message=message, details=details, campaign_id=campaign_id
                )
                self.open_keys.add(key)
                if opened is not None:
                    self.report.raised.append(key)
            elif key in self.open_keys:
                self.open_keys.discard(key)
                if await outbound.clear_alert(key):
                    self.report.cleared.append(key)

        return judge


async def evaluate(redis: AnyRedis, policy: AlertPolicy, now: datetime | None = None) -> AlertReport:
    """One pass over every rule (see the module docstring). Safe to run twice at once (an
    open episode is unique per key); the worker runs it in one process at a time anyway.
    Active campaigns are judged ``PAGE`` at a time, in id order."""
    now = now or datetime.now(UTC)
    report = AlertReport()
    open_keys = await Alert.filter(open_key__not_isnull=True).values_list("open_key", flat=True)
    judging = _Pass(report, {str(key) for key in open_keys})
    active_ids: set[int] = set()
    after = 0
    while True:
        rows = (
            await Campaign.filter(status="active", id__gt=after)
            .order_by("id")
            .limit(PAGE)
            .values_list(*_Running._fields)
        )
        if not rows:
            break
        page = [_Running(*row) for row in rows]
        after = page[-1].id
        active_ids.update(c.id for c in page)
        await _judge_page(judging, redis, page, policy, now)
    # Episodes of campaigns that stopped running end with them.
    for alert in await Alert.filter(open_key__not_isnull=True, rule__in=CAMPAIGN_RULES):
        if alert.campaign_id not in active_ids:
            await judging.judge()(False, rule=alert.rule, key=alert.key, message="", details={})
    judge = judging.judge()
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


async def _judge_page(
    judging: _Pass, redis: AnyRedis, page: list[_Running], policy: AlertPolicy, now: datetime
) -> None:
    """The campaign rules over one page of active campaigns, their reads grouped."""
    ids = [c.id for c in page]
    own = await rules_by_campaign(ids)
    # The campaign's own rules where it has them, the settings' otherwise.
    mine = {c.id: applied(policy, own.get(c.id)) for c in page}
    totals: dict[int, dict[int, int]] = {}
    for campaign_id, template_id, total in await CouponTemplate.filter(campaign_id__in=ids).values_list(
        "campaign_id", "id", "total_stock"
    ):
        totals.setdefault(int(campaign_id), {})[int(template_id)] = int(total)
    left = await stocks_left(redis, totals)
    day_start = now - timedelta(days=1)
    today = await _redemptions_between(ids, day_start, now)
    before: dict[int, int] = {}
    for days in {p.days for p in mine.values()}:  # the window differs only where a campaign's rules change it
        before.update(
            {
                i: n
                for i, n in (await _redemptions_between(ids, day_start - timedelta(days=days), day_start)).items()
                if mine[i].days == days
            }
        )
    for campaign in page:
        judge = judging.judge(muted_of(own.get(campaign.id)))
        await _budget(judge, campaign, mine[campaign.id], now)
        await _stock(judge, campaign.id, totals.get(campaign.id, {}), left.get(campaign.id, {}))
        await _redemptions(judge, campaign.id, mine[campaign.id], before.get(campaign.id, 0), today.get(campaign.id, 0))


async def _redemptions_between(campaign_ids: list[int], start: datetime, end: datetime) -> dict[int, int]:
    """Redemptions not reversed per campaign, ``start`` ≤ created < ``end`` (0: left out)."""
    rows = (
        await Redemption.filter(
            campaign_id__in=campaign_ids, reversed_at=None, created_at__gte=start, created_at__lt=end
        )
        .annotate(n=Count("id"))
        .group_by("campaign_id")
        .values_list("campaign_id", "n")
    )
    return {int(campaign_id): int(n) for campaign_id, n in rows}


async def _budget(judge: _Judge, campaign: _Running, policy: AlertPolicy, now: datetime) -> None:
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


async def _stock(
    judge: _Judge, campaign_id: int, totals: dict[int, int], left: dict[int, tuple[int, StockSource]]
) -> None:
    for coupon_id, (count, _source) in sorted(left.items()):
        await judge(
            count <= 0, rule="stock_sold_out", key=f"stock_sold_out:{campaign_id}:{coupon_id}",
            campaign_id=campaign_id, message=f"coupon {coupon_id} of campaign {campaign_id} is sold out",
            details={"coupon_id": coupon_id, "total_stock": totals[coupon_id]},
        )  # fmt: skip


async def _redemptions(judge: _Judge, campaign_id: int, policy: AlertPolicy, before: int, today: int) -> None:
    """``before``: redemptions in the ``policy.days`` days before the last 24 hours;
    ``today``: in the last 24 hours."""
    baseline = before / policy.days
    judged = baseline >= policy.min_baseline
    details: dict[str, object] = {"last_24h": today, "daily_average": round(baseline, 2), "days": policy.days}
    await judge(
        judged and today > baseline * policy.spike_factor, rule="redemption_spike",
        key=f"redemption_spike:{campaign_id}", campaign_id=campaign_id,
        message=f"campaign {campaign_id}: {today} redemptions in 24 h, over {policy.spike_factor:g}x the daily"
        f" average of {baseline:.1f}",
        details=details,
    )  # fmt: skip
    await judge(
        judged and today < baseline / policy.drop_factor, rule="redemption_drop",
        key=f"redemption_drop:{campaign_id}", campaign_id=campaign_id,
        message=f"campaign {campaign_id}: {today} redemptions in 24 h, under 1/{policy.drop_factor:g} of the"
        f" daily average of {baseline:.1f}",
        details=details,
    )  # fmt: skip
