/*
 * init.c — weight initialisers, written and parsed as BrainPy users write
 * them ("Normal(0, 0.1)", "XavierNormal", "Orthogonal(gain=1.1)").
 *
 * Distributions are plain (not truncated) and follow PyTorch's formulas.
 * Nothing here uses BLAS or LAPACK: their kernels differ between CPUs, and
 * the same seed must give bit-identical weights everywhere.
 */
#include "nn.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 2

typedef struct init_spec {
    nn_init_kind kind;
    const char *name;
    int n_args;
    const char *arg_names[MAX_ARGS];
    const char *aliases[MAX_ARGS]; /* BrainPy's longer names, or NULL */
    double defaults[MAX_ARGS];
} init_spec;

static const init_spec specs[NN_INIT_COUNT_] = {
    {NN_INIT_ZEROS, "Zeros", 0, {NULL, NULL}, {NULL, NULL}, {0, 0}},
    {NN_INIT_ONES, "Ones", 0, {NULL, NULL}, {NULL, NULL}, {0, 0}},
    {NN_INIT_CONSTANT, "Constant", 1, {"value", NULL}, {NULL, NULL}, {0, 0}},
    {NN_INIT_NORMAL, "Normal", 2, {"mean", "scale"}, {NULL, "std"}, {0, 1}},
    {NN_INIT_UNIFORM, "Uniform", 2, {"min", "max"}, {"min_val", "max_val"},
     {0, 1}},
    {NN_INIT_XAVIER_NORMAL, "XavierNormal", 1, {"gain", NULL}, {NULL, NULL},
     {1, 0}},
    {NN_INIT_XAVIER_UNIFORM, "XavierUniform", 1, {"gain", NULL}, {NULL, NULL},
     {1, 0}},
    {NN_INIT_KAIMING_NORMAL, "KaimingNormal", 1, {"gain", NULL}, {NULL, NULL},
     {1.4142135623730951, 0}},
    {NN_INIT_KAIMING_UNIFORM, "KaimingUniform", 1, {"gain", NULL},
     {NULL, NULL}, {1.4142135623730951, 0}},
    {NN_INIT_LECUN_NORMAL, "LecunNormal", 1, {"gain", NULL}, {NULL, NULL},
     {1, 0}},
    {NN_INIT_ORTHOGONAL, "Orthogonal", 1, {"gain", NULL}, {NULL, NULL},
     {1, 0}},
    {NN_INIT_BERNOULLI, "Bernoulli", 1, {"value", NULL}, {NULL, NULL},
     {1, 0}},
};

const char *nn_init_describe(nn_init_kind k)
{
    static const char *text[NN_INIT_COUNT_] = {
        "Zeros", "Ones", "Constant(value=0)", "Normal(mean=0, scale=1)",
        "Uniform(min=0, max=1)", "XavierNormal(gain=1)",
        "XavierUniform(gain=1)", "KaimingNormal(gain=sqrt(2))",
        "KaimingUniform(gain=sqrt(2))", "LecunNormal(gain=1)",
        "Orthogonal(gain=1)", "Bernoulli(value=1)"};
    return (int)k >= 0 && k < NN_INIT_COUNT_ ? text[k] : "unknown";
}

/* ------------------------------------------------------------- parsing */

static int fail(nn_error *err, const char *text, const char *what)
{
    return nn_error_set(err, NN_ERR_INVALID, "initializer '%.100s': %s", text,
                        what);
}

