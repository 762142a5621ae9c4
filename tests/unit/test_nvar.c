/*
 * test_nvar.c — the NVAR node: features computed independently here (the
 * delayed inputs with stride, every monomial by nested loops, the
 * constant), the ring of past inputs across steps, reset and batch rows,
 * feature names, gradients, and bad parameters.
 */
#include "nn_train.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nn_registry *reg;

static nn_graph *nvar_graph(int inputs, const char *delay, const char *order,
                            const char *stride, const char *constant)
{
    nn_graph *g = nn_graph_new(reg, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    char shape[32];
    snprintf(shape, sizeof shape, "shape=%d", inputs);
    tu_node(g, "Input", "x", shape, NULL);
    tu_node(g, "NVAR", "f", delay, order, stride, constant, NULL);
    tu_link(g, "x >> f");
    tu_build(g);
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

/* x_j(t) of the test sequences: distinct, never zero. */
static float input_value(int row, int t, int j)
{
    return 0.1f * (float)(t + 1) + 0.03f * (float)j - 0.7f * (float)row +
           0.01f * (float)(t * t);
}

static void test_degree_two_with_stride_and_constant(void)
{
    /* d = 2, k = 3, s = 2: linear [x(t), x(t−2), x(t−4)], 6 values, then
     * the 21 products x_a x_b, a <= b, then nothing else; 1 first. */
    enum { D = 2, K = 3, S = 2, LIN = D * K, T = 8, B = 2 };
    nn_graph *g = nvar_graph(D, "delay=3", "order=2", "stride=2",
                             "constant=true");
    nn_shape out = nn_node_output_shape(nn_graph_find(g, "f"));
    CU_ASSERT_EQUAL_FATAL(out.dims[0], 1 + LIN + LIN * (LIN + 1) / 2);
    nn_error err;
    nn_session *s = nn_session_new(g, B, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (int t = 0; t < T; t++) {
        float *x = nn_session_input(s, "x")->data;
        for (int r = 0; r < B; r++)
            for (int j = 0; j < D; j++)
                x[r * D + j] = input_value(r, t, j);
        step(s);
        const float *y = nn_session_output(s, "f")->data;
        for (int r = 0; r < B; r++) {
            const float *row = y + (size_t)r * out.dims[0];
            float lin[LIN];
            for (int k = 0; k < K; k++)
                for (int j = 0; j < D; j++) {
                    int when = t - k * S; /* zeros before the start */
                    lin[k * D + j] = when >= 0 ? input_value(r, when, j) : 0;
                }
            CU_ASSERT_EQUAL(row[0], 1.0f);
            for (int i = 0; i < LIN; i++)
                CU_ASSERT_EQUAL(row[1 + i], lin[i]);
            int o = 1 + LIN;
            for (int a = 0; a < LIN; a++)
                for (int b = a; b < LIN; b++, o++)
                    TU_ASSERT_CLOSE(row[o], lin[a] * lin[b], 1e-6);
        }
    }
    /* Reset forgets the past: the first step again has zero history. */
    CU_ASSERT_EQUAL(nn_session_reset(s, &err), NN_OK);
    float *x = nn_session_input(s, "x")->data;
    for (int i = 0; i < B * D; i++)
        x[i] = 2;
    step(s);
    const float *y = nn_session_output(s, "f")->data;
    CU_ASSERT_EQUAL(y[1], 2.0f);
    CU_ASSERT_EQUAL(y[1 + D], 0.0f);     /* x0(t−2) */
    CU_ASSERT_EQUAL(y[1 + 2 * D], 0.0f); /* x0(t−4) */
    nn_session_free(s);
    nn_graph_free(g);
}

static void test_degree_three_by_hand(void)
{
    /* d = 2, k = 1, no constant: x0, x1, then x0³, x0²x1, x0x1², x1³. */
    nn_graph *g = nvar_graph(2, "delay=1", "order=3", "stride=1",
                             "constant=false");
    CU_ASSERT_EQUAL(nn_node_output_shape(nn_graph_find(g, "f")).dims[0], 6);
    CU_ASSERT_EQUAL(nn_node_state_count(nn_graph_find(g, "f")), 0);
    nn_error err;
    nn_session *s = nn_session_new(g, 1, 0, &err);
    float *x = nn_session_input(s, "x")->data;
    x[0] = 2;
    x[1] = -3;
    step(s);
    const float want[6] = {2, -3, 8, -12, 18, -27};
    CU_ASSERT_EQUAL(memcmp(nn_session_output(s, "f")->data, want,
                           sizeof want), 0);
    nn_session_free(s);
    nn_graph_free(g);
}

static void test_two_inputs_concatenate(void)
{
    /* {a, b} >> NVAR: features are x0 = a, x1 = b0, x2 = b1. */
    nn_graph *g = nn_graph_new(reg, 1);
    tu_node(g, "Input", "a", "shape=1", NULL);
    tu_node(g, "Input", "b", "shape=2", NULL);
    tu_node(g, "NVAR", "f", "delay=2", "order=2", NULL);
    tu_link(g, "{a, b} >> f");
    tu_build(g);
    nn_error err;
    nn_session *s = nn_session_new(g, 1, 0, &err);
    for (int t = 0; t < 2; t++) {
        nn_session_input(s, "a")->data[0] = 1.0f + (float)t;
        nn_session_input(s, "b")->data[0] = 10.0f + (float)t;
        nn_session_input(s, "b")->data[1] = 100.0f + (float)t;
        step(s);
    }
    const float *y = nn_session_output(s, "f")->data;
    const float lin[6] = {2, 11, 101, 1, 10, 100};
    CU_ASSERT_EQUAL(memcmp(y, lin, sizeof lin), 0);
    CU_ASSERT_EQUAL(y[6], 4.0f);        /* x0(t)*x0(t) */
    CU_ASSERT_EQUAL(y[7], 22.0f);       /* x0(t)*x1(t) */
    CU_ASSERT_EQUAL(y[6 + 21 - 1], 1e4f); /* x2(t-1)*x2(t-1) */
    nn_session_free(s);
    nn_graph_free(g);
}

static void test_feature_names(void)
{
    nn_graph *g = nvar_graph(2, "delay=3", "order=2", "stride=2",
                             "constant=true");
    nn_node *f = nn_graph_find(g, "f");
    const nn_node_type *type = nn_node_type_of(f);
    CU_ASSERT_PTR_NOT_NULL_FATAL(type->feature_name);
    const char *lin[6] = {"x0(t)",   "x1(t)",   "x0(t-2)",
                          "x1(t-2)", "x0(t-4)", "x1(t-4)"};
    char name[128], want[128];
    nn_error err;
    int i = 0;
    CU_ASSERT_EQUAL(type->feature_name(f, i++, name, sizeof name, &err), NN_OK);
    CU_ASSERT_STRING_EQUAL(name, "1");
    for (int k = 0; k < 6; k++) {
        type->feature_name(f, i++, name, sizeof name, &err);
        CU_ASSERT_STRING_EQUAL(name, lin[k]);
    }
    for (int a = 0; a < 6; a++)
        for (int b = a; b < 6; b++) {
            snprintf(want, sizeof want, "%s*%s", lin[a], lin[b]);
            CU_ASSERT_EQUAL(type->feature_name(f, i++, name, sizeof name,
                                               &err), NN_OK);
            CU_ASSERT_STRING_EQUAL(name, want);
        }
    CU_ASSERT_EQUAL(i, nn_node_output_shape(f).dims[0]);
    CU_ASSERT_EQUAL(type->feature_name(f, i, name, sizeof name, &err),
                    NN_ERR_INVALID);
    /* A short buffer is cut, still terminated. */
    CU_ASSERT_EQUAL(type->feature_name(f, i - 1, name, 6, &err), NN_OK);
    CU_ASSERT_STRING_EQUAL(name, "x1(t-");
    nn_graph_free(g);

    /* Degree 3 over 3 values: names follow the enumeration order. */
    g = nvar_graph(3, "delay=1", "order=3", "stride=1", "constant=false");
    f = nn_graph_find(g, "f");
    i = 3;
    for (int a = 0; a < 3; a++)
        for (int b = a; b < 3; b++)
            for (int c = b; c < 3; c++) {
                snprintf(want, sizeof want, "x%d(t)*x%d(t)*x%d(t)", a, b, c);
                nn_node_type_of(f)->feature_name(f, i++, name, sizeof name,
                                                 &err);
                CU_ASSERT_STRING_EQUAL(name, want);
            }
    CU_ASSERT_EQUAL(i, 3 + 10);
    nn_graph_free(g);
}

static void test_gradients(void)
{
    /* Through time: a trainable Dense before the NVAR reaches the output
     * through the delayed copies too. */
    nn_graph *g = nn_graph_new(reg, 3);
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_node(g, "Dense", "d", "num_unit=2", "b_initializer=Normal(0, 0.3)",
            NULL);
    tu_node(g, "NVAR", "f", "delay=3", "order=2", "stride=1", "constant=true",
            NULL);
    tu_node(g, "Dense", "o", "num_unit=2", NULL);
    tu_link(g, "x >> d >> f >> o");
    tu_build(g);
    tu_check_gradients(g, "x", 2, NULL, "Dense >> NVAR(3, 2) >> Dense");
    nn_graph_free(g);
    g = nn_graph_new(reg, 4);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "Dense", "d", "num_unit=2", NULL);
    tu_node(g, "NVAR", "f", "delay=2", "order=3", "stride=2", NULL);
    tu_node(g, "Dense", "o", "num_unit=1", NULL);
    tu_link(g, "x >> d >> f >> o");
    tu_build(g);
    tu_check_gradients(g, "x", 3, NULL, "Dense >> NVAR(2, 3, stride 2) >> Dense");
    nn_graph_free(g);
}

static void test_steps_allocate_nothing(void)
{
    nn_graph *g = nn_graph_new(reg, 5);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "NVAR", "f", "delay=4", "order=2", "stride=3", NULL);
    tu_node(g, "Reservoir", "r", "num_unit=40", "noise_rc=0.1",
            "noise_in=0.1", "noise_fb=0.1", NULL);
    tu_node(g, "Reservoir", "rs", "num_unit=40", "sparse=true", NULL);
    tu_node(g, "Dense", "o", "num_unit=2", NULL);
    tu_link(g, "x >> {f, rs}");
    tu_link(g, "f >> r >> o");
    tu_link(g, "rs >> o");
    tu_link(g, "r << o");
    tu_build(g);
    nn_error err;
    nn_session *s = nn_session_new(g, 3, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    uint64_t before = nn_alloc_count();
    for (int t = 0; t < 30; t++) {
        tu_fill(nn_session_input(s, "x"), 1.0f, (float)t);
        CU_ASSERT_EQUAL(nn_session_step(s, t % 2, &err), NN_OK);
    }
    CU_ASSERT_EQUAL(nn_alloc_count(), before);
    nn_session_free(s);
    nn_graph_free(g);
}

static void expect_error(int inputs, const char *param, const char *value,
                         int code, const char *needle)
{
    nn_graph *g = nn_graph_new(reg, 1);
    char shape[32];
    snprintf(shape, sizeof shape, "shape=%d", inputs);
    tu_node(g, "Input", "x", shape, NULL);
    nn_node *f = tu_node(g, "NVAR", "f", NULL);
    nn_error err;
    int rc = nn_node_set_param(f, param, value, &err);
    if (rc == NN_OK) {
        tu_link(g, "x >> f");
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
    expect_error(2, "delay", "0", NN_ERR_INVALID, "'delay'");
    expect_error(2, "order", "0", NN_ERR_INVALID, "'order'");
    expect_error(2, "order", "9", NN_ERR_INVALID, "'order'");
    expect_error(2, "stride", "-1", NN_ERR_INVALID, "'stride'");
    expect_error(2, "constant", "maybe", NN_ERR_INVALID, "'constant'");
    expect_error(2, "strides", "2", NN_ERR_INVALID, "stride");
    /* 100 inputs, k = 10: 1000 linear values, 1000·1001·1002/6 cubes. */
    expect_error(100, "delay", "10", NN_OK, "");
    nn_graph *g = nn_graph_new(reg, 1);
    tu_node(g, "Input", "x", "shape=100", NULL);
    tu_node(g, "NVAR", "f", "delay=10", "order=3", NULL);
    tu_link(g, "x >> f");
    nn_error err;
    CU_ASSERT_EQUAL(nn_graph_build(g, &err), NN_ERR_LIMIT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'f' (NVAR)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "lower delay or order"));
    nn_graph_free(g);
    /* Leading axes, and feedback, are refused. */
    g = nn_graph_new(reg, 1);
    tu_node(g, "Input", "x", "shape=[2, 3]", NULL);
    tu_node(g, "NVAR", "f", NULL);
    tu_link(g, "x >> f");
    CU_ASSERT_EQUAL(nn_graph_build(g, &err), NN_ERR_SHAPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "(batch, features)"));
    nn_graph_free(g);
    g = nn_graph_new(reg, 1);
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_node(g, "NVAR", "f", NULL);
    tu_node(g, "Dense", "o", "num_unit=2", NULL);
    tu_link(g, "x >> f >> o");
    tu_link(g, "f << o");
    CU_ASSERT_NOT_EQUAL(nn_graph_build(g, &err), NN_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "does not support feedback"));
    nn_graph_free(g);
}

int main(void)
{
    nn_error err;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &err) != NN_OK)
        return 2;
    static const tu_test tests[] = {
        {"degree 2 with delays, stride and the constant",
         test_degree_two_with_stride_and_constant},
        {"degree 3 by hand", test_degree_three_by_hand},
        {"several inputs are concatenated", test_two_inputs_concatenate},
        {"feature names", test_feature_names},
        {"gradients through time", test_gradients},
        {"NVAR and Reservoir steps allocate nothing",
         test_steps_allocate_nothing},
        {"bad parameters", test_bad_parameters},
        {NULL, NULL}};
    int rc = tu_run_suite("nvar", tests);
    nn_registry_free(reg);
    return rc;
}
