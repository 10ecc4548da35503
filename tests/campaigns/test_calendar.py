"""The campaign calendar: each UTC day of a month or bounded window with counts and the first
campaigns running, starting, ending; a paginated list of the window's campaigns; and the
exclusive pairs that clash in the window, in one call."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from models.campaigns import Campaign, CampaignStore, ExclusivityLink
from models.stores import Store
from services.campaigns import calendar
from tests.helpers import bearer, cheap_password_hashing, count_rows, customer_login, error_of, logged_in_admin

CALENDAR = "/api/v1/admin/calendar"
OVERLAPS = "/api/v1/admin/calendar/overlaps"


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
        # Windows: both ends, ordered, at most 62 days, not beside a month.
        {"date_from": "2026-12-01"},
        {"date_to": "2026-12-07"},
        {"date_from": "2026-12-08", "date_to": "2026-12-07"},
        {"date_from": "2026-12-01", "date_to": "2027-02-01"},  # 63 days
        {"date_from": "2026-01-01", "date_to": "2026-12-31"},
        {"month": "2026-12", "date_from": "2026-12-01", "date_to": "2026-12-07"},
        {"date_from": "2026-12-1", "date_to": "2026-12-07"},
        {"date_from": "1969-12-31", "date_to": "1970-01-01"},
    ],
)
@pytest.mark.parametrize("path", [CALENDAR, OVERLAPS])
async def test_bad_queries_are_422(
    client: TestClient, reviewer: dict[str, str], query: dict[str, str], path: str
) -> None:
    resp = await client.get(path, params=query, headers=reviewer)
    assert resp.status == 422, await resp.text()
    error = await error_of(resp)
    assert error["code"] == "validation_failed"
    fields = {"month", "store_id", "type", "channel", "colour", "date_from", "date_to"}
    assert error["details"]["errors"][0]["field"] in fields


@pytest.mark.parametrize(
    "query",
    [
        {"per_day": "0"},
        {"per_day": "51"},
        {"limit": "0"},
        {"limit": "201"},
        {"cursor": "not-a-cursor"},
        {"cursor": "eyJhZnRlciI6IDF9"},  # {"after": 1}: base64 JSON, but not ours
    ],
)
async def test_bad_page_queries_are_422(client: TestClient, reviewer: dict[str, str], query: dict[str, str]) -> None:
    resp = await client.get(CALENDAR, params={"month": "2026-12", **query}, headers=reviewer)
    assert resp.status == 422, await resp.text()
    error = await error_of(resp)
    assert error["code"] == "validation_failed"
    assert error["details"]["errors"][0]["field"] == next(iter(query))


async def test_a_window_by_days_crossing_a_month(
    client: TestClient, reviewer: dict[str, str], december: dict[str, Any]
) -> None:
    c = {name: row.id for name, row in december["campaigns"].items()}
    body = await get_calendar(client, reviewer, date_from="2026-12-28", date_to="2027-01-03")
    assert body["month"] is None and (body["date_from"], body["date_to"]) == ("2026-12-28", "2027-01-03")
    days = by_date(body)
    assert list(days) == [
        "2026-12-28",
        "2026-12-29",
        "2026-12-30",
        "2026-12-31",
        "2027-01-01",
        "2027-01-02",
        "2027-01-03",
    ]
    # The gala runs 30 Dec 08:00 to 3 Jan 08:00: it ends on the 3rd, inside this window.
    assert days["2027-01-03"] == {"running": [c["season"], c["new_year"]], "starting": [], "ending": [c["new_year"]]}
    assert [d["running_count"] for d in body["days"]] == [1, 1, 2, 2, 2, 2, 2]
    assert [e["id"] for e in body["campaigns"]] == [c["season"], c["new_year"]]
    assert body["campaigns"][1]["starts_at"].startswith("2026-12-30T08:00:00")
    assert body["next_cursor"] is None
    # 62 days is the most a window may span.
    wide = await get_calendar(client, reviewer, date_from="2026-12-01", date_to="2027-01-31")
    assert len(wide["days"]) == 62


async def test_a_crowded_window_is_bounded_counted_and_paged(client: TestClient, reviewer: dict[str, str]) -> None:
    # 30 campaigns on the same days: each day lists the first per_day (by start, then id)
    # and counts all; the window's full list comes a page at a time. The first calendar
    # listed all 30 on every day (and had no counts or list).
    made = [
        await campaign(f"Crowd {n}", at("2026-12-10", f"{n % 24:02d}:00"), at("2026-12-12", "12:00")) for n in range(30)
    ]
    in_order = [row.id for row in sorted(made, key=lambda r: (r.starts_at, r.id))]
    body = await get_calendar(client, reviewer, month="2026-12")
    day = next(d for d in body["days"] if d["date"] == "2026-12-11")
    assert ids(day["running"]) == in_order[:10]
    assert (day["running_count"], day["starting_count"], day["ending_count"]) == (30, 0, 0)
    tenth = next(d for d in body["days"] if d["date"] == "2026-12-10")
    assert len(tenth["starting"]) == 10 and tenth["starting_count"] == 30
    twelfth = next(d for d in body["days"] if d["date"] == "2026-12-12")
    assert len(twelfth["ending"]) == 10 and twelfth["ending_count"] == 30
    quiet = next(d for d in body["days"] if d["date"] == "2026-12-20")
    assert quiet["running"] == [] and quiet["running_count"] == 0

    narrow = await get_calendar(client, reviewer, month="2026-12", per_day=3)
    assert ids(next(d for d in narrow["days"] if d["date"] == "2026-12-11")["running"]) == in_order[:3]

    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"month": "2026-12", "limit": 12, **({"cursor": cursor} if cursor else {})}
        page = await get_calendar(client, reviewer, **params)
        assert len(page["campaigns"]) <= 12
        seen += [e["id"] for e in page["campaigns"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == in_order and pages == 3


async def test_a_crowded_window_is_read_a_page_at_a_time(
    client: TestClient, reviewer: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The days' counts come from the database and their entries from bounded reads: no
    statement answers the whole window. Before, every campaign of the window was read (and
    walked in Python) on every call: 10,000 rows with 10,000 campaigns in a month."""
    monkeypatch.setattr(calendar, "WALK_PAGE", 5)
    # Twelve one-day campaigns on the 1st, then one running to the end of the month: the
    # running lists of the 2nd to the 31st need the walk's third page (keyset on start, id).
    short = [await campaign(f"Short {n}", at("2026-12-01", f"{n:02d}:00"), at("2026-12-02")) for n in range(12)]
    long_one = await campaign("Long", at("2026-12-01", "23:00"), at("2027-01-01"))
    crowd = [
        await campaign(f"Crowd {n}", at("2026-12-10", f"{n:02d}:00"), at("2026-12-12", "12:00")) for n in range(20)
    ]
    rows = count_rows(monkeypatch)
    body = await get_calendar(client, reviewer, month="2026-12", per_day=3, limit=5)
    # The most one statement answers: the days' starting and ending entries (13 here, one
    # statement), a walk page (5) or the list page (5 + 1); never the window's 33 campaigns.
    entries = sum(len(d["starting"]) + len(d["ending"]) for d in body["days"])
    assert entries == 13 and 0 < rows.most <= entries, rows
    days = by_date(body)
    first_three = ids_of(short[:3])
    assert days["2026-12-01"] == {"running": first_three, "starting": first_three, "ending": first_three}
    assert days["2026-12-02"]["running"] == [long_one.id]
    assert days["2026-12-11"]["running"] == [long_one.id, *ids_of(crowd[:2])]
    assert days["2026-12-12"]["ending"] == ids_of(crowd[:3])
    assert days["2026-12-31"] == {"running": [long_one.id], "starting": [], "ending": [long_one.id]}
    counts = {d["date"]: (d["running_count"], d["starting_count"], d["ending_count"]) for d in body["days"]}
    assert counts["2026-12-01"] == (13, 13, 12) and counts["2026-12-11"] == (21, 0, 0)
    assert counts["2026-12-12"] == (21, 0, 20) and counts["2026-12-13"] == (1, 0, 0)
    assert ids(body["campaigns"]) == ids_of(short[:5]) and body["next_cursor"] is not None


