"""server/redis_connection.py against redis-py and real servers: the same bytes as redis-py's
pack_command, scripts called with call_script on one Redis and on a Redis Cluster, and a
write that cannot finish still failing with redis-py's TimeoutError."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError, RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.app import connect_redis
from server.redis_connection import FastCluster, FastConnection
from services.core import call_script
from tests.infra import RedisClusterServers

BIG = "x" * 7000  # above redis-py's 6,000-byte buffer cutoff: sent as a chunk of its own

#: Commands as redis-py's callers build them: names with literal arguments, every type
#: the encoder takes, empty and big values, multi-byte text.
COMMANDS: list[tuple[Any, ...]] = [
    ("PING",),
    ("SET", "key", "value"),
    ("CONFIG GET", "maxmemory"),
    (b"CONFIG SET", b"a", b"b"),
    ("EVALSHA", "f" * 40, 2, "cmp:{1}:a", b"cmp:{1}:b", 0, -7, 2**70, 1.5, 0.1 + 0.2, 1e300, -0.0),
    ("SET", "k", ""),
    ("SET", b"k", b""),
    ("SET", "k", "減十元 é \u2028"),
    ("SET", "k", bytearray(b"bytes\r\nlike")),
    ("SET", "k", memoryview(b"a memoryview")),
    ("SET", "k", memoryview(b"0123456789")[2:5]),
    ("MSET", "a", memoryview(b"0123456789")[::3], "b", "after"),  # a strided view
    ("SET", "k", BIG),
    ("SET", "k", BIG.encode()),
    ("MSET", "a", BIG, "b", "small", "c", memoryview(BIG.encode()), "d", 5),
    ("RPUSH", "many", *[f"item-{i}" for i in range(800)]),  # the buffer passes the cutoff
    ("SET", "k", float("inf")),
]


def _redis_py_bytes(*args: Any) -> bytes:
    return b"".join(bytes(chunk) for chunk in Connection().pack_command(*args))


def _our_bytes(connection: FastConnection, *args: Any) -> bytes:
    return b"".join(bytes(chunk) for chunk in connection.pack_command(*args))


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: str(args[0]) + "-" + str(len(args)))
def test_pack_command_sends_redis_pys_bytes(args: tuple[Any, ...]) -> None:
    expected = _redis_py_bytes(*args)
    assert _our_bytes(FastConnection(), *args) == expected
    # redis-py's own path too (what a non-UTF-8 client takes).
    python_path = FastConnection()
    python_path._hiredis_packs = False
    assert _our_bytes(python_path, *args) == expected


def test_pack_command_with_another_encoding_matches_redis_py() -> None:
    args = ("SET", "clé", "déjà vu", 3)
    ours = FastConnection(encoding="latin-1")
    assert not ours._hiredis_packs
    expected = b"".join(Connection(encoding="latin-1").pack_command(*args))
    assert _our_bytes(ours, *args) == expected
    assert b"cl\xe9" in expected


def test_big_values_and_memoryviews_are_not_copied_into_the_buffer() -> None:
    python_path = FastConnection()
    python_path._hiredis_packs = False
    view = memoryview(b"abc")
    big = BIG.encode()
    chunks = python_path.pack_command("MSET", "a", view, "b", big)
    assert any(chunk is view for chunk in chunks)
    assert any(chunk is big for chunk in chunks)


@pytest.mark.parametrize("bad", [True, None, object(), [1], {"a": 1}])
def test_what_redis_py_refuses_is_refused(bad: Any) -> None:
    with pytest.raises(DataError):
        Connection().pack_command("SET", "k", bad)
    with pytest.raises(DataError):
        FastConnection().pack_command("SET", "k", bad)


@pytest.fixture
async def fast_redis(redis_url: str) -> AsyncIterator[Redis]:
    client = connect_redis(redis_url, cluster=False)
    assert isinstance(client, Redis)
    await client.flushdb()
    yield client
    await client.aclose()


#: Echoes what it was given, so a test sees exactly the KEYS and ARGV that arrived.
ECHO = "return {KEYS, ARGV}"


async def test_the_servers_client_uses_it_against_a_real_redis(fast_redis: Redis) -> None:
    assert fast_redis.connection_pool.connection_class is FastConnection
    values = {"text": "減十元", "big": BIG, "empty": "", "int": 12, "float": 0.1 + 0.2}
    for name, value in values.items():
        await fast_redis.set(f"conn-test:{name}", value)
    got = await fast_redis.mget([f"conn-test:{name}" for name in values])
    assert got == [str(value).encode() for value in values.values()]
    connection = await fast_redis.connection_pool.get_connection()
    try:
        assert type(connection) is FastConnection
    finally:
        await fast_redis.connection_pool.release(connection)
    # Many commands at once through the pool: every answer is its own.
    answers = await asyncio.gather(*(fast_redis.incrby("conn-test:n", i) for i in range(1, 201)))
    assert max(answers) == sum(range(1, 201))


async def test_call_script_gets_every_key_and_argument(fast_redis: Redis) -> None:
    script = fast_redis.register_script(ECHO)
    keys = [f"audience:{{9}}:{i}" for i in range(424)]
    # Not loaded yet: call_script loads it on NOSCRIPT, as AsyncScript does.
    echoed = await call_script(script, keys=["first", *keys, "last"], args=["a", 1, "b", 2])
    assert echoed == [[b"first", *(k.encode() for k in keys), b"last"], [b"a", b"1", b"b", b"2"]]
    # The same through redis-py's own AsyncScript: the same answer.
    assert await script(keys=["first", *keys, "last"], args=["a", 1, "b", 2]) == echoed


async def test_a_write_that_cannot_finish_times_out_and_drops_the_connection() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Answers the two CLIENT SETINFO of redis-py's RESP2 handshake (RESP3 would open
        # with HELLO) without reading them, then holds the socket open and reads nothing.
        writer.write(b"+OK\r\n+OK\r\n")
        accepted.append(writer)

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = FastConnection(host="127.0.0.1", port=port, socket_timeout=0.3, protocol=2)
    try:
        await connection.connect()
        assert connection.is_connected
        payload = b"x" * (64 * 1024 * 1024)  # far more than the socket buffers hold
        started = time.monotonic()
        # The outer bound turns a write that never times out into a failure, not a hang.
        async with asyncio.timeout(10):
            with pytest.raises(RedisTimeoutError, match="Timeout writing to socket"):
                await connection.send_packed_command(connection.pack_command("SET", "k", payload), check_health=False)
        assert 0.25 <= time.monotonic() - started < 5
        assert not connection.is_connected
    finally:
        await connection.disconnect()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
async def fast_cluster(redis_cluster: RedisClusterServers) -> AsyncIterator[FastCluster]:
    client = connect_redis(redis_cluster.url, cluster=True)
    assert isinstance(client, FastCluster)
    await client.initialize()
    await client.flushall()
    yield client
    await client.aclose()


async def test_the_cluster_client_uses_it_and_routes_scripts(fast_cluster: FastCluster) -> None:
    script = fast_cluster.register_script(ECHO)
    for tag in ("{a}", "{b}", "{c}", "{d}"):  # hash tags on more than one master
        keys = [f"audience:{tag}:{i}" for i in range(50)]
        echoed = await call_script(script, keys=[f"first:{tag}", *keys], args=["x", 1])
        assert echoed == [[f"first:{tag}".encode(), *(k.encode() for k in keys)], [b"x", b"1"]]
        # Redis checks the keys' slots itself: the call reached the node owning them.
        await fast_cluster.set(f"k:{tag}", "v")
        assert await fast_cluster.get(f"k:{tag}") == b"v"
    nodes = fast_cluster.get_nodes()
    assert len(nodes) == 3
    used = [connection for node in nodes for connection in node._connections]
    assert used and all(type(connection) is FastConnection for connection in used)
    with pytest.raises(RedisClusterException, match="same key slot"):
        await call_script(script, keys=["{a}1", "{b}1"])
