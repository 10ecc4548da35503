"""Experiments over real HTTP, Redis and both databases: the admin routes (validation,
roles, transitions), assignment as published, exposures logged once (also under
concurrency), the holdout seeing no contact, re-weighting that moves nobody exposed,
mutually exclusive layers, and the results."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models.audit import AuditEntry
from models.experiments import Experiment, ExperimentExposure
from models.participations import Participation
from server.keys import REDIS
from services.experiments import arms_key, assignment
from tests.helpers import bearer, cheap_password_hashing, error_of, logged_in_admin
from tests.journey.fixtures import make_campaign, shoppers

ROOT = "/api/v1/admin/experiments"


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


def _body(campaign_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id, "name": "banner test", "primary_metric": "join", "guardrails": ["redemption"],
        "arms": [{"key": "a", "name": "control", "weight": 50}, {"key": "b", "weight": 50}],
        "holdout": {"weight": 25}, **extra,
    }  # fmt: skip


async def _create(client, ops, campaign_id: int, *, start: bool = True, **extra: Any) -> dict[str, Any]:
    resp = await client.post(ROOT, json=_body(campaign_id, **extra), headers=ops)
    assert resp.status == 201, await resp.text()
    made = await resp.json()
    if start:
        resp = await client.post(f"{ROOT}/{made['id']}/start", headers=ops)
        assert resp.status == 200, await resp.text()
        made = await resp.json()
    return made


def _expected_arm(e: dict[str, Any], customer_id: int, version: int | None = None) -> int | None:
    return assignment.assign(
        salt=e["salt"], bucket_version=version or e["bucket_version"], customer_id=customer_id,
        weights=[a["weight"] for a in e["arms"]], layer=e["layer"], traffic=tuple(e["traffic_range"]),
    )  # fmt: skip


async def _redis_arm(redis: Any, experiment_id: int, customer_id: int) -> int:
    stored = await redis.hget(arms_key(experiment_id), str(customer_id))
    return int((stored.decode() if isinstance(stored, bytes) else stored).split(":")[0])


async def _feed_ids(client, headers: dict[str, str]) -> set[int]:
    resp = await client.get("/api/v1/feed", headers=headers)
    assert resp.status == 200, await resp.text()
    return {item["id"] for item in (await resp.json())["items"]}


async def test_bad_input_is_refused_with_documented_errors(client):
    ops = bearer((await logged_in_admin(client, "operator"))["access_token"])
    reviewer = bearer((await logged_in_admin(client, "reviewer"))["access_token"])
    campaign = await make_campaign()

    async def refused(body: dict[str, Any], status: int, code: str) -> None:
        resp = await client.post(ROOT, json=body, headers=ops)
        assert resp.status == status, (body, await resp.text())
        assert (await error_of(resp))["code"] == code

    good = _body(campaign.id)
    await refused({**good, "arms": good["arms"][:1]}, 422, "validation_failed")
    await refused({**good, "arms": [{"key": f"k{i}", "weight": 1} for i in range(6)]}, 422, "validation_failed")
    await refused({**good, "arms": [{"key": "a", "weight": 1}, {"key": "a", "weight": 1}]}, 422, "validation_failed")
    await refused({**good, "arms": [{"key": "a", "weight": 0}, {"key": "b", "weight": 1}]}, 422, "validation_failed")
    await refused({**good, "arms": [{"key": "A B", "weight": 1}, {"key": "b", "weight": 1}]}, 422, "validation_failed")
    await refused({**good, "primary_metric": "clicks"}, 422, "validation_failed")
    await refused({**good, "guardrails": ["join"]}, 422, "validation_failed")
    await refused({**good, "holdout": {"weight": -1}}, 422, "validation_failed")
    await refused({**good, "traffic_percent": 0}, 422, "validation_failed")
    await refused({**good, "campaign_id": 10**9}, 422, "unknown_campaign")
    await refused({**good, "extra": True}, 422, "validation_failed")
    resp = await client.post(ROOT, data=b"{", headers={**ops, "Content-Type": "application/json"})
    assert resp.status == 400 and (await error_of(resp))["code"] == "invalid_json"
    resp = await client.post(ROOT, json=good, headers=reviewer)
    assert resp.status == 403 and (await error_of(resp))["code"] == "forbidden"
    assert await Experiment.all().count() == 0

    made = await _create(client, ops, campaign.id, start=False)
    resp = await client.get(f"{ROOT}/{made['id']}", headers=reviewer)  # every admin reads
    assert resp.status == 200 and (await resp.json())["status"] == "draft"
    resp = await client.post(f"{ROOT}/{made['id']}/stop", headers=ops)
    assert resp.status == 409 and (await error_of(resp))["code"] == "invalid_transition"
    assert (await client.post(f"{ROOT}/{made['id']}/start", headers=ops)).status == 200
    resp = await client.post(f"{ROOT}/{made['id']}/start", headers=ops)
    assert resp.status == 409 and (await error_of(resp))["code"] == "invalid_transition"
    resp = await client.put(f"{ROOT}/{made['id']}/weights", json={"weights": [1, 1]}, headers=ops)
    assert resp.status == 422 and (await error_of(resp))["code"] == "validation_failed"  # 3 with the holdout
    resp = await client.put(f"{ROOT}/{made['id']}/weights", json={"weights": [1, 0, 1]}, headers=ops)
    assert resp.status == 422
    for path in (f"{ROOT}/999999", f"{ROOT}/999999/results", f"{ROOT}/abc"):
        resp = await client.get(path, headers=ops)
        assert resp.status == 404 and (await error_of(resp))["code"] == "not_found"
    resp = await client.get(ROOT, params={"status": "paused"}, headers=ops)
    assert resp.status == 422

    # A second experiment on the campaign takes the traffic left in its layer, or none.
    second = await _create(client, ops, campaign.id, start=False, traffic_percent=10)
    resp = await client.post(f"{ROOT}/{second['id']}/start", headers=ops)
    assert resp.status == 409 and (await error_of(resp))["code"] == "experiment_layer_full"
    listed = await (await client.get(ROOT, params={"campaign_id": campaign.id}, headers=ops)).json()
    assert [e["id"] for e in listed["items"]] == [second["id"], made["id"]]
    actions = await AuditEntry.filter(entity_type="experiment").order_by("id").values_list("action", flat=True)
    assert actions == ["experiment.create", "experiment.start", "experiment.create"]


async def test_assignment_exposure_and_the_holdout(client):
    ops = bearer((await logged_in_admin(client, "operator"))["access_token"])
    campaign = await make_campaign()
    other = await make_campaign()
    e = await _create(client, ops, campaign.id)
    assert e["status"] == "running" and e["layer"] == f"campaigns:{campaign.id}" and e["traffic_range"] == [0, 10_000]
    people = await shoppers(client, 40)
    holdout_index = len(e["arms"]) - 1
    for who in people:
        arm = _expected_arm(e, who.id)
        ids = await _feed_ids(client, who.headers)
        assert other.id in ids
        assert (campaign.id in ids) == (arm != holdout_index), (who.id, arm)
    rows = {r.customer_id: r for r in await ExperimentExposure.filter(experiment_id=e["id"])}
    assert sorted(rows) == sorted(w.id for w in people)
    assert all(rows[w.id].arm == _expected_arm(e, w.id) and rows[w.id].surface == "feed" for w in people)
    held = [w for w in people if rows[w.id].arm == holdout_index]
    shown = [w for w in people if rows[w.id].arm != holdout_index]
    assert held and shown

    # No contact for the holdout: the page and the join are refused with experiment_holdout.
    page = f"/api/v1/campaigns/{campaign.id}"
    for path, method in ((page, "GET"), (page + "/join", "POST")):
        resp = await client.request(method, path, headers=held[0].headers)
        assert resp.status == 403 and (await error_of(resp))["code"] == "experiment_holdout", path
    assert not await Participation.exists(campaign_id=campaign.id, customer_id=held[0].id)
    resp = await client.post(f"/api/v1/campaigns/{campaign.id}/join", headers=shown[0].headers)
    assert resp.status == 201, await resp.text()

    # Logged once, whatever the surface and however many requests at once.
    late = (await shoppers(client, 1, prefix="o_late"))[0]
    feeds = [client.get("/api/v1/feed", headers=late.headers) for _ in range(30)]
    await asyncio.gather(*feeds, *(client.get(page, headers=late.headers) for _ in range(30)))
    assert await ExperimentExposure.filter(experiment_id=e["id"], customer_id=late.id).count() == 1
    assert await ExperimentExposure.filter(experiment_id=e["id"]).count() == len(people) + 1

    # Re-weighting: everyone exposed keeps their arm; newcomers follow the new version.
    resp = await client.put(f"{ROOT}/{e['id']}/weights", json={"weights": [1, 99, 1]}, headers=ops)
    assert resp.status == 200 and (await resp.json())["bucket_version"] == 2
    for who in people:
        await _feed_ids(client, who.headers)
    after = {r.customer_id: r.arm for r in await ExperimentExposure.filter(experiment_id=e["id"])}
    assert all(after[w.id] == rows[w.id].arm for w in people)
    redis = client.server.app[REDIS]
    for w in people:
        assert await _redis_arm(redis, e["id"], w.id) == rows[w.id].arm
    newcomers = await shoppers(client, 20, prefix="o_new")
    e2 = await (await client.get(f"{ROOT}/{e['id']}", headers=ops)).json()
    for who in newcomers:
        await _feed_ids(client, who.headers)
        row = await ExperimentExposure.get(experiment_id=e["id"], customer_id=who.id)
        assert (row.arm, row.bucket_version) == (_expected_arm(e2, who.id), 2)

    # A lost Redis hash does not move anyone: the row wins and Redis is corrected.
    await redis.delete(arms_key(e["id"]))
    ids = await _feed_ids(client, held[0].headers)
    assert campaign.id not in ids
    assert await _redis_arm(redis, e["id"], held[0].id) == holdout_index

    # Stopped: the holdout sees the campaign again; exposures stop.
    assert (await client.post(f"{ROOT}/{e['id']}/stop", headers=ops)).status == 200
    assert campaign.id in await _feed_ids(client, held[0].headers)
    assert (await client.get(f"/api/v1/campaigns/{campaign.id}", headers=held[0].headers)).status == 200


async def test_exclusive_campaigns_share_a_layer(client):
    ops = bearer((await logged_in_admin(client, "operator"))["access_token"])
    first, second = await make_campaign(), await make_campaign()
    resp = await client.put(f"/api/v1/admin/campaigns/{first.id}/exclusive", json={"campaign_ids": [second.id]},
                            headers=ops)  # fmt: skip
    assert resp.status == 200, await resp.text()
    one = await _create(client, ops, first.id, traffic_percent=50, holdout=None)
    two = await _create(client, ops, second.id, traffic_percent=50, holdout=None)
    assert one["layer"] == two["layer"] == f"campaigns:{min(first.id, second.id)}"
    assert one["traffic_range"] == [0, 5000] and two["traffic_range"] == [5000, 10_000]
    third = await _create(client, ops, second.id, start=False, traffic_percent=1)
    resp = await client.post(f"{ROOT}/{third['id']}/start", headers=ops)
    assert resp.status == 409 and (await error_of(resp))["code"] == "experiment_layer_full"
    people = await shoppers(client, 40)
    for who in people:
        await _feed_ids(client, who.headers)
    in_one = set(await ExperimentExposure.filter(experiment_id=one["id"]).values_list("customer_id", flat=True))
    in_two = set(await ExperimentExposure.filter(experiment_id=two["id"]).values_list("customer_id", flat=True))
    assert in_one and in_two and not in_one & in_two
    assert in_one | in_two == {w.id for w in people}  # the two ranges cover the layer


async def test_results(client):
    ops = bearer((await logged_in_admin(client, "operator"))["access_token"])
    reviewer = bearer((await logged_in_admin(client, "reviewer"))["access_token"])
    campaign = await make_campaign()
    e = await _create(client, ops, campaign.id, guardrails=["redemption", "revenue"])
    people = await shoppers(client, 60)
    for who in people:
        await _feed_ids(client, who.headers)
    rows = {r.customer_id: r.arm for r in await ExperimentExposure.filter(experiment_id=e["id"])}
    joined = 0
    for who in people:
        if rows[who.id] == 1 or (rows[who.id] == 0 and who.id % 3 == 0):
            assert (await client.post(f"/api/v1/campaigns/{campaign.id}/join", headers=who.headers)).status == 201
            joined += 1
    resp = await client.get(f"{ROOT}/{e['id']}/results", headers=reviewer)
    assert resp.status == 200, await resp.text()
    out = await resp.json()
    assert out["primary_metric"] == "join" and out["exposures"] == len(people)
    arms = out["arms"]
    assert [a["key"] for a in arms] == ["a", "b", "holdout"]
    for i, arm in enumerate(arms):
        assert arm["exposures"] == sum(1 for v in rows.values() if v == i)
        assert set(arm["metrics"]) == {"join", "redemption", "revenue"}
    assert sum(a["metrics"]["join"]["conversions"] for a in arms) == joined
    assert arms[2]["metrics"]["join"]["conversions"] == 0
    assert arms[1]["metrics"]["join"]["mean"] == 1.0
    [join] = [c for c in arms[1]["comparisons"] if c["metric"] == "join"]
    assert join["difference"] > 0 and join["chance_to_win"] > 0.9
    assert join["sequential_interval"]["low"] <= join["difference"] <= join["sequential_interval"]["high"]
    assert arms[0]["comparisons"] == [] and arms[2]["comparisons"] == [] and arms[2]["incremental"] is None
    assert arms[1]["incremental"]["redemptions"] == 0 and arms[1]["incremental"]["net_revenue"] == 0
    assert out["srm"]["exposures"] == [a["exposures"] for a in arms] and not out["srm"]["flagged"]

    # A skewed split (exposures of arm b lost) is flagged.
    now = datetime.now(UTC)
    await ExperimentExposure.bulk_create([
        ExperimentExposure(experiment_id=e["id"], customer_id=10**9 + i, arm=0, bucket_version=1, surface="feed",
                           exposed_at=now)
        for i in range(400)
    ])  # fmt: skip
    out = await (await client.get(f"{ROOT}/{e['id']}/results", headers=ops)).json()
    assert out["srm"]["flagged"] and out["srm"]["p_value"] < 0.001


async def test_results_match_a_direct_computation(client):
    """Every per-arm figure, the CUPED difference and the holdout's increment, from the
    rows themselves (redemptions with order amounts now, joins, grabs and redemptions of
    another campaign in the pre-period)."""
    from models.campaigns import CouponTemplate
    from models.redemptions import Redemption
    from models.vouchers import Voucher
    from services.accounts import operators as accounts
    from services.experiments import stats

    ops = bearer((await logged_in_admin(client, "operator"))["access_token"])
    campaign, before = await make_campaign(coupons=1), await make_campaign(coupons=1)
    body = {"primary_metric": "revenue", "guardrails": ["join", "grab", "redemption"], "pre_period_days": 28}
    e = await _create(client, ops, campaign.id, **body)
    started = datetime.fromisoformat(e["started_at"])
    people = await shoppers(client, 36)
    for who in people:
        await _feed_ids(client, who.headers)
    arm_of = {r.customer_id: r.arm for r in await ExperimentExposure.filter(experiment_id=e["id"])}
    store = await accounts.create_store("EX01", "Experiments store", "Shanghai", 31.2, 121.5)
    clerk = await accounts.create_staff("ex-clerk", "pw-0123456789", "Clerk", "clerk", store.id)

    async def redeemed(template: CouponTemplate, customer_id: int, at: datetime, amount: int) -> None:
        voucher = await Voucher.create(
            claim_id=f"ex-{template.id}-{customer_id}", campaign_id=template.campaign_id, template=template,
            customer_id=customer_id, code=f"EX{template.id}X{customer_id}", status="used", face_value=500,
            valid_from=at, valid_until=at + timedelta(days=30), issued_at=at,
        )  # fmt: skip
        await Redemption.create(
            voucher_id=voucher.id, store_id=store.id, staff_id=clerk.id, customer_id=customer_id,
            campaign_id=template.campaign_id, template_id=template.id, face_value=500, order_amount=amount,
            created_at=at,
        )  # fmt: skip

    now_template = await CouponTemplate.get(campaign_id=campaign.id)
    pre_template = await CouponTemplate.get(campaign_id=before.id)
    holdout = len(e["arms"]) - 1
    pre_rev: dict[int, int] = {}
    rev: dict[int, int] = {}
    pre_joined: set[int] = set()
    for who in people:
        c = who.id
        if c % 2 == 0:
            joined = await Participation.create(campaign_id=before.id, customer_id=c)
            await Participation.filter(id=joined.id).update(joined_at=started - timedelta(days=5))
            pre_joined.add(c)
            pre_rev[c] = 1000 * c
            await redeemed(pre_template, c, started - timedelta(days=3), pre_rev[c])
        if c % 3 == 0 and arm_of[c] != holdout:
            rev[c] = 500 * c + 100 + (2000 if c in pre_joined else 0)
            await redeemed(now_template, c, datetime.now(UTC), rev[c])
    out = await (await client.get(f"{ROOT}/{e['id']}/results", headers=ops)).json()
    sums: dict[int, stats.Sums] = {}
    for i, arm in enumerate(out["arms"]):
        members = [w.id for w in people if arm_of[w.id] == i]
        y = [rev.get(c, 0) for c in members]
        x = [pre_rev.get(c, 0) for c in members]
        assert arm["exposures"] == len(members)
        assert arm["revenue"] == sum(y) and arm["redemptions"] == sum(1 for v in y if v)
        assert arm["coupon_cost"] == 500 * arm["redemptions"]
        got = arm["metrics"]
        assert got["revenue"]["conversions"] == sum(y)
        assert got["revenue"]["pre_period_mean"] == pytest.approx(sum(x) / len(members))
        assert got["redemption"]["conversions"] == sum(1 for v in y if v)
        assert got["redemption"]["pre_period_mean"] == pytest.approx(sum(1 for v in x if v) / len(members))
        assert got["grab"]["conversions"] == sum(1 for v in y if v)  # each redeemed voucher was issued now
        assert got["join"]["conversions"] == 0
        assert got["join"]["pre_period_mean"] == pytest.approx(len(pre_joined & set(members)) / len(members))
        sums[i] = stats.Sums(len(members), sum(y), sum(v * v for v in y), sum(x), sum(v * v for v in x),
                             sum(a * b for a, b in zip(x, y, strict=True)))  # fmt: skip
    pooled = sums[0] + sums[1]
    # Weights 50/50/25: shares 0.4/0.4/0.2, so n_eff at the planned 10,000 is 10,000 x 0.4 x 0.4 / 0.8.
    expected = stats.compare(
        sums[0], sums[1], binary=False, theta=stats.cuped_theta(pooled), mean_x_all=pooled.mean_x, tune_n_eff=2000
    )
    [revenue] = [c for c in out["arms"][1]["comparisons"] if c["metric"] == "revenue"]
    assert revenue["difference"] == pytest.approx(expected.difference)
    assert revenue["cuped_difference"] == pytest.approx(expected.cuped_difference)
    assert revenue["sequential_interval"]["low"] == pytest.approx(expected.sequential_interval.low)
    inc = out["arms"][1]["incremental"]
    n1 = sums[1].n
    assert inc["revenue"] == pytest.approx((sums[1].mean - sums[holdout].mean) * n1)
    assert inc["net_revenue"] == pytest.approx(inc["revenue"] - out["arms"][1]["coupon_cost"])
