"""Redis key names of coupon stock. All keys of a campaign share one hash tag, so every
grab script touches a single Redis Cluster slot, budget included."""

from __future__ import annotations

from dataclasses import dataclass

#: The set of claim streams the persistence worker reads (one stream per campaign).
STREAMS_REGISTRY = "stock:streams"
#: The worker's consumer group on every claims stream.
CONSUMER_GROUP = "persist"


@dataclass(frozen=True)
class CampaignKeys:
    campaign_id: int

    @property
    def tag(self) -> str:
        return f"{{cmp:{self.campaign_id}}}"

    def coupon(self, template_id: int) -> str:
        return f"{self.tag}:coupon:{template_id}"

    def holders(self, template_id: int) -> str:
        return f"{self.tag}:coupon:{template_id}:holders"

    @property
    def budget(self) -> str:
        return f"{self.tag}:budget"

    @property
    def stream(self) -> str:
        return f"{self.tag}:claims"

    @property
    def audience(self) -> str:
        return f"{self.tag}:audience"

    def idempotency(self, customer_id: int, template_id: int, key: str) -> str:
        # Per coupon: the same key sent for another coupon is another request.
        return f"{self.tag}:idem:{customer_id}:{template_id}:{key}"

    def rate(self, customer_id: int) -> str:
        return f"{self.tag}:rate:{customer_id}"


def recent_claims_key(customer_id: int) -> str:
    """The customer's claims not yet known to be in the database (read-your-writes)."""
    return f"recent-claims:{customer_id}"
