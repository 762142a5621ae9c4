/*
 * data.c — Mackey-Glass, Lorenz and NARMA series (see nn_data.h).
 *
 * All arithmetic is plain double-precision C in a fixed order, so a seed
 * gives bit-identical series on every machine.
 */
#include "nn_data.h"

#include <math.h>

static int check_steps(int steps, nn_error *err)
{
    if (steps < 1)
        return nn_error_set(err, NN_ERR_INVALID, "steps must be at least 1, "
                            "got %d", steps);
    return NN_OK;
}

static int check_finite(const char *name, double v, int positive,
                        nn_error *err)
{
    if (!isfinite(v) || (positive && !(v > 0)))
        return nn_error_set(err, NN_ERR_INVALID, "%s must be a finite%s "
                            "number, got %g", name,
                            positive ? " positive" : "", v);
    return NN_OK;
}

/* ------------------------------------------------------- Mackey-Glass */

void nn_mackey_glass_defaults(nn_mackey_glass_opts *opts)
{
    opts->tau = 17;
    opts->a = 0.2;
    opts->b = 0.1;
    opts->n = 10;
    opts->x0 = 1.2;
    opts->h = 1.0;
    opts->seed = 0;
}

static double mg_rate(const nn_mackey_glass_opts *o, double x, double xtau)
{
    return -o->b * x + o->a * xtau / (1 + pow(xtau, o->n));
}

int nn_mackey_glass(double *out, int steps, const nn_mackey_glass_opts *o,
                    nn_error *err)
{
    if (check_steps(steps, err) || check_finite("h", o->h, 1, err) ||
        check_finite("a", o->a, 0, err) || check_finite("b", o->b, 0, err) ||
        check_finite("n", o->n, 0, err) || check_finite("x0", o->x0, 0, err) ||
        check_finite("tau", o->tau, 0, err))
        return NN_ERR_INVALID;
    if (o->tau < 0)
        return nn_error_set(err, NN_ERR_INVALID, "tau must be >= 0, got %g",
                            o->tau);
    double len = floor(o->tau / o->h);
    if (len > 1e8)
        return nn_error_set(err, NN_ERR_LIMIT, "tau / h = %g samples of "
                            "history is too many", len);
    size_t hist_len = (size_t)len;
    double *history = NULL;
    if (hist_len) {
        history = nn_malloc(hist_len * sizeof(double));
        if (!history)
            return nn_error_set(err, NN_ERR_NOMEM, "out of memory for %zu "
                                "samples of history", hist_len);
    }
    nn_rng rng;
    nn_rng_seed(&rng, o->seed);
    for (size_t i = 0; i < hist_len; i++)
        history[i] = o->x0 + 0.2 * (nn_rng_uniform(&rng) - 0.5);
    /* history is a ring: `oldest` is x(t − tau), replaced by x(t). */
    size_t oldest = 0;
    double x = o->x0, h = o->h;
    for (int t = 0; t < steps; t++) {
        out[t] = x;
        double xtau = 0;
        if (hist_len) {
            xtau = history[oldest];
            history[oldest] = x;
            oldest = (oldest + 1) % hist_len;
        }
        double k1 = h * mg_rate(o, x, xtau);
        double k2 = h * mg_rate(o, x + 0.5 * k1, xtau);
        double k3 = h * mg_rate(o, x + 0.5 * k2, xtau);
        double k4 = h * mg_rate(o, x + k3, xtau);
        x = x + k1 / 6 + k2 / 3 + k3 / 3 + k4 / 6;
    }
    nn_free(history);
    return NN_OK;
}

/* ------------------------------------------------------------ Lorenz */

void nn_lorenz_defaults(nn_lorenz_opts *opts)
{
    opts->sigma = 10;
    opts->rho = 28;
    opts->beta = 8.0 / 3.0;
    opts->x0[0] = opts->x0[1] = opts->x0[2] = 1;
    opts->dt = 0.03;
}

