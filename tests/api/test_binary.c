/*
 * test_binary.c — the binary tensor data framing (api_binary.h) and the
 * Open Inference Protocol's request reader over it, without HTTP: bytes
 * are built here by hand, little-endian, as a client puts them on the
 * wire.
 */
#include "api.h"
#include "api_binary.h"
#include "api_kserve.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nn_registry *reg;
static api_limits lim;

/* v as the four little-endian bytes of its float32 bits, whatever the
 * host's order. */
static void put_le(unsigned char *out, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    for (int k = 0; k < 4; k++)
        out[k] = (unsigned char)(bits >> (8 * k));
}

static void test_split(void)
{
    api_error err;
    size_t json_len = 0;
    CU_ASSERT_EQUAL(api_binary_split("12", 20, 0, &json_len, &err), 0);
    CU_ASSERT_EQUAL(json_len, 12);
    CU_ASSERT_EQUAL(api_binary_split(" 20 ", 20, 0, &json_len, &err), 0);
    CU_ASSERT_EQUAL(json_len, 20);
    const char *bad[] = {"", "x", "12x", "-3", "1.5", "0", "21",
                         "99999999999999999999999999"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        CU_ASSERT_EQUAL(api_binary_split(bad[k], 20, 0, &json_len, &err), -1);
        CU_ASSERT_EQUAL(err.http_status, 400);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.message, API_BINARY_HEADER));
    }
    CU_ASSERT_EQUAL(api_binary_split(NULL, 20, 1, &json_len, &err), -1);
    CU_ASSERT_EQUAL(api_binary_split("21", 20, 1, &json_len, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "the body has only 20"));
    /* 0 is a raw binary request where one is taken, of a body not empty. */
    CU_ASSERT_EQUAL(api_binary_split(" 00 ", 20, 1, &json_len, &err), 0);
    CU_ASSERT_EQUAL(json_len, 0);
    CU_ASSERT_EQUAL(api_binary_split("0", 0, 1, &json_len, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "raw binary"));
}

static void test_reader(void)
{
    const float values[5] = {1.0f, -2.5f, 0.1f, 3.0e-39f /* subnormal */,
                             16777216.0f};
    unsigned char bytes[22];
    for (int k = 0; k < 5; k++)
        put_le(bytes + 4 * k, values[k]);
    bytes[20] = bytes[21] = 0;
    api_binary_reader r;
    api_binary_reader_init(&r, bytes, 20);
    float got[5];
    api_error err;
    CU_ASSERT_EQUAL(api_binary_take_f32(&r, got, 2, "a", &err), 0);
    CU_ASSERT_EQUAL(api_binary_take_f32(&r, got + 2, 3, "b", &err), 0);
    /* What was sent is what was read, bit for bit. */
    CU_ASSERT_EQUAL(memcmp(got, values, sizeof values), 0);
    CU_ASSERT_EQUAL(api_binary_finish(&r, &err), 0);
    CU_ASSERT_EQUAL(api_binary_take_f32(&r, got, 1, "c", &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "c: needs 4 bytes"));

    /* Left-over bytes are refused, with the offset. */
    api_binary_reader_init(&r, bytes, 22);
    CU_ASSERT_EQUAL(api_binary_take_f32(&r, got, 5, "a", &err), 0);
    CU_ASSERT_EQUAL(api_binary_finish(&r, &err), -1);
    CU_ASSERT_EQUAL(err.http_status, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "2 bytes"));
    /* A count that does not fit in what is left, even by overflow. */
    api_binary_reader_init(&r, bytes, 20);
    CU_ASSERT_EQUAL(api_binary_take_f32(&r, got, SIZE_MAX / 2, "a", &err), -1);
    /* NaN and infinity are refused, as in JSON. */
    put_le(bytes + 4, NAN);
    api_binary_reader_init(&r, bytes, 8);
    CU_ASSERT_EQUAL(api_binary_take_f32(&r, got, 2, "x", &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "value 1"));
    /* No blob at all reads as empty. */
    api_binary_reader_init(&r, NULL, 99);
    CU_ASSERT_EQUAL(api_binary_finish(&r, &err), 0);
}

