"""Subscribe messages read the campaign's texts in the customer's language (reported with
their acceptance), where the campaign has it; else its default language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient

from models.campaigns import CouponTemplate
from models.notifications import NotifySubscription
from models.participations import Participation
from models.vouchers import Voucher
from server.keys import REDIS, SETTINGS
from services.notify import localize, reported_language
from services.notify import outbox as notify_outbox
from services.wallet import expiry as voucher_expiry
from tests.journey.fixtures import Shopper, make_campaign, shoppers
from tests.notify.fixtures import ENDING, EXPIRING, NEW, REWARD, SUBS, sender, sent_messages

BILINGUAL = {
    "zh-CN": {"title": "双倍积分周", "badge_name": "早起鸟"},
    "en": {"title": "Double points week", "badge_name": "Bird"},
}


async def subscribe_in(client: TestClient, who: Shopper, template_id: str, **how: str) -> None:
    """Accept a template at WeChat and report it, with the language given as ``language``
    (the body) or ``header`` (Accept-Language)."""
    body: dict[str, object] = {"template_ids": [template_id]}
    headers = dict(who.headers)
    if "language" in how:
        body["language"] = how["language"]
    if "header" in how:
        headers["Accept-Language"] = how["header"]
    resp = await client.post(SUBS, json=body, headers=headers)
    assert resp.status == 200, await resp.text()
    r = await client.post("/_wechat/subscriptions", json={"openid": who.openid, "template_id": template_id})
    assert r.status == 200


async def test_the_acceptance_records_the_customers_language(client: TestClient) -> None:
    a, b, c = await shoppers(client, 3)
    await subscribe_in(client, a, REWARD, language="en")
    await subscribe_in(client, b, REWARD, header="fr;q=0.2, en-US;q=0.9, zh-CN;q=0.5")
    await subscribe_in(client, c, REWARD)
    languages = dict(await NotifySubscription.filter(template_id=REWARD).values_list("customer_id", "language"))
    assert languages == {a.id: "en", b.id: "en-US", c.id: None}
    # A later acceptance in another language replaces it.
    await subscribe_in(client, a, REWARD, language="zh_CN")  # wx.getSystemInfo's spelling
    assert (await NotifySubscription.get(customer_id=a.id, template_id=REWARD)).language == "zh-CN"
    bad = await client.post(SUBS, json={"template_ids": [REWARD], "language": "not a tag"}, headers=a.headers)
    assert bad.status == 422


async def test_a_reward_message_is_in_the_customers_language(client: TestClient) -> None:
    english, chinese, unknown = await shoppers(client, 3)
    await subscribe_in(client, english, REWARD, language="en")
    await subscribe_in(client, chinese, REWARD, language="zh_CN")  # as wx.getSystemInfo says it
    await subscribe_in(client, unknown, REWARD, language="fr")  # the campaign has no French
    campaign = await make_campaign(reward_points=5, reward_badge="early", content=BILINGUAL)
    for who in (english, chinese, unknown):
        resp = await client.post(f"/api/v1/campaigns/{campaign.id}/join", headers=who.headers)
        assert resp.status == 201, await resp.text()
    assert await Participation.filter(campaign_id=campaign.id).count() == 3
    assert (await sender(client).run_once()).sent == 3
    by_openid = {m["touser"]: m["data"] for m in await sent_messages(client)}
    assert by_openid[english.openid]["thing1"]["value"] == "Double points week"
    assert by_openid[english.openid]["thing2"]["value"] == "5 points, badge Bird"  # 20: WeChat's limit
    assert by_openid[chinese.openid]["thing1"]["value"] == "双倍积分周"
    assert by_openid[chinese.openid]["thing2"]["value"] == "5积分、徽章早起鸟"
    # No French: the campaign's default language.
    assert by_openid[unknown.openid]["thing1"]["value"] == "双倍积分周"


async def test_announcements_and_ending_warnings_are_in_the_customers_language(client: TestClient) -> None:
    english, chinese = await shoppers(client, 2)
    for who, language in ((english, "en-GB"), (chinese, "zh-CN")):
        await subscribe_in(client, who, NEW, language=language)
        await subscribe_in(client, who, ENDING, language=language)
    now = datetime.now(UTC)
    campaign = await make_campaign(activated_at=now, ends_at=now + timedelta(hours=2), content=BILINGUAL)
    for who in (english, chinese):
        assert (await client.post(f"/api/v1/campaigns/{campaign.id}/join", headers=who.headers)).status == 201
    report = await notify_outbox.fanout_pass(client.server.app[SETTINGS].notify, 24)
    assert (report.new_campaign, report.campaign_ending) == (2, 2)
    assert (await sender(client).run_once()).sent == 4
    titles = sorted((m["touser"], m["template_id"], m["data"]["thing1"]["value"]) for m in await sent_messages(client))
    assert titles == sorted([
        (english.openid, NEW, "Double points week"), (english.openid, ENDING, "Double points week"),
        (chinese.openid, NEW, "双倍积分周"), (chinese.openid, ENDING, "双倍积分周"),
    ])  # fmt: skip


async def test_a_voucher_reminder_names_the_coupon_in_the_customers_language(client: TestClient) -> None:
    (me,) = await shoppers(client, 1)
    await subscribe_in(client, me, EXPIRING, header="en")
    campaign = await make_campaign(coupons=1)
    template = await CouponTemplate.get(campaign_id=campaign.id)
    now = datetime.now(UTC)
    await Voucher.create(
        claim_id="c-1", template=template, campaign_id=campaign.id, customer_id=me.id, code="CODE1", face_value=500,
        valid_from=now - timedelta(days=1), valid_until=now + timedelta(hours=5), issued_at=now - timedelta(days=1),
    )  # fmt: skip
    await voucher_expiry.expiry_pass(client.server.app[REDIS], interval_seconds=60, reminder_hours=24)
    assert (await sender(client).run_once()).sent == 1
    [message] = await sent_messages(client)
    assert message["data"]["thing1"]["value"] == "Coupon 0"


def test_payloads_written_before_translations_are_sent_as_they_are() -> None:
    old = {"campaign_id": 1, "campaign_title": "旧", "reward": "50积分"}
    assert localize(old, "en") == old
    new = {**old, "campaign_titles": {"zh-CN": "旧", "en": "Old"}, "default_language": "zh-CN"}
    assert localize(new, "en")["campaign_title"] == "Old"
    assert localize(new, None)["campaign_title"] == "旧"
    assert reported_language("en-US,en;q=0.9") == "en-US"
    assert reported_language("*;q=1, ;;;, x") is None
    assert reported_language(None) is None
