/*
 * test_http.c — the daemon over HTTP: every route's happy path with values
 * checked against the engine run in this process on the same definition,
 * sessions, sequences, Dropout's train flag, weight import/export, graph
 * drawings, more than thirty bad requests, limits, expiry, concurrency,
 * the OpenAPI document, and a clean shutdown.
 */
#include "api.h"
#include "itest.h"
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static it_server server;
static nn_registry *reg;

static const char *GUIDE_NET =
    "{\"name\": \"guide\", \"seed\": 7, \"nodes\": ["
    "{\"name\": \"i1\", \"type\": \"Input\", \"shape\": 1},"
    "{\"name\": \"i2\", \"type\": \"Input\", \"shape\": [2]},"
    "{\"name\": \"i3\", \"type\": \"Input\", \"shape\": 3},"
    "{\"name\": \"l\", \"type\": \"Dense\", \"num_unit\": 10}],"
    "\"edges\": [\"{i1, i2, i3} >> l\"]}";

static const char *RNN_NET =
    "{\"name\": \"rnn\", \"seed\": 3, \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 2},"
    "{\"name\": \"r\", \"type\": \"VanillaRNN\", \"num_unit\": 4,"
    " \"activation\": \"tanh\"},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 2}],"
    "\"ff\": [[\"x\", \"r\"], [\"r\", \"o\"]], \"fb\": [[\"r\", \"o\"]]}";

/* The same definition built by the engine in this process. */
static nn_graph *local_graph(const char *def)
{
    cJSON *j = cJSON_Parse(def);
    api_error err;
    api_limits lim = api_default_limits();
    nn_graph *g = api_graph_from_json(j, reg, &lim, &err);
    cJSON_Delete(j);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    return g;
}

static cJSON *call(const char *method, const char *path, const char *body,
                   long expect)
{
    long status;
    cJSON *j = it_json(&server, method, path, body, &status);
    if (status != expect)
        fprintf(stderr, "%s %s: status %ld, expected %ld\n", method, path,
                status, expect);
    CU_ASSERT_EQUAL(status, expect);
    return j;
}

/* Asserts the JSON tensor j, computed by the daemon, equals t, computed
 * here: the same shape, and values within tol, or to float32 rounding
 * (it_float_close) when tol is 0. */
static void assert_tensor(const cJSON *j, const nn_tensor *t, double tol)
{
    nn_tensor *got;
    api_error err;
    api_limits lim = api_default_limits();
    CU_ASSERT_EQUAL_FATAL(api_tensor_from_json(j, "reply", &lim, &got, &err), 0);
    CU_ASSERT(nn_shape_equal(&got->shape, &t->shape));
    for (size_t k = 0; k < nn_tensor_numel(t) && k < nn_tensor_numel(got); k++) {
        int close = tol > 0 ? fabs(got->data[k] - t->data[k]) <= tol
                            : it_float_close(got->data[k], t->data[k]);
        if (!close)
            fprintf(stderr, "element %zu: daemon %.9g, here %.9g\n", k,
                    (double)got->data[k], (double)t->data[k]);
        CU_ASSERT(close);
    }
    nn_tensor_free(got);
}

static const cJSON *get(const cJSON *j, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(j, key);
}

/* ------------------------------------------------------------- health */

static void test_health_and_listings(void)
{
    cJSON *j = call("GET", "/healthz", NULL, 200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "status")), "ok");
    cJSON_Delete(j);
    j = call("GET", "/readyz", NULL, 200);
    cJSON_Delete(j);
    j = call("GET", "/v1/node-types", NULL, 200);
    const cJSON *types = get(j, "node_types");
    int found_dense = 0;
    for (const cJSON *t = types ? types->child : NULL; t; t = t->next) {
        if (strcmp(cJSON_GetStringValue(get(t, "name")), "Dense") != 0)
            continue;
        found_dense = 1;
        CU_ASSERT(cJSON_IsTrue(get(t, "supports_feedback")));
        CU_ASSERT(cJSON_IsTrue(get(t, "trainable")));
        const cJSON *p = get(t, "params")->child;
        CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(p, "name")),
                               "num_unit");
        CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(p, "type")), "int");
        CU_ASSERT(cJSON_IsTrue(get(p, "required")));
        CU_ASSERT_EQUAL(get(p, "min")->valuedouble, 1);
    }
    CU_ASSERT(found_dense);
    cJSON_Delete(j);
}

/* ------------------------------------------------------------- networks */

static void test_create_describe_forward(void)
{
    cJSON *j = call("POST", "/v1/networks", GUIDE_NET, 201);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "name")), "guide");
    const cJSON *l = cJSON_GetArrayItem(get(j, "nodes"), 3);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(l, "name")), "l");
    CU_ASSERT_EQUAL(get(l, "param_count")->valueint, 70);
    const cJSON *out = get(l, "output_shape");
    CU_ASSERT(cJSON_IsNull(cJSON_GetArrayItem(out, 0)));
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(out, 1)->valueint, 10);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(get(l, "input_shapes")), 3);
    char id[32];
    snprintf(id, sizeof id, "%s", cJSON_GetStringValue(get(j, "id")));
    cJSON_Delete(j);

    /* By id and by name. */
    char path[96];
    snprintf(path, sizeof path, "/v1/networks/%s", id);
    j = call("GET", path, NULL, 200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "name")), "guide");
    cJSON_Delete(j);
    j = call("GET", "/v1/networks", NULL, 200);
    CU_ASSERT(cJSON_GetArraySize(get(j, "networks")) >= 1);
    cJSON_Delete(j);

    /* A stateless step equals the engine's. */
    const char *body = "{\"inputs\": {\"i1\": [[1], [0.5]], \"i2\": [[0, 0], "
                       "[1, -1]], \"i3\": {\"shape\": [2, 3], \"data\": "
                       "[0.1, 0.2, 0.3, -0.4, 0.5, 0.6]}}}";
    j = call("POST", "/v1/networks/guide/forward", body, 200);
    nn_graph *g = local_graph(GUIDE_NET);
    nn_error e;
    nn_session *s = nn_session_new(g, 2, 0, &e);
    float i1[] = {1, 0.5f}, i2[] = {0, 0, 1, -1},
          i3[] = {0.1f, 0.2f, 0.3f, -0.4f, 0.5f, 0.6f};
    memcpy(nn_session_input(s, "i1")->data, i1, sizeof i1);
    memcpy(nn_session_input(s, "i2")->data, i2, sizeof i2);
    memcpy(nn_session_input(s, "i3")->data, i3, sizeof i3);
    CU_ASSERT_EQUAL(nn_session_step(s, 0, &e), NN_OK);
    assert_tensor(get(get(j, "outputs"), "l"), nn_session_output(s, "l"), 0);
    cJSON_Delete(j);
    nn_session_free(s);
    nn_graph_free(g);

    /* The name is taken now. */
    cJSON_Delete(call("POST", "/v1/networks", GUIDE_NET, 409));
}

static void test_delete_network(void)
{
    cJSON *j = call("POST", "/v1/networks",
                    "{\"name\": \"doomed\", \"nodes\": [{\"name\": \"i\", "
                    "\"type\": \"Input\", \"shape\": 1}, {\"name\": \"d\", "
                    "\"type\": \"Dense\", \"num_unit\": 1}], \"edges\": "
                    "[\"i >> d\"]}", 201);
    cJSON_Delete(j);
    cJSON_Delete(call("POST", "/v1/networks/doomed/sessions", NULL, 201));
    cJSON_Delete(call("DELETE", "/v1/networks/doomed", NULL, 200));
    cJSON_Delete(call("GET", "/v1/networks/doomed", NULL, 404));
    cJSON_Delete(call("DELETE", "/v1/networks/doomed", NULL, 404));
}

