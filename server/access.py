"""Who may call a route: each route declares one of these, checked before its handler runs."""

from __future__ import annotations

from dataclasses import dataclass

from services.core import Principal, PrincipalKind


@dataclass(frozen=True)
class Access:
    """A route's access rule. ``kind`` None means public; ``roles`` empty means any role."""

    kind: PrincipalKind | None
    roles: frozenset[str] = frozenset()

    def describe(self) -> str:
        if self.kind is None:
            return "public"
        if not self.roles:
            return f"any {self.kind}"
        return f"{self.kind} with role " + " or ".join(sorted(self.roles))

    def allows(self, principal: Principal) -> bool:
        if principal.kind != self.kind:
            return False
        return not self.roles or principal.role in self.roles


PUBLIC = Access(kind=None)
CUSTOMER = Access(kind="customer")
ANY_STAFF = Access(kind="staff")
ANY_ADMIN = Access(kind="admin")


def admin(*roles: str) -> Access:
    return Access(kind="admin", roles=frozenset(roles))


def staff(*roles: str) -> Access:
    return Access(kind="staff", roles=frozenset(roles))
