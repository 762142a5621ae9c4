/*
 * test_bidir.c — bidirectional recurrent nodes and the node-by-node run of
 * graphs that hold one: a run of a chain with stateful nodes before and
 * after a bidirectional one equals the chain run piece by piece; gradients
 * through it agree with finite differences; BPTT fits it; running out of
 * memory anywhere is a clean NN_ERR_NOMEM; and everything
 * that would need it one step at a time (steps, batched steps, feedback,
 * readout fits, windowed BPTT) is refused naming the node.
 */
#include "nn_train.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { B = 2, T = 5, F = 3 };

static nn_registry *reg;

/* The run of a fresh session of g over x (B, T, ...): its one exit. */
static nn_tensor *run_fresh(nn_graph *g, const char *input, nn_tensor *x)
{
    nn_error err;
    nn_session *s = nn_session_new(g, B, 1, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    nn_binding bind = {input, x};
    nn_tensor *out[1] = {NULL};
    int rc = nn_session_run(s, &bind, 1, T, 0, out, &err);
    if (rc != NN_OK)
        fprintf(stderr, "run: %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
    CU_ASSERT_EQUAL(nn_session_steps(s), T);
    nn_session_free(s);
    return out[0];
}

static void assert_same(const nn_tensor *a, const nn_tensor *b, double tol)
{
    CU_ASSERT_FATAL(nn_shape_equal(&a->shape, &b->shape));
    int bad = 0;
    double peak = 0;
    for (size_t k = 0; k < nn_tensor_numel(a); k++) {
        bad += fabs(a->data[k] - b->data[k]) > tol;
        peak = fmax(peak, fabs(b->data[k]));
    }
    CU_ASSERT(peak > 1e-3); /* all zeros would prove nothing */
    CU_ASSERT_EQUAL(bad, 0);
}

/* x >> l(LSTM) >> b(bidirectional GRU) >> r(VanillaRNN) >> o(Dense), run
 * node by node, equals l, then b, then r >> o run as graphs of their own:
 * the stateful nodes around b still go through time in order. Weights
 * depend on the seed and node names alone, so each piece has the same. */
static void test_run_equals_pieces(void)
{
    int dims[3] = {B, T, F};
    nn_tensor *x = tu_wave(3, dims, 0.9f, 0.3f);

    nn_graph *g = tu_graph(reg, 7);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "LSTM", "l", "num_unit=4", NULL);
    tu_node(g, "GRU", "b", "num_unit=3", "bidirectional=true", NULL);
    tu_node(g, "VanillaRNN", "r", "num_unit=5", "activation=tanh", NULL);
    tu_node(g, "Dense", "o", "num_unit=2", NULL);
    tu_link(g, "x >> l >> b >> r >> o");
    tu_build(g);
    CU_ASSERT_PTR_EQUAL(nn_graph_sequence_node(g), nn_graph_find(g, "b"));
    CU_ASSERT_EQUAL(nn_node_output_shape(nn_graph_find(g, "b")).dims[0], 6);
    CU_ASSERT_EQUAL(nn_node_state_count(nn_graph_find(g, "b")), 0);
    nn_tensor *whole = run_fresh(g, "x", x);

    nn_graph *g1 = tu_graph(reg, 7);
    tu_node(g1, "Input", "x", "shape=3", NULL);
    tu_node(g1, "LSTM", "l", "num_unit=4", NULL);
    tu_link(g1, "x >> l");
    tu_build(g1);
    CU_ASSERT_PTR_NULL(nn_graph_sequence_node(g1));
    nn_tensor *y1 = run_fresh(g1, "x", x);

    nn_graph *g2 = tu_graph(reg, 7);
    tu_node(g2, "Input", "y", "shape=4", NULL);
    tu_node(g2, "GRU", "b", "num_unit=3", "bidirectional=true", NULL);
    tu_link(g2, "y >> b");
    tu_build(g2);
    nn_tensor *y2 = run_fresh(g2, "y", y1);

    nn_graph *g3 = tu_graph(reg, 7);
    tu_node(g3, "Input", "z", "shape=6", NULL);
    tu_node(g3, "VanillaRNN", "r", "num_unit=5", "activation=tanh", NULL);
    tu_node(g3, "Dense", "o", "num_unit=2", NULL);
    tu_link(g3, "z >> r >> o");
    tu_build(g3);
    nn_tensor *y3 = run_fresh(g3, "z", y2);

    assert_same(whole, y3, 1e-6);

    /* The reverse half at the last step has read only that step: it is
     * GRU(x_T) from zero, whatever came before; the forward half at the
     * first step likewise. Changing the first input changes the reverse
     * half at t = 0 but not at t = T - 1. */
    nn_tensor *y1b = nn_tensor_new(&y1->shape);
    memcpy(y1b->data, y1->data, nn_tensor_numel(y1) * sizeof(float));
    for (int b = 0; b < B; b++)
        y1b->data[(size_t)b * T * 4] += 0.5f; /* t = 0, feature 0 */
    nn_tensor *y2b = run_fresh(g2, "y", y1b);
    for (int b = 0; b < B; b++) {
        const float *last = y2->data + ((size_t)b * T + T - 1) * 6;
        const float *last_b = y2b->data + ((size_t)b * T + T - 1) * 6;
        const float *first = y2->data + (size_t)b * T * 6;
        const float *first_b = y2b->data + (size_t)b * T * 6;
        for (int j = 3; j < 6; j++) {
            CU_ASSERT_EQUAL(last[j], last_b[j]);
            CU_ASSERT(fabsf(first[j] - first_b[j]) > 1e-6f);
        }
    }
    nn_tensor_free(y1b);
    nn_tensor_free(y2b);

    nn_tensor_free(whole);
    nn_tensor_free(y1);
    nn_tensor_free(y2);
    nn_tensor_free(y3);
    nn_tensor_free(x);
    nn_graph_free(g);
    nn_graph_free(g1);
    nn_graph_free(g2);
    nn_graph_free(g3);
}

/* Gradients through each bidirectional cell, with layers before (whose
 * gradient arrives through the sequence node's dff) and after. */
static void test_gradients(void)
{
    static const char *const types[] = {"VanillaRNN", "LSTM", "GRU"};
    for (int k = 0; k < 3; k++) {
        nn_graph *g = tu_graph(reg, 11);
        tu_node(g, "Input", "x", "shape=3", NULL);
        tu_node(g, "Dense", "d", "num_unit=4", "b_initializer=Normal(0, 0.3)",
                NULL);
        tu_node(g, types[k], "b", "num_unit=3", "bidirectional=true", NULL);
        tu_node(g, "Dense", "o", "num_unit=2", NULL);
        nn_error err;
        if (k == 0)
            CU_ASSERT_EQUAL(nn_node_set_param(nn_graph_find(g, "b"),
                                              "activation", "tanh", &err),
                            NN_OK);
        tu_link(g, "x >> d >> b >> o");
        tu_build(g);
        tu_fd_opts o = {4, 0, 0};
        tu_check_gradients(g, "x", 3, &o, types[k]);
        nn_graph_free(g);
    }
    /* Two bidirectional layers, as num_layers=2: the second reads the
     * first's whole output sequence, and its input gradient reaches the
     * first's weights. */
    nn_graph *g = tu_graph(reg, 13);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "GRU", "b1", "num_unit=3", "bidirectional=true", NULL);
    tu_node(g, "LSTM", "b2", "num_unit=2", "bidirectional=true", NULL);
    tu_node(g, "Dense", "o", "num_unit=2", NULL);
    tu_link(g, "x >> b1 >> b2 >> o");
    tu_build(g);
    tu_fd_opts o = {4, 0, 0};
    tu_check_gradients(g, "x", 3, &o, "two bidirectional layers");
    nn_graph_free(g);
    /* Several inputs, concatenated as for any cell. */
    g = tu_graph(reg, 17);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "Dense", "d", "num_unit=2", NULL);
    tu_node(g, "Dense", "e", "num_unit=3", NULL);
    tu_node(g, "VanillaRNN", "b", "num_unit=3", "bidirectional=true",
            "activation=tanh", "two_biases=true", NULL);
    tu_node(g, "Dense", "o", "num_unit=1", NULL);
    tu_link(g, "x >> {d, e} >> b >> o");
    tu_build(g);
    CU_ASSERT_EQUAL(nn_node_weight_at(nn_graph_find(g, "b"), 0)->shape.dims[0],
                    5);
    tu_check_gradients(g, "x", 3, &o, "two inputs, two biases");
    nn_graph_free(g);
}

