/*
 * api_persist.c — the data directory's file format (see api_persist.h).
 * Bytes are put together and taken apart one by one, so a file means the
 * same on any machine, and every length is checked against what is there
 * before it is used: a truncated or damaged file is an error, never a read
 * out of bounds.
 */
#include "api_persist.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char MAGIC[6] = {'N', 'E', 'R', 'V', 'E', 'D'};
#define KIND_NETWORK 'N'
#define KIND_CHECKPOINT 'C'
#define CRC_AT 24

/* ------------------------------------------------------------- CRC-32 */

/* zlib would be a new dependency for sixteen lines. */
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_table_build(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t api_crc32(uint32_t crc, const void *data, size_t len)
{
    /* Once, before any reader: threads writing files at start raced on
     * a lazily built table. */
    pthread_once(&crc_once, crc_table_build);
    const uint32_t *table = crc_table;
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++)
        crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

/* ------------------------------------------------------- little-endian */

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_floats(unsigned char *p, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], 4);
        put_u32(p + 4 * i, bits);
    }
}

static void get_floats(float *v, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = get_u32(p + 4 * i);
        memcpy(&v[i], &bits, 4);
    }
}

/* The CRC of a whole file but its own four bytes. */
static uint32_t file_crc(const unsigned char *bytes, size_t len)
{
    uint32_t crc = api_crc32(0, bytes, CRC_AT);
    return api_crc32(crc, bytes + CRC_AT + 4, len - CRC_AT - 4);
}

/* ----------------------------------------------------------- framing */

/* Lays out header, meta, definition and room for n_values floats; returns
 * the buffer with *values_at pointing at where the values go. The CRC is
 * sealed once the values are in. */
static unsigned char *frame(char kind, const char *meta, const char *def,
                            size_t n_values, size_t *len,
                            unsigned char **values_at, api_error *err)
{
    size_t meta_len = strlen(meta), def_len = def ? strlen(def) : 0;
    if (meta_len > UINT32_MAX || def_len > UINT32_MAX ||
        n_values > (SIZE_MAX - API_PERSIST_HEADER - meta_len - def_len) / 4) {
        api_fail(err, 413, "too_large", "too large for one file");
        return NULL;
    }
    size_t total = API_PERSIST_HEADER + meta_len + def_len + 4 * n_values;
    unsigned char *b = malloc(total);
    if (!b) {
        api_fail(err, 503, "out_of_memory", "out of memory");
        return NULL;
    }
    memcpy(b, MAGIC, sizeof MAGIC);
    b[6] = (unsigned char)kind;
    b[7] = API_PERSIST_VERSION;
    put_u32(b + 8, (uint32_t)meta_len);
    put_u32(b + 12, (uint32_t)def_len);
    put_u64(b + 16, (uint64_t)n_values);
    put_u32(b + CRC_AT, 0);
    memcpy(b + API_PERSIST_HEADER, meta, meta_len);
    if (def_len)
        memcpy(b + API_PERSIST_HEADER + meta_len, def, def_len);
    *values_at = b + API_PERSIST_HEADER + meta_len + def_len;
    *len = total;
    return b;
}

static void seal(unsigned char *bytes, size_t len)
{
    put_u32(bytes + CRC_AT, file_crc(bytes, len));
}

typedef struct parts {
    cJSON *meta;
    const unsigned char *def;
    size_t def_len;
    const unsigned char *values;
    size_t n_values;
} parts;

