/*
 * test_v1binary.c — the v1 routes in the binary tensor framing, against a
 * started daemon: forward, a session's steps, a streamed run and GET/PUT
 * /params, each sent and answered as bytes and compared with the same
 * request in JSON; and the framing's refusals over HTTP. Answers are
 * decoded here by hand (cJSON for the header, the bytes little-endian),
 * not by the daemon's reader.
 */
#include "api.h"
#include "api_codec.h"
#include "itest.h"
#include "testutil.h"

#include <curl/curl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static it_server server;

#define STEPS 300
/* A run answers 300 steps x 40 floats: more than one piece (32 KiB). */
static const char *NET =
    "{\"name\": \"bin\", \"seed\": 11, \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 3},"
    "{\"name\": \"u\", \"type\": \"Input\", \"shape\": 1},"
    "{\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": 120,"
    " \"spectral_radius\": 0.9},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 40}],"
    "\"edges\": [\"{x, u} >> r\", \"r >> o\"]}";

/* ------------------------------------------------------------ client */

typedef struct reply {
    long status;
    char *body;
    size_t len;
    char content_type[128];
    long header_length;     /* Inference-Header-Content-Length, or -1 */
    int has_length;         /* Content-Length was sent (not chunked) */
} reply;

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    reply *r = arg;
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

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    reply *r = arg;
    size_t len = size * n;
    char value[64] = "";
    header_value(data, len, "Content-Type", r->content_type,
                 sizeof r->content_type);
    header_value(data, len, "Inference-Header-Content-Length", value,
                 sizeof value);
    if (value[0])
        r->header_length = strtol(value, NULL, 10);
    value[0] = '\0';
    header_value(data, len, "Content-Length", value, sizeof value);
    if (value[0])
        r->has_length = 1;
    return len;
}

