/*
 * test_reservoir_opts.c — the Reservoir's ReservoirPy options, each against
 * its equation computed here from the weights the node reports: the
 * external equation, fb_activation, per-feature input and feedback scaling,
 * per-unit leak rates (a list or an initializer), the Bernoulli
 * initializer, exact-count connectivity modes, the noise laws and where the
 * state noise goes; gradients through all of them; the float-vector
 * parameter's parsing and errors.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nn_registry *reg;

static void step(nn_session *s)
{
    nn_error err;
    int rc = nn_session_step(s, 0, &err);
    if (rc != NN_OK)
        fprintf(stderr, "step: %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
}

/* u >> r, with up to six parameters of r. */
static nn_graph *single(uint64_t seed, int width, const char *p1,
                        const char *p2, const char *p3, const char *p4,
                        const char *p5, const char *p6)
{
    nn_graph *g = tu_graph(reg, seed);
    char shape[32];
    snprintf(shape, sizeof shape, "shape=%d", width);
    tu_node(g, "Input", "u", shape, NULL);
    tu_node(g, "Reservoir", "r", p1, p2, p3, p4, p5, p6, NULL);
    tu_link(g, "u >> r");
    tu_build(g);
    return g;
}

/* --------------------------------------------------- external equation */

static void test_external_equation_by_hand(void)
{
    /* 3 units, 2 inputs, all connected, a = 0.4, a bias, sigmoid (f(0) is
     * not 0, so the inner state x and the output s must be kept apart). */
    nn_graph *g;
    nn_node *r;
    g = tu_graph(reg, 21);
    tu_node(g, "Input", "u", "shape=2", NULL);
    r = tu_node(g, "Reservoir", "r", "num_unit=3", "leaky_rate=0.4",
                "input_connectivity=1", "rc_connectivity=1",
                "bias_scaling=0.5", "equation=external",
                "activation=sigmoid", NULL);
    tu_link(g, "u >> r");
    tu_build(g);
    CU_ASSERT_EQUAL(nn_node_state_count(r), 2);
    CU_ASSERT_STRING_EQUAL(nn_node_state_name(r, 1), "x");
    const float *Win = nn_node_weight(r, "Win")->data;
    const float *W = nn_node_weight(r, "W")->data;
    const float *b = nn_node_weight(r, "b")->data;
    nn_session *s = tu_session(g, 1, 0);
    double x[3] = {0, 0, 0}, st[3] = {0, 0, 0};
    for (int t = 0; t < 4; t++) {
        float u[2] = {0.6f - 0.4f * (float)t, 0.25f * (float)t};
        memcpy(nn_session_input(s, "u")->data, u, sizeof u);
        step(s);
        double nx[3];
        for (int j = 0; j < 3; j++) {
            double pre = b[j];
            for (int k = 0; k < 2; k++)
                pre += u[k] * (double)Win[k * 3 + j];
            for (int k = 0; k < 3; k++)
                pre += st[k] * (double)W[k * 3 + j]; /* W reads s, not x */
            nx[j] = 0.6 * x[j] + 0.4 * pre;
        }
        for (int j = 0; j < 3; j++) {
            x[j] = nx[j];
            st[j] = 1 / (1 + exp(-x[j]));
        }
        const float *out = nn_session_output(s, "r")->data;
        for (int j = 0; j < 3; j++) {
            TU_ASSERT_CLOSE(out[j], st[j], 1e-6);
            TU_ASSERT_CLOSE(nn_session_state(s, "r", 0)->data[j], st[j], 1e-6);
            TU_ASSERT_CLOSE(nn_session_state(s, "r", 1)->data[j], x[j], 1e-6);
        }
    }
    /* Reset zeroes both states. */
    nn_error err;
    CU_ASSERT_EQUAL(nn_session_reset(s, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_session_state(s, "r", 1)->data[0], 0.0f);
    nn_session_free(s);
    nn_graph_free(g);
}

/* ----------------------------------------------- per-feature scaling */

static void test_vector_input_scaling(void)
{
    /* The same seed draws the same Win; a list scales its rows, one factor
     * per input feature (ReservoirPy's columns of its (units, inputs) Win). */
    nn_graph *one = single(22, 3, "num_unit=4", "input_connectivity=1",
                           "input_scaling=1", NULL, NULL, NULL);
    nn_graph *vec = single(22, 3, "num_unit=4", "input_connectivity=1",
                           "input_scaling=[0.5, 2, 0.25]", NULL, NULL, NULL);
    const double f[3] = {0.5, 2, 0.25};
    const float *w1 = nn_node_weight(nn_graph_find(one, "r"), "Win")->data;
    const float *wv = nn_node_weight(nn_graph_find(vec, "r"), "Win")->data;
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 4; j++)
            CU_ASSERT_EQUAL(wv[k * 4 + j], (float)(w1[k * 4 + j] * f[k]));
    /* Everything drawn after Win is the same: a list draws nothing. */
    CU_ASSERT_EQUAL(memcmp(nn_node_weight(nn_graph_find(one, "r"), "W")->data,
                           nn_node_weight(nn_graph_find(vec, "r"), "W")->data,
                           16 * sizeof(float)), 0);
    /* The parameter reads back as written. */
    const char *text = nn_node_param_text(nn_graph_find(vec, "r"),
                                          "input_scaling");
    CU_ASSERT_STRING_EQUAL(text, "[0.5, 2, 0.25]");
    nn_graph_free(one);
    nn_graph_free(vec);

    /* Feedback scaling per feedback feature. */
    nn_graph *g[2];
    const char *fbs[2] = {"fb_scaling=1", "fb_scaling=[3, 0.5]"};
    for (int c = 0; c < 2; c++) {
        g[c] = tu_graph(reg, 23);
        tu_node(g[c], "Input", "u", "shape=2", NULL);
        tu_node(g[c], "Reservoir", "r", "num_unit=5", "fb_connectivity=1",
                fbs[c], NULL);
        tu_node(g[c], "Dense", "o", "num_unit=2", NULL);
        tu_link(g[c], "u >> r >> o");
        tu_link(g[c], "r << o");
        tu_build(g[c]);
    }
    const float *f1 = nn_node_weight(nn_graph_find(g[0], "r"), "Wfb")->data;
    const float *fv = nn_node_weight(nn_graph_find(g[1], "r"), "Wfb")->data;
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 5; j++)
            CU_ASSERT_EQUAL(fv[k * 5 + j],
                            (float)(f1[k * 5 + j] * (k == 0 ? 3.0 : 0.5)));
    nn_graph_free(g[0]);
    nn_graph_free(g[1]);
}

