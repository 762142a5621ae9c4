/*
 * test_cells.c — the gated cells LSTM and GRU and the utility nodes
 * LayerNorm, Select, Reshape and Summation: values against the equations
 * evaluated here in double from the weights the nodes report, hand-checked
 * values, every backward against central finite differences through the
 * tape (through the recurrent state over several steps), steps that
 * allocate nothing, and bad parameters and shapes.
 */
#include "nn_train.h"
#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static nn_registry *reg;

static nn_graph *graph(uint64_t seed)
{
    nn_graph *g = nn_graph_new(reg, seed);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    return g;
}

/* Builds g expecting failure with code, and every fragment (NULL-ended) in
 * the message. */
static void build_fails(nn_graph *g, int code, ...)
{
    nn_error err;
    int rc = nn_graph_build(g, &err);
    CU_ASSERT_EQUAL(rc, code);
    va_list ap;
    va_start(ap, code);
    for (const char *want; (want = va_arg(ap, const char *)) != NULL;) {
        if (!strstr(err.msg, want))
            fprintf(stderr, "expected \"%s\" in: %s\n", want, err.msg);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, want));
    }
    va_end(ap);
}

static double sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* ------------------------------------------------------- LSTM and GRU */

enum { CB = 2, CIN = 3, CU = 4, CT = 5 };

/* The input side and recurrent side of gate column col, in double. */
static double side(const float *W, const float *b, const double *v, int rows,
                   int width, int col)
{
    double s = b ? b[col] : 0;
    for (int k = 0; k < rows; k++)
        s += v[k] * W[k * width + col];
    return s;
}

/* One step of the reference cell for one batch row: h (and c for LSTM)
 * updated in place from x. */
static void reference_step(int lstm, nn_node *n, const double *x, double *h,
                           double *c)
{
    const float *Wi = nn_node_weight(n, "Wi")->data;
    const float *Wh = nn_node_weight(n, "Wh")->data;
    nn_tensor *bi_t = nn_node_weight(n, "bi"), *bh_t = nn_node_weight(n, "bh");
    const float *bi = bi_t ? bi_t->data : NULL, *bh = bh_t ? bh_t->data : NULL;
    int width = (lstm ? 4 : 3) * CU;
    double next_h[CU], next_c[CU];
    for (int j = 0; j < CU; j++) {
        if (lstm) {
            double p[4];
            for (int q = 0; q < 4; q++)
                p[q] = side(Wi, bi, x, CIN, width, q * CU + j) +
                       side(Wh, bh, h, CU, width, q * CU + j);
            next_c[j] = sigmoid(p[1]) * c[j] + sigmoid(p[0]) * tanh(p[2]);
            next_h[j] = sigmoid(p[3]) * tanh(next_c[j]);
        } else {
            double r = sigmoid(side(Wi, bi, x, CIN, width, j) +
                               side(Wh, bh, h, CU, width, j));
            double z = sigmoid(side(Wi, bi, x, CIN, width, CU + j) +
                               side(Wh, bh, h, CU, width, CU + j));
            double nn = tanh(side(Wi, bi, x, CIN, width, 2 * CU + j) +
                             r * side(Wh, bh, h, CU, width, 2 * CU + j));
            next_h[j] = (1 - z) * nn + z * h[j];
        }
    }
    memcpy(h, next_h, sizeof next_h);
    if (lstm)
        memcpy(c, next_c, sizeof next_c);
}