/* One request with the given header lines (NULL-terminated) and body. */
static void call(const char *method, const char *path,
                 const char *const *lines, const void *body, size_t len,
                 reply *r)
{
    memset(r, 0, sizeof *r);
    r->header_length = -1;
    CURL *c = curl_easy_init();
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    char url[512];
    snprintf(url, sizeof url, "%s%s", server.base, path);
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    for (int k = 0; lines && lines[k]; k++)
        h = curl_slist_append(h, lines[k]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    CU_ASSERT_EQUAL(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!r->body)
        r->body = calloc(1, 1);
    it_log_raw(method, path, r->status, r->content_type, NULL, NULL, NULL,
               r->body, r->len, r->header_length);
}

static void reply_free(reply *r)
{
    free(r->body);
    r->body = NULL;
}

static void expect(const reply *r, long status, const char *method,
                   const char *path)
{
    if (r->status != status)
        fprintf(stderr, "%s %s: %ld, expected %ld: %.300s\n", method, path,
                r->status, status, r->body);
    CU_ASSERT_EQUAL_FATAL(r->status, status);
}

static const char *const JSON_IN[] = {"Content-Type: application/json", NULL};
static const char *const JSON_IN_BIN_OUT[] = {
    "Content-Type: application/json", "Accept: application/octet-stream",
    NULL};

/* JSON in, JSON or binary out. */
static void json_call(const char *method, const char *path, const char *body,
                      int binary_out, long status, reply *r)
{
    call(method, path, binary_out ? JSON_IN_BIN_OUT : JSON_IN, body,
         body ? strlen(body) : 0, r);
    expect(r, status, method, path);
}

/* header then values little-endian, sent framed; binary_out asks for the
 * answer framed too. */
static void framed_call(const char *method, const char *path,
                        const char *header, const float *values, size_t n,
                        int binary_out, long status, reply *r)
{
    size_t hl = strlen(header), len = hl + 4 * n;
    unsigned char *body = malloc(len ? len : 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    memcpy(body, header, hl);
    for (size_t k = 0; k < n; k++) {
        uint32_t bits;
        memcpy(&bits, &values[k], 4);
        for (int b = 0; b < 4; b++)
            body[hl + 4 * k + (size_t)b] = (unsigned char)(bits >> (8 * b));
    }
    char length[64];
    snprintf(length, sizeof length, "Inference-Header-Content-Length: %zu",
             hl);
    const char *lines[] = {"Content-Type: application/octet-stream", length,
                           binary_out ? "Accept: application/octet-stream"
                                      : NULL,
                           NULL};
    call(method, path, lines, body, len, r);
    free(body);
    expect(r, status, method, path);
}

/* ------------------------------------------------------ decoding */

static float get_le(const unsigned char *in)
{
    uint32_t bits = 0;
    for (int k = 0; k < 4; k++)
        bits |= (uint32_t)in[k] << (8 * k);
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* The framed answer's JSON header; checks the framing's headers. */
static cJSON *framed_header(const reply *r)
{
    CU_ASSERT_STRING_EQUAL(r->content_type, "application/octet-stream");
    CU_ASSERT_FATAL(r->header_length > 0 && (size_t)r->header_length <= r->len);
    cJSON *head = cJSON_ParseWithLength(r->body, (size_t)r->header_length);
    CU_ASSERT_PTR_NOT_NULL_FATAL(head);
    return head;
}

/* Every tensor object of the header with its bytes, in the order the
 * objects begin: walks objects depth first, as they are written. Fills
 * at most max (name path, floats, count). */
typedef struct decoded {
    char name[96];
    float *data;
    size_t count;
    cJSON *shape;   /* borrowed from the header */
} decoded;

static void collect(cJSON *node, const char *path, decoded *out, int *n,
                    int max)
{
    for (cJSON *c = node ? node->child : NULL; c; c = c->next) {
        if (!cJSON_IsObject(c))
            continue;
        char here[96];
        snprintf(here, sizeof here, "%s%s%s", path, path[0] ? "." : "",
                 c->string ? c->string : "");
        const cJSON *size = cJSON_GetObjectItem(c, "binary_data_size");
        if (size) {
            CU_ASSERT_FATAL(*n < max);
            snprintf(out[*n].name, sizeof out[*n].name, "%s", here);
            out[*n].count = (size_t)size->valuedouble / 4;
            out[*n].shape = cJSON_GetObjectItem(c, "shape");
            CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(
                                       c, "datatype")), "FP32");
            (*n)++;
        } else {
            collect(c, here, out, n, max);
        }
    }
}

/* Decodes every binary tensor of a framed answer; returns how many.
 * Frees with decoded_free. */
static int decode(const reply *r, cJSON **head, decoded *out, int max)
{
    *head = framed_header(r);
    int n = 0;
    collect(*head, "", out, &n, max);
    size_t at = (size_t)r->header_length;
    for (int k = 0; k < n; k++) {
        size_t numel = 1;
        for (const cJSON *d = out[k].shape ? out[k].shape->child : NULL; d;
             d = d->next)
            numel *= (size_t)d->valuedouble;
        CU_ASSERT_EQUAL(numel, out[k].count);
        CU_ASSERT_FATAL(at + 4 * out[k].count <= r->len);
        out[k].data = malloc(4 * out[k].count + 4);
        CU_ASSERT_PTR_NOT_NULL_FATAL(out[k].data);
        for (size_t e = 0; e < out[k].count; e++)
            out[k].data[e] = get_le((const unsigned char *)r->body + at +
                                    4 * e);
        at += 4 * out[k].count;
    }
    /* Nothing after the last tensor. */
    CU_ASSERT_EQUAL(at, r->len);
    return n;
}

static void decoded_free(decoded *d, int n, cJSON *head)
{
    for (int k = 0; k < n; k++)
        free(d[k].data);
    cJSON_Delete(head);
}

/* The tensor at a.b of a JSON answer, through the codec's reader (which
 * the unit tests hold to strtof). */
static nn_tensor *json_tensor(const reply *r, const char *a, const char *b,
                              const char *c)
{
    CU_ASSERT_STRING_EQUAL(r->content_type, "application/json");
    api_json j = {r->body, r->len, NULL};
    size_t at = api_json_find(&j, 0, a);
    CU_ASSERT_FATAL(at != (size_t)-1);
    at = api_json_find(&j, at, b);
    CU_ASSERT_FATAL(at != (size_t)-1);
    if (c) {
        at = api_json_find(&j, at, c);
        CU_ASSERT_FATAL(at != (size_t)-1);
    }
    api_limits lim = api_default_limits();
    lim.max_tensor_elems = (size_t)1 << 28;
    nn_tensor *t;
    api_error err;
    CU_ASSERT_EQUAL_FATAL(api_json_tensor(&j, at, "reply", &lim, 1, &t, &err),
                          0);
    return t;
}

/* Binary against JSON of the same request: the same daemon and weights,
 * but the two are separate computations, so held to float32 rounding. */
static void assert_close(const float *got, const nn_tensor *want, size_t n,
                         const char *what)
{
    CU_ASSERT_EQUAL_FATAL(nn_tensor_numel(want), n);
    size_t bad = 0;
    for (size_t k = 0; k < n; k++)
        if (!it_float_close(got[k], want->data[k]) && bad++ < 3)
            fprintf(stderr, "%s[%zu]: %.9g, JSON %.9g\n", what, k, got[k],
                    want->data[k]);
    CU_ASSERT_EQUAL(bad, 0);
}

static float input_at(int k, int f)
{
    return 0.7f * sinf(0.29f * (float)k + 1.3f * (float)f);
}

/* JSON text of an input of steps x width, batch 1: [[[...], ...]] for a
 * run, [[...]] for a step (steps < 0: step |steps|-1 alone). */
static void json_input(api_buf *b, int from, int steps, int width, int run,
                       int feature0)
{
    api_buf_puts(b, run ? "[[" : "[");
    for (int k = from; k < from + steps; k++) {
        api_buf_puts(b, k > from ? ",[" : "[");
        for (int f = 0; f < width; f++) {
            if (f)
                api_buf_puts(b, ",");
            api_buf_float(b, input_at(k, f + feature0));
        }
        api_buf_puts(b, "]");
    }
    api_buf_puts(b, run ? "]]" : "]");
}

/* ------------------------------------------------------------- tests */

static void create_network(void)
{
    reply r;
    json_call("POST", "/v1/networks", NET, 0, 201, &r);
    reply_free(&r);
}

/* A stateless forward: binary in, binary out, against JSON. */
static void test_forward(void)
{
    api_buf b = {0};
    api_buf_puts(&b, "{\"inputs\": {\"x\": ");
    json_input(&b, 5, 1, 3, 0, 0);
    api_buf_puts(&b, ", \"u\": ");
    json_input(&b, 5, 1, 1, 0, 3);
    api_buf_puts(&b, "}}");
    char *body = api_buf_finish(&b, NULL);
    reply json;
    json_call("POST", "/v1/networks/bin/forward", body, 0, 200, &json);
    nn_tensor *want = json_tensor(&json, "outputs", "o", NULL);
    free(body);

    /* u before x in the header, so u's bytes come first. */
    const float values[4] = {input_at(5, 3), input_at(5, 0), input_at(5, 1),
                             input_at(5, 2)};
    reply bin;
    framed_call("POST", "/v1/networks/bin/forward",
                "{\"inputs\": {\"u\": {\"shape\": [1, 1], \"binary_data_size\":"
                " 4}, \"x\": {\"shape\": [1, 3], \"datatype\": \"FP32\", "
                "\"binary_data_size\": 12}}}", values, 4, 1, 200, &bin);
    cJSON *head;
    decoded d[4];
    int n = decode(&bin, &head, d, 4);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_STRING_EQUAL(d[0].name, "outputs.o");
    assert_close(d[0].data, want, d[0].count, "forward o");
    decoded_free(d, n, head);

    /* Binary in, JSON out: the same numbers as text. */
    reply text;
    framed_call("POST", "/v1/networks/bin/forward",
                "{\"inputs\": {\"u\": {\"shape\": [1, 1], \"binary_data_size\":"
                " 4}, \"x\": {\"shape\": [1, 3], \"binary_data_size\": 12}}}",
                values, 4, 0, 200, &text);
    nn_tensor *again = json_tensor(&text, "outputs", "o", NULL);
    assert_close(again->data, want, nn_tensor_numel(want), "forward text");
    nn_tensor_free(again);
    nn_tensor_free(want);
    reply_free(&text);
    reply_free(&bin);
    reply_free(&json);
}

static void new_session(const char *id)
{
    char body[64];
    snprintf(body, sizeof body, "{\"id\": \"%s\"}", id);
    reply r;
    json_call("POST", "/v1/networks/bin/sessions", body, 0, 201, &r);
    reply_free(&r);
}

/* Steps of two sessions, one in JSON and one framed, stay together. */
static void test_session_steps(void)
{
    new_session("sj");
    new_session("sb");
    for (int k = 0; k < 5; k++) {
        api_buf b = {0};
        api_buf_puts(&b, "{\"inputs\": {\"x\": ");
        json_input(&b, k, 1, 3, 0, 0);
        api_buf_puts(&b, ", \"u\": ");
        json_input(&b, k, 1, 1, 0, 3);
        api_buf_puts(&b, "}}");
        char *body = api_buf_finish(&b, NULL);
        reply json;
        json_call("POST", "/v1/networks/bin/sessions/sj/forward", body, 0,
                  200, &json);
        free(body);
        nn_tensor *want = json_tensor(&json, "outputs", "o", NULL);
        const float values[4] = {input_at(k, 0), input_at(k, 1),
                                 input_at(k, 2), input_at(k, 3)};
        reply bin;
        framed_call("POST", "/v1/networks/bin/sessions/sb/forward",
                    "{\"inputs\": {\"x\": {\"shape\": [1, 3], "
                    "\"binary_data_size\": 12}, \"u\": {\"shape\": [1, 1], "
                    "\"binary_data_size\": 4}}}", values, 4, 1, 200, &bin);
        cJSON *head;
        decoded d[2];
        int n = decode(&bin, &head, d, 2);
        CU_ASSERT_EQUAL_FATAL(n, 1);
        assert_close(d[0].data, want, d[0].count, "step o");
        CU_ASSERT_EQUAL(cJSON_GetObjectItem(head, "step")->valueint, k + 1);
        decoded_free(d, n, head);
        nn_tensor_free(want);
        reply_free(&bin);
        reply_free(&json);
    }
}

/* A run of STEPS steps, framed both ways: streamed, its header first with
 * every size, so with a Content-Length (not chunked), equal to the JSON
 * run's outputs. */
static void test_run(void)
{
    new_session("rj");
    new_session("rb");
    api_buf b = {0};
    api_buf_puts(&b, "{\"inputs\": {\"x\": ");
    json_input(&b, 0, STEPS, 3, 1, 0);
    api_buf_puts(&b, ", \"u\": ");
    json_input(&b, 0, STEPS, 1, 1, 3);
    api_buf_puts(&b, "}}");
    char *body = api_buf_finish(&b, NULL);
    reply json;
    json_call("POST", "/v1/networks/bin/sessions/rj/run", body, 0, 200, &json);
    free(body);
    nn_tensor *want_o = json_tensor(&json, "outputs", "o", NULL);

    float *values = malloc(sizeof(float) * STEPS * 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(values);
    for (int k = 0; k < STEPS; k++) {
        for (int f = 0; f < 3; f++)
            values[k * 3 + f] = input_at(k, f);
        values[STEPS * 3 + k] = input_at(k, 3);
    }
    char header[256];
    snprintf(header, sizeof header,
             "{\"inputs\": {\"x\": {\"shape\": [1, %d, 3], "
             "\"binary_data_size\": %d}, \"u\": {\"shape\": [1, %d, 1], "
             "\"binary_data_size\": %d}}}", STEPS, STEPS * 12, STEPS,
             STEPS * 4);
    reply bin;
    framed_call("POST", "/v1/networks/bin/sessions/rb/run", header, values,
                STEPS * 4, 1, 200, &bin);
    free(values);
    CU_ASSERT(bin.len > 32 * 1024);
    CU_ASSERT(bin.has_length); /* streamed, its length known */
    cJSON *head;
    decoded d[2];
    int n = decode(&bin, &head, d, 2);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_STRING_EQUAL(d[0].name, "outputs.o");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(d[0].shape), 3);
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(d[0].shape, 1)->valueint, STEPS);
    assert_close(d[0].data, want_o, d[0].count, "run o");
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(head, "step")->valueint, STEPS);
    decoded_free(d, n, head);
    nn_tensor_free(want_o);
    reply_free(&bin);
    reply_free(&json);
}

