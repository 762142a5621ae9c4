/*
 * test_sparse_params.c — sparse weights in parameter documents: the three
 * forms read to the same stored pattern, every malformed one refused with
 * the array and position named, the cap counted by non-zeros, the export
 * read back bit for bit, and the pattern kept by a clone, an undo and the
 * data-directory file.
 */
#include "api.h"
#include "api_codec.h"
#include "api_persist.h"
#include "nn_train.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nn_registry *reg;
static api_limits lim;

#define N 20  /* reservoir units */
#define IN 3  /* inputs */

static const char *DEF =
    "{\"nodes\": [{\"name\": \"x\", \"type\": \"Input\", \"shape\": 3},"
    "{\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": 20, "
    "\"sparse\": \"true\", \"rc_connectivity\": 0.2, \"leaky_rate\": 1, "
    "\"bias_scaling\": 1}], \"edges\": [\"x >> r\"]}";

static nn_graph *build(const char *text, size_t max_params)
{
    cJSON *def = cJSON_Parse(text);
    api_limits l = lim;
    if (max_params)
        l.max_params = max_params;
    api_error err;
    nn_graph *g = api_graph_from_json(def, reg, &l, &err);
    cJSON_Delete(def);
    if (!g)
        fprintf(stderr, "build: %s\n", err.message);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    return g;
}

/* A matrix M (N x N, y = x · M) of about 25 % non-zeros from a fixed LCG,
 * dense, row-major: the reference every form is written from. */
static void make_matrix(float *m, uint32_t seed)
{
    uint32_t s = seed;
    for (int i = 0; i < N * N; i++) {
        s = s * 1664525u + 1013904223u;
        int on = (s >> 8) % 4 == 0;
        s = s * 1664525u + 1013904223u;
        m[i] = on ? (float)((int)(s >> 9) % 2001 - 1000) / 1024.0f : 0.0f;
    }
}

static void put_int(api_buf *b, long v)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%ld", v);
    api_buf_puts(b, tmp);
}

/* {"nodes": {"r": {"W": <form of m>}}} in csc, csr or coo; reversed
 * writes each column's (csc), row's (csr) or all (coo) entries backwards,
 * so they must be sorted. */
static char *doc_of(const float *m, const char *format, int reversed)
{
    api_buf b = {0};
    api_buf_puts(&b, "{\"nodes\": {\"r\": {\"W\": {\"format\": \"");
    api_buf_puts(&b, format);
    api_buf_puts(&b, "\", \"shape\": [20, 20], ");
    int coo = strcmp(format, "coo") == 0, csr = strcmp(format, "csr") == 0;
    /* Entries in major order (columns for csc and coo, rows for csr). */
    int rows[N * N], cols[N * N];
    float vals[N * N];
    int n = 0, ptr[N + 1] = {0};
    for (int a = 0; a < N; a++) {
        int start = n;
        for (int c = 0; c < N; c++) {
            int r = csr ? a : c, col = csr ? c : a;
            if (m[r * N + col] != 0.0f) {
                rows[n] = r;
                cols[n] = col;
                vals[n++] = m[r * N + col];
            }
        }
        ptr[a + 1] = n;
        if (reversed && !coo)
            for (int i = start, j = n - 1; i < j; i++, j--) {
                int tr = rows[i], tc = cols[i];
                float tv = vals[i];
                rows[i] = rows[j], cols[i] = cols[j], vals[i] = vals[j];
                rows[j] = tr, cols[j] = tc, vals[j] = tv;
            }
    }
    if (reversed && coo)
        for (int i = 0, j = n - 1; i < j; i++, j--) {
            int tr = rows[i], tc = cols[i];
            float tv = vals[i];
            rows[i] = rows[j], cols[i] = cols[j], vals[i] = vals[j];
            rows[j] = tr, cols[j] = tc, vals[j] = tv;
        }
    const char *names[2] = {coo ? "row" : "indptr", coo ? "col" : "indices"};
    for (int a = 0; a < 2; a++) {
        api_buf_puts(&b, "\"");
        api_buf_puts(&b, names[a]);
        api_buf_puts(&b, "\": [");
        int count = a == 0 && !coo ? N + 1 : n;
        for (int k = 0; k < count; k++) {
            if (k)
                api_buf_puts(&b, ", ");
            int v = coo ? (a == 0 ? rows[k] : cols[k])
                        : a == 0 ? ptr[k] : csr ? cols[k] : rows[k];
            put_int(&b, v);
        }
        api_buf_puts(&b, "], ");
    }
    api_buf_puts(&b, "\"data\": [");
    for (int k = 0; k < n; k++) {
        if (k)
            api_buf_puts(&b, ", ");
        api_buf_float(&b, vals[k]);
    }
    api_buf_puts(&b, "]}}}}");
    return api_buf_finish(&b, NULL);
}

