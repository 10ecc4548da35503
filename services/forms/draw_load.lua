-- Put a lucky draw's prize stock into Redis (KEYS[1], the prize stock hash), from the
-- database's count of prizes won, and the tasks each customer spent on draws (KEYS[2],
-- customer id -> draws entered with a completed task). ARGV[1] "1": replace what is
-- there (reconcile, after the draws stream was drained); "0": only when not loaded yet
-- (first draw). ARGV[2] the number of prize pairs, then pairs of prize key, stock left,
-- then pairs of customer id, tasks used. Returns 1 when it wrote.
if ARGV[1] ~= "1" and redis.call("HEXISTS", KEYS[1], "loaded") == 1 then return 0 end
redis.call("DEL", KEYS[1], KEYS[2])
local prizes = tonumber(ARGV[2])
for i = 3, 2 + 2 * prizes, 2 do redis.call("HSET", KEYS[1], ARGV[i], ARGV[i + 1]) end
for i = 3 + 2 * prizes, #ARGV, 2 do redis.call("HSET", KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call("HSET", KEYS[1], "loaded", "1")
return 1
