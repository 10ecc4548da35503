"""Referrals over real HTTP and the WeChat emulator: invite codes, crediting the inviter's
referral goal exactly once per new customer (also under concurrent logins), and every
kind of code that must not count nor break the login."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from models.campaigns import Campaign, CouponTemplate
from models.customers import Customer
from models.journey import CustomerBadge, PointsEntry, ProgressEntry, RewardGrant
from models.participations import Participation
from models.referrals import InviteCode, Referral
from models.vouchers import Voucher
from server.keys import JOURNEY
from services.journey import points
from tests.helpers import error_of, login_code
from tests.journey.fixtures import challenge, drain_claims, shoppers

LOGIN = "/api/v1/auth/wechat/login"


async def _login(client, openid: str, invite_code: Any = None, *, status: int = 200) -> dict[str, Any]:
    body: dict[str, Any] = {"code": await login_code(client, openid)}
    if invite_code is not None:
        body["invite_code"] = invite_code
    resp = await client.post(LOGIN, json=body)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def _invite(client, shopper) -> dict[str, Any]:
    resp = await client.get("/api/v1/me/invite", headers=shopper.headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def _join(client, campaign_id: int, shopper) -> None:
    resp = await client.post(f"/api/v1/campaigns/{campaign_id}/join", headers=shopper.headers)
    assert resp.status == 201, await resp.text()


async def _progress(client, campaign_id: int, shopper) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/campaigns/{campaign_id}/progress", headers=shopper.headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_invite_code_is_stable_unique_and_shareable(client):
    a, b = await shoppers(client, 2)
    first = await _invite(client, a)
    code = first["invite_code"]
    assert len(code) == 8 and code.isalnum() and code.upper() == code
    assert not set(code) & set("ILOU")  # Crockford: no look-alikes
    assert first["invited_count"] == 0
    assert first["share_path"] == f"{first['share_page']}?invite_code={code}"
    assert first["scene"] == f"i={code}"
    # Asked again, and concurrently: one code.
    again = await asyncio.gather(*(_invite(client, a) for _ in range(10)))
    assert {r["invite_code"] for r in again} == {code}
    assert await InviteCode.filter(customer_id=a.id).count() == 1
    other = (await _invite(client, b))["invite_code"]
    assert other != code
    resp = await client.get("/api/v1/me/invite")
    assert resp.status == 401


async def test_new_customers_complete_the_inviters_referral_goal_and_reward_once(client):
    campaign = await challenge("referrals", 2, reward_points=50, reward_badge="connector")
    await CouponTemplate.create(
        campaign=campaign, kind="fixed", title={"en": "Thanks"}, face_value=500, total_stock=10, per_user_limit=5,
        validity_kind="relative", valid_days=7,
    )  # fmt: skip
    [inviter] = await shoppers(client, 1)
    await _join(client, campaign.id, inviter)
    code = (await _invite(client, inviter))["invite_code"]

    # Read leniently: lower case and a look-alike still name the code.
    typed = code.lower().replace("0", "o").replace("1", "l")
    answer = await _login(client, "o_new_1", typed)
    assert answer["invite"] == "credited"
    view = await _progress(client, campaign.id, inviter)
    assert view["value"] == 1 and view["status"] == "joined"
    assert [(h["source"], h["delta"]) for h in view["history"]] == [("referral", 1)]

    answer = await _login(client, "o_new_2", code)
    assert answer["invite"] == "credited"
    view = await _progress(client, campaign.id, inviter)
    assert view["value"] == 2 and view["status"] == "completed" and view["percent"] == 100

    # A third referral still counts as a referral, but the reward is not granted again.
    assert (await _login(client, "o_new_3", code))["invite"] == "credited"
    participation = await Participation.get(campaign_id=campaign.id, customer_id=inviter.id)
    assert participation.status == "completed" and participation.progress == 2
    assert await PointsEntry.filter(customer_id=inviter.id, reason="campaign_reward").count() == 1
    assert await points.balance_of(inviter.id) == 50
    assert await CustomerBadge.filter(customer_id=inviter.id).count() == 1
    assert await RewardGrant.filter(participation_id=participation.id, status="issued").count() == 1
    await drain_claims(client)
    assert await Voucher.filter(customer_id=inviter.id, campaign_id=campaign.id).count() == 1
    assert (await _invite(client, inviter))["invited_count"] == 3


async def test_the_same_invitee_counts_once_also_when_logging_in_concurrently(client):
    campaign = await challenge("referrals", 100)
    [inviter] = await shoppers(client, 1)
    await _join(client, campaign.id, inviter)
    code = (await _invite(client, inviter))["invite_code"]

    # One new person, ten first logins at once (each with its own wx.login() code).
    codes = [await login_code(client, "o_racer") for _ in range(10)]
    resps = await asyncio.gather(*(client.post(LOGIN, json={"code": c, "invite_code": code}) for c in codes))
    assert [r.status for r in resps] == [200] * 10
    answers = [(await r.json())["invite"] for r in resps]
    assert answers.count("credited") == 1 and answers.count("ignored") == 9
    assert await Customer.filter(openid="o_racer").count() == 1
    # And logging in again later with the code changes nothing.
    assert (await _login(client, "o_racer", code))["invite"] == "ignored"

    # Ten different new people at once with the same code: each counts once.
    resps = await asyncio.gather(
        *[client.post(LOGIN, json={"code": await login_code(client, f"o_crowd_{i}"), "invite_code": code})
          for i in range(10)]
    )  # fmt: skip
    assert [r.status for r in resps] == [200] * 10
    assert [(await r.json())["invite"] for r in resps] == ["credited"] * 10
    view = await _progress(client, campaign.id, inviter)
    assert view["value"] == 11
    assert [h["value_after"] for h in view["history"]] == list(range(1, 12))
    assert await Referral.filter(inviter_id=inviter.id).count() == 11
    assert (await _invite(client, inviter))["invited_count"] == 11


async def test_existing_customers_own_codes_and_bad_codes_do_not_count_nor_break_login(client):
    campaign = await challenge("referrals", 10)
    [inviter] = await shoppers(client, 1)
    await _join(client, campaign.id, inviter)
    code = (await _invite(client, inviter))["invite_code"]
    await _login(client, "o_regular")  # an existing customer

    assert (await _login(client, "o_regular", code))["invite"] == "ignored"
    # The inviter logging in with their own code (shoppers' openid o_j_0).
    assert (await _login(client, inviter.openid, code))["invite"] == "ignored"
    for i, bad in enumerate(("", "nonsense!", "ZZZZZZZZ", "'; drop table customers; --", "码" * 8, "A" * 64)):
        answer = await _login(client, f"o_bad_{i}", bad)
        assert answer["invite"] == ("ignored" if bad else None)
        assert answer["access_token"]
    assert (await _login(client, "o_plain"))["invite"] is None

    assert (await _progress(client, campaign.id, inviter))["value"] == 0
    assert await Referral.all().count() == 0
    assert await ProgressEntry.all().count() == 0

    # Wrong types and oversize are a client's bug: the documented 422, nothing written.
    customers = await Customer.all().count()
    for value in (12345678, ["x"], "A" * 65):
        resp = await client.post(LOGIN, json={"code": await login_code(client, "o_typed"), "invite_code": value})
        assert resp.status == 422, await resp.text()
        error = await error_of(resp)
        assert error["code"] == "validation_failed"
        assert "invite_code" in [e["field"] for e in error["details"]["errors"]]
    assert await Customer.all().count() == customers


async def test_only_referrals_within_the_goal_window_count(client):
    now = datetime.now(UTC)
    running = await challenge("referrals", 10)
    windowed = await challenge("referrals", 10, goal_window_days=1)
    visits = await challenge("visits", 10)  # another metric: untouched
    [inviter] = await shoppers(client, 1)
    for c in (running, windowed, visits):
        await _join(client, c.id, inviter)
    code = (await _invite(client, inviter))["invite_code"]
    # The windowed goal's day has passed for this participant.
    await Participation.filter(campaign_id=windowed.id).update(joined_at=now - timedelta(days=2))
    assert (await _login(client, "o_w1", code))["invite"] == "credited"
    assert (await _progress(client, running.id, inviter))["value"] == 1
    assert (await _progress(client, windowed.id, inviter))["value"] == 0
    assert (await _progress(client, visits.id, inviter))["value"] == 0
    # The campaign ends: later referrals are still recorded, but no longer count towards it.
    await Campaign.filter(id=running.id).update(ends_at=now - timedelta(minutes=1), status="ended")
    client.server.app[JOURNEY].catalog.forget()
    assert (await _login(client, "o_w2", code))["invite"] == "credited"
    assert (await _progress(client, running.id, inviter))["value"] == 1
    assert await Referral.filter(inviter_id=inviter.id).count() == 2
