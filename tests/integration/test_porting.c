/*
 * test_porting.c — the worked examples of docs/porting.md, replayed against
 * a running daemon: each fixture of tests/fixtures/porting (written once
 * by porting_reference.py from PyTorch and from a ReservoirPy-equivalent
 * NumPy script) gives a network, the weights exported from the reference
 * in nerved's layout, optionally a training request, inputs and the
 * reference's outputs. The test creates the network, imports the weights
 * with PUT .../params, trains when asked, runs the inputs through a fresh
 * session, and fails when any output differs from the reference beyond
 * the fixture's tolerance (float32 rounding, or a little more after a
 * ridge solve).
 */
#include "itest.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static it_server server;

static const cJSON *get(const cJSON *j, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(j, key);
}

static cJSON *load_fixture(const char *name)
{
    const char *src = getenv("NERVED_SOURCE");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/porting/%s",
             src ? src : ".", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = n > 0 ? malloc((size_t)n + 1) : NULL;
    cJSON *doc = NULL;
    if (text && fread(text, 1, (size_t)n, f) == (size_t)n) {
        text[n] = '\0';
        doc = cJSON_Parse(text);
    }
    free(text);
    fclose(f);
    return doc;
}

static cJSON *call_with(const char *method, const char *path,
                        const cJSON *body, long expect)
{
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON *j = it_call(&server, method, path, text, expect);
    free(text);
    return j;
}

/* Compares got and want (nested arrays of numbers) element by element;
 * returns how many differ beyond abs + rel · |want|, and the largest
 * difference in *worst. */
static long compare(const cJSON *got, const cJSON *want, double rel,
                    double abs_tol, double *worst, long *count)
{
    if (cJSON_IsNumber(want)) {
        (*count)++;
        if (!cJSON_IsNumber(got))
            return 1;
        double d = fabs(got->valuedouble - want->valuedouble);
        *worst = fmax(*worst, d);
        return d > abs_tol + rel * fabs(want->valuedouble);
    }
    if (!cJSON_IsArray(want) || !cJSON_IsArray(got) ||
        cJSON_GetArraySize(got) != cJSON_GetArraySize(want))
        return 1;
    long bad = 0;
    const cJSON *g = got->child;
    for (const cJSON *w = want->child; w; w = w->next, g = g->next)
        bad += compare(g, w, rel, abs_tol, worst, count);
    return bad;
}

