/*
 * test_kserve.c — the KServe v2 / Open Inference Protocol routes, with
 * request and response documents shaped after the protocol specification's
 * own examples (model "mymodel", inputs "input0", output "output0", request
 * id "42"), checked against the same network served over v1, and with
 * requests byte for byte as NVIDIA's Python client (tritonclient.http)
 * builds them: no Content-Type, compact JSON, the binary tensor data
 * extension's framing by default. Floats the daemon computes are held to
 * the same graph stepped in this process, within float32 tolerance.
 */
#include "itest.h"
#include "testutil.h"
#include "api.h"
#include "api_codec.h"

#include <curl/curl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

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
    /* Every extension served is advertised, and only those. */
    const char *want[] = {"binary_tensor_data", "sequence", "statistics",
                          "model_configuration"};
    CU_ASSERT_EQUAL(cJSON_GetArraySize(get(j, "extensions")), 4);
    for (int k = 0; k < 4; k++) {
        int found = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, get(j, "extensions"))
            found |= strcmp(cJSON_GetStringValue(e), want[k]) == 0;
        CU_ASSERT(found);
    }
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
    j = call("GET", "/v2/models/mymodel/versions/1/ready", NULL, 200);
    CU_ASSERT(cJSON_IsTrue(get(j, "ready")));
    cJSON_Delete(j);
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
    /* The same daemon, but not always the same computation: a step may
     * run batched with other requests' rows, which BLAS rounds otherwise. */
    for (int k = 0; k < 4; k++)
        CU_ASSERT(it_float_close(cJSON_GetArrayItem(data, k)->valuedouble,
                                 cJSON_GetArrayItem(cJSON_GetArrayItem(rows,
                                                                       k / 2),
                                                    k % 2)->valuedouble));
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
                 "[{\"name\": \"nosuch\"}]}", 400,
                 "no node 'nosuch' to output; its nodes are input0, state, "
                 "output0");
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
    CU_ASSERT(it_float_close(got[0], v1[0][0]));
    infer_step("\"sequence_id\": 1001", xs[1][0], xs[1][1], 200, got);
    CU_ASSERT(it_float_close(got[0], v1[1][0]));
    CU_ASSERT(it_float_close(got[1], v1[1][1]));
    /* Another sequence is independent: its first step is a first step. */
    infer_step("\"sequence_id\": \"other\", \"sequence_start\": true",
               xs[0][0], xs[0][1], 200, got);
    CU_ASSERT(it_float_close(got[0], v1[0][0]));
    infer_step("\"sequence_id\": 1001, \"sequence_end\": true", xs[2][0],
               xs[2][1], 200, got);
    CU_ASSERT(it_float_close(got[0], v1[2][0]));
    /* Ended: the id is free, and continuing it is an error. */
    infer_step("\"sequence_id\": 1001", xs[0][0], xs[0][1], 400, NULL);
    /* sequence_start on a live sequence starts it over. */
    infer_step("\"sequence_id\": \"other\", \"sequence_start\": true",
               xs[0][0], xs[0][1], 200, got);
    CU_ASSERT(it_float_close(got[0], v1[0][0]));
    infer_step("\"sequence_id\": \"other\", \"sequence_end\": true", xs[1][0],
               xs[1][1], 200, got);
    CU_ASSERT(it_float_close(got[0], v1[1][0]));
}


/* ------------------------------------------------ raw HTTP, as clients */

typedef struct raw_reply {
    long status;
    char *body;
    size_t len;
    char content_type[128];
    char allow[128];
    char content_encoding[32];
    char vary[64];
    long header_length;     /* Inference-Header-Content-Length, or -1 */
    double content_length;  /* as announced, or -1 */
} raw_reply;

