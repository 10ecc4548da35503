"""The campaign lifecycle: review decisions and the operator's transitions.

draft/rejected/returned --submit--> in_review --approve x levels--> approved --publish-->
scheduled --(scheduler at starts_at)--> active <--pause/resume--> paused --(ends_at or
end)--> ended --archive--> archived. A reject sends it to ``rejected`` (the author edits
and resubmits); a return sends it back one level: from level 1 to the author
(``returned``), from level 2 to level 1 (still ``in_review``).

Every transition is a compare-and-set on (id, status, version): of two admins deciding at
the same moment, exactly one wins and the other gets ``campaign_state_changed``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from models.campaigns import Campaign, ReviewEvent
from services import outbound
from services.campaigns.editing import OPEN_STATES, Policy, get, reviewable_spec
from services.campaigns.exclusivity import exclusive_ids, overlaps_of
from services.core import audit, errors

#: Who may decide at a level, given how many levels the submission needs.
_LEVEL_ROLES: dict[tuple[int, int], frozenset[str]] = {
    (1, 1): frozenset({"reviewer", "approver", "superadmin"}),
    (2, 1): frozenset({"reviewer", "superadmin"}),
    (2, 2): frozenset({"approver", "superadmin"}),
}


@dataclass(frozen=True)
class Move:
    """One compare-and-set transition of a campaign."""

    to: str
    values: dict[str, Any]
    action: str
    review: tuple[str, int, str] | None = None  # (action, level, comment) for the review trail


async def _apply(campaign: Campaign, move: Move, actor: audit.Actor, expected_version: int | None) -> Campaign:
    if expected_version is not None and expected_version != campaign.version:
        raise errors.CampaignStateChanged(details={"version": campaign.version})
    async with in_transaction():
        updated = await Campaign.filter(id=campaign.id, status=campaign.status, version=campaign.version).update(
            status=move.to, version=campaign.version + 1, **move.values
        )
        if updated != 1:
            raise errors.CampaignStateChanged()
        if move.to == "approved":
            # The version the approval diff compares later edits against.
            await Campaign.filter(id=campaign.id).update(approved_spec=await reviewable_spec(campaign))
        if move.review is not None:
            action, level, comment = move.review
            await ReviewEvent.create(
                campaign_id=campaign.id, action=action, level=level, actor_id=actor.id or 0, comment=comment
            )
        await audit.record(
            actor,
            f"campaign.{move.action}",
            "campaign",
            campaign.id,
            # The moved fields' values before, too (start-now's old starts_at).
            {
                "status": campaign.status,
                "version": campaign.version,
                **_jsonable({k: getattr(campaign, k) for k in move.values}),
            },
            {"status": move.to, "version": campaign.version + 1, **_jsonable(move.values)},
        )
        # The webhook outbox, in the transition's transaction (services.outbound).
        await outbound.enqueue(
            "campaign.state_changed",
            f"campaign:{campaign.id}",
            {"campaign_id": campaign.id, "from": campaign.status, "to": move.to, "action": move.action,
             "version": campaign.version + 1, "at": _now().isoformat()},
        )  # fmt: skip
    return await get(campaign.id)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


def _now() -> datetime:
    return datetime.now(UTC)


def _refuse(campaign: Campaign, action: str, allowed: str) -> errors.AppError:
    return errors.InvalidTransition(
        f"cannot {action} a campaign that is {campaign.status} (only {allowed})",
        details={"status": campaign.status, "action": action},
    )


async def submit(campaign_id: int, actor: audit.Actor, policy: Policy, expected_version: int | None = None) -> Campaign:
    """Send to review; with 0 review levels the same path approves it at once."""
    campaign = await get(campaign_id)
    if campaign.status not in OPEN_STATES:
        raise _refuse(campaign, "submit", "draft, rejected or returned")
    values = {
        "review_levels": policy.review_levels,
        "review_level_done": 0,
        "submitted_by": actor.id,
        "submitted_at": _now(),
    }
    campaign = await _apply(campaign, Move("in_review", values, "submit", ("submit", 0, "")), actor, expected_version)
    if policy.review_levels == 0:
        campaign = await _apply(
            campaign,
            Move("approved", {}, "approve", ("approve", 0, "no review required by policy")),
            audit.Actor.system(),
            None,
        )
    return campaign


async def _decision_level(campaign: Campaign, actor: audit.Actor, action: str) -> int:
    if campaign.status != "in_review":
        raise _refuse(campaign, action, "in_review")
    level = campaign.review_level_done + 1
    role = actor.principal.role if actor.principal else None
    allowed = _LEVEL_ROLES.get((campaign.review_levels, level), frozenset())
    if role not in allowed:
        raise errors.ReviewLevelMismatch(
            f"level {level} of {campaign.review_levels} is decided by {' or '.join(sorted(allowed))}",
            details={"level": level, "levels": campaign.review_levels},
        )
    return level


async def approve(campaign_id: int, actor: audit.Actor, comment: str, expected_version: int | None = None) -> Campaign:
    campaign = await get(campaign_id)
    level = await _decision_level(campaign, actor, "approve")
    if actor.id in (campaign.created_by, campaign.submitted_by):
        raise errors.SelfApprovalForbidden()
    # One person, one level: a superadmin cannot approve both levels of a submission.
    earlier = await ReviewEvent.filter(
        campaign_id=campaign.id, action="approve", actor_id=actor.id, created_at__gte=campaign.submitted_at
    ).exists()
    if earlier:
        raise errors.ReviewLevelMismatch("you already approved an earlier level of this submission")
    final = level == campaign.review_levels
    return await _apply(
        campaign,
        Move(
            "approved" if final else "in_review", {"review_level_done": level}, "approve", ("approve", level, comment)
        ),
        actor,
        expected_version,
    )


async def reject(campaign_id: int, actor: audit.Actor, comment: str, expected_version: int | None = None) -> Campaign:
    campaign = await get(campaign_id)
    level = await _decision_level(campaign, actor, "reject")
    return await _apply(
        campaign, Move("rejected", {"review_level_done": 0}, "reject", ("reject", level, comment)), actor,
        expected_version,
    )  # fmt: skip


async def send_back(
    campaign_id: int, actor: audit.Actor, comment: str, expected_version: int | None = None
) -> Campaign:
    """Return one level: level 1 returns to the author, level 2 to level 1."""
    campaign = await get(campaign_id)
    level = await _decision_level(campaign, actor, "return")
    to = "returned" if level == 1 else "in_review"
    return await _apply(
        campaign, Move(to, {"review_level_done": 0}, "return", ("return", level, comment)),
        actor, expected_version,
    )  # fmt: skip


async def publish(campaign_id: int, actor: audit.Actor, expected_version: int | None = None) -> Campaign:
    """Approved → scheduled; the scheduler starts it at starts_at (at once if that passed)."""
    campaign = await get(campaign_id)
    if campaign.status != "approved":
        raise _refuse(campaign, "publish", "approved")
    if campaign.ends_at <= _now():
        raise errors.InvalidSchedule("ends_at: the campaign would already be over", details={"field": "ends_at"})
    return await _apply(campaign, Move("scheduled", {}, "publish"), actor, expected_version)


async def start_now(campaign_id: int, actor: audit.Actor, expected_version: int | None = None) -> Campaign:
    """Approved or scheduled → active now: ``starts_at`` moves to now (when later), with
    no new review, audited as ``campaign.start_now`` (before and after).

    What was approved is the window, and start-now only moves its start earlier, so it is
    refused when the earlier start breaks one of the window's rules:

    - not approved or scheduled: ``invalid_transition``;
    - ``ends_at`` has passed: ``campaign_window_over``;
    - a teaser period was approved (``visible_from``) and has not begun: starting before
      it would break ``visible_from <= starts_at`` (``teaser_required``); once the teaser
      shows, starting now ends it;
    - the earlier window would overlap, in time and scope, a campaign this one is marked
      exclusive with that the approved window did not overlap (``exclusive_overlap``).

    Coupons' own rules still hold: a ``grab_starts_at`` within the old window is within the
    new one, and a fixed validity ending after the old start ends after now. The caller
    loads the stock and refreshes the catalog (the scheduler's path after an activation).
    """
    campaign = await get(campaign_id)
    if campaign.status not in ("approved", "scheduled"):
        raise _refuse(campaign, "start now", "approved or scheduled")
    now = _now()
    if campaign.ends_at <= now:
        raise errors.CampaignWindowOver(details={"ends_at": campaign.ends_at.isoformat()})
    if campaign.visible_from is not None and campaign.visible_from > now:
        raise errors.TeaserRequired(
            details={"visible_from": campaign.visible_from.isoformat(), "starts_at": campaign.starts_at.isoformat()}
        )
    starts_at = min(campaign.starts_at, now)
    if starts_at < campaign.starts_at:
        created = await _new_exclusive_overlaps(campaign, starts_at)
        if created:
            raise errors.ExclusiveOverlap(details={"campaign_ids": created})
    values: dict[str, Any] = {"starts_at": starts_at, "activated_at": now}
    return await _apply(campaign, Move("active", values, "start_now"), actor, expected_version)


async def _new_exclusive_overlaps(campaign: Campaign, starts_at: datetime) -> list[int]:
    """Campaigns exclusive with this one whose window and scope overlap
    [starts_at, ends_at) but not the approved [campaign.starts_at, ends_at)."""
    linked = await exclusive_ids(campaign.id)
    if not linked:
        return []
    moved = await get(campaign.id)
    moved.starts_at = starts_at  # never saved: the overlap search reads the window from it
    found = await overlaps_of(moved)
    return sorted(o.campaign.id for o in found if o.campaign.id in linked and o.campaign.ends_at <= campaign.starts_at)


async def pause(campaign_id: int, actor: audit.Actor, expected_version: int | None = None) -> Campaign:
    campaign = await get(campaign_id)
    if campaign.status != "active":
        raise _refuse(campaign, "pause", "active")
    return await _apply(campaign, Move("paused", {}, "pause"), actor, expected_version)


async def resume(campaign_id: int, actor: audit.Actor, expected_version: int | None = None) -> Campaign:
    campaign = await get(campaign_id)
    if campaign.status != "paused":
        raise _refuse(campaign, "resume", "paused")
    if campaign.ends_at <= _now():
        raise _refuse(campaign, "resume", "paused before its end")
    return await _apply(campaign, Move("active", {}, "resume"), actor, expected_version)


async def end(campaign_id: int, actor: audit.Actor, expected_version: int | None = None) -> Campaign:
    """End early (scheduled, active or paused); the scheduler ends the rest at ends_at."""
    campaign = await get(campaign_id)
    if campaign.status not in ("scheduled", "active", "paused"):
        raise _refuse(campaign, "end", "scheduled, active or paused")
    return await _apply(campaign, Move("ended", {"ended_at": _now()}, "end"), actor, expected_version)


async def archive(campaign_id: int, actor: audit.Actor, expected_version: int | None = None) -> Campaign:
    campaign = await get(campaign_id)
    if campaign.status != "ended":
        raise _refuse(campaign, "archive", "ended")
    return await _apply(campaign, Move("archived", {}, "archive"), actor, expected_version)


#: Due campaigns the scheduler reads at once: a pass with thousands due (a seeded
#: database, a scheduler stopped for a while) would otherwise hold the event loop while
#: it makes thousands of ORM objects (1.4 s for 10,000 in bench.console). 50, not 200:
#: a page of 200 whole campaigns still held the loop ~100 ms (session 14's loop watch).
DUE_PAGE = 50


async def _due(query: QuerySet[Campaign], column: str) -> AsyncIterator[Campaign]:
    """The campaigns of ``query`` in (``column``, id) order, read ``DUE_PAGE`` at a time
    (keyset: a campaign the caller moves out of ``query`` meanwhile is not skipped over)."""
    last: tuple[Any, int] | None = None
    while True:
        page = query
        if last is not None:
            page = page.filter(Q(**{f"{column}__gt": last[0]}) | Q(**{column: last[0], "id__gt": last[1]}))
        rows = await page.order_by(column, "id").limit(DUE_PAGE)
        for campaign in rows:
            yield campaign
        if len(rows) < DUE_PAGE:
            return
        last = (getattr(rows[-1], column), rows[-1].id)


async def run_due(now: datetime | None = None) -> list[tuple[int, str]]:
    """The scheduler's pass: start what is due, end what is over. Returns what it did.

    Safe to run from several processes at once: each transition is a compare-and-set,
    so it happens once whoever gets there first. A scheduled campaign whose whole window
    passed while no scheduler ran is started and then ended, so its history is complete.
    """
    now = now or _now()
    done: list[tuple[int, str]] = []
    system = audit.Actor.system()
    async for campaign in _due(Campaign.filter(status="scheduled", starts_at__lte=now), "starts_at"):
        try:
            await _apply(campaign, Move("active", {"activated_at": now}, "activate"), system, None)
            done.append((campaign.id, "active"))
        except errors.CampaignStateChanged:
            continue  # another process (or an admin) got there first
    async for campaign in _due(Campaign.filter(status__in=("active", "paused"), ends_at__lte=now), "ends_at"):
        try:
            await _apply(campaign, Move("ended", {"ended_at": now}, "finish"), system, None)
            done.append((campaign.id, "ended"))
        except errors.CampaignStateChanged:
            continue
    return done