static int import(nn_graph *g, const char *text, api_error *err)
{
    api_json j = {text, strlen(text), NULL};
    api_params_import *imp;
    memset(err, 0, sizeof *err);
    if (api_params_read(g, &j, &imp, err))
        return -1;
    if (api_params_still_fits(g, imp, err)) {
        api_params_import_free(imp);
        return -1;
    }
    api_params_apply(g, imp);
    api_params_import_free(imp);
    return 0;
}

static char *export_text(const nn_graph *g)
{
    api_enc *e = api_params_enc(g);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    api_buf b = {0};
    char chunk[100]; /* small, so elements straddle chunks */
    size_t n;
    while ((n = api_enc_next(e, chunk, sizeof chunk)) > 0)
        api_buf_put(&b, chunk, n);
    api_buf_put(&b, "", 0);
    api_enc_free(e);
    return api_buf_finish(&b, NULL);
}

/* W of node r as a dense matrix, from its stored pattern and values. */
static void stored_dense(nn_graph *g, float *m)
{
    nn_node *r = nn_graph_find(g, "r");
    int w = 1; /* Win, W, b */
    CU_ASSERT_STRING_EQUAL_FATAL(nn_node_weight_name(r, w), "W");
    int rows, cols;
    CU_ASSERT_FATAL(nn_node_weight_sparse(r, w, &rows, &cols));
    CU_ASSERT_EQUAL(rows, N);
    CU_ASSERT_EQUAL(cols, N);
    const nn_tensor *t = nn_node_weight_at(r, w);
    size_t nnz = nn_tensor_numel(t);
    size_t ptr[N + 1];
    uint32_t *row = malloc(nnz * sizeof *row);
    nn_node_weight_pattern(r, w, ptr, row);
    memset(m, 0, N * N * sizeof *m);
    for (int c = 0; c < N; c++)
        for (size_t k = ptr[c]; k < ptr[c + 1]; k++) {
            if (k > ptr[c])
                CU_ASSERT(row[k] > row[k - 1]);
            m[row[k] * N + c] = t->data[k];
        }
    CU_ASSERT_EQUAL(ptr[N], nnz);
    free(row);
}

static size_t count_nonzero(const float *m)
{
    size_t n = 0;
    for (int i = 0; i < N * N; i++)
        n += m[i] != 0.0f;
    return n;
}

static void test_forms_store_one_pattern(void)
{
    float m[N * N], got[N * N];
    make_matrix(m, 7);
    static const char *formats[3] = {"csc", "csr", "coo"};
    for (int f = 0; f < 3; f++)
        for (int reversed = 0; reversed < 2; reversed++) {
            nn_graph *g = build(DEF, 0);
            char *doc = doc_of(m, formats[f], reversed);
            api_error err;
            int rc = import(g, doc, &err);
            if (rc)
                fprintf(stderr, "%s: %s\n", formats[f], err.message);
            CU_ASSERT_EQUAL_FATAL(rc, 0);
            stored_dense(g, got);
            CU_ASSERT_EQUAL(memcmp(got, m, sizeof m), 0);
            CU_ASSERT_EQUAL(nn_tensor_numel(nn_node_weight(
                                nn_graph_find(g, "r"), "W")),
                            count_nonzero(m));
            free(doc);
            nn_graph_free(g);
        }
}

/* One step from a zero state leaves s = tanh(u · Win + b); the second
 * reads W: checked against a double loop over the dense reference. */
