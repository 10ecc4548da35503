-- A hot coupon's grab, taking one unit of stock from one bucket (services/stock/hot.py),
-- after the customer's home bucket reserved the per-customer limit (and the campaign's
-- slot the budget, if any). The claim goes to this bucket's claims stream in the same
-- step as the stock, so a unit taken is a claim the worker persists.
-- KEYS[1] bucket coupon hash, KEYS[2] bucket claims stream
-- ARGV: customer id, now (ms), claim id, code, template id, face value, request id ("" outside
--       a request: the claims worker's log line names the request that caused the claim)
local left = tonumber(redis.call("HGET", KEYS[1], "stock") or "0")
if left <= 0 then return {"empty"} end
left = redis.call("HINCRBY", KEYS[1], "stock", -1)
redis.call("XADD", KEYS[2], "*", "claim", ARGV[3], "code", ARGV[4], "tpl", ARGV[5], "uid", ARGV[1],
           "face", ARGV[6], "at", ARGV[2], "rid", ARGV[7] or "")
return {"ok", tostring(left)}
