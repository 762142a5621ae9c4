-- GETs the URL about every 10 ms on each connection: a monitor's probe,
-- whose latency is what counts, taking no noticeable share of the cores
-- that the load beside it is measured on (a probe flooding as fast as it
-- can would take about one of two cores' worth from that load).
function delay()
    return 10
end

dofile("bench/wrk/report.lua")
