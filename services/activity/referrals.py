"""Referrals: each customer's invite code, and crediting the inviter when a new customer
logs in with it.

- **Codes**: 8 characters of Crockford's base32 (no I, L, O, U: they read back without
  confusion; 32^8 ≈ 10^12 codes), made the first time a customer asks for theirs, unique
  by a database constraint (a collision retries with a fresh code). Codes are read
  leniently: case, and the look-alikes O → 0, I/L → 1, are forgiven.
- **Crediting**: only a customer created by this very login counts. The referral row
  (unique per invitee) and the inviter's progress are written in the transaction that
  creates the customer, so a new customer is credited exactly once, or (if that
  transaction fails) the login fails and nothing is written. An existing customer, an
  unknown or malformed code, and the inviter's own code are ignored: a login never fails
  because of an invite code (the answer says ``ignored``, the log says why).
- **Goal**: each referral steps by one every joined participation of the inviter whose
  goal metric is ``referrals`` and whose window holds the moment of the login (the same
  machinery as events: progress steps, the completion compare-and-set, rewards once).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Literal

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.customers import Customer
from models.referrals import InviteCode, Referral
from services.activity import events as journey_events
from services.automation import engine as automation
from services.core import random_token
from services.journey import Journey

log = logging.getLogger("wxcampaign.referrals")

CODE_LENGTH = 8
#: The mini-program page a shared invite opens (the code rides along as ``invite_code``).
SHARE_PAGE = "pages/index/index"
_CODE = re.compile(r"^[0-9ABCDEFGHJKMNPQRSTVWXYZ]{8}$")
_LOOK_ALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})

InviteStatus = Literal["credited", "ignored"]


def normalize(code: str) -> str | None:
    """The canonical form of a typed or scanned code, or None if it cannot be one."""
    canonical = code.strip().upper().translate(_LOOK_ALIKES)
    return canonical if _CODE.match(canonical) else None


async def code_of(customer_id: int) -> str:
    """The customer's invite code, made on first use."""
    row = await InviteCode.get_or_none(customer_id=customer_id)
    if row is not None:
        return row.code
    for _ in range(5):
        try:
            async with in_transaction():  # a savepoint when the caller has a transaction
                row = await InviteCode.create(customer_id=customer_id, code=random_token(CODE_LENGTH))
            return row.code
        except IntegrityError:
            # Either this customer's code was made concurrently, or the random code is taken.
            row = await InviteCode.get_or_none(customer_id=customer_id)
            if row is not None:
                return row.code
    raise RuntimeError("could not make a unique invite code")


async def invited_count(customer_id: int) -> int:
    return await Referral.filter(inviter_id=customer_id).count()


class Invite:
    """An invite code presented at login. Pass ``accept`` to ``customers.login`` as its
    ``on_create`` hook, then call ``finish`` after the login."""

    def __init__(self, journey: Journey, code: str | None) -> None:
        self.journey = journey
        self.code = code
        self.status: InviteStatus | None = None if not code else "ignored"
        self.reason: str | None = None
        self._grant_ids: list[int] = []
        self._run_ids: list[int] = []

    async def accept(self, customer: Customer) -> None:
        """Credit the inviter for this new customer. Precondition: inside the transaction
        that creates ``customer``."""
        if not self.code:
            return
        code = normalize(self.code)
        inviter = await InviteCode.get_or_none(code=code) if code else None
        if inviter is None:
            self.reason = "unknown_code"
            return
        inviter_id = inviter.customer_id
        if inviter_id == customer.id:
            self.reason = "own_code"
            return
        try:
            async with in_transaction():  # a savepoint: a conflict leaves the login intact
                referral = await Referral.create(inviter_id=inviter_id, invitee_id=customer.id, code=code)
        except IntegrityError:
            self.reason = "already_credited"
            return
        _, self._grant_ids, self._run_ids = await journey_events.credit_referral(
            self.journey, inviter_id, f"referral:{referral.id}", datetime.now(UTC)
        )
        self.status, self.reason = "credited", None

    async def finish(self, customer: Customer, created: bool) -> InviteStatus | None:
        """After the login committed: deliver the inviter's reward coupons, and say what
        became of the code (None: no code was sent)."""
        if self.code and not created:
            self.reason = "existing_customer"
        if self.status == "ignored":
            log.info("invite code ignored for customer %d: %s", customer.id, self.reason)
        await self.journey.rewards.issue_pending(self._grant_ids)
        await automation.execute(self.journey, self._run_ids)
        return self.status