/* ------------------------------------------------------------- sessions */

static char *step_body(float a, float b)
{
    char *body = malloc(128);
    snprintf(body, 128, "{\"inputs\": {\"x\": [[%.9g, %.9g]]}}", a, b);
    return body;
}

static void test_session_state(void)
{
    cJSON_Delete(call("POST", "/v1/networks", RNN_NET, 201));
    cJSON *s1 = call("POST", "/v1/networks/rnn/sessions", "{\"batch\": 1}", 201);
    cJSON *s2 = call("POST", "/v1/networks/rnn/sessions", NULL, 201);
    char p1[128], p2[128];
    snprintf(p1, sizeof p1, "/v1/networks/rnn/sessions/%s",
             cJSON_GetStringValue(get(s1, "id")));
    snprintf(p2, sizeof p2, "/v1/networks/rnn/sessions/%s",
             cJSON_GetStringValue(get(s2, "id")));
    cJSON_Delete(s1);
    cJSON_Delete(s2);

    nn_graph *g = local_graph(RNN_NET);
    nn_error e;
    nn_session *local = nn_session_new(g, 1, 0, &e);
    float xs[3][2] = {{1, 0.5f}, {-0.3f, 0.8f}, {0.2f, -1}};
    char path[160];
    snprintf(path, sizeof path, "%s/forward", p1);
    for (int round = 0; round < 2; round++) {
        for (int t = 0; t < 3; t++) {
            char *body = step_body(xs[t][0], xs[t][1]);
            cJSON *j = call("POST", path, body, 200);
            free(body);
            memcpy(nn_session_input(local, "x")->data, xs[t], sizeof xs[t]);
            CU_ASSERT_EQUAL(nn_session_step(local, 0, &e), NN_OK);
            assert_tensor(get(get(j, "outputs"), "o"),
                          nn_session_output(local, "o"), 0);
            CU_ASSERT_EQUAL(get(j, "step")->valueint, 3 * 0 + t + 1);
            cJSON_Delete(j);
        }
        /* Reset: the same inputs give the same outputs again. */
        char reset[160];
        snprintf(reset, sizeof reset, "%s/reset", p1);
        cJSON *j = call("POST", reset, NULL, 200);
        CU_ASSERT_EQUAL(get(j, "steps")->valueint, 0);
        cJSON_Delete(j);
        nn_session_reset(local, &e);
    }
    /* The other session never moved: its first step is a first step. */
    snprintf(path, sizeof path, "%s/forward", p2);
    char *body = step_body(xs[0][0], xs[0][1]);
    cJSON *j = call("POST", path, body, 200);
    free(body);
    memcpy(nn_session_input(local, "x")->data, xs[0], sizeof xs[0]);
    nn_session_step(local, 0, &e);
    assert_tensor(get(get(j, "outputs"), "o"), nn_session_output(local, "o"), 0);
    cJSON_Delete(j);
    j = call("GET", p2, NULL, 200);
    CU_ASSERT_EQUAL(get(j, "steps")->valueint, 1);
    cJSON_Delete(j);
    j = call("GET", "/v1/networks/rnn/sessions", NULL, 200);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(get(j, "sessions")), 2);
    cJSON_Delete(j);
    cJSON_Delete(call("DELETE", p2, NULL, 200));
    cJSON_Delete(call("GET", p2, NULL, 404));
    /* A client may name its session, once. */
    j = call("POST", "/v1/networks/rnn/sessions", "{\"id\": \"mine-1\"}", 201);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "id")), "mine-1");
    cJSON_Delete(j);
    cJSON_Delete(call("POST", "/v1/networks/rnn/sessions", "{\"id\": \"mine-1\"}",
                      409));
    cJSON_Delete(call("GET", "/v1/networks/rnn/sessions/mine-1", NULL, 200));
    cJSON_Delete(call("DELETE", "/v1/networks/rnn/sessions/mine-1", NULL, 200));
    nn_session_free(local);
    nn_graph_free(g);
}

/* ------------------------------------------------- gated cells, utilities */

static const char *LSTM_NET =
    "{\"name\": \"lstm\", \"seed\": 9, \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 2},"
    "{\"name\": \"l\", \"type\": \"LSTM\", \"num_unit\": 3,"
    " \"forget_bias\": 1},"
    "{\"name\": \"ln\", \"type\": \"LayerNorm\"},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 2}],"
    "\"edges\": [\"x >> l >> ln >> o\", \"l << o\"]}";

static const cJSON *find_type(const cJSON *listing, const char *name)
{
    for (const cJSON *t = get(listing, "node_types")->child; t; t = t->next)
        if (strcmp(cJSON_GetStringValue(get(t, "name")), name) == 0)
            return t;
    return NULL;
}

static void test_gated_cells_and_utilities(void)
{
    cJSON *j = call("GET", "/v1/node-types", NULL, 200);
    static const char *names[] = {"LSTM", "GRU", "LayerNorm", "Select",
                                  "Reshape", "Summation"};
    for (int k = 0; k < 6; k++) {
        const cJSON *t = find_type(j, names[k]);
        if (!t)
            fprintf(stderr, "%s is not listed\n", names[k]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        CU_ASSERT(cJSON_IsTrue(get(t, "differentiable")));
        CU_ASSERT_EQUAL(cJSON_IsTrue(get(t, "stateful")), k < 2);
        CU_ASSERT_EQUAL(cJSON_IsTrue(get(t, "supports_feedback")), k < 2);
        CU_ASSERT(strlen(cJSON_GetStringValue(get(t, "doc"))) > 0);
    }
    const cJSON *p = get(find_type(j, "LSTM"), "params")->child;
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(p, "name")), "num_unit");
    CU_ASSERT(cJSON_IsTrue(get(p, "required")));
    int forget_bias = 0;
    for (; p; p = p->next)
        if (strcmp(cJSON_GetStringValue(get(p, "name")), "forget_bias") == 0) {
            forget_bias = 1;
            CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(p, "default")),
                                   "0");
            CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(p, "type")),
                                   "float");
        }
    CU_ASSERT(forget_bias);
    p = get(find_type(j, "Select"), "params")->child;
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(p, "name")), "index");
    CU_ASSERT(cJSON_IsTrue(get(p, "required")));
    cJSON_Delete(j);

    /* A network with an LSTM (fed back from its readout) and a LayerNorm:
     * described, then stepped in a session as the engine steps it here. */
    j = call("POST", "/v1/networks", LSTM_NET, 201);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    const cJSON *l = cJSON_GetArrayItem(get(j, "nodes"), 1);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(l, "name")), "l");
    /* Wi (2, 12), Wh (3, 12), bi and bh (12), Wfb (2, 12). */
    CU_ASSERT_EQUAL(get(l, "param_count")->valueint, 24 + 36 + 24 + 24);
    cJSON_Delete(j);
    cJSON *s = call("POST", "/v1/networks/lstm/sessions", NULL, 201);
    char path[160];
    snprintf(path, sizeof path, "/v1/networks/lstm/sessions/%s/forward",
             cJSON_GetStringValue(get(s, "id")));
    cJSON_Delete(s);
    nn_graph *g = local_graph(LSTM_NET);
    nn_error e;
    nn_session *local = nn_session_new(g, 1, 0, &e);
    float xs[3][2] = {{1, 0.5f}, {-0.3f, 0.8f}, {0.2f, -1}};
    for (int t = 0; t < 3; t++) {
        char *body = step_body(xs[t][0], xs[t][1]);
        j = call("POST", path, body, 200);
        free(body);
        memcpy(nn_session_input(local, "x")->data, xs[t], sizeof xs[t]);
        CU_ASSERT_EQUAL(nn_session_step(local, 0, &e), NN_OK);
        assert_tensor(get(get(j, "outputs"), "o"),
                      nn_session_output(local, "o"), 0);
        cJSON_Delete(j);
    }
    nn_session_free(local);
    nn_graph_free(g);
    cJSON_Delete(call("DELETE", "/v1/networks/lstm", NULL, 200));

    /* A shape that does not fit is a 422 naming the node. */
    j = call("POST", "/v1/networks", "{\"nodes\": ["
             "{\"name\": \"a\", \"type\": \"Input\", \"shape\": 2},"
             "{\"name\": \"b\", \"type\": \"Input\", \"shape\": 3},"
             "{\"name\": \"sum\", \"type\": \"Summation\"}],"
             "\"edges\": [\"{a, b} >> sum\"]}", 422);
    const char *msg = cJSON_GetStringValue(get(get(j, "error"), "message"));
    CU_ASSERT(msg && strstr(msg, "'sum' (Summation)") != NULL);
    cJSON_Delete(j);
}

