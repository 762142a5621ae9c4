/*
 * test_data.c — the series generators against independent computations
 * and known properties: Lorenz against an RK4 written here, Mackey-Glass
 * against the exact solution of its undelayed case, its first step by hand
 * and its known range, NARMA's recurrence term by term.
 */
#include "nn_data.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- Lorenz */

typedef struct vec3 {
    double x, y, z;
} vec3;

static vec3 lorenz_field(vec3 p, double sigma, double rho, double beta)
{
    vec3 d = {sigma * (p.y - p.x), p.x * (rho - p.z) - p.y,
              p.x * p.y - beta * p.z};
    return d;
}

static vec3 axpy(vec3 p, double a, vec3 d)
{
    vec3 r = {p.x + a * d.x, p.y + a * d.y, p.z + a * d.z};
    return r;
}

static void test_lorenz_matches_independent_rk4(void)
{
    enum { T = 200 };
    nn_lorenz_opts o;
    nn_lorenz_defaults(&o);
    o.dt = 0.01;
    o.x0[0] = -2, o.x0[1] = 3, o.x0[2] = 20;
    double *out = malloc(sizeof(double) * 3 * T);
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_lorenz(out, T, &o, &err), NN_OK);
    vec3 p = {-2, 3, 20};
    for (int t = 0; t < T; t++) {
        TU_ASSERT_CLOSE(out[3 * t], p.x, 1e-9);
        TU_ASSERT_CLOSE(out[3 * t + 1], p.y, 1e-9);
        TU_ASSERT_CLOSE(out[3 * t + 2], p.z, 1e-9);
        double h = o.dt;
        vec3 k1 = lorenz_field(p, 10, 28, 8.0 / 3);
        vec3 k2 = lorenz_field(axpy(p, h / 2, k1), 10, 28, 8.0 / 3);
        vec3 k3 = lorenz_field(axpy(p, h / 2, k2), 10, 28, 8.0 / 3);
        vec3 k4 = lorenz_field(axpy(p, h, k3), 10, 28, 8.0 / 3);
        p = axpy(p, h / 6, k1);
        p = axpy(p, h / 3, k2);
        p = axpy(p, h / 3, k3);
        p = axpy(p, h / 6, k4);
    }
    free(out);
}

static void test_lorenz_stays_on_the_attractor(void)
{
    enum { T = 20000 };
    nn_lorenz_opts o;
    nn_lorenz_defaults(&o);
    double *out = malloc(sizeof(double) * 3 * T);
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_lorenz(out, T, &o, &err), NN_OK);
    double zmin = 1e9, zmax = -1e9, xmin = 1e9, xmax = -1e9;
    for (int t = 1000; t < T; t++) {
        xmin = fmin(xmin, out[3 * t]), xmax = fmax(xmax, out[3 * t]);
        zmin = fmin(zmin, out[3 * t + 2]), zmax = fmax(zmax, out[3 * t + 2]);
    }
    /* The classic butterfly: x visits both wings, z stays in (0, 50). */
    CU_ASSERT(xmin < -15 && xmin > -25);
    CU_ASSERT(xmax > 15 && xmax < 25);
    CU_ASSERT(zmin > 0 && zmax < 50 && zmax > 40);
    free(out);
}

/* ---------------------------------------------------------- Mackey-Glass */

static void test_mackey_glass_without_delay_is_exponential(void)
{
    /* tau = 0 drops the delayed term: dx/dt = −b x, x = x0 e^{−b t}. */
    nn_mackey_glass_opts o;
    nn_mackey_glass_defaults(&o);
    o.tau = 0;
    o.h = 0.5;
    double out[100];
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_mackey_glass(out, 100, &o, &err), NN_OK);
    /* RK4 multiplies by R(z) = 1 + z + z²/2 + z³/6 + z⁴/24, z = −b h, per
     * step: exactly that, and within RK4's error of the true decay. */
    double z = -0.1 * 0.5;
    double R = 1 + z + z * z / 2 + z * z * z / 6 + z * z * z * z / 24;
    for (int t = 0; t < 100; t++) {
        TU_ASSERT_CLOSE(out[t], 1.2 * pow(R, t), 1e-13);
        TU_ASSERT_CLOSE(out[t], 1.2 * exp(z * t), 1e-6);
    }
}

static double mg_rate(double x, double xtau)
{
    return -0.1 * x + 0.2 * xtau / (1 + pow(xtau, 10));
}

static void test_mackey_glass_first_step_by_hand(void)
{
    nn_mackey_glass_opts o;
    nn_mackey_glass_defaults(&o);
    o.seed = 77;
    double out[3];
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_mackey_glass(out, 3, &o, &err), NN_OK);
    /* The history's first sample is x(t − tau) for the first step. */
    nn_rng rng;
    nn_rng_seed(&rng, 77);
    double xtau = 1.2 + 0.2 * (nn_rng_uniform(&rng) - 0.5);
    double x = 1.2;
    double k1 = mg_rate(x, xtau), k2 = mg_rate(x + 0.5 * k1, xtau);
    double k3 = mg_rate(x + 0.5 * k2, xtau), k4 = mg_rate(x + k3, xtau);
    CU_ASSERT_EQUAL(out[0], 1.2);
    TU_ASSERT_CLOSE(out[1], x + k1 / 6 + k2 / 3 + k3 / 3 + k4 / 6, 1e-14);
}

