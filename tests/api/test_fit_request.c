/*
 * test_fit_request.c — training requests read from JSON: the options a
 * client may leave out take the values a C caller gets, numbers out of
 * range are refused by name before any conversion, and targets are checked
 * against what the loss needs.
 */
#include "api_codec.h"
#include "api_fit.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nn_registry *reg;
static api_limits lim;

static nn_graph *graph(const char *text)
{
    cJSON *def = cJSON_Parse(text);
    api_error err;
    memset(&err, 0, sizeof err);
    nn_graph *g = api_graph_from_json(def, reg, &lim, &err);
    if (!g)
        fprintf(stderr, "%s\n", err.message);
    cJSON_Delete(def);
    return g;
}

/* Parses body against g; returns 0 or the HTTP status, and the message. */
static int parse(const char *body, nn_graph *g, api_fit_request *req,
                 char *message, size_t size)
{
    cJSON *j = cJSON_Parse(body);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    api_error err;
    memset(&err, 0, sizeof err);
    api_json text = {body, strlen(body), NULL};
    int rc = api_fit_request_parse(j, &text, NULL, g, &lim, req, &err);
    cJSON_Delete(j);
    snprintf(message, size, "%s", rc ? err.message : "");
    return rc ? err.http_status : 0;
}

static const char *const gru_dense =
    "{\"seed\": 3, \"nodes\": [{\"name\": \"x\", \"type\": \"Input\", "
    "\"shape\": [1]}, {\"name\": \"r\", \"type\": \"GRU\", \"num_unit\": 3},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 1}],"
    "\"edges\": [\"x >> r >> o\"]}";

static const char *const data =
    "\"inputs\": {\"x\": [[[0.5], [-1], [0.25], [1]], [[1], [0], [-0.5], "
    "[0.75]]]}, \"targets\": {\"o\": [[[1], [0], [1], [0]], [[0], [1], [0], "
    "[1]]]}";

/* Trains a fresh copy of the graph with the request's options; history
 * receives the losses. */
static void train(const char *options, double *history, int epochs)
{
    nn_graph *g = graph(gru_dense);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    char body[1024], message[256];
    snprintf(body, sizeof body, "{\"method\": \"bptt\", \"shuffle\": false, "
             "\"epochs\": %d, %s, %s}", epochs, options, data);
    api_fit_request req;
    int status = parse(body, g, &req, message, sizeof message);
    if (status)
        fprintf(stderr, "%s\n", message);
    CU_ASSERT_EQUAL_FATAL(status, 0);
    nn_error err;
    int rc = nn_fit_bptt(g, req.data[0].inputs, req.data[0].n_inputs,
                         req.data[0].targets, req.data[0].n_targets, &req.fit,
                         history, NULL, &err);
    if (rc != NN_OK)
        fprintf(stderr, "%s\n", err.msg);
    CU_ASSERT_EQUAL(rc, NN_OK);
    api_fit_request_release(&req);
    nn_graph_free(g);
}

/* {"type": "cosine"} anneals over the fit's epochs, as CosineAnnealingLR
 * with T_max = epochs; "epochs" in the schedule sets another horizon. */
static void test_cosine_horizon_is_the_fits_epochs(void)
{
    enum { E = 6 };
    double dflt[E], six[E], one[E];
    train("\"optimizer\": {\"lr\": 0.2}, \"schedule\": {\"type\": "
          "\"cosine\"}", dflt, E);
    train("\"optimizer\": {\"lr\": 0.2}, \"schedule\": {\"type\": "
          "\"cosine\", \"epochs\": 6}", six, E);
    train("\"optimizer\": {\"lr\": 0.2}, \"schedule\": {\"type\": "
          "\"cosine\", \"epochs\": 1}", one, E);
    for (int e = 0; e < E; e++)
        TU_ASSERT_CLOSE(dflt[e], six[e], 1e-6 * fabs(six[e]) + 1e-9);
    /* A horizon of 1 stops learning after the first update (lr_min 0):
     * the default must not be that. */
    TU_ASSERT_CLOSE(one[3], one[2], 1e-6 * fabs(one[2]) + 1e-9);
    CU_ASSERT(fabs(dflt[3] - dflt[2]) > 1e-4 * fabs(dflt[2]));

    nn_graph *g = graph(gru_dense);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    api_fit_request req;
    char body[1024], message[256];
    snprintf(body, sizeof body, "{\"method\": \"bptt\", \"schedule\": "
             "{\"type\": \"cosine\", \"epochs\": 0}, %s}", data);
    CU_ASSERT_EQUAL(parse(body, g, &req, message, sizeof message), 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(message, "schedule.\"epochs\""));
    api_fit_request_release(&req);
    nn_graph_free(g);
}

