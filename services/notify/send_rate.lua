-- A sliding-window rate limit shared by every process: at most ARGV[1] permits in any
-- ARGV[2] milliseconds. KEYS[1] is a sorted set of the permits given, scored by the time
-- (Redis's clock, so processes on different machines agree).
-- ARGV: limit, window_ms, a unique member for this permit. Returns 1 (granted) or 0.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 1
end
return 0
