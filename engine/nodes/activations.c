/*
 * activations.c — activation functions and their derivatives.
 *
 * exp, tanh and sigmoid over arrays are our own kernels (Cephes' minimax
 * polynomials with Cody-Waite range reduction), written branch-free so the
 * compiler vectorises them: calling libm's scalar tanhf per value was most
 * of a small reservoir's step. They are built three times — plain, AVX2 and
 * AVX-512 — and picked at run time; the arithmetic is the same in each
 * (no fused multiply-adds: C11 without extensions does not contract), so
 * every machine gets the same bits. The file is built with
 * -fno-trapping-math: each kernel computes both sides of its selects, and
 * GCC will not run a division it cannot prove harmless on lanes whose
 * result is thrown away unless it may ignore floating-point traps (which
 * nerved never enables); without it only AVX-512's masked instructions
 * vectorised, and the plain and AVX2 builds ran one value at a time.
 * Measured against libm in double over every 257th float bit pattern
 * (tests/unit/test_activations.c): exp within 2 ulp, tanh and sigmoid
 * within 4 ulp (NN_VMATH_MAX_ULP), the exact (erf) GELU within
 * NN_GELU_EXACT_MAX_ULP.
 */
#include "activations.h"

#include "nn_internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------ vector kernels */

static inline float bits_to_float(int32_t i)
{
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

/* e^x = p * 2^n for x within the shifter's range (|x / ln 2| < 2^22):
 * n = round(x / ln 2), by the 1.5 * 2^23 shifter. Never given a NaN: a
 * select that kept the conversion to an integer defined for one made GCC
 * build the whole polynomial twice, once for the lanes it zeroed (tanh
 * over an array took 0.9 ns a value with AVX-512, 0.7 without). */
static inline float exp_reduced(float x, int32_t *n_out)
{
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    *n_out = (int32_t)n;
    return p * r * r + r + 1.0f;
}

/* e^x, for any float x (NaN stays NaN, overflow is inf, underflow 0 or a
 * denormal rounded once). */
static inline float exp_kernel(float x)
{
    /* Below -104 e^x rounds to 0, above 89 it is inf; a NaN is clamped
     * too, and put back at the end. */
    float xc = x > -104.0f ? x : -104.0f;
    xc = xc < 89.0f ? xc : 89.0f;
    int32_t ni;
    float p = exp_reduced(xc, &ni);
    /* 2^n as two normal powers of two, so results down in the denormals
     * are rounded once, by the last multiplication. */
    int32_t n1 = ni / 2, n2 = ni - n1;
    float e = p * bits_to_float((n1 + 127) * (1 << 23)) *
              bits_to_float((n2 + 127) * (1 << 23));
    return x == x ? e : x;
}

/* e^x for 0 <= x <= 18.2, tanh's range: exp_kernel without its clamps
 * and its split power of two, neither of which can matter there (a
 * product by one normal power of two is exact as two are), so the same
 * bits for a fifth less work in tanh. */
static inline float exp_tanh_range(float x)
{
    int32_t ni;
    float p = exp_reduced(x, &ni);
    return p * bits_to_float((ni + 127) * (1 << 23));
}

static inline float tanh_kernel(float x)
{
    float ax = x < 0 ? -x : x;
    float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = p * z * x + x;
    /* Past 9.1, 2 / (e^2|x| + 1) is under half an ulp of 1 and t rounds
     * to 1 either way. A NaN is clamped too, so e^x sees numbers only;
     * it keeps its NaN through small, which the last select takes. */
    float ac = ax < 9.1f ? ax : 9.1f;
    float e = exp_tanh_range(ac + ac);
    float t = 1.0f - 2.0f / (e + 1.0f);
    t = x < 0 ? -t : t;
    return ax >= 0.625f ? t : small;
}

static inline float sigmoid_kernel(float x)
{
    float e = exp_kernel(x < 0 ? x : -x); /* e^-|x| <= 1: never overflows */
    float d = 1.0f + e;
    return x < 0 ? e / d : 1.0f / d;
}

static const float GELU_C = 0.7978845608028654f; /* sqrt(2 / pi) */
static const float GELU_A = 0.044715f;

static inline float silu_kernel(float x) { return x * sigmoid_kernel(x); }

static inline float gelu_kernel(float x)
{
    return 0.5f * x * (1 + tanh_kernel(GELU_C * (x + GELU_A * x * x * x)));
}

/* erfc(|x| / sqrt 2) as scale * tail, tail = e^(-hi^2 / 2) the part that
 * underflows; 0 from |x| = 20 on (where gelu rounds to x or 0).
 * Numerical Recipes' erfcc, erfc(z) = t e^(P(t) - z^2) with t = 2 / (2 + z)
 * (relative error below 1.2e-7 for every z >= 0), where e^(-z^2) is taken
 * as e^(-hi^2 / 2) e^(-lo (x + hi) / 2), x = hi + lo with hi's low 12 bits
 * cleared, so that hi^2 is exact: rounding z^2 itself would cost about z^2
 * ulps in the tail. A caller multiplies by tail last, so a result down in
 * the denormals is rounded there once. */
static inline float erfc_scaled_parts(float x, float *tail)
{
    float ax = x < 0 ? -x : x;
    float big = ax < 20.0f ? 0.0f : 1.0f; /* NaN: not big, stays NaN */
    ax = ax < 20.0f ? ax : 20.0f;
    float z = ax * 0.70710678118654752f;
    float t = 2.0f / (2.0f + z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    int32_t bits;
    memcpy(&bits, &ax, sizeof bits);
    float hi = bits_to_float(bits & ~0xfff);
    float lo = ax - hi;
    *tail = big > 0 ? 0.0f : exp_kernel(-0.5f * (hi * hi));
    return t * exp_kernel(p - 0.5f * (lo * (ax + hi)));
}

/* erf(z) for |z| < 0.6 by its Taylor series to z^17 (the next term is
 * below 1e-11 of the sum): Numerical Recipes' form cancels near z = 0. */
static inline float erf_small_kernel(float z)
{
    float s = z * z;
    float q = 1.4589169000933706e-6f; /* (-1)^n / (n! (2n + 1)), n = 8 */
    q = q * s - 1.3227513227513228e-5f;
    q = q * s + 1.0683760683760684e-4f;
    q = q * s - 7.5757575757575758e-4f;
    q = q * s + 4.6296296296296294e-3f;
    q = q * s - 2.3809523809523808e-2f;
    q = q * s + 0.1f;
    q = q * s - 0.33333333333333333f;
    q = q * s + 1.0f;
    return 1.1283791670955126f * (z * q); /* 2 / sqrt(pi) */
}

/* x Phi(x) = x (1 + erf(x / sqrt 2)) / 2: by erf near zero; beyond, as
 * x (1 - erfc / 2) above zero and x erfc / 2 below, so the negative tail
 * keeps its relative accuracy (1 + erf there cancels). */
static inline float gelu_exact_kernel(float x)
{
    float tail, scale = erfc_scaled_parts(x, &tail);
    float neg = ((x < -20.0f ? -20.0f : x) * (0.5f * scale)) * tail;
    float pos = x * (1.0f - 0.5f * (scale * tail));
    float small = (0.5f * x) *
                  (1.0f + erf_small_kernel(x * 0.70710678118654752f));
    float ax = x < 0 ? -x : x;
    return ax < 0.85f ? small : x < 0 ? neg : pos;
}

#define NN_KERNEL_ARRAY(name, kernel)                                        \
    static inline __attribute__((always_inline)) void name##_body(           \
        const float *restrict x, float *restrict y, size_t n)                \
    {                                                                        \
        for (size_t i = 0; i < n; i++)                                       \
            y[i] = kernel(x[i]);                                             \
    }

NN_KERNEL_ARRAY(vexp, exp_kernel)
NN_KERNEL_ARRAY(vtanh, tanh_kernel)
NN_KERNEL_ARRAY(vsigmoid, sigmoid_kernel)
NN_KERNEL_ARRAY(vsilu, silu_kernel)
NN_KERNEL_ARRAY(vgelu, gelu_kernel)
NN_KERNEL_ARRAY(vgelu_exact, gelu_exact_kernel)

/* s = (1 - a) s + a f(pre) [+ noise], out = s: a reservoir step's whole
 * elementwise part in one pass. f: 0 identity, 1 tanh, 2 sigmoid, 3 relu. */
static inline __attribute__((always_inline)) void
leak_body(int f, const float *restrict pre, float *restrict s, float a,
          const float *restrict noise, float *restrict out, size_t n)
{
    float keep = 1.0f - a;
#define NN_LEAK_LOOP(expr)                                                   \
    do {                                                                     \
        if (noise)                                                           \
            for (size_t i = 0; i < n; i++) {                                 \
                float v = pre[i];                                            \
                float si = keep * s[i] + a * (expr) + noise[i];              \
                s[i] = si;                                                   \
                out[i] = si;                                                 \
            }                                                                \
        else                                                                 \
            for (size_t i = 0; i < n; i++) {                                 \
                float v = pre[i];                                            \
                float si = keep * s[i] + a * (expr);                         \
                s[i] = si;                                                   \
                out[i] = si;                                                 \
            }                                                                \
    } while (0)
    switch (f) {
    case 1: NN_LEAK_LOOP(tanh_kernel(v)); break;
    case 2: NN_LEAK_LOOP(sigmoid_kernel(v)); break;
    case 3: NN_LEAK_LOOP(v > 0 ? v : 0.0f); break;
    default: NN_LEAK_LOOP(v); break;
    }
#undef NN_LEAK_LOOP
}

typedef void (*vmap_fn)(const float *restrict, float *restrict, size_t);

typedef struct vmath {
    vmap_fn exp, tanh, sigmoid, silu, gelu, gelu_exact;
    void (*leak)(int, const float *restrict, float *restrict, float,
                 const float *restrict, float *restrict, size_t);
} vmath;

#define NN_VMATH_SET(suffix, attr)                                           \
    attr static void vexp_##suffix(const float *restrict x,                  \
                                   float *restrict y, size_t n)              \
    {                                                                        \
        vexp_body(x, y, n);                                                  \
    }                                                                        \
    attr static void vtanh_##suffix(const float *restrict x,                 \
                                    float *restrict y, size_t n)             \
    {                                                                        \
        vtanh_body(x, y, n);                                                 \
    }                                                                        \
    attr static void vsigmoid_##suffix(const float *restrict x,              \
                                       float *restrict y, size_t n)          \
    {                                                                        \
        vsigmoid_body(x, y, n);                                              \
    }                                                                        \
    attr static void vsilu_##suffix(const float *restrict x,                 \
                                    float *restrict y, size_t n)             \
    {                                                                        \
        vsilu_body(x, y, n);                                                 \
    }                                                                        \
    attr static void vgelu_##suffix(const float *restrict x,                 \
                                    float *restrict y, size_t n)             \
    {                                                                        \
        vgelu_body(x, y, n);                                                 \
    }                                                                        \
    attr static void vgelu_exact_##suffix(const float *restrict x,           \
                                          float *restrict y, size_t n)       \
    {                                                                        \
        vgelu_exact_body(x, y, n);                                           \
    }                                                                        \
    attr static void leak_##suffix(int f, const float *restrict pre,         \
                                   float *restrict s, float a,               \
                                   const float *restrict noise,              \
                                   float *restrict out, size_t n)            \
    {                                                                        \
        leak_body(f, pre, s, a, noise, out, n);                              \
    }                                                                        \
    static const vmath vmath_##suffix = {                                    \
        vexp_##suffix,  vtanh_##suffix, vsigmoid_##suffix,                   \
        vsilu_##suffix, vgelu_##suffix, vgelu_exact_##suffix,                \
        leak_##suffix};

