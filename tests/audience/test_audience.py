"""Audience targeting: every predicate and combinator on a seeded population (exact ids),
saved segments, the 422s with their paths, roles, and the facts kept from activity."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from models.audience import CustomerDailyActivity, CustomerFacts, CustomerStoreVisit
from models.campaigns import Campaign, CouponTemplate
from models.customers import Customer
from models.participations import Participation
from models.stores import Store
from models.vouchers import Voucher
from services.audience import parse_rule, recompute_facts, record_activity, utc_today
from services.audience import rules as audience
from services.core import errors
from tests.helpers import bearer, cheap_password_hashing, customer_login, error_of, logged_in_admin

PREVIEW = "/api/v1/admin/audiences/preview"
SEGMENTS = "/api/v1/admin/segments"


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


# --- the population -----------------------------------------------------------------


@dataclass
class World:
    today: date
    ids: dict[str, int]  # customer name -> id
    s1: int  # Shanghai store
    s2: int  # Beijing store
    c1: int  # campaign: alice completed it, bob joined it
    c2: int  # campaign: dave joined it
    t1: int  # coupon template of c1

    def names(self, ids: list[int]) -> set[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return {by_id[i] for i in ids}


async def _customer(name: str, *, tier: str, city: str | None, tags: list[str], days_ago: int, **extra: Any) -> int:
    customer = await Customer.create(
        openid=f"o_{name}", nickname=name, membership_tier=tier, city=city, interest_tags=tags, **extra
    )
    # created_at is set on insert: move registration into the past afterwards.
    await Customer.filter(id=customer.id).update(created_at=datetime.now(UTC) - timedelta(days=days_ago))
    return customer.id


async def seed() -> World:
    """Six customers, hand-built so that each predicate picks a known subset:

    name   tier      city      tags          registered  activity (days ago)                     stage
    alice  gold      Shanghai  coffee, tea   400 d       buys 3000.00 at S1, 10 d (1 visit)      active
    bob    platinum  Shanghai  books         200 d       buys 1500.00 at S2, 40 d (2 visits)     silent
    carol  silver    Beijing   coffee          3 d       none (no facts row)                     new
    dave   standard  (none)    (none)        100 d       buys 500.00, 120 d                      churned
    erin   gold      Beijing   tea            45 d       5 visits at S1, 2 d, no purchase        unactivated
    frank  standard  Shanghai  (none)         20 d       none (no facts row)                     unactivated
    """
    today = utc_today()
    s1 = await Store.create(code="SH1", name="Jing'an", city="Shanghai", latitude=31.2, longitude=121.4)
    s2 = await Store.create(code="BJ1", name="Sanlitun", city="Beijing", latitude=39.9, longitude=116.4)
    ids = {
        "alice": await _customer(
            "alice", tier="gold", city="Shanghai", tags=["coffee", "tea"], days_ago=400, preferred_store_id=s1.id
        ),
        "bob": await _customer(
            "bob", tier="platinum", city="Shanghai", tags=["books"], days_ago=200, preferred_store_id=s2.id
        ),
        "carol": await _customer("carol", tier="silver", city="Beijing", tags=["coffee"], days_ago=3),
        "dave": await _customer("dave", tier="standard", city=None, tags=[], days_ago=100),
        "erin": await _customer("erin", tier="gold", city="Beijing", tags=["tea"], days_ago=45),
        "frank": await _customer("frank", tier="standard", city="Shanghai", tags=[], days_ago=20),
    }
    ago = lambda n: today - timedelta(days=n)  # noqa: E731
    await record_activity(ids["alice"], ago(10), spend=300_000, visits=1, purchases=1, store_id=s1.id, today=today)
    await record_activity(ids["bob"], ago(40), spend=150_000, visits=2, purchases=1, store_id=s2.id, today=today)
    await record_activity(ids["dave"], ago(120), spend=50_000, purchases=1, today=today)
    await record_activity(ids["erin"], ago(2), visits=5, store_id=s1.id, today=today)

    now = datetime.now(UTC)
    c1 = await Campaign.create(type="offer", starts_at=now, ends_at=now + timedelta(days=30), created_by=1)
    c2 = await Campaign.create(type="event", starts_at=now, ends_at=now + timedelta(days=30), created_by=1)
    await Participation.create(campaign=c1, customer_id=ids["alice"], status="completed", completed_at=now)
    await Participation.create(campaign=c1, customer_id=ids["bob"], status="joined")
    await Participation.create(campaign=c2, customer_id=ids["dave"], status="joined")
    t1 = await CouponTemplate.create(campaign=c1, kind="fixed", face_value=1000, total_stock=100, validity_kind="fixed")
    vouchers = [
        ("alice", "available", now + timedelta(days=10)),
        ("bob", "used", now + timedelta(days=10)),
        ("erin", "available", now - timedelta(days=1)),  # expired, not yet swept
    ]
    for i, (name, status, until) in enumerate(vouchers):
        await Voucher.create(
            claim_id=f"claim-{i}", template=t1, campaign_id=c1.id, customer_id=ids[name], code=f"CODE{i}",
            status=status, face_value=1000, valid_from=now - timedelta(days=5), valid_until=until, issued_at=now,
        )  # fmt: skip
    return World(today, ids, s1.id, s2.id, c1.id, c2.id, t1.id)


async def operator_headers(client: TestClient, role: str = "operator") -> dict[str, str]:
    login = await logged_in_admin(client, role)
    return bearer(login["access_token"])


async def preview(client: TestClient, headers: dict[str, str], rule: Any, **extra: Any) -> dict[str, Any]:
    resp = await client.post(PREVIEW, json={"rule": rule, **extra}, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def matched(client: TestClient, headers: dict[str, str], world: World, rule: Any) -> set[str]:
    """The names a rule matches, by the preview's count and (full) sample."""
    body = await preview(client, headers, rule, sample_size=100)
    assert body["count"] == len(body["sample"]), body
    return world.names([row["id"] for row in body["sample"]])


