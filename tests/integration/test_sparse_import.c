/*
 * test_sparse_import.c — a foreign 10,000-unit reservoir at about 1 %
 * through the params route of the real daemon: its W (a million entries,
 * drawn here from a fixed LCG) goes in as csc with a dense Win and a bias,
 * steps of the daemon match a double loop over the same entries to
 * float32 rounding, GET gives the entries back bit for bit, a restart on
 * the data directory brings them back bit for bit, a pattern past
 * --max-params by its non-zeros is refused, and a fit (which trains a
 * clone) keeps an imported pattern.
 */
#include "api.h"
#include "api_codec.h"
#include "itest.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNITS 10000
#define INPUTS 4
#define STEPS 6
#define LEAK 0.3

static const char *NET =
    "{\"name\": \"ported\", \"seed\": 3, \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 4},"
    "{\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": 10000, "
    "\"sparse\": \"true\", \"rc_connectivity\": 0.0001, \"leaky_rate\": 0.3, "
    "\"bias_scaling\": 1, \"input_connectivity\": 1}],"
    "\"edges\": [\"x >> r\"]}";

/* The foreign model: M (y = x · M, ReservoirPy's W transposed) by column,
 * Win (inputs, units) and b. */
typedef struct model {
    size_t nnz;
    size_t ptr[UNITS + 1];
    uint32_t *row;
    float *val;
    float win[INPUTS * UNITS];
    float b[UNITS];
} model;

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* Rows of each column with gaps uniform in 1 .. 2 / density - 1, so about
 * density of them; values uniform in (-scale, scale), rounded to float. */
static model *make_model(double density, double scale, uint64_t seed)
{
    model *m = calloc(1, sizeof *m);
    size_t cap = (size_t)(UNITS * (double)UNITS * density * 1.2) + 1024;
    m->row = malloc(cap * sizeof *m->row);
    m->val = malloc(cap * sizeof *m->val);
    CU_ASSERT_FATAL(m->row && m->val);
    uint64_t s = seed;
    int span = (int)(2.0 / density) - 1;
    for (int c = 0; c < UNITS; c++) {
        m->ptr[c] = m->nnz;
        for (long r = (long)(lcg(&s) % (uint64_t)span); r < UNITS;
             r += 1 + (long)(lcg(&s) % (uint64_t)span)) {
            CU_ASSERT_FATAL(m->nnz < cap);
            m->row[m->nnz] = (uint32_t)r;
            m->val[m->nnz++] =
                (float)(scale * ((double)(lcg(&s) % 200001) / 100000.0 - 1));
        }
    }
    m->ptr[UNITS] = m->nnz;
    for (int i = 0; i < INPUTS * UNITS; i++)
        m->win[i] = (float)((double)(lcg(&s) % 20001) / 10000.0 - 1);
    for (int i = 0; i < UNITS; i++)
        m->b[i] = (float)((double)(lcg(&s) % 20001) / 20000.0 - 0.5);
    return m;
}

static void model_free(model *m)
{
    free(m->row);
    free(m->val);
    free(m);
}

static void put_uint(api_buf *b, size_t v)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%zu", v);
    api_buf_puts(b, tmp);
}

static void put_floats(api_buf *b, const float *v, size_t n)
{
    api_buf_puts(b, "[");
    for (size_t k = 0; k < n; k++) {
        if (k)
            api_buf_puts(b, ",");
        api_buf_float(b, v[k]);
    }
    api_buf_puts(b, "]");
}

/* The params document: W as csc, and with_dense, Win and b. */
static char *params_doc(const model *m, int with_dense, size_t *len)
{
    api_buf b = {0};
    api_buf_puts(&b, "{\"nodes\":{\"r\":{\"W\":{\"format\":\"csc\","
                     "\"shape\":[10000,10000],\"indptr\":[");
    for (int c = 0; c <= UNITS; c++) {
        if (c)
            api_buf_puts(&b, ",");
        put_uint(&b, m->ptr[c]);
    }
    api_buf_puts(&b, "],\"indices\":[");
    for (size_t k = 0; k < m->nnz; k++) {
        if (k)
            api_buf_puts(&b, ",");
        put_uint(&b, m->row[k]);
    }
    api_buf_puts(&b, "],\"data\":");
    put_floats(&b, m->val, m->nnz);
    api_buf_puts(&b, "}");
    if (with_dense) {
        api_buf_puts(&b, ",\"Win\":{\"shape\":[4,10000],\"data\":");
        put_floats(&b, m->win, INPUTS * UNITS);
        api_buf_puts(&b, "},\"b\":");
        put_floats(&b, m->b, UNITS);
    }
    api_buf_puts(&b, "}}}");
    return api_buf_finish(&b, len);
}

