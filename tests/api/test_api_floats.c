/*
 * test_api_floats.c — float-vector parameters (the Reservoir's leaky_rate,
 * input_scaling, fb_scaling) through the JSON layer: a number, an array or
 * an initializer in, the same form out in the description, the node-types
 * listing, a list of 2,000 values, and the errors of a wrong JSON type.
 */
#include "api.h"
#include "testutil.h"

#include <stdio.h>
#include <string.h>

static nn_registry *reg;
static api_limits lim;

static nn_graph *graph_of(const char *text, api_error *err)
{
    cJSON *j = cJSON_Parse(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    memset(err, 0, sizeof *err);
    nn_graph *g = api_graph_from_json(j, reg, &lim, err);
    cJSON_Delete(j);
    return g;
}

static const cJSON *described_params(const cJSON *desc, const char *node)
{
    const cJSON *n;
    cJSON_ArrayForEach(n, cJSON_GetObjectItem(desc, "nodes"))
    {
        const cJSON *name = cJSON_GetObjectItem(n, "name");
        if (cJSON_IsString(name) && strcmp(name->valuestring, node) == 0)
            return cJSON_GetObjectItem(n, "params");
    }
    return NULL;
}

static void test_forms_in_and_out(void)
{
    api_error err;
    nn_graph *g = graph_of(
        "{\"seed\": 4, \"nodes\": ["
        "{\"name\": \"u\", \"type\": \"Input\", \"shape\": 2},"
        "{\"name\": \"a\", \"type\": \"Reservoir\", \"num_unit\": 3, "
        "\"leaky_rate\": [0.25, 0.5, 1], \"input_scaling\": [2, 0.5], "
        "\"equation\": \"external\"},"
        "{\"name\": \"b\", \"type\": \"Reservoir\", \"num_unit\": 3, "
        "\"leaky_rate\": {\"type\": \"Uniform\", \"min\": 0.1, \"max\": 0.4},"
        " \"input_scaling\": 0.75},"
        "{\"name\": \"c\", \"type\": \"Reservoir\", \"num_unit\": 3, "
        "\"leaky_rate\": \"Uniform(0.1, 0.4)\", "
        "\"Win_initializer\": \"Bernoulli\"}],"
        "\"edges\": [\"u >> {a, b, c}\"]}", &err);
    if (!g)
        fprintf(stderr, "%s\n", err.message);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    cJSON *desc = api_graph_describe(g);
    const cJSON *a = described_params(desc, "a");
    const cJSON *lr = cJSON_GetObjectItem(a, "leaky_rate");
    CU_ASSERT_FATAL(cJSON_IsArray(lr) && cJSON_GetArraySize(lr) == 3);
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(lr, 0)->valuedouble, 0.25);
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(lr, 2)->valuedouble, 1.0);
    CU_ASSERT(cJSON_IsArray(cJSON_GetObjectItem(a, "input_scaling")));
    const cJSON *b = described_params(desc, "b");
    CU_ASSERT(cJSON_IsString(cJSON_GetObjectItem(b, "leaky_rate")));
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(b, "leaky_rate")->valuestring,
                           "Uniform(min=0.10000000000000001, "
                           "max=0.40000000000000002)");
    const cJSON *scale = cJSON_GetObjectItem(b, "input_scaling");
    CU_ASSERT(cJSON_IsNumber(scale) && scale->valuedouble == 0.75);
    /* The object form was drawn like the string form: rates in range. */
    nn_tensor *rates = nn_node_weight(nn_graph_find(g, "b"), "lr");
    CU_ASSERT_PTR_NOT_NULL_FATAL(rates);
    for (int j = 0; j < 3; j++)
        CU_ASSERT(rates->data[j] >= 0.1f && rates->data[j] <= 0.4f);
    /* The per-unit rates are a weight like any other in the description. */
    int found = 0;
    const cJSON *n, *w;
    cJSON_ArrayForEach(n, cJSON_GetObjectItem(desc, "nodes"))
    {
        if (strcmp(cJSON_GetObjectItem(n, "name")->valuestring, "a") != 0)
            continue;
        cJSON_ArrayForEach(w, cJSON_GetObjectItem(n, "weights"))
        {
            if (strcmp(cJSON_GetObjectItem(w, "name")->valuestring, "lr") == 0)
                found = !cJSON_IsTrue(cJSON_GetObjectItem(w, "trainable"));
        }
        /* The external equation's second state. */
        CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(n, "state")),
                        2);
    }
    CU_ASSERT(found);
    cJSON_Delete(desc);
    nn_graph_free(g);
}

