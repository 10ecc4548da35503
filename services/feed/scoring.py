"""Scoring and ranking the feed's candidates for one viewer, each with the reasons the
client can show.

**Candidates**: the index's campaigns (services/feed/index.py) in their visible period
(teasers before ``starts_at`` included and marked), and, when targeted, with the viewer
in their audience (services/feed/audience_sets.py). A ``store_id`` narrows them to
campaigns running at that store.

**Score** = the sum of these components (each weight is a setting, ``FeedPolicy``):

- ``audience``: targeted at the customer (a rule naming their tier reads "for Gold
  members", another rule "picked for you") → ``audience``
- ``interest``: ``interest`` x (campaign tags among the customer's interest tags, at most
  2) / 2 → "because you like coffee"
- ``behaviour``: ``behaviour`` when the campaign's categories meet the categories the
  customer bought in the last 90 days (purchase events) → "because you buy drinks"
- ``store``: ``store`` when the campaign runs at the customer's preferred store → "at
  your store"
- ``distance``: ``distance`` x (1 - d / ``near_km``) for the nearest store of the campaign
  at d ≤ ``near_km`` km from ``lat``/``lng`` (or from ``store_id``) → "1.2 km away"
- ``ending``: ``ending`` x (1 - hours left / (``ending_soon_days`` x 24)) for a running
  campaign ending within ``ending_soon_days`` → "ends in 2 days"
- ``popularity``: ``popularity`` x log(1 + participants) / log(1 + the most participants
  of any candidate) → "1,234 joined" (shown from half the weight)
- ``joined``: ``joined`` (negative by default) when the customer already joined → "you
  joined"

Ties break by the earlier end, then the lower id. Teasers carry "starts in 3 days".

Points are rounded to thousandths, half up (``r3``). ``score_rows`` scores the whole
index at once in vector operations; ``rank_one`` explains one campaign with the same
floats; a ``Ranking`` holds a viewer's result (kept for their next requests:
services/feed/rankings.py) and cuts pages and the home page's sections from it.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np

from services.campaigns import CampaignSnapshot
from services.feed.index import Entry, FeedIndex, epoch_us
from services.feed.policy import FeedPolicy, r3
from services.feed.viewer import Viewer

# --- texts --------------------------------------------------------------------------

_TIERS_ZH = {"standard": "普通", "silver": "银卡", "gold": "金卡", "platinum": "白金"}
_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "tier": "for {tier} members",
        "audience": "picked for you",
        "interest": "because you like {tag}",
        "behaviour": "because you buy {category}",
        "store": "at your store",
        "distance": "{km} km away",
        "ending_days": "ends in {n} day{s}",
        "ending_hours": "ends in {n} hour{s}",
        "popularity": "{n} joined",
        "joined": "you joined",
        "teaser_days": "starts in {n} day{s}",
        "teaser_hours": "starts in {n} hour{s}",
        "full": "fully booked",
        "budget_spent": "all given out",
    },
    "zh-CN": {
        "tier": "{tier}会员专享",
        "audience": "为你精选",
        "interest": "因为你喜欢{tag}",
        "behaviour": "你常买{category}",
        "store": "你的常去门店可用",
        "distance": "距你{km}公里",
        "ending_days": "还剩{n}天",
        "ending_hours": "还剩{n}小时",
        "popularity": "{n}人已参加",
        "joined": "已参加",
        "teaser_days": "{n}天后开始",
        "teaser_hours": "{n}小时后开始",
        "full": "名额已满",
        "budget_spent": "已发完",
    },
}


def _text(language: str, key: str, **values: Any) -> str:
    return _TEXTS.get(language, _TEXTS["en"])[key].format(**values)


def _in(language: str, key: str, hours: float) -> str:
    """ "ends in 5 hours" below a day, else "ends in 2 days" (rounded)."""
    n, key = (max(1, math.ceil(hours)), f"{key}_hours") if hours < 24 else (max(1, round(hours / 24)), f"{key}_days")
    return _text(language, key, n=n, s="" if n == 1 else "s")


def full_reason(language: str) -> Reason:
    """The note a card of a full campaign ends with (0 points: it does not score; the
    feed shows it not joinable, as its page refuses ``campaign_full``)."""
    return Reason("full", _text(language, "full"), 0.0)


def budget_spent_reason(language: str) -> Reason:
    """The note a card of a campaign whose budget is spent ends with (0 points; the feed
    shows it not joinable, as its page refuses ``budget_exhausted``)."""
    return Reason("budget_spent", _text(language, "budget_spent"), 0.0)


def _r3(x: np.ndarray) -> np.ndarray:
    return np.floor(x * 1000.0 + 0.5) / 1000.0


# --- scoring --------------------------------------------------------------------------


class Reason(NamedTuple):
    code: str
    text: str
    points: float


@dataclass
class Ranked:
    snap: CampaignSnapshot
    phase: str
    score: float
    reasons: list[Reason]
    joined: bool
    distance_km: float | None
    participants: int
    info: list[Reason] = field(default_factory=list)

    @property
    def joinable(self) -> bool:
        return self.phase == "running" and not self.joined


def _runs_at(snap: CampaignSnapshot, store_id: int) -> bool:
    return snap.store_ids is None or store_id in snap.store_ids


def _popularity(index: FeedIndex, snap: CampaignSnapshot, policy: FeedPolicy, lang: str) -> tuple[float, str]:
    """(rounded points, text) of a campaign's popularity, kept per index."""
    key = ("popularity", snap.id, policy.popularity, lang)
    found = index.memo.get(key)
    if found is None:
        count, most = index.participants.get(snap.id, 0), index.most_participants
        found = (0.0, "")
        if count and most:
            share = math.log1p(count) / math.log1p(most)
            # Below half the weight it counts without being said.
            text = _TEXTS.get(lang, _TEXTS["en"])["popularity"].format(n=f"{count:,}") if share >= 0.5 else ""
            found = (r3(policy.popularity * share), text)
        index.memo[key] = found
    return found