static double input_at(int t, int f) { return sin(0.3 * t + f); }

/* The reservoir's states over STEPS steps from zero, in double, straight
 * from the model's entries. */
static double *reference(const model *m)
{
    double *out = malloc((size_t)STEPS * UNITS * sizeof *out);
    double *s = calloc(UNITS, sizeof *s), *pre = malloc(UNITS * sizeof *pre);
    for (int t = 0; t < STEPS; t++) {
        for (int j = 0; j < UNITS; j++) {
            double v = m->b[j];
            for (int i = 0; i < INPUTS; i++)
                v += (double)(float)input_at(t, i) * m->win[i * UNITS + j];
            for (size_t k = m->ptr[j]; k < m->ptr[j + 1]; k++)
                v += (double)m->val[k] * s[m->row[k]];
            pre[j] = v;
        }
        for (int j = 0; j < UNITS; j++) {
            s[j] = (1 - LEAK) * s[j] + LEAK * tanh(pre[j]);
            out[(size_t)t * UNITS + j] = s[j];
        }
    }
    free(s);
    free(pre);
    return out;
}

static it_response request(const it_server *s, const char *method,
                           const char *path, const char *body, size_t len,
                           long expect)
{
    it_response r;
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL_FATAL(it_request(s, method, path, body ? "application/json"
                                                           : NULL,
                                     body, len, &r), 0);
    if (r.status != expect)
        fprintf(stderr, "%s %s: %ld, wanted %ld: %.300s\n", method, path,
                r.status, expect, r.body ? r.body : "");
    CU_ASSERT_EQUAL_FATAL(r.status, expect);
    return r;
}

/* A new session's states over the STEPS inputs, checked against ref. */
static void run_matches(const it_server *s, const double *ref)
{
    cJSON *j = it_call(s, "POST", "/v1/networks/ported/sessions",
                       "{\"batch\": 1}", 201);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    char path[160];
    snprintf(path, sizeof path, "/v1/networks/ported/sessions/%s/run",
             cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")));
    cJSON_Delete(j);
    api_buf b = {0};
    api_buf_puts(&b, "{\"inputs\": {\"x\": [[");
    for (int t = 0; t < STEPS; t++) {
        api_buf_puts(&b, t ? ",[" : "[");
        for (int f = 0; f < INPUTS; f++) {
            if (f)
                api_buf_puts(&b, ",");
            api_buf_float(&b, (float)input_at(t, f));
        }
        api_buf_puts(&b, "]");
    }
    api_buf_puts(&b, "]]}}");
    size_t len;
    char *body = api_buf_finish(&b, &len);
    it_response r = request(s, "POST", path, body, len, 200);
    free(body);
    api_json doc = {r.body, r.len, NULL};
    size_t at = api_json_find(&doc, api_json_find(&doc, 0, "outputs"), "r");
    CU_ASSERT_FATAL(at != (size_t)-1);
    api_limits lim = api_default_limits();
    nn_tensor *out;
    api_error err;
    CU_ASSERT_EQUAL_FATAL(api_json_tensor(&doc, at, "r", &lim, 0, &out, &err),
                          0);
    CU_ASSERT_EQUAL_FATAL(nn_tensor_numel(out), (size_t)STEPS * UNITS);
    int bad = 0;
    for (size_t i = 0; i < (size_t)STEPS * UNITS; i++)
        if (!it_float_close(out->data[i], ref[i]) && bad++ < 5)
            fprintf(stderr, "state %zu: %.9g, the loop gives %.9g\n", i,
                    out->data[i], ref[i]);
    CU_ASSERT_EQUAL(bad, 0);
    nn_tensor_free(out);
    it_response_free(&r);
}

/* The array of member `key` of nodes.r.W in a GET answer: unsigned
 * integers (floats = NULL) or floats, read with strtoul/strtof. */
static size_t read_array(const char *text, const char *key, size_t *ints,
                         float *floats, size_t max)
{
    const char *w = strstr(text, "\"r\":{");
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    w = strstr(w, "\"W\":{");
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    char pat[32];
    snprintf(pat, sizeof pat, "\"%s\":[", key);
    const char *p = strstr(w, pat);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    p += strlen(pat);
    size_t n = 0;
    while (*p && *p != ']' && n < max) {
        char *end;
        if (floats)
            floats[n++] = strtof(p, &end);
        else
            ints[n++] = strtoul(p, &end, 10);
        p = end;
        if (*p == ',')
            p++;
    }
    CU_ASSERT_EQUAL(*p, ']');
    return n;
}

/* GET's W is exactly the model's entries, and trainable false. */
static char *export_matches(const it_server *s, const model *m)
{
    it_response r = request(s, "GET", "/v1/networks/ported/params", NULL, 0,
                            200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"W\":{\"format\":\"csc\","
                                          "\"shape\":[10000,10000],"));
    size_t *ints = malloc((m->nnz + 1) * sizeof *ints);
    float *vals = malloc((m->nnz + 1) * sizeof *vals);
    CU_ASSERT_EQUAL(read_array(r.body, "indptr", ints, NULL, m->nnz + 1),
                    UNITS + 1);
    CU_ASSERT_EQUAL(memcmp(ints, m->ptr, (UNITS + 1) * sizeof *ints), 0);
    CU_ASSERT_EQUAL(read_array(r.body, "indices", ints, NULL, m->nnz + 1),
                    m->nnz);
    size_t wrong = 0;
    for (size_t k = 0; k < m->nnz; k++)
        wrong += ints[k] != m->row[k];
    CU_ASSERT_EQUAL(read_array(r.body, "data", NULL, vals, m->nnz + 1),
                    m->nnz);
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT_EQUAL(memcmp(vals, m->val, m->nnz * sizeof *vals), 0);
    free(ints);
    free(vals);
    char *text = strdup(r.body);
    it_response_free(&r);
    return text;
}

