#!/usr/bin/env bash
# The two commands of nerved's README:
#   ./dev.sh run   install what is missing, build, start the server
#   ./dev.sh test  install what is missing, build and run every test,
#                  then again under AddressSanitizer + UBSan
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(build-essential cmake pkg-config libopenblas-dev libmicrohttpd-dev
          libcjson-dev libcurl4-openssl-dev libcunit1-dev curl nginx openssl)
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
    ;;
*)
    echo "usage: $0 run [nerved flags...] | test" >&2
    exit 2
    ;;
esac
