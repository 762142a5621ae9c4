/*
 * test_contracts.c — what the engine promises a node type and its own
 * caller: callbacks always get a real error record (also when the embedder
 * passed err == NULL) and their code comes back unchanged (NN_ERR_NOMEM is
 * NN_ERR_NOMEM); a parameter name the type's own code reads that is not in
 * its table fails the build naming both; a type that sets no output shape
 * is blamed, by name, as defective.
 */
#include "nn_train.h"
#include "testutil.h"

#include <stdio.h>
#include <string.h>

static nn_registry *reg;

/* Which callback of the "Picky" type fails, with NN_ERR_NOMEM, in the way a
 * type may: writing its record and returning err->code. */
static enum { FAIL_NONE, FAIL_INIT_FF, FAIL_INIT_STATE, FAIL_FORWARD,
              FAIL_BACKWARD } fail_in;

static int picky_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                         nn_error *err)
{
    (void)n_ff;
    if (fail_in == FAIL_INIT_FF) {
        nn_error_set(err, NN_ERR_NOMEM, "no room for the weights");
        return err->code;
    }
    nn_init zeros = {NN_INIT_ZEROS, 0, 0};
    nn_shape w = nn_shape1(1);
    if (!nn_node_add_weight(node, "w", &w, &zeros, 1, err))
        return err->code;
    nn_shape st = ff[0];
    if (nn_node_add_state(node, "h", &st, err) != NN_OK)
        return err->code;
    nn_node_set_output_shape(node, &ff[0]);
    return NN_OK;
}

static int picky_init_state(nn_node *node, nn_tensor *state, int n_state,
                            int num_batch, nn_error *err)
{
    (void)node, (void)state, (void)n_state, (void)num_batch;
    if (fail_in == FAIL_INIT_STATE) {
        nn_error_set(err, NN_ERR_NOMEM, "no room for the state");
        return err->code;
    }
    return NN_OK;
}

static int picky_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                         const nn_tensor *fb, int n_fb, nn_tensor *out,
                         nn_ctx *ctx)
{
    (void)node, (void)n_ff, (void)fb, (void)n_fb;
    if (fail_in == FAIL_FORWARD) {
        nn_error_set(ctx->err, NN_ERR_NOMEM, "no room to step");
        return ctx->err->code;
    }
    memcpy(out->data, ff[0].data, nn_tensor_numel(out) * sizeof(float));
    return NN_OK;
}

static int picky_backward(nn_node *node, const nn_tensor *ff, int n_ff,
                          const nn_tensor *fb, int n_fb, const nn_tensor *out,
                          const nn_tensor *dout, nn_tensor *dff,
                          nn_tensor *dfb, nn_ctx *ctx)
{
    (void)node, (void)ff, (void)n_ff, (void)fb, (void)n_fb, (void)out;
    (void)dout, (void)dff, (void)dfb;
    if (fail_in == FAIL_BACKWARD) {
        nn_error_set(ctx->err, NN_ERR_NOMEM, "no room to go back");
        return ctx->err->code;
    }
    return NN_OK;
}

static const nn_node_type picky = {
    .api_version = NN_API_VERSION,
    .name = "Picky",
    .doc = "fails where it is told to",
    .flags = NN_TYPE_TRAINABLE | NN_TYPE_STATEFUL,
    .init_ff = picky_init_ff,
    .init_state = picky_init_state,
    .forward = picky_forward,
    .backward = picky_backward,
};

/* A type whose code reads a parameter its table does not have. */
static const nn_param_def typo_params[] = {
    {.name = "num_unit", .kind = NN_PARAM_INT, .def = "3", .min = 1,
     .max = 100, .doc = "units"},
    {.name = NULL}};

static int typo_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                        nn_error *err)
{
    (void)ff, (void)n_ff, (void)err;
    nn_shape out = nn_shape1((int)nn_node_param_int(node, "num_units"));
    nn_node_set_output_shape(node, &out);
    return NN_OK;
}

static const nn_node_type typo = {
    .api_version = NN_API_VERSION,
    .name = "Typo",
    .doc = "reads num_units, has num_unit",
    .params = typo_params,
    .init_ff = typo_init_ff,
    .forward = picky_forward,
};

/* A type that forgets its output shape. */
static int shapeless_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                             nn_error *err)
{
    (void)node, (void)ff, (void)n_ff, (void)err;
    return NN_OK;
}

static const nn_node_type shapeless = {
    .api_version = NN_API_VERSION,
    .name = "Shapeless",
    .doc = "sets no output shape",
    .init_ff = shapeless_init_ff,
    .forward = picky_forward,
};

static nn_graph *graph_of(const char *type, int build, nn_error *err)
{
    nn_graph *g = tu_graph(reg, 1);
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_node(g, type, "p", NULL);
    tu_link(g, "x >> p");
    if (build)
        CU_ASSERT_EQUAL_FATAL(nn_graph_build(g, err), NN_OK);
    return g;
}

