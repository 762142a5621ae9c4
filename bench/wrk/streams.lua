-- Steps many sessions: wrk thread i takes sessions [i*per, (i+1)*per) of
-- network NET and posts each in turn, so with as many connections as
-- sessions each session has about one step in flight at a time.
--   wrk -t THREADS -s streams.lua URL -- NET SESSIONS BODY_FILE THREADS
local threads = {}
local counter = 0

function setup(thread)
    thread:set("index", #threads)
    table.insert(threads, thread)
end

function init(args)
    net = args[1]
    local sessions = tonumber(args[2])
    local f = assert(io.open(args[3], "rb"))
    body = f:read("*a")
    f:close()
    per = math.floor(sessions / tonumber(args[4]))
    first = index * per
end

function request()
    local k = first + counter % per
    counter = counter + 1
    return wrk.format("POST", "/v1/networks/" .. net .. "/sessions/c" .. k ..
                      "/forward", {["Content-Type"] = "application/json"},
                      body)
end

dofile("bench/wrk/report.lua")
