"""The social activity forms (group buy, bargain and assist, lucky draw, expanding red
packet) and what they share: the risk gate before a customer's social action."""

from .draw import DRAW_STREAMS, DrawKeys, DrawOutcome, DrawsWorker, DrawTable, LuckyDraws, my_draws, sample_batch
from .risk import RiskPolicy, WhenUnranked, risk_rank, screen

__all__ = [
    "DRAW_STREAMS",
    "DrawKeys",
    "DrawOutcome",
    "DrawTable",
    "DrawsWorker",
    "LuckyDraws",
    "RiskPolicy",
    "WhenUnranked",
    "my_draws",
    "risk_rank",
    "sample_batch",
    "screen",
]