/* --------------------------------------------------- per-unit leak */

static void test_per_unit_leak_list(void)
{
    nn_graph *g = single(24, 2, "num_unit=3", "leaky_rate=[0.1, 0.5, 1]",
                         "input_connectivity=1", "rc_connectivity=1",
                         "bias_scaling=0.3", NULL);
    nn_node *r = nn_graph_find(g, "r");
    nn_tensor *lr = nn_node_weight(r, "lr");
    CU_ASSERT_PTR_NOT_NULL_FATAL(lr);
    CU_ASSERT_EQUAL(lr->shape.dims[0], 3);
    const double a[3] = {0.1, 0.5, 1};
    for (int j = 0; j < 3; j++)
        CU_ASSERT_EQUAL(lr->data[j], (float)a[j]);
    int lr_index = nn_node_weight_count(r) - 1;
    CU_ASSERT_STRING_EQUAL(nn_node_weight_name(r, lr_index), "lr");
    CU_ASSERT_FALSE(nn_node_weight_trainable(r, lr_index));
    const float *Win = nn_node_weight(r, "Win")->data;
    const float *W = nn_node_weight(r, "W")->data;
    const float *b = nn_node_weight(r, "b")->data;
    nn_session *s = tu_session(g, 1, 0);
    double st[3] = {0, 0, 0};
    for (int t = 0; t < 4; t++) {
        float u[2] = {1 - 0.3f * (float)t, -0.5f};
        memcpy(nn_session_input(s, "u")->data, u, sizeof u);
        step(s);
        double next[3];
        for (int j = 0; j < 3; j++) {
            double pre = b[j];
            for (int k = 0; k < 2; k++)
                pre += u[k] * (double)Win[k * 3 + j];
            for (int k = 0; k < 3; k++)
                pre += st[k] * (double)W[k * 3 + j];
            double aj = (float)a[j];
            next[j] = (1 - aj) * st[j] + aj * tanh(pre);
        }
        memcpy(st, next, sizeof st);
        for (int j = 0; j < 3; j++)
            TU_ASSERT_CLOSE(nn_session_output(s, "r")->data[j], st[j], 1e-6);
    }
    nn_session_free(s);
    nn_graph_free(g);
}

