/*
 * test_stream.c — answers too large for one piece are streamed: a long
 * run's outputs equal the same steps posted one by one, a large forward
 * equals the engine run in this process, GET and PUT /params move weights
 * bit for bit, and every error of such a request comes before its first
 * byte as a plain 4xx. A long batch-1 run goes out as it steps: the same
 * outputs, a memory that does not grow with the run, and a step failing
 * after the first byte reported at the document's end.
 */
#include "api.h"
#include "api_codec.h"
#include "itest.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static it_server server;
static nn_registry *reg;

/* Larger than what the daemon sends in one piece (32 KiB). */
static const char *RES_NET =
    "{\"name\": \"res\", \"seed\": 5, \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 3},"
    "{\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": 120,"
    " \"spectral_radius\": 0.9},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 4}],"
    "\"edges\": [\"x >> r >> o\"]}";

#define STEPS 400
#define FEATURES 3

static float input_at(int b, int k, int f)
{
    return 0.8f * sinf(0.37f * (float)k + 1.1f * (float)f + 2.0f * (float)b);
}

static it_response post(const char *method, const char *path,
                        const char *body, long expect)
{
    it_response r;
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL_FATAL(it_request(&server, method, path, body ?
                                     "application/json" : NULL, body,
                                     body ? strlen(body) : 0, &r), 0);
    if (r.status != expect)
        fprintf(stderr, "%s %s: %ld, expected %ld: %.300s\n", method, path,
                r.status, expect, r.body);
    CU_ASSERT_EQUAL(r.status, expect);
    return r;
}

/* The tensor at member path a.b of the reply, read by the codec's own
 * reader (which the unit tests hold to strtof). */
static nn_tensor *member_tensor(const it_response *r, const char *a,
                                const char *b)
{
    api_json j = {r->body, r->len, NULL};
    size_t at = api_json_find(&j, 0, a);
    CU_ASSERT_FATAL(at != (size_t)-1);
    at = api_json_find(&j, at, b);
    CU_ASSERT_FATAL(at != (size_t)-1);
    api_limits lim = api_default_limits();
    lim.max_tensor_elems = (size_t)1 << 28;
    nn_tensor *t;
    api_error err;
    CU_ASSERT_EQUAL_FATAL(api_json_tensor(&j, at, "reply", &lim, 0, &t, &err),
                          0);
    return t;
}

static char *session(const char *body)
{
    it_response r = post("POST", "/v1/networks/res/sessions", body, 201);
    cJSON *j = cJSON_Parse(r.body);
    char *id = strdup(cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")));
    cJSON_Delete(j);
    it_response_free(&r);
    return id;
}

static void test_long_run_equals_steps(void)
{
    it_response c = post("POST", "/v1/networks", RES_NET, 201);
    it_response_free(&c);
    char *whole_id = session("{\"batch\": 2}");
    char *step_id = session("{\"batch\": 2}");
    api_buf b = {0};
    api_buf_puts(&b, "{\"inputs\": {\"x\": [");
    for (int s = 0; s < 2; s++) {
        api_buf_puts(&b, s ? ",[" : "[");
        for (int k = 0; k < STEPS; k++) {
            api_buf_puts(&b, k ? ",[" : "[");
            for (int f = 0; f < FEATURES; f++) {
                if (f)
                    api_buf_puts(&b, ",");
                api_buf_float(&b, input_at(s, k, f));
            }
            api_buf_puts(&b, "]");
        }
        api_buf_puts(&b, "]");
    }
    api_buf_puts(&b, "]}}");
    char *body = api_buf_finish(&b, NULL);
    char path[160];
    snprintf(path, sizeof path, "/v1/networks/res/sessions/%s/run", whole_id);
    it_response run = post("POST", path, body, 200);
    free(body);
    /* 2 x 400 x 4 outputs: far past one piece. */
    CU_ASSERT(run.len > 32 * 1024);
    cJSON *parsed = cJSON_Parse(run.body); /* valid JSON, whole */
    CU_ASSERT_PTR_NOT_NULL_FATAL(parsed);
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(parsed, "step")->valueint, STEPS);
    cJSON_Delete(parsed);
    nn_tensor *seq = member_tensor(&run, "outputs", "o");
    CU_ASSERT_EQUAL_FATAL(seq->shape.ndim, 3);
    CU_ASSERT_EQUAL(seq->shape.dims[0], 2);
    CU_ASSERT_EQUAL(seq->shape.dims[1], STEPS);
    CU_ASSERT_EQUAL(seq->shape.dims[2], 4);
    snprintf(path, sizeof path, "/v1/networks/res/sessions/%s/forward",
             step_id);
    int off = 0;
    for (int k = 0; k < STEPS; k++) {
        char one[256];
        int n = snprintf(one, sizeof one, "{\"inputs\": {\"x\": [");
        for (int s = 0; s < 2; s++)
            n += snprintf(one + n, sizeof one - (size_t)n, "%s[%.9g,%.9g,%.9g]",
                          s ? "," : "", input_at(s, k, 0), input_at(s, k, 1),
                          input_at(s, k, 2));
        snprintf(one + n, sizeof one - (size_t)n, "]}}");
        it_response r = post("POST", path, one, 200);
        nn_tensor *o = member_tensor(&r, "outputs", "o");
        for (int s = 0; s < 2; s++)
            for (int f = 0; f < 4; f++) {
                float want = o->data[s * 4 + f];
                float got = seq->data[((size_t)s * STEPS + (size_t)k) * 4 +
                                      (size_t)f];
                if (fabsf(got - want) > 1e-5f + 1e-5f * fabsf(want))
                    off++;
            }
        nn_tensor_free(o);
        it_response_free(&r);
    }
    CU_ASSERT_EQUAL(off, 0);
    nn_tensor_free(seq);
    it_response_free(&run);
    free(whole_id);
    free(step_id);
}

