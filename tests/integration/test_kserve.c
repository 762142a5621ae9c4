/*
 * test_kserve.c — the KServe v2 / Open Inference Protocol routes, with
 * request and response documents shaped after the protocol specification's
 * own examples (model "mymodel", inputs "input0", output "output0", request
 * id "42"), checked against the same network served over v1.
 */
#include "itest.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static it_server server;

static const cJSON *get(const cJSON *j, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(j, key);
}

static cJSON *call(const char *method, const char *path, const char *body,
                   long expect)
{
    return it_call(&server, method, path, body, expect);
}

/* The specification's example model: input0 of 2 features, output0. A
 * recurrent node makes the sequence extension observable. */
static const char *MYMODEL =
    "{\"name\": \"mymodel\", \"seed\": 11, \"nodes\": ["
    "{\"name\": \"input0\", \"type\": \"Input\", \"shape\": 2},"
    "{\"name\": \"state\", \"type\": \"VanillaRNN\", \"num_unit\": 3, "
    "\"activation\": \"tanh\"},"
    "{\"name\": \"output0\", \"type\": \"Dense\", \"num_unit\": 2}],"
    "\"edges\": [\"input0 >> state >> output0\"]}";

static void test_health_and_metadata(void)
{
    cJSON_Delete(call("GET", "/v2/health/live", NULL, 200));
    cJSON_Delete(call("GET", "/v2/health/ready", NULL, 200));
    cJSON *j = call("GET", "/v2", NULL, 200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "name")), "nerved");
    CU_ASSERT_STRING_EQUAL(
        cJSON_GetStringValue(cJSON_GetArrayItem(get(j, "extensions"), 0)),
        "sequence");
    cJSON_Delete(j);

    j = call("GET", "/v2/models/mymodel", NULL, 200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "name")), "mymodel");
    const cJSON *in = cJSON_GetArrayItem(get(j, "inputs"), 0);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(in, "name")), "input0");
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(in, "datatype")), "FP32");
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(get(in, "shape"), 0)->valueint, -1);
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(get(in, "shape"), 1)->valueint, 2);
    const cJSON *out = cJSON_GetArrayItem(get(j, "outputs"), 0);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(out, "name")), "output0");
    cJSON_Delete(j);
    cJSON_Delete(call("GET", "/v2/models/mymodel/ready", NULL, 200));
    cJSON_Delete(call("GET", "/v2/models/mymodel/versions/1", NULL, 200));
    j = call("GET", "/v2/models/nothere/ready", NULL, 404);
    CU_ASSERT(cJSON_IsString(get(j, "error")));
    cJSON_Delete(j);
}

/* v1's answer for the same rows on fresh state. */
static cJSON *v1_forward(const char *rows)
{
    char body[512];
    snprintf(body, sizeof body, "{\"inputs\": {\"input0\": %s}}", rows);
    return call("POST", "/v1/networks/mymodel/forward", body, 200);
}

static void test_stateless_infer(void)
{
    /* The specification's request, with FP32 data flat in row-major order. */
    cJSON *j = call("POST", "/v2/models/mymodel/infer",
                    "{\"id\": \"42\", \"inputs\": [{\"name\": \"input0\", "
                    "\"shape\": [2, 2], \"datatype\": \"FP32\", \"data\": "
                    "[1, 2, 3, 4]}], \"outputs\": [{\"name\": \"output0\"}]}",
                    200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "id")), "42");
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "model_name")),
                           "mymodel");
    const cJSON *out = cJSON_GetArrayItem(get(j, "outputs"), 0);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(out, "name")), "output0");
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(out, "datatype")), "FP32");
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(get(out, "shape"), 0)->valueint, 2);
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(get(out, "shape"), 1)->valueint, 2);
    const cJSON *data = get(out, "data");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(data), 4);
    cJSON *v1 = v1_forward("[[1, 2], [3, 4]]");
    const cJSON *rows = get(get(v1, "outputs"), "output0");
    for (int k = 0; k < 4; k++)
        CU_ASSERT_EQUAL(cJSON_GetArrayItem(data, k)->valuedouble,
                        cJSON_GetArrayItem(cJSON_GetArrayItem(rows, k / 2),
                                           k % 2)->valuedouble);
    cJSON_Delete(v1);
    cJSON_Delete(j);
    /* Nested data is accepted too, and gives the same answer. */
    j = call("POST", "/v2/models/mymodel/versions/1/infer",
             "{\"inputs\": [{\"name\": \"input0\", \"shape\": [2, 2], "
             "\"datatype\": \"FP32\", \"data\": [[1, 2], [3, 4]]}]}", 200);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(get(cJSON_GetArrayItem(get(j, "outputs"),
                                                              0), "data")), 4);
    CU_ASSERT_PTR_NULL(get(j, "id"));
    cJSON_Delete(j);
}

static void expect_error(const char *body, long status, const char *needle)
{
    cJSON *j = call("POST", "/v2/models/mymodel/infer", body, status);
    const char *msg = cJSON_GetStringValue(get(j, "error"));
    if (!msg || !strstr(msg, needle))
        fprintf(stderr, "%s -> %s (want '%s')\n", body, msg ? msg : "?", needle);
    CU_ASSERT(msg && strstr(msg, needle) != NULL);
    cJSON_Delete(j);
}

