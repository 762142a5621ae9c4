/*
 * test_api.c — the JSON layer without HTTP: float text round trips,
 * tensors in both forms, graph definitions and their errors, descriptions,
 * drawings and parameter documents.
 */
#include "api.h"
#include "api_codec.h"
#include "testutil.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nn_registry *reg;
static api_limits lim;

static void test_floats_read_back_exactly(void)
{
    nn_rng rng;
    nn_rng_seed(&rng, 3);
    float special[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.1f, 1e-45f, 1.17549435e-38f,
                       3.40282347e38f, -3.40282347e38f, 16777217.0f,
                       0.333333343f, 1e-10f};
    char buf[32];
    for (size_t k = 0; k < sizeof special / sizeof *special; k++) {
        api_format_float(special[k], buf, sizeof buf);
        float back = strtof(buf, NULL);
        CU_ASSERT_EQUAL(memcmp(&back, &special[k], sizeof back), 0);
    }
    for (int k = 0; k < 100000; k++) {
        uint32_t bits = (uint32_t)nn_rng_u64(&rng);
        float v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v))
            continue;
        api_format_float(v, buf, sizeof buf);
        float back = strtof(buf, NULL);
        CU_ASSERT_EQUAL(memcmp(&back, &v, sizeof v), 0);
        CU_ASSERT(strlen(buf) <= 16);
    }
    api_format_float(0.1f, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "0.1"); /* the fewest digits */
    /* JSON has no NaN or infinity: a diverged output is null, and a
     * document holding it still parses. */
    api_format_float(NAN, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "null");
    api_format_float(-INFINITY, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "null");
    int dims[1] = {2};
    nn_shape sh = nn_shape_make(1, dims);
    nn_tensor *t = nn_tensor_new(&sh);
    t->data[0] = NAN;
    t->data[1] = 1.5f;
    cJSON *j = api_tensor_to_json(t);
    char *text = cJSON_PrintUnformatted(j);
    CU_ASSERT_STRING_EQUAL(text, "[null,1.5]");
    cJSON *back = cJSON_Parse(text);
    CU_ASSERT_PTR_NOT_NULL(back);
    cJSON_Delete(back);
    free(text);
    cJSON_Delete(j);
    nn_tensor_free(t);
}

static nn_tensor *parse(const char *text, int expect_ok, int status,
                        const char *needle)
{
    cJSON *j = cJSON_Parse(text);
    nn_tensor *t = NULL;
    api_error err;
    memset(&err, 0, sizeof err);
    int rc = api_tensor_from_json(j, "inputs.x", &lim, &t, &err);
    CU_ASSERT_EQUAL(rc == 0, expect_ok);
    if (!expect_ok) {
        CU_ASSERT_EQUAL(err.http_status, status);
        if (!strstr(err.message, needle) || !strstr(err.message, "inputs.x"))
            fprintf(stderr, "%s -> %s\n", text, err.message);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.message, needle));
        CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "inputs.x"));
    }
    cJSON_Delete(j);
    return t;
}

