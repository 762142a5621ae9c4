-- The figures bench/serving.sh reads from every wrk run; the scripts that
-- post load this (wrk runs them from the checkout's root).
function done(summary, latency, requests)
    io.write(string.format("requests_per_s %.1f\n",
        summary.requests / (summary.duration / 1e6)))
    io.write(string.format("p50_ms %.3f\np99_ms %.3f\n",
        latency:percentile(50) / 1000, latency:percentile(99) / 1000))
    io.write(string.format("errors %d\n", summary.errors.connect +
        summary.errors.read + summary.errors.write + summary.errors.status +
        summary.errors.timeout))
end
