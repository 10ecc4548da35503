"""Mini-program codes that open a campaign, for printed posters and in-store signage."""

from __future__ import annotations

from miniprogram_api import MiniProgramClient
from models.campaigns import Campaign
from services.accounts import call_wechat
from services.core import AnyRedis, errors

#: The mini program's page that shows one campaign; the scene carries its id.
CAMPAIGN_PAGE = "pages/campaign/detail"
#: WeChat's codes never change for the same scene and page: keep one a day.
CACHE_SECONDS = 86_400


def cache_key(campaign_id: int) -> str:
    return f"poster-code:{campaign_id}"


async def campaign_code(redis: AnyRedis, wechat: MiniProgramClient, campaign_id: int) -> tuple[bytes, str]:
    """(PNG bytes, content type) of the campaign's code: from Redis, or from WeChat once a day."""
    cached = await redis.get(cache_key(campaign_id))
    if isinstance(cached, bytes):  # the client never decodes replies: a PNG is not text
        return cached, "image/png"
    if not await Campaign.exists(id=campaign_id):
        raise errors.NotFound(f"no campaign {campaign_id}")
    image, content_type = await call_wechat(
        lambda: wechat.get_unlimited_code(scene=f"c={campaign_id}", page=CAMPAIGN_PAGE)
    )
    if content_type.split(";")[0].strip() == "image/png":
        await redis.set(cache_key(campaign_id), image, ex=CACHE_SECONDS)
    return image, content_type.split(";")[0].strip() or "image/png"
