/*
 * test_outputs.c — step, run and infer requests answer with the outputs of
 * the nodes they name, inner ones included ("outputs": ["r", "o"]), as
 * someone porting a reservoir compares its states. Every value is held to
 * a reference this test computes itself, in double precision, from the
 * weights the daemon exports: the reservoir's state
 *   s ← (1 − a) s + a tanh(u · Win + s · W + b)
 * and the readout o = s · W_o + b_o. Batched steps (many sessions at once)
 * must give what single steps give, and what the reference gives.
 */
#include "itest.h"
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IN 3
#define UNITS 20
#define OUT 2
#define LEAK 0.6
#define MAX_ROWS 4

static it_server server;

/* Dense W so the export is the matrix itself; a bias in both nodes so a
 * misplaced one shows. */
static const char *RES_NET =
    "{\"name\": \"res\", \"seed\": 11, \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 3},"
    "{\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": 20,"
    " \"leaky_rate\": 0.6, \"spectral_radius\": 0.9, \"input_scaling\": 0.8,"
    " \"bias_scaling\": 0.5, \"input_connectivity\": 0.5,"
    " \"rc_connectivity\": 0.3, \"sparse\": false},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 2,"
    " \"b_initializer\": \"Uniform(-1, 1)\"}],"
    "\"edges\": [\"x >> r >> o\"]}";

static const cJSON *get(const cJSON *j, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(j, key);
}

/* --------------------------------------------------------- the reference */

typedef struct model {
    double win[IN * UNITS], w[UNITS * UNITS], b[UNITS];
    double wo[UNITS * OUT], bo[OUT];
} model;

/* The state of a stream of up to MAX_ROWS rows. */
typedef struct ref_state {
    double s[MAX_ROWS][UNITS];
    double o[MAX_ROWS][OUT];
} ref_state;

/* Copies an exported weight {"shape": [...], "data": [...]} of n values
 * with the given shape; 0, or -1 (with a CUnit failure) when it differs. */
static int weight(const cJSON *params, const char *node, const char *name,
                  int d0, int d1, double *out)
{
    const cJSON *t = get(get(get(params, "nodes"), node), name);
    const cJSON *shape = get(t, "shape"), *data = get(t, "data");
    int n = d1 ? d0 * d1 : d0;
    int ok = cJSON_GetArraySize(shape) == (d1 ? 2 : 1) &&
             cJSON_GetArrayItem(shape, 0)->valueint == d0 &&
             (!d1 || cJSON_GetArrayItem(shape, 1)->valueint == d1) &&
             cJSON_GetArraySize(data) == n;
    if (!ok) {
        fprintf(stderr, "export of %s.%s is not (%d, %d)\n", node, name, d0,
                d1);
        CU_FAIL("exported weight has another shape");
        return -1;
    }
    int k = 0;
    for (const cJSON *v = data->child; v; v = v->next)
        out[k++] = v->valuedouble;
    return 0;
}

static int load_model(const it_server *s, model *m)
{
    cJSON *p = it_call(s, "GET", "/v1/networks/res/params", NULL, 200);
    int rc = weight(p, "r", "Win", IN, UNITS, m->win) ||
             weight(p, "r", "W", UNITS, UNITS, m->w) ||
             weight(p, "r", "b", UNITS, 0, m->b) ||
             weight(p, "o", "W", UNITS, OUT, m->wo) ||
             weight(p, "o", "b", OUT, 0, m->bo);
    cJSON_Delete(p);
    return rc ? -1 : 0;
}

static void ref_step(const model *m, ref_state *st, int rows,
                     const double u[][IN])
{
    for (int b = 0; b < rows; b++) {
        double next[UNITS];
        for (int j = 0; j < UNITS; j++) {
            double pre = m->b[j];
            for (int i = 0; i < IN; i++)
                pre += u[b][i] * m->win[i * UNITS + j];
            for (int i = 0; i < UNITS; i++)
                pre += st->s[b][i] * m->w[i * UNITS + j];
            next[j] = (1 - LEAK) * st->s[b][j] + LEAK * tanh(pre);
        }
        memcpy(st->s[b], next, sizeof next);
        for (int k = 0; k < OUT; k++) {
            double y = m->bo[k];
            for (int j = 0; j < UNITS; j++)
                y += next[j] * m->wo[j * OUT + k];
            st->o[b][k] = y;
        }
    }
}