# --- predicates and combinators ------------------------------------------------------


def predicate_cases(w: World) -> list[tuple[Any, set[str]]]:
    everyone = set(w.ids)
    return [
        ({"tier": "gold"}, {"alice", "erin"}),
        ({"tier": ["gold", "platinum"]}, {"alice", "bob", "erin"}),
        ({"interest_tags_any": ["coffee"]}, {"alice", "carol"}),
        ({"interest_tags_any": ["tea", "books"]}, {"alice", "bob", "erin"}),
        ({"interest_tags_any": ["golf"]}, set()),
        ({"city": "Shanghai"}, {"alice", "bob", "frank"}),
        ({"city": ["Shanghai", "Beijing"]}, everyone - {"dave"}),
        ({"preferred_store": w.s1}, {"alice"}),
        ({"preferred_store": [w.s1, w.s2]}, {"alice", "bob"}),
        ({"visited_store": w.s1}, {"alice", "erin"}),
        ({"visited_store": [w.s2]}, {"bob"}),
        ({"lifecycle_stage": "new"}, {"carol"}),
        ({"lifecycle_stage": "unactivated"}, {"erin", "frank"}),
        ({"lifecycle_stage": "active"}, {"alice"}),
        ({"lifecycle_stage": "silent"}, {"bob"}),
        ({"lifecycle_stage": "churned"}, {"dave"}),
        ({"lifecycle_stage": ["new", "churned"]}, {"carol", "dave"}),
        ({"spend_at_least": {"days": 30, "amount": 200_000}}, {"alice"}),
        ({"spend_at_least": {"days": 90, "amount": 100_000}}, {"alice", "bob"}),
        ({"spend_at_least": {"days": 365, "amount": 50_000}}, {"alice", "bob", "dave"}),
        ({"spend_at_least": {"days": 90, "amount": 150_001}}, {"alice"}),
        ({"spend_at_least": {"days": 7, "amount": 0}}, everyone),
        ({"visits_at_least": {"days": 7, "count": 5}}, {"erin"}),
        ({"visits_at_least": {"days": 7, "count": 6}}, set()),
        ({"visits_at_least": {"days": 90, "count": 2}}, {"bob", "erin"}),
        ({"visits_at_least": {"days": 30, "count": 1}}, {"alice", "erin"}),
        ({"registered_within_days": 7}, {"carol"}),
        ({"registered_within_days": 21}, {"carol", "frank"}),
        ({"registered_within_days": 3650}, everyone),
        ({"joined_campaign": w.c1}, {"alice", "bob"}),
        ({"joined_campaign": w.c2}, {"dave"}),
        ({"completed_campaign": w.c1}, {"alice"}),
        ({"completed_campaign": w.c2}, set()),
        ({"holds_coupon": w.t1}, {"alice"}),
        # Exclusions: customers without a city or without facts are "not" matches too.
        ({"not": {"tier": "gold"}}, {"bob", "carol", "dave", "frank"}),
        ({"not": {"city": "Shanghai"}}, {"carol", "dave", "erin"}),
        ({"not": {"lifecycle_stage": "churned"}}, everyone - {"dave"}),
        ({"not": {"spend_at_least": {"days": 90, "amount": 100_000}}}, {"carol", "dave", "erin", "frank"}),
        ({"not": {"joined_campaign": w.c1}}, everyone - {"alice", "bob"}),
        ({"not": {"not": {"city": "Shanghai"}}}, {"alice", "bob", "frank"}),
        # Combinators.
        (
            {
                "all": [
                    {"tier": ["gold", "platinum"]},
                    {"city": "Shanghai"},
                    {"spend_at_least": {"days": 90, "amount": 200_000}},
                ]
            },
            {"alice"},
        ),
        ({"any": [{"lifecycle_stage": "new"}, {"holds_coupon": w.t1}]}, {"alice", "carol"}),
        ({"all": [{"interest_tags_any": ["coffee"]}, {"not": {"lifecycle_stage": "churned"}}]}, {"alice", "carol"}),
        ({"all": [{"registered_within_days": 30}, {"not": {"joined_campaign": w.c1}}]}, {"carol", "frank"}),
        (
            {"any": [{"city": "Beijing"}, {"not": {"any": [{"city": "Shanghai"}, {"tier": "standard"}]}}]},
            {"carol", "erin"},
        ),
        ({"all": [{"tier": "gold"}]}, {"alice", "erin"}),
    ]


