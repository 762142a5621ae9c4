#!/usr/bin/env bash
# Installs nerved into a scratch prefix, builds the guide's plugin there
# with the documented one-line compile (installed header + pkg-config
# file), loads it into the daemon and finds its types listed.
#   plugin_out_of_tree.sh BUILD_DIR SOURCE_DIR NERVED
set -euo pipefail
build=$1 src=$2 nerved=$3
tmp=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pc=$(dirname "$(find "$tmp/prefix" -name nerved.pc | head -n 1)")
export PKG_CONFIG_PATH="$pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
test -f "$tmp/prefix/include/nerved/nn.h"

cp "$src/examples/plugins/guide_nodes.c" "$tmp/"
cd "$tmp"
cc -shared -fPIC -o libguide_nodes.so guide_nodes.c $(pkg-config --cflags --libs nerved)

"$nerved" --port 0 --quiet --plugin ./libguide_nodes.so > out.txt 2> err.txt &
pid=$!
for _ in $(seq 100); do
    grep -q "listening" out.txt 2>/dev/null && break
    sleep 0.05
done
port=$(sed -n 's/.*:\([0-9]*\)$/\1/p' out.txt | head -n 1)
types=$(curl -s "http://127.0.0.1:$port/v1/node-types")
for t in DotNode VRNN FeedBackDotNode GuideDropout; do
    echo "$types" | grep -q "\"name\":\"$t\"" || { echo "type $t missing"; echo "0 passed, 1 failed"; exit 1; }
done
kill -TERM "$pid"
wait "$pid"
pid=""
echo "1 passed, 0 failed"
