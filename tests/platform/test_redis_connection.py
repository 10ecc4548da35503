"""The server's Redis client (``server.app.connect_redis``: redis-py's own connections,
pool and cluster client) against real servers: values round-trip through the pool, and
scripts called with call_script on one Redis and on a Redis Cluster get every key and
argument and reach the node owning their slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from server.app import connect_redis
from server.redis_pool import BoundedConnectionPool, ClusterConnection
from services.core import call_script
from tests.infra import RedisClusterServers

BIG = "x" * 7000  # above redis-py's 6,000-byte buffer cutoff: sent as a chunk of its own


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    client = connect_redis(redis_url, cluster=False)
    assert isinstance(client, Redis)
    await client.flushdb()
    yield client
    await client.aclose()


#: Echoes what it was given, so a test sees exactly the KEYS and ARGV that arrived.
ECHO = "return {KEYS, ARGV}"


async def test_the_servers_client_against_a_real_redis(client: Redis) -> None:
    assert isinstance(client.connection_pool, BoundedConnectionPool)
    values = {"text": "減十元", "big": BIG, "empty": "", "int": 12, "float": 0.1 + 0.2}
    for name, value in values.items():
        await client.set(f"conn-test:{name}", value)
    got = await client.mget([f"conn-test:{name}" for name in values])
    assert got == [str(value).encode() for value in values.values()]
    # Many commands at once through the pool: every answer is its own. 64 at once (the
    # benches' connection count): each opens a connection, and 200 connects at once
    # overran the client's 2 s connect timeout on a loaded 2-core CI machine.
    answers = await asyncio.gather(*(client.incrby("conn-test:n", i) for i in range(1, 65)))
    assert max(answers) == sum(range(1, 65)) and len(set(answers)) == 64


async def test_call_script_gets_every_key_and_argument(client: Redis) -> None:
    script = client.register_script(ECHO)
    keys = [f"audience:{{9}}:{i}" for i in range(424)]
    # Not loaded yet: call_script loads it on NOSCRIPT, as AsyncScript does.
    echoed = await call_script(script, keys=["first", *keys, "last"], args=["a", 1, "b", 2])
    assert echoed == [[b"first", *(k.encode() for k in keys), b"last"], [b"a", b"1", b"b", b"2"]]
    # The same through redis-py's own AsyncScript: the same answer.
    assert await script(keys=["first", *keys, "last"], args=["a", 1, "b", 2]) == echoed


@pytest.fixture
async def cluster_client(redis_cluster: RedisClusterServers) -> AsyncIterator[RedisCluster]:
    client = connect_redis(redis_cluster.url, cluster=True)
    assert isinstance(client, RedisCluster)
    await client.initialize()
    await client.flushall()
    yield client
    await client.aclose()


async def test_the_cluster_client_routes_scripts(cluster_client: RedisCluster) -> None:
    script = cluster_client.register_script(ECHO)
    for tag in ("{a}", "{b}", "{c}", "{d}"):  # hash tags on more than one master
        keys = [f"audience:{tag}:{i}" for i in range(50)]
        echoed = await call_script(script, keys=[f"first:{tag}", *keys], args=["x", 1])
        assert echoed == [[f"first:{tag}".encode(), *(k.encode() for k in keys)], [b"x", b"1"]]
        # Redis checks the keys' slots itself: the call reached the node owning them.
        await cluster_client.set(f"k:{tag}", "v")
        assert await cluster_client.get(f"k:{tag}") == b"v"
    assert len(cluster_client.get_nodes()) == 3
    with pytest.raises(RedisClusterException, match="same key slot"):
        await call_script(script, keys=["{a}1", "{b}1"])


async def test_commands_in_flight_survive_a_cluster_wide_close(cluster_client: RedisCluster) -> None:
    """redis-py's cluster client closes every node's connections, in use or not, when a
    topology refresh fails or the cluster is down. A command caught between taking its
    connection and writing it is sent again on a new one (server/redis_pool.py's
    ClusterConnection), never failing with an AttributeError (a 500 in a handler)."""
    for yields in range(12):  # the close lands at a different point of the commands each time
        sets = [asyncio.create_task(cluster_client.set(f"inflight:{i}", yields)) for i in range(200)]
        for _ in range(yields):
            await asyncio.sleep(0)
        await cluster_client.nodes_manager.aclose()
        answers = await asyncio.gather(*sets, return_exceptions=True)
        failures = [repr(a) for a in answers if isinstance(a, BaseException)]
        assert failures == [], (yields, failures[:3])
    assert await cluster_client.get("inflight:199") == b"11"
    # Every node's connections are the server's class (set after the client is built).
    connections = [c for node in cluster_client.get_nodes() for c in node._connections]
    assert connections and all(isinstance(c, ClusterConnection) for c in connections)