static void replay(const char *file)
{
    cJSON *fx = load_fixture(file);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fx);
    const char *net = cJSON_GetStringValue(get(get(fx, "network"), "name"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(net);
    char path[256];
    cJSON_Delete(call_with("POST", "/v1/networks", get(fx, "network"), 201));
    snprintf(path, sizeof path, "/v1/networks/%s/params", net);
    cJSON_Delete(call_with("PUT", path, get(fx, "params"), 200));
    if (get(fx, "fit")) {
        snprintf(path, sizeof path, "/v1/networks/%s/fit", net);
        cJSON *job = call_with("POST", path, get(fx, "fit"), 200);
        CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(job, "status")),
                               "done");
        cJSON_Delete(job);
    }
    const cJSON *inputs = get(fx, "inputs");
    int batch = cJSON_GetArraySize(inputs->child);
    char body[64];
    snprintf(body, sizeof body, "{\"batch\": %d}", batch);
    snprintf(path, sizeof path, "/v1/networks/%s/sessions", net);
    cJSON *session = it_call(&server, "POST", path, body, 201);
    const char *sid = cJSON_GetStringValue(get(session, "id"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(sid);
    snprintf(path, sizeof path, "/v1/networks/%s/sessions/%s/run", net, sid);
    cJSON *req = cJSON_CreateObject();
    cJSON_AddItemToObject(req, "inputs", cJSON_Duplicate(inputs, 1));
    cJSON *ran = call_with("POST", path, req, 200);
    cJSON_Delete(req);
    cJSON_Delete(session);

    const cJSON *tol = get(fx, "tolerance");
    double rel = cJSON_GetNumberValue(get(tol, "rel"));
    double abs_tol = cJSON_GetNumberValue(get(tol, "abs"));
    CU_ASSERT_FATAL(rel > 0 && rel < 1e-3 && abs_tol > 0 && abs_tol < 1e-3);
    for (const cJSON *want = get(fx, "outputs")->child; want;
         want = want->next) {
        const cJSON *got = get(get(ran, "outputs"), want->string);
        double worst = 0;
        long count = 0;
        long bad = compare(got, want, rel, abs_tol, &worst, &count);
        if (bad)
            fprintf(stderr, "%s: %ld of %ld values of '%s' differ from the "
                    "reference (largest difference %.3g)\n", file, bad, count,
                    want->string, worst);
        CU_ASSERT(count > 0);
        CU_ASSERT_EQUAL(bad, 0);
    }
    cJSON_Delete(ran);
    snprintf(path, sizeof path, "/v1/networks/%s", net);
    cJSON_Delete(it_call(&server, "DELETE", path, NULL, 200));
    cJSON_Delete(fx);
}

static void test_torch_rnn(void) { replay("torch_rnn.json"); }
static void test_torch_lstm(void) { replay("torch_lstm.json"); }
static void test_numpy_esn(void) { replay("numpy_esn.json"); }
static void test_numpy_esn_external(void)
{
    replay("numpy_esn_external.json");
}

static void test_torch_bilstm(void) { replay("torch_bilstm.json"); }
static void test_torch_bigru2(void) { replay("torch_bigru2.json"); }

/* The message of an error reply ({"error": {"message"}}, or KServe's
 * {"error": "..."}), or "". */
static const char *message(const cJSON *j)
{
    const char *m = cJSON_GetStringValue(get(get(j, "error"), "message"));
    if (!m)
        m = cJSON_GetStringValue(get(j, "error"));
    return m ? m : "";
}

/* A bidirectional network runs over whole sequences: stepping it (a
 * session's step, a stateless step, KServe's infer) is a 422 naming the
 * node and pointing at runs; so are feedback into it, a readout fit and a
 * BPTT window shorter than the sequences. */
static void test_bidirectional_refusals(void)
{
    const char *def = "{\"name\": \"bi\", \"nodes\": ["
                      "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 2},"
                      "{\"name\": \"b\", \"type\": \"GRU\", \"num_unit\": 3,"
                      " \"bidirectional\": true},"
                      "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 1}],"
                      " \"edges\": [\"x >> b >> o\"]}";
    cJSON_Delete(it_call(&server, "POST", "/v1/networks", def, 201));
    const char *step = "{\"inputs\": {\"x\": [[0.5, -0.5]]}}";
    cJSON *j = it_call(&server, "POST", "/v1/networks/bi/forward", step, 422);
    CU_ASSERT_PTR_NOT_NULL(strstr(message(j), "node 'b' (GRU) is "
                                              "bidirectional and needs whole "
                                              "sequences"));
    CU_ASSERT_PTR_NOT_NULL(strstr(message(j), "/run"));
    cJSON_Delete(j);
    cJSON *session = it_call(&server, "POST", "/v1/networks/bi/sessions",
                             "{\"batch\": 1}", 201);
    const char *sid = cJSON_GetStringValue(get(session, "id"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(sid);
    char path[256];
    snprintf(path, sizeof path, "/v1/networks/bi/sessions/%s/forward", sid);
    j = it_call(&server, "POST", path, step, 422);
    CU_ASSERT_PTR_NOT_NULL(strstr(message(j), "node 'b'"));
    cJSON_Delete(j);
    /* The run of the same session works, twice in a row. */
    snprintf(path, sizeof path, "/v1/networks/bi/sessions/%s/run", sid);
    const char *seq = "{\"inputs\": {\"x\": [[[0.5, -0.5], [1, 0], "
                      "[0, 1]]]}}";
    for (int k = 0; k < 2; k++) {
        j = it_call(&server, "POST", path, seq, 200);
        const cJSON *o = get(get(j, "outputs"), "o");
        CU_ASSERT_EQUAL(cJSON_GetArraySize(o), 1);
        CU_ASSERT_EQUAL(cJSON_GetArraySize(o ? o->child : NULL), 3);
        cJSON_Delete(j);
    }
    /* Inner nodes may be asked for: the bidirectional node's both
     * directions, concatenated, beside the exit. */
    const char *named = "{\"inputs\": {\"x\": [[[0.5, -0.5], [1, 0], "
                        "[0, 1]]]}, \"outputs\": [\"b\", \"o\"]}";
    j = it_call(&server, "POST", path, named, 200);
    const cJSON *bo = get(get(j, "outputs"), "b");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(bo ? bo->child : NULL), 3);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(bo && bo->child ? bo->child->child
                                                       : NULL), 6);
    CU_ASSERT_PTR_NOT_NULL(get(get(j, "outputs"), "o"));
    cJSON_Delete(j);
    /* Described and inspected as any network: no state of its own. */
    snprintf(path, sizeof path, "/v1/networks/bi/sessions/%s/state", sid);
    cJSON_Delete(it_call(&server, "GET", path, NULL, 200));
    cJSON_Delete(session);
    cJSON_Delete(it_call(&server, "GET", "/v1/networks/bi", NULL, 200));
    const char *infer = "{\"inputs\": [{\"name\": \"x\", \"shape\": [1, 2], "
                        "\"datatype\": \"FP32\", \"data\": [0.5, -0.5]}]}";
    j = it_call(&server, "POST", "/v2/models/bi/infer", infer, 422);
    CU_ASSERT_PTR_NOT_NULL(strstr(message(j), "bidirectional"));
    cJSON_Delete(j);
    const char *ridge = "{\"method\": \"ridge\", \"wait\": true, "
                        "\"inputs\": {\"x\": [[[0.5, -0.5], [1, 0]]]}, "
                        "\"targets\": {\"o\": [[[1], [0]]]}}";
    j = it_call(&server, "POST", "/v1/networks/bi/fit", ridge, 422);
    CU_ASSERT_PTR_NOT_NULL(strstr(message(j), "node 'b'"));
    cJSON_Delete(j);
    /* BPTT trains it over whole sequences, not over shorter windows. */
    const char *bptt = "{\"method\": \"bptt\", \"wait\": true, "
                       "\"epochs\": 3, "
                       "\"inputs\": {\"x\": [[[0.5, -0.5], [1, 0], [0, 1]]]}, "
                       "\"targets\": {\"o\": [[[1], [0], [0.5]]]}}";
    j = it_call(&server, "POST", "/v1/networks/bi/fit", bptt, 200);
    const char *status = cJSON_GetStringValue(get(j, "status"));
    CU_ASSERT(status && strcmp(status, "done") == 0);
    cJSON_Delete(j);
    const char *windowed = "{\"method\": \"bptt\", \"wait\": true, "
                           "\"window\": 2, "
                           "\"inputs\": {\"x\": [[[0.5, -0.5], [1, 0], "
                           "[0, 1]]]}, \"targets\": {\"o\": [[[1], [0], "
                           "[0.5]]]}}";
    j = it_call(&server, "POST", "/v1/networks/bi/fit", windowed, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(message(j), "window"));
    cJSON_Delete(j);
    cJSON_Delete(it_call(&server, "DELETE", "/v1/networks/bi", NULL, 200));

    const char *fb = "{\"name\": \"bifb\", \"nodes\": ["
                     "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 2},"
                     "{\"name\": \"b\", \"type\": \"LSTM\", \"num_unit\": 3,"
                     " \"bidirectional\": true},"
                     "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 1}],"
                     " \"edges\": [\"x >> b >> o\", \"b << o\"]}";
    j = it_call(&server, "POST", "/v1/networks", fb, 422);
    CU_ASSERT_PTR_NOT_NULL(strstr(message(j), "takes no feedback"));
    cJSON_Delete(j);
}

int main(void)
{
    if (it_start(&server, NULL)) {
        fprintf(stderr, "cannot start nerved\n");
        return 1;
    }
    static const tu_test tests[] = {
        {"nn.RNN >> nn.Linear from PyTorch", test_torch_rnn},
        {"nn.LSTM >> nn.Linear from PyTorch", test_torch_lstm},
        {"a ReservoirPy 0.3 ESN from NumPy, ridge over HTTP", test_numpy_esn},
        {"ReservoirPy 0.3's external equation, per-unit leak, per-feature "
         "scaling, from NumPy",
         test_numpy_esn_external},
        {"nn.LSTM(bidirectional=True) >> nn.Linear from PyTorch",
         test_torch_bilstm},
        {"nn.GRU(num_layers=2, bidirectional=True) from PyTorch",
         test_torch_bigru2},
        {"bidirectional networks are run, never stepped",
         test_bidirectional_refusals},
        {NULL, NULL}};
    int rc = tu_run_suite("porting", tests);
    if (it_stop(&server) != 0)
        rc = 1;
    return rc;
}