/* Input of stream k, row b, step t, feature f. */
static double input_at(int k, int b, int t, int f)
{
    return 0.9 * sin(0.41 * t + 1.3 * f + 0.7 * b + 2.1 * k);
}

static void step_inputs(int k, int t, int rows, double u[][IN])
{
    for (int b = 0; b < rows; b++)
        for (int f = 0; f < IN; f++)
            u[b][f] = input_at(k, b, t, f);
}

/* {"x": [[...], ...]} of one step, or with steps > 0 the (rows, steps, IN)
 * sequence from step t0 on. */
static size_t put_inputs(char *buf, size_t cap, int k, int t0, int rows,
                         int steps)
{
    size_t n = (size_t)snprintf(buf, cap, "{\"x\": [");
    for (int b = 0; b < rows; b++) {
        n += (size_t)snprintf(buf + n, cap - n, "%s[", b ? "," : "");
        for (int t = 0; t < (steps ? steps : 1); t++) {
            if (steps)
                n += (size_t)snprintf(buf + n, cap - n, "%s[", t ? "," : "");
            for (int f = 0; f < IN; f++)
                n += (size_t)snprintf(buf + n, cap - n, "%s%.9g",
                                      f ? "," : "",
                                      input_at(k, b, t0 + t, f));
            if (steps)
                n += (size_t)snprintf(buf + n, cap - n, "]");
        }
        n += (size_t)snprintf(buf + n, cap - n, "]");
    }
    return n + (size_t)snprintf(buf + n, cap - n, "]}");
}

static char *step_body(int k, int t, int rows, const char *outputs)
{
    size_t cap = 8192;
    char *b = malloc(cap);
    size_t n = (size_t)snprintf(b, cap, "{\"inputs\": ");
    n += put_inputs(b + n, cap - n, k, t, rows, 0);
    if (outputs)
        snprintf(b + n, cap - n, ", \"outputs\": %s}", outputs);
    else
        snprintf(b + n, cap - n, "}");
    return b;
}

static char *run_body(int k, int t0, int rows, int steps, const char *outputs)
{
    size_t cap = 65536;
    char *b = malloc(cap);
    size_t n = (size_t)snprintf(b, cap, "{\"inputs\": ");
    n += put_inputs(b + n, cap - n, k, t0, rows, steps);
    if (outputs)
        snprintf(b + n, cap - n, ", \"outputs\": %s}", outputs);
    else
        snprintf(b + n, cap - n, "}");
    return b;
}

/* Whether a (rows, width) JSON tensor equals want[b][0..width). */
static int rows_close(const cJSON *t, int rows, int width, const double *want,
                      size_t stride, const char *what)
{
    if (cJSON_GetArraySize(t) != rows) {
        fprintf(stderr, "%s: %d rows, want %d\n", what, cJSON_GetArraySize(t),
                rows);
        return 0;
    }
    for (int b = 0; b < rows; b++) {
        const cJSON *row = cJSON_GetArrayItem(t, b);
        if (cJSON_GetArraySize(row) != width)
            return 0;
        for (int j = 0; j < width; j++) {
            double got = cJSON_GetArrayItem(row, j)->valuedouble;
            double w = want[(size_t)b * stride + (size_t)j];
            if (!it_float_close(got, w)) {
                fprintf(stderr, "%s[%d][%d]: %.9g, want %.9g\n", what, b, j,
                        got, w);
                return 0;
            }
        }
    }
    return 1;
}

/* The names of the members of o, in order, joined by ",". */
static void member_order(const cJSON *o, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (const cJSON *c = o ? o->child : NULL; c && n < cap; c = c->next)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? "," : "",
                              c->string);
}

static void make_network(const it_server *s)
{
    cJSON_Delete(it_call(s, "POST", "/v1/networks", RES_NET, 201));
}

static void make_session(const it_server *s, const char *id, int batch)
{
    char body[64];
    snprintf(body, sizeof body, "{\"id\": \"%s\", \"batch\": %d}", id, batch);
    cJSON_Delete(it_call(s, "POST", "/v1/networks/res/sessions", body, 201));
}

/* ------------------------------------------------------------ the tests */

static void test_make_network(void)
{
    make_network(&server);
}

