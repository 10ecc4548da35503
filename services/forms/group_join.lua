-- Join a group: one atomic decision in the campaign's slot. Never more members than
-- the size, never the same customer twice, at most ARGV[4] open groups per customer.
-- The member who fills the group closes it in the same step (the decision says so:
-- the worker grants every member's reward from it).
-- KEYS: as group_open.lua
-- ARGV: 1 group id, 2 customer, 3 now ms, 4 max open groups per customer, 5 seconds a
--       closed group is kept in Redis
-- Returns {"ok", position, "1" when it filled the group else "0"} | {"not_loaded"} |
--   {"no_group"} | {"group_full"} | {"group_expired"} | {"already_in_group"} |
--   {"group_limit_reached"}
if redis.call('exists', KEYS[6]) == 0 then return {'not_loaded'} end
local g = redis.call('hmget', KEYS[1], 'status', 'exp', 'size', 'n', 'leader', 'at')
if not g[1] then return {'no_group'} end
if redis.call('hexists', KEYS[2], ARGV[2]) == 1 then return {'already_in_group'} end
if g[1] == 'filled' then return {'group_full'} end
if g[1] ~= 'open' or tonumber(ARGV[3]) >= tonumber(g[2]) then return {'group_expired'} end
local size, n = tonumber(g[3]), tonumber(g[4])
if n >= size then return {'group_full'} end
local pos = n + 1
-- A join that fills the group leaves it open for nobody: it needs no room under the limit.
local mine = tonumber(redis.call('hget', KEYS[3], ARGV[2]) or '0')
if pos < size and mine >= tonumber(ARGV[4]) then return {'group_limit_reached'} end
redis.call('hset', KEYS[2], ARGV[2], pos)
redis.call('hset', KEYS[1], 'n', pos)
local full = '0'
local listed = ''
if pos == size then
    full = '1'
    redis.call('hset', KEYS[1], 'status', 'filled')
    -- The group no longer counts against its members' limit.
    local all = redis.call('hgetall', KEYS[2])
    local parts = {}
    for i = 1, #all, 2 do
        local member = all[i]
        parts[#parts + 1] = member .. ':' .. all[i + 1]
        if member ~= ARGV[2] then
            if redis.call('hincrby', KEYS[3], member, -1) <= 0 then redis.call('hdel', KEYS[3], member) end
        end
    end
    listed = table.concat(parts, ',')
    redis.call('zrem', KEYS[4], ARGV[1])
    redis.call('expire', KEYS[1], ARGV[5])
    redis.call('expire', KEYS[2], ARGV[5])
else
    redis.call('hincrby', KEYS[3], ARGV[2], 1)
end
redis.call('xadd', KEYS[5], '*', 'k', 'join', 'g', ARGV[1], 'c', ARGV[2], 'pos', pos, 'size', g[3], 'exp', g[2],
    'leader', g[5], 'op', g[6], 'at', ARGV[3], 'full', full, 'ms', listed)
return {'ok', tostring(pos), full}
