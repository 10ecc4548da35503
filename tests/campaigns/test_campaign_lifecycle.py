"""The review workflow and lifecycle with 0, 1 and 2 review levels, and the scheduler."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

from models.audit import AuditEntry
from models.campaigns import Campaign, ReviewEvent
from server.keys import REDIS, STOCK
from server.workers import scheduler_pass
from services.campaigns import review
from tests.campaigns.fixtures import campaign_body, iso, now
from tests.helpers import bearer, cheap_password_hashing, count_rows, error_of, logged_in_admin

BASE = "/api/v1/admin/campaigns"
ROOT = Path(__file__).resolve().parents[2]


class Team:
    """An operator, two reviewers, an approver and a superadmin, logged in."""

    def __init__(self, client):
        self.client = client
        self.auth: dict[str, dict[str, str]] = {}

    async def login(self) -> Team:
        for name, role in (("op", "operator"), ("rev", "reviewer"), ("rev2", "reviewer"), ("appr", "approver"),
                           ("root", "superadmin")):  # fmt: skip
            self.auth[name] = bearer((await logged_in_admin(self.client, role, name))["access_token"])
        return self

    async def create(self, **overrides) -> dict:
        resp = await self.client.post(BASE, json=campaign_body(**overrides), headers=self.auth["op"])
        assert resp.status == 201, await resp.text()
        return await resp.json()

    async def act(self, who: str, campaign_id: int, action: str, status: int = 200, code: str | None = None, **body):
        resp = await self.client.post(f"{BASE}/{campaign_id}/{action}", json=body, headers=self.auth[who])
        assert resp.status == status, await resp.text()
        if code is not None:
            assert (await error_of(resp))["code"] == code
        return await resp.json()


async def _team(client, monkeypatch) -> Team:
    cheap_password_hashing(monkeypatch)
    return await Team(client).login()


async def test_one_level_walk_through_every_state(client_with, monkeypatch):
    client = await client_with(review_levels=1)
    team = await _team(client, monkeypatch)
    start = now() + timedelta(seconds=1.5)
    c = await team.create(starts_at=iso(start), ends_at=iso(start + timedelta(seconds=1.5)))
    cid = c["id"]
    assert (await team.act("op", cid, "submit"))["status"] == "in_review"
    assert (await team.act("rev", cid, "approve", comment="ok"))["status"] == "approved"
    assert (await team.act("op", cid, "publish"))["status"] == "scheduled"
    redis, stock = client.server.app[REDIS], client.server.app[STOCK]
    assert await scheduler_pass(redis, stock, 5) == []  # not due yet
    await asyncio.sleep(max(0.0, (start - now()).total_seconds()) + 0.05)
    assert await scheduler_pass(redis, stock, 5) == [(cid, "active")]
    assert (await team.act("op", cid, "pause"))["status"] == "paused"
    assert (await team.act("op", cid, "resume"))["status"] == "active"
    await asyncio.sleep(max(0.0, (start + timedelta(seconds=1.5) - now()).total_seconds()) + 0.05)
    assert await scheduler_pass(redis, stock, 5) == [(cid, "ended")]
    assert (await team.act("op", cid, "archive"))["status"] == "archived"
    actions = (
        await AuditEntry.filter(entity_type="campaign", entity_id=cid).order_by("id").values_list("action", flat=True)
    )
    assert actions == [
        "campaign.create", "campaign.submit", "campaign.approve", "campaign.publish", "campaign.activate",
        "campaign.pause", "campaign.resume", "campaign.finish", "campaign.archive",
    ]  # fmt: skip
    system = await AuditEntry.get(entity_id=cid, action="campaign.activate")
    assert system.actor_kind == "system"


async def test_zero_levels_approves_through_the_same_path(client_with, monkeypatch):
    client = await client_with(review_levels=0)
    team = await _team(client, monkeypatch)
    c = await team.create()
    approved = await team.act("op", c["id"], "submit")
    assert approved["status"] == "approved"
    trail = await ReviewEvent.filter(campaign_id=c["id"]).order_by("id").values_list("action", "level")
    assert trail == [("submit", 0), ("approve", 0)]


async def test_two_levels_in_order_by_the_right_roles(client_with, monkeypatch):
    client = await client_with(review_levels=2)
    team = await _team(client, monkeypatch)
    cid = (await team.create())["id"]
    await team.act("op", cid, "submit")
    # The approver may not skip level 1; a reviewer may not decide level 2.
    await team.act("appr", cid, "approve", 403, "review_level_mismatch")
    first = await team.act("rev", cid, "approve")
    assert (first["status"], first["review_level_done"]) == ("in_review", 1)
    await team.act("rev2", cid, "approve", 403, "review_level_mismatch")
    final = await team.act("appr", cid, "approve")
    assert (final["status"], final["review_level_done"]) == ("approved", 2)


async def test_a_superadmin_cannot_approve_both_levels(client_with, monkeypatch):
    client = await client_with(review_levels=2)
    team = await _team(client, monkeypatch)
    cid = (await team.create())["id"]
    await team.act("op", cid, "submit")
    await team.act("root", cid, "approve")
    await team.act("root", cid, "approve", 403, "review_level_mismatch")
    assert (await Campaign.get(id=cid)).status == "in_review"


async def test_nobody_approves_their_own_campaign(client, monkeypatch):
    team = await _team(client, monkeypatch)
    resp = await client.post(BASE, json=campaign_body(), headers=team.auth["root"])
    cid = (await resp.json())["id"]
    await team.act("root", cid, "submit")
    await team.act("root", cid, "approve", 403, "self_approval_forbidden")
    assert (await Campaign.get(id=cid)).status == "in_review"


async def test_reject_and_return_then_resubmit(client_with, monkeypatch):
    client = await client_with(review_levels=2)
    team = await _team(client, monkeypatch)
    cid = (await team.create())["id"]
    await team.act("op", cid, "submit")
    await team.act("rev", cid, "reject", 422, "validation_failed")  # a comment is required
    rejected = await team.act("rev", cid, "reject", comment="banner is blurry")
    assert rejected["status"] == "rejected"
    await team.act("op", cid, "submit")
    await team.act("rev", cid, "approve")
    # Level 2 returns to level 1: still in review, level 1 decides again.
    back = await team.act("appr", cid, "return", comment="check the terms")
    assert (back["status"], back["review_level_done"]) == ("in_review", 0)
    # Level 1 returns to the author.
    returned = await team.act("rev", cid, "return", comment="fix the terms")
    assert returned["status"] == "returned"
    resp = await client.patch(f"{BASE}/{cid}", json={"tags": ["fixed"]}, headers=team.auth["op"])
    assert resp.status == 200
    assert (await team.act("op", cid, "submit"))["status"] == "in_review"
    comments = await ReviewEvent.filter(campaign_id=cid).exclude(comment="").values_list("comment", flat=True)
    assert comments == ["banner is blurry", "check the terms", "fix the terms"]


async def test_forbidden_transitions_change_nothing(client, monkeypatch):
    team = await _team(client, monkeypatch)
    cid = (await team.create())["id"]
    for who, action in (("op", "publish"), ("op", "pause"), ("op", "resume"), ("op", "archive"), ("rev", "approve")):
        await team.act(who, cid, action, 409, "invalid_transition")
    await team.act("op", cid, "submit")
    await team.act("op", cid, "submit", 409, "invalid_transition")
    await team.act("rev", cid, "approve")
    await team.act("op", cid, "archive", 409, "invalid_transition")
    resp = await client.delete(f"{BASE}/{cid}", headers=team.auth["op"])
    assert (await error_of(resp))["code"] == "campaign_not_editable"
    campaign = await Campaign.get(id=cid)
    assert campaign.status == "approved"
    # Only the operator's roles move a campaign along.
    await team.act("rev", cid, "publish", 403, "forbidden")


async def test_two_reviewers_approving_at_once(client, monkeypatch):
    team = await _team(client, monkeypatch)
    cid = (await team.create())["id"]
    await team.act("op", cid, "submit")
    resps = await asyncio.gather(
        *(client.post(f"{BASE}/{cid}/approve", json={}, headers=team.auth[who]) for who in ("rev", "rev2", "appr"))
    )
    statuses = sorted(r.status for r in resps)
    assert statuses == [200, 409, 409], statuses
    assert await ReviewEvent.filter(campaign_id=cid, action="approve").count() == 1
    assert (await Campaign.get(id=cid)).version == 3  # create 1, submit 2, approve 3


async def test_edits_after_approval_follow_the_policy(client_with, monkeypatch):
    client = await client_with(review_levels=1, copy_edits_skip_review=True)
    team = await _team(client, monkeypatch)
    cid = (await team.create())["id"]
    await team.act("op", cid, "submit")
    await team.act("rev", cid, "approve")
    resp = await client.patch(f"{BASE}/{cid}", json={"tags": ["new-copy"]}, headers=team.auth["op"])
    assert (await resp.json())["status"] == "approved"  # copy edit: stays approved
    resp = await client.patch(f"{BASE}/{cid}", json={"budget_limit": 50_000}, headers=team.auth["op"])
    assert (await resp.json())["status"] == "in_review"  # rule edit: back to review
    await team.act("rev", cid, "approve")
    await team.act("op", cid, "publish")
    await Campaign.filter(id=cid).update(starts_at=now() - timedelta(seconds=1))
    await review.run_due()
    assert (await Campaign.get(id=cid)).status == "active"
    resp = await client.patch(f"{BASE}/{cid}", json={"per_user_limit": 5}, headers=team.auth["op"])
    assert resp.status == 409
    assert (await error_of(resp))["code"] == "campaign_not_editable"
    resp = await client.patch(f"{BASE}/{cid}", json={"tags": ["live-copy"]}, headers=team.auth["op"])
    assert resp.status == 200
    await team.act("op", cid, "end")
    resp = await client.patch(f"{BASE}/{cid}", json={"tags": ["too-late"]}, headers=team.auth["op"])
    assert (await error_of(resp))["code"] == "campaign_not_editable"
    assert (await Campaign.get(id=cid)).tags == ["live-copy"]


async def test_strict_policy_sends_copy_edits_to_review(client_with, monkeypatch):
    client = await client_with(review_levels=1, copy_edits_skip_review=False)
    team = await _team(client, monkeypatch)
    cid = (await team.create())["id"]
    await team.act("op", cid, "submit")
    await team.act("rev", cid, "approve")
    resp = await client.patch(f"{BASE}/{cid}", json={"tags": ["copy"]}, headers=team.auth["op"])
    assert (await resp.json())["status"] == "in_review"


async def test_concurrent_scheduler_passes_start_a_campaign_once(client, monkeypatch):
    team = await _team(client, monkeypatch)
    cid = (await team.create())["id"]
    await team.act("op", cid, "submit")
    await team.act("rev", cid, "approve")
    await team.act("op", cid, "publish")
    await Campaign.filter(id=cid).update(starts_at=now() - timedelta(seconds=1))
    # Without the lock, straight at the compare-and-set: still exactly once.
    results = await asyncio.gather(*(review.run_due() for _ in range(10)))
    assert sum(len(r) for r in results) == 1
    assert await AuditEntry.filter(entity_id=cid, action="campaign.activate").count() == 1


async def test_scheduler_fires_once_with_two_server_processes(client_with, settings, monkeypatch):
    """This process's app and a second `python -m server` share the database and Redis;
    both run the scheduler every 50 ms. The campaign starts once, on time."""
    client = await client_with(run_workers=True, scheduler_interval=0.05)
    team = await _team(client, monkeypatch)
    start = now() + timedelta(seconds=2)
    cid = (await team.create(starts_at=iso(start), ends_at=iso(start + timedelta(days=1))))["id"]
    await team.act("op", cid, "submit")
    await team.act("rev", cid, "approve")
    await team.act("op", cid, "publish")
    env = {
        **os.environ,
        "APP_ENV": "test",
        "HOST": "127.0.0.1",
        "PORT": str(settings.port + 1 if settings.port < 65535 else settings.port - 1),
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "SECRET_KEY": settings.secret_key,
        "AUTO_MIGRATE": "false",
        "SCHEDULER_INTERVAL": "0.05",
        "DATA_DIR": str(settings.data_dir),
    }
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if (await Campaign.get(id=cid)).status == "active":
                break
            await asyncio.sleep(0.05)
        activated = await Campaign.get(id=cid)
        assert activated.status == "active"
        assert activated.activated_at >= start
        await asyncio.sleep(0.5)  # both schedulers keep running: nothing happens twice
        assert await AuditEntry.filter(entity_id=cid, action="campaign.activate").count() == 1
        assert other.returncode is None  # the second process was really running
    finally:
        other.terminate()
        await other.wait()


async def test_scheduler_catches_up_on_start(client_with, monkeypatch):
    """A campaign whose whole window passed while nothing ran is started and ended when a
    server comes up, so its history is complete."""
    client = await client_with()
    team = await _team(client, monkeypatch)
    cid = (await team.create())["id"]
    await team.act("op", cid, "submit")
    await team.act("rev", cid, "approve")
    await team.act("op", cid, "publish")
    await Campaign.filter(id=cid).update(starts_at=now() - timedelta(days=3), ends_at=now() - timedelta(days=1))
    await client_with(run_workers=True, scheduler_interval=0.05)  # a restart, with the scheduler on
    deadline = time.monotonic() + 10
    while (await Campaign.get(id=cid)).status != "ended" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    actions = await AuditEntry.filter(entity_id=cid).order_by("id").values_list("action", flat=True)
    assert actions[-2:] == ["campaign.activate", "campaign.finish"]


async def test_customer_facts_are_recomputed_once_a_day(client):
    from datetime import date

    from models.audience import CustomerDailyActivity, CustomerFacts
    from models.customers import Customer
    from server.workers import daily_facts_pass

    customer = await Customer.create(openid="o_facts")
    await CustomerDailyActivity.create(customer=customer, day=date.today() - timedelta(days=40), spend=5000, visits=1)
    redis = client.server.app[REDIS]
    assert await daily_facts_pass(redis) is True
    facts = await CustomerFacts.get(customer_id=customer.id)
    assert (facts.spend_30d, facts.spend_90d) == (0, 5000)
    assert await daily_facts_pass(redis) is False  # once a day, whichever process gets there


async def test_the_scheduler_reads_due_campaigns_a_page_at_a_time(client, monkeypatch):
    """Thousands due at once (a seeded database, a scheduler stopped a while) were read in
    one statement as ORM objects, holding the event loop 1.4 s at 10,000; now a page at a
    time, in order, none skipped, ties on the time broken by id."""
    at = now()
    starts = [at - timedelta(minutes=m) for m in (9, 5, 5, 5, 5, 3, 1)]
    due = [
        await Campaign.create(
            type="flash_sale", status="scheduled", content={"zh-CN": {"title": "t"}}, channels=["miniprogram"],
            starts_at=s, ends_at=at + timedelta(days=1), created_by=1,
        )
        for s in starts
    ]  # fmt: skip
    over = [
        await Campaign.create(
            type="flash_sale", status="active", content={"zh-CN": {"title": "t"}}, channels=["miniprogram"],
            starts_at=at - timedelta(days=1), ends_at=at - timedelta(minutes=m), created_by=1,
        )
        for m in (2, 2, 1)
    ]  # fmt: skip
    monkeypatch.setattr(review, "DUE_PAGE", 3, raising=False)  # absent before: the count fails
    rows = count_rows(monkeypatch)
    done = await review.run_due(at)
    monkeypatch.undo()
    assert done == [(c.id, "active") for c in due] + [(c.id, "ended") for c in over]
    assert 0 < rows.most <= 3
