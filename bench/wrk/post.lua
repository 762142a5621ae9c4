-- POSTs one fixed JSON body (the file named by the first script argument)
-- to the path of the URL, and prints the figures bench scripts parse; with
-- no argument it GETs the URL.
function init(args)
    if not args[1] then
        return
    end
    local f = assert(io.open(args[1], "rb"))
    wrk.method = "POST"
    wrk.body = f:read("*a")
    wrk.headers["Content-Type"] = "application/json"
    f:close()
end

function done(summary, latency, requests)
    io.write(string.format("requests_per_s %.1f\n",
        summary.requests / (summary.duration / 1e6)))
    io.write(string.format("p50_ms %.3f\np99_ms %.3f\n",
        latency:percentile(50) / 1000, latency:percentile(99) / 1000))
    io.write(string.format("errors %d\n", summary.errors.connect +
        summary.errors.read + summary.errors.write + summary.errors.status +
        summary.errors.timeout))
end
