"""What every domain needs of Redis: the client type, replies as text, and running a
registered Lua script cheaply.

The clients run without ``decode_responses`` (stream entries and scripts answer bytes),
so every reader turns a reply into ``str`` the same way (``text``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

#: A single Redis or a Redis Cluster: every multi-key script keeps its keys in one slot.
AnyRedis = Redis | RedisCluster


def text(value: Any) -> str:
    """A reply (bytes, str or number) as a string."""
    return value.decode() if isinstance(value, bytes) else str(value)


async def call_script(
    script: AsyncScript,
    keys: Sequence[Any] = (),
    args: Sequence[Any] = (),
    client: Redis | RedisCluster | None = None,
) -> Any:
    """Run a registered script (EVALSHA), loading it on a server that lost it, as
    ``AsyncScript.__call__`` does, without its per-call checks (an ``isinstance``
    against redis-py's ``Pipeline``, a ``typing.Protocol``: slow on every grab). Not for
    pipelines: they take ``AsyncScript.__call__``."""
    if client is None:
        client = script.registered_client
    numkeys = len(keys)
    try:
        return await client.evalsha(script.sha, numkeys, *keys, *args)
    except NoScriptError:
        script.sha = await client.script_load(script.script)
        return await client.evalsha(script.sha, numkeys, *keys, *args)
