"""What every domain shares: errors, pagination, SQL dialects, the audit log, Redis
script calls, shared Redis key names, schema bases and the acting ``Principal``.

The names below are the package's public face: other packages, handlers and tests
import them from here; its modules import each other directly."""

from services.core.audit import Actor
from services.core.codes import random_token
from services.core.context import request_id_var
from services.core.errors import AppError, catalogue
from services.core.face import FACE_FIELDS, CouponFace, face_of
from services.core.i18n import localized, pick_language
from services.core.keys import SeatKeys, budget_key, campaign_tag
from services.core.media_urls import media_url, media_url_for, urls_of
from services.core.orm import column
from services.core.pagination import newest_first
from services.core.principal import Principal, PrincipalKind
from services.core.redis import AnyRedis, call_script, text
from services.core.schema import (
    LATEST_DAY,
    Body,
    Day,
    DisplayName,
    ErrorBody,
    ErrorOut,
    Id,
    Out,
    Query,
    find_nul,
    part_of,
)
from services.core.shielded import run_to_end
from services.core.sql import Dialect, Params, dialect_of, json_array_has, utc_day, utc_last_day
from services.core.tokens import issue_access_token, verify_access_token

__all__ = [
    "FACE_FIELDS",
    "LATEST_DAY",
    "Actor",
    "AnyRedis",
    "AppError",
    "Body",
    "CouponFace",
    "Day",
    "Dialect",
    "DisplayName",
    "ErrorBody",
    "ErrorOut",
    "Id",
    "Out",
    "Params",
    "Principal",
    "PrincipalKind",
    "Query",
    "SeatKeys",
    "budget_key",
    "call_script",
    "campaign_tag",
    "catalogue",
    "column",
    "dialect_of",
    "face_of",
    "find_nul",
    "issue_access_token",
    "json_array_has",
    "localized",
    "media_url",
    "media_url_for",
    "newest_first",
    "part_of",
    "pick_language",
    "random_token",
    "request_id_var",
    "run_to_end",
    "text",
    "urls_of",
    "utc_day",
    "utc_last_day",
    "verify_access_token",
]