static void test_per_unit_leak_initializer(void)
{
    nn_graph *g = single(25, 2, "num_unit=200", "leaky_rate=Uniform(0.1, 0.5)",
                         NULL, NULL, NULL, NULL);
    nn_graph *twin = single(25, 2, "num_unit=200", NULL, NULL, NULL, NULL,
                            NULL);
    nn_graph *again = single(25, 2, "num_unit=200",
                             "leaky_rate=Uniform(0.1, 0.5)", NULL, NULL, NULL,
                             NULL);
    nn_tensor *lr = nn_node_weight(nn_graph_find(g, "r"), "lr");
    CU_ASSERT_PTR_NOT_NULL_FATAL(lr);
    double lo = 1, hi = 0, mean = 0;
    for (int j = 0; j < 200; j++) {
        lo = fmin(lo, lr->data[j]);
        hi = fmax(hi, lr->data[j]);
        mean += lr->data[j] / 200.0;
    }
    CU_ASSERT(lo >= 0.1 && hi <= 0.5 && hi - lo > 0.3);
    CU_ASSERT(fabs(mean - 0.3) < 0.03);
    /* Drawn from the seed: the same again; drawn last: the other weights
     * are those of the single-rate twin. */
    nn_tensor *lr2 = nn_node_weight(nn_graph_find(again, "r"), "lr");
    CU_ASSERT_EQUAL(memcmp(lr->data, lr2->data, 200 * sizeof(float)), 0);
    const char *names[3] = {"Win", "W", "b"};
    for (int i = 0; i < 3; i++) {
        nn_tensor *a = nn_node_weight(nn_graph_find(g, "r"), names[i]);
        nn_tensor *b = nn_node_weight(nn_graph_find(twin, "r"), names[i]);
        CU_ASSERT_EQUAL(nn_tensor_numel(a), nn_tensor_numel(b));
        CU_ASSERT_EQUAL(memcmp(a->data, b->data,
                               nn_tensor_numel(a) * sizeof(float)), 0);
    }
    CU_ASSERT_PTR_NULL(nn_node_weight(nn_graph_find(twin, "r"), "lr"));
    nn_graph_free(g);
    nn_graph_free(twin);
    nn_graph_free(again);
}

/* ----------------------------------------------------- fb_activation */

static void test_fb_activation_by_hand(void)
{
    nn_graph *g = tu_graph(reg, 26);
    tu_node(g, "Input", "u", "shape=2", NULL);
    tu_node(g, "Reservoir", "r", "num_unit=4", "fb_connectivity=1",
            "input_connectivity=1", "fb_activation=tanh", "fb_scaling=2",
            NULL);
    tu_node(g, "Dense", "o", "num_unit=3", "b_initializer=Normal(0, 1)", NULL);
    tu_link(g, "u >> r >> o");
    tu_link(g, "r << o");
    tu_build(g);
    nn_node *r = nn_graph_find(g, "r");
    const float *Wfb = nn_node_weight(r, "Wfb")->data;
    const float *Win = nn_node_weight(r, "Win")->data;
    const float *W = nn_node_weight(r, "W")->data;
    nn_session *s = tu_session(g, 1, 0);
    double st[4] = {0}, o_prev[3] = {0};
    for (int t = 0; t < 4; t++) {
        float u[2] = {0.5f * (float)t - 0.3f, 1};
        memcpy(nn_session_input(s, "u")->data, u, sizeof u);
        step(s);
        double next[4];
        for (int j = 0; j < 4; j++) {
            double pre = 0;
            for (int k = 0; k < 2; k++)
                pre += u[k] * (double)Win[k * 4 + j];
            for (int k = 0; k < 4; k++)
                pre += st[k] * W[k * 4 + j];
            for (int k = 0; k < 3; k++)
                pre += tanh(o_prev[k]) * Wfb[k * 4 + j];
            next[j] = 0.7 * st[j] + 0.3 * tanh(pre);
        }
        memcpy(st, next, sizeof st);
        for (int j = 0; j < 4; j++)
            TU_ASSERT_CLOSE(nn_session_output(s, "r")->data[j], st[j], 1e-6);
        for (int k = 0; k < 3; k++)
            o_prev[k] = nn_session_output(s, "o")->data[k];
    }
    /* The Dense's bias makes the feedback large enough for tanh to bend. */
    CU_ASSERT(fabs(o_prev[0]) + fabs(o_prev[1]) + fabs(o_prev[2]) > 0.5);
    nn_session_free(s);
    nn_graph_free(g);
}

