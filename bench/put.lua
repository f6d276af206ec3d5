-- wrk script: PUT distinct keys with 100-byte values to a raft-trio node.
--   wrk -t1 -c64 -d10s -s bench/put.lua http://127.0.0.1:9001 -- RUNTAG
-- Keys are bench-<RUNTAG>-<thread>-<n>: distinct across threads and runs.
-- done() prints one line "WRK_JSON {...}" for bench/storage_bench.py.

local threads = {}
local counter = 0
local tag = "run"
local body = '{"value":"' .. string.rep("v", 100) .. '"}'
local headers = { ["Content-Type"] = "application/json" }

function setup(thread)
   thread:set("thread_id", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   if args[1] ~= nil then tag = args[1] end
end

function request()
   counter = counter + 1
   local path = string.format("/api/kv/bench-%s-%d-%d", tag, thread_id or 0, counter)
   return wrk.format("PUT", path, headers, body)
end

function done(summary, latency, requests)
   local p50 = latency:percentile(50)
   local p99 = latency:percentile(99)
   io.write(string.format(
      'WRK_JSON {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
      '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
      summary.requests, summary.duration, summary.errors.status,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
      p50, p99, latency.max))
end
