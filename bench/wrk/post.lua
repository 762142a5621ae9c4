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

dofile("bench/wrk/report.lua")
