#!/usr/bin/env bash
# Runs the engine benchmarks and prints the figures the README reports.
# PyTorch, NumPy and SciPy come from Debian's python3-torch, python3-numpy
# and python3-scipy, installed here if missing (they are large, so the test
# command never installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target bench_dense bench_rnn bench_train bench_reservoir bench_batch bench_http >/dev/null
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
echo "Reservoir(1000), 10 % connectivity, 10,000 steps at batch 1, one thread"
echo "$nerved" | sed 's/^/  /'
echo "$numpy" | sed 's/^/  /'
for kind in dense sparse; do
    a=$(echo "$nerved" | awk -v k="nerved_${kind}_steps_per_s" '$1 == k {print $2}')
    b=$(echo "$numpy" | awk -v k="numpy_${kind}_steps_per_s" '$1 == k {print $2}')
    awk -v a="$a" -v b="$b" -v k="$kind" 'BEGIN {
        printf "  %s: nerved / NumPy-SciPy = %.2f\n", k, a / b }'
done
echo
echo "64 batch-1 sessions of Input(1) >> Reservoir(N, dense) >> LinearReadout(1),"
echo "stepped one by one, with nn_session_step_many, and as one batch-64 session"
build/bench/bench_batch 1 | sed 's/^/  /'
echo
build/bench/bench_http build/server/nerved 3 2 2 2>/dev/null
