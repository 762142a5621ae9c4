/*
 * test_sparse_weight.c — replacing a sparse weight's pattern in the engine:
 * the checks of nn_sparse_values_new, the parameter count and cap, a swap
 * and its undo, copies between graphs whose patterns differ, and sessions
 * and a batcher made before the swap stepping on the new pattern (their
 * scratch was sized from the old one), checked against a double loop.
 */
#include "nn_train.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 24
#define IN 2

static nn_graph *reservoir_graph(nn_registry *reg, size_t max_params)
{
    nn_graph *g = tu_graph(reg, 4);
    nn_error e;
    if (max_params)
        CU_ASSERT_EQUAL_FATAL(nn_graph_set_limits(g, max_params, 0, &e),
                              NN_OK);
    tu_node(g, "Input", "x", "shape=2", NULL);
    tu_node(g, "Reservoir", "r", "num_unit=24", "sparse=true",
            "rc_connectivity=0.2", "leaky_rate=0.5", "bias_scaling=1",
            NULL);
    tu_link(g, "x >> r");
    tu_build(g);
    return g;
}

static int w_index(nn_node *r)
{
    for (int w = 0; w < nn_node_weight_count(r); w++)
        if (strcmp(nn_node_weight_name(r, w), "W") == 0)
            return w;
    return -1;
}

/* A pattern of every third entry of each column, shifted by the column,
 * and values from the column and row. */
typedef struct pat {
    size_t ptr[N + 1];
    uint32_t row[N * N];
    float val[N * N];
    size_t nnz;
} pat;

static void make_pat(pat *p, int shift)
{
    p->nnz = 0;
    for (int c = 0; c < N; c++) {
        p->ptr[c] = p->nnz;
        for (int r = (c + shift) % 3; r < N; r += 3) {
            p->row[p->nnz] = (uint32_t)r;
            p->val[p->nnz++] = 0.05f * (float)((r * 7 + c * 3) % 11 - 5);
        }
    }
    p->ptr[N] = p->nnz;
}

static size_t graph_params(nn_graph *g)
{
    size_t n = 0;
    for (int i = 0; i < nn_graph_node_count(g); i++)
        n += nn_node_param_count(nn_graph_node_at(g, i));
    return n;
}

static void expect_refused(nn_node *r, int w, const size_t *ptr,
                           const uint32_t *row, const float *val, size_t nnz,
                           int code, const char *needle)
{
    nn_sparse_values *v = (nn_sparse_values *)1;
    nn_error e;
    CU_ASSERT_EQUAL(nn_sparse_values_new(r, w, ptr, row, val, nnz, &v, &e),
                    code);
    CU_ASSERT_PTR_NULL(v);
    if (!strstr(e.msg, needle))
        fprintf(stderr, "wanted '%s', got '%s'\n", needle, e.msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, needle));
}

static void test_checks(void)
{
    nn_registry *reg = tu_registry();
    nn_graph *g = reservoir_graph(reg, 0);
    nn_node *r = nn_graph_find(g, "r");
    int w = w_index(r);
    pat p;
    make_pat(&p, 0);
    uint32_t row[N * N];
    float val[N * N];
    size_t ptr[N + 1];
    /* Rows out of order within a column. */
    memcpy(row, p.row, sizeof row);
    row[0] = p.row[1], row[1] = p.row[0];
    expect_refused(r, w, p.ptr, row, p.val, p.nnz, NN_ERR_INVALID,
                   "rows must increase strictly");
    /* A row past the matrix. */
    memcpy(row, p.row, sizeof row);
    row[p.nnz - 1] = N;
    expect_refused(r, w, p.ptr, row, p.val, p.nnz, NN_ERR_INVALID,
                   "out of range");
    /* Offsets that do not add up. */
    memcpy(ptr, p.ptr, sizeof ptr);
    ptr[N] = p.nnz - 1;
    expect_refused(r, w, ptr, p.row, p.val, p.nnz, NN_ERR_INVALID,
                   "the last column offset");
    memcpy(ptr, p.ptr, sizeof ptr);
    ptr[3] = ptr[2] - 1;
    expect_refused(r, w, ptr, p.row, p.val, p.nnz, NN_ERR_INVALID,
                   "nondecreasing");
    /* A value that is not finite. */
    memcpy(val, p.val, sizeof val);
    val[5] = NAN;
    expect_refused(r, w, p.ptr, p.row, val, p.nnz, NN_ERR_INVALID,
                   "not finite");
    expect_refused(r, w, p.ptr, p.row, p.val, 0, NN_ERR_INVALID,
                   "at least one entry");
    /* Only a weight stored sparse has a pattern to replace. */
    expect_refused(r, 0, p.ptr, p.row, p.val, p.nnz, NN_ERR_UNSUPPORTED,
                   "not stored sparse");
    nn_graph_free(g);
    nn_registry_free(reg);
}

