/*
 * test_outputs.c — reading which nodes a request wants to see: v1's
 * "outputs": ["r", "o"] off the body text, KServe's "outputs": [{"name"}],
 * their refusals and messages, and the documents written for the chosen
 * nodes, held to cJSON's printing of the same tensors.
 */
#include "api.h"
#include "api_codec.h"
#include "api_kserve.h"
#include "api_outputs.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nn_registry *reg;
static api_limits lim;

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

/* x >> r >> o with a second exit p off r. */
static const char *NET =
    "{\"seed\": 3, \"nodes\": [{\"name\": \"x\", \"type\": \"Input\", "
    "\"shape\": 2}, {\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": "
    "4}, {\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 3}, {\"name\": "
    "\"p\", \"type\": \"Dense\", \"num_unit\": 1}], \"edges\": [\"x >> r >> "
    "o\", \"r >> p\"]}";

/* The names o holds, joined by ",". */
static void joined(const api_outputs *o, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int k = 0; k < o->n && n < cap; k++) {
        CU_ASSERT_STRING_EQUAL(o->names[k], nn_node_name(o->nodes[k]));
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", k ? "," : "",
                              o->names[k]);
    }
}

/* Reads body's "outputs" through api_read_step_body and api_json_outputs. */
static int read_list(const nn_graph *g, const char *body, int sequence,
                     api_outputs *o, api_error *err)
{
    api_json j = {body, strlen(body), NULL};
    api_step_body b;
    CU_ASSERT_EQUAL_FATAL(api_read_step_body(&j, sequence, &b, err), 0);
    return api_json_outputs(&j, b.outputs, g, o, err);
}

static void test_v1_lists(void)
{
    nn_graph *g = graph_of(NET);
    api_outputs o;
    api_error err;
    char names[128];
    /* Absent: the exits, in the graph's order. */
    CU_ASSERT_EQUAL(read_list(g, "{\"inputs\": {}}", 0, &o, &err), 0);
    joined(&o, names, sizeof names);
    CU_ASSERT_STRING_EQUAL(names, "o,p");
    CU_ASSERT_EQUAL(api_outputs_floats(&o), 4);
    api_outputs_free(&o);
    /* In the request's order, an Input and an inner node among them, in
     * both step and run bodies, escapes read as JSON reads them. */
    for (int sequence = 0; sequence < 2; sequence++) {
        CU_ASSERT_EQUAL(read_list(g, "{\"outputs\" : [ \"p\" ,\"\\u0072\", "
                                  "\"x\"\n], \"inputs\": {}}",
                                  sequence, &o, &err), 0);
        joined(&o, names, sizeof names);
        CU_ASSERT_STRING_EQUAL(names, "p,r,x");
        CU_ASSERT_EQUAL(api_outputs_floats(&o), 1 + 4 + 2);
        api_outputs_free(&o);
    }
    /* Every node once is the longest list. */
    CU_ASSERT_EQUAL(read_list(g, "{\"inputs\": {}, \"outputs\": [\"o\", \"p\","
                              " \"r\", \"x\"]}", 0, &o, &err), 0);
    CU_ASSERT_EQUAL(o.n, 4);
    api_outputs_free(&o);

    struct {
        const char *outputs, *code, *needle;
    } bad[] = {
        {"[\"r\", \"zz\"]", "unknown_output",
         "outputs[1]: the network has no node 'zz'; its nodes are x, r, o, p"},
        {"[\"r\", \"o\", \"r\"]", "bad_request",
         "outputs[2]: output 'r' is asked for twice"},
        {"[]", "bad_request", "must be a non-empty array of node names"},
        {"\"r\"", "bad_request", "must be a non-empty array"},
        {"{\"r\": 1}", "bad_request", "must be a non-empty array"},
        {"null", "bad_request", "must be a non-empty array"},
        {"[\"r\", 3]", "bad_request", "outputs[1]: \"outputs\" must be"},
        {"[[\"r\"]]", "bad_request", "outputs[0]: \"outputs\" must be"},
        {"[\"o\", \"p\", \"r\", \"x\", \"o\"]", "bad_request",
         "outputs[4]: output 'o' is asked for twice"},
        {"[\"o\", \"p\", \"r\", \"x\", \"zz\", \"o\"]", "unknown_output",
         "outputs[4]: the network has no node 'zz'"},
        {"[\"\"]", "unknown_output", "no node ''"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        char body[256];
        snprintf(body, sizeof body, "{\"inputs\": {}, \"outputs\": %s}",
                 bad[k].outputs);
        memset(&err, 0, sizeof err);
        CU_ASSERT_EQUAL(read_list(g, body, 0, &o, &err), -1);
        if (strcmp(err.code, bad[k].code) || !strstr(err.message,
                                                     bad[k].needle))
            fprintf(stderr, "%s -> %s: %s\n", body, err.code, err.message);
        CU_ASSERT_EQUAL(err.http_status, 400);
        CU_ASSERT_STRING_EQUAL(err.code, bad[k].code);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.message, bad[k].needle));
        api_outputs_free(&o);
    }
    /* A name longer than any node's is not found, and shown cut. */
    char body[512];
    snprintf(body, sizeof body, "{\"inputs\": {}, \"outputs\": [\"%0300d\"]}",
             0);
    CU_ASSERT_EQUAL(read_list(g, body, 0, &o, &err), -1);
    CU_ASSERT_STRING_EQUAL(err.code, "unknown_output");
    api_outputs_free(&o);
    nn_graph_free(g);
}

