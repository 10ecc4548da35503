"""Redis key names of coupon stock. All keys of a campaign share one hash tag, so every
grab script touches a single Redis Cluster slot, budget included."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.core import budget_key, campaign_tag

#: The set of claim streams the persistence worker reads (one stream per campaign).
STREAMS_REGISTRY = "stock:streams"
#: The worker's consumer group on every claims stream.
CONSUMER_GROUP = "persist"


@dataclass(frozen=True)
class CampaignKeys:
    """A campaign's keys in its own slot (``bucket`` 0), or in one of the extra slots of
    its hot coupons (``bucket`` 1..15: tag ``{cmp:ID:bN}``, services/stock/hot.py). The
    budget is always the campaign's own."""

    campaign_id: int
    bucket: int = 0

    @property
    def tag(self) -> str:
        if self.bucket:
            return f"{{cmp:{self.campaign_id}:b{self.bucket}}}"
        return campaign_tag(self.campaign_id)

    def coupon(self, template_id: int) -> str:
        return f"{self.tag}:coupon:{template_id}"

    def holders(self, template_id: int) -> str:
        return f"{self.tag}:coupon:{template_id}:holders"

    @property
    def budget(self) -> str:
        return budget_key(self.campaign_id)

    @property
    def arm_budget(self) -> str:
        """The experiment arms' shares of the budget (services/stock/arms.py): a hash,
        absent when no experiment splits the budget. Always the campaign's own slot."""
        return f"{budget_key(self.campaign_id)}:arms"

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

    def returned(self, voucher_id: int) -> str:
        """Marker of a voided voucher whose stock and budget were given back (once)."""
        return f"{self.tag}:returned:{voucher_id}"

    def manual(self, admin_id: int, key: str) -> str:
        """The record of a manual grant by an admin (its Idempotency-Key, or a fresh one)."""
        return f"{self.tag}:manual:{admin_id}:{key}"

    def recent(self, customer_id: int) -> str:
        """The customer's latest claims in this campaign, newest first, written by the
        grab and grant scripts in the same step as the claim (read-your-writes); entries
        as ``parse_recent`` reads them."""
        return f"{self.tag}:recent:{customer_id}"


#: How long a customer's recent claims are kept, and how many per campaign: long enough
#: for the worker to persist them (seconds, normally), bounded so a list stays small.
RECENT_CLAIMS_TTL_MS = 3600 * 1000
RECENT_CLAIMS_KEPT = 50


def campaign_of_stream(stream: str) -> int:
    """The campaign id in a claims stream's name (``{cmp:ID}:claims``, or a hot coupon
    bucket's ``{cmp:ID:bN}:claims``)."""
    return int(stream[len("{cmp:") : stream.index("}")].split(":")[0])


def bucket_of_stream(stream: str) -> int:
    """The bucket of a claims stream: 0 for the campaign's own, N for ``{cmp:ID:bN}``."""
    inside = stream[len("{cmp:") : stream.index("}")].split(":")
    return int(inside[1][1:]) if len(inside) > 1 else 0


def parse_recent(campaign_id: int, entry: str) -> dict[str, Any]:
    """A recent-claims entry as the scripts write it: ``claim:code:at_ms:template``, then
    ``:face`` when the voucher has its own face value (grant.lua: a bargain's cut voucher,
    a red packet's voucher), in fen; ``fv`` is that value, None when the coupon's."""
    claim, code, at, template, *own = entry.split(":")
    fv = int(own[0]) if own else None
    return {"claim": claim, "code": code, "tpl": int(template), "cmp": campaign_id, "at": int(at), "fv": fv}
