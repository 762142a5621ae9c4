#!/usr/bin/env bash
# The C blocks of docs/custom-nodes.md, in order, are a complete plugin:
# extracts them (leaving out those marked as declarations quoted from nn.h),
# compiles them against the node API's header alone with -Wall -Wextra
# -Werror, loads the result into the daemon and finds its types listed.
#   guide_code.sh SOURCE_DIR NERVED
set -euo pipefail
src=$1 nerved=$2
tmp=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

awk '
    /<!-- .*: not compiled -->/ { skip = 1; next }
    /^```c$/ { if (skip) { skip = 0; quoted = 1 } else inside = 1; next }
    /^```$/ { inside = 0; quoted = 0; next }
    inside { print }
' "$src/docs/custom-nodes.md" > "$tmp/guide.c"
blocks=$(grep -c '^```c$' "$src/docs/custom-nodes.md")
[ "$blocks" -ge 10 ] || { echo "only $blocks C blocks found"; exit 1; }
grep -q nerved_plugin_init "$tmp/guide.c" || { echo "no entry point extracted"; exit 1; }

cc -std=c11 -Wall -Wextra -Werror -shared -fPIC -I "$src/engine" \
   $(pkg-config --cflags openblas) -o "$tmp/libguide_code.so" "$tmp/guide.c" || {
    echo "the guide's code does not compile; extracted as:"; cat -n "$tmp/guide.c"
    exit 1; }

"$nerved" --port 0 --quiet --plugin "$tmp/libguide_code.so" > "$tmp/out.txt" 2> "$tmp/err.txt" &
pid=$!
for _ in $(seq 200); do
    grep -q "listening" "$tmp/out.txt" 2>/dev/null && break
    sleep 0.05
done
port=$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$tmp/out.txt" | head -n 1)
[ -n "$port" ] || { cat "$tmp/err.txt"; exit 1; }
types=$(curl -s "http://127.0.0.1:$port/v1/node-types")
for t in DotNode VRNN FeedBackDotNode GuideDropout; do
    echo "$types" | grep -q "\"name\":\"$t\"" || { echo "type $t missing"; exit 1; }
done
kill -TERM "$pid"
wait "$pid"
pid=""
echo "the guide's code compiles and loads"
