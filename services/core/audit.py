"""The audit log: who did what to which entity, with before/after snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.audit import AuditEntry
from services.core.principal import Principal


@dataclass(frozen=True)
class Actor:
    """Who acts: an authenticated principal, or the system (scheduler, workers)."""

    principal: Principal | None
    request_id: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(principal=None)

    @property
    def kind(self) -> str:
        return self.principal.kind if self.principal else "system"

    @property
    def id(self) -> int | None:
        return self.principal.id if self.principal else None


def diff(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Keep only the keys that changed, so an entry shows what the action did."""
    if before is None or after is None:
        return before, after
    keys = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    return {k: before.get(k) for k in sorted(keys)}, {k: after.get(k) for k in sorted(keys)}


async def record(
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: int | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Write one entry. Call inside the transaction of the change it describes, so the
    change and its record commit together or not at all."""
    before, after = diff(before, after)
    return await AuditEntry.create(
        actor_kind=actor.kind,
        actor_id=actor.id,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        before=before,
        after=after,
        request_id=actor.request_id,
    )