/* A stateless forward of 3000 rows against the engine in this process. */
static void test_large_forward(void)
{
    enum { ROWS = 3000 };
    api_buf b = {0};
    api_buf_puts(&b, "{\"inputs\": {\"x\": [");
    for (int k = 0; k < ROWS; k++) {
        api_buf_puts(&b, k ? ",[" : "[");
        for (int f = 0; f < FEATURES; f++) {
            if (f)
                api_buf_puts(&b, ",");
            api_buf_float(&b, input_at(0, k, f));
        }
        api_buf_puts(&b, "]");
    }
    api_buf_puts(&b, "]}}");
    char *body = api_buf_finish(&b, NULL);
    it_response r = post("POST", "/v1/networks/res/forward", body, 200);
    free(body);
    CU_ASSERT(r.len > 32 * 1024);
    nn_tensor *o = member_tensor(&r, "outputs", "o");
    CU_ASSERT_EQUAL(o->shape.dims[0], ROWS);

    cJSON *def = cJSON_Parse(RES_NET);
    api_limits lim = api_default_limits();
    api_error err;
    nn_graph *g = api_graph_from_json(def, reg, &lim, &err);
    cJSON_Delete(def);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    nn_error e;
    nn_session *s = nn_session_new(g, ROWS, nn_graph_seed(g), &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    nn_tensor *in = nn_session_input(s, "x");
    for (int k = 0; k < ROWS; k++)
        for (int f = 0; f < FEATURES; f++)
            in->data[k * FEATURES + f] = input_at(0, k, f);
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &e), NN_OK);
    const nn_tensor *want = nn_session_output(s, "o");
    int off = 0;
    for (size_t k = 0; k < nn_tensor_numel(want); k++)
        if (fabsf(o->data[k] - want->data[k]) >
            1e-5f + 1e-5f * fabsf(want->data[k]))
            off++;
    CU_ASSERT_EQUAL(off, 0);
    nn_session_free(s);
    nn_graph_free(g);
    nn_tensor_free(o);
    it_response_free(&r);
}

/* Weights exported from one network and imported into another built with
 * a different seed come back out as the same text: bit for bit, since the
 * text is the shortest that reads back to each float. */
