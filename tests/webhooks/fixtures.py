"""A webhook receiver (a local aiohttp app on a loopback port that verifies signatures the
way docs/webhooks.md tells receivers to), and a sender driven pass by pass by the tests."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from server.keys import HTTP_SESSION, REDIS, SETTINGS
from services.webhooks import DeliveryPolicy, DeliveryReport, WebhookSender
from tests.helpers import bearer, logged_in_admin
from tests.infra import free_port

HOOKS = "/api/v1/admin/webhooks"
ALL_EVENTS = [
    "voucher.issued", "voucher.redeemed", "voucher.reversed", "campaign.state_changed",
    "participation.completed", "points.changed", "alert.raised",
]  # fmt: skip


def verify(secret: str, headers: Any, body: bytes) -> bool:
    """The receiver's check, as documented in docs/webhooks.md."""
    timestamp = headers["X-Webhook-Timestamp"]
    expected = "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-Webhook-Signature"])


@dataclass
class Receiver:
    """Records each request it accepts; ``status`` is what it answers (503: "down" while up);
    ``stop()`` takes it off the network entirely and ``start()`` brings it back on the same port."""

    secret: str = ""
    port: int = field(default_factory=free_port)
    status: int = 200
    seen: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    refused: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.status >= 300:
            self.refused += 1
            return web.Response(status=self.status, text="down for maintenance")
        if not verify(self.secret, request.headers, body):
            self.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        event = json.loads(body)
        assert event["id"] == request.headers["X-Webhook-Id"] and event["type"] == request.headers["X-Webhook-Event"]
        self.seen.append(event)
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def ids(self) -> list[str]:
        return [e["id"] for e in self.seen]

    def of_entity(self, entity_key: str, value: Any) -> list[str]:
        return [e["type"] for e in self.seen if e["data"].get(entity_key) == value]


async def superadmin(client: TestClient) -> dict[str, str]:
    return bearer((await logged_in_admin(client, "superadmin", "hooks-admin"))["access_token"])


async def subscribe(
    client: TestClient, receiver: Receiver, auth: dict[str, str], events: list[str] | None = None
) -> dict[str, Any]:
    """A superadmin creates an endpoint for the receiver over HTTP; the receiver keeps its secret."""
    resp = await client.post(HOOKS, json={"url": receiver.url, "events": events or ALL_EVENTS}, headers=auth)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    receiver.secret = body["secret"]
    return body


def sender(client: TestClient, **policy: Any) -> WebhookSender:
    """The app's sender with immediate retries (no jitter wait) unless told otherwise."""
    settings = client.server.app[SETTINGS]
    values: dict[str, Any] = {"retry_base_seconds": 0.0, "allow_private": True, "timeout_seconds": 5.0, **policy}
    return WebhookSender(
        client.server.app[REDIS], client.server.app[HTTP_SESSION], settings.secret_key, DeliveryPolicy(**values)
    )


async def passes(hooks: WebhookSender, count: int) -> list[DeliveryReport]:
    return [await hooks.run_once() for _ in range(count)]
