"""The notifications outbox: where events become messages waiting to be sent.

Every row is unique by a natural key, so an event enqueues once however often it is seen:

- ``reward:<participation>``: written in the transaction that grants the reward
  (``services.journey.rewards.grant_in_transaction``), so it exists exactly when the reward does.
- ``voucher_expiring:<voucher>``: written by the voucher expiry job in the transaction that
  records the voucher's ``voucher_reminders`` row.
- ``campaign_ending:<campaign>:<customer>``: a fan-out over participants still ``joined``
  of active campaigns ending within NOTIFY_ENDING_HOURS. Unlike the announcement it is
  never done while the campaign is in that window: it walks participations in the order
  they joined (by participation id, state key ``campaign_ending_joins:<campaign>``), so a
  customer who joins after a pass — a campaign shorter than the window is in it from
  activation, when nobody has joined yet — is warned by the next one.
- ``new_campaign:<campaign>:<customer>``: a fan-out over the audience of a campaign that
  became active in the last day (public: everyone, targeted: its audience rule, hidden or
  not offered in the mini program: nobody).

Single-customer events always get a row: the sender records it ``skipped`` (no_allowance)
when the customer holds no allowance for its template. Fan-outs only pick customers who
hold an allowance for the kind's template (nobody else could receive the message, and an
audience can be every customer): they walk those customers in ascending id, in batches,
remembering the last id done (``notify_fanouts``), so a pass is bounded and a crash
resumes where it stopped. A customer who subscribes after a fan-out passed them is not
notified about that campaign.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.functions import Count
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from models.campaigns import Campaign
from models.notifications import NOTIFICATION_STATUSES, Notification, NotifyFanout, NotifySubscription
from models.participations import Participation
from services.audience import rules as audience
from services.core import column, newest_first, request_id_var
from services.notify.languages import reward_text_in, titles_of
from services.notify.templates import NotifyTemplates

#: A campaign that became active longer ago than this is not announced any more.
NEW_CAMPAIGN_LOOKBACK = timedelta(days=1)
FANOUT_BATCH = 500
#: Batches one fan-out pass takes at most (the next pass continues).
FANOUT_BATCHES_PER_PASS = 20
#: Campaigns a fan-out pass reads at once: a thousand announced together were read as
#: ORM objects in one statement, which held the event loop ~0.9 s every pass at 10,000.
CAMPAIGN_PAGE = 100


def title_of(content: Mapping[str, Any], default_language: str, titles: Mapping[str, Any] | None = None) -> str:
    """A campaign's (or coupon's) title in its default language, else any language."""
    if titles is None:
        titles = {lang: (texts or {}).get("title", "") for lang, texts in content.items()}
    title = titles.get(default_language) or next((t for t in titles.values() if t), "")
    return str(title)


#: The payload key holding the id of the request that enqueued a message (when a request
#: did): the sender handles the message under that id, so its log lines and the WeChat
#: call (X-Request-Id) name the request that caused it. Not a template field.
REQUEST_ID_KEY = "request_id"


def stamped(payload: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` with the current request's id under REQUEST_ID_KEY (none outside a
    request, and a value the caller put there is kept)."""
    rid = request_id_var.get()
    return {REQUEST_ID_KEY: rid, **payload} if rid else dict(payload)


async def enqueue(key: str, kind: str, customer_id: int, payload: Mapping[str, Any]) -> bool:
    """Add one message unless its key is already there; True if added. Runs in its own
    savepoint, so a duplicate key never aborts the caller's transaction. The current
    request's id goes with it (``stamped``)."""
    if await Notification.filter(key=key).exists():
        return False
    try:
        async with in_transaction():
            await Notification.create(
                key=key, kind=kind, customer_id=customer_id, payload=stamped(payload), next_attempt_at=datetime.now(UTC)
            )
        return True
    except IntegrityError:
        return False  # enqueued concurrently


async def enqueue_many(rows: list[tuple[str, str, int, dict[str, Any]]]) -> None:
    """(key, kind, customer_id, payload) rows; keys already present are left alone."""
    if not rows:
        return
    now = datetime.now(UTC)
    await Notification.bulk_create(
        [Notification(key=k, kind=kind, customer_id=c, payload=p, next_attempt_at=now) for k, kind, c, p in rows],
        ignore_conflicts=True,
    )


