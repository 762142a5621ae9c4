"""The trainers of bench_train.c in PyTorch, on the same shapes and data:
ridge (a frozen tanh RNNCell(8 -> 500) run over 5,000 steps, then XᵀX, XᵀY
in float64 and a Cholesky solve) and one BPTT update (RNN(32 -> 128, tanh)
+ Linear(1), 32 sequences of 50 steps, MSE, Adam). One thread. Prints the
best times in milliseconds."""
import math
import time

import torch

torch.set_num_threads(1)
torch.manual_seed(1)


def wave(n, t, f, freq):
    k = torch.arange(n * t * f, dtype=torch.float32)
    return torch.sin(freq * k).reshape(n, t, f)


def ridge():
    T, WARMUP = 5000, 100
    cell = torch.nn.RNNCell(8, 500, nonlinearity="tanh")
    x, y = wave(1, T, 8, 0.01)[0], wave(1, T, 1, 0.013)[0]
    best = math.inf
    with torch.no_grad():
        for _ in range(3):
            t0 = time.perf_counter()
            h = torch.zeros(1, 500)
            states = torch.empty(T, 501, dtype=torch.float64)
            for t in range(T):
                h = cell(x[t:t + 1], h)
                states[t, :500] = h[0]
            states[:, 500] = 1.0
            X, Y = states[WARMUP:], y[WARMUP:].double()
            A = X.T @ X + 1e-6 * torch.eye(501, dtype=torch.float64)
            L = torch.linalg.cholesky(A)
            torch.cholesky_solve(X.T @ Y, L)
            best = min(best, time.perf_counter() - t0)
    return best * 1e3


def bptt():
    rnn = torch.nn.RNN(32, 128, nonlinearity="tanh", batch_first=True)
    lin = torch.nn.Linear(128, 1)
    opt = torch.optim.Adam(list(rnn.parameters()) + list(lin.parameters()),
                           lr=1e-3)
    x, y = wave(32, 50, 32, 0.01), wave(32, 50, 1, 0.05)
    best = math.inf
    for _ in range(20):
        t0 = time.perf_counter()
        opt.zero_grad()
        out, _ = rnn(x)
        loss = torch.nn.functional.mse_loss(lin(out), y)
        loss.backward()
        opt.step()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


print(f"torch_ridge_ms {ridge():.3f}")
print(f"torch_bptt_update_ms {bptt():.3f}")
