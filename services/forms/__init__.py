"""The social activity forms (group buy, bargain and assist, lucky draw, expanding red
packet) and what they share: the risk gate before a customer's social action."""

from .bargain import (
    BARGAIN_TYPES,
    BargainKeys,
    Bargains,
    BargainView,
    BargainWorker,
    HelpResult,
    replay_cut,
)
from .group_buy import GroupBuys, GroupView, GroupWorker
from .group_buy import summary as group_summary
from .risk import RiskPolicy, WhenUnranked, risk_rank, screen

__all__ = [
    "BARGAIN_TYPES",
    "BargainKeys",
    "BargainView",
    "BargainWorker",
    "Bargains",
    "GroupBuys",
    "GroupView",
    "GroupWorker",
    "HelpResult",
    "RiskPolicy",
    "WhenUnranked",
    "group_summary",
    "replay_cut",
    "risk_rank",
    "screen",
]
