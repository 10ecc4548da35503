-- A hot coupon's grab, taking its face value from the campaign's budget, in the
-- campaign's own slot (services/stock/hot.py). Absent budget: no cap (as grab.lua).
-- KEYS[1] campaign budget left (fen). ARGV[1] face value.
local budget = redis.call("GET", KEYS[1])
if not budget then return "none" end
if tonumber(budget) < tonumber(ARGV[1]) then return "budget" end
redis.call("DECRBY", KEYS[1], ARGV[1])
return "taken"
