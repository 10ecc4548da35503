"""The server's Redis connections: a bounded pool with a cheap hand-out, for the grab
path on one Redis (``BoundedConnectionPool``), and the cluster client's connection class
(``ClusterConnection``, a fix for a race in redis-py's cluster client; see its docstring).

redis-py's ``BlockingConnectionPool`` bounds connections and waits for a free one, which
is what a flash sale needs (more grabs in flight than connections, queued instead of
failing with "Too many connections"); but every command pays for its ``asyncio.Condition``,
a timeout context, a deprecation shim and several awaited metrics hooks: in a profile of
the grab endpoint the hand-out alone was a tenth of the server's CPU. This pool keeps the
same contract with a semaphore: a free slot is taken without suspending, and only a full
pool waits (up to ``timeout``, then ``ConnectionError`` like redis-py's).

Why this override of redis-py's internals stays (issue 13: it must save at least 10% of
CPU per request on its path): ``bench.overrides --plain pool`` (a server with redis-py's
``BlockingConnectionPool`` beside one with this pool, grabs on each in turn) measured 6.3%
less CPU per grab in a first series of 6 pairs and 14.8% in a second, 13% over both
medians, on a loaded 2-core machine (2026-12-03, bench/RESULTS.md). It relies on
``ConnectionPool``'s ``_available_connections``, ``_in_use_connections``,
``get_available_connection`` and ``ensure_connection`` as in redis-py 8.1.0 (pinned;
tests/platform/test_library_internals.py fails if they change). Re-measure before upgrading.

What it leaves out of redis-py's pool: the OpenTelemetry connection metrics and the
"connection released" event used by Redis Enterprise maintenance notifications; neither
is used here.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError

from server.metrics import REDIS_POOL_WAIT


class BoundedConnectionPool(ConnectionPool):
    """At most ``max_connections`` connections; a command waits up to ``timeout`` seconds
    for one to be free."""

    def __init__(self, *, timeout: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout = timeout
        self._slots = asyncio.Semaphore(self.max_connections)

    async def get_connection(self, command_name: Any = None, *keys: Any, **options: Any) -> AbstractConnection:
        if self._slots.locked():
            # Only a full pool waits: the wait is measured here, off the common path.
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.timeout):
                    await self._slots.acquire()
            except TimeoutError as err:
                REDIS_POOL_WAIT.observe(time.perf_counter() - started)
                raise RedisConnectionError("No connection available.") from err
            REDIS_POOL_WAIT.observe(time.perf_counter() - started)
        else:
            await self._slots.acquire()  # a free slot: returns without suspending
        try:
            # No await between taking a connection and marking it in use: no lock needed
            # on one event loop.
            connection = self.get_available_connection()
        except BaseException:
            self._slots.release()
            raise
        try:
            await self.ensure_connection(connection)
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        try:
            self._in_use_connections.discard(connection)
            if connection.should_reconnect():
                await connection.disconnect()
            self._available_connections.append(connection)
        finally:
            self._slots.release()


class ClusterConnection(Connection):
    """redis-py's connection, for the cluster client: a command whose socket another task
    closed before it was written fails as a ``ConnectionError``, which the cluster client
    retries on a fresh connection, instead of an ``AttributeError`` (a 500).

    Why: redis-py 8.1.0's cluster client closes every connection of every node, in use or
    not, when a topology refresh fails or the cluster reports itself down
    (``NodesManager.aclose``); a command between taking its connection and writing to it
    then finds the socket gone. On a loaded machine a refresh after a connect timeout is
    enough (CI saw it in a burst of 500 bargain helpers). A command that had not been
    written is safe to send again.
    """

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        try:
            await super().send_packed_command(command, check_health)
        except AttributeError as err:  # the writer was dropped by another task's close
            raise RedisConnectionError("Connection closed by another task before the command was sent.") from err


def use_cluster_connection(client: RedisCluster) -> RedisCluster:
    """Make the cluster client open ``ClusterConnection``s (it has no argument for it:
    its constructor fixes redis-py's ``Connection``). Precondition: no command sent yet.

    Relies on ``NodesManager.connection_kwargs`` (the arguments of nodes found later) and
    ``ClusterNode.connection_class`` (the startup nodes) as in redis-py 8.1.0,
    checked by tests/platform/test_library_internals.py."""
    client.nodes_manager.connection_kwargs["connection_class"] = ClusterConnection
    for node in client.nodes_manager.startup_nodes.values():
        node.connection_class = ClusterConnection
    return client