static void test_session_steps(void)
{
    model m;
    CU_ASSERT_EQUAL_FATAL(load_model(&server, &m), 0);
    make_session(&server, "st", 2);
    ref_state st;
    memset(&st, 0, sizeof st);
    for (int t = 0; t < 6; t++) {
        /* Not the graph's order: the answer keeps the request's. */
        char *body = step_body(0, t, 2, "[\"o\", \"x\", \"r\"]");
        cJSON *j = it_call(&server, "POST",
                           "/v1/networks/res/sessions/st/forward", body, 200);
        free(body);
        double u[MAX_ROWS][IN];
        step_inputs(0, t, 2, u);
        ref_step(&m, &st, 2, u);
        const cJSON *outs = get(j, "outputs");
        char order[64];
        member_order(outs, order, sizeof order);
        CU_ASSERT_STRING_EQUAL(order, "o,x,r");
        CU_ASSERT(rows_close(get(outs, "r"), 2, UNITS, &st.s[0][0], UNITS,
                             "step r"));
        CU_ASSERT(rows_close(get(outs, "o"), 2, OUT, &st.o[0][0], OUT,
                             "step o"));
        /* An Input's output is what was sent. */
        CU_ASSERT(rows_close(get(outs, "x"), 2, IN, &u[0][0], IN, "step x"));
        CU_ASSERT_EQUAL(cJSON_GetNumberValue(get(j, "step")), t + 1);
        cJSON_Delete(j);
    }
    /* Without "outputs", the exits, as before. */
    char *body = step_body(0, 6, 2, NULL);
    cJSON *j = it_call(&server, "POST", "/v1/networks/res/sessions/st/forward",
                       body, 200);
    free(body);
    char order[64];
    member_order(get(j, "outputs"), order, sizeof order);
    CU_ASSERT_STRING_EQUAL(order, "o");
    double u[MAX_ROWS][IN];
    step_inputs(0, 6, 2, u);
    ref_step(&m, &st, 2, u);
    CU_ASSERT(rows_close(get(get(j, "outputs"), "o"), 2, OUT, &st.o[0][0], OUT,
                         "exit o"));
    cJSON_Delete(j);
}

/* Checks a run's (rows, steps, width) tensor at step t against want. */
static int run_close(const cJSON *t, int step, int rows, int width,
                     const double *want, size_t stride, const char *what)
{
    cJSON *slice = cJSON_CreateArray();
    for (int b = 0; b < rows; b++)
        cJSON_AddItemToArray(slice, cJSON_Duplicate(
                                        cJSON_GetArrayItem(
                                            cJSON_GetArrayItem(t, b), step),
                                        1));
    int ok = rows_close(slice, rows, width, want, stride, what);
    cJSON_Delete(slice);
    return ok;
}

static void test_session_run(void)
{
    model m;
    CU_ASSERT_EQUAL_FATAL(load_model(&server, &m), 0);
    make_session(&server, "ru", 2);
    ref_state st;
    memset(&st, 0, sizeof st);
    /* Two runs: the second continues the state the first left. */
    for (int part = 0; part < 2; part++) {
        int t0 = part * 7;
        char *body = run_body(1, t0, 2, 7, "[\"r\", \"o\"]");
        cJSON *j = it_call(&server, "POST", "/v1/networks/res/sessions/ru/run",
                           body, 200);
        free(body);
        const cJSON *outs = get(j, "outputs");
        char order[64];
        member_order(outs, order, sizeof order);
        CU_ASSERT_STRING_EQUAL(order, "r,o");
        for (int t = 0; t < 7; t++) {
            double u[MAX_ROWS][IN];
            step_inputs(1, t0 + t, 2, u);
            ref_step(&m, &st, 2, u);
            CU_ASSERT(run_close(get(outs, "r"), t, 2, UNITS, &st.s[0][0],
                                UNITS, "run r"));
            CU_ASSERT(run_close(get(outs, "o"), t, 2, OUT, &st.o[0][0], OUT,
                                "run o"));
        }
        CU_ASSERT_EQUAL(cJSON_GetNumberValue(get(j, "step")), t0 + 7);
        cJSON_Delete(j);
    }
    /* A run long enough to be streamed in chunks (> 32 KiB of text) asks
     * for the state alone and still matches. */
    char *body = run_body(1, 14, 2, 120, "[\"r\"]");
    cJSON *j = it_call(&server, "POST", "/v1/networks/res/sessions/ru/run",
                       body, 200);
    free(body);
    const cJSON *r = get(get(j, "outputs"), "r");
    CU_ASSERT_PTR_NULL(get(get(j, "outputs"), "o"));
    for (int t = 0; t < 120; t++) {
        double u[MAX_ROWS][IN];
        step_inputs(1, 14 + t, 2, u);
        ref_step(&m, &st, 2, u);
        if (!run_close(r, t, 2, UNITS, &st.s[0][0], UNITS, "long run r")) {
            CU_FAIL("long run differs");
            break;
        }
    }
    cJSON_Delete(j);
}

