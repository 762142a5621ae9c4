/*
 * test_fit.c — training over HTTP: ridge and its accumulation over data
 * items, RLS continuing across requests, LMS and RLS going on from the
 * kept state (continue_state), intrinsic plasticity (ip), BPTT as a job with progress,
 * forward calls that keep running on the old weights during a fit and
 * switch to the new ones at its end, cancellation, and refusals.
 */
#include "itest.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static it_server server;

static cJSON *call(const char *method, const char *path, const char *body,
                   long expect)
{
    return it_call(&server, method, path, body, expect);
}

static const cJSON *get(const cJSON *j, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(j, key);
}

/* POSTs body to /v1/networks/{net}/fit; expects status and a message
 * holding needle. */
static void expect_error_on(const char *net, const char *body, long status,
                            const char *needle)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/%s/fit", net);
    cJSON *j = call("POST", path, body, status);
    const char *msg = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(j, "error"), "message"));
    if (!msg || !strstr(msg, needle))
        fprintf(stderr, "message '%s' lacks '%s'\n", msg ? msg : "", needle);
    CU_ASSERT(msg && strstr(msg, needle));
    cJSON_Delete(j);
}

static void create(const char *def)
{
    cJSON_Delete(call("POST", "/v1/networks", def, 201));
}

/* The data array of weight `weight` of node `node`, from the params route. */
static cJSON *weights(const char *net, const char *node, const char *weight)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/%s/params", net);
    cJSON *p = call("GET", path, NULL, 200);
    cJSON *entry = (cJSON *)get(get(get(p, "nodes"), node), weight);
    cJSON *data = entry ? cJSON_DetachItemFromObjectCaseSensitive(entry, "data")
                        : NULL;
    cJSON_Delete(p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    return data;
}

static double at(const cJSON *array, int i)
{
    return cJSON_GetNumberValue(cJSON_GetArrayItem(array, i));
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls a job until it is not running; returns its final document. */
static cJSON *wait_job(const char *net, const char *job)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/%s/fit/%s", net, job);
    for (int i = 0; i < 3000; i++) {
        cJSON *j = call("GET", path, NULL, 200);
        if (strcmp(cJSON_GetStringValue(get(j, "status")), "running") != 0)
            return j;
        cJSON_Delete(j);
        sleep_ms(10);
    }
    CU_FAIL("the job did not end");
    return NULL;
}

/* ---------------------------------------------------------------- ridge */

static const char *LINEAR =
    "{\"name\": \"lin\", \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 2},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 1}],"
    "\"edges\": [\"x >> o\"]}";

/* y = x1 + 2 x2 + 0.5 exactly: ridge with a tiny beta recovers it. */
static void test_ridge_over_http(void)
{
    create(LINEAR);
    cJSON *j = call("POST", "/v1/networks/lin/fit",
                    "{\"method\": \"ridge\", \"wait\": true, \"beta\": 1e-9,"
                    " \"inputs\": {\"x\": [[[1, 0], [0, 1], [1, 1], [2, 1],"
                    " [3, -1]]]},"
                    " \"targets\": {\"o\": [[[1.5], [2.5], [3.5], [4.5],"
                    " [1.5]]]}}",
                    200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "status")), "done");
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(get(j, "rows")), 5);
    cJSON_Delete(j);
    cJSON *W = weights("lin", "o", "W"), *b = weights("lin", "o", "b");
    TU_ASSERT_CLOSE(at(W, 0), 1.0, 1e-4);
    TU_ASSERT_CLOSE(at(W, 1), 2.0, 1e-4);
    TU_ASSERT_CLOSE(at(b, 0), 0.5, 1e-4);
    cJSON_Delete(W);
    cJSON_Delete(b);

    /* Two data items of different lengths accumulate into one solution:
     * the same as the five rows at once. */
    j = call("POST", "/v1/networks/lin/fit",
             "{\"method\": \"ridge\", \"wait\": true, \"beta\": 1e-9, \"data\": ["
             "{\"inputs\": {\"x\": [[[1, 0], [0, 1]]]},"
             " \"targets\": {\"o\": [[[1.5], [2.5]]]}},"
             "{\"inputs\": {\"x\": [[[1, 1], [2, 1], [3, -1]]]},"
             " \"targets\": {\"o\": [[[3.5], [4.5], [1.5]]]}}]}",
             200);
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(get(j, "rows")), 5);
    cJSON_Delete(j);
    W = weights("lin", "o", "W");
    TU_ASSERT_CLOSE(at(W, 1), 2.0, 1e-4);
    cJSON_Delete(W);
    cJSON_Delete(call("DELETE", "/v1/networks/lin", NULL, 200));
}

/* With a data directory, the fitted weights are on disk when the fit is
 * answered: a restarted daemon serves them. */