def reward_text(points: int, badge: str | None, coupons: int) -> str:
    """What a reward holds, in Chinese (the payload's ``reward``; ``reward_texts`` holds
    it in each of the campaign's languages, see services/notify/languages.py)."""
    return reward_text_in("zh-CN", points, badge, coupons)


# --- fan-outs -------------------------------------------------------------------------


@dataclass(frozen=True)
class FanoutReport:
    new_campaign: int = 0
    campaign_ending: int = 0


async def _fanout_state(key: str) -> NotifyFanout:
    row = await NotifyFanout.get_or_none(key=key)
    if row is not None:
        return row
    try:
        async with in_transaction():
            return await NotifyFanout.create(key=key)
    except IntegrityError:
        return await NotifyFanout.get(key=key)


async def _advance(state: NotifyFanout, last_id: int, added: int, done: bool) -> bool:
    """Move the cursor forward (compare-and-set on the old cursor: of two passes walking
    the same fan-out, one advances)."""
    moved = await NotifyFanout.filter(id=state.id, cursor=state.cursor).update(
        cursor=last_id, enqueued=F("enqueued") + added, done=done
    )
    state.cursor = last_id
    return bool(moved)


async def _announce(campaign: Campaign, template_id: str) -> int:
    """One pass of a campaign's "new campaign" fan-out: how many rows were enqueued."""
    state = await _fanout_state(f"new_campaign:{campaign.id}")
    if state.done:
        return 0
    title = title_of(campaign.content or {}, campaign.default_language)
    payload = {
        "campaign_id": campaign.id, "campaign_title": title,
        "starts_at": campaign.starts_at.isoformat(), "ends_at": campaign.ends_at.isoformat(),
        "campaign_titles": titles_of(campaign.content or {}), "default_language": campaign.default_language,
    }  # fmt: skip
    targeted = campaign.visibility == "targeted" and campaign.audience_rule is not None
    total = 0
    for _ in range(FANOUT_BATCHES_PER_PASS):
        holders = await column(
            NotifySubscription.filter(template_id=template_id, remaining__gt=0, customer_id__gt=state.cursor)
            .order_by("customer_id")
            .limit(FANOUT_BATCH),
            "customer_id",
        )
        ids = [int(i) for i in holders]
        if not ids:
            await _advance(state, state.cursor, 0, True)
            return total
        if targeted:
            # The audience within this id range only: one query, bounded by the batch.
            matching = set(
                await audience.customer_ids_matching(campaign.audience_rule, after_id=ids[0] - 1, until_id=ids[-1])
            )
            ids_to_notify = [i for i in ids if i in matching]
        else:
            ids_to_notify = ids
        await enqueue_many([(f"new_campaign:{campaign.id}:{c}", "new_campaign", c, payload) for c in ids_to_notify])
        done = len(ids) < FANOUT_BATCH
        if not await _advance(state, ids[-1], len(ids_to_notify), done):
            return total  # another pass is walking it
        total += len(ids_to_notify)
        if done:
            return total
    return total


async def _warn_ending(campaign: Campaign, template_id: str) -> int:
    """One pass of a campaign's "ending soon" fan-out over participants still joined.
    Never marked done: the cursor is the last participation id seen, so participations
    created after a pass (new joiners) are picked up by the next one; the candidates are
    only active campaigns inside the warning window, so a finished walk costs one query."""
    state = await _fanout_state(f"campaign_ending_joins:{campaign.id}")
    title = title_of(campaign.content or {}, campaign.default_language)
    payload = {
        "campaign_id": campaign.id, "campaign_title": title, "ends_at": campaign.ends_at.isoformat(),
        "campaign_titles": titles_of(campaign.content or {}), "default_language": campaign.default_language,
    }  # fmt: skip
    total = 0
    for _ in range(FANOUT_BATCHES_PER_PASS):
        rows = (
            await Participation.filter(campaign_id=campaign.id, id__gt=state.cursor)
            .order_by("id")
            .limit(FANOUT_BATCH)
            .values_list("id", "customer_id", "status")
        )
        if not rows:
            return total
        last_id = int(rows[-1][0])
        joined = [int(c) for _, c, status in rows if status == "joined"]
        holders = (
            set(
                await NotifySubscription.filter(
                    template_id=template_id, remaining__gt=0, customer_id__in=joined
                ).values_list("customer_id", flat=True)
            )
            if joined
            else set()
        )
        ids = [c for c in joined if c in holders]
        # Unique keys: a customer already warned (another pass, or the walk before this
        # one's state key) is not warned twice.
        await enqueue_many([(f"campaign_ending:{campaign.id}:{c}", "campaign_ending", c, payload) for c in ids])
        if not await _advance(state, last_id, len(ids), False):
            return total  # another pass is walking it
        total += len(ids)
        if len(rows) < FANOUT_BATCH:
            return total
    return total