static void test_foreign_reservoir(void)
{
    model *m = make_model(0.01, 0.05, 42);
    /* About 1 %: a million entries. */
    CU_ASSERT(m->nnz > 900000 && m->nnz < 1100000);
    double *ref = reference(m);
    char *dir = it_temp_dir("nerved-sparse");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    /* The body is some 17 MB of JSON: the default --max-body takes it. */
    const char *const args[] = {"--data-dir", dir, NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    cJSON_Delete(it_call(&s, "POST", "/v1/networks", NET, 201));
    size_t len;
    char *doc = params_doc(m, 1, &len);
    it_response r = request(&s, "PUT", "/v1/networks/ported/params", doc, len,
                            200);
    it_response_free(&r);
    free(doc);
    run_matches(&s, ref);
    char *before = export_matches(&s, m);
    /* The export imports into a fresh network of the same definition and
     * gives the same export, bit for bit. */
    char other[2048];
    snprintf(other, sizeof other, "%s", NET);
    memcpy(strstr(other, "\"ported\""), "\"copy01\"", 8);
    cJSON_Delete(it_call(&s, "POST", "/v1/networks", other, 201));
    r = request(&s, "PUT", "/v1/networks/copy01/params", before,
                strlen(before), 200);
    it_response_free(&r);
    r = request(&s, "GET", "/v1/networks/copy01/params", NULL, 0, 200);
    CU_ASSERT(strcmp(r.body, before) == 0);
    it_response_free(&r);
    CU_ASSERT_EQUAL(it_stop(&s), 0);

    /* A restart rebuilds the network from its definition, whose seed draws
     * another pattern: the stored one must come back. */
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    r = request(&s, "GET", "/v1/networks/ported/params", NULL, 0, 200);
    CU_ASSERT(strcmp(r.body, before) == 0);
    it_response_free(&r);
    run_matches(&s, ref);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
    free(before);
    free(ref);
    model_free(m);
    it_remove_tree(dir);
    free(dir);
}

/* --max-params counts a sparse W by its non-zeros: 10,000 units (a dense W
 * of 10^8) fit a cap of 100,000 with 30,000 entries, and 50,000 do not. */
static void test_cap_by_nonzeros(void)
{
    const char *const args[] = {"--max-params", "100000", NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    cJSON_Delete(it_call(&s, "POST", "/v1/networks", NET, 201));
    model *m = make_model(0.0003, 0.1, 7);
    size_t len;
    char *doc = params_doc(m, 0, &len);
    it_response r = request(&s, "PUT", "/v1/networks/ported/params", doc, len,
                            200);
    it_response_free(&r);
    free(doc);
    model_free(m);
    m = make_model(0.0006, 0.1, 8);
    CU_ASSERT_FATAL(m->nnz > 50000);
    doc = params_doc(m, 0, &len);
    r = request(&s, "PUT", "/v1/networks/ported/params", doc, len, 422);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "too_large"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "nodes.r.W"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "100000 parameters"));
    it_response_free(&r);
    free(doc);
    model_free(m);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

/* The W part of node r in a GET answer (up to its "trainable"). */
static char *w_part(const char *text)
{
    const char *w = strstr(text, "\"r\":{");
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    w = strstr(w, "\"W\":{");
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    const char *end = strstr(w, "\"trainable\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(end);
    return strndup(w, (size_t)(end - w));
}

/* A fit trains a clone of the network: the clone must carry the imported
 * pattern, and the fitted weights come back with it. */
static void test_fit_keeps_the_pattern(void)
{
    static const char *ESN =
        "{\"name\": \"esn\", \"seed\": 9, \"nodes\": ["
        "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},"
        "{\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": 50, "
        "\"sparse\": \"true\", \"rc_connectivity\": 0.05, "
        "\"leaky_rate\": 1},"
        "{\"name\": \"o\", \"type\": \"LinearReadout\", \"num_unit\": 1}],"
        "\"edges\": [\"x >> r >> o\"]}";
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, NULL), 0);
    cJSON_Delete(it_call(&s, "POST", "/v1/networks", ESN, 201));
    /* Every fourth entry of each column, about 25 %: not the seed's. */
    api_buf b = {0};
    api_buf_puts(&b, "{\"nodes\": {\"r\": {\"W\": {\"format\": \"coo\", "
                     "\"shape\": [50, 50], ");
    const char *arrays[3] = {"\"row\": [", "], \"col\": [", "], \"data\": ["};
    for (int a = 0; a < 3; a++) {
        api_buf_puts(&b, arrays[a]);
        int first = 1;
        for (int c = 0; c < 50; c++)
            for (int r = c % 4; r < 50; r += 4) {
                if (!first)
                    api_buf_puts(&b, ",");
                first = 0;
                if (a == 2)
                    api_buf_float(&b, 0.1f * (float)((r + 3 * c) % 7 - 3));
                else
                    put_uint(&b, (size_t)(a == 0 ? r : c));
            }
    }
    api_buf_puts(&b, "]}}}}");
    size_t len;
    char *doc = api_buf_finish(&b, &len);
    it_response r = request(&s, "PUT", "/v1/networks/esn/params", doc, len,
                            200);
    it_response_free(&r);
    free(doc);
    r = request(&s, "GET", "/v1/networks/esn/params", NULL, 0, 200);
    char *before = w_part(r.body);
    CU_ASSERT_PTR_NOT_NULL(strstr(before, "\"indptr\":[0,13,26,38,50,"));
    it_response_free(&r);
    api_buf fb = {0};
    api_buf_puts(&fb, "{\"method\": \"ridge\", \"wait\": true, "
                      "\"inputs\": {\"x\": [[");
    for (int t = 0; t < 80; t++) {
        api_buf_puts(&fb, t ? ",[" : "[");
        api_buf_float(&fb, (float)sin(0.2 * t));
        api_buf_puts(&fb, "]");
    }
    api_buf_puts(&fb, "]]}, \"targets\": {\"o\": [[");
    for (int t = 0; t < 80; t++) {
        api_buf_puts(&fb, t ? ",[" : "[");
        api_buf_float(&fb, (float)sin(0.2 * t + 0.6));
        api_buf_puts(&fb, "]");
    }
    api_buf_puts(&fb, "]]}}");
    char *fit = api_buf_finish(&fb, &len);
    cJSON *j = it_call(&s, "POST", "/v1/networks/esn/fit", fit, 200);
    free(fit);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(j,
                                                                    "status")),
                           "done");
    cJSON_Delete(j);
    r = request(&s, "GET", "/v1/networks/esn/params", NULL, 0, 200);
    char *after = w_part(r.body);
    CU_ASSERT_STRING_EQUAL(before, after);
    /* The readout was trained (it starts at zero). */
    const char *o = strstr(r.body, "\"o\":{\"W\":{\"shape\":[50,1],"
                                   "\"data\":[");
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT(strncmp(o + strlen("\"o\":{\"W\":{\"shape\":[50,1],\"data\":["),
                      "0,0,0,0,0", 9) != 0);
    it_response_free(&r);
    free(before);
    free(after);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

int main(void)
{
    static const tu_test tests[] = {
        {"a foreign 10,000-unit 1 % reservoir", test_foreign_reservoir},
        {"the cap counts non-zeros", test_cap_by_nonzeros},
        {"a fit keeps the imported pattern", test_fit_keeps_the_pattern},
        {NULL, NULL}};
    return tu_run_suite("sparse import", tests);
}
