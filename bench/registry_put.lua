-- SPDX-License-Identifier: Apache-2.0
-- wrk script for bench/registry_durability.sh: every request writes a distinct key.
--
--   wrk -t1 -cN -dD --latency -s bench/registry_put.lua URL -- MODE PREFIX [VALUE_BYTES] [ORDER]
--
-- The n-th write of wrk thread t goes to key PREFIX/<t>-<n> (ORDER sequential, the default),
-- or to <h>/PREFIX/<t>-<n> with h = 8 hex digits of a multiplicative hash of n (ORDER
-- scattered): then successive keys land all over the key space instead of after each other.
-- MODE trellis: PUT /v1/kv/<key> with the raw value as body; a good answer is 200 with
--               body `true`.
-- MODE etcd:    POST /v3/kv/put with {"key": base64(<key>), "value": base64(value)}
--               (etcd's HTTP/JSON gateway); a good answer is 200 whose body has a header
--               with a revision.
-- Each wrk connection is one sequential client: it sends its next write only after the
-- previous one was answered. The value is VALUE_BYTES (default 100) printable bytes.
-- At the end one line is printed for the driver script:
--   RESULT ok=N bad_status=N bad_body=N sock_errors=N p50_us=N p99_us=N requests=N
-- where ok counts answers that acknowledged the write; p50/p99 are wrk's latencies
-- over all answers.

local threads = {}

function setup(thread)
    thread:set("tid", #threads)
    table.insert(threads, thread)
end

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
    local out = {}
    local n = #s
    for i = 1, n, 3 do
        local a, b, c = s:byte(i, i + 2)
        local v = a * 65536 + (b or 0) * 256 + (c or 0)
        local c1 = math.floor(v / 262144) % 64
        local c2 = math.floor(v / 4096) % 64
        local c3 = math.floor(v / 64) % 64
        local c4 = v % 64
        out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1) ..
                            (b and b64chars:sub(c3 + 1, c3 + 1) or "=") ..
                            (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
    end
    return table.concat(out)
end

local mode, prefix, value, value_b64, scattered
local n = 0
ok, bad_status, bad_body = 0, 0, 0

function init(args)
    mode = args[1] or "trellis"
    prefix = args[2] or "bench"
    local size = tonumber(args[3] or "100")
    if mode ~= "trellis" and mode ~= "etcd" then
        error("registry_put.lua: MODE must be trellis or etcd, got " .. tostring(mode))
    end
    local pattern = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    value = string.rep(pattern, math.ceil(size / #pattern)):sub(1, size)
    value_b64 = base64(value)
    prefix = prefix .. "/" .. tostring(tid) .. "-"
    local order = args[4] or "sequential"
    if order ~= "sequential" and order ~= "scattered" then
        error("registry_put.lua: ORDER must be sequential or scattered, got " .. order)
    end
    scattered = order == "scattered"
end

function request()
    n = n + 1
    local key = prefix .. n
    if scattered then -- n * 2654435761 stays exact in a double for n < 2^21
        key = string.format("%08x", (n * 2654435761 + tid * 40503) % 4294967296) .. "/" .. key
    end
    if mode == "trellis" then
        return wrk.format("PUT", "/v1/kv/" .. key, {["Content-Type"] = "application/octet-stream"},
                          value)
    end
    return wrk.format("POST", "/v3/kv/put", {["Content-Type"] = "application/json"},
                      '{"key":"' .. base64(key) .. '","value":"' .. value_b64 .. '"}')
end

function response(status, headers, body)
    if status ~= 200 then
        bad_status = bad_status + 1
    elseif mode == "trellis" then
        if body == "true" or body == "true\n" then
            ok = ok + 1
        else
            bad_body = bad_body + 1
        end
    elseif body:find('"revision"', 1, true) then
        ok = ok + 1
    else
        bad_body = bad_body + 1
    end
end

function done(summary, latency, requests)
    local o, bs, bb = 0, 0, 0
    for _, t in ipairs(threads) do
        o = o + t:get("ok")
        bs = bs + t:get("bad_status")
        bb = bb + t:get("bad_body")
    end
    local e = summary.errors
    local sock = e.connect + e.read + e.write + e.timeout
    io.write(string.format(
                 "RESULT ok=%d bad_status=%d bad_body=%d sock_errors=%d p50_us=%d p99_us=%d requests=%d duration_us=%d\n",
                 o, bs, bb, sock, latency:percentile(50), latency:percentile(99), summary.requests,
                 summary.duration))
end
