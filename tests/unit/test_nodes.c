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

/* ------------------------------------------------------------------ Dense */

static void test_guide_dot_node(void)
{
    nn_graph *g = graph(2022);
    tu_node(g, "Input", "i1", "shape=1", NULL);
    tu_node(g, "Input", "i2", "shape=2", NULL);
    tu_node(g, "Input", "i3", "shape=3", NULL);
    tu_node(g, "Dense", "l", "num_unit=10", "b_initializer=Normal(0, 1)", NULL);
    tu_link(g, "{i1, i2, i3} >> l");
    tu_build(g);
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
    tu_node(g, "Input", "x", "shape=[4, 3]", NULL);
    tu_node(g, "Dense", "d", "num_unit=2", "use_bias=false", NULL);
    tu_link(g, "x >> d");
    tu_build(g);
    nn_node *d = nn_graph_find(g, "d");
    CU_ASSERT_PTR_NULL(nn_node_weight(d, "b"));
    nn_shape out_shape = nn_node_output_shape(d);
    CU_ASSERT_EQUAL(out_shape.ndim, 2);
    CU_ASSERT_EQUAL(out_shape.dims[0], 4);
    CU_ASSERT_EQUAL(out_shape.dims[1], 2);
    nn_error err;
    nn_session *s = nn_session_new(g, 2, 0, &err);
    nn_tensor *in = nn_session_input(s, "x");
    tu_fill(in, 1, 0);
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
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_link(g, "x >> d");
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
    tu_node(g, "Input", "i", "shape=2", NULL);
    tu_node(g, "Dense", "d", "num_unit=3", "feedback=false", NULL);
    tu_node(g, "Dense", "o", "num_unit=2", NULL);
    tu_link(g, "i >> d >> o");
    tu_link(g, "d << o");
    CU_ASSERT_NOT_EQUAL(nn_graph_build(g, &err), NN_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'d'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "does not support feedback"));
    nn_graph_free(g);

    /* FeedBackDotNode semantics: the first step sees zeros, the second the
     * sender's previous output. */
    g = graph(3);
    tu_node(g, "Input", "i", "shape=2", NULL);
    tu_node(g, "Dense", "d", "num_unit=3", NULL);
    tu_node(g, "Dense", "o", "num_unit=2", NULL);
    tu_link(g, "i >> d >> o");
    tu_link(g, "d << o");
    tu_build(g);
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
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_node(g, "VanillaRNN", "r", "num_unit=3", act_param,
         "b_initializer=Normal(0, 0.5)", NULL);
    tu_link(g, "x >> r");
    tu_build(g);
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
    tu_node(g, "Input", "x", "shape=[2, 3]", NULL);
    tu_node(g, "VanillaRNN", "r", "num_unit=3", NULL);
    tu_link(g, "x >> r");
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
    tu_node(g, "Input", "x", shape, NULL);
    tu_node(g, "Dropout", "drop", p, NULL);
    tu_link(g, "x >> drop");
    tu_build(g);
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
    tu_fill(nn_session_input(s, "x"), 1, 0);
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
    tu_node(g, "Input", "a", "shape=2", NULL);
    tu_node(g, "Input", "b", "shape=2", NULL);
    CU_ASSERT_EQUAL(nn_node_set_param(d, "prob", "0.5", &err), NN_OK);
    tu_link(g, "{a, b} >> d");
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
        {"gelu_exact", 1, 0.84134475f}, {"gelu_exact", -1, -0.15865525f},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char fn[64];
        snprintf(fn, sizeof fn, "function=%s", cases[k].fn);
        nn_graph *g = graph(1);
        tu_node(g, "Input", "x", "shape=1", NULL);
        tu_node(g, "Activation", "a", fn, NULL);
        tu_link(g, "x >> a");
        tu_build(g);
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
    tu_node(g, "Input", "x", "shape=4", NULL);
    tu_node(g, "Activation", "sm", "function=softmax", NULL);
    tu_node(g, "Activation", "lsm", "function=log_softmax", NULL);
    tu_link(g, "x >> {sm, lsm}");
    tu_build(g);
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
    tu_node(g, "Input", "a", "shape=1", NULL);
    tu_node(g, "Input", "b", "shape=2", NULL);
    tu_node(g, "Concat", "c", NULL);
    tu_link(g, "b >> c");
    tu_link(g, "a >> c");
    tu_build(g);
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
    tu_node(g, "Input", "x", "shape=5", NULL);
    tu_node(g, "Dense", "d", "num_unit=8", NULL);
    tu_node(g, "VanillaRNN", "r", "num_unit=6", "activation=tanh", NULL);
    tu_node(g, "Dropout", "drop", "prob=0.5", NULL);
    tu_node(g, "Activation", "a", "function=softmax", NULL);
    tu_node(g, "Concat", "c", NULL);
    tu_node(g, "Dense", "o", "num_unit=3", NULL);
    tu_link(g, "x >> d >> r >> drop >> a");
    tu_link(g, "{a, x} >> c >> o");
    tu_link(g, "r << o");
    tu_build(g);
    nn_error err;
    nn_session *s = nn_session_new(g, 4, 0, &err);
    tu_fill(nn_session_input(s, "x"), 1, 0.5f);
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


static void test_dense_and_rnn_gradients(void)
{
    nn_graph *g = graph(21);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "Dense", "d", "num_unit=4", "b_initializer=Normal(0, 0.3)", NULL);
    tu_node(g, "VanillaRNN", "r", "num_unit=4", "activation=tanh",
         "b_initializer=Normal(0, 0.3)", NULL);
    tu_node(g, "Dense", "o", "num_unit=2", NULL);
    tu_link(g, "x >> d >> r >> o");
    tu_link(g, "r << o");
    tu_build(g);
    tu_check_gradients(g, "x", 3, NULL, "Dense + VanillaRNN with feedback");
    nn_graph_free(g);
}

static void test_activation_gradients(void)
{
    static const char *fns[] = {"identity", "tanh", "relu", "sigmoid",
                                "softmax", "log_softmax", "softplus", "elu",
                                "leaky_relu", "gelu", "silu", "gelu_exact"};
    for (size_t k = 0; k < sizeof fns / sizeof *fns; k++) {
        char fn[64];
        snprintf(fn, sizeof fn, "function=%s", fns[k]);
        nn_graph *g = graph(31);
        tu_node(g, "Input", "x", "shape=3", NULL);
        tu_node(g, "Dense", "d", "num_unit=4", "b_initializer=Normal(0, 0.5)",
             NULL);
        tu_node(g, "Activation", "a", fn, NULL);
        tu_node(g, "Dense", "o", "num_unit=3", NULL);
        tu_link(g, "x >> d >> a >> o");
        tu_build(g);
        tu_check_gradients(g, "x", 3, NULL, fns[k]);
        nn_graph_free(g);
    }
}

static void test_concat_and_dropout_gradients(void)
{
    nn_graph *g = graph(41);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "Dense", "p", "num_unit=2", NULL);
    tu_node(g, "Dense", "q", "num_unit=3", NULL);
    tu_node(g, "Concat", "c", NULL);
    tu_node(g, "Dropout", "drop", "prob=0.6", NULL);
    tu_node(g, "Dense", "o", "num_unit=2", NULL);
    tu_link(g, "x >> {p, q}");
    tu_link(g, "{q, p} >> c >> drop >> o");
    tu_build(g);
    tu_check_gradients(g, "x", 3, NULL, "Concat + Dropout (training)");
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