static void test_listing(void)
{
    cJSON *types = api_node_types_json(reg);
    const cJSON *t, *p;
    int seen = 0;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(types, "node_types"))
    {
        if (strcmp(cJSON_GetObjectItem(t, "name")->valuestring, "Reservoir"))
            continue;
        cJSON_ArrayForEach(p, cJSON_GetObjectItem(t, "params"))
        {
            const char *name = cJSON_GetObjectItem(p, "name")->valuestring;
            if (strcmp(name, "leaky_rate") == 0) {
                CU_ASSERT_STRING_EQUAL(
                    cJSON_GetObjectItem(p, "type")->valuestring, "floats");
                CU_ASSERT_EQUAL(cJSON_GetObjectItem(p, "max")->valuedouble, 1);
                seen++;
            }
            if (strcmp(name, "equation") == 0) {
                CU_ASSERT_EQUAL(
                    cJSON_GetArraySize(cJSON_GetObjectItem(p, "choices")), 2);
                seen++;
            }
        }
    }
    CU_ASSERT_EQUAL(seen, 2);
    cJSON_Delete(types);
}

static void test_errors(void)
{
    static const struct {
        const char *param, *needle;
    } cases[] = {
        {"\"leaky_rate\": [0.5, \"a\"]", "leaky_rate must hold finite numbers"},
        {"\"leaky_rate\": true", "leaky_rate must be a number, an array"},
        {"\"leaky_rate\": []", "leaky_rate must be a number, an array"},
        {"\"leaky_rate\": [0.5, 0.5]", "lists 2 values but the node has 3"},
        {"\"input_scaling\": [1, 2, 3]", "2 input feature"},
        {"\"leaky_rate\": [0.5, 1.5, 1]", "'leaky_rate' must be a number"},
    };
    char text[512];
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        snprintf(text, sizeof text,
                 "{\"nodes\": [{\"name\": \"u\", \"type\": \"Input\", "
                 "\"shape\": 2}, {\"name\": \"r\", \"type\": \"Reservoir\", "
                 "\"num_unit\": 3, %s}], \"edges\": [\"u >> r\"]}",
                 cases[k].param);
        api_error err;
        nn_graph *g = graph_of(text, &err);
        CU_ASSERT_PTR_NULL(g);
        nn_graph_free(g);
        int ok = err.http_status / 100 == 4 &&
                 strstr(err.message, cases[k].needle);
        if (!ok)
            fprintf(stderr, "%s -> %d %s\n", cases[k].param, err.http_status,
                    err.message);
        CU_ASSERT(ok);
    }
    /* A long list (2,000 per-unit rates) is read whole, not cut at some
     * text buffer. */
    static char big[40000];
    size_t len = (size_t)snprintf(big, sizeof big,
                                  "{\"nodes\": [{\"name\": \"u\", "
                                  "\"type\": \"Input\", \"shape\": 1}, "
                                  "{\"name\": \"r\", \"type\": "
                                  "\"Reservoir\", \"num_unit\": 2000, "
                                  "\"sparse\": true, \"leaky_rate\": [");
    for (int i = 0; i < 2000; i++)
        len += (size_t)snprintf(big + len, sizeof big - len, "%s0.%d",
                                i ? "," : "", 1 + i % 9);
    snprintf(big + len, sizeof big - len, "]}], \"edges\": [\"u >> r\"]}");
    api_error err;
    nn_graph *g = graph_of(big, &err);
    if (!g)
        fprintf(stderr, "%s\n", err.message);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    nn_tensor *lr = nn_node_weight(nn_graph_find(g, "r"), "lr");
    CU_ASSERT_PTR_NOT_NULL_FATAL(lr);
    CU_ASSERT_EQUAL(lr->data[0], 0.1f);
    CU_ASSERT_EQUAL(lr->data[1999], 0.2f);
    CU_ASSERT_EQUAL(lr->data[17], 0.9f);
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
        {"numbers, arrays and initializers in and out", test_forms_in_and_out},
        {"the node-types listing", test_listing},
        {"errors", test_errors},
        {NULL, NULL}};
    int rc = tu_run_suite("api floats", tests);
    nn_registry_free(reg);
    return rc;
}
