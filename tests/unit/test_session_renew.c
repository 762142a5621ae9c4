/*
 * test_session_renew.c — nn_session_renew makes a used session what
 * nn_session_new makes: after steps in training with other inputs, a
 * renewed session steps to the outputs, states and step count of a fresh
 * one — with an LSTM, a feedback edge, Dropout's random stream in training
 * (also under another seed) and a type that reads its scratch before it
 * writes it.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static nn_registry *reg;

/* TScratch: out = x + work[0], then work[0] += 1; a session whose
 * scratch is not zero shows it in its first output. */
static int scratch_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                           nn_error *err)
{
    if (n_ff != 1)
        return nn_error_set(err, NN_ERR_SHAPE, "one input only");
    nn_node_set_output_shape(node, &ff[0]);
    nn_node_set_work(node, 1);
    return NN_OK;
}

static int scratch_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                           const nn_tensor *fb, int n_fb, nn_tensor *out,
                           nn_ctx *ctx)
{
    (void)node, (void)n_ff, (void)fb, (void)n_fb;
    for (size_t j = 0; j < nn_tensor_numel(out); j++)
        out->data[j] = ff[0].data[j] + ctx->work[0];
    ctx->work[0] += 1.0f;
    return NN_OK;
}

static const nn_node_type t_scratch = {
    NN_API_VERSION, "TScratch", "reads its scratch before writing it", 0,
    NULL, 0, scratch_init_ff, NULL, NULL, scratch_forward, NULL, NULL, NULL,
    NULL, NULL};

static nn_graph *graph(void)
{
    nn_graph *g = tu_graph(reg, 7);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "LSTM", "h", "num_unit=5", NULL);
    tu_node(g, "Dropout", "drop", "prob=0.5", NULL);
    tu_node(g, "TScratch", "sc", NULL);
    tu_node(g, "Dense", "o", "num_unit=2", NULL);
    tu_link(g, "x >> h >> drop >> sc >> o");
    tu_link(g, "h << o");
    tu_build(g);
    return g;
}

static void step(nn_session *s, float phase, int train)
{
    nn_error err;
    tu_fill(nn_session_input(s, "x"), 1.0f, phase);
    int rc = nn_session_step(s, train, &err);
    if (rc != NN_OK)
        fprintf(stderr, "step: %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
}

/* Same floats within float32 rounding: the two sessions' buffers differ
 * only in where they are. */
static void assert_same(const nn_tensor *a, const nn_tensor *b)
{
    CU_ASSERT_EQUAL_FATAL(nn_tensor_numel(a), nn_tensor_numel(b));
    for (size_t k = 0; k < nn_tensor_numel(a); k++)
        TU_ASSERT_CLOSE(a->data[k], b->data[k],
                        1e-6 + 1e-6 * fabs(b->data[k]));
}

static void assert_like_fresh(nn_session *used, nn_session *fresh)
{
    static const char *nodes[] = {"h", "drop", "sc", "o"};
    CU_ASSERT_EQUAL(nn_session_steps(used), nn_session_steps(fresh));
    for (int i = 0; i < 4; i++)
        assert_same(nn_session_output(used, nodes[i]),
                    nn_session_output(fresh, nodes[i]));
    for (int k = 0; k < 2; k++)
        assert_same(nn_session_state(used, "h", k),
                    nn_session_state(fresh, "h", k));
}

static void test_renewed_steps_as_fresh(void)
{
    nn_graph *g = graph();
    nn_error err;
    nn_session *used = tu_session(g, 3, 11);
    for (int t = 0; t < 4; t++)
        step(used, 0.4f * (float)t, 1);
    CU_ASSERT_EQUAL(nn_session_renew(used, 11, &err), NN_OK);
    nn_session *fresh = tu_session(g, 3, 11);
    assert_like_fresh(used, fresh);
    for (int t = 0; t < 3; t++) {
        step(used, 2.0f + (float)t, 1);
        step(fresh, 2.0f + (float)t, 1);
        assert_like_fresh(used, fresh);
    }
    /* The scratch restarted: its first output after renewal is x + 0. */
    nn_session_free(fresh);
    CU_ASSERT_EQUAL(nn_session_renew(used, 11, &err), NN_OK);
    step(used, 0.0f, 0);
    const nn_tensor *drop = nn_session_output(used, "drop");
    const nn_tensor *sc = nn_session_output(used, "sc");
    for (size_t k = 0; k < nn_tensor_numel(sc); k++)
        CU_ASSERT_EQUAL(sc->data[k], drop->data[k]);
    nn_session_free(used);
    nn_graph_free(g);
}

static void test_renewed_with_another_seed(void)
{
    nn_graph *g = graph();
    nn_error err;
    nn_session *used = tu_session(g, 2, 11);
    step(used, 0.3f, 1);
    CU_ASSERT_EQUAL(nn_session_renew(used, 12, &err), NN_OK);
    nn_session *fresh = tu_session(g, 2, 12), *other = tu_session(g, 2, 11);
    step(used, 1.0f, 1);
    step(fresh, 1.0f, 1);
    step(other, 1.0f, 1);
    assert_like_fresh(used, fresh);
    /* The seed shows in Dropout's masks: the test could tell them apart. */
    const nn_tensor *a = nn_session_output(used, "drop");
    const nn_tensor *b = nn_session_output(other, "drop");
    int differ = 0;
    for (size_t k = 0; k < nn_tensor_numel(a); k++)
        differ |= (a->data[k] == 0.0f) != (b->data[k] == 0.0f);
    CU_ASSERT(differ);
    nn_session_free(used);
    nn_session_free(fresh);
    nn_session_free(other);
    nn_graph_free(g);
}

int main(void)
{
    nn_error err;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &err) != NN_OK ||
        nn_register_type(reg, &t_scratch, &err) != NN_OK)
        return 2;
    static const tu_test tests[] = {
        {"a renewed session steps as a fresh one", test_renewed_steps_as_fresh},
        {"renewed under another seed", test_renewed_with_another_seed},
        {NULL, NULL}};
    int rc = tu_run_suite("session_renew", tests);
    nn_registry_free(reg);
    return rc;
}