static size_t raw_body(char *data, size_t size, size_t n, void *arg)
{
    raw_reply *r = arg;
    size_t add = size * n;
    char *p = realloc(r->body, r->len + add + 1);
    if (!p)
        return 0;
    memcpy(p + r->len, data, add);
    r->body = p;
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

static void header_value(const char *line, size_t len, const char *name,
                         char *out, size_t size)
{
    size_t nl = strlen(name);
    if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    size_t start = nl + 1, end = len;
    while (start < len && line[start] == ' ')
        start++;
    while (end > start && (line[end - 1] == '\r' || line[end - 1] == '\n'))
        end--;
    snprintf(out, size, "%.*s", (int)(end - start), line + start);
}

static size_t raw_header(char *data, size_t size, size_t n, void *arg)
{
    raw_reply *r = arg;
    size_t len = size * n;
    char value[64] = "";
    header_value(data, len, "Content-Type", r->content_type,
                 sizeof r->content_type);
    header_value(data, len, "Allow", r->allow, sizeof r->allow);
    header_value(data, len, "Content-Encoding", r->content_encoding,
                 sizeof r->content_encoding);
    header_value(data, len, "Vary", r->vary, sizeof r->vary);
    header_value(data, len, "Inference-Header-Content-Length", value,
                 sizeof value);
    if (value[0])
        r->header_length = strtol(value, NULL, 10);
    return len;
}

/* One request with exactly the given header lines (NULL-terminated; no
 * Content-Type unless one is among them), on srv. HEAD asks for headers
 * only. */
static void raw_on(const it_server *srv, const char *method, const char *path,
                   const char *const *lines, const void *body, size_t len,
                   raw_reply *r)
{
    memset(r, 0, sizeof *r);
    r->header_length = -1;
    r->content_length = -1;
    CURL *c = curl_easy_init();
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    char url[512];
    snprintf(url, sizeof url, "%s%s", srv->base, path);
    /* curl would add its own Content-Type and Expect; the client sends
     * neither. */
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    int typed = 0;
    for (int k = 0; lines && lines[k]; k++) {
        h = curl_slist_append(h, lines[k]);
        typed |= strncasecmp(lines[k], "Content-Type:", 13) == 0;
    }
    if (!typed)
        h = curl_slist_append(h, "Content-Type:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, raw_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, raw_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    CU_ASSERT_EQUAL(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_off_t cl = -1;
    curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    r->content_length = (double)cl;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!r->body)
        r->body = calloc(1, 1);
    it_log_raw(method, path, r->status, r->content_type, r->allow, NULL, NULL,
               r->body, r->len, r->header_length);
}

static void raw(const char *method, const char *path, const char *const *lines,
                const void *body, size_t len, raw_reply *r)
{
    raw_on(&server, method, path, lines, body, len, r);
}

static void raw_free(raw_reply *r)
{
    free(r->body);
    r->body = NULL;
}

/* A tritonclient body: the JSON header, then each blob's float32 values
 * little-endian. *len gets the size; caller frees. */
static char *frame(const char *json, const float *const *blobs,
                   const size_t *counts, int n, size_t *len)
{
    size_t size = strlen(json);
    for (int k = 0; k < n; k++)
        size += 4 * counts[k];
    char *out = malloc(size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    size_t at = strlen(json);
    memcpy(out, json, at);
    for (int k = 0; k < n; k++)
        for (size_t e = 0; e < counts[k]; e++, at += 4) {
            uint32_t bits;
            memcpy(&bits, &blobs[k][e], 4);
            for (int b = 0; b < 4; b++)
                out[at + b] = (char)(bits >> (8 * b));
        }
    *len = size;
    return out;
}

/* in compressed as infer(request_compression_algorithm=...) does:
 * gzip.compress (gzip) or zlib.compress ("deflate"). Caller frees. */
static char *compress_body(const void *in, size_t len, int gzip,
                           size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    CU_ASSERT_EQUAL_FATAL(deflateInit2(&z, 6, Z_DEFLATED, gzip ? 31 : 15, 8,
                                       Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, (uLong)len);
    char *out = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    CU_ASSERT_EQUAL(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* Replaces a compressed reply's body by what it inflates to, as
 * InferResult does before reading it. */
static void inflate_reply(raw_reply *r)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    CU_ASSERT_EQUAL_FATAL(inflateInit2(&z, 15 + 32), Z_OK);
    size_t cap = 1 << 20;
    char *out = malloc(cap + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    z.next_in = (Bytef *)r->body;
    z.avail_in = (uInt)r->len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    CU_ASSERT_EQUAL(inflate(&z, Z_FINISH), Z_STREAM_END);
    size_t n = cap - z.avail_out;
    inflateEnd(&z);
    out[n] = '\0';
    free(r->body);
    r->body = out;
    r->len = n;
}

/* The reply's JSON: all of it, or its first Inference-Header-Content-Length
 * bytes when it carries binary outputs. */
static cJSON *reply_json(const raw_reply *r)
{
    size_t n = r->header_length >= 0 ? (size_t)r->header_length : r->len;
    CU_ASSERT_FATAL(n <= r->len);
    return cJSON_ParseWithLength(r->body, n);
}

/* Output name's values from a reply, read as tritonclient's InferResult
 * does: binary outputs by their binary_data_size in output order after
 * the JSON header, the others from data. Returns the count (or -1), and
 * *binary says which way it came. */
static long output_values(const raw_reply *r, const cJSON *doc,
                          const char *name, float *out, size_t max,
                          int *binary)
{
    size_t offset = r->header_length >= 0 ? (size_t)r->header_length : 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, get(doc, "outputs"))
    {
        const cJSON *size = get(get(o, "parameters"), "binary_data_size");
        int here = strcmp(cJSON_GetStringValue(get(o, "name")), name) == 0;
        if (size) {
            size_t bytes = (size_t)size->valuedouble;
            if (here) {
                *binary = 1;
                if (bytes / 4 > max || offset + bytes > r->len)
                    return -1;
                for (size_t e = 0; e < bytes / 4; e++) {
                    const unsigned char *p =
                        (const unsigned char *)r->body + offset + 4 * e;
                    uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                                    (uint32_t)p[2] << 16 |
                                    (uint32_t)p[3] << 24;
                    memcpy(&out[e], &bits, 4);
                }
                return (long)(bytes / 4);
            }
            offset += bytes;
        } else if (here) {
            *binary = 0;
            long n = 0;
            const cJSON *v;
            cJSON_ArrayForEach(v, get(o, "data"))
            {
                if ((size_t)n == max)
                    return -1;
                out[n++] = (float)v->valuedouble;
            }
            return n;
        }
    }
    return -1;
}

/* --------------------------------------------- the in-process reference */

static nn_registry *reg;
static nn_graph *ref_pair, *ref_mymodel;

/* Two inputs and two outputs, for mixed and unnamed-output requests. */
static const char *PAIR =
    "{\"name\": \"pair\", \"seed\": 23, \"nodes\": ["
    "{\"name\": \"a\", \"type\": \"Input\", \"shape\": 2},"
    "{\"name\": \"b\", \"type\": \"Input\", \"shape\": 1},"
    "{\"name\": \"y\", \"type\": \"Dense\", \"num_unit\": 3},"
    "{\"name\": \"z\", \"type\": \"Dense\", \"num_unit\": 1}],"
    "\"edges\": [\"{a, b} >> y\", \"a >> z\"]}";

static nn_graph *reference(const char *def_text)
{
    cJSON *def = cJSON_Parse(def_text);
    api_limits lim = api_default_limits();
    api_error err;
    nn_graph *g = def ? api_graph_from_json(def, reg, &lim, &err) : NULL;
    cJSON_Delete(def);
    return g;
}

/* One step of s with the inputs named in names (values row-major), then
 * the output's values into out. */
static void reference_step(nn_session *s, const char *const *names,
                           const float *const *values, int n_inputs,
                           const char *output, float *out)
{
    for (int k = 0; k < n_inputs; k++) {
        nn_tensor *t = nn_session_input(s, names[k]);
        memcpy(t->data, values[k], nn_tensor_numel(t) * sizeof(float));
    }
    nn_error e;
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &e), NN_OK);
    const nn_tensor *t = nn_session_output(s, output);
    memcpy(out, t->data, nn_tensor_numel(t) * sizeof(float));
}

/* pair's answer for a (batch x 2) and b (batch x 1) on fresh state. */
static void pair_reference(int batch, const float *a, const float *b,
                           float *y, float *z)
{
    nn_error e;
    nn_session *s = nn_session_new(ref_pair, batch, nn_graph_seed(ref_pair),
                                   &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    const char *names[2] = {"a", "b"};
    const float *values[2] = {a, b};
    reference_step(s, names, values, 2, "y", y);
    memcpy(z, nn_session_output(s, "z")->data, (size_t)batch * sizeof(float));
    nn_session_free(s);
}

/* Different processes may sum in different orders: float32 tolerance. */
static int close_to(float got, float want)
{
    return fabsf(got - want) <= 1e-5f * fabsf(want) + 1e-6f;
}

static void expect_values(const raw_reply *r, const cJSON *doc,
                          const char *name, const float *want, long n,
                          int want_binary)
{
    float got[64];
    int binary = -1;
    long count = output_values(r, doc, name, got, 64, &binary);
    CU_ASSERT_EQUAL(count, n);
    CU_ASSERT_EQUAL(binary, want_binary);
    for (long k = 0; k < n && k < count; k++) {
        if (!close_to(got[k], want[k]))
            fprintf(stderr, "%s[%ld]: %.9g, in process %.9g\n", name, k,
                    got[k], want[k]);
        CU_ASSERT(close_to(got[k], want[k]));
    }
}

/* ------------------------------------------------ tritonclient's frames */

static const float A2[4] = {0.5f, -1.25f, 2.0f, 0.1f}; /* a: [2, 2] */
static const float B2[2] = {3.0f, -0.75f};              /* b: [2, 1] */

static void test_binary_in_binary_out(void)
{
    /* InferInput.set_data_from_numpy(binary_data=True) and no requested
     * outputs: what infer() sends by default. */
    const char *json =
        "{\"inputs\":[{\"name\":\"a\",\"shape\":[2,2],\"datatype\":\"FP32\","
        "\"parameters\":{\"binary_data_size\":16}},{\"name\":\"b\",\"shape\":"
        "[2,1],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":8}}"
        "],\"parameters\":{\"binary_data_output\":true}}";
    const float *blobs[2] = {A2, B2};
    size_t counts[2] = {4, 2}, len;
    char *body = frame(json, blobs, counts, 2, &len);
    char length[64];
    snprintf(length, sizeof length, "Inference-Header-Content-Length: %zu",
             strlen(json));
    const char *lines[] = {length, NULL};
    raw_reply r;
    raw("POST", "/v2/models/pair/infer", lines, body, len, &r);
    free(body);
    CU_ASSERT_EQUAL(r.status, 200);
    /* As Triton answers: octet-stream, and the JSON header's length. */
    CU_ASSERT_STRING_EQUAL(r.content_type, "application/octet-stream");
    CU_ASSERT(r.header_length > 0);
    cJSON *doc = reply_json(&r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(doc, "model_name")),
                           "pair");
    /* Every output, each binary, and the bytes add up exactly. */
    CU_ASSERT_EQUAL(cJSON_GetArraySize(get(doc, "outputs")), 2);
    double sizes = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, get(doc, "outputs"))
    {
        CU_ASSERT_PTR_NULL(get(o, "data"));
        sizes += get(get(o, "parameters"), "binary_data_size")->valuedouble;
    }
    CU_ASSERT_EQUAL((size_t)r.header_length + (size_t)sizes, r.len);
    float y[6], z[2];
    pair_reference(2, A2, B2, y, z);
    expect_values(&r, doc, "y", y, 6, 1);
    expect_values(&r, doc, "z", z, 2, 1);
    cJSON_Delete(doc);
    raw_free(&r);
}

static void test_json_in_json_out(void)
{
    /* set_data_from_numpy(binary_data=False) and
     * InferRequestedOutput(name, binary_data=False): no binary anywhere,
     * so no Inference-Header-Content-Length either way. Data as the client
     * writes float32 values: their double expansions. */
    const char *json =
        "{\"id\":\"req-7\",\"inputs\":[{\"name\":\"a\",\"shape\":[2,2],"
        "\"datatype\":\"FP32\",\"data\":[0.5,-1.25,2.0,0.10000000149011612]},"
        "{\"name\":\"b\",\"shape\":[2,1],\"datatype\":\"FP32\",\"data\":"
        "[3.0,-0.75]}],\"outputs\":[{\"name\":\"z\",\"parameters\":"
        "{\"binary_data\":false}}],\"parameters\":{\"priority\":1,"
        "\"timeout\":5000}}";
    raw_reply r;
    raw("POST", "/v2/models/pair/infer", NULL, json, strlen(json), &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.content_type, "application/json"));
    CU_ASSERT_EQUAL(r.header_length, -1);
    cJSON *doc = reply_json(&r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(doc, "id")), "req-7");
    /* Only what was asked for. */
    CU_ASSERT_EQUAL(cJSON_GetArraySize(get(doc, "outputs")), 1);
    float y[6], z[2];
    pair_reference(2, A2, B2, y, z);
    expect_values(&r, doc, "z", z, 2, 0);
    cJSON_Delete(doc);
    raw_free(&r);
}