static void test_count_cap_and_undo(void)
{
    nn_registry *reg = tu_registry();
    nn_graph *probe = reservoir_graph(reg, 0);
    size_t total = graph_params(probe);
    size_t seed_nnz =
        nn_tensor_numel(nn_node_weight(nn_graph_find(probe, "r"), "W"));
    nn_graph_free(probe);
    pat p;
    make_pat(&p, 1);
    /* Exactly room for the new pattern (or the seed's, if larger). */
    size_t need = total - seed_nnz + (p.nnz > seed_nnz ? p.nnz : seed_nnz);
    nn_graph *g = reservoir_graph(reg, need);
    nn_node *r = nn_graph_find(g, "r");
    int w = w_index(r);
    nn_tensor *W = nn_node_weight(r, "W");
    float *seed_vals = malloc(seed_nnz * sizeof *seed_vals);
    memcpy(seed_vals, W->data, seed_nnz * sizeof *seed_vals);
    nn_sparse_values *v;
    nn_error e;
    CU_ASSERT_EQUAL_FATAL(nn_sparse_values_new(r, w, p.ptr, p.row, p.val,
                                               p.nnz, &v, &e), NN_OK);
    CU_ASSERT_EQUAL(nn_sparse_values_nnz(v), p.nnz);
    nn_node_weight_swap_sparse(r, w, v);
    CU_ASSERT_PTR_EQUAL(nn_node_weight(r, "W"), W); /* the same tensor */
    CU_ASSERT_EQUAL(nn_tensor_numel(W), p.nnz);
    CU_ASSERT_EQUAL(memcmp(W->data, p.val, p.nnz * sizeof(float)), 0);
    CU_ASSERT_EQUAL(graph_params(g), total - seed_nnz + p.nnz);
    /* The cap is counted with the new count: a pattern of one entry more
     * than the room is refused, one of exactly the room is taken. */
    size_t room = need - (total - seed_nnz);
    CU_ASSERT_FATAL(room + 1 <= N * N);
    pat more;
    more.nnz = 0;
    for (int c = 0; c < N; c++) {
        more.ptr[c] = more.nnz;
        for (int rr = 0; rr < N && more.nnz < room + 1; rr++) {
            more.row[more.nnz] = (uint32_t)rr;
            more.val[more.nnz++] = 1.0f;
        }
    }
    more.ptr[N] = more.nnz;
    size_t present = nn_tensor_numel(W);
    CU_ASSERT_EQUAL(nn_graph_params_fit(g, present, room + 1, &e),
                    NN_ERR_LIMIT);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "its limit"));
    CU_ASSERT_EQUAL(nn_graph_params_fit(g, present, room, &e), NN_OK);
    /* A count past the cap by itself is refused when it is packed. */
    CU_ASSERT_FATAL(need < N * N);
    pat all;
    all.nnz = 0;
    for (int c = 0; c < N; c++) {
        all.ptr[c] = all.nnz;
        for (int rr = 0; rr < N; rr++) {
            all.row[all.nnz] = (uint32_t)rr;
            all.val[all.nnz++] = 1.0f;
        }
    }
    all.ptr[N] = all.nnz;
    expect_refused(r, w, all.ptr, all.row, all.val, all.nnz, NN_ERR_LIMIT,
                   "its limit");
    /* The swap gave v the seed's pattern: swapping again undoes. */
    nn_node_weight_swap_sparse(r, w, v);
    CU_ASSERT_EQUAL(nn_tensor_numel(W), seed_nnz);
    CU_ASSERT_EQUAL(memcmp(W->data, seed_vals, seed_nnz * sizeof(float)), 0);
    CU_ASSERT_EQUAL(graph_params(g), total);
    nn_sparse_values_free(v);
    free(seed_vals);
    nn_graph_free(g);
    nn_registry_free(reg);
}

/* The states of `steps` steps of the reservoir with pattern p, Win and b
 * from r, in double; input row b of step t is sin(t + 0.5 b + i). */
static void reference(nn_node *r, const pat *p, int batch, int steps,
                      double *out)
{
    const float *win = nn_node_weight(r, "Win")->data;
    const float *bias = nn_node_weight(r, "b")->data;
    for (int b = 0; b < batch; b++) {
        double s[N] = {0}, pre[N];
        for (int t = 0; t < steps; t++) {
            for (int j = 0; j < N; j++) {
                pre[j] = bias[j];
                for (int i = 0; i < IN; i++)
                    pre[j] += (double)(float)sin(t + 0.5 * b + i) *
                              win[i * N + j];
                for (size_t k = p->ptr[j]; k < p->ptr[j + 1]; k++)
                    pre[j] += (double)p->val[k] * s[p->row[k]];
            }
            for (int j = 0; j < N; j++)
                s[j] = 0.5 * s[j] + 0.5 * tanh(pre[j]);
        }
        memcpy(out + (size_t)b * N, s, sizeof s);
    }
}

