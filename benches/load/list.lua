-- GET /dataset/v1/request/list/{tag}?limit=10 on the seeded tag $LOAD_TAG.
package.path = os.getenv("LOAD_LUA_DIR") .. "/?.lua;" .. package.path
local report = require("report")

local tag = os.getenv("LOAD_TAG") or "load_tag"
local path = "/dataset/v1/request/list/" .. tag .. "?limit=10"
local headers = { ["X-Channel-ID"] = os.getenv("LOAD_CHANNEL") or "load-channel" }

function request()
  return wrk.format("GET", path, headers)
end

done = report.done
