-- Shared by the load scripts: at the end of a run, appends one line to the
-- file named by $LOAD_OUT: label, requests, seconds, requests/s, p50, p90,
-- p99 and max latency (ms), non-2xx/3xx answers, socket errors and timeouts.
local M = {}

function M.done(summary, latency, requests)
  local out = os.getenv("LOAD_OUT")
  local label = os.getenv("LOAD_LABEL") or "?"
  local seconds = summary.duration / 1e6
  local e = summary.errors
  local line = string.format("%s\t%d\t%.1f\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%d\n",
    label, summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write, e.timeout)
  if out then
    local f = assert(io.open(out, "a"))
    f:write(line)
    f:close()
  end
  io.write(line)
end

return M
