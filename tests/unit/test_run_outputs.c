/*
 * test_run_outputs.c — nn_session_run_outputs: a run that copies out any
 * nodes' outputs per step, not only the exits. The reference is the same
 * steps taken one at a time on a second session, reading
 * nn_session_output after each: the buffers a step leaves must be what
 * the nodes computed (no node's buffer is reused by another in a step).
 */
#include "testutil.h"

#include <string.h>

#define STEPS 6
#define BATCH 2

/* x >> r >> h >> o, r << o: an Input, a reservoir fed back by the exit, a
 * row-wise inner layer, the exit. */
static nn_graph *feedback_graph(nn_registry *reg)
{
    nn_graph *g = tu_graph(reg, 7);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "Reservoir", "r", "num_unit=12", "leaky_rate=0.5",
            "spectral_radius=0.9", NULL);
    tu_node(g, "Dense", "h", "num_unit=5", NULL);
    tu_node(g, "Activation", "a", "function=tanh", NULL);
    tu_node(g, "Dense", "o", "num_unit=2", NULL);
    tu_link(g, "x >> r >> h >> a >> o");
    tu_link(g, "r << o");
    tu_build(g);
    return g;
}

/* Whether out holds at step t what node `name` of s holds now. */
static int step_equal(const nn_tensor *seq, int t, const nn_session *s,
                      const char *name)
{
    const nn_tensor *now = nn_session_output(s, name);
    size_t row = nn_tensor_numel(now) / BATCH;
    for (int b = 0; b < BATCH; b++)
        if (memcmp(seq->data + ((size_t)b * STEPS + (size_t)t) * row,
                   now->data + (size_t)b * row, row * sizeof(float)) != 0)
            return 0;
    return 1;
}