static void test_join(void)
{
    const float a[2] = {1.0f, -0.0f}, b[1] = {0.5f};
    api_blob blobs[2] = {{a, 2}, {b, 1}};
    size_t total = 0;
    char *frame = api_binary_join("{\"x\":1}", 7, blobs, 2, &total);
    CU_ASSERT_PTR_NOT_NULL_FATAL(frame);
    CU_ASSERT_EQUAL(total, 7 + 12);
    CU_ASSERT_EQUAL(memcmp(frame, "{\"x\":1}", 7), 0);
    /* 1.0f = 0x3f800000, -0.0f = 0x80000000, 0.5f = 0x3f000000. */
    const unsigned char want[12] = {0, 0, 0x80, 0x3f, 0, 0, 0, 0x80,
                                    0, 0, 0, 0x3f};
    CU_ASSERT_EQUAL(memcmp(frame + 7, want, 12), 0);
    free(frame);
    frame = api_binary_join("{}", 2, NULL, 0, &total);
    CU_ASSERT_EQUAL(total, 2);
    free(frame);
}

static const char *MODEL =
    "{\"seed\": 5, \"nodes\": ["
    "{\"name\": \"a\", \"type\": \"Input\", \"shape\": 2},"
    "{\"name\": \"b\", \"type\": \"Input\", \"shape\": 1},"
    "{\"name\": \"y\", \"type\": \"Dense\", \"num_unit\": 3},"
    "{\"name\": \"z\", \"type\": \"Dense\", \"num_unit\": 1}],"
    "\"edges\": [\"{a, b} >> y\", \"a >> z\"]}";

static nn_graph *model(void)
{
    cJSON *def = cJSON_Parse(MODEL);
    api_error err;
    nn_graph *g = api_graph_from_json(def, reg, &lim, &err);
    cJSON_Delete(def);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    return g;
}

/* Reads header (JSON text) with blob; returns the status (0 when read). */
static int read_with(const nn_graph *g, const char *header,
                     const unsigned char *blob, size_t blob_len,
                     api_kserve_request *r, api_error *err)
{
    cJSON *j = cJSON_Parse(header);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    int rc = api_kserve_read_request(j, (const char *)blob, blob_len, g, &lim,
                                     r, err);
    /* Names borrow from the document: look at them before it goes. */
    int status = rc ? err->http_status : 0;
    if (rc)
        api_kserve_request_free(r);
    cJSON_Delete(j);
    return status;
}

