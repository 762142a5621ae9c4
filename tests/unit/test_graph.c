/*
 * test_graph.c — graph description, validation, build, and compiled runs,
 * with small node types defined here through the public API only.
 */
#include "nn_graph.h"
#include "testnodes.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static nn_registry *make_registry(void)
{
    nn_registry *reg = nn_registry_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(reg);
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(tn_register_all(reg, &err), NN_OK);
    return reg;
}

/* Adds a TIn of the given 1-d size. */
static void add_input(nn_graph *g, const char *name, const char *shape)
{
    nn_error err;
    nn_node *node = nn_graph_add_node(g, "TIn", name, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(node);
    CU_ASSERT_EQUAL_FATAL(nn_node_set_param(node, "shape", shape, &err), NN_OK);
}

static void add(nn_graph *g, const char *type, const char *name)
{
    nn_error err;
    CU_ASSERT_PTR_NOT_NULL_FATAL(nn_graph_add_node(g, type, name, &err));
}

static void link_ok(nn_graph *g, const char *expr)
{
    nn_error err;
    int rc = nn_graph_link(g, expr, &err);
    if (rc != NN_OK)
        fprintf(stderr, "link '%s': %s\n", expr, err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
}

/* Asserts that building fails with code and that msg contains each needle. */
static void expect_build_error(nn_graph *g, int code, const char *n1,
                               const char *n2, const char *n3)
{
    nn_error err;
    memset(&err, 0, sizeof err);
    int rc = nn_graph_build(g, &err);
    CU_ASSERT_EQUAL(rc, code);
    const char *needles[] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (needles[i] && !strstr(err.msg, needles[i])) {
            fprintf(stderr, "message '%s' lacks '%s'\n", err.msg, needles[i]);
            CU_FAIL("error message lacks a name");
        }
}

/* ------------------------------------------------------------- tests */

static void test_shape_consistency(void)
{
    nn_error err;
    nn_shape shapes[3] = {nn_shape2(4, 1), nn_shape2(4, 2), nn_shape2(4, 3)};
    nn_shape lead;
    int sizes[3], total;
    CU_ASSERT_EQUAL(nn_check_shape_consistency(shapes, 3, NULL, &lead, sizes,
                                               &total, &err), NN_OK);
    CU_ASSERT_EQUAL(lead.ndim, 1);
    CU_ASSERT_EQUAL(lead.dims[0], 4);
    CU_ASSERT_EQUAL(sizes[0], 1);
    CU_ASSERT_EQUAL(sizes[2], 3);
    CU_ASSERT_EQUAL(total, 6);

    const char *labels[3] = {"i1", "i2", "odd"};
    shapes[2] = nn_shape2(5, 3);
    CU_ASSERT_EQUAL(nn_check_shape_consistency(shapes, 3, labels, &lead, NULL,
                                               NULL, &err), NN_ERR_SHAPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'odd'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "(5, 3)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "(4, 1)"));

    shapes[2] = nn_shape1(3);
    CU_ASSERT_EQUAL(nn_check_shape_consistency(shapes, 3, labels, &lead, NULL,
                                               NULL, &err), NN_ERR_SHAPE);
}

static void test_link_and_order(void)
{
    nn_registry *reg = make_registry();
    nn_graph *g = nn_graph_new(reg, 1);
    add_input(g, "i1", "2");
    add_input(g, "i2", "3");
    add_input(g, "i3", "1");
    add(g, "TCat", "c");
    add(g, "TAdd", "x");
    add(g, "TAdd", "y");
    /* Declared order i3, i1, i2 must be the concatenation order. */
    link_ok(g, "i3 >> c");
    link_ok(g, "{i1, i2} >> c >> {x, y}");
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_graph_build(g, &err), NN_OK);
    nn_node *c = nn_graph_find(g, "c");
    CU_ASSERT_EQUAL(nn_node_ff_count(c), 3);
    CU_ASSERT_STRING_EQUAL(nn_node_name(nn_node_ff_at(c, 0)), "i3");
    CU_ASSERT_STRING_EQUAL(nn_node_name(nn_node_ff_at(c, 1)), "i1");
    CU_ASSERT_STRING_EQUAL(nn_node_name(nn_node_ff_at(c, 2)), "i2");
    CU_ASSERT_EQUAL(nn_node_output_shape(c).dims[0], 6);
    CU_ASSERT_EQUAL(nn_graph_entry_count(g), 3);
    CU_ASSERT_EQUAL(nn_graph_exit_count(g), 2);
    CU_ASSERT_STRING_EQUAL(nn_node_name(nn_graph_exit_at(g, 0)), "x");
    CU_ASSERT_STRING_EQUAL(nn_node_name(nn_graph_exit_at(g, 1)), "y");

    /* Execution order puts every node after its inputs. */
    int pos[16];
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        nn_node *n = nn_graph_order_at(g, i);
        for (int k = 0; k < nn_graph_node_count(g); k++)
            if (nn_graph_node_at(g, k) == n)
                pos[k] = i;
    }
    for (int k = 0; k < nn_graph_node_count(g); k++) {
        nn_node *n = nn_graph_node_at(g, k);
        for (int e = 0; e < nn_node_ff_count(n); e++)
            for (int j = 0; j < nn_graph_node_count(g); j++)
                if (nn_graph_node_at(g, j) == nn_node_ff_at(n, e))
                    CU_ASSERT(pos[j] < pos[k]);
    }

    /* Values: c = [i3, i1, i2] for batch 2. */
    nn_session *s = nn_session_new(g, 2, 7, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    float v1[] = {1, 2, 10, 20}, v2[] = {3, 4, 5, 30, 40, 50}, v3[] = {9, 90};
    memcpy(nn_session_input(s, "i1")->data, v1, sizeof v1);
    memcpy(nn_session_input(s, "i2")->data, v2, sizeof v2);
    memcpy(nn_session_input(s, "i3")->data, v3, sizeof v3);
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
    const nn_tensor *out = nn_session_output(s, "y");
    float expect[] = {9, 1, 2, 3, 4, 5, 90, 10, 20, 30, 40, 50};
    CU_ASSERT_EQUAL(out->shape.ndim, 2);
    CU_ASSERT_EQUAL(out->shape.dims[0], 2);
    CU_ASSERT_EQUAL(out->shape.dims[1], 6);
    for (int j = 0; j < 12; j++)
        CU_ASSERT_EQUAL(out->data[j], expect[j]);
    CU_ASSERT_PTR_NULL(nn_session_input(s, "c"));
    nn_session_free(s);
    nn_graph_free(g);
    nn_registry_free(reg);
}

static void test_auto_names(void)
{
    nn_registry *reg = make_registry();
    nn_graph *g = nn_graph_new(reg, 1);
    nn_error err;
    nn_node *a = nn_graph_add_node(g, "TAdd", NULL, &err);
    nn_node *b = nn_graph_add_node(g, "TAdd", "", &err);
    nn_node *c = nn_graph_add_node(g, "TCat", NULL, &err);
    CU_ASSERT_STRING_EQUAL(nn_node_name(a), "TAdd0");
    CU_ASSERT_STRING_EQUAL(nn_node_name(b), "TAdd1");
    CU_ASSERT_STRING_EQUAL(nn_node_name(c), "TCat0");
    /* A user name that collides with the next automatic one is skipped. */
    add(g, "TAdd", "TAdd2");
    nn_node *d = nn_graph_add_node(g, "TAdd", NULL, &err);
    CU_ASSERT_STRING_EQUAL(nn_node_name(d), "TAdd3");
    nn_graph_free(g);
    nn_registry_free(reg);
}

static void test_description_errors(void)
{
    nn_registry *reg = make_registry();
    nn_graph *g = nn_graph_new(reg, 1);
    nn_error err;
    add_input(g, "i", "2");
    add(g, "TAdd", "a");

    CU_ASSERT_PTR_NULL(nn_graph_add_node(g, "Nope", "z", &err));
    CU_ASSERT_EQUAL(err.code, NN_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'Nope'"));

    CU_ASSERT_PTR_NULL(nn_graph_add_node(g, "TAdd", "a", &err));
    CU_ASSERT_EQUAL(err.code, NN_ERR_EXISTS);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'a'"));

    CU_ASSERT_PTR_NULL(nn_graph_add_node(g, "TAdd", "1bad", &err));
    CU_ASSERT_EQUAL(err.code, NN_ERR_INVALID);
    CU_ASSERT_PTR_NULL(nn_graph_add_node(g, "TAdd", "a b", &err));
    CU_ASSERT_PTR_NULL(nn_graph_add_node(g, "TAdd", "a>>b", &err));

    CU_ASSERT_EQUAL(nn_graph_ff(g, "i", "ghost", &err), NN_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'ghost'"));
    CU_ASSERT_EQUAL(nn_graph_fb(g, "ghost2", "a", &err), NN_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'ghost2'"));

    CU_ASSERT_EQUAL(nn_graph_ff(g, "i", "a", &err), NN_OK);
    CU_ASSERT_EQUAL(nn_graph_ff(g, "i", "a", &err), NN_ERR_GRAPH);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "i >> a"));

    nn_node *a = nn_graph_find(g, "a");
    CU_ASSERT_EQUAL(nn_node_set_param(a, "gian", "1", &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'gian'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "gain"));
    CU_ASSERT_EQUAL(nn_node_set_param(a, "gain", "11", &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'gain'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'a'"));
    CU_ASSERT_EQUAL(nn_node_set_param(a, "gain", "nan", &err), NN_ERR_INVALID);
    CU_ASSERT_EQUAL(nn_node_set_param(a, "gain", "1e400", &err),
                    NN_ERR_INVALID);
    CU_ASSERT_EQUAL(nn_node_set_param(a, "gain", "2x", &err), NN_ERR_INVALID);
    CU_ASSERT_EQUAL(nn_node_set_param(a, "gain", "-2.5", &err), NN_OK);
    CU_ASSERT_STRING_EQUAL(nn_node_param_text(a, "gain"), "-2.5");
    CU_ASSERT_EQUAL(nn_node_set_param(a, "trainable", "maybe", &err),
                    NN_ERR_INVALID);
    nn_node *i = nn_graph_find(g, "i");
    CU_ASSERT_EQUAL(nn_node_set_param(i, "shape", "0", &err), NN_ERR_INVALID);
    CU_ASSERT_EQUAL(nn_node_set_param(i, "shape", "[2, x]", &err),
                    NN_ERR_INVALID);
    CU_ASSERT_EQUAL(nn_node_set_param(i, "shape", "[2, 3]", &err), NN_OK);
    CU_ASSERT_STRING_EQUAL(nn_node_param_text(i, "shape"), "2,3");
    nn_graph_free(g);
    nn_registry_free(reg);
}

static void test_link_errors_leave_graph_unchanged(void)
{
    nn_registry *reg = make_registry();
    nn_graph *g = nn_graph_new(reg, 1);
    nn_error err;
    add_input(g, "i", "2");
    add(g, "TAdd", "a");
    add(g, "TAdd", "b");

    const char *bad[] = {"", "a", "a >>", ">> a", "a > b", "{a, b >> c",
                         "{} >> a", "a >> {b,}", "a >> b extra", "a <<< b"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        CU_ASSERT_EQUAL(nn_graph_link(g, bad[k], &err), NN_ERR_INVALID);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "position"));
    }
    /* The first edges exist, the last names an unknown node: all undone. */
    CU_ASSERT_EQUAL(nn_graph_link(g, "i >> {a, b} >> zzz", &err),
                    NN_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'zzz'"));
    CU_ASSERT_EQUAL(nn_node_ff_count(nn_graph_find(g, "a")), 0);
    CU_ASSERT_EQUAL(nn_node_ff_count(nn_graph_find(g, "b")), 0);
    link_ok(g, "i >> {a, b}");
    CU_ASSERT_EQUAL(nn_graph_link(g, "a << b << zzz", &err), NN_ERR_NOT_FOUND);
    CU_ASSERT_EQUAL(nn_node_fb_count(nn_graph_find(g, "a")), 0);
    nn_graph_free(g);
    nn_registry_free(reg);
}

static void test_validation_errors(void)
{
    nn_registry *reg = make_registry();
    nn_error err;

    /* Empty graph. */
    nn_graph *g = nn_graph_new(reg, 1);
    expect_build_error(g, NN_ERR_GRAPH, "no nodes", NULL, NULL);
    nn_graph_free(g);

    /* Required parameter missing. */
    g = nn_graph_new(reg, 1);
    add(g, "TIn", "i");
    add(g, "TAdd", "a");
    link_ok(g, "i >> a");
    expect_build_error(g, NN_ERR_INVALID, "'i'", "'shape'", "required");
    nn_graph_free(g);

    /* An input with an incoming edge. */
    g = nn_graph_new(reg, 1);
    add_input(g, "i", "2");
    add_input(g, "j", "2");
    add(g, "TAdd", "a");
    link_ok(g, "i >> a >> j");
    expect_build_error(g, NN_ERR_GRAPH, "'j'", "'a'", "incoming");
    nn_graph_free(g);

    /* No input at all. */
    g = nn_graph_new(reg, 1);
    add(g, "TAdd", "a");
    add(g, "TAdd", "b");
    link_ok(g, "a >> b");
    expect_build_error(g, NN_ERR_GRAPH, "'a'", "no feedforward input", NULL);
    nn_graph_free(g);

    /* An input that feeds nothing is not an output. */
    g = nn_graph_new(reg, 1);
    add_input(g, "i", "2");
    expect_build_error(g, NN_ERR_GRAPH, "'i'", "feeds no node", NULL);
    nn_graph_free(g);

    /* A feedforward cycle is named node by node. */
    g = nn_graph_new(reg, 1);
    add_input(g, "i", "2");
    add(g, "TAdd", "a");
    add(g, "TAdd", "b");
    add(g, "TAdd", "c");
    add(g, "TAdd", "out");
    link_ok(g, "i >> a >> b >> c >> a");
    link_ok(g, "c >> out");
    expect_build_error(g, NN_ERR_GRAPH, "cycle", "a >> b >> c >> a", NULL);
    nn_graph_free(g);

    /* A self loop is a cycle too. */
    g = nn_graph_new(reg, 1);
    add_input(g, "i", "2");
    add(g, "TAdd", "a");
    add(g, "TAdd", "o");
    link_ok(g, "i >> a >> a");
    link_ok(g, "a >> o");
    expect_build_error(g, NN_ERR_GRAPH, "cycle", "a >> a", NULL);
    nn_graph_free(g);

    /* Feedback into a type without init_fb. */
    g = nn_graph_new(reg, 1);
    add_input(g, "i", "2");
    add(g, "TNoFb", "d");
    add(g, "TAdd", "o");
    link_ok(g, "i >> d >> o");
    link_ok(g, "d << o");
    expect_build_error(g, NN_ERR_GRAPH, "'d'", "does not support feedback",
                       "d << o");
    nn_graph_free(g);

    /* Feedback whose receiver has no ff path to the sender. */
    g = nn_graph_new(reg, 1);
    add_input(g, "i", "2");
    add(g, "TAdd", "a");
    add(g, "TAdd", "b");
    link_ok(g, "i >> {a, b}");
    link_ok(g, "a << b");
    expect_build_error(g, NN_ERR_GRAPH, "'a' has no feedforward path to 'b'",
                       "a << b", NULL);
    nn_graph_free(g);

    /* Shape mismatch reported by init_ff, prefixed with the node. */
    g = nn_graph_new(reg, 1);
    add_input(g, "i", "2");
    add_input(g, "j", "3");
    add(g, "TAdd", "sum");
    link_ok(g, "{i, j} >> sum");
    expect_build_error(g, NN_ERR_SHAPE, "node 'sum' (TAdd)", "differ", NULL);
    /* A failed init cannot be retried or extended. */
    CU_ASSERT_EQUAL(nn_graph_build(g, &err), NN_ERR_STATE);
    CU_ASSERT_PTR_NULL(nn_graph_add_node(g, "TAdd", "more", &err));
    nn_graph_free(g);

    /* Shape mismatch from the shared helper names both inputs. */
    g = nn_graph_new(reg, 1);
    add_input(g, "i", "[2, 3]");
    add_input(g, "j", "[4, 3]");
    add(g, "TCat", "cat");
    link_ok(g, "{i, j} >> cat");
    expect_build_error(g, NN_ERR_SHAPE, "'i' (2, 3)", "'j' (4, 3)", "'cat'");
    nn_graph_free(g);

    /* Every feedback edge of a receiver is checked, not just the first. */
    g = nn_graph_new(reg, 1);
    add_input(g, "i", "2");
    add_input(g, "j", "3");
    add(g, "TAdd", "r");
    add(g, "TCat", "o");
    link_ok(g, "i >> r");
    link_ok(g, "{r, j} >> o");
    link_ok(g, "r << {o, i}");
    /* i has no path from r: caught before shapes. */
    expect_build_error(g, NN_ERR_GRAPH, "r << i", NULL, NULL);
    nn_graph_free(g);
    nn_registry_free(reg);
}

static void test_feedback_timing(void)
{
    nn_registry *reg = make_registry();
    nn_graph *g = nn_graph_new(reg, 1);
    nn_error err;
    add_input(g, "i", "1");
    add(g, "TAdd", "r");
    add(g, "TAdd", "o");
    link_ok(g, "i >> r >> o");
    link_ok(g, "r << o");
    CU_ASSERT_EQUAL_FATAL(nn_graph_build(g, &err), NN_OK);
    nn_session *s = nn_session_new(g, 1, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    nn_tensor *in = nn_session_input(s, "i");
    /* r_t = x_t + o_{t-1}, o_t = r_t, o_{-1} = 0. */
    float xs[] = {1, 10, 100, 1000};
    float expect_r[] = {1, 11, 111, 1111};
    for (int t = 0; t < 4; t++) {
        in->data[0] = xs[t];
        CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
        CU_ASSERT_EQUAL(nn_session_output(s, "r")->data[0], expect_r[t]);
    }
    CU_ASSERT_EQUAL(nn_session_steps(s), 4);
    /* After reset the feedback starts from zeros again. */
    CU_ASSERT_EQUAL(nn_session_reset(s, &err), NN_OK);
    in->data[0] = 5;
    CU_ASSERT_EQUAL(nn_session_step(s, 0, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_session_output(s, "r")->data[0], 5);
    nn_session_free(s);
    nn_graph_free(g);
    nn_registry_free(reg);
}

/* A checkpoint restores a session through these: feedback comes from the
 * output buffers, so writing them into a fresh session is enough for its
 * next step to equal the original's. */
static void test_session_carry_can_be_restored(void)
{
    nn_registry *reg = make_registry();
    nn_graph *g = nn_graph_new(reg, 1);
    nn_error err;
    add_input(g, "i", "1");
    add(g, "TAdd", "r");
    add(g, "TAdd", "o");
    link_ok(g, "i >> r >> o");
    link_ok(g, "r << o");
    CU_ASSERT_EQUAL_FATAL(nn_graph_build(g, &err), NN_OK);
    nn_session *a = nn_session_new(g, 1, 7, &err);
    nn_session *b = nn_session_new(g, 1, 7, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    float xs[] = {1, 10};
    for (int t = 0; t < 2; t++) {
        nn_session_input(a, "i")->data[0] = xs[t];
        CU_ASSERT_EQUAL_FATAL(nn_session_step(a, 0, &err), NN_OK);
    }
    nn_session_rng(a, "r")->s[0] ^= 0x5a5a;
    nn_session_output_buffer(b, "o")->data[0] =
        nn_session_output_buffer(a, "o")->data[0];
    *nn_session_rng(b, "r") = *nn_session_rng(a, "r");
    CU_ASSERT_EQUAL(nn_session_set_steps(b, nn_session_steps(a), &err), NN_OK);
    CU_ASSERT_EQUAL(nn_session_steps(b), 2);
    nn_session_input(a, "i")->data[0] = 100;
    nn_session_input(b, "i")->data[0] = 100;
    CU_ASSERT_EQUAL(nn_session_step(a, 0, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_session_step(b, 0, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_session_output(b, "r")->data[0], 111);
    CU_ASSERT_EQUAL(nn_session_output(a, "r")->data[0],
                    nn_session_output(b, "r")->data[0]);
    CU_ASSERT_EQUAL(nn_rng_u64(nn_session_rng(a, "r")),
                    nn_rng_u64(nn_session_rng(b, "r")));
    CU_ASSERT_EQUAL(nn_session_steps(b), 3);
    /* Unknown names and a negative count are refused. */
    CU_ASSERT_PTR_NULL(nn_session_output_buffer(a, "nope"));
    CU_ASSERT_PTR_NULL(nn_session_rng(a, "nope"));
    CU_ASSERT_EQUAL(nn_session_set_steps(a, -1, &err), NN_ERR_INVALID);
    CU_ASSERT_EQUAL(nn_session_steps(a), 3);
    nn_session_free(a);
    nn_session_free(b);
    nn_graph_free(g);
    nn_registry_free(reg);
}

static nn_graph *acc_graph(nn_registry *reg, float start)
{
    nn_graph *g = nn_graph_new(reg, 3);
    nn_error err;
    char text[32];
    snprintf(text, sizeof text, "%g", start);
    add_input(g, "x", "2");
    add(g, "TAcc", "acc");
    CU_ASSERT_EQUAL(nn_node_set_param(nn_graph_find(g, "acc"), "start", text,
                                      &err), NN_OK);
    link_ok(g, "x >> acc");
    CU_ASSERT_EQUAL(nn_graph_build(g, &err), NN_OK);
    return g;
}

static void test_state_persists_and_resets(void)
{
    nn_registry *reg = make_registry();
    nn_graph *g = acc_graph(reg, 0.5f);
    nn_error err;
    nn_session *s = nn_session_new(g, 2, 0, &err);
    nn_session *other = nn_session_new(g, 2, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(other);
    nn_tensor *x = nn_session_input(s, "x");
    for (int j = 0; j < 4; j++)
        x->data[j] = (float)(j + 1);
    for (int t = 0; t < 3; t++)
        CU_ASSERT_EQUAL(nn_session_step(s, 0, &err), NN_OK);
    const nn_tensor *out = nn_session_output(s, "acc");
    for (int j = 0; j < 4; j++)
        CU_ASSERT_EQUAL(out->data[j], 0.5f + 3.0f * (float)(j + 1));
    /* Another session of the same graph keeps its own state. */
    nn_tensor *x2 = nn_session_input(other, "x");
    for (int j = 0; j < 4; j++)
        x2->data[j] = 1;
    CU_ASSERT_EQUAL(nn_session_step(other, 0, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_session_output(other, "acc")->data[0], 1.5f);
    CU_ASSERT_EQUAL(out->data[0], 3.5f);
    /* Reset brings back init_state's value (and clears the inputs). */
    CU_ASSERT_EQUAL(nn_session_reset(s, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_session_state(s, "acc", 0)->data[3], 0.5f);
    CU_ASSERT_EQUAL(x->data[0], 0.0f);
    for (int j = 0; j < 4; j++)
        x->data[j] = (float)(j + 1);
    CU_ASSERT_EQUAL(nn_session_step(s, 0, &err), NN_OK);
    CU_ASSERT_EQUAL(out->data[0], 1.5f);
    /* Resize re-runs init_state for the new batch. */
    CU_ASSERT_EQUAL(nn_session_resize(s, 5, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_session_batch(s), 5);
    nn_tensor *st = nn_session_state(s, "acc", 0);
    CU_ASSERT_EQUAL(st->shape.dims[0], 5);
    CU_ASSERT_EQUAL(st->data[9], 0.5f);
    CU_ASSERT_EQUAL(nn_session_resize(s, 0, &err), NN_ERR_INVALID);
    nn_session_free(s);
    nn_session_free(other);
    nn_graph_free(g);
    nn_registry_free(reg);
}

static void test_steps_allocate_nothing(void)
{
    nn_registry *reg = make_registry();
    nn_graph *g = nn_graph_new(reg, 1);
    nn_error err;
    add_input(g, "i", "8");
    add(g, "TAcc", "acc");
    add(g, "TAdd", "r");
    add(g, "TAdd", "o");
    link_ok(g, "i >> acc >> r >> o");
    link_ok(g, "r << o");
    CU_ASSERT_EQUAL_FATAL(nn_graph_build(g, &err), NN_OK);
    nn_session *s = nn_session_new(g, 4, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    const float *buffers[3] = {nn_session_output(s, "acc")->data,
                               nn_session_output(s, "r")->data,
                               nn_session_output(s, "o")->data};
    uint64_t before = nn_alloc_count();
    for (int t = 0; t < 100; t++)
        CU_ASSERT_EQUAL(nn_session_step(s, t % 2, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_alloc_count(), before);
    CU_ASSERT_PTR_EQUAL(nn_session_output(s, "acc")->data, buffers[0]);
    CU_ASSERT_PTR_EQUAL(nn_session_output(s, "r")->data, buffers[1]);
    CU_ASSERT_PTR_EQUAL(nn_session_output(s, "o")->data, buffers[2]);
    nn_session_free(s);
    nn_graph_free(g);
    nn_registry_free(reg);
}

static void test_run_equals_steps(void)
{
    nn_registry *reg = make_registry();
    nn_graph *g = nn_graph_new(reg, 1);
    nn_error err;
    add_input(g, "i", "3");
    add(g, "TAcc", "acc");
    add(g, "TAdd", "r");
    add(g, "TAdd", "o");
    link_ok(g, "i >> acc >> r >> o");
    link_ok(g, "r << o");
    CU_ASSERT_EQUAL_FATAL(nn_graph_build(g, &err), NN_OK);
    enum { B = 2, T = 5, F = 3 };
    int dims[3] = {B, T, F};
    nn_shape seq_shape = nn_shape_make(3, dims);
    nn_tensor *seq = nn_tensor_new(&seq_shape);
    for (int k = 0; k < B * T * F; k++)
        seq->data[k] = (float)((k * 7) % 11) - 5.0f;

    nn_session *a = nn_session_new(g, B, 0, &err);
    nn_session *b = nn_session_new(g, B, 0, &err);
    nn_binding bind = {"i", seq};
    nn_tensor *outs[1];
    CU_ASSERT_EQUAL_FATAL(nn_session_run(a, &bind, 1, T, 0, outs, &err), NN_OK);
    CU_ASSERT_EQUAL(outs[0]->shape.ndim, 3);
    CU_ASSERT_EQUAL(outs[0]->shape.dims[1], T);
    for (int t = 0; t < T; t++) {
        nn_tensor *in = nn_session_input(b, "i");
        for (int r = 0; r < B; r++)
            for (int f = 0; f < F; f++)
                in->data[r * F + f] = seq->data[(r * T + t) * F + f];
        CU_ASSERT_EQUAL(nn_session_step(b, 0, &err), NN_OK);
        const nn_tensor *o = nn_session_output(b, "o");
        for (int r = 0; r < B; r++)
            for (int f = 0; f < F; f++)
                CU_ASSERT_EQUAL(outs[0]->data[(r * T + t) * F + f],
                                o->data[r * F + f]);
    }
    /* Final states agree. */
    CU_ASSERT_EQUAL(memcmp(nn_session_state(a, "acc", 0)->data,
                           nn_session_state(b, "acc", 0)->data,
                           sizeof(float) * B * F), 0);
    nn_tensor_free(outs[0]);

    /* Binding errors name the input. */
    nn_binding wrong = {"j", seq};
    CU_ASSERT_EQUAL(nn_session_run(a, &wrong, 1, T, 0, outs, &err),
                    NN_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'j'"));
    CU_ASSERT_EQUAL(nn_session_run(a, NULL, 0, T, 0, outs, &err),
                    NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'i' is missing"));
    CU_ASSERT_EQUAL(nn_session_run(a, &bind, 1, T - 1, 0, outs, &err),
                    NN_ERR_SHAPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'i'"));
    nn_binding twice[2] = {{"i", seq}, {"i", seq}};
    CU_ASSERT_EQUAL(nn_session_run(a, twice, 2, T, 0, outs, &err),
                    NN_ERR_INVALID);
    nn_tensor_free(seq);
    nn_session_free(a);
    nn_session_free(b);
    nn_graph_free(g);
    nn_registry_free(reg);
}

static void test_weights_follow_seed_and_name(void)
{
    nn_registry *reg = make_registry();
    nn_error err;
    float first[4];
    for (int round = 0; round < 3; round++) {
        nn_graph *g = nn_graph_new(reg, round == 2 ? 99 : 42);
        add_input(g, "i", "4");
        if (round == 1)
            add(g, "TAdd", "unrelated"); /* other nodes do not shift it */
        add(g, "TWeighted", "w");
        link_ok(g, "i >> w");
        if (round == 1)
            link_ok(g, "i >> unrelated");
        CU_ASSERT_EQUAL_FATAL(nn_graph_build(g, &err), NN_OK);
        nn_node *w = nn_graph_find(g, "w");
        CU_ASSERT_EQUAL(nn_node_weight_count(w), 1);
        CU_ASSERT_STRING_EQUAL(nn_node_weight_name(w, 0), "w");
        CU_ASSERT(nn_node_weight_trainable(w, 0));
        CU_ASSERT_EQUAL(nn_node_param_count(w), 4);
        nn_tensor *t = nn_node_weight(w, "w");
        /* CUnit's assertions are blocks: keep them out of bare if/else. */
        if (round == 0) {
            memcpy(first, t->data, sizeof first);
        } else if (round == 1) {
            CU_ASSERT_EQUAL(memcmp(first, t->data, sizeof first), 0);
        } else {
            CU_ASSERT_NOT_EQUAL(memcmp(first, t->data, sizeof first), 0);
        }
        nn_graph_free(g);
    }
    /* trainable=false reaches the weights. */
    nn_graph *g = nn_graph_new(reg, 1);
    add_input(g, "i", "4");
    add(g, "TWeighted", "w");
    CU_ASSERT_EQUAL(nn_node_set_param(nn_graph_find(g, "w"), "trainable",
                                      "false", &err), NN_OK);
    link_ok(g, "i >> w");
    CU_ASSERT_EQUAL_FATAL(nn_graph_build(g, &err), NN_OK);
    CU_ASSERT_FALSE(nn_node_weight_trainable(nn_graph_find(g, "w"), 0));
    nn_graph_free(g);
    nn_registry_free(reg);
}

static int bad_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                       const nn_tensor *fb, int n_fb, nn_tensor *out,
                       nn_ctx *ctx)
{
    (void)node, (void)ff, (void)n_ff, (void)fb, (void)n_fb, (void)out;
    return nn_error_set(ctx->err, NN_ERR_INVALID, "deliberate failure");
}

static void test_registry_rules(void)
{
    nn_registry *reg = make_registry();
    nn_error err;
    nn_node_type t = *nn_registry_find(reg, "TAdd");
    t.name = "Other";
    t.api_version = NN_API_VERSION + 1;
    CU_ASSERT_EQUAL(nn_register_type(reg, &t, &err), NN_ERR_VERSION);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'Other'"));
    CU_ASSERT_EQUAL(nn_register_type(reg, nn_registry_find(reg, "TAdd"), &err),
                    NN_ERR_EXISTS);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'TAdd'"));
    t.api_version = NN_API_VERSION;
    t.forward = NULL;
    CU_ASSERT_EQUAL(nn_register_type(reg, &t, &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "forward"));
    t.forward = bad_forward;
    t.name = "bad name";
    CU_ASSERT_EQUAL(nn_register_type(reg, &t, &err), NN_ERR_INVALID);
    static const nn_param_def bad_default[] = {
        {"n", NN_PARAM_INT, "0", 1, 10, NULL, "bounded"},
        {NULL, 0, NULL, 0, 0, NULL, NULL}};
    t.name = "BadDefault";
    t.params = bad_default;
    CU_ASSERT_EQUAL(nn_register_type(reg, &t, &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'n'"));
    static const nn_param_def reserved[] = {
        {"trainable", NN_PARAM_BOOL, "true", 0, 0, NULL, "clash"},
        {NULL, 0, NULL, 0, 0, NULL, NULL}};
    t.params = reserved;
    CU_ASSERT_EQUAL(nn_register_type(reg, &t, &err), NN_ERR_INVALID);
    int before = nn_registry_count(reg);
    t.params = NULL;
    t.name = "Fails";
    t.forward = bad_forward;
    CU_ASSERT_EQUAL(nn_register_type(reg, &t, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_registry_count(reg), before + 1);
    CU_ASSERT_PTR_EQUAL(nn_registry_at(reg, before), &t);

    /* A failing forward is reported with the node named. */
    nn_graph *g = nn_graph_new(reg, 1);
    add_input(g, "i", "1");
    add(g, "Fails", "f");
    link_ok(g, "i >> f");
    CU_ASSERT_EQUAL_FATAL(nn_graph_build(g, &err), NN_OK);
    nn_session *s = nn_session_new(g, 1, 0, &err);
    CU_ASSERT_EQUAL(nn_session_step(s, 0, &err), NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "node 'f' (Fails)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "deliberate failure"));
    nn_session_free(s);
    nn_graph_free(g);
    nn_registry_free(reg);
}

/* Every allocation in describing, building and compiling may fail; each
 * failure must come back as NN_ERR_NOMEM (never a crash), and the sanitizer
 * build checks nothing leaks. */
static void test_out_of_memory_paths(void)
{
    nn_registry *reg = make_registry();
    int failures_seen = 0;
    for (uint64_t k = 1; k < 400; k++) {
        nn_error err;
        memset(&err, 0, sizeof err);
        nn_alloc_fail_after(k);
        int ok = 0;
        nn_graph *g = nn_graph_new(reg, 1);
        nn_session *s = NULL;
        if (g) {
            nn_node *i = nn_graph_add_node(g, "TIn", "i", &err);
            nn_node *a = nn_graph_add_node(g, "TAcc", "a", &err);
            nn_node *r = nn_graph_add_node(g, "TAdd", "r", &err);
            nn_node *o = nn_graph_add_node(g, "TWeighted", "o", &err);
            if (i && a && r && o &&
                nn_node_set_param(i, "shape", "3", &err) == NN_OK &&
                nn_graph_link(g, "i >> a >> r >> o", &err) == NN_OK &&
                nn_graph_link(g, "r << o", &err) == NN_OK &&
                nn_graph_build(g, &err) == NN_OK &&
                (s = nn_session_new(g, 2, 0, &err)) != NULL &&
                nn_session_step(s, 0, &err) == NN_OK)
                ok = 1;
        }
        nn_alloc_fail_after(0);
        if (!ok) {
            failures_seen++;
            if (g) { /* without a graph no error record was filled */
                CU_ASSERT_EQUAL(err.code, NN_ERR_NOMEM);
            }
        }
        nn_session_free(s);
        nn_graph_free(g);
        if (ok)
            break; /* k is past the last allocation */
    }
    CU_ASSERT(failures_seen > 10);
    nn_registry_free(reg);
}

int main(void)
{
    static const tu_test tests[] = {
        {"shape consistency helper", test_shape_consistency},
        {"link expressions and execution order", test_link_and_order},
        {"automatic names", test_auto_names},
        {"description errors name the fault", test_description_errors},
        {"refused link expressions change nothing",
         test_link_errors_leave_graph_unchanged},
        {"validation errors name the nodes", test_validation_errors},
        {"feedback arrives one step late", test_feedback_timing},
        {"what a step hands the next can be restored",
         test_session_carry_can_be_restored},
        {"state persists, is per session, resets",
         test_state_persists_and_resets},
        {"compiled steps allocate nothing", test_steps_allocate_nothing},
        {"run equals the same steps", test_run_equals_steps},
        {"weights follow the seed and the node name",
         test_weights_follow_seed_and_name},
        {"registry rules", test_registry_rules},
        {"out-of-memory paths fail cleanly", test_out_of_memory_paths},
        {NULL, NULL}};
    return tu_run_suite("graph", tests);
}