static void test_stateless_forward(void)
{
    model m;
    CU_ASSERT_EQUAL_FATAL(load_model(&server, &m), 0);
    char *body = step_body(2, 0, 3, "[\"r\"]");
    cJSON *j = it_call(&server, "POST", "/v1/networks/res/forward", body, 200);
    free(body);
    ref_state st;
    memset(&st, 0, sizeof st);
    double u[MAX_ROWS][IN];
    step_inputs(2, 0, 3, u);
    ref_step(&m, &st, 3, u);
    char order[64];
    member_order(get(j, "outputs"), order, sizeof order);
    CU_ASSERT_STRING_EQUAL(order, "r");
    CU_ASSERT(rows_close(get(get(j, "outputs"), "r"), 3, UNITS, &st.s[0][0],
                         UNITS, "forward r"));
    cJSON_Delete(j);
}

/* POSTs body and expects a 400 whose message holds each needle. */
static void expect_refusal(const char *path, const char *body,
                           const char *code, const char *needle1,
                           const char *needle2)
{
    cJSON *j = it_call(&server, "POST", path, body, 400);
    const char *c = cJSON_GetStringValue(get(get(j, "error"), "code"));
    const char *msg = cJSON_GetStringValue(get(get(j, "error"), "message"));
    if (!msg || !c || strcmp(c, code) || !strstr(msg, needle1) ||
        (needle2 && !strstr(msg, needle2)))
        fprintf(stderr, "%s %s -> %s: %s\n", path, body, c ? c : "?",
                msg ? msg : "?");
    CU_ASSERT(c && strcmp(c, code) == 0);
    CU_ASSERT(msg && strstr(msg, needle1));
    CU_ASSERT(!needle2 || (msg && strstr(msg, needle2)));
    cJSON_Delete(j);
}

static void test_bad_lists_are_refused(void)
{
    make_session(&server, "bad", 1);
    static const char *const paths[] = {
        "/v1/networks/res/forward", "/v1/networks/res/sessions/bad/forward",
        "/v1/networks/res/sessions/bad/run"};
    for (int p = 0; p < 3; p++) {
        int run = p == 2;
        char inputs[256];
        if (run)
            snprintf(inputs, sizeof inputs, "{\"x\": [[[1, 2, 3]]]}");
        else
            snprintf(inputs, sizeof inputs, "{\"x\": [[1, 2, 3]]}");
        char body[512];
        snprintf(body, sizeof body, "{\"inputs\": %s, \"outputs\": [\"r\", "
                 "\"nosuch\"]}", inputs);
        expect_refusal(paths[p], body, "unknown_output",
                       "outputs[1]: the network has no node 'nosuch'",
                       "its nodes are x, r, o");
        snprintf(body, sizeof body, "{\"inputs\": %s, \"outputs\": [\"r\", "
                 "\"o\", \"r\"]}", inputs);
        expect_refusal(paths[p], body, "bad_request", "outputs[2]",
                       "'r' is asked for twice");
        snprintf(body, sizeof body, "{\"inputs\": %s, \"outputs\": []}",
                 inputs);
        expect_refusal(paths[p], body, "bad_request", "non-empty array",
                       "leave it out");
        snprintf(body, sizeof body, "{\"inputs\": %s, \"outputs\": \"r\"}",
                 inputs);
        expect_refusal(paths[p], body, "bad_request", "array of node names",
                       NULL);
        snprintf(body, sizeof body, "{\"inputs\": %s, \"outputs\": [\"r\", "
                 "{\"name\": \"o\"}]}", inputs);
        expect_refusal(paths[p], body, "bad_request", "outputs[1]", NULL);
        /* More names than the network has nodes repeat one. */
        snprintf(body, sizeof body, "{\"inputs\": %s, \"outputs\": [\"x\", "
                 "\"r\", \"o\", \"x\"]}", inputs);
        expect_refusal(paths[p], body, "bad_request", "outputs[3]", "twice");
    }
    /* None of it stepped the session. */
    cJSON *s = it_call(&server, "GET", "/v1/networks/res/sessions/bad", NULL,
                       200);
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(get(s, "steps")), 0);
    cJSON_Delete(s);
}