NN_VMATH_SET(plain, )
#if defined(__x86_64__) && defined(__GNUC__)
NN_VMATH_SET(avx2, __attribute__((target("avx2"))))
NN_VMATH_SET(avx512, __attribute__((target("avx512f"))))
#endif

static const vmath *vm(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    int level = nn_vector_level();
    if (level >= 2)
        return &vmath_avx512;
    if (level == 1)
        return &vmath_avx2;
#endif
    return &vmath_plain;
}

/* In-place use (y == x) is allowed: each value is read before it is
 * written, one index at a time, whatever the vector width. */
void nn_vexp(const float *x, float *y, size_t n) { vm()->exp(x, y, n); }
void nn_vtanh(const float *x, float *y, size_t n) { vm()->tanh(x, y, n); }
void nn_vsigmoid(const float *x, float *y, size_t n)
{
    vm()->sigmoid(x, y, n);
}
void nn_vgelu_exact(const float *x, float *y, size_t n)
{
    vm()->gelu_exact(x, y, n);
}

static const char *const names[] = {"identity", "tanh", "relu", "sigmoid",
                                    "softmax", "log_softmax", "softplus",
                                    "elu", "leaky_relu", "gelu", "silu",
                                    "gelu_exact"};

int nn_act_parse(const char *name)
{
    for (size_t i = 0; name && i < sizeof names / sizeof *names; i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

/* The functions without a vector kernel, one value at a time. */
static float scalar_act(nn_act act, float x)
{
    switch (act) {
    case NN_ACT_RELU: return x > 0 ? x : 0;
    case NN_ACT_SOFTPLUS: return x > 20 ? x : log1pf(expf(x));
    case NN_ACT_ELU: return x > 0 ? x : expm1f(x);
    case NN_ACT_LEAKY_RELU: return x > 0 ? x : 0.01f * x;
    default: return x;
    }
}

static float derivative(nn_act act, float x, float y)
{
    switch (act) {
    case NN_ACT_TANH: return 1 - y * y;
    case NN_ACT_RELU: return x > 0 ? 1.0f : 0.0f;
    case NN_ACT_SIGMOID: return y * (1 - y);
    case NN_ACT_SOFTPLUS: return sigmoid_kernel(x);
    case NN_ACT_ELU: return x > 0 ? 1.0f : y + 1;
    case NN_ACT_LEAKY_RELU: return x > 0 ? 1.0f : 0.01f;
    case NN_ACT_GELU: {
        float u = GELU_C * (x + GELU_A * x * x * x);
        float t = tanh_kernel(u);
        float du = GELU_C * (1 + 3 * GELU_A * x * x);
        return 0.5f * (1 + t) + 0.5f * x * (1 - t * t) * du;
    }
    case NN_ACT_SILU: {
        float s = sigmoid_kernel(x);
        return s * (1 + x * (1 - s));
    }
    case NN_ACT_GELU_EXACT: {
        /* Phi(x) + x phi(x); x phi(x) is 0 in float from |x| = 20 on. */
        float tail, c = erfc_scaled_parts(x, &tail);
        c *= tail;
        float xc = x < -20.0f ? -20.0f : x > 20.0f ? 20.0f : x;
        float phi = 0.3989422804014327f * exp_kernel(-0.5f * xc * xc);
        return (x < 0 ? 0.5f * c : 1.0f - 0.5f * c) + xc * phi;
    }
    default: return 1.0f;
    }
}

/* Stable softmax (or log-softmax) of one row. */
static void softmax_row(const float *x, float *y, size_t cols, int log_form)
{
    float max = x[0];
    for (size_t j = 1; j < cols; j++)
        if (x[j] > max)
            max = x[j];
    /* y = x - max, then e^y in place by the vector kernel; the sum in
     * double, in index order. */
    for (size_t j = 0; j < cols; j++)
        y[j] = x[j] - max;
    if (log_form) {
        double sum = 0;
        for (size_t j = 0; j < cols; j++)
            sum += exp((double)y[j]);
        float log_sum = (float)log(sum);
        for (size_t j = 0; j < cols; j++)
            y[j] -= log_sum;
        return;
    }
    nn_vexp(y, y, cols);
    double sum = 0;
    for (size_t j = 0; j < cols; j++)
        sum += y[j];
    float inv = (float)(1.0 / sum);
    for (size_t j = 0; j < cols; j++)
        y[j] *= inv;
}

void nn_act_forward(nn_act act, const float *x, float *y, size_t rows,
                    size_t cols)
{
    if (act == NN_ACT_SOFTMAX || act == NN_ACT_LOG_SOFTMAX) {
        for (size_t r = 0; r < rows; r++)
            softmax_row(x + r * cols, y + r * cols, cols,
                        act == NN_ACT_LOG_SOFTMAX);
        return;
    }
    size_t n = rows * cols;
    const vmath *v = vm();
    switch (act) {
    case NN_ACT_IDENTITY:
        if (y != x)
            memmove(y, x, n * sizeof(float));
        return;
    case NN_ACT_TANH: v->tanh(x, y, n); return;
    case NN_ACT_SIGMOID: v->sigmoid(x, y, n); return;
    case NN_ACT_SILU: v->silu(x, y, n); return;
    case NN_ACT_GELU: v->gelu(x, y, n); return;
    case NN_ACT_GELU_EXACT: v->gelu_exact(x, y, n); return;
    default:
        for (size_t i = 0; i < n; i++)
            y[i] = scalar_act(act, x[i]);
    }
}

void nn_act_leak(nn_act act, const float *pre, float *s, float a,
                 const float *noise, float *out, size_t rows, size_t cols)
{
    size_t n = rows * cols;
    int f = act == NN_ACT_IDENTITY ? 0 : act == NN_ACT_TANH ? 1
          : act == NN_ACT_SIGMOID  ? 2 : act == NN_ACT_RELU ? 3 : -1;
    if (f >= 0) {
        vm()->leak(f, pre, s, a, noise, out, n);
        return;
    }
    /* Others: f(pre) into out first, then the same combination. */
    nn_act_forward(act, pre, out, rows, cols);
    float keep = 1.0f - a;
    for (size_t i = 0; i < n; i++) {
        float si = keep * s[i] + a * out[i];
        if (noise)
            si += noise[i];
        s[i] = si;
        out[i] = si;
    }
}

void nn_act_backward(nn_act act, const float *x, const float *y,
                     const float *dy, float *dx, size_t rows, size_t cols)
{
    if (act == NN_ACT_SOFTMAX || act == NN_ACT_LOG_SOFTMAX) {
        for (size_t r = 0; r < rows; r++) {
            const float *yr = y + r * cols, *dyr = dy + r * cols;
            float *dxr = dx + r * cols;
            double s = 0;
            if (act == NN_ACT_SOFTMAX) {
                /* dx = y * (dy - sum(dy * y)) */
                for (size_t j = 0; j < cols; j++)
                    s += (double)dyr[j] * yr[j];
                for (size_t j = 0; j < cols; j++)
                    dxr[j] = yr[j] * (dyr[j] - (float)s);
            } else {
                /* dx = dy - softmax(x) * sum(dy), softmax(x) = exp(y) */
                for (size_t j = 0; j < cols; j++)
                    s += dyr[j];
                for (size_t j = 0; j < cols; j++)
                    dxr[j] = dyr[j] - expf(yr[j]) * (float)s;
            }
        }
        return;
    }
    size_t n = rows * cols;
    switch (act) { /* one loop per function, so each vectorises */
    case NN_ACT_IDENTITY:
        if (dx != dy)
            memmove(dx, dy, n * sizeof(float));
        return;
    case NN_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            dx[i] = dy[i] * (1 - y[i] * y[i]);
        return;
    case NN_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            dx[i] = dy[i] * (y[i] * (1 - y[i]));
        return;
    default:
        for (size_t i = 0; i < n; i++)
            dx[i] = dy[i] * derivative(act, x[i], y[i]);
    }
}
