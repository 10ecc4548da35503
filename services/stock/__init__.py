"""Coupon stock in Redis: the atomic grab, its Lua scripts, the claims stream to the
database, the coupon cache, reconciliation and the IP limiter on the grab."""
