"""What an operator builds: campaigns and their coupons, review, budgets, the
calendar, exclusivity, and the read model (``catalog``) the other domains use.

The names below are the package's public face: other packages, handlers and tests
import them from here; its modules import each other directly."""

from services.campaigns.calendar import title_of
from services.campaigns.catalog import CampaignCatalog, CampaignSnapshot, CouponSnapshot, Phase, load_snapshots
from services.campaigns.editing import Policy
from services.campaigns.exclusivity import exclusive_ids
from services.campaigns.spec import MAX_MONEY, CampaignIn, CampaignStatus, CampaignType, Channel, RefundPolicy

__all__ = [
    "MAX_MONEY",
    "CampaignCatalog",
    "CampaignIn",
    "CampaignSnapshot",
    "CampaignStatus",
    "CampaignType",
    "Channel",
    "CouponSnapshot",
    "Phase",
    "Policy",
    "RefundPolicy",
    "exclusive_ids",
    "load_snapshots",
    "title_of",
]
