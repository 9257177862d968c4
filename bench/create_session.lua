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

-- Optional pacing: with SIGHTLINE_BENCH_PACE_MS=N each connection waits a random
-- 0.5N..1.5N ms (mean N) between a response and its next request. With 50 connections
-- and N=48 that offers ~1,000 requests/s (the run prints the rate it reached).
local pace = tonumber(os.getenv("SIGHTLINE_BENCH_PACE_MS") or "")
if pace then
  function delay()
    return math.random(math.floor(pace / 2), math.floor(pace * 3 / 2))
  end
end