/* GET /params framed holds the JSON export's floats bit for bit (the same
 * weights of the same daemon, no arithmetic between); PUT back framed into
 * a network of another seed, its JSON export is the first's, byte for
 * byte. */
static void test_params(void)
{
    reply json, bin;
    json_call("GET", "/v1/networks/bin/params", NULL, 0, 200, &json);
    json_call("GET", "/v1/networks/bin/params", NULL, 1, 200, &bin);
    cJSON *head;
    decoded d[8];
    int n = decode(&bin, &head, d, 8);
    CU_ASSERT(n >= 4); /* r: W_in, W (and bias?), o: W, b */
    size_t total = 0;
    for (int k = 0; k < n; k++) {
        char node[96];
        snprintf(node, sizeof node, "%s", d[k].name);
        CU_ASSERT_EQUAL_FATAL(strncmp(node, "nodes.", 6), 0);
        char *weight = strchr(node + 6, '.');
        CU_ASSERT_PTR_NOT_NULL_FATAL(weight);
        *weight++ = '\0';
        nn_tensor *want = json_tensor(&json, "nodes", node + 6, weight);
        CU_ASSERT_EQUAL_FATAL(nn_tensor_numel(want), d[k].count);
        CU_ASSERT_EQUAL(memcmp(want->data, d[k].data, 4 * d[k].count), 0);
        total += d[k].count;
        nn_tensor_free(want);
    }
    CU_ASSERT(total > 120 * 3);
    decoded_free(d, n, head);

    /* Into "bim", built with another seed. */
    char other[1024];
    snprintf(other, sizeof other, "%s", NET);
    memcpy(strstr(other, "\"bin\""), "\"bim\"", 5);
    memcpy(strstr(other, "\"seed\": 11"), "\"seed\": 12", 10);
    reply c, before;
    json_call("POST", "/v1/networks", other, 0, 201, &c);
    json_call("GET", "/v1/networks/bim/params", NULL, 0, 200, &before);
    CU_ASSERT(strcmp(before.body, json.body) != 0);
    char length[64];
    snprintf(length, sizeof length, "Inference-Header-Content-Length: %ld",
             bin.header_length);
    const char *lines[] = {"Content-Type: application/octet-stream", length,
                           NULL};
    reply put, after;
    call("PUT", "/v1/networks/bim/params", lines, bin.body, bin.len, &put);
    expect(&put, 200, "PUT", "/v1/networks/bim/params");
    json_call("GET", "/v1/networks/bim/params", NULL, 0, 200, &after);
    CU_ASSERT_EQUAL(after.len, json.len);
    CU_ASSERT_STRING_EQUAL(after.body, json.body);

    /* A framed import whose bytes are cut short changes nothing. */
    reply_free(&put);
    call("PUT", "/v1/networks/bim/params", lines, bin.body, bin.len - 4,
         &put);
    expect(&put, 400, "PUT", "/v1/networks/bim/params");
    CU_ASSERT_PTR_NOT_NULL(strstr(put.body, "truncated"));
    reply same;
    json_call("GET", "/v1/networks/bim/params", NULL, 0, 200, &same);
    CU_ASSERT_STRING_EQUAL(same.body, json.body);
    reply_free(&same);
    reply_free(&put);
    reply_free(&after);
    reply_free(&before);
    reply_free(&c);
    reply_free(&bin);
    reply_free(&json);
}