static void test_imported_pattern_computes(void)
{
    float m[N * N];
    make_matrix(m, 11);
    nn_graph *g = build(DEF, 0);
    char *doc = doc_of(m, "csc", 0);
    api_error err;
    CU_ASSERT_EQUAL_FATAL(import(g, doc, &err), 0);
    free(doc);
    nn_node *r = nn_graph_find(g, "r");
    const float *Win = nn_node_weight(r, "Win")->data;
    const float *b = nn_node_weight(r, "b")->data;
    nn_error e;
    nn_session *s = nn_session_new(g, 1, 5, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    double state[N] = {0};
    for (int step = 0; step < 3; step++) {
        float *u = nn_session_input(s, "x")->data;
        for (int i = 0; i < IN; i++)
            u[i] = (float)sin(0.7 * step + i);
        CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &e), NN_OK);
        double next[N];
        for (int j = 0; j < N; j++) {
            double pre = b[j];
            for (int i = 0; i < IN; i++)
                pre += (double)u[i] * Win[i * N + j];
            for (int i = 0; i < N; i++)
                pre += state[i] * m[i * N + j];
            next[j] = tanh(pre);
        }
        const float *out = nn_session_output(s, "r")->data;
        for (int j = 0; j < N; j++) {
            TU_ASSERT_CLOSE(out[j], next[j], 1e-5 * fabs(next[j]) + 1e-6);
            state[j] = out[j];
        }
    }
    nn_session_free(s);
    nn_graph_free(g);
}

static void refused(const char *doc, int status, const char *needle)
{
    nn_graph *g = build(DEF, 0);
    float before[N * N], after[N * N];
    stored_dense(g, before);
    api_error err;
    CU_ASSERT_EQUAL(import(g, doc, &err), -1);
    CU_ASSERT_EQUAL(err.http_status, status);
    if (!strstr(err.message, needle) || !strstr(err.message, "nodes.r.W"))
        fprintf(stderr, "%s\n  -> %d %s\n", doc, err.http_status,
                err.message);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, needle));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "nodes.r.W"));
    stored_dense(g, after);
    CU_ASSERT_EQUAL(memcmp(before, after, sizeof before), 0);
    nn_graph_free(g);
}

#define W_(body) "{\"nodes\": {\"r\": {\"W\": {" body "}}}}"
/* A csc W of 20 columns whose only entries are in column 0. */
#define PTR0(n) "\"indptr\": [0" \
    ", " #n ", " #n ", " #n ", " #n ", " #n ", " #n ", " #n ", " #n ", " #n \
    ", " #n ", " #n ", " #n ", " #n ", " #n ", " #n ", " #n ", " #n ", " #n \
    ", " #n ", " #n "]"

