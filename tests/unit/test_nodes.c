/*
 * test_nodes.c — the built-in node types: values computed by hand from the
 * weights they report, state and feedback timing, Dropout's statistics, and
 * every backward against central finite differences.
 */
#include "nn_train.h"
#include "testutil.h"

#include <math.h>
#include <stdarg.h>
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

/* Adds a node and sets "key=value" parameters (NULL-terminated). */
static nn_node *node(nn_graph *g, const char *type, const char *name, ...)
{
    nn_error err;
    nn_node *n = nn_graph_add_node(g, type, name, &err);
    if (!n)
        fprintf(stderr, "add %s: %s\n", name, err.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    va_list ap;
    va_start(ap, name);
    for (const char *kv; (kv = va_arg(ap, const char *)) != NULL;) {
        char key[64];
        const char *eq = strchr(kv, '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
        int rc = nn_node_set_param(n, key, eq + 1, &err);
        if (rc != NN_OK)
            fprintf(stderr, "%s: %s\n", kv, err.msg);
        CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
    }
    va_end(ap);
    return n;
}

static void link(nn_graph *g, const char *expr)
{
    nn_error err;
    int rc = nn_graph_link(g, expr, &err);
    if (rc != NN_OK)
        fprintf(stderr, "%s: %s\n", expr, err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
}

static void build(nn_graph *g)
{
    nn_error err;
    int rc = nn_graph_build(g, &err);
    if (rc != NN_OK)
        fprintf(stderr, "build: %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
}

static void fill(nn_tensor *t, float scale, float phase)
{
    for (size_t k = 0; k < nn_tensor_numel(t); k++)
        t->data[k] = scale * sinf(1.3f * (float)k + phase);
}

/* ------------------------------------------------------------------ Dense */

static void test_guide_dot_node(void)
{
    nn_graph *g = graph(2022);
    node(g, "Input", "i1", "shape=1", NULL);
    node(g, "Input", "i2", "shape=2", NULL);
    node(g, "Input", "i3", "shape=3", NULL);
    node(g, "Dense", "l", "num_unit=10", "b_initializer=Normal(0, 1)", NULL);
    link(g, "{i1, i2, i3} >> l");
    build(g);
    nn_error err;
    nn_session *s = nn_session_new(g, 1, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    float x[6] = {1, 0, 0, 0.25f, 0.5f, 0.75f}; /* ones, zeros, random */
    nn_session_input(s, "i1")->data[0] = x[0];
    memcpy(nn_session_input(s, "i2")->data, x + 1, 2 * sizeof(float));
    memcpy(nn_session_input(s, "i3")->data, x + 3, 3 * sizeof(float));
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
    const nn_tensor *out = nn_session_output(s, "l");
    CU_ASSERT_EQUAL(out->shape.ndim, 2);
    CU_ASSERT_EQUAL(out->shape.dims[0], 1);
    CU_ASSERT_EQUAL(out->shape.dims[1], 10);
    nn_node *l = nn_graph_find(g, "l");
    nn_tensor *W = nn_node_weight(l, "W"), *b = nn_node_weight(l, "b");
    CU_ASSERT_EQUAL(W->shape.dims[0], 6);
    CU_ASSERT_EQUAL(W->shape.dims[1], 10);
    CU_ASSERT_EQUAL(nn_node_param_count(l), 70);
    for (int j = 0; j < 10; j++) {
        double y = b->data[j];
        for (int k = 0; k < 6; k++)
            y += (double)x[k] * W->data[k * 10 + j];
        CU_ASSERT_DOUBLE_EQUAL(out->data[j], y, 1e-5);
    }
    nn_session_free(s);
    nn_graph_free(g);
}

static void test_dense_without_bias_and_leading_axes(void)
{
    nn_graph *g = graph(1);
    node(g, "Input", "x", "shape=[4, 3]", NULL);
    node(g, "Dense", "d", "num_unit=2", "use_bias=false", NULL);
    link(g, "x >> d");
    build(g);
    nn_node *d = nn_graph_find(g, "d");
    CU_ASSERT_PTR_NULL(nn_node_weight(d, "b"));
    nn_shape out_shape = nn_node_output_shape(d);
    CU_ASSERT_EQUAL(out_shape.ndim, 2);
    CU_ASSERT_EQUAL(out_shape.dims[0], 4);
    CU_ASSERT_EQUAL(out_shape.dims[1], 2);
    nn_error err;
    nn_session *s = nn_session_new(g, 2, 0, &err);
    nn_tensor *in = nn_session_input(s, "x");
    fill(in, 1, 0);
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
    const nn_tensor *out = nn_session_output(s, "d");
    const float *W = nn_node_weight(d, "W")->data;
    for (int r = 0; r < 8; r++) /* (batch 2) x (4 rows each) */
        for (int j = 0; j < 2; j++) {
            double y = 0;
            for (int k = 0; k < 3; k++)
                y += (double)in->data[r * 3 + k] * W[k * 2 + j];
            CU_ASSERT_DOUBLE_EQUAL(out->data[r * 2 + j], y, 1e-5);
        }
    nn_session_free(s);
    nn_graph_free(g);
}

static void test_dense_parameter_errors(void)
{
    nn_graph *g = graph(1);
    nn_error err;
    nn_node *d = nn_graph_add_node(g, "Dense", "d", &err);
    CU_ASSERT_EQUAL(nn_node_set_param(d, "num_unit", "0", &err),
                    NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'num_unit'"));
    CU_ASSERT_EQUAL(nn_node_set_param(d, "W_initializer", "Gauss", &err),
                    NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'W_initializer'"));
    CU_ASSERT_EQUAL(nn_node_set_param(d, "units", "3", &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "num_unit"));
    /* num_unit is required. */
    node(g, "Input", "x", "shape=2", NULL);
    link(g, "x >> d");
    CU_ASSERT_EQUAL(nn_graph_build(g, &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'num_unit' is required"));
    nn_graph_free(g);
}

/* ----------------------------------------------------------------- feedback */

static void test_feedback_into_dense(void)
{
    nn_error err;
    /* DotNode semantics: refused, naming the node. */
    nn_graph *g = graph(3);
    node(g, "Input", "i", "shape=2", NULL);
    node(g, "Dense", "d", "num_unit=3", "feedback=false", NULL);
    node(g, "Dense", "o", "num_unit=2", NULL);
    link(g, "i >> d >> o");
    link(g, "d << o");
    CU_ASSERT_NOT_EQUAL(nn_graph_build(g, &err), NN_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'d'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "does not support feedback"));
    nn_graph_free(g);

    /* FeedBackDotNode semantics: the first step sees zeros, the second the
     * sender's previous output. */
    g = graph(3);
    node(g, "Input", "i", "shape=2", NULL);
    node(g, "Dense", "d", "num_unit=3", NULL);
    node(g, "Dense", "o", "num_unit=2", NULL);
    link(g, "i >> d >> o");
    link(g, "d << o");
    build(g);
    nn_node *d = nn_graph_find(g, "d");
    const float *W = nn_node_weight(d, "W")->data;
    const float *b = nn_node_weight(d, "b")->data;
    const float *Wfb = nn_node_weight(d, "Wfb")->data;
    CU_ASSERT_PTR_NOT_NULL(Wfb);
    nn_session *s = nn_session_new(g, 1, 0, &err);
    float x[2][2] = {{1, -2}, {0.5f, 3}};
    float o_prev[2] = {0, 0};
    for (int t = 0; t < 2; t++) {
        memcpy(nn_session_input(s, "i")->data, x[t], sizeof x[t]);
        CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
        const float *dout = nn_session_output(s, "d")->data;
        for (int j = 0; j < 3; j++) {
            double y = b[j];
            for (int k = 0; k < 2; k++)
                y += (double)x[t][k] * W[k * 3 + j] +
                     (double)o_prev[k] * Wfb[k * 3 + j];
            CU_ASSERT_DOUBLE_EQUAL(dout[j], y, 1e-5);
        }
        memcpy(o_prev, nn_session_output(s, "o")->data, sizeof o_prev);
    }
    CU_ASSERT(o_prev[0] != 0 || o_prev[1] != 0);
    nn_session_free(s);
    nn_graph_free(g);
}

/* -------------------------------------------------------------- VanillaRNN */

static void check_rnn(const char *activation)
{
    char act_param[64];
    snprintf(act_param, sizeof act_param, "activation=%s", activation);
    nn_graph *g = graph(11);
    node(g, "Input", "x", "shape=2", NULL);
    node(g, "VanillaRNN", "r", "num_unit=3", act_param,
         "b_initializer=Normal(0, 0.5)", NULL);
    link(g, "x >> r");
    build(g);
    nn_node *r = nn_graph_find(g, "r");
    const float *Wi = nn_node_weight(r, "Wi")->data;
    const float *Wr = nn_node_weight(r, "Wr")->data;
    const float *b = nn_node_weight(r, "b")->data;
    nn_error err;
    nn_session *s = nn_session_new(g, 1, 0, &err);
    float xs[3][2] = {{1, 0.5f}, {-0.3f, 0.8f}, {0.2f, -1}};
    double h[3] = {0, 0, 0};
    for (int round = 0; round < 2; round++) {
        for (int t = 0; t < 3; t++) {
            memcpy(nn_session_input(s, "x")->data, xs[t], sizeof xs[t]);
            CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
            double next[3];
            for (int j = 0; j < 3; j++) {
                double pre = b[j];
                for (int k = 0; k < 2; k++)
                    pre += xs[t][k] * (double)Wi[k * 3 + j];
                for (int k = 0; k < 3; k++)
                    pre += h[k] * Wr[k * 3 + j];
                next[j] = strcmp(activation, "tanh") == 0 ? tanh(pre)
                                                          : fmax(pre, 0.0);
            }
            memcpy(h, next, sizeof h);
            const float *out = nn_session_output(s, "r")->data;
            const float *state = nn_session_state(s, "r", 0)->data;
            for (int j = 0; j < 3; j++) {
                CU_ASSERT_DOUBLE_EQUAL(out[j], h[j], 1e-5);
                CU_ASSERT_EQUAL(state[j], out[j]);
            }
        }
        /* After reset the same inputs give the same outputs again. */
        CU_ASSERT_EQUAL(nn_session_reset(s, &err), NN_OK);
        CU_ASSERT_EQUAL(nn_session_state(s, "r", 0)->data[0], 0.0f);
        memset(h, 0, sizeof h);
    }
    nn_session_free(s);
    nn_graph_free(g);
}

static void test_vanilla_rnn_recurrence(void)
{
    check_rnn("tanh");
    check_rnn("relu");
}

static void test_rnn_refuses_leading_axes(void)
{
    nn_graph *g = graph(1);
    node(g, "Input", "x", "shape=[2, 3]", NULL);
    node(g, "VanillaRNN", "r", "num_unit=3", NULL);
    link(g, "x >> r");
    nn_error err;
    CU_ASSERT_EQUAL(nn_graph_build(g, &err), NN_ERR_SHAPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'r' (VanillaRNN)"));
    nn_graph_free(g);
}

/* ----------------------------------------------------------------- Dropout */

static nn_graph *dropout_graph(const char *prob, int size)
{
    char shape[32], p[32];
    snprintf(shape, sizeof shape, "shape=%d", size);
    snprintf(p, sizeof p, "prob=%s", prob);
    nn_graph *g = graph(1);
    node(g, "Input", "x", shape, NULL);
    node(g, "Dropout", "drop", p, NULL);
    link(g, "x >> drop");
    build(g);
    return g;
}

static void test_dropout(void)
{
    enum { N = 100000 };
    nn_graph *g = dropout_graph("0.8", N);
    nn_error err;
    nn_session *s = nn_session_new(g, 1, 5, &err);
    nn_tensor *x = nn_session_input(s, "x");
    for (int i = 0; i < N; i++)
        x->data[i] = 1.0f + (float)(i % 7);
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 1, &err), NN_OK);
    const float *y = nn_session_output(s, "drop")->data;
    int zeros = 0, scaled = 1;
    float first_mask[64];
    for (int i = 0; i < N; i++) {
        if (y[i] == 0)
            zeros++;
        else if (fabsf(y[i] - x->data[i] / 0.8f) > 1e-6f)
            scaled = 0;
        if (i < 64)
            first_mask[i] = y[i];
    }
    /* 20% dropped; the standard deviation of the count is 126. */
    CU_ASSERT(abs(zeros - N / 5) < 800);
    CU_ASSERT(scaled);
    /* Evaluation: the identity, bit for bit. */
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
    CU_ASSERT_EQUAL(memcmp(y, x->data, N * sizeof(float)), 0);

    /* The same session seed gives the same mask; another seed another. */
    nn_session *same = nn_session_new(g, 1, 5, &err);
    nn_session *other = nn_session_new(g, 1, 6, &err);
    memcpy(nn_session_input(same, "x")->data, x->data, N * sizeof(float));
    memcpy(nn_session_input(other, "x")->data, x->data, N * sizeof(float));
    CU_ASSERT_EQUAL(nn_session_step(same, 1, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_session_step(other, 1, &err), NN_OK);
    CU_ASSERT_EQUAL(memcmp(first_mask, nn_session_output(same, "drop")->data,
                           sizeof first_mask), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(first_mask,
                               nn_session_output(other, "drop")->data,
                               sizeof first_mask), 0);
    nn_session_free(same);
    nn_session_free(other);
    nn_session_free(s);
    nn_graph_free(g);

    /* prob = 1 keeps everything even in training; prob 0 is refused. */
    g = dropout_graph("1", 16);
    s = nn_session_new(g, 1, 1, &err);
    fill(nn_session_input(s, "x"), 1, 0);
    CU_ASSERT_EQUAL(nn_session_step(s, 1, &err), NN_OK);
    CU_ASSERT_EQUAL(memcmp(nn_session_output(s, "drop")->data,
                           nn_session_input(s, "x")->data, 16 * sizeof(float)),
                    0);
    nn_session_free(s);
    nn_graph_free(g);
    g = graph(1);
    nn_node *d = nn_graph_add_node(g, "Dropout", "d", &err);
    CU_ASSERT_EQUAL(nn_node_set_param(d, "prob", "0", &err), NN_ERR_INVALID);
    /* A second input is a clear error naming the node. */
    node(g, "Input", "a", "shape=2", NULL);
    node(g, "Input", "b", "shape=2", NULL);
    CU_ASSERT_EQUAL(nn_node_set_param(d, "prob", "0.5", &err), NN_OK);
    link(g, "{a, b} >> d");
    CU_ASSERT_EQUAL(nn_graph_build(g, &err), NN_ERR_SHAPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'d' (Dropout)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "exactly one"));
    nn_graph_free(g);
}

/* ------------------------------------------------- Activation and Concat */

static void test_activation_values(void)
{
    struct {
        const char *fn;
        float x, y;
    } cases[] = {
        {"identity", -1.5f, -1.5f},     {"tanh", 0.5f, 0.46211716f},
        {"relu", -2, 0},                {"relu", 2, 2},
        {"sigmoid", 0, 0.5f},           {"sigmoid", 2, 0.88079708f},
        {"softplus", 0, 0.69314718f},   {"elu", -1, -0.63212056f},
        {"leaky_relu", -2, -0.02f},     {"gelu", 1, 0.84119199f},
        {"silu", 1, 0.73105858f},       {"sigmoid", -100, 0.0f},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char fn[64];
        snprintf(fn, sizeof fn, "function=%s", cases[k].fn);
        nn_graph *g = graph(1);
        node(g, "Input", "x", "shape=1", NULL);
        node(g, "Activation", "a", fn, NULL);
        link(g, "x >> a");
        build(g);
        nn_error err;
        nn_session *s = nn_session_new(g, 1, 0, &err);
        nn_session_input(s, "x")->data[0] = cases[k].x;
        CU_ASSERT_EQUAL(nn_session_step(s, 0, &err), NN_OK);
        float y = nn_session_output(s, "a")->data[0];
        if (fabsf(y - cases[k].y) > 1e-5f)
            fprintf(stderr, "%s(%g) = %g, expected %g\n", cases[k].fn,
                    cases[k].x, y, cases[k].y);
        CU_ASSERT_DOUBLE_EQUAL(y, cases[k].y, 1e-5);
        nn_session_free(s);
        nn_graph_free(g);
    }
    /* Softmax rows sum to one, and large inputs do not overflow. */
    nn_graph *g = graph(1);
    node(g, "Input", "x", "shape=4", NULL);
    node(g, "Activation", "sm", "function=softmax", NULL);
    node(g, "Activation", "lsm", "function=log_softmax", NULL);
    link(g, "x >> {sm, lsm}");
    build(g);
    nn_error err;
    nn_session *s = nn_session_new(g, 2, 0, &err);
    float x[8] = {1, 2, 3, 4, 1000, 1001, 999, 1000};
    memcpy(nn_session_input(s, "x")->data, x, sizeof x);
    CU_ASSERT_EQUAL(nn_session_step(s, 0, &err), NN_OK);
    const float *sm = nn_session_output(s, "sm")->data;
    const float *lsm = nn_session_output(s, "lsm")->data;
    for (int r = 0; r < 2; r++) {
        double sum = 0;
        for (int j = 0; j < 4; j++) {
            sum += sm[r * 4 + j];
            CU_ASSERT_DOUBLE_EQUAL(logf(sm[r * 4 + j]), lsm[r * 4 + j], 1e-4);
        }
        CU_ASSERT_DOUBLE_EQUAL(sum, 1.0, 1e-5);
    }
    CU_ASSERT_DOUBLE_EQUAL(sm[3], exp(0) / (exp(-3) + exp(-2) + exp(-1) + 1),
                           1e-5);
    nn_session_free(s);
    nn_graph_free(g);
}

static void test_concat_order(void)
{
    nn_graph *g = graph(1);
    node(g, "Input", "a", "shape=1", NULL);
    node(g, "Input", "b", "shape=2", NULL);
    node(g, "Concat", "c", NULL);
    link(g, "b >> c");
    link(g, "a >> c");
    build(g);
    nn_error err;
    nn_session *s = nn_session_new(g, 2, 0, &err);
    float a[2] = {1, 2}, b[4] = {10, 20, 30, 40};
    memcpy(nn_session_input(s, "a")->data, a, sizeof a);
    memcpy(nn_session_input(s, "b")->data, b, sizeof b);
    CU_ASSERT_EQUAL(nn_session_step(s, 0, &err), NN_OK);
    float expect[6] = {10, 20, 1, 30, 40, 2}; /* b first: declared first */
    CU_ASSERT_EQUAL(memcmp(nn_session_output(s, "c")->data, expect,
                           sizeof expect), 0);
    nn_session_free(s);
    nn_graph_free(g);
}

/* ----------------------------------------------- allocation-free steps */

static void test_builtin_steps_allocate_nothing(void)
{
    nn_graph *g = graph(4);
    node(g, "Input", "x", "shape=5", NULL);
    node(g, "Dense", "d", "num_unit=8", NULL);
    node(g, "VanillaRNN", "r", "num_unit=6", "activation=tanh", NULL);
    node(g, "Dropout", "drop", "prob=0.5", NULL);
    node(g, "Activation", "a", "function=softmax", NULL);
    node(g, "Concat", "c", NULL);
    node(g, "Dense", "o", "num_unit=3", NULL);
    link(g, "x >> d >> r >> drop >> a");
    link(g, "{a, x} >> c >> o");
    link(g, "r << o");
    build(g);
    nn_error err;
    nn_session *s = nn_session_new(g, 4, 0, &err);
    fill(nn_session_input(s, "x"), 1, 0.5f);
    const float *buffers[7];
    const char *names[7] = {"x", "d", "r", "drop", "a", "c", "o"};
    for (int i = 0; i < 7; i++)
        buffers[i] = nn_session_output(s, names[i])->data;
    uint64_t before = nn_alloc_count();
    for (int t = 0; t < 50; t++)
        CU_ASSERT_EQUAL(nn_session_step(s, t % 2, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_alloc_count(), before);
    for (int i = 0; i < 7; i++)
        CU_ASSERT_PTR_EQUAL(nn_session_output(s, names[i])->data, buffers[i]);
    nn_session_free(s);
    nn_graph_free(g);
}

/* --------------------------------------- backward vs finite differences */

enum { FD_B = 2, FD_T = 3 };

/* L = sum(c * y) for the single exit, over a fresh session, in double. */
static double fd_loss(nn_graph *g, nn_tensor *x, const nn_tensor *c)
{
    nn_error err;
    nn_session *s = nn_session_new(g, FD_B, 9, &err);
    nn_binding bind = {"x", x};
    nn_tensor *out[1];
    double sum = 0;
    CU_ASSERT_EQUAL_FATAL(nn_session_run(s, &bind, 1, FD_T, 1, out, &err),
                          NN_OK);
    for (size_t k = 0; k < nn_tensor_numel(out[0]); k++)
        sum += (double)c->data[k] * out[0]->data[k];
    nn_tensor_free(out[0]);
    nn_session_free(s);
    return sum;
}

/* Checks every trainable weight's gradient (up to 8 entries each) of graph
 * g, whose one input is "x" of `width` features. */
static void check_gradients(nn_graph *g, int width, const char *what)
{
    nn_error err;
    int dims[3] = {FD_B, FD_T, width};
    nn_shape xs = nn_shape_make(3, dims);
    nn_tensor *x = nn_tensor_new(&xs);
    fill(x, 0.8f, 0.1f);
    nn_session *s = nn_session_new(g, FD_B, 9, &err);
    nn_tape *tape = nn_tape_new(s, FD_T, &err);
    if (!tape)
        fprintf(stderr, "%s: %s\n", what, err.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tape);
    nn_grads *grads = nn_grads_new(g, &err);
    nn_binding bind = {"x", x};
    nn_tensor *out[1];
    CU_ASSERT_EQUAL_FATAL(nn_tape_run(tape, &bind, 1, FD_T, 1, out, &err),
                          NN_OK);
    nn_tensor *c = nn_tensor_new(&out[0]->shape);
    fill(c, 1.0f, 2.0f);
    nn_tensor *d_out[1] = {c};
    CU_ASSERT_EQUAL_FATAL(nn_tape_backward(tape, d_out, grads, &err), NN_OK);
    int checked = 0;
    for (int n = 0; n < nn_graph_node_count(g); n++) {
        nn_node *node = nn_graph_node_at(g, n);
        for (int w = 0; w < nn_node_weight_count(node); w++) {
            if (!nn_node_weight_trainable(node, w))
                continue;
            nn_tensor *weight = nn_node_weight_at(node, w);
            nn_tensor *grad = nn_grads_at(grads, node, w);
            size_t count = nn_tensor_numel(weight);
            size_t stride = count > 8 ? count / 8 : 1;
            for (size_t k = 0; k < count; k += stride) {
                /* Small enough not to step over relu's kink, large enough
                 * for float32 sums to resolve. */
                const float eps = 1e-3f;
                float keep = weight->data[k];
                weight->data[k] = keep + eps;
                double up = fd_loss(g, x, c);
                weight->data[k] = keep - eps;
                double down = fd_loss(g, x, c);
                weight->data[k] = keep;
                double numeric = (up - down) / (2.0 * eps);
                double analytic = grad->data[k];
                double tol = 1e-2 * fmax(1.0, fabs(numeric));
                if (fabs(numeric - analytic) > tol)
                    fprintf(stderr, "%s: %s.%s[%zu] numeric %g analytic %g\n",
                            what, nn_node_name(node),
                            nn_node_weight_name(node, w), k, numeric,
                            analytic);
                CU_ASSERT(fabs(numeric - analytic) <= tol);
                checked++;
            }
        }
    }
    CU_ASSERT(checked > 0);
    nn_tensor_free(out[0]);
    nn_tensor_free(c);
    nn_tensor_free(x);
    nn_grads_free(grads);
    nn_tape_free(tape);
    nn_session_free(s);
}

static void test_dense_and_rnn_gradients(void)
{
    nn_graph *g = graph(21);
    node(g, "Input", "x", "shape=3", NULL);
    node(g, "Dense", "d", "num_unit=4", "b_initializer=Normal(0, 0.3)", NULL);
    node(g, "VanillaRNN", "r", "num_unit=4", "activation=tanh",
         "b_initializer=Normal(0, 0.3)", NULL);
    node(g, "Dense", "o", "num_unit=2", NULL);
    link(g, "x >> d >> r >> o");
    link(g, "r << o");
    build(g);
    check_gradients(g, 3, "Dense + VanillaRNN with feedback");
    nn_graph_free(g);
}

static void test_activation_gradients(void)
{
    static const char *fns[] = {"identity", "tanh", "relu", "sigmoid",
                                "softmax", "log_softmax", "softplus", "elu",
                                "leaky_relu", "gelu", "silu"};
    for (size_t k = 0; k < sizeof fns / sizeof *fns; k++) {
        char fn[64];
        snprintf(fn, sizeof fn, "function=%s", fns[k]);
        nn_graph *g = graph(31);
        node(g, "Input", "x", "shape=3", NULL);
        node(g, "Dense", "d", "num_unit=4", "b_initializer=Normal(0, 0.5)",
             NULL);
        node(g, "Activation", "a", fn, NULL);
        node(g, "Dense", "o", "num_unit=3", NULL);
        link(g, "x >> d >> a >> o");
        build(g);
        check_gradients(g, 3, fns[k]);
        nn_graph_free(g);
    }
}

static void test_concat_and_dropout_gradients(void)
{
    nn_graph *g = graph(41);
    node(g, "Input", "x", "shape=3", NULL);
    node(g, "Dense", "p", "num_unit=2", NULL);
    node(g, "Dense", "q", "num_unit=3", NULL);
    node(g, "Concat", "c", NULL);
    node(g, "Dropout", "drop", "prob=0.6", NULL);
    node(g, "Dense", "o", "num_unit=2", NULL);
    link(g, "x >> {p, q}");
    link(g, "{q, p} >> c >> drop >> o");
    build(g);
    check_gradients(g, 3, "Concat + Dropout (training)");
    nn_graph_free(g);
}

int main(void)
{
    nn_error err;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &err) != NN_OK)
        return 2;
    static const tu_test tests[] = {
        {"the guide's DotNode: {i1, i2, i3} >> Dense(10)", test_guide_dot_node},
        {"Dense without bias, with leading axes",
         test_dense_without_bias_and_leading_axes},
        {"Dense parameter errors", test_dense_parameter_errors},
        {"feedback into Dense", test_feedback_into_dense},
        {"VanillaRNN recurrence, state and reset", test_vanilla_rnn_recurrence},
        {"VanillaRNN refuses leading axes", test_rnn_refuses_leading_axes},
        {"Dropout", test_dropout},
        {"Activation values", test_activation_values},
        {"Concat order", test_concat_order},
        {"built-in steps allocate nothing",
         test_builtin_steps_allocate_nothing},
        {"Dense and VanillaRNN gradients", test_dense_and_rnn_gradients},
        {"Activation gradients", test_activation_gradients},
        {"Concat and Dropout gradients", test_concat_and_dropout_gradients},
        {NULL, NULL}};
    int rc = tu_run_suite("nodes", tests);
    nn_registry_free(reg);
    return rc;
}