/* Checks the frame of a file of the given kind; parses its meta. */
int api_persist_header_check(const unsigned char *b, size_t len, char kind,
                             size_t max_values, api_error *err)
{
    if (len < API_PERSIST_HEADER)
        return api_fail(err, 422, "corrupt_file", "truncated: %zu bytes, "
                        "shorter than the %d-byte header", len,
                        API_PERSIST_HEADER);
    if (memcmp(b, MAGIC, sizeof MAGIC) != 0)
        return api_fail(err, 422, "corrupt_file", "not a nerved file (no "
                        "NERVED magic)");
    if (b[7] < API_PERSIST_VERSION_MIN || b[7] > API_PERSIST_VERSION)
        return api_fail(err, 422, "corrupt_file", "format version %u; this "
                        "nerved reads versions %d to %d", b[7],
                        API_PERSIST_VERSION_MIN, API_PERSIST_VERSION);
    if (b[6] != (unsigned char)kind)
        return api_fail(err, 422, "corrupt_file", "a file of kind '%c', "
                        "expected '%c'", b[6] >= 32 && b[6] < 127 ? b[6] : '?',
                        kind);
    uint64_t meta_len = get_u32(b + 8), def_len = get_u32(b + 12);
    uint64_t n_values = get_u64(b + 16);
    uint64_t body = (uint64_t)len - API_PERSIST_HEADER;
    /* Each term is checked alone first, so the sum cannot wrap. */
    if (n_values > body / 4 || meta_len > body || def_len > body ||
        meta_len + def_len + 4 * n_values != body)
        return api_fail(err, 422, "corrupt_file", "%zu bytes, but the header "
                        "announces %" PRIu64 " (truncated or damaged)", len,
                        API_PERSIST_HEADER + meta_len + def_len +
                            4 * (n_values > body ? 0 : n_values));
    if (n_values > max_values)
        return api_fail(err, 413, "too_large", "%" PRIu64 " values, more "
                        "than the %zu this server holds", n_values,
                        max_values);
    return 0;
}

static int unframe(const unsigned char *b, size_t len, char kind, parts *out,
                   api_error *err)
{
    memset(out, 0, sizeof *out);
    if (api_persist_header_check(b, len, kind, SIZE_MAX, err))
        return -1;
    uint64_t meta_len = get_u32(b + 8), def_len = get_u32(b + 12);
    uint64_t n_values = get_u64(b + 16);
    uint32_t want = get_u32(b + CRC_AT), got = file_crc(b, len);
    if (want != got)
        return api_fail(err, 422, "corrupt_file", "CRC-32 mismatch: the file "
                        "says %08" PRIx32 ", its bytes give %08" PRIx32
                        " (damaged)", want, got);
    const char *meta = (const char *)b + API_PERSIST_HEADER;
    out->meta = cJSON_ParseWithLength(meta, (size_t)meta_len);
    if (!cJSON_IsObject(out->meta)) {
        cJSON_Delete(out->meta);
        out->meta = NULL;
        return api_fail(err, 422, "corrupt_file", "the meta section is not a "
                        "JSON object");
    }
    out->def = b + API_PERSIST_HEADER + meta_len;
    out->def_len = (size_t)def_len;
    out->values = out->def + def_len;
    out->n_values = (size_t)n_values;
    return 0;
}

/* A string member of meta that fits size, copied to dst. */
static int meta_string(const cJSON *meta, const char *key, char *dst,
                       size_t size, int nullable, api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    dst[0] = '\0';
    if (nullable && cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v) || !v->valuestring[0] ||
        strlen(v->valuestring) >= size)
        return api_fail(err, 422, "corrupt_file", "meta \"%s\" is missing or "
                        "not a string of 1 to %zu bytes", key, size - 1);
    memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

/* ----------------------------------------------------------- networks */

static int meta_integer(const cJSON *meta, const char *key, double lo,
                        double hi, double *out, api_error *err);

static size_t weight_total(const nn_graph *g)
{
    size_t n = 0;
    for (int i = 0; i < nn_graph_node_count(g); i++)
        n += nn_node_param_count(nn_graph_node_at(g, i));
    return n;
}

/* The words of sparse weight w's pattern in a file: its cols + 1 offsets,
 * then its nnz row indices. */
static size_t pattern_words(int cols, size_t nnz)
{
    return (size_t)cols + 1 + nnz;
}

size_t api_network_max_words(size_t max_params)
{
    /* The weights, and for the sparse ones their indices (as many as their
     * values) and column offsets (one per unit and one; a Reservoir holds
     * at least a bias per unit): three times the cap, and room. */
    return max_params > (SIZE_MAX - 4096) / 3 ? SIZE_MAX
                                              : 3 * max_params + 4096;
}

