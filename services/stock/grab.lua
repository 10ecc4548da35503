-- One coupon grab, decided atomically. Every key shares the campaign's hash tag, so the
-- script runs unchanged on Redis Cluster (and the campaign budget is in the same slot
-- as each of its coupons).
--
-- KEYS[1] coupon hash: stock, limit, opens, closes, face, state, targeted
-- KEYS[2] holders hash: customer id -> vouchers grabbed
-- KEYS[3] campaign budget left, in fen (absent: no cap)
-- KEYS[4] claims stream
-- KEYS[5] idempotency record of this customer's key ("" key when none given): the first
--         answer, "claim:code:at" for a grab or "refused:status:arg:now" for a refusal
--         (every refusal below is recorded except the rate limit: a throttled request
--         was not judged, so its retry is)
-- KEYS[6] rate-limit counter of this customer
-- KEYS[7] audience set (customer ids), used when the coupon is targeted
-- KEYS[8] this customer's recent claims in the campaign (read-your-writes: the wallet
--         shows them before the worker has written the vouchers)
-- KEYS[9] the experiment arms' budget shares (hash: share field -> fen left; absent when
--         no experiment splits the budget)
-- ARGV: customer id, now (ms), claim id, code, template id, idempotency ttl (s),
--       rate limit (grabs per window), rate window (ms), has idempotency key ("1"/"0"),
--       recent claims ttl (ms), recent claims kept, request id (copied into the claim:
--       the worker that writes the voucher logs under it; "" when none), the customer's
--       arm share field ("x<experiment>:<arm>", "" when not in an experiment's arm)
--
-- A coupon whose stock an experiment splits (services/stock/arms.py) has a field "split"
-- (how many experiments split it) and one share per arm ("x<experiment>:<arm>", plus
-- "x:rest" for everyone else): the grab takes one unit from its share and from "stock"
-- at once, and a share at 0 answers sold_out whatever the other shares hold. Without
-- "split" (no experiment) none of this runs.
local uid, now = ARGV[1], tonumber(ARGV[2])

if ARGV[9] == "1" then
  local first = redis.call("GET", KEYS[5])
  if first then return {"dup", first} end
end

local hits = redis.call("INCR", KEYS[6])
if hits == 1 then redis.call("PEXPIRE", KEYS[6], ARGV[8]) end
if hits > tonumber(ARGV[7]) then
  -- Counted for the monitor only when the coupon is loaded: a hash holding just the
  -- counter would look loaded to load.lua.
  if redis.call("EXISTS", KEYS[1]) == 1 then redis.call("HINCRBY", KEYS[1], "r:rate_limited", 1) end
  return {"rate_limited", tostring(redis.call("PTTL", KEYS[6]))}
end

-- Refusals by reason, for the admin's flash-sale monitor: a field "r:<status>" of the
-- coupon hash (same slot, no extra key; refuse is only called once the hash is known to
-- exist). The success path does not touch them.
local function refuse(status, arg)
  redis.call("HINCRBY", KEYS[1], "r:" .. status, 1)
  if ARGV[9] == "1" then
    redis.call("SET", KEYS[5], "refused:" .. status .. ":" .. (arg or "") .. ":" .. ARGV[2], "EX", ARGV[6])
  end
  return {status, arg}
end

local m = redis.call("HMGET", KEYS[1], "stock", "limit", "opens", "closes", "face", "state", "targeted", "split")
if not m[1] then return {"not_loaded"} end
if m[6] ~= "open" then return refuse("not_active", m[6]) end
if now < tonumber(m[3]) then return refuse("not_started", m[3]) end
if now >= tonumber(m[4]) then return refuse("ended", m[4]) end
if m[7] == "1" and redis.call("SISMEMBER", KEYS[7], uid) == 0 then return refuse("not_eligible") end

local held = tonumber(redis.call("HGET", KEYS[2], uid) or "0")
if held >= tonumber(m[2]) then return refuse("limit", tostring(held)) end
if tonumber(m[1]) <= 0 then return refuse("sold_out") end
local share, share_budget
if m[8] then
  share = ARGV[13] or ""
  local left = share ~= "" and redis.call("HGET", KEYS[1], share) or false
  if not left then
    -- Not in an arm (outside the traffic, or an arm of an experiment merged back).
    share = "x:rest"
    left = redis.call("HGET", KEYS[1], share)
  end
  if tonumber(left or "0") <= 0 then return refuse("sold_out") end
end
local face = tonumber(m[5])
local budget = redis.call("GET", KEYS[3])
if budget and tonumber(budget) < face then return refuse("budget") end
if share and budget then
  share_budget = redis.call("HGET", KEYS[9], share)
  if share_budget and tonumber(share_budget) < face then return refuse("budget") end
end

local left = redis.call("HINCRBY", KEYS[1], "stock", -1)
redis.call("HINCRBY", KEYS[2], uid, 1)
if budget then redis.call("DECRBY", KEYS[3], face) end
if share then
  redis.call("HINCRBY", KEYS[1], share, -1)
  if share_budget then redis.call("HINCRBY", KEYS[9], share, -face) end
end
if share and share ~= "x:rest" then
  -- "xa": the arm whose share it took, written on the voucher (reconciliation counts them).
  redis.call("XADD", KEYS[4], "*", "claim", ARGV[3], "code", ARGV[4], "tpl", ARGV[5], "uid", uid,
             "face", m[5], "at", ARGV[2], "rid", ARGV[12] or "", "xa", share)
else
  redis.call("XADD", KEYS[4], "*", "claim", ARGV[3], "code", ARGV[4], "tpl", ARGV[5], "uid", uid,
             "face", m[5], "at", ARGV[2], "rid", ARGV[12] or "")
end
local record = ARGV[3] .. ":" .. ARGV[4] .. ":" .. ARGV[2]
if ARGV[9] == "1" then redis.call("SET", KEYS[5], record, "EX", ARGV[6]) end
redis.call("LPUSH", KEYS[8], record .. ":" .. ARGV[5])
redis.call("LTRIM", KEYS[8], 0, tonumber(ARGV[11]) - 1)
redis.call("PEXPIRE", KEYS[8], ARGV[10])
return {"ok", record, tostring(left), tostring(held + 1)}