/* ---------------------------------------------------------- Bernoulli */

static void test_bernoulli_initializer(void)
{
    nn_graph *g = single(27, 40, "num_unit=100", "input_connectivity=1",
                         "Win_initializer=Bernoulli", "input_scaling=0.25",
                         NULL, NULL);
    nn_tensor *Win = nn_node_weight(nn_graph_find(g, "r"), "Win");
    int plus = 0, n = 4000;
    for (int k = 0; k < n; k++) {
        CU_ASSERT(Win->data[k] == 0.25f || Win->data[k] == -0.25f);
        plus += Win->data[k] > 0;
    }
    /* Half and half: sd of the count is sqrt(4000) / 2 ≈ 32. */
    CU_ASSERT(abs(plus - n / 2) < 160);
    nn_graph_free(g);
    /* With a connectivity: ±value where present, zero elsewhere. */
    g = single(27, 40, "num_unit=100", "input_connectivity=0.3",
               "Win_initializer=Bernoulli(value=2)", NULL, NULL, NULL);
    Win = nn_node_weight(nn_graph_find(g, "r"), "Win");
    int present = 0;
    for (int k = 0; k < n; k++) {
        CU_ASSERT(Win->data[k] == 0 || fabsf(Win->data[k]) == 2.0f);
        present += Win->data[k] != 0;
    }
    CU_ASSERT(abs(present - 1200) < 150);
    nn_graph_free(g);
    /* Parsed and written back like any initializer. */
    nn_init init;
    nn_error err;
    char text[64];
    CU_ASSERT_EQUAL(nn_init_parse("Bernoulli(0.5)", &init, &err), NN_OK);
    CU_ASSERT_EQUAL(init.kind, NN_INIT_BERNOULLI);
    CU_ASSERT_STRING_EQUAL(nn_init_str(&init, text, sizeof text),
                           "Bernoulli(value=0.5)");
}

/* ---------------------------------------------- connectivity modes */

static int nonzeros(const float *w, int rows, int cols, int line, int by_row)
{
    int n = 0;
    for (int i = 0; i < (by_row ? cols : rows); i++)
        n += (by_row ? w[line * cols + i] : w[i * cols + line]) != 0;
    return n;
}