static void test_json_in_binary_out(void)
{
    /* JSON inputs, no outputs named: the body is JSON alone (no
     * Inference-Header-Content-Length), the answer binary. */
    const char *json =
        "{\"inputs\":[{\"name\":\"a\",\"shape\":[2,2],\"datatype\":\"FP32\","
        "\"data\":[0.5,-1.25,2.0,0.10000000149011612]},{\"name\":\"b\","
        "\"shape\":[2,1],\"datatype\":\"FP32\",\"data\":[3.0,-0.75]}],"
        "\"parameters\":{\"binary_data_output\":true}}";
    raw_reply r;
    raw("POST", "/v2/models/pair/infer", NULL, json, strlen(json), &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.content_type, "application/octet-stream");
    cJSON *doc = reply_json(&r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    float y[6], z[2];
    pair_reference(2, A2, B2, y, z);
    expect_values(&r, doc, "y", y, 6, 1);
    expect_values(&r, doc, "z", z, 2, 1);
    cJSON_Delete(doc);
    raw_free(&r);
}

static void test_binary_in_json_out_and_mixed(void)
{
    /* a binary, b as JSON; y asked binary, z as JSON; through the
     * versioned route, as infer(model_version="1") sends it. */
    const char *json =
        "{\"inputs\":[{\"name\":\"a\",\"shape\":[2,2],\"datatype\":\"FP32\","
        "\"parameters\":{\"binary_data_size\":16}},{\"name\":\"b\",\"shape\":"
        "[2,1],\"datatype\":\"FP32\",\"data\":[3.0,-0.75]}],\"outputs\":"
        "[{\"name\":\"y\",\"parameters\":{\"binary_data\":true}},{\"name\":"
        "\"z\",\"parameters\":{\"binary_data\":false}}]}";
    const float *blobs[1] = {A2};
    size_t counts[1] = {4}, len;
    char *body = frame(json, blobs, counts, 1, &len);
    char length[64];
    snprintf(length, sizeof length, "Inference-Header-Content-Length: %zu",
             strlen(json));
    const char *lines[] = {length, NULL};
    raw_reply r;
    raw("POST", "/v2/models/pair/versions/1/infer", lines, body, len, &r);
    free(body);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.content_type, "application/octet-stream");
    cJSON *doc = reply_json(&r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    float y[6], z[2];
    pair_reference(2, A2, B2, y, z);
    expect_values(&r, doc, "y", y, 6, 1);
    expect_values(&r, doc, "z", z, 2, 0);
    /* In the order asked. */
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(cJSON_GetArrayItem(
                               get(doc, "outputs"), 0), "name")), "y");
    cJSON_Delete(doc);
    raw_free(&r);

    /* Binary inputs, every output as JSON: a JSON answer. */
    const char *json2 =
        "{\"inputs\":[{\"name\":\"a\",\"shape\":[2,2],\"datatype\":\"FP32\","
        "\"parameters\":{\"binary_data_size\":16}},{\"name\":\"b\",\"shape\":"
        "[2,1],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":8}}"
        "],\"outputs\":[{\"name\":\"z\",\"parameters\":{\"binary_data\":"
        "false}},{\"name\":\"y\",\"parameters\":{\"binary_data\":false}}]}";
    const float *blobs2[2] = {A2, B2};
    size_t counts2[2] = {4, 2};
    body = frame(json2, blobs2, counts2, 2, &len);
    snprintf(length, sizeof length, "Inference-Header-Content-Length: %zu",
             strlen(json2));
    raw("POST", "/v2/models/pair/infer", lines, body, len, &r);
    free(body);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.content_type, "application/json"));
    CU_ASSERT_EQUAL(r.header_length, -1);
    doc = reply_json(&r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    expect_values(&r, doc, "y", y, 6, 0);
    expect_values(&r, doc, "z", z, 2, 0);
    cJSON_Delete(doc);
    raw_free(&r);

    /* The extension's own example: Content-Type application/octet-stream
     * with the framing is read too. */
    body = frame(json, blobs, counts, 1, &len);
    snprintf(length, sizeof length, "Inference-Header-Content-Length: %zu",
             strlen(json));
    const char *typed[] = {length, "Content-Type: application/octet-stream",
                           NULL};
    raw("POST", "/v2/models/pair/infer", typed, body, len, &r);
    free(body);
    CU_ASSERT_EQUAL(r.status, 200);
    raw_free(&r);
}

/* One step of mymodel's sequence seq (JSON text of sequence_id) as
 * tritonclient sends it: sequence_start and sequence_end always present,
 * binary input and output. Returns output0's two values. */
static void client_sequence_step(const char *seq, int start, int end,
                                 const float *x, long expect, float *out)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"inputs\":[{\"name\":\"input0\",\"shape\":[1,2],\"datatype\":"
             "\"FP32\",\"parameters\":{\"binary_data_size\":8}}],\"parameters\""
             ":{\"sequence_id\":%s,\"sequence_start\":%s,\"sequence_end\":%s,"
             "\"binary_data_output\":true}}", seq, start ? "true" : "false",
             end ? "true" : "false");
    const float *blobs[1] = {x};
    size_t counts[1] = {2}, len;
    char *body = frame(json, blobs, counts, 1, &len);
    char length[64];
    snprintf(length, sizeof length, "Inference-Header-Content-Length: %zu",
             strlen(json));
    const char *lines[] = {length, NULL};
    raw_reply r;
    raw("POST", "/v2/models/mymodel/infer", lines, body, len, &r);
    free(body);
    CU_ASSERT_EQUAL(r.status, expect);
    if (r.status == 200) {
        /* Echoed as it came: an integer as its digits, a string quoted. */
        char echo[96];
        snprintf(echo, sizeof echo, "\"sequence_id\":%s", seq);
        CU_ASSERT_PTR_NOT_NULL(strstr(r.body, echo));
        cJSON *doc = reply_json(&r);
        int binary = 0;
        CU_ASSERT_EQUAL(output_values(&r, doc, "output0", out, 2, &binary), 2);
        CU_ASSERT(binary);
        cJSON_Delete(doc);
    } else {
        cJSON *doc = cJSON_Parse(r.body);
        CU_ASSERT(cJSON_IsString(get(doc, "error")));
        cJSON_Delete(doc);
    }
    raw_free(&r);
}

static void test_client_sequences(void)
{
    const float xs[4][2] = {{1, 0}, {0, 1}, {0.5f, -0.5f}, {0.25f, 2}};
    float want[4][2];
    nn_error e;
    nn_session *s = nn_session_new(ref_mymodel, 1, nn_graph_seed(ref_mymodel),
                                   &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    const char *names[1] = {"input0"};
    for (int t = 0; t < 4; t++) {
        const float *values[1] = {xs[t]};
        reference_step(s, names, values, 1, "output0", want[t]);
    }
    nn_session_free(s);

    /* sequence_id as an integer and as a string, interleaved, each its
     * own sequence: 8001 and "8001" are two, as in Triton, and so are
     * 2^53 and 2^53 + 1, which one double cannot tell apart; the largest
     * uint64 is an id too. */
    const char *ids[] = {"8001", "\"8001\"", "\"client-seq\"",
                         "18446744073709551615", "9007199254740993",
                         "9007199254740992"};
    float got[2];
    for (int t = 0; t < 4; t++)
        for (size_t k = 0; k < sizeof ids / sizeof *ids; k++) {
            client_sequence_step(ids[k], t == 0, t == 3, xs[t], 200, got);
            for (int c = 0; c < 2; c++)
                CU_ASSERT(close_to(got[c], want[t][c]));
        }
    /* Ended: continuing is refused (Triton's rule), starting again works
     * and is a first step. */
    client_sequence_step("8001", 0, 0, xs[0], 400, got);
    client_sequence_step("8001", 1, 1, xs[0], 200, got);
    CU_ASSERT(close_to(got[0], want[0][0]));
}

/* ------------------------------------------------ errors before handlers */

static void expect_v2_error(const raw_reply *r, long status,
                            const char *needle)
{
    cJSON *doc = cJSON_Parse(r->body);
    const char *msg = cJSON_GetStringValue(get(doc, "error"));
    if (r->status != status || !msg || !strstr(msg, needle))
        fprintf(stderr, "got %ld %s (want %ld, '%s')\n", r->status, r->body,
                status, needle);
    CU_ASSERT_EQUAL(r->status, status);
    /* Exactly {"error": "<message>"}: what the client reads. */
    CU_ASSERT_EQUAL(cJSON_GetArraySize(doc), 1);
    CU_ASSERT(msg && strstr(msg, needle));
    CU_ASSERT_PTR_NOT_NULL(strstr(r->content_type, "application/json"));
    cJSON_Delete(doc);
}

/* The extension's raw binary request: Inference-Header-Content-Length 0
 * and the body the one input's rows, answered as the same rows sent with
 * a JSON header are; a model of two inputs, and a body of no whole
 * number of rows, are refused. */
static void test_raw_binary_request(void)
{
    const float rows[4] = {0.5f, -1.0f, 2.0f, 0.25f};
    const char *lines[] = {"Content-Type: application/octet-stream",
                           "Inference-Header-Content-Length: 0", NULL};
    raw_reply r;
    raw("POST", "/v2/models/mymodel/infer", lines, rows, sizeof rows, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    cJSON *got = cJSON_Parse(r.body);
    raw_free(&r);
    cJSON *want = call("POST", "/v2/models/mymodel/infer",
                       "{\"inputs\":[{\"name\":\"input0\",\"shape\":[2,2],"
                       "\"datatype\":\"FP32\",\"data\":[0.5,-1,2,0.25]}]}", 200);
    CU_ASSERT(cJSON_Compare(get(got, "outputs"), get(want, "outputs"), 1));
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(get(cJSON_GetArrayItem(
                        get(got, "outputs"), 0), "shape"), 0)->valueint, 2);
    cJSON_Delete(got);
    cJSON_Delete(want);
    raw("POST", "/v2/models/mymodel/infer", lines, rows, 12, &r);
    expect_v2_error(&r, 400, "rows of input 'input0'");
    raw_free(&r);
    raw("POST", "/v2/models/pair/infer", lines, rows, sizeof rows, &r);
    expect_v2_error(&r, 400, "one input");
    raw_free(&r);
    /* v1 routes take the framing with its header only. */
    raw("POST", "/v1/networks/mymodel/forward", lines, rows, sizeof rows, &r);
    CU_ASSERT_EQUAL(r.status, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "only by /v2 infer"));
    raw_free(&r);
}