/* meta "sparse": every weight stored sparse, in file order, with the
 * shape and count its words need. */
static int sparse_meta(cJSON *meta, nn_graph *g, size_t *words)
{
    cJSON *list = cJSON_AddArrayToObject(meta, "sparse");
    if (!list)
        return -1;
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        nn_node *node = nn_graph_node_at(g, i);
        for (int w = 0; w < nn_node_weight_count(node); w++) {
            int rows, cols;
            if (!nn_node_weight_sparse(node, w, &rows, &cols))
                continue;
            size_t nnz = nn_tensor_numel(nn_node_weight_at(node, w));
            cJSON *o = cJSON_CreateObject();
            if (!o)
                return -1;
            cJSON_AddItemToArray(list, o);
            if (!cJSON_AddStringToObject(o, "node", nn_node_name(node)) ||
                !cJSON_AddStringToObject(o, "weight",
                                         nn_node_weight_name(node, w)) ||
                !cJSON_AddNumberToObject(o, "rows", rows) ||
                !cJSON_AddNumberToObject(o, "cols", cols) ||
                !cJSON_AddNumberToObject(o, "nnz", (double)nnz))
                return -1;
            *words += pattern_words(cols, nnz);
        }
    }
    return 0;
}

int api_network_file_write(const char *id, const char *name,
                           const char *definition, nn_graph *g,
                           unsigned char **bytes, size_t *len,
                           api_error *err)
{
    size_t n_values = weight_total(g);
    cJSON *meta = cJSON_CreateObject();
    int ok = meta != NULL;
    if (ok) {
        cJSON_AddStringToObject(meta, "id", id);
        if (name && name[0])
            cJSON_AddStringToObject(meta, "name", name);
        else
            cJSON_AddNullToObject(meta, "name");
        ok = sparse_meta(meta, g, &n_values) == 0;
    }
    char *meta_text = ok ? cJSON_PrintUnformatted(meta) : NULL;
    cJSON_Delete(meta);
    if (!meta_text)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    unsigned char *at;
    *bytes = frame(KIND_NETWORK, meta_text, definition, n_values, len, &at,
                   err);
    free(meta_text);
    if (!*bytes)
        return -1;
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        nn_node *node = nn_graph_node_at(g, i);
        for (int w = 0; w < nn_node_weight_count(node); w++) {
            const nn_tensor *t = nn_node_weight_at(node, w);
            put_floats(at, t->data, nn_tensor_numel(t));
            at += 4 * nn_tensor_numel(t);
        }
    }
    /* The patterns after every value, so that the values stay where a
     * version 2 file had them. */
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        nn_node *node = nn_graph_node_at(g, i);
        for (int w = 0; w < nn_node_weight_count(node); w++) {
            int cols;
            if (!nn_node_weight_sparse(node, w, NULL, &cols))
                continue;
            size_t nnz = nn_tensor_numel(nn_node_weight_at(node, w));
            size_t *ptr = malloc(((size_t)cols + 1) * sizeof *ptr);
            uint32_t *row = malloc(nnz * sizeof *row);
            if (!ptr || !row) {
                free(ptr);
                free(row);
                free(*bytes);
                *bytes = NULL;
                return api_fail(err, 503, "out_of_memory", "out of memory");
            }
            nn_node_weight_pattern(node, w, ptr, row);
            for (int c = 0; c <= cols; c++, at += 4)
                put_u32(at, (uint32_t)ptr[c]);
            for (size_t k = 0; k < nnz; k++, at += 4)
                put_u32(at, row[k]);
            free(ptr);
            free(row);
        }
    }
    seal(*bytes, *len);
    return 0;
}

/* What a stored sparse weight says of itself (meta "sparse"). */
typedef struct stored_pattern {
    int rows, cols;
    size_t nnz;
} stored_pattern;

