-- POST /dataset/v1/request/submit: every call a new request (a new
-- requestedBy) on the tag $LOAD_SUBMIT_TAG.
package.path = os.getenv("LOAD_LUA_DIR") .. "/?.lua;" .. package.path
local report = require("report")

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local counter = 0
local tag = os.getenv("LOAD_SUBMIT_TAG") or "load_submit"
local run = os.getenv("LOAD_RUN") or "run"
local headers = {
  ["Content-Type"] = "application/json",
  ["X-Channel-ID"] = os.getenv("LOAD_CHANNEL") or "load-channel",
}

function request()
  counter = counter + 1
  local body = string.format(
    '{"request":{"tag":"%s","requestedBy":"load-%s-%d-%d","dataset":"progress-exhaust",' ..
    '"datasetConfig":{"batchId":"0135742803756164562"}}}',
    tag, run, thread_id or 0, counter)
  return wrk.format("POST", "/dataset/v1/request/submit", headers, body)
end

done = report.done
