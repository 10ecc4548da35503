"""One WeChat HTTP call with WeChat's error conventions and bounded retries.

Kept apart from the client so the retry rules live in exactly one place:
errcode ``-1`` and transport failures are retried with exponential backoff,
every other non-zero errcode is raised at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from .errors import SystemBusy, WeChatError, WeChatUnavailable, error_for

logger = logging.getLogger("miniprogram_api")

_BUSY = -1


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful answer: either a JSON object or, for image endpoints, raw bytes."""

    payload: dict[str, Any] | None
    body: bytes
    content_type: str


class _Retryable(Exception):
    """Internal: this attempt failed in a way worth trying again. ``reached`` is False
    only when the request cannot have reached the server (no connection was made)."""

    def __init__(self, reason: str, errcode: int | None = None, errmsg: str = "", *, reached: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errcode = errcode
        self.errmsg = errmsg
        self.reached = reached


@dataclass(frozen=True)
class CallHooks:
    """What the application adds to each call: ``headers()`` gives extra request headers
    (the server forwards its request id as ``X-Request-Id``), and ``observe(path,
    outcome)`` hears how each attempt ended: the errcode as text (``"0"`` when fine) or
    ``"transport"`` (no usable answer). Both must be cheap and must not raise."""

    headers: Callable[[], Mapping[str, str]] | None = None
    observe: Callable[[str, str], None] | None = None


class Transport:
    """Sends requests to ``base_url`` + path and interprets WeChat's answers.

    Preconditions: ``session`` stays open for the transport's lifetime and is
    owned (closed) by the caller; ``max_retries >= 0``; ``timeout > 0``.
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        base_url: str,
        timeout: float,
        max_retries: int,
        backoff: float,
        hooks: CallHooks | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self._session = session
        # Paths all start with "/", so a trailing slash would double up.
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_retries = max_retries
        self._backoff = backoff
        self._hooks = hooks or CallHooks()

    @property
    def worst_case_seconds(self) -> float:
        """Upper bound of one ``request`` call, used to size locks and waits."""
        attempts = self._max_retries + 1
        sleeps = sum(self._delay_before(attempt) for attempt in range(1, attempts))
        total = self._timeout.total or 0.0
        return attempts * total + sleeps

    def _delay_before(self, attempt: int) -> float:
        # Exponential: backoff, 2*backoff, 4*backoff, ... before retries 1, 2, 3, ...
        return self._backoff * float(1 << (attempt - 1))

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        binary_ok: bool = False,
        max_retries: int | None = None,
    ) -> Reply:
        """Perform the call, retrying busy/transport failures.

        ``path`` starts with "/". With ``binary_ok`` an ``image/*`` answer is
        returned as bytes; anything else must be a JSON object. Raises the
        typed ``WeChatError`` for non-zero errcodes, ``SystemBusy`` when ``-1``
        outlasts the retries and ``WeChatUnavailable`` for transport failures.
        ``max_retries`` overrides the transport's (0: one attempt, for calls that
        must not be repeated blindly).
        """
        attempts = (self._max_retries if max_retries is None else max_retries) + 1
        last: _Retryable | None = None
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self._delay_before(attempt))
            try:
                reply = await self._attempt(method, path, params, json_body, binary_ok)
            except _Retryable as failure:
                self._observe(path, "transport" if failure.errcode is None else str(failure.errcode))
                last = failure
                logger.warning(
                    "wechat %s attempt %d/%d failed: %s",
                    path,
                    attempt + 1,
                    attempts,
                    f"errcode={failure.errcode}" if failure.errcode is not None else failure.reason,
                )
            except WeChatError as refused:
                self._observe(path, str(refused.errcode))
                raise
            else:
                self._observe(path, "0")
                return reply
        assert last is not None
        if last.errcode == _BUSY:
            raise SystemBusy(_BUSY, last.errmsg)
        raise WeChatUnavailable(path, attempts, last.reason, reached=last.reached)

    def _observe(self, path: str, outcome: str) -> None:
        if self._hooks.observe is not None:
            self._hooks.observe(path, outcome)

    async def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json_body: Mapping[str, Any] | None,
        binary_ok: bool,
    ) -> Reply:
        data: bytes | None = None
        headers: dict[str, str] = {} if self._hooks.headers is None else dict(self._hooks.headers())
        if json_body is not None:
            # WeChat expects UTF-8 text, not \u escapes, in template data.
            data = json.dumps(json_body, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json; charset=utf-8"
        try:
            async with self._session.request(
                method,
                self._base_url + path,
                params=params,
                data=data,
                headers=headers,
                timeout=self._timeout,
            ) as resp:
                body = await resp.read()
                content_type = resp.content_type
        except aiohttp.ClientConnectorError as exc:
            # No connection was made: the request certainly did not reach the server.
            raise _Retryable(type(exc).__name__, reached=False) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            # Only the class name: aiohttp messages may embed the URL, whose
            # query string can hold the secret or the access token.
            raise _Retryable(type(exc).__name__) from None

        if binary_ok and content_type.startswith("image/"):
            return Reply(payload=None, body=body, content_type=content_type)
        # Content-Type is unreliable (jscode2session says text/plain): parse the body.
        try:
            payload = json.loads(body)
        except ValueError:
            raise _Retryable("non-JSON body") from None
        if not isinstance(payload, dict):
            raise _Retryable("non-object JSON body")
        errcode = payload.get("errcode", 0)
        if not isinstance(errcode, int):
            raise _Retryable("non-integer errcode")
        if errcode == _BUSY:
            raise _Retryable("system busy", errcode, str(payload.get("errmsg", "")))
        if errcode != 0:
            logger.info("wechat %s errcode=%d", path, errcode)
            raise error_for(errcode, str(payload.get("errmsg", "")))
        return Reply(payload=payload, body=body, content_type=content_type)


def require_str(payload: Mapping[str, Any], key: str, path: str) -> str:
    """Return ``payload[key]`` as a non-empty string or fail as a malformed answer."""
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise WeChatUnavailable(path, 1, f"malformed answer: missing {key}")
    return value