static void test_fit_survives_a_restart(void)
{
    char *dir = it_temp_dir("nerved-fit");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    const char *const args[] = {"--data-dir", dir, NULL};
    it_server keep = server, stored;
    CU_ASSERT_EQUAL_FATAL(it_start(&stored, args), 0);
    server = stored;
    create(LINEAR);
    cJSON_Delete(call("POST", "/v1/networks/lin/fit",
                      "{\"method\": \"ridge\", \"wait\": true, \"beta\": 1e-9,"
                      " \"inputs\": {\"x\": [[[1, 0], [0, 1], [1, 1]]]},"
                      " \"targets\": {\"o\": [[[1.5], [2.5], [3.5]]]}}", 200));
    cJSON *before = call("GET", "/v1/networks/lin/params", NULL, 200);
    CU_ASSERT_EQUAL(it_stop(&stored), 0);
    CU_ASSERT_EQUAL_FATAL(it_start(&stored, args), 0);
    server = stored;
    cJSON *after = call("GET", "/v1/networks/lin/params", NULL, 200);
    CU_ASSERT(cJSON_Compare(before, after, 1));
    cJSON_Delete(before);
    cJSON_Delete(after);
    CU_ASSERT_EQUAL(it_stop(&stored), 0);
    server = keep;
    it_remove_tree(dir);
    free(dir);
}

/* --------------------------------------------------------------- RLS */

static void rls_request(double *mse, int reset)
{
    /* y = 0.5 x1 - x2 over 40 steps of a fixed signal. */
    char body[8192];
    int n = snprintf(body, sizeof body, "{\"method\": \"force\", \"wait\": "
                     "true, \"alpha\": 0.001, \"reset\": %s, \"inputs\": "
                     "{\"x\": [[", reset ? "true" : "false");
    char targets[4096];
    int m = snprintf(targets, sizeof targets, "\"targets\": {\"o\": [[");
    for (int t = 0; t < 40; t++) {
        double a = sin(0.7 * t), c = cos(0.3 * t);
        n += snprintf(body + n, sizeof body - (size_t)n, "%s[%.6f, %.6f]",
                      t ? ", " : "", a, c);
        m += snprintf(targets + m, sizeof targets - (size_t)m, "%s[%.6f]",
                      t ? ", " : "", 0.5 * a - c);
    }
    snprintf(body + n, sizeof body - (size_t)n, "]]}, %s]]}}", targets);
    cJSON *j = call("POST", "/v1/networks/lin/fit", body, 200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "method")), "force");
    *mse = cJSON_GetNumberValue(get(j, "mse"));
    cJSON_Delete(j);
}

/* P persists: a second request starts where the first ended (lower error
 * from its first step); reset starts afresh from the trained weights. */
static void test_rls_continues_across_requests(void)
{
    create(LINEAR);
    double first, second, again;
    rls_request(&first, 0);
    rls_request(&second, 0);
    CU_ASSERT(second < first / 10);
    cJSON *W = weights("lin", "o", "W");
    TU_ASSERT_CLOSE(at(W, 0), 0.5, 1e-2);
    TU_ASSERT_CLOSE(at(W, 1), -1.0, 1e-2);
    cJSON_Delete(W);
    rls_request(&again, 1);
    CU_ASSERT(again < first);
    cJSON_Delete(call("DELETE", "/v1/networks/lin", NULL, 200));
}

/* An echo state network whose readout sees the reservoir's state, so a
 * request that starts from zero state and one that goes on from the last
 * differ. */
static const char *ESN_FMT =
    "{\"name\": \"%s\", \"seed\": 5, \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},"
    "{\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": 20,"
    " \"spectral_radius\": 0.9, \"leaky_rate\": 0.5},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 1,"
    " \"W_initializer\": \"Zeros\"}],"
    "\"edges\": [\"x >> r >> o\"]}";

/* One online request over steps [from, from + len) of a fixed signal;
 * returns the job document. */
static cJSON *online_request(const char *net, const char *options, int from,
                             int len, long expect)
{
    static char body[16384];
    char targets[8192];
    int n = snprintf(body, sizeof body, "{%s, \"wait\": true, \"inputs\": "
                     "{\"x\": [[", options);
    int m = snprintf(targets, sizeof targets, "\"targets\": {\"o\": [[");
    for (int t = from; t < from + len; t++) {
        double u = sin(0.37 * t) + 0.5 * cos(0.11 * t);
        n += snprintf(body + n, sizeof body - (size_t)n, "%s[%.6f]",
                      t > from ? ", " : "", u);
        m += snprintf(targets + m, sizeof targets - (size_t)m, "%s[%.6f]",
                      t > from ? ", " : "", sin(0.37 * (t - 2)));
    }
    snprintf(body + n, sizeof body - (size_t)n, "]]}, %s]]}}", targets);
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/%s/fit", net);
    return call("POST", path, body, expect);
}

static void create_esn(const char *name)
{
    char def[1024];
    snprintf(def, sizeof def, ESN_FMT, name);
    create(def);
}

