/*
 * test_batch.c — nn_session_step_many: sessions of mixed batch sizes (1, 2,
 * 3), at different step counts and in mixed train modes, stepped together
 * give what the same sessions stepped one by one give — every node's
 * output, every state, every random stream bit for bit, the step count —
 * for every built-in stateful type, Dense, the stateless row-wise types,
 * feedback edges, Dropout in training, Reservoir noise and ReservoirPy's
 * options (external equation, per-unit leak, fb_activation), a plugin-like
 * type that reads ctx->step; then nn_session_run carries on alike. Also:
 * which types declare themselves row-wise, no allocation per call, the
 * capacity and argument errors, a failing node leaving every session as it
 * was, and out-of-memory in nn_batcher_new.
 */
#include "testnodes.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static nn_registry *reg;
static int n_builtins;

enum { N = 5, STEPS = 4, RUN_STEPS = 3 };
static const int batches[N] = {1, 2, 3, 1, 2};
static const int all_eval[N] = {0, 0, 0, 0, 0};
static const int mixed[N] = {1, 0, 1, 1, 0};

/* ------------------------------------------------- plugin-like test types */

/* TStep: out = x + 0.01 step + 0.1 u, u drawn from the session stream,
 * which restarts at step 0 as the guide's GuideDropout does: a type that
 * must see its own session's step count and stream. */
static int same_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                        nn_error *err)
{
    if (n_ff != 1)
        return nn_error_set(err, NN_ERR_SHAPE, "one input only");
    nn_node_set_output_shape(node, &ff[0]);
    return NN_OK;
}

static int step_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                        const nn_tensor *fb, int n_fb, nn_tensor *out,
                        nn_ctx *ctx)
{
    (void)node, (void)n_ff, (void)fb, (void)n_fb;
    if (ctx->step == 0)
        nn_rng_seed(ctx->rng, nn_seed_derive(42, "TStep"));
    for (size_t j = 0; j < nn_tensor_numel(out); j++)
        out->data[j] = ff[0].data[j] + 0.01f * (float)ctx->step +
                       0.1f * (float)nn_rng_uniform(ctx->rng);
    return NN_OK;
}

static const nn_node_type t_step = {
    NN_API_VERSION, "TStep", "reads ctx->step and ctx->rng", 0, NULL, 0,
    same_init_ff, NULL, NULL, step_forward, NULL, NULL, NULL, NULL, NULL};

/* TFail(x, y): y, unless some value of x exceeds 50. */
static int fail_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                        nn_error *err)
{
    if (n_ff != 2)
        return nn_error_set(err, NN_ERR_SHAPE, "two inputs");
    nn_node_set_output_shape(node, &ff[1]);
    return NN_OK;
}

static int fail_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                        const nn_tensor *fb, int n_fb, nn_tensor *out,
                        nn_ctx *ctx)
{
    (void)node, (void)n_ff, (void)fb, (void)n_fb;
    for (size_t j = 0; j < nn_tensor_numel(&ff[0]); j++)
        if (ff[0].data[j] > 50)
            return nn_error_set(ctx->err, NN_ERR_INVALID, "input too large");
    memcpy(out->data, ff[1].data, nn_tensor_numel(out) * sizeof(float));
    return NN_OK;
}

static const nn_node_type t_fail = {
    NN_API_VERSION, "TFail", "fails on a large input", 0, NULL, 0,
    fail_init_ff, NULL, NULL, fail_forward, NULL, NULL, NULL, NULL, NULL};

/* ------------------------------------------------------------- helpers */

