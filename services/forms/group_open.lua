-- Open a group buy's group: one atomic decision in the campaign's slot.
-- KEYS: 1 group hash, 2 group members hash (customer -> position), 3 the campaign's
--       open-group counts per customer (hash), 4 the campaign's open groups (zset by
--       expiry ms), 5 the campaign's group decisions stream, 6 the "loaded" marker
-- ARGV: 1 group id, 2 opener, 3 size, 4 expires at ms, 5 now ms, 6 max open groups
--       per customer
-- Returns {"ok"} | {"not_loaded"} | {"group_limit_reached"} | {"dup"}
if redis.call('exists', KEYS[6]) == 0 then return {'not_loaded'} end
if redis.call('exists', KEYS[1]) == 1 then return {'dup'} end
local mine = tonumber(redis.call('hget', KEYS[3], ARGV[2]) or '0')
if mine >= tonumber(ARGV[6]) then return {'group_limit_reached'} end
redis.call('hset', KEYS[1], 'size', ARGV[3], 'exp', ARGV[4], 'status', 'open', 'leader', ARGV[2],
    'n', 1, 'v', 0, 'at', ARGV[5])
redis.call('hset', KEYS[2], ARGV[2], 1)
redis.call('hincrby', KEYS[3], ARGV[2], 1)
redis.call('zadd', KEYS[4], ARGV[4], ARGV[1])
redis.call('xadd', KEYS[5], '*', 'k', 'open', 'g', ARGV[1], 'c', ARGV[2], 'pos', 1, 'size', ARGV[3],
    'exp', ARGV[4], 'leader', ARGV[2], 'op', ARGV[5], 'at', ARGV[5])
return {'ok'}