/* Numbers beyond int's range are refused with the field named, never cast
 * (a cast out of range is undefined; the clang sanitizer build catches
 * one). */
static void test_out_of_range_numbers(void)
{
    nn_graph *g = graph(gru_dense);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    static const struct {
        const char *body, *needle;
    } cases[] = {
        {"{\"method\": \"bptt\", \"inputs\": {\"x\": {\"shape\": [1e300, 4, 1], "
         "\"data\": [1]}}, \"targets\": {}}", "axis 0"},
        {"{\"method\": \"bptt\", \"inputs\": {\"x\": {\"shape\": [-1e300, 4, "
         "1], \"data\": [1]}}, \"targets\": {}}", "axis 0"},
        {"{\"method\": \"bptt\", \"inputs\": {\"x\": {\"shape\": [3e9, 4, 1], "
         "\"data\": [1]}}, \"targets\": {}}", "axis 0"},
        {"{\"method\": \"bptt\", \"epochs\": 1e300}", "\"epochs\""},
        {"{\"method\": \"bptt\", \"batch_size\": -1e300}", "\"batch_size\""},
        {"{\"method\": \"bptt\", \"window\": 4294967296}", "\"window\""},
        {"{\"method\": \"bptt\", \"seed\": 1e300}", "\"seed\""},
        {"{\"method\": \"bptt\", \"schedule\": {\"step_size\": 1e300}}",
         "schedule.\"step_size\""},
        {"{\"method\": \"bptt\", \"schedule\": {\"epochs\": -1e300}}",
         "schedule.\"epochs\""},
        {"{\"method\": \"ridge\", \"warmup\": 1e300}", "\"warmup\""},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        api_fit_request req;
        char message[256];
        int status = parse(cases[k].body, g, &req, message, sizeof message);
        if (status != 400 || !strstr(message, cases[k].needle))
            fprintf(stderr, "%s -> %d %s\n", cases[k].body, status, message);
        CU_ASSERT_EQUAL(status, 400);
        CU_ASSERT_PTR_NOT_NULL(strstr(message, cases[k].needle));
        api_fit_request_release(&req);
    }
    nn_graph_free(g);
}

/* softmax_cross_entropy targets must be distributions; the check a request
 * passes before it is accepted (nn_fit_check) names the first bad row. */
