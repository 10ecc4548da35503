-- Taking part in a campaign that is mutually exclusive with others: the customer's
-- exclusivity marker, one hash under the customer's own hash tag (one Redis Cluster slot,
-- whatever slots the campaigns live on). See services/stock/exclusive.py for the protocol.
--
-- Fields: "h:<campaign>" = "1" (the customer takes part: holds a coupon of it, or joined),
--         "l:<campaign>:<token>" = lease expiry in ms (a grab or join of it in flight).
--
-- KEYS[1] the customer's marker hash
-- ARGV[1] "reserve": ARGV[2] campaign, ARGV[3] token, ARGV[4] lease (ms), ARGV[5] key ttl
--         (ms), ARGV[6..] the campaigns exclusive with it. Refused ({"conflict", ids...})
--         when the customer holds, or has a live lease on, any of those; else the lease is
--         taken ({"ok"}). Expired leases are dropped on the way.
-- ARGV[1] "settle": ARGV[2] campaign, ARGV[3] token, ARGV[4] "1" when the customer now
--         takes part (the lease becomes a holding) or "0" (it is just dropped), ARGV[5] key
--         ttl (ms).
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]

if op == "reserve" then
  local all = redis.call("HGETALL", KEYS[1])
  local busy = {}
  for i = 1, #all, 2 do
    local kind, cmp = string.match(all[i], "^(%a):(%d+)")
    if kind == "l" and tonumber(all[i + 1]) <= now then
      redis.call("HDEL", KEYS[1], all[i])
    elseif kind then
      busy[cmp] = true
    end
  end
  local conflicts = {"conflict"}
  for i = 6, #ARGV do
    if busy[ARGV[i]] then conflicts[#conflicts + 1] = ARGV[i] end
  end
  if #conflicts > 1 then return conflicts end
  redis.call("HSET", KEYS[1], "l:" .. ARGV[2] .. ":" .. ARGV[3], tostring(now + tonumber(ARGV[4])))
  redis.call("PEXPIRE", KEYS[1], ARGV[5])
  return {"ok"}
end

if op == "settle" then
  redis.call("HDEL", KEYS[1], "l:" .. ARGV[2] .. ":" .. ARGV[3])
  if ARGV[4] == "1" then redis.call("HSET", KEYS[1], "h:" .. ARGV[2], "1") end
  if redis.call("EXISTS", KEYS[1]) == 1 then redis.call("PEXPIRE", KEYS[1], ARGV[5]) end
  return {"ok"}
end

return redis.error_reply("unknown operation " .. tostring(op))
