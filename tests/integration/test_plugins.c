/*
 * test_plugins.c — the customization guide's node types, loaded into a
 * started daemon as a plugin and exercised over HTTP with values computed
 * here from the weights the daemon reports; and plugins the daemon must
 * refuse, each with its reason.
 */
#include "itest.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Weight `w` of node `node` of network `net`, as a flat float array of
 * *n values (caller frees). */
static float *weight(const char *net, const char *node, const char *w, int *n)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/%s/params", net);
    cJSON *p = call("GET", path, NULL, 200);
    const cJSON *data = get(get(get(get(p, "nodes"), node), w), "data");
    *n = cJSON_GetArraySize(data);
    float *v = calloc((size_t)(*n ? *n : 1), sizeof *v);
    int k = 0;
    for (const cJSON *c = data ? data->child : NULL; c; c = c->next)
        v[k++] = (float)c->valuedouble;
    cJSON_Delete(p);
    return v;
}

/* Row 0 of output `exit` of a reply, as floats. */
static void row(const cJSON *reply, const char *exit, float *out, int n)
{
    const cJSON *r = cJSON_GetArrayItem(get(get(reply, "outputs"), exit), 0);
    for (int k = 0; k < n; k++)
        out[k] = (float)cJSON_GetArrayItem(r, k)->valuedouble;
}

static void test_types_are_listed(void)
{
    cJSON *j = call("GET", "/v1/node-types", NULL, 200);
    const char *want[] = {"DotNode", "VRNN", "FeedBackDotNode",
                          "GuideDropout"};
    for (int k = 0; k < 4; k++) {
        const cJSON *found = NULL;
        for (const cJSON *t = get(j, "node_types")->child; t; t = t->next)
            if (strcmp(cJSON_GetStringValue(get(t, "name")), want[k]) == 0)
                found = t;
        CU_ASSERT_PTR_NOT_NULL(found);
        if (found && k == 0)
            CU_ASSERT(cJSON_IsFalse(get(found, "supports_feedback")));
        if (found && k == 1)
            CU_ASSERT(cJSON_IsTrue(get(found, "stateful")));
        if (found && k == 2)
            CU_ASSERT(cJSON_IsTrue(get(found, "supports_feedback")));
    }
    cJSON_Delete(j);
}

static void test_dot_node(void)
{
    cJSON_Delete(call("POST", "/v1/networks",
                      "{\"name\": \"dot\", \"nodes\": ["
                      "{\"name\": \"i1\", \"type\": \"Input\", \"shape\": 1},"
                      "{\"name\": \"i2\", \"type\": \"Input\", \"shape\": 2},"
                      "{\"name\": \"d\", \"type\": \"DotNode\", \"num_unit\": 4}],"
                      "\"edges\": [\"{i1, i2} >> d\"]}", 201));
    int n;
    float *W = weight("dot", "d", "W", &n);
    CU_ASSERT_EQUAL_FATAL(n, 12);
    cJSON *j = call("POST", "/v1/networks/dot/forward",
                    "{\"inputs\": {\"i1\": [[2]], \"i2\": [[-1, 0.5]]}}", 200);
    float y[4], x[3] = {2, -1, 0.5f};
    row(j, "d", y, 4);
    for (int u = 0; u < 4; u++) {
        double e = 0;
        for (int k = 0; k < 3; k++)
            e += (double)x[k] * W[k * 4 + u];
        CU_ASSERT_DOUBLE_EQUAL(y[u], e, 1e-5);
    }
    cJSON_Delete(j);
    free(W);
}

static void test_vrnn(void)
{
    cJSON_Delete(call("POST", "/v1/networks",
                      "{\"name\": \"vrnn\", \"nodes\": ["
                      "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 2},"
                      "{\"name\": \"v\", \"type\": \"VRNN\", \"num_unit\": 3}],"
                      "\"edges\": [\"x >> v\"]}", 201));
    int n;
    float *wi = weight("vrnn", "v", "wi", &n);
    CU_ASSERT_EQUAL_FATAL(n, 6);
    float *wr = weight("vrnn", "v", "wr", &n);
    CU_ASSERT_EQUAL_FATAL(n, 9);
    cJSON *s = call("POST", "/v1/networks/vrnn/sessions", NULL, 201);
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/vrnn/sessions/%s/forward",
             cJSON_GetStringValue(get(s, "id")));
    cJSON_Delete(s);
    float xs[3][2] = {{1, 0}, {0, 1}, {0.5f, -0.5f}};
    double state[3] = {0, 0, 0};
    for (int t = 0; t < 3; t++) {
        char body[128];
        snprintf(body, sizeof body, "{\"inputs\": {\"x\": [[%g, %g]]}}",
                 xs[t][0], xs[t][1]);
        cJSON *j = call("POST", path, body, 200);
        float y[3];
        row(j, "v", y, 3);
        double next[3];
        for (int u = 0; u < 3; u++) {
            next[u] = 0;
            for (int k = 0; k < 2; k++)
                next[u] += xs[t][k] * (double)wi[k * 3 + u];
            for (int k = 0; k < 3; k++)
                next[u] += state[k] * wr[k * 3 + u];
        }
        memcpy(state, next, sizeof state);
        for (int u = 0; u < 3; u++)
            CU_ASSERT_DOUBLE_EQUAL(y[u], state[u], 1e-4);
        cJSON_Delete(j);
    }
    free(wi);
    free(wr);
}

