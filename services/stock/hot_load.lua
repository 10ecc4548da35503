-- Load one bucket of a hot coupon (services/stock/hot.py), once: a bucket already loaded
-- keeps its counters (grabs may be in flight) and only takes the new schedule, limit
-- and state. Bucket 0 is the coupon's hash in the campaign's slot (what readers of a
-- coupon find: its "buckets" field says to add the other buckets' stock).
-- KEYS[1] bucket coupon hash, KEYS[2] bucket holders hash, KEYS[3] campaign budget
-- (bucket 0 only)
-- ARGV: stock, limit, opens, closes, face, state, budgeted ("1"/"0"), buckets,
--       budget ("" = no cap), then customer id / count pairs of this bucket's customers
if redis.call("EXISTS", KEYS[1]) == 1 then
  redis.call("HSET", KEYS[1], "limit", ARGV[2], "opens", ARGV[3], "closes", ARGV[4], "state", ARGV[6])
  return 0
end
redis.call("HSET", KEYS[1], "stock", ARGV[1], "limit", ARGV[2], "opens", ARGV[3], "closes", ARGV[4],
           "face", ARGV[5], "state", ARGV[6], "targeted", "0", "budgeted", ARGV[7], "buckets", ARGV[8])
for i = 10, #ARGV, 2 do
  redis.call("HSET", KEYS[2], ARGV[i], ARGV[i + 1])
end
if KEYS[3] and ARGV[9] ~= "" then redis.call("SET", KEYS[3], ARGV[9], "NX") end
return 1
