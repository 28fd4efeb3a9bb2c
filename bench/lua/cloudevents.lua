-- wrk script: POST one unique CloudEvent per request (an incident, validated against the canonical model).
-- Environment: BENCH_RUN (id prefix, unique per run), BENCH_TOKEN (bearer token), BENCH_DELAY_MS (pause
-- before each request on a connection; 0 means as fast as possible).
local counter = 0
local thread_id = 0
local threads = {}
local run = os.getenv("BENCH_RUN") or "run"
local token = os.getenv("BENCH_TOKEN") or ""
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/cloudevents+json"
  wrk.headers["Authorization"] = "Bearer " .. token
end

if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"specversion":"1.0","id":"%s-%d-%d","source":"bench/i1","type":"com.opsrail.incident.opened",' ..
    '"time":"2026-01-05T09:00:00Z","data":{"id":"bench:INC-%d-%d","title":"Checkout errors for tenant %d",' ..
    '"severity":2,"status":"open","service":"checkout","segment":{"region":"EMEA","tier":"enterprise"}}}',
    run, thread_id, counter, thread_id, counter, counter % 500)
  return wrk.format(nil, "/v1/events", nil, body)
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "seconds": %.3f, "rps": %.1f, "p50_ms": %.3f, "p90_ms": %.3f, ' ..
    '"p99_ms": %.3f, "max_ms": %.3f, "errors": %d}\n',
    summary.requests, seconds, summary.requests / seconds, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000, bad))
end
