"""Did it pay (issue 18), over real HTTP and both databases: purchases posted by a POS
are attributed once per order (the voucher redeemed on the order first, else the latest
join within the window, edges included), also under hundreds of concurrent duplicates;
a campaign's ROI with its inputs (voucher cost from the discount actually given, points
cost); the drill-down by every dimension as JSON and CSV; the newline-JSON bulk export,
streamed to its end line; bad input and the wrong roles get their documented errors."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from tortoise import connections

from models.attribution import Attribution
from models.audience import CustomerFacts, Segment
from models.campaigns import CouponTemplate
from models.participations import Participation
from services.analytics.drilldown import MAX_SEGMENTS
from services.journey import points
from tests.analytics.fixtures import join, post_event, shop_with_sales
from tests.helpers import bearer, cheap_password_hashing, error_of, logged_in_admin
from tests.journey.fixtures import make_campaign, pos, purchase, refund, shoppers
from tests.stock.fixtures import live_coupon
from tests.wallet.fixtures import REDEEM, grab, qr_payload, staff_login, store

DRILLDOWN = "/api/v1/admin/analytics/drilldown"
EXPORT = "/api/v1/admin/analytics/export.ndjson"


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


def _roi_path(campaign_id: int) -> str:
    return f"/api/v1/admin/campaigns/{campaign_id}/roi"


async def _admin(client: TestClient, role: str = "operator") -> dict[str, str]:
    return bearer((await logged_in_admin(client, role))["access_token"])


async def _get(client: TestClient, path: str, admin: dict[str, str], **params: Any) -> dict[str, Any]:
    resp = await client.get(path, params={k: str(v) for k, v in params.items()}, headers=admin)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_orders_are_attributed_by_voucher_then_window_and_roi_shows_its_inputs(client: TestClient) -> None:
    s, integration = await shop_with_sales(client)
    rows = {r.order_key: r for r in await Attribution.all()}
    assert set(rows) == {f"{s.store_id}:ORD-1", f"{s.store_id}:ORD-2"}, rows
    voucher, window = rows[f"{s.store_id}:ORD-1"], rows[f"{s.store_id}:ORD-2"]
    assert (voucher.campaign_id, voucher.rule, voucher.amount) == (s.live.campaign.id, "voucher", 5000)
    assert voucher.redemption_id is not None and voucher.participation_id is None
    assert (window.campaign_id, window.rule, window.amount) == (s.window_campaign_id, "window", 3000)

    admin = await _admin(client)
    body = await _get(client, _roi_path(s.live.campaign.id), admin)
    assert body["points_cost_fen"] == 1 and body["attribution_window_days"] == 7
    figures = body["figures"]
    assert {k: figures[k] for k in ("vouchers_redeemed", "face_value_redeemed", "voucher_cost")} == {
        "vouchers_redeemed": 1, "face_value_redeemed": 1000, "voucher_cost": 1000,
    }  # fmt: skip
    assert (figures["attributed_orders"], figures["attributed_revenue"]) == (1, 5000)
    assert (figures["points_cost"], figures["cost"], figures["roi"], figures["roi_reason"]) == (0, 1000, 4.0, None)

    # A percent coupon costs the discount actually given: 10% of 5,000, under its 1,000 cap.
    await CouponTemplate.filter(id=s.live.template.id).update(kind="percent", percent_off=10)
    figures = (await _get(client, _roi_path(s.live.campaign.id), admin))["figures"]
    assert (figures["voucher_cost"], figures["face_value_redeemed"], figures["roi"]) == (500, 1000, 9.0)

    # Nothing spent: no ratio, and why; points given make the cost.
    figures = (await _get(client, _roi_path(s.window_campaign_id), admin))["figures"]
    assert (figures["attributed_revenue"], figures["cost"], figures["roi"], figures["roi_reason"]) == (
        3000, 0, None, "no_cost",
    )  # fmt: skip
    await points.add(s.b.id, 200, "campaign_reward", "test:reward", campaign_id=s.window_campaign_id)
    figures = (await _get(client, _roi_path(s.window_campaign_id), admin))["figures"]
    assert (figures["points"], figures["points_cost"], figures["cost"], figures["roi"]) == (200, 200, 200, 14.0)

    # A refunded purchase leaves the revenue (its row stays: one attribution per order).
    await post_event(integration, refund("r1", s.a, "e1"))
    figures = (await _get(client, _roi_path(s.live.campaign.id), admin))["figures"]
    assert (figures["attributed_orders"], figures["attributed_revenue"], figures["roi"]) == (0, 0, -1.0)
    assert await Attribution.filter(order_key=f"{s.store_id}:ORD-1").count() == 1

    missing = await client.get(_roi_path(10**9), headers=admin)
    assert missing.status == 404 and (await error_of(missing))["code"] == "not_found"


async def test_a_purchase_naming_no_store_finds_the_voucher_through_the_customer(client: TestClient) -> None:
    live = await live_coupon(client, stock=5, face_value=800)
    a, b = await shoppers(client, 2, prefix="o_ns")
    held = await grab(client, live, [a.headers, b.headers])
    shop = await store()
    clerk = await staff_login(client, shop.id, "nina")
    for h, order in zip(held, ("ORD-A", "ORD-B"), strict=True):
        body = {"payload": await qr_payload(client, h), "order_ref": order}
        resp = await client.post(REDEEM, json=body, headers=clerk)
        assert resp.status == 201, await resp.text()
    integration = await pos(client)
    await post_event(integration, purchase("ns-1", a, 2000, order_ref="ORD-A"))
    await post_event(integration, purchase("ns-2", a, 2000, order_ref="ORD-B"))  # B's voucher, not A's order
    got = {r.order_key: (r.campaign_id, r.rule) for r in await Attribution.all()}
    assert got == {"-:ORD-A": (live.campaign.id, "voucher")}, got


async def test_the_window_edges_and_the_latest_join_wins(client: TestClient) -> None:
    first, second = await make_campaign(), await make_campaign()
    late, edge, inside, before, both = await shoppers(client, 5, prefix="o_win")
    for who in (late, edge, inside, before, both):
        await join(client, first.id, who)
    await join(client, second.id, both)
    now = datetime.now(UTC).replace(microsecond=0)
    joined = now - timedelta(days=8)
    await Participation.filter(campaign_id=first.id).update(joined_at=joined)
    # "both" joined the second campaign a day after the first: the later join wins.
    await Participation.filter(campaign_id=second.id).update(joined_at=joined + timedelta(days=1))
    integration = await pos(client)
    window = timedelta(days=7)
    cases = {
        "late": (late, joined + window + timedelta(seconds=1)),  # after the window
        "edge": (edge, joined + window),  # the window's end is outside
        "inside": (inside, joined + window - timedelta(seconds=1)),  # its last second is inside
        "before": (before, joined - timedelta(seconds=1)),  # before joining
        "both": (both, joined + timedelta(days=2)),
    }
    for name, (who, at) in cases.items():
        await post_event(integration, purchase(name, who, 100, order_ref=f"O-{name}", occurred_at=at.isoformat()))
    got = {r.order_key: (r.campaign_id, r.rule) for r in await Attribution.all()}
    assert got == {"-:O-inside": (first.id, "window"), "-:O-both": (second.id, "window")}, got


async def test_a_window_of_zero_days_attributes_voucher_orders_only(client_with: Any) -> None:
    client = await client_with(attribution_window_days=0)
    campaign = await make_campaign()
    [who] = await shoppers(client, 1, prefix="o_zero")
    await join(client, campaign.id, who)
    await post_event(await pos(client), purchase("z1", who, 100))
    assert await Attribution.all().count() == 0


async def test_concurrent_duplicates_of_one_order_are_attributed_once(client: TestClient) -> None:
    campaign = await make_campaign()
    [who] = await shoppers(client, 1, prefix="o_dup")
    await join(client, campaign.id, who)
    shop = await store()
    integration = await pos(client)
    same = purchase("dup-0", who, 4200, order_ref="ORD-DUP", store_id=shop.id)
    # 150 retries of one event, and 150 events under other external ids naming the same order.
    bodies = [same] * 150 + [{**same, "external_id": f"dup-{i}"} for i in range(1, 151)]
    resps = await asyncio.gather(*(integration.post(body) for body in bodies))
    assert sorted({r.status for r in resps}) == [200, 201], [await r.text() for r in resps if r.status >= 300][:3]
    rows = await Attribution.filter(order_key=f"{shop.id}:ORD-DUP")
    assert len(rows) == 1 and (rows[0].campaign_id, rows[0].amount) == (campaign.id, 4200)
    assert await Attribution.all().count() == 1
    figures = (await _get(client, _roi_path(campaign.id), await _admin(client)))["figures"]
    assert (figures["attributed_orders"], figures["attributed_revenue"]) == (1, 4200)


async def test_drilldown_by_each_dimension_and_its_csv(client: TestClient) -> None:
    s, _ = await shop_with_sales(client)
    admin = await _admin(client, "approver")
    cid = s.live.campaign.id

    by_store = await _get(client, DRILLDOWN, admin, by="store", campaign_id=cid)
    assert by_store["campaign_id"] == cid and by_store["by"] == "store"
    rows = {r["key"]: r for r in by_store["rows"]}
    assert set(rows) == {str(s.store_id), None}
    shop_row, no_store = rows[str(s.store_id)], rows[None]
    assert shop_row["label"] == "Jing'an flagship" and shop_row["vouchers_redeemed"] == 1
    assert (shop_row["attributed_revenue"], shop_row["voucher_cost"], shop_row["roi"]) == (5000, 1000, 4.0)
    assert (no_store["vouchers_issued"], no_store["label"], no_store["roi_reason"]) == (1, None, "no_cost")
    total = by_store["total"]
    assert (total["vouchers_issued"], total["attributed_revenue"], total["roi"]) == (1, 5000, 4.0)

    by_tier = await _get(client, DRILLDOWN, admin, by="tier", campaign_id=cid)
    assert {r["key"]: r["attributed_revenue"] for r in by_tier["rows"]} == {"gold": 5000}
    by_theme = await _get(client, DRILLDOWN, admin, by="theme", campaign_id=cid)
    assert [(r["label"], r["attributed_revenue"]) for r in by_theme["rows"]] == [("Women's Day", 5000)]
    by_channel = await _get(client, DRILLDOWN, admin, by="channel", campaign_id=cid)
    assert [(r["key"], r["vouchers_redeemed"]) for r in by_channel["rows"]] == [("miniprogram", 1)]

    # All campaigns, by the stage the customers are in now.
    await CustomerFacts.filter(customer_id=s.a.id).update(lifecycle_stage="lapsed")
    await CustomerFacts.filter(customer_id=s.b.id).update(lifecycle_stage="active")
    by_stage = await _get(client, DRILLDOWN, admin, by="stage")
    assert by_stage["campaign_id"] is None
    stages = {r["key"]: r for r in by_stage["rows"]}
    assert (stages["active"]["joined"], stages["active"]["attributed_revenue"]) == (1, 3000)
    assert (stages["lapsed"]["vouchers_redeemed"], stages["lapsed"]["attributed_revenue"]) == (1, 5000)
    assert by_stage["total"]["attributed_revenue"] == 8000

    # Saved segments, evaluated now (one nests another): a customer in two counts in both.
    operator = await _admin(client)
    for name, rule in (("gold", {"tier": "gold"}), ("buyers", {"any": [{"segment": "gold"}, {"tier": "standard"}]})):
        resp = await client.post("/api/v1/admin/segments", json={"name": name, "rule": rule}, headers=operator)
        assert resp.status == 201, await resp.text()
    by_segment = await _get(client, DRILLDOWN, admin, by="segment")
    segments = {r["label"]: r for r in by_segment["rows"]}
    assert set(segments) == {"gold", "buyers"}
    assert (segments["gold"]["attributed_revenue"], segments["gold"]["vouchers_redeemed"]) == (5000, 1)
    assert (segments["buyers"]["attributed_revenue"], segments["buyers"]["joined"]) == (8000, 1)
    assert [r["label"] for r in by_segment["rows"]] == ["buyers", "gold"]

    resp = await client.get(f"{DRILLDOWN}.csv", params={"by": "store", "campaign_id": str(cid)}, headers=admin)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["key"] for r in table] == [str(s.store_id), "", ""]
    assert [r["label"] for r in table] == ["Jing'an flagship", "", "total"]
    assert (table[0]["attributed_revenue"], table[0]["roi"], table[-1]["roi"]) == ("5000", "4.0", "4.0")


@pytest.mark.parametrize(
    "params",
    [
        {"by": "planet"},
        {},
        {"by": "store", "date_from": "2026-13-01"},
        {"by": "store", "date_from": "2026-05-02", "date_to": "2026-05-01"},
        {"by": "store", "date_from": "2024-01-01", "date_to": "2026-01-01"},
        {"by": "store", "campaign_id": "abc"},
    ],
)
async def test_bad_drilldown_queries_are_422(client: TestClient, params: dict[str, str]) -> None:
    admin = await _admin(client)
    for path in (DRILLDOWN, f"{DRILLDOWN}.csv"):
        resp = await client.get(path, params=params, headers=admin)
        assert resp.status == 422, await resp.text()
        assert (await error_of(resp))["code"] == "validation_failed"
    resp = await client.get(EXPORT, params={"kind": "planets"}, headers=admin)
    assert resp.status == 422 and (await error_of(resp))["code"] == "validation_failed"


async def test_unknown_campaign_and_roles(client: TestClient) -> None:
    admin = await _admin(client)
    resp = await client.get(f"{DRILLDOWN}.csv", params={"by": "store", "campaign_id": "999999"}, headers=admin)
    assert resp.status == 404 and (await error_of(resp))["code"] == "not_found"
    reviewer = await _admin(client, "reviewer")
    approver = await _admin(client, "approver")
    cases = (
        (_roi_path(1), {}, reviewer), (DRILLDOWN, {"by": "store"}, reviewer),
        (EXPORT, {"kind": "purchases"}, reviewer), (EXPORT, {"kind": "purchases"}, approver),
    )  # fmt: skip
    for path, params, who in cases:
        resp = await client.get(path, params=params, headers=who)
        assert resp.status == 403, (path, await resp.text())
        assert (await error_of(resp))["code"] == "forbidden"


async def test_too_many_segments_to_drill_down_by(client: TestClient) -> None:
    await Segment.bulk_create(
        [Segment(name=f"s{i:02d}", rule={"tier": "gold"}, created_by=1) for i in range(MAX_SEGMENTS + 1)]
    )
    resp = await client.get(DRILLDOWN, params={"by": "segment"}, headers=await _admin(client))
    assert resp.status == 422, await resp.text()
    error = await error_of(resp)
    assert error["code"] == "analytics_too_broad" and error["details"]["max_segments"] == MAX_SEGMENTS


async def test_the_bulk_export_streams_every_row_to_its_end_line(client: TestClient) -> None:
    s, _ = await shop_with_sales(client)
    admin = await _admin(client)
    resp = await client.get(EXPORT, params={"kind": "attributions"}, headers=admin)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in (await resp.text()).splitlines()]
    assert [(r["order_key"], r["rule"]) for r in lines[:-1]] == [
        (f"{s.store_id}:ORD-1", "voucher"), (f"{s.store_id}:ORD-2", "window"),
    ]  # fmt: skip
    assert "openid" not in lines[0] and lines[-1] == {"end": True, "kind": "attributions", "rows": 2}
    purchases = await _get_lines(client, admin, kind="purchases")
    assert [p["order_ref"] for p in purchases[:-1]] == ["ORD-1", "ORD-2", "ORD-3"] and purchases[-1]["rows"] == 3
    one = await _get_lines(client, admin, kind="redemptions", campaign_id=s.live.campaign.id)
    assert len(one) == 2 and one[0]["order_amount"] == 5000
    none = await _get_lines(client, admin, kind="participations", campaign_id=10**9)
    assert none == [{"end": True, "kind": "participations", "rows": 0}]


async def _get_lines(client: TestClient, admin: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    resp = await client.get(EXPORT, params={k: str(v) for k, v in params.items()}, headers=admin)
    assert resp.status == 200, await resp.text()
    return [json.loads(line) for line in (await resp.text()).splitlines()]


ROWS = 30_000


def _bulk_row(i: int, at: datetime) -> Attribution:
    return Attribution(
        order_key=f"-:BULK-{i:06d}", event_id=i, campaign_id=1, customer_id=i, amount=100 + i, rule="window",
        participation_id=i, occurred_at=at,
    )  # fmt: skip


async def test_a_large_export_streams_with_bounded_memory(client: TestClient) -> None:
    now = datetime.now(UTC)
    for start in range(0, ROWS, 5000):
        await Attribution.bulk_create([_bulk_row(i, now) for i in range(start, min(start + 5000, ROWS))])
    admin = await _admin(client)
    tracemalloc.start()
    try:
        resp = await client.get(EXPORT, params={"kind": "attributions"}, headers=admin)
        assert resp.status == 200
        assert "Content-Length" not in resp.headers  # streamed, not built whole
        count, size, last = 0, 0, b""
        async for line in resp.content:  # read line by line: the test holds no more than the server
            count += 1
            size += len(line)
            last = line
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert json.loads(last) == {"end": True, "kind": "attributions", "rows": ROWS}
    assert count == ROWS + 1
    # The whole body is several MB; one batch (1,000 rows) at a time stays far below it.
    assert size > 6_000_000, size
    assert peak < size / 2, (peak, size)


async def test_an_export_failing_midway_never_reaches_its_end_line(client: TestClient) -> None:
    now = datetime.now(UTC)
    for start in range(0, ROWS, 5000):
        await Attribution.bulk_create([_bulk_row(i, now) for i in range(start, min(start + 5000, ROWS))])
    resp = await client.get(EXPORT, params={"kind": "attributions"}, headers=await _admin(client))
    assert resp.status == 200
    received = await resp.content.readline()
    # A real failure between batches: the table is gone when the next batch is read.
    await connections.get("default").execute_script("ALTER TABLE attributions RENAME TO attributions_gone")
    with pytest.raises(aiohttp.ClientPayloadError):
        async for chunk in resp.content.iter_any():
            received += chunk
    lines = received.splitlines()
    assert 0 < len(lines) < ROWS
    assert b'"end"' not in lines[-1]
