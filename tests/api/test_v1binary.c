/*
 * test_v1binary.c — the binary tensor framing of the v1 documents, without
 * HTTP: tensor objects {"shape", "binary_data_size"} read from the bytes
 * after the JSON header (api_json_blobs_index and the _bin readers), and
 * answers turned into the framing (api_enc_binary). Bytes are built here
 * by hand, little-endian, as a client puts them on the wire.
 */
#include "api.h"
#include "api_binary.h"
#include "api_codec.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nn_registry *reg;
static api_limits lim;

static void put_le(unsigned char *out, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    for (int k = 0; k < 4; k++)
        out[k] = (unsigned char)(bits >> (8 * k));
}

static float get_le(const unsigned char *in)
{
    uint32_t bits = 0;
    for (int k = 0; k < 4; k++)
        bits |= (uint32_t)in[k] << (8 * k);
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static nn_graph *graph_of(const char *text)
{
    cJSON *def = cJSON_Parse(text);
    api_error err;
    nn_graph *g = api_graph_from_json(def, reg, &lim, &err);
    cJSON_Delete(def);
    if (!g)
        fprintf(stderr, "%s\n", err.message);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    return g;
}

/* Two inputs: a (2 features) and b (1), entries in that order. */
static const char *TWO =
    "{\"seed\": 5, \"nodes\": ["
    "{\"name\": \"a\", \"type\": \"Input\", \"shape\": 2},"
    "{\"name\": \"b\", \"type\": \"Input\", \"shape\": 1},"
    "{\"name\": \"y\", \"type\": \"Dense\", \"num_unit\": 3}],"
    "\"edges\": [\"{a, b} >> y\"]}";

/* Binds a step body (header, then n little-endian floats) into a batch-1
 * session of g; returns the status (0 when bound) and leaves the error's
 * message in err. */
static int bind_step(nn_graph *g, nn_session *s, const char *header,
                     const float *values, size_t n, api_error *err)
{
    unsigned char blob[256];
    CU_ASSERT_FATAL(n * 4 <= sizeof blob);
    for (size_t k = 0; k < n; k++)
        put_le(blob + 4 * k, values[k]);
    api_json j = {header, strlen(header), NULL};
    size_t at;
    int trailing;
    CU_ASSERT_EQUAL_FATAL(api_json_check(j.s, j.len, &at, &trailing), 0);
    api_json_blobs *bin;
    if (api_json_blobs_index(&j, blob, n * 4, &bin, err))
        return err->http_status;
    api_step_body body;
    int rc = api_read_step_body(&j, 0, &body, err);
    if (!rc)
        rc = api_json_bind_step_inputs_bin(&j, bin, body.inputs, s, g, &lim,
                                           err);
    api_json_blobs_free(bin);
    return rc ? err->http_status : 0;
}

/* The bytes go to the tensors in the order their objects begin in the
 * header, whatever the graph's order of entries; a JSON tensor may sit
 * beside binary ones. */
static void test_step_inputs(void)
{
    nn_graph *g = graph_of(TWO);
    nn_error e;
    nn_session *s = nn_session_new(g, 1, 1, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    api_error err;
    const float v[3] = {0.1f, -2.5f, 3.0e-39f /* subnormal */};
    CU_ASSERT_EQUAL(bind_step(g, s, "{\"inputs\": {\"b\": {\"shape\": [1, 1], "
                              "\"binary_data_size\": 4}, \"a\": {\"shape\": "
                              "[1, 2], \"datatype\": \"FP32\", "
                              "\"binary_data_size\": 8}}}", v, 3, &err), 0);
    const float *a = nn_session_input(s, "a")->data;
    const float *b = nn_session_input(s, "b")->data;
    CU_ASSERT_EQUAL(memcmp(b, &v[0], 4), 0);
    CU_ASSERT_EQUAL(memcmp(a, &v[1], 8), 0);

    /* Mixed: a as JSON text, b from the bytes. */
    const float w[1] = {7.5f};
    CU_ASSERT_EQUAL(bind_step(g, s, "{\"inputs\": {\"a\": [[1, 2]], \"b\": "
                              "{\"shape\": [1, 1], \"binary_data_size\": 4}}}",
                              w, 1, &err), 0);
    CU_ASSERT_EQUAL(a[0], 1.0f);
    CU_ASSERT_EQUAL(a[1], 2.0f);
    CU_ASSERT_EQUAL(b[0], 7.5f);
    nn_session_free(s);
    nn_graph_free(g);
}

/* Every malformed framing is a 400 that says what is wrong. */
static void test_errors(void)
{
    nn_graph *g = graph_of(TWO);
    nn_error e;
    nn_session *s = nn_session_new(g, 1, 1, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    static const float v[4] = {1, 2, 3, 4};
    static const struct {
        const char *header;
        size_t floats;      /* sent after the header */
        const char *says;
    } cases[] = {
        /* a size that is not the shape's */
        {"{\"inputs\": {\"a\": {\"shape\": [1, 2], \"binary_data_size\": 4}, "
         "\"b\": {\"shape\": [1, 1], \"binary_data_size\": 8}}}", 3,
         "binary_data_size is 4 bytes; its shape needs 8"},
        /* truncated: the sizes add up to more than was sent */
        {"{\"inputs\": {\"a\": {\"shape\": [1, 2], \"binary_data_size\": 8}, "
         "\"b\": {\"shape\": [1, 1], \"binary_data_size\": 4}}}", 2,
         "add up to 12 bytes, but only 8 follow"},
        /* bytes left over */
        {"{\"inputs\": {\"a\": {\"shape\": [1, 2], \"binary_data_size\": 8}, "
         "\"b\": [[1]]}}", 3, "4 bytes after the JSON header belong to no "
         "tensor"},
        /* not float32 */
        {"{\"inputs\": {\"a\": {\"shape\": [1, 2], \"datatype\": \"INT32\", "
         "\"binary_data_size\": 8}, \"b\": [[1]]}}", 2,
         "\"datatype\" must be \"FP32\""},
        {"{\"inputs\": {\"a\": {\"shape\": [1, 2], \"datatype\": \"FP16\", "
         "\"binary_data_size\": 4}, \"b\": [[1]]}}", 1,
         "\"datatype\" must be \"FP32\""},
        /* not a byte count */
        {"{\"inputs\": {\"a\": {\"shape\": [1, 2], \"binary_data_size\": -8}, "
         "\"b\": [[1]]}}", 2, "must be a byte count"},
        {"{\"inputs\": {\"a\": {\"shape\": [1, 2], \"binary_data_size\": 7.5}, "
         "\"b\": [[1]]}}", 2, "must be a byte count"},
        {"{\"inputs\": {\"a\": {\"shape\": [1, 2], \"binary_data_size\": "
         "\"8\"}, \"b\": [[1]]}}", 2, "must be a byte count"},
        /* both forms */
        {"{\"inputs\": {\"a\": {\"shape\": [1, 2], \"data\": [1, 2], "
         "\"binary_data_size\": 8}, \"b\": [[1]]}}", 2, "not both"},
        /* no shape */
        {"{\"inputs\": {\"a\": {\"binary_data_size\": 8}, \"b\": [[1]]}}", 2,
         "\"shape\" must be an array"},
        /* the shape's, not the network's */
        {"{\"inputs\": {\"a\": {\"shape\": [1, 1], \"binary_data_size\": 4}, "
         "\"b\": [[1]]}}", 1, "inputs.a has shape (1, 1)"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        api_error err;
        memset(&err, 0, sizeof err);
        int status = bind_step(g, s, cases[k].header, v, cases[k].floats,
                               &err);
        CU_ASSERT_EQUAL(status, 400);
        if (!strstr(err.message, cases[k].says))
            fprintf(stderr, "case %zu: '%s'\n", k, err.message);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.message, cases[k].says));
    }

    /* A value that is not finite. */
    api_error err;
    const float nan[3] = {1, NAN, 2};
    CU_ASSERT_EQUAL(bind_step(g, s, "{\"inputs\": {\"a\": {\"shape\": [1, 2], "
                              "\"binary_data_size\": 8}, \"b\": {\"shape\": "
                              "[1, 1], \"binary_data_size\": 4}}}", nan, 3,
                              &err), 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "not a finite number"));

    /* binary_data_size in a body that was not framed. */
    const char *plain = "{\"inputs\": {\"a\": {\"shape\": [1, 2], "
                        "\"binary_data_size\": 8}, \"b\": [[1]]}}";
    api_json j = {plain, strlen(plain), NULL};
    api_step_body body;
    CU_ASSERT_EQUAL_FATAL(api_read_step_body(&j, 0, &body, &err), 0);
    CU_ASSERT_EQUAL(api_json_bind_step_inputs(&j, body.inputs, s, g, &lim,
                                              &err), -1);
    CU_ASSERT_EQUAL(err.http_status, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, API_BINARY_HEADER));

    /* The header's length against the body (the HTTP layer's split). */
    size_t json_len;
    CU_ASSERT_EQUAL(api_binary_split("200", 100, 0, &json_len, &err), -1);
    CU_ASSERT_EQUAL(err.http_status, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "the body has only 100"));
    nn_session_free(s);
    nn_graph_free(g);
}