/* Matches meta "sparse" against the sparse weights of g, in order, into
 * pats (one per sparse weight; *n_pats of them), and counts the words the
 * file must hold. Version 2 files have no list: their patterns are the
 * definition's, drawn from the seed again. */
static int stored_patterns(const cJSON *meta, int version, nn_graph *g,
                           stored_pattern **pats, size_t *words,
                           api_error *err)
{
    *pats = NULL;
    *words = 0;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(meta, "sparse");
    if (version >= 3 && !cJSON_IsArray(list))
        return api_fail(err, 422, "corrupt_file", "meta \"sparse\" must be "
                        "an array");
    int count = version >= 3 ? cJSON_GetArraySize(list) : 0;
    if (count && !(*pats = calloc((size_t)count, sizeof **pats)))
        return api_fail(err, 503, "out_of_memory", "out of memory");
    const cJSON *o = version >= 3 ? list->child : NULL;
    int k = 0;
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        nn_node *node = nn_graph_node_at(g, i);
        for (int w = 0; w < nn_node_weight_count(node); w++) {
            int rows, cols;
            size_t numel = nn_tensor_numel(nn_node_weight_at(node, w));
            if (version < 3 || !nn_node_weight_sparse(node, w, &rows, &cols)) {
                *words += numel;
                continue;
            }
            const char *nm = nn_node_name(node);
            const char *wn = nn_node_weight_name(node, w);
            const cJSON *jn = o ? cJSON_GetObjectItemCaseSensitive(o, "node")
                                : NULL;
            const cJSON *jw = o ? cJSON_GetObjectItemCaseSensitive(o, "weight")
                                : NULL;
            double r = 0, c = 0, z = 0; /* set on success; gcc -O3 cannot see it */
            if (!cJSON_IsString(jn) || !cJSON_IsString(jw) ||
                strcmp(jn->valuestring, nm) || strcmp(jw->valuestring, wn) ||
                meta_integer(o, "rows", rows, rows, &r, err) ||
                meta_integer(o, "cols", cols, cols, &c, err) ||
                meta_integer(o, "nnz", 1, INT32_MAX, &z, err))
                return api_fail(err, 422, "corrupt_file", "meta \"sparse\" "
                                "does not list weight %s.%s (%d x %d) where "
                                "the definition has it", nm, wn, rows, cols);
            (*pats)[k].rows = rows;
            (*pats)[k].cols = cols;
            (*pats)[k].nnz = (size_t)z;
            *words += (size_t)z + pattern_words(cols, (size_t)z);
            k++;
            o = o->next;
        }
    }
    if (o)
        return api_fail(err, 422, "corrupt_file", "meta \"sparse\" lists "
                        "more sparse weights than the definition has");
    return 0;
}

/* Sparse weight w of node (in g) gets the stored pattern at words and
 * values at vals. */
static int load_pattern(nn_graph *g, nn_node *node, int w,
                        const stored_pattern *pat,
                        const unsigned char *vals, const unsigned char *words,
                        api_error *err)
{
    size_t *ptr = malloc(((size_t)pat->cols + 1) * sizeof *ptr);
    uint32_t *row = malloc(pat->nnz * sizeof *row);
    float *data = malloc(pat->nnz * sizeof *data);
    int rc = 0;
    if (!ptr || !row || !data) {
        rc = api_fail(err, 503, "out_of_memory", "out of memory");
    } else {
        for (int c = 0; c <= pat->cols; c++)
            ptr[c] = get_u32(words + 4 * (size_t)c);
        words += 4 * ((size_t)pat->cols + 1);
        for (size_t k = 0; k < pat->nnz; k++)
            row[k] = get_u32(words + 4 * k);
        get_floats(data, vals, pat->nnz);
        nn_error e;
        nn_sparse_values *v;
        size_t present = nn_tensor_numel(nn_node_weight_at(node, w));
        if (nn_graph_params_fit(g, present, pat->nnz, &e) !=
                NN_OK ||
            nn_sparse_values_new(node, w, ptr, row, data, pat->nnz, &v, &e) !=
                NN_OK) {
            rc = api_fail(err, 422, "corrupt_file", "the pattern of %s.%s: "
                          "%s", nn_node_name(node),
                          nn_node_weight_name(node, w), e.msg);
        } else {
            nn_node_weight_swap_sparse(node, w, v);
            nn_sparse_values_free(v);
        }
    }
    free(ptr);
    free(row);
    free(data);
    return rc;
}

