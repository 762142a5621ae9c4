/*
 * test_persist.c — the data directory's file format without files: the
 * CRC-32 against its published check value, networks and checkpoints read
 * back bit for bit, a restored session continuing exactly like one never
 * interrupted, and the reader refusing every prefix of a valid file and
 * every damaged byte.
 */
#include "api_persist.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nn_registry *reg;
static api_limits lim;

/* Feedback, a recurrent state and a random stream (Dropout in training):
 * everything a step hands to the next. */
static const char *LOOP_NET =
    "{\"name\": \"loop\", \"seed\": 5, \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 3},"
    "{\"name\": \"r\", \"type\": \"VanillaRNN\", \"num_unit\": 4,"
    " \"activation\": \"tanh\"},"
    "{\"name\": \"d\", \"type\": \"Dropout\", \"prob\": 0.6},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 2}],"
    "\"edges\": [\"x >> r >> d >> o\", \"r << o\"]}";

static nn_graph *build(const char *def)
{
    cJSON *j = cJSON_Parse(def);
    api_error err;
    nn_graph *g = api_graph_from_json(j, reg, &lim, &err);
    cJSON_Delete(j);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    return g;
}

static void fill_inputs(nn_session *s, int t)
{
    nn_tensor *x = nn_session_input(s, "x");
    for (size_t k = 0; k < nn_tensor_numel(x); k++)
        x->data[k] = (float)((int)((t * 7 + (int)k * 3) % 11) - 5) * 0.25f;
}

static void step(nn_session *s, int t)
{
    nn_error e;
    fill_inputs(s, t);
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, t % 2 == 0, &e), NN_OK);
}

static int same_floats(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* Refuses every proper prefix, and the file with any one byte damaged. */
static void assert_refuses_damage(const unsigned char *bytes, size_t len,
                                  int (*read)(const unsigned char *, size_t))
{
    unsigned char *copy = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
    int accepted = 0;
    for (size_t n = 0; n < len; n++) {
        /* A buffer of exactly n bytes, so a read past it is caught. */
        unsigned char *prefix = malloc(n ? n : 1);
        memcpy(prefix, bytes, n);
        accepted += read(prefix, n) == 0;
        free(prefix);
    }
    CU_ASSERT_EQUAL(accepted, 0);
    static const unsigned char flips[] = {0x01, 0x80, 0xFF};
    accepted = 0;
    for (size_t i = 0; i < len; i++)
        for (size_t f = 0; f < sizeof flips; f++) {
            memcpy(copy, bytes, len);
            copy[i] ^= flips[f];
            accepted += read(copy, len) == 0;
        }
    CU_ASSERT_EQUAL(accepted, 0);
    /* One byte more is not the file either. */
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, bytes, len);
    longer[len] = 0;
    CU_ASSERT_NOT_EQUAL(read(longer, len + 1), 0);
    free(longer);
    free(copy);
}

static int read_network(const unsigned char *b, size_t len)
{
    api_stored_network n;
    api_error err;
    int rc = api_network_file_read(b, len, reg, &lim, &n, &err);
    if (rc == 0)
        api_stored_network_free(&n);
    else
        CU_ASSERT(err.message[0] != '\0');
    return rc;
}

static int read_checkpoint(const unsigned char *b, size_t len)
{
    api_checkpoint c;
    api_error err;
    int rc = api_checkpoint_read(b, len, &c, &err);
    if (rc)
        CU_ASSERT(err.message[0] != '\0');
    api_checkpoint_free(&c);
    return rc;
}

/* ----------------------------------------------------------------- tests */

static void test_crc32_check_value(void)
{
    /* The check value of CRC-32/ISO-HDLC, as zlib's crc32 computes it. */
    CU_ASSERT_EQUAL(api_crc32(0, "123456789", 9), 0xCBF43926u);
    /* Continuing over pieces equals one pass. */
    CU_ASSERT_EQUAL(api_crc32(api_crc32(0, "1234", 4), "56789", 5),
                    0xCBF43926u);
    CU_ASSERT_EQUAL(api_crc32(0, "", 0), 0u);
}

