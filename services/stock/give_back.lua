-- Give back what one voided voucher took from its coupon: one unit of stock, the
-- customer's place under the per-customer limit and its face value to the campaign
-- budget, once. Every key shares the campaign's hash tag (one Redis Cluster slot).
--
-- The database already decided the void (a compare-and-set only one caller wins); the
-- marker makes the give-back itself happen at most once even when it is retried. A
-- coupon not loaded in Redis gets nothing here: loading it reads the vouchers table,
-- where the voided voucher no longer counts as issued.
--
-- KEYS[1] coupon hash, KEYS[2] holders hash, KEYS[3] campaign budget left (absent: no
-- cap), KEYS[4] the voucher's give-back marker, KEYS[5] the experiment arms' budget shares
-- ARGV: customer id, face value, marker ttl (s), the arm share the voucher was taken from
--       ("" for none): under a running experiment (field "split") the unit goes back to
--       that share (else to "x:rest"), and its face value to the same budget share

-- Returns "returned", "not_loaded" or "dup".
if redis.call("EXISTS", KEYS[1]) == 0 then return "not_loaded" end
if not redis.call("SET", KEYS[4], "1", "NX", "EX", ARGV[3]) then return "dup" end
redis.call("HINCRBY", KEYS[1], "stock", 1)
local held = tonumber(redis.call("HGET", KEYS[2], ARGV[1]) or "0")
if held > 1 then
  redis.call("HINCRBY", KEYS[2], ARGV[1], -1)
elseif held == 1 then
  redis.call("HDEL", KEYS[2], ARGV[1])
end
if redis.call("EXISTS", KEYS[3]) == 1 then redis.call("INCRBY", KEYS[3], ARGV[2]) end
if redis.call("HEXISTS", KEYS[1], "split") == 1 then
  local share = ARGV[4] or ""
  if share == "" or redis.call("HEXISTS", KEYS[1], share) == 0 then share = "x:rest" end
  redis.call("HINCRBY", KEYS[1], share, 1)
  if redis.call("HEXISTS", KEYS[5], share) == 1 then redis.call("HINCRBY", KEYS[5], share, ARGV[2]) end
end
return "returned"
