-- Batch mode of the draw's sampling, for the fairness test and the bench only: the same
-- reduce and pick (draw_pick.lua, prepended) over many random values in one call, one
-- value per draw. ARGV: prize count P, the P weights, then the random values.
-- Returns the P counts, then how many values reduce rejected.
local p = tonumber(ARGV[1])
local weights, total = {}, 0
for i = 1, p do
  weights[i] = tonumber(ARGV[1 + i])
  total = total + weights[i]
end
local counts = {}
for i = 1, p do counts[i] = 0 end
local rejected = 0
local one = {0}
for j = p + 2, #ARGV do
  one[1] = tonumber(ARGV[j])
  local u = reduce(total, one)
  if u == nil then
    rejected = rejected + 1
  else
    local i = pick(weights, u)
    counts[i] = counts[i] + 1
  end
end
counts[p + 1] = rejected
return counts
