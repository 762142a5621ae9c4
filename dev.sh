#!/usr/bin/env bash
# The two commands of nerved's README:
#   ./dev.sh run   install what is missing, build, start the server
#   ./dev.sh test  install what is missing, build and run every test; then
#                  again under AddressSanitizer + UBSan and under
#                  ThreadSanitizer, the integration tests once with the
#                  daemon under valgrind, and each fuzz target for a while
#                  (NERVED_FUZZ_SECONDS, default 30)
#   ./dev.sh fuzz [SECONDS]  only the fuzzing, longer (default 600 each)
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(build-essential cmake pkg-config libopenblas-dev libmicrohttpd-dev
          libcjson-dev libcurl4-openssl-dev libcunit1-dev curl nginx openssl
          valgrind clang libclang-rt-dev)
JOBS=$(nproc 2>/dev/null || echo 2)

install_missing() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
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
    for target in graph_def tensor edges codec; do
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
    build build-asan -DNERVED_SANITIZE=ON
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
    ;;
fuzz)
    install_missing
    fuzz "${2:-600}"
    ;;
*)
    echo "usage: $0 run [nerved flags...] | test | fuzz [seconds]" >&2
    exit 2
    ;;
esac