static nn_batcher *batcher(nn_graph *g, int rows)
{
    nn_error err;
    nn_batcher *b = nn_batcher_new(g, rows, &err);
    if (!b)
        fprintf(stderr, "batcher: %s\n", err.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    return b;
}

/* Inputs of session i at step t, the same in both copies. */
static void fill_inputs(nn_graph *g, nn_session *s, int i, int t)
{
    for (int e = 0; e < nn_graph_entry_count(g); e++) {
        nn_tensor *in = nn_session_input(s, nn_node_name(nn_graph_entry_at(g,
                                                                           e)));
        tu_fill(in, 1.0f, 0.7f * (float)i + 0.31f * (float)t + (float)e);
    }
}

static void step_alone(nn_session *s, int train)
{
    nn_error err;
    int rc = nn_session_step(s, train, &err);
    if (rc != NN_OK)
        fprintf(stderr, "step: %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
}

/* float32 agreement: a GEMM over the batch and a GEMV over one row round
 * differently. */
static int close_enough(float a, float b)
{
    return fabsf(a - b) <= 2e-5f + 1e-5f * fabsf(a);
}

static int tensors_close(const nn_tensor *a, const nn_tensor *b,
                         const char *what, const char *name, int i, int t)
{
    if (!nn_shape_equal(&a->shape, &b->shape)) {
        fprintf(stderr, "%s: %s of session %d differ in shape\n", what, name,
                i);
        return 0;
    }
    for (size_t k = 0; k < nn_tensor_numel(a); k++)
        if (!close_enough(a->data[k], b->data[k])) {
            fprintf(stderr, "%s: step %d, session %d, %s[%zu]: alone %.9g, "
                    "batched %.9g\n", what, t, i, name, k, a->data[k],
                    b->data[k]);
            return 0;
        }
    return 1;
}

/* Everything a step hands the next, in the two copies of session i. */
static void compare(nn_graph *g, nn_session *a, nn_session *b, int i, int t,
                    const char *what)
{
    CU_ASSERT_EQUAL(nn_session_steps(a), nn_session_steps(b));
    for (int n = 0; n < nn_graph_node_count(g); n++) {
        nn_node *node = nn_graph_node_at(g, n);
        const char *name = nn_node_name(node);
        CU_ASSERT(tensors_close(nn_session_output(a, name),
                                nn_session_output(b, name), what, name, i, t));
        for (int k = 0; k < nn_node_state_count(node); k++)
            CU_ASSERT(tensors_close(nn_session_state(a, name, k),
                                    nn_session_state(b, name, k), what,
                                    nn_node_state_name(node, k), i, t));
        /* The streams must be the very same, or masks and noise drift. */
        if (memcmp(nn_session_rng(a, name), nn_session_rng(b, name),
                   sizeof(nn_rng)) != 0) {
            fprintf(stderr, "%s: step %d, session %d: stream of %s differs\n",
                    what, t, i, name);
            CU_FAIL("random stream differs");
        }
    }
}

/* Runs RUN_STEPS more steps through nn_session_run on both copies. */
static void run_both(nn_graph *g, nn_session *a, nn_session *b, int i,
                     int train, const char *what)
{
    int n_in = nn_graph_entry_count(g), n_out = nn_graph_exit_count(g);
    nn_binding bind[4];
    nn_tensor *seq[4], *out_a[8], *out_b[8];
    CU_ASSERT_FATAL(n_in <= 4 && n_out <= 8);
    for (int e = 0; e < n_in; e++) {
        nn_node *entry = nn_graph_entry_at(g, e);
        nn_shape per = nn_node_output_shape(entry);
        int dims[NN_MAX_DIMS] = {nn_session_batch(a), RUN_STEPS};
        for (int d = 0; d < per.ndim; d++)
            dims[d + 2] = per.dims[d];
        seq[e] = tu_wave(per.ndim + 2, dims, 0.8f, 0.5f * (float)(i + e));
        bind[e].name = nn_node_name(entry);
        bind[e].tensor = seq[e];
    }
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_session_run(a, bind, n_in, RUN_STEPS, train,
                                         out_a, &err), NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_session_run(b, bind, n_in, RUN_STEPS, train,
                                         out_b, &err), NN_OK);
    for (int x = 0; x < n_out; x++) {
        CU_ASSERT(tensors_close(out_a[x], out_b[x], what, "run output", i,
                                STEPS + RUN_STEPS));
        nn_tensor_free(out_a[x]);
        nn_tensor_free(out_b[x]);
    }
    for (int e = 0; e < n_in; e++)
        nn_tensor_free(seq[e]);
    compare(g, a, b, i, STEPS + RUN_STEPS, what);
}

/* N sessions of g stepped one by one (a) and with nn_session_step_many
 * (b), after session i took i % 3 steps alone so their step counts
 * differ. */
static void check_batched(nn_graph *g, const int *train, const char *what)
{
    nn_session *a[N], *b[N];
    for (int i = 0; i < N; i++) {
        a[i] = tu_session(g, batches[i], 100 + (uint64_t)i);
        b[i] = tu_session(g, batches[i], 100 + (uint64_t)i);
        for (int k = 0; k < i % 3; k++) {
            fill_inputs(g, a[i], i, -1 - k);
            step_alone(a[i], train[i]);
            fill_inputs(g, b[i], i, -1 - k);
            step_alone(b[i], train[i]);
        }
    }
    nn_batcher *bt = batcher(g, 12);
    nn_error err;
    for (int t = 0; t < STEPS; t++) {
        for (int i = 0; i < N; i++) {
            fill_inputs(g, a[i], i, t);
            step_alone(a[i], train[i]);
            fill_inputs(g, b[i], i, t);
        }
        uint64_t before = nn_alloc_count();
        int rc = nn_session_step_many(bt, b, train, N, &err);
        CU_ASSERT_EQUAL(nn_alloc_count(), before);
        if (rc != NN_OK)
            fprintf(stderr, "%s: step_many: %s\n", what, err.msg);
        CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
        for (int i = 0; i < N; i++)
            compare(g, a[i], b[i], i, t, what);
    }
    for (int i = 0; i < N; i++)
        run_both(g, a[i], b[i], i, train[i], what);
    nn_batcher_free(bt);
    for (int i = 0; i < N; i++) {
        nn_session_free(a[i]);
        nn_session_free(b[i]);
    }
}

/* x (width) >> node >> LinearReadout o (2), the readout drawn non-zero. */
static nn_graph *chain(int width, const char *type, const char *p1,
                       const char *p2, const char *p3)
{
    nn_graph *g = tu_graph(reg, 11);
    char shape[32];
    snprintf(shape, sizeof shape, "shape=%d", width);
    tu_node(g, "Input", "x", shape, NULL);
    tu_node(g, type, "n", p1, p2, p3, NULL);
    tu_node(g, "LinearReadout", "o", "num_unit=2",
            "W_initializer=Normal(0, 0.5)", NULL);
    tu_link(g, "x >> n >> o");
    return g;
}

static void check_chain(int width, const char *type, const char *p1,
                        const char *p2, const char *p3, const int *train,
                        int rowwise, const char *what)
{
    nn_graph *g = chain(width, type, p1, p2, p3);
    tu_build(g);
    CU_ASSERT_EQUAL(nn_node_rowwise(nn_graph_find(g, "n")), rowwise);
    check_batched(g, train, what);
    nn_graph_free(g);
}

/* ------------------------------------------------------------- tests */

static void test_dense(void)
{
    check_chain(3, "Dense", "num_unit=5", NULL, NULL, all_eval, 1, "Dense");
}

static void test_recurrent_cells(void)
{
    check_chain(3, "VanillaRNN", "num_unit=8", "activation=tanh", NULL,
                mixed, 1, "VanillaRNN");
    check_chain(3, "LSTM", "num_unit=6", NULL, NULL, mixed, 1, "LSTM");
    check_chain(3, "GRU", "num_unit=6", NULL, NULL, all_eval, 1, "GRU");
}

static void test_reservoirs(void)
{
    check_chain(2, "Reservoir", "num_unit=60", "sparse=false",
                "spectral_radius=0.9", mixed, 1, "Reservoir dense");
    /* All 9 rows in one run: the CSR product takes a block of 8. */
    check_chain(2, "Reservoir", "num_unit=60", "sparse=true",
                "spectral_radius=0.9", all_eval, 1, "Reservoir sparse");
    check_chain(2, "Reservoir", "num_unit=40", "sparse=false",
                "noise_rc=0.05", mixed, 0, "Reservoir dense, state noise");
    check_chain(2, "Reservoir", "num_unit=40", "sparse=true",
                "noise_in=0.2", all_eval, 0, "Reservoir sparse, input noise");
}

/* ReservoirPy's options change only the elementwise part and the weights:
 * still row-wise, still the same rows batched or alone. */
static void test_reservoir_options(void)
{
    check_chain(2, "Reservoir", "num_unit=40", "equation=external",
                "leaky_rate=Uniform(0.2, 0.9)", mixed, 1,
                "Reservoir external, per-unit leak");
    check_chain(2, "Reservoir", "num_unit=60", "sparse=true",
                "connectivity_mode=in_degree", all_eval, 1,
                "Reservoir sparse, in-degree pattern");
    check_chain(2, "Reservoir", "num_unit=30", "input_scaling=[0.5, 3]",
                "Win_initializer=Bernoulli", mixed, 1,
                "Reservoir per-feature scaling, Bernoulli Win");
    nn_graph *g = tu_graph(reg, 5);
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_node(g, "Reservoir", "r", "num_unit=30", "fb_connectivity=0.5",
            "fb_activation=tanh", "equation=external", "fb_scaling=[1, 2]",
            NULL);
    tu_node(g, "LinearReadout", "o", "num_unit=2",
            "W_initializer=Normal(0, 0.5)", NULL);
    tu_link(g, "x >> r >> o");
    tu_link(g, "r << o");
    tu_build(g);
    CU_ASSERT_EQUAL(nn_node_rowwise(nn_graph_find(g, "r")), 1);
    check_batched(g, mixed, "Reservoir external << LinearReadout through tanh");
    nn_graph_free(g);
}

static void test_nvar(void)
{
    check_chain(2, "NVAR", "delay=3", "order=2", "stride=2", mixed, 1,
                "NVAR");
}

static void test_feedback(void)
{
    /* r << o: the reservoir reads the readout's previous output. */
    nn_graph *g = tu_graph(reg, 3);
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_node(g, "Reservoir", "r", "num_unit=30", "fb_connectivity=0.5", NULL);
    tu_node(g, "LinearReadout", "o", "num_unit=2",
            "W_initializer=Normal(0, 0.5)", NULL);
    tu_link(g, "x >> r >> o");
    tu_link(g, "r << o");
    tu_build(g);
    check_batched(g, mixed, "Reservoir << LinearReadout");
    nn_graph_free(g);

    /* Feedback into a recurrent cell, and noise on the feedback: the
     * reservoir runs per session there. */
    g = tu_graph(reg, 4);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "VanillaRNN", "h", "num_unit=7", "activation=tanh", NULL);
    tu_node(g, "Reservoir", "r", "num_unit=20", "noise_fb=0.1",
            "fb_connectivity=1", NULL);
    tu_node(g, "Dense", "o", "num_unit=3", NULL);
    tu_link(g, "x >> h >> r >> o");
    tu_link(g, "h << o");
    tu_link(g, "r << o");
    tu_build(g);
    CU_ASSERT_EQUAL(nn_node_rowwise(nn_graph_find(g, "r")), 0);
    check_batched(g, all_eval, "VanillaRNN << Dense, noisy feedback");
    nn_graph_free(g);
}

