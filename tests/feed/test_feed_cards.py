"""The feed's answers are written without their pydantic models (handlers/customer/
feed_cards.py). They must parse as the declared schemas and carry exactly what the
models, filled the straightforward way, would: compared here for many viewers, both
languages, teasers, joined campaigns, locations and themes, against a reference that
explains every campaign and picks the sections in Python."""

from __future__ import annotations

import dataclasses
import json
import random
import time
from datetime import UTC, datetime, timedelta

from handlers.customer.feed_cards import page_json, sections_json
from handlers.customer.feed_schemas import FeedItemOut, FeedOut, SectionsOut, ThemeSectionOut
from services.core import pick_language
from services.feed import FeedIndex, FeedPolicy, Ranked, Ranking, Scored, Viewer, score_rows
from services.feed import presentation as feed
from tests.feed.fixtures import CATEGORIES, TAGS, TIERS, random_snapshot

ACCEPTS = [None, "en", "zh-CN,zh;q=0.9", "fr, en;q=0.5"]


def _index(rng: random.Random, now: datetime) -> FeedIndex:
    stores = {i: (31 + rng.uniform(-0.2, 0.2), 121 + rng.uniform(-0.2, 0.2)) for i in range(1, 9)}
    snaps = []
    for i in range(1, 301):
        snap = random_snapshot(i, rng, now, list(stores))
        content = {"en": {"title": f"Campaign {i}", "summary": f'about {i} "quoted"'}}
        if rng.random() < 0.6:
            content["zh-CN"] = {"title": f"活动{i}", "summary": "说明\n第二行"}
        snaps.append(
            dataclasses.replace(
                snap, content=content, default_language=rng.choice(list(content)),
                theme_id=rng.choice([None, None, 1, 2, 3, 4]), banner_media_id=rng.choice([None, 7]),
            )
        )  # fmt: skip
    participants = {s.id: int(rng.lognormvariate(2, 2)) for s in snaps if rng.random() < 0.8}
    return FeedIndex(time.monotonic(), 1, snaps, participants, stores, {1: "Spring", 2: "夏天", 3: "Back to school"})


def _viewer(rng: random.Random, index: FeedIndex, language: str) -> Viewer:
    location = (31 + rng.uniform(-0.2, 0.2), 121 + rng.uniform(-0.2, 0.2)) if rng.random() < 0.5 else None
    return Viewer(
        customer_id=rng.randint(1, 10**6), tier=rng.choice(TIERS),
        interests=frozenset(rng.sample(TAGS, rng.randint(0, 3))),
        preferred_store_id=rng.choice([None, *index.stores]),
        bought=frozenset(rng.sample(CATEGORIES, rng.randint(0, 2))),
        joined=frozenset(rng.sample([s.id for s in index.campaigns], rng.randint(0, 15))),
        location=location, store_id=rng.choice([None, None, *index.stores]) if location is None else None,
        language=language,
    )  # fmt: skip


def _item(r: Ranked, accept: str | None) -> FeedItemOut:
    """A card the straightforward way: every field through the model."""
    snap = r.snap
    language, title, summary = feed.texts_of(snap, accept)
    shown = [x for x in r.reasons if x.text]
    return FeedItemOut(
        id=snap.id, type=snap.type, phase=r.phase, teaser=r.phase == "teaser", joinable=r.joinable, joined=r.joined,  # type: ignore[arg-type]
        language=language, title=title, summary=summary, tags=list(snap.tags), theme_id=snap.theme_id,
        banner_media_id=snap.banner_media_id, banner_url=snap.banner_url, starts_at=snap.starts_at,
        ends_at=snap.ends_at,
        participants=r.participants, distance_km=None if r.distance_km is None else round(r.distance_km, 2),
        score=r.score, reason=next((x.text for x in shown if x.code != "joined"), shown[0].text if shown else None),
        reasons=[{"code": x.code, "text": x.text, "points": x.points} for x in shown],  # type: ignore[misc]
    )  # fmt: skip


