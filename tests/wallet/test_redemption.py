"""Redemption at the till: exactly once under concurrency, idempotent retries, every
refusal with its code, reversal rules, the store's day list, admin list and CSV, and
campaign poster codes."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import UTC, datetime, timedelta

import pytest

from models.audit import AuditEntry
from models.campaigns import Campaign, CampaignStore, CouponTemplate
from models.redemptions import Redemption
from models.vouchers import Voucher
from services.wallet import qr
from tests.helpers import bearer, cheap_password_hashing, error_of, logged_in_admin, wechat_calls
from tests.wallet.fixtures import PREVIEW, REDEEM, keyring, qr_payload, staff_login, store, vouchers

SECRET_A = "qr-key-a-0123456789abcdef0123456789abcdef"
SECRET_B = "qr-key-b-fedcba9876543210fedcba9876543210"


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):
    cheap_password_hashing(monkeypatch)


async def _refused(resp, status: int, code: str) -> dict:
    assert resp.status == status, (resp.status, await resp.text())
    error = await error_of(resp)
    assert error["code"] == code, error
    return error


async def test_twenty_concurrent_redemptions_from_two_clerks_one_wins(client):
    shop = await store()
    clerks = [await staff_login(client, shop.id, "clara"), await staff_login(client, shop.id, "carl")]
    [held] = await vouchers(client)
    payload = await qr_payload(client, held)
    resps = await asyncio.gather(
        *(client.post(REDEEM, json={"payload": payload}, headers=clerks[i % 2]) for i in range(20))
    )
    statuses = [r.status for r in resps]
    assert statuses.count(201) == 1, statuses
    for resp in resps:
        if resp.status != 201:
            error = await _refused(resp, 409, "voucher_already_used")
            assert error["details"]["store_id"] == shop.id and error["details"]["used_at"]
            assert error["details"]["store_name"] == shop.name
    [winner] = [r for r in resps if r.status == 201]
    body = await winner.json()
    assert body["voucher_id"] == held.claim_id and body["store_id"] == shop.id and body["face_value"] == 1000
    voucher = await held.row()
    assert body["voucher_code_masked"].endswith(voucher.code[-4:]) and voucher.code not in await winner.text()
    assert voucher.status == "used" and voucher.used_store_id == shop.id
    assert await Redemption.all().count() == 1
    assert await AuditEntry.filter(action="voucher.redeem", entity_type="redemption").count() == 1


async def test_many_vouchers_redeemed_at_once_each_exactly_once_with_its_own_rows(client):
    # Concurrent redemptions of distinct vouchers go to the database together (group
    # commit): each must get its own redemption, audit entry and answer, and one taken
    # Idempotency-Key must fail only its own redemption, not the others of its batch.
    shop = await store()
    clerks = [await staff_login(client, shop.id, "clara"), await staff_login(client, shop.id, "carl")]
    held = await vouchers(client, 16)
    payloads = [await qr_payload(client, h) for h in held]
    bodies = [{"payload": p, "order_ref": f"POS-{i}"} for i, p in enumerate(payloads)]
    keys = [f"till-key-{i}" for i in range(16)]
    keys[15] = "till-key-14"  # two tills sending the same key

    def headers(i: int) -> dict[str, str]:
        return {**clerks[i % 2], "Idempotency-Key": keys[i]}

    # First eight with nothing in the way, then the rest with the clash.
    resps = await asyncio.gather(
        *(client.post(REDEEM, json=body, headers=headers(i)) for i, body in enumerate(bodies[:8]))
    )
    resps += await asyncio.gather(
        *(client.post(REDEEM, json=body, headers=headers(i)) for i, body in enumerate(bodies[8:], start=8))
    )
    statuses = [r.status for r in resps]
    assert statuses[:14] == [201] * 14, statuses
    assert sorted(statuses[14:]) == [201, 409], statuses
    loser = 14 if statuses[14] == 409 else 15
    await _refused(resps[loser], 409, "conflict")
    answers = {i: await r.json() for i, r in enumerate(resps) if r.status == 201}
    assert {a["voucher_id"] for a in answers.values()} == {h.claim_id for i, h in enumerate(held) if i != loser}
    assert len({a["id"] for a in answers.values()}) == 15
    for i, answer in answers.items():
        assert answer["order_ref"] == bodies[i]["order_ref"] and answer["store_name"] == shop.name
        assert answer["staff_name"] == ("Clara" if i % 2 == 0 else "Carl")
        row = await Redemption.get(id=answer["id"])
        assert row.voucher_id == (await held[i].row()).id and row.order_ref == bodies[i]["order_ref"]  # type: ignore[attr-defined]
    assert await Redemption.all().count() == 15
    assert await AuditEntry.filter(action="voucher.redeem", entity_type="redemption").count() == 15
    entries = {e.entity_id: e for e in await AuditEntry.filter(action="voucher.redeem")}
    assert set(entries) == {a["id"] for a in answers.values()}
    for i, answer in answers.items():
        after = entries[answer["id"]].after
        assert after["voucher_id"] == (await held[i].row()).id and after["order_ref"] == bodies[i]["order_ref"]
        assert after["staff_id"] == answer["staff_id"] and entries[answer["id"]].before["voucher_status"] == "available"
    assert (await held[loser].row()).status == "available"
    assert await Voucher.filter(status="used", used_store_id=shop.id).count() == 15


async def test_concurrent_retries_with_one_key_get_one_redemption_and_replays_of_it(client):
    # A till that times out and resends while the first request is still in flight: every
    # copy must get the one redemption, none voucher_already_used (on SQLite they share a
    # batch, whose later reads see the voucher already used by the first).
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    [held] = await vouchers(client)
    payload = await qr_payload(client, held)
    headers = {**clerk, "Idempotency-Key": "till-7-order-2"}
    resps = await asyncio.gather(*(client.post(REDEEM, json={"payload": payload}, headers=headers) for _ in range(12)))
    assert [r.status for r in resps] == [201] * 12
    assert sum(r.headers.get("Idempotent-Replayed") != "true" for r in resps) == 1
    bodies = [await r.json() for r in resps]
    assert all(body == bodies[0] for body in bodies)
    assert await Redemption.all().count() == 1


async def test_a_retry_with_the_same_key_returns_the_first_201(client):
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    first, second = await vouchers(client, 2)
    payload = await qr_payload(client, first)
    headers = {**clerk, "Idempotency-Key": "till-7-order-1"}
    resp = await client.post(REDEEM, json={"payload": payload, "order_amount": 5000}, headers=headers)
    assert resp.status == 201
    original = await resp.json()
    retries = await asyncio.gather(*(client.post(REDEEM, json={"payload": payload}, headers=headers) for _ in range(3)))
    for retry in retries:
        assert retry.status == 201 and retry.headers["Idempotent-Replayed"] == "true"
        assert await retry.json() == original
    assert await Redemption.all().count() == 1
    # The key is taken at this store: another voucher under it is a conflict, not a replay.
    other = await qr_payload(client, second)
    await _refused(await client.post(REDEEM, json={"payload": other}, headers=headers), 409, "conflict")
    assert (await second.row()).status == "available"

    # order_ref is the natural key per store: the POS resending its order gets the first answer.
    resp = await client.post(REDEEM, json={"payload": other, "order_ref": "POS-42"}, headers=clerk)
    assert resp.status == 201
    again = await client.post(REDEEM, json={"payload": other, "order_ref": "POS-42"}, headers=clerk)
    assert again.status == 201 and await again.json() == await resp.json()
    assert await Redemption.all().count() == 2


async def test_stale_tampered_and_retired_codes_are_refused(client_with):
    client = await client_with(qr_signing_keys=f"new:{SECRET_A},old:{SECRET_B}", qr_retired_keys="")
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    a, b, c = await vouchers(client, 3)
    ring = keyring(client)
    v = await a.row()

    stale = qr.mint(ring, v.id, int(time.time()) - 61)
    error = await _refused(await client.post(REDEEM, json={"payload": stale}, headers=clerk), 409, "qr_expired")
    assert stale not in error["message"] and stale not in str(error["details"])

    fresh = await qr_payload(client, a)
    assert fresh.startswith("V1.NEW.") and len(fresh) <= 80
    for i in (0, 3, 7, len(fresh) // 2, len(fresh) - 1):
        swapped = "Z" if fresh[i] != "Z" else "Y"
        changed = fresh[:i] + swapped + fresh[i + 1 :]
        resp = await client.post(REDEEM, json={"payload": changed}, headers=clerk)
        await _refused(resp, 422, "qr_invalid")
    await _refused(await client.post(REDEEM, json={"payload": "hello"}, headers=clerk), 422, "qr_invalid")
    await _refused(await client.post(REDEEM, json={"payload": "0000000000000000"}, headers=clerk), 422, "qr_invalid")
    assert (await a.row()).status == "available"

    # Rotation: a code signed with the old key still verifies while the key is listed ...
    old_signed = qr.mint(ring, (await b.row()).id, int(time.time()), kid="OLD")
    assert (await client.post(PREVIEW, json={"payload": old_signed}, headers=clerk)).status == 200
    # ... and is refused once the key is retired (after a restart with the new settings).
    client = await client_with(qr_signing_keys=f"new:{SECRET_A},old:{SECRET_B}", qr_retired_keys="old")
    clerk = await staff_login(client, shop.id, "carl")
    error = await _refused(await client.post(REDEEM, json={"payload": old_signed}, headers=clerk), 422, "qr_invalid")
    assert error["details"]["reason"] == "retired_key"
    # A key nobody knows is refused the same way.
    foreign = qr.mint(qr.Keyring.of((("X9", SECRET_B),), frozenset()), (await c.row()).id, int(time.time()))
    error = await _refused(await client.post(REDEEM, json={"payload": foreign}, headers=clerk), 422, "qr_invalid")
    assert error["details"]["reason"] == "unknown_key"
    # Well signed, for no voucher at all.
    ghost = qr.mint(keyring(client), 987654321, int(time.time()))
    await _refused(await client.post(REDEEM, json={"payload": ghost}, headers=clerk), 404, "voucher_not_found")
    assert await Redemption.all().count() == 0


async def test_store_channel_spend_and_validity_refusals(client):
    store_a, store_b = await store("SH-A", "Store A"), await store("SH-B", "Store B")
    clerk_a = await staff_login(client, store_a.id, "anna")
    clerk_b = await staff_login(client, store_b.id, "bert")
    a, b, c, d, e = await vouchers(client, 5)
    template = await CouponTemplate.get(id=(await a.row()).template_id)  # type: ignore[attr-defined]

    # Restricted to store A: refused at B, accepted at A.
    await CouponTemplate.filter(id=template.id).update(store_ids=[store_a.id])
    pa = await qr_payload(client, a)
    error = await _refused(await client.post(REDEEM, json={"payload": pa}, headers=clerk_b), 403, "store_not_allowed")
    assert error["details"]["store_id"] == store_b.id
    preview = await (await client.post(PREVIEW, json={"payload": pa}, headers=clerk_b)).json()
    assert preview["redeemable"] is False and preview["refusal"]["code"] == "store_not_allowed"
    assert (await client.post(REDEEM, json={"payload": pa}, headers=clerk_a)).status == 201

    # The campaign's own store list applies when the coupon names none.
    await CouponTemplate.filter(id=template.id).update(store_ids=None)
    await Campaign.filter(id=template.campaign_id).update(all_stores=False)  # type: ignore[attr-defined]
    await CampaignStore.create(campaign_id=template.campaign_id, store_id=store_a.id)  # type: ignore[attr-defined]
    pb = await qr_payload(client, b)
    await _refused(await client.post(REDEEM, json={"payload": pb}, headers=clerk_b), 403, "store_not_allowed")
    await Campaign.filter(id=template.campaign_id).update(all_stores=True)  # type: ignore[attr-defined]

    # Not for tills: the coupon's channels leave out "pos".
    await CouponTemplate.filter(id=template.id).update(channels=["miniprogram"])
    error = await _refused(await client.post(REDEEM, json={"payload": pb}, headers=clerk_b), 403, "channel_not_allowed")
    assert error["details"]["channels"] == ["miniprogram"]
    await CouponTemplate.filter(id=template.id).update(channels=["miniprogram", "pos"])

    # Minimum spend: missing or too small an order amount, then enough.
    await CouponTemplate.filter(id=template.id).update(min_spend=5000)
    for body in ({"payload": pb}, {"payload": pb, "order_amount": 4999}):
        error = await _refused(await client.post(REDEEM, json=body, headers=clerk_b), 409, "min_spend_not_met")
        assert error["details"]["min_spend"] == 5000
    assert (await client.post(REDEEM, json={"payload": pb, "order_amount": 5000}, headers=clerk_b)).status == 201

    # Past valid_until (whatever the stored state says), and not yet valid.
    pc = await qr_payload(client, c)
    await Voucher.filter(claim_id=c.claim_id).update(valid_until=datetime.now(UTC) - timedelta(seconds=1))
    await _refused(await client.post(REDEEM, json={"payload": pc, "order_amount": 9000}, headers=clerk_b), 409,
                   "voucher_expired")  # fmt: skip
    pd = await qr_payload(client, d)
    await Voucher.filter(claim_id=d.claim_id).update(valid_from=datetime.now(UTC) + timedelta(days=1))
    await _refused(await client.post(REDEEM, json={"payload": pd, "order_amount": 9000}, headers=clerk_b), 409,
                   "voucher_not_yet_valid")  # fmt: skip

    # Bad bodies name the field.
    resp = await client.post(REDEEM, json={"payload": pd, "order_amount": -1}, headers=clerk_b)
    assert (await _refused(resp, 422, "validation_failed"))["details"]["errors"][0]["field"] == "order_amount"
    resp = await client.post(REDEEM, json={"payload": pd}, headers={**clerk_b, "Idempotency-Key": "no spaces"})
    await _refused(resp, 422, "validation_failed")
    assert (await e.row()).status == "available"


async def test_preview_tells_what_whose_and_whether(client):
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    [held] = await vouchers(client)
    payload = await qr_payload(client, held)
    resp = await client.post(PREVIEW, json={"payload": payload}, headers=clerk)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    voucher = await held.row()
    assert body["redeemable"] is True and body["refusal"] is None
    assert body["voucher"]["id"] == held.claim_id and body["voucher"]["face_value"] == 1000
    assert body["voucher"]["status"] == "available" and body["voucher"]["title"] == {"zh-CN": "立减"}
    assert body["customer"]["id"] == voucher.customer_id  # type: ignore[attr-defined]
    assert voucher.code not in await resp.text()
    assert (await held.row()).status == "available"  # a preview changes nothing
    await client.post(REDEEM, json={"payload": payload}, headers=clerk)
    body = await (await client.post(PREVIEW, json={"payload": payload}, headers=clerk)).json()
    assert body["redeemable"] is False and body["voucher"]["status"] == "used"
    assert body["refusal"]["code"] == "voucher_already_used" and body["refusal"]["details"]["store_id"] == shop.id
    stale = qr.mint(keyring(client), voucher.id, int(time.time()) - 61)
    await _refused(await client.post(PREVIEW, json={"payload": stale}, headers=clerk), 409, "qr_expired")


async def _redeemed(client, clerk, held) -> int:
    resp = await client.post(REDEEM, json={"payload": await qr_payload(client, held)}, headers=clerk)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["id"]


async def test_reversal_rules(client):
    store_a, store_b = await store("SH-A", "Store A"), await store("SH-B", "Store B")
    clerk = await staff_login(client, store_a.id, "clara")
    manager = await staff_login(client, store_a.id, "max", "manager")
    other_manager = await staff_login(client, store_b.id, "mona", "manager")
    a, b, c = await vouchers(client, 3)
    rid = await _redeemed(client, clerk, a)
    path = f"/api/v1/staff/redemptions/{rid}/reverse"

    error = await _refused(await client.post(path, json={"reason": "mistake"}, headers=clerk), 403, "forbidden")
    assert "manager" in error["message"]
    error = await _refused(await client.post(path, json={"reason": "mistake"}, headers=other_manager), 403,
                           "forbidden")  # fmt: skip
    assert "store" in error["message"]
    await _refused(await client.post(path, json={"reason": ""}, headers=manager), 422, "validation_failed")
    resp = await client.post(path, json={"reason": "customer changed their mind"}, headers=manager)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["reversed_at"] and body["reverse_reason"] == "customer changed their mind"
    voucher = await a.row()
    assert voucher.status == "available" and voucher.used_at is None and voucher.used_store_id is None
    await _refused(await client.post(path, json={"reason": "again"}, headers=manager), 409, "already_reversed")
    entry = await AuditEntry.get(action="voucher.redeem.reverse", entity_id=rid)
    assert entry.actor_kind == "staff" and entry.after == {"voucher_status": "available", "reversed": True,
                                                           "reason": "customer changed their mind"}  # fmt: skip
    # Available again: it can be redeemed again (a second redemption row).
    await _redeemed(client, clerk, a)
    assert await Redemption.filter(voucher_id=voucher.id).count() == 2

    # Past the window (default 30 minutes): refused with its own code.
    old = await _redeemed(client, clerk, b)
    await Redemption.filter(id=old).update(created_at=datetime.now(UTC) - timedelta(seconds=1801))
    resp = await client.post(f"/api/v1/staff/redemptions/{old}/reverse", json={"reason": "late"}, headers=manager)
    error = await _refused(resp, 409, "reversal_window_passed")
    assert error["details"]["window_seconds"] == 1800
    assert (await b.row()).status == "used"

    # A voucher whose time passed meanwhile comes back expired, not available.
    late = await _redeemed(client, clerk, c)
    await Voucher.filter(claim_id=c.claim_id).update(valid_until=datetime.now(UTC) - timedelta(seconds=1))
    resp = await client.post(f"/api/v1/staff/redemptions/{late}/reverse", json={"reason": "x"}, headers=manager)
    assert resp.status == 200
    assert (await c.row()).status == "expired"
    missing = await client.post("/api/v1/staff/redemptions/999999/reverse", json={"reason": "x"}, headers=manager)
    await _refused(missing, 404, "not_found")


async def test_reversal_window_is_a_setting(client_with):
    client = await client_with(redemption_reverse_window_seconds=1)
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    manager = await staff_login(client, shop.id, "max", "manager")
    [held] = await vouchers(client)
    rid = await _redeemed(client, clerk, held)
    await asyncio.sleep(1.1)
    resp = await client.post(f"/api/v1/staff/redemptions/{rid}/reverse", json={"reason": "late"}, headers=manager)
    await _refused(resp, 409, "reversal_window_passed")


async def test_the_store_day_list_with_totals(client):
    store_a, store_b = await store("SH-A", "Store A"), await store("SH-B", "Store B")
    clerk_a = await staff_login(client, store_a.id, "anna")
    clerk_b = await staff_login(client, store_b.id, "bert")
    manager = await staff_login(client, store_a.id, "max", "manager")
    held = await vouchers(client, 4)
    ids = []
    for i, h in enumerate(held[:3]):
        body = {"payload": await qr_payload(client, h), "order_amount": 2000 + i, "order_ref": f"ORD-{i}"}
        resp = await client.post(REDEEM, json=body, headers=clerk_a)
        assert resp.status == 201
        ids.append((await resp.json())["id"])
    assert (
        await client.post(REDEEM, json={"payload": await qr_payload(client, held[3])}, headers=clerk_b)
    ).status == 201
    reverse = await client.post(f"/api/v1/staff/redemptions/{ids[0]}/reverse", json={"reason": "x"}, headers=manager)
    assert reverse.status == 200
    # One from yesterday does not count today.
    await Redemption.filter(id=ids[1]).update(created_at=datetime.now(UTC) - timedelta(days=1))

    resp = await client.get("/api/v1/staff/redemptions", headers=clerk_a)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert [r["id"] for r in body["items"]] == [ids[2], ids[0]]
    assert body["totals"] == {"count": 1, "face_value": 1000, "order_amount": 2002, "reversed": 1}
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    body = await (await client.get("/api/v1/staff/redemptions", params={"date": yesterday}, headers=clerk_a)).json()
    assert [r["id"] for r in body["items"]] == [ids[1]] and body["totals"]["order_amount"] == 2001
    page = await (await client.get("/api/v1/staff/redemptions", params={"limit": "1"}, headers=clerk_a)).json()
    assert len(page["items"]) == 1 and page["next_cursor"] and page["totals"]["reversed"] == 1
    bad = await client.get("/api/v1/staff/redemptions", params={"date": "2024-13-01"}, headers=clerk_a)
    await _refused(bad, 422, "validation_failed")


async def test_admin_list_filters_and_csv_export(client):
    store_a, store_b = await store("SH-A", "Store A"), await store("SH-B", "Store B")
    clerk_a = await staff_login(client, store_a.id, "anna")
    clerk_b = await staff_login(client, store_b.id, "bert")
    first = await vouchers(client, 2, prefix="o_first")
    second = await vouchers(client, 1, prefix="o_second")
    r1 = await _redeemed(client, clerk_a, first[0])
    r2 = await _redeemed(client, clerk_b, first[1])
    resp = await client.post(
        REDEEM, json={"payload": await qr_payload(client, second[0]), "order_ref": "=HYPERLINK(1)"}, headers=clerk_a
    )
    r3 = (await resp.json())["id"]
    await Redemption.filter(id=r1).update(created_at=datetime.now(UTC) - timedelta(days=3))
    campaign_2 = (await second[0].row()).campaign_id
    anna = (await Redemption.get(id=r1)).staff_id  # type: ignore[attr-defined]
    admin = bearer((await logged_in_admin(client, "operator"))["access_token"])

    async def ids(**params) -> list[int]:
        resp = await client.get("/api/v1/admin/redemptions", params={k: str(v) for k, v in params.items()},
                                headers=admin)  # fmt: skip
        assert resp.status == 200, await resp.text()
        return [r["id"] for r in (await resp.json())["items"]]

    today = datetime.now(UTC).date()
    assert await ids() == [r3, r2, r1]
    assert await ids(store_id=store_a.id) == [r3, r1]
    assert await ids(campaign_id=campaign_2) == [r3]
    assert await ids(staff_id=anna) == [r3, r1]
    assert await ids(date_from=today.isoformat()) == [r3, r2]
    assert await ids(date_to=(today - timedelta(days=1)).isoformat()) == [r1]
    assert await ids(date_from=(today - timedelta(days=3)).isoformat(), date_to=today.isoformat()) == [r3, r2, r1]
    assert await ids(store_id=store_b.id, limit=1) == [r2]
    resp = await client.get("/api/v1/admin/redemptions", params={"limit": "2"}, headers=admin)
    page = await resp.json()
    assert page["totals"]["count"] == 3 and page["next_cursor"]
    resp = await client.get(
        "/api/v1/admin/redemptions", params={"limit": "2", "cursor": page["next_cursor"]}, headers=admin
    )
    assert [r["id"] for r in (await resp.json())["items"]] == [r1]
    bad = await client.get("/api/v1/admin/redemptions", params={"date_from": "2024-02-02", "date_to": "2024-02-01"},
                           headers=admin)  # fmt: skip
    await _refused(bad, 422, "validation_failed")

    resp = await client.get("/api/v1/admin/redemptions.csv", params={"store_id": str(store_a.id)}, headers=admin)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    text = await resp.text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["id"]) for r in rows] == [r3, r1]
    assert rows[0]["order_ref"] == "'=HYPERLINK(1)" and rows[1]["store_name"] == "Store A"
    for held in (*first, *second):
        assert (await held.row()).code not in text
    assert rows[1]["voucher_code_masked"].endswith((await first[0].row()).code[-4:])
    empty = await client.get("/api/v1/admin/redemptions.csv", params={"staff_id": "99999"}, headers=admin)
    assert (await empty.text()).strip().split(",")[:3] == ["id", "created_at", "store_id"]


async def test_poster_code_comes_from_wechat_once(client):
    admin = bearer((await logged_in_admin(client, "operator"))["access_token"])
    campaign = await Campaign.create(
        type="offer", status="active", content={}, starts_at=datetime.now(UTC), created_by=1,
        ends_at=datetime.now(UTC) + timedelta(days=1),
    )  # fmt: skip
    path = f"/api/v1/admin/campaigns/{campaign.id}/poster-code"
    before = (await wechat_calls(client)).get("/wxa/getwxacodeunlimit", 0)
    first = await client.get(path, headers=admin)
    assert first.status == 200 and first.content_type == "image/png"
    image = await first.read()
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    second = await client.get(path, headers=admin)
    assert second.status == 200 and await second.read() == image
    assert (await wechat_calls(client)).get("/wxa/getwxacodeunlimit", 0) == before + 1
    await _refused(await client.get("/api/v1/admin/campaigns/999999/poster-code", headers=admin), 404, "not_found")


async def test_customer_service_reverses_from_the_console(client):
    # Operators and superadmins reverse a redemption of any store on a manager's terms
    # (reason, window, once); other admins are refused; reversed_by (a staff member) stays
    # null and the audit entry names the admin.
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    a, b = await vouchers(client, 2)
    rid = await _redeemed(client, clerk, a)
    operator = bearer((await logged_in_admin(client, "operator", "olga"))["access_token"])
    reviewer = bearer((await logged_in_admin(client, "reviewer", "rita"))["access_token"])
    path = f"/api/v1/admin/redemptions/{rid}/reverse"
    await _refused(await client.post(path, json={"reason": "x"}, headers=reviewer), 403, "forbidden")
    await _refused(await client.post(path, json={"reason": ""}, headers=operator), 422, "validation_failed")
    await _refused(await client.post(path, json={}, headers=operator), 422, "validation_failed")
    resp = await client.post(path, json={"reason": "charged twice at the till"}, headers=operator)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["reversed_at"] and body["reverse_reason"] == "charged twice at the till"
    assert body["reversed_by"] is None
    assert (await a.row()).status == "available"
    entry = await AuditEntry.get(action="voucher.redeem.reverse", entity_id=rid)
    assert entry.actor_kind == "admin"
    await _refused(await client.post(path, json={"reason": "again"}, headers=operator), 409, "already_reversed")

    old = await _redeemed(client, clerk, b)
    await Redemption.filter(id=old).update(created_at=datetime.now(UTC) - timedelta(seconds=1801))
    resp = await client.post(f"/api/v1/admin/redemptions/{old}/reverse", json={"reason": "late"}, headers=operator)
    await _refused(resp, 409, "reversal_window_passed")
    missing = await client.post("/api/v1/admin/redemptions/999999/reverse", json={"reason": "x"}, headers=operator)
    await _refused(missing, 404, "not_found")