async def test_every_predicate_and_combinator_counts_exactly(client: TestClient) -> None:
    world = await seed()
    headers = await operator_headers(client)
    for rule, expected in predicate_cases(world):
        assert await matched(client, headers, world, rule) == expected, rule


async def test_preview_sample_is_newest_first_with_stages(client: TestClient) -> None:
    world = await seed()
    headers = await operator_headers(client)
    body = await preview(client, headers, {"city": ["Shanghai", "Beijing"]}, sample_size=2)
    assert body["count"] == 5
    frank, erin = world.ids["frank"], world.ids["erin"]
    stage = "unactivated"
    assert body["sample"] == [
        {"id": frank, "nickname": "frank", "city": "Shanghai", "membership_tier": "standard", "lifecycle_stage": stage},
        {"id": erin, "nickname": "erin", "city": "Beijing", "membership_tier": "gold", "lifecycle_stage": stage},
    ]
    assert (await preview(client, headers, {"city": "Shanghai"}))["count"] == 3  # default sample of 20
    empty = await preview(client, headers, {"interest_tags_any": ["golf"]})
    assert empty == {"count": 0, "sample": []}


async def test_service_functions_agree_with_the_preview(client: TestClient) -> None:
    world = await seed()
    rule = {"any": [{"lifecycle_stage": "new"}, {"holds_coupon": world.t1}]}
    expected = sorted([world.ids["alice"], world.ids["carol"]])
    assert await audience.customer_ids_matching(rule) == expected
    assert await audience.customer_ids_matching(rule, after_id=expected[0]) == expected[1:]
    assert await audience.customer_ids_matching(rule, limit=1) == expected[:1]
    assert await audience.matches(rule, world.ids["carol"]) is True
    assert await audience.matches(rule, world.ids["bob"]) is False
    assert await audience.matches({"not": rule}, world.ids["bob"]) is True
    assert await audience.preview(rule, sample_size=0) == (2, [])


async def test_facts_from_recording_equal_facts_from_recompute(client: TestClient) -> None:
    world = await seed()
    columns = [name for name in CustomerFacts._meta.db_fields if name not in ("id", "updated_at")]
    recorded = await CustomerFacts.all().values(*columns)
    assert len(recorded) == 4
    await recompute_facts(today=world.today)
    recomputed = await CustomerFacts.all().values(*columns)
    # The nightly run also gives the customers without activity a row (and a stage).
    assert len(recomputed) == 6
    by_customer = {row["customer_id"]: row for row in recomputed}
    for row in recorded:
        assert by_customer[row["customer_id"]] == row
    assert by_customer[world.ids["carol"]]["lifecycle_stage"] == "new"
    assert by_customer[world.ids["frank"]]["lifecycle_stage"] == "unactivated"
    # And the rules still select the same people now that everyone has facts.
    headers = await operator_headers(client)
    for rule, expected in predicate_cases(world):
        assert await matched(client, headers, world, rule) == expected, rule


