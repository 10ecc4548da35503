-- Take a seat in a capped campaign, atomically. The set holds the ids of everyone who
-- joined, so the same customer joining twice takes one seat, and the cap is never
-- exceeded at any concurrency. All keys share the campaign's hash tag.
--
-- KEYS[1] participants set, KEYS[2] "loaded" marker (the set was rebuilt from the database)
-- ARGV: customer id, cap
if redis.call("EXISTS", KEYS[2]) == 0 then return {"not_loaded"} end
if redis.call("SISMEMBER", KEYS[1], ARGV[1]) == 1 then
  return {"dup", tostring(redis.call("SCARD", KEYS[1]))}
end
local n = redis.call("SCARD", KEYS[1])
if n >= tonumber(ARGV[2]) then return {"full", tostring(n)} end
redis.call("SADD", KEYS[1], ARGV[1])
return {"ok", tostring(n + 1)}