static void test_run_equals_steps(void)
{
    cJSON *s = call("POST", "/v1/networks/rnn/sessions", "{\"batch\": 2}", 201);
    cJSON *t = call("POST", "/v1/networks/rnn/sessions", "{\"batch\": 2}", 201);
    char run[160], step[160];
    snprintf(run, sizeof run, "/v1/networks/rnn/sessions/%s/run",
             cJSON_GetStringValue(get(s, "id")));
    snprintf(step, sizeof step, "/v1/networks/rnn/sessions/%s/forward",
             cJSON_GetStringValue(get(t, "id")));
    cJSON_Delete(s);
    cJSON_Delete(t);
    /* (batch 2, time 4, features 2) */
    float x[2][4][2];
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < 4; k++)
            for (int f = 0; f < 2; f++)
                x[b][k][f] = sinf((float)(b * 8 + k * 2 + f));
    char body[2048];
    size_t len = (size_t)snprintf(body, sizeof body, "{\"inputs\": {\"x\": [");
    for (int b = 0; b < 2; b++) {
        len += (size_t)snprintf(body + len, sizeof body - len, "%s[", b ? "," : "");
        for (int k = 0; k < 4; k++)
            len += (size_t)snprintf(body + len, sizeof body - len, "%s[%.9g, %.9g]",
                                    k ? "," : "", x[b][k][0], x[b][k][1]);
        len += (size_t)snprintf(body + len, sizeof body - len, "]");
    }
    snprintf(body + len, sizeof body - len, "]}}");
    cJSON *whole = call("POST", run, body, 200);
    const cJSON *seq = get(get(whole, "outputs"), "o"); /* (2, 4, 2) */
    CU_ASSERT_EQUAL(cJSON_GetArraySize(seq), 2);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetArrayItem(seq, 0)), 4);
    for (int k = 0; k < 4; k++) {
        snprintf(body, sizeof body, "{\"inputs\": {\"x\": [[%.9g, %.9g], "
                 "[%.9g, %.9g]]}}", x[0][k][0], x[0][k][1], x[1][k][0],
                 x[1][k][1]);
        cJSON *j = call("POST", step, body, 200);
        const cJSON *o = get(get(j, "outputs"), "o");
        for (int b = 0; b < 2; b++)
            for (int f = 0; f < 2; f++)
                CU_ASSERT_EQUAL(
                    cJSON_GetArrayItem(cJSON_GetArrayItem(o, b), f)->valuedouble,
                    cJSON_GetArrayItem(cJSON_GetArrayItem(
                                           cJSON_GetArrayItem(seq, b), k),
                                       f)->valuedouble);
        cJSON_Delete(j);
    }
    CU_ASSERT_EQUAL(get(whole, "step")->valueint, 4);
    cJSON_Delete(whole);
}

static void test_dropout_train_flag(void)
{
    cJSON_Delete(call("POST", "/v1/networks",
                      "{\"name\": \"drop\", \"nodes\": [{\"name\": \"x\", "
                      "\"type\": \"Input\", \"shape\": 64}, {\"name\": \"d\", "
                      "\"type\": \"Dropout\", \"prob\": 0.5}], \"edges\": "
                      "[\"x >> d\"]}", 201));
    char body[2048];
    size_t len = (size_t)snprintf(body, sizeof body, "{\"inputs\": {\"x\": [[");
    for (int k = 0; k < 64; k++)
        len += (size_t)snprintf(body + len, sizeof body - len, "%s1", k ? "," : "");
    snprintf(body + len, sizeof body - len, "]]}, \"train\": %%s}");
    char eval[2100], train[2100];
    snprintf(eval, sizeof eval, body, "false");
    snprintf(train, sizeof train, body, "true");
    cJSON *e = call("POST", "/v1/networks/drop/forward", eval, 200);
    cJSON *t = call("POST", "/v1/networks/drop/forward", train, 200);
    const cJSON *eo = cJSON_GetArrayItem(get(get(e, "outputs"), "d"), 0);
    const cJSON *to = cJSON_GetArrayItem(get(get(t, "outputs"), "d"), 0);
    int zeros = 0, twos = 0, ones = 0;
    for (int k = 0; k < 64; k++) {
        ones += cJSON_GetArrayItem(eo, k)->valuedouble == 1.0;
        double v = cJSON_GetArrayItem(to, k)->valuedouble;
        zeros += v == 0.0;
        twos += v == 2.0;
    }
    CU_ASSERT_EQUAL(ones, 64);           /* evaluation: the identity */
    CU_ASSERT_EQUAL(zeros + twos, 64);   /* training: dropped or 1/prob */
    CU_ASSERT(zeros > 10 && twos > 10);
    cJSON_Delete(e);
    cJSON_Delete(t);
    cJSON_Delete(call("POST", "/v1/networks/drop/forward",
                      "{\"inputs\": {\"x\": [[1]]}, \"train\": 1}", 400));
}

/* A stateless forward starts from a fresh state every time, whichever
 * compute thread runs it and whatever ran there before (each keeps a
 * session to renew): a recurrent state, Dropout's masks in training and
 * the outputs repeat exactly, also between forwards of another batch size
 * and other inputs; deleting the network frees the kept sessions. */
