/*
 * test_activations.c — the vectorised exp, tanh, sigmoid and exact GELU
 * against libm in double over the whole float range (every 257th bit
 * pattern, both signs: normals, denormals, zeros, infinities and NaNs), in
 * units in the last place; the fused leaky step against its parts;
 * softmax rows against double.
 */
#include "activations.h"
#include "nn_internal.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Floats mapped to integers in their order, so that the distance between
 * two is the number of floats between them (+0 and -0 are the same). */
static int64_t ordered(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i < 0 ? -(int64_t)(i & 0x7fffffff) : (int64_t)i;
}

static double ulps(float got, float want)
{
    if (isnan(want) || isnan(got))
        return isnan(want) && isnan(got) ? 0 : INFINITY;
    return (double)llabs(ordered(got) - ordered(want));
}

typedef void (*vec_fn)(const float *, float *, size_t);
typedef double (*ref_fn)(double);

static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* x Phi(x) through erfc, which keeps the negative tail's digits; its limit
 * 0 at -inf (where the formula reads -inf * 0). */
static double ref_gelu_exact(double x)
{
    return x < -40 ? -0.0 : 0.5 * x * erfc(-x / sqrt(2.0));
}

enum { CHUNK = 4096, STRIDE = 257 };

/* The worst error of fn over every STRIDE-th bit pattern, and where. */
static double worst_ulps(vec_fn fn, ref_fn ref, float *where)
{
    static float x[CHUNK], y[CHUNK];
    double worst = 0;
    size_t n = 0;
    for (uint64_t b = 0;; b += STRIDE) {
        int last = b > 0xffffffffu;
        if (!last) {
            uint32_t u = (uint32_t)b;
            memcpy(&x[n++], &u, sizeof u);
        }
        if (n == CHUNK || (last && n)) {
            fn(x, y, n);
            for (size_t i = 0; i < n; i++) {
                float want = (float)ref((double)x[i]);
                double e = ulps(y[i], want);
                if (e > worst) {
                    worst = e;
                    *where = x[i];
                }
            }
            n = 0;
        }
        if (last)
            break;
    }
    return worst;
}

static void check_fn(const char *name, vec_fn fn, ref_fn ref, double bound)
{
    float where = 0;
    double worst = worst_ulps(fn, ref, &where);
    printf("\n    %s: max error %.0f ulp (at %a)  ", name, worst, where);
    CU_ASSERT(worst <= bound);
}

static void test_exp_ulps(void) { check_fn("exp", nn_vexp, exp, 2); }

static void test_tanh_ulps(void)
{
    check_fn("tanh", nn_vtanh, tanh, NN_VMATH_MAX_ULP);
}

static void test_sigmoid_ulps(void)
{
    check_fn("sigmoid", nn_vsigmoid, ref_sigmoid, NN_VMATH_MAX_ULP);
}

static void test_gelu_exact_ulps(void)
{
    check_fn("gelu_exact", nn_vgelu_exact, ref_gelu_exact,
             NN_GELU_EXACT_MAX_ULP);
    float x[] = {0.0f, INFINITY, -INFINITY, NAN, 1.0f, -1.0f, -30.0f};
    enum { N = sizeof x / sizeof *x };
    float y[N];
    nn_vgelu_exact(x, y, N);
    CU_ASSERT_EQUAL(y[0], 0.0f);
    CU_ASSERT_EQUAL(y[1], INFINITY);
    CU_ASSERT_EQUAL(y[2], 0.0f);
    CU_ASSERT(isnan(y[3]));
    TU_ASSERT_CLOSE(y[4], 0.841344746, 1e-7);  /* Phi(1) */
    TU_ASSERT_CLOSE(y[5], -0.158655254, 1e-7); /* -(1 - Phi(1)) */
    CU_ASSERT_EQUAL(y[6], 0.0f);
}

/* The exact GELU's derivative, Phi(x) + x phi(x), against central
 * differences of the double reference. */
