-- The coupon-grab driver. Like wrk_report.lua (one request per line of a file:
-- "<method>\t<path>\t<authorization or ->\t<body or ->"), with two differences a grab
-- benchmark needs:
--  * each thread walks its own interleaved share of the list, starting at an offset
--    (args: file, offset, threads), so while the list lasts no two requests of a run
--    carry the same customer, and the next run can start where this one stopped;
--  * answers are counted by status, so the summary tells 201 from 409 and 429.
-- Globals (not locals) where done() reads them from each thread with thread:get().
local threads = {}
local requests = {}
local offset, nthreads = 0, 1
tid = 0
sent = 0
statuses = {}

function setup(thread)
  thread:set("tid", #threads)
  threads[#threads + 1] = thread
end

function init(args)
  offset, nthreads = tonumber(args[2]), tonumber(args[3])
  local file = io.open(args[1], "r")
  for line in file:lines() do
    local method, path, auth, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    local headers = { ["Content-Type"] = "application/json" }
    if auth ~= "-" then headers["Authorization"] = auth end
    if body == "-" then body = nil end
    requests[#requests + 1] = wrk.format(method, path, headers, body)
  end
  file:close()
end

function request()
  local index = (offset + tid + sent * nthreads) % #requests + 1
  sent = sent + 1
  return requests[index]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests_)
  local merged, most_sent = {}, 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do merged[status] = (merged[status] or 0) + n end
    most_sent = math.max(most_sent, thread:get("sent"))
  end
  local parts = {}
  for status, n in pairs(merged) do parts[#parts + 1] = string.format("\"%d\": %d", status, n) end
  io.write(string.format(
    "WRK_JSON {\"requests\": %d, \"duration_us\": %d, \"errors\": %d, \"p50_us\": %d, \"p99_us\": %d, " ..
    "\"max_us\": %d, \"most_sent_per_thread\": %d, \"statuses\": {%s}}\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, most_sent, table.concat(parts, ", ")))
end