static void test_params_bit_for_bit(void)
{
    char other[1024];
    snprintf(other, sizeof other, "%s", RES_NET);
    char *name = strstr(other, "\"res\"");
    memcpy(name, "\"rez\"", 5);
    char *seed = strstr(other, "\"seed\": 5");
    seed[8] = '9';
    it_response c = post("POST", "/v1/networks", other, 201);
    it_response_free(&c);
    it_response a = post("GET", "/v1/networks/res/params", NULL, 200);
    CU_ASSERT(a.len > 32 * 1024); /* streamed */
    it_response before = post("GET", "/v1/networks/rez/params", NULL, 200);
    CU_ASSERT(strcmp(a.body, before.body) != 0);
    it_response put = post("PUT", "/v1/networks/rez/params", a.body, 200);
    it_response after = post("GET", "/v1/networks/rez/params", NULL, 200);
    CU_ASSERT_EQUAL(a.len, after.len);
    CU_ASSERT_STRING_EQUAL(a.body, after.body);
    /* And as floats: the reservoir's W through the reader. */
    api_json ja = {a.body, a.len, NULL}, jb = {after.body, after.len, NULL};
    size_t pa = api_json_find(&ja, api_json_find(&ja, api_json_find(&ja, 0,
                                                                    "nodes"),
                                                 "r"), "W");
    size_t pb = api_json_find(&jb, api_json_find(&jb, api_json_find(&jb, 0,
                                                                    "nodes"),
                                                 "r"), "W");
    api_limits lim = api_default_limits();
    nn_tensor *wa, *wb;
    api_error err;
    CU_ASSERT_EQUAL_FATAL(api_json_tensor(&ja, pa, "a", &lim, 1, &wa, &err), 0);
    CU_ASSERT_EQUAL_FATAL(api_json_tensor(&jb, pb, "b", &lim, 1, &wb, &err), 0);
    CU_ASSERT(nn_tensor_numel(wa) >= 120 * 120 / 10);
    CU_ASSERT_EQUAL(memcmp(wa->data, wb->data,
                           nn_tensor_numel(wa) * sizeof(float)), 0);
    nn_tensor_free(wa);
    nn_tensor_free(wb);
    /* A refused import changes nothing. */
    it_response bad = post("PUT", "/v1/networks/rez/params",
                           "{\"nodes\": {\"o\": {\"b\": [1, 2, 3, 4]}, "
                           "\"r\": {\"W\": [1]}}}", 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(bad.body, "nodes.r.W"));
    it_response same = post("GET", "/v1/networks/rez/params", NULL, 200);
    CU_ASSERT_STRING_EQUAL(same.body, a.body);
    it_response_free(&a);
    it_response_free(&before);
    it_response_free(&put);
    it_response_free(&after);
    it_response_free(&bad);
    it_response_free(&same);
}

/* Everything that can go wrong with a run is known before its answer
 * starts: plain 4xx bodies, and the session not advanced. */
static void test_errors_before_the_first_byte(void)
{
    char *id = session("{\"batch\": 1}");
    char path[160];
    snprintf(path, sizeof path, "/v1/networks/res/sessions/%s/run", id);
    struct {
        const char *body;
        long status;
        const char *needle;
    } cases[] = {
        {"{\"inputs\": {\"x\": [[[1, 2, 3], [4, 5]]]}}", 400, "ragged"},
        {"{\"inputs\": {\"x\": [[[1, 2, 3], [4, 5, \"6\"]]]}}", 400,
         "inputs.x[0][1][2]"},
        {"{\"inputs\": {\"x\": [[[1, 2, 3]]]}, \"train\": 2}", 400, "train"},
        {"{\"inputs\": {\"x\": [[[1, 2, 1e39]]]}}", 400, "finite"},
        {"{\"inputs\": {\"x\": [[[1, 2, 3]]]}", 400, "malformed JSON at byte"},
        {"{\"inputs\": {\"x\": [[[1, 2, 3]]]}} x", 400,
         "unexpected text after the JSON document at byte 33"},
        {"{\"inputs\": {\"y\": [[[1, 2, 3]]]}}", 400, "inputs.y"},
        {"{\"inputs\": {\"x\": [[[1, 2]]]}}", 400, "shape"},
        {"{\"inputs\": {\"x\": [[[1, 2, 3]]]}, \"forced\": {\"zz\": []}}", 400,
         "forced.zz"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        it_response r = post("POST", path, cases[k].body, cases[k].status);
        if (!strstr(r.body, cases[k].needle))
            fprintf(stderr, "%s -> %s\n", cases[k].body, r.body);
        CU_ASSERT_PTR_NOT_NULL(strstr(r.body, cases[k].needle));
        cJSON *j = cJSON_Parse(r.body);
        CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItem(j, "error"));
        cJSON_Delete(j);
        it_response_free(&r);
    }
    snprintf(path, sizeof path, "/v1/networks/res/sessions/%s", id);
    it_response r = post("GET", path, NULL, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"steps\":0"));
    it_response_free(&r);
    free(id);
}