static void test_node_list_text(void)
{
    /* 40 nodes with long names do not fit a message: cut with ", ...". */
    char def[8192];
    size_t n = (size_t)snprintf(def, sizeof def, "{\"nodes\": [{\"name\": "
                                "\"in\", \"type\": \"Input\", \"shape\": 1}");
    for (int k = 0; k < 40; k++)
        n += (size_t)snprintf(def + n, sizeof def - n, ", {\"name\": "
                              "\"activation_number_%02d\", \"type\": "
                              "\"Activation\", \"function\": \"tanh\"}", k);
    n += (size_t)snprintf(def + n, sizeof def - n, "], \"edges\": [\"in");
    for (int k = 0; k < 40; k++)
        n += (size_t)snprintf(def + n, sizeof def - n,
                              " >> activation_number_%02d", k);
    snprintf(def + n, sizeof def - n, "\"]}");
    nn_graph *g = graph_of(def);
    char buf[200];
    api_node_list_text(g, buf, sizeof buf);
    CU_ASSERT(strlen(buf) < sizeof buf);
    CU_ASSERT_EQUAL(strncmp(buf, "in, activation_number_00, ", 26), 0);
    CU_ASSERT_STRING_EQUAL(buf + strlen(buf) - 5, ", ...");
    /* Whole when it fits. */
    char big[4096];
    api_node_list_text(g, big, sizeof big);
    CU_ASSERT_PTR_NOT_NULL(strstr(big, "activation_number_39"));
    CU_ASSERT_PTR_NULL(strstr(big, "..."));
    /* The refusal's message stays inside api_error's. */
    api_outputs o;
    api_error err;
    CU_ASSERT_EQUAL(read_list(g, "{\"inputs\": {}, \"outputs\": [\"zz\"]}", 0,
                              &o, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "its nodes are in, "));
    CU_ASSERT_STRING_EQUAL(err.message + strlen(err.message) - 5, ", ...");
    api_outputs_free(&o);
    nn_graph_free(g);
}

static char *drain(api_enc *e)
{
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    size_t n;
    while ((n = api_enc_next(e, out + len, 7)) > 0)
        len += n;
    out[len] = '\0';
    return out;
}

static void test_documents(void)
{
    nn_graph *g = graph_of(NET);
    nn_error e;
    nn_session *s = nn_session_new(g, 2, 1, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    nn_tensor *x = nn_session_input(s, "x");
    for (int k = 0; k < 4; k++)
        x->data[k] = 0.25f * (float)k - 0.4f;
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &e), NN_OK);
    api_outputs o;
    api_error err;
    CU_ASSERT_EQUAL_FATAL(read_list(g, "{\"inputs\": {}, \"outputs\": [\"r\", "
                                    "\"x\"]}", 0, &o, &err), 0);
    cJSON *want = cJSON_CreateObject();
    cJSON *outs = cJSON_AddObjectToObject(want, "outputs");
    cJSON_AddItemToObject(outs, "r", api_tensor_to_json(nn_session_output(s,
                                                                          "r")));
    cJSON_AddItemToObject(outs, "x", api_tensor_to_json(nn_session_output(s,
                                                                          "x")));
    cJSON_AddNumberToObject(want, "step", 1);
    char *text = cJSON_PrintUnformatted(want);
    api_enc *enc = api_step_nodes_enc(s, &o, 1);
    char *got = drain(enc);
    CU_ASSERT_STRING_EQUAL(got, text);
    api_enc_free(enc);
    free(got);
    free(text);
    cJSON_Delete(want);

    /* A run's sequences, in the chosen order. */
    nn_shape shape = {3, {2, 3, 2}};
    nn_tensor *in = nn_tensor_new(&shape);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    for (size_t k = 0; k < nn_tensor_numel(in); k++)
        in->data[k] = 0.1f * (float)k;
    nn_binding bind = {"x", in};
    nn_tensor *seq[2];
    CU_ASSERT_EQUAL_FATAL(nn_session_run_outputs(s, &bind, 1, NULL, 0, o.names,
                                                 o.n, 3, 0, seq, &e), NN_OK);
    want = cJSON_CreateObject();
    outs = cJSON_AddObjectToObject(want, "outputs");
    cJSON_AddItemToObject(outs, "r", api_tensor_to_json(seq[0]));
    cJSON_AddItemToObject(outs, "x", api_tensor_to_json(seq[1]));
    cJSON_AddNumberToObject(want, "step", 4);
    text = cJSON_PrintUnformatted(want);
    enc = api_sequence_nodes_enc(&o, seq, 4);
    CU_ASSERT_PTR_NULL(seq[0]); /* taken */
    got = drain(enc);
    CU_ASSERT_STRING_EQUAL(got, text);
    api_enc_free(enc);
    free(got);
    free(text);
    cJSON_Delete(want);
    nn_tensor_free(in);
    api_outputs_free(&o);
    nn_session_free(s);
    nn_graph_free(g);
}

