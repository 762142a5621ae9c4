/*
 * api_jsonread.c — a pull reader over the request body text: checks the
 * document once, then reads members and tensors where they are, numbers
 * straight into float32 buffers (see api_codec.h). The rules and messages
 * are those of the cJSON readers in api_tensor.c and api_graph.c. Over
 * a pushed document's kept text (api_jsonpush.c) a marker byte stands
 * for a blob, which the tensor readers read as they would its text.
 */
#include "api_codec.h"
#include "api_jsonpush.h"
#include "api_sparse.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPOS ((size_t)-1)

/* The blob at p (on its marker), or NULL: text that is not a pushed
 * document's has none. */
static const api_blob *blob_of(const api_json *j, size_t p)
{
    if (p >= j->len || j->s[p] != API_BLOB_MARK)
        return NULL;
    return j->doc ? api_jsondoc_blob_at(j->doc, p) : NULL;
}

/* The body's byte offset of position p, for messages. */
static size_t offset_of(const api_json *j, size_t p)
{
    return j->doc ? api_jsondoc_offset(j->doc, p) : p;
}

static size_t ws(const api_json *j, size_t p)
{
    while (p < j->len && (j->s[p] == ' ' || j->s[p] == '\t' ||
                          j->s[p] == '\n' || j->s[p] == '\r'))
        p++;
    return p;
}

