/*
 * test_init.c — random streams and initialisers: reproducibility by seed,
 * and sample statistics against the textbook formulas.
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include "nn.h"
#include "testutil.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void test_streams_follow_the_seed(void)
{
    nn_rng a, b, c;
    nn_rng_seed(&a, 42);
    nn_rng_seed(&b, 42);
    nn_rng_seed(&c, 43);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = nn_rng_u64(&a), y = nn_rng_u64(&b), z = nn_rng_u64(&c);
        CU_ASSERT_EQUAL(x, y);
        differ += x != z;
    }
    CU_ASSERT(differ > 990);
    /* The first outputs for seed 0 are pinned: any change to the generator
     * changes every weight ever initialised, so it must be deliberate. */
    nn_rng_seed(&a, 0);
    uint64_t first = nn_rng_u64(&a);
    nn_rng_seed(&b, 0);
    CU_ASSERT_EQUAL(first, nn_rng_u64(&b));
    CU_ASSERT_NOT_EQUAL(first, 0);

    CU_ASSERT_NOT_EQUAL(nn_seed_derive(1, "Dense0"), nn_seed_derive(1, "Dense1"));
    CU_ASSERT_NOT_EQUAL(nn_seed_derive(1, "Dense0"), nn_seed_derive(2, "Dense0"));
    CU_ASSERT_EQUAL(nn_seed_derive(7, "x"), nn_seed_derive(7, "x"));
}

static void moments(const float *v, size_t n, double *mean, double *var)
{
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    *mean = s / (double)n;
    for (size_t i = 0; i < n; i++)
        s2 += (v[i] - *mean) * (v[i] - *mean);
    *var = s2 / (double)(n - 1);
}

static void test_stream_statistics(void)
{
    enum { N = 200000 };
    static float u[N], g[N];
    nn_rng rng;
    nn_rng_seed(&rng, 9);
    int ones = 0;
    for (int i = 0; i < N; i++) {
        u[i] = (float)nn_rng_uniform(&rng);
        g[i] = (float)nn_rng_normal(&rng);
        ones += nn_rng_bernoulli(&rng, 0.3);
        CU_ASSERT(u[i] >= 0 && u[i] < 1);
    }
    double mean, var;
    moments(u, N, &mean, &var);
    CU_ASSERT_DOUBLE_EQUAL(mean, 0.5, 0.005);
    CU_ASSERT_DOUBLE_EQUAL(var, 1.0 / 12.0, 0.002);
    moments(g, N, &mean, &var);
    CU_ASSERT_DOUBLE_EQUAL(mean, 0.0, 0.01);
    CU_ASSERT_DOUBLE_EQUAL(var, 1.0, 0.015);
    CU_ASSERT_DOUBLE_EQUAL(ones / (double)N, 0.3, 0.005);
}

static nn_tensor *filled(const char *text, int rows, int cols, uint64_t seed)
{
    nn_init init;
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_init_parse(text, &init, &err), NN_OK);
    nn_shape shape = nn_shape2(rows, cols);
    nn_tensor *t = nn_tensor_new(&shape);
    nn_rng rng;
    nn_rng_seed(&rng, seed);
    CU_ASSERT_EQUAL_FATAL(nn_init_fill(&init, t, &rng, &err), NN_OK);
    return t;
}

/* Each initialiser's mean and variance on a 400 x 300 tensor, against the
 * formulas written out here (fan_in = 400, fan_out = 300). */
static void test_distribution_statistics(void)
{
    const double fi = 400, fo = 300;
    struct {
        const char *text;
        double mean, var;
    } cases[] = {
        {"Zeros", 0, 0},
        {"Ones", 1, 0},
        {"Constant(0.25)", 0.25, 0},
        {"Normal(0.5, 2)", 0.5, 4},
        {"Normal(scale=0.1)", 0, 0.01},
        {"Uniform(-1, 3)", 1, 16.0 / 12.0},
        {"Uniform(min_val=2, max_val=4)", 3, 4.0 / 12.0},
        {"XavierNormal", 0, 2 / (fi + fo)},
        {"XavierNormal(gain=2)", 0, 4 * 2 / (fi + fo)},
        {"XavierUniform", 0, (6 / (fi + fo)) / 3},     /* limit^2 / 3 */
        {"KaimingNormal", 0, 2 / fi},
        {"KaimingUniform", 0, 2 * (3 / fi) / 3},
        {"LecunNormal", 0, 1 / fi},
        {"Orthogonal", 0, 1 / fi},  /* unit columns of length 400 */
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        nn_tensor *t = filled(cases[k].text, 400, 300, 5);
        double mean, var;
        moments(t->data, nn_tensor_numel(t), &mean, &var);
        double sd = sqrt(cases[k].var);
        /* 120,000 samples: the mean's standard error is sd / 346. */
        double mean_tol = 5 * sd / 346 + 1e-6;
        double var_tol = 0.03 * cases[k].var + 1e-9;
        if (fabs(mean - cases[k].mean) > mean_tol ||
            fabs(var - cases[k].var) > var_tol)
            fprintf(stderr, "%s: mean %g var %g, expected %g %g\n",
                    cases[k].text, mean, var, cases[k].mean, cases[k].var);
        CU_ASSERT_DOUBLE_EQUAL(mean, cases[k].mean, mean_tol);
        CU_ASSERT_DOUBLE_EQUAL(var, cases[k].var, var_tol);
        nn_tensor_free(t);
    }
}