static void test_tensors(void)
{
    nn_tensor *t = parse("[[1, 2, 3], [4, 5, 6]]", 1, 0, NULL);
    CU_ASSERT_EQUAL(t->shape.ndim, 2);
    CU_ASSERT_EQUAL(t->shape.dims[0], 2);
    CU_ASSERT_EQUAL(t->shape.dims[1], 3);
    CU_ASSERT_EQUAL(t->data[5], 6);
    nn_tensor *u = parse("{\"shape\": [2, 3], \"data\": [1, 2, 3, 4, 5, 6]}", 1,
                         0, NULL);
    CU_ASSERT(nn_shape_equal(&t->shape, &u->shape));
    CU_ASSERT_EQUAL(memcmp(t->data, u->data, 6 * sizeof(float)), 0);
    /* Out and back in. */
    cJSON *j = api_tensor_to_json(t);
    char *text = cJSON_PrintUnformatted(j);
    CU_ASSERT_STRING_EQUAL(text, "[[1,2,3],[4,5,6]]");
    free(text);
    cJSON_Delete(j);
    nn_tensor_free(t);
    nn_tensor_free(u);

    nn_tensor_free(parse("[[1, 2], [3]]", 0, 400, "ragged"));
    nn_tensor_free(parse("[[1, 2], 3]", 0, 400, "ragged"));
    nn_tensor_free(parse("[[1, \"2\"]]", 0, 400, "not a number"));
    nn_tensor_free(parse("[[1, null]]", 0, 400, "not a number"));
    nn_tensor_free(parse("[]", 0, 400, "empty"));
    nn_tensor_free(parse("[[]]", 0, 400, "empty"));
    nn_tensor_free(parse("3", 0, 400, "array"));
    nn_tensor_free(parse("[1e39]", 0, 400, "finite"));
    nn_tensor_free(parse("[1e999]", 0, 400, "finite"));
    nn_tensor_free(parse("[[[[[[[[[1]]]]]]]]]", 0, 400, "axes"));
    nn_tensor_free(parse("{\"shape\": [2], \"data\": [1]}", 0, 400, "\"data\""));
    nn_tensor_free(parse("{\"shape\": [0], \"data\": []}", 0, 400, "shape"));
    nn_tensor_free(parse("{\"shape\": [2.5], \"data\": [1, 2]}", 0, 400,
                         "shape"));
    nn_tensor_free(parse("{\"shape\": [1], \"data\": [1], \"x\": 1}", 0, 400,
                         "'x'"));
    api_limits keep = lim;
    lim.max_tensor_elems = 4;
    nn_tensor_free(parse("[1, 2, 3, 4, 5]", 0, 413, "elements"));
    nn_tensor_free(parse("{\"shape\": [100000, 100000], \"data\": []}", 0, 413,
                         "elements"));
    lim = keep;
}

/* The text of GET .../params of g, as the daemon streams it. */
static char *params_text(const nn_graph *g)
{
    api_enc *e = api_params_enc(g);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    api_buf b = {0};
    char chunk[512];
    size_t n;
    while ((n = api_enc_next(e, chunk, sizeof chunk)) > 0)
        api_buf_put(&b, chunk, n);
    api_buf_put(&b, "", 0);
    api_enc_free(e);
    return api_buf_finish(&b, NULL);
}

/* PUT .../params of text into g: read whole, then applied. */
static int params_import(nn_graph *g, const char *text, api_error *err)
{
    api_json j = {text, strlen(text), NULL};
    api_params_import *imp;
    if (api_params_read(g, &j, &imp, err))
        return -1;
    api_params_apply(g, imp);
    api_params_import_free(imp);
    return 0;
}

