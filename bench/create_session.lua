-- wrk script: POST /api/v1/sessions with a fresh conversation id per request.
local key = os.getenv("SIGHTLINE_API_KEY")
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key
request = function()
  n = n + 1
  local body = string.format(
    '{"conversation":{"platform":"bench","id":"c-%d-%d"},"agent":{"id":"a1","name":"Ana"},"customer":{"name":"Sam","locale":"en"}}',
    math.random(1, 1000000000), n)
  return wrk.format(nil, "/api/v1/sessions", nil, body)
end
