#!/usr/bin/env bash
# Builds the Dockerfile and runs the image the way a container runtime
# would, without one: podman builds it (on a bookworm base made by
# mmdebstrap when none is present), its root filesystem is exported, and
# the entrypoint runs in it by chroot as the image's user with the image's
# environment. (`podman run` needs rlimit and namespace changes that many
# build machines refuse; a chroot needs neither.)
#
#   tests/container/image_smoke.sh CACHE_DIR
#
# CACHE_DIR keeps the base's tarball and the exported root filesystem;
# podman's own storage keeps the layers, so a run with unchanged sources
# rebuilds nothing. Exit 0: passed; 1: failed; 3: this machine cannot
# build images (the caller says so loudly).
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=$(mkdir -p "$1" && cd "$1" && pwd)
base_tag=docker.io/library/debian:bookworm-slim   # the Dockerfile's FROM
image=localhost/nerved:smoke
max_mb=150
version=$(sed -n 's/^project(nerved VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)

cannot() { echo "image test: cannot build images here: $*" >&2; exit 3; }
fail() { echo "image test FAILED: $*" >&2; exit 1; }
step() { printf 'image test: %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || cannot "chroot --userspec needs root"
podman info >/dev/null 2>&1 || cannot "podman info fails: $(podman info 2>&1 | tail -1)"

t0=$(date +%s)
# ------------------------------------------------------------------ base
if ! podman image exists "$base_tag"; then
    if [ ! -s "$cache/base-bookworm.tar" ]; then
        step "making the bookworm base with mmdebstrap"
        # The excludes are those of Debian's official slim images; dpkg
        # keeps them for every package the Dockerfile installs later.
        mmdebstrap --quiet --variant=minbase --format=tar \
            --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
            --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/info/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            --dpkgopt='path-include=/usr/share/locale/locale.alias' \
            --dpkgopt='path-exclude=/usr/share/doc/*' \
            --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            bookworm "$cache/base-bookworm.tar.part" >"$cache/mmdebstrap.log" 2>&1 \
            || { tail -20 "$cache/mmdebstrap.log" >&2
                 cannot "mmdebstrap cannot make a bookworm base (no Debian mirror?)"; }
        mv "$cache/base-bookworm.tar.part" "$cache/base-bookworm.tar"
    fi
    podman import -q "$cache/base-bookworm.tar" "$base_tag" >/dev/null
fi
t1=$(date +%s)

# ----------------------------------------------------------------- build
step "building the image"
revision=$(git rev-parse HEAD 2>/dev/null || echo "")
# --format docker: OCI images have no HEALTHCHECK.
build() {
    podman build -q --isolation chroot --network host --format docker \
        --build-arg VERSION="$version" --build-arg REVISION="$revision" \
        "$@" -f Dockerfile . >/dev/null
}
build -t "$image" || fail "podman build"
# The build stage tagged too (from the cache: nothing is redone), so the
# prune of what earlier runs left keeps both stages' layers for the next.
build --target build -t "$image-build" || fail "podman build --target build"
podman image prune -f --filter label=org.opencontainers.image.title=nerved >/dev/null
t2=$(date +%s)

inspect() { podman image inspect "$image" --format "$1"; }
user=$(inspect '{{.Config.User}}')
[[ "$user" =~ ^[0-9]+:[0-9]+$ ]] || fail "the image's user '$user' is not numeric UID:GID"
[ "${user%%:*}" != 0 ] || fail "the image runs as root"
[ "$(inspect '{{index .Config.Labels "org.opencontainers.image.version"}}')" = "$version" ] \
    || fail "the version label is not $version"
inspect '{{.Config.Healthcheck.Test}}' | grep -q -- '--probe' \
    || fail "no HEALTHCHECK with --probe (built without --format docker?)"
size=$(inspect '{{.Size}}')
size_mb=$((size / 1000000))
[ "$size_mb" -le "$max_mb" ] || fail "the image is $size_mb MB, over $max_mb MB"
step "image $image: user $user, $size_mb MB"

# ---------------------------------------------------------------- rootfs
rootfs=$cache/rootfs
rm -rf "$rootfs"
mkdir -p "$rootfs"
# (podman create warns that it cannot arm the health check without
# systemd: nothing here runs the container.)
ctr=$(podman create -q "$image" 2>/dev/null)
podman export "$ctr" | tar -C "$rootfs" -xf - || { podman rm -f "$ctr" >/dev/null; fail "export"; }
podman rm -f "$ctr" >/dev/null 2>&1
mkdir -p "$rootfs/etc/nerved/networks"
cp docker/networks/*.json "$rootfs/etc/nerved/networks/"
# /dev/null and /dev/urandom, as a runtime provides.
for d in null urandom; do
    [ -c "$rootfs/dev/$d" ] || { rm -f "$rootfs/dev/$d"; cp -a "/dev/$d" "$rootfs/dev/$d"; }
done
t3=$(date +%s)

mapfile -t image_env < <(inspect '{{range .Config.Env}}{{println .}}{{end}}' | sed '/^$/d')
mapfile -t entrypoint < <(inspect '{{range .Config.Entrypoint}}{{println .}}{{end}}' | sed '/^$/d')
# The image's environment; only the port moves (8080 may be taken on a
# shared machine: the daemon picks a free one and prints it), and the
# probe must follow it. NERVED_PRELOAD as the manifests set it.
base_env=("${image_env[@]}" "NERVED_PRELOAD=/etc/nerved/networks" "NERVED_QUIET=1")
in_image() { env -i "${run_env[@]}" chroot --userspec="$user" "$rootfs" "$@"; }

log=$cache/nerved.log
pid=
start() {
    : >"$log.out"
    # A simple command, so $! is the daemon itself (env and chroot exec).
    env -i "${base_env[@]}" NERVED_PORT=0 chroot --userspec="$user" "$rootfs" \
        "${entrypoint[@]}" >"$log.out" 2>>"$log" &
    pid=$!
    for _ in $(seq 100); do
        port=$(sed -n 's/^nerved listening on .*:\([0-9]*\)$/\1/p' "$log.out")
        if [ -n "$port" ]; then
            url=http://127.0.0.1:$port
            run_env=("${base_env[@]}" "NERVED_PORT=$port")
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$log" >&2
    fail "the daemon did not start in the image"
}
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; true' EXIT
: >"$log"
post() { curl -sS -f -X POST "$url$1" -H 'Content-Type: application/json' -d "$2"; }
# The first number of the "o" output of an answer.
first_o() { sed -n 's/.*"o":\[*\([-0-9.eE+]*\).*/\1/p' <<<"$1"; }
# The KServe answer's first datum.
first_datum() { sed -n 's/.*"data":\[\([-0-9.eE+]*\).*/\1/p' <<<"$1"; }
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d;
    m = a < 0 ? -a : a; exit !(a != "" && b != "" && d <= 1e-5 * m + 1e-6) }'; }

step "starting the entrypoint as $user"
start
curl -fsS "$url/healthz" | grep -q '"ok"' || fail "/healthz"
in_image /usr/bin/nerved --probe || fail "--probe against the running daemon"
if env -i "${run_env[@]/#NERVED_PORT=*/NERVED_PORT=1}" chroot --userspec="$user" \
        "$rootfs" /usr/bin/nerved --probe 2>/dev/null; then
    fail "--probe passed against a port nobody serves"
fi

net=example-rnn
out=$(post "/v1/networks/$net/forward" '{"inputs": {"x": [[0.5, -1]]}}') || fail "forward"
[ -n "$(first_o "$out")" ] || fail "forward answered $out"

# KServe sequence: the second step sees the first's state.
kin='"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [0.5, -1]}]'
k1=$(post "/v2/models/$net/infer" "{$kin, \"parameters\": {\"sequence_id\": \"smoke\", \"sequence_start\": true}}") || fail "infer start"
k2=$(post "/v2/models/$net/infer" "{$kin, \"parameters\": {\"sequence_id\": \"smoke\"}}") || fail "infer"
k3=$(post "/v2/models/$net/infer" "{$kin, \"parameters\": {\"sequence_id\": \"smoke\", \"sequence_end\": true}}") || fail "infer end"
close "$(first_datum "$k1")" "$(first_o "$out")" || fail "a sequence's first step differs from a forward"
if close "$(first_datum "$k2")" "$(first_datum "$k1")"; then fail "the sequence kept no state"; fi
[ -n "$(first_datum "$k3")" ] || fail "infer end answered $k3"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/v2/models/$net/infer" \
    -H 'Content-Type: application/json' -d "{$kin, \"parameters\": {\"sequence_id\": \"smoke\"}}")
[ "$code" = 400 ] || fail "an ended sequence answered $code, not 400"

# A session and its twin take the same steps; the session is
# checkpointed, the twin takes one step more: the restored session's next
# step must equal it.
post "/v1/networks/$net/sessions" '{"id": "kept"}' >/dev/null || fail "session"
post "/v1/networks/$net/sessions" '{"id": "twin"}' >/dev/null || fail "session"
for i in 1 2 3; do
    for s in kept twin; do
        post "/v1/networks/$net/sessions/$s/forward" "{\"inputs\": {\"x\": [[$i, 0.25]]}}" >/dev/null \
            || fail "step $i of $s"
    done
done
post "/v1/networks/$net/sessions/kept/checkpoint" '' >/dev/null || fail "checkpoint"
want=$(first_o "$(post "/v1/networks/$net/sessions/twin/forward" '{"inputs": {"x": [[4, 0.25]]}}')")
data=$rootfs/var/lib/nerved
ckpt=$(find "$data" -name 'ckpt-*-kept.nerved')
[ -n "$ckpt" ] || fail "no checkpoint file in the data volume"
[ "$(stat -c %u:%g "$ckpt")" = "$user" ] || fail "the checkpoint is owned by $(stat -c %u:%g "$ckpt"), not $user"

step "SIGTERM and restart"
kill -TERM "$pid"
wait "$pid" || fail "the daemon exited $? after SIGTERM"
grep -q "signal 15, shutting down" "$log" || fail "no graceful shutdown in the log"
# SIGTERM checkpoints every idle session: kept (again, at the same step)
# and twin.
grep -q "2 session checkpoints written" "$log" || fail "SIGTERM did not checkpoint both sessions: $(cat "$log")"
start
grep -q "2 session checkpoints restored" "$log" || fail "the checkpoints were not restored: $(cat "$log")"
got=$(first_o "$(post "/v1/networks/$net/sessions/kept/forward" '{"inputs": {"x": [[4, 0.25]]}}')")
close "$got" "$want" || fail "the restored session gave $got, the uninterrupted one $want"
kill -TERM "$pid"
wait "$pid" || fail "the daemon exited $? after the second SIGTERM"
pid=
t4=$(date +%s)
step "passed: base $((t1 - t0)) s, build $((t2 - t1)) s, export $((t3 - t2)) s, run $((t4 - t3)) s; image $size_mb MB"
