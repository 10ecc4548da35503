-- bench/redeem.py: each request a different line ("<method>\t<path>\t<auth>\t<body>"),
-- never repeated (arguments: the file, the number of wrk threads). Thread k of n sends
-- lines k, k+n, k+2n, ...; a thread that runs out sends GET /healthz instead and counts
-- it as "exhausted" (the bench prepared too few vouchers). Prints every status seen.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

-- Globals, not locals: done() reads each thread's copies with thread:get().
requests = {}
index = 0
exhausted = 0
statuses = {}
fallback = nil

function init(args)
  local nthreads = tonumber(args[2])
  local me = id
  local n = 0
  local file = io.open(args[1], "r")
  for line in file:lines() do
    if n % nthreads == me then
      local method, path, auth, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = { ["Content-Type"] = "application/json" }
      if auth ~= "-" then headers["Authorization"] = auth end
      if body == "-" then body = nil end
      requests[#requests + 1] = wrk.format(method, path, headers, body)
    end
    n = n + 1
  end
  file:close()
  fallback = wrk.format("GET", "/healthz")
end

function request()
  index = index + 1
  if index > #requests then
    exhausted = exhausted + 1
    return fallback
  end
  return requests[index]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests_)
  local merged, left = {}, 0
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for code, count in pairs(s) do merged[code] = (merged[code] or 0) + count end
    left = left + thread:get("exhausted")
  end
  local parts = {}
  for code, count in pairs(merged) do parts[#parts + 1] = string.format("\"%d\": %d", code, count) end
  io.write(string.format(
    "WRK_JSON {\"requests\": %d, \"duration_us\": %d, \"errors\": %d, \"non2xx\": %d, " ..
    "\"p50_us\": %d, \"p99_us\": %d, \"max_us\": %d, \"exhausted\": %d, \"statuses\": {%s}}\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99), latency.max, left,
    table.concat(parts, ", ")))
end