/* x >> b(bidirectional LSTM) >> o: a few epochs of BPTT lower the loss. */
static void test_fit(void)
{
    nn_graph *g = tu_graph(reg, 3);
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_node(g, "LSTM", "b", "num_unit=4", "bidirectional=true", NULL);
    tu_node(g, "Dense", "o", "num_unit=1", NULL);
    tu_link(g, "x >> b >> o");
    tu_build(g);
    int xd[3] = {4, 6, 2}, yd[3] = {4, 6, 1};
    nn_tensor *x = tu_wave(3, xd, 1.0f, 0.2f);
    nn_tensor *y = tu_wave(3, yd, 0.5f, 1.1f);
    nn_fit_opts fo = nn_fit_defaults();
    fo.epochs = 40;
    fo.optim.lr = 0.1;
    fo.optim.kind = NN_OPTIM_ADAM;
    nn_binding bin = {"x", x}, btg = {"o", y};
    double history[40];
    nn_error err;
    int rc = nn_fit_bptt(g, &bin, 1, &btg, 1, &fo, history, NULL, &err);
    if (rc != NN_OK)
        fprintf(stderr, "fit: %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
    CU_ASSERT(history[39] < 0.8 * history[0]);

    /* A window shorter than the sequences would cut them. */
    fo.window = 3;
    CU_ASSERT_EQUAL(nn_fit_bptt(g, &bin, 1, &btg, 1, &fo, NULL, NULL, &err),
                    NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "node 'b' (LSTM) is "
                                           "bidirectional"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "window"));
    fo.window = 6; /* the whole sequence is fine */
    fo.epochs = 1;
    CU_ASSERT_EQUAL(nn_fit_bptt(g, &bin, 1, &btg, 1, &fo, NULL, NULL, &err),
                    NN_OK);
    /* Readout fits go step by step. */
    CU_ASSERT_EQUAL(nn_readouts_check(g, &btg, 1, NULL, &err), NN_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "node 'b'"));
    /* So does intrinsic plasticity. */
    CU_ASSERT_EQUAL(nn_ip_check(g, &err), NN_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "node 'b' (LSTM)"));
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_graph_free(g);
}