/* A run body: "forced" written before "inputs" takes the first bytes. */
static void test_run_order(void)
{
    nn_graph *g = graph_of(
        "{\"seed\": 2, \"nodes\": [{\"name\": \"x\", \"type\": \"Input\", "
        "\"shape\": 1}, {\"name\": \"d\", \"type\": \"Dense\", "
        "\"num_unit\": 2}], \"edges\": [\"x >> d\"]}");
    const char *header =
        "{\"forced\": {\"d\": {\"shape\": [1, 3, 2], \"binary_data_size\": "
        "24}}, \"inputs\": {\"x\": {\"shape\": [1, 3, 1], "
        "\"binary_data_size\": 12}}}";
    unsigned char blob[36];
    for (int k = 0; k < 9; k++)
        put_le(blob + 4 * k, (float)k + 0.25f);
    api_json j = {header, strlen(header), NULL};
    api_error err;
    api_json_blobs *bin;
    CU_ASSERT_EQUAL_FATAL(api_json_blobs_index(&j, blob, sizeof blob, &bin,
                                               &err), 0);
    api_step_body body;
    CU_ASSERT_EQUAL_FATAL(api_read_step_body(&j, 1, &body, &err), 0);
    nn_binding *in, *forced;
    int steps, n_forced;
    CU_ASSERT_EQUAL_FATAL(api_json_sequence_inputs_bin(&j, bin, body.inputs, g,
                                                       1, &lim, &in, &steps,
                                                       &err), 0);
    CU_ASSERT_EQUAL(steps, 3);
    CU_ASSERT_EQUAL_FATAL(api_json_node_sequences_bin(&j, bin, body.forced, g,
                                                      1, steps, "forced",
                                                      &lim, &forced,
                                                      &n_forced, &err), 0);
    CU_ASSERT_EQUAL(n_forced, 1);
    for (int k = 0; k < 6; k++)
        CU_ASSERT_EQUAL(forced[0].tensor->data[k], (float)k + 0.25f);
    for (int k = 0; k < 3; k++)
        CU_ASSERT_EQUAL(in[0].tensor->data[k], (float)(k + 6) + 0.25f);
    api_bindings_free(in, nn_graph_entry_count(g));
    api_bindings_free(forced, n_forced);
    api_json_blobs_free(bin);
    nn_graph_free(g);
}

