"""What the database holds about a customer, table by table, and what an erasure does
to each table (PIPL / GDPR data rights; docs/data-rights.md says why, row by row).

Every model with a column naming a customer must be listed here: ``customer_columns``
finds such columns (a foreign key to ``models.Customer``, or an integer column named
``customer_id`` or ``*_customer_id``) and tests/data_rights checks the whole model
registry against ``HOLDINGS``, so a table added later without an entry fails a test
instead of silently missing from exports and erasures. Tables that name the customer in
some other way (a subject column, a parent row) are listed with ``where``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from tortoise.expressions import Q
from tortoise.fields.relational import ForeignKeyFieldInstance, OneToOneFieldInstance
from tortoise.models import Model

from models.attribution import Attribution
from models.audience import CustomerDailyActivity, CustomerFacts, CustomerStoreVisit
from models.audit import AuditEntry
from models.automation import AutomationRun
from models.bargains import Bargain, BargainCut
from models.customers import Customer, TierChange
from models.draws import LuckyDraw
from models.experiments import ExperimentExposure
from models.group_buy import GroupBuy, GroupMember
from models.journey import (
    CheckIn,
    CustomerBadge,
    IntegrationEvent,
    PointsBalance,
    PointsEntry,
    ProgressEntry,
    RewardGrant,
)
from models.notifications import Notification, NotifySubscription
from models.participations import Participation
from models.redemptions import Redemption, VoucherReminder
from models.referrals import InviteCode, Referral
from models.sessions import RefreshToken
from models.vouchers import Voucher

#: What an erasure does to a table's rows of the customer.
#: ``anonymize``: the customers row itself (tombstone openid, personal columns nulled).
#: ``keep``: kept under the customer's id, which names nobody once the row is anonymized.
#: ``delete``: deleted.
Erasure = Literal["anonymize", "keep", "delete"]


@dataclass(frozen=True)
class Holding:
    """One table's rows about a customer."""

    model: type[Model]
    #: The columns naming the customer (database column names).
    columns: tuple[str, ...]
    erasure: Erasure
    #: Why it is kept or deleted (docs/data-rights.md repeats it for people).
    why: str
    #: The rows of a customer, when not simply ``column = id`` for each of ``columns``.
    where: Callable[[int], Q] | None = None
    #: Columns never exported (secrets, not data about the person).
    hidden: frozenset[str] = field(default_factory=frozenset)

    @property
    def table(self) -> str:
        return str(self.model._meta.db_table)

    def rows_of(self, customer_id: int) -> Q:
        if self.where is not None:
            return self.where(customer_id)
        query = _equals(self.columns[0], customer_id)
        for column in self.columns[1:]:
            query |= _equals(column, customer_id)
        return query

    def exported_columns(self) -> list[str]:
        return [name for name in self.model._meta.fields_db_projection if name not in self.hidden]


def _equals(column: str, value: int) -> Q:
    condition: dict[str, Any] = {column: value}
    return Q(**condition)