static int kserve_read(const nn_graph *g, const char *outputs,
                       api_kserve_request *r, api_error *err)
{
    char body[512];
    snprintf(body, sizeof body, "{\"inputs\": [{\"name\": \"x\", \"shape\": "
             "[1, 2], \"datatype\": \"FP32\", \"data\": [1, 2]}]%s%s}",
             outputs ? ", \"outputs\": " : "", outputs ? outputs : "");
    cJSON *j = cJSON_Parse(body);
    int rc = api_kserve_read_request(j, NULL, 0, g, &lim, r, err);
    cJSON_Delete(j);
    return rc;
}

static void test_kserve_lists(void)
{
    nn_graph *g = graph_of(NET);
    api_kserve_request r;
    api_error err;
    /* Absent or empty: the exits. */
    CU_ASSERT_EQUAL(kserve_read(g, NULL, &r, &err), 0);
    CU_ASSERT_EQUAL(r.n_outputs, 2);
    api_kserve_request_free(&r);
    CU_ASSERT_EQUAL(kserve_read(g, "[]", &r, &err), 0);
    CU_ASSERT_EQUAL(r.n_outputs, 2);
    CU_ASSERT_STRING_EQUAL(r.outputs[1].name, "p");
    api_kserve_request_free(&r);
    /* Inner nodes and the Input, each with its own binary choice. */
    CU_ASSERT_EQUAL(kserve_read(g, "[{\"name\": \"r\", \"parameters\": "
                                "{\"binary_data\": true}}, {\"name\": \"x\"}]",
                                &r, &err), 0);
    CU_ASSERT_EQUAL_FATAL(r.n_outputs, 2);
    CU_ASSERT_STRING_EQUAL(r.outputs[0].name, "r");
    CU_ASSERT_EQUAL(r.outputs[0].binary, 1);
    CU_ASSERT_STRING_EQUAL(r.outputs[1].name, "x");
    CU_ASSERT_EQUAL(r.outputs[1].binary, 0);
    api_kserve_request_free(&r);
    CU_ASSERT_EQUAL(kserve_read(g, "[{\"name\": \"zz\"}]", &r, &err), -1);
    CU_ASSERT_STRING_EQUAL(err.code, "unknown_output");
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "outputs[0]: the model has no "
                                  "node 'zz' to output; its nodes are x, r, "
                                  "o, p"));
    api_kserve_request_free(&r);
    CU_ASSERT_EQUAL(kserve_read(g, "[{\"name\": \"r\"}, {\"name\": \"r\"}]", &r,
                                &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "twice"));
    api_kserve_request_free(&r);

    /* The answer carries the inner node's values. */
    CU_ASSERT_EQUAL_FATAL(kserve_read(g, "[{\"name\": \"r\"}]", &r, &err), 0);
    nn_error e;
    nn_session *s = nn_session_new(g, 1, 1, &e);
    memcpy(nn_session_input(s, "x")->data, r.inputs[0].tensor->data,
           2 * sizeof(float));
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &e), NN_OK);
    api_blob blobs[1];
    int n_blobs;
    cJSON *res = api_kserve_response(&r, "m", s, blobs, &n_blobs);
    CU_ASSERT_EQUAL(n_blobs, 0);
    const cJSON *out = cJSON_GetArrayItem(cJSON_GetObjectItem(res, "outputs"),
                                          0);
    const cJSON *data = cJSON_GetObjectItem(out, "data");
    /* The array is one raw text of the codec's: flat, the shortest
     * numbers that read back exactly. */
    CU_ASSERT_FATAL(cJSON_IsRaw(data));
    const char *p = data->valuestring;
    CU_ASSERT_EQUAL_FATAL(*p, '[');
    int nonzero = 0, k = 0;
    for (; k < 4 && *p != ']'; k++) {
        char *end;
        float got = strtof(p + 1, &end);
        float want = nn_session_output(s, "r")->data[k];
        CU_ASSERT(end > p + 1);
        CU_ASSERT_EQUAL(got, want);
        nonzero += want != 0;
        p = end;
    }
    CU_ASSERT_EQUAL(k, 4);
    CU_ASSERT_STRING_EQUAL(p, "]");
    CU_ASSERT(nonzero > 0);
    cJSON_Delete(res);
    nn_session_free(s);
    api_kserve_request_free(&r);
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
        {"v1 lists", test_v1_lists},
        {"the node list in messages", test_node_list_text},
        {"documents of the chosen nodes", test_documents},
        {"KServe lists", test_kserve_lists},
        {NULL, NULL}};
    int rc = tu_run_suite("outputs", tests);
    nn_registry_free(reg);
    return rc;
}
