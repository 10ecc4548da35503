"""Redis key names that more than one domain reads: a campaign's hash tag and the seat
set of a capped campaign. The journey takes seats (services/journey/join.lua); the feed
reads how many are taken, to show a full campaign as not joinable like its page does,
without importing the journey; and the budget left of a campaign with a budget cap,
which the stock spends and the journey and the feed read to refuse joining a campaign
whose budget is spent."""

from __future__ import annotations

from dataclasses import dataclass


def campaign_tag(campaign_id: int) -> str:
    """The hash tag every Redis key of a campaign carries (one Redis Cluster slot)."""
    return f"{{cmp:{campaign_id}}}"


def budget_key(campaign_id: int) -> str:
    """The fen left of a capped campaign's budget (absent: no cap, or not loaded into
    Redis yet; services/stock loads it from the database)."""
    return f"{campaign_tag(campaign_id)}:budget"


@dataclass(frozen=True)
class SeatKeys:
    """The seats of a capped campaign: the set of participant ids, the marker saying it
    was rebuilt from the database (without it the set is not to be trusted), and the
    lock of that rebuild."""

    campaign_id: int

    @property
    def members(self) -> str:
        return f"{campaign_tag(self.campaign_id)}:participants"

    @property
    def loaded(self) -> str:
        return f"{campaign_tag(self.campaign_id)}:participants:loaded"

    @property
    def lock(self) -> str:
        return f"{campaign_tag(self.campaign_id)}:participants:loading"