static nn_graph *graph_of(const char *text, api_error *err)
{
    cJSON *j = cJSON_Parse(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    memset(err, 0, sizeof *err);
    nn_graph *g = api_graph_from_json(j, reg, &lim, err);
    cJSON_Delete(j);
    return g;
}

static void test_definitions(void)
{
    api_error err;
    nn_graph *g = graph_of(
        "{\"seed\": 5, \"nodes\": ["
        "{\"name\": \"i\", \"type\": \"Input\", \"shape\": [3]},"
        "{\"name\": \"d\", \"type\": \"Dense\", \"num_unit\": 4, "
        "\"W_initializer\": {\"type\": \"Normal\", \"scale\": 0.5}, "
        "\"use_bias\": false, \"trainable\": false},"
        "{\"type\": \"Dense\", \"num_unit\": 2}],"
        "\"ff\": [[\"i\", \"d\"], [\"d\", \"Dense0\"]], \"fb\": [[\"d\", \"Dense0\"]]}",
        &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    nn_node *d = nn_graph_find(g, "d");
    CU_ASSERT_STRING_EQUAL(nn_node_param_text(d, "W_initializer"),
                           "Normal(mean=0, scale=0.5)");
    CU_ASSERT_FALSE(nn_node_trainable(d));
    CU_ASSERT_PTR_NULL(nn_node_weight(d, "b"));
    CU_ASSERT_PTR_NOT_NULL(nn_node_weight(d, "Wfb"));
    CU_ASSERT_EQUAL(nn_graph_seed(g), 5);

    cJSON *desc = api_graph_describe(g);
    const cJSON *nodes = cJSON_GetObjectItem(desc, "nodes");
    const cJSON *dj = cJSON_GetArrayItem(nodes, 1);
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(dj, "param_count")->valueint, 12 + 8);
    const cJSON *fbs = cJSON_GetObjectItem(dj, "feedback_shapes");
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(cJSON_GetArrayItem(fbs, 0), 1)->valueint,
                    2);
    CU_ASSERT_STRING_EQUAL(cJSON_GetArrayItem(cJSON_GetObjectItem(desc, "exits"),
                                              0)->valuestring, "Dense0");
    cJSON_Delete(desc);

    /* Drawings name every node and mark feedback. */
    char *dot = api_graph_dot(g), *svg = api_graph_svg(g);
    CU_ASSERT_PTR_NOT_NULL(strstr(dot, "\"Dense0\" -> \"d\" [style=dashed"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dot, "(None, 4)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(svg, ">Dense0</text>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(svg, "stroke-dasharray"));
    int open = 0, close = 0;
    for (const char *p = svg; (p = strstr(p, "<g ")); p++)
        open++;
    for (const char *p = svg; (p = strstr(p, "</g>")); p++)
        close++;
    CU_ASSERT_EQUAL(open, 3);
    CU_ASSERT_EQUAL(close, 3);
    free(dot);
    free(svg);

    /* Parameters: export, change, import all-or-nothing. */
    char *params = params_text(g);
    cJSON *pj = cJSON_Parse(params);
    cJSON *W = cJSON_GetObjectItem(cJSON_GetObjectItem(
                                       cJSON_GetObjectItem(pj, "nodes"), "d"),
                                   "W");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(W, "data")), 12);
    cJSON_Delete(pj);
    const char *bad = "{\"nodes\": {\"d\": {\"W\": {\"shape\": [3, 4], "
                      "\"data\": [1,1,1,1,1,1,1,1,1,1,1,1]}, \"zz\": [1]}}}";
    float before = nn_node_weight(d, "W")->data[0];
    CU_ASSERT_EQUAL(params_import(g, bad, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "nodes.d.zz"));
    CU_ASSERT_EQUAL(nn_node_weight(d, "W")->data[0], before);
    CU_ASSERT_EQUAL(params_import(g, "{\"nodes\": {\"d\": {\"W\": {\"shape\": "
                                  "[3, 4], \"data\": [1,1,1,1,1,1,1,1,1,1,1,"
                                  "1]}}}}", &err), 0);
    CU_ASSERT_EQUAL(nn_node_weight(d, "W")->data[11], 1.0f);
    CU_ASSERT_EQUAL(params_import(g, params, &err), 0);
    CU_ASSERT_EQUAL(nn_node_weight(d, "W")->data[0], before);
    free(params);
    nn_graph_free(g);
}

/* A type that names its features (NVAR) has them listed in the
 * description; a sparse reservoir's W travels as its nnz values. */