static void test_errors_before_handlers(void)
{
    raw_reply r;
    const char *good = "{\"inputs\":[{\"name\":\"input0\",\"shape\":[1,2],"
                       "\"datatype\":\"FP32\",\"data\":[1,2]}]}";
    raw("POST", "/v2/models/mymodel/infer", NULL, "{\"inputs\": [", 12, &r);
    /* Cut short: the place is the end, as the v1 routes say. */
    expect_v2_error(&r, 400, "malformed JSON at byte 12");
    raw_free(&r);
    raw("POST", "/v2/models/mymodel/infer", NULL, "{\"inputs\": [}]}", 15,
        &r);
    expect_v2_error(&r, 400, "malformed JSON at byte 12");
    raw_free(&r);
    raw("POST", "/v2/models/mymodel/infer", NULL, "", 0, &r);
    expect_v2_error(&r, 400, "needs a JSON body");
    raw_free(&r);
    /* A member twice: read by neither copy. */
    static const char twice[] =
        "{\"inputs\":[{\"name\":\"input0\",\"shape\":[1,2],\"datatype\":"
        "\"FP32\",\"data\":[1,2],\"data\":[3,4]}]}";
    raw("POST", "/v2/models/mymodel/infer", NULL, twice, strlen(twice), &r);
    expect_v2_error(&r, 400, "'data' twice");
    raw_free(&r);
    raw("GET", "/v2/nothing/here", NULL, NULL, 0, &r);
    expect_v2_error(&r, 404, "no route");
    raw_free(&r);
    raw("POST", "/v2/models/nothere/infer", NULL, good, strlen(good), &r);
    expect_v2_error(&r, 404, "nothere");
    raw_free(&r);
    raw("DELETE", "/v2/health/live", NULL, NULL, 0, &r);
    expect_v2_error(&r, 405, "DELETE");
    CU_ASSERT_STRING_EQUAL(r.allow, "GET, HEAD");
    raw_free(&r);
    const char *text[] = {"Content-Type: text/plain", NULL};
    raw("POST", "/v2/models/mymodel/infer", text, good, strlen(good), &r);
    expect_v2_error(&r, 415, "text/plain");
    raw_free(&r);
    /* octet-stream without the framing header is JSON: tritonclient's
     * asyncio client sends its JSON requests so (aiohttp's label for a
     * bytes body). */
    const char *octets[] = {"Content-Type: application/octet-stream", NULL};
    raw("POST", "/v2/models/mymodel/infer", octets, good, strlen(good), &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"outputs\""));
    raw_free(&r);
    /* A form, as curl -d labels its data, is a declared non-JSON type. */
    const char *form[] = {
        "Content-Type: application/x-www-form-urlencoded", NULL};
    raw("POST", "/v2/models/mymodel/infer", form, good, strlen(good), &r);
    expect_v2_error(&r, 415, "x-www-form-urlencoded");
    raw_free(&r);
    /* An encoding not served is said so, rather than read as broken JSON;
     * a gzip body that is not gzip is a 400. */
    const char *brotli[] = {"Content-Encoding: br", NULL};
    raw("POST", "/v2/models/mymodel/infer", brotli, good, strlen(good), &r);
    expect_v2_error(&r, 415, "'br'");
    raw_free(&r);
    const char *gzip[] = {"Content-Encoding: gzip", NULL};
    raw("POST", "/v2/models/mymodel/infer", gzip, good, strlen(good), &r);
    expect_v2_error(&r, 400, "gzip");
    raw_free(&r);
    /* A JSON body followed by bytes, without the framing header: the
     * message says what is missing. */
    char body[256];
    snprintf(body, sizeof body, "%sabcd", good);
    raw("POST", "/v2/models/mymodel/infer", NULL, body, strlen(body), &r);
    expect_v2_error(&r, 400, "Inference-Header-Content-Length");
    raw_free(&r);
    /* A body on a route that takes none. */
    raw("GET", "/v2/health/ready", NULL, good, strlen(good), &r);
    expect_v2_error(&r, 400, "takes no body");
    raw_free(&r);

    /* v1 keeps its own shape, and refuses the framing by name. */
    raw("GET", "/v1/nothing", NULL, NULL, 0, &r);
    cJSON *doc = cJSON_Parse(r.body);
    CU_ASSERT_EQUAL(r.status, 404);
    CU_ASSERT(cJSON_IsString(get(get(doc, "error"), "code")));
    cJSON_Delete(doc);
    raw_free(&r);
    const char *framed[] = {"Content-Type: application/json",
                            "Inference-Header-Content-Length: 2", NULL};
    raw("POST", "/v1/networks", framed, "{}xx", 4, &r);
    doc = cJSON_Parse(r.body);
    CU_ASSERT_EQUAL(r.status, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(cJSON_GetStringValue(get(get(doc, "error"),
                                                           "message")),
                                  "binary tensor data"));
    cJSON_Delete(doc);
    raw_free(&r);
}