static void test_dropout_in_training(void)
{
    nn_graph *g = tu_graph(reg, 5);
    tu_node(g, "Input", "x", "shape=4", NULL);
    tu_node(g, "Dense", "d", "num_unit=16", NULL);
    tu_node(g, "Dropout", "drop", "prob=0.6", NULL);
    tu_node(g, "GRU", "h", "num_unit=5", NULL);
    tu_link(g, "x >> d >> drop >> h");
    tu_build(g);
    CU_ASSERT_EQUAL(nn_node_rowwise(nn_graph_find(g, "drop")), 0);
    check_batched(g, mixed, "Dropout, mixed modes");
    const int all_train[N] = {1, 1, 1, 1, 1};
    check_batched(g, all_train, "Dropout, all training");

    /* The masks themselves: the same zeros in both copies, and different
     * sessions (other seeds) drop different values. */
    nn_session *a = tu_session(g, 3, 7), *b = tu_session(g, 3, 7),
               *c = tu_session(g, 3, 8);
    nn_session *many[2] = {b, c};
    int train[2] = {1, 1};
    nn_batcher *bt = batcher(g, 6);
    nn_error err;
    fill_inputs(g, a, 0, 0);
    fill_inputs(g, b, 0, 0);
    fill_inputs(g, c, 0, 0);
    step_alone(a, 1);
    CU_ASSERT_EQUAL_FATAL(nn_session_step_many(bt, many, train, 2, &err),
                          NN_OK);
    const nn_tensor *ma = nn_session_output(a, "drop"),
                    *mb = nn_session_output(b, "drop"),
                    *mc = nn_session_output(c, "drop");
    int zeros = 0, differ = 0;
    for (size_t k = 0; k < nn_tensor_numel(ma); k++) {
        CU_ASSERT_EQUAL(ma->data[k] == 0, mb->data[k] == 0);
        zeros += ma->data[k] == 0;
        differ += (ma->data[k] == 0) != (mc->data[k] == 0);
    }
    CU_ASSERT(zeros > 0);
    CU_ASSERT(differ > 0);
    nn_batcher_free(bt);
    nn_session_free(a);
    nn_session_free(b);
    nn_session_free(c);
    nn_graph_free(g);
}