static void test_errors_use_the_protocol_body(void)
{
    /* The specification's example declares UINT32; this model is FP32. */
    expect_error("{\"id\": \"42\", \"inputs\": [{\"name\": \"input0\", "
                 "\"shape\": [2, 2], \"datatype\": \"UINT32\", \"data\": "
                 "[1, 2, 3, 4]}]}", 400, "FP32");
    expect_error("{\"inputs\": [{\"name\": \"input1\", \"shape\": [1, 2], "
                 "\"datatype\": \"FP32\", \"data\": [1, 2]}]}", 400, "input1");
    expect_error("{\"inputs\": [{\"name\": \"input0\", \"shape\": [1, 3], "
                 "\"datatype\": \"FP32\", \"data\": [1, 2, 3]}]}", 400,
                 "[-1, 2]");
    expect_error("{\"inputs\": [{\"name\": \"input0\", \"shape\": [2, 2], "
                 "\"datatype\": \"FP32\", \"data\": [1, 2, 3]}]}", 400,
                 "3 values");
    expect_error("{\"inputs\": []}", 400, "inputs");
    expect_error("{\"inputs\": [{\"name\": \"input0\", \"shape\": [1, 2], "
                 "\"datatype\": \"FP32\", \"data\": [1, 2]}], \"outputs\": "
                 "[{\"name\": \"state\"}]}", 400, "'state'");
    expect_error("{\"parameters\": {\"sequence_start\": true}, \"inputs\": "
                 "[{\"name\": \"input0\", \"shape\": [1, 2], \"datatype\": "
                 "\"FP32\", \"data\": [1, 2]}]}", 400, "sequence_id");
    cJSON *j = call("POST", "/v2/models/nothere/infer",
                    "{\"inputs\": []}", 404);
    CU_ASSERT(cJSON_IsString(get(j, "error")));
    cJSON_Delete(j);
    j = call("GET", "/v2/models/mymodel/versions/7", NULL, 404);
    CU_ASSERT_PTR_NOT_NULL(strstr(cJSON_GetStringValue(get(j, "error")),
                                  "version"));
    cJSON_Delete(j);
}

static void infer_step(const char *params, float a, float b, long status,
                       double *out)
{
    char body[512];
    snprintf(body, sizeof body, "{\"parameters\": {%s}, \"inputs\": [{\"name\": "
             "\"input0\", \"shape\": [1, 2], \"datatype\": \"FP32\", \"data\": "
             "[%g, %g]}]}", params, a, b);
    cJSON *j = call("POST", "/v2/models/mymodel/infer", body, status);
    if (out && status == 200) {
        const cJSON *data = get(cJSON_GetArrayItem(get(j, "outputs"), 0),
                                "data");
        out[0] = cJSON_GetArrayItem(data, 0)->valuedouble;
        out[1] = cJSON_GetArrayItem(data, 1)->valuedouble;
        CU_ASSERT_PTR_NOT_NULL(get(get(j, "parameters"), "sequence_id"));
    }
    cJSON_Delete(j);
}

static void test_sequences_carry_state(void)
{
    /* The same three steps on a v1 session. */
    cJSON *s = call("POST", "/v1/networks/mymodel/sessions", NULL, 201);
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/mymodel/sessions/%s/forward",
             cJSON_GetStringValue(get(s, "id")));
    cJSON_Delete(s);
    float xs[3][2] = {{1, 0}, {0, 1}, {0.5f, 0.5f}};
    double v1[3][2];
    for (int t = 0; t < 3; t++) {
        char body[128];
        snprintf(body, sizeof body, "{\"inputs\": {\"input0\": [[%g, %g]]}}",
                 xs[t][0], xs[t][1]);
        cJSON *j = call("POST", path, body, 200);
        const cJSON *row = cJSON_GetArrayItem(get(get(j, "outputs"), "output0"),
                                              0);
        v1[t][0] = cJSON_GetArrayItem(row, 0)->valuedouble;
        v1[t][1] = cJSON_GetArrayItem(row, 1)->valuedouble;
        cJSON_Delete(j);
    }
    double got[2];
    infer_step("\"sequence_id\": 1001, \"sequence_start\": true", xs[0][0],
               xs[0][1], 200, got);
    CU_ASSERT_EQUAL(got[0], v1[0][0]);
    infer_step("\"sequence_id\": 1001", xs[1][0], xs[1][1], 200, got);
    CU_ASSERT_EQUAL(got[0], v1[1][0]);
    CU_ASSERT_EQUAL(got[1], v1[1][1]);
    /* Another sequence is independent: its first step is a first step. */
    infer_step("\"sequence_id\": \"other\", \"sequence_start\": true",
               xs[0][0], xs[0][1], 200, got);
    CU_ASSERT_EQUAL(got[0], v1[0][0]);
    infer_step("\"sequence_id\": 1001, \"sequence_end\": true", xs[2][0],
               xs[2][1], 200, got);
    CU_ASSERT_EQUAL(got[0], v1[2][0]);
    /* Ended: the id is free, and continuing it is an error. */
    infer_step("\"sequence_id\": 1001", xs[0][0], xs[0][1], 400, NULL);
    /* sequence_start on a live sequence starts it over. */
    infer_step("\"sequence_id\": \"other\", \"sequence_start\": true",
               xs[0][0], xs[0][1], 200, got);
    CU_ASSERT_EQUAL(got[0], v1[0][0]);
    infer_step("\"sequence_id\": \"other\", \"sequence_end\": true", xs[1][0],
               xs[1][1], 200, got);
    CU_ASSERT_EQUAL(got[0], v1[1][0]);
}

int main(void)
{
    if (it_start(&server, NULL))
        return 2;
    long status;
    cJSON_Delete(it_json(&server, "POST", "/v1/networks", MYMODEL, &status));
    if (status != 201)
        return 2;
    static const tu_test tests[] = {
        {"health and metadata", test_health_and_metadata},
        {"stateless inference", test_stateless_infer},
        {"errors use the protocol's body", test_errors_use_the_protocol_body},
        {"sequences carry state", test_sequences_carry_state},
        {NULL, NULL}};
    int rc = tu_run_suite("kserve", tests);
    if (it_stop(&server) != 0)
        rc = 1;
    return rc;
}