/* 401 and 413 come from a daemon with keys and a small body limit. */
static void test_auth_and_size_errors(void)
{
    char *dir = it_temp_dir("nerved-kserve");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    char keys[600];
    snprintf(keys, sizeof keys, "%s/keys", dir);
    FILE *f = fopen(keys, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("kserve-test-key\n", f);
    fclose(f);
    const char *const args[] = {"--api-key-file", keys, "--max-body", "4096",
                                NULL};
    it_server guarded;
    CU_ASSERT_EQUAL_FATAL(it_start(&guarded, args), 0);
    raw_reply r;
    raw_on(&guarded, "GET", "/v2/models/mymodel", NULL, NULL, 0, &r);
    expect_v2_error(&r, 401, "Bearer");
    raw_free(&r);
    /* The probes stay open, HEAD included. */
    raw_on(&guarded, "HEAD", "/v2/health/ready", NULL, NULL, 0, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    raw_free(&r);
    const char *auth[] = {"Authorization: Bearer kserve-test-key", NULL};
    char *big = malloc(8192);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    memset(big, ' ', 8192);
    big[0] = '{';
    big[8191] = '}';
    raw_on(&guarded, "POST", "/v2/models/mymodel/infer", auth, big, 8192, &r);
    expect_v2_error(&r, 413, "limit");
    raw_free(&r);
    free(big);
    /* A small body that inflates past the limit is 413 too. */
    char *spaces = malloc(1 << 20);
    CU_ASSERT_PTR_NOT_NULL_FATAL(spaces);
    memset(spaces, ' ', 1 << 20);
    size_t packed_len;
    char *packed = compress_body(spaces, 1 << 20, 1, &packed_len);
    CU_ASSERT(packed_len < 4096);
    const char *gz[] = {"Authorization: Bearer kserve-test-key",
                        "Content-Encoding: gzip", NULL};
    raw_on(&guarded, "POST", "/v2/models/mymodel/infer", gz, packed,
           packed_len, &r);
    expect_v2_error(&r, 413, "decompresses");
    raw_free(&r);
    free(packed);
    free(spaces);
    raw_on(&guarded, "GET", "/v2/models/nothere", auth, NULL, 0, &r);
    expect_v2_error(&r, 404, "nothere");
    raw_free(&r);
    CU_ASSERT_EQUAL(it_stop(&guarded), 0);
    it_remove_tree(dir);
    free(dir);
}

/* Writes head and then body_len bytes of body as tritonclient does
 * (geventhttpclient's sendall: the whole request before reading anything),
 * then reads one reply off the same socket into r. Returns the socket,
 * still open for a next request, or -1 when the server stopped reading
 * before the body was all sent (the client's BrokenPipeError). */
static int send_whole(const it_server *srv, const char *head, size_t body_len,
                      raw_reply *r)
{
    memset(r, 0, sizeof *r);
    r->header_length = -1;
    r->content_length = -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct sockaddr_in at = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)srv->port)};
    at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&at, sizeof at), 0);
    /* A daemon that waits for bytes never sent fails the test, not hangs. */
    struct timeval wait = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    static char chunk[1 << 16];
    size_t head_len = strlen(head), sent = 0;
    int broken = send(fd, head, head_len, MSG_NOSIGNAL) != (ssize_t)head_len;
    while (!broken && sent < body_len) {
        size_t n = body_len - sent < sizeof chunk ? body_len - sent
                                                  : sizeof chunk;
        ssize_t w = send(fd, chunk, n, MSG_NOSIGNAL);
        if (w <= 0)
            broken = 1;
        else
            sent += (size_t)w;
    }
    if (broken) {
        close(fd);
        return -1;
    }
    /* The reply: headers, then Content-Length bytes. */
    char wire[8192];
    size_t got = 0;
    const char *end = NULL;
    ssize_t n;
    while (!end && got < sizeof wire - 1 &&
           (n = read(fd, wire + got, sizeof wire - 1 - got)) > 0) {
        got += (size_t)n;
        wire[got] = '\0';
        end = strstr(wire, "\r\n\r\n");
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(end);
    r->status = strtol(wire + 9, NULL, 10);
    const char *cl = strstr(wire, "\r\nContent-Length:");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
    size_t want = strtoul(cl + 17, NULL, 10), start = (size_t)(end + 4 - wire);
    const char *ct = strstr(wire, "\r\nContent-Type:");
    if (ct)
        sscanf(ct + 15, " %127[^\r]", r->content_type);
    CU_ASSERT_FATAL(start + want < sizeof wire);
    while (got < start + want &&
           (n = read(fd, wire + got, sizeof wire - 1 - got)) > 0)
        got += (size_t)n;
    CU_ASSERT_EQUAL(got, start + want);
    r->len = want;
    r->body = malloc(want + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->body);
    memcpy(r->body, wire + start, want);
    r->body[want] = '\0';
    return fd;
}

/* A refusal known from the headers (413 from Content-Length, 401, 404,
 * 415) reaches a client that writes a large body whole before reading: the
 * daemon reads the body and drops it, then answers, and the connection
 * stays in step for the next request. The body is 16 MiB, more than a
 * loopback socket buffers, so answering before reading it would cut the
 * client's write. */