/* A sparse W has no binary member in its form: in the framing it stays
 * text in the header (format, indices and values), beside binary dense
 * weights, and the framed export still imports back exactly. */
static void test_sparse_params(void)
{
    const char *def =
        "{\"name\": \"%s\", \"seed\": %d, \"nodes\": ["
        "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 2},"
        "{\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": 60,"
        " \"sparse\": \"true\", \"spectral_radius\": 0.9}],"
        "\"edges\": [\"x >> r\"]}";
    char a[512], b[512];
    snprintf(a, sizeof a, def, "sp1", 3);
    snprintf(b, sizeof b, def, "sp2", 4);
    reply ca, cb, json, bin, before, put, after;
    json_call("POST", "/v1/networks", a, 0, 201, &ca);
    json_call("POST", "/v1/networks", b, 0, 201, &cb);
    json_call("GET", "/v1/networks/sp1/params", NULL, 0, 200, &json);
    json_call("GET", "/v1/networks/sp1/params", NULL, 1, 200, &bin);
    cJSON *head = framed_header(&bin);
    const cJSON *w = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(head, "nodes"), "r"), "W");
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(w,
                                                                    "format")),
                           "csc");
    CU_ASSERT(cJSON_IsArray(cJSON_GetObjectItem(w, "indices")));
    CU_ASSERT(cJSON_GetArraySize(cJSON_GetObjectItem(w, "data")) > 0);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(w, "data")),
                    cJSON_GetArraySize(cJSON_GetObjectItem(w, "indices")));
    const cJSON *win = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(head, "nodes"), "r"), "Win");
    CU_ASSERT(cJSON_IsNumber(cJSON_GetObjectItem(win, "binary_data_size")));
    cJSON_Delete(head);

    json_call("GET", "/v1/networks/sp2/params", NULL, 0, 200, &before);
    CU_ASSERT(strcmp(before.body, json.body) != 0);
    char length[64];
    snprintf(length, sizeof length, "Inference-Header-Content-Length: %ld",
             bin.header_length);
    const char *lines[] = {"Content-Type: application/octet-stream", length,
                           NULL};
    call("PUT", "/v1/networks/sp2/params", lines, bin.body, bin.len, &put);
    expect(&put, 200, "PUT", "/v1/networks/sp2/params");
    json_call("GET", "/v1/networks/sp2/params", NULL, 0, 200, &after);
    CU_ASSERT_STRING_EQUAL(after.body, json.body);
    reply_free(&after);
    reply_free(&put);
    reply_free(&before);
    reply_free(&bin);
    reply_free(&json);
    reply_free(&cb);
    reply_free(&ca);
}