static void test_gelu_exact_derivative(void)
{
    enum { N = 41 };
    float x[N], y[N], dy[N], dx[N];
    for (int i = 0; i < N; i++) {
        x[i] = -8.0f + 0.4f * (float)i;
        dy[i] = 1.0f;
    }
    nn_act_forward(NN_ACT_GELU_EXACT, x, y, 1, N);
    nn_act_backward(NN_ACT_GELU_EXACT, x, y, dy, dx, 1, N);
    for (int i = 0; i < N; i++) {
        double h = 1e-5, xd = x[i];
        double want = (ref_gelu_exact(xd + h) - ref_gelu_exact(xd - h)) /
                      (2 * h);
        TU_ASSERT_CLOSE(dx[i], want, 1e-6 + 1e-6 * fabs(want));
    }
}

/* The special values are exact. */
static void test_special_values(void)
{
    float x[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-40f, -1e-40f,
                 100.0f, -200.0f};
    enum { N = sizeof x / sizeof *x };
    float e[N], t[N], s[N];
    nn_vexp(x, e, N);
    nn_vtanh(x, t, N);
    nn_vsigmoid(x, s, N);
    CU_ASSERT_EQUAL(e[0], 1.0f);
    CU_ASSERT_EQUAL(e[2], INFINITY);
    CU_ASSERT_EQUAL(e[3], 0.0f);
    CU_ASSERT(isnan(e[4]) && isnan(t[4]) && isnan(s[4]));
    CU_ASSERT_EQUAL(e[7], INFINITY);
    CU_ASSERT_EQUAL(e[8], 0.0f);
    CU_ASSERT_EQUAL(t[0], 0.0f);
    CU_ASSERT_EQUAL(t[2], 1.0f);
    CU_ASSERT_EQUAL(t[3], -1.0f);
    CU_ASSERT_EQUAL(t[5], 1e-40f); /* tanh x = x below the ulp of x³ */
    CU_ASSERT_EQUAL(t[6], -1e-40f);
    CU_ASSERT_EQUAL(s[0], 0.5f);
    CU_ASSERT_EQUAL(s[2], 1.0f);
    CU_ASSERT_EQUAL(s[3], 0.0f);
    CU_ASSERT_EQUAL(s[7], 1.0f);
    CU_ASSERT(s[8] >= 0 && s[8] < 1e-38f);
}

/* The fused step gives the bits of its parts done one by one. */
static void test_fused_leak(void)
{
    enum { ROWS = 3, COLS = 37, N = ROWS * COLS };
    static const nn_act acts[] = {NN_ACT_IDENTITY, NN_ACT_TANH,
                                  NN_ACT_SIGMOID, NN_ACT_RELU, NN_ACT_ELU,
                                  NN_ACT_SOFTMAX};
    for (size_t k = 0; k < sizeof acts / sizeof *acts; k++)
        for (int with_noise = 0; with_noise < 2; with_noise++) {
            float pre[N], s[N], s2[N], noise[N], out[N], f[N];
            for (int i = 0; i < N; i++) {
                pre[i] = 3.0f * sinf(0.7f * (float)i);
                s[i] = s2[i] = cosf(1.3f * (float)i);
                noise[i] = 0.01f * sinf(2.1f * (float)i);
            }
            const float a = 0.3f;
            nn_act_leak(acts[k], pre, s, a, with_noise ? noise : NULL, out,
                        ROWS, COLS);
            nn_act_forward(acts[k], pre, f, ROWS, COLS);
            int same = 1;
            for (int i = 0; i < N; i++) {
                float want = (1.0f - a) * s2[i] + a * f[i];
                if (with_noise)
                    want += noise[i];
                same &= memcmp(&want, &s[i], sizeof want) == 0 &&
                        memcmp(&want, &out[i], sizeof want) == 0;
            }
            CU_ASSERT(same);
        }
}

/* The same bits, or both NaN: which NaN an operation returns (its sign,
 * its payload) depends on the order of its operands, which the compiler
 * may swap in one build and not in another; a NaN is written as null. */