static void test_inner_nodes_equal_single_steps(void)
{
    nn_registry *reg = tu_registry();
    nn_graph *g = feedback_graph(reg);
    nn_error e;
    nn_session *run = nn_session_new(g, BATCH, 3, &e);
    nn_session *one = nn_session_new(g, BATCH, 3, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(run);
    CU_ASSERT_PTR_NOT_NULL_FATAL(one);
    int dims[3] = {BATCH, STEPS, 3};
    nn_tensor *in = tu_wave(3, dims, 0.8f, 0.3f);
    nn_binding bind = {"x", in};
    /* Not the graph's order, and an Input among them. */
    const char *names[] = {"a", "x", "r", "o"};
    nn_tensor *outs[4];
    CU_ASSERT_EQUAL_FATAL(nn_session_run_outputs(run, &bind, 1, NULL, 0, names,
                                                 4, STEPS, 0, outs, &e),
                          NN_OK);
    CU_ASSERT_EQUAL(outs[0]->shape.ndim, 3);
    CU_ASSERT_EQUAL(outs[0]->shape.dims[0], BATCH);
    CU_ASSERT_EQUAL(outs[0]->shape.dims[1], STEPS);
    CU_ASSERT_EQUAL(outs[0]->shape.dims[2], 5);
    CU_ASSERT_EQUAL(outs[2]->shape.dims[2], 12);
    for (int t = 0; t < STEPS; t++) {
        nn_tensor *x = nn_session_input(one, "x");
        for (int b = 0; b < BATCH; b++)
            memcpy(x->data + b * 3, in->data + ((size_t)b * STEPS + t) * 3,
                   3 * sizeof(float));
        CU_ASSERT_EQUAL_FATAL(nn_session_step(one, 0, &e), NN_OK);
        for (int k = 0; k < 4; k++)
            CU_ASSERT(step_equal(outs[k], t, one, names[k]));
    }
    CU_ASSERT_EQUAL(nn_session_steps(run), STEPS);
    for (int k = 0; k < 4; k++)
        nn_tensor_free(outs[k]);

    /* names NULL is the exits, as nn_session_run. */
    nn_session_reset(run, &e);
    nn_session_reset(one, &e);
    nn_tensor *exits[1], *plain[1];
    CU_ASSERT_EQUAL(nn_session_run_outputs(run, &bind, 1, NULL, 0, NULL, 0,
                                           STEPS, 0, exits, &e), NN_OK);
    CU_ASSERT_EQUAL(nn_session_run(one, &bind, 1, STEPS, 0, plain, &e), NN_OK);
    CU_ASSERT_EQUAL(memcmp(exits[0]->data, plain[0]->data,
                           nn_tensor_numel(plain[0]) * sizeof(float)), 0);
    nn_tensor_free(exits[0]);
    nn_tensor_free(plain[0]);
    nn_tensor_free(in);
    nn_session_free(run);
    nn_session_free(one);
    nn_graph_free(g);
    nn_registry_free(reg);
}

/* With teacher forcing the outputs are still what the nodes computed, and
 * the inner state follows the forced feedback. */
static void test_forced_runs(void)
{
    nn_registry *reg = tu_registry();
    nn_graph *g = feedback_graph(reg);
    nn_error e;
    nn_session *run = nn_session_new(g, BATCH, 3, &e);
    nn_session *one = nn_session_new(g, BATCH, 3, &e);
    int dims[3] = {BATCH, STEPS, 3}, fdims[3] = {BATCH, STEPS, 2};
    nn_tensor *in = tu_wave(3, dims, 0.8f, 0.3f);
    nn_tensor *teacher = tu_wave(3, fdims, 0.5f, 1.1f);
    nn_binding bind = {"x", in}, forced = {"o", teacher};
    const char *names[] = {"r", "o"};
    nn_tensor *outs[2];
    CU_ASSERT_EQUAL_FATAL(nn_session_run_outputs(run, &bind, 1, &forced, 1,
                                                 names, 2, STEPS, 0, outs, &e),
                          NN_OK);
    for (int t = 0; t < STEPS; t++) {
        nn_tensor *x = nn_session_input(one, "x");
        for (int b = 0; b < BATCH; b++)
            memcpy(x->data + b * 3, in->data + ((size_t)b * STEPS + t) * 3,
                   3 * sizeof(float));
        CU_ASSERT_EQUAL_FATAL(nn_session_step(one, 0, &e), NN_OK);
        CU_ASSERT(step_equal(outs[0], t, one, "r"));
        CU_ASSERT(step_equal(outs[1], t, one, "o"));
        /* Then force o as the run does. */
        nn_tensor *o = nn_session_output_buffer(one, "o");
        for (int b = 0; b < BATCH; b++)
            memcpy(o->data + b * 2,
                   teacher->data + ((size_t)b * STEPS + t) * 2,
                   2 * sizeof(float));
    }
    nn_tensor_free(outs[0]);
    nn_tensor_free(outs[1]);
    nn_tensor_free(in);
    nn_tensor_free(teacher);
    nn_session_free(run);
    nn_session_free(one);
    nn_graph_free(g);
    nn_registry_free(reg);
}

static void test_refusals_change_nothing(void)
{
    nn_registry *reg = tu_registry();
    nn_graph *g = feedback_graph(reg);
    nn_error e;
    nn_session *s = nn_session_new(g, BATCH, 3, &e);
    int dims[3] = {BATCH, STEPS, 3};
    nn_tensor *in = tu_wave(3, dims, 0.8f, 0.3f);
    nn_binding bind = {"x", in};
    nn_tensor *outs[3] = {NULL, NULL, NULL};
    const char *unknown[] = {"r", "zz"};
    CU_ASSERT_EQUAL(nn_session_run_outputs(s, &bind, 1, NULL, 0, unknown, 2,
                                           STEPS, 0, outs, &e),
                    NN_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "'zz'"));
    const char *twice[] = {"r", "o", "r"};
    CU_ASSERT_EQUAL(nn_session_run_outputs(s, &bind, 1, NULL, 0, twice, 3,
                                           STEPS, 0, outs, &e),
                    NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "twice"));
    CU_ASSERT_EQUAL(nn_session_run_outputs(s, &bind, 1, NULL, 0, twice, 0,
                                           STEPS, 0, outs, &e),
                    NN_ERR_INVALID);
    /* A bad input after good names: nothing left allocated, no step. */
    nn_binding wrong = {"y", in};
    CU_ASSERT_EQUAL(nn_session_run_outputs(s, &wrong, 1, NULL, 0, unknown, 1,
                                           STEPS, 0, outs, &e),
                    NN_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NULL(outs[0]);
    CU_ASSERT_EQUAL(nn_session_steps(s), 0);
    nn_tensor_free(in);
    nn_session_free(s);
    nn_graph_free(g);
    nn_registry_free(reg);
}

int main(void)
{
    static const tu_test tests[] = {
        {"inner nodes equal single steps", test_inner_nodes_equal_single_steps},
        {"forced runs", test_forced_runs},
        {"refusals change nothing", test_refusals_change_nothing},
        {NULL, NULL}};
    return tu_run_suite("run_outputs", tests);
}