static void test_malformed_forms_are_refused(void)
{
    const char *csc = "\"format\": \"csc\", \"shape\": [20, 20], ";
    char doc[2048];
    /* Each case: the members after csc's format and shape. */
    static const struct {
        const char *members;
        int status;
        const char *needle;
    } cases[] = {
        {PTR0(2) ", \"indices\": [3, 20], \"data\": [1, 2]", 400,
         "indices[1] is 20, out of range: the matrix has 20 rows"},
        {PTR0(2) ", \"indices\": [3, 3], \"data\": [1, 2]", 400,
         "entries of \"indices\" 0 and 1 both set row 3, column 0"},
        {PTR0(2) ", \"indices\": [3, 4], \"data\": [1]", 400,
         "\"indices\" has 2 entries, \"data\" 1"},
        {PTR0(3) ", \"indices\": [3, 4], \"data\": [1, 2]", 400,
         "indptr[20] is 3, but \"data\" has 2 values"},
        {"\"indptr\": [0, 2], \"indices\": [3, 4], \"data\": [1, 2]", 400,
         "\"indptr\" has 2 offsets; 20 columns need 21"},
        {PTR0(2) ", \"indices\": [3, -4], \"data\": [1, 2]", 400,
         "indices[1] is not a non-negative integer"},
        {PTR0(2) ", \"indices\": [3, 4.0], \"data\": [1, 2]", 400,
         "indices[1] is not a non-negative integer"},
        {PTR0(2) ", \"indices\": [3, 4], \"data\": [1, 1e39]", 400,
         "data[1] is not a finite float32"},
        {PTR0(2) ", \"indices\": [3, 4], \"data\": [1, \"x\"]", 400,
         "data[1] is not a number"},
        {PTR0(2) ", \"indices\": [3, 4]", 400, "\"data\" is missing"},
        {PTR0(2) ", \"indices\": [3, 4], \"data\": [1, 2], \"col\": [0]",
         400, "\"col\" is not a member of format \"csc\""},
        {PTR0(2) ", \"indices\": [3, 4], \"data\": [1, 2], \"x\": 1", 400,
         "unknown member 'x'"},
        {PTR0(0) ", \"indices\": [], \"data\": []", 400,
         "at least one entry"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        snprintf(doc, sizeof doc, "{\"nodes\": {\"r\": {\"W\": {%s%s}}}}",
                 csc, cases[k].members);
        refused(doc, cases[k].status, cases[k].needle);
    }
    /* The indptr of a csc descends; a csr's indices name columns. */
    refused(W_("\"format\": \"csc\", \"shape\": [20, 20], \"indptr\": [0, 2, "
               "1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2], "
               "\"indices\": [1, 2], \"data\": [1, 2]"),
            400, "indptr[2] is 1, less than indptr[1] (2)");
    refused(W_("\"format\": \"csr\", \"shape\": [20, 20], " PTR0(1)
               ", \"indices\": [25], \"data\": [1]"),
            400, "indices[0] is 25, out of range: the matrix has 20 columns");
    refused(W_("\"format\": \"coo\", \"shape\": [20, 20], \"row\": [1, 2, 1], "
               "\"col\": [0, 0, 0], \"data\": [1, 2, 3]"),
            400, "entries 0 and 2 both set row 1, column 0");
    refused(W_("\"format\": \"coo\", \"shape\": [20, 20], \"row\": [1], "
               "\"col\": [0, 1], \"data\": [1, 2]"),
            400, "\"row\" has 1 entries, \"data\" 2");
    refused(W_("\"format\": \"coo\", \"shape\": [20, 20], \"row\": [20], "
               "\"col\": [0], \"data\": [1]"),
            400, "row[0] is 20, out of range");
    refused(W_("\"format\": \"coo\", \"shape\": [20, 21], \"row\": [1], "
               "\"col\": [0], \"data\": [1]"),
            400, "has shape (20, 21); the weight is (20, 20)");
    refused(W_("\"format\": \"bsr\", \"shape\": [20, 20]"), 400,
            "\"format\" must be \"csc\", \"csr\" or \"coo\"");
    refused(W_("\"format\": \"coo\", \"row\": [1], \"col\": [0], "
               "\"data\": [1]"),
            400, "\"shape\" is missing");
    refused(W_("\"format\": \"coo\", \"shape\": [400], \"row\": [1], "
               "\"col\": [0], \"data\": [1]"),
            400, "[rows, cols]");
}

/* The cap counts a sparse weight by its non-zeros: a pattern that fits
 * where the dense matrix would not is taken, one past the cap is 422. */
static void test_cap_counts_nonzeros(void)
{
    float m[N * N];
    make_matrix(m, 3);
    size_t nnz = count_nonzero(m);
    nn_graph *g0 = build(DEF, 0);
    size_t others = 0;
    nn_node *r0 = nn_graph_find(g0, "r");
    others = nn_node_param_count(r0) - nn_tensor_numel(nn_node_weight(r0, "W"));
    nn_graph_free(g0);
    /* Room for exactly this pattern (and far less than N * N). */
    CU_ASSERT_FATAL(others + nnz < others + N * N);
    size_t seed_nnz;
    {
        nn_graph *g = build(DEF, 0);
        seed_nnz = nn_tensor_numel(nn_node_weight(nn_graph_find(g, "r"), "W"));
        nn_graph_free(g);
    }
    size_t cap = others + (nnz > seed_nnz ? nnz : seed_nnz);
    nn_graph *g = build(DEF, cap);
    char *doc = doc_of(m, "csc", 0);
    api_error err;
    CU_ASSERT_EQUAL(import(g, doc, &err), 0);
    free(doc);
    nn_graph_free(g);
    /* One entry more than the cap holds. */
    float more[N * N];
    memcpy(more, m, sizeof m);
    size_t want = cap - others + 1;
    for (int i = 0; i < N * N && count_nonzero(more) < want; i++)
        if (more[i] == 0.0f)
            more[i] = 0.5f;
    g = build(DEF, cap);
    doc = doc_of(more, "coo", 1);
    CU_ASSERT_EQUAL(import(g, doc, &err), -1);
    CU_ASSERT_EQUAL(err.http_status, 422);
    CU_ASSERT_STRING_EQUAL(err.code, "too_large");
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "nodes.r.W"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "parameters, its limit"));
    free(doc);
    nn_graph_free(g);
}