static const char *skip_space(const char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

/* Reads an identifier into buf; returns the position after it or NULL. */
static const char *read_ident(const char *p, char *buf, size_t size)
{
    size_t n = 0;
    if (!(isalpha((unsigned char)*p) || *p == '_'))
        return NULL;
    while (isalnum((unsigned char)*p) || *p == '_') {
        if (n + 1 >= size)
            return NULL;
        buf[n++] = *p++;
    }
    buf[n] = '\0';
    return p;
}

static int arg_index(const init_spec *spec, const char *name)
{
    for (int i = 0; i < spec->n_args; i++)
        if (strcmp(spec->arg_names[i], name) == 0 ||
            (spec->aliases[i] && strcmp(spec->aliases[i], name) == 0))
            return i;
    return -1;
}

static int check_values(const nn_init *init, const char *text, nn_error *err)
{
    switch (init->kind) {
    case NN_INIT_NORMAL:
        if (init->b < 0)
            return fail(err, text, "scale must not be negative");
        break;
    case NN_INIT_UNIFORM:
        if (!(init->a < init->b))
            return fail(err, text, "min must be less than max");
        break;
    case NN_INIT_XAVIER_NORMAL:
    case NN_INIT_XAVIER_UNIFORM:
    case NN_INIT_KAIMING_NORMAL:
    case NN_INIT_KAIMING_UNIFORM:
    case NN_INIT_LECUN_NORMAL:
    case NN_INIT_ORTHOGONAL:
        if (!(init->a > 0))
            return fail(err, text, "gain must be positive");
        break;
    default:
        break;
    }
    return NN_OK;
}

int nn_init_parse(const char *text, nn_init *out, nn_error *err)
{
    char name[32];
    if (!text)
        return nn_error_set(err, NN_ERR_INVALID, "no initializer given");
    const char *p = read_ident(skip_space(text), name, sizeof name);
    const init_spec *spec = NULL;
    for (int k = 0; p && k < NN_INIT_COUNT_; k++)
        if (strcmp(specs[k].name, name) == 0)
            spec = &specs[k];
    if (!spec)
        return fail(err, text, "unknown name; known: Zeros, Ones, Constant, "
                    "Normal, Uniform, XavierNormal, XavierUniform, "
                    "KaimingNormal, KaimingUniform, LecunNormal, Orthogonal, "
                    "Bernoulli");
    double values[MAX_ARGS] = {spec->defaults[0], spec->defaults[1]};
    int given[MAX_ARGS] = {0, 0};
    p = skip_space(p);
    if (*p == '(') {
        p = skip_space(p + 1);
        int position = 0, keywords = 0;
        while (*p != ')') {
            char key[32];
            int index = position;
            const char *after = read_ident(p, key, sizeof key);
            if (after && *skip_space(after) == '=') {
                index = arg_index(spec, key);
                if (index < 0)
                    return fail(err, text, "unknown argument name");
                p = skip_space(skip_space(after) + 1);
                keywords = 1;
            } else if (keywords) {
                return fail(err, text, "a positional argument follows a "
                            "named one");
            }
            if (index >= spec->n_args)
                return fail(err, text, "too many arguments");
            if (given[index])
                return fail(err, text, "an argument is given twice");
            char *end;
            double v = strtod(p, &end);
            if (end == p || !isfinite(v))
                return fail(err, text, "arguments must be finite numbers");
            values[index] = v;
            given[index] = 1;
            position++;
            p = skip_space(end);
            if (*p == ',')
                p = skip_space(p + 1);
            else if (*p != ')')
                return fail(err, text, "expected ',' or ')'");
        }
        p++;
    }
    if (*skip_space(p) != '\0')
        return fail(err, text, "unexpected text after the initializer");
    nn_init init = {spec->kind, values[0], values[1]};
    int rc = check_values(&init, text, err);
    if (rc == NN_OK)
        *out = init;
    return rc;
}

char *nn_init_str(const nn_init *init, char *buf, size_t bufsize)
{
    if ((int)init->kind < 0 || init->kind >= NN_INIT_COUNT_) {
        snprintf(buf, bufsize, "unknown");
        return buf;
    }
    const init_spec *spec = &specs[init->kind];
    if (spec->n_args == 0)
        snprintf(buf, bufsize, "%s", spec->name);
    else if (spec->n_args == 1)
        snprintf(buf, bufsize, "%s(%s=%.17g)", spec->name, spec->arg_names[0],
                 init->a);
    else
        snprintf(buf, bufsize, "%s(%s=%.17g, %s=%.17g)", spec->name,
                 spec->arg_names[0], init->a, spec->arg_names[1], init->b);
    return buf;
}

/* ---------------------------------------------------------------- filling */

static void fans(const nn_shape *s, double *fan_in, double *fan_out)
{
    if (s->ndim == 0) {
        *fan_in = *fan_out = 1;
    } else if (s->ndim == 1) {
        *fan_in = *fan_out = s->dims[0];
    } else {
        double receptive = 1;
        for (int d = 0; d < s->ndim - 2; d++)
            receptive *= s->dims[d];
        *fan_in = s->dims[s->ndim - 2] * receptive;
        *fan_out = s->dims[s->ndim - 1] * receptive;
    }
}

static void fill_normal(nn_tensor *t, nn_rng *rng, double mean, double std)
{
    size_t n = nn_tensor_numel(t);
    for (size_t i = 0; i < n; i++)
        t->data[i] = (float)(mean + std * nn_rng_normal(rng));
}

static void fill_uniform(nn_tensor *t, nn_rng *rng, double lo, double hi)
{
    size_t n = nn_tensor_numel(t);
    for (size_t i = 0; i < n; i++)
        t->data[i] = (float)(lo + (hi - lo) * nn_rng_uniform(rng));
}

/* LAPACK's Householder QR and the explicit Q, through the Fortran symbols
 * OpenBLAS exports (no character arguments, so no hidden lengths). */
extern void sgeqrf_(const int *m, const int *n, float *a, const int *lda,
                    float *tau, float *work, const int *lwork, int *info);
extern void sorgqr_(const int *m, const int *n, const int *k, float *a,
                    const int *lda, const float *tau, float *work,
                    const int *lwork, int *info);

/* A Haar-distributed (semi-)orthogonal rows x cols matrix times gain: the
 * Q of a Gaussian matrix's QR with R's diagonal made positive (the sign fix
 * that makes Q Haar). Householder QR through LAPACK is blocked BLAS-3 work,
 * O(m n²) at matrix-multiply speed: Dense(4000) takes seconds where plain
 * Gram-Schmidt took minutes. */
static int fill_orthogonal(nn_tensor *t, nn_rng *rng, double gain,
                           nn_error *err)
{
    size_t numel = nn_tensor_numel(t);
    size_t cols = t->shape.ndim ? (size_t)t->shape.dims[t->shape.ndim - 1] : 1;
    size_t rows = cols ? numel / cols : 0;
    if (numel == 0)
        return NN_OK;
    int wide = rows < cols;
    size_t m = wide ? cols : rows, n = wide ? rows : cols; /* m >= n */
    if (m > INT32_MAX || n > INT32_MAX)
        return nn_error_set(err, NN_ERR_LIMIT, "an orthogonal initializer "
                            "takes at most %d rows and columns", INT32_MAX);
    int im = (int)m, in = (int)n, info = 0, lwork = -1;
    float query = 0, dummy[1] = {0};
    sgeqrf_(&im, &in, dummy, &im, dummy, &query, &lwork, &info);
    int lw1 = info == 0 ? (int)query : 0;
    sorgqr_(&im, &in, &in, dummy, &im, dummy, &query, &lwork, &info);
    int lw2 = info == 0 ? (int)query : 0;
    lwork = lw1 > lw2 ? lw1 : lw2;
    if (lwork < in)
        lwork = in;
    /* column j at a + j*m, as LAPACK wants */
    float *a = nn_malloc(sizeof(float) * m * n);
    float *tau = nn_malloc(sizeof(float) * n);
    float *work = nn_malloc(sizeof(float) * (size_t)lwork);
    signed char *sign = nn_malloc(n);
    int rc = NN_OK;
    if (!a || !tau || !work || !sign) {
        rc = nn_error_set(err, NN_ERR_NOMEM, "out of memory for an "
                          "orthogonal initializer");
        goto done;
    }
    for (size_t i = 0; i < m * n; i++)
        a[i] = (float)nn_rng_normal(rng);
    sgeqrf_(&im, &in, a, &im, tau, work, &lwork, &info);
    if (info == 0) {
        for (size_t j = 0; j < n; j++)
            sign[j] = a[j * m + j] < 0 ? -1 : 1;
        sorgqr_(&im, &in, &in, a, &im, tau, work, &lwork, &info);
    }
    if (info != 0) {
        rc = nn_error_set(err, NN_ERR_INVALID, "orthogonal initializer: "
                          "LAPACK QR failed (info %d)", info);
        goto done;
    }
    /* Tall: W[r][c] = Q[r][c]. Wide: W = Qᵀ, W[r][c] = Q[c][r]. */
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            size_t j = wide ? r : c, i = wide ? c : r;
            t->data[r * cols + c] = (float)(gain * sign[j] * a[j * m + i]);
        }
done:
    nn_free(a);
    nn_free(tau);
    nn_free(work);
    nn_free(sign);
    return rc;
}