static void test_stateless_forward_is_fresh_each_time(void)
{
    cJSON_Delete(call("POST", "/v1/networks",
                      "{\"name\": \"fresh\", \"seed\": 5, \"nodes\": ["
                      "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 3}, "
                      "{\"name\": \"r\", \"type\": \"VanillaRNN\", "
                      "\"num_unit\": 32}, {\"name\": \"d\", \"type\": "
                      "\"Dropout\", \"prob\": 0.5}], \"edges\": "
                      "[\"x >> r >> d\"]}", 201));
    static const char one[] = "{\"inputs\": {\"x\": [[0.5, -1, 2]]}, "
                              "\"outputs\": [\"r\", \"d\"], \"train\": true}";
    static const char two[] = "{\"inputs\": {\"x\": [[3, 3, 3], [-2, 1, 0]]}, "
                              "\"train\": true}";
    cJSON *first = call("POST", "/v1/networks/fresh/forward", one, 200);
    const cJSON *r0 = cJSON_GetArrayItem(get(get(first, "outputs"), "r"), 0);
    const cJSON *d0 = cJSON_GetArrayItem(get(get(first, "outputs"), "d"), 0);
    CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(r0), 32);
    int dropped = 0;
    for (int k = 0; k < 32; k++)
        dropped += cJSON_GetArrayItem(d0, k)->valuedouble == 0.0;
    CU_ASSERT(dropped > 4 && dropped < 28); /* the masks can tell */
    for (int i = 0; i < 8; i++) {
        if (i % 3 == 1)
            cJSON_Delete(call("POST", "/v1/networks/fresh/forward", two, 200));
        cJSON *again = call("POST", "/v1/networks/fresh/forward", one, 200);
        const cJSON *r = cJSON_GetArrayItem(get(get(again, "outputs"), "r"), 0);
        const cJSON *d = cJSON_GetArrayItem(get(get(again, "outputs"), "d"), 0);
        CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(r), 32);
        for (int k = 0; k < 32; k++) {
            double want = cJSON_GetArrayItem(r0, k)->valuedouble;
            TU_ASSERT_CLOSE(cJSON_GetArrayItem(r, k)->valuedouble, want,
                            1e-6 + 1e-5 * fabs(want));
            CU_ASSERT_EQUAL(cJSON_GetArrayItem(d, k)->valuedouble == 0.0,
                            cJSON_GetArrayItem(d0, k)->valuedouble == 0.0);
        }
        cJSON_Delete(again);
    }
    cJSON_Delete(first);
    cJSON_Delete(call("DELETE", "/v1/networks/fresh", NULL, 200));
}

/* ------------------------------------------------------ params and graph */

static void test_params_round_trip(void)
{
    cJSON *p = call("GET", "/v1/networks/guide/params", NULL, 200);
    const cJSON *W = get(get(get(p, "nodes"), "l"), "W");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(get(W, "data")), 60);
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(get(W, "shape"), 0)->valueint, 6);
    /* Put back b = 1..10 and W = 0: the output is b. */
    char body[1024];
    size_t len = (size_t)snprintf(body, sizeof body, "{\"nodes\": {\"l\": {"
                                  "\"b\": [1,2,3,4,5,6,7,8,9,10], \"W\": "
                                  "{\"shape\": [6, 10], \"data\": [");
    for (int k = 0; k < 60; k++)
        len += (size_t)snprintf(body + len, sizeof body - len, "%s0", k ? "," : "");
    snprintf(body + len, sizeof body - len, "]}}}}");
    cJSON_Delete(call("PUT", "/v1/networks/guide/params", body, 200));
    cJSON *j = call("POST", "/v1/networks/guide/forward",
                    "{\"inputs\": {\"i1\": [[1]], \"i2\": [[2, 3]], "
                    "\"i3\": [[4, 5, 6]]}}", 200);
    const cJSON *row = cJSON_GetArrayItem(get(get(j, "outputs"), "l"), 0);
    for (int k = 0; k < 10; k++)
        CU_ASSERT_EQUAL(cJSON_GetArrayItem(row, k)->valuedouble, k + 1);
    cJSON_Delete(j);
    /* A refused import changes nothing: b is valid, W has the wrong shape. */
    cJSON *err = call("PUT", "/v1/networks/guide/params",
                      "{\"nodes\": {\"l\": {\"b\": [0,0,0,0,0,0,0,0,0,0], "
                      "\"W\": [[1, 2]]}}}", 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(cJSON_GetStringValue(get(get(err, "error"),
                                                           "message")),
                                  "nodes.l.W"));
    cJSON_Delete(err);
    cJSON *again = call("GET", "/v1/networks/guide/params", NULL, 200);
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(get(get(get(get(again, "nodes"), "l"),
                                                "b"), "data"), 9)->valuedouble,
                    10);
    cJSON_Delete(again);
    /* The original document imports back. */
    char *orig = cJSON_PrintUnformatted(p);
    cJSON_Delete(call("PUT", "/v1/networks/guide/params", orig, 200));
    free(orig);
    cJSON_Delete(p);
}

static void test_graph_drawings(void)
{
    it_response r;
    CU_ASSERT_EQUAL_FATAL(it_request(&server, "GET", "/v1/networks/rnn/graph",
                                     NULL, NULL, 0, &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.content_type, "graphviz"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"x\" -> \"r\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"o\" -> \"r\" [style=dashed"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "(None, 4)"));
    it_response_free(&r);
    CU_ASSERT_EQUAL_FATAL(it_request(&server, "GET",
                                     "/v1/networks/rnn/graph?format=svg", NULL,
                                     NULL, 0, &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.content_type, "image/svg+xml");
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "<svg"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "</svg>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "class=\"fb\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "class=\"ff\""));
    it_response_free(&r);
    cJSON_Delete(call("GET", "/v1/networks/rnn/graph?format=png", NULL, 400));
}

/* ---------------------------------------------------------- bad requests */

typedef struct bad_case {
    const char *method, *path, *content_type, *body;
    long status;
    const char *needle; /* in the error message */
} bad_case;

