"""Outbound events: the webhook outbox and alert episodes, written inside the transaction of
the change they describe (so a change and its event commit together or not at all).

It sits just above ``core`` so every domain that commits a change (stock, wallet,
campaigns, journey, activity) can write its event; the delivery worker is
``services.webhooks``, the alert rules ``services.alerts``."""

from services.outbound.alerts import clear_alert, raise_alert
from services.outbound.events import EVENT_TYPES, enqueue, enqueue_many, subscribed_types, voucher_payload

__all__ = [
    "EVENT_TYPES",
    "clear_alert",
    "enqueue",
    "enqueue_many",
    "raise_alert",
    "subscribed_types",
    "voucher_payload",
]
