/*
 * test_merge_delay.c — ReservoirPy's graph merge "g1 & g2" in edge
 * expressions, and delayed edges: the Delay node (y(t) = x(t − n), zeros
 * before), nn_graph_ff_delayed, its gradient, and the refusals.
 */
#include "nn_train.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nn_registry *reg;

static int has_ff(nn_graph *g, const char *to, const char *from)
{
    nn_node *n = nn_graph_find(g, to);
    for (int i = 0; n && i < nn_node_ff_count(n); i++)
        if (strcmp(nn_node_name(nn_node_ff_at(n, i)), from) == 0)
            return 1;
    return 0;
}

static nn_graph *esn_nodes(void)
{
    nn_graph *g = tu_graph(reg, 3);
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_node(g, "Dense", "r", "num_unit=3", NULL);
    tu_node(g, "Dense", "o", "num_unit=1", NULL);
    return g;
}

static void test_merge(void)
{
    nn_error err;
    nn_graph *g = esn_nodes();
    /* Two chains over shared nodes, the shared edge x >> r once. */
    CU_ASSERT_EQUAL_FATAL(nn_graph_link(g, "x >> r >> o & r << o & x >> r",
                                        &err), NN_OK);
    CU_ASSERT(has_ff(g, "r", "x"));
    CU_ASSERT(has_ff(g, "o", "r"));
    CU_ASSERT_EQUAL(nn_node_ff_count(nn_graph_find(g, "r")), 1);
    CU_ASSERT_EQUAL(nn_node_fb_count(nn_graph_find(g, "r")), 1);
    tu_build(g);
    nn_graph_free(g);

    /* Malformed merges name the position and add nothing. */
    const char *bad[] = {"x >> r &", "& x >> r", "x >> r & r", "x >> r && o",
                         "x & r"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        g = esn_nodes();
        CU_ASSERT_EQUAL(nn_graph_link(g, bad[k], &err), NN_ERR_INVALID);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "position"));
        CU_ASSERT_EQUAL(nn_node_ff_count(nn_graph_find(g, "r")), 0);
        nn_graph_free(g);
    }
    /* The second chain fails: the first one's edges are taken back. */
    g = esn_nodes();
    CU_ASSERT_EQUAL(nn_graph_link(g, "x >> r >> o & o >> zzz", &err),
                    NN_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'zzz'"));
    CU_ASSERT_EQUAL(nn_node_ff_count(nn_graph_find(g, "r")), 0);
    CU_ASSERT_EQUAL(nn_node_ff_count(nn_graph_find(g, "o")), 0);
    /* An edge declared by an earlier expression is still declared twice. */
    CU_ASSERT_EQUAL(nn_graph_link(g, "x >> r", &err), NN_OK);
    CU_ASSERT_EQUAL(nn_graph_link(g, "r >> o & x >> r", &err), NN_ERR_GRAPH);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "twice"));
    CU_ASSERT_EQUAL(nn_node_ff_count(nn_graph_find(g, "o")), 0);
    nn_graph_free(g);
}

/* x >> (3 steps) >> a: a's output at t is x(t − 3), zeros before. */
static void test_delayed_edge_delays(void)
{
    enum { T = 8, F = 2, N = 2 };
    nn_error err;
    nn_graph *g = tu_graph(reg, 1);
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_node(g, "Activation", "a", "function=identity", NULL);
    char name[NN_NAME_MAX];
    CU_ASSERT_EQUAL_FATAL(nn_graph_ff_delayed(g, "x", "a", 3, name, &err),
                          NN_OK);
    CU_ASSERT_STRING_EQUAL(name, "Delay0");
    CU_ASSERT(has_ff(g, "a", "Delay0"));
    CU_ASSERT(has_ff(g, "Delay0", "x"));
    tu_build(g);
    int dims[3] = {N, T, F};
    nn_tensor *x = tu_wave(3, dims, 1.0f, 0.2f);
    nn_session *s = nn_session_new(g, N, 0, &err);
    nn_binding in = {"x", x};
    nn_tensor *out[1] = {NULL};
    CU_ASSERT_EQUAL_FATAL(nn_session_run(s, &in, 1, T, 0, out, &err), NN_OK);
    for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++)
            for (int f = 0; f < F; f++) {
                float want = t < 3 ? 0.0f
                                   : x->data[((size_t)n * T + t - 3) * F + f];
                CU_ASSERT_EQUAL(out[0]->data[((size_t)n * T + t) * F + f],
                                want);
            }
    nn_tensor_free(out[0]);
    nn_session_free(s);
    nn_tensor_free(x);
    nn_graph_free(g);
}

/* Gradients flow back through the delay line to the weights before it. */
static void test_delay_gradient(void)
{
    nn_graph *g = tu_graph(reg, 7);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "Dense", "d", "num_unit=4", NULL);
    tu_node(g, "Delay", "z", "delay=2", NULL);
    tu_node(g, "Dense", "o", "num_unit=2", NULL);
    tu_link(g, "x >> d >> z >> o");
    tu_build(g);
    tu_check_gradients(g, "x", 3, &(tu_fd_opts){5, 12, 0}, "delay 2");
    nn_graph_free(g);
}

static void test_delayed_edge_refusals(void)
{
    nn_error err;
    nn_graph *g = esn_nodes();
    int before = nn_graph_node_count(g);
    CU_ASSERT_EQUAL(nn_graph_ff_delayed(g, "x", "r", 0, NULL, &err),
                    NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "delay must be"));
    CU_ASSERT_EQUAL(nn_graph_ff_delayed(g, "x", "zzz", 2, NULL, &err),
                    NN_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'zzz'"));
    CU_ASSERT_EQUAL(nn_graph_node_count(g), before);
    nn_graph_free(g);
}

int main(void)
{
    nn_error err;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &err) != NN_OK)
        return 2;
    static const tu_test tests[] = {
        {"& merges chains over shared nodes", test_merge},
        {"a delayed edge delays by n steps", test_delayed_edge_delays},
        {"gradients pass through a delay", test_delay_gradient},
        {"delayed edges are refused by name", test_delayed_edge_refusals},
        {NULL, NULL}};
    int rc = tu_run_suite("merge and delay", tests);
    nn_registry_free(reg);
    return rc;
}
