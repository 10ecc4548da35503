"""Webhooks out: the endpoints admins configure (``endpoints``) and the elected worker that
delivers the outbox to them, signed, retried and in order per entity (``delivery``). The
outbox itself is written by ``services.outbound``, in the transactions of the changes."""

from services.webhooks import endpoints
from services.webhooks.delivery import DeliveryPolicy, DeliveryReport, WebhookSender, body_of, deliver_forever, sign

__all__ = ["DeliveryPolicy", "DeliveryReport", "WebhookSender", "body_of", "deliver_forever", "endpoints", "sign"]