#define J "application/json"
static const bad_case bad_cases[] = {
    {"POST", "/v1/networks", J, "{\"nodes\": [", 400, "malformed JSON"},
    {"POST", "/v1/networks", J, "[1, 2]", 400, "JSON object"},
    {"POST", "/v1/networks", J, "{}", 400, "\"nodes\""},
    {"POST", "/v1/networks", J, "{\"nodes\": 3}", 400, "\"nodes\""},
    {"POST", "/v1/networks", J, "{\"nodes\": [{\"name\": \"a\"}]}", 400,
     "nodes[0].type"},
    {"POST", "/v1/networks", J, "{\"nodes\": [{\"type\": \"Dense2\"}]}", 400,
     "Dense2"},
    {"POST", "/v1/networks", J, "{\"nodes\": [{\"type\": \"Input\", \"shape\""
     ": 2, \"name\": \"i\"}, {\"type\": \"Dense\", \"name\": \"d\", \"units\":"
     " 3}], \"edges\": [\"i >> d\"]}", 400, "'units'"},
    {"POST", "/v1/networks", J, "{\"nodes\": [{\"type\": \"Input\", \"shape\""
     ": 2, \"name\": \"i\"}, {\"type\": \"Dense\", \"name\": \"d\", "
     "\"num_unit\": \"3\"}], \"edges\": [\"i >> d\"]}", 400, "num_unit"},
    {"POST", "/v1/networks", J, "{\"nodes\": [{\"type\": \"Input\", \"shape\""
     ": 2, \"name\": \"i\"}, {\"type\": \"Dense\", \"name\": \"d\", "
     "\"num_unit\": 0}], \"edges\": [\"i >> d\"]}", 400, "num_unit"},
    {"POST", "/v1/networks", J, "{\"nodes\": [{\"type\": \"Input\", \"shape\""
     ": 2, \"name\": \"i\"}, {\"type\": \"Dense\", \"name\": \"d\", "
     "\"num_unit\": 2.5}], \"edges\": [\"i >> d\"]}", 400, "num_unit"},
    {"POST", "/v1/networks", J, "{\"nodes\": [{\"type\": \"Input\", \"shape\""
     ": 2, \"name\": \"i\"}, {\"type\": \"Dropout\", \"name\": \"d\", "
     "\"prob\": 1e999}], \"edges\": [\"i >> d\"]}", 400, "prob"},
    {"POST", "/v1/networks", J, "{\"nodes\": [{\"type\": \"Input\", \"shape\""
     ": 2, \"name\": \"i\"}, {\"type\": \"Activation\", \"name\": \"a\", "
     "\"function\": \"swish\"}], \"edges\": [\"i >> a\"]}", 400, "function"},
    {"POST", "/v1/networks", J, "{\"nodes\": [{\"type\": \"Input\", \"shape\""
     ": 2, \"name\": \"i\"}, {\"type\": \"Dense\", \"name\": \"d\", "
     "\"num_unit\": 2, \"W_initializer\": \"Gauss(1)\"}], \"edges\": "
     "[\"i >> d\"]}", 400, "W_initializer"},
    {"POST", "/v1/networks", J, "{\"nodes\": [{\"type\": \"Input\", \"shape\""
     ": 2, \"name\": \"i\"}, {\"type\": \"Dense\", \"name\": \"i\", "
     "\"num_unit\": 2}]}", 422, "duplicate node name 'i'"},
    {"POST", "/v1/networks", J, "{\"nodes\": [{\"type\": \"Input\", \"shape\""
     ": 2, \"name\": \"i\"}, {\"type\": \"Dense\", \"name\": \"d\", "
     "\"num_unit\": 2}], \"edges\": [\"i >> ghost\"]}", 422, "'ghost'"},
    {"POST", "/v1/networks", J, "{\"nodes\": [{\"type\": \"Input\", \"shape\""
     ": 2, \"name\": \"i\"}, {\"type\": \"Dense\", \"name\": \"d\", "
     "\"num_unit\": 2}], \"edges\": [\"i >>\"]}", 400, "position"},
    {"POST", "/v1/networks", J, "{\"nodes\": [{\"type\": \"Input\", \"shape\""
     ": 2, \"name\": \"i\"}, {\"type\": \"Input\", \"shape\": 3, \"name\": "
     "\"j\"}, {\"type\": \"Concat\", \"name\": \"c\"}, {\"type\": \"Dense\", "
     "\"name\": \"d\", \"num_unit\": 2}], \"edges\": [\"i >> d\", \"{d, j} >> "
     "c\", \"c >> d\"]}", 422, "cycle"},
    {"POST", "/v1/networks", J, "{\"nodes\": [{\"type\": \"Input\", \"shape\""
     ": 2, \"name\": \"i\"}, {\"type\": \"Dense\", \"name\": \"d\", "
     "\"num_unit\": 2, \"feedback\": false}, {\"type\": \"Dense\", \"name\": "
     "\"o\", \"num_unit\": 2}], \"edges\": [\"i >> d >> o\", \"d << o\"]}",
     422, "does not support feedback"},
    {"POST", "/v1/networks", J, "{\"nodes\": [{\"type\": \"Input\", \"shape\""
     ": 2, \"name\": \"i\"}, {\"type\": \"Input\", \"shape\": [3, 4], "
     "\"name\": \"j\"}, {\"type\": \"Concat\", \"name\": \"c\"}], \"edges\": "
     "[\"{i, j} >> c\"]}", 422, "'c'"},
    {"POST", "/v1/networks", J, "{\"nodes\": [{\"type\": \"Input\", \"shape\""
     ": 2, \"name\": \"i\"}, {\"type\": \"Dense\", \"name\": \"d\", "
     "\"num_unit\": 2}], \"edges\": [\"d >> i\"]}", 422, "'i'"},
    {"POST", "/v1/networks", J, "{\"nodes\": [{\"type\": \"Input\", \"shape\""
     ": 2}], \"colour\": 1}", 400, "'colour'"},
    {"POST", "/v1/networks", J, "{\"seed\": -1, \"nodes\": [{\"type\": "
     "\"Input\", \"shape\": 2}]}", 400, "seed"},
    {"POST", "/v1/networks", "text/plain", "{}", 415, "application/json"},
    {"POST", "/v1/networks", NULL, NULL, 400, "needs a JSON body"},
    {"POST", "/v1/networks/guide/forward", J, "{\"inputs\": {\"i1\": [[1]], "
     "\"i2\": [[0, 0]]}}", 400, "inputs.i3"},
    {"POST", "/v1/networks/guide/forward", J, "{\"inputs\": {\"i1\": [[1]], "
     "\"i2\": [[0, 0]], \"i3\": [[0, 0, 0]], \"i4\": [[1]]}}", 400, "i4"},
    {"POST", "/v1/networks/guide/forward", J, "{\"inputs\": {\"i1\": [[1]], "
     "\"i2\": [[0, 0, 0]], \"i3\": [[0, 0, 0]]}}", 400, "inputs.i2"},
    {"POST", "/v1/networks/guide/forward", J, "{\"inputs\": {\"i1\": [[1]], "
     "\"i2\": [[0, \"x\"]], \"i3\": [[0, 0, 0]]}}", 400, "not a number"},
    {"POST", "/v1/networks/guide/forward", J, "{\"inputs\": {\"i1\": [[1e39]], "
     "\"i2\": [[0, 0]], \"i3\": [[0, 0, 0]]}}", 400, "finite"},
    {"POST", "/v1/networks/guide/forward", J, "{\"inputs\": {\"i1\": [[1], 2],"
     " \"i2\": [[0, 0]], \"i3\": [[0, 0, 0]]}}", 400, "ragged"},
    {"POST", "/v1/networks/guide/forward", J, "{\"inputs\": {\"i1\": [[1]], "
     "\"i2\": [[0, 0]], \"i3\": [[0, 0, 0]]}, \"extra\": 1}", 400, "'extra'"},
    {"POST", "/v1/networks/nope/forward", J, "{\"inputs\": {}}", 404, "'nope'"},
    {"GET", "/v1/networks/nope", NULL, NULL, 404, "'nope'"},
    {"GET", "/v1/networks/rnn/sessions/s999999", NULL, NULL, 404, "s999999"},
    {"POST", "/v1/networks/rnn/sessions/s999999/forward", J,
     "{\"inputs\": {\"x\": [[1, 2]]}}", 404, "s999999"},
    {"POST", "/v1/networks/rnn/sessions", J, "{\"batch\": 0}", 400, "batch"},
    {"POST", "/v1/networks/rnn/sessions", J, "{\"batch\": \"2\"}", 400, "batch"},
    {"POST", "/v1/networks/rnn/sessions", J, "{\"id\": \"s12\"}", 400,
     "server's own"},
    {"POST", "/v1/networks/rnn/sessions", J, "{\"id\": \"a/b\"}", 400, "\"id\""},
    {"POST", "/v1/networks/rnn/sessions", J, "{\"id\": \"..\"}", 400,
     "\"..\""},
    {"POST", "/v1/networks/rnn/sessions", J, "{\"id\": \".\"}", 400, "\"id\""},
    {"POST", "/v1/networks", J, "{\"name\": \"..\", \"nodes\": [{\"type\": "
     "\"Input\", \"shape\": 2}]}", 400, "a URL cannot name"},
    {"POST", "/v1/networks", J, "{\"name\": \".\", \"nodes\": [{\"type\": "
     "\"Input\", \"shape\": 2}]}", 400, "a URL cannot name"},
    {"DELETE", "/v1/node-types", NULL, NULL, 405, "allowed: GET"},
    {"PATCH", "/v1/networks/guide", NULL, NULL, 405, "GET, HEAD, DELETE"},
    {"GET", "/v1/models", NULL, NULL, 404, "no route"},
    {"GET", "/v1/networks/guide/params", J, "{}", 400, "takes no body"},
    {"POST", "/v1/networks", J, "{\"nodes\": [{\"type\": \"Input\", \"shape\""
     ": 2}]} trailing", 400, "unexpected text"},
    {NULL, NULL, NULL, NULL, 0, NULL}};