/* The framing's refusals over HTTP, each a 4xx with a JSON body. */
static void test_refusals(void)
{
    const char *path = "/v1/networks/bin/forward";
    const char *header = "{\"inputs\": {\"x\": {\"shape\": [1, 3], "
                         "\"binary_data_size\": 12}, \"u\": [[1]]}}";
    const float v[3] = {1, 2, 3};
    reply r;
    /* The header's length past the body. */
    const char *past[] = {"Content-Type: application/octet-stream",
                          "Inference-Header-Content-Length: 9999", NULL};
    call("POST", path, past, header, strlen(header), &r);
    expect(&r, 400, "POST", path);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "the body has only"));
    CU_ASSERT_STRING_EQUAL(r.content_type, "application/json");
    reply_free(&r);
    /* Truncated bytes, and a size that is not the shape's. */
    framed_call("POST", path, header, v, 2, 0, 400, &r);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "truncated"));
    reply_free(&r);
    framed_call("POST", path,
                "{\"inputs\": {\"x\": {\"shape\": [1, 2], "
                "\"binary_data_size\": 12}, \"u\": [[1]]}}", v, 3, 0, 400, &r);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "its shape needs 8"));
    reply_free(&r);
    /* Not float32. */
    framed_call("POST", path,
                "{\"inputs\": {\"x\": {\"shape\": [1, 3], \"datatype\": "
                "\"INT64\", \"binary_data_size\": 12}, \"u\": [[1]]}}", v, 3,
                0, 400, &r);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "FP32"));
    reply_free(&r);
    /* Bytes without the header: the JSON check says what is missing. */
    const char *no_header[] = {"Content-Type: application/json", NULL};
    char body[256];
    snprintf(body, sizeof body, "%sabcd", header);
    call("POST", path, no_header, body, strlen(body), &r);
    expect(&r, 400, "POST", path);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "Inference-Header-Content-Length"));
    reply_free(&r);
    /* octet-stream without the header is not a body v1 reads. */
    const char *octets[] = {"Content-Type: application/octet-stream", NULL};
    call("POST", path, octets, header, strlen(header), &r);
    expect(&r, 415, "POST", path);
    reply_free(&r);
    /* A route that takes no tensors refuses the framing. */
    framed_call("POST", "/v1/networks", "{\"nodes\": []}", NULL, 0, 0, 400,
                &r);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "does not take binary"));
    reply_free(&r);
}

