"""Who a campaign targets: audience rules and segments, compiled to SQL and Redis sets,
and the per-customer facts they are evaluated on.

The names below are the package's public face: other packages, handlers and tests
import them from here; its modules import each other directly."""

from services.audience.facts import Params, new_since, recompute_facts, record_activity, utc_today
from services.audience.rule_syntax import MAX_RULE_BYTES, parse_rule, rule_size_ok

__all__ = [
    "MAX_RULE_BYTES",
    "Params",
    "new_since",
    "parse_rule",
    "recompute_facts",
    "record_activity",
    "rule_size_ok",
    "utc_today",
]