static void test_bad_requests(void)
{
    int count = 0;
    for (const bad_case *c = bad_cases; c->method; c++, count++) {
        it_response r;
        CU_ASSERT_EQUAL_FATAL(it_request(&server, c->method, c->path,
                                         c->content_type, c->body,
                                         c->body ? strlen(c->body) : 0, &r),
                              0);
        cJSON *j = cJSON_Parse(r.body);
        const char *code = cJSON_GetStringValue(get(get(j, "error"), "code"));
        const char *msg = cJSON_GetStringValue(get(get(j, "error"), "message"));
        if (strncmp(c->path, "/v2", 3) == 0) {
            /* The inference protocol's shape: {"error": "<message>"}. */
            msg = cJSON_GetStringValue(get(j, "error"));
            code = msg;
        }
        int ok = r.status == c->status && code && msg &&
                 strstr(msg, c->needle) != NULL;
        if (!ok)
            fprintf(stderr, "case %d %s %s: %ld %s (expected %ld, '%s')\n",
                    count, c->method, c->path, r.status, r.body, c->status,
                    c->needle);
        CU_ASSERT(ok);
        if (c->status == 405)
            CU_ASSERT(r.allow[0] != '\0');
        cJSON_Delete(j);
        it_response_free(&r);
    }
    CU_ASSERT(count >= 30);
    /* JSON nested too deep is refused before it is parsed. */
    char deep[600];
    memset(deep, '[', 300);
    memset(deep + 300, ']', 300);
    char body[700];
    snprintf(body, sizeof body, "{\"inputs\": {\"x\": %.*s}}", 600, deep);
    cJSON *j = call("POST", "/v1/networks/rnn/forward", body, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(cJSON_GetStringValue(get(get(j, "error"),
                                                           "message")),
                                  "nested"));
    cJSON_Delete(j);
    /* And the daemon keeps serving. */
    cJSON_Delete(call("GET", "/healthz", NULL, 200));
}

/* ------------------------------------------------------------ concurrency */

typedef struct worker {
    char path[160];
    int steps;
    int failures;
    double last;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    for (int k = 0; k < w->steps; k++) {
        long status;
        cJSON *j = it_json(&server, "POST", w->path,
                           "{\"inputs\": {\"x\": [[0.3, -0.2]]}}", &status);
        if (status != 200 || !j)
            w->failures++;
        else
            w->last = cJSON_GetArrayItem(cJSON_GetArrayItem(
                          get(get(j, "outputs"), "o"), 0), 0)->valuedouble;
        cJSON_Delete(j);
    }
    return NULL;
}

static void test_concurrent_clients(void)
{
    enum { THREADS = 4, STEPS = 12 };
    nn_graph *g = local_graph(RNN_NET);
    nn_error e;
    nn_session *local = nn_session_new(g, 1, 0, &e);
    float x[2] = {0.3f, -0.2f};
    double expect_after[THREADS * STEPS + 1];
    for (int k = 1; k <= THREADS * STEPS; k++) {
        memcpy(nn_session_input(local, "x")->data, x, sizeof x);
        nn_session_step(local, 0, &e);
        expect_after[k] = nn_session_output(local, "o")->data[0];
    }
    /* Separate sessions in parallel: each ends where a sequential run of
     * its own steps ends. */
    worker w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        cJSON *s = call("POST", "/v1/networks/rnn/sessions", NULL, 201);
        memset(&w[i], 0, sizeof w[i]);
        snprintf(w[i].path, sizeof w[i].path,
                 "/v1/networks/rnn/sessions/%s/forward",
                 cJSON_GetStringValue(get(s, "id")));
        w[i].steps = STEPS;
        cJSON_Delete(s);
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(w[i].failures, 0);
        /* JSON numbers read as doubles: round back to float to compare. */
        CU_ASSERT_EQUAL((float)w[i].last, (float)expect_after[STEPS]);
    }
    /* One session shared by every thread: its steps are serialized, so
     * after all of them it is where THREADS * STEPS sequential steps are. */
    cJSON *s = call("POST", "/v1/networks/rnn/sessions", NULL, 201);
    char shared[160], info[160];
    snprintf(shared, sizeof shared, "/v1/networks/rnn/sessions/%s/forward",
             cJSON_GetStringValue(get(s, "id")));
    snprintf(info, sizeof info, "/v1/networks/rnn/sessions/%s",
             cJSON_GetStringValue(get(s, "id")));
    cJSON_Delete(s);
    for (int i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        snprintf(w[i].path, sizeof w[i].path, "%s", shared);
        w[i].steps = STEPS;
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    int failures = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        failures += w[i].failures;
    }
    CU_ASSERT_EQUAL(failures, 0);
    cJSON *j = call("GET", info, NULL, 200);
    CU_ASSERT_EQUAL(get(j, "steps")->valueint, THREADS * STEPS);
    cJSON_Delete(j);
    char *body = step_body(x[0], x[1]);
    j = call("POST", shared, body, 200);
    free(body);
    memcpy(nn_session_input(local, "x")->data, x, sizeof x);
    nn_session_step(local, 0, &e);
    CU_ASSERT_EQUAL((float)cJSON_GetArrayItem(cJSON_GetArrayItem(
                        get(get(j, "outputs"), "o"), 0), 0)->valuedouble,
                    nn_session_output(local, "o")->data[0]);
    cJSON_Delete(j);
    nn_session_free(local);
    nn_graph_free(g);
}

typedef struct hammer {
    char path[160];
    int ok, gone, other;
} hammer;

static void *hammer_session(void *arg)
{
    hammer *h = arg;
    for (int k = 0; k < 200; k++) {
        long status;
        cJSON *j = it_json(&server, "POST", h->path,
                           "{\"inputs\": {\"x\": [[0.3, -0.2]]}}", &status);
        cJSON_Delete(j);
        if (status == 200)
            h->ok++;
        else if (status == 404)
            h->gone++;
        else
            h->other++;
        if (h->gone > 5)
            break;
    }
    return NULL;
}

static void test_delete_during_requests(void)
{
    char def[1024];
    snprintf(def, sizeof def, "%s", RNN_NET);
    memcpy(strstr(def, "\"rnn\""), "\"tmp\"", 5);
    cJSON_Delete(call("POST", "/v1/networks", def, 201));
    hammer h[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        cJSON *s = call("POST", "/v1/networks/tmp/sessions", NULL, 201);
        memset(&h[i], 0, sizeof h[i]);
        snprintf(h[i].path, sizeof h[i].path,
                 "/v1/networks/tmp/sessions/%s/forward",
                 cJSON_GetStringValue(get(s, "id")));
        cJSON_Delete(s);
        pthread_create(&th[i], NULL, hammer_session, &h[i]);
    }
    nanosleep(&(struct timespec){0, 20000000}, NULL);
    cJSON_Delete(call("DELETE", "/v1/networks/tmp", NULL, 200));
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        /* Every request was answered: a step, or "no such network". */
        CU_ASSERT_EQUAL(h[i].other, 0);
        CU_ASSERT(h[i].gone > 0);
    }
    cJSON_Delete(call("GET", "/healthz", NULL, 200));
}

