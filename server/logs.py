"""Logging set-up. The ORM and database drivers log every query with its values at
DEBUG, and those values include WeChat session keys and phone numbers: their loggers are
held at INFO whatever LOG_LEVEL says."""

from __future__ import annotations

import logging
import sys

_QUERY_LOGGERS = ("tortoise", "tortoise.db_client", "aiosqlite", "asyncpg")


def hold_query_loggers() -> None:
    for name in _QUERY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:
            logger.setLevel(logging.INFO)


def configure(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    hold_query_loggers()