static void test_refusals_wait_for_the_body(void)
{
    char *dir = it_temp_dir("nerved-kserve");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    char keys[600];
    snprintf(keys, sizeof keys, "%s/keys", dir);
    FILE *f = fopen(keys, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("kserve-test-key\n", f);
    fclose(f);
    const char *const args[] = {"--api-key-file", keys, "--max-body", "4096",
                                NULL};
    it_server guarded;
    CU_ASSERT_EQUAL_FATAL(it_start(&guarded, args), 0);
    const size_t big = (size_t)16 << 20;
    /* tritonclient's infer() header lines as geventhttpclient writes
     * them: lower case, User-Agent, the caller's headers, the framing's
     * header, Host, Content-Length (no Content-Type). The body is never
     * parsed here: zeros do. */
    /* The 415 is asked of the main daemon, whose --max-body (64 MiB) the
     * body does not exceed. */
    static const struct {
        int guarded;
        const char *path, *extra;
        long status;
        const char *needle;
    } cases[] = {
        {1, "/v2/models/mymodel/infer",
         "authorization: Bearer kserve-test-key\r\n", 413, "limit"},
        {1, "/v2/models/mymodel/infer", "", 401, "Bearer"},
        {1, "/v2/models/mymodel/nothing",
         "authorization: Bearer kserve-test-key\r\n", 404, "no route"},
        {0, "/v2/models/mymodel/infer", "content-type: text/plain\r\n", 415,
         "text/plain"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const it_server *srv = cases[k].guarded ? &guarded : &server;
        char head[1024];
        snprintf(head, sizeof head,
                 "POST %s HTTP/1.1\r\n"
                 "user-agent: python/gevent-http-client-2.0.8\r\n%s"
                 "inference-header-content-length: 134\r\n"
                 "host: 127.0.0.1:%d\r\ncontent-length: %zu\r\n\r\n",
                 cases[k].path, cases[k].extra, srv->port, big);
        raw_reply r;
        int fd = send_whole(srv, head, big, &r);
        CU_ASSERT(fd >= 0);
        if (fd < 0) {
            fprintf(stderr, "%s: the daemon stopped reading before the "
                    "body was sent\n", cases[k].path);
            continue;
        }
        expect_v2_error(&r, cases[k].status, cases[k].needle);
        raw_free(&r);
        /* The body was consumed: the next request on the connection is
         * read as a request. */
        const char *next = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
        CU_ASSERT_EQUAL(send(fd, next, strlen(next), MSG_NOSIGNAL),
                        (ssize_t)strlen(next));
        char wire[512];
        ssize_t n = read(fd, wire, sizeof wire - 1);
        CU_ASSERT(n > 12);
        if (n > 12)
            CU_ASSERT_EQUAL(strncmp(wire, "HTTP/1.1 200", 12), 0);
        close(fd);
    }
    /* Past the bound (4 x --max-body, at least 64 MiB) nothing is read:
     * the 413 comes at once, on the headers alone. */
    char head[512];
    snprintf(head, sizeof head,
             "POST /v2/models/mymodel/infer HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer kserve-test-key\r\n"
             "Content-Length: 1000000000\r\n\r\n");
    raw_reply r;
    int fd = send_whole(&guarded, head, 0, &r);
    CU_ASSERT_FATAL(fd >= 0);
    expect_v2_error(&r, 413, "1000000000");
    raw_free(&r);
    close(fd);
    /* A client that asks "Expect: 100-continue" waits for the answer
     * before sending its body: it gets it at once. */
    snprintf(head, sizeof head,
             "POST /v2/models/mymodel/infer HTTP/1.1\r\nHost: x\r\n"
             "Expect: 100-continue\r\nContent-Length: %zu\r\n\r\n", big);
    fd = send_whole(&guarded, head, 0, &r);
    CU_ASSERT_FATAL(fd >= 0);
    expect_v2_error(&r, 401, "Bearer");
    raw_free(&r);
    close(fd);
    CU_ASSERT_EQUAL(it_stop(&guarded), 0);
    it_remove_tree(dir);
    free(dir);
}

/* Bad framing is a 400 that says what is wrong. */
static void test_bad_framing(void)
{
    const float x[2] = {1, 2};
    struct {
        const char *json;
        int blobs;          /* floats appended */
        long header;        /* announced length; 0: the JSON's */
        const char *needle;
    } cases[] = {
        {"{\"inputs\":[{\"name\":\"input0\",\"shape\":[1,2],\"datatype\":"
         "\"FP32\",\"parameters\":{\"binary_data_size\":12}}]}", 3, 0,
         "needs 8"},
        {"{\"inputs\":[{\"name\":\"input0\",\"shape\":[1,2],\"datatype\":"
         "\"FP32\",\"parameters\":{\"binary_data_size\":8}}]}", 1, 0,
         "only 4 are left"},
        {"{\"inputs\":[{\"name\":\"input0\",\"shape\":[1,2],\"datatype\":"
         "\"FP32\",\"parameters\":{\"binary_data_size\":8}}]}", 3, 0,
         "belong to no input"},
        {"{\"inputs\":[{\"name\":\"input0\",\"shape\":[1,2],\"datatype\":"
         "\"FP32\",\"parameters\":{\"binary_data_size\":8}}]}", 2, 100000,
         "the body has only"},
        {"{\"inputs\":[{\"name\":\"input0\",\"shape\":[1,2],\"datatype\":"
         "\"FP32\",\"parameters\":{\"binary_data_size\":8}}]}", 2, 30,
         "malformed JSON"},
        {"{\"inputs\":[{\"name\":\"input0\",\"shape\":[1,2],\"datatype\":"
         "\"INT32\",\"parameters\":{\"binary_data_size\":8}}]}", 2, 0,
         "\"FP32\""},
        {"{\"inputs\":[{\"name\":\"input0\",\"shape\":[1,2],\"datatype\":"
         "\"FP16\",\"parameters\":{\"binary_data_size\":4}}]}", 1, 0,
         "\"FP32\""},
        {"{\"inputs\":[{\"name\":\"input0\",\"shape\":[1,2],\"datatype\":"
         "\"FP32\",\"data\":[1,2]}],\"outputs\":[{\"name\":\"output0\","
         "\"parameters\":{\"classification\":2,\"binary_data\":true}}]}", 0,
         0, "classification"},
    };
    float blob[3] = {1, 2, 3};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const float *blobs[1] = {blob};
        size_t counts[1] = {(size_t)cases[k].blobs}, len;
        char *body = frame(cases[k].json, blobs, counts, 1, &len);
        char length[64];
        snprintf(length, sizeof length, "Inference-Header-Content-Length: %ld",
                 cases[k].header ? cases[k].header
                                 : (long)strlen(cases[k].json));
        const char *lines[] = {length, NULL};
        raw_reply r;
        raw("POST", "/v2/models/mymodel/infer", lines, body, len, &r);
        free(body);
        expect_v2_error(&r, 400, cases[k].needle);
        raw_free(&r);
    }
    /* The header's value must be a byte count. */
    const char *json = "{\"inputs\":[{\"name\":\"input0\",\"shape\":[1,2],"
                       "\"datatype\":\"FP32\",\"parameters\":"
                       "{\"binary_data_size\":8}}]}";
    const float *blobs[1] = {x};
    size_t counts[1] = {2}, len;
    char *body = frame(json, blobs, counts, 1, &len);
    const char *values[] = {"Inference-Header-Content-Length: x12",
                            "Inference-Header-Content-Length: 0",
                            "Inference-Header-Content-Length: -5"};
    for (int k = 0; k < 3; k++) {
        const char *lines[] = {values[k], NULL};
        raw_reply r;
        raw("POST", "/v2/models/mymodel/infer", lines, body, len, &r);
        expect_v2_error(&r, 400, "Inference-Header-Content-Length");
        raw_free(&r);
    }
    free(body);
}

static void test_compressed_answers_json(void)
{
    const char *json =
        "{\"inputs\":[{\"name\":\"a\",\"shape\":[2,2],\"datatype\":\"FP32\","
        "\"data\":[0.5,-1.25,2.0,0.10000000149011612]},{\"name\":\"b\","
        "\"shape\":[2,1],\"datatype\":\"FP32\",\"data\":[3.0,-0.75]}],"
        "\"outputs\":[{\"name\":\"y\",\"parameters\":{\"binary_data\":false}}]}";
    float y[6], z[2];
    pair_reference(2, A2, B2, y, z);
    const char *gz[] = {"Accept-Encoding: br;q=1, gzip", NULL};
    raw_reply r;
    raw("POST", "/v2/models/pair/infer", gz, json, strlen(json), &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.content_encoding, "gzip");
    inflate_reply(&r);
    cJSON *doc = reply_json(&r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    expect_values(&r, doc, "y", y, 6, 0);
    cJSON_Delete(doc);
    raw_free(&r);
    /* Refused codings and errors go uncompressed. */
    const char *none[] = {"Accept-Encoding: gzip;q=0, identity", NULL};
    raw("POST", "/v2/models/pair/infer", none, json, strlen(json), &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.content_encoding, "");
    raw_free(&r);
    /* The coding of highest q, gzip on a tie; "*" for those not named. */
    static const struct {
        const char *accept, *coding;
    } picks[] = {
        {"Accept-Encoding: gzip, deflate", "gzip"},
        {"Accept-Encoding: deflate, gzip", "gzip"},
        {"Accept-Encoding: deflate;q=0.5, gzip", "gzip"},
        {"Accept-Encoding: gzip;q=0.2, deflate", "deflate"},
        {"Accept-Encoding: br, deflate", "deflate"},
        {"Accept-Encoding: *", "gzip"},
        {"Accept-Encoding: gzip;q=0, *", "deflate"},
        {"Accept-Encoding: *;q=0", ""},
    };
    for (size_t k = 0; k < sizeof picks / sizeof *picks; k++) {
        const char *lines[] = {picks[k].accept, NULL};
        raw("POST", "/v2/models/pair/infer", lines, json, strlen(json), &r);
        CU_ASSERT_EQUAL(r.status, 200);
        /* Each string its own call: GCC with -fsanitize=address takes
         * one of three table strings in a format for a possible NULL. */
        if (strcmp(r.content_encoding, picks[k].coding) != 0) {
            fputs(picks[k].accept, stderr);
            fprintf(stderr, ": answered in '%s', wanted '", r.content_encoding);
            fputs(picks[k].coding, stderr);
            fputs("'\n", stderr);
        }
        CU_ASSERT_STRING_EQUAL(r.content_encoding, picks[k].coding);
        /* Compressed or not, the answer depends on Accept-Encoding, which
         * a cache must be told. */
        CU_ASSERT_STRING_EQUAL(r.vary, "Accept-Encoding");
        raw_free(&r);
    }
    raw("POST", "/v2/models/nothere/infer", gz, json, strlen(json), &r);
    expect_v2_error(&r, 404, "nothere");
    CU_ASSERT_STRING_EQUAL(r.content_encoding, "");
    raw_free(&r);
}

static void test_compressed_requests(void)
{
    /* The default binary request, compressed both ways the client can. */
    const char *json =
        "{\"inputs\":[{\"name\":\"a\",\"shape\":[2,2],\"datatype\":\"FP32\","
        "\"parameters\":{\"binary_data_size\":16}},{\"name\":\"b\",\"shape\":"
        "[2,1],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":8}}"
        "],\"parameters\":{\"binary_data_output\":true}}";
    const float *blobs[2] = {A2, B2};
    size_t counts[2] = {4, 2}, len;
    char *body = frame(json, blobs, counts, 2, &len);
    char length[64];
    snprintf(length, sizeof length, "Inference-Header-Content-Length: %zu",
             strlen(json));
    float y[6], z[2];
    pair_reference(2, A2, B2, y, z);
    const char *names[2] = {"Content-Encoding: gzip",
                            "Content-Encoding: deflate"};
    for (int k = 0; k < 2; k++) {
        size_t packed_len;
        char *packed = compress_body(body, len, k == 0, &packed_len);
        const char *lines[] = {length, names[k], NULL};
        raw_reply r;
        raw("POST", "/v2/models/pair/infer", lines, packed, packed_len, &r);
        CU_ASSERT_EQUAL(r.status, 200);
        cJSON *doc = reply_json(&r);
        CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
        expect_values(&r, doc, "y", y, 6, 1);
        expect_values(&r, doc, "z", z, 2, 1);
        cJSON_Delete(doc);
        raw_free(&r);
        /* Answers compressed on request (response_compression_algorithm),
         * the JSON header's length counting uncompressed bytes. */
        const char *accept[2] = {"Accept-Encoding: gzip",
                                 "Accept-Encoding: deflate"};
        const char *both[] = {length, names[k], accept[k], NULL};
        raw("POST", "/v2/models/pair/infer", both, packed, packed_len, &r);
        CU_ASSERT_EQUAL(r.status, 200);
        CU_ASSERT_STRING_EQUAL(r.content_encoding, k == 0 ? "gzip" : "deflate");
        inflate_reply(&r);
        doc = reply_json(&r);
        CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
        expect_values(&r, doc, "y", y, 6, 1);
        expect_values(&r, doc, "z", z, 2, 1);
        cJSON_Delete(doc);
        raw_free(&r);
        /* Cut short, it is refused. */
        raw("POST", "/v2/models/pair/infer", lines, packed, packed_len / 2, &r);
        expect_v2_error(&r, 400, "not a valid");
        raw_free(&r);
        free(packed);
    }
    free(body);
}

/* ------------------------------------------- statistics, config, HEAD */