static void test_softmax_targets_are_distributions(void)
{
    static const char *const def =
        "{\"nodes\": [{\"name\": \"x\", \"type\": \"Input\", \"shape\": "
        "[1]}, {\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 2}],"
        "\"edges\": [\"x >> o\"]}";
    static const struct {
        const char *targets, *needle;
    } cases[] = {
        {"[[[1, 0], [0, 1]], [[0.5, 0.5], [0.25, 0.75]]]", NULL},
        {"[[[1, 0], [0, 1]], [[0.5, 0.5], [2, -1]]]",
         "row 3 (sequence 1, step 1) has a negative"},
        {"[[[1, 0], [0.5, 0.25]], [[0.5, 0.5], [1, 0]]]",
         "row 1 (sequence 0, step 1) sums to 0.75"},
        {"[[[3, 0], [0, 1]], [[0.5, 0.5], [1, 0]]]",
         "row 0 (sequence 0, step 0) sums to 3"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        nn_graph *g = graph(def);
        CU_ASSERT_PTR_NOT_NULL_FATAL(g);
        char body[1024], message[256];
        snprintf(body, sizeof body, "{\"method\": \"bptt\", \"loss\": "
                 "\"softmax_cross_entropy\", \"inputs\": {\"x\": [[[1], [2]], "
                 "[[3], [4]]]}, \"targets\": {\"o\": %s}}", cases[k].targets);
        api_fit_request req;
        CU_ASSERT_EQUAL_FATAL(parse(body, g, &req, message, sizeof message), 0);
        nn_error e;
        int rc = nn_fit_check(g, req.data[0].inputs, req.data[0].n_inputs,
                              req.data[0].targets, req.data[0].n_targets,
                              &req.fit, &e);
        if (!cases[k].needle) {
            CU_ASSERT_EQUAL(rc, NN_OK);
        } else {
            api_error ae;
            api_fail_from_nn(&ae, &e, 0);
            if (!strstr(ae.message, cases[k].needle))
                fprintf(stderr, "%s -> %s\n", cases[k].targets, ae.message);
            CU_ASSERT_EQUAL(ae.http_status, 400);
            CU_ASSERT_PTR_NOT_NULL(strstr(ae.message, cases[k].needle));
            CU_ASSERT_PTR_NOT_NULL(strstr(ae.message, "target 'o'"));
        }
        api_fit_request_release(&req);
        nn_graph_free(g);
    }
}

/* The options of the online rules and of AdamW read into the engine's
 * structs, with PyTorch's and ReservoirPy's defaults. */
static void test_online_and_adamw_options(void)
{
    nn_graph *g = graph(gru_dense);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    char body[1024], message[256];
    api_fit_request req;
    snprintf(body, sizeof body, "{\"method\": \"lms\", %s}", data);
    CU_ASSERT_EQUAL(parse(body, g, &req, message, sizeof message), 0);
    CU_ASSERT_EQUAL(req.method, API_FIT_RLS);
    CU_ASSERT_EQUAL(req.online.rule, NN_ONLINE_LMS);
    CU_ASSERT_DOUBLE_EQUAL(req.online.lr, 1e-6, 1e-12);
    CU_ASSERT_FALSE(req.continue_state);
    api_fit_request_release(&req);
    snprintf(body, sizeof body, "{\"method\": \"rls\", \"forgetting\": 0.99, "
             "\"alpha\": 0.5, \"continue_state\": true, %s}", data);
    CU_ASSERT_EQUAL(parse(body, g, &req, message, sizeof message), 0);
    CU_ASSERT_EQUAL(req.online.rule, NN_ONLINE_RLS);
    CU_ASSERT_DOUBLE_EQUAL(req.online.forgetting, 0.99, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(req.online.alpha, 0.5, 1e-12);
    CU_ASSERT_TRUE(req.continue_state);
    api_fit_request_release(&req);
    snprintf(body, sizeof body, "{\"method\": \"bptt\", \"optimizer\": "
             "{\"type\": \"adamw\"}, %s}", data);
    CU_ASSERT_EQUAL(parse(body, g, &req, message, sizeof message), 0);
    CU_ASSERT_EQUAL(req.fit.optim.kind, NN_OPTIM_ADAMW);
    CU_ASSERT_DOUBLE_EQUAL(req.fit.optim.lr, 0.001, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(req.fit.optim.weight_decay, 0.01, 1e-12);
    api_fit_request_release(&req);
    snprintf(body, sizeof body, "{\"method\": \"bptt\", \"optimizer\": "
             "{\"type\": \"adamw\", \"momentum\": 0.9}, %s}", data);
    CU_ASSERT_EQUAL(parse(body, g, &req, message, sizeof message), 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(message, "adamw has beta1 and beta2"));
    api_fit_request_release(&req);
    nn_graph_free(g);
}

/* The body as the daemon reads it: pushed, every eligible array kept as
 * float32 (blob_min 0), the options from a tree of the rest. The request
 * equals the one read from the plain text, bit for bit; its tensors read
 * from blobs borrow the document's floats rather than copy them. */
static void test_read_from_pushed_body(void)
{
    nn_graph *g = graph(gru_dense);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    const char *bodies[] = {
        "{\"method\": \"ridge\", \"inputs\": {\"x\": [[[0.5], [-1], [0.25]],"
        " [[1], [0], [-0.5]]]}, \"targets\": {\"o\": {\"shape\": [2, 3, 1],"
        " \"data\": [1, 0, 1, 0, 1, 0.125]}}}",
        "{\"method\": \"ridge\", \"data\": [{\"inputs\": {\"x\": [[[1], [2]]]},"
        " \"targets\": {\"o\": [[[3], [4]]]}}, {\"inputs\": {\"x\": [[[5],"
        " [6], [7]]]}, \"targets\": {\"o\": [[[8], [9], [10]]]}}]}"};
    for (size_t b = 0; b < sizeof bodies / sizeof *bodies; b++) {
        api_fit_request plain, pushed;
        char message[256];
        CU_ASSERT_EQUAL_FATAL(parse(bodies[b], g, &plain, message,
                                    sizeof message), 0);
        api_jsondoc *doc = api_jsondoc_new(0, NULL, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
        /* In two pieces, as a body arrives. */
        size_t len = strlen(bodies[b]);
        CU_ASSERT_EQUAL(api_jsondoc_feed(doc, bodies[b], len / 2), 0);
        CU_ASSERT_EQUAL(api_jsondoc_feed(doc, bodies[b] + len / 2,
                                         len - len / 2), 0);
        api_jsondoc_finish(doc);
        size_t at;
        int trailing;
        CU_ASSERT_EQUAL_FATAL(api_jsondoc_check(doc, &at, &trailing), 0);
        api_json text = api_jsondoc_json(doc);
        size_t *marks = NULL;
        int n = 0;
        char *named = api_json_naming_blobs(&text, &marks, &n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(named);
        CU_ASSERT(n > 0); /* some arrays did become blobs */
        cJSON *tree = cJSON_Parse(named);
        api_error err;
        CU_ASSERT_EQUAL_FATAL(api_fit_request_parse(tree, &text, NULL, g,
                                                    &lim, &pushed, &err), 0);
        cJSON_Delete(tree);
        free(named);
        free(marks);
        CU_ASSERT_EQUAL_FATAL(pushed.n_data, plain.n_data);
        int borrowed = 0;
        for (int i = 0; i < plain.n_data; i++) {
            const api_fit_data *p = &plain.data[i], *q = &pushed.data[i];
            CU_ASSERT_EQUAL(p->batch, q->batch);
            CU_ASSERT_EQUAL(p->steps, q->steps);
            CU_ASSERT_EQUAL_FATAL(p->n_targets, q->n_targets);
            const nn_tensor *pairs[][2] = {
                {p->inputs[0].tensor, q->inputs[0].tensor},
                {p->targets[0].tensor, q->targets[0].tensor}};
            for (int k = 0; k < 2; k++) {
                size_t count = nn_tensor_numel(pairs[k][0]);
                CU_ASSERT_EQUAL_FATAL(count, nn_tensor_numel(pairs[k][1]));
                borrowed += !pairs[k][1]->owns_data;
                CU_ASSERT_EQUAL(memcmp(pairs[k][0]->data, pairs[k][1]->data,
                                       count * sizeof(float)), 0);
            }
        }
        CU_ASSERT(borrowed > 0);
        api_fit_request_release(&plain);
        api_fit_request_release(&pushed);
        api_jsondoc_free(doc);
    }
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
        {"a body read as it arrives gives the same request",
         test_read_from_pushed_body},
        {"the cosine horizon is the fit's epochs",
         test_cosine_horizon_is_the_fits_epochs},
        {"numbers out of range are refused by name",
         test_out_of_range_numbers},
        {"softmax targets are distributions",
         test_softmax_targets_are_distributions},
        {"online and adamw options", test_online_and_adamw_options},
        {NULL, NULL}};
    int rc = tu_run_suite("fit requests", tests);
    nn_registry_free(reg);
    return rc;
}
