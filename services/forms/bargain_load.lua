-- Load a bargain's state from the database, unless Redis already has it (then nothing
-- is written: Redis may hold helps the database does not have yet).
-- KEYS[1] bargain hash  KEYS[2] helpers set  KEYS[3] cuts list
-- ARGV[1] expire-at (ms)  ARGV[2] number of hash field/value pairs  then the pairs,
-- then the cuts as "helper:cut:at_ms" in order.
if redis.call('exists', KEYS[1]) == 1 then return 0 end
redis.call('del', KEYS[2], KEYS[3])
local pairs_count = tonumber(ARGV[2])
local hash = {}
for i = 3, 2 + 2 * pairs_count do hash[#hash + 1] = ARGV[i] end
redis.call('hset', KEYS[1], unpack(hash))
for i = 3 + 2 * pairs_count, #ARGV do
  local entry = ARGV[i]
  redis.call('rpush', KEYS[3], entry)
  redis.call('sadd', KEYS[2], string.sub(entry, 1, string.find(entry, ':') - 1))
end
for i = 1, 3 do
  if redis.call('exists', KEYS[i]) == 1 then redis.call('pexpireat', KEYS[i], ARGV[1]) end
end
return 1
