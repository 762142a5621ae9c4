/*
 * test_reservoir.c — the Reservoir node: leaky integration computed by
 * hand from the weights it reports, the spectral radius it was asked for
 * (measured independently, dense and sparse), sparse and dense storage of
 * the same matrix giving the same states, feedback, noise from the session
 * stream, a 10,000-unit sparse reservoir, gradients through it, and the
 * errors of bad parameters.
 */
#include "nn_linalg.h"
#include "nn_train.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nn_registry *reg;

static nn_graph *graph(uint64_t seed)
{
    nn_graph *g = nn_graph_new(reg, seed);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    return g;
}

static void step(nn_session *s)
{
    nn_error err;
    int rc = nn_session_step(s, 0, &err);
    if (rc != NN_OK)
        fprintf(stderr, "step: %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
}

/* -------------------------------------------------------- by hand */

static void test_leaky_integration_by_hand(void)
{
    /* 2 units, 2 inputs, everything connected, a = 0.4, with a bias. */
    nn_graph *g = graph(5);
    tu_node(g, "Input", "u", "shape=2", NULL);
    tu_node(g, "Reservoir", "r", "num_unit=2", "leaky_rate=0.4",
            "input_connectivity=1", "rc_connectivity=1", "bias_scaling=0.5",
            "input_scaling=0.7", NULL);
    tu_link(g, "u >> r");
    tu_build(g);
    nn_node *r = nn_graph_find(g, "r");
    const float *Win = nn_node_weight(r, "Win")->data;
    const float *W = nn_node_weight(r, "W")->data;
    const float *b = nn_node_weight(r, "b")->data;
    CU_ASSERT_EQUAL(nn_node_weight(r, "W")->shape.ndim, 2); /* dense */
    /* Scalings were applied to the drawn Uniform(-1, 1) values. */
    for (int k = 0; k < 4; k++)
        CU_ASSERT(fabsf(Win[k]) <= 0.7f && Win[k] != 0);
    for (int k = 0; k < 2; k++)
        CU_ASSERT(fabsf(b[k]) <= 0.5f && b[k] != 0);
    nn_session *s = tu_session(g, 1, 0);
    float u[3][2] = {{1, -0.5f}, {0.25f, 2}, {-1, 0}};
    double st[2] = {0, 0};
    for (int t = 0; t < 3; t++) {
        memcpy(nn_session_input(s, "u")->data, u[t], sizeof u[t]);
        step(s);
        double next[2];
        for (int j = 0; j < 2; j++) {
            double pre = b[j];
            for (int k = 0; k < 2; k++)
                pre += u[t][k] * (double)Win[k * 2 + j] +
                       st[k] * (double)W[k * 2 + j];
            next[j] = 0.6 * st[j] + 0.4 * tanh(pre);
        }
        memcpy(st, next, sizeof st);
        const float *out = nn_session_output(s, "r")->data;
        for (int j = 0; j < 2; j++) {
            TU_ASSERT_CLOSE(out[j], st[j], 1e-6);
            CU_ASSERT_EQUAL(nn_session_state(s, "r", 0)->data[j], out[j]);
        }
    }
    /* Reset: back to zeros, and the same inputs give the same states. */
    nn_error err;
    CU_ASSERT_EQUAL(nn_session_reset(s, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_session_state(s, "r", 0)->data[0], 0.0f);
    memcpy(nn_session_input(s, "u")->data, u[0], sizeof u[0]);
    step(s);
    double pre0 = b[0] + u[0][0] * (double)Win[0] + u[0][1] * (double)Win[2];
    TU_ASSERT_CLOSE(nn_session_output(s, "r")->data[0], 0.4 * tanh(pre0),
                    1e-6);
    nn_session_free(s);
    nn_graph_free(g);
}

static void test_identity_activation_no_leak(void)
{
    /* a = 1, identity f: s(t) = u(t) · Win + s(t−1) · W exactly. */
    nn_graph *g = graph(6);
    tu_node(g, "Input", "u", "shape=1", NULL);
    tu_node(g, "Reservoir", "r", "num_unit=3", "leaky_rate=1",
            "activation=identity", "input_connectivity=1",
            "rc_connectivity=1", "W_initializer=Constant(0.5)",
            "Win_initializer=Ones", NULL);
    tu_link(g, "u >> r");
    tu_build(g);
    nn_session *s = tu_session(g, 1, 0);
    double expect = 0;
    for (int t = 0; t < 4; t++) {
        nn_session_input(s, "u")->data[0] = 1;
        step(s);
        /* Each unit: 1 + 3 * 0.5 * previous value. */
        expect = 1 + 1.5 * expect;
        for (int j = 0; j < 3; j++)
            TU_ASSERT_CLOSE(nn_session_output(s, "r")->data[j], expect, 1e-5);
    }
    nn_session_free(s);
    nn_graph_free(g);
}

/* -------------------------------------------------- spectral radius */

/* The spectral radius of a dense (n, n) float weight, by LAPACK. */
static double radius_of(const float *w, int n)
{
    double *a = malloc(sizeof(double) * (size_t)n * n);
    for (size_t i = 0; i < (size_t)n * n; i++)
        a[i] = w[i];
    double rho = -1;
    nn_error err;
    CU_ASSERT_EQUAL(nn_spectral_radius_dense(n, a, &rho, &err), NN_OK);
    free(a);
    return rho;
}

static nn_graph *reservoir_graph(uint64_t seed, const char *units,
                                 const char *sparse, const char *radius,
                                 const char *density)
{
    nn_graph *g = graph(seed);
    tu_node(g, "Input", "u", "shape=3", NULL);
    tu_node(g, "Reservoir", "r", units, sparse, radius, density,
            "bias_scaling=0.2", NULL);
    tu_link(g, "u >> r");
    tu_build(g);
    return g;
}

static void test_dense_spectral_radius(void)
{
    nn_graph *g = reservoir_graph(7, "num_unit=300", "sparse=false",
                                  "spectral_radius=1.25",
                                  "rc_connectivity=0.2");
    nn_tensor *W = nn_node_weight(nn_graph_find(g, "r"), "W");
    CU_ASSERT_EQUAL_FATAL(W->shape.ndim, 2);
    TU_ASSERT_CLOSE(radius_of(W->data, 300), 1.25, 1e-3);
    /* About 20 % of the entries are present. */
    size_t nz = 0;
    for (size_t i = 0; i < nn_tensor_numel(W); i++)
        nz += W->data[i] != 0;
    double expect = 0.2 * 300 * 300, sd = sqrt(expect * 0.8);
    CU_ASSERT(fabs((double)nz - expect) < 5 * sd);
    nn_graph_free(g);
}

/* The nonzeros of a dense weight in row-major order. */
static size_t nonzeros(const nn_tensor *t, float *out)
{
    size_t n = 0;
    for (size_t i = 0; i < nn_tensor_numel(t); i++)
        if (t->data[i] != 0) {
            if (out)
                out[n] = t->data[i];
            n++;
        }
    return n;
}

static void test_sparse_radius_and_same_states_as_dense(void)
{
    enum { N = 600, T = 40 };
    /* Same seed and name: the same matrix, stored two ways. */
    nn_graph *gs = reservoir_graph(8, "num_unit=600", "sparse=true",
                                   "spectral_radius=0.9",
                                   "rc_connectivity=0.05");
    nn_graph *gd = reservoir_graph(8, "num_unit=600", "sparse=false",
                                   "spectral_radius=0.9",
                                   "rc_connectivity=0.05");
    nn_node *rs = nn_graph_find(gs, "r"), *rd = nn_graph_find(gd, "r");
    nn_tensor *Ws = nn_node_weight(rs, "W"), *Wd = nn_node_weight(rd, "W");
    CU_ASSERT_EQUAL_FATAL(Ws->shape.ndim, 1);
    CU_ASSERT_EQUAL_FATAL(Wd->shape.ndim, 2);
    size_t nnz = (size_t)Ws->shape.dims[0];
    CU_ASSERT_EQUAL_FATAL(nonzeros(Wd, NULL), nnz);
    /* The sparse values on the dense twin's pattern: a dense matrix whose
     * radius LAPACK measures; the Arnoldi rescaling must hit 0.9. */
    float *dense = calloc((size_t)N * N, sizeof(float));
    size_t k = 0;
    /* The sparse values come output by output: column-major in W. */
    for (size_t j = 0; j < (size_t)N; j++)
        for (size_t r = 0; r < (size_t)N; r++) {
            size_t i = r * N + j;
            if (Wd->data[i] == 0)
                continue;
            /* Both rescaled the same draws: equal up to the radius. */
            TU_ASSERT_CLOSE(Ws->data[k], Wd->data[i],
                            1e-4 * fabs(Wd->data[i]));
            dense[i] = Ws->data[k++];
        }
    TU_ASSERT_CLOSE(radius_of(dense, N), 0.9, 1e-3);
    /* Same weights, same states: import the sparse values into the dense
     * twin, then run both. */
    memcpy(Wd->data, dense, sizeof(float) * N * N);
    free(dense);
    memcpy(nn_node_weight(rd, "Win")->data, nn_node_weight(rs, "Win")->data,
           sizeof(float) * 3 * N);
    nn_session *ss = tu_session(gs, 2, 0), *sd = tu_session(gd, 2, 0);
    double worst = 0;
    for (int t = 0; t < T; t++) {
        nn_tensor *us = nn_session_input(ss, "u"), *ud = nn_session_input(sd,
                                                                          "u");
        tu_fill(us, 1.0f, 0.37f * (float)t);
        memcpy(ud->data, us->data, nn_tensor_numel(us) * sizeof(float));
        step(ss);
        step(sd);
        const float *a = nn_session_output(ss, "r")->data;
        const float *b = nn_session_output(sd, "r")->data;
        for (int i = 0; i < 2 * N; i++)
            worst = fmax(worst, fabs((double)a[i] - b[i]));
    }
    if (worst > 1e-5)
        fprintf(stderr, "sparse vs dense: max difference %g\n", worst);
    CU_ASSERT(worst <= 1e-5);
    nn_session_free(ss);
    nn_session_free(sd);
    nn_graph_free(gs);
    nn_graph_free(gd);
}

static void test_sparse_auto_and_large_reservoir(void)
{
    /* 10,000 units at 1 %: auto picks CSR, so W is ~10⁶ values and no
     * dense 10,000² matrix (400 MB) is ever made. (Its rescaling to a
     * spectral radius takes seconds, so the sparse rescaling is checked on
     * a smaller W above.) */
    nn_graph *g = graph(9);
    tu_node(g, "Input", "u", "shape=2", NULL);
    tu_node(g, "Reservoir", "r", "num_unit=10000", "rc_connectivity=0.01",
            NULL);
    tu_link(g, "u >> r");
    tu_build(g);
    nn_node *r = nn_graph_find(g, "r");
    nn_tensor *W = nn_node_weight(r, "W");
    CU_ASSERT_EQUAL_FATAL(W->shape.ndim, 1);
    double expect = 1e6, sd = sqrt(expect * 0.99);
    CU_ASSERT(fabs(W->shape.dims[0] - expect) < 5 * sd);
    CU_ASSERT(nn_node_param_count(r) < 1100000 + 3 * 10000);
    /* Not trainable by default. */
    for (int i = 0; i < nn_node_weight_count(r); i++)
        CU_ASSERT_FALSE(nn_node_weight_trainable(r, i));
    nn_session *s = tu_session(g, 1, 0);
    uint64_t before = nn_alloc_count();
    for (int t = 0; t < 20; t++) {
        tu_fill(nn_session_input(s, "u"), 1.0f, (float)t);
        step(s);
    }
    CU_ASSERT_EQUAL(nn_alloc_count(), before);
    const float *out = nn_session_output(s, "r")->data;
    double norm = 0;
    for (int i = 0; i < 10000; i++)
        norm += (double)out[i] * out[i];
    CU_ASSERT(norm > 0 && isfinite(norm));
    nn_session_free(s);
    nn_graph_free(g);
    /* Small and dense by default. */
    g = reservoir_graph(9, "num_unit=50", "sparse=auto", "spectral_radius=0",
                        "rc_connectivity=0.1");
    CU_ASSERT_EQUAL(nn_node_weight(nn_graph_find(g, "r"), "W")->shape.ndim, 2);
    nn_graph_free(g);
}

/* A batch of 90 rows goes through every chunk width of the sparse product
 * (32, 32, 16, 8, then two rows alone; with AVX2 only 32, 32, 8, 8, 8, then
 * two) and its scratch (over 4 MiB) is
 * mapped apart for huge pages: each row's states are still those of that
 * row stepped alone, a step allocates nothing, and a scratch that cannot
 * be had is out of memory, reported. The sparse product alone gives the
 * same bits at any batch (test_linalg); the input product is BLAS's, whose
 * GEMV and GEMM round differently on some kernels (Zen's), so the states
 * are compared to float32 tolerance. A misplaced chunk row would be off by
 * far more. */
static void test_sparse_big_batch(void)
{
    enum { B = 90, U = 2000, STEPS = 4 };
    nn_graph *g = reservoir_graph(23, "num_unit=2000", "sparse=true",
                                  "spectral_radius=0",
                                  "rc_connectivity=0.02");
    nn_session *big = tu_session(g, B, 0);
    nn_session *one = tu_session(g, 1, 0);
    float *want = malloc(sizeof(float) * B * U);
    CU_ASSERT_PTR_NOT_NULL_FATAL(want);
    for (int b = 0; b < B; b++) {
        nn_error err;
        CU_ASSERT_EQUAL(nn_session_reset(one, &err), NN_OK);
        for (int t = 0; t < STEPS; t++) {
            float *u = nn_session_input(one, "u")->data;
            for (int i = 0; i < 3; i++)
                u[i] = sinf(0.7f * (float)t + 0.1f * (float)(b * 3 + i));
            step(one);
        }
        memcpy(want + (size_t)b * U, nn_session_state(one, "r", 0)->data,
               sizeof(float) * U);
    }
    uint64_t before = nn_alloc_count();
    for (int t = 0; t < STEPS; t++) {
        float *u = nn_session_input(big, "u")->data;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < 3; i++)
                u[b * 3 + i] =
                    sinf(0.7f * (float)t + 0.1f * (float)(b * 3 + i));
        step(big);
    }
    CU_ASSERT_EQUAL(nn_alloc_count(), before);
    const float *got = nn_session_state(big, "r", 0)->data;
    int differ = 0;
    for (size_t i = 0; i < (size_t)B * U; i++)
        differ += fabsf(got[i] - want[i]) > 1e-5f * (1.0f + fabsf(want[i]));
    CU_ASSERT_EQUAL(differ, 0);
    double norm = 0;
    for (size_t i = 0; i < (size_t)B * U; i++)
        norm += (double)got[i] * got[i];
    CU_ASSERT(norm > 0 && isfinite(norm));
    free(want);
    nn_session_free(big);
    nn_session_free(one);
    /* Only the scratch is that large: refusing it fails the session. */
    nn_error err;
    nn_alloc_fail_above((size_t)4 << 20);
    nn_session *none = nn_session_new(g, B, 0, &err);
    nn_alloc_fail_above(0);
    CU_ASSERT_PTR_NULL(none);
    CU_ASSERT_EQUAL(err.code, NN_ERR_NOMEM);
    nn_session_free(none);
    nn_graph_free(g);
}

/* ------------------------------------------------ feedback, noise */

static void test_feedback(void)
{
    nn_graph *g = graph(10);
    tu_node(g, "Input", "u", "shape=2", NULL);
    tu_node(g, "Reservoir", "r", "num_unit=4", "fb_connectivity=1",
            "fb_scaling=0.5", "input_connectivity=1", NULL);
    tu_node(g, "Dense", "o", "num_unit=3", NULL);
    tu_link(g, "u >> r >> o");
    tu_link(g, "r << o");
    tu_build(g);
    nn_node *r = nn_graph_find(g, "r");
    nn_tensor *Wfb = nn_node_weight(r, "Wfb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(Wfb);
    CU_ASSERT_EQUAL(Wfb->shape.dims[0], 3);
    CU_ASSERT_EQUAL(Wfb->shape.dims[1], 4);
    for (int k = 0; k < 12; k++)
        CU_ASSERT(fabsf(Wfb->data[k]) <= 0.5f && Wfb->data[k] != 0);
    const float *Win = nn_node_weight(r, "Win")->data;
    const float *W = nn_node_weight(r, "W")->data;
    nn_session *s = tu_session(g, 1, 0);
    double st[4] = {0}, o_prev[3] = {0};
    for (int t = 0; t < 3; t++) {
        float u[2] = {0.5f * (float)t - 0.3f, 1};
        memcpy(nn_session_input(s, "u")->data, u, sizeof u);
        step(s);
        double next[4];
        for (int j = 0; j < 4; j++) {
            double pre = 0; /* bias_scaling defaults to 0 */
            for (int k = 0; k < 2; k++)
                pre += u[k] * (double)Win[k * 4 + j];
            for (int k = 0; k < 4; k++)
                pre += st[k] * W[k * 4 + j];
            for (int k = 0; k < 3; k++)
                pre += o_prev[k] * Wfb->data[k * 4 + j];
            next[j] = 0.7 * st[j] + 0.3 * tanh(pre);
        }
        memcpy(st, next, sizeof st);
        for (int j = 0; j < 4; j++)
            TU_ASSERT_CLOSE(nn_session_output(s, "r")->data[j], st[j], 1e-6);
        for (int k = 0; k < 3; k++)
            o_prev[k] = nn_session_output(s, "o")->data[k];
    }
    nn_session_free(s);
    nn_graph_free(g);
}

static void test_noise_from_session_stream(void)
{
    nn_graph *g = graph(11);
    tu_node(g, "Input", "u", "shape=2", NULL);
    tu_node(g, "Reservoir", "r", "num_unit=30", "noise_rc=0.01",
            "noise_in=0.1", NULL);
    tu_node(g, "Reservoir", "quiet", "num_unit=30", NULL);
    tu_link(g, "u >> {r, quiet}");
    tu_build(g);
    /* Same name, same seed, no noise: a quiet twin to compare against. */
    nn_graph *q = graph(11);
    tu_node(q, "Input", "u", "shape=2", NULL);
    tu_node(q, "Reservoir", "r", "num_unit=30", NULL);
    tu_link(q, "u >> r");
    tu_build(q);
    nn_session *a = tu_session(g, 1, 1), *b = tu_session(g, 1, 1);
    nn_session *c = tu_session(g, 1, 2), *z = tu_session(q, 1, 1);
    float trace[5][30];
    for (int t = 0; t < 5; t++) {
        nn_session *all[4] = {a, b, c, z};
        for (int i = 0; i < 4; i++) {
            tu_fill(nn_session_input(all[i], "u"), 1.0f, (float)t);
            step(all[i]);
        }
        const float *ra = nn_session_output(a, "r")->data;
        memcpy(trace[t], ra, sizeof trace[t]);
        /* Reproducible for one session seed, different for another. */
        CU_ASSERT_EQUAL(memcmp(ra, nn_session_output(b, "r")->data,
                               30 * sizeof(float)), 0);
        CU_ASSERT_NOT_EQUAL(memcmp(ra, nn_session_output(c, "r")->data,
                                   30 * sizeof(float)), 0);
        /* Noise of about the configured size. */
        double diff = 0;
        for (int j = 0; j < 30; j++)
            diff = fmax(diff, fabs(ra[j] - nn_session_output(z, "r")->data[j]));
        CU_ASSERT(diff > 1e-4 && diff < 0.5);
    }
    /* Reset restarts the stream: the same noisy trace again. */
    nn_error err;
    CU_ASSERT_EQUAL(nn_session_reset(a, &err), NN_OK);
    for (int t = 0; t < 5; t++) {
        tu_fill(nn_session_input(a, "u"), 1.0f, (float)t);
        step(a);
        CU_ASSERT_EQUAL(memcmp(trace[t], nn_session_output(a, "r")->data,
                               sizeof trace[t]), 0);
    }
    nn_session_free(a);
    nn_session_free(b);
    nn_session_free(c);
    nn_session_free(z);
    nn_graph_free(g);
    nn_graph_free(q);
}

/* ------------------------------------------------------- gradients */

static void test_gradients_through_reservoir(void)
{
    static const char *cases[][3] = {
        {"sparse=false", "noise_in=0", "dense"},
        {"sparse=true", "noise_in=0.2", "sparse, input noise"},
    };
    for (int c = 0; c < 2; c++) {
        /* A trainable Dense before a fixed reservoir: gradients must pass
         * through the reservoir, over time, to reach it. */
        nn_graph *g = graph(12);
        tu_node(g, "Input", "x", "shape=3", NULL);
        tu_node(g, "Dense", "d", "num_unit=4", "b_initializer=Normal(0, 0.3)",
                NULL);
        tu_node(g, "Reservoir", "r", "num_unit=6", "rc_connectivity=0.5",
                "spectral_radius=0.9", "leaky_rate=0.6", "input_connectivity=1",
                cases[c][0], cases[c][1], NULL);
        tu_node(g, "Dense", "o", "num_unit=2", NULL);
        tu_link(g, "x >> d >> r >> o");
        tu_build(g);
        tu_check_gradients(g, "x", 3, NULL, cases[c][2]);
        nn_graph_free(g);
    }
    /* trainable=true opts the reservoir's own weights in, feedback too. */
    nn_graph *g = graph(13);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "Reservoir", "r", "num_unit=5", "rc_connectivity=0.6",
            "sparse=true", "bias_scaling=0.3", "fb_connectivity=1",
            "noise_fb=0.1", "activation=sigmoid", "trainable=true", NULL);
    tu_node(g, "Dense", "o", "num_unit=2", NULL);
    tu_link(g, "x >> r >> o");
    tu_link(g, "r << o");
    tu_build(g);
    nn_node *r = nn_graph_find(g, "r");
    for (int i = 0; i < nn_node_weight_count(r); i++)
        CU_ASSERT(nn_node_weight_trainable(r, i));
    tu_check_gradients(g, "x", 3, NULL, "trainable sparse reservoir with feedback");
    nn_graph_free(g);
}

/* ---------------------------------------------------------- errors */

static void expect_build_error(const char *param, const char *value,
                               int code, const char *needle)
{
    nn_graph *g = graph(14);
    nn_error err;
    tu_node(g, "Input", "u", "shape=2", NULL);
    nn_node *r = tu_node(g, "Reservoir", "r", "num_unit=3", NULL);
    int rc = nn_node_set_param(r, param, value, &err);
    if (rc == NN_OK) {
        tu_link(g, "u >> r");
        rc = nn_graph_build(g, &err);
    }
    if (rc != code || !strstr(err.msg, needle))
        fprintf(stderr, "%s=%s: %d %s\n", param, value, rc, err.msg);
    CU_ASSERT_EQUAL(rc, code);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, needle));
    nn_graph_free(g);
}