static int same_value(float a, float b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* Every build of the kernels (plain, AVX2, AVX-512 where the CPU has
 * them) gives the same bits: each vectorised function and the fused step
 * over every 1031st bit pattern, against the plain build. */
static void test_same_bits_at_every_level(void)
{
    enum { N = 1 << 16, STEP = 1031 };
    static const nn_act acts[] = {NN_ACT_TANH, NN_ACT_SIGMOID, NN_ACT_SILU,
                                  NN_ACT_GELU, NN_ACT_GELU_EXACT};
    enum { FNS = 2 * (sizeof acts / sizeof *acts) + 1 };
    static float x[N], s0[N], noise[N], want[FNS][N], got[N], s[N];
    int differ = 0;
    for (uint64_t start = 0; start <= 0xffffffffu; start += (uint64_t)N * STEP) {
        size_t n = 0;
        for (uint64_t b = start; n < N && b <= 0xffffffffu; b += STEP) {
            uint32_t u = (uint32_t)b;
            memcpy(&x[n], &u, sizeof u);
            s0[n] = 0.5f * sinf((float)n);
            noise[n] = 0.01f * cosf((float)n);
            n++;
        }
        for (int level = 0; level <= 2; level++) {
            nn_limit_vectors(level);
            for (int f = 0; f < FNS; f++) {
                float *out = level == 0 ? want[f] : got;
                if (f == FNS - 1) {
                    nn_vexp(x, out, n);
                } else if (f % 2 == 0) {
                    nn_act_forward(acts[f / 2], x, out, 1, n);
                } else {
                    memcpy(s, s0, n * sizeof *s);
                    nn_act_leak(acts[f / 2], x, s, 0.3f, noise, out, 1, n);
                }
                for (size_t i = 0; level > 0 && i < n; i++)
                    if (!same_value(want[f][i], got[i])) {
                        if (differ++ < 5)
                            printf("\n    build %d, function %d: at %a %a, "
                                   "not %a", level, f, x[i], got[i],
                                   want[f][i]);
                    }
            }
        }
        nn_limit_vectors(-1);
    }
    CU_ASSERT_EQUAL(differ, 0);
}

static void test_softmax_rows(void)
{
    enum { ROWS = 4, COLS = 50 };
    float x[ROWS * COLS], y[ROWS * COLS], ly[ROWS * COLS];
    for (int i = 0; i < ROWS * COLS; i++)
        x[i] = 20.0f * sinf(0.37f * (float)i) + (float)(i / COLS) * 30.0f;
    nn_act_forward(NN_ACT_SOFTMAX, x, y, ROWS, COLS);
    nn_act_forward(NN_ACT_LOG_SOFTMAX, x, ly, ROWS, COLS);
    for (int r = 0; r < ROWS; r++) {
        double max = -INFINITY, sum = 0;
        for (int j = 0; j < COLS; j++)
            max = fmax(max, x[r * COLS + j]);
        for (int j = 0; j < COLS; j++)
            sum += exp(x[r * COLS + j] - max);
        for (int j = 0; j < COLS; j++) {
            double d = x[r * COLS + j] - max, want = exp(d) / sum;
            /* x - max is rounded to float first (as every float softmax
             * does): a relative error of its ulp, about 6e-8 |d|, on top
             * of a few ulps; denormal results hold fewer digits. */
            TU_ASSERT_CLOSE(y[r * COLS + j], want,
                            want * 2e-7 * (1 + fabs(d)) + 1e-44);
            TU_ASSERT_CLOSE(ly[r * COLS + j], log(want), 1e-5);
        }
    }
}

int main(void)
{
    static const tu_test tests[] = {
        {"exp within 2 ulp of libm", test_exp_ulps},
        {"tanh within NN_VMATH_MAX_ULP of libm", test_tanh_ulps},
        {"sigmoid within NN_VMATH_MAX_ULP of libm", test_sigmoid_ulps},
        {"gelu_exact within NN_GELU_EXACT_MAX_ULP of libm",
         test_gelu_exact_ulps},
        {"gelu_exact derivative", test_gelu_exact_derivative},
        {"special values", test_special_values},
        {"the fused leaky step is its parts", test_fused_leak},
        {"softmax rows", test_softmax_rows},
        {"the same bits from every vector build", test_same_bits_at_every_level},
        {NULL, NULL}};
    return tu_run_suite("activations", tests);
}