static void test_rowwise_types_together(void)
{
    nn_graph *g = tu_graph(reg, 6);
    tu_node(g, "Input", "x", "shape=4", NULL);
    tu_node(g, "Input", "y", "shape=2", NULL);
    tu_node(g, "Dense", "a", "num_unit=6", NULL);
    tu_node(g, "Dense", "b", "num_unit=6", "b_initializer=Normal(0, 1)", NULL);
    tu_node(g, "Summation", "sum", NULL);
    tu_node(g, "Concat", "cat", NULL);
    tu_node(g, "LayerNorm", "ln", NULL);
    tu_node(g, "Activation", "act", "function=softmax", NULL);
    tu_node(g, "Reshape", "rs", "shape=[3, 4]", NULL);
    tu_node(g, "Select", "sel", "index=1:3", NULL);
    tu_node(g, "LayerNorm", "ln2", NULL);
    tu_link(g, "x >> {a, b}");
    tu_link(g, "y >> b");
    tu_link(g, "{a, b} >> sum");
    tu_link(g, "{a, b} >> cat >> ln >> act >> rs >> sel >> ln2");
    tu_build(g);
    for (int n = 0; n < nn_graph_node_count(g); n++)
        CU_ASSERT(nn_node_rowwise(nn_graph_node_at(g, n)));
    check_batched(g, mixed, "stateless row-wise types, two inputs");
    nn_graph_free(g);
}

