#!/usr/bin/env bash
# Runs the HTTP examples at their small size against a started daemon and
# holds them to the accuracy the README promises:
#   esn_mackey_glass  one-step NRMSE < 0.01
#   nvar_lorenz       NRMSE over one Lyapunov time < 0.05
#   force_periodic    free-running NRMSE < 0.1
#   examples.sh NERVED EXAMPLES_DIR
set -euo pipefail
nerved=$1 dir=$2
tmp=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

${NERVED_WRAPPER:-} "$nerved" --port 0 --quiet > "$tmp/out" 2> "$tmp/err" &
pid=$!
port=""
for _ in $(seq 400); do
    port=$(sed -n 's/^nerved listening on [^:]*:\([0-9]*\)$/\1/p' "$tmp/out")
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { cat "$tmp/err" >&2; exit 1; }
url="http://127.0.0.1:$port"

"$dir/esn_mackey_glass" --url "$url" --small --check 0.01
"$dir/nvar_lorenz" --url "$url" --small --check 0.05
"$dir/force_periodic" --url "$url" --small --check 0.1

kill "$pid"
wait "$pid"
pid=""
