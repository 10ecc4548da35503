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


# Request shape
class InvalidJson(AppError):
    code = "invalid_json"
    status = 400
    default_message = "the body is not valid UTF-8 JSON"


class ValidationFailed(AppError):
    code = "validation_failed"
    status = 422
    default_message = "the request has invalid fields"


class PayloadTooLarge(AppError):
    code = "payload_too_large"
    status = 413
    default_message = "the body is too large"


class UnsupportedMediaType(AppError):
    code = "unsupported_media_type"
    status = 415
    default_message = "send the body as application/json"


class NotFound(AppError):
    code = "not_found"
    status = 404
    default_message = "no such resource"


class MethodNotAllowed(AppError):
    code = "method_not_allowed"
    status = 405
    default_message = "method not allowed on this path"


class Conflict(AppError):
    code = "conflict"
    status = 409
    default_message = "the resource already exists"


# Authentication and authorization
class Unauthenticated(AppError):
    code = "unauthenticated"
    status = 401
    default_message = "a bearer token is required"


class InvalidToken(AppError):
    code = "invalid_token"
    status = 401
    default_message = "the token is invalid"


class TokenExpired(AppError):
    code = "token_expired"
    status = 401
    default_message = "the token has expired"


class Forbidden(AppError):
    code = "forbidden"
    status = 403
    default_message = "this token may not call this route"


class InvalidRefreshToken(AppError):
    code = "invalid_refresh_token"
    status = 401
    default_message = "the refresh token is invalid or revoked"


class RefreshTokenReused(AppError):
    code = "refresh_token_reused"
    status = 401
    default_message = "the refresh token was already used; the session has been revoked"


class InvalidCredentials(AppError):
    code = "invalid_credentials"
    status = 401
    default_message = "wrong username or password"


class TooManyAttempts(AppError):
    code = "too_many_attempts"
    status = 429
    default_message = "too many failed attempts; try again later"


class PasswordChangeRequired(AppError):
    code = "password_change_required"
    status = 403
    default_message = "this account's password was reset: change it (POST .../me/password) before anything else"


class WrongPassword(AppError):
    code = "wrong_password"
    status = 403
    default_message = "the current password is not right"


class PasswordTooShort(AppError):
    code = "password_too_short"
    status = 422
    default_message = "the new password is too short"


class PasswordContainsUsername(AppError):
    code = "password_contains_username"
    status = 422
    default_message = "the new password must not be or contain the username"


class PasswordTooCommon(AppError):
    code = "password_too_common"
    status = 422
    default_message = "the new password is one of the most common passwords"


class LastSuperadmin(AppError):
    code = "last_superadmin"
    status = 409
    default_message = "the last active superadmin cannot be demoted or disabled"


class StoreClosed(AppError):
    code = "store_closed"
    status = 403
    default_message = "this store is closed: it takes no redemptions"


# WeChat
class InvalidLoginCode(AppError):
    code = "invalid_login_code"
    status = 400
    default_message = "the WeChat login code is invalid or expired"


class LoginCodeUsed(AppError):
    code = "login_code_used"
    status = 400
    default_message = "the WeChat login code was already used"


class WeChatRateLimited(AppError):
    code = "wechat_rate_limited"
    status = 429
    default_message = "WeChat rate-limited this user; retry later"
    # WeChat's 45011 quota is per user and minute ("retry next minute").
    retry_after = 60


class WeChatUserBlocked(AppError):
    code = "wechat_user_blocked"
    status = 403
    default_message = "WeChat blocked this user as high-risk"


class WeChatBusy(AppError):
    code = "wechat_busy"
    status = 503
    default_message = "WeChat is busy; retry later"


class WeChatUnavailableError(AppError):
    code = "wechat_unavailable"
    status = 503
    default_message = "WeChat could not be reached; retry later"


class WeChatError(AppError):
    code = "wechat_error"
    status = 502
    default_message = "WeChat refused the request"


class InvalidPhoneCode(AppError):
    code = "invalid_phone_code"
    status = 400
    default_message = "the phone number code is invalid, expired or used"


class PhoneDataInvalid(AppError):
    code = "phone_data_invalid"
    status = 400
    default_message = "the encrypted phone data could not be verified"


class NoWeChatSession(AppError):
    code = "no_wechat_session"
    status = 409
    default_message = "log in with WeChat again before binding a phone number"


# Campaigns
class InvalidSchedule(AppError):
    code = "invalid_schedule"
    status = 422
    default_message = "the campaign's dates are inconsistent"


class BudgetTooSmall(AppError):
    code = "budget_too_small"
    status = 422
    default_message = "the budget is smaller than one coupon"


class UnknownStore(AppError):
    code = "unknown_store"
    status = 422
    default_message = "a store id does not exist"


class CampaignNotEditable(AppError):
    code = "campaign_not_editable"
    status = 409
    default_message = "the campaign cannot be changed in its current state"


class InvalidTransition(AppError):
    code = "invalid_transition"
    status = 409
    default_message = "the campaign cannot make that transition from its state"