# --- saved segments -----------------------------------------------------------------


async def test_segment_used_inside_another_rule(client: TestClient) -> None:
    world = await seed()
    headers = await operator_headers(client)
    big = {"all": [{"city": "Shanghai"}, {"spend_at_least": {"days": 90, "amount": 100_000}}]}
    resp = await client.post(SEGMENTS, json={"name": "shanghai_big", "rule": big, "description": "d"}, headers=headers)
    assert resp.status == 201, await resp.text()
    assert await matched(client, headers, world, {"segment": "shanghai_big"}) == {"alice", "bob"}
    rule = {"all": [{"segment": "shanghai_big"}, {"not": {"completed_campaign": world.c1}}]}
    assert await matched(client, headers, world, rule) == {"bob"}
    # A segment made of a segment, excluded from a broader rule.
    resp = await client.post(SEGMENTS, json={"name": "big_not_done", "rule": rule}, headers=headers)
    assert resp.status == 201, await resp.text()
    outer = {"all": [{"tier": ["gold", "platinum"]}, {"not": {"segment": "big_not_done"}}]}
    assert await matched(client, headers, world, outer) == {"alice", "erin"}
    assert await audience.matches(outer, world.ids["bob"]) is False


async def test_segment_crud(client: TestClient) -> None:
    await seed()
    headers = await operator_headers(client)
    reviewer = await operator_headers(client, "reviewer")
    made = []
    for i in range(3):
        resp = await client.post(SEGMENTS, json={"name": f"seg{i}", "rule": {"tier": "gold"}}, headers=headers)
        assert resp.status == 201, await resp.text()
        made.append(await resp.json())
    assert made[0]["description"] == "" and made[0]["rule"] == {"tier": "gold"}
    assert made[0]["created_by"] > 0

    resp = await client.post(SEGMENTS, json={"name": "seg0", "rule": {"tier": "silver"}}, headers=headers)
    assert resp.status == 409 and (await error_of(resp))["code"] == "conflict"

    resp = await client.get(SEGMENTS, params={"limit": "2"}, headers=reviewer)
    page = await resp.json()
    assert [s["name"] for s in page["items"]] == ["seg2", "seg1"] and page["next_cursor"]
    resp = await client.get(SEGMENTS, params={"limit": "2", "cursor": page["next_cursor"]}, headers=reviewer)
    page = await resp.json()
    assert [s["name"] for s in page["items"]] == ["seg0"] and page["next_cursor"] is None

    seg_id = made[1]["id"]
    resp = await client.get(f"{SEGMENTS}/{seg_id}", headers=reviewer)
    assert (await resp.json())["name"] == "seg1"
    new_rule = {"any": [{"tier": "silver"}, {"city": "Beijing"}]}
    resp = await client.put(f"{SEGMENTS}/{seg_id}", json={"rule": new_rule, "description": "new"}, headers=headers)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["rule"] == new_rule and body["description"] == "new" and body["name"] == "seg1"
    assert (await preview(client, headers, {"segment": "seg1"}))["count"] == 2

    # In use by another segment: refused, then allowed once that one is gone.
    resp = await client.post(SEGMENTS, json={"name": "user", "rule": {"not": {"segment": "seg1"}}}, headers=headers)
    user_id = (await resp.json())["id"]
    resp = await client.delete(f"{SEGMENTS}/{seg_id}", headers=headers)
    assert resp.status == 409
    error = await error_of(resp)
    assert error["code"] == "segment_in_use" and error["details"]["segments"] == ["user"]
    assert (await client.delete(f"{SEGMENTS}/{user_id}", headers=headers)).status == 204
    assert (await client.delete(f"{SEGMENTS}/{seg_id}", headers=headers)).status == 204
    for method in ("get", "delete"):
        resp = await getattr(client, method)(f"{SEGMENTS}/{seg_id}", headers=headers)
        assert resp.status == 404 and (await error_of(resp))["code"] == "not_found"
    resp = await client.put(f"{SEGMENTS}/{seg_id}", json={"rule": {"tier": "gold"}}, headers=headers)
    assert resp.status == 404
    assert (await client.get(f"{SEGMENTS}/abc", headers=headers)).status == 404


