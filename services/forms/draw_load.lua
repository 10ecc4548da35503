-- Put a lucky draw's prize stock into Redis (KEYS[1], the prize stock hash), from the
-- database's count of prizes won. ARGV[1] "1": replace what is there (reconcile, after
-- the draws stream was drained); "0": only when not loaded yet (first draw). Then pairs
-- of prize key, stock left. Returns 1 when it wrote.
if ARGV[1] ~= "1" and redis.call("HEXISTS", KEYS[1], "loaded") == 1 then return 0 end
redis.call("DEL", KEYS[1])
for i = 2, #ARGV, 2 do redis.call("HSET", KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call("HSET", KEYS[1], "loaded", "1")
return 1