/* Every callback, failing with NN_ERR_NOMEM through err->code, with the
 * caller's err NULL (which crashed) and then real (the code and message
 * survive). */
static void test_callbacks_get_a_real_record(void)
{
    for (int with_err = 0; with_err < 2; with_err++) {
        nn_error err, *e = with_err ? &err : NULL;

        fail_in = FAIL_INIT_FF;
        nn_graph *g = graph_of("Picky", 0, NULL);
        CU_ASSERT_EQUAL(nn_graph_build(g, e), NN_ERR_NOMEM);
        if (e)
            CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no room for the weights"));
        nn_graph_free(g);

        fail_in = FAIL_INIT_STATE;
        g = graph_of("Picky", 1, NULL);
        CU_ASSERT_PTR_NULL(nn_session_new(g, 1, 0, e));
        if (e) {
            CU_ASSERT_EQUAL(err.code, NN_ERR_NOMEM);
            CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no room for the state"));
        }
        nn_graph_free(g);

        fail_in = FAIL_FORWARD;
        g = graph_of("Picky", 1, NULL);
        nn_session *s = nn_session_new(g, 1, 0, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_EQUAL(nn_session_step(s, 0, e), NN_ERR_NOMEM);
        if (e)
            CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "node 'p' (Picky)"));
        nn_session_free(s);

        fail_in = FAIL_BACKWARD;
        s = nn_session_new(g, 1, 0, NULL);
        nn_tape *tape = nn_tape_new(s, 2, NULL);
        nn_grads *grads = nn_grads_new(g, NULL);
        CU_ASSERT_FATAL(tape && grads);
        int dims[3] = {1, 2, 2};
        nn_shape sh = nn_shape_make(3, dims);
        nn_tensor *x = nn_tensor_new(&sh), *out[1] = {NULL};
        nn_binding bind = {"x", x};
        CU_ASSERT_EQUAL_FATAL(nn_tape_run(tape, &bind, 1, 2, 0, out, NULL),
                              NN_OK);
        nn_tensor *d_out[1] = {out[0]};
        CU_ASSERT_EQUAL(nn_tape_backward(tape, d_out, grads, e), NN_ERR_NOMEM);
        if (e)
            CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no room to go back"));
        nn_tensor_free(out[0]);
        nn_tensor_free(x);
        nn_grads_free(grads);
        nn_tape_free(tape);
        nn_session_free(s);
        nn_graph_free(g);
    }
    fail_in = FAIL_NONE;
    /* Without a record there is no code to keep: documented as INVALID. */
    CU_ASSERT_EQUAL(nn_error_prefix(NULL, "x"), NN_ERR_INVALID);
    nn_error err;
    nn_error_set(&err, NN_ERR_NOMEM, "out of memory");
    CU_ASSERT_EQUAL(nn_error_prefix(&err, "node '%s'", "p"), NN_ERR_NOMEM);
    CU_ASSERT_STRING_EQUAL(err.msg, "node 'p': out of memory");
}

static void test_unknown_parameter_fails_the_build(void)
{
    nn_error err;
    nn_graph *g = graph_of("Typo", 0, NULL);
    CU_ASSERT_EQUAL(nn_graph_build(g, &err), NN_ERR_UNSUPPORTED);
    if (!strstr(err.msg, "'num_units'"))
        fprintf(stderr, "%s\n", err.msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'num_units'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'Typo'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "parameter table"));
    nn_graph_free(g);
    /* The names it does have still read, after the build too. */
    g = tu_graph(reg, 1);
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_node(g, "Dense", "p", "num_unit=2", NULL);
    tu_link(g, "x >> p");
    int rc = nn_graph_build(g, &err);
    if (rc != NN_OK)
        fprintf(stderr, "%s\n", err.msg);
    CU_ASSERT_EQUAL(rc, NN_OK);
    CU_ASSERT_EQUAL(nn_node_param_int(nn_graph_find(g, "p"), "no_such"), 0);
    nn_graph_free(g);
}

static void test_missing_output_shape_blames_the_type(void)
{
    nn_error err;
    nn_graph *g = graph_of("Shapeless", 0, NULL);
    CU_ASSERT_EQUAL(nn_graph_build(g, &err), NN_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'Shapeless' is defective"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not of the request"));
    nn_graph_free(g);
}

int main(void)
{
    nn_error err;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &err) != NN_OK ||
        nn_register_type(reg, &picky, &err) != NN_OK ||
        nn_register_type(reg, &typo, &err) != NN_OK ||
        nn_register_type(reg, &shapeless, &err) != NN_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    static const tu_test tests[] = {
        {"callbacks get a real error record; codes pass through",
         test_callbacks_get_a_real_record},
        {"an unknown parameter read by a type fails the build",
         test_unknown_parameter_fails_the_build},
        {"a missing output shape blames the type",
         test_missing_output_shape_blames_the_type},
        {NULL, NULL}};
    int rc = tu_run_suite("engine contracts", tests);
    nn_registry_free(reg);
    return rc;
}