/* A fit takes its sequences in the framing too: the same ridge fit sent
 * as text and framed (inputs framed, targets text) trains the same
 * weights, bit for bit; sizes that do not add up are refused by name. */
static void test_fit(void)
{
    const char *def =
        "{\"name\": \"%s\", \"seed\": 2, \"nodes\": ["
        "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 2},"
        "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 1}],"
        "\"edges\": [\"x >> o\"]}";
    const char *names[] = {"fit_text", "fit_framed"};
    reply r;
    for (int i = 0; i < 2; i++) {
        char body[512];
        snprintf(body, sizeof body, def, names[i]);
        json_call("POST", "/v1/networks", body, 0, 201, &r);
        reply_free(&r);
    }
    const float x[8] = {1, 0, 0, 1, 1, 1, 2, -1};
    json_call("POST", "/v1/networks/fit_text/fit",
              "{\"method\": \"ridge\", \"wait\": true, \"inputs\": {\"x\": "
              "[[[1, 0], [0, 1], [1, 1], [2, -1]]]}, \"targets\": {\"o\": "
              "[[[1.5], [2.5], [3.5], [0.5]]]}}", 0, 200, &r);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"rows\":4"));
    reply_free(&r);
    const char *header = "{\"method\": \"ridge\", \"wait\": true, \"inputs\": "
                         "{\"x\": {\"shape\": [1, 4, 2], \"binary_data_size\":"
                         " 32}}, \"targets\": {\"o\": [[[1.5], [2.5], [3.5], "
                         "[0.5]]]}}";
    framed_call("POST", "/v1/networks/fit_framed/fit", header, x, 8, 0, 200,
                &r);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"rows\":4"));
    reply_free(&r);
    reply a, b;
    json_call("GET", "/v1/networks/fit_text/params", NULL, 0, 200, &a);
    json_call("GET", "/v1/networks/fit_framed/params", NULL, 0, 200, &b);
    CU_ASSERT_EQUAL(a.len, b.len);
    CU_ASSERT(a.len == b.len && memcmp(a.body, b.body, a.len) == 0);
    reply_free(&a);
    reply_free(&b);
    /* Truncated: the header promises 32 bytes, 16 follow. */
    framed_call("POST", "/v1/networks/fit_framed/fit", header, x, 4, 0, 400,
                &r);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "truncated"));
    reply_free(&r);
}