def rank_one(
    snap: CampaignSnapshot, phase: str, index: FeedIndex, who: Viewer, policy: FeedPolicy, now: datetime,
    targeted_member: bool, distance: float | None,
) -> Ranked:  # fmt: skip
    """One campaign's score with its reasons and texts: the explanation of what ``score``
    computed for it (``distance``: km to its nearest store, None without a location).
    Each component is rounded, then added in the order listed in this module's
    docstring, as ``score_rows`` does (so the same float)."""
    lang = who.language
    texts = _TEXTS.get(lang, _TEXTS["en"])
    fixed = policy.points
    memo = index.memo  # reasons shared by many viewers, written once per index
    reasons: list[Reason] = []  # components with points, in the order the score adds them
    if targeted_member and fixed.audience:
        tier = who.tier if who.tier in index.tiers(snap) else None
        # Memo keys are tuples of several shapes, one per kind of reason.
        key: tuple[Any, ...] = ("audience", tier, lang, fixed.audience)
        found = memo.get(key)
        if found is None:
            tier_name = (_TIERS_ZH.get(tier, tier) if lang == "zh-CN" else tier.capitalize()) if tier else None
            text = texts["tier"].format(tier=tier_name) if tier_name else texts["audience"]
            found = memo[key] = Reason("audience", text, fixed.audience)
        reasons.append(found)
    if who.interests and snap.tags:
        liked = who.interests.intersection(snap.tags)
        if liked and fixed.interest[min(2, len(liked))]:
            key = ("interest", min(liked), min(2, len(liked)), lang, fixed.interest)
            found = memo.get(key)
            if found is None:
                text = texts["interest"].format(tag=key[1])
                found = memo[key] = Reason("interest", text, fixed.interest[key[2]])
            reasons.append(found)
    if who.bought and snap.categories and fixed.behaviour:
        bought = who.bought.intersection(snap.categories)
        if bought:
            key = ("behaviour", min(bought), lang, fixed.behaviour)
            found = memo.get(key)
            if found is None:
                found = memo[key] = Reason("behaviour", texts["behaviour"].format(category=key[1]), fixed.behaviour)
            reasons.append(found)
    if who.preferred_store_id is not None and fixed.store and _runs_at(snap, who.preferred_store_id):
        reasons.append(Reason("store", texts["store"], fixed.store))
    if distance is not None and distance <= policy.near_km and policy.near_km > 0:
        points = r3(policy.distance * (1 - distance / policy.near_km))
        if points:
            reasons.append(Reason("distance", texts["distance"].format(km=f"{distance:.1f}"), points))
    if phase == "running":
        left = (snap.ends_at - now).total_seconds() / 3600
        window = policy.ending_soon_days * 24
        if 0 < left <= window:
            points = r3(policy.ending * (1 - left / window))
            if points:
                reasons.append(Reason("ending", _in(lang, "ending", left), points))
    points, text = _popularity(index, snap, policy, lang)
    if points:
        reasons.append(Reason("popularity", text, points))
    joined = snap.id in who.joined
    if joined and fixed.joined:
        reasons.append(Reason("joined", texts["joined"], fixed.joined))
    total = 0.0
    for r in reasons:  # in order, one addition each, as score_rows (not sum(): 3.12 compensates)
        total += r.points
    info = (
        [Reason("teaser", _in(lang, "teaser", (snap.starts_at - now).total_seconds() / 3600), 0.0)]
        if phase == "teaser"
        else []
    )
    # Strongest first; reverse=True keeps equal points in the order above (stable).
    shown = sorted([r for r in reasons if r.text], key=_POINTS, reverse=True)
    return Ranked(snap, phase, r3(total), shown + info, joined, distance, index.participants.get(snap.id, 0), info)


