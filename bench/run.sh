#!/usr/bin/env bash
# Runs the engine benchmarks and prints the figures the README reports.
# PyTorch, NumPy and SciPy come from Debian's python3-torch, python3-numpy
# and python3-scipy, installed here if missing (they are large, so the test
# command never installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target bench_dense bench_rnn bench_train bench_reservoir bench_batch bench_http bench_wire >/dev/null
if ! /usr/bin/python3 -c 'import torch, numpy, scipy' 2>/dev/null; then
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd=sudo
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        python3-torch python3-numpy python3-scipy </dev/null
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo
build/bench/bench_dense 1
echo
nerved=$(build/bench/bench_rnn 1)
torch=$(/usr/bin/python3 bench/rnn_torch.py)
echo "VanillaRNN(256), 64 inputs, 1,000 steps at batch 1, one thread"
echo "$nerved" | sed 's/^/  /'
echo "$torch" | sed 's/^/  /'
step=$(echo "$nerved" | awk '/nerved_step_ms/ {print $2}')
run=$(echo "$nerved" | awk '/nerved_run_ms/ {print $2}')
pt=$(echo "$torch" | awk '/torch_step_ms/ {print $2}')
awk -v s="$step" -v r="$run" -v p="$pt" 'BEGIN {
    printf "  speed-up over PyTorch eager: %.1fx (steps), %.1fx (run)\n", p / s, p / r }'
echo
nerved=$(build/bench/bench_train)
torch=$(/usr/bin/python3 bench/train_torch.py)
echo "Training, one thread: ridge over a frozen RNN(500) for 5,000 steps;"
echo "one BPTT update of RNN(128) + Dense(1) on 32 x 50 steps, Adam"
echo "$nerved" | sed 's/^/  /'
echo "$torch" | sed 's/^/  /'
echo "$nerved $torch" | tr ' ' '\n' | paste - - | awk '
    {v[$1] = $2}
    END {printf "  speed-up over PyTorch: %.1fx (ridge), %.1fx (bptt update)\n",
         v["torch_ridge_ms"] / v["nerved_ridge_ms"],
         v["torch_bptt_update_ms"] / v["nerved_bptt_update_ms"]}'
echo
nerved=$(build/bench/bench_reservoir 1)
numpy=$(/usr/bin/python3 bench/reservoir_numpy.py)
echo "Reservoir, leak 0.3, tanh, one thread; stream-steps/s (steps x batch / s)"
echo "(OpenBLAS core: $(echo "$nerved" | awk '$1 == "nerved_openblas_core" {print $2}');" \
     "sparse batch-1 inputs: $(echo "$nerved" | awk '$1 == "nerved_sparse_b1_kernel" {print $2}'))"
printf "  %-34s %12s %12s %7s\n" "" nerved NumPy/SciPy ratio
for units in 1000 10000; do
    for kind in dense sparse; do
        for b in 1 64; do
            key="${kind}_${units}_b${b}_steps_per_s"
            a=$(echo "$nerved" | awk -v k="nerved_$key" '$1 == k {print $2}')
            c=$(echo "$numpy" | awk -v k="numpy_$key" '$1 == k {print $2}')
            awk -v a="$a" -v c="$c" -v u="$units" -v k="$kind" -v b="$b" 'BEGIN {
                printf "  %-34s %12d %12d %7.2f\n",
                       sprintf("%d units, W %s, batch %d", u, k, b), a, c, a / c }'
        done
    done
done
a=$(echo "$nerved" | awk '$1 == "nerved_build_10000_s" {print $2}')
c=$(echo "$numpy" | awk '$1 == "scipy_build_10000_s" {print $2}')
awk -v a="$a" -v c="$c" 'BEGIN {
    printf "  %-34s %10.2f s %10.2f s %7.2f\n", "build 10,000 units at 1 %, radius", a, c, c / a }'
for units in 1000 10000; do
    ins=$(echo "$nerved" | awk -v k="nerved_sparse_${units}_b1_insert_steps_per_s" '$1 == k {print $2}')
    [ -n "$ins" ] && echo "  sparse $units units, batch 1, inputs loaded one by one instead of gathered: $ins"
done
for units in 1000 10000; do
    one=$(echo "$nerved" | awk -v k="nerved_sparse_${units}_b1_steps_per_s" '$1 == k {print $2}')
    many=$(echo "$nerved" | awk -v k="nerved_sparse_${units}_b64_steps_per_s" '$1 == k {print $2}')
    awk -v o="$one" -v m="$many" -v u="$units" 'BEGIN {
        printf "  sparse %d units: batch 64 / batch 1 = %.1fx stream-steps\n", u, m / o }'
done
echo
echo "64 batch-1 sessions of Input(1) >> Reservoir(N, dense) >> LinearReadout(1),"
echo "stepped one by one, with nn_session_step_many, and as one batch-64 session"
build/bench/bench_batch 1 | sed 's/^/  /'
echo
build/bench/bench_http build/server/nerved 3 2 2 2>/dev/null
echo
build/bench/bench_wire build/server/nerved 2>/dev/null
