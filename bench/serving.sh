#!/usr/bin/env bash
# The serving benchmarks, measured with Debian's wrk (installed if missing)
# over keep-alive connections on loopback, each beside its reference in the
# same run:
#   1. wrk's own ceiling: a bare libmicrohttpd handler answering a fixed
#      body the size of the forward's reply;
#   2. a single-step forward of the customization guide's
#      {i1, i2, i3} >> Dense(10) network (and of a reference nerved binary
#      given as $1, e.g. one built before a change);
#   3. 64 clients, each stepping its own batch-1 session of
#      Input(1) >> Reservoir(N, dense) >> LinearReadout(1), against the same
#      64 streams posted as one batch-64 session, with batching on and off,
#      for N = 500 and 2000, and /healthz latency during that load;
#   4. /healthz latency while four long runs occupy the compute threads.
#   bench/serving.sh [REFERENCE_NERVED]
#   (SECONDS_PER_RUN=5 a measurement, ROUNDS=3 interleaved rounds: this is
#   a shared VM whose speed moves by a fifth between minutes, so every
#   figure is a median, and every ratio the median of same-round ratios.)
# Beside each req/s it prints the daemon's CPU time per request, steadier
# than req/s on such a machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ref=${1:-}
secs=${SECONDS_PER_RUN:-5}
rounds=${ROUNDS:-3}
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target nerved bare_http >/dev/null
if ! command -v wrk >/dev/null; then
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd=sudo
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk </dev/null
fi
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