static void test_network_round_trip(void)
{
    nn_graph *g = build(LOOP_NET);
    /* Weights unlike the initial ones, so a reader that rebuilt the graph
     * and ignored the stored values would fail. */
    nn_rng rng;
    nn_rng_seed(&rng, 11);
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        nn_node *node = nn_graph_node_at(g, i);
        for (int w = 0; w < nn_node_weight_count(node); w++) {
            nn_tensor *t = nn_node_weight_at(node, w);
            for (size_t k = 0; k < nn_tensor_numel(t); k++)
                t->data[k] = (float)nn_rng_normal(&rng);
        }
    }
    unsigned char *bytes;
    size_t len;
    api_error err;
    CU_ASSERT_EQUAL_FATAL(api_network_file_write("n7", "loop", LOOP_NET, g,
                                                 &bytes, &len, &err), 0);
    CU_ASSERT_EQUAL(memcmp(bytes, "NERVED", 6), 0);
    CU_ASSERT_EQUAL(bytes[6], 'N');
    CU_ASSERT_EQUAL(bytes[7], API_PERSIST_VERSION);

    api_stored_network n;
    CU_ASSERT_EQUAL_FATAL(api_network_file_read(bytes, len, reg, &lim, &n,
                                                &err), 0);
    CU_ASSERT_STRING_EQUAL(n.id, "n7");
    CU_ASSERT_STRING_EQUAL(n.name, "loop");
    CU_ASSERT_STRING_EQUAL(n.definition, LOOP_NET);
    CU_ASSERT_EQUAL(nn_graph_node_count(n.graph), nn_graph_node_count(g));
    int weights = 0;
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        nn_node *a = nn_graph_node_at(g, i), *b = nn_graph_node_at(n.graph, i);
        CU_ASSERT_EQUAL_FATAL(nn_node_weight_count(a), nn_node_weight_count(b));
        for (int w = 0; w < nn_node_weight_count(a); w++, weights++) {
            nn_tensor *ta = nn_node_weight_at(a, w), *tb = nn_node_weight_at(b, w);
            CU_ASSERT(nn_shape_equal(&ta->shape, &tb->shape));
            CU_ASSERT(same_floats(ta->data, tb->data, nn_tensor_numel(ta)));
        }
    }
    CU_ASSERT(weights >= 4);
    api_stored_network_free(&n);

    /* Unnamed networks stay unnamed. */
    unsigned char *unnamed;
    size_t unnamed_len;
    CU_ASSERT_EQUAL_FATAL(api_network_file_write("n8", NULL, LOOP_NET, g,
                                                 &unnamed, &unnamed_len, &err),
                          0);
    CU_ASSERT_EQUAL_FATAL(api_network_file_read(unnamed, unnamed_len, reg,
                                                &lim, &n, &err), 0);
    CU_ASSERT_STRING_EQUAL(n.name, "");
    api_stored_network_free(&n);
    free(unnamed);
    free(bytes);
    nn_graph_free(g);
}

static void test_network_file_damage(void)
{
    nn_graph *g = build(LOOP_NET);
    unsigned char *bytes;
    size_t len;
    api_error err;
    CU_ASSERT_EQUAL_FATAL(api_network_file_write("n1", "loop", LOOP_NET, g,
                                                 &bytes, &len, &err), 0);
    CU_ASSERT_EQUAL(read_network(bytes, len), 0);
    assert_refuses_damage(bytes, len, read_network);

    /* A header that lies about its lengths is refused even when its CRC
     * was recomputed to match. */
    bytes[16] = 0xFF, bytes[23] = 0x7F;
    uint32_t crc = api_crc32(api_crc32(0, bytes, 24), bytes + 28, len - 28);
    for (int i = 0; i < 4; i++)
        bytes[24 + i] = (unsigned char)(crc >> (8 * i));
    api_stored_network n;
    CU_ASSERT_EQUAL(api_network_file_read(bytes, len, reg, &lim, &n, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "header announces"));
    free(bytes);
    nn_graph_free(g);
}

/* Rewrites a file as the given format version, its CRC recomputed. */
static void as_version(unsigned char *bytes, size_t len, int version)
{
    bytes[7] = (unsigned char)version;
    uint32_t crc = api_crc32(api_crc32(0, bytes, 24), bytes + 28, len - 28);
    for (int i = 0; i < 4; i++)
        bytes[24 + i] = (unsigned char)(crc >> (8 * i));
}

