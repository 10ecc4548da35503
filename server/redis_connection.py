"""A redis-py connection with a cheaper send path, and pre-packed argument blocks.

Two costs of redis-py 8.1's asyncio ``Connection`` on every command, found by profiling
the coupon grab:

- ``send_packed_command`` bounds the write with ``asyncio.wait_for`` when
  ``socket_timeout`` is set, and on Python 3.11 ``wait_for`` wraps the write in a new
  Task: a task created, scheduled and awaited for a write that almost never blocks.
  ``FastConnection`` bounds it with ``asyncio.timeout`` instead (no task), with
  redis-py's semantics otherwise: connect if needed, health check, ``TimeoutError
  ("Timeout writing to socket")`` after ``socket_timeout``, the connection dropped on
  any error.
- ``pack_command`` encodes every argument through ``Encoder.encode`` and rebuilds its
  buffer once per argument. ``FastConnection.pack_command`` produces the same bytes
  with one join, and splices in ``Packed`` blocks: arguments encoded once by the caller
  (e.g. a script's constant keys), so a call with hundreds of them costs one append.

``Packed`` only works through ``FastConnection`` (redis-py's own connection refuses it
with ``DataError``). For a script whose keys contain a ``Packed`` block, call it through
``call_script`` (redis-py's ``AsyncScript.__call__`` counts ``len(keys)`` for numkeys,
one per list item); on Redis Cluster use ``FastCluster``, which routes a block by the
slot all its keys share.
"""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection
from redis.cluster import key_slot
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, NoScriptError, RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # hiredis is in requirements.txt; without it, the Python path
    _hiredis_pack = None


class Packed:
    """``count`` arguments already encoded as RESP bulk strings (``$len\\r\\nvalue\\r\\n``
    each) in ``blob``; ``slot`` is the Redis Cluster slot all of them hash to, when they
    are keys of one slot (else None: such a block cannot route a cluster command).

    Build it with ``Packed.of`` once and reuse it on every call: that is the point."""

    __slots__ = ("blob", "count", "slot")

    def __init__(self, count: int, blob: bytes, slot: int | None = None) -> None:
        self.count = count
        self.blob = blob
        self.slot = slot

    @classmethod
    def of(cls, items: Iterable[str | bytes | int | float], encoding: str = "utf-8", errors: str = "strict") -> Packed:
        """Encode ``items`` as redis-py's ``Encoder`` would (the client's encoding: utf-8
        unless configured otherwise). Refuses what redis-py refuses (bool, other types)."""
        encoded = [_encode(item, encoding, errors) for item in items]
        slots = {key_slot(value) for value in encoded}
        blob = b"".join(b"$%d\r\n%b\r\n" % (len(value), value) for value in encoded)
        return cls(len(encoded), blob, slots.pop() if len(slots) == 1 else None)

    def __repr__(self) -> str:
        return f"Packed(count={self.count}, {len(self.blob)} bytes, slot={self.slot})"


def _encode(value: Any, encoding: str, errors: str) -> bytes:
    # Exactly redis-py's Encoder.encode (bytes-like values as bytes: a block is kept).
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, bool):
        raise DataError("Invalid input of type: 'bool'. Convert to a bytes, string, int or float first.")
    if isinstance(value, int | float):
        return repr(value).encode()
    if isinstance(value, str):
        return value.encode(encoding, errors)
    raise DataError(f"Invalid input of type: '{type(value).__name__}'. Convert to a bytes, string, int or float first.")