static void set_inputs(nn_session *s, int batch, int t, int first_row)
{
    float *u = nn_session_input(s, "x")->data;
    for (int b = 0; b < batch; b++)
        for (int i = 0; i < IN; i++)
            u[b * IN + i] = (float)sin(t + 0.5 * (first_row + b) + i);
}

/* Sessions and a batcher made on the seed's pattern step on the new one:
 * batch 17 takes the vector chunk path, whose scratch is the pattern's. */
static void test_sessions_made_before(void)
{
    nn_registry *reg = tu_registry();
    nn_graph *g = reservoir_graph(reg, 0);
    nn_node *r = nn_graph_find(g, "r");
    nn_error e;
    enum { B = 17, STEPS = 4 };
    nn_session *one = nn_session_new(g, B, 1, &e);
    nn_session *a = nn_session_new(g, 9, 1, &e), *b = nn_session_new(g, 8, 1,
                                                                    &e);
    nn_batcher *bat = nn_batcher_new(g, B, &e);
    CU_ASSERT_FATAL(one && a && b && bat);
    pat p;
    make_pat(&p, 2);
    nn_sparse_values *v;
    CU_ASSERT_EQUAL_FATAL(nn_sparse_values_new(r, w_index(r), p.ptr, p.row,
                                               p.val, p.nnz, &v, &e), NN_OK);
    nn_node_weight_swap_sparse(r, w_index(r), v);
    nn_sparse_values_free(v);
    nn_session *both[2] = {a, b};
    for (int t = 0; t < STEPS; t++) {
        set_inputs(one, B, t, 0);
        set_inputs(a, 9, t, 0);
        set_inputs(b, 8, t, 9);
        CU_ASSERT_EQUAL_FATAL(nn_session_step(one, 0, &e), NN_OK);
        CU_ASSERT_EQUAL_FATAL(nn_session_step_many(bat, both, NULL, 2, &e),
                              NN_OK);
    }
    double want[B * N];
    reference(r, &p, B, STEPS, want);
    const float *got = nn_session_output(one, "r")->data;
    const float *ga = nn_session_output(a, "r")->data;
    const float *gb = nn_session_output(b, "r")->data;
    for (int i = 0; i < B * N; i++) {
        double tol = 1e-5 * fabs(want[i]) + 1e-6;
        TU_ASSERT_CLOSE(got[i], want[i], tol);
        TU_ASSERT_CLOSE(i < 9 * N ? ga[i] : gb[i - 9 * N], want[i], tol);
    }
    nn_batcher_free(bat);
    nn_session_free(one);
    nn_session_free(a);
    nn_session_free(b);
    nn_graph_free(g);
    nn_registry_free(reg);
}

/* Copies between two graphs of one definition whose patterns differ take
 * the pattern along, and a clone carries it. */
static void test_copies_carry_the_pattern(void)
{
    nn_registry *reg = tu_registry();
    nn_graph *g = reservoir_graph(reg, 0), *h = reservoir_graph(reg, 0);
    nn_node *r = nn_graph_find(g, "r");
    int w = w_index(r);
    pat p;
    make_pat(&p, 0);
    nn_sparse_values *v;
    nn_error e;
    CU_ASSERT_EQUAL_FATAL(nn_sparse_values_new(r, w, p.ptr, p.row, p.val,
                                               p.nnz, &v, &e), NN_OK);
    nn_node_weight_swap_sparse(r, w, v);
    nn_sparse_values_free(v);
    CU_ASSERT_EQUAL_FATAL(nn_graph_copy_weights(h, g, &e), NN_OK);
    nn_graph *c = nn_graph_clone(g, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    nn_graph *targets[2] = {h, c};
    for (int k = 0; k < 2; k++) {
        nn_node *rr = nn_graph_find(targets[k], "r");
        size_t ptr[N + 1];
        uint32_t row[N * N];
        CU_ASSERT_EQUAL_FATAL(nn_tensor_numel(nn_node_weight(rr, "W")),
                              p.nnz);
        nn_node_weight_pattern(rr, w, ptr, row);
        CU_ASSERT_EQUAL(memcmp(ptr, p.ptr, sizeof ptr), 0);
        CU_ASSERT_EQUAL(memcmp(row, p.row, p.nnz * sizeof *row), 0);
        CU_ASSERT_EQUAL(memcmp(nn_node_weight(rr, "W")->data, p.val,
                               p.nnz * sizeof(float)), 0);
        CU_ASSERT_EQUAL(graph_params(targets[k]), graph_params(g));
    }
    nn_graph_free(c);
    nn_graph_free(g);
    nn_graph_free(h);
    nn_registry_free(reg);
}

int main(void)
{
    static const tu_test tests[] = {
        {"a new pattern is checked", test_checks},
        {"count, cap and undo", test_count_cap_and_undo},
        {"sessions made before step on it", test_sessions_made_before},
        {"copies carry the pattern", test_copies_carry_the_pattern},
        {NULL, NULL}};
    return tu_run_suite("sparse weight", tests);
}