static void test_reservoir_computing_nodes(void)
{
    api_error err;
    nn_graph *g = graph_of(
        "{\"seed\": 3, \"nodes\": ["
        "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 2},"
        "{\"name\": \"f\", \"type\": \"NVAR\", \"delay\": 2, "
        "\"order\": 2, \"stride\": 2, \"constant\": true},"
        "{\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": 30, "
        "\"sparse\": true, \"spectral_radius\": 0.9, "
        "\"rc_connectivity\": 0.2}],"
        "\"edges\": [\"x >> f >> r\"]}", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    cJSON *desc = api_graph_describe(g);
    const cJSON *nodes = cJSON_GetObjectItem(desc, "nodes");
    const cJSON *names = cJSON_GetObjectItem(cJSON_GetArrayItem(nodes, 1),
                                             "feature_names");
    CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(names), 1 + 4 + 10);
    const char *want[] = {"1", "x0(t)", "x1(t)", "x0(t-2)", "x1(t-2)",
                          "x0(t)*x0(t)", "x0(t)*x1(t)"};
    for (int i = 0; i < 7; i++)
        CU_ASSERT_STRING_EQUAL(cJSON_GetArrayItem(names, i)->valuestring,
                               want[i]);
    CU_ASSERT_STRING_EQUAL(cJSON_GetArrayItem(names, 14)->valuestring,
                           "x1(t-2)*x1(t-2)");
    /* Types without names have no such member. */
    CU_ASSERT_PTR_NULL(cJSON_GetObjectItem(cJSON_GetArrayItem(nodes, 2),
                                           "feature_names"));
    const cJSON *weights = cJSON_GetObjectItem(cJSON_GetArrayItem(nodes, 2),
                                               "weights");
    const cJSON *w = cJSON_GetArrayItem(weights, 1);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(w, "name")->valuestring, "W");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(w, "shape")), 1);
    CU_ASSERT_FALSE(cJSON_IsTrue(cJSON_GetObjectItem(w, "trainable")));
    /* Export and import round trip the nnz values. */
    nn_node *r = nn_graph_find(g, "r");
    nn_tensor *W = nn_node_weight(r, "W");
    char *params = params_text(g);
    cJSON *pj = cJSON_Parse(params);
    cJSON *wj = cJSON_GetObjectItem(cJSON_GetObjectItem(
                                        cJSON_GetObjectItem(pj, "nodes"),
                                        "r"), "W");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(wj, "data")),
                    (int)nn_tensor_numel(W));
    cJSON_Delete(pj);
    float first = W->data[0];
    W->data[0] = 42;
    CU_ASSERT_EQUAL(params_import(g, params, &err), 0);
    CU_ASSERT_EQUAL(W->data[0], first);
    free(params);
    cJSON_Delete(desc);
    nn_graph_free(g);
}

typedef struct def_case {
    const char *text;
    int status;
    const char *needle;
} def_case;

/* Edge objects with a delay and "&" merges in a JSON definition: the
 * delay becomes a Delay node between the ends, and the output lags by it;
 * an edge both merged chains declare is added once. */
static void test_delayed_edges_and_merges(void)
{
    api_error err;
    nn_graph *g = graph_of(
        "{\"nodes\": [{\"type\": \"Input\", \"shape\": 1, \"name\": \"i\"},"
        "{\"type\": \"Activation\", \"function\": \"identity\", \"name\": \"a\"},"
        "{\"type\": \"Activation\", \"function\": \"identity\", \"name\": \"o\"}],"
        "\"edges\": [{\"from\": \"i\", \"to\": \"a\", \"delay\": 2},"
        " \"a >> o & a >> o\"]}", &err);
    if (!g)
        fprintf(stderr, "%s\n", err.message);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_PTR_NOT_NULL(nn_graph_find(g, "Delay0"));
    CU_ASSERT_EQUAL(nn_node_ff_count(nn_graph_find(g, "o")), 1);
    nn_error e;
    nn_session *s = nn_session_new(g, 1, 0, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    int dims[3] = {1, 5, 1};
    nn_shape sh = nn_shape_make(3, dims);
    nn_tensor *x = nn_tensor_new(&sh);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    for (int t = 0; t < 5; t++)
        x->data[t] = (float)(t + 1);
    nn_binding in = {"i", x};
    nn_tensor *out[1] = {NULL};
    CU_ASSERT_EQUAL_FATAL(nn_session_run(s, &in, 1, 5, 0, out, &e), NN_OK);
    const float want[5] = {0, 0, 1, 2, 3};
    for (int t = 0; t < 5; t++)
        CU_ASSERT_EQUAL(out[0]->data[t], want[t]);
    nn_tensor_free(out[0]);
    nn_tensor_free(x);
    nn_session_free(s);
    nn_graph_free(g);
}

/* Names and ids that stand in a URL's path. */
static void test_path_names(void)
{
    static const char *const good[] = {"a", "res-1", "v1.2", "...", ".a",
                                       "a..", "_", "A_b-c.d"};
    static const char *const bad[] = {"", ".", "..", "a b", "a/b", "%2e",
                                      "\xc3\xa9", "abcdefgh"};
    for (size_t k = 0; k < sizeof good / sizeof *good; k++)
        CU_ASSERT_EQUAL(api_is_path_name(good[k], 8), 1);
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++)
        CU_ASSERT_EQUAL(api_is_path_name(bad[k], 8), 0);
    CU_ASSERT_EQUAL(api_is_path_name("abcdefg", 8), 1); /* max - 1 bytes */
}