static void lorenz_rate(const nn_lorenz_opts *o, const double *s, double *d)
{
    d[0] = o->sigma * (s[1] - s[0]);
    d[1] = s[0] * (o->rho - s[2]) - s[1];
    d[2] = s[0] * s[1] - o->beta * s[2];
}

int nn_lorenz(double *out, int steps, const nn_lorenz_opts *o, nn_error *err)
{
    if (check_steps(steps, err) || check_finite("dt", o->dt, 1, err) ||
        check_finite("sigma", o->sigma, 0, err) ||
        check_finite("rho", o->rho, 0, err) ||
        check_finite("beta", o->beta, 0, err) ||
        check_finite("x0", o->x0[0], 0, err) ||
        check_finite("y0", o->x0[1], 0, err) ||
        check_finite("z0", o->x0[2], 0, err))
        return NN_ERR_INVALID;
    double s[3] = {o->x0[0], o->x0[1], o->x0[2]}, dt = o->dt;
    for (int t = 0; t < steps; t++) {
        for (int i = 0; i < 3; i++)
            out[3 * (size_t)t + i] = s[i];
        double k1[3], k2[3], k3[3], k4[3], tmp[3];
        lorenz_rate(o, s, k1);
        for (int i = 0; i < 3; i++)
            tmp[i] = s[i] + 0.5 * dt * k1[i];
        lorenz_rate(o, tmp, k2);
        for (int i = 0; i < 3; i++)
            tmp[i] = s[i] + 0.5 * dt * k2[i];
        lorenz_rate(o, tmp, k3);
        for (int i = 0; i < 3; i++)
            tmp[i] = s[i] + dt * k3[i];
        lorenz_rate(o, tmp, k4);
        for (int i = 0; i < 3; i++)
            s[i] += dt / 6 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]);
        if (!isfinite(s[0] + s[1] + s[2]))
            return nn_error_set(err, NN_ERR_LIMIT, "the Lorenz system "
                                "diverged at step %d (dt %g too large?)", t + 1,
                                dt);
    }
    return NN_OK;
}

/* ------------------------------------------------------------- NARMA */

void nn_narma_defaults(nn_narma_opts *opts)
{
    opts->order = 10;
    opts->a1 = 0.3;
    opts->a2 = 0.05;
    opts->b = 1.5;
    opts->c = 0.1;
    opts->seed = 0;
}

int nn_narma(double *u, double *y, int steps, const nn_narma_opts *o,
             nn_error *err)
{
    if (check_steps(steps, err) || check_finite("a1", o->a1, 0, err) ||
        check_finite("a2", o->a2, 0, err) || check_finite("b", o->b, 0, err) ||
        check_finite("c", o->c, 0, err))
        return NN_ERR_INVALID;
    if (o->order < 1 || o->order > 1000)
        return nn_error_set(err, NN_ERR_INVALID, "order must be from 1 to "
                            "1000, got %d", o->order);
    nn_rng rng;
    nn_rng_seed(&rng, o->seed);
    for (int t = 0; t < steps; t++)
        u[t] = 0.5 * nn_rng_uniform(&rng);
    int m = o->order;
    y[0] = 0;
    for (int t = 0; t + 1 < steps; t++) {
        double window = 0;
        for (int i = 0; i < m && i <= t; i++)
            window += y[t - i];
        double u_old = t - m + 1 >= 0 ? u[t - m + 1] : 0;
        y[t + 1] = o->a1 * y[t] + o->a2 * y[t] * window +
                   o->b * u_old * u[t] + o->c;
        if (!isfinite(y[t + 1]) || fabs(y[t + 1]) > 1e6)
            return nn_error_set(err, NN_ERR_LIMIT, "NARMA-%d diverged at step "
                                "%d; try another seed or a lower order", m,
                                t + 1);
    }
    return NN_OK;
}