/* Clients that leave in the middle of a streamed answer: the daemon
 * drops each stream (under the sanitizer and valgrind runs, without a
 * leak) and goes on answering. */
static void test_clients_leaving_mid_stream(void)
{
    for (int k = 0; k < 8; k++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        CU_ASSERT_FATAL(fd >= 0);
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)server.port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
        const char *get = "GET /v1/networks/res/params HTTP/1.1\r\n"
                          "Host: x\r\n\r\n";
        CU_ASSERT_EQUAL(write(fd, get, strlen(get)), (ssize_t)strlen(get));
        char buf[4096];
        ssize_t n = read(fd, buf, k % 2 ? sizeof buf : 16);
        CU_ASSERT(n > 0);
        if (n > 12)
            CU_ASSERT_EQUAL(memcmp(buf, "HTTP/1.1 200", 12), 0);
        close(fd);
    }
    it_response r = post("GET", "/v1/networks/res/params", NULL, 200);
    cJSON *j = cJSON_Parse(r.body);
    CU_ASSERT_PTR_NOT_NULL(j);
    cJSON_Delete(j);
    it_response_free(&r);
}

/* ------------------------------------------------ runs streamed live */

/* Past the daemon's window of 256 Ki floats: 2200 steps of r's 120. */
#define LIVE_STEPS 2200

/* {"inputs": {"x": [[...steps from `from`...]]}, "outputs": ["r", "o"]}
 * for one batch row. */
static char *run_body(int from, int steps)
{
    api_buf b = {0};
    api_buf_puts(&b, "{\"inputs\": {\"x\": [[");
    for (int k = from; k < from + steps; k++) {
        api_buf_puts(&b, k > from ? ",[" : "[");
        for (int f = 0; f < FEATURES; f++) {
            if (f)
                api_buf_puts(&b, ",");
            api_buf_float(&b, input_at(0, k, f));
        }
        api_buf_puts(&b, "]");
    }
    api_buf_puts(&b, "]]}, \"outputs\": [\"r\", \"o\"]}");
    return api_buf_finish(&b, NULL);
}

static int close_all(const float *got, const float *want, size_t n)
{
    size_t off = 0;
    for (size_t k = 0; k < n; k++)
        off += !it_float_close(got[k], want[k]);
    return off == 0;
}

/* A batch-1 run long enough to stream (its first output goes out step by
 * step, the second is held) equals the same steps run in short pieces,
 * which are held whole; in JSON and in the binary framing alike. */
