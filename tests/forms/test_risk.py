"""The risk gate of the social forms: WeChat's rank (through the emulator) decides,
cached per customer in the real Redis."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from models.customers import Customer
from server.keys import POLICIES, REDIS, WECHAT
from services.core.errors import RiskRefused
from services.forms import RiskPolicy, risk_rank, screen
from tests.helpers import customer_login, fault, wechat_calls

RANK_PATH = "/wxa/getuserriskrank"


async def _customer(client: TestClient, openid: str) -> int:
    await customer_login(client, openid)
    return (await Customer.get(openid=openid)).id


async def _set_rank(client: TestClient, openid: str, rank: int) -> None:
    resp = await client.post("/_wechat/risk-rank", json={"openid": openid, "rank": rank})
    assert resp.status == 200, await resp.text()


async def _screen(client: TestClient, customer_id: int, policy: RiskPolicy | None = None) -> None:
    app = client.app
    await screen(
        redis=app[REDIS],
        wechat=app[WECHAT],
        policy=policy or app[POLICIES].risk,
        customer_id=customer_id,
        client_ip="203.0.113.7",
    )


async def test_a_customer_ranked_at_the_bar_is_refused_and_one_below_is_not(client: TestClient) -> None:
    assert client.app[POLICIES].risk.refuse_at == 3
    low = await _customer(client, "o_rank2")
    high = await _customer(client, "o_rank3")
    await _set_rank(client, "o_rank2", 2)
    await _set_rank(client, "o_rank3", 3)
    await _screen(client, low)
    with pytest.raises(RiskRefused) as refused:
        await _screen(client, high)
    assert (refused.value.code, refused.value.status) == ("risk_refused", 403)


async def test_the_rank_is_asked_once_per_customer_while_cached(client: TestClient) -> None:
    who = await _customer(client, "o_cached")
    before = (await wechat_calls(client)).get(RANK_PATH, 0)
    for _ in range(5):
        await _screen(client, who)
    assert (await wechat_calls(client)).get(RANK_PATH, 0) - before == 1
    # A rank raised on WeChat's side is seen once the cached one expires.
    await _set_rank(client, "o_cached", 4)
    await _screen(client, who)
    await client.app[REDIS].delete(f"risk:rank:{who}")
    with pytest.raises(RiskRefused):
        await _screen(client, who)


async def test_an_unranked_customer_follows_the_policy(client: TestClient) -> None:
    who = await _customer(client, "o_unranked")
    await fault(client, RANK_PATH, errcode=61010)
    app = client.app
    rank = await risk_rank(
        redis=app[REDIS], wechat=app[WECHAT], policy=RiskPolicy(), customer_id=who, client_ip="203.0.113.7"
    )
    assert rank is None
    await _screen(client, who, RiskPolicy(when_unranked="allow"))
    with pytest.raises(RiskRefused):
        await _screen(client, who, RiskPolicy(when_unranked="refuse"))


async def test_wechat_down_is_unranked_briefly_not_for_the_whole_cache_time(client: TestClient) -> None:
    who = await _customer(client, "o_outage")
    await fault(client, RANK_PATH, errcode=-1, times=10)
    await _screen(client, who, RiskPolicy(cache_seconds=300))
    ttl = await client.app[REDIS].ttl(f"risk:rank:{who}")
    assert 0 < ttl <= 10