static void delete_net(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/%s", name);
    cJSON_Delete(call("DELETE", path, NULL, 200));
}

/* With continue_state, two requests of 40 steps train as one of 80 (the
 * reservoir goes on where it stopped, P or LMS's weights too); without it
 * the second starts from zero state, and the result differs. Both for LMS
 * and for RLS with a forgetting factor. */
static void test_online_continue_state(void)
{
    const char *const rules[] = {
        "\"method\": \"lms\", \"lr\": 0.02",
        "\"method\": \"rls\", \"alpha\": 0.01, \"forgetting\": 0.98"};
    for (int k = 0; k < 2; k++) {
        char with[256];
        snprintf(with, sizeof with, "%s, \"continue_state\": true", rules[k]);
        create_esn("whole");
        create_esn("halves");
        create_esn("fresh");
        cJSON *j = online_request("whole", rules[k], 0, 80, 200);
        CU_ASSERT_EQUAL(cJSON_GetNumberValue(get(j, "state_steps")), 80);
        CU_ASSERT(cJSON_IsFalse(get(j, "continue_state")));
        cJSON_Delete(j);
        cJSON_Delete(online_request("halves", with, 0, 40, 200));
        j = online_request("halves", with, 40, 40, 200);
        CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "method")),
                               k ? "rls" : "lms");
        CU_ASSERT_EQUAL(cJSON_GetNumberValue(get(j, "state_steps")), 80);
        CU_ASSERT(cJSON_IsTrue(get(j, "continue_state")));
        cJSON_Delete(j);
        cJSON_Delete(online_request("fresh", rules[k], 0, 40, 200));
        j = online_request("fresh", rules[k], 40, 40, 200);
        CU_ASSERT_EQUAL(cJSON_GetNumberValue(get(j, "state_steps")), 40);
        cJSON_Delete(j);

        cJSON *a = weights("whole", "o", "W"), *b = weights("halves", "o", "W"),
              *c = weights("fresh", "o", "W");
        double differ = 0;
        for (int i = 0; i < 20; i++) {
            TU_ASSERT_CLOSE(at(b, i), at(a, i), 1e-5 + 1e-4 * fabs(at(a, i)));
            differ = fmax(differ, fabs(at(c, i) - at(a, i)));
        }
        CU_ASSERT(differ > 1e-3);
        cJSON_Delete(a);
        cJSON_Delete(b);
        cJSON_Delete(c);

        /* A kept state of one sequence does not go on with two. */
        char body[512];
        snprintf(body, sizeof body, "{%s, \"wait\": true, \"inputs\": {\"x\": "
                 "[[[1]], [[2]]]}, \"targets\": {\"o\": [[[1]], [[2]]]}}",
                 with);
        it_response r;
        CU_ASSERT_EQUAL_FATAL(it_request(&server, "POST",
                                         "/v1/networks/halves/fit",
                                         "application/json", body,
                                         strlen(body), &r), 0);
        CU_ASSERT(r.status >= 400 && r.status < 500);
        CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "kept state holds 1"));
        it_response_free(&r);
        delete_net("whole");
        delete_net("halves");
        delete_net("fresh");
    }
}

/* A fit of `steps` steps of one sequence, not waited for; returns the job
 * id (malloc'd). */
static char *start_long_online(const char *net, const char *options,
                               int steps, double target)
{
    size_t cap = 64 + 48 * (size_t)steps;
    char *body = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    size_t n = (size_t)snprintf(body, cap, "{%s, \"inputs\": {\"x\": [[",
                                options);
    for (int t = 0; t < steps; t++)
        n += (size_t)snprintf(body + n, cap - n, "%s[%.4f]", t ? "," : "",
                              sin(0.37 * t));
    n += (size_t)snprintf(body + n, cap - n, "]]}, \"targets\": {\"o\": [[");
    for (int t = 0; t < steps; t++)
        n += (size_t)snprintf(body + n, cap - n, "%s[%g]", t ? "," : "",
                              target);
    snprintf(body + n, cap - n, "]]}}");
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/%s/fit", net);
    cJSON *j = call("POST", path, body, 202);
    free(body);
    const char *job = cJSON_GetStringValue(get(j, "job"));
    char *id = job ? strdup(job) : NULL;
    cJSON_Delete(j);
    CU_ASSERT_PTR_NOT_NULL_FATAL(id);
    return id;
}

/* A cancelled online fit and a failed one change nothing: not the weights,
 * not P, not the kept state. "cut" goes through both between two requests
 * that "ref" makes alone; the two networks then hold the same bits. The
 * cancelled job is long (90,000 steps of a 200-unit reservoir) and stops
 * within a step of the DELETE. */
