"""Feed answers written straight to JSON bytes.

The feed's answers are the schemas of handlers/customer/feed.py (``FeedOut``,
``SectionsOut``), written here without building their pydantic models: a card's
campaign part (its texts, tags, theme, period) is the same for every viewer, so it is
kept per index and language as JSON values, each card is a plain dict, and the whole
answer is one call of pydantic-core's JSON serializer. Building and validating the models cost about
as much as ranking the customer (a home page writes up to 48 cards).
tests/feed/test_feed_cards.py checks that these bytes parse as the schemas, with the values
the models would carry.

Why this stays beside the declared models (issue 13: an answer written by hand must save
at least 10% of CPU per request on its path). Measured 2026-12-03 on the shared 2-core
machine (load average 6-10), ``.venv/bin/python -m bench.feed --seconds 6 --warmup 3
--sample 40000 --pairs 4 --plain "connection;feed_cards"``: servers on one database and
Redis in turn, one as is, one building ``FeedOut``/``SectionsOut`` and a ``FeedItemOut``
per card and serializing them (``bench/plain.py``), the same campaigns in the same order.
Server CPU per request, four rounds: first look as is 6.70, 5.48, 6.11, 6.31 ms (median
6.21) against models 5.37, 6.59, 7.32, 7.50 (median 6.95): 11% saved; app opens (sections
and two pages) as is 4.06, 3.82, 3.65, 5.19 (median 3.94) against models 7.56, 5.06, 9.34,
5.06 (median 6.31): 38% saved. It uses only public pydantic API (``model_dump``,
``pydantic_core.to_json``); pydantic is pinned in requirements.txt, and an upgrade that
changed what the models write would fail tests/feed/test_feed_cards.py. Re-measure with that
command when the schemas or pydantic change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic_core

from handlers.customer.feed_schemas import FeedItemOut
from services.core import part_of, pick_language
from services.feed import FeedIndex, Live, Ranking, Scored, Sections, budget_spent_reason, full_reason, texts_of

#: pydantic-core's serializer writes a whole answer in one call, five times faster than
#: the json module's C encoder on these many small dicts; the dicts it is given hold only
#: str, int, float, bool, None and lists, which it writes as JSON's own types.
_ENCODE = pydantic_core.to_json


#: The viewer-independent part of a card: these fields of ``FeedItemOut``.
_CardCampaign = part_of(
    FeedItemOut, "_CardCampaign",
    ("id", "type", "language", "title", "summary", "tags", "theme_id", "banner_media_id", "banner_url", "starts_at",
     "ends_at"),
)  # fmt: skip


def _campaign_part(index: FeedIndex, s: Scored, accept: str | None) -> dict[str, Any]:
    """The campaign's part of a card, as JSON values (dates written as the schemas write
    them), kept as long as the index."""
    snap = s.snap
    language = pick_language(accept, list(snap.content), snap.default_language)
    key = ("card-json", snap.id, language)
    found = index.memo.get(key)
    if found is None:
        _, title, summary = texts_of(snap, language)
        found = index.memo[key] = _CardCampaign(
            id=snap.id, type=snap.type, language=language, title=title, summary=summary, tags=list(snap.tags),
            theme_id=snap.theme_id, banner_media_id=snap.banner_media_id, banner_url=snap.banner_url,
            starts_at=snap.starts_at, ends_at=snap.ends_at,
        ).model_dump(mode="json")  # fmt: skip
    return found


class CardWriter:
    """Writes the cards of one ranking for one ``Accept-Language`` (``FeedItemOut``'s
    fields, in its order); a campaign shown in several sections of one answer is
    written once.

    ``live``: seats taken now and spent budgets of the campaigns shown (services.feed's
    ``live_limits``); one at its cap is written not joinable, with a "full" note last
    and its live count as ``participants``, and one whose budget is spent not joinable
    with a "budget_spent" note last, as its page says (issue 14 item 2)."""

    def __init__(self, ranking: Ranking, accept: str | None, live: Live | None = None) -> None:
        self.ranking = ranking
        self.accept = accept
        self.taken: Mapping[int, int] = live.taken if live else {}
        self.budget_spent: frozenset[int] = live.budget_spent if live else frozenset()
        self._written: dict[int, dict[str, Any]] = {}

    def card(self, s: Scored) -> dict[str, Any]:
        found = self._written.get(s.id)
        if found is not None:
            return found
        r = self.ranking.explain(s)
        c = _campaign_part(self.ranking.index, s, self.accept)
        reason = None
        for x in r.reasons:  # the strongest shown, "you joined" only when it is the only one
            if x.code != "joined" and x.text:
                reason = x.text
                break
        else:
            reason = next((x.text for x in r.reasons if x.text), None)
        running = r.phase == "running"
        participants = r.participants
        reasons = [{"code": x.code, "text": x.text, "points": x.points} for x in r.reasons if x.text]
        joinable = running and not r.joined
        live = self.taken.get(s.id)
        if live is not None:
            participants = live
        # The first refusal in the order the page checks them: the budget, then the seats.
        cap = s.snap.participant_cap
        refused = None
        if joinable and s.id in self.budget_spent:
            refused = budget_spent_reason(self.ranking.who.language)
        elif joinable and live is not None and cap is not None and live >= cap:
            refused = full_reason(self.ranking.who.language)
        if refused is not None:
            joinable = False
            reasons.append({"code": refused.code, "text": refused.text, "points": refused.points})
        found = self._written[s.id] = {
            "id": c["id"], "type": c["type"], "phase": r.phase, "teaser": not running,
            "joinable": joinable, "joined": r.joined, "language": c["language"], "title": c["title"],
            "summary": c["summary"], "tags": c["tags"], "theme_id": c["theme_id"],
            "banner_media_id": c["banner_media_id"], "banner_url": c["banner_url"], "starts_at": c["starts_at"],
            "ends_at": c["ends_at"],
            "participants": participants, "distance_km": None if r.distance_km is None else round(r.distance_km, 2),
            "score": r.score, "reason": reason,
            "reasons": reasons,
        }  # fmt: skip
        return found

    def cards(self, chosen: list[Scored]) -> list[dict[str, Any]]:
        return [self.card(s) for s in chosen]


def page_json(
    ranking: Ranking, chosen: list[Scored], next_cursor: str | None, accept: str | None,
    live: Live | None = None,
) -> bytes:  # fmt: skip
    """A ``FeedOut`` (``live``: see ``CardWriter``)."""
    return _ENCODE({"items": CardWriter(ranking, accept, live).cards(chosen), "next_cursor": next_cursor})


def sections_json(
    ranking: Ranking, n: int, accept: str | None, live: Live | None = None,
    chosen: Sections | None = None,
) -> bytes:  # fmt: skip
    """A ``SectionsOut``, at most ``n`` campaigns a section (``chosen``: the ranking's
    ``sections(n)`` when already picked; ``live``: see ``CardWriter``)."""
    chosen = chosen or ranking.sections(n)
    writer = CardWriter(ranking, accept, live)
    return _ENCODE({
        "recommended": writer.cards(chosen.recommended), "ending_soon": writer.cards(chosen.ending_soon),
        "near_you": writer.cards(chosen.near_you),
        "themed": [{"theme_id": t, "name": name, "items": writer.cards(items)} for t, name, items in chosen.themed],
    })  # fmt: skip