/* Version 1 kept a sparse Reservoir's W by input: such a file cannot be
 * read into today's order. */
static int refuse_v1_sparse(nn_graph *g, api_error *err)
{
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        nn_node *node = nn_graph_node_at(g, i);
        int w = -1;
        for (int k = 0; k < nn_node_weight_count(node); k++)
            if (strcmp(nn_node_weight_name(node, k), "W") == 0)
                w = k;
        if (w >= 0 && nn_node_weight_sparse(node, w, NULL, NULL) &&
            strcmp(nn_node_type_of(node)->name, "Reservoir") == 0)
            return api_fail(err, 422, "corrupt_file", "written by an older "
                            "nerved, whose sparse Reservoir '%s' kept W in "
                            "another order: create the network again from "
                            "its definition", nn_node_name(node));
    }
    return 0;
}

int api_network_file_read(const unsigned char *bytes, size_t len,
                          const nn_registry *reg, const api_limits *lim,
                          api_stored_network *out, api_error *err)
{
    memset(out, 0, sizeof *out);
    parts p;
    if (unframe(bytes, len, KIND_NETWORK, &p, err))
        return -1;
    int version = bytes[7];
    int rc = meta_string(p.meta, "id", out->id, sizeof out->id, 0, err);
    if (rc == 0)
        rc = meta_string(p.meta, "name", out->name, sizeof out->name, 1, err);
    if (rc) {
        cJSON_Delete(p.meta);
        return -1;
    }
    out->definition = malloc(p.def_len + 1);
    if (!out->definition) {
        cJSON_Delete(p.meta);
        return api_fail(err, 503, "out_of_memory", "out of memory");
    }
    memcpy(out->definition, p.def, p.def_len);
    out->definition[p.def_len] = '\0';
    cJSON *def = cJSON_ParseWithLength(out->definition, p.def_len);
    if (!def) {
        cJSON_Delete(p.meta);
        api_stored_network_free(out);
        return api_fail(err, 422, "corrupt_file", "the definition is not "
                        "JSON");
    }
    /* The meta's name is the network's; the definition's copy is not
     * checked again, so that a name refused only since it was stored
     * (srv_persist drops such names) does not lose the network. */
    cJSON_DeleteItemFromObjectCaseSensitive(def, "name");
    api_error build;
    out->graph = api_graph_from_json(def, reg, lim, &build);
    cJSON_Delete(def);
    if (!out->graph) {
        cJSON_Delete(p.meta);
        api_stored_network_free(out);
        return api_fail(err, build.http_status, build.code, "the definition "
                        "no longer builds: %s", build.message);
    }
    stored_pattern *pats = NULL;
    size_t words = 0;
    rc = version < 2 ? refuse_v1_sparse(out->graph, err) : 0;
    if (rc == 0)
        rc = stored_patterns(p.meta, version, out->graph, &pats, &words, err);
    cJSON_Delete(p.meta);
    if (rc == 0 && words != p.n_values)
        rc = api_fail(err, 422, "corrupt_file", "%zu stored words, but the "
                      "definition and the stored patterns need %zu",
                      p.n_values, words);
    /* The values in order, each sparse weight's pattern after them all. */
    const unsigned char *at = p.values;
    const unsigned char *pattern_at = p.values;
    size_t k = 0;
    for (int i = 0; rc == 0 && i < nn_graph_node_count(out->graph); i++) {
        nn_node *node = nn_graph_node_at(out->graph, i);
        for (int w = 0; w < nn_node_weight_count(node); w++) {
            nn_tensor *t = nn_node_weight_at(node, w);
            if (version >= 3 && nn_node_weight_sparse(node, w, NULL, NULL))
                pattern_at += 4 * pats[k++].nnz;
            else
                pattern_at += 4 * nn_tensor_numel(t);
        }
    }
    k = 0;
    for (int i = 0; rc == 0 && i < nn_graph_node_count(out->graph); i++) {
        nn_node *node = nn_graph_node_at(out->graph, i);
        for (int w = 0; rc == 0 && w < nn_node_weight_count(node); w++) {
            nn_tensor *t = nn_node_weight_at(node, w);
            if (version >= 3 && nn_node_weight_sparse(node, w, NULL, NULL)) {
                const stored_pattern *pat = &pats[k++];
                rc = load_pattern(out->graph, node, w, pat, at, pattern_at, err);
                at += 4 * pat->nnz;
                pattern_at += 4 * pattern_words(pat->cols, pat->nnz);
                continue;
            }
            get_floats(t->data, at, nn_tensor_numel(t));
            at += 4 * nn_tensor_numel(t);
        }
    }
    free(pats);
    if (rc) {
        api_stored_network_free(out);
        return -1;
    }
    return 0;
}

