/*
 * test_stream.c — answers too large for one piece are streamed: a long
 * run's outputs equal the same steps posted one by one, a large forward
 * equals the engine run in this process, GET and PUT /params move weights
 * bit for bit, and every error of such a request comes before its first
 * byte as a plain 4xx.
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

int main(void)
{
    nn_error e;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &e) != NN_OK)
        return 2;
    if (it_start(&server, NULL))
        return 2;
    static const tu_test tests[] = {
        {"a long run equals its steps", test_long_run_equals_steps},
        {"a large forward equals the engine", test_large_forward},
        {"params move bit for bit", test_params_bit_for_bit},
        {"errors come before the first byte",
         test_errors_before_the_first_byte},
        {"clients leaving mid-stream", test_clients_leaving_mid_stream},
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