static void test_online_cancel_and_failure_change_nothing(void)
{
    const char *const rules[] = {
        "\"method\": \"lms\", \"lr\": 0.002, \"continue_state\": true",
        "\"method\": \"rls\", \"alpha\": 0.01, \"forgetting\": 0.98, "
        "\"continue_state\": true"};
    const char *const diverging[] = {
        "\"method\": \"lms\", \"lr\": 1e6, \"continue_state\": true",
        "\"method\": \"rls\", \"alpha\": 0.01, \"forgetting\": 0.01, "
        "\"continue_state\": true"};
    for (int k = 0; k < 2; k++) {
        const char *names[] = {"ref", "cut"};
        for (int i = 0; i < 2; i++) {
            char def[1024];
            snprintf(def, sizeof def,
                     "{\"name\": \"%s\", \"seed\": 5, \"nodes\": ["
                     "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},"
                     "{\"name\": \"r\", \"type\": \"Reservoir\", "
                     "\"num_unit\": 200, \"spectral_radius\": 0.9, "
                     "\"leaky_rate\": 0.5},"
                     "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 1,"
                     " \"W_initializer\": \"Zeros\"}],"
                     "\"edges\": [\"x >> r >> o\"]}", names[i]);
            create(def);
            cJSON_Delete(online_request(names[i], rules[k], 0, 40, 200));
        }

        char *job = start_long_online("cut", rules[k], 90000, 0.5);
        char path[128];
        snprintf(path, sizeof path, "/v1/networks/cut/fit/%s", job);
        cJSON *j = call("DELETE", path, NULL, 200);
        CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "status")),
                               "cancelled");
        cJSON_Delete(j);
        free(job);

        /* A rate that runs away drives the weights to inf. */
        job = start_long_online("cut", diverging[k], 400, 0.5);
        j = wait_job("cut", job);
        CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "status")),
                               "failed");
        cJSON_Delete(j);
        free(job);

        for (int i = 0; i < 2; i++) {
            j = online_request(names[i], rules[k], 40, 40, 200);
            /* The kept state went on from step 40, not from where the
             * cancelled job stopped. */
            CU_ASSERT_EQUAL(cJSON_GetNumberValue(get(j, "state_steps")), 80);
            cJSON_Delete(j);
        }
        cJSON *a = weights("ref", "o", "W"), *b = weights("cut", "o", "W");
        CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(a), 200);
        int same = 1;
        for (int i = 0; i < 200; i++)
            same &= at(a, i) == at(b, i);
        CU_ASSERT(same);
        cJSON_Delete(a);
        cJSON_Delete(b);
        delete_net("ref");
        delete_net("cut");
    }
}

/* The online trainer a network keeps (P, its weights, and with
 * continue_state a graph and session of its own) is charged to the memory
 * budget for as long as it is kept, and given back with the network. */
static void test_kept_trainer_is_charged(void)
{
    const char *series = "\nnerved_memory_charged_bytes ";
    double before = it_metric_settled(&server, series);
    CU_ASSERT_FATAL(before >= 0);
    char def[1024];
    snprintf(def, sizeof def,
             "{\"name\": \"held\", \"seed\": 5, \"nodes\": ["
             "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},"
             "{\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": 200},"
             "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 1}],"
             "\"edges\": [\"x >> r >> o\"]}");
    create(def);
    double built = it_metric_settled(&server, series);
    cJSON_Delete(online_request("held", "\"method\": \"rls\", "
                                "\"continue_state\": true", 0, 40, 200));
    double kept = it_metric_settled(&server, series);
    /* P and the weights: 201 features and the 1 unit, in doubles. */
    double p_bytes = (201.0 * 201.0 + 201.0) * 8.0;
    if (!(kept - built >= p_bytes))
        fprintf(stderr, "charged %.0f -> %.0f with a kept trainer\n", built,
                kept);
    CU_ASSERT(kept - built >= p_bytes);
    /* A request without continue_state drops the kept state, not P. */
    cJSON_Delete(online_request("held", "\"method\": \"rls\"", 40, 40, 200));
    double dropped = it_metric_settled(&server, series);
    if (!(dropped < kept && dropped - built >= p_bytes))
        fprintf(stderr, "charged %.0f -> %.0f -> %.0f without kept state\n",
                built, kept, dropped);
    CU_ASSERT(dropped < kept);
    CU_ASSERT(dropped - built >= p_bytes);
    delete_net("held");
    CU_ASSERT_EQUAL(it_metric_settled(&server, series), before);
}

/* A fit's sequences are read into float32 as the body arrives, not into a
 * tree of JSON numbers (about 80 bytes a value): under a budget of 48 MB,
 * a body of a million numbers (8 MB of text, 4 MB of floats) trains; as a
 * tree it would need some 80 MB and was refused. */
