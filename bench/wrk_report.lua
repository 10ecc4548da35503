-- Shared by the benchmarks: rotate through per-request headers/bodies read from a file
-- (one JSON-free line each: "<method>\t<path>\t<authorization or ->\t<body or ->"), and
-- print a machine-readable summary at the end.
local requests = {}
local index = 0

function init(args)
  local file = io.open(args[1], "r")
  for line in file:lines() do
    local method, path, auth, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    local headers = { ["Content-Type"] = "application/json" }
    if auth ~= "-" then headers["Authorization"] = auth end
    if body == "-" then body = nil end
    requests[#requests + 1] = wrk.format(method, path, headers, body)
  end
  file:close()
  -- Start each thread at a different place so threads do not send the same requests.
  index = math.random(#requests) - 1
end

function request()
  index = index % #requests + 1
  return requests[index]
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests_)
  io.write(string.format(
    "WRK_JSON {\"requests\": %d, \"duration_us\": %d, \"errors\": %d, \"non2xx\": %d, " ..
    "\"p50_us\": %d, \"p99_us\": %d, \"max_us\": %d}\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99), latency.max))
end
