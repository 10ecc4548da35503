"""Customer service's list and detail: search, filters, cursor pages, masked phones, and
everything the detail gathers about one customer."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from tortoise import connections

from models.audience import CustomerFacts
from models.customers import Customer
from models.journey import PointsEntry
from models.notifications import Notification
from models.participations import Participation
from services.accounts import customers as customer_accounts
from services.journey import points
from tests.customer_service.fixtures import CUSTOMERS, admin_headers, customer, customer_path, ok
from tests.helpers import cheap_password_hashing, error_of
from tests.journey.fixtures import make_campaign
from tests.wallet.fixtures import vouchers


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


def ids(body: dict[str, Any]) -> list[int]:
    return [item["id"] for item in body["items"]]


async def test_search_by_id_openid_phone_suffix_and_nickname(client) -> None:
    headers = await admin_headers(client)
    alice = await customer("o_alice", nickname="Alice Wang", phone_number="13812345678", city="Shanghai")
    bob = await customer("o_bob", nickname="Bob", phone_number="13900005678", city="Beijing")
    carol = await customer("o_carol", nickname="carol", phone_number="13700001111")

    assert ids(await ok(await client.get(f"{CUSTOMERS}?id={bob.id}", headers=headers))) == [bob.id]
    assert ids(await ok(await client.get(f"{CUSTOMERS}?openid=o_carol", headers=headers))) == [carol.id]
    # Newest first: Bob before Alice, both ending in 5678.
    assert ids(await ok(await client.get(f"{CUSTOMERS}?phone_suffix=5678", headers=headers))) == [bob.id, alice.id]
    assert ids(await ok(await client.get(f"{CUSTOMERS}?nickname=ALICE", headers=headers))) == [alice.id]
    assert ids(await ok(await client.get(f"{CUSTOMERS}?phone_suffix=0000", headers=headers))) == []
    both = await ok(await client.get(f"{CUSTOMERS}?phone_suffix=5678&city=Shanghai", headers=headers))
    assert ids(both) == [alice.id]

    for bad in ("phone_suffix=567", "phone_suffix=abcd", "tier=diamond", "lifecycle_stage=asleep", "id=0"):
        resp = await client.get(f"{CUSTOMERS}?{bad}", headers=headers)
        assert resp.status == 422, (bad, await resp.text())
        assert (await error_of(resp))["code"] == "validation_failed"


async def test_filters_by_tier_city_and_lifecycle_stage(client) -> None:
    headers = await admin_headers(client)
    gold = await customer("o_gold", membership_tier="gold", city="Shanghai")
    silver = await customer("o_silver", membership_tier="silver", city="Shanghai")
    churned = await customer("o_churned", city="Beijing", created_at=datetime.now(UTC) - timedelta(days=400))
    await CustomerFacts.create(customer_id=churned.id, lifecycle_stage="churned")
    old = await customer("o_old")
    old.created_at = datetime.now(UTC) - timedelta(days=400)
    await old.save(update_fields=["created_at"])

    assert ids(await ok(await client.get(f"{CUSTOMERS}?tier=gold", headers=headers))) == [gold.id]
    city = await ok(await client.get(f"{CUSTOMERS}?city=Shanghai", headers=headers))
    assert ids(city) == [silver.id, gold.id]
    stage = await ok(await client.get(f"{CUSTOMERS}?lifecycle_stage=churned", headers=headers))
    assert ids(stage) == [churned.id] and stage["items"][0]["lifecycle_stage"] == "churned"
    # No facts row yet: new or unactivated by registration date, as audience rules count them.
    new = await ok(await client.get(f"{CUSTOMERS}?lifecycle_stage=new", headers=headers))
    assert set(ids(new)) == {gold.id, silver.id}
    unactivated = await ok(await client.get(f"{CUSTOMERS}?lifecycle_stage=unactivated", headers=headers))
    assert ids(unactivated) == [old.id]


async def test_pages_follow_the_cursor_newest_first(client) -> None:
    headers = await admin_headers(client)
    made = [await customer(f"o_page_{i}", city="Hangzhou") for i in range(5)]
    seen: list[int] = []
    cursor = ""
    for _ in range(5):
        body = await ok(await client.get(f"{CUSTOMERS}?city=Hangzhou&limit=2&cursor={cursor}", headers=headers))
        seen += ids(body)
        if not body["next_cursor"]:
            break
        cursor = body["next_cursor"]
    assert seen == [c.id for c in reversed(made)]
    forged = await client.get(f"{CUSTOMERS}?cursor=not-a-cursor", headers=headers)
    assert forged.status == 422


async def test_phones_are_masked_except_for_superadmins(client) -> None:
    someone = await customer("o_phone", phone_number="13812345678", phone_country_code="86")
    operator = await admin_headers(client, "operator")
    root = await admin_headers(client, "superadmin")
    masked = await ok(await client.get(f"{CUSTOMERS}?id={someone.id}", headers=operator))
    assert masked["items"][0]["phone"] == "138****5678"
    detail = await ok(await client.get(customer_path(someone.id), headers=operator))
    assert detail["profile"]["phone"] == "138****5678"
    assert "13812345678" not in str(detail)
    full = await ok(await client.get(f"{CUSTOMERS}?id={someone.id}", headers=root))
    assert full["items"][0]["phone"] == "13812345678"
    assert (await ok(await client.get(customer_path(someone.id), headers=root)))["profile"]["phone"] == "13812345678"


async def test_reviewers_and_approvers_do_not_use_customer_service(client) -> None:
    someone = await customer("o_private")
    for role in ("reviewer", "approver"):
        headers = await admin_headers(client, role)
        resp = await client.get(customer_path(someone.id), headers=headers)
        assert resp.status == 403 and (await error_of(resp))["code"] == "forbidden"


async def test_binding_a_phone_stores_its_suffix(client) -> None:
    someone = await customer("o_bind")
    await customer_accounts.bind_phone(someone.id, customer_accounts.PhoneNumber("+8613811112222", "86"))
    assert (await Customer.get(id=someone.id)).phone_suffix == "2222"
    headers = await admin_headers(client)
    assert ids(await ok(await client.get(f"{CUSTOMERS}?phone_suffix=2222", headers=headers))) == [someone.id]


#: 100,000 customers, numbers 138xxxxxxxx: each suffix is held by ten of them.
_SCALE = {
    "sqlite": (
        "INSERT INTO customers (openid, interest_tags, membership_tier, created_at, phone_number, phone_suffix) "
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
        "SELECT 'o_scale_' || i, '[]', 'standard', '2026-01-01 00:00:00+00:00', '138' || printf('%08d', i), "
        "printf('%04d', i % 10000) FROM n"
    ),
    "postgres": (
        "INSERT INTO customers (openid, interest_tags, membership_tier, created_at, phone_number, phone_suffix) "
        "SELECT 'o_scale_' || i, '[]', 'standard', now(), '138' || lpad(i::text, 8, '0'), "
        "lpad((i % 10000)::text, 4, '0') FROM generate_series(1, 100000) AS i"
    ),
}


async def test_the_phone_suffix_search_is_an_index_lookup_at_100000_customers(client, db_backend) -> None:
    conn = connections.get("default")
    await conn.execute_script(_SCALE[db_backend])
    await conn.execute_script("ANALYZE")
    headers = await admin_headers(client)
    found = await ok(await client.get(f"{CUSTOMERS}?phone_suffix=4321&limit=100", headers=headers))
    assert len(found["items"]) == 10 and {i["phone"][-4:] for i in found["items"]} == {"4321"}

    # The list's own query (services.support.search), as the planner sees it.
    query = Customer.filter(phone_suffix="4321").order_by("-id").limit(21)
    sql = query.sql(params_inline=True)
    explain = "EXPLAIN QUERY PLAN " if db_backend == "sqlite" else "EXPLAIN "
    plan = str(await conn.execute_query_dict(explain + sql))
    assert "idx_customers_phone_suffix" in plan, plan


async def test_unknown_customer_is_a_404(client) -> None:
    headers = await admin_headers(client)
    for path in (customer_path(999_999), customer_path(999_999, "/points")):
        resp = await client.get(path, headers=headers)
        assert resp.status == 404 and (await error_of(resp))["code"] == "not_found"


async def test_the_detail_gathers_profile_facts_wallet_points_campaigns_and_messages(client) -> None:
    [held] = await vouchers(client, 1, prefix="o_detail")
    voucher = await held.row()
    cid = voucher.customer_id
    today = date.today()
    await CustomerFacts.create(
        customer_id=cid, spend_30d=12_300, visits_30d=4, purchases_total=3, spend_total=45_600,
        last_purchase_at=today, lifecycle_stage="active",
    )  # fmt: skip
    for i in range(25):
        await points.add(cid, 10, "purchase", f"detail:{i}")
    challenge = await make_campaign(type="challenge", goal_metric="visits", goal_target=5)
    await Participation.create(campaign_id=challenge.id, customer_id=cid, progress=2)
    await Notification.create(
        key=f"reward:{cid}", kind="reward", customer_id=cid, payload={}, next_attempt_at=datetime.now(UTC)
    )
    headers = await admin_headers(client)

    body = await ok(await client.get(customer_path(cid), headers=headers))
    assert body["profile"]["id"] == cid and body["profile"]["membership_tier"] == "standard"
    assert body["facts"]["spend_30d"] == 12_300 and body["facts"]["lifecycle_stage"] == "active"
    assert body["facts"]["visits_7d"] == 0
    [shown] = body["wallet"]["vouchers"]
    assert shown["claim_id"] == held.claim_id and shown["status"] == "available" and shown["manual_grant"] is False
    assert body["wallet"]["counts"] == {"available": 1, "used": 0, "expired": 0, "void": 0}
    assert body["points"]["balance"] == 250
    assert len(body["points"]["ledger"]) == 20 and body["points"]["ledger_next_cursor"]
    [part] = body["campaigns"]
    assert (part["campaign_id"], part["progress"], part["goal_target"], part["title"]) == (challenge.id, 2, 5, "优惠")
    assert [n["kind"] for n in body["notifications"]] == ["reward"]
    assert body["redemptions"] == [] and body["tier_changes"] == []

    more = await ok(
        await client.get(customer_path(cid, f"/points?cursor={body['points']['ledger_next_cursor']}"), headers=headers)
    )
    assert len(more["items"]) == 5 and more["next_cursor"] is None
    assert sorted(e["id"] for e in body["points"]["ledger"] + more["items"]) == sorted(
        await PointsEntry.filter(customer_id=cid).values_list("id", flat=True)
    )