static void test_feedback_refused_and_accepted(void)
{
    /* i >> d >> o, d << o with a DotNode: refused, naming d. */
    cJSON *j = call("POST", "/v1/networks",
                    "{\"nodes\": [{\"name\": \"i\", \"type\": \"Input\", "
                    "\"shape\": 2}, {\"name\": \"d\", \"type\": \"DotNode\", "
                    "\"num_unit\": 3}, {\"name\": \"o\", \"type\": \"DotNode\", "
                    "\"num_unit\": 2}], \"edges\": [\"i >> d >> o\", "
                    "\"d << o\"]}", 422);
    const char *msg = cJSON_GetStringValue(get(get(j, "error"), "message"));
    CU_ASSERT(msg && strstr(msg, "'d'") != NULL);
    CU_ASSERT(msg && strstr(msg, "does not support feedback") != NULL);
    cJSON_Delete(j);

    /* The same graph with a FeedBackDotNode: accepted, feedback one step
     * late. */
    cJSON_Delete(call("POST", "/v1/networks",
                      "{\"name\": \"fbdot\", \"nodes\": [{\"name\": \"i\", "
                      "\"type\": \"Input\", \"shape\": 2}, {\"name\": \"d\", "
                      "\"type\": \"FeedBackDotNode\", \"num_unit\": 3}, "
                      "{\"name\": \"o\", \"type\": \"DotNode\", \"num_unit\": "
                      "2}], \"edges\": [\"i >> d >> o\", \"d << o\"]}", 201));
    int n;
    float *Wff = weight("fbdot", "d", "Wff", &n);
    float *Wfb = weight("fbdot", "d", "Wfb", &n);
    CU_ASSERT_EQUAL_FATAL(n, 6);
    float *Wo = weight("fbdot", "o", "W", &n);
    cJSON *s = call("POST", "/v1/networks/fbdot/sessions", NULL, 201);
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/fbdot/sessions/%s/forward",
             cJSON_GetStringValue(get(s, "id")));
    cJSON_Delete(s);
    float x[2] = {1, -2};
    double o_prev[2] = {0, 0};
    for (int t = 0; t < 3; t++) {
        cJSON *r = call("POST", path, "{\"inputs\": {\"i\": [[1, -2]]}}", 200);
        float o[2];
        row(r, "o", o, 2);
        double d[3], expect_o[2] = {0, 0};
        for (int u = 0; u < 3; u++) {
            d[u] = 0;
            for (int k = 0; k < 2; k++)
                d[u] += x[k] * (double)Wff[k * 3 + u] +
                        o_prev[k] * Wfb[k * 3 + u];
        }
        for (int u = 0; u < 2; u++)
            for (int k = 0; k < 3; k++)
                expect_o[u] += d[k] * Wo[k * 2 + u];
        for (int u = 0; u < 2; u++)
            CU_ASSERT_DOUBLE_EQUAL(o[u], expect_o[u], 1e-4);
        memcpy(o_prev, expect_o, sizeof o_prev);
        cJSON_Delete(r);
    }
    free(Wff);
    free(Wfb);
    free(Wo);
}

