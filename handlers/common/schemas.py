"""Schemas shared by several audiences' handlers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from services.core import Body, Out, Query, errors


class PageQuery(Query):
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=20, ge=1, le=100)


class TokenPairOut(Out):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="seconds until the access token expires")


class GoalOut(Out):
    """A campaign's goal, the same for the operator and the customer (one OpenAPI model)."""

    metric: str
    target: int
    window_days: int | None


class PasswordChangeIn(Body):
    old_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256, description="see the password rules in docs/accounts.md")


class OneTimePasswordOut(Out):
    one_time_password: str = Field(
        description="shown this once: the account must change it at its next login (password_change_required)"
    )


def refuse_empty(body: BaseModel) -> None:
    """A PATCH that changes nothing is a 422 (a console bug, not a no-op to audit)."""
    if not body.model_fields_set:
        raise errors.ValidationFailed(
            "the body names no field to change",
            details={"errors": [{"field": "body", "message": "no field to change", "type": "empty"}]},
        )


class PasswordLoginIn(Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class StoreOut(Out):
    id: int
    code: str
    name: str
    city: str
    latitude: float
    longitude: float
    address: str
    state: Literal["open", "closed"] = Field(description="a closed store takes no redemptions")
    is_active: bool