static void test_definition_errors(void)
{
    static const def_case cases[] = {
        {"[]", 400, "JSON object"},
        {"{\"nodes\": []}", 400, "non-empty"},
        {"{\"nodes\": [1]}", 400, "nodes[0]"},
        {"{\"nodes\": [{\"type\": 3}]}", 400, "nodes[0].type"},
        {"{\"nodes\": [{\"type\": \"Input\", \"name\": 7}]}", 400,
         "nodes[0].name"},
        {"{\"nodes\": [{\"type\": \"Input\", \"shape\": 2, \"name\": \"a b\"}]}",
         400, "'a b'"},
        {"{\"nodes\": [{\"type\": \"Input\", \"shape\": 0}]}", 400, "shape"},
        {"{\"nodes\": [{\"type\": \"Input\", \"shape\": [2, -1]}]}", 400,
         "shape"},
        {"{\"nodes\": [{\"type\": \"Input\", \"shape\": 2, \"trainable\": 1}]}",
         400, "trainable"},
        {"{\"nodes\": [{\"type\": \"Input\", \"shape\": 2, \"name\": \"i\"}, "
         "{\"type\": \"Dense\", \"num_unit\": 1, \"W_initializer\": "
         "{\"scale\": 1}}], \"edges\": [\"i >> Dense0\"]}", 400, "\"type\""},
        {"{\"nodes\": [{\"type\": \"Input\", \"shape\": 2, \"name\": \"i\"}], "
         "\"ff\": [[\"i\"]]}", 400, "ff[0]"},
        {"{\"nodes\": [{\"type\": \"Input\", \"shape\": 2, \"name\": \"i\"}], "
         "\"fb\": \"i\"}", 400, "\"fb\""},
        {"{\"nodes\": [{\"type\": \"Input\", \"shape\": 2, \"name\": \"i\"}], "
         "\"edges\": [3]}", 400, "edges[0]"},
        {"{\"nodes\": [{\"type\": \"Input\", \"shape\": 2, \"name\": \"i\"}]}",
         422, "feeds no node"},
        {"{\"nodes\": [{\"type\": \"Dense\", \"num_unit\": 2}]}", 422,
         "no feedforward input"},
        {"{\"name\": \"\", \"nodes\": [{\"type\": \"Input\", \"shape\": 2}]}",
         400, "\"name\""},
        {"{\"seed\": 1.5, \"nodes\": [{\"type\": \"Input\", \"shape\": 2}]}",
         400, "seed"},
        {"{\"nodes\": [{\"type\": \"Input\", \"shape\": 2, \"name\": \"i\"}, "
         "{\"type\": \"Dense\", \"num_unit\": 1, \"name\": \"o\"}], "
         "\"edges\": [{\"from\": \"i\", \"to\": \"o\", \"lag\": 2}]}", 400,
         "\"lag\" is not a member of an edge object"},
        {"{\"nodes\": [{\"type\": \"Input\", \"shape\": 2, \"name\": \"i\"}, "
         "{\"type\": \"Dense\", \"num_unit\": 1, \"name\": \"o\"}], "
         "\"edges\": [{\"from\": \"i\", \"to\": \"o\", \"delay\": 1.5}]}", 400,
         "edges[0]: \"delay\" must be an integer"},
        {"{\"nodes\": [{\"type\": \"Input\", \"shape\": 2, \"name\": \"i\"}, "
         "{\"type\": \"Dense\", \"num_unit\": 1, \"name\": \"o\"}], "
         "\"edges\": [{\"from\": \"i\", \"to\": \"o\", \"delay\": -1}]}", 400,
         "\"delay\" must be an integer"},
        {"{\"nodes\": [{\"type\": \"Input\", \"shape\": 2, \"name\": \"i\"}, "
         "{\"type\": \"Dense\", \"num_unit\": 1, \"name\": \"o\"}], "
         "\"edges\": [{\"from\": \"i\"}]}", 400, "needs \"from\" and \"to\""},
        {"{\"nodes\": [{\"type\": \"Input\", \"shape\": 2, \"name\": \"i\"}, "
         "{\"type\": \"Dense\", \"num_unit\": 1, \"name\": \"o\"}], "
         "\"edges\": [{\"from\": \"i\", \"to\": \"p\", \"delay\": 2}]}", 422,
         "edges[0]: delayed edge target: unknown node 'p'"},
        {"{\"nodes\": [{\"type\": \"Input\", \"shape\": 2, \"name\": \"i\"}, "
         "{\"type\": \"Dense\", \"num_unit\": 1, \"name\": \"o\"}], "
         "\"edges\": [\"i >> o &\"]}", 400, "expected an edge after '&'"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        api_error err;
        nn_graph *g = graph_of(cases[k].text, &err);
        CU_ASSERT_PTR_NULL(g);
        nn_graph_free(g);
        int ok = err.http_status == cases[k].status &&
                 strstr(err.message, cases[k].needle);
        if (!ok)
            fprintf(stderr, "%s -> %d %s\n", cases[k].text, err.http_status,
                    err.message);
        CU_ASSERT(ok);
    }
    /* More nodes than the limit. */
    api_limits keep = lim;
    lim.max_nodes = 1;
    api_error err;
    CU_ASSERT_PTR_NULL(graph_of("{\"nodes\": [{\"type\": \"Input\", \"shape\": "
                                "1, \"name\": \"i\"}, {\"type\": \"Dense\", "
                                "\"num_unit\": 1}]}", &err));
    CU_ASSERT_STRING_EQUAL(err.code, "too_many_nodes");
    lim = keep;
}

/* String parameters that types parse themselves take JSON integers and
 * arrays of integers too: Select's index, Reshape's shape. */
static void test_string_params_from_json_numbers(void)
{
    api_error err;
    nn_graph *g = graph_of(
        "{\"nodes\": ["
        "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 6},"
        "{\"name\": \"rs\", \"type\": \"Reshape\", \"shape\": [2, -1]},"
        "{\"name\": \"last\", \"type\": \"Select\", \"index\": -1},"
        "{\"name\": \"tail\", \"type\": \"Select\", \"index\": \"1:\"}],"
        "\"edges\": [\"x >> rs >> {last, tail}\"]}", &err);
    if (!g)
        fprintf(stderr, "%s\n", err.message);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_STRING_EQUAL(nn_node_param_text(nn_graph_find(g, "rs"), "shape"),
                           "[2, -1]");
    nn_shape rs = nn_node_output_shape(nn_graph_find(g, "rs"));
    CU_ASSERT(rs.ndim == 2 && rs.dims[0] == 2 && rs.dims[1] == 3);
    CU_ASSERT_STRING_EQUAL(
        nn_node_param_text(nn_graph_find(g, "last"), "index"), "-1");
    CU_ASSERT_EQUAL(nn_node_output_shape(nn_graph_find(g, "tail")).dims[1], 2);
    nn_graph_free(g);

    static const def_case cases[] = {
        {"{\"nodes\": [{\"type\": \"Select\", \"index\": 1.5}]}", 400,
         ".index must be a string, an integer or an array"},
        {"{\"nodes\": [{\"type\": \"Reshape\", \"shape\": [2, \"a\"]}]}",
         400, "('Reshape0').shape must be a string"},
        {"{\"nodes\": [{\"type\": \"Reshape\", \"shape\": []}]}", 400,
         "('Reshape0').shape must be a string"},
        {"{\"nodes\": [{\"name\": \"x\", \"type\": \"Input\", "
         "\"shape\": 6}, {\"name\": \"rs\", \"type\": \"Reshape\", "
         "\"shape\": [4, -1]}], \"edges\": [\"x >> rs\"]}", 422,
         "not a multiple of 4"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        g = graph_of(cases[k].text, &err);
        CU_ASSERT_PTR_NULL(g);
        nn_graph_free(g);
        int ok = err.http_status == cases[k].status &&
                 strstr(err.message, cases[k].needle);
        if (!ok)
            fprintf(stderr, "%s -> %d %s\n", cases[k].text, err.http_status,
                    err.message);
        CU_ASSERT(ok);
    }
}

/* A type built against version 1 has a struct that ends before the members
 * version 2 appended: it registers, runs and is described without the host
 * reading past its end (the sanitizer build would catch the overread). */
static void test_version_1_types_still_load(void)
{
    nn_error e;
    nn_registry *reg = nn_registry_new();
    CU_ASSERT_EQUAL_FATAL(nn_registry_add_builtins(reg, &e), NN_OK);
    size_t v1_size = offsetof(nn_node_type, feature_name);
    nn_node_type v1 = *nn_registry_find(reg, "Dense");
    v1.api_version = 1;
    v1.name = "OldDense";
    unsigned char *old = malloc(v1_size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(old);
    memcpy(old, &v1, v1_size);
    CU_ASSERT_EQUAL_FATAL(nn_register_type(reg, (const nn_node_type *)(void *)old,
                                           &e), NN_OK);
    api_limits lim = api_default_limits();
    api_error err;
    cJSON *def = cJSON_Parse("{\"nodes\": [{\"name\": \"x\", \"type\": "
                             "\"Input\", \"shape\": 2}, {\"name\": \"d\", "
                             "\"type\": \"OldDense\", \"num_unit\": 3}],"
                             " \"edges\": [\"x >> d\"]}");
    nn_graph *g = api_graph_from_json(def, reg, &lim, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    cJSON *d = api_graph_describe(g);
    CU_ASSERT_PTR_NOT_NULL(d);
    cJSON_Delete(d);
    nn_graph_free(g);
    cJSON_Delete(def);

    nn_node_type future = *nn_registry_find(reg, "Dense");
    future.name = "FutureDense";
    future.api_version = NN_API_VERSION + 1;
    CU_ASSERT_EQUAL(nn_register_type(reg, &future, &e), NN_ERR_VERSION);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "accepts versions 1 to"));
    future.api_version = 0;
    CU_ASSERT_EQUAL(nn_register_type(reg, &future, &e), NN_ERR_VERSION);
    nn_registry_free(reg);
    free(old);
}

static void test_error_body(void)
{
    api_error err;
    api_fail(&err, 404, "not_found", "no network '%s'", "x\"y");
    cJSON *j = api_error_json(&err);
    char *text = cJSON_PrintUnformatted(j);
    CU_ASSERT_STRING_EQUAL(text, "{\"error\":{\"code\":\"not_found\","
                                 "\"message\":\"no network 'x\\\"y'\"}}");
    free(text);
    cJSON_Delete(j);
    nn_error e;
    nn_error_set(&e, NN_ERR_GRAPH, "cycle");
    api_fail_from_nn(&err, &e, 0);
    CU_ASSERT_EQUAL(err.http_status, 422);
    nn_error_set(&e, NN_ERR_EXISTS, "taken");
    api_fail_from_nn(&err, &e, 0);
    CU_ASSERT_EQUAL(err.http_status, 409);
    nn_error_set(&e, NN_ERR_LIMIT, "too big");
    api_fail_from_nn(&err, &e, 0);
    CU_ASSERT_EQUAL(err.http_status, 413);
    api_fail_from_nn(&err, &e, 1);
    CU_ASSERT_EQUAL(err.http_status, 422);
}

static void test_openapi_document_parses(void)
{
    cJSON *doc = cJSON_Parse(api_openapi_json());
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(doc, "openapi")->valuestring,
                           "3.0.3");
    CU_ASSERT(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "paths")) >= 15);
    cJSON_Delete(doc);
}

int main(void)
{
    nn_error e;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &e) != NN_OK)
        return 2;
    lim = api_default_limits();
    static const tu_test tests[] = {
        {"floats read back exactly", test_floats_read_back_exactly},
        {"tensors", test_tensors},
        {"definitions, descriptions, drawings, parameters", test_definitions},
        {"delayed edges and & merges", test_delayed_edges_and_merges},
        {"definition errors name the fault", test_definition_errors},
        {"names a URL can address", test_path_names},
        {"string parameters from JSON numbers",
         test_string_params_from_json_numbers},
        {"NVAR feature names, a sparse reservoir's parameters",
         test_reservoir_computing_nodes},
        {"version-1 node types still load", test_version_1_types_still_load},
        {"error bodies and status mapping", test_error_body},
        {"the OpenAPI document parses", test_openapi_document_parses},
        {NULL, NULL}};
    int rc = tu_run_suite("api", tests);
    nn_registry_free(reg);
    return rc;
}
