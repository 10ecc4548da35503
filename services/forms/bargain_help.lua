-- One help of a bargain (or an assist), decided and applied in one step.
-- KEYS[1] bargain hash   KEYS[2] its helpers set   KEYS[3] its cuts list
-- KEYS[4] the campaign's helps-per-helper hash      KEYS[5] that hash's "loaded" marker
-- KEYS[6] the campaign's bargain decisions stream
-- ARGV[1] helper id   ARGV[2] now (ms)
-- Reply: {'ok', cut, price_after, seq, finished(0|1)} or {refusal}.
-- The cut rule (docs/forms.md): with helpers_needed N, helper n < N draws uniformly in
-- [min(cut_min, hi), hi], hi = min(cut_max, rest - (N - n)) (each later helper keeps at
-- least 1 fen to cut), and helper N takes the rest; without N, a draw in
-- [cut_min, cut_max] capped at the rest (the helper it reaches takes exactly the rest).
-- A red packet (price: what is left to expand, floor 0): helper n < N draws in
-- [min_increment, min(floor(2 rest / k), rest - (k - 1) min_increment)], k = N - n + 1
-- (double-mean), and helper N takes the rest.
-- A draw: the first 48 bits of sha1(seed:n:k), k = 0, 1, ... until one falls below the
-- largest multiple of the span (rejection: exactly uniform).
local bargain = KEYS[1]
if redis.call('exists', bargain) == 0 then return {'not_loaded'} end
if redis.call('exists', KEYS[5]) == 0 then return {'not_loaded'} end
local helper = ARGV[1]
local now = tonumber(ARGV[2])
local f = redis.call('hmget', bargain, 'owner', 'floor', 'price', 'min', 'max', 'need', 'limit', 'exp', 'n', 'seed',
  'mode', 'id')
if f[1] == helper then return {'own_bargain'} end
local floor, price, need, n = tonumber(f[2]), tonumber(f[3]), tonumber(f[6]), tonumber(f[9])
local mode = f[11]
if redis.call('sismember', KEYS[2], helper) == 1 then return {'already_helped'} end
local done
if mode == 'assist' then done = n >= need else done = price <= floor or (need > 0 and n >= need) end
if done then return {'finished'} end
if now >= tonumber(f[8]) then return {'expired'} end
local used = tonumber(redis.call('hget', KEYS[4], helper) or '0')
if used >= tonumber(f[7]) then return {'help_limit'} end

n = n + 1
local cut, lo, hi, u, k = 0, 0, 0, -1, 0
if mode ~= 'assist' then
  local rest = price - floor
  if need > 0 and n == need then
    cut, lo, hi = rest, rest, rest
  else
    lo, hi = tonumber(f[4]), tonumber(f[5])
    if mode == 'red_packet' then
      -- Double-mean: up to twice the mean of what is left per helper still needed, and
      -- at most what leaves min_increment (lo) to each of the others.
      local k = need - n + 1
      hi = math.min(math.floor(2 * rest / k), rest - (k - 1) * lo)
    elseif need > 0 then
      hi = math.min(hi, rest - (need - n))
      lo = math.min(lo, hi)
    end
    local span = hi - lo + 1
    -- (Numbers reach Redis as text with 14 significant digits: the 48-bit draw is formatted.)
    local limit = math.floor(281474976710656 / span) * span  -- 2^48, exact in a double
    while true do
      u = tonumber(string.sub(redis.sha1hex(f[10] .. ':' .. n .. ':' .. k), 1, 12), 16)
      if u < limit then break end
      k = k + 1
    end
    cut = math.min(lo + (u % span), rest)
  end
end
local after = price - cut
local finished = 0
if mode == 'assist' then
  if n >= need then finished = 1 end
elseif after <= floor or (need > 0 and n >= need) then
  finished = 1
end
redis.call('hset', bargain, 'price', after, 'n', n)
redis.call('sadd', KEYS[2], helper)
redis.call('rpush', KEYS[3], helper .. ':' .. cut .. ':' .. ARGV[2])
redis.call('hincrby', KEYS[4], helper, 1)
redis.call('xadd', KEYS[6], '*', 'bid', f[12], 'helper', helper, 'seq', n, 'cut', cut, 'before', price,
  'after', after, 'lo', lo, 'hi', hi, 'u', string.format('%.0f', u), 'k', k, 'at', ARGV[2])
return {'ok', cut, after, n, finished}
