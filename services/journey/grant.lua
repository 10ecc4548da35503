-- A reward coupon granted to one customer (a campaign's join or completion reward),
-- decided atomically on the same keys as a grab, so stock, per-customer limit and the
-- campaign budget hold across grabs and grants, and the claim reaches the database
-- through the same stream and worker. Unlike a grab it is not throttled and ignores the
-- grab window, the coupon's state and the audience set: the customer earned it, which
-- the caller checked. The idempotency record (one per grant) makes a retry a replay,
-- of an issue ("dup", claim:code:at) or of a refusal ("dup", refused:reason).
--
-- KEYS[1] coupon hash, KEYS[2] holders hash, KEYS[3] campaign budget left (absent: no
-- cap), KEYS[4] claims stream, KEYS[5] the grant's idempotency record, KEYS[6] the
-- customer's recent claims in the campaign (read-your-writes, as in grab.lua; with the
-- voucher's own face value as a fifth field when it has one, so the wallet shows it
-- before the worker has written the voucher)
-- ARGV: customer id, now (ms), claim id, code, template id, idempotency ttl (s),
--       recent claims ttl (ms), recent claims kept, optionally the admin id of a
--       manual grant by customer service (carried on the claim as "by"; "" for none),
--       and optionally the voucher's own face value in fen (a bargain's cut voucher, a
--       red packet's voucher: issued and taken from the budget instead of the coupon's)
local uid = ARGV[1]

local first = redis.call("GET", KEYS[5])
if first then return {"dup", first} end

local m = redis.call("HMGET", KEYS[1], "stock", "limit", "face", "buckets")
if not m[1] then return {"not_loaded"} end

-- A refusal is recorded too, and final: an issuer that read the grant before another
-- refused it (and gave the points back) must not issue it after stock was added.
local function refuse(reason)
  redis.call("SET", KEYS[5], "refused:" .. reason, "EX", ARGV[6])
  return {reason}
end

-- A hot coupon (services/stock/hot.py) counts customers and stock over buckets in
-- other slots: only grabs take from it.
if m[4] and tonumber(m[4]) > 1 then return refuse("hot_coupon") end

local held = tonumber(redis.call("HGET", KEYS[2], uid) or "0")
if held >= tonumber(m[2]) then return refuse("limit") end
if tonumber(m[1]) <= 0 then return refuse("sold_out") end
local face_text = m[3]
if ARGV[10] and ARGV[10] ~= "" then face_text = ARGV[10] end
local face = tonumber(face_text)
local budget = redis.call("GET", KEYS[3])
if budget and tonumber(budget) < face then return refuse("budget") end

redis.call("HINCRBY", KEYS[1], "stock", -1)
redis.call("HINCRBY", KEYS[2], uid, 1)
if budget then redis.call("DECRBY", KEYS[3], face) end
if ARGV[9] and ARGV[9] ~= "" then
  redis.call("XADD", KEYS[4], "*", "claim", ARGV[3], "code", ARGV[4], "tpl", ARGV[5], "uid", uid,
             "face", face_text, "at", ARGV[2], "by", ARGV[9])
else
  redis.call("XADD", KEYS[4], "*", "claim", ARGV[3], "code", ARGV[4], "tpl", ARGV[5], "uid", uid,
             "face", face_text, "at", ARGV[2])
end
local record = ARGV[3] .. ":" .. ARGV[4] .. ":" .. ARGV[2]
redis.call("SET", KEYS[5], record, "EX", ARGV[6])
local recent = record .. ":" .. ARGV[5]
if ARGV[10] and ARGV[10] ~= "" then recent = recent .. ":" .. ARGV[10] end
redis.call("LPUSH", KEYS[6], recent)
redis.call("LTRIM", KEYS[6], 0, tonumber(ARGV[8]) - 1)
redis.call("PEXPIRE", KEYS[6], ARGV[7])
return {"ok", record}
