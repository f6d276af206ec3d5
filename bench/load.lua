-- wrk script of bench/compare.py: the same load for raft-trio and for etcd.
--   wrk -t1 -c64 -d10s -s bench/load.lua URL -- API OP TAG KEYS
-- API  raft: PUT/GET /api/kv/<key> with {"value": ...}
--      etcd: POST /v3/kv/put {"key","value"} and /v3/kv/range {"key"}
--            (the JSON gateway; base64 keys and values; range is linearizable
--            by default, like raft-trio's GET)
-- OP   put:     distinct keys bench-TAG-<thread>-<n>, 100-byte values
--      preload: keys pre-TAG-<n mod KEYS>, 100-byte values (run it until it
--               has made KEYS requests, and every one of those keys exists)
--      get:     reads of pre-TAG-<n mod KEYS>
-- response() counts every answer that is not a 2xx (and, for etcd reads, a
-- range that found nothing); done() prints one line "WRK_JSON {...}" that compare.py parses.

local threads = {}
local counter = 0
local api, op, tag, keys = "raft", "put", "run", 1000
local value = string.rep("v", 100)
local headers = { ["Content-Type"] = "application/json" }

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- base64 with plain arithmetic (wrk's LuaJIT has no base64); cheap enough
-- for short keys, and the value's encoding is computed once.
local function b64(s)
   local out = {}
   for i = 1, #s, 3 do
      local a, b, c = s:byte(i, i + 2)
      local n = a * 65536 + (b or 0) * 256 + (c or 0)
      local d1 = math.floor(n / 262144) % 64
      local d2 = math.floor(n / 4096) % 64
      local d3 = math.floor(n / 64) % 64
      local d4 = n % 64
      out[#out + 1] = alphabet:sub(d1 + 1, d1 + 1) .. alphabet:sub(d2 + 1, d2 + 1)
         .. (b and alphabet:sub(d3 + 1, d3 + 1) or "=") .. (c and alphabet:sub(d4 + 1, d4 + 1) or "=")
   end
   return table.concat(out)
end

local raft_body = '{"value":"' .. value .. '"}'
local etcd_value = b64(value)

function setup(thread)
   thread:set("thread_id", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   if args[1] ~= nil then api = args[1] end
   if args[2] ~= nil then op = args[2] end
   if args[3] ~= nil then tag = args[3] end
   if args[4] ~= nil then keys = tonumber(args[4]) end
end

function request()
   counter = counter + 1
   local key
   if op == "put" then
      key = string.format("bench-%s-%d-%d", tag, thread_id or 0, counter)
   else
      key = string.format("pre-%s-%d", tag, counter % keys)
   end
   if api == "etcd" then
      if op == "get" then
         return wrk.format("POST", "/v3/kv/range", headers, '{"key":"' .. b64(key) .. '"}')
      end
      return wrk.format("POST", "/v3/kv/put", headers,
         '{"key":"' .. b64(key) .. '","value":"' .. etcd_value .. '"}')
   end
   if op == "get" then
      return wrk.format("GET", "/api/kv/" .. key)
   end
   return wrk.format("PUT", "/api/kv/" .. key, headers, raft_body)
end

-- wrk itself counts only statuses above 399; a 307 (the leader moved) or
-- an etcd range that found no key is a failure here too.
bad = 0

function response(status, headers, body)
   if status < 200 or status > 299 then
      bad = bad + 1
   elseif api == "etcd" and op == "get" and not body:find('"kvs"', 1, true) then
      bad = bad + 1
   end
end

function done(summary, latency, requests)
   local failed = 0
   for _, thread in ipairs(threads) do
      failed = failed + thread:get("bad")
   end
   io.write(string.format(
      'WRK_JSON {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
      '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
      summary.requests, summary.duration, failed,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
      latency:percentile(50), latency:percentile(99), latency.max))
end