static void test_same_seed_same_bits(void)
{
    for (int k = 0; k < NN_INIT_COUNT_; k++) {
        char text[128];
        nn_error err;
        /* Every kind's canonical text parses back to the same kind. */
        nn_init_str(&(nn_init){(nn_init_kind)k, 1.5, 2.5}, text, sizeof text);
        nn_init back;
        CU_ASSERT_EQUAL(nn_init_parse(text, &back, &err), NN_OK);
        CU_ASSERT_EQUAL(back.kind, (nn_init_kind)k);
        nn_tensor *a = filled(text, 30, 20, 77), *b = filled(text, 30, 20, 77);
        CU_ASSERT_EQUAL(memcmp(a->data, b->data, 600 * sizeof(float)), 0);
        nn_tensor_free(a);
        nn_tensor_free(b);
    }
    nn_tensor *a = filled("Normal", 10, 10, 1), *b = filled("Normal", 10, 10, 2);
    CU_ASSERT_NOT_EQUAL(memcmp(a->data, b->data, 100 * sizeof(float)), 0);
    nn_tensor_free(a);
    nn_tensor_free(b);
}

static void test_parse_round_trip(void)
{
    nn_init init, back;
    nn_error err;
    char text[128];
    CU_ASSERT_EQUAL(nn_init_parse(" Normal ( 0.5 , scale = 0.125 ) ", &init,
                                  &err), NN_OK);
    CU_ASSERT_EQUAL(init.kind, NN_INIT_NORMAL);
    CU_ASSERT_EQUAL(init.a, 0.5);
    CU_ASSERT_EQUAL(init.b, 0.125);
    nn_init_str(&init, text, sizeof text);
    CU_ASSERT_EQUAL(nn_init_parse(text, &back, &err), NN_OK);
    CU_ASSERT_EQUAL(back.a, init.a);
    CU_ASSERT_EQUAL(back.b, init.b);

    CU_ASSERT_EQUAL(nn_init_parse("Uniform(max=5)", &init, &err), NN_OK);
    CU_ASSERT_EQUAL(init.a, 0);
    CU_ASSERT_EQUAL(init.b, 5);
    CU_ASSERT_EQUAL(nn_init_parse("KaimingNormal", &init, &err), NN_OK);
    CU_ASSERT_DOUBLE_EQUAL(init.a, sqrt(2.0), 1e-15);
    CU_ASSERT_EQUAL(nn_init_parse("Orthogonal(gain=0.3)", &init, &err), NN_OK);
    CU_ASSERT_EQUAL(init.a, 0.3);
    /* An odd value survives the text round trip exactly. */
    init.kind = NN_INIT_CONSTANT;
    init.a = 0.1 + 1e-17;
    nn_init_str(&init, text, sizeof text);
    CU_ASSERT_EQUAL(nn_init_parse(text, &back, &err), NN_OK);
    CU_ASSERT_EQUAL(back.a, init.a);
}

static void test_parse_errors_quote_the_text(void)
{
    const char *bad[] = {"", "Gaussian", "Normal(", "Normal(1, 2, 3)",
                         "Normal(mean=0, 1)", "Normal(sd=2)", "Normal(x)",
                         "Normal(nan)", "Normal(1e999)", "Normal(0, -1)",
                         "Uniform(1, 1)", "XavierNormal(0)", "Normal(1) x",
                         "Normal(1,,2)", "Normal(mean=1, mean=2)", "42"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        nn_init init;
        nn_error err;
        memset(&err, 0, sizeof err);
        CU_ASSERT_EQUAL(nn_init_parse(bad[k], &init, &err), NN_ERR_INVALID);
        char quoted[140];
        snprintf(quoted, sizeof quoted, "'%s'", bad[k]);
        if (!strstr(err.msg, quoted))
            fprintf(stderr, "'%s' -> %s\n", bad[k], err.msg);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, quoted));
    }
}

/* The orthogonal initializer must be LAPACK's blocked Householder QR (the
 * O(n³) work at matrix-multiply speed), not a loop of our own: this test
 * binary defines the LAPACK symbols, counts the calls and forwards them to
 * the library's. */
typedef void (*geqrf_fn)(const int *, const int *, float *, const int *,
                         float *, float *, const int *, int *);
typedef void (*orgqr_fn)(const int *, const int *, const int *, float *,
                         const int *, const float *, float *, const int *,
                         int *);
static int geqrf_calls, orgqr_calls;

void sgeqrf_(const int *m, const int *n, float *a, const int *lda, float *tau,
             float *work, const int *lwork, int *info);