# --- bad rules ----------------------------------------------------------------------


def deep_rule(levels: int) -> dict[str, Any]:
    rule: dict[str, Any] = {"tier": "gold"}
    for _ in range(levels - 1):
        rule = {"not": rule}
    return rule


async def assert_422(
    client: TestClient, headers: dict[str, str], rule: Any, field: str, kind: str | None = None
) -> None:
    resp = await client.post(PREVIEW, json={"rule": rule}, headers=headers)
    assert resp.status == 422, await resp.text()
    error = await error_of(resp)
    assert error["code"] == "validation_failed"
    fields = {e["field"]: e["type"] for e in error["details"]["errors"]}
    assert field in fields, error
    if kind is not None:
        assert fields[field] == kind, error


async def test_bad_rules_are_422_naming_the_path(client: TestClient) -> None:
    world = await seed()
    headers = await operator_headers(client)
    ok = {"tier": "gold"}
    spend = {"spend_at_least": {"days": 31, "amount": 100}}
    await assert_422(client, headers, {"all": [ok, {"shoe_size": 42}]}, "rule.all[1].shoe_size", "unknown_predicate")
    await assert_422(client, headers, {"all": [ok, ok, spend]}, "rule.all[2].spend_at_least.days")
    await assert_422(client, headers, {"spend_at_least": {"days": 30, "amount": -1}}, "rule.spend_at_least.amount")
    await assert_422(client, headers, {"spend_at_least": {"days": 30}}, "rule.spend_at_least.amount")
    await assert_422(client, headers, {"visits_at_least": {"days": 30, "count": 1, "x": 1}}, "rule.visits_at_least.x")
    await assert_422(client, headers, {"any": []}, "rule.any", "empty_combinator")
    await assert_422(client, headers, {"not": {"all": [ok, {"any": []}]}}, "rule.not.all[1].any")
    await assert_422(client, headers, {"tier": ["gold", "bronze"]}, "rule.tier[1]")
    await assert_422(client, headers, {"registered_within_days": 0}, "rule.registered_within_days")
    await assert_422(client, headers, {"joined_campaign": True}, "rule.joined_campaign")
    await assert_422(client, headers, {"city": "Shanghai", "tier": "gold"}, "rule")
    await assert_422(client, headers, {"all": [ok, []]}, "rule.all[1]")
    await assert_422(client, headers, deep_rule(50), "rule" + ".not" * 10, "rule_too_deep")
    assert (await client.post(PREVIEW, json={"rule": deep_rule(10)}, headers=headers)).status == 200
    await assert_422(client, headers, {"any": [ok] * 200}, "rule.any[199]", "rule_too_large")
    await assert_422(client, headers, {"visited_store": [world.s1, 999_999]}, "rule.visited_store[1]", "not_found")
    await assert_422(client, headers, {"holds_coupon": 999_999}, "rule.holds_coupon", "not_found")
    await assert_422(client, headers, {"segment": "nobody"}, "rule.segment", "unknown_segment")
    await assert_422(client, headers, {"city": ["x" * 60] * 100, "pad": "y" * 20_000}, "rule")  # over 16 KiB
    resp = await client.post(PREVIEW, json={"rule": [ok]}, headers=headers)
    assert resp.status == 422 and (await error_of(resp))["details"]["errors"][0]["field"] == "rule"
    # Deeper than the JSON parser goes: still a clean 4xx, never a 500.
    text = '{"rule":' + '{"not":' * 5000 + '{"tier":"gold"}' + "}" * 5001
    resp = await client.post(PREVIEW, data=text, headers={**headers, "Content-Type": "application/json"})
    assert resp.status in (400, 422), await resp.text()