/* ----------------------------------------------------------------- KServe */

static char *infer_body(int k, int t, int rows, const char *sequence,
                        const char *outputs, int binary_output)
{
    size_t cap = 8192;
    char *b = malloc(cap);
    size_t n = (size_t)snprintf(b, cap, "{\"parameters\": {%s%s"
                                "\"binary_data_output\": %s}, \"inputs\": "
                                "[{\"name\": \"x\", \"shape\": [%d, 3], "
                                "\"datatype\": \"FP32\", \"data\": [",
                                sequence ? sequence : "",
                                sequence ? ", " : "",
                                binary_output ? "true" : "false", rows);
    for (int r = 0; r < rows; r++)
        for (int f = 0; f < IN; f++)
            n += (size_t)snprintf(b + n, cap - n, "%s%.9g",
                                  r || f ? "," : "", input_at(k, r, t, f));
    snprintf(b + n, cap - n, "]}], \"outputs\": %s}", outputs);
    return b;
}

/* The output named name of a KServe answer, as flat data compared with
 * want (rows of width, stride apart). */
static int v2_close(const cJSON *doc, const char *name, int rows, int width,
                    const double *want, size_t stride)
{
    for (const cJSON *o = get(doc, "outputs")->child; o; o = o->next) {
        if (strcmp(cJSON_GetStringValue(get(o, "name")), name) != 0)
            continue;
        const cJSON *shape = get(o, "shape"), *data = get(o, "data");
        if (cJSON_GetArrayItem(shape, 0)->valueint != rows ||
            cJSON_GetArrayItem(shape, 1)->valueint != width ||
            cJSON_GetArraySize(data) != rows * width)
            return 0;
        for (int b = 0; b < rows; b++)
            for (int j = 0; j < width; j++)
                if (!it_float_close(
                        cJSON_GetArrayItem(data, b * width + j)->valuedouble,
                        want[(size_t)b * stride + (size_t)j]))
                    return 0;
        return 1;
    }
    return 0;
}

static void test_kserve_json(void)
{
    model m;
    CU_ASSERT_EQUAL_FATAL(load_model(&server, &m), 0);
    /* Stateless: one step on a fresh state. */
    char *body = infer_body(3, 0, 2, NULL, "[{\"name\": \"r\"}, {\"name\": "
                            "\"o\"}, {\"name\": \"x\"}]", 0);
    cJSON *j = it_call(&server, "POST", "/v2/models/res/infer", body, 200);
    free(body);
    ref_state st;
    memset(&st, 0, sizeof st);
    double u[MAX_ROWS][IN];
    step_inputs(3, 0, 2, u);
    ref_step(&m, &st, 2, u);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(get(j, "outputs")), 3);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(cJSON_GetArrayItem(
                               get(j, "outputs"), 0), "name")), "r");
    CU_ASSERT(v2_close(j, "r", 2, UNITS, &st.s[0][0], UNITS));
    CU_ASSERT(v2_close(j, "o", 2, OUT, &st.o[0][0], OUT));
    CU_ASSERT(v2_close(j, "x", 2, IN, &u[0][0], IN));
    cJSON_Delete(j);

    /* A sequence carries the state the inner output shows. */
    memset(&st, 0, sizeof st);
    for (int t = 0; t < 4; t++) {
        const char *seq = t == 0 ? "\"sequence_id\": 77, "
                                   "\"sequence_start\": true"
                                 : t == 3 ? "\"sequence_id\": 77, "
                                            "\"sequence_end\": true"
                                          : "\"sequence_id\": 77";
        body = infer_body(4, t, 1, seq, "[{\"name\": \"r\"}]", 0);
        j = it_call(&server, "POST", "/v2/models/res/infer", body, 200);
        free(body);
        step_inputs(4, t, 1, u);
        ref_step(&m, &st, 1, u);
        CU_ASSERT_EQUAL(cJSON_GetArraySize(get(j, "outputs")), 1);
        CU_ASSERT(v2_close(j, "r", 1, UNITS, &st.s[0][0], UNITS));
        cJSON_Delete(j);
    }

    /* Unknown and repeated names, in the protocol's error body. */
    body = infer_body(3, 0, 1, NULL, "[{\"name\": \"nosuch\"}]", 0);
    j = it_call(&server, "POST", "/v2/models/res/infer", body, 400);
    free(body);
    const char *msg = cJSON_GetStringValue(get(j, "error"));
    CU_ASSERT(msg && strstr(msg, "'nosuch'") && strstr(msg, "x, r, o"));
    cJSON_Delete(j);
    body = infer_body(3, 0, 1, NULL, "[{\"name\": \"r\"}, {\"name\": \"r\"}]",
                      0);
    j = it_call(&server, "POST", "/v2/models/res/infer", body, 400);
    free(body);
    msg = cJSON_GetStringValue(get(j, "error"));
    CU_ASSERT(msg && strstr(msg, "twice"));
    cJSON_Delete(j);
}

