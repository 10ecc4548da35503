"""The application's error catalogue: every error a client can see, with its stable code.

Services raise these; the error middleware turns them into
``{"error": {"code", "message", "details"}}`` with the status given here. Codes are a
public contract: add new ones, never rename.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ValidationError


class AppError(Exception):
    """Base class. Subclasses fix ``code`` and ``status``; the message may vary per raise."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "internal error"
    #: Seconds a client should wait before retrying (the ``Retry-After`` header) when a
    #: raise does not say (``details["retry_after"]``); ``None`` where no wait applies.
    retry_after: ClassVar[int | None] = None

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)


def _define(code: str, status: int, default_message: str, retry_after: int | None = None) -> type[AppError]:
    name = "".join(part.capitalize() for part in code.split("_")) + "Error"
    attrs = {"code": code, "status": status, "default_message": default_message, "retry_after": retry_after}
    return type(name, (AppError,), attrs)


# Request shape
InvalidJson = _define("invalid_json", 400, "the body is not valid UTF-8 JSON")
ValidationFailed = _define("validation_failed", 422, "the request has invalid fields")
PayloadTooLarge = _define("payload_too_large", 413, "the body is too large")
UnsupportedMediaType = _define("unsupported_media_type", 415, "send the body as application/json")
NotFound = _define("not_found", 404, "no such resource")
MethodNotAllowed = _define("method_not_allowed", 405, "method not allowed on this path")
Conflict = _define("conflict", 409, "the resource already exists")
# Authentication and authorization
Unauthenticated = _define("unauthenticated", 401, "a bearer token is required")
InvalidToken = _define("invalid_token", 401, "the token is invalid")
TokenExpired = _define("token_expired", 401, "the token has expired")
Forbidden = _define("forbidden", 403, "this token may not call this route")
InvalidRefreshToken = _define("invalid_refresh_token", 401, "the refresh token is invalid or revoked")
RefreshTokenReused = _define(
    "refresh_token_reused", 401, "the refresh token was already used; the session has been revoked"
)
InvalidCredentials = _define("invalid_credentials", 401, "wrong username or password")
TooManyAttempts = _define("too_many_attempts", 429, "too many failed attempts; try again later")
# WeChat
InvalidLoginCode = _define("invalid_login_code", 400, "the WeChat login code is invalid or expired")
LoginCodeUsed = _define("login_code_used", 400, "the WeChat login code was already used")
# WeChat's 45011 quota is per user and minute ("retry next minute").
WeChatRateLimited = _define(
    "wechat_rate_limited", 429, "WeChat rate-limited this user; retry later", retry_after=60
)
WeChatUserBlocked = _define("wechat_user_blocked", 403, "WeChat blocked this user as high-risk")
WeChatBusy = _define("wechat_busy", 503, "WeChat is busy; retry later")
WeChatUnavailableError = _define("wechat_unavailable", 503, "WeChat could not be reached; retry later")
WeChatError = _define("wechat_error", 502, "WeChat refused the request")
InvalidPhoneCode = _define("invalid_phone_code", 400, "the phone number code is invalid, expired or used")
PhoneDataInvalid = _define("phone_data_invalid", 400, "the encrypted phone data could not be verified")
NoWeChatSession = _define("no_wechat_session", 409, "log in with WeChat again before binding a phone number")
# Campaigns
InvalidSchedule = _define("invalid_schedule", 422, "the campaign's dates are inconsistent")
BudgetTooSmall = _define("budget_too_small", 422, "the budget is smaller than one coupon")
UnknownStore = _define("unknown_store", 422, "a store id does not exist")
CampaignNotEditable = _define("campaign_not_editable", 409, "the campaign cannot be changed in its current state")
InvalidTransition = _define("invalid_transition", 409, "the campaign cannot make that transition from its state")
CampaignStateChanged = _define(
    "campaign_state_changed", 409, "the campaign changed since you read it; reload and retry"
)
SelfApprovalForbidden = _define("self_approval_forbidden", 403, "nobody may approve their own campaign or request")
ReviewLevelMismatch = _define("review_level_mismatch", 403, "your role cannot decide at this review level")
# Media uploads
InvalidImage = _define("invalid_image", 422, "the file is a damaged or incomplete image")
ImageTooLarge = _define("image_too_large", 422, "the image's dimensions are over the limit")
BudgetUncapped = _define("budget_uncapped", 409, "the campaign has no budget cap to top up")
# Audience targeting
SegmentInUse = _define("segment_in_use", 409, "the segment is used by another rule")
# Coupons
GrabNotStarted = _define("grab_not_started", 409, "grabbing has not opened yet (details: server_time, opens_at)")
CouponLimitReached = _define("coupon_limit_reached", 409, "you already hold as many of this coupon as allowed")
CouponSoldOut = _define("coupon_sold_out", 409, "this coupon is sold out")
BudgetExhausted = _define("budget_exhausted", 409, "the campaign's budget is spent")
CampaignNotActive = _define("campaign_not_active", 409, "the campaign is not running")
NotEligible = _define("not_eligible", 403, "this campaign is not open to you (details.reason)")
ExclusiveConflict = _define("exclusive_conflict", 409, "you take part in a campaign exclusive with this one")
RateLimited = _define("rate_limited", 429, "too many requests; retry after Retry-After seconds")
# Vouchers and redemption at the till
VoucherNotFound = _define("voucher_not_found", 404, "no such voucher")
QrExpired = _define("qr_expired", 409, "the code has expired: ask the customer to refresh it")
QrInvalid = _define("qr_invalid", 422, "the code is not a valid voucher code (format or signature)")
VoucherAlreadyUsed = _define("voucher_already_used", 409, "the voucher was already used (details: when and where)")
VoucherExpired = _define("voucher_expired", 409, "the voucher has expired")
VoucherNotYetValid = _define("voucher_not_yet_valid", 409, "the voucher cannot be used yet (details.valid_from)")
StoreNotAllowed = _define("store_not_allowed", 403, "the voucher cannot be used at this store")
ChannelNotAllowed = _define("channel_not_allowed", 403, "the voucher cannot be used at the till (channel pos)")
MinSpendNotMet = _define("min_spend_not_met", 409, "the order is below the voucher's minimum spend")
ReversalWindowPassed = _define("reversal_window_passed", 409, "the redemption is too old to be reversed")
AlreadyReversed = _define("already_reversed", 409, "the redemption was already reversed")
# Customer journey
CampaignFull = _define("campaign_full", 409, "the campaign has as many participants as it takes")
UnknownCustomer = _define("unknown_customer", 422, "no customer with that id or openid")
InvalidApiKey = _define("invalid_api_key", 401, "a known, active X-Api-Key is required")
InvalidSignature = _define("invalid_signature", 401, "X-Signature is not the HMAC-SHA256 of timestamp and body")
StaleRequest = _define("stale_request", 401, "X-Timestamp is missing or too far from the server's clock")
ReplayedRequest = _define("replayed_request", 409, "this signed request was already received")
EventConflict = _define("event_conflict", 409, "an event with this external_id was received with another body")
InsufficientPoints = _define("insufficient_points", 409, "your points cannot cover this (details: balance, price)")
CouponNotExchangeable = _define("coupon_not_exchangeable", 409, "this coupon cannot be exchanged for points")
# Automation rules
UnknownCoupon = _define("unknown_coupon", 422, "no coupon with that id (details.field)")
UnknownCampaign = _define("unknown_campaign", 422, "no campaign with that id (details.field)")

# Analytics
AnalyticsTooBroad = _define(
    "analytics_too_broad", 422, "too many campaigns times days to rank by traffic: narrow the range or sort otherwise"
)
# Infrastructure
DatabaseUnavailable = _define("database_unavailable", 503, "the database is unavailable")
RedisUnavailable = _define("redis_unavailable", 503, "Redis is unavailable")
NotReady = _define("not_ready", 503, "a dependency is unavailable (details.checks names it)")
InternalError = _define("internal_error", 500, "internal error")


def catalogue() -> list[type[AppError]]:
    """All defined errors, for the README and the OpenAPI document."""
    return [
        cls for cls in globals().values() if isinstance(cls, type) and issubclass(cls, AppError) and cls is not AppError
    ]


def from_validation(exc: ValidationError, where: str) -> AppError:
    """A pydantic failure as our 422, naming every bad field (``details.errors``)."""
    fields = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(part) for part in err["loc"]) or f"({where})"
        fields.append({"field": loc, "message": err["msg"], "type": err["type"]})
    first = fields[0]
    return ValidationFailed(f"{where} {first['field']}: {first['message']}", details={"errors": fields})