def ids_of(rows: list[Campaign]) -> list[int]:
    return [row.id for row in rows]


async def exclusive(a: Campaign, b: Campaign) -> None:
    low, high = sorted((a.id, b.id))
    await ExclusivityLink.create(campaign_low_id=low, campaign_high_id=high, created_by=1)


async def get_overlaps(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    resp = await client.get(OVERLAPS, params={k: str(v) for k, v in params.items()}, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_the_exclusive_clashes_of_a_window_in_one_call(client: TestClient, reviewer: dict[str, str]) -> None:
    jingan, xuhui = await store("SH001"), await store("SH002")
    season = await campaign("Season", at("2026-11-20"), at("2027-01-10"))
    flash = await campaign("Flash", at("2026-12-12", "02:00"), at("2026-12-14", "02:00"), stores=(jingan,))
    elsewhere = await campaign("Elsewhere", at("2026-12-01"), at("2026-12-31"), stores=(xuhui,))
    apart = await campaign("Apart", at("2027-03-01"), at("2027-03-05"))
    pos_only = await campaign("Till", at("2026-12-13"), at("2026-12-16"), channels=("pos",))
    draft = await campaign("Draft", at("2026-12-01"), at("2026-12-31"), status="draft")
    shoes = await campaign(
        "Shoes", at("2026-12-01"), at("2026-12-31"), stores=(jingan,), content={"zh-CN": {"title": "Shoes"}}
    )
    await Campaign.filter(id=shoes.id).update(categories=["shoes"])
    hats = await campaign("Hats", at("2026-12-01"), at("2026-12-31"), stores=(jingan,))
    await Campaign.filter(id=hats.id).update(categories=["hats"])
    await exclusive(season, flash)  # clash on 12 to 14 Dec, in Jingan
    await exclusive(flash, elsewhere)  # same days, no store in common: no clash
    await exclusive(season, apart)  # never together
    await exclusive(flash, pos_only)  # clash 13 to 14 Dec, unless the channel is filtered
    await exclusive(season, draft)  # drafts are not on the calendar
    await exclusive(shoes, hats)  # categories apart: no clash

    body = await get_overlaps(client, reviewer, month="2026-12")
    assert (body["date_from"], body["date_to"], body["truncated"]) == ("2026-12-01", "2026-12-31", False)
    got = {(i["low"]["id"], i["high"]["id"]): i for i in body["items"]}
    assert set(got) == {tuple(sorted((season.id, flash.id))), tuple(sorted((flash.id, pos_only.id)))}
    pair = got[tuple(sorted((season.id, flash.id)))]
    assert (pair["date_from"], pair["date_to"]) == ("2026-12-12", "2026-12-14")
    assert pair["shared_store_ids"] == [jingan.id] and pair["shared_categories"] == []
    assert {pair["low"]["title"], pair["high"]["title"]} == {"Season", "Flash"}
    till = got[tuple(sorted((flash.id, pos_only.id)))]
    assert (till["date_from"], till["date_to"]) == ("2026-12-13", "2026-12-14")

    # The window clips the shared days; filters drop pairs with a campaign not shown.
    week = await get_overlaps(client, reviewer, date_from="2026-12-14", date_to="2026-12-20")
    assert {(i["date_from"], i["date_to"]) for i in week["items"]} == {("2026-12-14", "2026-12-14")}
    assert len(week["items"]) == 2
    minis = await get_overlaps(client, reviewer, month="2026-12", channel="miniprogram")
    assert [(i["low"]["id"], i["high"]["id"]) for i in minis["items"]] == [tuple(sorted((season.id, flash.id)))]
    assert (await get_overlaps(client, reviewer, month="2026-12", store_id=xuhui.id))["items"] == []
    assert (await get_overlaps(client, reviewer, month="2027-03"))["items"] == []


async def test_the_overlaps_read_only_the_linked_campaigns_of_a_window(
    client: TestClient, reviewer: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window crowded with campaigns but few exclusivity links: the clashes are found
    without any statement answering the whole window (only linked campaigns are read);
    before, the overlaps read every campaign of the window, which with 10,000 in a month
    was most of the call."""
    season = await campaign("Season", at("2026-11-20"), at("2027-01-10"))
    flash = await campaign("Flash", at("2026-12-12", "02:00"), at("2026-12-14", "02:00"))
    later = await campaign("Later", at("2027-02-01"), at("2027-02-05"))
    await Campaign.bulk_create(
        [
            Campaign(type="offer", status="active", channels=["miniprogram"], created_by=1, content={},
                     starts_at=at("2026-12-01"), ends_at=at("2026-12-31"))
            for _ in range(30)
        ]
    )  # fmt: skip
    await exclusive(season, flash)
    await exclusive(flash, later)  # its other end outside the window: no clash
    rows = count_rows(monkeypatch)
    body = await get_overlaps(client, reviewer, month="2026-12")
    assert [(i["low"]["id"], i["high"]["id"], i["date_from"], i["date_to"]) for i in body["items"]] == [
        (season.id, flash.id, "2026-12-12", "2026-12-14")
    ]
    assert 0 < rows.most <= 3  # the spy saw the statements


@pytest.mark.parametrize("path", [CALENDAR, OVERLAPS])
async def test_who_may_read_the_calendar(client: TestClient, path: str) -> None:
    resp = await client.get(path, params={"month": "2026-12"})
    assert resp.status == 401 and (await error_of(resp))["code"] == "unauthenticated"
    customer = await customer_login(client)
    resp = await client.get(path, params={"month": "2026-12"}, headers=bearer(customer["access_token"]))
    assert resp.status == 403 and (await error_of(resp))["code"] == "forbidden"