/* Splits a framed answer: the JSON header parsed, *blob after it. */
static cJSON *split_answer(api_enc *e, char **whole, size_t *header_len,
                           size_t *total)
{
    CU_ASSERT_EQUAL_FATAL(api_enc_binary(e, header_len, total), 0);
    *whole = malloc(*total + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(*whole);
    /* Small chunks: every boundary inside the header and the floats. */
    size_t got = 0, n;
    while ((n = api_enc_next(e, *whole + got, 7)) > 0)
        got += n;
    CU_ASSERT_EQUAL(got, *total);
    cJSON *head = cJSON_ParseWithLength(*whole, *header_len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(head);
    return head;
}

/* A step's answer: the JSON answer's document with each tensor as
 * {shape, datatype, binary_data_size}, then the values bit for bit. */
static void test_step_answer(void)
{
    nn_graph *g = graph_of(TWO);
    nn_error e;
    nn_session *s = nn_session_new(g, 2, 1, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    tu_fill(nn_session_input(s, "a"), 0.7f, 0.1f);
    tu_fill(nn_session_input(s, "b"), 1.3f, 0.4f);
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &e), NN_OK);
    const nn_tensor *y = nn_session_output(s, "y");
    api_enc *enc = api_step_outputs_enc(s, g, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
    char *whole;
    size_t header_len, total;
    cJSON *head = split_answer(enc, &whole, &header_len, &total);
    CU_ASSERT_EQUAL(total, header_len + 6 * 4);
    const cJSON *t = cJSON_GetObjectItem(cJSON_GetObjectItem(head, "outputs"),
                                         "y");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(t, "shape")), 2);
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(cJSON_GetObjectItem(t, "shape"), 0)
                        ->valueint, 2);
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(cJSON_GetObjectItem(t, "shape"), 1)
                        ->valueint, 3);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(t, "datatype")->valuestring,
                           "FP32");
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(t, "binary_data_size")->valueint, 24);
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(head, "step")->valueint, 4);
    for (int k = 0; k < 6; k++) {
        float v = get_le((unsigned char *)whole + header_len + 4 * k);
        CU_ASSERT_EQUAL(memcmp(&v, &y->data[k], 4), 0);
    }
    cJSON_Delete(head);
    free(whole);
    api_enc_free(enc);
    nn_session_free(s);
    nn_graph_free(g);
}

/* A parameter export in the framing reads back, bit for bit, through the
 * import with the same bytes; its header is the JSON export's with "data"
 * replaced. */