async def test_cyclic_segments_are_refused(client: TestClient) -> None:
    await seed()
    headers = await operator_headers(client)
    resp = await client.post(SEGMENTS, json={"name": "a", "rule": {"segment": "a"}}, headers=headers)
    assert resp.status == 422
    error = await error_of(resp)
    assert error["details"]["errors"][0] == {
        "field": "rule.segment", "message": "segments refer to each other in a cycle: a -> a", "type": "segment_cycle",
    }  # fmt: skip
    resp = await client.post(SEGMENTS, json={"name": "b", "rule": {"tier": "gold"}}, headers=headers)
    b_id = (await resp.json())["id"]
    rule_a = {"all": [{"city": "Shanghai"}, {"segment": "b"}]}
    assert (await client.post(SEGMENTS, json={"name": "a", "rule": rule_a}, headers=headers)).status == 201
    resp = await client.put(f"{SEGMENTS}/{b_id}", json={"rule": {"any": [{"segment": "a"}]}}, headers=headers)
    assert resp.status == 422
    error = await error_of(resp)
    assert error["details"]["errors"][0]["field"] == "rule.any[0].segment"
    assert error["details"]["errors"][0]["message"].endswith("b -> a -> b")
    # Nothing changed: b still works, and a through it.
    assert (await preview(client, headers, {"segment": "a"}))["count"] == 1


async def test_roles(client: TestClient) -> None:
    await seed()
    customer = await customer_login(client, "o_customer")
    as_customer = bearer(customer["access_token"])
    for method, path in (("post", PREVIEW), ("post", SEGMENTS), ("get", SEGMENTS)):
        resp = await getattr(client, method)(path, json={"rule": {"tier": "gold"}}, headers=as_customer)
        assert resp.status == 403 and (await error_of(resp))["code"] == "forbidden"
    assert (await client.post(PREVIEW, json={"rule": {"tier": "gold"}})).status == 401
    for role in ("reviewer", "approver", "superadmin"):
        headers = await operator_headers(client, role)
        assert (await preview(client, headers, {"tier": "gold"}))["count"] == 2
        resp = await client.post(SEGMENTS, json={"name": f"by-{role}", "rule": {"tier": "gold"}}, headers=headers)
        assert resp.status == (201 if role == "superadmin" else 403), role
        assert (await client.get(SEGMENTS, headers=headers)).status == 200


# --- facts --------------------------------------------------------------------------


async def test_record_activity_is_exact_under_concurrency(client: TestClient) -> None:
    world = await seed()
    customer = await Customer.create(openid="o_busy")
    day = world.today - timedelta(days=1)
    await asyncio.gather(
        *(
            record_activity(
                customer.id, day, spend=100 + i, visits=1, purchases=1, store_id=world.s2, today=world.today
            )
            for i in range(20)
        )
    )
    total = sum(100 + i for i in range(20))
    daily = await CustomerDailyActivity.filter(customer_id=customer.id).values("day", "spend", "visits", "purchases")
    assert daily == [{"day": day, "spend": total, "visits": 20, "purchases": 20}]
    facts = await CustomerFacts.get(customer_id=customer.id)
    assert (facts.spend_7d, facts.spend_365d, facts.spend_total, facts.purchases_total) == (total, total, total, 20)
    assert (facts.visits_7d, facts.visits_90d) == (20, 20)
    assert facts.first_purchase_at == facts.last_purchase_at == facts.last_visit_at == day
    assert facts.lifecycle_stage == "new"  # registered just now
    visit = await CustomerStoreVisit.get(customer_id=customer.id, store_id=world.s2)
    assert (visit.visits, visit.last_visit_at) == (20, day)


async def test_recompute_slides_the_windows(client: TestClient) -> None:
    world = await seed()
    bob = world.ids["bob"]  # bought 1500.00 forty days ago
    facts = await CustomerFacts.get(customer_id=bob)
    assert (facts.spend_30d, facts.spend_90d, facts.spend_180d) == (0, 150_000, 150_000)
    assert facts.lifecycle_stage == "silent"

    # Recorded when it was recent (as seen 25 days ago): inside 30 days, then slides out.
    await record_activity(
        bob, world.today - timedelta(days=40), spend=1, purchases=1, today=world.today - timedelta(25)
    )
    facts = await CustomerFacts.get(customer_id=bob)
    assert facts.spend_30d == 1
    await recompute_facts(bob, today=world.today)
    facts = await CustomerFacts.get(customer_id=bob)
    assert (facts.spend_30d, facts.spend_90d, facts.spend_total) == (0, 150_001, 150_001)

    # Sixty days later the purchase is 100 days old: out of 90 days, in 180; bob churned.
    await recompute_facts(today=world.today + timedelta(days=60))
    facts = await CustomerFacts.get(customer_id=bob)
    assert (facts.spend_90d, facts.spend_180d, facts.lifecycle_stage) == (0, 150_001, "churned")
    alice = await CustomerFacts.get(customer_id=world.ids["alice"])  # bought 70 days before then
    assert (alice.spend_30d, alice.spend_90d, alice.lifecycle_stage) == (0, 300_000, "silent")
    carol = await CustomerFacts.get(customer_id=world.ids["carol"])  # registered 63 days before then
    assert (carol.spend_total, carol.lifecycle_stage) == (0, "unactivated")


