/*
 * api_sparse.c — the sparse form of a weight in parameter documents (see
 * api_sparse.h). Read straight from the body text, like every tensor of
 * the params route: the arrays of a 10,000-unit reservoir are a million
 * numbers each, so no JSON tree is built of them.
 *
 * Every form is brought to one list of (row, column, value) entries, which
 * is checked (ranges), sorted by column then row (unless it already is, as
 * SciPy's canonical arrays are), checked for repeats, and packed as the
 * engine stores it.
 */
#include "api_sparse.h"
#include "api_jsonpush.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPOS ((size_t)-1)
#define KEY_MAX 64

static size_t ws(const api_json *j, size_t p)
{
    while (p < j->len && (j->s[p] == ' ' || j->s[p] == '\t' ||
                          j->s[p] == '\n' || j->s[p] == '\r'))
        p++;
    return p;
}

/* One of the forms' members, in a table so the readers stay flat. */
enum { M_FORMAT, M_SHAPE, M_INDPTR, M_INDICES, M_ROW, M_COL, M_DATA,
       M_TRAINABLE, M_COUNT };
static const char *const MEMBERS[M_COUNT] = {
    "format", "shape", "indptr", "indices", "row", "col", "data",
    "trainable"};

typedef enum { F_CSC, F_CSR, F_COO } form;

int api_sparse_is_form(const api_json *j, size_t pos)
{
    return api_json_kind(j, pos) == '{' &&
           api_json_find(j, pos, "format") != NPOS;
}

/* The body's byte offset of position p of j's text: a pushed document
 * keeps less text than the body had (api_jsonpush.h). */
static size_t body_offset(const api_json *j, size_t p)
{
    return j->doc ? api_jsondoc_offset(j->doc, p) : p;
}

/* Walks the elements of the array at pos: calls each(j, p, i, ctx) with
 * the position of element i; stops at the first nonzero return. */
typedef int (*element_fn)(const api_json *j, size_t p, size_t i, void *ctx);

static int each_element(const api_json *j, size_t pos, const char *where,
                        const char *name, element_fn each, void *ctx,
                        size_t *count, api_error *err)
{
    *count = 0;
    if (api_json_kind(j, pos) != '[')
        return api_fail(err, 400, "bad_tensor", "%s: \"%s\" must be an "
                        "array", where, name);
    size_t p = ws(j, ws(j, pos) + 1);
    if (p < j->len && j->s[p] == ']')
        return 0;
    for (size_t i = 0;; i++) {
        if (each(j, p, i, ctx))
            return -1;
        (*count)++;
        p = api_json_skip(j, p);
        if (p == NPOS)
            break;
        p = ws(j, p);
        if (p < j->len && j->s[p] == ',') {
            p = ws(j, p + 1);
            continue;
        }
        if (p < j->len && j->s[p] == ']')
            return 0;
        break;
    }
    return api_fail(err, 400, "bad_json", "%s.%s: malformed JSON at byte "
                    "%zu", where, name, body_offset(j, p == NPOS ? j->len : p));
}

/* A growable array of 64-bit integers or floats read from the text. */
typedef struct grow {
    const char *where, *name;
    size_t *ints;
    float *floats;
    size_t n, cap;
    api_error *err;
} grow;

static int grow_room(grow *g, size_t i)
{
    if (i < g->cap)
        return 0;
    size_t cap = g->cap ? g->cap * 2 : 1024;
    void *p = g->ints ? realloc(g->ints, cap * sizeof *g->ints)
                      : realloc(g->floats, cap * sizeof *g->floats);
    if (!p)
        return api_fail(g->err, 503, "out_of_memory", "%s.%s: out of memory",
                        g->where, g->name);
    if (g->ints)
        g->ints = p;
    else
        g->floats = p;
    g->cap = cap;
    return 0;
}

