"""Stock and budget split per experiment arm (services/stock/arms.py): under real
concurrency on single Redis and the 3-master cluster, each arm issues exactly its share
and never more, a drained arm answers coupon_sold_out while another still has stock, the
holdout never grabs, a stop merges the shares back and a reconciliation rebuilds them
from the database."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from models.customers import Customer
from models.experiments import Experiment
from models.vouchers import Voucher
from server.keys import REDIS, STOCK
from services.experiments import assignment
from services.stock import CampaignKeys, ClaimsWorker
from services.stock.reconcile import reconcile
from tests.helpers import bearer, cheap_password_hashing, error_of, logged_in_admin
from tests.stock.fixtures import LiveCoupon, customers, grab_all, live_coupon

pytestmark = pytest.mark.both_redis

ROOT = "/api/v1/admin/experiments"


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


async def _experiment(
    client: Any, coupon: LiveCoupon, weights: tuple[int, int], holdout: int | None = None, traffic: int = 100
) -> dict[str, Any]:
    ops = bearer((await logged_in_admin(client, "operator"))["access_token"])
    body: dict[str, Any] = {
        "campaign_id": coupon.campaign.id, "name": "stock split", "primary_metric": "grab",
        "arms": [{"key": "a", "weight": weights[0]}, {"key": "b", "weight": weights[1]}],
        "traffic_percent": traffic,
    }  # fmt: skip
    if holdout is not None:
        body["holdout"] = {"weight": holdout}
    resp = await client.post(ROOT, json=body, headers=ops)
    assert resp.status == 201, await resp.text()
    made = await resp.json()
    resp = await client.post(f"{ROOT}/{made['id']}/start", headers=ops)
    assert resp.status == 200, await resp.text()
    return {**(await resp.json()), "ops": ops}


async def _people(client: Any, count: int, prefix: str) -> tuple[list[int], list[dict[str, str]]]:
    auths = await customers(client, count, prefix)
    ids = await Customer.filter(openid__startswith=f"{prefix}_").order_by("id").values_list("id", flat=True)
    return [int(i) for i in ids], auths


def _arm(e: dict[str, Any], customer_id: int) -> int | None:
    return assignment.assign(
        salt=e["salt"], bucket_version=e["bucket_version"], customer_id=customer_id,
        weights=[a["weight"] for a in e["arms"]], layer=e["layer"], traffic=tuple(e["traffic_range"]),
    )  # fmt: skip


async def _drain(client: Any) -> None:
    await ClaimsWorker(client.server.app[REDIS], min_idle_ms=0).drain()


async def _issued_by_arm(coupon: LiveCoupon) -> Counter[int | None]:
    arms = await Voucher.filter(template_id=coupon.template.id).values_list("experiment_arm", flat=True)
    return Counter(arms)  # type: ignore[arg-type]


async def test_each_arm_issues_exactly_its_share_under_300_concurrent_grabs(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    coupon = await live_coupon(client, stock=20)
    e = await _experiment(client, coupon, (75, 25), holdout=20)
    split = (await Experiment.get(id=e["id"])).stock_split
    assert split is not None and split["coupons"] == {str(coupon.template.id): {"0": 15, "1": 5}}
    ids, auths = await _people(client, 320, "o_arms")
    statuses = await grab_all(client, coupon.grab_path, auths)
    assert set(statuses) <= {201, 403, 409}, Counter(statuses)
    expected = [_arm(e, c) for c in ids]
    for status, arm in zip(statuses, expected, strict=True):
        assert (status == 403) == (arm == 2)  # the holdout, and only it, is refused
    await _drain(client)
    # Each arm exactly its share: 15 and 5, though arm a has three times b's customers.
    assert await _issued_by_arm(coupon) == Counter({0: 15, 1: 5})
    winners = await Voucher.filter(template_id=coupon.template.id).values_list("customer_id", "experiment_arm")
    assert all(_arm(e, c) == arm for c, arm in winners)
    keys = CampaignKeys(coupon.campaign.id)
    shares = await client.server.app[STOCK].arms.shares(coupon.campaign.id, coupon.template.id)
    assert shares == {f"x{e['id']}:0": 0, f"x{e['id']}:1": 0, "x:rest": 0}
    assert int(await client.server.app[REDIS].hget(keys.coupon(coupon.template.id), "stock")) == 0
    # Refusals are the documented ones.
    one_b = next(i for i, arm in enumerate(expected) if arm == 1)
    resp = await client.post(coupon.grab_path, headers=auths[one_b])
    assert resp.status == 409 and (await error_of(resp))["code"] in ("coupon_sold_out", "coupon_limit_reached")
    one_h = expected.index(2)
    resp = await client.post(coupon.grab_path, headers=auths[one_h])
    assert resp.status == 403 and (await error_of(resp))["code"] == "experiment_holdout"


async def test_a_drained_arm_is_sold_out_while_the_other_has_stock_then_stop_merges_back(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    coupon = await live_coupon(client, stock=10)
    e = await _experiment(client, coupon, (90, 10))  # shares 9 and 1
    ids, auths = await _people(client, 300, "o_drain")
    in_b = [auths[i] for i, c in enumerate(ids) if _arm(e, c) == 1]
    assert len(in_b) >= 10
    statuses = await grab_all(client, coupon.grab_path, in_b)
    assert statuses.count(201) == 1 and statuses.count(409) == len(in_b) - 1, Counter(statuses)
    resp = await client.post(coupon.grab_path, headers=in_b[-1])
    if resp.status == 409:
        assert (await error_of(resp))["code"] in ("coupon_sold_out", "coupon_limit_reached")
    redis = client.server.app[REDIS]
    key = CampaignKeys(coupon.campaign.id).coupon(coupon.template.id)
    assert int(await redis.hget(key, "stock")) == 9  # arm a's share is all there
    # Stop: the shares merge back and arm b's customers grab what is left.
    resp = await client.post(f"{ROOT}/{e['id']}/stop", headers=e["ops"])
    assert resp.status == 200, await resp.text()
    assert await client.server.app[STOCK].arms.shares(coupon.campaign.id, coupon.template.id) == {}
    assert await redis.hget(key, "split") is None
    statuses = await grab_all(client, coupon.grab_path, in_b)
    assert statuses.count(201) == 9, Counter(statuses)
    await _drain(client)
    assert await Voucher.filter(template_id=coupon.template.id).count() == 10


async def test_customers_outside_the_traffic_grab_the_rest_only(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    coupon = await live_coupon(client, stock=20)
    e = await _experiment(client, coupon, (1, 1), traffic=50)  # 10 for the arms (5 and 5), 10 for the rest
    shares = await client.server.app[STOCK].arms.shares(coupon.campaign.id, coupon.template.id)
    assert shares == {f"x{e['id']}:0": 5, f"x{e['id']}:1": 5, "x:rest": 10}
    ids, auths = await _people(client, 300, "o_rest")
    people = Counter(_arm(e, c) for c in ids)
    assert people[0] > 5 and people[1] > 5 and people[None] > 10  # each group wants more than its share
    statuses = await grab_all(client, coupon.grab_path, auths)
    assert statuses.count(201) == 20 and set(statuses) == {201, 409}, Counter(statuses)
    await _drain(client)
    assert await _issued_by_arm(coupon) == Counter({0: 5, 1: 5, None: 10})
    winners = await Voucher.filter(template_id=coupon.template.id).values_list("customer_id", "experiment_arm")
    assert all(_arm(e, c) == arm for c, arm in winners)  # None: outside the traffic range


async def test_budget_split_per_arm(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    # Stock is plenty; the budget (10 vouchers of 1000 fen) is what the arms split.
    coupon = await live_coupon(client, stock=200, face_value=1000, budget_limit=10_000)
    e = await _experiment(client, coupon, (70, 30))
    split = (await Experiment.get(id=e["id"])).stock_split
    assert split is not None and split["budget"] == {"0": 7000, "1": 3000}
    _, auths = await _people(client, 300, "o_budget")
    statuses = await grab_all(client, coupon.grab_path, auths)
    assert statuses.count(201) == 10 and set(statuses) == {201, 409}, Counter(statuses)
    await _drain(client)
    assert await _issued_by_arm(coupon) == Counter({0: 7, 1: 3})
    # A voided voucher of arm b gives its unit and face value back to arm b's shares.
    stock, redis = client.server.app[STOCK], client.server.app[REDIS]
    voucher = await Voucher.filter(template_id=coupon.template.id, experiment_arm=1).first()
    assert voucher is not None
    await Voucher.filter(id=voucher.id).update(stock_returned=True)
    assert await stock.give_back(voucher) == "returned"
    keys = CampaignKeys(coupon.campaign.id)
    assert int(await redis.hget(keys.arm_budget, f"x{e['id']}:1")) == 1000
    assert int(await redis.hget(keys.arm_budget, f"x{e['id']}:0")) == 0
    shares = await stock.arms.shares(coupon.campaign.id, coupon.template.id)
    assert shares == {f"x{e['id']}:0": 140 - 7, f"x{e['id']}:1": 60 - 3 + 1, "x:rest": 0}


async def test_reconcile_rebuilds_the_shares_from_the_database(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    redis, stock = client.server.app[REDIS], client.server.app[STOCK]
    coupon = await live_coupon(client, stock=40, face_value=100, budget_limit=100_000)
    e = await _experiment(client, coupon, (50, 50))  # 20 and 20, budget 50,000 each
    ids, auths = await _people(client, 80, "o_recon")
    # The first burst takes 15 customers of each arm, whatever the random salt: 30 drawn
    # blindly would put more than an arm's 20 in one arm about one run in 23.
    arms = [_arm(e, c) for c in ids]
    first = [i for a in (0, 1) for i in [j for j, arm in enumerate(arms) if arm == a][:15]]
    assert len(first) == 30
    rest = [i for i in range(len(ids)) if i not in first]
    statuses = await grab_all(client, coupon.grab_path, [auths[i] for i in first])
    assert statuses.count(201) == 30, Counter(statuses)
    await _drain(client)
    issued = await _issued_by_arm(coupon)
    assert sum(issued.values()) == 30 and set(issued) <= {0, 1}
    keys = CampaignKeys(coupon.campaign.id)
    before = await stock.arms.shares(coupon.campaign.id, coupon.template.id)
    assert before == {f"x{e['id']}:0": 20 - issued[0], f"x{e['id']}:1": 20 - issued[1], "x:rest": 0}
    budget_before = {k: int(v) for k, v in (await redis.hgetall(keys.arm_budget)).items()}
    # A Redis loss of the campaign's keys, then the repair.
    await redis.delete(keys.coupon(coupon.template.id), keys.holders(coupon.template.id))
    await redis.delete(keys.budget, keys.arm_budget)
    [report] = await reconcile(stock, ClaimsWorker(redis, min_idle_ms=0), coupon.template.id)
    assert report.issued == 30 and report.stock_after == 10
    assert await stock.arms.shares(coupon.campaign.id, coupon.template.id) == before
    assert {k: int(v) for k, v in (await redis.hgetall(keys.arm_budget)).items()} == budget_before
    # And the rebuilt shares hold: the other 50 customers get exactly what is left.
    statuses = await grab_all(client, coupon.grab_path, [auths[i] for i in rest])
    await _drain(client)
    issued_after = await _issued_by_arm(coupon)
    expected = Counter(_arm(e, c) for c in ids)
    assert issued_after[0] == min(20, expected[0]) and issued_after[1] == min(20, expected[1])
