-- GET /dataset/v1/request/read/{tag}?requestId=: a random one of the
-- $LOAD_ROWS seeded requests of the tag $LOAD_TAG each call.
package.path = os.getenv("LOAD_LUA_DIR") .. "/?.lua;" .. package.path
local report = require("report")

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local rows = tonumber(os.getenv("LOAD_ROWS") or "1")
local tag = os.getenv("LOAD_TAG") or "load_tag"
local headers = { ["X-Channel-ID"] = os.getenv("LOAD_CHANNEL") or "load-channel" }

function init(args)
  math.randomseed(1000 + (thread_id or 0))
end

function request()
  local id = string.format("LOAD%08d", math.random(1, rows))
  return wrk.format("GET", "/dataset/v1/request/read/" .. tag .. "?requestId=" .. id, headers)
end

done = report.done