static void test_mackey_glass_range_and_seed(void)
{
    enum { T = 6000 };
    nn_mackey_glass_opts o;
    nn_mackey_glass_defaults(&o);
    double *a = malloc(sizeof(double) * T), *b = malloc(sizeof(double) * T);
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_mackey_glass(a, T, &o, &err), NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_mackey_glass(b, T, &o, &err), NN_OK);
    CU_ASSERT_EQUAL(memcmp(a, b, sizeof(double) * T), 0);
    /* tau = 17 is chaotic: after the transient the series keeps moving
     * over its known range, about 0.2 .. 1.4, never settling. */
    double lo = 1e9, hi = -1e9, mean = 0, var = 0;
    for (int t = 500; t < T; t++) {
        lo = fmin(lo, a[t]), hi = fmax(hi, a[t]);
        mean += a[t];
    }
    mean /= T - 500;
    for (int t = 500; t < T; t++)
        var += (a[t] - mean) * (a[t] - mean);
    var /= T - 500;
    CU_ASSERT(lo > 0.15 && lo < 0.5);
    CU_ASSERT(hi > 1.2 && hi < 1.5);
    CU_ASSERT(sqrt(var) > 0.15);
    o.seed = 1;
    CU_ASSERT_EQUAL_FATAL(nn_mackey_glass(b, T, &o, &err), NN_OK);
    CU_ASSERT_NOT_EQUAL(memcmp(a, b, sizeof(double) * T), 0);
    free(a);
    free(b);
}

/* ----------------------------------------------------------------- NARMA */

static void test_narma_recurrence_term_by_term(void)
{
    enum { T = 3000, M = 10 };
    nn_narma_opts o;
    nn_narma_defaults(&o);
    o.seed = 4;
    double *u = malloc(sizeof(double) * T), *y = malloc(sizeof(double) * T);
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_narma(u, y, T, &o, &err), NN_OK);
    CU_ASSERT_EQUAL(y[0], 0.0);
    double umin = 1, umax = 0;
    for (int t = 0; t < T; t++)
        umin = fmin(umin, u[t]), umax = fmax(umax, u[t]);
    CU_ASSERT(umin >= 0 && umin < 0.01 && umax < 0.5 && umax > 0.49);
    for (int t = 0; t + 1 < T; t++) {
        double sum = 0;
        for (int i = 0; i < M; i++)
            sum += t - i >= 0 ? y[t - i] : 0;
        double lagged = t - (M - 1) >= 0 ? u[t - (M - 1)] : 0;
        double want = 0.3 * y[t] + 0.05 * y[t] * sum + 1.5 * lagged * u[t] +
                      0.1;
        TU_ASSERT_CLOSE(y[t + 1], want, 1e-12);
    }
    /* Known behaviour of NARMA-10 on U[0, 0.5): y stays within (0, 1). */
    for (int t = 1; t < T; t++)
        CU_ASSERT(y[t] > 0 && y[t] < 1);
    free(u);
    free(y);
}

static void test_bad_options(void)
{
    nn_error err;
    double out[30], y[10];
    nn_mackey_glass_opts mg;
    nn_mackey_glass_defaults(&mg);
    CU_ASSERT_EQUAL(nn_mackey_glass(out, 0, &mg, &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "steps"));
    mg.h = -1;
    CU_ASSERT_EQUAL(nn_mackey_glass(out, 10, &mg, &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "h must be"));
    nn_mackey_glass_defaults(&mg);
    mg.tau = -3;
    CU_ASSERT_EQUAL(nn_mackey_glass(out, 10, &mg, &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "tau"));
    nn_lorenz_opts lz;
    nn_lorenz_defaults(&lz);
    lz.dt = NAN;
    CU_ASSERT_EQUAL(nn_lorenz(out, 10, &lz, &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "dt"));
    nn_lorenz_defaults(&lz);
    lz.dt = 10; /* far too large: blows up, reported */
    CU_ASSERT_EQUAL(nn_lorenz(out, 10, &lz, &err), NN_ERR_LIMIT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "diverged"));
    nn_narma_opts na;
    nn_narma_defaults(&na);
    na.order = 0;
    CU_ASSERT_EQUAL(nn_narma(out, y, 10, &na, &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "order"));
    nn_narma_defaults(&na);
    na.a2 = 50; /* an unstable recurrence */
    CU_ASSERT_EQUAL(nn_narma(out, out + 15, 15, &na, &err), NN_ERR_LIMIT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "diverged"));
    /* History allocation failure. */
    nn_mackey_glass_defaults(&mg);
    nn_alloc_fail_after(1);
    CU_ASSERT_EQUAL(nn_mackey_glass(out, 10, &mg, &err), NN_ERR_NOMEM);
    nn_alloc_fail_after(0);
}

int main(void)
{
    static const tu_test tests[] = {
        {"Lorenz matches an independent RK4",
         test_lorenz_matches_independent_rk4},
        {"Lorenz stays on the attractor", test_lorenz_stays_on_the_attractor},
        {"Mackey-Glass without delay is exponential decay",
         test_mackey_glass_without_delay_is_exponential},
        {"Mackey-Glass first step by hand",
         test_mackey_glass_first_step_by_hand},
        {"Mackey-Glass range, chaos and seeds",
         test_mackey_glass_range_and_seed},
        {"NARMA-10 recurrence term by term",
         test_narma_recurrence_term_by_term},
        {"bad options", test_bad_options},
        {NULL, NULL}};
    return tu_run_suite("data", tests);
}