static int fill_values(const nn_init *init, nn_tensor *t, nn_rng *rng,
                       nn_error *err)
{
    double fan_in, fan_out;
    fans(&t->shape, &fan_in, &fan_out);
    size_t n = nn_tensor_numel(t);
    switch (init->kind) {
    case NN_INIT_ZEROS:
        nn_tensor_zero(t);
        return NN_OK;
    case NN_INIT_ONES:
    case NN_INIT_CONSTANT: {
        float v = init->kind == NN_INIT_ONES ? 1.0f : (float)init->a;
        for (size_t i = 0; i < n; i++)
            t->data[i] = v;
        return NN_OK;
    }
    case NN_INIT_NORMAL:
        fill_normal(t, rng, init->a, init->b);
        return NN_OK;
    case NN_INIT_UNIFORM:
        fill_uniform(t, rng, init->a, init->b);
        return NN_OK;
    case NN_INIT_XAVIER_NORMAL:
        fill_normal(t, rng, 0, init->a * sqrt(2.0 / (fan_in + fan_out)));
        return NN_OK;
    case NN_INIT_XAVIER_UNIFORM: {
        double limit = init->a * sqrt(6.0 / (fan_in + fan_out));
        fill_uniform(t, rng, -limit, limit);
        return NN_OK;
    }
    case NN_INIT_KAIMING_NORMAL:
    case NN_INIT_LECUN_NORMAL:
        fill_normal(t, rng, 0, init->a / sqrt(fan_in));
        return NN_OK;
    case NN_INIT_KAIMING_UNIFORM: {
        double limit = init->a * sqrt(3.0 / fan_in);
        fill_uniform(t, rng, -limit, limit);
        return NN_OK;
    }
    case NN_INIT_ORTHOGONAL:
        return fill_orthogonal(t, rng, init->a, err);
    case NN_INIT_BERNOULLI: {
        /* One uniform per entry, +value below one half: ReservoirPy's
         * bernoulli at its default p (its numbers come from NumPy's stream,
         * not this one). */
        float plus = (float)init->a, minus = (float)-init->a;
        for (size_t i = 0; i < n; i++)
            t->data[i] = nn_rng_uniform(rng) < 0.5 ? plus : minus;
        return NN_OK;
    }
    default:
        return nn_error_set(err, NN_ERR_INVALID, "unknown initializer kind %d",
                            (int)init->kind);
    }
}

int nn_init_fill(const nn_init *init, nn_tensor *t, nn_rng *rng, nn_error *err)
{
    int rc = fill_values(init, t, rng, err);
    if (rc)
        return rc;
    /* Arguments are doubles; weights are float32. An argument past
     * float32's range (Constant(1e39), Uniform(-1e39, 1), a gain of
     * 1e308) gave inf or NaN weights, which every step then spread and
     * no export could carry. */
    size_t n = nn_tensor_numel(t);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(t->data[i])) {
            char text[96];
            return nn_error_set(err, NN_ERR_INVALID, "initializer %s gives "
                                "values beyond float32's range (a value of "
                                "magnitude up to 3.4e38)",
                                nn_init_str(init, text, sizeof text));
        }
    return NN_OK;
}