static void test_guide_dropout(void)
{
    cJSON_Delete(call("POST", "/v1/networks",
                      "{\"name\": \"gdrop\", \"nodes\": [{\"name\": \"x\", "
                      "\"type\": \"Input\", \"shape\": 200}, {\"name\": \"g\", "
                      "\"type\": \"GuideDropout\", \"prob\": 0.5, \"seed\": 7}],"
                      " \"edges\": [\"x >> g\"]}", 201));
    char body[2048], eval[2100], train[2100];
    size_t len = (size_t)snprintf(body, sizeof body, "{\"inputs\": {\"x\": [[");
    for (int k = 0; k < 200; k++)
        len += (size_t)snprintf(body + len, sizeof body - len, "%s3", k ? "," : "");
    snprintf(body + len, sizeof body - len, "]]}, \"train\": %%s}");
    snprintf(eval, sizeof eval, body, "false");
    snprintf(train, sizeof train, body, "true");
    cJSON *e = call("POST", "/v1/networks/gdrop/forward", eval, 200);
    cJSON *t = call("POST", "/v1/networks/gdrop/forward", train, 200);
    cJSON *t2 = call("POST", "/v1/networks/gdrop/forward", train, 200);
    const cJSON *er = cJSON_GetArrayItem(get(get(e, "outputs"), "g"), 0);
    const cJSON *tr = cJSON_GetArrayItem(get(get(t, "outputs"), "g"), 0);
    const cJSON *tr2 = cJSON_GetArrayItem(get(get(t2, "outputs"), "g"), 0);
    int kept = 0, dropped = 0, same = 1;
    for (int k = 0; k < 200; k++) {
        CU_ASSERT_EQUAL(cJSON_GetArrayItem(er, k)->valuedouble, 3);
        double v = cJSON_GetArrayItem(tr, k)->valuedouble;
        kept += v == 6;   /* 3 / prob */
        dropped += v == 0;
        /* seed fixes the stream: a fresh run draws the same mask */
        same &= v == cJSON_GetArrayItem(tr2, k)->valuedouble;
    }
    CU_ASSERT_EQUAL(kept + dropped, 200);
    CU_ASSERT(kept > 60 && dropped > 60);
    CU_ASSERT(same);
    cJSON_Delete(e);
    cJSON_Delete(t);
    cJSON_Delete(t2);
    /* A second feedforward input is a clear error. */
    cJSON *j = call("POST", "/v1/networks",
                    "{\"nodes\": [{\"name\": \"a\", \"type\": \"Input\", "
                    "\"shape\": 2}, {\"name\": \"b\", \"type\": \"Input\", "
                    "\"shape\": 2}, {\"name\": \"g\", \"type\": "
                    "\"GuideDropout\", \"prob\": 0.5}], \"edges\": "
                    "[\"{a, b} >> g\"]}", 422);
    const char *msg = cJSON_GetStringValue(get(get(j, "error"), "message"));
    CU_ASSERT(msg && strstr(msg, "'g' (GuideDropout)") != NULL);
    CU_ASSERT(msg && strstr(msg, "exactly one") != NULL);
    cJSON_Delete(j);
}

static void expect_refused(const char *flag, const char *path,
                           const char *reason)
{
    char err[4096];
    const char *args[] = {"--port", "0", flag, path, NULL};
    int status = it_run(args, err, sizeof err);
    if (status != 2 || !strstr(err, reason))
        fprintf(stderr, "%s %s: exit %d, stderr '%s' (want '%s')\n", flag, path,
                status, err, reason);
    CU_ASSERT_EQUAL(status, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, reason));
}

static void test_bad_plugins_are_refused(void)
{
    char version[128];
    snprintf(version, sizeof version, "built against node API version %d; "
             "this nerved accepts versions %d to %d", NN_API_VERSION + 1,
             NN_API_VERSION_MIN, NN_API_VERSION);
    expect_refused("--plugin", getenv("NERVED_BAD_VERSION"), version);
    expect_refused("--plugin", getenv("NERVED_DUPLICATE_NAME"),
                   "node type 'Dense' is already registered");
    expect_refused("--plugin", getenv("NERVED_MISSING_INIT"),
                   "missing symbol nerved_plugin_init");
    /* The daemon exports nn.h's functions only. */
    expect_refused("--plugin", getenv("NERVED_INTERNAL_SYMBOL"),
                   "uses 'nn_check_session_floats', which the daemon does "
                   "not export: a plugin may call only the functions of "
                   "nn.h");
    char text_file[] = "/tmp/nerved-not-a-plugin-XXXXXX";
    int fd = mkstemp(text_file);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(write(fd, "not ELF\n", 8), 8);
    close(fd);
    expect_refused("--plugin", text_file, "cannot be loaded as a shared object");
    unlink(text_file);
    expect_refused("--plugin", "/nonexistent/libnothing.so", "no such file");
    expect_refused("--plugin-dir", "/nonexistent-dir", "cannot be read");
}

static void test_plugin_dir(void)
{
    char dir[] = "/tmp/nerved-plugins-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char link[256];
    snprintf(link, sizeof link, "%s/libguide.so", dir);
    CU_ASSERT_EQUAL_FATAL(symlink(getenv("NERVED_PLUGIN"), link), 0);
    const char *args[] = {"--plugin-dir", dir, NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    it_server keep = server;
    server = s;
    cJSON *j = call("GET", "/v1/node-types", NULL, 200);
    char *text = cJSON_PrintUnformatted(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"name\":\"FeedBackDotNode\""));
    free(text);
    cJSON_Delete(j);
    server = keep;
    CU_ASSERT_EQUAL(it_stop(&s), 0);
    unlink(link);
    rmdir(dir);
}

int main(void)
{
    const char *args[] = {"--plugin", getenv("NERVED_PLUGIN"), NULL};
    if (!args[1] || it_start(&server, args))
        return 2;
    static const tu_test tests[] = {
        {"plugin types are listed like built-ins", test_types_are_listed},
        {"DotNode", test_dot_node},
        {"VRNN", test_vrnn},
        {"feedback: DotNode refuses, FeedBackDotNode one step late",
         test_feedback_refused_and_accepted},
        {"GuideDropout", test_guide_dropout},
        {"bad plugins are refused with the reason",
         test_bad_plugins_are_refused},
        {"--plugin-dir", test_plugin_dir},
        {NULL, NULL}};
    int rc = tu_run_suite("plugins", tests);
    if (it_stop(&server) != 0)
        rc = 1;
    return rc;
}