/* -------------------------------------------------------- metrics, openapi */

static void test_metrics(void)
{
    it_response r;
    CU_ASSERT_EQUAL_FATAL(it_request(&server, "GET", "/metrics", NULL, NULL, 0,
                                     &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.content_type, "text/plain"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "nerved_requests_total{route=\""
                                          "session_forward\",status=\"200\"}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "status=\"404\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "nerved_request_duration_seconds_"
                                          "bucket{route=\"session_forward\","
                                          "le=\"+Inf\"}"));
    /* Per network: the forwards above named one. */
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\nnerved_network_requests_total"
                                          "{network=\"n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\nnerved_network_steps_total"
                                          "{network=\"n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "reason=\"not_found\"}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\nnerved_queue_depth{network="));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "nerved_fits_total{outcome="
                                          "\"cancelled\"}"));
    CU_ASSERT_PTR_NULL(strstr(r.body, "failed_or_cancelled"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\nnerved_build_info{version=\""));
    /* This scrape is in flight on an open connection while it renders. */
    const char *g = strstr(r.body, "\nnerved_in_flight_requests ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT(atol(g + strlen("\nnerved_in_flight_requests ")) >= 1);
    g = strstr(r.body, "\nnerved_open_connections ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT(atol(g + strlen("\nnerved_open_connections ")) >= 1);
    /* The process metrics, read from /proc: this daemon is running now,
     * holds memory, and has at least its listening socket open. */
    g = strstr(r.body, "\nprocess_resident_memory_bytes ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT(atof(g + strlen("\nprocess_resident_memory_bytes ")) > 1e6);
    g = strstr(r.body, "\nprocess_open_fds ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT(atol(g + strlen("\nprocess_open_fds ")) >= 1);
    g = strstr(r.body, "\nprocess_max_fds ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT(atol(g + strlen("\nprocess_max_fds ")) >= 16);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\nprocess_cpu_seconds_total "));
    g = strstr(r.body, "\nprocess_start_time_seconds ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    double started = atof(g + strlen("\nprocess_start_time_seconds "));
    CU_ASSERT(started > (double)time(NULL) - 3600 &&
              started < (double)time(NULL) + 5);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "nerved_networks "));
    /* The sample line, not the # HELP line. */
    const char *steps = strstr(r.body, "\nnerved_forward_steps_total ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(steps);
    CU_ASSERT(atol(steps + strlen("\nnerved_forward_steps_total ")) > 50);
    it_response_free(&r);
}

/* A body is checked on every route, before the route is: one that is not
 * JSON is 415 even where none is read, as the document lists. */
static void test_any_route_refuses_an_unreadable_body(void)
{
    static const char *const paths[] = {"/healthz", "/v1/networks", "/v2"};
    for (size_t k = 0; k < sizeof paths / sizeof *paths; k++) {
        it_response r;
        CU_ASSERT_EQUAL_FATAL(it_request(&server, "GET", paths[k], "text/plain",
                                         "hello", 5, &r), 0);
        CU_ASSERT_EQUAL(r.status, 415);
        CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "text/plain"));
        it_response_free(&r);
    }
}

/* A network's series are there while it is, and go with it: the network
 * label is bounded by the networks held, not by all ever made. */
static void test_metrics_forget_deleted_networks(void)
{
    cJSON *net = call("POST", "/v1/networks",
                      "{\"name\": \"metered\", \"nodes\": [{\"name\": \"x\", "
                      "\"type\": \"Input\", \"shape\": 2}, {\"name\": \"o\", "
                      "\"type\": \"Dense\", \"num_unit\": 1}], "
                      "\"edges\": [\"x >> o\"]}", 201);
    const char *id = cJSON_GetStringValue(get(net, "id"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(id);
    char series[96];
    snprintf(series, sizeof series,
             "nerved_network_steps_total{network=\"%s\"} 2\n", id);
    for (int i = 0; i < 2; i++)
        cJSON_Delete(call("POST", "/v1/networks/metered/forward",
                          "{\"inputs\": {\"x\": [[1, 2]]}}", 200));
    it_response r;
    CU_ASSERT_EQUAL_FATAL(it_request(&server, "GET", "/metrics", NULL, NULL, 0,
                                     &r), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, series));
    it_response_free(&r);
    cJSON_Delete(call("DELETE", "/v1/networks/metered", NULL, 200));
    snprintf(series, sizeof series, "{network=\"%s\"", id);
    CU_ASSERT_EQUAL_FATAL(it_request(&server, "GET", "/metrics", NULL, NULL, 0,
                                     &r), 0);
    if (strstr(r.body, series))
        fprintf(stderr, "a deleted network's series remain: %s\n",
                strstr(r.body, series));
    CU_ASSERT_PTR_NULL(strstr(r.body, series));
    it_response_free(&r);
    cJSON_Delete(net);
}

static void test_openapi_lists_every_route(void)
{
    cJSON *doc = call("GET", "/openapi.json", NULL, 200);
    const cJSON *paths = get(doc, "paths");
    CU_ASSERT_PTR_NOT_NULL_FATAL(paths);
    /* The daemon's own route table, as it prints it. */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' --list-routes", getenv("NERVED_BIN"));
    FILE *f = popen(cmd, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char method[16], pattern[256];
    int routes = 0;
    while (fscanf(f, "%15s %255s", method, pattern) == 2) {
        routes++;
        char lower[16];
        for (int i = 0; i < 16; i++)
            lower[i] = (char)(method[i] >= 'A' && method[i] <= 'Z'
                                  ? method[i] + 32 : method[i]);
        const cJSON *path = get(paths, pattern);
        if (!path || !get(path, lower))
            fprintf(stderr, "OpenAPI lacks %s %s\n", method, pattern);
        CU_ASSERT(path && get(path, lower));
    }
    pclose(f);
    CU_ASSERT(routes >= 20);
    /* And the other way: every operation the document lists but HEAD
     * (answered on every GET route) is a route, each with its own
     * operationId, so the two sets are equal. */
    int operations = 0;
    char ids[128][64];
    int n_ids = 0;
    for (const cJSON *path = paths->child; path; path = path->next)
        for (const cJSON *op = path->child; op; op = op->next) {
            if (strcmp(op->string, "parameters") == 0)
                continue;
            const char *id = cJSON_GetStringValue(get(op, "operationId"));
            CU_ASSERT_PTR_NOT_NULL(id);
            for (int k = 0; id && k < n_ids; k++)
                if (strcmp(ids[k], id) == 0) {
                    fprintf(stderr, "operationId %s twice\n", id);
                    CU_FAIL("operationId used twice");
                }
            if (id && n_ids < 128)
                snprintf(ids[n_ids++], sizeof ids[0], "%s", id);
            if (strcmp(op->string, "head") == 0) {
                CU_ASSERT_PTR_NOT_NULL(get(path, "get"));
            } else {
                operations++;
            }
        }
    if (operations != routes)
        fprintf(stderr, "the document has %d operations, the daemon %d "
                "routes\n", operations, routes);
    CU_ASSERT_EQUAL(operations, routes);
    cJSON_Delete(doc);
}

/* ------------------------------------------------ limits and shutdown */

static void test_limits_and_expiry(void)
{
    static const char *const args[] = {"--max-body", "2048", "--max-networks",
                                       "1", "--max-sessions", "2",
                                       "--session-timeout", "1", NULL};
    it_server small;
    CU_ASSERT_EQUAL_FATAL(it_start(&small, args), 0);
    it_server keep = server;
    server = small;
    char big[4096];
    memset(big, ' ', sizeof big - 1);
    big[0] = '{';
    big[sizeof big - 2] = '}';
    big[sizeof big - 1] = '\0';
    cJSON *j = call("POST", "/v1/networks", big, 413);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(get(j, "error"), "code")),
                           "too_large");
    cJSON_Delete(j);
    cJSON_Delete(call("POST", "/v1/networks", RNN_NET, 201));
    j = call("POST", "/v1/networks", GUIDE_NET, 429);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(get(j, "error"), "code")),
                           "limit");
    cJSON_Delete(j);
    cJSON_Delete(call("POST", "/v1/networks/rnn/sessions", NULL, 201));
    cJSON_Delete(call("POST", "/v1/networks/rnn/sessions", NULL, 201));
    cJSON_Delete(call("POST", "/v1/networks/rnn/sessions", NULL, 429));
    /* Idle sessions expire and are counted. */
    sleep(3);
    j = call("GET", "/v1/networks/rnn/sessions", NULL, 200);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(get(j, "sessions")), 0);
    cJSON_Delete(j);
    it_response r;
    it_request(&server, "GET", "/metrics", NULL, NULL, 0, &r);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "nerved_sessions_expired_total 2"));
    it_response_free(&r);
    server = keep;
    CU_ASSERT_EQUAL(it_stop(&small), 0);
}