static void test_binary_inputs(void)
{
    nn_graph *g = model();
    /* Mixed: a as binary, b as JSON; batch 2. */
    unsigned char blob[16];
    const float av[4] = {0.25f, -1.0f, 2.0f, 1e-3f};
    for (int k = 0; k < 4; k++)
        put_le(blob + 4 * k, av[k]);
    cJSON *j = cJSON_Parse(
        "{\"inputs\": [{\"name\": \"a\", \"shape\": [2, 2], \"datatype\": "
        "\"FP32\", \"parameters\": {\"binary_data_size\": 16}}, {\"name\": "
        "\"b\", \"shape\": [2, 1], \"datatype\": \"FP32\", \"data\": [7, 8]}],"
        " \"outputs\": [{\"name\": \"z\", \"parameters\": {\"binary_data\": "
        "true}}, {\"name\": \"y\"}]}");
    api_kserve_request r;
    api_error err;
    CU_ASSERT_EQUAL_FATAL(api_kserve_read_request(j, (const char *)blob, 16, g,
                                                  &lim, &r, &err), 0);
    CU_ASSERT_EQUAL(r.batch, 2);
    CU_ASSERT_EQUAL(memcmp(r.inputs[0].tensor->data, av, sizeof av), 0);
    CU_ASSERT_EQUAL(r.inputs[1].tensor->data[1], 8.0f);
    /* Outputs in the order asked, each with its own choice. */
    CU_ASSERT_EQUAL_FATAL(r.n_outputs, 2);
    CU_ASSERT_STRING_EQUAL(r.outputs[0].name, "z");
    CU_ASSERT_EQUAL(r.outputs[0].binary, 1);
    CU_ASSERT_STRING_EQUAL(r.outputs[1].name, "y");
    CU_ASSERT_EQUAL(r.outputs[1].binary, 0);
    api_kserve_request_free(&r);
    cJSON_Delete(j);

    /* No outputs named: all of them, binary by binary_data_output; an
     * output's own binary_data wins over it. */
    const char *two = "{\"name\": \"a\", \"shape\": [1, 2], \"datatype\": "
                      "\"FP32\", \"data\": [1, 2]}, {\"name\": \"b\", "
                      "\"shape\": [1, 1], \"datatype\": \"FP32\", \"data\": "
                      "[3]}";
    char doc[1024];
    snprintf(doc, sizeof doc, "{\"parameters\": {\"binary_data_output\": true,"
             " \"priority\": 2, \"timeout\": 1000, \"custom\": \"kept out\"},"
             " \"inputs\": [%s]}", two);
    j = cJSON_Parse(doc);
    CU_ASSERT_EQUAL_FATAL(api_kserve_read_request(j, NULL, 0, g, &lim, &r,
                                                  &err), 0);
    CU_ASSERT_EQUAL(r.n_outputs, nn_graph_exit_count(g));
    for (int k = 0; k < r.n_outputs; k++)
        CU_ASSERT_EQUAL(r.outputs[k].binary, 1);
    CU_ASSERT_EQUAL(r.priority, 2);
    CU_ASSERT_EQUAL(r.timeout_us, 1000);
    api_kserve_request_free(&r);
    cJSON_Delete(j);
    snprintf(doc, sizeof doc, "{\"parameters\": {\"binary_data_output\": true},"
             " \"inputs\": [%s], \"outputs\": [{\"name\": \"y\", "
             "\"parameters\": {\"binary_data\": false}}]}", two);
    j = cJSON_Parse(doc);
    CU_ASSERT_EQUAL_FATAL(api_kserve_read_request(j, NULL, 0, g, &lim, &r,
                                                  &err), 0);
    CU_ASSERT_EQUAL(r.outputs[0].binary, 0);
    api_kserve_request_free(&r);
    cJSON_Delete(j);

    /* Sequence ids: integers or strings; 0 and "" are no sequence. */
    const char *seqs[][2] = {{"7", "7"}, {"\"abc\"", "abc"}, {"0", ""},
                             {"\"\"", ""}};
    for (size_t k = 0; k < sizeof seqs / sizeof *seqs; k++) {
        snprintf(doc, sizeof doc, "{\"parameters\": {\"sequence_id\": %s, "
                 "\"sequence_start\": false, \"sequence_end\": false}, "
                 "\"inputs\": [%s]}", seqs[k][0], two);
        j = cJSON_Parse(doc);
        CU_ASSERT_EQUAL(api_kserve_read_request(j, NULL, 0, g, &lim, &r, &err),
                        0);
        CU_ASSERT_STRING_EQUAL(r.sequence_id, seqs[k][1]);
        CU_ASSERT_EQUAL(r.sequence_numeric, seqs[k][0][0] != '"' &&
                                                seqs[k][1][0]);
        api_kserve_request_free(&r);
        cJSON_Delete(j);
    }
    /* From the text, integers are Triton's uint64 ids, exact past 2^53
     * (where a double would round 2^53 + 1 to 2^53); an exponent is
     * read as the number it is. */
    const char *wide[][2] = {{"18446744073709551615", "18446744073709551615"},
                             {"9007199254740993", "9007199254740993"},
                             {"1e3", "1000"},
                             {"\"9007199254740993\"", "9007199254740993"}};
    for (size_t k = 0; k < sizeof wide / sizeof *wide; k++) {
        snprintf(doc, sizeof doc, "{\"parameters\": {\"sequence_id\": %s}, "
                 "\"inputs\": [%s]}", wide[k][0], two);
        api_json text = {doc, strlen(doc), NULL};
        CU_ASSERT_EQUAL(api_kserve_read_text(&text, NULL, 0, g, &lim, &r,
                                             &err), 0);
        CU_ASSERT_STRING_EQUAL(r.sequence_id, wide[k][1]);
        CU_ASSERT_EQUAL(r.sequence_numeric, wide[k][0][0] != '"');
        api_kserve_request_free(&r);
    }
    const char *refused[] = {"18446744073709551616", "-1", "1.5", "true"};
    for (size_t k = 0; k < sizeof refused / sizeof *refused; k++) {
        snprintf(doc, sizeof doc, "{\"parameters\": {\"sequence_id\": %s}, "
                 "\"inputs\": [%s]}", refused[k], two);
        api_json text = {doc, strlen(doc), NULL};
        CU_ASSERT_EQUAL(api_kserve_read_text(&text, NULL, 0, g, &lim, &r,
                                             &err), -1);
        CU_ASSERT_EQUAL(err.http_status, 400);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "2^64 - 1"));
        api_kserve_request_free(&r);
    }
    nn_graph_free(g);
}