def _sections(ranking: Ranking, n: int, accept: str | None) -> SectionsOut:
    """The sections picked in Python over every candidate."""
    ranked = ranking.items
    until = ranking.now + timedelta(days=ranking.policy.ending_soon_days)
    ending = sorted((r for r in ranked if r.running and r.snap.ends_at <= until), key=lambda r: (r.snap.ends_at, r.id))
    near = sorted(
        (r for r in ranked if r.distance_km is not None and r.distance_km <= ranking.policy.near_km),
        key=lambda r: r.distance_km,  # type: ignore[arg-type,return-value]
    )
    themes: dict[int, list[Scored]] = {}
    for r in ranked:
        if r.snap.theme_id is not None:
            themes.setdefault(r.snap.theme_id, []).append(r)

    def items(chosen: list[Scored]) -> list[FeedItemOut]:
        return [_item(ranking.explain(s), accept) for s in chosen[:n]]

    themed = [
        ThemeSectionOut(theme_id=t, name=ranking.index.themes.get(t, ""), items=items(rs)) for t, rs in themes.items()
    ]
    return SectionsOut(recommended=items(ranked), ending_soon=items(ending), near_you=items(near), themed=themed)


def test_pages_and_sections_carry_what_the_models_would() -> None:
    rng = random.Random(20261122)
    now = datetime.now(UTC)
    index = _index(rng, now)
    policy = FeedPolicy()
    checked_cards = 0
    seen = {"teaser": 0, "joined": 0, "distance": 0, "themed": 0, "ending": 0, "zh-CN": 0, "en": 0}
    for _ in range(120):
        accept = rng.choice(ACCEPTS)
        who = _viewer(rng, index, pick_language(accept, ("zh-CN", "en"), "zh-CN"))
        members = {s.id for s in index.targeted if rng.random() < 0.5}
        ranking = Ranking(score_rows(index, who, members, policy, now), index, who, policy, now)
        offset, limit = rng.choice([0, 0, 20, 40]), rng.choice([1, 5, 20, 50])
        page = ranking.page(offset, limit)
        nxt = feed.encode_offset(offset + limit) if offset + limit < len(ranking) else None
        body = page_json(ranking, page, nxt, accept)
        FeedOut.model_validate_json(body)  # the declared schema, strictly
        expected = FeedOut(items=[_item(ranking.explain(s), accept) for s in page], next_cursor=nxt)
        assert json.loads(body) == json.loads(expected.model_dump_json())
        n = rng.choice([1, 3, 6, 20])
        body = sections_json(ranking, n, accept)
        SectionsOut.model_validate_json(body)
        reference = _sections(ranking, n, accept)
        assert json.loads(body) == json.loads(reference.model_dump_json())
        for item in expected.items + reference.recommended + reference.ending_soon + reference.near_you:
            checked_cards += 1
            seen["teaser"] += item.teaser
            seen["joined"] += item.joined
            seen["distance"] += item.distance_km is not None
            seen["ending"] += any(x.code == "ending" for x in item.reasons)
            seen[item.language] += 1
        seen["themed"] += len(reference.themed)
    # The comparison covered every kind of card, not just the easy ones.
    assert checked_cards > 1000 and all(seen.values()), seen


def test_an_empty_ranking_writes_empty_sections() -> None:
    now = datetime.now(UTC)
    index = FeedIndex(time.monotonic(), 1, [], {}, {}, {})
    who = Viewer(1, "gold", frozenset(), None, frozenset(), frozenset(), None, None, "en")
    ranking = Ranking(score_rows(index, who, set(), FeedPolicy(), now), index, who, FeedPolicy(), now)
    assert json.loads(sections_json(ranking, 6, None)) == {
        "recommended": [], "ending_soon": [], "near_you": [], "themed": []
    }  # fmt: skip
    assert json.loads(page_json(ranking, ranking.page(0, 20), None, None)) == {"items": [], "next_cursor": None}
