"""Manual points adjustments: through the ledger, audited, never below zero, also under
concurrent debits."""

from __future__ import annotations

import asyncio

import pytest

from models.audit import AuditEntry
from models.journey import PointsEntry
from services.journey import points
from tests.customer_service.fixtures import admin_headers, customer, customer_path, ok
from tests.helpers import cheap_password_hashing, error_of


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


async def test_an_adjustment_goes_through_the_ledger_and_the_audit_log(client) -> None:
    someone = await customer("o_points")
    headers = await admin_headers(client)
    added = await ok(
        await client.post(customer_path(someone.id, "/points"), json={"delta": 300, "reason": "goodwill"},
                          headers=headers),
        201,
    )  # fmt: skip
    assert added["balance"] == 300 and added["replayed"] is False
    entry = added["entry"]
    assert (entry["delta"], entry["balance_after"], entry["reason"], entry["note"]) == (300, 300, "manual", "goodwill")
    taken = await ok(
        await client.post(customer_path(someone.id, "/points"), json={"delta": -120, "reason": "double credit"},
                          headers=headers),
        201,
    )  # fmt: skip
    assert taken["balance"] == 180
    assert await points.balance_of(someone.id) == 180
    rows = await PointsEntry.filter(customer_id=someone.id).order_by("id")
    assert [(r.delta, r.reason, r.note, r.admin_id is not None) for r in rows] == [
        (300, "manual", "goodwill", True), (-120, "manual", "double credit", True),
    ]  # fmt: skip
    audits = await AuditEntry.filter(action="customer.points", entity_id=someone.id).order_by("id")
    assert [(a.before["points_balance"], a.after["points_balance"], a.after["delta"]) for a in audits] == [
        (0, 300, 300), (300, 180, -120),
    ]  # fmt: skip
    assert all(a.actor_kind == "admin" and a.after["reason"] for a in audits)
    detail = await ok(await client.get(customer_path(someone.id), headers=headers))
    assert detail["points"]["balance"] == 180 and detail["points"]["ledger"][0]["note"] == "double credit"


async def test_a_debit_below_zero_is_refused_and_changes_nothing(client) -> None:
    someone = await customer("o_poor")
    headers = await admin_headers(client)
    await points.add(someone.id, 50, "purchase", "poor:1")
    resp = await client.post(customer_path(someone.id, "/points"), json={"delta": -51, "reason": "x"}, headers=headers)
    assert resp.status == 409
    error = await error_of(resp)
    assert error["code"] == "insufficient_points" and error["details"] == {"balance": 50, "delta": -51}
    # No balance row at all yet: the same.
    nobody = await customer("o_nobody")
    resp = await client.post(customer_path(nobody.id, "/points"), json={"delta": -1, "reason": "x"}, headers=headers)
    assert resp.status == 409 and (await error_of(resp))["code"] == "insufficient_points"
    assert await points.balance_of(someone.id) == 50
    assert await PointsEntry.filter(reason="manual").count() == 0
    assert not await AuditEntry.filter(action="customer.points").exists()


async def test_concurrent_debits_never_take_the_balance_below_zero(client) -> None:
    someone = await customer("o_race")
    headers = await admin_headers(client)
    await points.add(someone.id, 100, "purchase", "race:1")
    resps = await asyncio.gather(
        *(
            client.post(customer_path(someone.id, "/points"), json={"delta": -10, "reason": "race"}, headers=headers)
            for _ in range(60)
        )
    )
    statuses = sorted(r.status for r in resps)
    assert statuses == [201] * 10 + [409] * 50, statuses
    assert await points.balance_of(someone.id) == 0
    debits = await PointsEntry.filter(customer_id=someone.id, reason="manual").order_by("id")
    assert len(debits) == 10 and sorted(d.balance_after for d in debits) == list(range(0, 100, 10))
    assert await AuditEntry.filter(action="customer.points").count() == 10


async def test_an_idempotency_key_makes_a_retry_a_replay(client) -> None:
    someone = await customer("o_retry")
    headers = {**await admin_headers(client), "Idempotency-Key": "ticket-4711"}
    path = customer_path(someone.id, "/points")
    first = await ok(await client.post(path, json={"delta": 40, "reason": "ticket 4711"}, headers=headers), 201)
    again = await ok(await client.post(path, json={"delta": 40, "reason": "ticket 4711"}, headers=headers), 200)
    assert again["replayed"] is True and again["entry"]["id"] == first["entry"]["id"]
    assert await points.balance_of(someone.id) == 40
    other = await client.post(path, json={"delta": 99, "reason": "another"}, headers=headers)
    assert other.status == 409 and (await error_of(other))["code"] == "conflict"
    assert await points.balance_of(someone.id) == 40


async def test_bad_adjustments_are_422_and_unknown_customers_404(client) -> None:
    someone = await customer("o_bad")
    headers = await admin_headers(client)
    path = customer_path(someone.id, "/points")
    for body in (
        {"delta": 0, "reason": "x"}, {"delta": 5}, {"delta": 5, "reason": ""}, {"delta": "5", "reason": "x"},
        {"delta": 10_000_001, "reason": "x"}, {"delta": 5, "reason": "x" * 201}, {"delta": 5, "reason": "x", "y": 1},
    ):  # fmt: skip
        resp = await client.post(path, json=body, headers=headers)
        assert resp.status == 422, (body, await resp.text())
        assert (await error_of(resp))["code"] == "validation_failed"
    resp = await client.post(customer_path(987_654, "/points"), json={"delta": 5, "reason": "x"}, headers=headers)
    assert resp.status == 404 and (await error_of(resp))["code"] == "not_found"
    assert await PointsEntry.all().count() == 0
