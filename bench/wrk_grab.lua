-- The coupon-grab driver. Like wrk_report.lua (one request per line:
-- "<method>\t<path>\t<authorization or ->\t<body or ->"), with what a grab benchmark needs:
--  * each thread reads its own file, "<args[1]>.<thread number>", and sends its lines in
--    order, so no two requests of a run carry the same customer while the lines last
--    (bench/grab.py writes each thread its share of the customers not used yet);
--  * answers are counted by status, so the summary tells 201 from 409 and 503;
--  * lines are formatted when sent, and each thread reads only its share: wrk starts a
--    thread as soon as its init() is done but starts the clock after the last one, so a
--    slow init (formatting 300,000 requests took seconds) lets the first threads run
--    unclocked and inflates the rate.
-- Globals (not locals) where done() reads them from each thread with thread:get().
local threads = {}
local lines = {}
tid = 0
sent = 0
statuses = {}

function setup(thread)
  thread:set("tid", #threads)
  threads[#threads + 1] = thread
end

function init(args)
  local file = io.open(args[1] .. "." .. tid, "r")
  for line in file:lines() do lines[#lines + 1] = line end
  file:close()
end

function request()
  local line = lines[sent % #lines + 1]
  sent = sent + 1
  local method, path, auth, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
  local headers = { ["Content-Type"] = "application/json" }
  if auth ~= "-" then headers["Authorization"] = auth end
  if body == "-" then body = nil end
  return wrk.format(method, path, headers, body)
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