static void test_kserve_binary(void)
{
    model m;
    CU_ASSERT_EQUAL_FATAL(load_model(&server, &m), 0);
    /* r binary (the request's default), o as JSON (its own choice). */
    char *body = infer_body(5, 0, 2, NULL, "[{\"name\": \"r\"}, {\"name\": "
                            "\"o\", \"parameters\": {\"binary_data\": false}}]",
                            1);
    it_response res;
    CU_ASSERT_EQUAL_FATAL(it_request(&server, "POST", "/v2/models/res/infer",
                                     "application/json", body, strlen(body),
                                     &res), 0);
    free(body);
    CU_ASSERT_EQUAL(res.status, 200);
    CU_ASSERT_STRING_EQUAL(res.content_type, "application/octet-stream");
    const char *end = NULL;
    cJSON *head = cJSON_ParseWithLengthOpts(res.body, res.len, &end, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(head);
    size_t header = (size_t)(end - res.body);
    ref_state st;
    memset(&st, 0, sizeof st);
    double u[MAX_ROWS][IN];
    step_inputs(5, 0, 2, u);
    ref_step(&m, &st, 2, u);
    const cJSON *r = cJSON_GetArrayItem(get(head, "outputs"), 0);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(r, "name")), "r");
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(get(get(r, "parameters"),
                                             "binary_data_size")),
                    2 * UNITS * 4);
    CU_ASSERT_PTR_NULL(get(r, "data"));
    /* The bytes after the JSON are r's, little-endian float32, exactly. */
    CU_ASSERT_EQUAL_FATAL(res.len - header, 2 * UNITS * 4);
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < UNITS; k++) {
            unsigned char *p = (unsigned char *)res.body + header +
                               4 * (size_t)(b * UNITS + k);
            uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                            (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            float v;
            memcpy(&v, &bits, sizeof v);
            CU_ASSERT(it_float_close(v, st.s[b][k]));
        }
    CU_ASSERT(v2_close(head, "o", 2, OUT, &st.o[0][0], OUT));
    cJSON_Delete(head);
    it_response_free(&res);
}

/* ------------------------------------------------------ the output limit */

