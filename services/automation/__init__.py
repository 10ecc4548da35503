"""Operators' rules: triggers, conditions and actions (issue a coupon, enrol, notify),
run once per customer and rule."""