/* GET's csc form reads back to the same bits, on the same daemon and on a
 * fresh network of the same definition; the values alone keep a
 * pattern, and their old count is refused once the pattern changed. */
static void test_export_round_trip(void)
{
    float m[N * N];
    make_matrix(m, 5);
    nn_graph *g = build(DEF, 0);
    char *seed_text = export_text(g);
    CU_ASSERT_PTR_NOT_NULL(strstr(seed_text, "\"W\":{\"format\":\"csc\","
                                             "\"shape\":[20,20],\"indptr\":"
                                             "[0,"));
    /* The seed's values alone, as the export's data. */
    nn_node *r = nn_graph_find(g, "r");
    size_t seed_nnz = nn_tensor_numel(nn_node_weight(r, "W"));
    char *doc = doc_of(m, "csc", 1);
    api_error err;
    CU_ASSERT_EQUAL_FATAL(import(g, doc, &err), 0);
    free(doc);
    char *text = export_text(g);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"trainable\":false"));
    nn_graph *h = build(DEF, 0);
    CU_ASSERT_EQUAL_FATAL(import(h, text, &err), 0);
    char *again = export_text(h);
    CU_ASSERT_STRING_EQUAL(text, again);
    float a[N * N], b[N * N];
    stored_dense(g, a);
    stored_dense(h, b);
    CU_ASSERT_EQUAL(memcmp(a, b, sizeof a), 0);
    CU_ASSERT_EQUAL(memcmp(a, m, sizeof a), 0);
    /* The values alone: the present count is taken, the seed's is not
     * (unless the counts happen to agree). */
    size_t nnz = nn_tensor_numel(nn_node_weight(r, "W"));
    api_buf vb = {0};
    api_buf_puts(&vb, "{\"nodes\": {\"r\": {\"W\": {\"shape\": [");
    put_int(&vb, (long)nnz);
    api_buf_puts(&vb, "], \"data\": [");
    for (size_t k = 0; k < nnz; k++)
        api_buf_puts(&vb, k ? ", 0.25" : "0.25");
    api_buf_puts(&vb, "]}}}}");
    char *values = api_buf_finish(&vb, NULL);
    CU_ASSERT_EQUAL(import(g, values, &err), 0);
    stored_dense(g, a);
    for (int i = 0; i < N * N; i++)
        CU_ASSERT_EQUAL(a[i], m[i] != 0.0f ? 0.25f : 0.0f);
    CU_ASSERT_EQUAL(import(h, seed_text, &err), 0); /* with its pattern */
    if (seed_nnz != nnz) {
        CU_ASSERT_EQUAL(import(h, values, &err), -1);
        CU_ASSERT_STRING_EQUAL(err.code, "shape_mismatch");
    }
    free(values);
    free(seed_text);
    free(text);
    free(again);
    nn_graph_free(g);
    nn_graph_free(h);
}

/* A dense (rows, cols) matrix given for a sparse W takes its non-zeros as
 * the pattern; a sparse form given for a dense weight (Win) is scattered. */
