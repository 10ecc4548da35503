"""A redis-py connection with a cheaper send path.

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
  buffer once per argument. ``FastConnection.pack_command`` produces the same bytes in
  C (hiredis) when it can, else with one join.

redis-py 8.1's cluster client always makes plain ``Connection``s: ``FastCluster`` gives
its nodes ``FastConnection``s."""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import Iterable
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

try:
    from hiredis import pack_command as _hiredis_pack

    _HAVE_HIREDIS = True
except ImportError:  # hiredis is in requirements.txt; without it, the Python path
    _HAVE_HIREDIS = False


class FastConnection(Connection):
    """redis-py's TCP ``Connection`` with a task-free write timeout and a faster
    ``pack_command`` (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # hiredis encodes str as strict UTF-8: only then are its bytes redis-py's.
        self._hiredis_packs = _HAVE_HIREDIS and (
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
            assert writer is not None  # connect_check_health() above opened it
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

    def pack_command(self, *args: Any) -> list[bytes]:
        """The bytes redis-py's ``pack_command`` would send. hiredis packs in C when it
        can: str, bytes, int and float arguments (it formats floats with ``repr`` as
        redis-py does, and refuses bool, bytearray and subclasses of int with TypeError:
        those take redis-py's own packer).
        Memoryviews never go to hiredis: it reads a strided view's buffer as if it were
        contiguous (wrong bytes), and redis-py sends a view as a chunk, uncopied."""
        if self._hiredis_packs and memoryview not in map(type, args):
            first = args[0]
            # A command name may carry literal arguments ("CONFIG GET"): sent separately.
            if isinstance(first, str):
                split = (*first.encode().split(), *args[1:])
            elif isinstance(first, bytes) and b" " in first:
                split = (*first.split(), *args[1:])
            else:
                split = args
            try:
                return [_hiredis_pack(split)]
            except (TypeError, BufferError):
                pass
        return super().pack_command(*args)


class FastCluster(RedisCluster):
    """``RedisCluster`` whose node connections are ``connection_class`` (redis-py 8.1's
    cluster client always makes plain ``Connection``s)."""

    def __init__(self, *args: Any, connection_class: type[Connection] = FastConnection, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if kwargs.get("ssl"):
            return  # TLS keeps redis-py's SSLConnection
        # The same dict is shared with the nodes manager: nodes discovered later get it too.
        self.connection_kwargs["connection_class"] = connection_class
        for node in self.startup_nodes:
            node.connection_class = connection_class