HOLDINGS: tuple[Holding, ...] = (
    Holding(
        Customer,
        ("id",),
        "anonymize",
        "the row stays so vouchers, redemptions and the ledger keep a valid owner; its openid becomes a"
        " tombstone that no WeChat account can log in as, every personal column is nulled",
        hidden=frozenset({"session_key"}),
    ),
    Holding(CustomerDailyActivity, ("customer_id",), "delete", "profiling (spend and visits per day)"),
    Holding(CustomerFacts, ("customer_id",), "delete", "profiling (windows, lifecycle stage)"),
    Holding(CustomerStoreVisit, ("customer_id",), "delete", "profiling (stores visited)"),
    Holding(
        TierChange,
        ("customer_id",),
        "delete",
        "profiling (membership tier history; the audit log keeps who changed it)",
    ),
    Holding(AutomationRun, ("customer_id",), "delete", "pending runs must not act on an erased customer"),
    Holding(
        IntegrationEvent,
        ("customer_id",),
        "keep",
        "purchases and refunds the POS posted: finance (amounts, order references, replays and refunds are"
        " matched against them)",
    ),
    Holding(
        Attribution,
        ("customer_id",),
        "keep",
        "revenue credited to campaigns (ROI): finance, derived from the kept purchases and redemptions",
    ),
    Holding(CheckIn, ("customer_id",), "delete", "activity, no financial effect of its own"),
    Holding(PointsBalance, ("customer_id",), "keep", "the points ledger's balance: finance"),
    Holding(PointsEntry, ("customer_id",), "keep", "the points ledger: finance"),
    Holding(CustomerBadge, ("customer_id",), "delete", "gamification, no financial effect"),
    Holding(
        RewardGrant,
        ("customer_id",),
        "keep",
        "what campaigns owed and gave: finance (pending grants are refused, never issued)",
    ),
    Holding(
        GroupBuy,
        ("leader_id",),
        "keep",
        "group buys the customer opened: the other members' groups and rewards rest on them (no personal content)",
    ),
    Holding(
        GroupMember,
        ("customer_id",),
        "keep",
        "places in group buys: a filled group's rewards were granted from them (no personal content)",
    ),
    Holding(NotifySubscription, ("customer_id",), "delete", "message allowances: personal"),
    Holding(Notification, ("customer_id",), "delete", "messages to the person (pending ones are never sent)"),
    Holding(
        Participation,
        ("customer_id",),
        "keep",
        "campaign seats, budgets and rewards are counted from them (no personal content)",
    ),
    Holding(
        ProgressEntry,
        ("participation_id",),
        "keep",
        "the history of a kept participation's progress",
        where=lambda customer_id: Q(participation__customer_id=customer_id),
    ),
    Holding(
        Bargain,
        ("customer_id",),
        "keep",
        "a bargain's price and claim decide a reward (finance); no personal content",
    ),
    Holding(
        BargainCut,
        ("helper_customer_id",),
        "keep",
        "each help is part of another customer's bargain price and its audit trail (no personal content)",
    ),
    Holding(Redemption, ("customer_id",), "keep", "till transactions: finance and the staff audit"),
    Holding(
        ExperimentExposure,
        ("customer_id",),
        "keep",
        "which arm of an experiment the person saw first: results count it (an arm index, no personal content)",
    ),
    Holding(VoucherReminder, ("customer_id",), "delete", "outbox of reminders to the person"),
    Holding(InviteCode, ("customer_id",), "delete", "an identifier the person shared"),
    Holding(
        Referral,
        ("inviter_id", "invitee_id"),
        "keep",
        "the cause of the referral points in the ledger (the code names a deleted invite code)",
    ),
    Holding(Voucher, ("customer_id",), "keep", "issued coupons: stock, budget and redemptions count them"),
    Holding(
        LuckyDraw,
        ("customer_id",),
        "keep",
        "lucky draws: prize stock and daily limits are rebuilt from them, and points were paid and won by them",
    ),
    Holding(
        RefreshToken,
        ("subject_id",),
        "delete",
        "sessions",
        where=lambda customer_id: Q(subject_kind="customer", subject_id=customer_id),
        hidden=frozenset({"token_hash", "family_id"}),
    ),
    Holding(
        AuditEntry,
        ("entity_id", "actor_id"),
        "keep",
        "the audit log is kept whole; personal values in its before/after snapshots are redacted",
        where=lambda customer_id: (
            Q(entity_type="customer", entity_id=customer_id) | Q(actor_kind="customer", actor_id=customer_id)
        ),
    ),
)

#: Keys of audit snapshots (``before``/``after``) that hold personal values: redacted on
#: erasure.
PERSONAL_AUDIT_KEYS = frozenset(
    {
        "openid", "unionid", "session_key", "nickname", "interest_tags", "city", "preferred_store_id",
        "phone_number", "phone_country_code", "phone", "phone_bound_at", "phone_suffix",
    }
)  # fmt: skip


def _names_customer(field_object: Any, name: str) -> bool:
    if isinstance(field_object, ForeignKeyFieldInstance | OneToOneFieldInstance):
        target = getattr(field_object, "related_model", None)
        return target is Customer or getattr(field_object, "model_name", "") == "models.Customer"
    return name == "customer_id" or name.endswith("_customer_id")


def customer_columns(model: type[Model]) -> set[str]:
    """Database columns of ``model`` that name a customer by foreign key or by name."""
    found: set[str] = set()
    meta = model._meta
    for name, field_object in meta.fields_map.items():
        if not _names_customer(field_object, name):
            continue
        if isinstance(field_object, ForeignKeyFieldInstance | OneToOneFieldInstance):
            found.add(str(getattr(field_object, "source_field", None) or f"{name}_id"))
        elif name not in {f"{fk}_id" for fk in meta.fk_fields | meta.o2o_fields}:
            found.add(str(field_object.source_field or name))
    if model is Customer:
        found.add("id")
    return found


def unlisted(models: Iterable[type[Model]]) -> list[str]:
    """Models naming a customer that ``HOLDINGS`` does not cover (or covers only partly)."""
    listed = {holding.model: set(holding.columns) for holding in HOLDINGS}
    missing: list[str] = []
    for model in models:
        columns = customer_columns(model)
        if columns and not columns <= listed.get(model, set()):
            missing.append(f"{model.__name__}: {sorted(columns - listed.get(model, set()))}")
    return missing