static void test_long_run_streams(void)
{
    char *live_id = session("{\"batch\": 1}");
    char *piece_id = session("{\"batch\": 1}");
    char *bin_id = session("{\"batch\": 1}");
    char path[160];
    char *body = run_body(0, LIVE_STEPS);
    snprintf(path, sizeof path, "/v1/networks/res/sessions/%s/run", live_id);
    it_response run = post("POST", path, body, 200);
    cJSON *parsed = cJSON_Parse(run.body);
    CU_ASSERT_PTR_NOT_NULL_FATAL(parsed);
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(parsed, "step")->valueint, LIVE_STEPS);
    CU_ASSERT_PTR_NULL(cJSON_GetObjectItem(parsed, "error"));
    cJSON_Delete(parsed);
    nn_tensor *r = member_tensor(&run, "outputs", "r");
    nn_tensor *o = member_tensor(&run, "outputs", "o");
    CU_ASSERT_EQUAL_FATAL(r->shape.ndim, 3);
    CU_ASSERT_EQUAL(r->shape.dims[0], 1);
    CU_ASSERT_EQUAL_FATAL(r->shape.dims[1], LIVE_STEPS);
    CU_ASSERT_EQUAL_FATAL(r->shape.dims[2], 120);
    CU_ASSERT_EQUAL_FATAL(o->shape.dims[1], LIVE_STEPS);
    CU_ASSERT_EQUAL_FATAL(o->shape.dims[2], 4);

    /* The same steps in pieces of 200 (24,000 floats: held whole). */
    snprintf(path, sizeof path, "/v1/networks/res/sessions/%s/run", piece_id);
    int pieces_match = 1;
    for (int from = 0; from < LIVE_STEPS; from += 200) {
        char *piece = run_body(from, 200);
        it_response pr = post("POST", path, piece, 200);
        free(piece);
        nn_tensor *pr_r = member_tensor(&pr, "outputs", "r");
        nn_tensor *pr_o = member_tensor(&pr, "outputs", "o");
        pieces_match &= close_all(pr_r->data, r->data + (size_t)from * 120,
                                  200 * 120);
        pieces_match &= close_all(pr_o->data, o->data + (size_t)from * 4,
                                  200 * 4);
        nn_tensor_free(pr_r);
        nn_tensor_free(pr_o);
        it_response_free(&pr);
    }
    CU_ASSERT(pieces_match);

    /* The binary framing: the header first, r's bytes, then o's. */
    snprintf(path, sizeof path, "/v1/networks/res/sessions/%s/run", bin_id);
    it_response bin;
    memset(&bin, 0, sizeof bin);
    CU_ASSERT_EQUAL_FATAL(it_request_with(&server, "POST", path,
                                          "application/json", body,
                                          strlen(body),
                                          "Accept: application/octet-stream",
                                          &bin), 0);
    CU_ASSERT_EQUAL(bin.status, 200);
    const char *end = NULL;
    cJSON *header = cJSON_ParseWithOpts(bin.body, &end, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(header);
    size_t header_len = (size_t)(end - bin.body);
    size_t r_bytes = (size_t)LIVE_STEPS * 120 * sizeof(float);
    size_t o_bytes = (size_t)LIVE_STEPS * 4 * sizeof(float);
    CU_ASSERT_EQUAL_FATAL(bin.len, header_len + r_bytes + o_bytes);
    cJSON *rd = cJSON_GetObjectItem(cJSON_GetObjectItem(header, "outputs"),
                                    "r");
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(rd, "binary_data_size")->valuedouble,
                    (double)r_bytes);
    cJSON_Delete(header);
    float *bin_r = malloc(r_bytes), *bin_o = malloc(o_bytes);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bin_r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bin_o);
    memcpy(bin_r, bin.body + header_len, r_bytes);
    memcpy(bin_o, bin.body + header_len + r_bytes, o_bytes);
    CU_ASSERT(close_all(bin_r, r->data, (size_t)LIVE_STEPS * 120));
    CU_ASSERT(close_all(bin_o, o->data, (size_t)LIVE_STEPS * 4));
    free(bin_r);
    free(bin_o);
    it_response_free(&bin);
    nn_tensor_free(r);
    nn_tensor_free(o);
    it_response_free(&run);
    free(body);
    free(live_id);
    free(piece_id);
    free(bin_id);
}

/* A run long enough to stream whose engine refuses it before its first
 * step, or whose step 0 fails: nothing has gone out, so the answer is a
 * plain error, as for a short run. */
static void test_refusals_before_the_stream(void)
{
    char *id = session("{\"batch\": 1}");
    char path[160];
    snprintf(path, sizeof path, "/v1/networks/res/sessions/%s/run", id);
    /* o's values forced, though no node receives o's feedback. */
    char *inputs = run_body(0, LIVE_STEPS);
    api_buf b = {0};
    api_buf_put(&b, inputs, strlen(inputs) - 1); /* without its last '}' */
    api_buf_puts(&b, ", \"forced\": {\"o\": [[");
    for (int k = 0; k < LIVE_STEPS; k++)
        api_buf_puts(&b, k ? ",[0,0,0,0]" : "[0,0,0,0]");
    api_buf_puts(&b, "]]}}");
    char *body = api_buf_finish(&b, NULL);
    it_response r = post("POST", path, body, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "no node receives its feedback"));
    cJSON *j = cJSON_Parse(r.body);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(
                               cJSON_GetObjectItem(j, "error"), "code")),
                           "bad_request");
    cJSON_Delete(j);
    it_response_free(&r);
    free(body);
    free(inputs);
    snprintf(path, sizeof path, "/v1/networks/res/sessions/%s", id);
    r = post("GET", path, NULL, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"steps\":0"));
    it_response_free(&r);
    free(id);

    it_response c = post("POST", "/v1/networks",
                         "{\"name\": \"failing0\", \"seed\": 3, \"nodes\": ["
                         "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},"
                         "{\"name\": \"r\", \"type\": \"Reservoir\","
                         " \"num_unit\": 300},"
                         "{\"name\": \"f\", \"type\": \"FailAtStep\","
                         " \"step\": 0}],"
                         "\"edges\": [\"x >> r >> f\"]}", 201);
    it_response_free(&c);
    c = post("POST", "/v1/networks/failing0/sessions", "{\"id\": \"a\"}", 201);
    it_response_free(&c);
    b = (api_buf){0};
    api_buf_puts(&b, "{\"inputs\": {\"x\": [[");
    for (int k = 0; k < 2000; k++)
        api_buf_puts(&b, k ? ",[0.5]" : "[0.5]");
    api_buf_puts(&b, "]]}, \"outputs\": [\"f\"]}");
    body = api_buf_finish(&b, NULL);
    r = post("POST", "/v1/networks/failing0/sessions/a/run", body, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "step 0"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "FailAtStep fails"));
    CU_ASSERT_PTR_NULL(strstr(r.body, "outputs"));
    it_response_free(&r);
    free(body);
}