/* Accept picks the answer's form; JSON unless octet-stream is preferred. */
static void test_accept(void)
{
    const char *body = "{\"inputs\": {\"x\": [[1, 2, 3]], \"u\": [[1]]}}";
    static const struct {
        const char *accept;
        int binary;
    } cases[] = {
        {"Accept: application/octet-stream", 1},
        {"Accept: application/json;q=0.5, application/octet-stream", 1},
        {"Accept: application/octet-stream;q=0", 0},
        {"Accept: application/json, application/octet-stream;q=0.9", 0},
        {"Accept: */*", 0},
        {"Accept: application/json", 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const char *lines[] = {"Content-Type: application/json",
                               cases[k].accept, NULL};
        reply r;
        call("POST", "/v1/networks/bin/forward", lines, body, strlen(body),
             &r);
        expect(&r, 200, "POST", "forward");
        CU_ASSERT_STRING_EQUAL(r.content_type, cases[k].binary
                                                   ? "application/octet-stream"
                                                   : "application/json");
        CU_ASSERT_EQUAL(r.header_length > 0, cases[k].binary);
        reply_free(&r);
    }
    /* Errors stay JSON whatever was accepted. */
    const char *lines[] = {"Content-Type: application/json",
                           "Accept: application/octet-stream", NULL};
    reply r;
    call("POST", "/v1/networks/bin/forward", lines, "{\"inputs\": {}}", 14,
         &r);
    expect(&r, 400, "POST", "forward");
    CU_ASSERT_STRING_EQUAL(r.content_type, "application/json");
    CU_ASSERT_EQUAL(r.header_length, -1);
    reply_free(&r);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (it_start(&server, NULL))
        return 2;
    static const tu_test tests[] = {
        {"a fit takes its sequences framed", test_fit},
        {"the network", create_network},
        {"forward, framed both ways", test_forward},
        {"session steps, framed", test_session_steps},
        {"a streamed framed run", test_run},
        {"params framed, bit for bit", test_params},
        {"a sparse weight stays text in the framing", test_sparse_params},
        {"framing refusals", test_refusals},
        {"Accept picks the answer", test_accept},
        {NULL, NULL}};
    int rc = tu_run_suite("v1binary", tests);
    int exit_status = it_stop(&server);
    if (exit_status != 0) {
        fprintf(stderr, "nerved exited with %d after SIGTERM\n", exit_status);
        rc = 1;
    }
    curl_global_cleanup();
    return rc;
}