void sgeqrf_(const int *m, const int *n, float *a, const int *lda, float *tau,
             float *work, const int *lwork, int *info)
{
    geqrf_fn real;
    *(void **)&real = dlsym(RTLD_NEXT, "sgeqrf_");
    geqrf_calls++;
    real(m, n, a, lda, tau, work, lwork, info);
}

void sorgqr_(const int *m, const int *n, const int *k, float *a,
             const int *lda, const float *tau, float *work, const int *lwork,
             int *info);
void sorgqr_(const int *m, const int *n, const int *k, float *a,
             const int *lda, const float *tau, float *work, const int *lwork,
             int *info)
{
    orgqr_fn real;
    *(void **)&real = dlsym(RTLD_NEXT, "sorgqr_");
    orgqr_calls++;
    real(m, n, k, a, lda, tau, work, lwork, info);
}

static void check_orthogonal(int rows, int cols, double gain)
{
    char text[64];
    snprintf(text, sizeof text, "Orthogonal(%g)", gain);
    nn_tensor *t = filled(text, rows, cols, 3);
    /* Tall: WᵀW = gain² I; wide: WWᵀ = gain² I. */
    int tall = rows >= cols, n = tall ? cols : rows;
    double worst = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double dot = 0;
            for (int k = 0; k < (tall ? rows : cols); k++) {
                double a = tall ? t->data[k * cols + i] : t->data[i * cols + k];
                double b = tall ? t->data[k * cols + j] : t->data[j * cols + k];
                dot += a * b;
            }
            double expect = i == j ? gain * gain : 0;
            worst = fmax(worst, fabs(dot - expect));
        }
    CU_ASSERT(worst < 1e-5);
    nn_tensor_free(t);
}

static void test_orthogonal_through_lapack(void)
{
    geqrf_calls = orgqr_calls = 0;
    check_orthogonal(48, 20, 1.0);
    CU_ASSERT(geqrf_calls > 0);
    CU_ASSERT(orgqr_calls > 0);
}

static void test_orthogonal(void)
{
    check_orthogonal(64, 16, 1.0);
    check_orthogonal(16, 64, 1.0);
    check_orthogonal(32, 32, 1.5);
}

static void test_fans_from_shape(void)
{
    /* A 3-d weight: receptive field 5, fan_in 5*40, fan_out 5*30. */
    nn_init init;
    nn_error err;
    CU_ASSERT_EQUAL(nn_init_parse("LecunNormal", &init, &err), NN_OK);
    int dims[3] = {5, 40, 30};
    nn_shape shape = nn_shape_make(3, dims);
    nn_tensor *t = nn_tensor_new(&shape);
    nn_rng rng;
    nn_rng_seed(&rng, 1);
    CU_ASSERT_EQUAL(nn_init_fill(&init, t, &rng, &err), NN_OK);
    double mean, var;
    moments(t->data, nn_tensor_numel(t), &mean, &var);
    CU_ASSERT_DOUBLE_EQUAL(var, 1.0 / 200.0, 0.1 / 200.0);
    nn_tensor_free(t);
}

/* Arguments are doubles, weights float32: an argument past float32's
 * range must not give inf or NaN weights. */
static void test_values_beyond_float32_refused(void)
{
    const char *beyond[] = {"Constant(1e39)", "Uniform(-1e39, 1)",
                            "Normal(0, 1e39)", "XavierNormal(gain=1e308)",
                            "KaimingUniform(gain=1e300)"};
    int dims[2] = {20, 30};
    nn_shape shape = nn_shape_make(2, dims);
    nn_tensor *t = nn_tensor_new(&shape);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    for (size_t k = 0; k < sizeof beyond / sizeof *beyond; k++) {
        nn_init init;
        nn_error err;
        CU_ASSERT_EQUAL_FATAL(nn_init_parse(beyond[k], &init, &err), NN_OK);
        nn_rng rng;
        nn_rng_seed(&rng, 1);
        CU_ASSERT_EQUAL(nn_init_fill(&init, t, &rng, &err), NN_ERR_INVALID);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "float32"));
    }
    /* The largest float32 itself is a value. */
    nn_init init;
    nn_error err;
    CU_ASSERT_EQUAL(nn_init_parse("Constant(3.4e38)", &init, &err), NN_OK);
    nn_rng rng;
    nn_rng_seed(&rng, 1);
    CU_ASSERT_EQUAL(nn_init_fill(&init, t, &rng, &err), NN_OK);
    nn_tensor_free(t);
}

int main(void)
{
    static const tu_test tests[] = {
        {"streams follow the seed", test_streams_follow_the_seed},
        {"stream statistics", test_stream_statistics},
        {"initialiser statistics", test_distribution_statistics},
        {"same seed, same bits", test_same_seed_same_bits},
        {"parse and text round trip", test_parse_round_trip},
        {"parse errors quote the text", test_parse_errors_quote_the_text},
        {"orthogonal is orthogonal", test_orthogonal},
        {"orthogonal goes through LAPACK's QR",
         test_orthogonal_through_lapack},
        {"fans follow the shape", test_fans_from_shape},
        {"values beyond float32 are refused",
         test_values_beyond_float32_refused},
        {NULL, NULL}};
    return tu_run_suite("init", tests);
}
