"""Who is acting: the verified caller that services check rights and audit against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PrincipalKind = Literal["customer", "staff", "admin"]


@dataclass(frozen=True)
class Principal:
    """The verified caller of a request, read from its access token."""

    kind: PrincipalKind
    id: int
    role: str | None = None
    store_id: int | None = None
