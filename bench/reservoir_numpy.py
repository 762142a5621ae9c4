"""The same reservoir loop as bench_reservoir.c in NumPy (dense W) and
SciPy (CSR W): 1,000 units, leak 0.3, tanh, spectral radius 1.25, 10 %
connectivity, one input, 10,000 steps at batch 1, float32, one thread.
Prints steps per second (the best of 3) and, as ReservoirPy does it, the
time to rescale a 10,000-unit 1 % W with scipy.sparse.linalg.eigs."""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import math  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from scipy.sparse.linalg import eigs  # noqa: E402

STEPS, UNITS, LEAK, RADIUS = 10000, 1000, 0.3, 1.25
rng = np.random.default_rng(1)


def draw(units, density):
    w = sp.random(units, units, density=density, format="csr",
                  random_state=rng, data_rvs=rng.standard_normal)
    rho = abs(eigs(w, k=1, which="LM", return_eigenvectors=False)[0])
    return (w * (RADIUS / rho)).astype(np.float32)


w_sparse = draw(UNITS, 0.1)
w_dense = w_sparse.toarray()
w_in = (rng.uniform(-1, 1, UNITS) * (rng.random(UNITS) < 0.1)).astype(np.float32)
bias = (0.1 * rng.uniform(-1, 1, UNITS)).astype(np.float32)
u = np.array([math.sin(0.05 * k) for k in range(STEPS)], dtype=np.float32)
w_sparse_t = w_sparse.T.tocsr()  # s @ W as Wᵀ s, a CSR product


def run(recurrent):
    s = np.zeros(UNITS, dtype=np.float32)
    out = np.empty((STEPS, UNITS), dtype=np.float32)
    for t in range(STEPS):
        pre = u[t] * w_in + recurrent(s) + bias
        s = (1 - LEAK) * s + LEAK * np.tanh(pre)
        out[t] = s
    return out


for name, recurrent in (("dense", lambda s: s @ w_dense),
                        ("sparse", lambda s: w_sparse_t @ s)):
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        run(recurrent)
        best = min(best, time.perf_counter() - t0)
    print(f"numpy_{name}_steps_per_s {STEPS / best:.0f}")

t0 = time.perf_counter()
draw(10000, 0.01)
print(f"scipy_build_10000_s {time.perf_counter() - t0:.2f}")
print(f"numpy_peak_mib {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")