static double stat_of(const cJSON *doc, const char *a, const char *b)
{
    const cJSON *m = cJSON_GetArrayItem(get(doc, "model_stats"), 0);
    const cJSON *v = b ? get(get(get(m, "inference_stats"), a), b) : get(m, a);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void test_statistics(void)
{
    cJSON *before = call("GET", "/v2/models/pair/stats", NULL, 200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(cJSON_GetArrayItem(
                               get(before, "model_stats"), 0), "name")),
                           "pair");
    /* Two requests of batch 2 and 1, and one refused. */
    const char *batch2 =
        "{\"inputs\":[{\"name\":\"a\",\"shape\":[2,2],\"datatype\":\"FP32\","
        "\"data\":[1,2,3,4]},{\"name\":\"b\",\"shape\":[2,1],\"datatype\":"
        "\"FP32\",\"data\":[1,2]}]}";
    const char *batch1 =
        "{\"inputs\":[{\"name\":\"a\",\"shape\":[1,2],\"datatype\":\"FP32\","
        "\"data\":[1,2]},{\"name\":\"b\",\"shape\":[1,1],\"datatype\":"
        "\"FP32\",\"data\":[1]}]}";
    const char *bad = "{\"inputs\":[{\"name\":\"a\",\"shape\":[1,2],"
                      "\"datatype\":\"FP32\",\"data\":[1]}]}";
    cJSON_Delete(call("POST", "/v2/models/pair/infer", batch2, 200));
    cJSON_Delete(call("POST", "/v2/models/pair/infer", batch1, 200));
    cJSON_Delete(call("POST", "/v2/models/pair/infer", bad, 400));
    cJSON *after = call("GET", "/v2/models/pair/versions/1/stats", NULL, 200);
    CU_ASSERT_EQUAL(stat_of(after, "inference_count", NULL) -
                        stat_of(before, "inference_count", NULL), 3);
    CU_ASSERT_EQUAL(stat_of(after, "execution_count", NULL) -
                        stat_of(before, "execution_count", NULL), 2);
    const char *phases[] = {"success", "queue", "compute_input",
                            "compute_infer", "compute_output"};
    for (int k = 0; k < 5; k++)
        CU_ASSERT_EQUAL(stat_of(after, phases[k], "count") -
                            stat_of(before, phases[k], "count"), 2);
    CU_ASSERT_EQUAL(stat_of(after, "fail", "count") -
                        stat_of(before, "fail", "count"), 1);
    CU_ASSERT(stat_of(after, "success", "ns") > stat_of(before, "success", "ns"));
    CU_ASSERT(stat_of(after, "compute_infer", "ns") >
              stat_of(before, "compute_infer", "ns"));
    CU_ASSERT(stat_of(after, "last_inference", NULL) > 1.6e12);
    int sizes = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, get(cJSON_GetArrayItem(get(after, "model_stats"), 0),
                              "batch_stats"))
        sizes |= 1 << get(b, "batch_size")->valueint;
    CU_ASSERT_EQUAL(sizes & 6, 6);
    cJSON_Delete(before);
    cJSON_Delete(after);

    /* Every model at once. */
    cJSON *all = call("GET", "/v2/models/stats", NULL, 200);
    int seen = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, get(all, "model_stats"))
    {
        const char *name = cJSON_GetStringValue(get(m, "name"));
        seen |= (strcmp(name, "pair") == 0) | (strcmp(name, "mymodel") == 0) << 1;
    }
    CU_ASSERT_EQUAL(seen, 3);
    cJSON_Delete(all);
    cJSON *j = call("GET", "/v2/models/pair/versions/2/stats", NULL, 404);
    CU_ASSERT(cJSON_IsString(get(j, "error")));
    cJSON_Delete(j);
    j = call("GET", "/v2/models/nothere/stats", NULL, 404);
    CU_ASSERT(cJSON_IsString(get(j, "error")));
    cJSON_Delete(j);

    /* Counters belong to the network: many networks come and go (past
     * the table's first growth), and one created again under a deleted
     * one's name starts from zero. */
    const char *def = "{\"name\": \"again\", \"nodes\": [{\"name\": \"x\", "
                      "\"type\": \"Input\", \"shape\": 1}, {\"name\": \"o\", "
                      "\"type\": \"Dense\", \"num_unit\": 1}], \"edges\": "
                      "[\"x >> o\"]}";
    const char *one = "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,1],"
                      "\"datatype\":\"FP32\",\"data\":[1]}]}";
    for (int k = 0; k < 40; k++) {
        cJSON_Delete(call("POST", "/v1/networks", def, 201));
        cJSON_Delete(call("POST", "/v2/models/again/infer", one, 200));
        cJSON *s2 = call("GET", "/v2/models/again/stats", NULL, 200);
        CU_ASSERT_EQUAL(stat_of(s2, "inference_count", NULL), 1);
        cJSON_Delete(s2);
        cJSON_Delete(call("DELETE", "/v1/networks/again", NULL, 200));
    }
    /* The others kept theirs. */
    cJSON *kept = call("GET", "/v2/models/pair/stats", NULL, 200);
    CU_ASSERT(stat_of(kept, "inference_count", NULL) >= 3);
    cJSON_Delete(kept);
}

/* Whether every member of the object j is one of names (a NULL-ended
 * list). */
static int members_among(const cJSON *j, const char *const *names)
{
    if (!cJSON_IsObject(j))
        return 0;
    for (const cJSON *m = j->child; m; m = m->next) {
        int k = 0;
        while (names[k] && strcmp(names[k], m->string))
            k++;
        if (!names[k]) {
            fprintf(stderr, "'%s' is not a field of the message\n",
                    m->string);
            return 0;
        }
    }
    return 1;
}

/* Whether c reads as Triton's ModelConfig message (model_config.proto in
 * triton-inference-server/common), as json_format.ParseDict would take
 * it: only the message's fields, ModelInput's and ModelOutput's in the
 * tensors, ModelParameter's in the parameters map. Tools parse the
 * document that way, and an unknown field fails them. */
static int is_model_config(const cJSON *c)
{
    static const char *const config[] = {
        "name", "platform", "backend", "runtime", "version_policy",
        "max_batch_size", "input", "output", "batch_input", "batch_output",
        "optimization", "dynamic_batching", "sequence_batching",
        "ensemble_scheduling", "instance_group", "default_model_filename",
        "cc_model_filenames", "metric_tags", "parameters", "model_warmup",
        "model_operations", "model_transaction_policy",
        "model_repository_agents", "response_cache", NULL};
    static const char *const input[] = {
        "name", "data_type", "format", "dims", "reshape", "is_shape_tensor",
        "allow_ragged_batch", "optional", NULL};
    static const char *const output[] = {
        "name", "data_type", "dims", "reshape", "label_filename",
        "is_shape_tensor", NULL};
    static const char *const sequence[] = {
        "direct", "oldest", "max_sequence_idle_microseconds",
        "control_input", "state", "iterative_sequence", NULL};
    static const char *const parameter[] = {"string_value", NULL};
    int ok = members_among(c, config);
    const cJSON *t;
    cJSON_ArrayForEach(t, get(c, "input")) ok &= members_among(t, input);
    cJSON_ArrayForEach(t, get(c, "output")) ok &= members_among(t, output);
    if (get(c, "sequence_batching"))
        ok &= members_among(get(c, "sequence_batching"), sequence);
    cJSON_ArrayForEach(t, get(c, "parameters"))
        ok &= members_among(t, parameter) && cJSON_IsString(t->child);
    return ok;
}

static void test_config(void)
{
    cJSON *c = call("GET", "/v2/models/pair/config", NULL, 200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(c, "name")), "pair");
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(c, "platform")), "nerved");
    CU_ASSERT(get(c, "max_batch_size")->valueint > 0);
    const cJSON *a = cJSON_GetArrayItem(get(c, "input"), 0);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(a, "name")), "a");
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(a, "data_type")),
                           "TYPE_FP32");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(get(a, "dims")), 1);
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(get(a, "dims"), 0)->valueint, 2);
    const cJSON *y = cJSON_GetArrayItem(get(c, "output"), 0);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(y, "name")), "y");
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(get(y, "dims"), 0)->valueint, 3);
    /* The graph definition it was created from, as text in ModelConfig's
     * parameters map. */
    cJSON *def = cJSON_Parse(PAIR);
    cJSON *given = cJSON_Parse(cJSON_GetStringValue(
        get(get(get(c, "parameters"), "definition"), "string_value")));
    CU_ASSERT(given && cJSON_Compare(given, def, 1));
    cJSON_Delete(given);
    cJSON_Delete(def);
    CU_ASSERT(is_model_config(c));
    /* Stateless: no sequence batching; a recurrent network has it, with
     * the session timeout (the default hour) as its idle limit. */
    CU_ASSERT_PTR_NULL(get(c, "sequence_batching"));
    cJSON *r = call("GET", "/v2/models/mymodel/config", NULL, 200);
    const cJSON *idle = get(get(r, "sequence_batching"),
                            "max_sequence_idle_microseconds");
    CU_ASSERT(cJSON_IsNumber(idle) && idle->valuedouble == 3600e6);
    CU_ASSERT(is_model_config(r));
    cJSON_Delete(r);
    cJSON *v = call("GET", "/v2/models/pair/versions/1/config", NULL, 200);
    CU_ASSERT(cJSON_Compare(c, v, 1));
    cJSON_Delete(v);
    cJSON_Delete(c);
    c = call("GET", "/v2/models/pair/versions/3/config", NULL, 404);
    CU_ASSERT(cJSON_IsString(get(c, "error")));
    cJSON_Delete(c);
}

/* A body of "data" arrays over the pushed reader's threshold: floats kept
 * as they arrive, never a cJSON node each. nested: [[...], [...]] per row. */