static void expect_refused(const nn_graph *g, const char *doc,
                           const unsigned char *blob, size_t len,
                           const char *needle)
{
    api_kserve_request r;
    api_error err;
    int status = read_with(g, doc, blob, len, &r, &err);
    if (status != 400 || !strstr(err.message, needle))
        fprintf(stderr, "%s -> %d %s (want '%s')\n", doc, status,
                status ? err.message : "", needle);
    CU_ASSERT_EQUAL(status, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, needle));
    if (!status)
        api_kserve_request_free(&r);
}

static void test_bad_framing(void)
{
    nn_graph *g = model();
    unsigned char blob[24] = {0};
    const char *b_json = "{\"name\": \"b\", \"shape\": [1, 1], \"datatype\": "
                         "\"FP32\", \"data\": [3]}";
    char doc[1024];
#define A_BINARY(size, type)                                                  \
    snprintf(doc, sizeof doc, "{\"inputs\": [{\"name\": \"a\", \"shape\": "   \
             "[1, 2], \"datatype\": \"%s\", \"parameters\": "                 \
             "{\"binary_data_size\": %s}}, %s]}", type, size, b_json)
    A_BINARY("8", "FP32");
    api_kserve_request r;
    api_error err;
    CU_ASSERT_EQUAL(read_with(g, doc, blob, 8, &r, &err), 0);
    api_kserve_request_free(&r);
    /* The size must be the shape's product times 4. */
    A_BINARY("12", "FP32");
    expect_refused(g, doc, blob, 12, "needs 8");
    A_BINARY("-8", "FP32");
    expect_refused(g, doc, blob, 8, "byte count");
    A_BINARY("\"8\"", "FP32");
    expect_refused(g, doc, blob, 8, "byte count");
    /* Fewer bytes than announced, and bytes nobody announced. */
    A_BINARY("8", "FP32");
    expect_refused(g, doc, blob, 4, "only 4 are left");
    expect_refused(g, doc, blob, 12, "4 bytes");
    expect_refused(g, doc, NULL, 0, "only 0 are left");
    /* Only FP32 is served. */
    A_BINARY("8", "FP64");
    expect_refused(g, doc, blob, 8, "\"FP32\"");
    A_BINARY("2", "UINT8");
    expect_refused(g, doc, blob, 2, "\"UINT8\"");
    /* Data and a binary size at once. */
    snprintf(doc, sizeof doc, "{\"inputs\": [{\"name\": \"a\", \"shape\": "
             "[1, 2], \"datatype\": \"FP32\", \"data\": [1, 2], \"parameters\":"
             " {\"binary_data_size\": 8}}, %s]}", b_json);
    expect_refused(g, doc, blob, 8, "not both");
    /* Extensions not served are named. */
    snprintf(doc, sizeof doc, "{\"inputs\": [{\"name\": \"a\", \"shape\": "
             "[1, 2], \"datatype\": \"FP32\", \"parameters\": "
             "{\"shared_memory_region\": \"r\", \"shared_memory_byte_size\": "
             "8}}, %s]}", b_json);
    expect_refused(g, doc, NULL, 0, "shared memory");
    snprintf(doc, sizeof doc, "{\"inputs\": [{\"name\": \"a\", \"shape\": "
             "[1, 2], \"datatype\": \"FP32\", \"data\": [1, 2]}, %s], "
             "\"outputs\": [{\"name\": \"y\", \"parameters\": "
             "{\"classification\": 3, \"binary_data\": true}}]}", b_json);
    expect_refused(g, doc, NULL, 0, "classification");
    snprintf(doc, sizeof doc, "{\"inputs\": [{\"name\": \"a\", \"shape\": "
             "[1, 2], \"datatype\": \"FP32\", \"data\": [1, 2]}, %s], "
             "\"outputs\": [{\"name\": \"y\"}, {\"name\": \"y\"}]}", b_json);
    expect_refused(g, doc, NULL, 0, "twice");
    snprintf(doc, sizeof doc, "{\"inputs\": [{\"name\": \"a\", \"shape\": "
             "[1, 2], \"datatype\": \"FP32\", \"data\": [1, 2]}, %s], "
             "\"parameters\": {\"binary_data_output\": 1}}", b_json);
    expect_refused(g, doc, NULL, 0, "binary_data_output");
    snprintf(doc, sizeof doc, "{\"inputs\": [{\"name\": \"a\", \"shape\": "
             "[1, 2], \"datatype\": \"FP32\", \"data\": [1, 2]}, %s], "
             "\"parameters\": {\"priority\": -1}}", b_json);
    expect_refused(g, doc, NULL, 0, "priority");
    snprintf(doc, sizeof doc, "{\"inputs\": [{\"name\": \"a\", \"shape\": "
             "[1, 2], \"datatype\": \"FP32\"}, %s]}", b_json);
    expect_refused(g, doc, NULL, 0, "needs data");
#undef A_BINARY
    nn_graph_free(g);
}