static void test_connectivity_modes(void)
{
    /* Dense W (60 x 60) and Win (7 x 60); Normal and Uniform values are
     * never exactly zero, so non-zeros are the pattern. */
    const int n = 60, in = 7;
    nn_graph *g = single(28, in, "num_unit=60", "sparse=false",
                         "rc_connectivity=0.1", "input_connectivity=0.3",
                         "connectivity_mode=total", NULL);
    nn_node *r = nn_graph_find(g, "r");
    const float *W = nn_node_weight(r, "W")->data;
    const float *Win = nn_node_weight(r, "Win")->data;
    int total = 0, rows_differ = 0, first = nonzeros(W, n, n, 0, 1);
    for (int i = 0; i < n; i++) {
        int c = nonzeros(W, n, n, i, 1);
        total += c;
        rows_differ |= c != first;
    }
    CU_ASSERT_EQUAL(total, 360);      /* round(0.1 * 3600) */
    CU_ASSERT(rows_differ);           /* spread anywhere, not per row */
    total = 0;
    for (int i = 0; i < in; i++)
        total += nonzeros(Win, in, n, i, 1);
    CU_ASSERT_EQUAL(total, 126);      /* round(0.3 * 420) */
    nn_graph_free(g);

    /* in_degree: every unit (column) receives exactly round(p fan_in). */
    g = single(28, in, "num_unit=60", "sparse=false", "rc_connectivity=0.1",
               "input_connectivity=0.3", "connectivity_mode=in_degree", NULL);
    r = nn_graph_find(g, "r");
    W = nn_node_weight(r, "W")->data;
    Win = nn_node_weight(r, "Win")->data;
    for (int j = 0; j < n; j++) {
        CU_ASSERT_EQUAL(nonzeros(W, n, n, j, 0), 6);
        CU_ASSERT_EQUAL(nonzeros(Win, in, n, j, 0), 2); /* round(2.1) */
    }
    nn_graph_free(g);

    /* out_degree: every input (row) reaches exactly round(p units). */
    g = single(28, in, "num_unit=60", "sparse=false", "rc_connectivity=0.1",
               "input_connectivity=0.3", "connectivity_mode=out_degree",
               NULL);
    r = nn_graph_find(g, "r");
    W = nn_node_weight(r, "W")->data;
    Win = nn_node_weight(r, "Win")->data;
    for (int i = 0; i < n; i++)
        CU_ASSERT_EQUAL(nonzeros(W, n, n, i, 1), 6);
    for (int i = 0; i < in; i++)
        CU_ASSERT_EQUAL(nonzeros(Win, in, n, i, 1), 18);
    nn_graph_free(g);

    /* Above half the entries (the complement is drawn), still exact. */
    g = single(28, in, "num_unit=60", "sparse=false", "rc_connectivity=0.8",
               "connectivity_mode=total", NULL, NULL);
    W = nn_node_weight(nn_graph_find(g, "r"), "W")->data;
    total = 0;
    for (int i = 0; i < n; i++)
        total += nonzeros(W, n, n, i, 1);
    CU_ASSERT_EQUAL(total, 2880);
    nn_graph_free(g);

    /* Every position as likely as any other, over 300 seeds of a 6 x 6 W:
     * 9 entries (total), or 2 per unit (in_degree), each position then
     * expected 75 or 100 times (sd 7.5 and 8.2). */
    static const char *fair[2] = {"connectivity_mode=total",
                                  "connectivity_mode=in_degree"};
    const double expect[2] = {75, 100};
    for (int m = 0; m < 2; m++) {
        int hits[36] = {0};
        for (uint64_t seed = 0; seed < 300; seed++) {
            g = single(seed, 1, "num_unit=6", "sparse=false",
                       m == 0 ? "rc_connectivity=0.25"
                              : "rc_connectivity=0.3333",
                       fair[m], NULL, NULL);
            W = nn_node_weight(nn_graph_find(g, "r"), "W")->data;
            for (int k = 0; k < 36; k++)
                hits[k] += W[k] != 0;
            nn_graph_free(g);
        }
        for (int k = 0; k < 36; k++) {
            if (fabs(hits[k] - expect[m]) > 35)
                fprintf(stderr, "%s: position %d drawn %d times\n", fair[m],
                        k, hits[k]);
            CU_ASSERT(fabs(hits[k] - expect[m]) <= 35);
        }
    }

    /* Sparse storage draws the same matrix: the same states, and the
     * pattern holds the exact count. */
    static const char *modes[3] = {"connectivity_mode=total",
                                   "connectivity_mode=in_degree",
                                   "connectivity_mode=out_degree"};
    for (int m = 0; m < 3; m++) {
        nn_graph *d = single(29, 3, "num_unit=80", "sparse=false",
                             "rc_connectivity=0.05", "spectral_radius=0.9",
                             modes[m], NULL);
        nn_graph *sp = single(29, 3, "num_unit=80", "sparse=true",
                              "rc_connectivity=0.05", "spectral_radius=0.9",
                              modes[m], NULL);
        nn_tensor *vals = nn_node_weight(nn_graph_find(sp, "r"), "W");
        CU_ASSERT_EQUAL(vals->shape.ndim, 1);
        CU_ASSERT_EQUAL(vals->shape.dims[0], 320);
        nn_session *a = tu_session(d, 1, 0), *b = tu_session(sp, 1, 0);
        for (int t = 0; t < 5; t++) {
            tu_fill(nn_session_input(a, "u"), 1.0f, (float)t);
            tu_fill(nn_session_input(b, "u"), 1.0f, (float)t);
            step(a);
            step(b);
        }
        for (int j = 0; j < 80; j++)
            TU_ASSERT_CLOSE(nn_session_output(a, "r")->data[j],
                            nn_session_output(b, "r")->data[j], 1e-4);
        nn_session_free(a);
        nn_session_free(b);
        nn_graph_free(d);
        nn_graph_free(sp);
    }
}

