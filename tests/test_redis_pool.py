"""The server's Redis pool (redis-py's ``BlockingConnectionPool``, as ``connect_redis``
configures it) against a real redis-server: bounded, waiting for a free connection when
full, failing after its timeout, and sound under concurrency."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from server.app import connect_redis


def _client(redis_url: str, *, size: int, timeout: float = 5.0) -> Redis:
    return Redis.from_pool(BlockingConnectionPool.from_url(redis_url, max_connections=size, timeout=timeout))


async def test_commands_queue_for_the_connections_there_are(redis_url: str) -> None:
    client = _client(redis_url, size=3)
    try:
        # 30 commands that each hold their connection for 50 ms, 3 connections: all
        # complete, and never more than 3 connections exist.
        results = await asyncio.gather(*(client.blpop([f"pool-test:{i}"], timeout=0.05) for i in range(30)))
        assert results == [None] * 30
        pool = client.connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) == 3
        assert not pool._in_use_connections
        # Still usable, and values round-trip.
        await client.set("pool-test:k", "v")
        assert await client.get("pool-test:k") == b"v"
    finally:
        await client.aclose()


async def test_a_full_pool_fails_after_its_timeout(redis_url: str) -> None:
    client = _client(redis_url, size=1, timeout=0.2)
    try:
        hold = asyncio.create_task(client.blpop(["pool-test:hold"], timeout=1))
        await asyncio.sleep(0.1)  # the one connection is now blocked in BLPOP
        with pytest.raises(RedisConnectionError, match="No connection available"):
            await client.ping()
        assert await hold is None
        assert await client.ping() is True  # the slot came back
    finally:
        await client.aclose()


async def test_the_server_uses_it(redis_url: str) -> None:
    client = connect_redis(redis_url, cluster=False)
    try:
        assert isinstance(client.connection_pool, BlockingConnectionPool)
        assert client.connection_pool.max_connections == 512
        assert await client.ping() is True
    finally:
        await client.aclose()
