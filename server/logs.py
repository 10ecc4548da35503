"""Logging set-up. The ORM and database drivers log every query with its values at
DEBUG, and those values include WeChat session keys and phone numbers: their loggers are
held at INFO whatever LOG_LEVEL says.

Two formats (``LOG_FORMAT``): ``text``, one human-readable line per event for a
terminal, and ``json``, one JSON object per line for a log shipper. Both carry the id of
the request the line was logged for (``services.core.request_id_var``), in services,
workers and WeChat calls alike; fields a caller passes with ``extra={...}`` (for
instance ``request_ids`` of a claims batch) become keys of the JSON object.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from services.core import request_id_var

_QUERY_LOGGERS = ("tortoise", "tortoise.db_client", "aiosqlite", "asyncpg")

#: Attributes every LogRecord has: anything else on a record came from ``extra``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def hold_query_loggers() -> None:
    for name in _QUERY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:
            logger.setLevel(logging.INFO)


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id (``-`` outside a request), unless
    the caller gave one (a worker logging for a claim recorded by an earlier request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``,
    ``pid``, ``request_id`` (when there is one), the ``extra`` fields, and ``exc`` (the
    traceback) when an exception is logged."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process or os.getpid(),
        }
        rid = getattr(record, "request_id", None) or request_id_var.get()
        if rid and rid != "-":
            out["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key != "request_id" and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # default=str: an extra field of any type still makes a line, never an error.
        return json.dumps(out, ensure_ascii=False, default=str)


_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure(level: str, fmt: str = "text") -> None:
    """Log to stderr at ``level`` in ``fmt`` (``text`` or ``json``), replacing any
    handler set up before (a child process configures again after its parent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    hold_query_loggers()
