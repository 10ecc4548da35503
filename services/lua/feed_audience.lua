-- The feed's audience check for one customer, all targeted campaigns in one call.
-- KEYS: pairs (fresh marker, member set) of each targeted campaign, all under one hash tag
-- ARGV[1]: the customer id
-- Returns, per pair, fresh * 4 + set exists * 2 + member (0-7).
local out = {}
for i = 1, #KEYS, 2 do
  out[#out + 1] = redis.call("EXISTS", KEYS[i]) * 4 + redis.call("EXISTS", KEYS[i + 1]) * 2
    + redis.call("SISMEMBER", KEYS[i + 1], ARGV[1])
end
return out
