"""What the numbers say: funnels, redemption reports, the view/click tracking counters in
Redis, campaigns' ROI and the drill-down by store, channel, tier, stage and theme, and the
newline-JSON bulk export of raw rows.

The names below are the package's public face: other packages, handlers and tests
import them from here; its modules import each other directly."""

from services.analytics.bulk_export import EXPORT_KINDS, ExportKind, export_lines
from services.analytics.drilldown import (
    DIMENSIONS,
    CampaignRoi,
    Dimension,
    Drilldown,
    Figures,
    campaign_roi,
    drilldown,
)
from services.analytics.funnel import MAX_RANGE_DAYS, DateRange, resolve_range

__all__ = [
    "DIMENSIONS",
    "EXPORT_KINDS",
    "MAX_RANGE_DAYS",
    "CampaignRoi",
    "DateRange",
    "Dimension",
    "Drilldown",
    "ExportKind",
    "Figures",
    "campaign_roi",
    "drilldown",
    "export_lines",
    "resolve_range",
]
