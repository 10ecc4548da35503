"""The domain policies, built from settings here and nowhere else.

Services take their knobs as small frozen policy objects (they never import server/);
each function below is the one place a policy is filled in from :class:`Settings`. The
policies' own defaults are the settings' defaults (server/settings.py reads them), so a
value such as a feed weight is written once, in its policy.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from server.settings import Settings
from services.alerts import AlertPolicy
from services.campaigns import Policy as ReviewPolicy
from services.feed import FeedPolicy
from services.forms import RiskPolicy
from services.journey import JourneyPolicy
from services.notify import SenderPolicy
from services.stock import GrabPolicy
from services.webhooks import DeliveryPolicy


def feed_policy(settings: Settings) -> FeedPolicy:
    """The discovery feed's weights and caches: FeedPolicy's field ``x`` is the setting
    ``feed_weight_x`` (a ranking weight) or else ``feed_x`` (FEED_WEIGHT_X, FEED_X)."""
    values = {}
    for f in fields(FeedPolicy):
        weight = f"feed_weight_{f.name}"
        values[f.name] = getattr(settings, weight if hasattr(settings, weight) else f"feed_{f.name}")
    return FeedPolicy(**values)


def journey_policy(settings: Settings) -> JourneyPolicy:
    return JourneyPolicy(
        points_per_yuan=settings.points_per_yuan,
        integration_max_skew=settings.integration_max_skew,
        attribution_window_days=settings.attribution_window_days,
    )


def grab_policy(settings: Settings) -> GrabPolicy:
    """The per-customer grab throttle (inside the grab script, across processes)."""
    return GrabPolicy(max_per_window=settings.grab_user_max, window_ms=settings.grab_user_window_ms)


def review_policy(settings: Settings) -> ReviewPolicy:
    """How campaigns are reviewed (services.campaigns)."""
    return ReviewPolicy(review_levels=settings.review_levels, copy_edits_skip_review=settings.copy_edits_skip_review)


def sender_policy(settings: Settings) -> SenderPolicy:
    """The subscribe-message sender's pace and retries."""
    return SenderPolicy(
        rate_limit=settings.notify_rate_limit,
        rate_window_seconds=settings.notify_rate_window_seconds,
        max_attempts=settings.notify_max_attempts,
        retry_seconds=settings.notify_retry_seconds,
        utc_offset_minutes=settings.notify_utc_offset_minutes,
        batch=settings.notify_batch,
        # Longer than one send can take: a token fetch, the post, a refresh and the post again.
        stale_after_seconds=max(120.0, 10 * settings.wechat_timeout * (settings.wechat_max_retries + 1)),
    )


def risk_policy(settings: Settings) -> RiskPolicy:
    """Who the social forms refuse by WeChat's risk rank (services.forms)."""
    return RiskPolicy(
        refuse_at=settings.risk_refuse_rank,
        cache_seconds=settings.risk_cache_seconds,
        when_unranked=settings.risk_when_unranked,
    )


@dataclass(frozen=True)
class Policies:
    """The policies a request handler needs, built once per application."""

    grab: GrabPolicy
    review: ReviewPolicy
    risk: RiskPolicy

    @classmethod
    def of(cls, settings: Settings) -> Policies:
        return cls(grab=grab_policy(settings), review=review_policy(settings), risk=risk_policy(settings))


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    """The webhook deliveries' timeout, retries and pause; private targets only outside production (SSRF)."""
    return DeliveryPolicy(
        timeout_seconds=settings.webhook_timeout,
        retry_base_seconds=settings.webhook_retry_seconds,
        retry_max_seconds=settings.webhook_retry_max_seconds,
        pause_after=settings.webhook_pause_after,
        batch=settings.webhook_batch,
        # Longer than one post can take.
        stale_after_seconds=max(120.0, 4 * settings.webhook_timeout),
        allow_private=settings.app_env != "production",
    )


def alert_policy(settings: Settings) -> AlertPolicy:
    """The alert rules' thresholds."""
    return AlertPolicy(
        interval_seconds=int(settings.alert_interval),
        budget_horizon_hours=settings.alert_budget_horizon_hours,
        days=settings.alert_redemption_days,
        spike_factor=settings.alert_redemption_spike_factor,
        drop_factor=settings.alert_redemption_drop_factor,
        min_baseline=settings.alert_redemption_min_baseline,
        notify_failures=settings.alert_notify_failures,
        claims_backlog_seconds=settings.alert_claims_backlog_seconds,
    )
