#!/usr/bin/env bash
# The two commands of nerved's README:
#   ./dev.sh run   install what is missing, build, start the server
#   ./dev.sh test  install what is missing, build and run every test; then
#                  again under AddressSanitizer + UBSan and under
#                  ThreadSanitizer, the integration tests once with the
#                  daemon under valgrind, and each fuzz target for a while
#                  (NERVED_FUZZ_SECONDS, default 30)
#                  then validates the Kubernetes and compose files and
#                  builds and smoke-tests the container image
#   ./dev.sh fuzz [SECONDS]  only the fuzzing, longer (default 600 each)
#   ./dev.sh image  only the manifest checks and the image test
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(build-essential cmake pkg-config libopenblas-dev libmicrohttpd-dev
          libcjson-dev libcurl4-openssl-dev libcunit1-dev libarpack2-dev curl nginx openssl
          valgrind clang libclang-rt-dev zlib1g-dev)
JOBS=$(nproc 2>/dev/null || echo 2)

# The image test's tools and the manifest validators' runtime; installed
# by those stages only.
IMAGE_PACKAGES=(podman buildah mmdebstrap uidmap)
NODE_PACKAGES=(nodejs npm)
# The image test's cache (base tarball, exported root filesystem) and the
# validators' node_modules; podman's storage keeps the image layers.
IMAGE_CACHE=build-image

# install_missing [PACKAGE...]: PACKAGES by default.
install_missing() {
    local missing=() wanted=("$@")
    [ ${#wanted[@]} -eq 0 ] && wanted=("${PACKAGES[@]}")
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" </dev/null
}

# Runs each libFuzzer target for $1 seconds from the committed corpus; new
# inputs go to a scratch corpus, crashes to build-fuzz/, and either fails.
fuzz() {
    local seconds=$1
    CC=clang build build-fuzz -DNERVED_FUZZ=ON -DNERVED_TESTS=OFF
    for target in graph_def tensor edges infer codec; do
        local scratch log
        scratch=$(mktemp -d)
        log=build-fuzz/fuzz_$target.log
        echo "fuzzing $target for ${seconds}s"
        if ! build-fuzz/tests/fuzz/fuzz_$target -max_total_time="$seconds" \
                -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
                -artifact_prefix=build-fuzz/ "$scratch" \
                "tests/fuzz/corpus/$target" >"$log" 2>&1; then
            tail -40 "$log" >&2
            rm -rf "$scratch"
            echo "fuzz_$target failed; the input is in build-fuzz/" >&2
            return 1
        fi
        grep -E '^stat::number_of_executed_units' "$log" || true
        rm -rf "$scratch"
    done
}

# The integration tests with every daemon they start run under valgrind;
# a definite leak or a memory error makes the daemon exit 99, which the
# tests see as a failed stop.
valgrind_integration() {
    local logs
    logs=$(mktemp -d)
    NERVED_WRAPPER="valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 --log-file=$logs/%p.log" \
        ctest --test-dir build -R '^it_' --output-on-failure -j "$JOBS" || {
            cat "$logs"/*.log >&2; rm -rf "$logs"; return 1; }
    rm -rf "$logs"
}

# docker/k8s against the Kubernetes API schemas and the restricted Pod
# Security Standard, docker/compose.yaml against the Compose
# specification, with negative controls (tests/container/).
check_manifests() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        install_missing "${NODE_PACKAGES[@]}"
    fi
    local dir=$IMAGE_CACHE/npm
    mkdir -p "$dir"
    # Reinstalled only when the pinned lock file changes.
    if ! cmp -s tests/container/package-lock.json "$dir/package-lock.json" ||
       [ ! -d "$dir/node_modules" ]; then
        cp tests/container/package.json tests/container/package-lock.json "$dir/"
        (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
    fi
    NODE_PATH=$dir/node_modules node tests/container/validate_manifests.js .
}

# Builds the Dockerfile and runs the image (tests/container/image_smoke.sh).
# Skipped only where images cannot be built at all, and then loudly;
# NERVED_REQUIRE_IMAGE=1 makes that a failure.
image_smoke() {
    local rc=0 why=""
    if ! install_missing "${IMAGE_PACKAGES[@]}"; then
        rc=3 why="podman, buildah and mmdebstrap cannot be installed"
    else
        # chroot --userspec needs root; passwordless sudo will do.
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo -n true 2>/dev/null && sudo="sudo -n"
        $sudo tests/container/image_smoke.sh "$IMAGE_CACHE" || rc=$?
    fi
    [ "$rc" -eq 0 ] && return 0
    [ "$rc" -ne 3 ] && return "$rc"
    {
        echo "################################################################"
        echo "# IMAGE TEST SKIPPED: this machine cannot build images."
        [ -n "$why" ] && echo "# $why"
        echo "# The Dockerfile was NOT built or run. Set NERVED_REQUIRE_IMAGE=1"
        echo "# to make this a failure."
        echo "################################################################"
    } >&2
    [ "${NERVED_REQUIRE_IMAGE:-0}" = 1 ] && return 1
    return 0
}

# build DIR [cmake options...]
build() {
    local dir=$1
    shift
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$dir" -j "$JOBS"
}

case "${1:-}" in
run)
    shift
    install_missing
    build build
    if [ -x build/server/nerved ]; then
        exec build/server/nerved "$@"
    fi
    exec build/guide_dotnode "$@"
    ;;
test)
    install_missing
    build build
    ctest --test-dir build --output-on-failure -j "$JOBS"
    # clang: its UBSan sees float-to-int casts out of range, which GCC's
    # misses.
    CC=clang build build-asan -DNERVED_SANITIZE=ON
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --test-dir build-asan --output-on-failure -j "$JOBS"
    # OpenBLAS starts no pool with one thread: a pool thread started before
    # main, uninstrumented, could take the stop signal, which
    # ThreadSanitizer would then hold back forever.
    build build-tsan -DNERVED_TSAN=ON
    OPENBLAS_NUM_THREADS=1 TSAN_OPTIONS=halt_on_error=1 \
        ctest --test-dir build-tsan --output-on-failure -j "$JOBS"
    valgrind_integration
    fuzz "${NERVED_FUZZ_SECONDS:-30}"
    check_manifests
    image_smoke
    ;;
image)
    check_manifests
    image_smoke
    ;;
fuzz)
    install_missing
    fuzz "${2:-600}"
    ;;
*)
    echo "usage: $0 run [nerved flags...] | test | fuzz [seconds] | image" >&2
    exit 2
    ;;
esac