/* A step that fails after the answer has begun: the document stays valid
 * JSON, holds the steps before the failure and ends with an "error"
 * member; the session keeps the steps it took and goes on. In the binary
 * framing, whose sizes went first, the body is cut and the client sees a
 * broken transfer. */
static void test_failure_mid_stream(void)
{
    it_response c = post("POST", "/v1/networks",
                         "{\"name\": \"failing\", \"seed\": 3, \"nodes\": ["
                         "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},"
                         "{\"name\": \"r\", \"type\": \"Reservoir\","
                         " \"num_unit\": 300},"
                         "{\"name\": \"f\", \"type\": \"FailAtStep\","
                         " \"step\": 1500}],"
                         "\"edges\": [\"x >> r >> f\"]}", 201);
    it_response_free(&c);
    api_buf b = {0};
    api_buf_puts(&b, "{\"inputs\": {\"x\": [[");
    for (int k = 0; k < 2000; k++)
        api_buf_puts(&b, k ? ",[0.5]" : "[0.5]");
    api_buf_puts(&b, "]]}, \"outputs\": [\"f\"]}");
    char *body = api_buf_finish(&b, NULL);
    it_response s1 = post("POST", "/v1/networks/failing/sessions",
                          "{\"id\": \"a\", \"batch\": 1}", 201);
    it_response s2 = post("POST", "/v1/networks/failing/sessions",
                          "{\"id\": \"b\", \"batch\": 1}", 201);
    it_response_free(&s1);
    it_response_free(&s2);
    it_response run = post("POST", "/v1/networks/failing/sessions/a/run",
                           body, 200);
    cJSON *j = cJSON_Parse(run.body);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    cJSON *f = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "outputs"), "f");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(f), 1);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetArrayItem(f, 0)), 1500);
    cJSON *err = cJSON_GetObjectItem(j, "error");
    const char *message =
        cJSON_GetStringValue(cJSON_GetObjectItem(err, "message"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(message);
    CU_ASSERT_PTR_NOT_NULL(strstr(message, "step 1500"));
    CU_ASSERT_PTR_NOT_NULL(strstr(message, "FailAtStep fails"));
    CU_ASSERT_PTR_NULL(cJSON_GetObjectItem(j, "step"));
    cJSON_Delete(j);
    it_response_free(&run);
    it_response st = post("GET", "/v1/networks/failing/sessions/a", NULL, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.body, "\"steps\":1500"));
    it_response_free(&st);

    it_response bin;
    memset(&bin, 0, sizeof bin);
    int rc = it_request_with(&server, "POST",
                             "/v1/networks/failing/sessions/b/run",
                             "application/json", body, strlen(body),
                             "Accept: application/octet-stream", &bin);
    size_t whole = (size_t)2000 * 300 * sizeof(float);
    /* Cut short of its Content-Length: curl reports the transfer broken. */
    CU_ASSERT(rc != 0);
    CU_ASSERT(bin.len < whole);
    it_response_free(&bin);
    free(body);
    /* The daemon goes on. */
    it_response h = post("GET", "/healthz", NULL, 200);
    it_response_free(&h);
}

/* Starts a daemon of its own (args as it_start's) holding RES_NET and a
 * batch-1 session named sid. */