static char *wide_body(const char *name, int rows, int cols, int count,
                       const char *poison, int nested)
{
    api_buf b = {0};
    char head[160];
    snprintf(head, sizeof head, "{\"inputs\":[{\"name\":\"%s\",\"shape\":[%d,"
             "%d],\"datatype\":\"FP32\",\"data\":[", name, rows, cols);
    api_buf_puts(&b, head);
    for (int k = 0; k < count; k++) {
        if (nested && k % cols == 0)
            api_buf_puts(&b, k ? "],[" : "[");
        else if (k)
            api_buf_puts(&b, ",");
        if (poison && k == count / 2)
            api_buf_puts(&b, poison);
        else
            api_buf_float(&b, (float)sin(0.01 * k));
    }
    api_buf_puts(&b, nested ? "]]}]}" : "]}]}");
    return api_buf_finish(&b, NULL);
}

static void test_large_json_inputs(void)
{
    cJSON_Delete(call("POST", "/v1/networks", "{\"name\": \"wide\", \"seed\": "
                      "5, \"nodes\": [{\"name\": \"x\", \"type\": \"Input\", "
                      "\"shape\": 3000}, {\"name\": \"y\", \"type\": "
                      "\"Dense\", \"num_unit\": 2}], \"edges\": [\"x >> y\"]}",
                      201));
    /* The reference: the v1 forward of the same floats. */
    api_buf v1 = {0};
    api_buf_puts(&v1, "{\"inputs\": {\"x\": [[");
    for (int k = 0; k < 6000; k++) {
        api_buf_puts(&v1, k == 3000 ? "], [" : k ? "," : "");
        api_buf_float(&v1, (float)sin(0.01 * k));
    }
    api_buf_puts(&v1, "]]}}");
    char *v1_body = api_buf_finish(&v1, NULL);
    cJSON *ref = call("POST", "/v1/networks/wide/forward", v1_body, 200);
    free(v1_body);
    const cJSON *want = get(get(ref, "outputs"), "y");
    CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(want), 2);

    /* Flat and nested, with the JSON type and without one (as
     * tritonclient sends it). */
    const char *json_type[] = {"Content-Type: application/json", NULL};
    for (int nested = 0; nested < 2; nested++)
        for (int typed = 0; typed < 2; typed++) {
            char *body = wide_body("x", 2, 3000, 6000, NULL, nested);
            raw_reply r;
            raw("POST", "/v2/models/wide/infer", typed ? json_type : NULL,
                body, strlen(body), &r);
            free(body);
            CU_ASSERT_EQUAL(r.status, 200);
            cJSON *doc = cJSON_Parse(r.body);
            const cJSON *out = cJSON_GetArrayItem(get(doc, "outputs"), 0);
            const cJSON *data = get(out, "data");
            CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(data), 4);
            for (int k = 0; k < 4; k++) {
                double got = cJSON_GetArrayItem(data, k)->valuedouble;
                double w = cJSON_GetArrayItem(cJSON_GetArrayItem(want, k / 2),
                                              k % 2)->valuedouble;
                CU_ASSERT(fabs(got - w) <= 1e-5 * (1 + fabs(w)));
            }
            cJSON_Delete(doc);
            raw_free(&r);
        }
    cJSON_Delete(ref);

    /* What is wrong in such an array is said as for a small one. */
    static const struct {
        int count, nested;
        const char *poison, *name, *needle;
    } bad[] = {
        {6000, 0, "1e39", "x", "data must hold finite numbers"},
        {6000, 0, "\"a\"", "x", "data must hold finite numbers"},
        {5999, 0, NULL, "x", "data holds 5999 values; the shape needs 6000"},
        {6001, 0, NULL, "x", "data holds more values than the shape"},
        {5999, 1, NULL, "x", "nested evenly"},
        {6000, 0, NULL, "x\\u0000", "\\u0000"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        char *body = wide_body(bad[k].name, 2, 3000, bad[k].count,
                               bad[k].poison, bad[k].nested);
        raw_reply r;
        raw("POST", "/v2/models/wide/infer", json_type, body, strlen(body),
            &r);
        free(body);
        expect_v2_error(&r, 400, bad[k].needle);
        raw_free(&r);
    }
    cJSON_Delete(call("DELETE", "/v1/networks/wide", NULL, 200));
}

static void test_head(void)
{
    const char *paths[] = {"/v2/health/live", "/v2/health/ready", "/healthz",
                           "/readyz", "/metrics", "/v2/models/pair"};
    for (size_t k = 0; k < sizeof paths / sizeof *paths; k++) {
        raw_reply get_reply, head;
        raw("GET", paths[k], NULL, NULL, 0, &get_reply);
        raw("HEAD", paths[k], NULL, NULL, 0, &head);
        CU_ASSERT_EQUAL(head.status, get_reply.status);
        CU_ASSERT_EQUAL(head.len, 0);
        CU_ASSERT_STRING_EQUAL(head.content_type, get_reply.content_type);
        /* The headers of the GET, its length included (/metrics changes
         * between the two calls, so only that it is announced). */
        if (strcmp(paths[k], "/metrics") != 0) {
            CU_ASSERT_EQUAL(head.content_length, (double)get_reply.len);
        } else {
            CU_ASSERT(head.content_length > 0);
        }
        raw_free(&get_reply);
        raw_free(&head);
    }
    /* On the wire, nothing follows the headers (curl would not tell: it
     * reads no body for HEAD). */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct sockaddr_in at = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)server.port)};
    at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&at, sizeof at), 0);
    const char *ask = "HEAD /v2/health/live HTTP/1.1\r\nHost: x\r\n"
                      "Connection: close\r\n\r\n";
    CU_ASSERT_EQUAL(write(fd, ask, strlen(ask)), (ssize_t)strlen(ask));
    char wire[4096];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof wire - 1 &&
           (n = read(fd, wire + got, sizeof wire - 1 - got)) > 0)
        got += (size_t)n;
    close(fd);
    wire[got] = '\0';
    const char *end = strstr(wire, "\r\n\r\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(end);
    CU_ASSERT_EQUAL(strncmp(wire, "HTTP/1.1 200", 12), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(wire, "Content-Length: 13"));
    CU_ASSERT_EQUAL((size_t)(end + 4 - wire), got);

    raw_reply r;
    raw("HEAD", "/v2/models/nothere", NULL, NULL, 0, &r);
    CU_ASSERT_EQUAL(r.status, 404);
    raw_free(&r);
}

int main(void)
{
    nn_error e;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &e) != NN_OK)
        return 2;
    ref_pair = reference(PAIR);
    ref_mymodel = reference(MYMODEL);
    if (!ref_pair || !ref_mymodel)
        return 2;
    if (it_start(&server, NULL))
        return 2;
    const char *models[2] = {MYMODEL, PAIR};
    for (int k = 0; k < 2; k++) {
        long status;
        cJSON_Delete(it_json(&server, "POST", "/v1/networks", models[k],
                             &status));
        if (status != 201)
            return 2;
    }
    static const tu_test tests[] = {
        {"health and metadata", test_health_and_metadata},
        {"stateless inference", test_stateless_infer},
        {"errors use the protocol's body", test_errors_use_the_protocol_body},
        {"sequences carry state", test_sequences_carry_state},
        {"tritonclient: binary in, binary out", test_binary_in_binary_out},
        {"tritonclient: JSON in, JSON out", test_json_in_json_out},
        {"tritonclient: JSON in, binary out", test_json_in_binary_out},
        {"tritonclient: binary in, JSON out, mixed",
         test_binary_in_json_out_and_mixed},
        {"tritonclient: sequences by integer and string id",
         test_client_sequences},
        {"a raw binary request is the one input's rows",
         test_raw_binary_request},
        {"errors before any handler have the protocol's shape",
         test_errors_before_handlers},
        {"401 and 413 have the protocol's shape", test_auth_and_size_errors},
        {"a refusal waits for a body the client writes whole",
         test_refusals_wait_for_the_body},
        {"bad binary framing is a clear 400", test_bad_framing},
        {"tritonclient: gzip and deflate request bodies and answers",
         test_compressed_requests},
        {"tritonclient: a compressed JSON answer", test_compressed_answers_json},
        {"statistics extension", test_statistics},
        {"model configuration extension", test_config},
        {"HEAD answers as GET without a body", test_head},
        {"large JSON tensors are read as they arrive", test_large_json_inputs},
        {NULL, NULL}};
    int rc = tu_run_suite("kserve", tests);
    if (it_stop(&server) != 0)
        rc = 1;
    nn_graph_free(ref_pair);
    nn_graph_free(ref_mymodel);
    nn_registry_free(reg);
    return rc;
}
