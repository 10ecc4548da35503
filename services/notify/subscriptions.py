"""Customers' subscribe-message allowances: one message per acceptance, per template.

The mini program reports the templates a customer accepted (``wx.requestSubscribeMessage``);
each report adds one to the (customer, template) count. Sending takes one with a
conditional ``UPDATE ... SET remaining = remaining - 1 WHERE remaining > 0`` (atomic on
SQLite and PostgreSQL: two senders cannot both take the last one), and only a send WeChat
certainly did not deliver gives it back. WeChat offers no way to check a report, so the
count is the client's word: a count higher than WeChat's only costs a refused send
(errcode 43101, recorded on the notification).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from models.notifications import NotifySubscription
from services.core import errors

#: Reported acceptances beyond this many unused ones are not counted (bounds a client
#: that reports in a loop; WeChat would refuse the extra sends anyway).
MAX_REMAINING = 100
#: Template ids one report may carry (the mini program asks for at most 3 at a time).
MAX_REPORTED = 10


@dataclass(frozen=True)
class Allowance:
    template_id: str
    kinds: tuple[str, ...]
    remaining: int
    updated_at: datetime | None


def check_known(template_ids: list[str], known: Mapping[str, list[str]]) -> None:
    """422 naming each position whose template id is not configured or is repeated."""
    problems = []
    seen: set[str] = set()
    for i, template_id in enumerate(template_ids):
        if template_id not in known:
            problems.append({"field": f"template_ids.{i}", "message": "not a configured template", "type": "unknown"})
        elif template_id in seen:
            problems.append({"field": f"template_ids.{i}", "message": "given more than once", "type": "duplicate"})
        seen.add(template_id)
    if problems:
        first = problems[0]
        raise errors.ValidationFailed(f"body {first['field']}: {first['message']}", details={"errors": problems})


async def _add_one(customer_id: int, template_id: str) -> None:
    """Precondition: inside a transaction."""
    for _ in range(5):
        bumped = await NotifySubscription.filter(
            customer_id=customer_id, template_id=template_id, remaining__lt=MAX_REMAINING
        ).update(remaining=F("remaining") + 1, accepted_total=F("accepted_total") + 1)
        if bumped:
            return
        row = await NotifySubscription.get_or_none(customer_id=customer_id, template_id=template_id)
        if row is not None:
            if row.remaining >= MAX_REMAINING:
                return  # at the cap: not counted
            continue  # created by a concurrent first report since our UPDATE: add to it
        try:
            async with in_transaction():  # a savepoint: a concurrent first report must not abort ours
                await NotifySubscription.create(
                    customer_id=customer_id, template_id=template_id, remaining=1, accepted_total=1
                )
            return
        except IntegrityError:
            continue  # created concurrently: add to it
    raise RuntimeError("could not record the subscription")


async def accept(
    customer_id: int, template_ids: list[str], known: Mapping[str, list[str]], language: str | None = None
) -> list[Allowance]:
    """Count one acceptance of each template (all or none), and remember ``language``
    (when given) as the one these templates' messages are written in. Raises
    ValidationFailed for an id not in ``known`` (configured template id -> kinds) or
    repeated."""
    check_known(template_ids, known)
    async with in_transaction():
        for template_id in template_ids:
            await _add_one(customer_id, template_id)
        if language is not None:
            await NotifySubscription.filter(customer_id=customer_id, template_id__in=template_ids).update(
                language=language
            )
    return await allowances(customer_id, known)


async def allowances(customer_id: int, known: Mapping[str, list[str]]) -> list[Allowance]:
    """Every configured template with the customer's count (0 when never accepted)."""
    rows = {r.template_id: r for r in await NotifySubscription.filter(customer_id=customer_id)}
    out = []
    for template_id, kinds in sorted(known.items()):
        row = rows.get(template_id)
        out.append(
            Allowance(template_id, tuple(sorted(kinds)), row.remaining if row else 0, row.updated_at if row else None)
        )
    return out


async def take(customer_id: int, template_id: str) -> bool:
    """Take one unit of allowance; False when there is none. Runs in the caller's
    transaction if there is one."""
    taken = await NotifySubscription.filter(customer_id=customer_id, template_id=template_id, remaining__gt=0).update(
        remaining=F("remaining") - 1
    )
    return bool(taken)


async def give_back(customer_id: int, template_id: str) -> None:
    """Return a unit taken by ``take`` (the message certainly was not delivered)."""
    await NotifySubscription.filter(customer_id=customer_id, template_id=template_id).update(
        remaining=F("remaining") + 1
    )