static void start_with_session(it_server *srv, const char *const *args,
                               const char *sid)
{
    CU_ASSERT_EQUAL_FATAL(it_start(srv, args), 0);
    it_response r;
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(it_request(srv, "POST", "/v1/networks",
                               "application/json", RES_NET, strlen(RES_NET),
                               &r), 0);
    CU_ASSERT_EQUAL(r.status, 201);
    it_response_free(&r);
    char body[128];
    snprintf(body, sizeof body, "{\"id\": \"%s\", \"batch\": 1}", sid);
    CU_ASSERT_EQUAL(it_request(srv, "POST", "/v1/networks/res/sessions",
                               "application/json", body, strlen(body), &r),
                    0);
    CU_ASSERT_EQUAL(r.status, 201);
    it_response_free(&r);
}

/* What the daemon holds for a streamed run does not grow with its length:
 * 40,000 steps of r are 19 MB of float32 (and 50 MB of text), against a
 * window of 1 MiB. On a fresh daemon, whose peak RSS so far is its
 * start. */
static void test_streamed_run_memory(void)
{
    if (!it_rss_meaningful())
        return;
    it_server fresh;
    start_with_session(&fresh, NULL, "m");
    it_response r;
    memset(&r, 0, sizeof r);
    api_buf b = {0};
    api_buf_puts(&b, "{\"inputs\": {\"x\": [[");
    for (int k = 0; k < 40000; k++)
        api_buf_puts(&b, k ? ",[0.1,0.2,0.3]" : "[0.1,0.2,0.3]");
    api_buf_puts(&b, "]]}, \"outputs\": [\"r\"]}");
    char *body = api_buf_finish(&b, NULL);
    long before = it_peak_rss_kb(fresh.pid);
    CU_ASSERT_EQUAL(it_request(&fresh, "POST",
                               "/v1/networks/res/sessions/m/run",
                               "application/json", body, strlen(body), &r),
                    0);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT(r.len > 40000u * 120u * 2u);
    long after = it_peak_rss_kb(fresh.pid);
    fprintf(stderr, "streamed run: peak RSS %ld -> %ld KiB\n", before, after);
    CU_ASSERT(before > 0 && after - before < 8 * 1024);
    it_response_free(&r);
    free(body);
    CU_ASSERT_EQUAL(it_stop(&fresh), 0);
}

/* Connects to port and sends POST .../sessions/{id}/run with body, whole;
 * returns the socket, for a test that reads the answer as it likes. */
static int send_run(int port, const char *id, const char *body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char head[256];
    int n = snprintf(head, sizeof head,
                     "POST /v1/networks/res/sessions/%s/run HTTP/1.1\r\n"
                     "Host: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n", id, strlen(body));
    CU_ASSERT_EQUAL(write(fd, head, (size_t)n), n);
    size_t sent = 0, len = strlen(body);
    while (sent < len) {
        ssize_t w = write(fd, body + sent, len - sent);
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    return fd;
}

/* A client that leaves in the middle of a streamed run: the run completes
 * (every step is taken, as for any started request), and the daemon goes
 * on answering. */
static void test_client_leaving_mid_run(void)
{
    char *id = session("{\"batch\": 1}");
    char *body = run_body(0, 20000);
    int fd = send_run(server.port, id, body);
    char buf[4096];
    ssize_t got = read(fd, buf, sizeof buf);
    CU_ASSERT(got > 12);
    if (got > 12)
        CU_ASSERT_EQUAL(memcmp(buf, "HTTP/1.1 200", 12), 0);
    close(fd);
    char path[160];
    snprintf(path, sizeof path, "/v1/networks/res/sessions/%s", id);
    /* The session's requests are ordered: this GET comes after the run. */
    it_response st = post("GET", path, NULL, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.body, "\"steps\":20000"));
    it_response_free(&st);
    free(body);
    free(id);
}

/* Bytes charged to the daemon's memory budget, or -1. */
static long long charged_bytes(const it_server *s)
{
    return (long long)it_metric(s, "\nnerved_memory_charged_bytes ");
}

/* A client that takes nothing of a streamed answer for a while does not
 * hold the compute thread: the run completes meanwhile (its window grows,
 * charged to the budget), the session's next request is answered, and the
 * client later reads the whole answer. One compute thread, so a run
 * waiting for its client would stop everything. */