static void test_fit_body_is_read_as_floats(void)
{
    const char *const args[] = {"--max-memory", "48000000", NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    cJSON_Delete(it_call(&s, "POST", "/v1/networks",
                         "{\"name\": \"wide\", \"nodes\": ["
                         "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 100},"
                         "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 1}],"
                         "\"edges\": [\"x >> o\"]}", 201));
    enum { T = 10000, F = 100 };
    size_t cap = (size_t)T * (F * 7 + 16) + 256;
    char *body = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    size_t n = (size_t)snprintf(body, cap, "{\"method\": \"ridge\", \"wait\": "
                                "true, \"inputs\": {\"x\": [[");
    for (int t = 0; t < T; t++) {
        body[n++] = t ? ',' : '[';
        if (t)
            body[n++] = '[';
        for (int f = 0; f < F; f++)
            n += (size_t)snprintf(body + n, cap - n, "%s%.3f", f ? "," : "",
                                  0.001 * ((t * 7 + f * 13) % 1000));
        body[n++] = ']';
    }
    n += (size_t)snprintf(body + n, cap - n, "]]}, \"targets\": {\"o\": [[");
    for (int t = 0; t < T; t++)
        n += (size_t)snprintf(body + n, cap - n, "%s[%.3f]", t ? "," : "",
                              0.001 * (t % 1000));
    snprintf(body + n, cap - n, "]]}}");
    cJSON *j = it_call(&s, "POST", "/v1/networks/wide/fit", body, 200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "status")), "done");
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(get(j, "rows")), T);
    cJSON_Delete(j);
    free(body);
    /* Nothing of it stays charged once the job has ended. */
    double left = it_metric_settled(&s, "\nnerved_memory_charged_bytes ");
    CU_ASSERT(left >= 0 && left < 1e6);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

/* ------------------------------------------------- intrinsic plasticity */

/* method ip adapts an IPReservoir's gain a and bias b from the inputs
 * alone; the fitted values are served (params) and the outputs change. */
static void test_ip_over_http(void)
{
    create("{\"name\": \"ipn\", \"seed\": 2, \"nodes\": ["
           "{\"name\": \"u\", \"type\": \"Input\", \"shape\": 1},"
           "{\"name\": \"r\", \"type\": \"IPReservoir\", \"num_unit\": 8,"
           " \"spectral_radius\": 0.9, \"rc_connectivity\": 0.5,"
           " \"input_connectivity\": 1, \"sigma\": 0.2,"
           " \"learning_rate\": 0.01}],"
           "\"edges\": [\"u >> r\"]}");
    char body[4096];
    int n = snprintf(body, sizeof body, "{\"method\": \"ip\", \"wait\": true, "
                     "\"epochs\": 3, \"warmup\": 5, \"inputs\": {\"u\": [[");
    for (int t = 0; t < 50; t++)
        n += snprintf(body + n, sizeof body - (size_t)n, "%s[%.5f]",
                      t ? ", " : "", sin(0.4 * t));
    snprintf(body + n, sizeof body - (size_t)n, "]]}}");
    cJSON *j = call("POST", "/v1/networks/ipn/fit", body, 200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "method")), "ip");
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "status")), "done");
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(get(j, "updates")), 3 * 45);
    cJSON_Delete(j);
    cJSON *a = weights("ipn", "r", "a"), *b = weights("ipn", "r", "b");
    double moved = 0;
    for (int i = 0; i < 8; i++)
        moved = fmax(moved, fabs(at(a, i) - 1) + fabs(at(b, i)));
    CU_ASSERT(moved > 1e-3);
    cJSON_Delete(a);
    cJSON_Delete(b);

    expect_error_on("ipn", "{\"method\": \"ip\", \"inputs\": {\"u\": [[[1]]]},"
                    " \"targets\": {\"r\": [[[1,1,1,1,1,1,1,1]]]}}", 400,
                    "\"targets\" is not an option of ip");
    expect_error_on("ipn", "{\"method\": \"ip\", \"epochs\": 0, \"inputs\": "
                    "{\"u\": [[[1]]]}}", 400, "\"epochs\" must be an integer");
    expect_error_on("ipn", "{\"method\": \"ip\", \"warmup\": 1, \"inputs\": "
                    "{\"u\": [[[1]]]}}", 400, "\"warmup\" (1) must be shorter");
    expect_error_on("ipn", "{\"method\": \"ip\", \"beta\": 1, \"inputs\": "
                    "{\"u\": [[[1]]]}}", 400, "\"beta\" is not an option of ip");
    delete_net("ipn");
    create(LINEAR);
    expect_error_on("lin", "{\"method\": \"ip\", \"inputs\": {\"x\": "
                    "[[[1, 2]]]}}", 422, "no IPReservoir");
    delete_net("lin");
}

/* ---------------------------------------------------------------- BPTT */

static const char *RNN =
    "{\"name\": \"rnn\", \"seed\": 3, \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},"
    "{\"name\": \"r\", \"type\": \"VanillaRNN\", \"num_unit\": 16,"
    " \"activation\": \"tanh\"},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 1}],"
    "\"edges\": [\"x >> r >> o\"]}";

