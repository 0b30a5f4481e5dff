-- wrk script: one new native event per POST /v1/events, ids unique per run (RUN) and thread.
-- Used by bench/http_single_wrk.sh; needs TOKEN (an ingest or admin key) in the environment.
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  token = os.getenv("TOKEN")
  run = os.getenv("RUN") or "0"
end
request = function()
  counter = counter + 1
  local body = '{"id":"w' .. run .. '-' .. tid .. '-' .. counter .. '","category":"api_request","action":"chat.completions","outcome":"success","actor":{"user":"user42"},"source":{"ip":"10.1.2.3","user_agent":"OpenAI/Python 1.82.0"},"details":{"endpoint":"/v1/chat/completions","model":"gpt-4o","prompt_length":1234,"response_time_ms":840,"status":200}}'
  return wrk.format("POST", "/v1/events", {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