_POINTS = operator.itemgetter(2)


class Scored(NamedTuple):
    """A candidate's place in the ranking, before its reasons are written."""

    neg_score: float
    ends_us: int
    id: int
    entry: Entry
    running: bool
    distance_km: float | None
    member: bool  # a targeted campaign whose audience holds the viewer

    @property
    def score(self) -> float:
        return -self.neg_score

    @property
    def snap(self) -> CampaignSnapshot:
        return self.entry.snap

    @property
    def phase(self) -> str:
        return "running" if self.running else "teaser"


@dataclass(slots=True, frozen=True)
class Scores:
    """A viewer's candidates, best first: their rows in the index and what scoring found
    for each (arrays: a cached ranking stays a few kilobytes; a page reads a few)."""

    rows: np.ndarray  # int64
    scores: np.ndarray  # float64
    distances: np.ndarray  # float64, +inf: none (no location, or no open store)
    running: np.ndarray  # bool


def score_rows(index: FeedIndex, who: Viewer, members: set[int], policy: FeedPolicy, now: datetime) -> Scores:
    """Every campaign this viewer may see, best first, with the score ``rank_one`` gives
    it: the same components, rounded and summed in the same order with the same IEEE
    operations (so the same floats), computed for the whole index at once without
    reasons or texts; a request writes those only for the campaigns it shows. Ties break
    by the earlier end, then the lower id."""
    if not index.entries:
        return Scores(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, bool))
    now_us = epoch_us(now)
    keep = (index.shown_from_us <= now_us) & (now_us < index.ends_us)
    keep &= ~index.is_targeted | index.rows_of(members)
    if who.store_id is not None:
        keep &= index.runs_at(who.store_id)
    rows = np.flatnonzero(keep)
    n = len(rows)
    # Components in rank_one's order, each 0.0 where it does not apply (x + 0.0 == x).
    total = np.where(index.is_targeted[rows], r3(policy.audience), 0.0)
    liked = np.asarray([index.tag_column[t] for t in who.interests if t in index.tag_column], dtype=np.intp)
    if len(liked):
        count = np.minimum(index.tags[np.ix_(rows, liked)].sum(axis=1), 2)
        total = total + np.array([0.0, r3(policy.interest * 1 / 2), r3(policy.interest * 2 / 2)])[count]
    bought = np.asarray([index.category_column[c] for c in who.bought if c in index.category_column], dtype=np.intp)
    if len(bought):
        total = total + np.where(index.categories[np.ix_(rows, bought)].any(axis=1), r3(policy.behaviour), 0.0)
    if who.preferred_store_id is not None:
        total = total + np.where(index.runs_at(who.preferred_store_id)[rows], r3(policy.store), 0.0)
    where = who.location
    if where is None and who.store_id is not None:
        where = index.stores.get(who.store_id)
    distance = None
    if where is not None:
        # Per store in Python's math (a few dozen): the same floats as distance_km.
        near = index.distances_from(*where)
        distance = np.array([*near, math.inf])[index.open_slots[rows]].min(axis=1)
        if near:
            distance[index.everywhere[rows]] = min(near)
        near_km = policy.near_km
        if near_km > 0:
            points = np.zeros(n)
            close = np.flatnonzero(distance <= near_km)
            points[close] = _r3(policy.distance * (1 - distance[close] / near_km))
            total = total + points
    running = ~index.scheduled[rows] & (index.starts_us[rows] <= now_us)
    soon = np.flatnonzero(running & (now_us >= index.weighed(policy).ending_from_us[rows]))
    if len(soon):
        window = policy.ending_soon_days * 24
        left = (index.ends_us[rows[soon]] - now_us) / 10**6 / 3600
        inside = (0 < left) & (left <= window)
        points = np.zeros(n)
        points[soon[inside]] = _r3(policy.ending * (1 - left[inside] / window))
        total = total + points
    total = total + index.weighed(policy).popularity[rows]
    if who.joined:
        total = total + np.where(index.rows_of(who.joined)[rows], r3(policy.joined), 0.0)
    scores = _r3(total)
    order = np.lexsort((index.ids[rows], index.ends_us[rows], -scores))
    distances = np.full(n, math.inf) if distance is None else distance[order]
    return Scores(rows[order], scores[order], distances, running[order])