async def test_record_activity_preconditions(client: TestClient) -> None:
    world = await seed()
    with pytest.raises(ValueError):
        await record_activity(world.ids["alice"], world.today, spend=-1)
    before = await CustomerDailyActivity.filter(customer_id=world.ids["alice"]).count()
    with pytest.raises(Exception, match=r"(?i)foreign|constraint|violat"):
        await record_activity(world.ids["alice"], world.today, visits=1, store_id=999_999)
    # The failed call left nothing behind (one transaction).
    assert await CustomerDailyActivity.filter(customer_id=world.ids["alice"]).count() == before


# --- the compiler, without a database ------------------------------------------------


def test_values_never_reach_the_sql_text() -> None:
    hostile = "x'); DROP TABLE customers; --"
    rule = {"all": [{"city": [hostile, "b"]}, {"interest_tags_any": [hostile]}, {"segment": "s"}]}
    segments = {"s": parse_rule({"spend_at_least": {"days": 90, "amount": 5}})}
    for dialect in ("sqlite", "postgres"):
        sql, params = audience.compile_query(rule, dialect, segments=segments)
        assert hostile not in sql and "DROP" not in sql
        assert hostile in params or [hostile] in params or [hostile, "b"] in params
        marker = "$" if dialect == "postgres" else "?"
        assert f"{marker}{len(params)}" in sql and f"{marker}{len(params) + 1}" not in sql


def test_compiler_shapes() -> None:
    now = datetime(2026, 1, 31, 12, tzinfo=UTC)
    sql, params = audience.compile_query({"not": {"joined_campaign": 7}}, "postgres", now=now)
    # Never NULL: a plain NOT EXISTS, which PostgreSQL plans as an anti-join.
    # Erased customers (services/privacy) are in no audience.
    assert sql == (
        "SELECT COUNT(*) AS n FROM customers c WHERE c.erased_at IS NULL AND (NOT EXISTS (SELECT 1 FROM participations"
        " pa WHERE pa.customer_id = c.id AND pa.campaign_id = $1))"
    )
    assert params == [7]
    sql, _ = audience.compile_query({"not": {"lifecycle_stage": "churned"}}, "sqlite", now=now)
    assert "LEFT JOIN customer_facts f" in sql and "NOT COALESCE(" in sql
    sql, params = audience.compile_query({"spend_at_least": {"days": 30, "amount": 0}}, "sqlite", now=now)
    assert sql.endswith("WHERE c.erased_at IS NULL AND (1=1)") and params == []
    sql, params = audience.compile_query({"registered_within_days": 10}, "sqlite", purpose="ids", limit=5, now=now)
    assert params == [now - timedelta(days=10), 5, 0]


def test_parse_limits_without_recursion() -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        parse_rule(deep_rule(900))
    assert caught.value.details["errors"][0]["type"] == "rule_too_deep"
    wide = {"any": [{"all": [{"tier": "gold"}] * 50}] * 5}
    with pytest.raises(errors.ValidationFailed) as caught:
        parse_rule(wide)
    assert caught.value.details["errors"][0]["type"] == "rule_too_large"
    cycle = {"x": parse_rule({"segment": "y"}, "segment(x)"), "y": parse_rule({"segment": "x"})}
    with pytest.raises(errors.ValidationFailed) as caught:
        audience.compile_query({"all": [{"tier": "gold"}, {"segment": "x"}]}, "sqlite", segments=cycle)
    assert caught.value.details["errors"][0]["field"] == "rule.all[1].segment"