static void test_older_versions(void)
{
    static const char *sparse =
        "{\"nodes\": [{\"name\": \"x\", \"type\": \"Input\", \"shape\": 2},"
        "{\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": 50, "
        "\"sparse\": \"true\"}], \"edges\": [\"x >> r\"]}";
    unsigned char *bytes;
    size_t len;
    api_error err;
    api_stored_network n;
    /* Version 1 still loads, but not its sparse reservoirs, whose W it
     * kept in another order: they are refused by name. */
    nn_graph *g = build(LOOP_NET);
    CU_ASSERT_EQUAL_FATAL(api_network_file_write("n1", NULL, LOOP_NET, g,
                                                 &bytes, &len, &err), 0);
    CU_ASSERT_EQUAL(bytes[7], API_PERSIST_VERSION);
    as_version(bytes, len, 1);
    CU_ASSERT_EQUAL(read_network(bytes, len), 0);
    as_version(bytes, len, API_PERSIST_VERSION + 1);
    CU_ASSERT_EQUAL(api_network_file_read(bytes, len, reg, &lim, &n, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "format version"));
    free(bytes);
    nn_graph_free(g);
    g = build(sparse);
    CU_ASSERT_EQUAL_FATAL(api_network_file_write("n2", NULL, sparse, g, &bytes,
                                                 &len, &err), 0);
    CU_ASSERT_EQUAL(read_network(bytes, len), 0);
    as_version(bytes, len, 1);
    CU_ASSERT_EQUAL(api_network_file_read(bytes, len, reg, &lim, &n, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "sparse Reservoir 'r'"));
    free(bytes);
    nn_graph_free(g);
}

static void test_unknown_type_is_reported(void)
{
    static const char *def =
        "{\"nodes\": [{\"name\": \"i\", \"type\": \"Input\", \"shape\": 2},"
        "{\"name\": \"p\", \"type\": \"Dense\", \"num_unit\": 3}],"
        "\"edges\": [\"i >> p\"]}";
    nn_graph *g = build(def);
    unsigned char *bytes;
    size_t len;
    api_error err;
    /* The same bytes saved with a definition the registry cannot build
     * (a plugin type that is not loaded at this start). */
    char *other = strdup(def);
    memcpy(strstr(other, "Dense"), "Dunce", 5);
    CU_ASSERT_EQUAL_FATAL(api_network_file_write("n2", NULL, other, g, &bytes,
                                                 &len, &err), 0);
    api_stored_network n;
    CU_ASSERT_EQUAL(api_network_file_read(bytes, len, reg, &lim, &n, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "Dunce"));
    CU_ASSERT_PTR_NULL(n.graph);
    free(other);
    free(bytes);
    nn_graph_free(g);
}