/* Steps, batched steps and feedback are refused naming the node. */
static void test_refusals(void)
{
    nn_graph *g = tu_graph(reg, 3);
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_node(g, "GRU", "b", "num_unit=4", "bidirectional=true", NULL);
    tu_node(g, "Dense", "o", "num_unit=1", NULL);
    tu_link(g, "x >> b >> o");
    tu_build(g);
    nn_error err;
    nn_session *s = nn_session_new(g, B, 1, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(nn_session_step(s, 0, &err), NN_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "node 'b' (GRU) is "
                                           "bidirectional and needs whole "
                                           "sequences"));
    CU_ASSERT_EQUAL(nn_session_steps(s), 0);
    nn_batcher *bt = nn_batcher_new(g, 8, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bt);
    nn_session *both[2] = {s, s};
    CU_ASSERT_EQUAL(nn_session_step_many(bt, both, NULL, 1, &err),
                    NN_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "node 'b'"));
    nn_batcher_free(bt);
    nn_session_free(s);
    nn_graph_free(g);

    /* Feedback into the bidirectional node itself... */
    g = tu_graph(reg, 3);
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_node(g, "LSTM", "b", "num_unit=4", "bidirectional=true", NULL);
    tu_node(g, "Dense", "o", "num_unit=1", NULL);
    tu_link(g, "x >> b >> o");
    tu_link(g, "b << o");
    CU_ASSERT_NOT_EQUAL(nn_graph_build(g, &err), NN_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bidirectional LSTM takes no "
                                           "feedback"));
    nn_graph_free(g);
    /* ... or anywhere else in its graph. */
    g = tu_graph(reg, 3);
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_node(g, "VanillaRNN", "r", "num_unit=3", NULL);
    tu_node(g, "VanillaRNN", "b", "num_unit=4", "bidirectional=true", NULL);
    tu_node(g, "Dense", "o", "num_unit=1", NULL);
    tu_link(g, "x >> r >> b >> o");
    tu_link(g, "r << o");
    CU_ASSERT_EQUAL(nn_graph_build(g, &err), NN_ERR_GRAPH);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "node 'b' (VanillaRNN)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'r' receives feedback from "
                                           "'o'"));
    nn_graph_free(g);
}

