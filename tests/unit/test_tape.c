/*
 * test_tape.c — backpropagation through time over recorded runs: gradients
 * through weights, recurrent state and one-step-late feedback agree with
 * central finite differences of the loss.
 */
#include "nn_train.h"
#include "testnodes.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { B = 2, T = 4, F = 3 };

static nn_registry *registry(void)
{
    nn_registry *reg = nn_registry_new();
    nn_error err;
    CU_ASSERT_PTR_NOT_NULL_FATAL(reg);
    CU_ASSERT_EQUAL_FATAL(tn_register_all(reg, &err), NN_OK);
    return reg;
}

/* x >> w1 >> acc >> r >> w2, r << w2: weights, state and feedback. */
static nn_graph *loop_graph(nn_registry *reg)
{
    nn_error err;
    nn_graph *g = nn_graph_new(reg, 5);
    nn_node *x = nn_graph_add_node(g, "TIn", "x", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT_EQUAL(nn_node_set_param(x, "shape", "3", &err), NN_OK);
    nn_node *r = NULL;
    CU_ASSERT_PTR_NOT_NULL(nn_graph_add_node(g, "TWeighted", "w1", &err));
    CU_ASSERT_PTR_NOT_NULL(nn_graph_add_node(g, "TAcc", "acc", &err));
    CU_ASSERT_PTR_NOT_NULL(r = nn_graph_add_node(g, "TAdd", "r", &err));
    CU_ASSERT_PTR_NOT_NULL(nn_graph_add_node(g, "TWeighted", "w2", &err));
    CU_ASSERT_EQUAL(nn_node_set_param(r, "gain", "0.5", &err), NN_OK);
    CU_ASSERT_EQUAL(nn_graph_link(g, "x >> w1 >> acc >> r >> w2", &err), NN_OK);
    CU_ASSERT_EQUAL(nn_graph_link(g, "r << w2", &err), NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_graph_build(g, &err), NN_OK);
    return g;
}

static nn_tensor *sequence(float phase)
{
    int dims[3] = {B, T, F};
    nn_shape shape = nn_shape_make(3, dims);
    nn_tensor *t = nn_tensor_new(&shape);
    for (int k = 0; k < B * T * F; k++)
        t->data[k] = sinf(0.7f * (float)k + phase);
    return t;
}

/* L = sum(c * y) over a fresh session's run, in double. */
static double loss(nn_graph *g, const nn_tensor *x, const nn_tensor *c)
{
    nn_error err;
    nn_session *s = nn_session_new(g, B, 1, &err);
    nn_binding bind = {"x", (nn_tensor *)x};
    nn_tensor *out[1];
    double sum = 0;
    if (nn_session_run(s, &bind, 1, T, 1, out, &err) == NN_OK) {
        for (size_t k = 0; k < nn_tensor_numel(out[0]); k++)
            sum += (double)c->data[k] * out[0]->data[k];
        nn_tensor_free(out[0]);
    } else {
        CU_FAIL("run failed");
    }
    nn_session_free(s);
    return sum;
}

static void test_gradients_match_finite_differences(void)
{
    nn_registry *reg = registry();
    nn_graph *g = loop_graph(reg);
    nn_error err;
    nn_tensor *x = sequence(0.3f), *c = sequence(1.1f);

    nn_session *s = nn_session_new(g, B, 1, &err);
    nn_tape *tape = nn_tape_new(s, T, &err);
    nn_grads *grads = nn_grads_new(g, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tape);
    CU_ASSERT_PTR_NOT_NULL_FATAL(grads);
    nn_binding bind = {"x", x};
    nn_tensor *out[1];
    CU_ASSERT_EQUAL_FATAL(nn_tape_run(tape, &bind, 1, T, 1, out, &err), NN_OK);

    /* The taped run computes what an ordinary run computes. */
    double taped = 0;
    for (size_t k = 0; k < nn_tensor_numel(out[0]); k++)
        taped += (double)c->data[k] * out[0]->data[k];
    CU_ASSERT_DOUBLE_EQUAL(taped, loss(g, x, c), 1e-9 + 1e-6 * fabs(taped));

    nn_tensor *d_out[1] = {c};
    uint64_t before = nn_alloc_count();
    CU_ASSERT_EQUAL_FATAL(nn_tape_backward(tape, d_out, grads, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_alloc_count(), before);

    const char *names[] = {"w1", "w2"};
    for (int n = 0; n < 2; n++) {
        nn_node *node = nn_graph_find(g, names[n]);
        nn_tensor *w = nn_node_weight(node, "w");
        nn_tensor *gw = nn_grads_at(grads, node, 0);
        for (int j = 0; j < F; j++) {
            const float eps = 1e-2f;
            float keep = w->data[j];
            w->data[j] = keep + eps;
            double up = loss(g, x, c);
            w->data[j] = keep - eps;
            double down = loss(g, x, c);
            w->data[j] = keep;
            double numeric = (up - down) / (2.0 * eps);
            double analytic = gw->data[j];
            double scale = fmax(1.0, fabs(numeric));
            if (fabs(numeric - analytic) > 1e-2 * scale)
                fprintf(stderr, "%s[%d]: numeric %g analytic %g\n", names[n],
                        j, numeric, analytic);
            CU_ASSERT(fabs(numeric - analytic) <= 1e-2 * scale);
        }
    }
    CU_ASSERT(nn_grads_norm(grads) > 0);

    /* Backward accumulates; zero clears. */
    float first = nn_grads_at(grads, nn_graph_find(g, "w2"), 0)->data[0];
    CU_ASSERT_EQUAL(nn_tape_backward(tape, d_out, grads, &err), NN_OK);
    CU_ASSERT_DOUBLE_EQUAL(
        nn_grads_at(grads, nn_graph_find(g, "w2"), 0)->data[0], 2 * first,
        1e-5 * fabs(first) + 1e-7);
    nn_grads_zero(grads);
    CU_ASSERT_EQUAL(nn_grads_norm(grads), 0.0);

    nn_tensor_free(out[0]);
    nn_tensor_free(x);
    nn_tensor_free(c);
    nn_grads_free(grads);
    nn_tape_free(tape);
    nn_session_free(s);
    nn_graph_free(g);
    nn_registry_free(reg);
}

static void test_exits_without_gradient_and_shape_checks(void)
{
    nn_registry *reg = registry();
    nn_graph *g = loop_graph(reg);
    nn_error err;
    nn_session *s = nn_session_new(g, B, 1, &err);
    nn_tape *tape = nn_tape_new(s, T, &err);
    nn_grads *grads = nn_grads_new(g, &err);
    nn_tensor *x = sequence(0.3f);

    /* Nothing recorded yet. */
    CU_ASSERT_EQUAL(nn_tape_backward(tape, NULL, grads, &err), NN_ERR_STATE);
    /* Too many steps for the tape. */
    int dims[3] = {B, T + 1, F};
    nn_shape long_shape = nn_shape_make(3, dims);
    nn_tensor *too_long = nn_tensor_new(&long_shape);
    nn_binding bind_long = {"x", too_long};
    nn_tensor *out[1];
    CU_ASSERT_EQUAL(nn_tape_run(tape, &bind_long, 1, T + 1, 0, out, &err),
                    NN_ERR_LIMIT);

    nn_binding bind = {"x", x};
    CU_ASSERT_EQUAL_FATAL(nn_tape_run(tape, &bind, 1, T, 0, out, &err), NN_OK);
    /* No gradient for any exit: all gradients stay zero. */
    CU_ASSERT_EQUAL(nn_tape_backward(tape, NULL, grads, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_grads_norm(grads), 0.0);
    /* A gradient of the wrong shape is refused with the output named. */
    nn_tensor *d_wrong[1] = {too_long};
    CU_ASSERT_EQUAL(nn_tape_backward(tape, d_wrong, grads, &err), NN_ERR_SHAPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'w2'"));
    nn_tensor_free(out[0]);
    nn_tensor_free(too_long);
    nn_tensor_free(x);
    nn_grads_free(grads);
    nn_tape_free(tape);
    nn_session_free(s);
    nn_graph_free(g);
    nn_registry_free(reg);
}

static void test_missing_backward_is_named(void)
{
    nn_registry *reg = registry();
    nn_error err;
    /* TCat has no backward; with a weight before it, training must refuse. */
    nn_graph *g = nn_graph_new(reg, 1);
    nn_node *x = nn_graph_add_node(g, "TIn", "x", &err);
    CU_ASSERT_EQUAL(nn_node_set_param(x, "shape", "3", &err), NN_OK);
    CU_ASSERT_PTR_NOT_NULL(nn_graph_add_node(g, "TWeighted", "w", &err));
    CU_ASSERT_PTR_NOT_NULL(nn_graph_add_node(g, "TCat", "cat", &err));
    CU_ASSERT_EQUAL(nn_graph_link(g, "x >> w >> cat", &err), NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_graph_build(g, &err), NN_OK);
    nn_session *s = nn_session_new(g, 1, 0, &err);
    CU_ASSERT_PTR_NULL(nn_tape_new(s, 2, &err));
    CU_ASSERT_EQUAL(err.code, NN_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'cat' (TCat)"));
    nn_session_free(s);
    nn_graph_free(g);

    /* With nothing trainable before it, TCat is no obstacle. */
    g = nn_graph_new(reg, 1);
    x = nn_graph_add_node(g, "TIn", "x", &err);
    CU_ASSERT_EQUAL(nn_node_set_param(x, "shape", "3", &err), NN_OK);
    CU_ASSERT_PTR_NOT_NULL(nn_graph_add_node(g, "TCat", "cat", &err));
    CU_ASSERT_PTR_NOT_NULL(nn_graph_add_node(g, "TWeighted", "w", &err));
    CU_ASSERT_EQUAL(nn_graph_link(g, "x >> cat >> w", &err), NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_graph_build(g, &err), NN_OK);
    s = nn_session_new(g, 1, 0, &err);
    nn_tape *tape = nn_tape_new(s, 2, &err);
    CU_ASSERT_PTR_NOT_NULL(tape);
    nn_tape_free(tape);
    nn_session_free(s);
    nn_graph_free(g);
    nn_registry_free(reg);
}

int main(void)
{
    static const tu_test tests[] = {
        {"gradients match finite differences",
         test_gradients_match_finite_differences},
        {"exits without gradient, shape checks",
         test_exits_without_gradient_and_shape_checks},
        {"a missing backward is named", test_missing_backward_is_named},
        {NULL, NULL}};
    return tu_run_suite("tape", tests);
}
