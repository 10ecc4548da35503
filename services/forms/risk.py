"""WeChat's risk rank as a gate before a social action (a help, a group join, a draw).

Social forms pay people for other people's actions, which is what fraud farms (bonus
hunters, batches of fresh accounts) look for. WeChat ranks each user's marketing-fraud
risk (``getuserriskrank``, scene 1) from signals we never see; a customer ranked at or
above the policy's bar is refused with ``403 risk_refused``. The rank is cached per
customer for a short time so a burst of helps costs WeChat one call per customer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from miniprogram_api import MiniProgramClient, NoRecentVisit, WeChatError, WeChatUnavailable
from models.customers import Customer
from services.core import AnyRedis
from services.core.errors import RiskRefused

log = logging.getLogger(__name__)

#: WeChat's marketing-fraud scene of ``getuserriskrank`` (0 is registration).
MARKETING_SCENE = 1
#: What the cache holds for a customer WeChat did not rank (no visit in two hours, or
#: WeChat unreachable).
_UNRANKED = "-"
#: How long "WeChat is unreachable" is remembered: short, so ranking resumes soon, but
#: long enough that an outage does not make every social action wait for WeChat's timeout.
_UNREACHABLE_SECONDS = 10

WhenUnranked = Literal["allow", "refuse"]


@dataclass(frozen=True)
class RiskPolicy:
    """Who is refused. WeChat's ranks run 0 (no risk) to 4; ``refuse_at`` 5 refuses nobody."""

    refuse_at: int = 3
    cache_seconds: int = 300
    #: A customer WeChat gives no rank for (61010: no visit in the last two hours, or
    #: WeChat unreachable). Allowing keeps a WeChat outage from stopping every campaign.
    when_unranked: WhenUnranked = "allow"


def _key(customer_id: int) -> str:
    return f"risk:rank:{customer_id}"


async def risk_rank(
    *, redis: AnyRedis, wechat: MiniProgramClient, policy: RiskPolicy, customer_id: int, client_ip: str
) -> int | None:
    """The customer's marketing-fraud rank (0-4), or None when WeChat gives none.

    Precondition: ``customer_id`` names an existing customer (the caller's token says so).
    """
    cached = await redis.get(_key(customer_id))
    if cached is not None:
        text = cached.decode() if isinstance(cached, bytes) else str(cached)
        return None if text == _UNRANKED else int(text)
    openid = (await Customer.get(id=customer_id).only("id", "openid")).openid
    rank: int | None
    ttl = policy.cache_seconds
    try:
        rank = await wechat.get_user_risk_rank(openid, client_ip=client_ip, scene=MARKETING_SCENE)
    except NoRecentVisit:
        rank = None
    except (WeChatUnavailable, WeChatError) as exc:
        log.warning("risk rank unavailable for customer %s: %s", customer_id, exc)
        rank, ttl = None, min(ttl, _UNREACHABLE_SECONDS)
    await redis.set(_key(customer_id), _UNRANKED if rank is None else str(rank), ex=ttl)
    return rank


async def screen(
    *, redis: AnyRedis, wechat: MiniProgramClient, policy: RiskPolicy, customer_id: int, client_ip: str
) -> None:
    """Refuse (``RiskRefused``) a customer WeChat ranks at or above ``policy.refuse_at``,
    or one it does not rank when the policy says so; return quietly otherwise."""
    rank = await risk_rank(redis=redis, wechat=wechat, policy=policy, customer_id=customer_id, client_ip=client_ip)
    if rank is None:
        if policy.when_unranked == "refuse":
            raise RiskRefused("WeChat has no risk rank for this account yet; open the mini program and try again")
        return
    if rank >= policy.refuse_at:
        raise RiskRefused()