/* Types that ask for whole sequences without being able to run them, or
 * that declare state besides, are defective: the build says so. */
static int bad_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                       nn_error *err)
{
    (void)n_ff;
    nn_node_set_output_shape(node, &ff[0]);
    nn_node_set_sequence(node, 1);
    if (strcmp(nn_node_type_of(node)->name, "TSeqState") == 0)
        return nn_node_add_state(node, "s", &ff[0], err) < 0 ? err->code
                                                             : NN_OK;
    return NN_OK;
}

static int bad_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                       const nn_tensor *fb, int n_fb, nn_tensor *out,
                       nn_ctx *ctx)
{
    (void)node, (void)ff, (void)n_ff, (void)fb, (void)n_fb, (void)ctx;
    nn_tensor_zero(out);
    return NN_OK;
}

static int bad_forward_seq(nn_node *node, const nn_tensor *ff, int n_ff,
                           nn_tensor *out, nn_ctx *ctx)
{
    return bad_forward(node, ff, n_ff, NULL, 0, out, ctx);
}

static const nn_node_type t_no_seq = {
    .api_version = NN_API_VERSION,
    .name = "TSeqNoHook",
    .init_ff = bad_init_ff,
    .forward = bad_forward,
};
static const nn_node_type t_seq_state = {
    .api_version = NN_API_VERSION,
    .name = "TSeqState",
    .init_ff = bad_init_ff,
    .forward = bad_forward,
    .forward_seq = bad_forward_seq,
};

static void test_defective_types(void)
{
    const char *const types[2] = {"TSeqNoHook", "TSeqState"};
    const char *const why[2] = {"has no forward_seq", "declares some"};
    for (int k = 0; k < 2; k++) {
        nn_graph *g = tu_graph(reg, 1);
        tu_node(g, "Input", "x", "shape=2", NULL);
        tu_node(g, types[k], "s", NULL);
        tu_link(g, "x >> s");
        nn_error err;
        CU_ASSERT_EQUAL(nn_graph_build(g, &err), NN_ERR_INVALID);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "defective"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, why[k]));
        nn_graph_free(g);
    }
}

/* Every allocation of a node-by-node run, a taped one and its backward
 * may fail: each failure is NN_ERR_NOMEM, never a crash, and the
 * sanitizer build checks that nothing leaks. */
