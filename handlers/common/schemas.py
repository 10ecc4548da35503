"""Schemas shared by several audiences' handlers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from services.core import Body, Out, Query


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
    is_active: bool