static void test_checkpoint_continues_exactly(void)
{
    nn_graph *g = build(LOOP_NET);
    nn_error e;
    uint64_t seed = nn_seed_derive(nn_graph_seed(g), "s1");
    nn_session *a = nn_session_new(g, 2, seed, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    for (int t = 0; t < 5; t++)
        step(a, t);

    unsigned char *bytes;
    size_t len;
    api_error err;
    CU_ASSERT_EQUAL_FATAL(api_checkpoint_write("n3", "s1", g, a, &bytes, &len,
                                               &err), 0);
    CU_ASSERT_EQUAL(bytes[6], 'C');
    api_checkpoint c;
    CU_ASSERT_EQUAL_FATAL(api_checkpoint_read(bytes, len, &c, &err), 0);
    CU_ASSERT_STRING_EQUAL(c.network, "n3");
    CU_ASSERT_STRING_EQUAL(c.session, "s1");
    CU_ASSERT_EQUAL(c.batch, 2);
    CU_ASSERT_EQUAL(c.steps, 5);

    /* A fresh session of the same id, pushed elsewhere first, so the apply
     * has to overwrite everything rather than find it already equal. */
    nn_session *b = nn_session_new(g, 2, seed, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    for (int t = 0; t < 3; t++)
        step(b, 100 + t);
    CU_ASSERT_EQUAL_FATAL(api_checkpoint_apply(&c, g, b, &err), 0);
    CU_ASSERT_EQUAL(nn_session_steps(b), 5);

    for (int t = 5; t < 25; t++) {
        step(a, t);
        step(b, t);
        const nn_tensor *oa = nn_session_output(a, "o");
        const nn_tensor *ob = nn_session_output(b, "o");
        CU_ASSERT(same_floats(oa->data, ob->data, nn_tensor_numel(oa)));
    }
    CU_ASSERT_EQUAL(nn_session_steps(a), nn_session_steps(b));

    /* Without the checkpoint the same steps differ: the test can fail. */
    nn_session *fresh = nn_session_new(g, 2, seed, &e);
    for (int t = 5; t < 8; t++)
        step(fresh, t);
    nn_session *again = nn_session_new(g, 2, seed, &e);
    CU_ASSERT_EQUAL_FATAL(api_checkpoint_apply(&c, g, again, &err), 0);
    for (int t = 5; t < 8; t++)
        step(again, t);
    CU_ASSERT(!same_floats(nn_session_output(fresh, "o")->data,
                           nn_session_output(again, "o")->data, 4));

    api_checkpoint_free(&c);
    free(bytes);
    nn_session_free(a);
    nn_session_free(b);
    nn_session_free(fresh);
    nn_session_free(again);
    nn_graph_free(g);
}

static void test_checkpoint_mismatch_changes_nothing(void)
{
    nn_graph *g = build(LOOP_NET);
    nn_error e;
    nn_session *a = nn_session_new(g, 1, 9, &e);
    for (int t = 0; t < 3; t++)
        step(a, t);
    unsigned char *bytes;
    size_t len;
    api_error err;
    api_checkpoint c;
    CU_ASSERT_EQUAL_FATAL(api_checkpoint_write("n1", "s1", g, a, &bytes, &len,
                                               &err), 0);
    CU_ASSERT_EQUAL_FATAL(api_checkpoint_read(bytes, len, &c, &err), 0);

    /* Another batch size. */
    nn_session *wide = nn_session_new(g, 3, 9, &e);
    CU_ASSERT_EQUAL(api_checkpoint_apply(&c, g, wide, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "batch"));

    /* Another graph: a node of a different size. */
    char *bigger = strdup(LOOP_NET);
    memcpy(strstr(bigger, "\"num_unit\": 4"), "\"num_unit\": 5", 13);
    nn_graph *h = build(bigger);
    nn_session *other = nn_session_new(h, 1, 9, &e);
    step(other, 0);
    float before[8];
    const nn_tensor *out = nn_session_output(other, "o");
    memcpy(before, out->data, nn_tensor_numel(out) * sizeof(float));
    CU_ASSERT_EQUAL(api_checkpoint_apply(&c, h, other, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "'r'"));
    CU_ASSERT(same_floats(before, nn_session_output(other, "o")->data,
                          nn_tensor_numel(out)));
    CU_ASSERT_EQUAL(nn_session_steps(other), 1);

    /* A network file is not a checkpoint, nor the other way round. */
    unsigned char *net_bytes;
    size_t net_len;
    CU_ASSERT_EQUAL_FATAL(api_network_file_write("n1", NULL, LOOP_NET, g,
                                                 &net_bytes, &net_len, &err),
                          0);
    api_checkpoint wrong;
    CU_ASSERT_EQUAL(api_checkpoint_read(net_bytes, net_len, &wrong, &err), -1);
    api_checkpoint_free(&wrong);
    CU_ASSERT_NOT_EQUAL(read_network(bytes, len), 0);

    free(net_bytes);
    free(bigger);
    api_checkpoint_free(&c);
    free(bytes);
    nn_session_free(a);
    nn_session_free(wide);
    nn_session_free(other);
    nn_graph_free(h);
    nn_graph_free(g);
}

static void test_checkpoint_file_damage(void)
{
    nn_graph *g = build(LOOP_NET);
    nn_error e;
    nn_session *a = nn_session_new(g, 1, 4, &e);
    for (int t = 0; t < 2; t++)
        step(a, t);
    unsigned char *bytes;
    size_t len;
    api_error err;
    CU_ASSERT_EQUAL_FATAL(api_checkpoint_write("n1", "s1", g, a, &bytes, &len,
                                               &err), 0);
    CU_ASSERT_EQUAL(read_checkpoint(bytes, len), 0);
    assert_refuses_damage(bytes, len, read_checkpoint);
    free(bytes);
    nn_session_free(a);
    nn_graph_free(g);
}

int main(void)
{
    nn_error e;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &e) != NN_OK)
        return 2;
    lim = api_default_limits();
    static const tu_test tests[] = {
        {"CRC-32 check value", test_crc32_check_value},
        {"a network reads back bit for bit", test_network_round_trip},
        {"damaged network files are refused", test_network_file_damage},
        {"a definition that no longer builds is reported",
         test_unknown_type_is_reported},
        {"older format versions load, but not their sparse reservoirs",
         test_older_versions},
        {"a restored session continues exactly",
         test_checkpoint_continues_exactly},
        {"a mismatched checkpoint changes nothing",
         test_checkpoint_mismatch_changes_nothing},
        {"damaged checkpoints are refused", test_checkpoint_file_damage},
        {NULL, NULL}};
    int rc = tu_run_suite("persist", tests);
    nn_registry_free(reg);
    return rc;
}