void api_stored_network_free(api_stored_network *n)
{
    free(n->definition);
    nn_graph_free(n->graph);
    n->definition = NULL;
    n->graph = NULL;
}

/* --------------------------------------------------------- checkpoints */

static cJSON *shape_array(const nn_shape *s)
{
    cJSON *a = cJSON_CreateArray();
    for (int d = 0; a && d < s->ndim; d++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(s->dims[d]));
    return a;
}

static void rng_hex(const nn_rng *rng, char out[65])
{
    for (int k = 0; k < 4; k++)
        snprintf(out + 16 * k, 17, "%016" PRIx64, rng->s[k]);
}

static int rng_unhex(const char *hex, nn_rng *rng)
{
    if (!hex || strlen(hex) != 64)
        return -1;
    for (int k = 0; k < 4; k++) {
        uint64_t v = 0;
        for (int i = 0; i < 16; i++) {
            char c = hex[16 * k + i];
            int d = c >= '0' && c <= '9' ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0)
                return -1;
            v = v << 4 | (uint64_t)d;
        }
        rng->s[k] = v;
    }
    return 0;
}

/* Node i's output and state tensors in the session, in file order. */
static int node_tensors(const nn_graph *g, nn_session *s, int i,
                        nn_tensor **tensors, int max)
{
    nn_node *node = nn_graph_node_at(g, i);
    int n = 0;
    tensors[n++] = nn_session_output_buffer(s, nn_node_name(node));
    for (int k = 0; k < nn_node_state_count(node) && n < max; k++)
        tensors[n++] = nn_session_state(s, nn_node_name(node), k);
    return n;
}

#define MAX_NODE_TENSORS 33 /* the output and up to 32 states */

