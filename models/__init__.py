"""Tortoise ORM tables, one module per domain. MODEL_MODULES lists them for the ORM config."""

MODEL_MODULES: list[str] = [
    "models.customers",
    "models.sessions",
    "models.admins",
    "models.stores",
    "models.campaigns",
    "models.audit",
    "models.media",
    "models.vouchers",
    "models.participations",
    "models.audience",
    "models.journey",
    "models.redemptions",
    "models.referrals",
    "models.notifications",
    "models.automation",
    "models.draws",
]