static void test_plugin_types_run_per_session(void)
{
    /* TStep reads the step and its stream; TAcc (not row-wise either)
     * keeps state: both run session by session, between row-wise nodes. */
    nn_graph *g = tu_graph(reg, 7);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "Dense", "d", "num_unit=4", NULL);
    tu_node(g, "TStep", "st", NULL);
    tu_node(g, "TAcc", "acc", "start=0.5", NULL);
    tu_node(g, "LSTM", "h", "num_unit=3", NULL);
    tu_link(g, "x >> d >> st >> acc >> h");
    tu_build(g);
    CU_ASSERT_EQUAL(nn_node_rowwise(nn_graph_find(g, "st")), 0);
    CU_ASSERT_EQUAL(nn_node_rowwise(nn_graph_find(g, "acc")), 0);
    check_batched(g, mixed, "TStep and TAcc");
    nn_graph_free(g);
}

static void test_every_builtin_but_dropout_is_rowwise(void)
{
    CU_ASSERT(n_builtins >= 15);
    for (int i = 0; i < n_builtins; i++) {
        const nn_node_type *type = nn_registry_at(reg, i);
        int rowwise = (type->flags & NN_TYPE_ROWWISE) != 0;
        if (strcmp(type->name, "Dropout") == 0) {
            CU_ASSERT_FALSE(rowwise);
        } else if (!rowwise) {
            fprintf(stderr, "built-in %s is not row-wise\n", type->name);
            CU_FAIL("a built-in type is not row-wise");
        }
    }
}

/* ------------------------------------------------------------- errors */

static nn_graph *small_graph(void)
{
    nn_graph *g = tu_graph(reg, 8);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "VanillaRNN", "r", "num_unit=4", NULL);
    tu_node(g, "TFail", "f", NULL);
    tu_link(g, "{x, r} >> f");
    tu_link(g, "x >> r");
    tu_build(g);
    return g;
}