/* A delay task: 8 sequences of 20 steps, y(t) = x(t - 1). */
static char *delay_task(const char *options)
{
    size_t size = 32768;
    char *body = malloc(size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    int n = snprintf(body, size, "{\"method\": \"bptt\", %s, \"inputs\": "
                     "{\"x\": [", options);
    char *tg = malloc(size);
    int m = snprintf(tg, size, "\"targets\": {\"o\": [");
    for (int s = 0; s < 8; s++) {
        n += snprintf(body + n, size - (size_t)n, "%s[", s ? ", " : "");
        m += snprintf(tg + m, size - (size_t)m, "%s[", s ? ", " : "");
        for (int t = 0; t < 20; t++) {
            double x = sin(0.5 * t + s), prev = t ? sin(0.5 * (t - 1) + s) : 0;
            n += snprintf(body + n, size - (size_t)n, "%s[%.5f]", t ? ", " : "",
                          x);
            m += snprintf(tg + m, size - (size_t)m, "%s[%.5f]", t ? ", " : "",
                          prev);
        }
        n += snprintf(body + n, size - (size_t)n, "]");
        m += snprintf(tg + m, size - (size_t)m, "]");
    }
    snprintf(body + n, size - (size_t)n, "]}, %s]}}", tg);
    free(tg);
    return body;
}

static const char *SEQ_INPUT = "{\"inputs\": {\"x\": [[[0.3], [-0.2], [0.9]]]}}";

/* The outputs of a fresh session over SEQ_INPUT, as text. */
static char *probe(void)
{
    cJSON_Delete(call("POST", "/v1/networks/rnn/sessions",
                      "{\"id\": \"probe\"}", 201));
    cJSON *j = call("POST", "/v1/networks/rnn/sessions/probe/run", SEQ_INPUT,
                    200);
    char *text = cJSON_PrintUnformatted(get(j, "outputs"));
    cJSON_Delete(j);
    cJSON_Delete(call("DELETE", "/v1/networks/rnn/sessions/probe", NULL, 200));
    return text;
}

static void test_bptt_job_with_progress_and_atomic_swap(void)
{
    create(RNN);
    char *before = probe();
    char *body = delay_task("\"epochs\": 300, \"batch_size\": 4, "
                            "\"window\": 10, \"clip_norm\": 5, "
                            "\"optimizer\": {\"type\": \"adam\", \"lr\": 0.01},"
                            " \"schedule\": {\"type\": \"step\", "
                            "\"step_size\": 100, \"gamma\": 0.5}");
    cJSON *j = call("POST", "/v1/networks/rnn/fit", body, 202);
    free(body);
    char job[24];
    snprintf(job, sizeof job, "%s", cJSON_GetStringValue(get(j, "job")));
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "status")), "running");
    cJSON_Delete(j);

    /* A second fit on the same network waits its turn. */
    cJSON_Delete(call("POST", "/v1/networks/rnn/fit",
                      "{\"method\": \"bptt\", \"inputs\": {\"x\": [[[1]]]},"
                      " \"targets\": {\"o\": [[[1]]]}}", 409));

    /* While it runs, sessions see the old weights, whole. */
    char *seen[64];
    int n_seen = 0, running = 1;
    while (running && n_seen < 64) {
        seen[n_seen++] = probe();
        char path[96];
        snprintf(path, sizeof path, "/v1/networks/rnn/fit/%s", job);
        j = call("GET", path, NULL, 200);
        running = strcmp(cJSON_GetStringValue(get(j, "status")), "running") == 0;
        cJSON_Delete(j);
    }
    j = wait_job("rnn", job);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "status")), "done");
    const cJSON *history = get(j, "history");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(history), 300);
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(get(j, "epoch")), 300);
    double first = at(history, 0), last = at(history, 299);
    if (!(last < first / 10))
        fprintf(stderr, "bptt over http: loss %g -> %g\n", first, last);
    CU_ASSERT(last < first / 10);
    cJSON_Delete(j);

    char *after = probe();
    CU_ASSERT(strcmp(before, after) != 0);
    for (int i = 0; i < n_seen; i++) {
        CU_ASSERT(strcmp(seen[i], before) == 0 || strcmp(seen[i], after) == 0);
        free(seen[i]);
    }
    free(before);
    free(after);

    j = call("GET", "/v1/networks/rnn/fit", NULL, 200);
    CU_ASSERT(cJSON_GetArraySize(get(j, "jobs")) >= 1);
    cJSON_Delete(j);
}

static void test_cancel_keeps_the_weights(void)
{
    char *before = probe();
    char *body = delay_task("\"epochs\": 1000000");
    cJSON *j = call("POST", "/v1/networks/rnn/fit", body, 202);
    free(body);
    char path[96];
    snprintf(path, sizeof path, "/v1/networks/rnn/fit/%s",
             cJSON_GetStringValue(get(j, "job")));
    cJSON_Delete(j);
    sleep_ms(50);
    j = call("DELETE", path, NULL, 200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "status")), "cancelled");
    CU_ASSERT(cJSON_GetNumberValue(get(j, "epoch")) < 1000000);
    cJSON_Delete(j);
    j = call("GET", path, NULL, 200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(get(j, "status")), "cancelled");
    cJSON_Delete(j);
    char *after = probe();
    CU_ASSERT_STRING_EQUAL(before, after);
    free(before);
    free(after);
}