/* ------------------------------------------------------------- noise */

/* Output of a noisy reservoir and of its quiet twin after each of 5 steps;
 * leak 1 and W zero, so each step's state is f(pre (+ noise)) alone. */
static void noisy_and_quiet(const char *law, const char *equation,
                            float noisy[5][30], float quiet[5][30])
{
    for (int c = 0; c < 2; c++) {
        nn_graph *g = tu_graph(reg, 30);
        tu_node(g, "Input", "u", "shape=2", NULL);
        tu_node(g, "Reservoir", "r", "num_unit=30", "leaky_rate=1",
                "W_initializer=Zeros", "input_connectivity=1", law, equation,
                c == 0 ? "noise_rc=0.01" : "noise_rc=0", NULL);
        tu_link(g, "u >> r");
        tu_build(g);
        nn_session *s = tu_session(g, 1, 3);
        for (int t = 0; t < 5; t++) {
            tu_fill(nn_session_input(s, "u"), 0.5f, (float)t);
            step(s);
            memcpy(c == 0 ? noisy[t] : quiet[t],
                   nn_session_output(s, "r")->data, 30 * sizeof(float));
        }
        nn_session_free(s);
        nn_graph_free(g);
    }
}

static void test_noise_laws_and_placement(void)
{
    float noisy[5][30], quiet[5][30];
    /* internal: s = f(pre) + ξ, ξ = 0.01 U(0, 1) (ReservoirPy's uniform). */
    noisy_and_quiet("noise_type=uniform01", "equation=internal", noisy, quiet);
    double mean = 0;
    for (int t = 0; t < 5; t++)
        for (int j = 0; j < 30; j++) {
            double xi = (double)noisy[t][j] - quiet[t][j];
            CU_ASSERT(xi >= -1e-7 && xi < 0.01 + 1e-7);
            mean += xi / 150;
        }
    CU_ASSERT(fabs(mean - 0.005) < 0.0015);
    /* uniform: U(-1, 1), so both signs. */
    noisy_and_quiet("noise_type=uniform", "equation=internal", noisy, quiet);
    int negative = 0;
    for (int t = 0; t < 5; t++)
        for (int j = 0; j < 30; j++) {
            double xi = (double)noisy[t][j] - quiet[t][j];
            CU_ASSERT(fabs(xi) < 0.01 + 1e-7);
            negative += xi < 0;
        }
    CU_ASSERT(negative > 30 && negative < 120);
    /* external: the noise joins x before f, s = tanh(pre + ξ). */
    noisy_and_quiet("noise_type=uniform01", "equation=external", noisy, quiet);
    for (int t = 0; t < 5; t++)
        for (int j = 0; j < 30; j++) {
            double xi = atanh((double)noisy[t][j]) - atanh((double)quiet[t][j]);
            CU_ASSERT(xi >= -1e-5 && xi < 0.01 + 1e-5);
        }
}

/* --------------------------------------------------------- gradients */

static void test_gradients_with_options(void)
{
    static const char *cases[][4] = {
        {"equation=external", "leaky_rate=0.6", "sparse=false", "external"},
        {"equation=external", "leaky_rate=[0.2, 0.9, 0.5, 1, 0.7]",
         "sparse=true", "external, per-unit leak, sparse"},
        {"equation=internal", "leaky_rate=Uniform(0.2, 0.9)", "sparse=false",
         "internal, per-unit leak"},
    };
    for (int c = 0; c < 3; c++) {
        /* A trainable reservoir with a feedback through g, before and after
         * a trainable Dense. */
        nn_graph *g = tu_graph(reg, 31);
        tu_node(g, "Input", "x", "shape=3", NULL);
        tu_node(g, "Dense", "d", "num_unit=4", "b_initializer=Normal(0, 0.3)",
                NULL);
        tu_node(g, "Reservoir", "r", "num_unit=5", "rc_connectivity=0.6",
                "spectral_radius=0.9", "input_connectivity=1",
                "bias_scaling=0.3", "fb_connectivity=1",
                "fb_activation=sigmoid", "input_scaling=[0.5, 1, 2, 0.7]",
                "trainable=true", cases[c][0], cases[c][1], cases[c][2], NULL);
        tu_node(g, "Dense", "o", "num_unit=2", NULL);
        tu_link(g, "x >> d >> r >> o");
        tu_link(g, "r << o");
        tu_build(g);
        tu_fd_opts opts = {4, 8, 0};
        tu_check_gradients(g, "x", 3, &opts, cases[c][3]);
        nn_graph_free(g);
    }
}

