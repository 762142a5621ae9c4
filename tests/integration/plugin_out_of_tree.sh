#!/usr/bin/env bash
# Installs nerved into a scratch prefix, builds the guide's plugin there
# with the documented one-line compile (installed header + pkg-config
# file), loads it into the daemon and finds its types listed; then builds
# it again against the build tree (nerved-uninstalled.pc) and loads that.
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

# Starts the daemon with plugin $1 and checks the guide's types are listed.
check_loaded() {
    "$nerved" --port 0 --quiet --plugin "$1" > out.txt 2> err.txt &
    pid=$!
    for _ in $(seq 100); do
        grep -q "listening" out.txt 2>/dev/null && break
        sleep 0.05
    done
    port=$(sed -n 's/.*:\([0-9]*\)$/\1/p' out.txt | head -n 1)
    types=$(curl -s "http://127.0.0.1:$port/v1/node-types")
    for t in DotNode VRNN FeedBackDotNode GuideDropout; do
        echo "$types" | grep -q "\"name\":\"$t\"" || { echo "type $t missing ($1)"; cat err.txt; echo "0 passed, 1 failed"; exit 1; }
    done
    kill -TERM "$pid"
    wait "$pid"
    pid=""
}
check_loaded ./libguide_nodes.so

# Against the build tree: pkg-config takes nerved-uninstalled.pc from the
# build directory, whose include directory is the source's engine/.
export PKG_CONFIG_PATH="$build"
cflags=$(pkg-config --cflags nerved)
case "$cflags" in
*"$src/engine"*) ;;
*) echo "pkg-config did not take nerved-uninstalled.pc: '$cflags'"; exit 1 ;;
esac
cc -shared -fPIC -o libguide_uninstalled.so guide_nodes.c $(pkg-config --cflags --libs nerved)
check_loaded ./libguide_uninstalled.so
echo "2 passed, 0 failed"
