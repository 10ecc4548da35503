-- Close an expired open group: fail it, or fill it with virtual members (ARGV[3] = 1).
-- Either way it stops counting against its members' open-group limit (nothing else
-- is reserved by an open group: rewards are granted only when a group fills).
-- KEYS: as group_open.lua
-- ARGV: 1 group id, 2 now ms, 3 virtual fill (1/0), 4 seconds a closed group is kept
-- Returns {"failed"} | {"virtual", count} | {"gone"} | {"not_yet"} | {status}
local g = redis.call('hmget', KEYS[1], 'status', 'exp', 'size', 'n', 'leader', 'at')
if not g[1] then return {'gone'} end
if g[1] ~= 'open' then return {g[1]} end
if tonumber(ARGV[2]) < tonumber(g[2]) then return {'not_yet'} end
local all = redis.call('hgetall', KEYS[2])
local parts = {}
for i = 1, #all, 2 do
    parts[#parts + 1] = all[i] .. ':' .. all[i + 1]
    if redis.call('hincrby', KEYS[3], all[i], -1) <= 0 then redis.call('hdel', KEYS[3], all[i]) end
end
redis.call('zrem', KEYS[4], ARGV[1])
local kind, reply
if ARGV[3] == '1' then
    local v = tonumber(g[3]) - tonumber(g[4])
    redis.call('hset', KEYS[1], 'status', 'filled', 'v', v)
    kind, reply = 'virtual', {'virtual', tostring(v)}
else
    redis.call('hset', KEYS[1], 'status', 'failed')
    kind, reply = 'fail', {'failed'}
end
redis.call('expire', KEYS[1], ARGV[4])
redis.call('expire', KEYS[2], ARGV[4])
redis.call('xadd', KEYS[5], '*', 'k', kind, 'g', ARGV[1], 'size', g[3], 'exp', g[2], 'leader', g[5], 'op', g[6],
    'at', ARGV[2], 'ms', table.concat(parts, ','))
return reply