static void test_capacity_and_arguments(void)
{
    nn_graph *g = small_graph();
    nn_batcher *bt = batcher(g, 4);
    CU_ASSERT_EQUAL(nn_batcher_max_rows(bt), 4);
    nn_session *s3 = tu_session(g, 3, 1), *s2 = tu_session(g, 2, 2),
               *s1 = tu_session(g, 1, 3);
    nn_error err;

    nn_session *over[2] = {s3, s2};
    CU_ASSERT_EQUAL(nn_session_step_many(bt, over, NULL, 2, &err),
                    NN_ERR_LIMIT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "5 rows"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "at most 4"));
    CU_ASSERT_EQUAL(nn_session_steps(s3), 0);
    CU_ASSERT_EQUAL(nn_session_steps(s2), 0);

    nn_session *many[5] = {s1, s1, s1, s1, s1};
    CU_ASSERT_EQUAL(nn_session_step_many(bt, many, NULL, 5, &err),
                    NN_ERR_LIMIT);
    CU_ASSERT_EQUAL(nn_session_step_many(bt, many, NULL, 2, &err),
                    NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "more than once"));
    /* The check leaves no mark behind: s1 alone steps. */
    CU_ASSERT_EQUAL(nn_session_step_many(bt, many, NULL, 1, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_session_steps(s1), 1);

    nn_session *with_null[2] = {s1, NULL};
    CU_ASSERT_EQUAL(nn_session_step_many(bt, with_null, NULL, 2, &err),
                    NN_ERR_INVALID);
    CU_ASSERT_EQUAL(nn_session_step_many(bt, NULL, NULL, -1, &err),
                    NN_ERR_INVALID);
    CU_ASSERT_EQUAL(nn_session_step_many(bt, NULL, NULL, 0, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_session_steps(s1), 1);

    nn_graph *other = small_graph();
    nn_session *foreign = tu_session(other, 1, 1);
    nn_session *mixed_graphs[2] = {s1, foreign};
    CU_ASSERT_EQUAL(nn_session_step_many(bt, mixed_graphs, NULL, 2, &err),
                    NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "another network"));
    CU_ASSERT_EQUAL(nn_session_steps(s1), 1);

    nn_session_free(foreign);
    nn_graph_free(other);
    nn_session_free(s1);
    nn_session_free(s2);
    nn_session_free(s3);
    nn_batcher_free(bt);
    nn_graph_free(g);
}

static void test_failure_changes_no_session(void)
{
    nn_graph *g = small_graph();
    nn_batcher *bt = batcher(g, 8);
    nn_session *s[3] = {tu_session(g, 1, 1), tu_session(g, 2, 2), tu_session(g, 3, 3)};
    nn_error err;
    for (int i = 0; i < 3; i++)
        fill_inputs(g, s[i], i, 0);
    CU_ASSERT_EQUAL_FATAL(nn_session_step_many(bt, s, NULL, 3, &err), NN_OK);
    float h_before[3][12], out_before[3][12];
    for (int i = 0; i < 3; i++) {
        memcpy(h_before[i], nn_session_state(s[i], "r", 0)->data,
               (size_t)nn_session_batch(s[i]) * 4 * sizeof(float));
        memcpy(out_before[i], nn_session_output(s[i], "r")->data,
               (size_t)nn_session_batch(s[i]) * 4 * sizeof(float));
        fill_inputs(g, s[i], i, 1);
    }
    nn_session_input(s[1], "x")->data[4] = 1000; /* f refuses it */
    CU_ASSERT_EQUAL(nn_session_step_many(bt, s, NULL, 3, &err),
                    NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "session 1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'f'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "input too large"));
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(nn_session_steps(s[i]), 1);
        size_t n = (size_t)nn_session_batch(s[i]) * 4 * sizeof(float);
        /* r ran over the batch before f failed; nothing came back. */
        CU_ASSERT_EQUAL(memcmp(h_before[i], nn_session_state(s[i], "r", 0)
                                                ->data, n), 0);
        CU_ASSERT_EQUAL(memcmp(out_before[i], nn_session_output(s[i], "r")
                                                  ->data, n), 0);
    }
    for (int i = 0; i < 3; i++)
        nn_session_free(s[i]);
    nn_batcher_free(bt);
    nn_graph_free(g);
}