int api_checkpoint_write(const char *net_id, const char *sid,
                         const nn_graph *g, nn_session *s,
                         unsigned char **bytes, size_t *len, api_error *err)
{
    cJSON *meta = cJSON_CreateObject();
    cJSON *nodes = meta ? cJSON_AddArrayToObject(meta, "nodes") : NULL;
    size_t n_values = 0;
    int ok = nodes != NULL;
    if (ok) {
        cJSON_AddStringToObject(meta, "network", net_id);
        cJSON_AddStringToObject(meta, "session", sid);
        cJSON_AddNumberToObject(meta, "batch", nn_session_batch(s));
        cJSON_AddNumberToObject(meta, "steps", (double)nn_session_steps(s));
    }
    for (int i = 0; ok && i < nn_graph_node_count(g); i++) {
        const char *name = nn_node_name(nn_graph_node_at(g, i));
        if (nn_node_state_count(nn_graph_node_at(g, i)) >= MAX_NODE_TENSORS) {
            cJSON_Delete(meta);
            return api_fail(err, 422, "unsupported", "node '%s' has more "
                            "than %d state tensors, more than a checkpoint "
                            "holds", name, MAX_NODE_TENSORS - 1);
        }
        nn_tensor *t[MAX_NODE_TENSORS];
        int n = node_tensors(g, s, i, t, MAX_NODE_TENSORS);
        char hex[65];
        rng_hex(nn_session_rng(s, name), hex);
        cJSON *o = cJSON_CreateObject();
        cJSON *states = o ? cJSON_CreateArray() : NULL;
        ok = states != NULL;
        if (ok) {
            cJSON_AddStringToObject(o, "name", name);
            cJSON_AddStringToObject(o, "rng", hex);
            cJSON_AddItemToObject(o, "output", shape_array(&t[0]->shape));
            for (int k = 1; k < n; k++)
                cJSON_AddItemToArray(states, shape_array(&t[k]->shape));
            cJSON_AddItemToObject(o, "states", states);
            cJSON_AddItemToArray(nodes, o);
        } else {
            cJSON_Delete(o);
        }
        for (int k = 0; k < n; k++)
            n_values += nn_tensor_numel(t[k]);
    }
    char *meta_text = ok ? cJSON_PrintUnformatted(meta) : NULL;
    cJSON_Delete(meta);
    if (!meta_text)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    unsigned char *at;
    *bytes = frame(KIND_CHECKPOINT, meta_text, NULL, n_values, len, &at, err);
    free(meta_text);
    if (!*bytes)
        return -1;
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        nn_tensor *t[MAX_NODE_TENSORS];
        int n = node_tensors(g, s, i, t, MAX_NODE_TENSORS);
        for (int k = 0; k < n; k++) {
            put_floats(at, t[k]->data, nn_tensor_numel(t[k]));
            at += 4 * nn_tensor_numel(t[k]);
        }
    }
    seal(*bytes, *len);
    return 0;
}

/* A JSON integer within [lo, hi]. */
static int meta_integer(const cJSON *meta, const char *key, double lo,
                        double hi, double *out, api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(long long)
                                                    v->valuedouble ||
        v->valuedouble < lo || v->valuedouble > hi)
        return api_fail(err, 422, "corrupt_file", "meta \"%s\" must be an "
                        "integer from %.0f to %.0f", key, lo, hi);
    *out = v->valuedouble;
    return 0;
}

int api_checkpoint_read(const unsigned char *bytes, size_t len,
                        api_checkpoint *out, api_error *err)
{
    memset(out, 0, sizeof *out);
    parts p;
    if (unframe(bytes, len, KIND_CHECKPOINT, &p, err))
        return -1;
    out->meta = p.meta;
    double batch = 0, steps = 0;
    if (p.def_len)
        return api_fail(err, 422, "corrupt_file", "a checkpoint holds no "
                        "definition, this one has %zu bytes", p.def_len);
    if (meta_string(p.meta, "network", out->network, sizeof out->network, 0,
                    err) ||
        meta_string(p.meta, "session", out->session, sizeof out->session, 0,
                    err) ||
        meta_integer(p.meta, "batch", 1, 1e9, &batch, err) ||
        /* Far past any count a session reaches, and the same for an
         * import as for the daemon's own files: a state imported at the
         * limit and stepped on must still load. */
        meta_integer(p.meta, "steps", 0, 0x1p62, &steps, err))
        return -1;
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(p.meta, "nodes")))
        return api_fail(err, 422, "corrupt_file", "meta \"nodes\" must be an "
                        "array");
    out->batch = (int)batch;
    out->steps = (long)steps;
    out->n_values = p.n_values;
    out->values = malloc(p.n_values ? 4 * p.n_values : 1);
    if (!out->values)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    get_floats(out->values, p.values, p.n_values);
    return 0;
}

/* Whether JSON array j is exactly shape s. */
static int same_shape(const cJSON *j, const nn_shape *s)
{
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != s->ndim)
        return 0;
    int d = 0;
    for (const cJSON *c = j->child; c; c = c->next, d++)
        if (!cJSON_IsNumber(c) || c->valuedouble != s->dims[d])
            return 0;
    return 1;
}

