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
    #: Admin and staff tokens: the account's token epoch when the token was issued; a
    #: token older than the account's current epoch is refused (services.accounts.epochs).
    epoch: int = 0
    #: The account's password was reset: this token may only change it (or log out).
    password_change: bool = False