/* Shapes a client may ask for are checked before anything that size is
 * allocated: weights against --max-params, session buffers against
 * --max-session-floats (both 64 Mi floats by default), and a shape whose
 * element count overflows is not wrapped into a small one. */
static void test_sizes_past_the_limits(void)
{
    cJSON *j = call("POST", "/v1/networks",
                    "{\"name\": \"huge\", \"nodes\": ["
                    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 4096},"
                    "{\"name\": \"d\", \"type\": \"Dense\", \"num_unit\": 16777216}],"
                    "\"edges\": [\"x >> d\"]}", 422);
    const char *msg = cJSON_GetStringValue(get(get(j, "error"), "message"));
    CU_ASSERT(msg && strstr(msg, "past 67108864 parameters") != NULL);
    cJSON_Delete(j);
    cJSON_Delete(call("POST", "/v1/networks",
                      "{\"name\": \"wide\", \"nodes\": ["
                      "{\"name\": \"x\", \"type\": \"Input\","
                      " \"shape\": [65536, 65536, 65536, 65536]},"
                      "{\"name\": \"a\", \"type\": \"Activation\", \"function\": \"tanh\"}],"
                      "\"edges\": [\"x >> a\"]}", 201));
    j = call("POST", "/v1/networks/wide/sessions", NULL, 413);
    msg = cJSON_GetStringValue(get(get(j, "error"), "message"));
    CU_ASSERT(msg && strstr(msg, "a session of batch 1") != NULL);
    cJSON_Delete(j);
    cJSON_Delete(call("POST", "/v1/networks/wide/forward",
                      "{\"inputs\": {\"x\": [[[[[1]]]]]}}", 413));
    cJSON_Delete(call("DELETE", "/v1/networks/wide", NULL, 200));
}

static void test_bad_flags(void)
{
    char err[2048];
    static const char *const bad_port[] = {"--port", "70000", NULL};
    CU_ASSERT_EQUAL(it_run(bad_port, err, sizeof err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--port"));
    static const char *const unknown[] = {"--colour", NULL};
    CU_ASSERT_EQUAL(it_run(unknown, err, sizeof err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--colour"));
    static const char *const help[] = {"--help", NULL};
    CU_ASSERT_EQUAL(it_run(help, err, sizeof err), 0);
}

/* Whether pid is a process that has not ended (a zombie has). */
static int process_runs(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int runs = 0;
    if (fgets(line, sizeof line, f)) {
        const char *end = strrchr(line, ')'); /* after the command's name */
        runs = end && end[1] == ' ' && end[2] != 'Z' && end[2] != 'X';
    }
    fclose(f);
    return runs;
}

/* A test binary that crashes takes its daemons with it: one left running
 * would hold ctest's output pipe, and ctest would wait for it until its
 * timeout instead of reporting the crash. */
static void test_daemons_die_with_a_crashed_test(void)
{
    int fds[2];
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    pid_t child = fork();
    CU_ASSERT_FATAL(child >= 0);
    if (child == 0) {
        close(fds[0]);
        it_server s;
        pid_t daemon = it_start(&s, NULL) ? 0 : s.pid;
        if (write(fds[1], &daemon, sizeof daemon) != sizeof daemon)
            _exit(1);
        raise(SIGKILL); /* as a crash: no atexit handler runs */
        _exit(1);
    }
    close(fds[1]);
    pid_t daemon = 0;
    CU_ASSERT_EQUAL(read(fds[0], &daemon, sizeof daemon), sizeof daemon);
    close(fds[0]);
    int status;
    CU_ASSERT_EQUAL(waitpid(child, &status, 0), child);
    CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CU_ASSERT_FATAL(daemon > 0);
    /* Not our child, so never reaped here: gone, or a zombie waiting for
     * whoever adopted it. */
    int gone = 0;
    for (int i = 0; i < 500 && !gone; i++) {
        gone = !process_runs(daemon);
        if (!gone)
            nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
    CU_ASSERT(gone);
    if (!gone)
        kill(daemon, SIGKILL);
}

int main(void)
{
    nn_error e;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &e) != NN_OK)
        return 2;
    if (it_start(&server, NULL))
        return 2;
    static const tu_test tests[] = {
        {"health and listings", test_health_and_listings},
        {"create, describe, stateless forward", test_create_describe_forward},
        {"delete a network", test_delete_network},
        {"session state persists, is separate, resets", test_session_state},
        {"run equals the same steps", test_run_equals_steps},
        {"gated cells and utility nodes", test_gated_cells_and_utilities},
        {"Dropout follows the train flag", test_dropout_train_flag},
        {"a stateless forward is fresh each time",
         test_stateless_forward_is_fresh_each_time},
        {"params round trip", test_params_round_trip},
        {"graph drawings", test_graph_drawings},
        {"bad requests", test_bad_requests},
        {"concurrent clients", test_concurrent_clients},
        {"deleting a network during requests", test_delete_during_requests},
        {"metrics", test_metrics},
        {"a deleted network's metrics go", test_metrics_forget_deleted_networks},
        {"any route refuses an unreadable body",
         test_any_route_refuses_an_unreadable_body},
        {"OpenAPI lists every route", test_openapi_lists_every_route},
        {"limits and session expiry", test_limits_and_expiry},
        {"sizes past the limits", test_sizes_past_the_limits},
        {"bad flags", test_bad_flags},
        {"daemons die with a crashed test", test_daemons_die_with_a_crashed_test},
        {NULL, NULL}};
    int rc = tu_run_suite("http", tests);
    int exit_status = it_stop(&server);
    if (exit_status != 0) {
        fprintf(stderr, "nerved exited with %d after SIGTERM\n", exit_status);
        rc = 1;
    }
    nn_registry_free(reg);
    return rc;
}