/* A run with "forced" feeds the given values back instead of the node's
 * own output (what generation after a teacher-forced warm-up needs). */
static void test_forced_run(void)
{
    create("{\"name\": \"loop\", \"seed\": 4, \"nodes\": ["
           "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},"
           "{\"name\": \"r\", \"type\": \"Dense\", \"num_unit\": 2},"
           "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 1}],"
           "\"edges\": [\"x >> r >> o\", \"r << o\"]}");
    cJSON_Delete(call("POST", "/v1/networks/loop/sessions", "{\"id\": \"a\"}",
                      201));
    cJSON_Delete(call("POST", "/v1/networks/loop/sessions", "{\"id\": \"b\"}",
                      201));
    const char *run = "{\"inputs\": {\"x\": [[[1], [2], [3]]]}}";
    const char *forced = "{\"inputs\": {\"x\": [[[1], [2], [3]]]}, "
                         "\"forced\": {\"o\": [[[5], [-5], [5]]]}}";
    cJSON *a = call("POST", "/v1/networks/loop/sessions/a/run", run, 200);
    cJSON *b = call("POST", "/v1/networks/loop/sessions/b/run", forced, 200);
    const cJSON *oa = get(get(a, "outputs"), "o"), *ob = get(get(b, "outputs"), "o");
    /* Step 0 sees zeros either way; later steps see different feedback. */
    CU_ASSERT_EQUAL(at(cJSON_GetArrayItem(cJSON_GetArrayItem(oa, 0), 0), 0),
                    at(cJSON_GetArrayItem(cJSON_GetArrayItem(ob, 0), 0), 0));
    CU_ASSERT(at(cJSON_GetArrayItem(cJSON_GetArrayItem(oa, 0), 2), 0) !=
              at(cJSON_GetArrayItem(cJSON_GetArrayItem(ob, 0), 2), 0));
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(call("POST", "/v1/networks/loop/sessions/a/run",
                      "{\"inputs\": {\"x\": [[[1]]]}, \"forced\": "
                      "{\"zz\": [[[1]]]}}", 400));
    cJSON_Delete(call("POST", "/v1/networks/loop/sessions/a/run",
                      "{\"inputs\": {\"x\": [[[1]]]}, \"forced\": "
                      "{\"r\": [[[1, 1]]]}}", 400));
    cJSON_Delete(call("POST", "/v1/networks/loop/sessions/a/forward",
                      "{\"inputs\": {\"x\": [[1]]}, \"forced\": {}}", 400));
    cJSON_Delete(call("DELETE", "/v1/networks/loop", NULL, 200));
}

/* ------------------------------------------------------------- refusals */

static void expect_error(const char *body, long status, const char *needle)
{
    cJSON *j = call("POST", "/v1/networks/rnn/fit", body, status);
    const char *msg = cJSON_GetStringValue(get(get(j, "error"), "message"));
    if (!msg || !strstr(msg, needle))
        fprintf(stderr, "message '%s' lacks '%s'\n", msg ? msg : "", needle);
    CU_ASSERT(msg && strstr(msg, needle));
    cJSON_Delete(j);
}