/* The response lists binary outputs' tensors in the order of its JSON,
 * and says their sizes. */
static void test_response(void)
{
    nn_graph *g = model();
    cJSON *j = cJSON_Parse(
        "{\"id\": \"r1\", \"inputs\": [{\"name\": \"a\", \"shape\": [1, 2], "
        "\"datatype\": \"FP32\", \"data\": [1, 2]}, {\"name\": \"b\", "
        "\"shape\": [1, 1], \"datatype\": \"FP32\", \"data\": [3]}], "
        "\"outputs\": [{\"name\": \"y\", \"parameters\": {\"binary_data\": "
        "true}}, {\"name\": \"z\"}]}");
    api_kserve_request r;
    api_error err;
    CU_ASSERT_EQUAL_FATAL(api_kserve_read_request(j, NULL, 0, g, &lim, &r,
                                                  &err), 0);
    nn_error e;
    nn_session *s = nn_session_new(g, 1, nn_graph_seed(g), &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (int k = 0; k < r.n_inputs; k++)
        memcpy(nn_session_input(s, r.inputs[k].name)->data,
               r.inputs[k].tensor->data,
               nn_tensor_numel(r.inputs[k].tensor) * sizeof(float));
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &e), NN_OK);
    api_blob blobs[2];
    int n = -1;
    cJSON *o = api_kserve_response(&r, "m", s, blobs, &n);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_PTR_EQUAL(blobs[0].data, nn_session_output(s, "y")->data);
    CU_ASSERT_EQUAL(blobs[0].count, 3);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(
                               cJSON_GetObjectItem(o, "id")), "r1");
    const cJSON *outs = cJSON_GetObjectItem(o, "outputs");
    const cJSON *y = cJSON_GetArrayItem(outs, 0), *z = cJSON_GetArrayItem(outs, 1);
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(cJSON_GetObjectItem(y, "parameters"),
                                        "binary_data_size")->valueint, 12);
    CU_ASSERT_PTR_NULL(cJSON_GetObjectItem(y, "data"));
    /* A JSON output's data is the codec's text of its one value. */
    const cJSON *zdata = cJSON_GetObjectItem(z, "data");
    CU_ASSERT_FATAL(cJSON_IsRaw(zdata));
    cJSON *parsed = cJSON_Parse(zdata->valuestring);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(parsed), 1);
    CU_ASSERT(cJSON_IsNumber(cJSON_GetArrayItem(parsed, 0)));
    cJSON_Delete(parsed);
    CU_ASSERT_PTR_NULL(cJSON_GetObjectItem(z, "parameters"));
    cJSON_Delete(o);
    nn_session_free(s);
    api_kserve_request_free(&r);
    cJSON_Delete(j);
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
        {"splitting on Inference-Header-Content-Length", test_split},
        {"reading float32 blobs", test_reader},
        {"joining a header and blobs", test_join},
        {"binary and JSON inputs, output choices", test_binary_inputs},
        {"bad framing is a clear 400", test_bad_framing},
        {"responses list binary outputs", test_response},
        {NULL, NULL}};
    int rc = tu_run_suite("binary", tests);
    nn_registry_free(reg);
    return rc;
}