/* Checks (write = 0) or copies (write = 1) every node of the checkpoint. */
static int checkpoint_pass(const api_checkpoint *c, const nn_graph *g,
                           nn_session *s, int write, api_error *err)
{
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(c->meta, "nodes");
    if (cJSON_GetArraySize(nodes) != nn_graph_node_count(g))
        return api_fail(err, 422, "checkpoint_mismatch", "the checkpoint has "
                        "%d nodes, the network %d", cJSON_GetArraySize(nodes),
                        nn_graph_node_count(g));
    size_t at = 0;
    int i = 0;
    for (const cJSON *o = nodes->child; o; o = o->next, i++) {
        const char *name = nn_node_name(nn_graph_node_at(g, i));
        const cJSON *jname = cJSON_GetObjectItemCaseSensitive(o, "name");
        if (!cJSON_IsString(jname) || strcmp(jname->valuestring, name) != 0)
            return api_fail(err, 422, "checkpoint_mismatch", "node %d of the "
                            "checkpoint is not '%s'", i, name);
        nn_rng rng;
        const cJSON *hex = cJSON_GetObjectItemCaseSensitive(o, "rng");
        if (!cJSON_IsString(hex) || rng_unhex(hex->valuestring, &rng))
            return api_fail(err, 422, "corrupt_file", "node '%s': \"rng\" "
                            "must be 64 lowercase hex digits", name);
        if (nn_node_state_count(nn_graph_node_at(g, i)) >= MAX_NODE_TENSORS)
            return api_fail(err, 422, "unsupported", "node '%s' has more "
                            "state tensors than a checkpoint holds", name);
        nn_tensor *t[MAX_NODE_TENSORS];
        int n = node_tensors(g, s, i, t, MAX_NODE_TENSORS);
        const cJSON *states = cJSON_GetObjectItemCaseSensitive(o, "states");
        if (!same_shape(cJSON_GetObjectItemCaseSensitive(o, "output"),
                        &t[0]->shape) ||
            !cJSON_IsArray(states) || cJSON_GetArraySize(states) != n - 1)
            return api_fail(err, 422, "checkpoint_mismatch", "node '%s': the "
                            "output or the number of state tensors differs",
                            name);
        int k = 1;
        for (const cJSON *st = states->child; st; st = st->next, k++)
            if (!same_shape(st, &t[k]->shape))
                return api_fail(err, 422, "checkpoint_mismatch", "node '%s': "
                                "state %d has another shape", name, k - 1);
        for (k = 0; k < n; k++) {
            size_t numel = nn_tensor_numel(t[k]);
            if (numel > c->n_values - at)
                return api_fail(err, 422, "checkpoint_mismatch", "node '%s': "
                                "the checkpoint ends early", name);
            if (write)
                memcpy(t[k]->data, c->values + at, numel * sizeof(float));
            at += numel;
        }
        if (write)
            *nn_session_rng(s, name) = rng;
    }
    if (at != c->n_values)
        return api_fail(err, 422, "checkpoint_mismatch", "%zu values are "
                        "left over", c->n_values - at);
    return 0;
}

int api_checkpoint_apply(const api_checkpoint *c, const nn_graph *g,
                         nn_session *s, api_error *err)
{
    if (nn_session_batch(s) != c->batch)
        return api_fail(err, 422, "checkpoint_mismatch", "the checkpoint's "
                        "batch is %d, the session's %d", c->batch,
                        nn_session_batch(s));
    if (checkpoint_pass(c, g, s, 0, err))
        return -1;
    checkpoint_pass(c, g, s, 1, err);
    nn_error e;
    if (nn_session_set_steps(s, c->steps, &e) != NN_OK)
        return api_fail_from_nn(err, &e, 0);
    return 0;
}

void api_checkpoint_free(api_checkpoint *c)
{
    cJSON_Delete(c->meta);
    free(c->values);
    c->meta = NULL;
    c->values = NULL;
}
