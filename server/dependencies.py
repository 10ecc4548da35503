"""Connecting to the database and Redis at start-up without failing the start: an
unreachable dependency is said once, clearly, then retried with backoff, one log line per
attempt (no traceback); the server listens meanwhile (``/healthz`` answers, ``/readyz``
is 503 naming it) and its background workers wait for it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from yarl import URL

if TYPE_CHECKING:
    from tortoise.context import TortoiseContext

log = logging.getLogger("wxcampaign.server")

#: Seconds between attempts: doubling from the first, capped at the last.
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0


def safe_url(url: str) -> str:
    """``url`` without its password, to name a dependency in a log line."""
    try:
        parsed = URL(url)
    except ValueError:
        return "(unparseable URL)"
    if parsed.password is not None:
        parsed = parsed.with_password("***")
    return str(parsed)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text}"[:300]


@dataclass
class Dependency:
    """The state of one dependency of this process: ``ready`` once it was reached."""

    name: str
    where: str
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    attempts: int = 0
    last_error: str = ""

    @property
    def is_ready(self) -> bool:
        return self.ready.is_set()

    async def connect(self, attempt: Callable[[], Awaitable[None]]) -> bool:
        """Run ``attempt`` once; True if it succeeded. On failure, log what is unreachable
        once (ERROR) and return False: the caller then runs ``retry_forever``."""
        try:
            await attempt()
        except Exception as exc:  # whatever the driver raises, the dependency is not there
            self.attempts = 1
            self.last_error = _reason(exc)
            log.error(
                "%s unreachable at %s: %s; serving with /readyz 503 and retrying with backoff",
                self.name, self.where, self.last_error,
            )  # fmt: skip
            return False
        self.ready.set()
        return True

    async def retry_forever(self, attempt: Callable[[], Awaitable[None]]) -> None:
        """Retry ``attempt`` with exponential backoff until it succeeds (one WARNING line
        per failed attempt), then set ``ready``. Cancel it to give up (shutdown)."""
        delay = BACKOFF_FIRST
        while True:
            await asyncio.sleep(delay)
            self.attempts += 1
            try:
                await attempt()
            except Exception as exc:
                self.last_error = _reason(exc)
                delay = min(delay * 2, BACKOFF_MAX)
                log.warning(
                    "%s still unreachable (attempt %d): %s; next attempt in %.1f s",
                    self.name, self.attempts, self.last_error, delay,
                )  # fmt: skip
                continue
            log.warning("%s reachable at %s after %d attempts: ready", self.name, self.where, self.attempts)
            self.ready.set()
            return


@dataclass
class DatabaseState(Dependency):
    """The database dependency with the ORM context it opened (None until ready)."""

    orm: TortoiseContext | None = None
