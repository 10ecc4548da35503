-- One campaign's tracking over some days, in one round trip (a pipeline cannot carry
-- PFCOUNT on Redis Cluster; a script can, its keys sharing the campaign's hash tag).
-- KEYS: for each day, its counts hash, reach HyperLogLog and clickers HyperLogLog.
-- Returns per day: the hash as a flat list, reach, clickers; then the reach and the
-- clickers over all the days (the union of the HyperLogLogs).
local days = #KEYS / 3
local out, reach, clickers = {}, {}, {}
for i = 0, days - 1 do
  out[#out + 1] = redis.call("HGETALL", KEYS[3 * i + 1])
  out[#out + 1] = redis.call("PFCOUNT", KEYS[3 * i + 2])
  out[#out + 1] = redis.call("PFCOUNT", KEYS[3 * i + 3])
  reach[#reach + 1] = KEYS[3 * i + 2]
  clickers[#clickers + 1] = KEYS[3 * i + 3]
end
out[#out + 1] = redis.call("PFCOUNT", unpack(reach))
out[#out + 1] = redis.call("PFCOUNT", unpack(clickers))
return out
