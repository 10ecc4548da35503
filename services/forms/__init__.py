"""The social activity forms (group buy, bargain and assist, lucky draw, expanding red
packet) and what they share: the risk gate before a customer's social action."""

from .admin_read import GroupRow, bargain_page, draw_page, group_page
from .bargain import (
    BARGAIN_TYPES,
    BargainKeys,
    Bargains,
    BargainView,
    BargainWorker,
    HelpResult,
    replay_cut,
    worth,
)
from .draw import DRAW_STREAMS, DrawKeys, DrawOutcome, DrawsWorker, DrawTable, LuckyDraws, my_draws, sample_batch
from .group_buy import GroupBuys, GroupView, GroupWorker
from .group_buy import summary as group_summary
from .risk import RiskPolicy, WhenUnranked, risk_rank, screen

__all__ = [
    "BARGAIN_TYPES",
    "DRAW_STREAMS",
    "BargainKeys",
    "BargainView",
    "BargainWorker",
    "Bargains",
    "DrawKeys",
    "DrawOutcome",
    "DrawTable",
    "DrawsWorker",
    "GroupBuys",
    "GroupRow",
    "GroupView",
    "GroupWorker",
    "HelpResult",
    "LuckyDraws",
    "RiskPolicy",
    "WhenUnranked",
    "bargain_page",
    "draw_page",
    "group_page",
    "group_summary",
    "my_draws",
    "replay_cut",
    "risk_rank",
    "sample_batch",
    "screen",
    "worth",
]
