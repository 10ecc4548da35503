"""Operators' rules: triggers, conditions and actions (issue a coupon, enrol, notify),
run once per customer and rule.

The names below are the package's public face: other packages, handlers and tests
import them from here; its modules import each other directly."""

from services.automation.engine import execute_due_forever
from services.automation.spec import RuleIn, RulePatchIn

__all__ = [
    "RuleIn",
    "RulePatchIn",
    "execute_due_forever",
]
