-- A hot coupon's grab, first step, in the customer's home bucket (services/stock/hot.py).
-- Every key is in that bucket's slot. Checks as grab.lua does, then reserves one of the
-- customer's per-customer limit in the home bucket's holders hash (the only place that
-- counts this customer's vouchers of the coupon, so the limit is exact across buckets).
-- With stock in the home bucket and no campaign budget, the grab completes here, in one
-- round trip like grab.lua; otherwise the caller takes budget and stock elsewhere, then
-- confirms or releases the reservation. A reservation left by a crash only holds back a
-- voucher (never grants one): reconciliation rebuilds the holders from the database.
--
-- KEYS[1] bucket coupon hash: stock, limit, opens, closes, face, state, budgeted
-- KEYS[2] bucket holders hash: customer id -> vouchers held or reserved
-- KEYS[3] bucket claims stream
-- KEYS[4] idempotency record of this customer's key
-- KEYS[5] rate-limit counter of this customer (per bucket)
-- KEYS[6] this customer's recent claims (read-your-writes)
-- ARGV: customer id, now (ms), claim id, code, template id, idempotency ttl (s),
--       rate limit, rate window (ms), has idempotency key ("1"/"0"),
--       recent claims ttl (ms), recent claims kept, request id ("" outside a request;
--       carried into the claim so the claims worker's log line names the request)
local uid, now = ARGV[1], tonumber(ARGV[2])

if ARGV[9] == "1" then
  local first = redis.call("GET", KEYS[4])
  if first then return {"dup", first} end
end

local hits = redis.call("INCR", KEYS[5])
if hits == 1 then redis.call("PEXPIRE", KEYS[5], ARGV[8]) end
if hits > tonumber(ARGV[7]) then
  -- Counted for the monitor only when the coupon is loaded: a hash holding just the
  -- counter would look loaded to load.lua.
  if redis.call("EXISTS", KEYS[1]) == 1 then redis.call("HINCRBY", KEYS[1], "r:rate_limited", 1) end
  return {"rate_limited", tostring(redis.call("PTTL", KEYS[5]))}
end

-- Refusals by reason, for the admin's flash-sale monitor: a field "r:<status>" of the
-- coupon hash (same slot, no extra key; refuse is only called once the hash is known to
-- exist). The success path does not touch them.
local function refuse(status, arg)
  redis.call("HINCRBY", KEYS[1], "r:" .. status, 1)
  if ARGV[9] == "1" then
    redis.call("SET", KEYS[4], "refused:" .. status .. ":" .. (arg or "") .. ":" .. ARGV[2], "EX", ARGV[6])
  end
  return {status, arg}
end

local m = redis.call("HMGET", KEYS[1], "stock", "limit", "opens", "closes", "face", "state", "budgeted")
if not m[1] then return {"not_loaded"} end
if m[6] ~= "open" then return refuse("not_active", m[6]) end
if now < tonumber(m[3]) then return refuse("not_started", m[3]) end
if now >= tonumber(m[4]) then return refuse("ended", m[4]) end

local held = tonumber(redis.call("HGET", KEYS[2], uid) or "0")
if held >= tonumber(m[2]) then return refuse("limit", tostring(held)) end
redis.call("HINCRBY", KEYS[2], uid, 1)

if m[7] ~= "1" and tonumber(m[1]) > 0 then
  local left = redis.call("HINCRBY", KEYS[1], "stock", -1)
  redis.call("XADD", KEYS[3], "*", "claim", ARGV[3], "code", ARGV[4], "tpl", ARGV[5], "uid", uid,
             "face", m[5], "at", ARGV[2], "rid", ARGV[12] or "")
  local record = ARGV[3] .. ":" .. ARGV[4] .. ":" .. ARGV[2]
  if ARGV[9] == "1" then redis.call("SET", KEYS[4], record, "EX", ARGV[6]) end
  redis.call("LPUSH", KEYS[6], record .. ":" .. ARGV[5])
  redis.call("LTRIM", KEYS[6], 0, tonumber(ARGV[11]) - 1)
  redis.call("PEXPIRE", KEYS[6], ARGV[10])
  return {"ok", record, tostring(left), tostring(held + 1)}
end
return {"reserved", m[5], m[7] or "0", tostring(held + 1)}
