"""The campaign calendar: each UTC day of a month with the campaigns running, starting, ending."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from models.campaigns import Campaign, CampaignStore
from models.stores import Store
from tests.helpers import bearer, cheap_password_hashing, customer_login, error_of, logged_in_admin

CALENDAR = "/api/v1/admin/calendar"


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


@pytest.fixture
async def reviewer(client: TestClient) -> dict[str, str]:
    # Any admin may read the calendar: a reviewer, who builds nothing, is enough.
    return bearer((await logged_in_admin(client, "reviewer"))["access_token"])


def at(day: str, time: str = "00:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=UTC)


async def campaign(
    title: str | None,
    starts: datetime,
    ends: datetime,
    *,
    type: str = "offer",
    status: str = "active",
    channels: tuple[str, ...] = ("miniprogram",),
    stores: tuple[Store, ...] = (),
    content: dict[str, Any] | None = None,
    default_language: str = "zh-CN",
) -> Campaign:
    """A campaign row made directly (the calendar only reads them); ``stores`` empty = all stores."""
    row = await Campaign.create(
        type=type,
        status=status,
        starts_at=starts,
        ends_at=ends,
        channels=list(channels),
        all_stores=not stores,
        content=content if content is not None else {"zh-CN": {"title": title}},
        default_language=default_language,
        created_by=1,
    )
    for store in stores:
        await CampaignStore.create(campaign=row, store=store)
    return row


async def store(code: str) -> Store:
    return await Store.create(code=code, name=f"Store {code}", city="Shanghai", latitude=31.2, longitude=121.4)


@pytest.fixture
async def december(client: TestClient) -> dict[str, Any]:
    """Campaigns around December 2026, named by what the calendar should make of them."""
    jingan, xuhui = await store("SH001"), await store("SH002")
    made = {
        "season": await campaign("Winter season", at("2026-11-25", "10:00"), at("2027-01-05")),
        "flash": await campaign(
            "12.12 flash sale", at("2026-12-12", "02:00"), at("2026-12-12", "14:00"),
            type="flash_sale", status="scheduled", channels=("miniprogram", "h5"), stores=(jingan,),
        ),
        "new_year": await campaign(
            "New Year gala", at("2026-12-30", "08:00"), at("2027-01-03", "08:00"),
            type="event", status="approved", channels=("pos",), stores=(xuhui,),
        ),
        "first_week": await campaign(
            None, at("2026-12-01"), at("2026-12-08"), status="ended", channels=("pos", "miniprogram"),
            content={"en": {"title": "First week"}, "fr": {"title": "Première semaine"}},
        ),
        "review": await campaign(
            "Pending check-in", at("2026-12-20", "16:00"), at("2026-12-21", "16:00"),
            type="challenge", status="in_review", stores=(jingan, xuhui),
        ),
        # Ends at the first instant of December: [starts, ends) never touches it.
        "november": await campaign("November", at("2026-11-01"), at("2026-12-01"), status="ended"),
        "february": await campaign("February", at("2027-02-01"), at("2027-02-10"), status="scheduled"),
        "draft": await campaign("Draft", at("2026-12-05"), at("2026-12-06"), status="draft"),
        "rejected": await campaign("Rejected", at("2026-12-05"), at("2026-12-06"), status="rejected"),
        "archived": await campaign("Archived", at("2026-12-05"), at("2026-12-06"), status="archived"),
    }  # fmt: skip
    return {"campaigns": made, "jingan": jingan, "xuhui": xuhui}


async def get_calendar(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    resp = await client.get(CALENDAR, params={k: str(v) for k, v in params.items()}, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def ids(entries: list[dict[str, Any]]) -> list[int]:
    return [entry["id"] for entry in entries]


def by_date(body: dict[str, Any]) -> dict[str, dict[str, list[int]]]:
    return {d["date"]: {k: ids(d[k]) for k in ("running", "starting", "ending")} for d in body["days"]}


async def test_every_day_of_the_month_with_campaigns_running_starting_and_ending(
    client: TestClient, reviewer: dict[str, str], december: dict[str, Any]
) -> None:
    c = {name: row.id for name, row in december["campaigns"].items()}
    body = await get_calendar(client, reviewer, month="2026-12")
    assert body["month"] == "2026-12"
    days = by_date(body)
    assert list(days) == [f"2026-12-{n:02d}" for n in range(1, 32)]

    # Across both month boundaries: running every day, starting and ending on none.
    assert all(c["season"] in day["running"] for day in days.values())
    assert not any(c["season"] in day["starting"] + day["ending"] for day in days.values())
    # One day: running, starting and ending on the 12th only.
    assert [d for d, day in days.items() if c["flash"] in day["running"]] == ["2026-12-12"]
    assert days["2026-12-12"] == {
        "running": [c["season"], c["flash"]],
        "starting": [c["flash"]],
        "ending": [c["flash"]],
    }
    # Into the next month: the 30th and 31st, starting on the 30th.
    assert [d for d, day in days.items() if c["new_year"] in day["running"]] == ["2026-12-30", "2026-12-31"]
    assert days["2026-12-30"]["starting"] == [c["new_year"]] and days["2026-12-31"]["ending"] == []
    # Ends at midnight on the 8th: its last day (and its "ending") is the 7th.
    runs = [d for d, day in days.items() if c["first_week"] in day["running"]]
    assert runs == [f"2026-12-{n:02d}" for n in range(1, 8)]
    assert days["2026-12-01"]["starting"] == [c["first_week"]]
    assert days["2026-12-07"]["ending"] == [c["first_week"]]
    # 16:00 to 16:00 UTC touches two days.
    assert days["2026-12-20"]["starting"] == [c["review"]] and days["2026-12-21"]["ending"] == [c["review"]]
    # Neither the November one (ends at December's first instant) nor drafts, rejected, archived.
    everything = {i for day in days.values() for i in day["running"]}
    assert everything == {c["season"], c["flash"], c["new_year"], c["first_week"], c["review"]}

    first = next(d for d in body["days"] if d["date"] == "2026-12-01")
    assert first["running"] == [
        {"id": c["season"], "type": "offer", "status": "active", "title": "Winter season"},
        # zh-CN is the default but has no title: English is the fallback.
        {"id": c["first_week"], "type": "offer", "status": "ended", "title": "First week"},
    ]


async def test_filters_by_store_type_and_channel(
    client: TestClient, reviewer: dict[str, str], december: dict[str, Any]
) -> None:
    c = {name: row.id for name, row in december["campaigns"].items()}

    async def shown(**filters: Any) -> set[int]:
        body = await get_calendar(client, reviewer, month="2026-12", **filters)
        return {i for day in body["days"] for i in ids(day["running"])}

    # A store sees the all-store campaigns and those linked to it.
    assert await shown(store_id=december["jingan"].id) == {c["season"], c["first_week"], c["flash"], c["review"]}
    assert await shown(store_id=december["xuhui"].id) == {c["season"], c["first_week"], c["new_year"], c["review"]}
    assert await shown(store_id=999_999) == {c["season"], c["first_week"]}
    assert await shown(type="flash_sale") == {c["flash"]}
    assert await shown(type="referral") == set()
    assert await shown(channel="pos") == {c["new_year"], c["first_week"]}
    assert await shown(channel="h5") == {c["flash"]}
    assert await shown(channel="pos", store_id=december["jingan"].id) == {c["first_week"]}
    assert await shown(type="offer", channel="miniprogram", store_id=december["xuhui"].id) == {
        c["season"],
        c["first_week"],
    }


async def test_month_lengths_and_an_empty_month(client: TestClient, reviewer: dict[str, str]) -> None:
    leap = await get_calendar(client, reviewer, month="2028-02")
    assert [d["date"] for d in leap["days"]][-1] == "2028-02-29" and len(leap["days"]) == 29
    plain = await get_calendar(client, reviewer, month="2027-02")
    assert len(plain["days"]) == 28
    assert all(d["running"] == d["starting"] == d["ending"] == [] for d in plain["days"])


async def test_a_campaign_without_any_title_has_a_null_title(client: TestClient, reviewer: dict[str, str]) -> None:
    row = await campaign(None, at("2026-12-10"), at("2026-12-11"), content={})
    body = await get_calendar(client, reviewer, month="2026-12")
    [entry] = next(d for d in body["days"] if d["date"] == "2026-12-10")["running"]
    assert entry == {"id": row.id, "type": "offer", "status": "active", "title": None}


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"month": ""},
        {"month": "2026-13"},
        {"month": "2026-00"},
        {"month": "2026-1"},
        {"month": "26-12"},
        {"month": "2026-12-01"},
        {"month": "2026/12"},
        {"month": "\uff12\uff10\uff12\uff16-12"},  # full-width digits
        {"month": "1969-12"},
        {"month": "9999-12"},
        {"month": "2026-12", "store_id": "0"},
        {"month": "2026-12", "store_id": "x"},
        {"month": "2026-12", "store_id": str(2**63)},
        {"month": "2026-12", "type": "coupon"},
        {"month": "2026-12", "channel": "tv"},
        {"month": "2026-12", "colour": "red"},
    ],
)
async def test_bad_queries_are_422(client: TestClient, reviewer: dict[str, str], query: dict[str, str]) -> None:
    resp = await client.get(CALENDAR, params=query, headers=reviewer)
    assert resp.status == 422, await resp.text()
    error = await error_of(resp)
    assert error["code"] == "validation_failed"
    assert error["details"]["errors"][0]["field"] in {"month", "store_id", "type", "channel", "colour"}


async def test_who_may_read_the_calendar(client: TestClient) -> None:
    resp = await client.get(CALENDAR, params={"month": "2026-12"})
    assert resp.status == 401 and (await error_of(resp))["code"] == "unauthenticated"
    customer = await customer_login(client)
    resp = await client.get(CALENDAR, params={"month": "2026-12"}, headers=bearer(customer["access_token"]))
    assert resp.status == 403 and (await error_of(resp))["code"] == "forbidden"
