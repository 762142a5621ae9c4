/*
 * test_train.c — the trainers: losses and optimizers against hand values,
 * ridge against a direct solution of the normal equations (with and
 * without bias, with feedback inputs, teacher forcing, accumulated over
 * batches), RLS against ridge, and BPTT learning XOR and a delay task.
 */
#include "nn_train.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nn_registry *reg;

static nn_tensor *tensor3(int a, int b, int c)
{
    int dims[3] = {a, b, c};
    nn_shape s = nn_shape_make(3, dims);
    nn_tensor *t = nn_tensor_new(&s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    nn_tensor_zero(t);
    return t;
}

/* Inputs with several incommensurate frequencies, so features are not
 * collinear. */
static nn_tensor *signal(int N, int T, int F, float phase)
{
    nn_tensor *t = tensor3(N, T, F);
    for (int n = 0; n < N; n++)
        for (int s = 0; s < T; s++)
            for (int f = 0; f < F; f++)
                t->data[((size_t)n * T + s) * F + f] =
                    sinf(0.31f * (float)(s + 1) * (float)(f + 1) + phase +
                         1.7f * (float)n) +
                    0.3f * cosf(0.113f * (float)(s * s % 97) + (float)f);
    return t;
}

/* ------------------------------------------------- the reference solver */

/* Solves (XᵀX + βI) θ = XᵀY by Gaussian elimination with partial pivoting,
 * in double, from the explicit rows: an independent route to the answer.
 * x is rows x D, y rows x U; theta receives D x U. */
static void normal_equations(const double *x, const double *y, int rows, int D,
                             int U, double beta, double *theta)
{
    int W = D + U;
    double *m = calloc((size_t)D * W, sizeof(double));
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    for (int p = 0; p < D; p++) {
        for (int q = 0; q < D; q++)
            for (int r = 0; r < rows; r++)
                m[p * W + q] += x[r * D + p] * x[r * D + q];
        m[p * W + p] += beta;
        for (int u = 0; u < U; u++)
            for (int r = 0; r < rows; r++)
                m[p * W + D + u] += x[r * D + p] * y[r * U + u];
    }
    for (int c = 0; c < D; c++) {
        int piv = c;
        for (int r = c + 1; r < D; r++)
            if (fabs(m[r * W + c]) > fabs(m[piv * W + c]))
                piv = r;
        for (int k = 0; k < W; k++) {
            double tmp = m[c * W + k];
            m[c * W + k] = m[piv * W + k];
            m[piv * W + k] = tmp;
        }
        for (int r = 0; r < D; r++) {
            if (r == c)
                continue;
            double f = m[r * W + c] / m[c * W + c];
            for (int k = c; k < W; k++)
                m[r * W + k] -= f * m[c * W + k];
        }
    }
    for (int p = 0; p < D; p++)
        for (int u = 0; u < U; u++)
            theta[p * U + u] = m[p * W + D + u] / m[p * W + p];
    free(m);
}

/* Asserts the node's [W; Wfb; b] equals theta (D x U) to 1e-4 relative. */
static void assert_theta(nn_node *node, const double *theta, int d_ff,
                         int d_fb, int bias, int U)
{
    const char *names[3] = {"W", "Wfb", "b"};
    int rows[3] = {d_ff, d_fb, bias};
    int at = 0;
    for (int w = 0; w < 3; w++) {
        nn_tensor *t = nn_node_weight(node, names[w]);
        CU_ASSERT_EQUAL_FATAL(t != NULL, rows[w] > 0);
        for (int r = 0; r < rows[w]; r++, at++)
            for (int u = 0; u < U; u++) {
                double want = theta[at * U + u];
                double got = t->data[r * U + u];
                if (fabs(got - want) > 1e-4 * fmax(1.0, fabs(want)))
                    fprintf(stderr, "%s[%d][%d] = %.7g, want %.7g\n",
                            names[w], r, u, got, want);
                CU_ASSERT(fabs(got - want) <= 1e-4 * fmax(1.0, fabs(want)));
            }
    }
}

/* ---------------------------------------------------------------- ridge */

static void ridge_dense(int use_bias, int warmup)
{
    enum { N = 2, T = 15, F = 3, U = 2 };
    nn_error err;
    nn_graph *g = tu_graph(reg, 7);
    tu_node(g, "Input", "x", "shape=3", NULL);
    nn_node *o = tu_node(g, "Dense", "o", "num_unit=2",
                         use_bias ? "use_bias=true" : "use_bias=false", NULL);
    tu_link(g, "x >> o");
    tu_build(g);
    nn_tensor *x = signal(N, T, F, 0.2f);
    nn_tensor *y = signal(N, T, U, 1.1f);
    nn_binding in = {"x", x}, tg = {"o", y};

    nn_ridge *r = nn_ridge_new(g, &tg, 1, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    nn_session *s = nn_session_new(g, N, 0, &err);
    CU_ASSERT_EQUAL_FATAL(nn_ridge_feed(r, s, &in, 1, &tg, 1, T, warmup, &err),
                          NN_OK);
    long rows = 0;
    CU_ASSERT_EQUAL_FATAL(nn_ridge_solve(r, g, 1e-3, &rows, &err), NN_OK);
    CU_ASSERT_EQUAL(rows, (long)N * (T - warmup));

    int D = F + use_bias, R = N * (T - warmup);
    double X[N * T * (F + 1)], Y[N * T * U], theta[(F + 1) * U];
    int k = 0;
    for (int n = 0; n < N; n++)
        for (int t = warmup; t < T; t++, k++) {
            for (int f = 0; f < F; f++)
                X[k * D + f] = x->data[(n * T + t) * F + f];
            if (use_bias)
                X[k * D + F] = 1;
            for (int u = 0; u < U; u++)
                Y[k * U + u] = y->data[(n * T + t) * U + u];
        }
    normal_equations(X, Y, R, D, U, 1e-3, theta);
    assert_theta(o, theta, F, 0, use_bias, U);

    nn_session_free(s);
    nn_ridge_free(r);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_graph_free(g);
}

static void test_ridge_with_bias(void) { ridge_dense(1, 0); }
static void test_ridge_without_bias_and_warmup(void) { ridge_dense(0, 4); }

/* x >> o >> z, o << z: the readout's features include the feedback it saw
 * (z of the previous step), recorded here by stepping a second session. */
static void test_ridge_with_feedback_inputs(void)
{
    enum { N = 1, T = 30, F = 2, U = 2 };
    nn_error err;
    nn_graph *g = tu_graph(reg, 11);
    tu_node(g, "Input", "x", "shape=2", NULL);
    nn_node *o = tu_node(g, "Dense", "o", "num_unit=2", NULL);
    tu_node(g, "Activation", "z", "function=tanh", NULL);
    tu_link(g, "x >> o >> z");
    tu_link(g, "o << z");
    tu_build(g);
    nn_tensor *x = signal(N, T, F, 0.5f);
    nn_tensor *y = signal(N, T, U, 2.0f);
    nn_binding in = {"x", x}, tg = {"o", y};

    enum { D = F + U + 1 };
    double X[T * D], Y[T * U], theta[D * U];
    nn_session *ref = nn_session_new(g, N, 0, &err);
    for (int t = 0; t < T; t++) {
        const nn_tensor *fb = nn_session_output(ref, "z");
        for (int u = 0; u < U; u++)
            X[t * D + F + u] = fb->data[u];
        memcpy(nn_session_input(ref, "x")->data, x->data + t * F,
               F * sizeof(float));
        CU_ASSERT_EQUAL_FATAL(nn_session_step(ref, 1, &err), NN_OK);
        for (int f = 0; f < F; f++)
            X[t * D + f] = x->data[t * F + f];
        X[t * D + D - 1] = 1;
        for (int u = 0; u < U; u++)
            Y[t * U + u] = y->data[t * U + u];
    }
    normal_equations(X, Y, T, D, U, 1e-4, theta);

    nn_ridge *r = nn_ridge_new(g, &tg, 1, &err);
    nn_session *s = nn_session_new(g, N, 0, &err);
    CU_ASSERT_EQUAL_FATAL(nn_ridge_feed(r, s, &in, 1, &tg, 1, T, 0, &err),
                          NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_ridge_solve(r, g, 1e-4, NULL, &err), NN_OK);
    assert_theta(o, theta, F, U, 1, U);

    nn_session_free(ref);
    nn_session_free(s);
    nn_ridge_free(r);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_graph_free(g);
}

/* x >> r >> o, r << o: o's output is fed back, so ridge feeds r the
 * target of the previous step instead of o's own output. */
static void test_ridge_teacher_forcing(void)
{
    enum { N = 2, T = 9 };
    nn_error err;
    nn_graph *g = tu_graph(reg, 3);
    tu_node(g, "Input", "x", "shape=1", NULL);
    nn_node *r = tu_node(g, "Dense", "r", "num_unit=3",
                         "b_initializer=Normal(0, 1)", NULL);
    tu_node(g, "Dense", "o", "num_unit=1", NULL);
    tu_link(g, "x >> r >> o");
    tu_link(g, "r << o");
    tu_build(g);
    nn_tensor *x = signal(N, T, 1, 0.1f);
    nn_tensor *y = signal(N, T, 1, 0.9f);
    nn_binding in = {"x", x}, tg = {"o", y};
    nn_ridge *ridge = nn_ridge_new(g, &tg, 1, &err);
    nn_session *s = nn_session_new(g, N, 0, &err);
    CU_ASSERT_EQUAL_FATAL(nn_ridge_feed(ridge, s, &in, 1, &tg, 1, T, 0, &err),
                          NN_OK);
    const float *W = nn_node_weight(r, "W")->data;
    const float *Wfb = nn_node_weight(r, "Wfb")->data;
    const float *b = nn_node_weight(r, "b")->data;
    const nn_tensor *out = nn_session_output(s, "r");
    for (int n = 0; n < N; n++)
        for (int u = 0; u < 3; u++) {
            float want = x->data[n * T + T - 1] * W[u] +
                         y->data[n * T + T - 2] * Wfb[u] + b[u];
            TU_ASSERT_CLOSE(out->data[n * 3 + u], want, 1e-5);
        }
    nn_session_free(s);
    nn_ridge_free(ridge);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_graph_free(g);
}

/* A forced run feeds r the given values of o instead of o's own output,
 * and reports what o computed. */
static void test_forced_run(void)
{
    enum { N = 2, T = 6 };
    nn_error err;
    nn_graph *g = tu_graph(reg, 3);
    tu_node(g, "Input", "x", "shape=1", NULL);
    nn_node *r = tu_node(g, "Dense", "r", "num_unit=2",
                         "b_initializer=Normal(0, 1)", NULL);
    tu_node(g, "Dense", "o", "num_unit=1", NULL);
    tu_link(g, "x >> r >> o");
    tu_link(g, "r << o");
    tu_build(g);
    nn_tensor *x = signal(N, T, 1, 0.2f), *f = signal(N, T, 1, 2.2f);
    nn_binding in = {"x", x}, forced = {"o", f};
    nn_session *s = nn_session_new(g, N, 0, &err);
    nn_tensor *out[1];
    CU_ASSERT_EQUAL_FATAL(nn_session_run_forced(s, &in, 1, &forced, 1, T, 0,
                                                out, &err), NN_OK);
    const float *W = nn_node_weight(r, "W")->data;
    const float *Wfb = nn_node_weight(r, "Wfb")->data;
    const float *b = nn_node_weight(r, "b")->data;
    const nn_tensor *rout = nn_session_output(s, "r");
    for (int n = 0; n < N; n++)
        for (int u = 0; u < 2; u++)
            TU_ASSERT_CLOSE(rout->data[n * 2 + u],
                            x->data[n * T + T - 1] * W[u] +
                                f->data[n * T + T - 2] * Wfb[u] + b[u],
                            1e-5);
    /* The outputs are o's own values, not the forced ones. */
    CU_ASSERT_NOT_EQUAL(out[0]->data[T - 1], f->data[T - 1]);
    nn_tensor_free(out[0]);
    /* Forcing a node nobody reads back is refused, as is a bad shape. */
    forced.name = "r";
    CU_ASSERT_EQUAL(nn_session_run_forced(s, &in, 1, &forced, 1, T, 0, out,
                                          &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "change nothing"));
    nn_tensor *bad = tensor3(N, T - 1, 1);
    nn_binding bad_forced = {"o", bad};
    CU_ASSERT_EQUAL(nn_session_run_forced(s, &in, 1, &bad_forced, 1, T, 0, out,
                                          &err), NN_ERR_SHAPE);
    nn_tensor_free(bad);
    nn_session_free(s);
    nn_tensor_free(x);
    nn_tensor_free(f);
    nn_graph_free(g);
}

/* Feeding two sequences one by one equals feeding them as one batch. */
static void test_ridge_accumulates_over_batches(void)
{
    enum { T = 12, F = 3, U = 1 };
    nn_error err;
    nn_graph *g = tu_graph(reg, 5);
    tu_node(g, "Input", "x", "shape=3", NULL);
    nn_node *o = tu_node(g, "Dense", "o", "num_unit=1", NULL);
    tu_link(g, "x >> o");
    tu_build(g);
    nn_tensor *x = signal(2, T, F, 0.3f);
    nn_tensor *y = signal(2, T, U, 1.3f);
    nn_binding in = {"x", x}, tg = {"o", y};

    nn_ridge *whole = nn_ridge_new(g, &tg, 1, &err);
    nn_session *s2 = nn_session_new(g, 2, 0, &err);
    CU_ASSERT_EQUAL_FATAL(nn_ridge_feed(whole, s2, &in, 1, &tg, 1, T, 0, &err),
                          NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_ridge_solve(whole, g, 1e-6, NULL, &err), NN_OK);
    float expect[F + 1];
    memcpy(expect, nn_node_weight(o, "W")->data, F * sizeof(float));
    expect[F] = nn_node_weight(o, "b")->data[0];

    nn_ridge *parts = nn_ridge_new(g, &tg, 1, &err);
    nn_session *s1 = nn_session_new(g, 1, 0, &err);
    for (int n = 0; n < 2; n++) {
        nn_tensor *xn = tensor3(1, T, F), *yn = tensor3(1, T, U);
        memcpy(xn->data, x->data + n * T * F, T * F * sizeof(float));
        memcpy(yn->data, y->data + n * T * U, T * U * sizeof(float));
        nn_binding a = {"x", xn}, b = {"o", yn};
        CU_ASSERT_EQUAL_FATAL(nn_session_reset(s1, &err), NN_OK);
        CU_ASSERT_EQUAL_FATAL(nn_ridge_feed(parts, s1, &a, 1, &b, 1, T, 0,
                                            &err), NN_OK);
        nn_tensor_free(xn);
        nn_tensor_free(yn);
    }
    long rows = 0;
    CU_ASSERT_EQUAL_FATAL(nn_ridge_solve(parts, g, 1e-6, &rows, &err), NN_OK);
    CU_ASSERT_EQUAL(rows, 2L * T);
    for (int f = 0; f < F; f++)
        TU_ASSERT_CLOSE(nn_node_weight(o, "W")->data[f], expect[f], 1e-4);
    TU_ASSERT_CLOSE(nn_node_weight(o, "b")->data[0], expect[F], 1e-4);

    nn_session_free(s1);
    nn_session_free(s2);
    nn_ridge_free(parts);
    nn_ridge_free(whole);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_graph_free(g);
}

/* LinearReadout starts at zero and is fitted like a Dense (both declare
 * NN_TYPE_LINEAR). */
static void test_linear_readout(void)
{
    enum { T = 20 };
    nn_error err;
    nn_graph *g = tu_graph(reg, 8);
    tu_node(g, "Input", "x", "shape=2", NULL);
    nn_node *a = tu_node(g, "LinearReadout", "a", "num_unit=1", NULL);
    nn_node *b = tu_node(g, "Dense", "b", "num_unit=1", NULL);
    tu_link(g, "x >> {a, b}");
    tu_build(g);
    CU_ASSERT_EQUAL(nn_node_weight(a, "W")->data[0], 0.0f);
    CU_ASSERT_EQUAL(nn_node_weight(a, "W")->data[1], 0.0f);
    nn_tensor *x = signal(1, T, 2, 0.4f), *y = signal(1, T, 1, 1.4f);
    nn_binding in = {"x", x}, tg[2] = {{"a", y}, {"b", y}};
    nn_ridge *r = nn_ridge_new(g, tg, 2, &err);
    nn_session *s = nn_session_new(g, 1, 0, &err);
    CU_ASSERT_EQUAL_FATAL(nn_ridge_feed(r, s, &in, 1, tg, 2, T, 0, &err),
                          NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_ridge_solve(r, g, 1e-5, NULL, &err), NN_OK);
    for (int k = 0; k < 2; k++)
        TU_ASSERT_CLOSE(nn_node_weight(a, "W")->data[k],
                        nn_node_weight(b, "W")->data[k], 1e-6);
    CU_ASSERT_NOT_EQUAL(nn_node_weight(a, "W")->data[0], 0.0f);
    nn_session_free(s);
    nn_ridge_free(r);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_graph_free(g);
}

/* A clone computes the same outputs and owns its weights. */
static void test_clone(void)
{
    nn_error err;
    nn_graph *g = tu_graph(reg, 12);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "VanillaRNN", "r", "num_unit=4", "activation=tanh", NULL);
    tu_node(g, "Dense", "o", "num_unit=2", "trainable=false", NULL);
    tu_link(g, "x >> r >> o");
    tu_link(g, "r << o");
    tu_build(g);
    nn_graph *c = nn_graph_clone(g, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(nn_node_param_text(nn_graph_find(c, "o"),
                                              "trainable"), "false");
    nn_node_weight(nn_graph_find(g, "r"), "Wi")->data[0] += 1.0f;
    CU_ASSERT_EQUAL(nn_graph_copy_weights(c, g, &err), NN_OK);
    nn_tensor *x = signal(2, 5, 3, 0.0f);
    nn_binding in = {"x", x};
    nn_tensor *a[1], *b[1];
    nn_session *sa = nn_session_new(g, 2, 0, &err);
    nn_session *sb = nn_session_new(c, 2, 0, &err);
    CU_ASSERT_EQUAL_FATAL(nn_session_run(sa, &in, 1, 5, 0, a, &err), NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_session_run(sb, &in, 1, 5, 0, b, &err), NN_OK);
    CU_ASSERT_EQUAL(memcmp(a[0]->data, b[0]->data,
                           nn_tensor_numel(a[0]) * sizeof(float)), 0);
    nn_node_weight(nn_graph_find(c, "o"), "W")->data[0] += 1.0f;
    CU_ASSERT_NOT_EQUAL(nn_node_weight(nn_graph_find(g, "o"), "W")->data[0],
                        nn_node_weight(nn_graph_find(c, "o"), "W")->data[0]);
    nn_tensor_free(a[0]);
    nn_tensor_free(b[0]);
    nn_session_free(sa);
    nn_session_free(sb);
    nn_tensor_free(x);
    nn_graph_free(c);
    nn_graph_free(g);
}

static void test_ridge_refusals(void)
{
    nn_error err;
    nn_graph *g = tu_graph(reg, 5);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "Dense", "h", "num_unit=2", "trainable=false", NULL);
    tu_node(g, "Activation", "a", "function=tanh", NULL);
    tu_link(g, "x >> h >> a");
    tu_build(g);
    nn_tensor *y = tensor3(1, 4, 2);
    nn_binding tg = {"a", y};
    CU_ASSERT_PTR_NULL(nn_ridge_new(g, &tg, 1, &err));
    CU_ASSERT_EQUAL(err.code, NN_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'a' (Activation) is not a linear"));
    tg.name = "h";
    CU_ASSERT_PTR_NULL(nn_ridge_new(g, &tg, 1, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not trainable"));
    tg.name = "nope";
    CU_ASSERT_PTR_NULL(nn_rls_new(g, &tg, 1, 1.0, &err));
    CU_ASSERT_EQUAL(err.code, NN_ERR_NOT_FOUND);
    nn_graph_free(g);
    /* The D x D matrices count against the graph's memory cap. */
    g = tu_graph(reg, 5);
    CU_ASSERT_EQUAL(nn_graph_set_limits(g, 0, 100, &err), NN_OK);
    tu_node(g, "Input", "x", "shape=9", NULL);
    tu_node(g, "Dense", "o", "num_unit=2", NULL);
    tu_link(g, "x >> o");
    tu_build(g);
    tg.name = "o";
    CU_ASSERT_PTR_NULL(nn_ridge_new(g, &tg, 1, &err));
    CU_ASSERT_EQUAL(err.code, NN_ERR_LIMIT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "10 features"));
    tg.name = "nope";
    CU_ASSERT_PTR_NULL(nn_rls_new(g, &tg, 1, 1.0, &err));
    CU_ASSERT_EQUAL(err.code, NN_ERR_NOT_FOUND);
    tg.name = "a";
    CU_ASSERT_PTR_NULL(nn_rls_new(g, &tg, 1, 0.0, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "alpha"));
    nn_tensor_free(y);
    nn_graph_free(g);
}

/* ------------------------------------------------------------------ RLS */

/* On a linear teacher y = x·A + c, RLS from zero weights and P₀ = I/α
 * minimises Σe² + α‖θ‖², which is ridge with β = α: the two agree, and
 * both find A and c. Two runs of half the data equal one run (P persists). */
static void test_rls_converges_to_ridge(void)
{
    enum { T = 400, F = 3, U = 2 };
    const float A[F][U] = {{0.5f, -1.0f}, {2.0f, 0.25f}, {-0.75f, 1.5f}};
    const float c[U] = {0.3f, -0.2f};
    nn_error err;
    nn_graph *g = tu_graph(reg, 9);
    tu_node(g, "Input", "x", "shape=3", NULL);
    nn_node *o = tu_node(g, "Dense", "o", "num_unit=2",
                         "W_initializer=Zeros", NULL);
    tu_link(g, "x >> o");
    tu_build(g);
    nn_tensor *x = signal(1, T, F, 0.0f);
    nn_tensor *y = tensor3(1, T, U);
    for (int t = 0; t < T; t++)
        for (int u = 0; u < U; u++) {
            float v = c[u];
            for (int f = 0; f < F; f++)
                v += x->data[t * F + f] * A[f][u];
            y->data[t * U + u] = v;
        }
    nn_binding in = {"x", x}, tg = {"o", y};
    const double alpha = 0.1;

    nn_ridge *ridge = nn_ridge_new(g, &tg, 1, &err);
    nn_session *s = nn_session_new(g, 1, 0, &err);
    CU_ASSERT_EQUAL_FATAL(nn_ridge_feed(ridge, s, &in, 1, &tg, 1, T, 0, &err),
                          NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_ridge_solve(ridge, g, alpha, NULL, &err), NN_OK);
    float ridge_w[F * U + U];
    memcpy(ridge_w, nn_node_weight(o, "W")->data, sizeof(float) * F * U);
    memcpy(ridge_w + F * U, nn_node_weight(o, "b")->data, sizeof(float) * U);
    for (int f = 0; f < F; f++)
        for (int u = 0; u < U; u++)
            TU_ASSERT_CLOSE(ridge_w[f * U + u], A[f][u], 1e-2);

    /* Back to zero, then RLS in two calls of T/2 steps. */
    nn_tensor_zero(nn_node_weight(o, "W"));
    nn_tensor_zero(nn_node_weight(o, "b"));
    nn_rls *rls = nn_rls_new(g, &tg, 1, alpha, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rls);
    CU_ASSERT_EQUAL_FATAL(nn_session_reset(s, &err), NN_OK);
    double mse_first = 0, mse_second = 0;
    for (int half = 0; half < 2; half++) {
        nn_tensor *xh = tensor3(1, T / 2, F), *yh = tensor3(1, T / 2, U);
        memcpy(xh->data, x->data + half * (T / 2) * F,
               sizeof(float) * (T / 2) * F);
        memcpy(yh->data, y->data + half * (T / 2) * U,
               sizeof(float) * (T / 2) * U);
        nn_binding a = {"x", xh}, b = {"o", yh};
        CU_ASSERT_EQUAL_FATAL(nn_rls_run(rls, s, &a, 1, &b, 1, T / 2,
                                         half ? &mse_second : &mse_first,
                                         &err), NN_OK);
        nn_tensor_free(xh);
        nn_tensor_free(yh);
    }
    CU_ASSERT(mse_second < mse_first / 10);
    for (int f = 0; f < F; f++)
        for (int u = 0; u < U; u++)
            TU_ASSERT_CLOSE(nn_node_weight(o, "W")->data[f * U + u],
                            ridge_w[f * U + u], 1e-3);
    for (int u = 0; u < U; u++)
        TU_ASSERT_CLOSE(nn_node_weight(o, "b")->data[u], ridge_w[F * U + u],
                        1e-3);
    CU_ASSERT_EQUAL(nn_rls_compatible(rls, g, &err), NN_OK);

    nn_rls_free(rls);
    nn_ridge_free(ridge);
    nn_session_free(s);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_graph_free(g);
}

/* The online rules against their published equations, written out here
 * in double on a readout whose features are its inputs and a 1 (ReservoirPy's
 * RLS with `forgetting`, its LMS with `learning_rate`). The teacher changes
 * halfway, so forgetting changes the result; two sequences per batch check
 * that rows update in order. */
static void reference_online(const nn_online_opts *o, const nn_tensor *x,
                             const nn_tensor *y, int N, int T, int F, int U,
                             double *theta)
{
    enum { DMAX = 8 };
    const int D = F + 1;
    double P[DMAX][DMAX] = {{0}};
    for (int p = 0; p < D; p++)
        P[p][p] = 1.0 / o->alpha;
    memset(theta, 0, sizeof(double) * (size_t)D * (size_t)U);
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
            double r[DMAX], e[DMAX], k[DMAX];
            for (int f = 0; f < F; f++)
                r[f] = x->data[((size_t)n * T + t) * F + f];
            r[F] = 1.0;
            for (int u = 0; u < U; u++) {
                double out = 0;
                for (int p = 0; p < D; p++)
                    out += r[p] * theta[p * U + u];
                e[u] = out - y->data[((size_t)n * T + t) * U + u];
            }
            if (o->rule == NN_ONLINE_LMS) {
                for (int p = 0; p < D; p++)
                    for (int u = 0; u < U; u++)
                        theta[p * U + u] -= o->lr * r[p] * e[u];
                continue;
            }
            double rPr = 0;
            for (int p = 0; p < D; p++) {
                k[p] = 0;
                for (int q = 0; q < D; q++)
                    k[p] += P[p][q] * r[q];
                rPr += r[p] * k[p];
            }
            double c = 1.0 / (o->forgetting + rPr);
            for (int p = 0; p < D; p++)
                for (int q = 0; q < D; q++)
                    P[p][q] = (P[p][q] - c * k[p] * k[q]) / o->forgetting;
            for (int p = 0; p < D; p++)
                for (int u = 0; u < U; u++)
                    theta[p * U + u] -= c * k[p] * e[u];
        }
}

static void test_online_rules_match_their_equations(void)
{
    enum { N = 2, T = 120, F = 3, U = 2 };
    nn_error err;
    nn_tensor *x = signal(N, T, F, 0.4f);
    nn_tensor *y = tensor3(N, T, U);
    for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++)
            for (int u = 0; u < U; u++) {
                const float *xr = x->data + ((size_t)n * T + t) * F;
                float sign = t < T / 2 ? 1.0f : -0.5f;
                y->data[((size_t)n * T + t) * U + u] =
                    sign * (xr[0] - 2.0f * xr[u + 1]) + 0.1f * (float)u;
            }
    nn_online_opts cases[3] = {nn_online_defaults(), nn_online_defaults(),
                               nn_online_defaults()};
    cases[0].alpha = 0.5;
    cases[0].forgetting = 0.9;
    cases[1].alpha = 2.0;
    cases[2].rule = NN_ONLINE_LMS;
    cases[2].lr = 0.05;
    double plain[(F + 1) * U] = {0};
    for (int c = 0; c < 3; c++) {
        nn_graph *g = tu_graph(reg, 4);
        tu_node(g, "Input", "x", "shape=3", NULL);
        nn_node *o = tu_node(g, "Dense", "o", "num_unit=2",
                             "W_initializer=Zeros", NULL);
        tu_link(g, "x >> o");
        tu_build(g);
        nn_binding in = {"x", x}, tg = {"o", y};
        nn_rls *r = nn_online_new(g, &tg, 1, &cases[c], &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(nn_rls_rule(r), cases[c].rule);
        nn_session *s = nn_session_new(g, N, 0, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        double mse = -1;
        CU_ASSERT_EQUAL_FATAL(nn_rls_run(r, s, &in, 1, &tg, 1, T, &mse, &err),
                              NN_OK);
        CU_ASSERT(mse > 0);
        double theta[(F + 1) * U];
        reference_online(&cases[c], x, y, N, T, F, U, theta);
        const float *W = nn_node_weight(o, "W")->data;
        const float *b = nn_node_weight(o, "b")->data;
        for (int k = 0; k < F * U; k++)
            TU_ASSERT_CLOSE(W[k], theta[k], 1e-5 + 1e-5 * fabs(theta[k]));
        for (int u = 0; u < U; u++)
            TU_ASSERT_CLOSE(b[u], theta[F * U + u],
                            1e-5 + 1e-5 * fabs(theta[F * U + u]));
        if (c == 1)
            memcpy(plain, theta, sizeof plain);
        if (c == 0) {
            /* Forgetting tracks the second teacher: W[0][0] near -0.5. */
            TU_ASSERT_CLOSE(W[0], -0.5, 0.05);
        }
        nn_session_free(s);
        nn_rls_free(r);
        nn_graph_free(g);
    }
    /* Without forgetting the first half still weighs: W[0][0] is between
     * the two teachers, far from -0.5. */
    CU_ASSERT(plain[0] > -0.4);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

static void test_online_refusals(void)
{
    nn_error err;
    nn_online_opts o = nn_online_defaults();
    CU_ASSERT_EQUAL(o.rule, NN_ONLINE_RLS);
    CU_ASSERT_EQUAL(o.forgetting, 1.0);
    CU_ASSERT_EQUAL(nn_online_check(&o, &err), NN_OK);
    o.forgetting = 0;
    CU_ASSERT_EQUAL(nn_online_check(&o, &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "forgetting"));
    o.forgetting = 1.5;
    CU_ASSERT_EQUAL(nn_online_check(&o, &err), NN_ERR_INVALID);
    o = nn_online_defaults();
    o.lr = 0;
    CU_ASSERT_EQUAL(nn_online_check(&o, &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "lr"));

    nn_graph *g = tu_graph(reg, 4);
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_node(g, "Dense", "o", "num_unit=1", NULL);
    tu_link(g, "x >> o");
    tu_build(g);
    nn_tensor *y = tensor3(1, 2, 1);
    nn_binding tg = {"o", y};
    o = nn_online_defaults();
    o.rule = NN_ONLINE_LMS;
    nn_rls *r = nn_online_new(g, &tg, 1, &o, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    o.lr = 0.5;
    CU_ASSERT_EQUAL(nn_rls_tune(r, &o, &err), NN_OK);
    o.rule = NN_ONLINE_RLS;
    CU_ASSERT_EQUAL(nn_rls_tune(r, &o, &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "runs lms"));
    nn_rls_free(r);
    nn_tensor_free(y);
    nn_graph_free(g);
}

/* --------------------------------------------------- losses, optimizers */

static void test_losses(void)
{
    int dims[2] = {2, 2};
    nn_shape sh = nn_shape_make(2, dims);
    nn_tensor *p = nn_tensor_new(&sh), *t = nn_tensor_new(&sh),
              *d = nn_tensor_new(&sh);
    float pv[4] = {0, 0, 1, 3}, tv[4] = {1, 0, 0, 1};
    memcpy(p->data, pv, sizeof pv);
    memcpy(t->data, tv, sizeof tv);
    /* MSE: (1 + 0 + 1 + 4) / 4. */
    TU_ASSERT_CLOSE(nn_loss(NN_LOSS_MSE, p, t, d, 1.0), 1.5, 1e-9);
    TU_ASSERT_CLOSE(d->data[3], 2.0 * 2 / 4, 1e-7);
    /* Row 0: ln 2. Row 1: −log softmax(3 | 1, 3) = log(1 + e^-2). */
    double want = (log(2.0) + log(1 + exp(-2.0))) / 2;
    TU_ASSERT_CLOSE(nn_loss(NN_LOSS_SOFTMAX_CE, p, t, d, 1.0), want, 1e-6);
    TU_ASSERT_CLOSE(d->data[0], (0.5 - 1) / 2, 1e-7);
    TU_ASSERT_CLOSE(d->data[1], 0.5 / 2, 1e-7);
    /* Its gradient against central differences. */
    for (int k = 0; k < 4; k++) {
        float keep = p->data[k];
        p->data[k] = keep + 1e-3f;
        double up = nn_loss(NN_LOSS_SOFTMAX_CE, p, t, NULL, 1.0);
        p->data[k] = keep - 1e-3f;
        double down = nn_loss(NN_LOSS_SOFTMAX_CE, p, t, NULL, 1.0);
        p->data[k] = keep;
        TU_ASSERT_CLOSE(d->data[k], (up - down) / 2e-3, 1e-3);
    }
    CU_ASSERT_EQUAL(nn_loss_parse("mse"), NN_LOSS_MSE);
    CU_ASSERT_EQUAL(nn_loss_parse("cross_entropy"), NN_LOSS_SOFTMAX_CE);
    CU_ASSERT_EQUAL(nn_loss_parse("hinge"), -1);
    nn_tensor_free(p);
    nn_tensor_free(t);
    nn_tensor_free(d);
}

/* One weight w = 1 under a constant gradient 0.5. */
static void optimizer_path(nn_optim_opts o, const double *expect, int steps)
{
    nn_error err;
    nn_graph *g = tu_graph(reg, 1);
    tu_node(g, "Input", "x", "shape=1", NULL);
    nn_node *d = tu_node(g, "Dense", "d", "num_unit=1", "use_bias=false",
                         NULL);
    tu_link(g, "x >> d");
    tu_build(g);
    nn_node_weight(d, "W")->data[0] = 1.0f;
    nn_grads *gr = nn_grads_new(g, &err);
    nn_optim *opt = nn_optim_new(g, &o, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(opt);
    for (int k = 0; k < steps; k++) {
        nn_grads_at(gr, d, 0)->data[0] = 0.5f;
        nn_optim_step(opt, gr, 0);
        TU_ASSERT_CLOSE(nn_node_weight(d, "W")->data[0], expect[k], 1e-6);
    }
    nn_optim_free(opt);
    nn_grads_free(gr);
    nn_graph_free(g);
}

static void test_optimizers_and_schedules(void)
{
    nn_optim_opts o = nn_optim_defaults();
    o.lr = 0.1;
    o.momentum = 0.9;
    /* v = 0.5, w = 0.95; v = 0.95, w = 0.855. */
    optimizer_path(o, (const double[]){0.95, 0.855}, 2);
    o = nn_optim_defaults();
    o.kind = NN_OPTIM_ADAM;
    o.lr = 0.1;
    /* A constant gradient makes every bias-corrected Adam step lr. */
    optimizer_path(o, (const double[]){0.9, 0.8, 0.7}, 3);

    o = nn_optim_defaults();
    o.lr = 1;
    o.schedule = NN_SCHEDULE_STEP;
    o.step_size = 2;
    o.gamma = 0.5;
    TU_ASSERT_CLOSE(nn_optim_lr_at(&o, 1), 1.0, 1e-12);
    TU_ASSERT_CLOSE(nn_optim_lr_at(&o, 2), 0.5, 1e-12);
    TU_ASSERT_CLOSE(nn_optim_lr_at(&o, 5), 0.25, 1e-12);
    o.schedule = NN_SCHEDULE_EXPONENTIAL;
    TU_ASSERT_CLOSE(nn_optim_lr_at(&o, 3), 0.125, 1e-12);
    o.schedule = NN_SCHEDULE_COSINE;
    o.epochs = 4;
    o.lr_min = 0;
    TU_ASSERT_CLOSE(nn_optim_lr_at(&o, 2), 0.5, 1e-12);
    TU_ASSERT_CLOSE(nn_optim_lr_at(&o, 4), 0.0, 1e-12);

    nn_error err;
    o = nn_optim_defaults();
    o.lr = -1;
    CU_ASSERT_EQUAL(nn_optim_check(&o, &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "lr"));
    o = nn_optim_defaults();
    o.momentum = 1;
    CU_ASSERT_EQUAL(nn_optim_check(&o, &err), NN_ERR_INVALID);
}

static void test_gradient_clipping(void)
{
    nn_error err;
    nn_graph *g = tu_graph(reg, 1);
    tu_node(g, "Input", "x", "shape=2", NULL);
    nn_node *d = tu_node(g, "Dense", "d", "num_unit=1", NULL);
    tu_link(g, "x >> d");
    tu_build(g);
    nn_grads *gr = nn_grads_new(g, &err);
    nn_grads_at(gr, d, 0)->data[0] = 3;
    nn_grads_at(gr, d, 0)->data[1] = 0;
    nn_grads_at(gr, d, 1)->data[0] = 4;
    TU_ASSERT_CLOSE(nn_grads_clip(gr, 1.0), 5.0, 1e-6);
    TU_ASSERT_CLOSE(nn_grads_norm(gr), 1.0, 1e-6);
    TU_ASSERT_CLOSE(nn_grads_at(gr, d, 1)->data[0], 0.8, 1e-6);
    TU_ASSERT_CLOSE(nn_grads_clip(gr, 2.0), 1.0, 1e-6);
    TU_ASSERT_CLOSE(nn_grads_norm(gr), 1.0, 1e-6);
    nn_grads_free(gr);
    nn_graph_free(g);
}

/* ----------------------------------------------------------------- BPTT */

/* XOR with dropout: learnt with dropout active in training; evaluation
 * (train=0) is deterministic and right; training mode is noisy. */
static void test_bptt_learns_xor_with_dropout(void)
{
    nn_error err;
    nn_graph *g = tu_graph(reg, 4);
    tu_node(g, "Input", "x", "shape=2", NULL);
    nn_node *h = tu_node(g, "Dense", "h", "num_unit=16", NULL);
    tu_node(g, "Activation", "a", "function=tanh", NULL);
    tu_node(g, "Dropout", "d", "prob=0.9", NULL);
    tu_node(g, "Dense", "o", "num_unit=1", NULL);
    tu_link(g, "x >> h >> a >> d >> o");
    tu_build(g);
    nn_tensor *x = tensor3(4, 1, 2), *y = tensor3(4, 1, 1);
    const float xs[8] = {0, 0, 0, 1, 1, 0, 1, 1}, ys[4] = {0, 1, 1, 0};
    memcpy(x->data, xs, sizeof xs);
    memcpy(y->data, ys, sizeof ys);
    nn_binding in = {"x", x}, tg = {"o", y};
    nn_fit_opts fo = nn_fit_defaults();
    fo.epochs = 400;
    fo.optim.kind = NN_OPTIM_ADAM;
    fo.optim.lr = 0.03;
    double history[400];
    int done = 0;
    int rc = nn_fit_bptt(g, &in, 1, &tg, 1, &fo, history, &done, &err);
    if (rc != NN_OK)
        fprintf(stderr, "fit: %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
    CU_ASSERT_EQUAL(done, 400);
    CU_ASSERT(history[399] < history[0] / 10);

    nn_session *s = nn_session_new(g, 4, 0, &err);
    nn_tensor *out[1];
    CU_ASSERT_EQUAL_FATAL(nn_session_run(s, &in, 1, 1, 0, out, &err), NN_OK);
    for (int k = 0; k < 4; k++) {
        if (fabsf(out[0]->data[k] - ys[k]) >= 0.25f)
            fprintf(stderr, "xor %d: %g\n", k, out[0]->data[k]);
        CU_ASSERT(fabsf(out[0]->data[k] - ys[k]) < 0.25f);
    }
    nn_tensor *again[1], *noisy[1];
    CU_ASSERT_EQUAL(nn_session_run(s, &in, 1, 1, 0, again, &err), NN_OK);
    CU_ASSERT_EQUAL(memcmp(out[0]->data, again[0]->data, 4 * sizeof(float)),
                    0);
    CU_ASSERT_EQUAL(nn_session_run(s, &in, 1, 1, 1, noisy, &err), NN_OK);
    CU_ASSERT_NOT_EQUAL(memcmp(out[0]->data, noisy[0]->data,
                               4 * sizeof(float)), 0);
    (void)h;
    nn_tensor_free(out[0]);
    nn_tensor_free(again[0]);
    nn_tensor_free(noisy[0]);
    nn_session_free(s);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_graph_free(g);
}

/* A VanillaRNN learns y(t) = x(t − 2) with truncated BPTT (windows of 8),
 * minibatches, clipping and a schedule; a frozen node does not move. */
static void test_bptt_rnn_learns_delay(void)
{
    enum { N = 8, T = 24, E = 150 };
    nn_error err;
    nn_graph *g = tu_graph(reg, 21);
    tu_node(g, "Input", "x", "shape=1", NULL);
    tu_node(g, "VanillaRNN", "r", "num_unit=16", "activation=tanh", NULL);
    nn_node *o = tu_node(g, "Dense", "o", "num_unit=1", NULL);
    nn_node *frozen = tu_node(g, "Dense", "f", "num_unit=1",
                              "trainable=false", NULL);
    tu_link(g, "x >> r >> {o, f}");
    tu_build(g);
    nn_tensor *x = signal(N, T, 1, 0.0f);
    nn_tensor *y = tensor3(N, T, 1);
    for (int n = 0; n < N; n++)
        for (int t = 2; t < T; t++)
            y->data[n * T + t] = x->data[n * T + t - 2];
    float frozen_w = nn_node_weight(frozen, "W")->data[0];
    float o_w = nn_node_weight(o, "W")->data[0];
    nn_binding in = {"x", x}, tg = {"o", y};
    nn_fit_opts fo = nn_fit_defaults();
    fo.epochs = E;
    fo.batch_size = 3; /* 3 + 3 + 2: the last minibatch is smaller */
    fo.window = 8;
    fo.clip_norm = 5;
    fo.optim.kind = NN_OPTIM_ADAM;
    fo.optim.lr = 0.02;
    fo.optim.schedule = NN_SCHEDULE_COSINE;
    fo.optim.lr_min = 0.002;
    double history[E];
    int rc = nn_fit_bptt(g, &in, 1, &tg, 1, &fo, history, NULL, &err);
    if (rc != NN_OK)
        fprintf(stderr, "fit: %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
    if (!(history[E - 1] < history[0] / 10))
        fprintf(stderr, "rnn loss %g -> %g\n", history[0], history[E - 1]);
    CU_ASSERT(history[E - 1] < history[0] / 10);
    CU_ASSERT_EQUAL(nn_node_weight(frozen, "W")->data[0], frozen_w);
    CU_ASSERT_NOT_EQUAL(nn_node_weight(o, "W")->data[0], o_w);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_graph_free(g);
}

static int cancel_at_3(void *user, int epoch, int epochs, double loss)
{
    (void)epochs;
    (void)loss;
    *(int *)user = epoch;
    return epoch >= 3;
}

/* A node type with a trainable weight and no backward. */
static int nb_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                      nn_error *err)
{
    (void)n_ff;
    nn_init one = {0};
    nn_shape w = nn_shape1(1);
    CU_ASSERT_EQUAL(nn_init_parse("Ones", &one, err), NN_OK);
    if (!nn_node_add_weight(node, "w", &w, &one, 1, err))
        return err->code;
    nn_node_set_output_shape(node, &ff[0]);
    return NN_OK;
}

static int nb_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                      const nn_tensor *fb, int n_fb, nn_tensor *out,
                      nn_ctx *ctx)
{
    (void)node, (void)n_ff, (void)fb, (void)n_fb, (void)ctx;
    memcpy(out->data, ff[0].data, nn_tensor_numel(out) * sizeof(float));
    return NN_OK;
}

static const nn_node_type no_backward = {
    .api_version = NN_API_VERSION,
    .name = "NoBackward",
    .doc = "a weight and no backward",
    .flags = NN_TYPE_TRAINABLE,
    .init_ff = nb_init_ff,
    .forward = nb_forward,
};

static void test_bptt_refusals_and_cancel(void)
{
    nn_error err;
    nn_graph *g = tu_graph(reg, 4);
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_node(g, "NoBackward", "nb", NULL);
    tu_node(g, "Dense", "h", "num_unit=2", NULL);
    tu_node(g, "Dense", "o", "num_unit=1", NULL);
    tu_link(g, "x >> nb >> h >> o");
    tu_build(g);
    nn_tensor *x = tensor3(2, 3, 2), *y = tensor3(2, 3, 1);
    nn_binding in = {"x", x}, tg = {"o", y};
    nn_fit_opts fo = nn_fit_defaults();
    CU_ASSERT_EQUAL(nn_fit_bptt(g, &in, 1, &tg, 1, &fo, NULL, NULL, &err),
                    NN_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'nb' (NoBackward)"));
    nn_graph_free(g);

    g = tu_graph(reg, 4);
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_node(g, "Dense", "h", "num_unit=2", NULL);
    tu_node(g, "Dense", "o", "num_unit=1", NULL);
    tu_link(g, "x >> h >> o");
    tu_build(g);
    tg.name = "h";
    CU_ASSERT_EQUAL(nn_fit_bptt(g, &in, 1, &tg, 1, &fo, NULL, NULL, &err),
                    NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not an exit"));
    tg.name = "o";
    nn_tensor *bad = tensor3(2, 4, 1);
    nn_binding bad_tg = {"o", bad};
    CU_ASSERT_EQUAL(nn_fit_bptt(g, &in, 1, &bad_tg, 1, &fo, NULL, NULL, &err),
                    NN_ERR_SHAPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "target 'o'"));
    int seen = 0;
    fo.epochs = 10;
    fo.progress = cancel_at_3;
    fo.user = &seen;
    int done = 0;
    CU_ASSERT_EQUAL(nn_fit_bptt(g, &in, 1, &tg, 1, &fo, NULL, &done, &err),
                    NN_ERR_STATE);
    CU_ASSERT_EQUAL(seen, 3);
    CU_ASSERT_EQUAL(done, 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "cancelled"));
    nn_tensor_free(bad);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_graph_free(g);
}

/* ------------------------------------------- aborting, cloning trainers */

/* Counts its calls and asks to stop at the stop_at-th. */
typedef struct abort_count {
    int calls, stop_at;
} abort_count;

static int abort_at(void *user)
{
    abort_count *a = user;
    return ++a->calls >= a->stop_at;
}

static nn_graph *small_esn(const char *reservoir)
{
    nn_graph *g = tu_graph(reg, 6);
    tu_node(g, "Input", "x", "shape=1", NULL);
    tu_node(g, reservoir, "r", "num_unit=10", NULL);
    tu_node(g, "Dense", "o", "num_unit=1", "W_initializer=Zeros", NULL);
    tu_link(g, "x >> r >> o");
    tu_build(g);
    return g;
}

/* The abort callback stops ridge, RLS, IP and BPTT at the step (or BPTT
 * window) it answers nonzero, with "cancelled"; without it they run
 * through. */
static void test_abort_stops_every_trainer(void)
{
    enum { T = 50 };
    nn_error err;
    nn_graph *g = small_esn("Reservoir");
    nn_tensor *x = tensor3(1, T, 1), *y = tensor3(1, T, 1);
    for (int t = 0; t < T; t++) {
        x->data[t] = sinf(0.3f * (float)t);
        y->data[t] = cosf(0.3f * (float)t);
    }
    nn_binding in = {"x", x}, tg = {"o", y};
    abort_count ac = {0, 5};
    nn_graph_set_abort(g, abort_at, &ac);
    nn_session *s = nn_session_new(g, 1, 0, &err);
    nn_ridge *ridge = nn_ridge_new(g, &tg, 1, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ridge);
    CU_ASSERT_EQUAL(nn_ridge_feed(ridge, s, &in, 1, &tg, 1, T, 0, &err),
                    NN_ERR_STATE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "cancelled"));
    CU_ASSERT_EQUAL(ac.calls, 5);
    CU_ASSERT_EQUAL(nn_session_steps(s), 4);

    ac.calls = 0;
    CU_ASSERT_EQUAL_FATAL(nn_session_reset(s, &err), NN_OK);
    nn_rls *rls = nn_rls_new(g, &tg, 1, 0.1, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rls);
    CU_ASSERT_EQUAL(nn_rls_run(rls, s, &in, 1, &tg, 1, T, NULL, &err),
                    NN_ERR_STATE);
    CU_ASSERT_EQUAL(ac.calls, 5);
    CU_ASSERT_EQUAL(nn_session_steps(s), 4);

    nn_graph_set_abort(g, NULL, NULL);
    CU_ASSERT_EQUAL_FATAL(nn_session_reset(s, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_rls_run(rls, s, &in, 1, &tg, 1, T, NULL, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_session_steps(s), T);
    CU_ASSERT_EQUAL(ac.calls, 5);

    /* Five windows of ten steps; the third is not run. */
    nn_fit_opts fo = nn_fit_defaults();
    fo.window = 10;
    ac.calls = 0;
    ac.stop_at = 3;
    nn_graph_set_abort(g, abort_at, &ac);
    int done = -1;
    CU_ASSERT_EQUAL(nn_fit_bptt(g, &in, 1, &tg, 1, &fo, NULL, &done, &err),
                    NN_ERR_STATE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "cancelled"));
    CU_ASSERT_EQUAL(ac.calls, 3);
    CU_ASSERT_EQUAL(done, 0);
    nn_rls_free(rls);
    nn_ridge_free(ridge);
    nn_session_free(s);
    nn_graph_free(g);

    g = small_esn("IPReservoir");
    ac.calls = 0;
    ac.stop_at = 5;
    nn_graph_set_abort(g, abort_at, &ac);
    long updates = -1;
    CU_ASSERT_EQUAL(nn_ip_fit(g, &in, 1, 1, T, 3, 0, &updates, &err),
                    NN_ERR_STATE);
    CU_ASSERT_EQUAL(ac.calls, 5);
    CU_ASSERT_EQUAL(updates, 4);
    nn_graph_free(g);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

/* A clone of an RLS trainer with a copy of its session, on a clone of the
 * graph, trains exactly as the original goes on: same bits, same steps.
 * Training the copy leaves the original as it was. */
static void test_rls_clone_and_session_copy(void)
{
    enum { T = 60 };
    nn_error err;
    nn_graph *g = small_esn("Reservoir");
    nn_tensor *x = tensor3(1, T, 1), *y = tensor3(1, T, 1);
    for (int t = 0; t < T; t++) {
        x->data[t] = sinf(0.3f * (float)t);
        y->data[t] = cosf(0.2f * (float)t);
    }
    nn_binding in = {"x", x}, tg = {"o", y};
    nn_session *s = nn_session_new(g, 1, 0, &err);
    nn_rls *rls = nn_rls_new(g, &tg, 1, 0.1, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rls);
    /* D = 10 features and the 1: P is 11 x 11, the weights 11 x 1. */
    size_t bytes = 0;
    CU_ASSERT_EQUAL(nn_readouts_check(g, &tg, 1, &bytes, &err), NN_OK);
    CU_ASSERT_EQUAL(bytes, (11 * 11 + 11) * sizeof(double));
    CU_ASSERT_EQUAL_FATAL(nn_rls_run(rls, s, &in, 1, &tg, 1, T, NULL, &err),
                          NN_OK);

    nn_graph *gc = nn_graph_clone(g, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(gc);
    nn_session *sc = nn_session_new(gc, 1, 7, &err);
    nn_session *wide = nn_session_new(gc, 2, 0, &err);
    CU_ASSERT_EQUAL(nn_session_copy_state(wide, s, &err), NN_ERR_SHAPE);
    CU_ASSERT_EQUAL_FATAL(nn_session_copy_state(sc, s, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_session_steps(sc), T);
    nn_rls *rc = nn_rls_clone(rls, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rc);

    /* The copy goes first and must not move the original. */
    CU_ASSERT_EQUAL_FATAL(nn_rls_run(rc, sc, &in, 1, &tg, 1, T, NULL, &err),
                          NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_rls_run(rls, s, &in, 1, &tg, 1, T, NULL, &err),
                          NN_OK);
    const nn_tensor *w = nn_node_weight(nn_graph_find(g, "o"), "W");
    const nn_tensor *wc = nn_node_weight(nn_graph_find(gc, "o"), "W");
    CU_ASSERT_EQUAL(memcmp(w->data, wc->data, 10 * sizeof(float)), 0);
    CU_ASSERT_EQUAL(nn_session_steps(sc), 2 * T);
    const nn_tensor *o = nn_session_output(s, "o");
    const nn_tensor *oc = nn_session_output(sc, "o");
    CU_ASSERT_EQUAL(memcmp(o->data, oc->data, sizeof(float)), 0);
    nn_rls_free(rc);
    nn_rls_free(rls);
    nn_session_free(wide);
    nn_session_free(sc);
    nn_session_free(s);
    nn_graph_free(gc);
    nn_graph_free(g);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

int main(void)
{
    nn_error err;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &err) != NN_OK ||
        nn_register_type(reg, &no_backward, &err) != NN_OK)
        return 2;
    static const tu_test tests[] = {
        {"ridge equals the normal equations, with bias", test_ridge_with_bias},
        {"ridge without bias, after a warmup",
         test_ridge_without_bias_and_warmup},
        {"ridge with feedback inputs", test_ridge_with_feedback_inputs},
        {"ridge teacher-forces a fed-back readout", test_ridge_teacher_forcing},
        {"ridge accumulates over batches", test_ridge_accumulates_over_batches},
        {"a forced run feeds back the given values", test_forced_run},
        {"ridge and rls refusals name the node", test_ridge_refusals},
        {"LinearReadout is fitted like a Dense", test_linear_readout},
        {"a clone is equal and independent", test_clone},
        {"rls converges to the ridge solution", test_rls_converges_to_ridge},
        {"rls with forgetting and lms match their equations",
         test_online_rules_match_their_equations},
        {"online rule options are checked by name", test_online_refusals},
        {"mse and softmax cross-entropy", test_losses},
        {"sgd with momentum, adam, schedules", test_optimizers_and_schedules},
        {"gradient-norm clipping", test_gradient_clipping},
        {"bptt learns xor with dropout", test_bptt_learns_xor_with_dropout},
        {"bptt: an rnn learns a delay", test_bptt_rnn_learns_delay},
        {"bptt refusals and cancellation", test_bptt_refusals_and_cancel},
        {"the abort callback stops every trainer",
         test_abort_stops_every_trainer},
        {"an rls clone and a session copy go on alike",
         test_rls_clone_and_session_copy},
        {NULL, NULL}};
    int rc = tu_run_suite("train", tests);
    nn_registry_free(reg);
    return rc;
}