static void test_slow_client_holds_no_thread(void)
{
    it_server one;
    const char *args[] = {"--compute-threads", "1", "--connection-timeout",
                          "120", NULL};
    start_with_session(&one, args, "slow");
    it_response r;
    memset(&r, 0, sizeof r);
    long long idle = (long long)it_metric_settled(
        &one, "\nnerved_memory_charged_bytes ");
    CU_ASSERT(idle >= 0);
    char *body = run_body(0, 20000);
    int fd = send_run(one.port, "slow", body);
    /* The answer's first bytes say the run has begun; then nothing more
     * is read: 26 MB of answer, far past the socket's buffers and the
     * first window. The session's next request is ordered after the run,
     * so it is answered only once the run is done. */
    size_t cap = 64 << 20, got = 0;
    char *all = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(all);
    while (got < 12) {
        ssize_t k = read(fd, all + got, 12 - got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    CU_ASSERT_EQUAL(memcmp(all, "HTTP/1.1 200", 12), 0);
    double t0 = it_now();
    CU_ASSERT_EQUAL(it_request(&one, "GET", "/v1/networks/res/sessions/slow",
                               NULL, NULL, 0, &r), 0);
    double waited = it_now() - t0;
    fprintf(stderr, "slow client: the next request waited %.2f s\n", waited);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"steps\":20000"));
    CU_ASSERT(waited < 60);
    it_response_free(&r);
    /* The run is done and its answer mostly unread: the grown window (and
     * any ring it outgrew and the reader has not let go) is charged. */
    long long held = charged_bytes(&one);
    fprintf(stderr, "slow client: %lld bytes charged while unread\n",
            held - idle);
    CU_ASSERT(held > idle + (8 << 20));
    /* Now the whole answer, chunked, ends as it should. */
    for (;;) {
        ssize_t k = read(fd, all + got, cap - got - 1);
        if (k <= 0)
            break;
        got += (size_t)k;
        all[got] = '\0';
        if (got >= 5 && memcmp(all + got - 5, "0\r\n\r\n", 5) == 0)
            break;
    }
    close(fd);
    /* Everything charged for the answer comes back, no more and no less
     * (a release too many would wrap the budget's count). The response
     * is freed once libmicrohttpd is done with the connection. */
    long long after = -1;
    for (int i = 0; i < 500 && after != idle; i++) {
        after = charged_bytes(&one);
        if (after != idle)
            nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
    if (after != idle)
        fprintf(stderr, "slow client: %lld bytes charged after, %lld idle\n",
                after, idle);
    CU_ASSERT_EQUAL(after, idle);
    CU_ASSERT(got > 20000u * 120u * 2u);
    CU_ASSERT(got >= 5 && memcmp(all + got - 5, "0\r\n\r\n", 5) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(all + (got > 4096 ? got - 4096 : 0),
                                  "\"step\":20000}"));
    free(all);
    free(body);
    CU_ASSERT_EQUAL(it_stop(&one), 0);
}

int main(void)
{
    nn_error e;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &e) != NN_OK)
        return 2;
    const char *args[] = {"--plugin", getenv("NERVED_FAIL_PLUGIN"), NULL};
    if (!args[1] || it_start(&server, args))
        return 2;
    static const tu_test tests[] = {
        {"a long run equals its steps", test_long_run_equals_steps},
        {"a large forward equals the engine", test_large_forward},
        {"params move bit for bit", test_params_bit_for_bit},
        {"errors come before the first byte",
         test_errors_before_the_first_byte},
        {"clients leaving mid-stream", test_clients_leaving_mid_stream},
        {"a long run streams as it steps", test_long_run_streams},
        {"a long run's refusals before its first step are plain errors",
         test_refusals_before_the_stream},
        {"a failure mid-stream ends the document with an error",
         test_failure_mid_stream},
        {"a streamed run's memory does not grow with it",
         test_streamed_run_memory},
        {"a client leaving mid-run does not stop it",
         test_client_leaving_mid_run},
        {"a slow client holds no compute thread",
         test_slow_client_holds_no_thread},
        {NULL, NULL}};
    int rc = tu_run_suite("stream", tests);
    int exit_status = it_stop(&server);
    if (exit_status != 0) {
        fprintf(stderr, "nerved exited with %d after SIGTERM\n", exit_status);
        rc = 1;
    }
    nn_registry_free(reg);
    return rc;
}
