-- POST /v1/rights, cycling through one body per beneficiary (BODIES: a file of
-- JSON lines). Answers other than 200 are counted by wrk as non-2xx.
local bodies = {}
for line in io.lines(os.getenv("BODIES")) do
  bodies[#bodies + 1] = line
end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n % #bodies + 1
  return wrk.format(nil, "/v1/rights", nil, bodies[n])
end
