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
#   ./dev.sh contract  only the API contract checks (see contract below)
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
# promtool, for the contract checks' look at the metrics exposition.
CONTRACT_PACKAGES=(prometheus)
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
    for target in graph_def tensor edges infer codec params v1binary jsonpush fit; do
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
# tests see as a failed stop. valgrind runs one thread at a time, and its
# default lock lets a busy thread (a training job) keep it for minutes
# while the HTTP thread waits with a reply ready: --fair-sched=yes hands
# it round in turn.
valgrind_integration() {
    local logs
    logs=$(mktemp -d)
    NERVED_WRAPPER="valgrind -q --fair-sched=yes --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 --log-file=$logs/%p.log" \
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

# The API contract, checked by outside tools: Spectral (spectral:oas) and
# Redocly (recommended) lint api/openapi.json with zero errors; every
# response the integration tests logged to $1 (NERVED_RESPONSE_LOG) is
# held against the document a started daemon serves, and a log of wrong
# answers must be refused; a TypeScript client generated from the document
# compiles and runs against the daemon; promtool checks a real scrape. The
# npm tools, pinned by tests/contract/package-lock.json, are installed once
# into .cache/contract; without the registry this fails, it never skips.
contract() {
    local log=$1 tools=.cache/contract
    local bin=$tools/node_modules/.bin
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        install_missing "${NODE_PACKAGES[@]}"
    fi
    command -v promtool >/dev/null || install_missing "${CONTRACT_PACKAGES[@]}"
    mkdir -p "$tools"
    if ! cmp -s tests/contract/package-lock.json "$tools/package-lock.json" ||
            [ ! -x "$bin/spectral" ]; then
        cp tests/contract/package.json tests/contract/package-lock.json "$tools/"
        (cd "$tools" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) || {
            echo "contract: npm ci failed: the pinned tools could not be installed" >&2
            return 1; }
    fi
    "$bin/spectral" lint --display-only-failures --fail-severity error \
        --ruleset tests/contract/spectral.json api/openapi.json
    "$bin/redocly" lint --config tests/contract/redocly.yaml --format=stylish \
        api/openapi.json

    local work port pid rc=0
    work=$(mktemp -d)
    build/server/nerved --port 0 --quiet >"$work/out" 2>&1 &
    pid=$!
    for _ in $(seq 50); do
        port=$(sed -n 's/.*listening on [^:]*:\([0-9]*\).*/\1/p' "$work/out")
        [ -n "$port" ] && break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        echo "contract: the daemon did not start" >&2; cat "$work/out" >&2
        kill "$pid" 2>/dev/null; rm -rf "$work"; return 1
    fi
    {
        curl -sf "http://127.0.0.1:$port/openapi.json" -o "$work/openapi.json" &&
        cmp api/openapi.json "$work/openapi.json" &&
        NODE_PATH=$tools/node_modules node tests/contract/validate_responses.js \
            "$work/openapi.json" "$log" &&
        mkdir "$work/wrong" && cp tests/contract/must_fail.jsonl "$work/wrong/" &&
        if NODE_PATH=$tools/node_modules node tests/contract/validate_responses.js \
                "$work/openapi.json" "$work/wrong" >"$work/wrong.out" 2>&1; then
            echo "contract: the validator passed answers that are wrong" >&2; false
        elif ! grep -q "$(wc -l <tests/contract/must_fail.jsonl) not as documented" \
                "$work/wrong.out"; then
            echo "contract: the validator missed some wrong answers:" >&2
            cat "$work/wrong.out" >&2; false
        fi &&
        mkdir "$work/client" &&
        cp tests/contract/client/main.ts tests/contract/client/tsconfig.json "$work/client/" &&
        "$bin/openapi-typescript" "$work/openapi.json" --default-non-nullable false \
            -o "$work/client/nerved.d.ts" >/dev/null &&
        "$bin/tsc" -p "$work/client/tsconfig.json" --outDir "$work/client/out" &&
        node "$work/client/out/main.js" "http://127.0.0.1:$port" &&
        curl -sf "http://127.0.0.1:$port/metrics" -o "$work/metrics" &&
        promtool check metrics <"$work/metrics" &&
        echo "contract: metrics exposition accepted by promtool"
    } || rc=1
    kill "$pid"
    wait "$pid" || rc=1
    rm -rf "$work"
    return $rc
}

# The integration tests of build/, each response logged for contract.
logged_integration() {
    rm -rf build/responses
    mkdir -p build/responses
    NERVED_RESPONSE_LOG=$PWD/build/responses \
        ctest --test-dir build -R '^it_' --output-on-failure -j "$JOBS"
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
    ctest --test-dir build --output-on-failure -j "$JOBS" -E '^it_'
    logged_integration
    contract build/responses
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
contract)
    install_missing
    build build
    logged_integration
    contract build/responses
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
    echo "usage: $0 run [nerved flags...] | test | fuzz [seconds] | image | contract" >&2
    exit 2
    ;;
esac
