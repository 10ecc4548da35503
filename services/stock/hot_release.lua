-- A hot coupon's grab found no stock (or no budget): give the customer's reservation
-- back in the home bucket (never below zero: reconciliation may have rebuilt the count
-- meanwhile) and record the refusal as the idempotency key's first answer.
-- KEYS[1] bucket holders hash, KEYS[2] idempotency record ("" key: none), KEYS[3] the
-- bucket's coupon hash (its "r:<status>" field counts the refusal for the monitor)
-- ARGV: customer id, refusal record ("" none), idempotency ttl (s), refusal status
local held = tonumber(redis.call("HGET", KEYS[1], ARGV[1]) or "0")
if held > 0 then redis.call("HINCRBY", KEYS[1], ARGV[1], -1) end
if ARGV[2] ~= "" then redis.call("SET", KEYS[2], ARGV[2], "EX", ARGV[3]) end
if redis.call("EXISTS", KEYS[3]) == 1 then redis.call("HINCRBY", KEYS[3], "r:" .. ARGV[4], 1) end
return held