static void test_refusals(void)
{
    const char *data = "\"inputs\": {\"x\": [[[1], [2]]]}, "
                       "\"targets\": {\"o\": [[[1], [2]]]}";
    char body[512];
    /* Tests before this one may have ended jobs in failure on purpose. */
    long failed_before =
        (long)it_metric(&server, "\nnerved_fits_total{outcome=\"failed\"} ");
    CU_ASSERT(failed_before >= 0);
    expect_error("{\"inputs\": {}}", 400, "\"method\" is required");
    expect_error("{\"method\": \"sgd\"}", 400, "ridge, rls, force, bptt");
    snprintf(body, sizeof body, "{\"method\": \"rls\", \"forgetting\": 0, "
             "%s}", data);
    expect_error(body, 400, "\"forgetting\" must be in (0, 1]");
    snprintf(body, sizeof body, "{\"method\": \"rls\", \"forgetting\": 1.5, "
             "%s}", data);
    expect_error(body, 400, "\"forgetting\" must be a number in [0, 1]");
    snprintf(body, sizeof body, "{\"method\": \"lms\", \"forgetting\": 0.9, "
             "%s}", data);
    expect_error(body, 400, "\"forgetting\" is not an option of lms");
    snprintf(body, sizeof body, "{\"method\": \"rls\", \"lr\": 0.1, %s}",
             data);
    expect_error(body, 400, "\"lr\" is not an option of rls");
    snprintf(body, sizeof body, "{\"method\": \"lms\", \"continue_state\": "
             "1, %s}", data);
    expect_error(body, 400, "\"continue_state\" must be true or false");
    snprintf(body, sizeof body, "{\"method\": \"bptt\", \"epoch\": 3, %s}",
             data);
    expect_error(body, 400, "\"epoch\" is not an option of bptt");
    snprintf(body, sizeof body, "{\"method\": \"ridge\", \"epochs\": 3, %s}",
             data);
    expect_error(body, 400, "\"epochs\" is not an option of ridge");
    snprintf(body, sizeof body, "{\"method\": \"bptt\", \"epochs\": 0, %s}",
             data);
    expect_error(body, 400, "\"epochs\" must be an integer in [1,");
    snprintf(body, sizeof body, "{\"method\": \"bptt\", \"optimizer\": "
             "{\"type\": \"adam\", \"lr\": -1}, %s}", data);
    expect_error(body, 400, "optimizer.\"lr\"");
    expect_error("{\"method\": \"bptt\", \"inputs\": {\"x\": [[[1], [2]]]}, "
                 "\"targets\": {\"zz\": [[[1], [2]]]}}", 400,
                 "no node 'zz'");
    expect_error("{\"method\": \"bptt\", \"inputs\": {\"x\": [[[1], [2]]]}, "
                 "\"targets\": {\"o\": [[[1], [2], [3]]]}}", 400,
                 "targets.o has shape");
    expect_error("{\"method\": \"bptt\", \"inputs\": {\"x\": [[[1], [2]]]}, "
                 "\"targets\": {\"r\": [[[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"
                 "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]]]}}", 400, "not an exit");
    expect_error("{\"method\": \"ridge\", \"inputs\": {\"x\": [[[1], [2]]]}, "
                 "\"targets\": {\"r\": [[[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"
                 "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]]]}}", 422,
                 "'r' (VanillaRNN) is not a linear readout");
    snprintf(body, sizeof body, "{\"method\": \"ridge\", \"warmup\": 2, %s}",
             data);
    expect_error(body, 400, "\"warmup\" (2) must be shorter");
    cJSON_Delete(call("GET", "/v1/networks/rnn/fit/f999", NULL, 404));
    cJSON_Delete(call("POST", "/v1/networks/nope/fit",
                      "{\"method\": \"ridge\"}", 404));

    it_response r;
    CU_ASSERT_EQUAL_FATAL(it_request(&server, "GET", "/metrics", NULL, NULL, 0,
                                     &r), 0);
    /* The jobs of the tests so far: several done, three cancelled, no more
     * failed than before these refusals (a refusal starts no job), none
     * running now. */
    const struct {
        const char *series;
        long min, max;
    } want[] = {{"\nnerved_fits_total{outcome=\"done\"} ", 3, 1000},
                {"\nnerved_fits_total{outcome=\"cancelled\"} ", 3, 3},
                {"\nnerved_fits_total{outcome=\"failed\"} ", failed_before,
                 failed_before},
                {"\nnerved_fits_running ", 0, 0}};
    for (size_t k = 0; k < sizeof want / sizeof *want; k++) {
        const char *line = strstr(r.body, want[k].series);
        CU_ASSERT_PTR_NOT_NULL_FATAL(line);
        long v = atol(line + strlen(want[k].series));
        if (v < want[k].min || v > want[k].max)
            fprintf(stderr, "%s= %ld, want %ld..%ld\n", want[k].series + 1, v,
                    want[k].min, want[k].max);
        CU_ASSERT(v >= want[k].min && v <= want[k].max);
    }
    it_response_free(&r);
}

int main(void)
{
    if (it_start(&server, NULL)) {
        fprintf(stderr, "cannot start nerved\n");
        return 1;
    }
    static const tu_test tests[] = {
        {"ridge over http, accumulated over data items", test_ridge_over_http},
        {"a fit survives a restart (--data-dir)", test_fit_survives_a_restart},
        {"rls continues across requests", test_rls_continues_across_requests},
        {"lms and rls continue the state when asked",
         test_online_continue_state},
        {"a cancelled or failed online fit changes nothing",
         test_online_cancel_and_failure_change_nothing},
        {"a kept online trainer is charged to the budget",
         test_kept_trainer_is_charged},
        {"a fit's body is read as floats, not a tree",
         test_fit_body_is_read_as_floats},
        {"ip adapts an IPReservoir over http", test_ip_over_http},
        {"a bptt job: progress, sessions keep running, atomic swap",
         test_bptt_job_with_progress_and_atomic_swap},
        {"cancelling keeps the weights", test_cancel_keeps_the_weights},
        {"a run with forced feedback", test_forced_run},
        {"bad requests are refused by name", test_refusals},
        {NULL, NULL}};
    int rc = tu_run_suite("fit", tests);
    if (it_stop(&server) != 0)
        rc = 1;
    return rc;
}
