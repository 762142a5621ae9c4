/*
 * nn_data.h — the time series reservoir computing is measured on, after
 * ReservoirPy's reservoirpy.datasets: Mackey-Glass, Lorenz and NARMA.
 *
 * Each generator fills a caller-owned array of doubles and draws whatever
 * is random from a stream seeded by opts->seed, so a seed gives the same
 * series on every machine. Each has a _defaults function giving the usual
 * constants; bad options are refused with a message naming the option.
 */
#ifndef NN_DATA_H
#define NN_DATA_H

#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* dx/dt = a x(t − tau) / (1 + x(t − tau)^n) − b x(t).
 *
 * Integrated as ReservoirPy does: one RK4 step of size h per sample, with
 * the delayed value x(t − tau) held fixed across the step's four stages;
 * it is read from a history of floor(tau / h) samples. The history starts
 * as x0 + 0.2 (U[0, 1) − 0.5) per sample, drawn from the seeded stream
 * (ReservoirPy's rule), and out[0] = x0. tau = 0 drops the delayed term. */
typedef struct nn_mackey_glass_opts {
    double tau;   /* delay (17: chaotic) */
    double a, b;  /* 0.2, 0.1 */
    double n;     /* exponent, 10 */
    double x0;    /* 1.2 */
    double h;     /* step between samples, 1 */
    uint64_t seed;
} nn_mackey_glass_opts;

void nn_mackey_glass_defaults(nn_mackey_glass_opts *opts);
/* out receives steps samples. */
int nn_mackey_glass(double *out, int steps, const nn_mackey_glass_opts *opts,
                    nn_error *err);

/* dx/dt = sigma (y − x), dy/dt = x (rho − z) − y, dz/dt = x y − beta z,
 * by classical RK4 with a fixed step dt, one step per sample; row 0 is the
 * initial point. */
typedef struct nn_lorenz_opts {
    double sigma, rho, beta; /* 10, 28, 8/3 */
    double x0[3];            /* 1, 1, 1 */
    double dt;               /* 0.03 */
} nn_lorenz_opts;

void nn_lorenz_defaults(nn_lorenz_opts *opts);
/* out receives steps rows of (x, y, z), row-major: 3 * steps values. */
int nn_lorenz(double *out, int steps, const nn_lorenz_opts *opts,
              nn_error *err);

/* NARMA of order m (NARMA-10 for m = 10), after Atiya and Parlos (2000):
 *   y(t+1) = a1 y(t) + a2 y(t) Σ_{i=0}^{m−1} y(t−i) + b u(t−m+1) u(t) + c
 * with u(t) ~ U[0, 0.5) from the seeded stream and every u, y before t = 0
 * taken as 0, so y(0) = 0. Fails with NN_ERR_LIMIT when the series
 * diverges (it can for large m), naming the step. */
typedef struct nn_narma_opts {
    int order;                /* m, 10 */
    double a1, a2, b, c;      /* 0.3, 0.05, 1.5, 0.1 */
    uint64_t seed;
} nn_narma_opts;

void nn_narma_defaults(nn_narma_opts *opts);
/* u and y receive steps values each. */
int nn_narma(double *u, double *y, int steps, const nn_narma_opts *opts,
             nn_error *err);

#ifdef __cplusplus
}
#endif
#endif /* NN_DATA_H */