static void test_bad_parameters(void)
{
    expect_build_error("leaky_rate", "0", NN_ERR_INVALID, "'leaky_rate'");
    expect_build_error("leaky_rate", "1.5", NN_ERR_INVALID, "'leaky_rate'");
    expect_build_error("rc_connectivity", "0", NN_ERR_INVALID,
                       "'rc_connectivity'");
    expect_build_error("input_connectivity", "2", NN_ERR_INVALID,
                       "'input_connectivity'");
    expect_build_error("spectral_radius", "-1", NN_ERR_INVALID,
                       "'spectral_radius'");
    expect_build_error("sparse", "maybe", NN_ERR_INVALID, "auto");
    expect_build_error("noise_type", "pink", NN_ERR_INVALID, "normal");
    expect_build_error("W_initializer", "XavierNormal", NN_ERR_INVALID,
                       "elementwise initializer");
    expect_build_error("b_initializer", "Orthogonal", NN_ERR_INVALID,
                       "'b_initializer'");
    /* W all zeros cannot be rescaled to a radius. */
    expect_build_error("W_initializer", "Zeros", NN_OK, "");
    nn_graph *g = graph(15);
    nn_error err;
    tu_node(g, "Input", "u", "shape=2", NULL);
    tu_node(g, "Reservoir", "r", "num_unit=3", "W_initializer=Zeros",
            "spectral_radius=1", NULL);
    tu_link(g, "u >> r");
    CU_ASSERT_EQUAL(nn_graph_build(g, &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'r' (Reservoir)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "cannot rescale W"));
    nn_graph_free(g);
    /* A sparse W whose pattern came out empty. */
    g = graph(15);
    tu_node(g, "Input", "u", "shape=2", NULL);
    tu_node(g, "Reservoir", "r", "num_unit=2", "sparse=true",
            "rc_connectivity=1e-9", NULL);
    tu_link(g, "u >> r");
    CU_ASSERT_EQUAL(nn_graph_build(g, &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "is empty"));
    nn_graph_free(g);
    /* Leading axes. */
    g = graph(15);
    tu_node(g, "Input", "u", "shape=[2, 3]", NULL);
    tu_node(g, "Reservoir", "r", "num_unit=3", NULL);
    tu_link(g, "u >> r");
    CU_ASSERT_EQUAL(nn_graph_build(g, &err), NN_ERR_SHAPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "(batch, features)"));
    nn_graph_free(g);
    /* num_unit is required. */
    g = graph(15);
    tu_node(g, "Input", "u", "shape=2", NULL);
    tu_node(g, "Reservoir", "r", NULL);
    tu_link(g, "u >> r");
    CU_ASSERT_EQUAL(nn_graph_build(g, &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'num_unit' is required"));
    nn_graph_free(g);
}

static void test_build_out_of_memory(void)
{
    /* Every allocation of a build fails in turn: an error, never a crash
     * (and under the sanitizers, no leak). */
    for (uint64_t n = 1;; n++) {
        nn_graph *g = graph(16);
        tu_node(g, "Input", "u", "shape=2", NULL);
        tu_node(g, "Reservoir", "r", "num_unit=20", "sparse=true",
                "spectral_radius=0.5", "rc_connectivity=0.3", NULL);
        tu_node(g, "Dense", "o", "num_unit=2", NULL);
        tu_link(g, "u >> r >> o");
        tu_link(g, "r << o");
        nn_error err;
        nn_alloc_fail_after(n);
        int rc = nn_graph_build(g, &err);
        nn_alloc_fail_after(0);
        nn_graph_free(g);
        if (rc == NN_OK)
            break;
        CU_ASSERT_EQUAL(rc, NN_ERR_NOMEM);
        if (n > 1000) {
            CU_FAIL("the build never succeeded");
            break;
        }
    }
}

/* A reservoir far over the parameter cap is refused before anything of
 * its size is drawn or allocated: with every allocation above 16 MiB made
 * to fail, the answer is the limit (NN_ERR_LIMIT, naming the node's size),
 * not out of memory from drawing a pattern of a billion entries. Likewise
 * the caps of each weight, below the whole-node check, and without a
 * sparse W. */
static void test_refused_before_allocating(void)
{
    static const char *const storage[] = {"sparse=true", "sparse=false"};
    for (int i = 0; i < 2; i++) {
        nn_graph *g = graph(17);
        tu_node(g, "Input", "u", "shape=1", NULL);
        tu_node(g, "Reservoir", "r", "num_unit=100000", storage[i],
                "spectral_radius=1.25", NULL);
        tu_link(g, "u >> r");
        nn_error err;
        CU_ASSERT_EQUAL_FATAL(nn_graph_set_limits(g, 10000000, 0, &err), NN_OK);
        nn_alloc_fail_above(16 << 20);
        int rc = nn_graph_build(g, &err);
        nn_alloc_fail_above(0);
        CU_ASSERT_EQUAL(rc, NN_ERR_LIMIT);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "100000 units"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "limit"));
        nn_graph_free(g);
    }
    /* A feedback matrix over what is left is refused before its draw. */
    nn_graph *g = graph(18);
    tu_node(g, "Input", "u", "shape=1", NULL);
    tu_node(g, "Reservoir", "r", "num_unit=1000", "rc_connectivity=0.01",
            NULL);
    tu_node(g, "Input", "f", "shape=100000", NULL);
    tu_node(g, "Concat", "c", NULL);
    tu_link(g, "u >> r >> c");
    tu_link(g, "f >> c");
    tu_link(g, "r << c");
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_graph_set_limits(g, 1000000, 0, &err), NN_OK);
    nn_alloc_fail_above(16 << 20);
    int rc = nn_graph_build(g, &err);
    nn_alloc_fail_above(0);
    if (rc != NN_ERR_LIMIT)
        fprintf(stderr, "feedback: %d %s\n", rc, err.msg);
    CU_ASSERT_EQUAL(rc, NN_ERR_LIMIT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "Wfb"));
    nn_graph_free(g);
}

int main(void)
{
    nn_error err;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &err) != NN_OK)
        return 2;
    static const tu_test tests[] = {
        {"leaky integration by hand", test_leaky_integration_by_hand},
        {"identity activation without leak", test_identity_activation_no_leak},
        {"dense W has the requested spectral radius",
         test_dense_spectral_radius},
        {"sparse W: requested radius, same states as dense",
         test_sparse_radius_and_same_states_as_dense},
        {"auto storage; a 10,000-unit sparse reservoir",
         test_sparse_auto_and_large_reservoir},
        {"a sparse batch of 90 rows: the bits of each row alone",
         test_sparse_big_batch},
        {"feedback", test_feedback},
        {"noise from the session stream", test_noise_from_session_stream},
        {"gradients through and into a reservoir",
         test_gradients_through_reservoir},
        {"bad parameters", test_bad_parameters},
        {"out of memory while building", test_build_out_of_memory},
        {"refused over the parameter cap before allocating",
         test_refused_before_allocating},
        {NULL, NULL}};
    int rc = tu_run_suite("reservoir", tests);
    nn_registry_free(reg);
    return rc;
}