class FastConnection(Connection):
    """redis-py's TCP ``Connection`` with a task-free write timeout and a faster
    ``pack_command`` that understands ``Packed`` arguments (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # hiredis encodes str as strict UTF-8: only then are its bytes redis-py's.
        self._hiredis_packs = _hiredis_pack is not None and (
            codecs.lookup(self.encoder.encoding).name == "utf-8" and self.encoder.encoding_errors == "strict"
        )

    async def send_packed_command(self, command: str | bytes | Iterable[bytes], check_health: bool = True) -> None:
        if not self.is_connected:
            await self.connect_check_health(check_health=False)
        if check_health:
            await self.check_health()
        try:
            if isinstance(command, str):
                command = command.encode()
            if isinstance(command, bytes):
                command = [command]
            writer = self._writer
            writer.writelines(command)
            if self.socket_timeout:
                async with asyncio.timeout(self.socket_timeout):
                    await writer.drain()
            else:
                await writer.drain()
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as e:
            await self.disconnect(nowait=True)
            if len(e.args) == 1:
                err_no, errmsg = "UNKNOWN", e.args[0]
            else:
                err_no, errmsg = e.args[0], e.args[1]
            raise RedisConnectionError(f"Error {err_no} while writing to socket. {errmsg}.") from e
        except BaseException:
            # As redis-py: a half-sent command cannot be resumed, so the connection goes.
            await self.disconnect(nowait=True)
            raise

    def pack_command(self, *args: Any) -> list[bytes]:  # type: ignore[override]
        """The bytes redis-py's ``pack_command`` would send, with ``Packed`` blocks
        spliced in. hiredis packs in C when it can: str, bytes, int and float arguments
        (it formats floats with ``repr`` as redis-py does, and refuses bool, bytearray,
        subclasses of int and ``Packed`` with TypeError: those take the Python path).
        Memoryviews never go to hiredis: it reads a strided view's buffer as if it were
        contiguous (wrong bytes), and redis-py sends a view as a chunk, uncopied."""
        first = args[0]
        assert not isinstance(first, float)
        # A command name may carry literal arguments ("CONFIG GET"): sent separately.
        if isinstance(first, str):
            args = (*first.encode().split(), *args[1:])
        elif b" " in first:
            args = (*first.split(), *args[1:])
        if self._hiredis_packs and memoryview not in map(type, args):
            try:
                return [_hiredis_pack(args)]
            except (TypeError, BufferError):
                pass
        return self._pack_in_python(args)

    def _pack_in_python(self, args: tuple[Any, ...]) -> list[bytes]:
        """Values above the buffer cutoff and memoryviews go out as chunks of their own
        (not copied), as in redis-py."""
        encoder = self.encoder
        encoding, errors = encoder.encoding, encoder.encoding_errors
        cutoff = self._buffer_cutoff
        pieces: list[bytes] = [b""]  # [0]: the array header, once the count is known
        chunks: list[list[bytes] | bytes] = [pieces]
        count = 0
        for arg in args:
            kind = type(arg)
            if kind is bytes:
                value = arg
            elif kind is str:
                value = arg.encode(encoding, errors)
            elif kind is int:
                value = b"%d" % arg  # repr of an int, as redis-py's Encoder
            elif kind is Packed:
                count += arg.count
                if len(arg.blob) > cutoff:
                    chunks.append(arg.blob)
                    pieces = []
                    chunks.append(pieces)
                else:
                    pieces.append(arg.blob)
                continue
            else:
                value = encoder.encode(arg)  # floats, bytes-likes, subclasses; refuses the rest
            count += 1
            size = len(value)
            if size > cutoff or isinstance(value, memoryview):
                pieces.append(b"$%d\r\n" % size)
                chunks.append(value)
                pieces = [b"\r\n"]
                chunks.append(pieces)
            else:
                pieces.append(b"$%d\r\n%b\r\n" % (size, value))
        head = chunks[0]
        head[0] = b"*%d\r\n" % count  # type: ignore[index]
        if len(chunks) == 1:
            return [b"".join(head)]
        return [b"".join(chunk) if type(chunk) is list else chunk for chunk in chunks if chunk]  # type: ignore[misc]


class FastCluster(RedisCluster):
    """``RedisCluster`` whose node connections are ``connection_class`` (redis-py 8.1's
    cluster client always makes plain ``Connection``s), and which routes EVAL/EVALSHA
    calls whose keys contain ``Packed`` blocks by the blocks' ``slot``."""

    def __init__(self, *args: Any, connection_class: type[Connection] = FastConnection, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if kwargs.get("ssl"):
            return  # TLS keeps redis-py's SSLConnection
        # The same dict is shared with the nodes manager: nodes discovered later get it too.
        self.connection_kwargs["connection_class"] = connection_class
        for node in self.startup_nodes:
            node.connection_class = connection_class

    async def _determine_slot(self, command: str, *args: Any) -> int:
        if command.upper() not in ("EVAL", "EVALSHA") or not any(type(arg) is Packed for arg in args):
            return await super()._determine_slot(command, *args)
        numkeys = int(args[1])
        slots = set()
        for arg in args[2:]:
            if numkeys <= 0:
                break
            if type(arg) is Packed:
                if arg.slot is None:
                    raise RedisClusterException(f"{command}: a Packed block of keys must hash to one slot")
                slots.add(arg.slot)
                numkeys -= arg.count
            else:
                slots.add(self.keyslot(arg))
                numkeys -= 1
        if len(slots) != 1:
            raise RedisClusterException(f"{command} - all keys must map to the same key slot")
        return slots.pop()


async def call_script(
    script: AsyncScript,
    keys: Sequence[Any] = (),
    args: Sequence[Any] = (),
    client: Redis | RedisCluster | None = None,
) -> Any:
    """Run a registered script whose ``keys`` may contain ``Packed`` blocks (each counts
    as its ``count`` keys in numkeys), loading it on a server that lost it, as
    ``AsyncScript.__call__`` does. The client's connections must be ``FastConnection``s
    (``server.app.connect_redis`` makes them), and on a cluster the client a
    ``FastCluster``."""
    if client is None:
        client = script.registered_client
    numkeys = 0
    for key in keys:
        numkeys += key.count if type(key) is Packed else 1
    try:
        return await client.evalsha(script.sha, numkeys, *keys, *args)  # type: ignore[misc]
    except NoScriptError:
        script.sha = await client.script_load(script.script)
        return await client.evalsha(script.sha, numkeys, *keys, *args)  # type: ignore[misc]
