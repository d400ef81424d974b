-- POST /v1/lots: the same 100 FSEs (FSES: a JSON array) under a new lot id at
-- every request, so that each is taken (appended), not answered from the kept
-- answers. Each thread names its lots apart.
local fses = io.open(os.getenv("FSES")):read("*a"):gsub("%s+$", "")
local thread_id = 0
local counter = 0
setup = function(thread)
  thread_id = thread_id + 1
  thread:set("prefix", "w" .. thread_id .. "-" .. os.time())
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local body = '{"lot_id":"' .. prefix .. '-' .. counter .. '","fses":' .. fses .. '}'
  return wrk.format(nil, "/v1/lots", nil, body)
end