async def fanout_pass(templates: NotifyTemplates, ending_hours: int, now: datetime | None = None) -> FanoutReport:
    """Enqueue the fan-outs that are due. Safe to run concurrently (unique keys, and the
    cursor is a compare-and-set); the caller's lock only saves work. Campaigns are read
    ``CAMPAIGN_PAGE`` at a time."""
    now = now or datetime.now(UTC)
    announced = warned = 0
    new = templates.get("new_campaign")
    if new is not None:
        fresh = Campaign.filter(status="active", activated_at__gte=now - NEW_CAMPAIGN_LOOKBACK)
        for page in _pages(await _undone("new_campaign", fresh)):
            for campaign in await Campaign.filter(id__in=page).order_by("id"):
                if campaign.visibility == "hidden" or "miniprogram" not in (campaign.channels or []):
                    continue
                announced += await _announce(campaign, new.template_id)
    ending = templates.get("campaign_ending")
    if ending is not None and ending_hours > 0:
        closing = Campaign.filter(status="active", ends_at__gt=now, ends_at__lte=now + timedelta(hours=ending_hours))
        # Every closing campaign, each pass: people keep joining until the end.
        for page in _pages(await column(closing.order_by("id"), "id")):
            for campaign in await Campaign.filter(id__in=page).order_by("id"):
                warned += await _warn_ending(campaign, ending.template_id)
    return FanoutReport(announced, warned)


def _pages(ids: Sequence[Any]) -> list[list[int]]:
    """``ids`` in pages of ``CAMPAIGN_PAGE``."""
    return [[int(i) for i in ids[k : k + CAMPAIGN_PAGE]] for k in range(0, len(ids), CAMPAIGN_PAGE)]


async def _undone(kind: str, candidates: QuerySet[Campaign]) -> list[int]:
    """The ids of the candidates whose ``kind`` fan-out is not done, oldest first (a pass
    runs every few seconds, and a busy day's hundreds of campaigns are almost all done)."""
    ids = [int(i) for i in await column(candidates.order_by("id"), "id")]
    done: set[str] = set()
    for page in _pages(ids):  # bounded IN lists (SQLite's variables, the statement's size)
        keys = [f"{kind}:{i}" for i in page]
        done.update(str(k) for k in await column(NotifyFanout.filter(key__in=keys, done=True), "key"))
    return [i for i in ids if f"{kind}:{i}" not in done]


async def listing(
    status: str | None, kind: str | None, customer_id: int | None, cursor: str | None, limit: int
) -> tuple[list[Notification], str | None, dict[str, int]]:
    """A page of the outbox, newest first, with these filters, and the number of messages
    per status in the whole outbox."""
    rows = Notification.all()
    if status is not None:
        rows = rows.filter(status=status)
    if kind is not None:
        rows = rows.filter(kind=kind)
    if customer_id is not None:
        rows = rows.filter(customer_id=customer_id)
    page, nxt = await newest_first(rows, cursor, limit)
    grouped = await Notification.all().annotate(n=Count("id")).group_by("status").values_list("status", "n")
    counts = {status_: 0 for status_ in NOTIFICATION_STATUSES} | {str(s): int(n) for s, n in grouped}
    return page, nxt, counts