static int hex4(const api_json *j, size_t p, unsigned *out)
{
    if (p + 4 > j->len)
        return -1;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = j->s[p + (size_t)k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* The string at p (on its '"'): the position after it, or NPOS with *bad
 * at the fault. With out set, the unescaped bytes go there (cut to cap -
 * 1, *cut set when longer) and are NUL-terminated. */
static size_t string_at(const api_json *j, size_t p, size_t *bad, char *out,
                        size_t cap, int *cut)
{
    size_t n = 0;
    if (cut)
        *cut = 0;
#define EMIT(c)                                                            \
    do {                                                                   \
        if (out) {                                                         \
            if (n + 1 < cap)                                               \
                out[n++] = (char)(c);                                      \
            else if (cut)                                                  \
                *cut = 1;                                                  \
        }                                                                  \
    } while (0)
    if (p >= j->len || j->s[p] != '"') {
        *bad = p;
        return NPOS;
    }
    p++;
    for (;;) {
        if (p >= j->len) {
            *bad = p;
            return NPOS;
        }
        unsigned char c = (unsigned char)j->s[p];
        if (c == '"')
            break;
        if (c < 0x20) { /* raw control characters are not JSON */
            *bad = p;
            return NPOS;
        }
        if (c != '\\') {
            EMIT(c);
            p++;
            continue;
        }
        if (p + 1 >= j->len) {
            *bad = p;
            return NPOS;
        }
        char e = j->s[p + 1];
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *hit = e ? strchr(from, e) : NULL;
        if (hit) {
            EMIT(to[hit - from]);
            p += 2;
            continue;
        }
        unsigned u;
        if (e != 'u' || hex4(j, p + 2, &u)) {
            *bad = p;
            return NPOS;
        }
        size_t start = p;
        p += 6;
        if (u >= 0xDC00 && u <= 0xDFFF) { /* a lone low surrogate */
            *bad = start;
            return NPOS;
        }
        if (u >= 0xD800 && u <= 0xDBFF) {
            unsigned lo;
            if (p + 1 >= j->len || j->s[p] != '\\' || j->s[p + 1] != 'u' ||
                hex4(j, p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                *bad = start;
                return NPOS;
            }
            p += 6;
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (u == 0 && out && cut)
            /* A C string cannot hold it: "x\u0000" would read as "x".
             * Marked as cut, the text matches no name or member. */
            *cut = 1;
        if (u < 0x80) {
            EMIT(u);
        } else if (u < 0x800) {
            EMIT(0xC0 | (u >> 6));
            EMIT(0x80 | (u & 0x3F));
        } else if (u < 0x10000) {
            EMIT(0xE0 | (u >> 12));
            EMIT(0x80 | ((u >> 6) & 0x3F));
            EMIT(0x80 | (u & 0x3F));
        } else {
            EMIT(0xF0 | (u >> 18));
            EMIT(0x80 | ((u >> 12) & 0x3F));
            EMIT(0x80 | ((u >> 6) & 0x3F));
            EMIT(0x80 | (u & 0x3F));
        }
    }
#undef EMIT
    if (out && cap)
        out[n] = '\0';
    return p + 1;
}

size_t api_json_number_length(const char *s, size_t len)
{
    size_t p = 0;
    if (p < len && s[p] == '-')
        p++;
    if (p >= len || s[p] < '0' || s[p] > '9')
        return NPOS;
    if (s[p] == '0')
        p++;
    else
        while (p < len && s[p] >= '0' && s[p] <= '9')
            p++;
    if (p < len && s[p] == '.') {
        p++;
        if (p >= len || s[p] < '0' || s[p] > '9')
            return NPOS;
        while (p < len && s[p] >= '0' && s[p] <= '9')
            p++;
    }
    if (p < len && (s[p] == 'e' || s[p] == 'E')) {
        p++;
        if (p < len && (s[p] == '+' || s[p] == '-'))
            p++;
        if (p >= len || s[p] < '0' || s[p] > '9')
            return NPOS;
        while (p < len && s[p] >= '0' && s[p] <= '9')
            p++;
    }
    return p;
}

/* Only the grammar: the end of the number at p, or NPOS. */
static size_t number_syntax(const api_json *j, size_t p)
{
    size_t n = p < j->len ? api_json_number_length(j->s + p, j->len - p)
                          : NPOS;
    return n == NPOS ? NPOS : p + n;
}

/* The end of the value at p (white space first), or NPOS with *bad. */
static size_t value_end(const api_json *j, size_t p, int depth, size_t *bad)
{
    p = ws(j, p);
    if (p >= j->len) {
        *bad = p;
        return NPOS;
    }
    char c = j->s[p];
    if (c == '"')
        return string_at(j, p, bad, NULL, 0, NULL);
    if (c == '{' || c == '[') {
        if (depth >= API_JSON_MAX_DEPTH) {
            *bad = p;
            return NPOS;
        }
        char close = c == '{' ? '}' : ']';
        p = ws(j, p + 1);
        if (p < j->len && j->s[p] == close)
            return p + 1;
        for (;;) {
            if (c == '{') {
                p = string_at(j, ws(j, p), bad, NULL, 0, NULL);
                if (p == NPOS)
                    return NPOS;
                p = ws(j, p);
                if (p >= j->len || j->s[p] != ':') {
                    *bad = p;
                    return NPOS;
                }
                p++;
            }
            p = value_end(j, p, depth + 1, bad);
            if (p == NPOS)
                return NPOS;
            p = ws(j, p);
            if (p < j->len && j->s[p] == ',') {
                p++;
                continue;
            }
            if (p < j->len && j->s[p] == close)
                return p + 1;
            *bad = p;
            return NPOS;
        }
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int w = 0; w < 3; w++) {
        size_t n = strlen(words[w]);
        if (j->len - p >= n && memcmp(j->s + p, words[w], n) == 0)
            return p + n;
    }
    size_t end = number_syntax(j, p);
    if (end == NPOS)
        *bad = p;
    return end;
}

size_t api_json_nul_escape(const char *s, size_t len)
{
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        if (!in_string) {
            in_string = s[i] == '"';
        } else if (s[i] == '\\') {
            if (i + 5 < len && memcmp(s + i + 1, "u0000", 5) == 0)
                return i + 1;
            i++;
        } else if (s[i] == '"') {
            in_string = 0;
        }
    }
    return 0;
}

char *api_json_naming_blobs(const api_json *j, size_t **marks, int *n)
{
    api_buf b = {0};
    size_t *at = NULL;
    int cap = 0;
    *marks = NULL;
    *n = 0;
    for (size_t p = 0; p < j->len; p++) {
        const char *mark = memchr(j->s + p, API_BLOB_MARK, j->len - p);
        size_t to = mark ? (size_t)(mark - j->s) : j->len;
        api_buf_put(&b, j->s + p, to - p);
        p = to;
        if (p == j->len)
            break;
        if (!blob_of(j, p)) {
            api_buf_put(&b, j->s + p, 1);
            continue;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            size_t *grown = realloc(at, (size_t)cap * sizeof *grown);
            if (!grown) {
                free(at);
                free(api_buf_finish(&b, NULL));
                return NULL;
            }
            at = grown;
        }
        char name[32];
        snprintf(name, sizeof name, "\"\\u0001%d\"", *n);
        api_buf_puts(&b, name);
        at[(*n)++] = p;
    }
    char *text = api_buf_finish(&b, NULL);
    if (!text) {
        free(at);
        *n = 0;
        return NULL;
    }
    *marks = at;
    return text;
}

int api_json_blob_floats(const api_json *j, size_t p, float *dst,
                         size_t numel, size_t *count)
{
    const api_blob *b = blob_of(j, p);
    *count = 0;
    if (!b || (!b->data && (b->fail == API_BLOB_NOT_NUMBER ||
                            b->fail == API_BLOB_NOT_FINITE)))
        return API_JSON_FLAT_NOT_FINITE;
    if (!b->data)
        return API_JSON_FLAT_UNEVEN;
    *count = b->n;
    if (b->n == numel)
        memcpy(dst, b->data, numel * sizeof *dst);
    return API_JSON_FLAT_OK;
}

int api_json_check(const char *s, size_t len, size_t *at, int *trailing)
{
    api_json j = {s, len, NULL};
    size_t bad = 0;
    *trailing = 0;
    size_t end = value_end(&j, 0, 0, &bad);
    if (end == NPOS) {
        *at = bad;
        return -1;
    }
    end = ws(&j, end);
    if (end < len) {
        *at = end;
        *trailing = 1;
        return -1;
    }
    return 0;
}

int api_json_kind(const api_json *j, size_t pos)
{
    pos = ws(j, pos);
    if (pos < j->len && j->s[pos] == API_BLOB_MARK && blob_of(j, pos))
        return '[';
    return pos < j->len ? (unsigned char)j->s[pos] : 0;
}

/* The end of the string at p (on its '"'), unchecked, or NPOS. */
static size_t string_end(const api_json *j, size_t p)
{
    const char *s = j->s;
    for (p++; p < j->len; p++) {
        if (s[p] == '\\')
            p++;
        else if (s[p] == '"')
            return p + 1;
    }
    return NPOS;
}

/* Skipping does not check again what api_json_check has checked: it only
 * matches brackets outside strings (and stays inside the text when it was
 * never checked, where the readers then fail on what they read). Members
 * are found by skipping the values before them, so this is what a large
 * document costs beyond its numbers. */
size_t api_json_skip(const api_json *j, size_t pos)
{
    const char *s = j->s;
    size_t p = ws(j, pos);
    if (p >= j->len)
        return NPOS;
    char c = s[p];
    if (c == '"')
        return string_end(j, p);
    if (c == '[' || c == '{') {
        int depth = 0;
        for (; p < j->len; p++) {
            char ch = s[p];
            if (ch == '"') {
                p = string_end(j, p);
                if (p == NPOS)
                    return NPOS;
                p--;
            } else if (ch == '[' || ch == '{') {
                depth++;
            } else if ((ch == ']' || ch == '}') && --depth == 0) {
                return p + 1;
            }
        }
        return NPOS;
    }
    if (c == API_BLOB_MARK && blob_of(j, p))
        return p + 1;
    size_t q = p;
    while (q < j->len && ((s[q] >= '0' && s[q] <= '9') ||
                          (s[q] >= 'a' && s[q] <= 'z') ||
                          (s[q] >= 'A' && s[q] <= 'Z') || s[q] == '-' ||
                          s[q] == '+' || s[q] == '.'))
        q++;
    return q > p ? q : NPOS;
}

int api_json_member(const api_json *j, size_t pos, size_t *it, char *key,
                    size_t keycap, int *cut, size_t *value)
{
    size_t p, bad;
    if (*it == 0) {
        p = ws(j, pos);
        if (p >= j->len || j->s[p] != '{')
            return -1;
        p = ws(j, p + 1);
        if (p < j->len && j->s[p] == '}') {
            *it = p;
            return 0;
        }
    } else {
        p = ws(j, *it);
        if (p < j->len && j->s[p] == '}')
            return 0;
        if (p >= j->len || j->s[p] != ',')
            return -1;
        p = ws(j, p + 1);
    }
    p = string_at(j, p, &bad, key, keycap, cut);
    if (p == NPOS)
        return -1;
    p = ws(j, p);
    if (p >= j->len || j->s[p] != ':')
        return -1;
    *value = ws(j, p + 1);
    size_t end = api_json_skip(j, *value);
    if (end == NPOS)
        return -1;
    *it = end;
    return 1;
}

int api_json_element(const api_json *j, size_t pos, size_t *it,
                     size_t *value)
{
    size_t p;
    if (*it == 0) {
        p = ws(j, pos);
        if (p >= j->len || j->s[p] != '[')
            return -1;
        p = ws(j, p + 1);
        if (p < j->len && j->s[p] == ']') {
            *it = p;
            return 0;
        }
    } else {
        p = ws(j, *it);
        if (p < j->len && j->s[p] == ']')
            return 0;
        if (p >= j->len || j->s[p] != ',')
            return -1;
        p = ws(j, p + 1);
    }
    size_t end = api_json_skip(j, p);
    if (end == NPOS)
        return -1;
    *value = p;
    *it = end;
    return 1;
}

/* Keys longer than this match no name of ours (node names are shorter)
 * and are shown cut in messages. */
#define KEY_MAX 256

size_t api_json_string(const api_json *j, size_t pos, char *out, size_t cap,
                       int *cut)
{
    size_t bad;
    if (cap == 0 ||
        string_at(j, ws(j, pos), &bad, out, cap, cut) == NPOS)
        return NPOS;
    return strlen(out);
}

size_t api_json_find(const api_json *j, size_t pos, const char *key)
{
    size_t it = 0, value;
    char k[KEY_MAX];
    int cut, rc;
    while ((rc = api_json_member(j, pos, &it, k, sizeof k, &cut, &value)) == 1)
        if (!cut && strcmp(k, key) == 0)
            return value;
    return NPOS;
}

static int bad_json(const api_json *j, api_error *err, const char *where,
                    size_t at)
{
    return api_fail(err, 400, "bad_json", "%s: malformed JSON at byte %zu",
                    where, offset_of(j, at));
}

/* ---------------------------------------------------------- tensors */

typedef struct tensor_read {
    const api_json *j;
    const char *where;
    size_t max;
    api_error *err;
    int ndim;                /* axes, once the first number is reached */
    int dims[NN_MAX_DIMS];   /* sizes, once the first array of each axis
                                closes (0 before) */
    int index[NN_MAX_DIMS];  /* the element's place, for messages */
    float *data;             /* nn_realloc'd, or the caller's `fixed` */
    float *fixed;            /* a caller's buffer of cap floats, or NULL */
    size_t n, cap;
} tensor_read;

static void tensor_read_init(tensor_read *r, const api_json *j,
                             const char *where, const api_limits *lim,
                             api_error *err)
{
    memset(r, 0, sizeof *r);
    r->j = j;
    r->where = where;
    r->max = lim->max_tensor_elems;
    r->err = err;
}

/* "inputs.x[0][3]" for the element being read at depth+1 axes. */
static const char *place(const tensor_read *r, int axes, char *buf,
                         size_t size)
{
    size_t len = (size_t)snprintf(buf, size, "%s", r->where);
    for (int d = 0; d < axes && len < size; d++)
        len += (size_t)snprintf(buf + len, size - len, "[%d]", r->index[d]);
    return buf;
}

/* at is the body's byte offset. */
static int ragged(tensor_read *r, int axis, size_t at)
{
    char here[200];
    return api_fail(r->err, 400, "bad_tensor", "%s: ragged array: every "
                    "array on axis %d must have %d elements (%s at byte "
                    "%zu)", r->where, axis, r->dims[axis],
                    place(r, axis, here, sizeof here), at);
}

/* Element r->n, at r->index[0..axes), at the body's byte `at`, is not a
 * number (or, with finite set, not a finite float32). */
static int not_a_number(tensor_read *r, int finite, int axes, size_t at)
{
    char here[200];
    return api_fail(r->err, 400, "bad_tensor", "%s: element %zu is not %s "
                    "(%s at byte %zu)", r->where, r->n,
                    finite ? "a finite float32" : "a number",
                    place(r, axes, here, sizeof here), at);
}

static int push_number(tensor_read *r, size_t p, size_t *end, int axes)
{
    float f;
    size_t used = api_read_float(r->j->s + p, r->j->len - p, &f);
    if (!used)
        return not_a_number(r, 0, axes, offset_of(r->j, p));
    if (!isfinite(f))
        return not_a_number(r, 1, axes, offset_of(r->j, p));
    if (r->n == r->max)
        return api_fail(r->err, 413, "too_large", "%s: more than %zu "
                        "elements", r->where, r->max);
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        if (cap > r->max)
            cap = r->max;
        /* Past the caller's buffer, the floats move to the heap. */
        float *d = nn_realloc(r->data == r->fixed ? NULL : r->data,
                              cap * sizeof *d);
        if (!d)
            return api_fail(r->err, 503, "out_of_memory", "%s: out of "
                            "memory", r->where);
        if (r->data && r->data == r->fixed)
            memcpy(d, r->fixed, r->n * sizeof *d);
        r->data = d;
        r->cap = cap;
    }
    r->data[r->n++] = f;
    *end = p + used;
    return 0;
}

/* Reads the array at p (on its '[') as axis `axis`; *end after it. */
static int read_nested(tensor_read *r, size_t p, int axis, size_t *end)
{
    const api_json *j = r->j;
    if (axis == NN_MAX_DIMS)
        return api_fail(r->err, 400, "bad_tensor", "%s: more than %d axes",
                        r->where, NN_MAX_DIMS);
    size_t open = p;
    p = ws(j, p + 1);
    int count = 0;
    if (p < j->len && j->s[p] == ']') {
        if (r->dims[axis])
            return ragged(r, axis, offset_of(j, open));
        return api_fail(r->err, 400, "bad_tensor", "%s: an empty array has "
                        "no shape", r->where);
    }
    for (;;) {
        if (r->dims[axis] && count == r->dims[axis])
            return ragged(r, axis, offset_of(j, p));
        r->index[axis] = count;
        int kind = api_json_kind(j, p);
        if (r->ndim == 0 && kind != '[')
            r->ndim = axis + 1; /* the first number fixes the axes */
        if (kind == '[' && (r->ndim == 0 || axis + 1 < r->ndim)) {
            if (read_nested(r, p, axis + 1, &p))
                return -1;
        } else if (axis + 1 < r->ndim || kind == '[') {
            return ragged(r, axis + 1 < r->ndim ? axis + 1 : axis,
                          offset_of(j, p));
        } else if (push_number(r, p, &p, axis + 1)) {
            return -1;
        }
        count++;
        p = ws(j, p);
        if (p < j->len && j->s[p] == ',') {
            p = ws(j, p + 1);
            continue;
        }
        if (p < j->len && j->s[p] == ']')
            break;
        return bad_json(r->j, r->err, r->where, p);
    }
    if (r->dims[axis] && count != r->dims[axis])
        return ragged(r, axis, offset_of(j, open));
    r->dims[axis] = count;
    *end = p + 1;
    return 0;
}

/* Takes data (nn_realloc'd, n floats). */
static nn_tensor *wrap(float *data, const nn_shape *shape)
{
    nn_tensor *t = nn_malloc(sizeof *t);
    if (!t) {
        nn_free(data);
        return NULL;
    }
    memset(t, 0, sizeof *t);
    t->shape = *shape;
    t->data = data;
    t->owns_data = 1;
    return t;
}

/* A tensor over a blob's floats, which stay the document's. */
static nn_tensor *view(float *data, const nn_shape *shape)
{
    nn_tensor *t = nn_malloc(sizeof *t);
    if (!t)
        return NULL;
    memset(t, 0, sizeof *t);
    t->shape = *shape;
    t->data = data;
    return t;
}

/* read_nested's verdict on the blob's text, worked out as it was pushed:
 * the same tensor or the same message. */
static int blob_nested(tensor_read *r, const api_blob *b, nn_tensor **out)
{
    size_t valid = b->fail ? b->fail_n : b->n;
    if (valid > r->max) /* the reader stops at the first number past it */
        return api_fail(r->err, 413, "too_large", "%s: more than %zu "
                        "elements", r->where, r->max);
    memcpy(r->index, b->fail_index, sizeof r->index);
    r->n = b->fail_n;
    switch (b->fail) {
    case API_BLOB_RAGGED:
        r->dims[b->fail_axis] = b->fail_dim;
        return ragged(r, b->fail_axis, b->fail_at);
    case API_BLOB_EMPTY:
        return api_fail(r->err, 400, "bad_tensor", "%s: an empty array has "
                        "no shape", r->where);
    case API_BLOB_AXES:
        return api_fail(r->err, 400, "bad_tensor", "%s: more than %d axes",
                        r->where, NN_MAX_DIMS);
    case API_BLOB_NOT_NUMBER:
    case API_BLOB_NOT_FINITE:
        return not_a_number(r, b->fail == API_BLOB_NOT_FINITE, b->fail_axes,
                            b->fail_at);
    default:
        break;
    }
    nn_shape shape = nn_shape_make(b->ndim, b->dims);
    *out = view(b->data, &shape);
    return *out ? 0 : api_fail(r->err, 503, "out_of_memory", "%s: out of "
                               "memory", r->where);
}

static int tensor_nested(const api_json *j, size_t pos, const char *where,
                         const api_limits *lim, nn_tensor **out,
                         api_error *err)
{
    tensor_read r;
    tensor_read_init(&r, j, where, lim, err);
    const api_blob *b = blob_of(j, ws(j, pos));
    if (b)
        return blob_nested(&r, b, out);
    size_t end;
    if (read_nested(&r, ws(j, pos), 0, &end)) {
        nn_free(r.data);
        return -1;
    }
    nn_shape shape = nn_shape_make(r.ndim, r.dims);
    /* The growth's slack back (realloc to less keeps the data). */
    float *data = r.data;
    if (r.cap > r.n) {
        float *d = nn_realloc(r.data, r.n * sizeof *d);
        if (d)
            data = d;
    }
    *out = wrap(data, &shape);
    return *out ? 0 : api_fail(err, 503, "out_of_memory", "%s: out of memory",
                               where);
}

/* tensor_nested for a tensor that is only copied: its floats go to buf
 * (cap floats) while they fit, to the heap past that, and no tensor is
 * made. *data is buf or nn_malloc'd (the caller's to free); *blob is set
 * instead when pos holds a pushed blob, whose reading keeps its
 * messages. */
static int tensor_nested_into(const api_json *j, size_t pos,
                              const char *where, const api_limits *lim,
                              float *buf, size_t cap, nn_shape *shape,
                              float **data, const api_blob **blob,
                              api_error *err)
{
    *data = NULL;
    *blob = blob_of(j, ws(j, pos));
    if (*blob)
        return 0;
    tensor_read r;
    tensor_read_init(&r, j, where, lim, err);
    r.data = r.fixed = buf;
    r.cap = cap < r.max ? cap : r.max;
    size_t end;
    if (read_nested(&r, ws(j, pos), 0, &end)) {
        if (r.data != buf)
            nn_free(r.data);
        return -1;
    }
    *shape = nn_shape_make(r.ndim, r.dims);
    *data = r.data;
    return 0;
}

/* A "shape" size as cJSON read it: a number, integral, 1 to 1e9. */
static int shape_size(const api_json *j, size_t p, int *out)
{
    size_t end = number_syntax(j, p);
    if (end == NPOS || end - p > 40)
        return -1;
    char tmp[48];
    memcpy(tmp, j->s + p, end - p);
    tmp[end - p] = '\0';
    double d = strtod(tmp, NULL);
    if (d != floor(d) || d < 1 || d > 1e9)
        return -1;
    *out = (int)d;
    return 0;
}

/* The sizes of the "shape" array at shape_at into *shape, and their
 * product (within lim) into *numel. */
static int object_shape(const api_json *j, size_t shape_at, const char *where,
                        const api_limits *lim, nn_shape *shape, size_t *numel,
                        api_error *err)
{
    memset(shape, 0, sizeof *shape);
    size_t p = ws(j, ws(j, shape_at) + 1);
    int nd = 0, bad_size = 0;
    const api_blob *sb = blob_of(j, ws(j, shape_at));
    if (sb) {
        /* Only a shape of more than NN_MAX_DIMS elements, or with an
         * array among them, is ever a blob. */
        nd = sb->top > NN_MAX_DIMS ? NN_MAX_DIMS + 1 : (int)sb->top;
        bad_size = 1;
    } else if (p < j->len && j->s[p] != ']')
        for (;;) {
            int size;
            if (shape_size(j, p, &size))
                bad_size = 1;
            else if (nd < NN_MAX_DIMS)
                shape->dims[nd] = size;
            nd++;
            p = api_json_skip(j, p);
            if (p == NPOS)
                return bad_json(j, err, where, shape_at);
            p = ws(j, p);
            if (p < j->len && j->s[p] == ',') {
                p = ws(j, p + 1);
                continue;
            }
            break;
        }
    if (nd < 1 || nd > NN_MAX_DIMS)
        return api_fail(err, 400, "bad_tensor", "%s: \"shape\" must have 1 to "
                        "%d sizes", where, NN_MAX_DIMS);
    if (bad_size)
        return api_fail(err, 400, "bad_tensor", "%s: \"shape\" sizes must "
                        "be positive integers", where);
    shape->ndim = nd;
    size_t n = 1;
    for (int d = 0; d < nd; d++) {
        n *= (size_t)shape->dims[d];
        if (n > lim->max_tensor_elems)
            return api_fail(err, 413, "too_large", "%s: more than %zu "
                            "elements", where, lim->max_tensor_elems);
    }
    *numel = n;
    return 0;
}

/* {"shape": [...], "binary_data_size": bytes} of a framed body: its
 * float32 values come from the bytes after the JSON header. */
static int tensor_binary(const api_json *j, const api_json_blobs *bin,
                         size_t pos, size_t shape_at, const char *where,
                         const api_limits *lim, nn_tensor **out,
                         api_error *err)
{
    if (shape_at == NPOS || api_json_kind(j, shape_at) != '[')
        return api_fail(err, 400, "bad_tensor", "%s: \"shape\" must be an "
                        "array beside \"binary_data_size\"", where);
    nn_shape shape;
    size_t n;
    if (object_shape(j, shape_at, where, lim, &shape, &n, err))
        return -1;
    float *data = nn_malloc(n * sizeof *data);
    if (!data)
        return api_fail(err, 503, "out_of_memory", "%s: out of memory", where);
    if (api_json_blobs_take(bin, j, pos, data, n, where, err)) {
        nn_free(data);
        return -1;
    }
    *out = wrap(data, &shape);
    return *out ? 0 : api_fail(err, 503, "out_of_memory", "%s: out of memory",
                               where);
}

/* "datatype", when given, is "FP32": the only type of the engine. */
static int check_datatype(const api_json *j, size_t at, const char *where,
                          api_error *err)
{
    size_t p = ws(j, at);
    if (p + 6 <= j->len && memcmp(j->s + p, "\"FP32\"", 6) == 0)
        return 0;
    /* An array or object is named, not quoted: a pushed body keeps a
     * long numeric array as a blob, whose text is gone, and the message
     * must not depend on how the body arrived. */
    int kind = api_json_kind(j, p);
    if (kind == '[' || kind == '{')
        return api_fail(err, 400, "bad_tensor", "%s: \"datatype\" must be "
                        "\"FP32\" (the network's tensors are float32), not "
                        "an %s", where, kind == '[' ? "array" : "object");
    size_t end = api_json_skip(j, p);
    int shown = end != NPOS && end - p < 40 ? (int)(end - p) : 0;
    return api_fail(err, 400, "bad_tensor", "%s: \"datatype\" must be "
                    "\"FP32\" (the network's tensors are float32), not %.*s",
                    where, shown ? shown : 3, shown ? j->s + p : "...");
}

static int tensor_object(const api_json *j, const api_json_blobs *bin,
                         size_t pos, const char *where,
                         const api_limits *lim, int ignore_trainable,
                         nn_tensor **out, api_error *err)
{
    size_t it = 0, value, shape_at = NPOS, data_at = NPOS;
    size_t size_at = NPOS, type_at = NPOS;
    char key[KEY_MAX];
    int cut, rc;
    while ((rc = api_json_member(j, pos, &it, key, sizeof key, &cut,
                                 &value)) == 1) {
        size_t *slot = NULL;
        if (!cut && strcmp(key, "shape") == 0)
            slot = &shape_at;
        else if (!cut && strcmp(key, "data") == 0)
            slot = &data_at;
        else if (!cut && strcmp(key, "binary_data_size") == 0)
            slot = &size_at;
        else if (!cut && strcmp(key, "datatype") == 0)
            slot = &type_at;
        else if (!(ignore_trainable && !cut &&
                   strcmp(key, "trainable") == 0))
            return api_fail(err, 400, "bad_tensor", "%s: unknown member "
                            "'%.64s' (a tensor object has \"shape\" and "
                            "\"data\", or \"shape\" and "
                            "\"binary_data_size\")", where, key);
        if (slot && *slot != NPOS)
            return api_fail(err, 400, "bad_tensor", "%s: \"%s\" is given "
                            "twice", where, key);
        if (slot)
            *slot = value;
    }
    if (rc < 0)
        return bad_json(j, err, where, it);
    if (type_at != NPOS && check_datatype(j, type_at, where, err))
        return -1;
    if (size_at != NPOS && data_at != NPOS)
        return api_fail(err, 400, "bad_tensor", "%s: give either \"data\" or "
                        "\"binary_data_size\", not both", where);
    if (size_at != NPOS)
        return tensor_binary(j, bin, pos, shape_at, where, lim, out, err);
    if (shape_at == NPOS || data_at == NPOS ||
        api_json_kind(j, shape_at) != '[' || api_json_kind(j, data_at) != '[')
        return api_fail(err, 400, "bad_tensor", "%s: \"shape\" and \"data\" "
                        "must both be arrays", where);
    nn_shape shape;
    size_t n, p;
    if (object_shape(j, shape_at, where, lim, &shape, &n, err))
        return -1;
    const api_blob *db = blob_of(j, ws(j, data_at));
    if (db) {
        /* The flat read's verdict, kept as the text went by. */
        if (db->bad_kind && db->bad_index < n)
            return api_fail(err, 400, "bad_tensor", "%s: element %zu is not "
                            "%s (%s.data[%zu] at byte %zu)", where,
                            db->bad_index,
                            db->bad_kind == API_BLOB_NOT_FINITE
                                ? "a finite float32" : "a number",
                            where, db->bad_index, db->bad_at);
        if (db->top != n)
            return api_fail(err, 400, "bad_tensor", "%s: \"data\" has %zu "
                            "numbers where the shape needs %zu", where,
                            db->top, n);
        if (!db->data || db->n != n) /* cannot be: all finite numbers */
            return api_fail(err, 400, "bad_tensor", "%s: unreadable \"data\"",
                            where);
        *out = view(db->data, &shape);
        return *out ? 0 : api_fail(err, 503, "out_of_memory", "%s: out of "
                                   "memory", where);
    }
    float *data = nn_malloc(n * sizeof *data);
    if (!data)
        return api_fail(err, 503, "out_of_memory", "%s: out of memory", where);
    size_t count = 0;
    p = ws(j, ws(j, data_at) + 1);
    int failed = 0;
    if (p < j->len && j->s[p] != ']')
        for (;;) {
            if (count < n) {
                float f;
                size_t used = api_read_float(j->s + p, j->len - p, &f);
                if (!used) {
                    failed = api_fail(err, 400, "bad_tensor", "%s: element "
                                      "%zu is not a number (%s.data[%zu] at "
                                      "byte %zu)", where, count, where, count,
                                      offset_of(j, p));
                    break;
                }
                if (!isfinite(f)) {
                    failed = api_fail(err, 400, "bad_tensor", "%s: element "
                                      "%zu is not a finite float32 "
                                      "(%s.data[%zu] at byte %zu)", where,
                                      count, where, count, offset_of(j, p));
                    break;
                }
                data[count] = f;
                p += used;
            } else if ((p = api_json_skip(j, p)) == NPOS) {
                failed = bad_json(j, err, where, data_at);
                break;
            }
            count++;
            p = ws(j, p);
            if (p < j->len && j->s[p] == ',') {
                p = ws(j, p + 1);
                continue;
            }
            if (p < j->len && j->s[p] == ']')
                break;
            failed = bad_json(j, err, where, p);
            break;
        }
    if (!failed && count != n)
        failed = api_fail(err, 400, "bad_tensor", "%s: \"data\" has %zu "
                          "numbers where the shape needs %zu", where, count,
                          n);
    if (failed) {
        nn_free(data);
        return -1;
    }
    *out = wrap(data, &shape);
    return *out ? 0 : api_fail(err, 503, "out_of_memory", "%s: out of memory",
                               where);
}

int api_json_tensor_bin(const api_json *j, const api_json_blobs *bin,
                        size_t pos, const char *where, const api_limits *lim,
                        int ignore_trainable, nn_tensor **out,
                        api_error *err)
{
    *out = NULL;
    int kind = api_json_kind(j, pos);
    if (kind == '{')
        return tensor_object(j, bin, pos, where, lim, ignore_trainable, out,
                             err);
    if (kind == '[')
        return tensor_nested(j, pos, where, lim, out, err);
    return api_fail(err, 400, "bad_tensor", "%s: expected an array of "
                    "numbers or {\"shape\", \"data\"}", where);
}

int api_json_tensor(const api_json *j, size_t pos, const char *where,
                    const api_limits *lim, int ignore_trainable,
                    nn_tensor **out, api_error *err)
{
    return api_json_tensor_bin(j, NULL, pos, where, lim, ignore_trainable,
                               out, err);
}

/* ------------------------------------------------- repeated members */

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first member name object j holds twice, or NULL; *failed when
 * memory ran out. Pairwise when small, sorted when large. */
static const char *repeated_in(const cJSON *j, int *failed)
{
    size_t n = 0;
    for (const cJSON *c = j->child; c; c = c->next)
        n++;
    if (n <= 32) {
        for (const cJSON *c = j->child; c; c = c->next)
            for (const cJSON *d = c->next; d; d = d->next)
                if (strcmp(c->string, d->string) == 0)
                    return c->string;
        return NULL;
    }
    const char **names = malloc(n * sizeof *names);
    if (!names) {
        *failed = 1;
        return NULL;
    }
    size_t k = 0;
    for (const cJSON *c = j->child; c; c = c->next)
        names[k++] = c->string;
    qsort(names, n, sizeof *names, by_name);
    const char *twice = NULL;
    for (k = 1; k < n && !twice; k++)
        if (strcmp(names[k - 1], names[k]) == 0)
            twice = names[k];
    free(names);
    return twice;
}

const char *api_json_repeated_member(const cJSON *j, int *failed)
{
    if (cJSON_IsObject(j)) {
        const char *twice = repeated_in(j, failed);
        if (twice || *failed)
            return twice;
    }
    for (const cJSON *c = j->child; c; c = c->next)
        if (cJSON_IsObject(c) || cJSON_IsArray(c)) {
            const char *twice = api_json_repeated_member(c, failed);
            if (twice || *failed)
                return twice;
        }
    return NULL;
}

/* ------------------------------------------------- request documents */

int api_read_step_body(const api_json *j, int sequence, api_step_body *b,
                       api_error *err)
{
    b->inputs = b->forced = b->outputs = NPOS;
    b->train = 0;
    if (api_json_kind(j, 0) != '{')
        return api_fail(err, 400, "bad_request", "the body must be a JSON "
                        "object {\"inputs\": {...}, \"train\": false}");
    size_t it = 0, value, train = NPOS;
    char key[KEY_MAX];
    int cut, rc;
    while ((rc = api_json_member(j, 0, &it, key, sizeof key, &cut,
                                 &value)) == 1) {
        size_t *slot = NULL;
        if (!cut && strcmp(key, "inputs") == 0)
            slot = &b->inputs;
        else if (!cut && strcmp(key, "train") == 0)
            slot = &train;
        else if (!cut && sequence && strcmp(key, "forced") == 0)
            slot = &b->forced;
        else if (!cut && strcmp(key, "outputs") == 0)
            slot = &b->outputs;
        else
            return api_fail(err, 400, "bad_request", "unknown member '%.64s' "
                            "(expected inputs, train, outputs%s)", key,
                            sequence ? ", forced" : "");
        if (*slot != NPOS)
            return api_fail(err, 400, "bad_request", "\"%s\" is given "
                            "twice", key);
        *slot = value;
    }
    if (rc < 0)
        return bad_json(j, err, "the body", it);
    if (b->inputs == NPOS)
        return api_fail(err, 400, "bad_request", "\"inputs\" is missing");
    if (train != NPOS) {
        int kind = api_json_kind(j, train);
        if (kind != 't' && kind != 'f')
            return api_fail(err, 400, "bad_request", "\"train\" must be true "
                            "or false");
        b->train = kind == 't';
    }
    return 0;
}

int api_json_stateless_batch(const api_json *j, size_t inputs)
{
    size_t it = 0, value;
    char key[KEY_MAX];
    int cut;
    if (api_json_kind(j, inputs) != '{' ||
        api_json_member(j, inputs, &it, key, sizeof key, &cut, &value) != 1)
        return 1;
    int kind = api_json_kind(j, value);
    const api_blob *b = blob_of(j, ws(j, value));
    if (b)
        return b->top > INT_MAX ? INT_MAX : (int)b->top;
    if (kind == '[') {
        /* The number of elements of the outer array. */
        size_t p = ws(j, ws(j, value) + 1);
        if (p < j->len && j->s[p] == ']')
            return 0;
        int n = 0;
        while (p != NPOS && p < j->len) {
            n++;
            p = ws(j, api_json_skip(j, p));
            if (p >= j->len || j->s[p] != ',')
                break;
            p++;
        }
        return n;
    }
    if (kind == '{') {
        size_t shape = api_json_find(j, value, "shape");
        if (shape == NPOS || api_json_kind(j, shape) != '[')
            return 1;
        const api_blob *sb = blob_of(j, ws(j, shape));
        if (sb)
            return sb->first_is_number ? sb->first_batch : 1;
        size_t p = ws(j, ws(j, shape) + 1);
        if (number_syntax(j, p) == NPOS)
            return 1;
        char tmp[48];
        size_t end = number_syntax(j, p);
        size_t n = end - p < sizeof tmp ? end - p : sizeof tmp - 1;
        memcpy(tmp, j->s + p, n);
        tmp[n] = '\0';
        double d = strtod(tmp, NULL);
        return d >= -2e9 && d <= 2e9 ? (int)d : 0;
    }
    return 1;
}

/* Every member of inputs names an entry, and every entry is given. */
/* With at (nn_graph_entry_count(g) places), also where each entry's
 * value is (its first member, as api_json_find finds it). */
static int check_input_names(const api_json *j, size_t inputs,
                             const nn_graph *g, size_t *at, api_error *err)
{
    int n_entries = nn_graph_entry_count(g);
    for (int e = 0; at && e < n_entries; e++)
        at[e] = NPOS;
    if (api_json_kind(j, inputs) != '{')
        return api_fail(err, 400, "bad_request", "\"inputs\" must be an object "
                        "mapping input names to tensors");
    size_t it = 0, value;
    char key[KEY_MAX];
    int cut, rc;
    /* Which entries were given: one given twice would be read by the
     * first and the second ignored, silently. */
    enum { FEW_SEEN = 64 };
    unsigned char seen_few[FEW_SEEN] = {0};
    unsigned char *seen = n_entries <= FEW_SEEN ? seen_few
                                                : calloc((size_t)n_entries, 1);
    if (!seen)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    while ((rc = api_json_member(j, inputs, &it, key, sizeof key, &cut,
                                 &value)) == 1) {
        nn_node *node = cut ? NULL : nn_graph_find(g, key);
        int e = 0;
        while (node && e < n_entries && nn_graph_entry_at(g, e) != node)
            e++;
        if (!node || e == n_entries) {
            if (seen != seen_few)
                free(seen);
            return api_fail(err, 400, "unknown_input", "inputs.%.64s: the "
                            "network has no input of that name", key);
        }
        if (seen[e]) {
            if (seen != seen_few)
                free(seen);
            return api_fail(err, 400, "bad_request", "inputs.%.64s is given "
                            "twice", key);
        }
        seen[e] = 1;
        if (at)
            at[e] = value;
    }
    if (seen != seen_few)
        free(seen);
    if (rc < 0)
        return bad_json(j, err, "inputs", it);
    for (int e = 0; e < n_entries; e++) {
        const char *name = nn_node_name(nn_graph_entry_at(g, e));
        if ((at ? at[e] : api_json_find(j, inputs, name)) == NPOS)
            return api_fail(err, 400, "missing_input", "inputs.%s is missing",
                            name);
    }
    return 0;
}

int api_json_bind_step_inputs_bin(const api_json *j,
                                  const api_json_blobs *bin, size_t inputs,
                                  nn_session *s, const nn_graph *g,
                                  const api_limits *lim, api_error *err)
{
    /* Small requests are the common ones: their entries' places are
     * found in one pass over the members, and their floats are read on
     * the stack, without a tensor, before the copy into the session. */
    enum { FEW_ENTRIES = 16, FEW_FLOATS = 256 };
    int n_entries = nn_graph_entry_count(g);
    size_t at_few[FEW_ENTRIES];
    size_t *at = n_entries <= FEW_ENTRIES ? at_few : NULL;
    if (check_input_names(j, inputs, g, at, err))
        return -1;
    for (int e = 0; e < n_entries; e++) {
        nn_node *entry = nn_graph_entry_at(g, e);
        const char *name = nn_node_name(entry);
        /* "inputs.<name>", cut at 95 bytes as snprintf into 96 would. */
        char where[96];
        size_t len = strlen(name);
        if (len > sizeof where - sizeof "inputs.")
            len = sizeof where - sizeof "inputs.";
        memcpy(where, "inputs.", sizeof "inputs." - 1);
        memcpy(where + sizeof "inputs." - 1, name, len);
        where[sizeof "inputs." - 1 + len] = '\0';
        size_t pos = at ? at[e] : api_json_find(j, inputs, name);
        float few[FEW_FLOATS], *data = NULL;
        const api_blob *blob = NULL;
        nn_tensor *t = NULL;
        nn_shape shape;
        if (api_json_kind(j, pos) == '[') {
            if (tensor_nested_into(j, pos, where, lim, few, FEW_FLOATS,
                                   &shape, &data, &blob, err))
                return -1;
        }
        if (!data) {
            if (api_json_tensor_bin(j, bin, pos, where, lim, 0, &t, err))
                return -1;
            shape = t->shape;
            data = t->data;
        }
        nn_tensor *dst = nn_session_input(s, name);
        int same = nn_shape_equal(&shape, &dst->shape);
        if (!same) {
            char got[96], want[96];
            api_fail(err, 400, "shape_mismatch", "%s has shape %s; the network "
                     "needs %s (batch, ...)", where,
                     nn_shape_str(&shape, got, sizeof got),
                     nn_shape_str(&dst->shape, want, sizeof want));
        } else {
            memcpy(dst->data, data, nn_tensor_numel(dst) * sizeof(float));
        }
        if (t)
            nn_tensor_free(t);
        else if (data != few)
            nn_free(data);
        if (!same)
            return -1;
    }
    return 0;
}

int api_json_bind_step_inputs(const api_json *j, size_t inputs,
                              nn_session *s, const nn_graph *g,
                              const api_limits *lim, api_error *err)
{
    return api_json_bind_step_inputs_bin(j, NULL, inputs, s, g, lim, err);
}

/* A document held as text (the pull reader), with its framed tensors. */
typedef struct text_inputs {
    const api_json *j;
    const api_json_blobs *bin;
    size_t inputs;
} text_inputs;

static int read_text_input(void *ctx, const char *name, const char *where,
                           const api_limits *lim, nn_tensor **out,
                           api_error *err)
{
    const text_inputs *t = ctx;
    return api_json_tensor_bin(t->j, t->bin, api_json_find(t->j, t->inputs,
                                                          name),
                               where, lim, 0, out, err);
}

int api_json_sequence_inputs_bin(const api_json *j, const api_json_blobs *bin,
                                 size_t inputs, const nn_graph *g, int batch,
                                 const api_limits *lim,
                                 nn_binding **bindings, int *num_steps,
                                 api_error *err)
{
    *bindings = NULL;
    *num_steps = 0;
    if (check_input_names(j, inputs, g, NULL, err))
        return -1;
    text_inputs t = {j, bin, inputs};
    return api_bind_sequence_inputs(g, batch, lim, read_text_input, &t,
                                    bindings, num_steps, err);
}

int api_json_sequence_inputs(const api_json *j, size_t inputs,
                             const nn_graph *g, int batch,
                             const api_limits *lim, nn_binding **bindings,
                             int *num_steps, api_error *err)
{
    return api_json_sequence_inputs_bin(j, NULL, inputs, g, batch, lim,
                                        bindings, num_steps, err);
}

int api_json_node_sequences_bin(const api_json *j, const api_json_blobs *bin,
                                size_t obj, const nn_graph *g, int batch,
                                int steps, const char *what,
                                const api_limits *lim, nn_binding **bindings,
                                int *n, api_error *err)
{
    *bindings = NULL;
    *n = 0;
    if (api_json_kind(j, obj) != '{')
        return api_fail(err, 400, "bad_request", "\"%s\" must be an object "
                        "{\"<node>\": (batch, steps, features)}", what);
    size_t it = 0, value;
    char key[KEY_MAX];
    int cut, rc, count = 0;
    while ((rc = api_json_member(j, obj, &it, key, sizeof key, &cut,
                                 &value)) == 1)
        count++;
    if (rc < 0)
        return bad_json(j, err, what, it);
    nn_binding *b = calloc((size_t)count + 1, sizeof *b);
    if (!b)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    *bindings = b;
    it = 0;
    while (api_json_member(j, obj, &it, key, sizeof key, &cut, &value) == 1) {
        char here[160];
        snprintf(here, sizeof here, "%s.%.64s", what, key);
        nn_node *node = cut ? NULL : nn_graph_find(g, key);
        if (!node)
            /* A name in the body, as an unknown input or output is: 404
             * means the path named nothing. */
            return api_fail(err, 400, "unknown_node", "%s: the network has no "
                            "node '%.64s'", here, key);
        nn_binding *bind = &b[(*n)++];
        bind->name = nn_node_name(node);
        if (api_json_tensor_bin(j, bin, value, here, lim, 0, &bind->tensor,
                                err))
            return -1;
        nn_shape per = nn_node_output_shape(node);
        const nn_shape *got = &bind->tensor->shape;
        int ok = got->ndim == per.ndim + 2 && got->dims[0] == batch &&
                 got->dims[1] == steps;
        for (int k = 0; ok && k < per.ndim; k++)
            ok = got->dims[k + 2] == per.dims[k];
        if (!ok) {
            char gs[96], ps[96];
            return api_fail(err, 400, "shape_mismatch", "%s has shape %s; it "
                            "needs (%d sequences, %d steps, %s without "
                            "parentheses) like the inputs and node '%s'", here,
                            nn_shape_str(got, gs, sizeof gs), batch, steps,
                            nn_shape_str(&per, ps, sizeof ps), key);
        }
    }
    return 0;
}

int api_json_node_sequences(const api_json *j, size_t obj,
                            const nn_graph *g, int batch, int steps,
                            const char *what, const api_limits *lim,
                            nn_binding **bindings, int *n, api_error *err)
{
    return api_json_node_sequences_bin(j, NULL, obj, g, batch, steps, what,
                                       lim, bindings, n, err);
}

/* -------------------------------------------------------- parameters */

typedef struct params_item {
    nn_node *node;
    int weight;
    nn_tensor *values; /* owned; NULL when sparse is set */
    /* A new pattern and values for a weight stored sparse (owned); after
     * api_params_apply, the weight's former ones. */
    nn_sparse_values *sparse;
} params_item;

struct api_params_import {
    params_item *items;
    int n, cap;
};

void api_params_import_free(api_params_import *imp)
{
    if (!imp)
        return;
    for (int i = 0; i < imp->n; i++) {
        nn_tensor_free(imp->items[i].values);
        nn_sparse_values_free(imp->items[i].sparse);
    }
    free(imp->items);
    free(imp);
}

static int weight_index(nn_node *node, const char *name)
{
    for (int w = 0; w < nn_node_weight_count(node); w++)
        if (strcmp(nn_node_weight_name(node, w), name) == 0)
            return w;
    return -1;
}

/* A weight stored sparse given as its dense (rows, cols) matrix takes the
 * matrix's non-zeros as its pattern; given as its values alone (the
 * weight's present shape) it keeps its pattern. */
static int dense_into_sparse(params_item *item, const char *where,
                             api_error *err)
{
    int rows, cols;
    const nn_shape *s = &item->values->shape;
    if (!nn_node_weight_sparse(item->node, item->weight, &rows, &cols) ||
        s->ndim != 2 || s->dims[0] != rows || s->dims[1] != cols)
        return 0;
    if (api_sparse_from_dense(item->node, item->weight, item->values, where,
                              &item->sparse, err))
        return -1;
    nn_tensor_free(item->values);
    item->values = NULL;
    return 0;
}

int api_params_read_bin(const nn_graph *g, const api_json *j,
                        const api_json_blobs *bin, api_params_import **out,
                        api_error *err)
{
    *out = NULL;
    size_t nodes = api_json_kind(j, 0) == '{' ? api_json_find(j, 0, "nodes")
                                              : NPOS;
    if (nodes == NPOS || api_json_kind(j, nodes) != '{')
        return api_fail(err, 400, "bad_request", "a parameter document is "
                        "{\"nodes\": {\"<node>\": {\"<weight>\": tensor}}}");
    api_params_import *imp = calloc(1, sizeof *imp);
    if (!imp)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    /* Weights are as large as the network allows, not as a request's
     * tensors. */
    api_limits lim = api_default_limits();
    lim.max_tensor_elems = (size_t)1 << 31;
    size_t it = 0, value;
    char name[KEY_MAX];
    int cut, rc;
    while ((rc = api_json_member(j, nodes, &it, name, sizeof name, &cut,
                                 &value)) == 1) {
        nn_node *node = cut ? NULL : nn_graph_find(g, name);
        if (!node) {
            api_fail(err, 400, "unknown_node", "nodes.%.64s: no such node",
                     name);
            goto fail;
        }
        if (api_json_kind(j, value) != '{') {
            api_fail(err, 400, "bad_request", "nodes.%s must map weight "
                     "names to tensors", name);
            goto fail;
        }
        size_t wit = 0, wvalue;
        char wname[KEY_MAX];
        int wcut, wrc;
        while ((wrc = api_json_member(j, value, &wit, wname, sizeof wname,
                                      &wcut, &wvalue)) == 1) {
            char where[160];
            snprintf(where, sizeof where, "nodes.%s.%.64s", name, wname);
            int w = wcut ? -1 : weight_index(node, wname);
            if (w < 0) {
                api_fail(err, 400, "unknown_weight", "%s: node '%s' has no "
                         "weight of that name", where, name);
                goto fail;
            }
            if (imp->n == imp->cap) {
                int cap = imp->cap ? imp->cap * 2 : 8;
                params_item *p = realloc(imp->items, (size_t)cap * sizeof *p);
                if (!p) {
                    api_fail(err, 503, "out_of_memory", "out of memory");
                    goto fail;
                }
                imp->items = p;
                imp->cap = cap;
            }
            params_item *item = &imp->items[imp->n];
            memset(item, 0, sizeof *item);
            item->node = node;
            item->weight = w;
            if (api_sparse_is_form(j, wvalue)) {
                if (api_sparse_read(j, wvalue, where, node, w, &item->sparse,
                                    &item->values, err))
                    goto fail;
                imp->n++;
                continue;
            }
            if (api_json_tensor_bin(j, bin, wvalue, where, &lim, 1,
                                    &item->values, err))
                goto fail;
            imp->n++;
            if (dense_into_sparse(item, where, err))
                goto fail;
            /* A sparse weight's count can change under another import:
             * its values are checked under the lock instead
             * (api_params_still_fits). */
            const nn_tensor *dst = nn_node_weight_at(node, w);
            if (!nn_node_weight_sparse(node, w, NULL, NULL) &&
                !nn_shape_equal(&item->values->shape, &dst->shape)) {
                char a[96], b[96];
                api_fail(err, 400, "shape_mismatch", "%s has shape %s; the "
                         "weight is %s", where,
                         nn_shape_str(&item->values->shape, a, sizeof a),
                         nn_shape_str(&dst->shape, b, sizeof b));
                goto fail;
            }
        }
        if (wrc < 0) {
            bad_json(j, err, "nodes", wit);
            goto fail;
        }
    }
    if (rc < 0) {
        bad_json(j, err, "nodes", it);
        goto fail;
    }
    *out = imp;
    return 0;
fail:
    api_params_import_free(imp);
    return -1;
}

int api_params_read(const nn_graph *g, const api_json *j,
                    api_params_import **out, api_error *err)
{
    return api_params_read_bin(g, j, NULL, out, err);
}

void api_params_apply(nn_graph *g, api_params_import *imp)
{
    (void)g; /* the items point at g's nodes */
    for (int i = 0; i < imp->n; i++) {
        params_item *item = &imp->items[i];
        if (item->sparse) {
            nn_node_weight_swap_sparse(item->node, item->weight,
                                       item->sparse);
            continue;
        }
        nn_tensor *dst = nn_node_weight_at(item->node, item->weight);
        /* api_params_still_fits refuses this; a caller that did not ask
         * must not get a write past the weight. */
        if (nn_tensor_numel(dst) == nn_tensor_numel(item->values))
            memcpy(dst->data, item->values->data,
                   nn_tensor_numel(dst) * sizeof(float));
    }
}

int api_params_still_fits(const nn_graph *g, const api_params_import *imp,
                          api_error *err)
{
    size_t removed = 0, added = 0;
    const params_item *first = NULL;
    for (int i = 0; i < imp->n; i++) {
        const params_item *item = &imp->items[i];
        const nn_tensor *dst = nn_node_weight_at(item->node, item->weight);
        if (item->sparse) {
            removed += nn_tensor_numel(dst);
            added += nn_sparse_values_nnz(item->sparse);
            first = first ? first : item;
            continue;
        }
        if (!nn_shape_equal(&dst->shape, &item->values->shape)) {
            char a[96], b[96];
            return api_fail(err, 400, "shape_mismatch", "nodes.%s.%s has "
                            "shape %s; the weight is %s",
                            nn_node_name(item->node),
                            nn_node_weight_name(item->node, item->weight),
                            nn_shape_str(&item->values->shape, a, sizeof a),
                            nn_shape_str(&dst->shape, b, sizeof b));
        }
    }
    nn_error e;
    if (first && nn_graph_params_fit(g, removed, added, &e) != NN_OK) {
        /* The cap is the definition's limit, as when it was built. */
        api_fail_from_nn(err, &e, 1);
        char msg[sizeof err->message];
        snprintf(msg, sizeof msg, "nodes.%s.%s: %s", nn_node_name(first->node),
                 nn_node_weight_name(first->node, first->weight),
                 err->message);
        snprintf(err->message, sizeof err->message, "%s", msg);
        return -1;
    }
    return 0;
}

void api_params_unapply_patterns(nn_graph *g, api_params_import *imp)
{
    (void)g;
    for (int i = imp->n - 1; i >= 0; i--)
        if (imp->items[i].sparse)
            nn_node_weight_swap_sparse(imp->items[i].node,
                                       imp->items[i].weight,
                                       imp->items[i].sparse);
}