/* A JSON integer from 0 to 2^53 written without fraction or exponent. */
static int int_element(const api_json *j, size_t p, size_t i, void *ctx)
{
    grow *g = ctx;
    size_t v = 0, q = p;
    while (q < j->len && j->s[q] >= '0' && j->s[q] <= '9' && q - p < 16)
        v = v * 10 + (size_t)(j->s[q++] - '0');
    int ok = q > p && (j->s[p] != '0' || q == p + 1) &&
             (q >= j->len || (j->s[q] != '.' && j->s[q] != 'e' &&
                              j->s[q] != 'E' &&
                              !(j->s[q] >= '0' && j->s[q] <= '9')));
    if (!ok)
        return api_fail(g->err, 400, "bad_tensor", "%s: %s[%zu] is not a "
                        "non-negative integer (at byte %zu)", g->where,
                        g->name, i, body_offset(j, p));
    if (grow_room(g, i))
        return -1;
    g->ints[i] = v;
    return 0;
}

static int float_element(const api_json *j, size_t p, size_t i, void *ctx)
{
    grow *g = ctx;
    float f;
    size_t used = api_read_float(j->s + p, j->len - p, &f);
    if (!used)
        return api_fail(g->err, 400, "bad_tensor", "%s: %s[%zu] is not a "
                        "number (at byte %zu)", g->where, g->name, i,
                        body_offset(j, p));
    if (!isfinite(f))
        return api_fail(g->err, 400, "bad_tensor", "%s: %s[%zu] is not a "
                        "finite float32 (at byte %zu)", g->where, g->name, i,
                        body_offset(j, p));
    if (grow_room(g, i))
        return -1;
    g->floats[i] = f;
    return 0;
}

/* The array at pos when the pushed reader (api_jsonpush.c) read it into
 * float32 as the body arrived, or NULL when it is text. */
static const api_blob *blob_at(const api_json *j, size_t pos)
{
    size_t p = ws(j, pos);
    if (p >= j->len || j->s[p] != API_BLOB_MARK)
        return NULL;
    return j->doc ? api_jsondoc_blob_at(j->doc, p) : NULL;
}

/* A blob's floats as the text's would have been read, with the same
 * messages: a flat array of finite numbers. */
static int blob_floats(const api_blob *b, const char *where, const char *name,
                       int ints, grow *g, api_error *err)
{
    if (ints) /* index arrays stay text; one reached here was escaped */
        return api_fail(err, 400, "bad_tensor", "%s: \"%s\" must be an "
                        "array of non-negative integers", where, name);
    if (b->bad_kind)
        return api_fail(err, 400, "bad_tensor", "%s: %s[%zu] is not a %s "
                        "(at byte %zu)", where, name, b->bad_index,
                        b->bad_kind == API_BLOB_NOT_FINITE
                            ? "finite float32" : "number",
                        b->bad_at);
    if (!b->data || b->n != b->top)
        return api_fail(err, 400, "bad_tensor", "%s: \"%s\" must be a flat "
                        "array of numbers", where, name);
    g->floats = malloc((b->n ? b->n : 1) * sizeof *g->floats);
    if (!g->floats)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    memcpy(g->floats, b->data, b->n * sizeof *g->floats);
    g->n = g->cap = b->n;
    return 0;
}

/* Reads the array at pos whole; ints or floats as asked. */
static int read_array(const api_json *j, size_t pos, const char *where,
                      const char *name, int ints, grow *g, api_error *err)
{
    memset(g, 0, sizeof *g);
    g->where = where;
    g->name = name;
    g->err = err;
    const api_blob *b = blob_at(j, pos);
    if (b)
        return blob_floats(b, where, name, ints, g, err);
    /* A one-element start tells grow_room which array is in use. */
    if (ints)
        g->ints = malloc(sizeof *g->ints);
    else
        g->floats = malloc(sizeof *g->floats);
    if (!g->ints && !g->floats)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    g->cap = 1;
    size_t n;
    int rc = each_element(j, pos, where, name,
                          ints ? int_element : float_element, g, &n, err);
    g->n = n;
    return rc;
}

