-- Empty one extra bucket of a hot coupon into the caller, who adds it to bucket 0
-- (services/stock/hot.py). Returns how many units were taken out.
-- KEYS[1] bucket coupon hash
local left = tonumber(redis.call("HGET", KEYS[1], "stock") or "0")
if left <= 0 then return 0 end
redis.call("HSET", KEYS[1], "stock", 0)
return left
