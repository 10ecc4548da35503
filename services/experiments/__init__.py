"""Experiments on campaigns: A/B tests with 2-5 arms and an optional no-contact holdout,
deterministic sticky assignment (published vectors: docs/experiments-vectors.json), the
exposure log, and results with frequentist, Bayesian, CUPED and always-valid sequential
statistics (docs/experiments.md).

Layer: above ``campaigns`` (its exclusivity graph names an experiment's layer) and below
``feed``, so every domain above may ask which arm a customer sees; today the customer
handlers (feed, campaign page, join) call it. ``assignment`` imports nothing of ours.
"""

from services.experiments import admin, assignment, stats
from services.experiments.exposure import Assigned, Experiments, Running, arms_key
from services.experiments.results import ExperimentResultsOut, results
from services.experiments.spec import ArmIn, ExperimentIn, HoldoutIn, Metric, WeightsIn

__all__ = [
    "ArmIn",
    "Assigned",
    "ExperimentIn",
    "ExperimentResultsOut",
    "Experiments",
    "HoldoutIn",
    "Metric",
    "Running",
    "WeightsIn",
    "admin",
    "arms_key",
    "assignment",
    "results",
    "stats",
]
