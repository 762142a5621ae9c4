"""The same VanillaRNN loop as bench_rnn.c in PyTorch eager mode: 64 inputs,
256 tanh units, 1,000 steps at batch 1, one thread, no autograd. Prints the
best of 5 in milliseconds and the peak resident memory."""
import math
import resource
import time

import torch

STEPS, IN, UNITS = 1000, 64, 256
torch.set_num_threads(1)
torch.manual_seed(1)
cell = torch.nn.RNNCell(IN, UNITS, nonlinearity="tanh")
seq = torch.tensor([[math.sin(0.01 * (t * IN + k)) for k in range(IN)]
                    for t in range(STEPS)], dtype=torch.float32).unsqueeze(1)
best = float("inf")
with torch.no_grad():
    for _ in range(5):
        h = torch.zeros(1, UNITS)
        t0 = time.perf_counter()
        for t in range(STEPS):
            h = cell(seq[t], h)
        best = min(best, time.perf_counter() - t0)
print(f"torch_step_ms {best * 1e3:.3f}")
print(f"torch_peak_mib {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")
