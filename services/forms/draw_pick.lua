-- The lucky draw's sampling, shared by draw.lua (one draw) and draw_batch.lua (the
-- fairness test runs this very code over a million random values): prepended to both.
--
-- The randomness comes from the caller (Python's secrets module: Lua's math.random is
-- not a cryptographic source). Each value is a uniform integer in [0, 2^48), passed as a
-- decimal string. Redis's Lua numbers are doubles, exact for integers below 2^53, so
-- every operation below is exact integer arithmetic.
--
-- reduce: a uniform integer in [0, total) by rejection sampling, without modulo bias.
-- Values at or above the largest multiple of total not above 2^48 are rejected, so each
-- residue has exactly floor(2^48 / total) preimages. total <= 10^9 (the spec's bound)
-- makes a rejection rarer than 2^-18, and the caller passes several values: all of them
-- rejected (p < 2^-72 with four) answers nil and the caller draws again.
-- (math.fmod is exact on doubles. floor(2^48 / total) is exact too: the quotient of two
-- integers below 2^53 is correctly rounded, and cannot round up across an integer there.)
local TWO48 = 281474976710656

local function reduce(total, randoms)
  local limit = total * math.floor(TWO48 / total)
  for i = 1, #randoms do
    local r = randoms[i]
    if r < limit then return math.fmod(r, total) end
  end
  return nil
end

-- pick: the index whose cumulative-weight interval holds u (0 <= u < sum of weights);
-- a prize with weight w owns exactly w of the total integers.
local function pick(weights, u)
  local acc = 0
  for i = 1, #weights do
    acc = acc + weights[i]
    if u < acc then return i end
  end
  return nil
end
