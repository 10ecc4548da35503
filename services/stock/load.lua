-- Load a coupon's stock, once. A coupon already loaded keeps its counters (they are live:
-- grabs may be in flight) and only takes the new schedule, limit and state.
-- KEYS[1] coupon hash, KEYS[2] holders hash, KEYS[3] budget
-- ARGV: stock, limit, opens, closes, face, state, targeted, budget ("" = no cap),
--       then customer id / count pairs of vouchers already held
if redis.call("EXISTS", KEYS[1]) == 1 then
  redis.call("HSET", KEYS[1], "limit", ARGV[2], "opens", ARGV[3], "closes", ARGV[4], "state", ARGV[6],
             "targeted", ARGV[7])
  return 0
end
redis.call("HSET", KEYS[1], "stock", ARGV[1], "limit", ARGV[2], "opens", ARGV[3], "closes", ARGV[4],
           "face", ARGV[5], "state", ARGV[6], "targeted", ARGV[7])
for i = 9, #ARGV, 2 do
  redis.call("HSET", KEYS[2], ARGV[i], ARGV[i + 1])
end
if ARGV[8] ~= "" then redis.call("SET", KEYS[3], ARGV[8], "NX") end
return 1