/* ------------------------------------------------------------ errors */

static void expect_error(const char *param, const char *value, int code,
                         const char *needle)
{
    nn_graph *g = tu_graph(reg, 32);
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

static void test_bad_options(void)
{
    expect_error("leaky_rate", "[0.1, 0.2]", NN_ERR_INVALID, "3 unit");
    expect_error("leaky_rate", "[0.1, 2, 0.3]", NN_ERR_INVALID,
                 "'leaky_rate'");
    expect_error("leaky_rate", "[0.1, x]", NN_ERR_INVALID, "'leaky_rate'");
    expect_error("leaky_rate", "[]", NN_ERR_INVALID, "'leaky_rate'");
    expect_error("leaky_rate", "[0.1, 0.2, 0.3", NN_ERR_INVALID,
                 "'leaky_rate'");
    expect_error("leaky_rate", "Uniform(0.5, 2)", NN_ERR_INVALID,
                 "outside");
    expect_error("leaky_rate", "Pink(1)", NN_ERR_INVALID, "unknown name");
    expect_error("leaky_rate", "XavierNormal", NN_ERR_INVALID, "elementwise");
    expect_error("input_scaling", "[1, 2, 3]", NN_ERR_INVALID,
                 "2 input feature");
    expect_error("input_scaling", "[1, -2]", NN_ERR_INVALID,
                 "'input_scaling'");
    expect_error("equation", "both", NN_ERR_INVALID, "internal|external");
    expect_error("fb_activation", "cosine", NN_ERR_INVALID, "identity");
    expect_error("connectivity_mode", "row", NN_ERR_INVALID, "in_degree");
    expect_error("noise_type", "uniform(0, 1)", NN_ERR_INVALID, "uniform01");
    /* Accepted forms, read back canonically. */
    nn_graph *g = tu_graph(reg, 33);
    nn_node *r = tu_node(g, "Reservoir", "r", "num_unit=3", NULL);
    nn_error err;
    CU_ASSERT_EQUAL(nn_node_set_param(r, "leaky_rate", " 0.1 ,0.25, 1 ", &err),
                    NN_OK);
    CU_ASSERT_STRING_EQUAL(nn_node_param_text(r, "leaky_rate"),
                           "[0.10000000000000001, 0.25, 1]");
    CU_ASSERT_EQUAL(nn_node_set_param(r, "leaky_rate", "0.5", &err), NN_OK);
    CU_ASSERT_STRING_EQUAL(nn_node_param_text(r, "leaky_rate"), "0.5");
    CU_ASSERT_EQUAL(nn_node_param_float(r, "leaky_rate"), 0.5);
    CU_ASSERT_EQUAL(nn_node_set_param(r, "leaky_rate", "Uniform(0.1, 0.5)",
                                      &err), NN_OK);
    CU_ASSERT_STRING_EQUAL(nn_node_param_text(r, "leaky_rate"),
                           "Uniform(min=0.10000000000000001, max=0.5)");
    nn_graph_free(g);
}

int main(void)
{
    nn_error err;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &err) != NN_OK)
        return 2;
    static const tu_test tests[] = {
        {"external equation by hand", test_external_equation_by_hand},
        {"input and feedback scaling per feature", test_vector_input_scaling},
        {"per-unit leak rates from a list", test_per_unit_leak_list},
        {"per-unit leak rates from an initializer",
         test_per_unit_leak_initializer},
        {"fb_activation by hand", test_fb_activation_by_hand},
        {"Bernoulli initializer", test_bernoulli_initializer},
        {"connectivity modes: exact counts", test_connectivity_modes},
        {"noise laws and where the state noise goes",
         test_noise_laws_and_placement},
        {"gradients through the options", test_gradients_with_options},
        {"bad options and the float-list forms", test_bad_options},
        {NULL, NULL}};
    int rc = tu_run_suite("reservoir options", tests);
    nn_registry_free(reg);
    return rc;
}
