"""Logs as JSON lines (``LOG_FORMAT=json``): the request id on the lines of a request,
of the services it calls and of the claims worker that writes its grab; the caller on
every denied request, at WARNING."""

from __future__ import annotations

import io
import json
import logging

import pytest
from aiohttp.test_utils import TestClient

from server.keys import REDIS
from server.logs import JsonFormatter, RequestIdFilter
from server.settings import Settings, SettingsError
from services.core import request_id_var
from services.stock import ClaimsWorker
from tests.helpers import customer_login
from tests.stock.fixtures import customers, live_coupon


async def test_the_claims_worker_logs_under_the_grabs_request_id(client: TestClient) -> None:
    coupon = await live_coupon(client, stock=5)
    (alice,) = await customers(client, 1)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("wxcampaign")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        resp = await client.post(coupon.grab_path, headers={**alice, "X-Request-ID": "rid-grab-42"})
        assert resp.status == 201
        # The worker runs outside any request: the id comes from the claim's record.
        assert request_id_var.get() == ""
        assert await ClaimsWorker(client.app[REDIS]).drain() == 1
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "wxcampaign.access"]
    assert access and access[0]["request_id"] == "rid-grab-42" and access[0]["status"] == 201
    (claims,) = [line for line in lines if line["logger"] == "wxcampaign.claims"]
    assert claims["request_id"] == "rid-grab-42"
    assert claims["request_ids"] == ["rid-grab-42"]
    assert claims["level"] == "INFO" and isinstance(claims["pid"], int) and claims["ts"].endswith("+00:00")


async def test_a_denied_request_is_a_warning_naming_the_caller(client: TestClient) -> None:
    alice = await customer_login(client, "o_denied")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("wxcampaign.access")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.WARNING)  # a log kept at WARNING still has denied requests
    try:
        headers = {"Authorization": f"Bearer {alice['access_token']}", "X-Request-ID": "rid-denied-1"}
        assert (await client.get("/api/v1/admin/stores", headers=headers)).status == 403
        assert (await client.get("/api/v1/admin/stores", headers={"X-Request-ID": "rid-denied-2"})).status == 401
        assert (await client.get("/healthz")).status == 200  # INFO: not in this log
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["level"], line["status"], line["request_id"]) for line in lines] == [
        ("WARNING", 403, "rid-denied-1"),
        ("WARNING", 401, "rid-denied-2"),
    ]
    assert lines[0]["who"] == f"customer:{alice['user']['id']}"
    assert lines[1]["who"] == "-"  # no verified caller on a 401


def test_log_format_setting() -> None:
    assert Settings.from_env(env={}).log_format == "text"
    assert Settings.from_env(env={"LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(SettingsError, match="LOG_FORMAT"):
        Settings.from_env(env={"LOG_FORMAT": "xml"})


def test_a_json_line_carries_extra_fields_and_the_traceback() -> None:
    record = logging.LogRecord("wxcampaign.x", logging.ERROR, __file__, 1, "failed %s", ("here",), None)
    record.stream = "{c:1}:claims"
    token = request_id_var.set("rid-x")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "failed here" and line["request_id"] == "rid-x" and line["stream"] == "{c:1}:claims"
    assert "ValueError: boom" in line["exc"]
