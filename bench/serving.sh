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
#   bench/serving.sh [REFERENCE_NERVED]   (SECONDS=5 per measurement)
set -euo pipefail
cd "$(dirname "$0")/.."
ref=${1:-}
secs=${SECONDS_PER_RUN:-5}
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

guide='{"name": "guide", "seed": 2022, "nodes": [{"name": "i1", "type": "Input", "shape": 1},
  {"name": "i2", "type": "Input", "shape": 2}, {"name": "i3", "type": "Input", "shape": 3},
  {"name": "l", "type": "Dense", "num_unit": 10}], "edges": ["{i1, i2, i3} >> l"]}'
echo '{"inputs": {"i1": [[1]], "i2": [[0, 0]], "i3": [[0.2, 0.5, 0.9]]}}' >"$tmp/guide.json"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "wrk -t2, ${secs} s a measurement"
echo
echo "single-step forward of {i1, i2, i3} >> Dense(10), wrk -t2 -c32"
start build/server/nerved
post /v1/networks "$guide"
reply=$(curl -s -X POST "http://127.0.0.1:$port/v1/networks/guide/forward" -H 'Content-Type: application/json' -d @"$tmp/guide.json" | wc -c)
w=$(wrk -t2 -c32 -d"${secs}s" -s bench/wrk/post.lua "http://127.0.0.1:$port/v1/networks/guide/forward" -- "$tmp/guide.json")
nerved_rps=$(echo "$w" | figure requests_per_s)
echo "  nerved:              $nerved_rps req/s  p50 $(echo "$w" | figure p50_ms) ms  p99 $(echo "$w" | figure p99_ms) ms  errors $(echo "$w" | figure errors)"
stop
if [ -n "$ref" ]; then
    start "$ref"
    post /v1/networks "$guide"
    w=$(wrk -t2 -c32 -d"${secs}s" -s bench/wrk/post.lua "http://127.0.0.1:$port/v1/networks/guide/forward" -- "$tmp/guide.json")
    ref_rps=$(echo "$w" | figure requests_per_s)
    echo "  reference nerved:    $ref_rps req/s  p50 $(echo "$w" | figure p50_ms) ms  p99 $(echo "$w" | figure p99_ms) ms"
    stop
fi
bare_port=$((20000 + RANDOM % 20000))
build/bench/bare_http "$bare_port" "$reply" 4 &
bare_pid=$!; pids+=("$bare_pid")
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$bare_port/" && break
    sleep 0.1
done
w=$(wrk -t2 -c32 -d"${secs}s" -s bench/wrk/post.lua "http://127.0.0.1:$bare_port/" -- "$tmp/guide.json")
bare_rps=$(echo "$w" | figure requests_per_s)
kill "$bare_pid"; wait "$bare_pid" 2>/dev/null || true
echo "  bare handler:        $bare_rps req/s (the ceiling of wrk and libmicrohttpd here; $reply-byte reply)"
awk -v a="$nerved_rps" -v b="$bare_rps" 'BEGIN {printf "  nerved / bare = %.2f\n", a / b}'
[ -n "$ref" ] && awk -v a="$nerved_rps" -v b="$ref_rps" 'BEGIN {printf "  nerved / reference = %.2f\n", a / b}'
echo

for n in 500 2000; do
    res="{\"name\": \"res\", \"seed\": 7, \"nodes\": [{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},
      {\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": $n, \"sparse\": \"false\", \"spectral_radius\": 0.9},
      {\"name\": \"o\", \"type\": \"LinearReadout\", \"num_unit\": 1}], \"edges\": [\"x >> r >> o\"]}"
    echo '{"inputs": {"x": [[0.5]]}}' >"$tmp/one.json"
    python3 -c 'import json; print(json.dumps({"inputs": {"x": [[0.5]] * 64}}))' >"$tmp/b64.json"
    echo "64 streams of Input(1) >> Reservoir($n, dense) >> LinearReadout(1)"
    for mode in on off; do
        if [ "$mode" = on ]; then start build/server/nerved; else start build/server/nerved --batching=0; fi
        post /v1/networks "$res"
        for k in $(seq 0 63); do post /v1/networks/res/sessions "{\"id\": \"c$k\"}"; done
        post /v1/networks/res/sessions '{"id": "b64", "batch": 64}'
        wrk -t1 -c1 -d"${secs}s" -s bench/wrk/post.lua "http://127.0.0.1:$port/healthz" >"$tmp/health" &
        hw=$!
        w=$(wrk -t2 -c64 -d"${secs}s" -s bench/wrk/streams.lua "http://127.0.0.1:$port" -- res 64 "$tmp/one.json" 2)
        wait "$hw" || true
        sep=$(echo "$w" | figure requests_per_s)
        echo "  64 sessions, batching $mode: $sep stream-steps/s  p50 $(echo "$w" | figure p50_ms) ms  p99 $(echo "$w" | figure p99_ms) ms  errors $(echo "$w" | figure errors); /healthz p99 $(figure p99_ms <"$tmp/health") ms"
        [ "$mode" = on ] && sep_on=$sep || sep_off=$sep
        # The reference on both daemons: with batching on, its one job may
        # wait out the batch window for company; the better figure counts.
        w=$(wrk -t1 -c1 -d"${secs}s" -s bench/wrk/post.lua "http://127.0.0.1:$port/v1/networks/res/sessions/b64/forward" -- "$tmp/b64.json")
        one=$(echo "$w" | figure requests_per_s)
        steps_now=$(awk -v r="$one" 'BEGIN {printf "%.1f", r * 64}')
        echo "  one batch-64 session, batching $mode: $steps_now stream-steps/s  p50 $(echo "$w" | figure p50_ms) ms  p99 $(echo "$w" | figure p99_ms) ms"
        if [ "$mode" = on ] || awk -v a="$steps_now" -v b="$one_steps" 'BEGIN {exit !(a > b)}'; then
            one_steps=$steps_now
        fi
        stop
    done
    awk -v a="$sep_on" -v b="$one_steps" -v c="$sep_off" 'BEGIN {
        printf "  64 sessions / the better batch-64 session = %.2f; gain over batching off = %.2fx\n", a / b, a / c }'
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