static void grow_free(grow *g)
{
    free(g->ints);
    free(g->floats);
    memset(g, 0, sizeof *g);
}

/* One entry of the matrix, with its place in the request for messages. */
typedef struct entry {
    uint32_t row, col;
    size_t at;
    float v;
} entry;

static int entry_cmp(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    if (x->row != y->row)
        return x->row < y->row ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* The form's offsets: n + 1 of them from 0, nondecreasing, to nnz. */
static int check_indptr(const grow *ptr, size_t n, size_t nnz,
                        const char *where, const char *axis, api_error *err)
{
    if (ptr->n != n + 1)
        return api_fail(err, 400, "bad_tensor", "%s: \"indptr\" has %zu "
                        "offsets; %zu %s need %zu", where, ptr->n, n, axis,
                        n + 1);
    if (ptr->ints[0] != 0)
        return api_fail(err, 400, "bad_tensor", "%s: indptr[0] is %zu; it "
                        "must be 0", where, ptr->ints[0]);
    for (size_t i = 1; i <= n; i++)
        if (ptr->ints[i] < ptr->ints[i - 1])
            return api_fail(err, 400, "bad_tensor", "%s: indptr[%zu] is %zu, "
                            "less than indptr[%zu] (%zu); offsets must not "
                            "decrease", where, i, ptr->ints[i], i - 1,
                            ptr->ints[i - 1]);
    if (ptr->ints[n] != nnz)
        return api_fail(err, 400, "bad_tensor", "%s: indptr[%zu] is %zu, but "
                        "\"data\" has %zu values", where, n, ptr->ints[n],
                        nnz);
    return 0;
}

/* A (rows, cols) "shape" of two positive integers. */
static int read_shape(const api_json *j, size_t pos, const char *where,
                      int *rows, int *cols, api_error *err)
{
    grow g;
    int rc = read_array(j, pos, where, "shape", 1, &g, err);
    if (rc == 0 && (g.n != 2 || g.ints[0] < 1 || g.ints[1] < 1 ||
                    g.ints[0] > INT32_MAX || g.ints[1] > INT32_MAX))
        rc = api_fail(err, 400, "bad_tensor", "%s: \"shape\" of a sparse "
                      "matrix is [rows, cols], two positive integers", where);
    if (rc == 0) {
        *rows = (int)g.ints[0];
        *cols = (int)g.ints[1];
    }
    grow_free(&g);
    return rc;
}

/* The members of the form at pos, by the table above; unknown ones and
 * ones of another format are refused. */
static int read_members(const api_json *j, size_t pos, const char *where,
                        size_t at[M_COUNT], form *f, api_error *err)
{
    for (int m = 0; m < M_COUNT; m++)
        at[m] = NPOS;
    size_t it = 0, value;
    char key[KEY_MAX];
    int cut, rc;
    while ((rc = api_json_member(j, pos, &it, key, sizeof key, &cut,
                                 &value)) == 1) {
        int m = 0;
        while (m < M_COUNT && (cut || strcmp(key, MEMBERS[m]) != 0))
            m++;
        if (m == M_COUNT)
            return api_fail(err, 400, "bad_tensor", "%s: unknown member "
                            "'%.64s' of a sparse matrix", where, key);
        if (at[m] == NPOS) /* the first of repeated keys, as cJSON */
            at[m] = value;
    }
    if (rc < 0)
        return api_fail(err, 400, "bad_json", "%s: malformed JSON at byte "
                        "%zu", where, body_offset(j, it));
    /* The format's name, as a short string. */
    char name[8] = "";
    if (at[M_FORMAT] == NPOS)
        return api_fail(err, 400, "bad_tensor", "%s: \"format\" is missing",
                        where);
    size_t p = ws(j, at[M_FORMAT]);
    size_t end = p < j->len && j->s[p] == '"' ? api_json_skip(j, p) : NPOS;
    if (end != NPOS && end - p - 2 < sizeof name) {
        memcpy(name, j->s + p + 1, end - p - 2);
        name[end - p - 2] = '\0';
    }
    if (strcmp(name, "csc") == 0)
        *f = F_CSC;
    else if (strcmp(name, "csr") == 0)
        *f = F_CSR;
    else if (strcmp(name, "coo") == 0)
        *f = F_COO;
    else
        return api_fail(err, 400, "bad_tensor", "%s: \"format\" must be "
                        "\"csc\", \"csr\" or \"coo\"", where);
    static const int need[3][3] = {{M_INDPTR, M_INDICES, M_DATA},
                                   {M_INDPTR, M_INDICES, M_DATA},
                                   {M_ROW, M_COL, M_DATA}};
    static const int refuse[3][2] = {{M_ROW, M_COL}, {M_ROW, M_COL},
                                     {M_INDPTR, M_INDICES}};
    if (at[M_SHAPE] == NPOS)
        return api_fail(err, 400, "bad_tensor", "%s: \"shape\" is missing",
                        where);
    for (int k = 0; k < 3; k++)
        if (at[need[*f][k]] == NPOS)
            return api_fail(err, 400, "bad_tensor", "%s: \"%s\" is missing "
                            "(format \"%s\")", where, MEMBERS[need[*f][k]],
                            name);
    for (int k = 0; k < 2; k++)
        if (at[refuse[*f][k]] != NPOS)
            return api_fail(err, 400, "bad_tensor", "%s: \"%s\" is not a "
                            "member of format \"%s\"", where,
                            MEMBERS[refuse[*f][k]], name);
    return 0;
}

/* The entries of the form into a list; every index checked in range. */
static int read_entries(const api_json *j, const size_t at[M_COUNT], form f,
                        const char *where, int rows, int cols, entry **out,
                        size_t *nnz, api_error *err)
{
    grow a, b, data;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    entry *e = NULL;
    int rc = read_array(j, at[M_DATA], where, "data", 0, &data, err);
    size_t n = data.n;
    const char *an = f == F_COO ? "row" : "indptr";
    const char *bn = f == F_COO ? "col" : "indices";
    if (rc == 0)
        rc = read_array(j, at[f == F_COO ? M_ROW : M_INDPTR], where, an, 1,
                        &a, err);
    if (rc == 0)
        rc = read_array(j, at[f == F_COO ? M_COL : M_INDICES], where, bn, 1,
                        &b, err);
    if (rc == 0 && b.n != n)
        rc = api_fail(err, 400, "bad_tensor", "%s: \"%s\" has %zu entries, "
                      "\"data\" %zu", where, bn, b.n, n);
    if (rc == 0 && f == F_COO && a.n != n)
        rc = api_fail(err, 400, "bad_tensor", "%s: \"row\" has %zu entries, "
                      "\"data\" %zu", where, a.n, n);
    if (rc == 0 && f != F_COO)
        rc = check_indptr(&a, f == F_CSC ? (size_t)cols : (size_t)rows, n,
                          where, f == F_CSC ? "columns" : "rows", err);
    if (rc == 0 && !(e = malloc((n ? n : 1) * sizeof *e)))
        rc = api_fail(err, 503, "out_of_memory", "%s: out of memory", where);
    /* The compressed axis of entry k, walked along with k. */
    size_t major = 0;
    for (size_t k = 0; rc == 0 && k < n; k++) {
        size_t r, c;
        if (f == F_COO) {
            r = a.ints[k];
            c = b.ints[k];
        } else {
            while (a.ints[major + 1] <= k)
                major++;
            r = f == F_CSC ? b.ints[k] : major;
            c = f == F_CSC ? major : b.ints[k];
        }
        if (r >= (size_t)rows || c >= (size_t)cols) {
            int is_row = r >= (size_t)rows;
            const char *arr = f == F_COO ? (is_row ? "row" : "col")
                                         : "indices";
            rc = api_fail(err, 400, "bad_tensor", "%s: %s[%zu] is %zu, out "
                          "of range: the matrix has %d %s", where, arr, k,
                          is_row ? r : c, is_row ? rows : cols,
                          is_row ? "rows" : "columns");
            break;
        }
        e[k].row = (uint32_t)r;
        e[k].col = (uint32_t)c;
        e[k].at = k;
        e[k].v = data.floats[k];
    }
    grow_free(&a);
    grow_free(&b);
    grow_free(&data);
    if (rc) {
        free(e);
        return rc;
    }
    *out = e;
    *nnz = n;
    return 0;
}

/* Sorts by column then row and refuses a repeated place. */
static int order_entries(entry *e, size_t n, const char *where, form f,
                         api_error *err)
{
    int sorted = 1;
    for (size_t k = 1; k < n && sorted; k++)
        sorted = entry_cmp(&e[k - 1], &e[k]) < 0;
    if (!sorted)
        qsort(e, n, sizeof *e, entry_cmp);
    const char *arr = f == F_COO ? "entries" : "entries of \"indices\"";
    for (size_t k = 1; k < n; k++)
        if (e[k].row == e[k - 1].row && e[k].col == e[k - 1].col)
            return api_fail(err, 400, "bad_tensor", "%s: %s %zu and %zu "
                            "both set row %u, column %u; each place may be "
                            "given once", where, arr, e[k - 1].at, e[k].at,
                            e[k].row, e[k].col);
    return 0;
}

/* Packs sorted entries as the engine stores a sparse weight. */
static int pack(const nn_node *node, int w, const entry *e, size_t n,
                int cols, const char *where, nn_sparse_values **out,
                api_error *err)
{
    size_t *ptr = calloc((size_t)cols + 1, sizeof *ptr);
    uint32_t *row = malloc((n ? n : 1) * sizeof *row);
    float *val = malloc((n ? n : 1) * sizeof *val);
    int rc = 0;
    if (!ptr || !row || !val) {
        rc = api_fail(err, 503, "out_of_memory", "%s: out of memory", where);
    } else {
        for (size_t k = 0; k < n; k++) {
            ptr[e[k].col + 1]++;
            row[k] = e[k].row;
            val[k] = e[k].v;
        }
        for (int c = 0; c < cols; c++)
            ptr[c + 1] += ptr[c];
        nn_error ne;
        if (nn_sparse_values_new(node, w, ptr, row, val, n, out, &ne) !=
            NN_OK) {
            /* The cap is the definition's limit, as when it was built. */
            api_fail_from_nn(err, &ne, 1);
            char msg[sizeof err->message];
            snprintf(msg, sizeof msg, "%s: %s", where, err->message);
            snprintf(err->message, sizeof err->message, "%s", msg);
            rc = -1;
        }
    }
    free(ptr);
    free(row);
    free(val);
    return rc;
}

int api_sparse_read(const api_json *j, size_t pos, const char *where,
                    const nn_node *node, int w, nn_sparse_values **sparse,
                    nn_tensor **dense, api_error *err)
{
    *sparse = NULL;
    *dense = NULL;
    size_t at[M_COUNT];
    form f = F_CSC;
    int rows = 0, cols = 0, want_rows, want_cols;
    if (read_members(j, pos, where, at, &f, err) ||
        read_shape(j, at[M_SHAPE], where, &rows, &cols, err))
        return -1;
    int is_sparse = nn_node_weight_sparse(node, w, &want_rows, &want_cols);
    const nn_tensor *t = nn_node_weight_at((nn_node *)node, w);
    if (!is_sparse) {
        if (t->shape.ndim != 2)
            return api_fail(err, 400, "shape_mismatch", "%s: a sparse matrix "
                            "is 2-d; the weight is %d-d", where,
                            t->shape.ndim);
        want_rows = t->shape.dims[0];
        want_cols = t->shape.dims[1];
    }
    if (rows != want_rows || cols != want_cols)
        return api_fail(err, 400, "shape_mismatch", "%s has shape (%d, %d); "
                        "the weight is (%d, %d)", where, rows, cols,
                        want_rows, want_cols);
    entry *e;
    size_t n;
    if (read_entries(j, at, f, where, rows, cols, &e, &n, err))
        return -1;
    int rc = order_entries(e, n, where, f, err);
    if (rc == 0 && is_sparse) {
        rc = pack(node, w, e, n, cols, where, sparse, err);
    } else if (rc == 0) {
        nn_shape s = nn_shape2(rows, cols);
        if (!(*dense = nn_tensor_new(&s)))
            rc = api_fail(err, 503, "out_of_memory", "%s: out of memory",
                          where);
        for (size_t k = 0; rc == 0 && k < n; k++)
            (*dense)->data[(size_t)e[k].row * (size_t)cols + e[k].col] =
                e[k].v;
    }
    free(e);
    return rc;
}

int api_sparse_from_dense(const nn_node *node, int w, const nn_tensor *t,
                          const char *where, nn_sparse_values **out,
                          api_error *err)
{
    int rows = t->shape.dims[0], cols = t->shape.dims[1];
    size_t n = 0, total = (size_t)rows * (size_t)cols;
    for (size_t i = 0; i < total; i++)
        n += t->data[i] != 0.0f;
    entry *e = malloc((n ? n : 1) * sizeof *e);
    if (!e)
        return api_fail(err, 503, "out_of_memory", "%s: out of memory",
                        where);
    /* Column by column, increasing rows: already the stored order. */
    size_t k = 0;
    for (int c = 0; c < cols; c++)
        for (int r = 0; r < rows; r++) {
            float v = t->data[(size_t)r * (size_t)cols + (size_t)c];
            if (v != 0.0f) {
                e[k].row = (uint32_t)r;
                e[k].col = (uint32_t)c;
                e[k].at = k;
                e[k].v = v;
                k++;
            }
        }
    int rc = pack(node, w, e, n, cols, where, out, err);
    free(e);
    return rc;
}

size_t api_sparse_extra_words(const nn_node *node, int w)
{
    int cols;
    if (!nn_node_weight_sparse(node, w, NULL, &cols))
        return 0;
    return (size_t)cols + 1 +
           nn_tensor_numel(nn_node_weight_at((nn_node *)node, w));
}

void api_enc_sparse_weight(api_enc *e, nn_node *node, int w)
{
    int rows, cols;
    nn_node_weight_sparse(node, w, &rows, &cols);
    const nn_tensor *t = nn_node_weight_at(node, w);
    size_t nnz = nn_tensor_numel(t);
    size_t *ptr = malloc(((size_t)cols + 1) * sizeof *ptr);
    uint32_t *row = malloc(nnz * sizeof *row);
    uint32_t *ptr32 = malloc(((size_t)cols + 1) * sizeof *ptr32);
    nn_tensor *vals = nn_tensor_new(&t->shape);
    if (!ptr || !row || !ptr32 || !vals) {
        free(ptr);
        free(row);
        free(ptr32);
        nn_tensor_free(vals);
        api_enc_fail(e);
        return;
    }
    nn_node_weight_pattern(node, w, ptr, row);
    for (int c = 0; c <= cols; c++)
        ptr32[c] = (uint32_t)ptr[c]; /* nnz fits a weight: below 2^31 */
    free(ptr);
    memcpy(vals->data, t->data, nnz * sizeof(float));
    api_enc_text(e, "{\"format\":\"csc\",\"shape\":[");
    api_enc_long(e, rows);
    api_enc_text(e, ",");
    api_enc_long(e, cols);
    api_enc_text(e, "],\"indptr\":");
    api_enc_uints(e, ptr32, (size_t)cols + 1);
    api_enc_text(e, ",\"indices\":");
    api_enc_uints(e, row, nnz);
    api_enc_text(e, ",\"data\":");
    /* As text in the binary framing too: the sparse form has no binary
     * member, and its indices are text there anyway. */
    api_enc_tensor_text(e, vals);
}