# Starting a campaign now (POST /api/v1/admin/campaigns/{id}/start-now): the refusals
# that keep the approved window's rules.
class CampaignWindowOver(AppError):
    code = "campaign_window_over"
    status = 409
    default_message = "the campaign's window is over (ends_at has passed): it cannot start"


class TeaserRequired(AppError):
    code = "teaser_required"
    status = 409
    default_message = "the campaign was approved with a teaser period that has not begun: it cannot start before it"


class ExclusiveOverlap(AppError):
    code = "exclusive_overlap"
    status = 409
    default_message = "starting now would overlap a campaign this one is exclusive with (details.campaign_ids)"


class ThemeInUse(AppError):
    code = "theme_in_use"
    status = 409
    default_message = "campaigns use this theme (details.campaigns): move them to another theme first"


class CampaignStateChanged(AppError):
    code = "campaign_state_changed"
    status = 409
    default_message = "the campaign changed since you read it; reload and retry"


class SelfApprovalForbidden(AppError):
    code = "self_approval_forbidden"
    status = 403
    default_message = "nobody may approve their own campaign or request"


class ReviewLevelMismatch(AppError):
    code = "review_level_mismatch"
    status = 403
    default_message = "your role cannot decide at this review level"


# Media uploads
class InvalidImage(AppError):
    code = "invalid_image"
    status = 422
    default_message = "the file is a damaged or incomplete image"


class ImageTooLarge(AppError):
    code = "image_too_large"
    status = 422
    default_message = "the image's dimensions are over the limit"


class BudgetUncapped(AppError):
    code = "budget_uncapped"
    status = 409
    default_message = "the campaign has no budget cap to top up"


# Audience targeting
class SegmentInUse(AppError):
    code = "segment_in_use"
    status = 409
    default_message = "the segment is used by another rule"


# Coupons
class GrabNotStarted(AppError):
    code = "grab_not_started"
    status = 409
    default_message = "grabbing has not opened yet (details: server_time, opens_at)"


class CouponLimitReached(AppError):
    code = "coupon_limit_reached"
    status = 409
    default_message = "you already hold as many of this coupon as allowed"


class CouponSoldOut(AppError):
    code = "coupon_sold_out"
    status = 409
    default_message = "this coupon is sold out"


class BudgetExhausted(AppError):
    code = "budget_exhausted"
    status = 409
    default_message = "the campaign's budget is spent"


class CampaignNotActive(AppError):
    code = "campaign_not_active"
    status = 409
    default_message = "the campaign is not running"


class NotEligible(AppError):
    code = "not_eligible"
    status = 403
    default_message = "this campaign is not open to you (details.reason)"


class ExclusiveConflict(AppError):
    code = "exclusive_conflict"
    status = 409
    default_message = "you take part in a campaign exclusive with this one"


class RateLimited(AppError):
    code = "rate_limited"
    status = 429
    default_message = "too many requests; retry after Retry-After seconds"


# Vouchers and redemption at the till
class VoucherNotFound(AppError):
    code = "voucher_not_found"
    status = 404
    default_message = "no such voucher"


class QrExpired(AppError):
    code = "qr_expired"
    status = 409
    default_message = "the code has expired: ask the customer to refresh it"


class QrInvalid(AppError):
    code = "qr_invalid"
    status = 422
    default_message = "the code is not a valid voucher code (format or signature)"


class VoucherAlreadyUsed(AppError):
    code = "voucher_already_used"
    status = 409
    default_message = "the voucher was already used (details: when and where)"


class VoucherAlreadyVoid(AppError):
    code = "voucher_already_void"
    status = 409
    default_message = "this voucher was voided already"


class VoucherExpired(AppError):
    code = "voucher_expired"
    status = 409
    default_message = "the voucher has expired"


class RedeemPeriodOver(AppError):
    code = "redeem_period_over"
    status = 409
    default_message = "the campaign's redemption period is over (details.redeem_until)"


class VoucherNotYetValid(AppError):
    code = "voucher_not_yet_valid"
    status = 409
    default_message = "the voucher cannot be used yet (details.valid_from)"


class StoreNotAllowed(AppError):
    code = "store_not_allowed"
    status = 403
    default_message = "the voucher cannot be used at this store"


class ChannelNotAllowed(AppError):
    code = "channel_not_allowed"
    status = 403
    default_message = "the voucher cannot be used at the till (channel pos)"


class MinSpendNotMet(AppError):
    code = "min_spend_not_met"
    status = 409
    default_message = "the order is below the voucher's minimum spend"


class VoucherNotStackable(AppError):
    code = "voucher_not_stackable"
    status = 409
    default_message = "this order already used a voucher of a campaign exclusive with this one"


class ReversalWindowPassed(AppError):
    code = "reversal_window_passed"
    status = 409
    default_message = "the redemption is too old to be reversed"


class AlreadyReversed(AppError):
    code = "already_reversed"
    status = 409
    default_message = "the redemption was already reversed"


# Customer journey
class CampaignFull(AppError):
    code = "campaign_full"
    status = 409
    default_message = "the campaign has as many participants as it takes"


class UnknownCustomer(AppError):
    code = "unknown_customer"
    status = 422
    default_message = "no customer with that id or openid"


