"""The social activity forms (group buy, bargain and assist, lucky draw, expanding red
packet) and what they share: the risk gate before a customer's social action."""

from .risk import RiskPolicy, WhenUnranked, risk_rank, screen

__all__ = ["RiskPolicy", "WhenUnranked", "risk_rank", "screen"]