static void test_dense_and_sparse_cross(void)
{
    float m[N * N], got[N * N];
    make_matrix(m, 9);
    nn_graph *g = build(DEF, 0);
    api_buf b = {0};
    api_buf_puts(&b, "{\"nodes\": {\"r\": {\"W\": ");
    nn_shape sh = nn_shape2(N, N);
    api_buf_tensor(&b, m, &sh);
    api_buf_puts(&b, ", \"Win\": {\"format\": \"coo\", \"shape\": [3, 20], "
                     "\"row\": [2, 0], \"col\": [19, 1], \"data\": [1.5, "
                     "-2]}}}}");
    char *doc = api_buf_finish(&b, NULL);
    api_error err;
    int rc = import(g, doc, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.message);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    stored_dense(g, got);
    CU_ASSERT_EQUAL(memcmp(got, m, sizeof m), 0);
    const nn_tensor *win = nn_node_weight(nn_graph_find(g, "r"), "Win");
    for (int i = 0; i < IN * N; i++)
        CU_ASSERT_EQUAL(win->data[i], i == 2 * N + 19 ? 1.5f
                                      : i == 1        ? -2.0f
                                                      : 0.0f);
    free(doc);
    nn_graph_free(g);
}

/* A clone (what fit trains), an undo (a failed save) and the data
 * directory's file keep the imported pattern. */
static void test_pattern_travels(void)
{
    float m[N * N], got[N * N], seed[N * N];
    make_matrix(m, 13);
    nn_graph *g = build(DEF, 0);
    stored_dense(g, seed);
    char *doc = doc_of(m, "csr", 1);
    api_json j = {doc, strlen(doc), NULL};
    api_params_import *imp;
    api_error err;
    CU_ASSERT_EQUAL_FATAL(api_params_read(g, &j, &imp, &err), 0);
    api_params_apply(g, imp);
    stored_dense(g, got);
    CU_ASSERT_EQUAL(memcmp(got, m, sizeof m), 0);
    api_params_unapply_patterns(g, imp);
    stored_dense(g, got);
    CU_ASSERT_EQUAL(memcmp(got, seed, sizeof m), 0);
    api_params_apply(g, imp);
    api_params_import_free(imp);
    free(doc);

    nn_error e;
    nn_graph *c = nn_graph_clone(g, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    stored_dense(c, got);
    CU_ASSERT_EQUAL(memcmp(got, m, sizeof m), 0);
    nn_graph_free(c);

    unsigned char *bytes;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(api_network_file_write("n1", "s", DEF, g, &bytes,
                                                 &len, &err), 0);
    CU_ASSERT_EQUAL(bytes[7], 3);
    api_stored_network n;
    int rc = api_network_file_read(bytes, len, reg, &lim, &n, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.message);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    stored_dense(n.graph, got);
    CU_ASSERT_EQUAL(memcmp(got, m, sizeof m), 0);
    char *t1 = export_text(g), *t2 = export_text(n.graph);
    CU_ASSERT_STRING_EQUAL(t1, t2);
    free(t1);
    free(t2);
    api_stored_network_free(&n);
    /* A damaged pattern (an index past the rows; the CRC resealed) is
     * refused by name. */
    size_t last = len - 4; /* the last row index */
    bytes[last] = 0xff;
    bytes[last + 1] = 0xff;
    uint32_t crc = api_crc32(0, bytes, 24);
    crc = api_crc32(crc, bytes + 28, len - 28);
    for (int i = 0; i < 4; i++)
        bytes[24 + i] = (unsigned char)(crc >> (8 * i));
    CU_ASSERT_EQUAL(api_network_file_read(bytes, len, reg, &lim, &n, &err),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "the pattern of r.W"));
    free(bytes);
    nn_graph_free(g);
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void reseal(unsigned char *bytes, size_t len)
{
    uint32_t crc = api_crc32(0, bytes, 24);
    crc = api_crc32(crc, bytes + 28, len - 28);
    put_le(bytes + 24, crc, 4);
}

/* A version 2 file held no patterns: it loads with the seed's, the
 * values where it had them. Made from a version 3 file of the seed's
 * pattern by cutting the pattern words. */
static void test_version_2_loads_with_the_seed(void)
{
    nn_graph *g = build(DEF, 0);
    float seed[N * N], got[N * N];
    stored_dense(g, seed);
    unsigned char *bytes;
    size_t len;
    api_error err;
    CU_ASSERT_EQUAL_FATAL(api_network_file_write("n4", NULL, DEF, g, &bytes,
                                                 &len, &err), 0);
    nn_node *r = nn_graph_find(g, "r");
    size_t words = N + 1 + nn_tensor_numel(nn_node_weight(r, "W"));
    uint64_t values = 0;
    for (int i = 0; i < 8; i++)
        values |= (uint64_t)bytes[16 + i] << (8 * i);
    len -= 4 * words;
    bytes[7] = 2;
    put_le(bytes + 16, values - words, 8);
    reseal(bytes, len);
    api_stored_network n;
    int rc = api_network_file_read(bytes, len, reg, &lim, &n, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.message);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    stored_dense(n.graph, got);
    CU_ASSERT_EQUAL(memcmp(got, seed, sizeof got), 0);
    char *t1 = export_text(g), *t2 = export_text(n.graph);
    CU_ASSERT_STRING_EQUAL(t1, t2);
    free(t1);
    free(t2);
    api_stored_network_free(&n);
    /* The same cut file claiming version 3 lacks its patterns. */
    bytes[7] = 3;
    reseal(bytes, len);
    CU_ASSERT_EQUAL(api_network_file_read(bytes, len, reg, &lim, &n, &err),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "stored words"));
    free(bytes);
    nn_graph_free(g);
}