static void check_cell_values(const char *type, const char *use_bias)
{
    int lstm = strcmp(type, "LSTM") == 0;
    nn_graph *g = graph(17);
    tu_node(g, "Input", "x", "shape=3", NULL);
    nn_node *n = tu_node(g, type, "cell", "num_unit=4", use_bias,
                      "b_initializer=Normal(0, 0.5)", NULL);
    tu_link(g, "x >> cell");
    tu_build(g);
    int gates = lstm ? 4 : 3;
    CU_ASSERT_EQUAL(nn_node_weight(n, "Wi")->shape.dims[0], CIN);
    CU_ASSERT_EQUAL(nn_node_weight(n, "Wi")->shape.dims[1], gates * CU);
    CU_ASSERT_EQUAL(nn_node_weight(n, "Wh")->shape.dims[0], CU);
    CU_ASSERT_EQUAL(nn_node_weight(n, "Wh")->shape.dims[1], gates * CU);
    int with_bias = strcmp(use_bias, "use_bias=true") == 0;
    CU_ASSERT_EQUAL(nn_node_param_count(n),
                    (size_t)gates * CU * (CIN + CU + (with_bias ? 2 : 0)));
    CU_ASSERT_EQUAL(nn_node_state_count(n), lstm ? 2 : 1);
    nn_error err;
    nn_session *s = nn_session_new(g, CB, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    double h[CB][CU], c[CB][CU];
    for (int round = 0; round < 2; round++) {
        memset(h, 0, sizeof h);
        memset(c, 0, sizeof c);
        for (int t = 0; t < CT; t++) {
            nn_tensor *in = nn_session_input(s, "x");
            tu_fill(in, 1.2f, 0.4f * (float)t);
            CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
            const float *out = nn_session_output(s, "cell")->data;
            const float *state_h = nn_session_state(s, "cell", 0)->data;
            for (int b = 0; b < CB; b++) {
                double x[CIN];
                for (int k = 0; k < CIN; k++)
                    x[k] = in->data[b * CIN + k];
                reference_step(lstm, n, x, h[b], c[b]);
                for (int j = 0; j < CU; j++) {
                    if (fabs(out[b * CU + j] - h[b][j]) > 1e-5)
                        fprintf(stderr, "%s t=%d h[%d][%d] = %g, expected %g\n",
                                type, t, b, j, out[b * CU + j], h[b][j]);
                    CU_ASSERT_DOUBLE_EQUAL(out[b * CU + j], h[b][j], 1e-5);
                    CU_ASSERT_EQUAL(state_h[b * CU + j], out[b * CU + j]);
                    if (lstm)
                        CU_ASSERT_DOUBLE_EQUAL(
                            nn_session_state(s, "cell", 1)->data[b * CU + j],
                            c[b][j], 1e-5);
                }
            }
        }
        /* Reset zeroes h (and c): the same inputs give the same outputs. */
        CU_ASSERT_EQUAL(nn_session_reset(s, &err), NN_OK);
        CU_ASSERT_EQUAL(nn_session_state(s, "cell", 0)->data[0], 0.0f);
        if (lstm)
            CU_ASSERT_EQUAL(nn_session_state(s, "cell", 1)->data[0], 0.0f);
    }
    nn_session_free(s);
    nn_graph_free(g);
}

static void test_cell_values(void)
{
    check_cell_values("LSTM", "use_bias=true");
    check_cell_values("LSTM", "use_bias=false");
    check_cell_values("GRU", "use_bias=true");
    check_cell_values("GRU", "use_bias=false");
}

/* A hand-checkable LSTM: one unit, zero weights, biases chosen per gate. */
static void test_lstm_by_hand(void)
{
    nn_graph *g = graph(1);
    tu_node(g, "Input", "x", "shape=1", NULL);
    nn_node *n = tu_node(g, "LSTM", "l", "num_unit=1", "Wi_initializer=Zeros",
                      "Wh_initializer=Zeros", NULL);
    tu_link(g, "x >> l");
    tu_build(g);
    /* i = sigmoid(0) = 1/2, f = 1/2, g = tanh(atanh(0.8)) = 0.8, o = 1/2:
     * c1 = 0.4, c2 = 0.2 + 0.4 = 0.6, h = tanh(c) / 2. */
    float *bi = nn_node_weight(n, "bi")->data;
    bi[2] = (float)atanh(0.8);
    nn_error err;
    nn_session *s = nn_session_new(g, 1, 0, &err);
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
    CU_ASSERT_DOUBLE_EQUAL(nn_session_output(s, "l")->data[0], tanh(0.4) / 2,
                           1e-6);
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
    CU_ASSERT_DOUBLE_EQUAL(nn_session_state(s, "l", 1)->data[0], 0.6, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(nn_session_output(s, "l")->data[0], tanh(0.6) / 2,
                           1e-6);
    nn_session_free(s);
    nn_graph_free(g);

    /* forget_bias lands in the f block of bi only, on top of b_initializer. */
    g = graph(1);
    tu_node(g, "Input", "x", "shape=2", NULL);
    n = tu_node(g, "LSTM", "l", "num_unit=3", "forget_bias=1",
             "b_initializer=Constant(0.25)", NULL);
    tu_link(g, "x >> l");
    tu_build(g);
    bi = nn_node_weight(n, "bi")->data;
    const float *bh = nn_node_weight(n, "bh")->data;
    for (int k = 0; k < 12; k++) {
        CU_ASSERT_EQUAL(bi[k], k >= 3 && k < 6 ? 1.25f : 0.25f);
        CU_ASSERT_EQUAL(bh[k], 0.25f);
    }
    nn_graph_free(g);
}

/* A hand-checkable GRU: one unit, zero weights. r = z = 1/2 and
 * n = tanh(b_in + r * b_hn), so h1 = n / 2 and h2 = n / 2 + h1 / 2. */
static void test_gru_by_hand(void)
{
    nn_graph *g = graph(1);
    tu_node(g, "Input", "x", "shape=1", NULL);
    nn_node *n = tu_node(g, "GRU", "r", "num_unit=1", "Wi_initializer=Zeros",
                      "Wh_initializer=Zeros", NULL);
    tu_link(g, "x >> r");
    tu_build(g);
    nn_node_weight(n, "bi")->data[2] = 0.3f;
    nn_node_weight(n, "bh")->data[2] = 0.4f; /* scaled by r = 1/2 */
    nn_error err;
    nn_session *s = nn_session_new(g, 1, 0, &err);
    double nv = tanh(0.3 + 0.5 * 0.4);
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
    CU_ASSERT_DOUBLE_EQUAL(nn_session_output(s, "r")->data[0], nv / 2, 1e-6);
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
    CU_ASSERT_DOUBLE_EQUAL(nn_session_output(s, "r")->data[0], nv * 0.75,
                           1e-6);
    nn_session_free(s);
    nn_graph_free(g);
}

static void test_cells_concatenate_and_take_feedback(void)
{
    static const char *types[] = {"LSTM", "GRU"};
    for (int k = 0; k < 2; k++) {
        /* Two ff inputs, concatenated: Wi has their summed width. */
        nn_graph *g = graph(5);
        tu_node(g, "Input", "a", "shape=2", NULL);
        tu_node(g, "Input", "b", "shape=3", NULL);
        nn_node *n = tu_node(g, types[k], "cell", "num_unit=4", NULL);
        tu_node(g, "Dense", "o", "num_unit=2", NULL);
        tu_link(g, "{a, b} >> cell >> o");
        tu_link(g, "cell << o");
        tu_build(g);
        int gates = k == 0 ? 4 : 3;
        CU_ASSERT_EQUAL(nn_node_weight(n, "Wi")->shape.dims[0], 5);
        nn_tensor *Wfb = nn_node_weight(n, "Wfb");
        CU_ASSERT_PTR_NOT_NULL_FATAL(Wfb);
        CU_ASSERT_EQUAL(Wfb->shape.dims[0], 2);
        CU_ASSERT_EQUAL(Wfb->shape.dims[1], gates * 4);

        /* The feedback enters the gates: removing Wfb changes the second
         * step's output but not the first's (feedback starts at zeros). */
        nn_error err;
        nn_session *s = nn_session_new(g, 1, 0, &err);
        float first[4], second[4];
        tu_fill(nn_session_input(s, "a"), 1, 0);
        tu_fill(nn_session_input(s, "b"), 1, 1);
        for (int t = 0; t < 2; t++) {
            CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
            memcpy(t ? second : first, nn_session_output(s, "cell")->data,
                   sizeof first);
        }
        nn_tensor_zero(Wfb);
        CU_ASSERT_EQUAL(nn_session_reset(s, &err), NN_OK);
        tu_fill(nn_session_input(s, "a"), 1, 0);
        tu_fill(nn_session_input(s, "b"), 1, 1);
        CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
        CU_ASSERT_EQUAL(memcmp(first, nn_session_output(s, "cell")->data,
                               sizeof first), 0);
        CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
        CU_ASSERT_NOT_EQUAL(memcmp(second, nn_session_output(s, "cell")->data,
                                   sizeof second), 0);
        nn_session_free(s);
        nn_graph_free(g);
    }
}

static void test_cell_errors(void)
{
    static const char *types[] = {"LSTM", "GRU"};
    for (int k = 0; k < 2; k++) {
        nn_error err;
        nn_graph *g = graph(1);
        nn_node *n = nn_graph_add_node(g, types[k], "cell", &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(n);
        CU_ASSERT_EQUAL(nn_node_set_param(n, "num_unit", "0", &err),
                        NN_ERR_INVALID);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'num_unit'"));
        CU_ASSERT_EQUAL(nn_node_set_param(n, "Wh_initializer", "Gauss", &err),
                        NN_ERR_INVALID);
        CU_ASSERT_EQUAL(nn_node_set_param(n, "forget_bias", "1", &err),
                        k == 0 ? NN_OK : NN_ERR_INVALID);
        /* num_unit is required. */
        tu_node(g, "Input", "x", "shape=2", NULL);
        tu_link(g, "x >> cell");
        build_fails(g, NN_ERR_INVALID, "'num_unit' is required", NULL);
        nn_graph_free(g);

        /* Per-sample inputs must be flat, as for every recurrent type. */
        g = graph(1);
        tu_node(g, "Input", "x", "shape=[2, 3]", NULL);
        tu_node(g, types[k], "cell", "num_unit=3", NULL);
        tu_link(g, "x >> cell");
        char named[64];
        snprintf(named, sizeof named, "'cell' (%s)", types[k]);
        build_fails(g, NN_ERR_SHAPE, named, "(batch, features)", NULL);
        nn_graph_free(g);
    }
    nn_error err;
    nn_graph *g = graph(1);
    nn_node *n = nn_graph_add_node(g, "LSTM", "cell", &err);
    CU_ASSERT_EQUAL(nn_node_set_param(n, "forget_bias", "1e9", &err),
                    NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'forget_bias'"));
    nn_graph_free(g);
    /* A forget bias without biases would be silently lost. */
    g = graph(1);
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_node(g, "LSTM", "cell", "num_unit=2", "use_bias=false", "forget_bias=1",
         NULL);
    tu_link(g, "x >> cell");
    build_fails(g, NN_ERR_INVALID, "'cell' (LSTM)", "'forget_bias'",
                "use_bias=false", NULL);
    nn_graph_free(g);
}

/* --------------------------------------------------------------- LayerNorm */

static void test_layernorm_values(void)
{
    nn_graph *g = graph(1);
    tu_node(g, "Input", "x", "shape=[2, 4]", NULL);
    nn_node *n = tu_node(g, "LayerNorm", "ln", "gain_initializer=Constant(2)",
                      "b_initializer=Constant(0.5)", "epsilon=0.01", NULL);
    tu_node(g, "LayerNorm", "plain", "affine=false", NULL);
    tu_link(g, "x >> {ln, plain}");
    tu_build(g);
    CU_ASSERT_EQUAL(nn_node_param_count(n), 8);
    CU_ASSERT_EQUAL(nn_node_param_count(nn_graph_find(g, "plain")), 0);
    nn_shape out = nn_node_output_shape(n);
    CU_ASSERT_EQUAL(out.ndim, 2);
    CU_ASSERT_EQUAL(out.dims[1], 4);
    nn_error err;
    nn_session *s = nn_session_new(g, 1, 0, &err);
    /* Row 1: mean 2.5, variance 1.25. Row 2: constant, so all zeros. */
    float x[8] = {1, 2, 3, 4, 7, 7, 7, 7};
    memcpy(nn_session_input(s, "x")->data, x, sizeof x);
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
    const float *y = nn_session_output(s, "ln")->data;
    const float *p = nn_session_output(s, "plain")->data;
    for (int j = 0; j < 4; j++) {
        double xhat = (x[j] - 2.5) / sqrt(1.25 + 0.01);
        CU_ASSERT_DOUBLE_EQUAL(y[j], 2 * xhat + 0.5, 1e-5);
        CU_ASSERT_DOUBLE_EQUAL(p[j], (x[j] - 2.5) / sqrt(1.25 + 1e-5), 1e-5);
        CU_ASSERT_DOUBLE_EQUAL(y[4 + j], 0.5, 1e-6);
        CU_ASSERT_DOUBLE_EQUAL(p[4 + j], 0.0, 1e-6);
    }
    nn_session_free(s);
    nn_graph_free(g);

    g = graph(1);
    n = nn_graph_add_node(g, "LayerNorm", "ln", &err);
    CU_ASSERT_EQUAL(nn_node_set_param(n, "epsilon", "0", &err),
                    NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'epsilon'"));
    tu_node(g, "Input", "a", "shape=2", NULL);
    tu_node(g, "Input", "b", "shape=2", NULL);
    tu_link(g, "{a, b} >> ln");
    build_fails(g, NN_ERR_SHAPE, "'ln' (LayerNorm)", "exactly one", NULL);
    nn_graph_free(g);
}

/* ------------------------------------------------------------------ Select */

/* Runs Select(index) over one sample of shape `shape` filled with 10, 20,
 * ...; checks the output shape's last size and values. */
static void check_select(const char *shape, const char *index, int n_expect,
                         const float *expect)
{
    char shape_kv[64], index_kv[64];
    snprintf(shape_kv, sizeof shape_kv, "shape=%s", shape);
    snprintf(index_kv, sizeof index_kv, "index=%s", index);
    nn_graph *g = graph(1);
    tu_node(g, "Input", "x", shape_kv, NULL);
    nn_node *n = tu_node(g, "Select", "sel", index_kv, NULL);
    tu_link(g, "x >> sel");
    tu_build(g);
    nn_shape out = nn_node_output_shape(n);
    CU_ASSERT_EQUAL(out.dims[out.ndim - 1], n_expect);
    nn_error err;
    nn_session *s = nn_session_new(g, 1, 0, &err);
    nn_tensor *x = nn_session_input(s, "x");
    for (size_t k = 0; k < nn_tensor_numel(x); k++)
        x->data[k] = 10.0f * (float)(k + 1);
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
    const nn_tensor *y = nn_session_output(s, "sel");
    size_t n_out = nn_tensor_numel(y);
    int ok = 1;
    for (size_t k = 0; k < n_out; k++)
        ok &= y->data[k] == expect[k];
    if (!ok)
        fprintf(stderr, "Select(%s) of %s: wrong values\n", index, shape);
    CU_ASSERT(ok);
    nn_session_free(s);
    nn_graph_free(g);
}

static void test_select(void)
{
    check_select("5", "2", 1, (const float[]){30});
    check_select("5", "-1", 1, (const float[]){50});
    check_select("5", "1:4", 3, (const float[]){20, 30, 40});
    check_select("5", "::2", 3, (const float[]){10, 30, 50});
    check_select("5", "::-2", 3, (const float[]){50, 30, 10});
    check_select("5", "3:1:-1", 2, (const float[]){40, 30});
    check_select("5", "-2:", 2, (const float[]){40, 50});
    check_select("5", ":100", 5, (const float[]){10, 20, 30, 40, 50});
    check_select("5", " 1 : -1 ", 3, (const float[]){20, 30, 40});
    /* On the last axis of each row of a (2, 3) sample. */
    check_select("[2, 3]", "1:", 2, (const float[]){20, 30, 50, 60});
    check_select("[2, 3]", "0", 1, (const float[]){10, 40});

    static const struct {
        const char *index;
        int code;
        const char *says;
    } bad[] = {
        {"abc", NN_ERR_INVALID, "neither an integer nor a slice"},
        {"", NN_ERR_INVALID, "neither an integer nor a slice"},
        {"1:2:3:4", NN_ERR_INVALID, "neither an integer nor a slice"},
        {"1.5", NN_ERR_INVALID, "neither an integer nor a slice"},
        {"::0", NN_ERR_INVALID, "cannot be zero"},
        {"5", NN_ERR_SHAPE, "out of range for a last axis of size 5"},
        {"-6", NN_ERR_SHAPE, "out of range"},
        {"3:1", NN_ERR_SHAPE, "selects nothing"},
        {"99999999999999999999", NN_ERR_INVALID, "neither"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        nn_error err;
        nn_graph *g = graph(1);
        tu_node(g, "Input", "x", "shape=5", NULL);
        nn_node *n = nn_graph_add_node(g, "Select", "sel", &err);
        CU_ASSERT_EQUAL(nn_node_set_param(n, "index", bad[k].index, &err),
                        NN_OK);
        tu_link(g, "x >> sel");
        build_fails(g, bad[k].code, "'sel' (Select)", bad[k].says, NULL);
        nn_graph_free(g);
    }
    nn_graph *g = graph(1);
    tu_node(g, "Input", "a", "shape=2", NULL);
    tu_node(g, "Input", "b", "shape=2", NULL);
    tu_node(g, "Select", "sel", "index=0", NULL);
    tu_link(g, "{a, b} >> sel");
    build_fails(g, NN_ERR_SHAPE, "exactly one", NULL);
    nn_graph_free(g);
    g = graph(1);
    tu_node(g, "Input", "a", "shape=2", NULL);
    tu_node(g, "Select", "sel", NULL);
    tu_link(g, "a >> sel");
    build_fails(g, NN_ERR_INVALID, "'index' is required", NULL);
    nn_graph_free(g);
}

/* ----------------------------------------------------------------- Reshape */

static void test_reshape(void)
{
    static const struct {
        const char *in, *shape;
        int ndim, dims[3];
    } ok[] = {
        {"6", "[2, 3]", 2, {2, 3, 0}},     {"6", "2,-1", 2, {2, 3, 0}},
        {"[2, 3]", "-1", 1, {6, 0, 0}},    {"[2, 3]", "(3, 1, 2)", 3, {3, 1, 2}},
        {"[4, 3]", "[-1, 2, 3]", 3, {2, 2, 3}},
    };
    for (size_t k = 0; k < sizeof ok / sizeof *ok; k++) {
        char in_kv[64], shape_kv[64];
        snprintf(in_kv, sizeof in_kv, "shape=%s", ok[k].in);
        snprintf(shape_kv, sizeof shape_kv, "shape=%s", ok[k].shape);
        nn_graph *g = graph(1);
        tu_node(g, "Input", "x", in_kv, NULL);
        nn_node *n = tu_node(g, "Reshape", "rs", shape_kv, NULL);
        tu_link(g, "x >> rs");
        tu_build(g);
        nn_shape out = nn_node_output_shape(n);
        nn_shape want = nn_shape_make(ok[k].ndim, ok[k].dims);
        CU_ASSERT(nn_shape_equal(&out, &want));
        nn_error err;
        nn_session *s = nn_session_new(g, 2, 0, &err);
        nn_tensor *x = nn_session_input(s, "x");
        tu_fill(x, 1, 0);
        CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
        const nn_tensor *y = nn_session_output(s, "rs");
        CU_ASSERT_EQUAL(y->shape.dims[0], 2);
        CU_ASSERT_EQUAL(y->shape.ndim, ok[k].ndim + 1);
        CU_ASSERT_EQUAL(memcmp(y->data, x->data, nn_tensor_numel(x) *
                               sizeof(float)), 0);
        nn_session_free(s);
        nn_graph_free(g);
    }
    static const struct {
        const char *shape;
        int code;
        const char *says;
    } bad[] = {
        {"[4, -1]", NN_ERR_SHAPE, "6 is not a multiple of 4"},
        {"[2, 2]", NN_ERR_SHAPE, "cannot reshape (6,) (6 values) to (2, 2)"},
        {"[-1, -1]", NN_ERR_INVALID, "only one size can be -1"},
        {"[0, 6]", NN_ERR_INVALID, "integers >= 1, or -1 once"},
        {"[2, x]", NN_ERR_INVALID, "integers >= 1"},
        {"[2, 3", NN_ERR_INVALID, "closing ']'"},
        {"2 3", NN_ERR_INVALID, "not a list of sizes"},
        {"[1,1,1,1,1,1,1,6]", NN_ERR_INVALID, "more than 7 axes"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        char shape_kv[64];
        snprintf(shape_kv, sizeof shape_kv, "shape=%s", bad[k].shape);
        nn_graph *g = graph(1);
        tu_node(g, "Input", "x", "shape=6", NULL);
        tu_node(g, "Reshape", "rs", shape_kv, NULL);
        tu_link(g, "x >> rs");
        build_fails(g, bad[k].code, "'rs' (Reshape)", bad[k].says, NULL);
        nn_graph_free(g);
    }
}

/* --------------------------------------------------------------- Summation */

static void test_summation(void)
{
    nn_graph *g = graph(1);
    tu_node(g, "Input", "a", "shape=[2, 2]", NULL);
    tu_node(g, "Input", "b", "shape=[2, 2]", NULL);
    tu_node(g, "Input", "c", "shape=[2, 2]", NULL);
    nn_node *n = tu_node(g, "Summation", "sum", NULL);
    tu_link(g, "{a, b, c} >> sum");
    tu_build(g);
    nn_shape out = nn_node_output_shape(n);
    CU_ASSERT_EQUAL(out.ndim, 2); /* not concatenated */
    CU_ASSERT_EQUAL(out.dims[1], 2);
    nn_error err;
    nn_session *s = nn_session_new(g, 1, 0, &err);
    for (int k = 0; k < 4; k++) {
        nn_session_input(s, "a")->data[k] = (float)k;
        nn_session_input(s, "b")->data[k] = 10.0f * (float)k;
        nn_session_input(s, "c")->data[k] = 100.0f;
    }
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
    for (int k = 0; k < 4; k++)
        CU_ASSERT_EQUAL(nn_session_output(s, "sum")->data[k],
                        100.0f + 11.0f * (float)k);
    nn_session_free(s);
    nn_graph_free(g);

    g = graph(1);
    tu_node(g, "Input", "a", "shape=3", NULL);
    tu_node(g, "Input", "b", "shape=4", NULL);
    tu_node(g, "Summation", "sum", NULL);
    tu_link(g, "{a, b} >> sum");
    build_fails(g, NN_ERR_SHAPE, "'sum' (Summation)", "'a' is (3,)",
                "'b' is (4,)", "Concat", NULL);
    nn_graph_free(g);
    /* No feedback into a Summation. */
    g = graph(1);
    tu_node(g, "Input", "a", "shape=3", NULL);
    tu_node(g, "Summation", "sum", NULL);
    tu_node(g, "Dense", "o", "num_unit=3", NULL);
    tu_link(g, "a >> sum >> o");
    tu_link(g, "sum << o");
    build_fails(g, NN_ERR_GRAPH, "'sum' (Summation) does not support "
                "feedback", NULL);
    nn_graph_free(g);
}

/* ------------------------------------------------ allocation-free steps */

static void test_steps_allocate_nothing(void)
{
    nn_graph *g = graph(4);
    tu_node(g, "Input", "x", "shape=6", NULL);
    tu_node(g, "LSTM", "l", "num_unit=6", NULL);
    tu_node(g, "GRU", "r", "num_unit=6", NULL);
    tu_node(g, "Summation", "sum", NULL);
    tu_node(g, "LayerNorm", "ln", NULL);
    tu_node(g, "Reshape", "rs", "shape=[2, 3]", NULL);
    tu_node(g, "Select", "sel", "index=::-1", NULL);
    tu_node(g, "Dense", "o", "num_unit=2", NULL);
    tu_link(g, "x >> {l, r}");
    tu_link(g, "{l, r, x} >> sum >> ln >> rs >> sel >> o");
    tu_link(g, "l << sum");
    tu_build(g);
    nn_error err;
    nn_session *s = nn_session_new(g, 3, 0, &err);
    tu_fill(nn_session_input(s, "x"), 1, 0.5f);
    nn_tape *tape = nn_tape_new(s, 4, &err);
    nn_grads *grads = nn_grads_new(g, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tape);
    CU_ASSERT_PTR_NOT_NULL_FATAL(grads);
    int dims[3] = {3, 4, 6};
    nn_shape xs = nn_shape_make(3, dims);
    nn_tensor *x = nn_tensor_new(&xs);
    tu_fill(x, 1, 0);
    nn_binding bind = {"x", x};
    nn_tensor *out[1];
    CU_ASSERT_EQUAL_FATAL(nn_tape_run(tape, &bind, 1, 4, 1, out, &err), NN_OK);
    nn_tensor *d_out[1] = {out[0]};
    uint64_t before = nn_alloc_count();
    for (int t = 0; t < 20; t++)
        CU_ASSERT_EQUAL(nn_session_step(s, t % 2, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_tape_backward(tape, d_out, grads, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_alloc_count(), before);
    CU_ASSERT(nn_grads_norm(grads) > 0);
    nn_tensor_free(out[0]);
    nn_tensor_free(x);
    nn_grads_free(grads);
    nn_tape_free(tape);
    nn_session_free(s);
    nn_graph_free(g);
}

/* Every allocation of describing, building, compiling and taping a graph
 * of the new types may fail: each failure is NN_ERR_NOMEM, never a crash,
 * and the sanitizer build checks nothing leaks. */
static void test_out_of_memory_paths(void)
{
    int failures_seen = 0, succeeded = 0;
    for (uint64_t k = 1; k < 1000 && !succeeded; k++) {
        nn_error err;
        memset(&err, 0, sizeof err);
        nn_alloc_fail_after(k);
        int ok = 0;
        nn_graph *g = nn_graph_new(reg, 1);
        nn_session *s = NULL;
        nn_tape *tape = NULL;
        nn_grads *grads = NULL;
        static const char *const nodes[][3] = {
            {"Input", "x", "shape=4"},       {"LSTM", "l", "num_unit=4"},
            {"GRU", "r", "num_unit=4"},      {"Summation", "sum", NULL},
            {"LayerNorm", "ln", NULL},       {"Reshape", "rs", "shape=2,2"},
            {"Select", "sel", "index=::-1"},
        };
        int described = g != NULL;
        for (size_t i = 0; described && i < sizeof nodes / sizeof *nodes;
             i++) {
            nn_node *n = nn_graph_add_node(g, nodes[i][0], nodes[i][1], &err);
            const char *kv = nodes[i][2];
            if (!n) {
                described = 0;
            } else if (kv) {
                char key[32];
                const char *eq = strchr(kv, '=');
                snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
                described = nn_node_set_param(n, key, eq + 1, &err) == NN_OK;
            }
        }
        if (described &&
            nn_graph_link(g, "x >> {l, r} >> sum >> ln >> rs >> sel",
                          &err) == NN_OK &&
            nn_graph_link(g, "l << ln", &err) == NN_OK &&
            nn_graph_build(g, &err) == NN_OK &&
            (s = nn_session_new(g, 2, 0, &err)) != NULL &&
            (tape = nn_tape_new(s, 2, &err)) != NULL &&
            (grads = nn_grads_new(g, &err)) != NULL &&
            nn_session_step(s, 0, &err) == NN_OK)
            ok = 1;
        nn_alloc_fail_after(0);
        if (!ok) {
            failures_seen++;
            if (g) { /* without a graph no error record was filled */
                CU_ASSERT_EQUAL(err.code, NN_ERR_NOMEM);
            }
        }
        nn_grads_free(grads);
        nn_tape_free(tape);
        nn_session_free(s);
        nn_graph_free(g);
        succeeded = ok; /* then k is past the last allocation */
    }
    CU_ASSERT(succeeded);
    CU_ASSERT(failures_seen > 20);
}

/* --------------------------------------- backward vs finite differences */


/* x >> Dense >> cell >> Dense, with the readout fed back into the cell: the
 * first Dense's gradient checks the cell's input gradient. */
static void check_cell_gradients(const char *type, const char *use_bias,
                                 int feedback, int last_only)
{
    char what[96];
    snprintf(what, sizeof what, "%s %s%s%s", type, use_bias,
             feedback ? " feedback" : "", last_only ? " last step" : "");
    nn_graph *g = graph(23);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "Dense", "d", "num_unit=4", "b_initializer=Normal(0, 0.3)", NULL);
    tu_node(g, type, "cell", "num_unit=3", use_bias,
         "b_initializer=Normal(0, 0.5)", NULL);
    tu_node(g, "Dense", "o", "num_unit=2", NULL);
    tu_link(g, "x >> d >> cell >> o");
    if (feedback)
        tu_link(g, "cell << o");
    tu_build(g);
    tu_check_gradients(g, "x", 3, &(tu_fd_opts){4, 12, last_only}, what);
    nn_graph_free(g);
}

static void test_cell_gradients(void)
{
    static const char *types[] = {"LSTM", "GRU"};
    for (int k = 0; k < 2; k++) {
        check_cell_gradients(types[k], "use_bias=true", 1, 0);
        check_cell_gradients(types[k], "use_bias=true", 0, 1);
        check_cell_gradients(types[k], "use_bias=false", 1, 1);
    }
}

static void test_layernorm_gradients(void)
{
    static const char *affine[] = {"affine=true", "affine=false"};
    for (int k = 0; k < 2; k++) {
        nn_graph *g = graph(29);
        tu_node(g, "Input", "x", "shape=3", NULL);
        tu_node(g, "Dense", "d", "num_unit=5", "b_initializer=Normal(0, 0.5)",
             NULL);
        tu_node(g, "LayerNorm", "ln", affine[k],
             "gain_initializer=Normal(1, 0.3)",
             "b_initializer=Normal(0, 0.3)", NULL);
        tu_node(g, "Dense", "o", "num_unit=2", NULL);
        tu_link(g, "x >> d >> ln >> o");
        tu_build(g);
        tu_check_gradients(g, "x", 3, &(tu_fd_opts){4, 12, 0}, affine[k]);
        nn_graph_free(g);
    }
}

static void test_utility_gradients(void)
{
    static const char *indexes[] = {"index=::-1", "index=-1", "index=1:"};
    for (int k = 0; k < 3; k++) {
        /* Two branches summed, reshaped to (2, 2), part of each row taken. */
        nn_graph *g = graph(37);
        tu_node(g, "Input", "x", "shape=3", NULL);
        tu_node(g, "Dense", "p", "num_unit=4", NULL);
        tu_node(g, "Dense", "q", "num_unit=4", NULL);
        tu_node(g, "Dense", "r", "num_unit=4", NULL);
        tu_node(g, "Summation", "sum", NULL);
        tu_node(g, "Reshape", "rs", "shape=[2, -1]", NULL);
        tu_node(g, "Select", "sel", indexes[k], NULL);
        tu_node(g, "Dense", "o", "num_unit=3", NULL);
        tu_link(g, "x >> {p, q, r}");
        tu_link(g, "{p, q, r} >> sum >> rs >> sel >> o");
        tu_build(g);
        tu_check_gradients(g, "x", 3, &(tu_fd_opts){4, 12, 0}, indexes[k]);
        nn_graph_free(g);
    }
}

int main(void)
{
    nn_error err;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &err) != NN_OK)
        return 2;
    static const tu_test tests[] = {
        {"LSTM and GRU values, state and reset", test_cell_values},
        {"LSTM by hand, forget_bias", test_lstm_by_hand},
        {"GRU by hand", test_gru_by_hand},
        {"cells concatenate inputs and take feedback",
         test_cells_concatenate_and_take_feedback},
        {"cell errors", test_cell_errors},
        {"LayerNorm values and errors", test_layernorm_values},
        {"Select", test_select},
        {"Reshape", test_reshape},
        {"Summation", test_summation},
        {"steps and backward allocate nothing", test_steps_allocate_nothing},
        {"out-of-memory paths fail cleanly", test_out_of_memory_paths},
        {"LSTM and GRU gradients", test_cell_gradients},
        {"LayerNorm gradients", test_layernorm_gradients},
        {"Summation, Reshape and Select gradients", test_utility_gradients},
        {NULL, NULL}};
    int rc = tu_run_suite("cells", tests);
    nn_registry_free(reg);
    return rc;
}