class InvalidApiKey(AppError):
    code = "invalid_api_key"
    status = 401
    default_message = "a known, active X-Api-Key is required"


class InvalidSignature(AppError):
    code = "invalid_signature"
    status = 401
    default_message = "X-Signature is not the HMAC-SHA256 of timestamp and body"


class StaleRequest(AppError):
    code = "stale_request"
    status = 401
    default_message = "X-Timestamp is missing or too far from the server's clock"


class ReplayedRequest(AppError):
    code = "replayed_request"
    status = 409
    default_message = "this signed request was already received"


class EventConflict(AppError):
    code = "event_conflict"
    status = 409
    default_message = "an event with this external_id was received with another body"


class InsufficientPoints(AppError):
    code = "insufficient_points"
    status = 409
    default_message = "your points cannot cover this (details: balance, price)"


class CouponNotExchangeable(AppError):
    code = "coupon_not_exchangeable"
    status = 409
    default_message = "this coupon cannot be exchanged for points"


# Automation rules
class UnknownCoupon(AppError):
    code = "unknown_coupon"
    status = 422
    default_message = "no coupon with that id (details.field)"


class UnknownCampaign(AppError):
    code = "unknown_campaign"
    status = 422
    default_message = "no campaign with that id (details.field)"


# Analytics
class AnalyticsTooBroad(AppError):
    code = "analytics_too_broad"
    status = 422
    default_message = "too many campaigns times days to rank by traffic: narrow the range or sort otherwise"


# Experiments
class ExperimentHoldout(AppError):
    code = "experiment_holdout"
    status = 403
    default_message = "this campaign is held out for you: it is part of an experiment's no-contact group"


class ExperimentLayerFull(AppError):
    code = "experiment_layer_full"
    status = 409
    default_message = "the experiments running in this layer leave too little traffic for this one"


# Data rights
class CustomerErased(AppError):
    code = "customer_erased"
    status = 409
    default_message = "this customer's personal data was already erased"


# Infrastructure
# Social forms
class RiskRefused(AppError):
    code = "risk_refused"
    status = 403
    default_message = "this account may not take part in social activities right now"


class WebhookUrlRefused(AppError):
    code = "webhook_url_refused"
    status = 422
    default_message = (
        "the webhook URL is refused: it must be http(s) and, in production, resolve to public addresses only"
    )


class GroupFull(AppError):
    code = "group_full"
    status = 409
    default_message = "the group has all the members it takes"


class AlreadyInGroup(AppError):
    code = "already_in_group"
    status = 409
    default_message = "you are already in this group"


class GroupExpired(AppError):
    code = "group_expired"
    status = 409
    default_message = "the group's time is up"


class GroupLimitReached(AppError):
    code = "group_limit_reached"
    status = 409
    default_message = "you are in as many open groups of this campaign as it allows"


class NotABargain(AppError):
    code = "not_a_bargain"
    status = 409
    default_message = "this campaign is not a bargain, an assist or a red packet"


class OwnBargain(AppError):
    code = "own_bargain"
    status = 403
    default_message = "you cannot help your own bargain"


class AlreadyHelped(AppError):
    code = "already_helped"
    status = 409
    default_message = "you already helped this bargain"


class HelpLimitReached(AppError):
    code = "help_limit_reached"
    status = 409
    default_message = "you helped as many bargains of this campaign as it allows"


class BargainFinished(AppError):
    code = "bargain_finished"
    status = 409
    default_message = "this bargain already reached its end; it needs no more help"


class BargainExpired(AppError):
    code = "bargain_expired"
    status = 409
    default_message = "this bargain's time is up"


class BargainNotFinished(AppError):
    code = "bargain_not_finished"
    status = 409
    default_message = "this bargain has not reached its end yet"


class NotALuckyDraw(AppError):
    code = "not_a_lucky_draw"
    status = 409
    default_message = "this campaign is not a lucky draw"


class DrawLimitReached(AppError):
    code = "draw_limit_reached"
    status = 409
    default_message = "no draws left today (details: draws_today, max_per_day)"


class TaskRequired(AppError):
    code = "task_required"
    status = 409
    default_message = (
        "this draw needs a completed task not used for a draw yet (details: task_campaign_ids, completed, used)"
    )


class DrawCancelled(AppError):
    code = "draw_cancelled"
    status = 409
    default_message = (
        "the draw under this Idempotency-Key was cancelled and its points given back; draw again with a new key"
    )


class DatabaseUnavailable(AppError):
    code = "database_unavailable"
    status = 503
    default_message = "the database is unavailable"


class RedisUnavailable(AppError):
    code = "redis_unavailable"
    status = 503
    default_message = "Redis is unavailable"


class NotReady(AppError):
    code = "not_ready"
    status = 503
    default_message = "a dependency is unavailable (details.checks names it)"


class ConsoleNotBuilt(AppError):
    code = "console_not_built"
    status = 503
    default_message = (
        "the console is not built: install Node 20 and npm, then run ./scripts/serve (or npm ci && npm run build"
        " in console/)"
    )


class InternalError(AppError):
    code = "internal_error"
    status = 500
    default_message = "internal error"


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