static void test_batcher_new_errors(void)
{
    nn_error err;
    nn_graph *g = tu_graph(reg, 9);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "Reservoir", "r", "num_unit=100", NULL);
    tu_link(g, "x >> r");
    CU_ASSERT_PTR_NULL(nn_batcher_new(g, 4, &err));
    CU_ASSERT_EQUAL(err.code, NN_ERR_STATE);
    CU_ASSERT_EQUAL(nn_graph_set_limits(g, 0, 10000, &err), NN_OK);
    tu_build(g);
    CU_ASSERT_PTR_NULL(nn_batcher_new(g, 0, &err));
    CU_ASSERT_EQUAL(err.code, NN_ERR_INVALID);
    /* A row holds 3 + 100 + 100 + the scratch: 8 rows fit, 64 do not. */
    nn_batcher *b = nn_batcher_new(g, 8, &err);
    CU_ASSERT_PTR_NOT_NULL(b);
    nn_batcher_free(b);
    CU_ASSERT_PTR_NULL(nn_batcher_new(g, 64, &err));
    CU_ASSERT_EQUAL(err.code, NN_ERR_LIMIT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "a batcher of 64 rows"));
    nn_graph_free(g);
}

static void test_batcher_new_out_of_memory(void)
{
    nn_graph *g = tu_graph(reg, 10);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "LSTM", "h", "num_unit=4", NULL);
    tu_node(g, "Dropout", "drop", "prob=0.5", NULL);
    tu_node(g, "Dense", "o", "num_unit=2", NULL);
    tu_link(g, "x >> h >> drop >> o");
    tu_link(g, "h << o");
    tu_build(g);
    nn_error err;
    int failures = 0;
    nn_batcher *b = NULL;
    for (uint64_t k = 1; k < 200 && !b; k++) {
        nn_alloc_fail_after(k);
        b = nn_batcher_new(g, 5, &err);
        nn_alloc_fail_after(0);
        if (!b) {
            CU_ASSERT_EQUAL(err.code, NN_ERR_NOMEM);
            failures++;
        }
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT(failures > 10); /* every allocation of the batcher was hit */
    /* The batcher that finally came works. */
    nn_session *s = tu_session(g, 2, 1);
    fill_inputs(g, s, 0, 0);
    CU_ASSERT_EQUAL(nn_session_step_many(b, &s, NULL, 1, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_session_steps(s), 1);
    nn_session_free(s);
    nn_batcher_free(b);
    nn_graph_free(g);
}

int main(void)
{
    nn_error err;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &err) != NN_OK)
        return 2;
    n_builtins = nn_registry_count(reg);
    if (tn_register_all(reg, &err) != NN_OK ||
        nn_register_type(reg, &t_step, &err) != NN_OK ||
        nn_register_type(reg, &t_fail, &err) != NN_OK)
        return 2;
    static const tu_test tests[] = {
        {"Dense", test_dense},
        {"VanillaRNN, LSTM, GRU", test_recurrent_cells},
        {"Reservoir dense and sparse, with and without noise",
         test_reservoirs},
        {"Reservoir with ReservoirPy's options", test_reservoir_options},
        {"NVAR", test_nvar},
        {"feedback edges", test_feedback},
        {"Dropout in training keeps each session's masks",
         test_dropout_in_training},
        {"the stateless row-wise types together",
         test_rowwise_types_together},
        {"types that read the step run per session",
         test_plugin_types_run_per_session},
        {"every built-in type but Dropout is row-wise",
         test_every_builtin_but_dropout_is_rowwise},
        {"capacity and argument errors", test_capacity_and_arguments},
        {"a failing node changes no session",
         test_failure_changes_no_session},
        {"nn_batcher_new refusals", test_batcher_new_errors},
        {"nn_batcher_new out of memory", test_batcher_new_out_of_memory},
        {NULL, NULL}};
    int rc = tu_run_suite("batch", tests);
    nn_registry_free(reg);
    return rc;
}