@dataclass(slots=True, frozen=True)
class Sections:
    recommended: list[Scored]
    ending_soon: list[Scored]
    near_you: list[Scored]
    themed: list[tuple[int, str, list[Scored]]]  # (theme id, its name, its campaigns)

    def shown(self) -> list[Scored]:
        """Every campaign of every section (one may be in several)."""
        themed = [s for _, _, items in self.themed for s in items]
        return [*self.recommended, *self.ending_soon, *self.near_you, *themed]


@dataclass
class Ranking:
    """A viewer's ranking, best first; ``explain`` writes one item's reasons. A few
    kilobytes (numpy arrays): cached rankings keep no rendered items, which would weigh
    a hundred times more."""

    scores: Scores
    index: FeedIndex
    who: Viewer
    policy: FeedPolicy
    now: datetime
    #: False when a targeted campaign was left out because its audience set was being
    #: built elsewhere: answered, never kept for the next requests.
    complete: bool = True

    def __len__(self) -> int:
        return len(self.scores.rows)

    def page(self, offset: int, limit: int) -> list[Scored]:
        return self.at(np.arange(offset, min(offset + limit, len(self)), dtype=np.int64))

    def at(self, positions: np.ndarray) -> list[Scored]:
        """The candidates at these places of the ranking (0: the best), in that order."""
        s, entries, inf = self.scores, self.index.entries, math.inf
        out = []
        for row, value, running, distance in zip(
            s.rows[positions].tolist(), s.scores[positions].tolist(), s.running[positions].tolist(),
            s.distances[positions].tolist(), strict=True,
        ):  # fmt: skip
            e = entries[row]
            out.append(Scored(-value, e.ends_us, e.id, e, running, None if distance == inf else distance, e.targeted))
        return out

    def sections(self, n: int) -> Sections:
        """The home page's sections, at most ``n`` campaigns each: the best; running and
        ending within ``ending_soon_days``, soonest first (then the lower id); within
        ``near_km`` of the viewer, nearest first (equal distances in ranking order); and
        per theme in ranking order, the theme of the best campaign first. Chosen over the
        whole ranking with array operations: only the campaigns shown become ``Scored``."""
        s, index = self.scores, self.index
        until_us = epoch_us(self.now) + self.policy.ending_soon_days * 86_400 * 10**6
        ends = index.ends_us[s.rows]
        ending = np.flatnonzero(s.running & (ends <= until_us))
        ending = ending[np.lexsort((index.ids[s.rows[ending]], ends[ending]))][:n]
        near = np.flatnonzero(s.distances <= self.policy.near_km)
        near = near[np.argsort(s.distances[near], kind="stable")][:n]
        theme_of = index.theme_ids[s.rows]
        themed = []
        themes, first = np.unique(theme_of, return_index=True)
        for k in np.argsort(first, kind="stable"):
            theme_id = int(themes[k])
            if theme_id >= 0:
                themed.append(
                    (theme_id, index.themes.get(theme_id, ""), self.at(np.flatnonzero(theme_of == theme_id)[:n]))
                )
        return Sections(self.page(0, n), self.at(ending), self.at(near), themed)

    @property
    def items(self) -> list[Scored]:
        return self.page(0, len(self))

    def explain(self, s: Scored) -> Ranked:
        return rank_one(s.snap, s.phase, self.index, self.who, self.policy, self.now, s.member, s.distance_km)


def score(index: FeedIndex, who: Viewer, members: set[int], policy: FeedPolicy, now: datetime) -> list[Scored]:
    """``score_rows`` as a list of ``Scored``."""
    return Ranking(score_rows(index, who, members, policy, now), index, who, policy, now).items


def rank(index: FeedIndex, who: Viewer, members: set[int], policy: FeedPolicy, now: datetime) -> list[Ranked]:
    """Every campaign this viewer may see, best first, each with its reasons."""
    ranking = Ranking(score_rows(index, who, members, policy, now), index, who, policy, now)
    return [ranking.explain(s) for s in ranking.items]