static void test_output_limit_counts_inner_nodes(void)
{
    /* 50 floats: o over 3 rows (6) passes; r over 3 rows (60) does not. */
    const char *const args[] = {"--max-output-floats", "50", NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    make_network(&s);
    make_session(&s, "lim", 3);
    char *body = step_body(0, 0, 3, "[\"r\"]");
    cJSON *j = it_call(&s, "POST", "/v1/networks/res/forward", body, 413);
    CU_ASSERT_PTR_NOT_NULL(strstr(cJSON_GetStringValue(get(get(j, "error"),
                                                           "message")),
                                  "--max-output-floats"));
    cJSON_Delete(j);
    cJSON_Delete(it_call(&s, "POST", "/v1/networks/res/sessions/lim/forward",
                         body, 413));
    free(body);
    body = step_body(0, 0, 3, "[\"o\", \"x\"]");
    cJSON_Delete(it_call(&s, "POST", "/v1/networks/res/sessions/lim/forward",
                         body, 200));
    free(body);
    /* A run's reply is counted over its steps: 3 rows × 2 steps of o are
     * 12 floats; of r and o, 132. */
    body = run_body(0, 1, 3, 2, NULL);
    cJSON_Delete(it_call(&s, "POST", "/v1/networks/res/sessions/lim/run",
                         body, 200));
    free(body);
    body = run_body(0, 3, 3, 2, "[\"r\", \"o\"]");
    cJSON_Delete(it_call(&s, "POST", "/v1/networks/res/sessions/lim/run",
                         body, 413));
    free(body);
    /* The refusals came before anything ran: 1 step, then a run of 2. */
    j = it_call(&s, "GET", "/v1/networks/res/sessions/lim", NULL, 200);
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(get(j, "steps")), 3);
    cJSON_Delete(j);
    body = infer_body(0, 0, 3, NULL, "[{\"name\": \"r\"}]", 0);
    j = it_call(&s, "POST", "/v2/models/res/infer", body, 413);
    free(body);
    CU_ASSERT_PTR_NOT_NULL(strstr(cJSON_GetStringValue(get(j, "error")),
                                  "--max-output-floats"));
    cJSON_Delete(j);
    body = infer_body(0, 0, 3, NULL, "[{\"name\": \"o\"}]", 0);
    cJSON_Delete(it_call(&s, "POST", "/v2/models/res/infer", body, 200));
    free(body);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

static void test_memory_budget_counts_inner_nodes(void)
{
    /* 2 MB: a run of 3 rows × 8000 steps is 192 kB of the exit o, but
     * 2.4 MB with r and x beside it. */
    const char *const args[] = {"--max-memory", "2000000", NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    make_network(&s);
    make_session(&s, "mem", 3);
    char *body = malloc(2u << 20);
    const char *outputs[] = {NULL, "[\"r\", \"o\", \"x\"]"};
    long want[] = {200, 413};
    for (int k = 0; k < 2; k++) {
        size_t n = (size_t)snprintf(body, 64, "{\"inputs\": ");
        n += put_inputs(body + n, (2u << 20) - n - 64, 0, 0, 3, 8000);
        if (outputs[k])
            snprintf(body + n, 64, ", \"outputs\": %s}", outputs[k]);
        else
            snprintf(body + n, 64, "}");
        it_response r;
        CU_ASSERT_EQUAL_FATAL(it_request(&s, "POST",
                                         "/v1/networks/res/sessions/mem/run",
                                         "application/json", body,
                                         strlen(body), &r), 0);
        if (r.status != want[k])
            fprintf(stderr, "budget run %d: %ld %.200s\n", k, r.status,
                    r.body);
        CU_ASSERT_EQUAL(r.status, want[k]);
        if (want[k] == 413)
            CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "--max-memory"));
        it_response_free(&r);
    }
    free(body);
    /* The refused run did not step. */
    cJSON *j = it_call(&s, "GET", "/v1/networks/res/sessions/mem", NULL, 200);
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(get(j, "steps")), 8000);
    cJSON_Delete(j);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

/* --------------------------------------------------------- batched steps */

#define STREAMS 6
#define STEPS 8
static const int stream_rows[STREAMS] = {1, 2, 1, 3, 1, 2};

typedef struct stream {
    const it_server *server;
    int k;
    cJSON *outputs[STEPS];
} stream;

static void *step_stream(void *arg)
{
    stream *st = arg;
    char path[96];
    snprintf(path, sizeof path, "/v1/networks/res/sessions/k%d/forward",
             st->k);
    for (int t = 0; t < STEPS; t++) {
        char *body = step_body(10 + st->k, t, stream_rows[st->k],
                               "[\"r\", \"o\"]");
        long status;
        cJSON *j = it_json(st->server, "POST", path, body, &status);
        free(body);
        if (status == 200 && j)
            st->outputs[t] = cJSON_DetachItemFromObject(j, "outputs");
        cJSON_Delete(j);
    }
    return NULL;
}

/* Steps on network id that stepped more than one session, from the
 * nerved_batch_sessions histogram. */