static void test_out_of_memory(void)
{
    nn_graph *g = tu_graph(reg, 5);
    tu_node(g, "Input", "x", "shape=3", NULL);
    tu_node(g, "LSTM", "l", "num_unit=3", NULL);
    tu_node(g, "LSTM", "b", "num_unit=2", "bidirectional=true", NULL);
    tu_node(g, "Dense", "o", "num_unit=1", NULL);
    tu_link(g, "x >> l >> b >> o");
    tu_build(g);
    int dims[3] = {B, T, F}, ddims[3] = {B, T, 1};
    nn_tensor *x = tu_wave(3, dims, 0.7f, 0.0f);
    nn_tensor *dy = tu_wave(3, ddims, 1.0f, 0.5f);
    nn_binding bind = {"x", x};
    int failures = 0, succeeded = 0;
    for (uint64_t k = 1; k < 500 && !succeeded; k++) {
        nn_error err;
        memset(&err, 0, sizeof err);
        nn_session *s = nn_session_new(g, B, 1, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        nn_grads *grads = nn_grads_new(g, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(grads);
        nn_tensor *out[1] = {NULL}, *tout[1] = {NULL};
        nn_tape *tape = NULL;
        nn_alloc_fail_after(k);
        int ok = nn_session_run(s, &bind, 1, T, 0, out, &err) == NN_OK &&
                 (tape = nn_tape_new(s, T, &err)) != NULL &&
                 nn_tape_run(tape, &bind, 1, T, 1, tout, &err) == NN_OK &&
                 nn_tape_backward(tape, &dy, grads, &err) == NN_OK;
        nn_alloc_fail_after(0);
        if (ok) {
            succeeded = 1;
        } else {
            failures++;
            CU_ASSERT_EQUAL(err.code, NN_ERR_NOMEM);
        }
        nn_tensor_free(out[0]);
        nn_tensor_free(tout[0]);
        nn_tape_free(tape);
        nn_grads_free(grads);
        nn_session_free(s);
    }
    CU_ASSERT(succeeded);
    CU_ASSERT(failures >= 5);
    nn_tensor_free(x);
    nn_tensor_free(dy);
    nn_graph_free(g);
}

/* The reverse weights are PyTorch's *_reverse under nerved's names, in
 * PyTorch's order: the forward direction's first. */
static void test_weight_names(void)
{
    static const struct {
        const char *type, *extra;
        const char *names[8];
    } cases[] = {
        {"VanillaRNN", "two_biases=false",
         {"Wi", "Wr", "b", "Wi_reverse", "Wr_reverse", "b_reverse"}},
        {"VanillaRNN", "two_biases=true",
         {"Wi", "Wr", "bi", "bh", "Wi_reverse", "Wr_reverse", "bi_reverse",
          "bh_reverse"}},
        {"LSTM", "use_bias=true",
         {"Wi", "Wh", "bi", "bh", "Wi_reverse", "Wh_reverse", "bi_reverse",
          "bh_reverse"}},
        {"GRU", "use_bias=false", {"Wi", "Wh", "Wi_reverse", "Wh_reverse"}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        nn_graph *g = tu_graph(reg, 3);
        tu_node(g, "Input", "x", "shape=2", NULL);
        nn_node *n = tu_node(g, cases[c].type, "b", "num_unit=3",
                             "bidirectional=true", cases[c].extra, NULL);
        tu_link(g, "x >> b");
        tu_build(g);
        int count = 0;
        while (count < 8 && cases[c].names[count])
            count++;
        CU_ASSERT_EQUAL(nn_node_weight_count(n), count);
        for (int w = 0; w < count && w < nn_node_weight_count(n); w++)
            CU_ASSERT_STRING_EQUAL(nn_node_weight_name(n, w),
                                   cases[c].names[w]);
        nn_graph_free(g);
    }
}

int main(void)
{
    nn_error err;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &err) != NN_OK ||
        nn_register_type(reg, &t_no_seq, &err) != NN_OK ||
        nn_register_type(reg, &t_seq_state, &err) != NN_OK)
        return 2;
    static const tu_test tests[] = {
        {"a run node by node equals its pieces", test_run_equals_pieces},
        {"gradients through bidirectional cells", test_gradients},
        {"BPTT fits a bidirectional LSTM", test_fit},
        {"steps, batched steps and feedback are refused", test_refusals},
        {"reverse weights are named as PyTorch's", test_weight_names},
        {"defective sequence types are refused at build",
         test_defective_types},
        {"out of memory anywhere in a run or its backward",
         test_out_of_memory},
        {NULL, NULL}};
    int rc = tu_run_suite("bidirectional", tests);
    nn_registry_free(reg);
    return rc;
}
