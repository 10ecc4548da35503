"""POST /api/v1/admin/campaigns/{id}/start-now: an approved or scheduled campaign starts
at once (starts_at moves to now, no new review, audited), and the stock, the feed and the
scheduler see it started; refused when the earlier start breaks the approved window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.audit import AuditEntry
from models.campaigns import Campaign, CouponTemplate, ExclusivityLink, ReviewEvent
from server.keys import REDIS, STOCK
from server.workers import scheduler_pass
from tests.campaigns.fixtures import iso, now
from tests.campaigns.test_campaign_lifecycle import Team
from tests.helpers import cheap_password_hashing
from tests.journey.fixtures import make_campaign
from tests.stock.fixtures import customers

BASE = "/api/v1/admin/campaigns"


@pytest.fixture
async def team(client_with, monkeypatch) -> Team:
    cheap_password_hashing(monkeypatch)
    # No review levels: submit approves at once (the review is not what is tested here).
    return await Team(await client_with(review_levels=0)).login()


async def approved(team: Team, **overrides) -> dict:
    c = await team.create(**overrides)
    assert (await team.act("op", c["id"], "submit"))["status"] == "approved"
    return c


def parsed(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_an_approved_campaign_starts_now_and_can_be_grabbed(team: Team) -> None:
    client = team.client
    c = await approved(team)
    reviews = await ReviewEvent.filter(campaign_id=c["id"]).count()
    before = now()
    started = await team.act("op", c["id"], "start-now", version=c["version"] + 2)
    after = now()
    assert started["status"] == "active"
    assert before <= parsed(started["starts_at"]) <= after
    assert before <= parsed(started["activated_at"]) <= after
    assert started["ends_at"] == c["ends_at"]  # the window's end is kept
    assert await ReviewEvent.filter(campaign_id=c["id"]).count() == reviews  # no new review
    entry = await AuditEntry.get(entity_id=c["id"], action="campaign.start_now")
    assert entry.before == {
        "status": "approved", "version": c["version"] + 2, "starts_at": parsed(c["starts_at"]).isoformat(),
        "activated_at": None,
    }  # fmt: skip
    assert entry.after["status"] == "active" and parsed(entry.after["starts_at"]) == parsed(started["starts_at"])
    # The scheduler has nothing left to do; the stock was loaded: a customer grabs at once.
    assert await scheduler_pass(client.server.app[REDIS], client.server.app[STOCK], 5) == []
    template = await CouponTemplate.get(campaign_id=c["id"])
    (me,) = await customers(client, 1)
    grab = await client.post(f"/api/v1/coupons/{template.id}/grab", headers=me)
    assert grab.status == 201, await grab.text()


async def test_a_scheduled_campaign_starts_now(team: Team) -> None:
    client = team.client
    c = await approved(team)
    published = await team.act("op", c["id"], "publish")
    assert published["status"] == "scheduled"
    template = await CouponTemplate.get(campaign_id=c["id"])
    (me,) = await customers(client, 1)
    # Loaded at publication with the approved start: not open yet.
    early = await client.post(f"/api/v1/coupons/{template.id}/grab", headers=me)
    assert early.status == 409, await early.text()
    started = await team.act("op", c["id"], "start-now")
    assert started["status"] == "active"
    # The stock took the new schedule.
    grab = await client.post(f"/api/v1/coupons/{template.id}/grab", headers=me)
    assert grab.status == 201, await grab.text()
    page = await client.get(f"/api/v1/campaigns/{c['id']}", headers=me)
    assert (await page.json())["phase"] == "running"


async def test_only_approved_or_scheduled_campaigns_start_now(team: Team) -> None:
    draft = await team.create()
    await team.act("op", draft["id"], "start-now", status=409, code="invalid_transition")
    c = await approved(team)
    await team.act("op", c["id"], "start-now")
    await team.act("op", c["id"], "start-now", status=409, code="invalid_transition")  # already active
    await team.act("op", c["id"], "end")
    await team.act("op", c["id"], "start-now", status=409, code="invalid_transition")
    assert (await Campaign.get(id=c["id"])).status == "ended"


async def test_a_teaser_not_yet_begun_is_required(team: Team) -> None:
    start = now() + timedelta(days=2)
    c = await approved(
        team, visible_from=iso(now() + timedelta(days=1)), starts_at=iso(start), ends_at=iso(start + timedelta(days=1))
    )
    await team.act("op", c["id"], "start-now", status=409, code="teaser_required")
    assert (await Campaign.get(id=c["id"])).status == "approved"
    # Once the teaser shows, starting now ends it.
    await Campaign.filter(id=c["id"]).update(visible_from=now() - timedelta(minutes=1))
    assert (await team.act("op", c["id"], "start-now"))["status"] == "active"


async def test_a_window_already_over_cannot_start(team: Team) -> None:
    c = await approved(team)
    past = datetime.now(UTC) - timedelta(minutes=5)
    await Campaign.filter(id=c["id"]).update(starts_at=past - timedelta(hours=1), ends_at=past)
    await team.act("op", c["id"], "start-now", status=409, code="campaign_window_over")
    assert (await Campaign.get(id=c["id"])).status == "approved"


async def test_an_overlap_with_an_exclusive_campaign_that_the_earlier_start_creates_is_refused(team: Team) -> None:
    c = await approved(team)  # starts tomorrow
    # Exclusive with this one, running now and ending before it starts: back to back as approved.
    other = await make_campaign(ends_at=datetime.now(UTC) + timedelta(hours=2))
    low, high = sorted((c["id"], other.id))
    await ExclusivityLink.create(campaign_low_id=low, campaign_high_id=high, created_by=1)
    resp = await team.client.post(f"{BASE}/{c['id']}/start-now", json={}, headers=team.auth["op"])
    assert resp.status == 409
    error = (await resp.json())["error"]
    assert (error["code"], error["details"]["campaign_ids"]) == ("exclusive_overlap", [other.id])
    assert (await Campaign.get(id=c["id"])).status == "approved"
    # An exclusive campaign that already overlapped the approved window is no new overlap.
    await Campaign.filter(id=other.id).update(ends_at=datetime.now(UTC) + timedelta(days=3))
    assert (await team.act("op", c["id"], "start-now"))["status"] == "active"


async def test_start_now_is_for_builders_and_checks_the_version(team: Team) -> None:
    c = await approved(team)
    await team.act("rev", c["id"], "start-now", status=403)
    await team.act("op", c["id"], "start-now", status=409, code="campaign_state_changed", version=1)
    assert (await Campaign.get(id=c["id"])).status == "approved"
