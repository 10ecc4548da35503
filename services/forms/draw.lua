-- One lucky draw, decided atomically (draw_pick.lua is prepended: reduce, pick). Every
-- key shares the campaign's hash tag, so the script runs unchanged on Redis Cluster, and
-- the prize coupons' stock, holders and the campaign budget are the grab's own keys.
--
-- In one step: the idempotency replay, the daily limit, the entry (a free draw of the
-- day, else a completed task not spent yet, else the points hold the caller took:
-- consumed here, exactly once), the live
-- weights (a sold-out prize's weight moves to the sold_out_to slot; a coupon prize also
-- counts as sold out when its coupon cannot be issued to this customer: stock, per-
-- customer limit, budget), the sampling, the prize's stock, the coupon's claim (on the
-- campaign's claims stream, as a grab writes it), the day's counters and the draw record
-- on the draws stream.
--
-- KEYS[1] prize stock hash: field per limited prize -> left, "loaded" -> 1
-- KEYS[2] this customer's counters of the day: n (draws), free (free draws)
-- KEYS[3] idempotency record of this customer's key (only read/written with ARGV[5] "1")
-- KEYS[4] points holds (sorted set: draw id -> taken at ms)
-- KEYS[5] draws stream, KEYS[6] claims stream, KEYS[7] campaign budget left (absent: no
-- cap), KEYS[8] the customer's recent claims (read-your-writes, as in grab.lua)
-- KEYS[9] tasks spent on draws (customer id -> count; loaded with KEYS[1])
-- KEYS[10..] for each coupon prize, in table order: the coupon hash, its holders hash
-- ARGV: 1 customer id, 2 now (ms), 3 draw id, 4 day (YYYY-MM-DD), 5 has idempotency key,
--   6 idempotency ttl (s), 7 free per day, 8 max per day, 9 points cost, 10 hold offered
--   ("1": the caller debited the ledger for this draw id and holds it in KEYS[4]),
--   11 day counters ttl (s), 12 claim id, 13 voucher code, 14 recent claims ttl (ms),
--   15 recent claims kept, 16 index of the sold_out_to prize (1-based), 17 request id,
--   18 R (random values), 19..18+R the random values, then P (prizes) and per prize:
--   key, weight, kind (coupon/points/none), template id (0), points (0), limited (1/0),
--   then the customer's completed tasks (-1: the campaign takes no task as an entry)
local uid, now, draw = ARGV[1], ARGV[2], ARGV[3]

if ARGV[5] == "1" then
  local first = redis.call("GET", KEYS[3])
  if first then return {"dup", first} end
end
if redis.call("HEXISTS", KEYS[1], "loaded") == 0 then return {"not_loaded"} end

local day = redis.call("HMGET", KEYS[2], "n", "free")
local n, free = tonumber(day[1] or "0"), tonumber(day[2] or "0")
local function refuse(status, arg)
  if ARGV[5] == "1" then redis.call("SET", KEYS[3], "refused:" .. status .. ":" .. arg, "EX", ARGV[6]) end
  return {status, arg}
end
if n >= tonumber(ARGV[8]) then return refuse("draw_limit_reached", tostring(n)) end

local r = tonumber(ARGV[18])
local randoms = {}
for i = 1, r do randoms[i] = tonumber(ARGV[18 + i]) end
local base = 19 + r
local p = tonumber(ARGV[base])
local tasks = tonumber(ARGV[base + 1 + p * 6])

local entry, cost = "free", 0
if free >= tonumber(ARGV[7]) then
  local spent = 0
  if tasks >= 0 then spent = tonumber(redis.call("HGET", KEYS[9], uid) or "0") end
  if spent < tasks then
    entry = "task"
  else
    if tonumber(ARGV[9]) <= 0 then
      if tasks >= 0 then return refuse("task_required", spent .. ":" .. tasks) end
      return refuse("draw_limit_reached", tostring(n))
    end
    -- Not recorded: the caller takes a hold and asks again.
    if ARGV[10] ~= "1" then return {"needs_points"} end
    entry, cost = "points", tonumber(ARGV[9])
  end
end

-- The live table.
local stocks = redis.call("HGETALL", KEYS[1])
local left = {}
for i = 1, #stocks, 2 do left[stocks[i]] = tonumber(stocks[i + 1]) end
local budget = redis.call("GET", KEYS[7])
local prizes, weights, total = {}, {}, 0
local k = 10
for i = 1, p do
  local a = base + 1 + (i - 1) * 6
  local prize = {key = ARGV[a], weight = tonumber(ARGV[a + 1]), kind = ARGV[a + 2], tpl = ARGV[a + 3],
                 points = ARGV[a + 4], limited = ARGV[a + 5] == "1"}
  local open = true
  if prize.limited and (left[prize.key] or 0) <= 0 then open = false end
  if prize.kind == "coupon" then
    prize.coupon, prize.holders = KEYS[k], KEYS[k + 1]
    k = k + 2
    local c = redis.call("HMGET", prize.coupon, "stock", "limit", "face")
    if not c[1] then return {"not_loaded"} end
    prize.face = c[3]
    local held = tonumber(redis.call("HGET", prize.holders, uid) or "0")
    if tonumber(c[1]) <= 0 or held >= tonumber(c[2]) or (budget and tonumber(budget) < tonumber(c[3])) then
      open = false
    end
  end
  prizes[i] = prize
  weights[i] = open and prize.weight or 0
  total = total + prize.weight
end
local target = tonumber(ARGV[16])
for i = 1, p do
  if weights[i] ~= prizes[i].weight then weights[target] = weights[target] + prizes[i].weight end
end

if cost > 0 and redis.call("ZREM", KEYS[4], draw) == 0 then return {"hold_gone"} end
local u = reduce(total, randoms)
if u == nil then
  -- Every value rejected (p < 2^-72): nothing changed but the hold, which goes back.
  if cost > 0 then redis.call("ZADD", KEYS[4], now, draw) end
  return {"resample"}
end
local won = prizes[pick(weights, u)]

if won.limited then redis.call("HINCRBY", KEYS[1], won.key, -1) end
local claim, code = "", ""
if won.kind == "coupon" then
  claim, code = ARGV[12], ARGV[13]
  redis.call("HINCRBY", won.coupon, "stock", -1)
  redis.call("HINCRBY", won.holders, uid, 1)
  if budget then redis.call("DECRBY", KEYS[7], won.face) end
  redis.call("XADD", KEYS[6], "*", "claim", claim, "code", code, "tpl", won.tpl, "uid", uid, "face", won.face,
             "at", now, "rid", ARGV[17])
  redis.call("LPUSH", KEYS[8], claim .. ":" .. code .. ":" .. now .. ":" .. won.tpl)
  redis.call("LTRIM", KEYS[8], 0, tonumber(ARGV[15]) - 1)
  redis.call("PEXPIRE", KEYS[8], ARGV[14])
end
local points = won.kind == "points" and won.points or "0"
redis.call("HINCRBY", KEYS[2], "n", 1)
if entry == "free" then redis.call("HINCRBY", KEYS[2], "free", 1) end
if entry == "task" then redis.call("HINCRBY", KEYS[9], uid, 1) end
redis.call("EXPIRE", KEYS[2], ARGV[11])
redis.call("XADD", KEYS[5], "*", "draw", draw, "uid", uid, "prize", won.key, "kind", won.kind, "tpl", won.tpl,
           "claim", claim, "code", code, "pts", points, "entry", entry, "cost", tostring(cost), "day", ARGV[4],
           "at", now)
local record = table.concat({draw, won.key, won.kind, won.tpl, claim, code, points, entry, tostring(cost), now}, "|")
if ARGV[5] == "1" then redis.call("SET", KEYS[3], record, "EX", ARGV[6]) end
return {"ok", record}
