-- The feed's audience check for one customer, all targeted campaigns in one call.
-- KEYS[1]: any key under the feed-audience hash tag. Every set and marker this script
--   reads shares that tag, hence that key's slot: on Redis Cluster the call is routed to
--   the node holding all of them. Their names are built here from ARGV rather than sent
--   as hundreds of KEYS: sending and packing ~400 key names was a sixth of a feed
--   request's CPU.
-- ARGV[1]: the customer id
-- ARGV[2]: the key prefix ("{feed-audience}:"), ARGV[3]: the fresh marker's suffix (":fresh")
-- ARGV[4]: the targeted campaigns' ids, comma-separated
-- Returns flat pairs (position in ARGV[4], 1-based; flags) for the campaigns whose flags
-- are not "fresh, not a member": flags = fresh * 4 + set exists * 2 + member (0-7).
local out = {}
local prefix, suffix, customer = ARGV[2], ARGV[3], ARGV[1]
local position = 0
for id in string.gmatch(ARGV[4], "[^,]+") do
  position = position + 1
  local members = prefix .. id
  local flags = redis.call("EXISTS", members .. suffix) * 4 + redis.call("EXISTS", members) * 2
    + redis.call("SISMEMBER", members, customer)
  if flags ~= 6 and flags ~= 4 then
    out[#out + 1] = position
    out[#out + 1] = flags
  end
end
return out