/* Values read against one pattern, then another import changes the
 * pattern before they are applied: refused under the lock (400), never a
 * copy of the old count into the new weight. */
static void test_values_after_a_new_pattern(void)
{
    nn_graph *g = build(DEF, 0);
    nn_node *r = nn_graph_find(g, "r");
    size_t nnz = nn_tensor_numel(nn_node_weight(r, "W"));
    api_buf vb = {0};
    api_buf_puts(&vb, "{\"nodes\": {\"r\": {\"W\": {\"shape\": [");
    put_int(&vb, (long)nnz);
    api_buf_puts(&vb, "], \"data\": [");
    for (size_t k = 0; k < nnz; k++)
        api_buf_puts(&vb, k ? ", 1" : "1");
    api_buf_puts(&vb, "]}}}}");
    char *values = api_buf_finish(&vb, NULL);
    api_json j = {values, strlen(values), NULL};
    api_params_import *imp;
    api_error err;
    CU_ASSERT_EQUAL_FATAL(api_params_read(g, &j, &imp, &err), 0);
    CU_ASSERT_EQUAL(import(g, W_("\"format\": \"coo\", \"shape\": [20, 20], "
                                 "\"row\": [1], \"col\": [0], \"data\": [1]"),
                           &err), 0);
    CU_ASSERT_EQUAL(api_params_still_fits(g, imp, &err), -1);
    CU_ASSERT_EQUAL(err.http_status, 400);
    CU_ASSERT_STRING_EQUAL(err.code, "shape_mismatch");
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "nodes.r.W"));
    api_params_apply(g, imp); /* a careless caller: nothing is written */
    CU_ASSERT_EQUAL(nn_tensor_numel(nn_node_weight(r, "W")), 1);
    CU_ASSERT_EQUAL(nn_node_weight(r, "W")->data[0], 1.0f);
    api_params_import_free(imp);
    free(values);
    nn_graph_free(g);
}

int main(void)
{
    nn_error e;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &e) != NN_OK)
        return 1;
    lim = api_default_limits();
    static const tu_test tests[] = {
        {"csc, csr and coo store one pattern", test_forms_store_one_pattern},
        {"an imported pattern computes", test_imported_pattern_computes},
        {"malformed forms are refused", test_malformed_forms_are_refused},
        {"the cap counts non-zeros", test_cap_counts_nonzeros},
        {"export reads back bit for bit", test_export_round_trip},
        {"dense into sparse and sparse into dense",
         test_dense_and_sparse_cross},
        {"the pattern travels", test_pattern_travels},
        {"values after a new pattern", test_values_after_a_new_pattern},
        {"a version 2 file loads with the seed's pattern",
         test_version_2_loads_with_the_seed},
        {NULL, NULL}};
    int rc = tu_run_suite("sparse params", tests);
    nn_registry_free(reg);
    return rc;
}
