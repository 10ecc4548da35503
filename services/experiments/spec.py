"""What an admin sends to create or re-weight an experiment, and its rules."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from services.core import Body, Id

Metric = Literal["join", "grab", "redemption", "revenue"]
MIN_ARMS, MAX_ARMS = 2, 5


class ArmIn(Body):
    key: str = Field(pattern=r"^[a-z0-9_]{1,32}$", description="stable key (a-z, 0-9, _), unique in the experiment")
    name: str = Field(default="", max_length=100)
    weight: int = Field(ge=1, le=10_000, description="relative share of the experiment's traffic")


class HoldoutIn(Body):
    weight: int = Field(ge=1, le=10_000, description="relative share, against the arms' weights, seeing no contact")


class ExperimentIn(Body):
    campaign_id: Id
    name: str = Field(min_length=1, max_length=100)
    arms: list[ArmIn] = Field(
        min_length=MIN_ARMS, max_length=MAX_ARMS, description="2-5 arms, the first is the control"
    )
    holdout: HoldoutIn | None = Field(default=None, description="an optional no-contact holdout")
    primary_metric: Metric
    guardrails: list[Metric] = Field(default_factory=list, max_length=4)
    traffic_percent: int = Field(
        default=100, ge=1, le=100, description="share of the layer (the campaign's exclusivity group) it takes"
    )
    pre_period_days: int = Field(default=28, ge=0, le=365, description="the CUPED pre-period (0: no CUPED)")
    planned_exposures: int = Field(
        default=10_000, ge=100, le=100_000_000, description="tunes the sequential interval (tightest there)"
    )

    @model_validator(mode="after")
    def distinct(self) -> ExperimentIn:
        keys = [a.key for a in self.arms]
        if len(set(keys)) != len(keys):
            raise ValueError("arms: keys must be distinct")
        if "holdout" in keys:
            raise ValueError("arms: the key holdout is reserved for the holdout")
        if self.primary_metric in self.guardrails or len(set(self.guardrails)) != len(self.guardrails):
            raise ValueError("guardrails: distinct metrics other than the primary one")
        return self


class WeightsIn(Body):
    weights: list[int] = Field(
        min_length=MIN_ARMS, max_length=MAX_ARMS + 1,
        description="one per arm in order, then the holdout's if it has one (each 1-10,000)",
    )  # fmt: skip

    @model_validator(mode="after")
    def positive(self) -> WeightsIn:
        if any(not 1 <= w <= 10_000 for w in self.weights):
            raise ValueError("weights: each between 1 and 10000")
        return self
