"""The reservoir loops of bench_reservoir.c in NumPy (dense W) and SciPy
(CSR W): leak 0.3, tanh, one input, bias 0.1, float32, one thread; 1,000
units at 10 % and 10,000 units at 1 % connectivity, at batch 1 and 64.
Prints stream-steps per second (steps x batch / s, the best of 3) under
the same keys as bench_reservoir, and, as ReservoirPy does it, the time to
draw a 10,000-unit 1 % W and rescale it with scipy.sparse.linalg.eigs.

As in bench_reservoir, the 1,000-unit W is rescaled to spectral radius 1.25
by eigs; the 10,000-unit W of the stepping loops is drawn as
Normal(0, 0.125), whose radius is 1.25 by the circular law. Times are CPU
seconds of the process (time.process_time), as in bench_reservoir. The 1,000-unit batch-1 loops keep every
state (as a run returns them); the others only step."""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import math  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from scipy.sparse.linalg import eigs  # noqa: E402

LEAK, RADIUS = 0.3, 1.25
rng = np.random.default_rng(1)


def draw(units, density, rescale=True, std=1.0):
    w = sp.random(units, units, density=density, format="csr",
                  random_state=rng, data_rvs=lambda n: std * rng.standard_normal(n))
    if rescale:
        rho = abs(eigs(w, k=1, which="LM", return_eigenvectors=False)[0])
        w = w * (RADIUS / rho)
    return w.astype(np.float32)


def loop(units, recurrent, batch, steps, keep):
    w_in = (rng.uniform(-1, 1, (units, 1)) * (rng.random((units, 1)) < 0.1)).astype(np.float32)
    bias = (0.1 * rng.uniform(-1, 1, (units, 1))).astype(np.float32)
    u = np.array([math.sin(0.05 * k) for k in range(steps + batch)], dtype=np.float32)
    best = float("inf")
    for _ in range(3):
        s = np.zeros((units, batch), dtype=np.float32)  # one column per stream
        out = np.empty((steps, units), dtype=np.float32) if keep else None
        t0 = time.process_time()
        for t in range(steps):
            pre = w_in * u[t:t + batch] + recurrent(s) + bias
            s = (1 - LEAK) * s + LEAK * np.tanh(pre)
            if keep:
                out[t] = s[:, 0]
        best = min(best, time.process_time() - t0)
    return steps * batch / best


CASES = ((1000, 0.1, 10000, 500, 1000), (10000, 0.01, 40, 5, 100))
for units, density, dense1, dense64, sparse64 in CASES:
    dense_w = units <= 2000
    w = draw(units, density, rescale=dense_w, std=1.0 if dense_w else 0.125)
    w_dense_t = np.ascontiguousarray(w.toarray().T)  # s <- Wᵀ s, columns
    w_sparse_t = w.T.tocsr()
    steps1 = {"dense": dense1, "sparse": 10000 if units == 1000 else 1000}
    steps64 = {"dense": dense64, "sparse": sparse64}
    for kind, rec in (("dense", lambda s: w_dense_t @ s),
                      ("sparse", lambda s: w_sparse_t @ s)):
        r1 = loop(units, rec, 1, steps1[kind], units == 1000)
        print(f"numpy_{kind}_{units}_b1_steps_per_s {r1:.0f}", flush=True)
        r64 = loop(units, rec, 64, steps64[kind], False)
        print(f"numpy_{kind}_{units}_b64_steps_per_s {r64:.0f}", flush=True)
    del w_dense_t

t0 = time.process_time()
draw(10000, 0.01)
print(f"scipy_build_10000_s {time.process_time() - t0:.2f}")
print(f"numpy_peak_mib {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")