static void test_params_round_trip(void)
{
    const char *def =
        "{\"seed\": 3, \"nodes\": [{\"name\": \"x\", \"type\": \"Input\", "
        "\"shape\": 3}, {\"name\": \"d\", \"type\": \"Dense\", "
        "\"num_unit\": 4}, {\"name\": \"r\", \"type\": \"Reservoir\", "
        "\"num_unit\": 6}], \"edges\": [\"x >> d >> r\"]}";
    nn_graph *g = graph_of(def);
    api_enc *enc = api_params_enc(g);
    CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
    char *whole;
    size_t header_len, total;
    cJSON *head = split_answer(enc, &whole, &header_len, &total);
    api_enc_free(enc);

    /* The JSON export, to hold the header to. */
    api_enc *plain = api_params_enc(g);
    CU_ASSERT_PTR_NOT_NULL_FATAL(plain);
    api_buf text = {0};
    char chunk[4096];
    size_t n;
    while ((n = api_enc_next(plain, chunk, sizeof chunk)) > 0)
        api_buf_put(&text, chunk, n);
    api_enc_free(plain);
    size_t text_len;
    char *json = api_buf_finish(&text, &text_len);
    cJSON *doc = cJSON_Parse(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    size_t weights = 0, bytes = 0;
    const cJSON *nodes = cJSON_GetObjectItem(doc, "nodes");
    for (const cJSON *node = nodes->child; node; node = node->next)
        for (const cJSON *w = node->child; w; w = w->next) {
            const cJSON *hw = cJSON_GetObjectItem(
                cJSON_GetObjectItem(cJSON_GetObjectItem(head, "nodes"),
                                    node->string),
                w->string);
            CU_ASSERT_PTR_NOT_NULL_FATAL(hw);
            CU_ASSERT(cJSON_Compare(cJSON_GetObjectItem(w, "shape"),
                                    cJSON_GetObjectItem(hw, "shape"), 1));
            CU_ASSERT(cJSON_Compare(cJSON_GetObjectItem(w, "trainable"),
                                    cJSON_GetObjectItem(hw, "trainable"), 1));
            CU_ASSERT_PTR_NULL(cJSON_GetObjectItem(hw, "data"));
            size_t size = (size_t)cJSON_GetArraySize(
                              cJSON_GetObjectItem(w, "data")) * 4;
            CU_ASSERT_EQUAL(
                cJSON_GetObjectItem(hw, "binary_data_size")->valuedouble,
                (double)size);
            bytes += size;
            weights++;
        }
    CU_ASSERT(weights >= 3);
    CU_ASSERT_EQUAL(total, header_len + bytes);
    cJSON_Delete(doc);
    free(json);
    cJSON_Delete(head);

    /* Into another graph of other weights, and compared bit for bit. */
    nn_graph *other = graph_of("{\"seed\": 99, \"nodes\": [{\"name\": \"x\", "
                               "\"type\": \"Input\", \"shape\": 3}, {\"name\": "
                               "\"d\", \"type\": \"Dense\", \"num_unit\": 4}, "
                               "{\"name\": \"r\", \"type\": \"Reservoir\", "
                               "\"num_unit\": 6}], \"edges\": [\"x >> d >> "
                               "r\"]}");
    int differ = 0;
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        nn_node *a = nn_graph_node_at(g, i), *b = nn_graph_node_at(other, i);
        for (int w = 0; w < nn_node_weight_count(a); w++) {
            const nn_tensor *ta = nn_node_weight_at(a, w);
            differ |= memcmp(ta->data, nn_node_weight_at(b, w)->data,
                             nn_tensor_numel(ta) * 4) != 0;
        }
    }
    CU_ASSERT_TRUE(differ); /* so that the comparison below can fail */
    api_json j = {whole, header_len, NULL};
    api_error err;
    api_json_blobs *bin;
    CU_ASSERT_EQUAL_FATAL(api_json_blobs_index(&j, whole + header_len,
                                               total - header_len, &bin, &err),
                          0);
    api_params_import *imp;
    CU_ASSERT_EQUAL_FATAL(api_params_read_bin(other, &j, bin, &imp, &err), 0);
    api_params_apply(other, imp);
    api_params_import_free(imp);
    api_json_blobs_free(bin);
    differ = 0;
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        nn_node *a = nn_graph_node_at(g, i), *b = nn_graph_node_at(other, i);
        for (int w = 0; w < nn_node_weight_count(a); w++) {
            const nn_tensor *ta = nn_node_weight_at(a, w);
            differ |= memcmp(ta->data, nn_node_weight_at(b, w)->data,
                             nn_tensor_numel(ta) * 4) != 0;
        }
    }
    CU_ASSERT_FALSE(differ);
    free(whole);
    nn_graph_free(other);
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
        {"step inputs from the bytes, in the header's order", test_step_inputs},
        {"framing errors", test_errors},
        {"run: forced before inputs", test_run_order},
        {"step answer in the framing", test_step_answer},
        {"params export and import in the framing", test_params_round_trip},
        {NULL, NULL},
    };
    int rc = tu_run_suite("v1binary", tests);
    nn_registry_free(reg);
    return rc;
}