# start BINARY ARGS... : starts a daemon on a free port; sets port and pid.
start() {
    local bin=$1; shift
    "$bin" --port 0 --quiet "$@" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
        port=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$tmp/out")
        [ -n "$port" ] && return 0
        sleep 0.05
    done
    echo "daemon did not start: $(cat "$tmp/err")" >&2
    exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
post() { curl -sf -X POST "http://127.0.0.1:$port$1" -H 'Content-Type: application/json' -d "$2" >/dev/null; }
# figure NAME < wrk output
figure() { awk -v k="$1" '$1 == k {print $2}'; }
# ticks PID: the process's CPU time so far (user + system), in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
# measure PID WRK_ARGS... : runs wrk and prints its figures, and the CPU the
# process PID spent per request over the run, as cpu_us_per_req.
measure() {
    local who=$1; shift
    local t0 out t1
    t0=$(ticks "$who")
    out=$(wrk "$@")
    t1=$(ticks "$who")
    echo "$out"
    echo "$out" | awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$secs" \
        '$1 == "requests_per_s" && $2 > 0 {printf "cpu_us_per_req %.1f\n", d * 1e6 / hz / ($2 * s)}'
}
# median [FORMAT] < numbers, one a line
median() { sort -g | awk -v f="${1:-%.3g}" '{v[NR] = $1} END {if (NR) printf f, (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }
# range [FORMAT] < numbers: "lowest–highest"
range() { sort -g | awk -v f="${1:-%.3g}" 'NR == 1 {lo = $1} {hi = $1} END {printf f "–" f, lo, hi}'; }
# summary FILE [FORMAT]: "median (lowest–highest)" of the numbers in FILE
summary() { echo "$(median "${2:-}" <"$1") ($(range "${2:-}" <"$1"))"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f\n", a / b}'; }

guide='{"name": "guide", "seed": 2022, "nodes": [{"name": "i1", "type": "Input", "shape": 1},
  {"name": "i2", "type": "Input", "shape": 2}, {"name": "i3", "type": "Input", "shape": 3},
  {"name": "l", "type": "Dense", "num_unit": 10}], "edges": ["{i1, i2, i3} >> l"]}'
echo '{"inputs": {"i1": [[1]], "i2": [[0, 0]], "i3": [[0.2, 0.5, 0.9]]}}' >"$tmp/guide.json"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "wrk -t2, ${secs} s a measurement, $rounds interleaved rounds; figures are"
echo "medians (lowest–highest), ratios the medians of the same-round ratios"
echo

# forward BINARY PREFIX: one forward measurement of a daemon, its figures
# appended to $tmp/PREFIX.rps and $tmp/PREFIX.cpu.
forward() {
    start "$1"
    post /v1/networks "$guide"
    local w
    w=$(measure "$pid" -t2 -c32 -d"${secs}s" -s bench/wrk/post.lua "http://127.0.0.1:$port/v1/networks/guide/forward" -- "$tmp/guide.json")
    echo "$w" | figure requests_per_s >>"$tmp/$2.rps"
    echo "$w" | figure cpu_us_per_req >>"$tmp/$2.cpu"
    echo "$w" | figure p50_ms >>"$tmp/$2.p50"
    echo "$w" | figure p99_ms >>"$tmp/$2.p99"
    echo "$w" | figure errors >>"$tmp/$2.err"
    stop
}
# start_bare: starts the bare handler on a free port (sets bare_port and
# bare_pid); a port taken meanwhile, e.g. by one of wrk's own connections,
# is retried on another.
start_bare() {
    for _ in $(seq 10); do
        bare_port=$((20000 + RANDOM % 12000))
        build/bench/bare_http "$bare_port" "$reply" 4 2>/dev/null &
        bare_pid=$!; pids+=("$bare_pid")
        for _ in $(seq 50); do
            curl -s -o /dev/null "http://127.0.0.1:$bare_port/" && return 0
            kill -0 "$bare_pid" 2>/dev/null || break
            sleep 0.05
        done
        kill "$bare_pid" 2>/dev/null || true
        wait "$bare_pid" 2>/dev/null || true
    done
    echo "the bare handler did not start" >&2
    exit 1
}
echo "single-step forward of {i1, i2, i3} >> Dense(10), wrk -t2 -c32"
start build/server/nerved
post /v1/networks "$guide"
reply=$(curl -s -X POST "http://127.0.0.1:$port/v1/networks/guide/forward" -H 'Content-Type: application/json' -d @"$tmp/guide.json" | wc -c)
stop
for round in $(seq "$rounds"); do
    forward build/server/nerved nerved
    [ -n "$ref" ] && forward "$ref" ref
    start_bare
    w=$(measure "$bare_pid" -t2 -c32 -d"${secs}s" -s bench/wrk/post.lua "http://127.0.0.1:$bare_port/" -- "$tmp/guide.json")
    echo "$w" | figure requests_per_s >>"$tmp/bare.rps"
    echo "$w" | figure cpu_us_per_req >>"$tmp/bare.cpu"
    kill "$bare_pid"; wait "$bare_pid" 2>/dev/null || true
    ratio "$(sed -n "${round}p" "$tmp/nerved.rps")" "$(sed -n "${round}p" "$tmp/bare.rps")" >>"$tmp/bare.ratio"
    [ -n "$ref" ] && ratio "$(sed -n "${round}p" "$tmp/nerved.rps")" "$(sed -n "${round}p" "$tmp/ref.rps")" >>"$tmp/ref.ratio"
done
echo "  nerved:           $(summary "$tmp/nerved.rps" %.0f) req/s, $(summary "$tmp/nerved.cpu" %.1f) us of daemon CPU a request, p50 $(median <"$tmp/nerved.p50") ms, p99 $(median <"$tmp/nerved.p99") ms, errors $(range %d <"$tmp/nerved.err")"
if [ -n "$ref" ]; then
    echo "  reference nerved: $(summary "$tmp/ref.rps" %.0f) req/s, $(summary "$tmp/ref.cpu" %.1f) us a request, p50 $(median <"$tmp/ref.p50") ms, p99 $(median <"$tmp/ref.p99") ms"
fi
echo "  bare handler:     $(summary "$tmp/bare.rps" %.0f) req/s, $(summary "$tmp/bare.cpu" %.1f) us a request (the ceiling of wrk and libmicrohttpd here; $reply-byte reply)"
echo "  nerved / bare = $(summary "$tmp/bare.ratio" %.2f)"
[ -n "$ref" ] && echo "  nerved / reference = $(summary "$tmp/ref.ratio" %.2f)"
echo

# Both loads below run beside the same paced /healthz probe (about 100 a
# second), so that the probe's latency is measured under load while its
# own share of the cores is the same for the load and its reference.
for n in 500 2000; do
    res="{\"name\": \"res\", \"seed\": 7, \"nodes\": [{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},
      {\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": $n, \"sparse\": \"false\", \"spectral_radius\": 0.9},
      {\"name\": \"o\", \"type\": \"LinearReadout\", \"num_unit\": 1}], \"edges\": [\"x >> r >> o\"]}"
    echo '{"inputs": {"x": [[0.5]]}}' >"$tmp/one.json"
    python3 -c 'import json; print(json.dumps({"inputs": {"x": [[0.5]] * 64}}))' >"$tmp/b64.json"
    echo "64 streams of Input(1) >> Reservoir($n, dense) >> LinearReadout(1)"
    rm -f "$tmp"/s.* "$tmp"/b64.on "$tmp"/b64.off "$tmp"/b64.best
    for round in $(seq "$rounds"); do
        for mode in on off; do
            if [ "$mode" = on ]; then start build/server/nerved; else start build/server/nerved --batching=0; fi
            post /v1/networks "$res"
            for k in $(seq 0 63); do post /v1/networks/res/sessions "{\"id\": \"c$k\"}"; done
            post /v1/networks/res/sessions '{"id": "b64", "batch": 64}'
            wrk -t1 -c1 -d"${secs}s" -s bench/wrk/paced.lua "http://127.0.0.1:$port/healthz" >"$tmp/health" &
            hw=$!
            w=$(wrk -t2 -c64 -d"${secs}s" -s bench/wrk/streams.lua "http://127.0.0.1:$port" -- res 64 "$tmp/one.json" 2)
            wait "$hw" || true
            echo "$w" | figure requests_per_s >>"$tmp/s.$mode"
            echo "$w" | figure p50_ms >>"$tmp/s.$mode.p50"
            echo "$w" | figure p99_ms >>"$tmp/s.$mode.p99"
            echo "$w" | figure errors >>"$tmp/s.err"
            figure p99_ms <"$tmp/health" >>"$tmp/s.health"
            # The reference on both daemons: with batching on, its one job
            # may wait out the batch window for company; the better counts.
            wrk -t1 -c1 -d"${secs}s" -s bench/wrk/paced.lua "http://127.0.0.1:$port/healthz" >"$tmp/health" &
            hw=$!
            w=$(wrk -t1 -c1 -d"${secs}s" -s bench/wrk/post.lua "http://127.0.0.1:$port/v1/networks/res/sessions/b64/forward" -- "$tmp/b64.json")
            wait "$hw" || true
            echo "$w" | awk '$1 == "requests_per_s" {printf "%.1f\n", $2 * 64}' >>"$tmp/b64.$mode"
            stop
        done
        best=$( (sed -n "${round}p" "$tmp/b64.on"; sed -n "${round}p" "$tmp/b64.off") | sort -g | tail -1)
        echo "$best" >>"$tmp/b64.best"
        ratio "$(sed -n "${round}p" "$tmp/s.on")" "$best" >>"$tmp/s.ratio"
        ratio "$(sed -n "${round}p" "$tmp/s.on")" "$(sed -n "${round}p" "$tmp/s.off")" >>"$tmp/s.gain"
    done
    echo "  64 sessions, batching on:  $(summary "$tmp/s.on" %.0f) stream-steps/s, p50 $(median <"$tmp/s.on.p50") ms, p99 $(median <"$tmp/s.on.p99") ms, errors $(range %d <"$tmp/s.err")"
    echo "  64 sessions, batching off: $(summary "$tmp/s.off" %.0f) stream-steps/s, p50 $(median <"$tmp/s.off.p50") ms, p99 $(median <"$tmp/s.off.p99") ms"
    echo "  one batch-64 session, the better of on and off: $(summary "$tmp/b64.best" %.0f) stream-steps/s (on: $(summary "$tmp/b64.on" %.0f); off: $(summary "$tmp/b64.off" %.0f))"
    echo "  /healthz p99 during the 64-stream load: $(summary "$tmp/s.health") ms"
    echo "  64 sessions / the batch-64 session = $(summary "$tmp/s.ratio" %.2f); gain over batching off = $(summary "$tmp/s.gain" %.2f)x"
    echo
done

echo "/healthz while four long runs (VanillaRNN(400), 100,000 steps) occupy the compute threads"
start build/server/nerved
post /v1/networks '{"name": "long", "nodes": [{"name": "x", "type": "Input", "shape": 1},
  {"name": "r", "type": "VanillaRNN", "num_unit": 400, "activation": "tanh"},
  {"name": "o", "type": "Dense", "num_unit": 1}], "edges": ["x >> r >> o"]}'
python3 -c 'import json; print(json.dumps({"inputs": {"x": [[[0.5]] * 100000]}}))' >"$tmp/long.json"
for k in 1 2 3 4; do
    post /v1/networks/long/sessions "{\"id\": \"l$k\"}"
    curl -s -o /dev/null -X POST "http://127.0.0.1:$port/v1/networks/long/sessions/l$k/run" \
         -H 'Content-Type: application/json' --data-binary @"$tmp/long.json" &
done
sleep 0.5
w=$(wrk -t1 -c1 -d"${secs}s" -s bench/wrk/post.lua "http://127.0.0.1:$port/healthz")
echo "  /healthz: $(echo "$w" | figure requests_per_s) req/s  p50 $(echo "$w" | figure p50_ms) ms  p99 $(echo "$w" | figure p99_ms) ms"
stop
wait
