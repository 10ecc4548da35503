-- An experiment's shares of one counter: a coupon's stock or the campaign's budget. The
-- keys share the campaign's hash tag (one Redis Cluster slot, as the grab script's).
--
-- KEYS[1] the counter: a coupon hash (field "stock") or the campaign budget (a string)
-- KEYS[2] the hash of the shares: the coupon hash itself, or the arms' budget hash
-- ARGV[1] op: "split", "restore" or "merge"; ARGV[2] "hash" (KEYS[1] is a coupon hash)
--         or "string" (the budget); ARGV[3] experiment id
-- split:   ARGV[4] numerator, ARGV[5] denominator (the experiment's part of what no
--          experiment holds yet), then arm index / weight pairs. Returns arm / share pairs.
-- restore: arm index / units left pairs (reconciliation: quota less what was issued).
--          The rest becomes what no split experiment holds. Returns the rest.
-- merge:   the experiment's shares go back to the rest (or, when it was the last
--          experiment, the split ends). Returns the units moved.
-- split and restore do nothing when the experiment's marker ("x<id>") is already there
-- (loaded twice), or when the counter is not in Redis (nothing to split): they return {}.
local op, eid = ARGV[1], ARGV[3]
local marker = "x" .. eid
local prefix = marker .. ":"

local function counter()
  local v
  if ARGV[2] == "hash" then v = redis.call("HGET", KEYS[1], "stock") else v = redis.call("GET", KEYS[1]) end
  if not v then return nil end
  return math.max(0, tonumber(v))
end

if op == "merge" then
  if redis.call("HEXISTS", KEYS[2], marker) == 0 then return 0 end
  local all = redis.call("HGETALL", KEYS[2])
  local moved = 0
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, #prefix) == prefix then
      moved = moved + math.max(0, tonumber(all[i + 1]))
      redis.call("HDEL", KEYS[2], all[i])
    end
  end
  redis.call("HDEL", KEYS[2], marker)
  if redis.call("HINCRBY", KEYS[2], "split", -1) <= 0 then
    -- The last experiment: the counter alone decides again.
    if ARGV[2] == "hash" then redis.call("HDEL", KEYS[2], "split", "x:rest") else redis.call("DEL", KEYS[2]) end
  else
    redis.call("HINCRBY", KEYS[2], "x:rest", moved)
  end
  return moved
end

if redis.call("HEXISTS", KEYS[2], marker) == 1 then return {} end
local total = counter()
if total == nil then return {} end

if op == "split" then
  local rest = tonumber(redis.call("HGET", KEYS[2], "x:rest") or total)
  rest = math.max(0, math.min(rest, total))
  local part = math.floor(rest * tonumber(ARGV[4]) / tonumber(ARGV[5]))
  local arms, weights, sum = {}, {}, 0
  for i = 6, #ARGV, 2 do
    arms[#arms + 1] = ARGV[i]
    weights[#weights + 1] = tonumber(ARGV[i + 1])
    sum = sum + tonumber(ARGV[i + 1])
  end
  -- Largest remainders, ties to the earlier arm (as the assignment splits its buckets).
  local shares, given, order = {}, 0, {}
  for k = 1, #arms do
    shares[k] = math.floor(part * weights[k] / sum)
    given = given + shares[k]
    order[k] = k
  end
  table.sort(order, function(a, b)
    local ra = part * weights[a] - shares[a] * sum
    local rb = part * weights[b] - shares[b] * sum
    if ra ~= rb then return ra > rb end
    return a < b
  end)
  for k = 1, part - given do shares[order[k]] = shares[order[k]] + 1 end
  local out = {}
  for k = 1, #arms do
    redis.call("HSET", KEYS[2], prefix .. arms[k], shares[k])
    out[#out + 1] = arms[k]
    out[#out + 1] = tostring(shares[k])
  end
  redis.call("HSET", KEYS[2], "x:rest", rest - part, marker, "1")
  redis.call("HINCRBY", KEYS[2], "split", 1)
  return out
end

-- restore
for i = 4, #ARGV, 2 do
  redis.call("HSET", KEYS[2], prefix .. ARGV[i], math.max(0, tonumber(ARGV[i + 1])))
end
redis.call("HSET", KEYS[2], marker, "1")
redis.call("HINCRBY", KEYS[2], "split", 1)
local all, held = redis.call("HGETALL", KEYS[2]), 0
for i = 1, #all, 2 do
  if string.match(all[i], "^x%d+:%d+$") then held = held + tonumber(all[i + 1]) end
end
local rest = math.max(0, total - held)
redis.call("HSET", KEYS[2], "x:rest", rest)
return {tostring(rest)}
