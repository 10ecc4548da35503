"""Campaign messages under a running experiment (services/notify/sender.py): the
no-contact holdout is not sent them, and the exposure is logged with surface
"notification", once per customer, over the real sender, Redis and the WeChat emulator."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models.experiments import ExperimentExposure
from models.notifications import Notification, NotifySubscription
from server.keys import SETTINGS
from services.experiments import assignment
from services.notify import outbox as notify_outbox
from tests.helpers import bearer, cheap_password_hashing, logged_in_admin
from tests.journey.fixtures import make_campaign, shoppers
from tests.notify.fixtures import ENDING, NEW, sender, sent_messages, subscribe

ROOT = "/api/v1/admin/experiments"


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


def _arm(e: dict[str, Any], customer_id: int) -> int | None:
    return assignment.assign(
        salt=e["salt"], bucket_version=e["bucket_version"], customer_id=customer_id,
        weights=[a["weight"] for a in e["arms"]], layer=e["layer"], traffic=tuple(e["traffic_range"]),
    )  # fmt: skip


async def _remaining(customer_id: int, template_id: str) -> int:
    row = await NotifySubscription.get_or_none(customer_id=customer_id, template_id=template_id)
    return row.remaining if row else 0


async def test_holdout_gets_no_campaign_messages_and_sends_log_one_exposure(client):
    people = await shoppers(client, 30, prefix="o_xn")
    for p in people:
        await subscribe(client, p, NEW, ENDING)
        await subscribe(client, p, NEW)  # two announcements: this campaign's and the other's
    now = datetime.now(UTC)
    campaign = await make_campaign(activated_at=now, ends_at=now + timedelta(hours=2))
    await make_campaign(activated_at=now)  # no experiment: everyone is told
    ops = bearer((await logged_in_admin(client, "operator"))["access_token"])
    body = {
        "campaign_id": campaign.id, "name": "message test", "primary_metric": "join",
        "arms": [{"key": "a", "weight": 1}, {"key": "b", "weight": 1}], "holdout": {"weight": 1},
    }  # fmt: skip
    resp = await client.post(ROOT, json=body, headers=ops)
    assert resp.status == 201, await resp.text()
    resp = await client.post(f"{ROOT}/{(await resp.json())['id']}/start", headers=ops)
    assert resp.status == 200, await resp.text()
    e = await resp.json()
    arms = {p.id: _arm(e, p.id) for p in people}
    held = {c for c, arm in arms.items() if arm == 2}
    assert held and len(held) < len(people)

    report = await notify_outbox.fanout_pass(client.server.app[SETTINGS].notify, 24)
    assert report.new_campaign == 2 * len(people)  # the holdout is enqueued, and held at the send
    report = await sender(client).run_once()
    assert report.sent == 2 * len(people) - len(held) and report.skipped == len(held)
    rows = await Notification.filter(key__startswith=f"new_campaign:{campaign.id}:").values_list(
        "customer_id", "status", "errmsg"
    )
    for customer_id, status, errmsg in rows:
        if customer_id in held:
            assert (status, errmsg) == ("skipped", "experiment_holdout")
            assert await _remaining(customer_id, NEW) == 1  # taken by the other campaign's message only
        else:
            assert status == "sent"
    sent_to = Counter(m["touser"] for m in await sent_messages(client))
    for p in people:
        assert sent_to[p.openid] == (1 if p.id in held else 2)
    exposures = await ExperimentExposure.filter(experiment_id=e["id"]).values_list("customer_id", "arm", "surface")
    assert sorted(exposures) == sorted((c, arms[c], "notification") for c in arms)

    # A second campaign message: still one exposure per customer, the holdout still held.
    await notify_outbox.enqueue_many(
        [(f"campaign_ending:{campaign.id}:{p.id}", "campaign_ending", p.id, {
            "campaign_id": campaign.id, "campaign_title": "优惠", "ends_at": campaign.ends_at.isoformat(),
        }) for p in people]
    )  # fmt: skip
    report = await sender(client).run_once()
    assert report.sent == len(people) - len(held) and report.skipped == len(held)
    assert await ExperimentExposure.filter(experiment_id=e["id"]).count() == len(people)
    for c in held:
        assert await _remaining(c, ENDING) == 1  # nothing taken for a held-back message

    # Stopped: the holdout is contacted again.
    resp = await client.post(f"{ROOT}/{e['id']}/stop", headers=ops)
    assert resp.status == 200, await resp.text()
    one = next(iter(held))
    await notify_outbox.enqueue_many(
        [(f"campaign_ending:{campaign.id}:{one}:after", "campaign_ending", one, {
            "campaign_id": campaign.id, "campaign_title": "优惠", "ends_at": campaign.ends_at.isoformat(),
        })]
    )  # fmt: skip
    assert (await sender(client).run_once()).sent == 1
