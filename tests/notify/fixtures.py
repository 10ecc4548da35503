"""Subscribe-message helpers shared by the notification and automation tests."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp.test_utils import TestClient

from server.keys import REDIS, SETTINGS, WECHAT
from server.workers import notify_sender
from services.notify import NotifySender
from tests.journey.fixtures import Shopper

SUBS = "/api/v1/me/subscriptions"
SEND = "/cgi-bin/message/subscribe/send"
REWARD = "emu_reward"
NEW = "emu_new_campaign"
ENDING = "emu_campaign_ending"
EXPIRING = "emu_voucher_expiring"


def sender(client: TestClient, **overrides: Any) -> NotifySender:
    """The sender the workers run, built from the app's settings (with overrides)."""
    app = client.server.app
    settings = dataclasses.replace(app[SETTINGS], **{"notify_retry_seconds": 0.0, **overrides})
    return notify_sender(app[REDIS], app[WECHAT], settings)


async def subscribe(client: TestClient, who: Shopper, *template_ids: str, at_wechat: bool = True) -> None:
    """What the mini program does after wx.requestSubscribeMessage: WeChat records the
    acceptance (the emulator's control route plays that part) and we are told."""
    resp = await client.post(SUBS, json={"template_ids": list(template_ids)}, headers=who.headers)
    assert resp.status == 200, await resp.text()
    if at_wechat:
        for template_id in template_ids:
            r = await client.post("/_wechat/subscriptions", json={"openid": who.openid, "template_id": template_id})
            assert r.status == 200


async def sent_messages(client: TestClient) -> list[dict[str, Any]]:
    return await (await client.get("/_wechat/sent-messages")).json()
