"""The social activity forms (group buy, bargain and assist, lucky draw, expanding red
packet) and what they share: the risk gate before a customer's social action."""

from .group_buy import GroupBuys, GroupView, GroupWorker
from .group_buy import summary as group_summary
from .risk import RiskPolicy, WhenUnranked, risk_rank, screen

__all__ = [
    "GroupBuys",
    "GroupView",
    "GroupWorker",
    "RiskPolicy",
    "WhenUnranked",
    "group_summary",
    "risk_rank",
    "screen",
]