static double shared_batches(const it_server *s)
{
    it_response r;
    if (it_request(s, "GET", "/metrics", NULL, NULL, 0, &r))
        return 0;
    const char *one = "nerved_batch_sessions_bucket{network=\"n1\",le=\"1\"} ";
    const char *count = "nerved_batch_sessions_count{network=\"n1\"} ";
    const char *p = strstr(r.body, one), *q = strstr(r.body, count);
    double shared = p && q ? atof(q + strlen(count)) - atof(p + strlen(one))
                           : 0;
    it_response_free(&r);
    return shared;
}

static void test_batched_steps(void)
{
    const char *const batched_args[] = {"--batch-window-us", "3000", NULL};
    const char *const single_args[] = {"--batching=0", NULL};
    it_server a, b;
    CU_ASSERT_EQUAL_FATAL(it_start(&a, batched_args), 0);
    CU_ASSERT_EQUAL_FATAL(it_start(&b, single_args), 0);
    make_network(&a);
    make_network(&b);
    model m;
    CU_ASSERT_EQUAL_FATAL(load_model(&a, &m), 0);
    char id[16];
    for (int k = 0; k < STREAMS; k++) {
        snprintf(id, sizeof id, "k%d", k);
        make_session(&a, id, stream_rows[k]);
        make_session(&b, id, stream_rows[k]);
    }
    stream on_a[STREAMS], on_b[STREAMS];
    pthread_t th[STREAMS];
    for (int k = 0; k < STREAMS; k++) {
        memset(&on_a[k], 0, sizeof on_a[k]);
        memset(&on_b[k], 0, sizeof on_b[k]);
        on_a[k].server = &a;
        on_b[k].server = &b;
        on_a[k].k = on_b[k].k = k;
        pthread_create(&th[k], NULL, step_stream, &on_a[k]);
    }
    for (int k = 0; k < STREAMS; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < STREAMS; k++)
        step_stream(&on_b[k]);
    int same = 1;
    for (int k = 0; k < STREAMS; k++) {
        ref_state st;
        memset(&st, 0, sizeof st);
        int rows = stream_rows[k];
        for (int t = 0; t < STEPS; t++) {
            double u[MAX_ROWS][IN];
            step_inputs(10 + k, t, rows, u);
            ref_step(&m, &st, rows, u);
            for (int side = 0; side < 2; side++) {
                const cJSON *o = side ? on_b[k].outputs[t]
                                      : on_a[k].outputs[t];
                char what[64];
                snprintf(what, sizeof what, "%s stream %d step %d",
                         side ? "single" : "batched", k, t);
                if (!o || !rows_close(get(o, "r"), rows, UNITS, &st.s[0][0],
                                      UNITS, what) ||
                    !rows_close(get(o, "o"), rows, OUT, &st.o[0][0], OUT,
                                what))
                    same = 0;
            }
            cJSON_Delete(on_a[k].outputs[t]);
            cJSON_Delete(on_b[k].outputs[t]);
        }
    }
    CU_ASSERT(same);
    /* The streams did meet in batches: otherwise this proved nothing. */
    double shared = shared_batches(&a);
    fprintf(stderr, "outputs: %.0f batched steps stepped several sessions\n",
            shared);
    CU_ASSERT(shared > 0);
    CU_ASSERT_EQUAL(shared_batches(&b), 0);
    CU_ASSERT_EQUAL(it_stop(&a), 0);
    CU_ASSERT_EQUAL(it_stop(&b), 0);
}

int main(void)
{
    if (it_start(&server, NULL))
        return 2;
    static const tu_test tests[] = {
        {"the network", test_make_network},
        {"session steps answer with inner nodes", test_session_steps},
        {"session runs answer with inner nodes", test_session_run},
        {"the stateless forward answers with inner nodes",
         test_stateless_forward},
        {"unknown, repeated and empty lists are refused",
         test_bad_lists_are_refused},
        {"KServe infer names inner nodes, JSON", test_kserve_json},
        {"KServe infer names inner nodes, binary", test_kserve_binary},
        {"--max-output-floats counts the inner nodes",
         test_output_limit_counts_inner_nodes},
        {"the memory budget counts the inner nodes",
         test_memory_budget_counts_inner_nodes},
        {"batched steps answer with inner nodes", test_batched_steps},
        {NULL, NULL}};
    int rc = tu_run_suite("outputs", tests);
    int exit_status = it_stop(&server);
    if (exit_status != 0) {
        fprintf(stderr, "nerved exited with %d after SIGTERM\n", exit_status);
        rc = 1;
    }
    return rc;
}
