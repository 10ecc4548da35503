"""Reading alerts: the admin list, newest first, filtered by status, rule or campaign."""

from __future__ import annotations

from models.webhooks import Alert
from services.core import newest_first


async def list_alerts(
    *, status: str | None, rule: str | None, campaign_id: int | None, cursor: str | None, limit: int
) -> tuple[list[Alert], str | None]:
    query = Alert.all()
    if status is not None:
        query = query.filter(status=status)
    if rule is not None:
        query = query.filter(rule=rule)
    if campaign_id is not None:
        query = query.filter(campaign_id=campaign_id)
    return await newest_first(query, cursor, limit)
