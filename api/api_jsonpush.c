/*
 * api_jsonpush.c — the pushed reader (api_codec.h): the body's bytes go
 * through one resumable state machine as they arrive. It checks the
 * document as api_json_check does (same verdicts, same byte offsets),
 * keeps the text the pull reader needs, and reads every large array of
 * numbers under an object member into float32 as it passes, keeping in
 * its place a marker and a blob (api_jsonpush.h) with the verdicts the
 * pull reader would reach on its text. Only a number split across two
 * chunks is carried over.
 */
#include "api_jsonpush.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPOS ((size_t)-1)

/* Where the machine is between two bytes. */
enum {
    S_VALUE,        /* a value is due */
    S_ARRAY_FIRST,  /* after '[': a value or ']' */
    S_OBJECT_FIRST, /* after '{': a key or '}' */
    S_KEY,          /* after ',' in an object */
    S_COLON,        /* after a key */
    S_AFTER,        /* after a value: ',' or the close (or the end) */
    S_STRING,
    S_NUMBER,
    S_WORD,
};

/* Inside a string. */
enum { STR_PLAIN, STR_ESC, STR_HEX, STR_HIGH_BS, STR_HIGH_U, STR_LOW_HEX };

/* An element's kind for the blob's verdicts. */
enum { K_NUMBER = '0' };

struct api_jsondoc {
    size_t blob_min;
    int (*reserve)(void *cls, size_t bytes);
    void *cls;
    size_t charged;
    int broken; /* memory was refused */
    size_t pos; /* the body's bytes so far */

    /* The HTTP layer's depth guard, counted over every byte. */
    int g_depth, g_deepest, g_string, g_escape;

    /* The check. */
    int failed, trailing, finished;
    size_t bad_at;
    int state, str_state, str_key, hex_k;
    /* The last member's key, while short and unescaped, to tell index
     * arrays (a sparse weight's "indptr", "indices", "row", "col"), which
     * must stay exact integers and so stay text. */
    char key[8];
    int key_len, key_is_index;
    unsigned hex_v;
    size_t esc_at, tok_at;
    const char *word;
    int word_k;
    char stack[API_JSON_MAX_DEPTH];
    int depth;
    char *num; /* the number being read, carried across chunks */
    size_t num_len, num_cap;

    /* The kept text (NUL-terminated). */
    char *text;
    size_t len, cap;
    api_blob *blobs;
    size_t n_blobs, cap_blobs;

    /* The array being read as a blob: its '[' is stack[cand] (-1: none).
     * Until converted its text is kept too; it is dropped (stays text)
     * when something other than numbers and arrays shows in it first. */
    int cand, converted, objs;
    int has_nested;
    api_blob b;
    size_t cap_data;
    int count[NN_MAX_DIMS], index[NN_MAX_DIMS];
    size_t opened[NN_MAX_DIMS];
};

/* ------------------------------------------------------------ memory */

static int reserve(api_jsondoc *d, size_t bytes)
{
    if (d->reserve && d->reserve(d->cls, bytes)) {
        d->broken = 1;
        return -1;
    }
    d->charged += bytes;
    return 0;
}

/* Grows *p (elements of size elem, *cap of them) to hold need. */
static int grow(api_jsondoc *d, void **p, size_t *cap, size_t need,
                size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : elem > 16 ? 4 : 64;
    while (n < need)
        n *= 2;
    if (reserve(d, (n - *cap) * elem))
        return -1;
    void *q = realloc(*p, n * elem);
    if (!q) {
        d->broken = 1;
        return -1;
    }
    *p = q;
    *cap = n;
    return 0;
}

static int put(api_jsondoc *d, char c)
{
    if (d->len + 2 > d->cap &&
        grow(d, (void **)&d->text, &d->cap, d->len + 2, 1))
        return -1;
    d->text[d->len++] = c;
    return 0;
}

static void drop_candidate(api_jsondoc *d)
{
    free(d->b.data);
    d->b.data = NULL;
    d->cap_data = 0;
    d->cand = -1;
}

static void fail(api_jsondoc *d, size_t at, int trailing)
{
    d->failed = 1;
    d->bad_at = at;
    d->trailing = trailing;
    /* Nothing will be read: what is held goes now. */
    drop_candidate(d);
    for (size_t k = 0; k < d->n_blobs; k++)
        free(d->blobs[k].data);
    d->n_blobs = 0;
    d->len = 0;
}

/* ------------------------------------------------------------- blobs */

static void nested_fail(api_jsondoc *d, int kind, int axis, size_t at)
{
    api_blob *b = &d->b;
    b->fail = kind;
    b->fail_axis = axis;
    b->fail_dim = axis < NN_MAX_DIMS ? b->dims[axis] : 0;
    b->fail_at = at;
    b->fail_n = b->n;
    memcpy(b->fail_index, d->index, sizeof b->fail_index);
    /* A failed read needs no numbers: a flat read that succeeds is a
     * nested read that succeeds. */
    free(b->data);
    b->data = NULL;
    d->cap_data = 0;
    b->n = 0;
}

static void nested_fail_element(api_jsondoc *d, int kind, int axes, size_t at)
{
    nested_fail(d, kind, 0, at);
    d->b.fail_axes = axes;
}

static void start_candidate(api_jsondoc *d, size_t at)
{
    api_blob *b = &d->b;
    memset(b, 0, sizeof *b);
    d->cand = d->depth - 1;
    d->converted = 0;
    d->objs = 0;
    d->has_nested = 0;
    d->cap_data = 0;
    b->mark = d->len - 1; /* its '[' was just kept */
    b->open = at;
    d->opened[0] = at;
    d->count[0] = 0;
}

static void maybe_convert(api_jsondoc *d)
{
    /* An array of at most NN_MAX_DIMS numbers stays text whatever its
     * length, so that a "shape" is always read from its text. */
    if (d->converted || d->len - d->b.mark < d->blob_min ||
        !(d->b.top > NN_MAX_DIMS || d->has_nested))
        return;
    d->len = d->b.mark;
    put(d, API_BLOB_MARK);
    d->converted = 1;
}

/* A value starts (numbers: ends) at byte `at` in the array on stack level
 * depth - 1: read_nested's and tensor_object's verdicts move on. A
 * number's value is v, its text num[0..num_len). */
static void element_of(api_jsondoc *d, int kind, size_t at, float v,
                       const char *num, size_t num_len)
{
    int parent = d->depth - 1;
    if (d->cand < 0 || d->objs > 0 || parent < d->cand ||
        d->stack[parent] != '[')
        return;
    if (!d->converted && kind != K_NUMBER && kind != '[') {
        drop_candidate(d);
        return;
    }
    api_blob *b = &d->b;
    int a = parent - d->cand;
    if (b->fail == API_BLOB_OK) {
        if (b->dims[a] && d->count[a] == b->dims[a]) {
            nested_fail(d, API_BLOB_RAGGED, a, at);
        } else {
            d->index[a] = d->count[a]++;
            if (b->ndim == 0 && kind != '[')
                b->ndim = a + 1;
            if (kind == '[' && (b->ndim == 0 || a + 1 < b->ndim)) {
                if (a + 1 == NN_MAX_DIMS) {
                    nested_fail(d, API_BLOB_AXES, 0, at);
                } else {
                    d->count[a + 1] = 0;
                    d->opened[a + 1] = at;
                }
            } else if (a + 1 < b->ndim || kind == '[') {
                nested_fail(d, API_BLOB_RAGGED, a + 1 < b->ndim ? a + 1 : a,
                            at);
            } else if (kind != K_NUMBER) {
                nested_fail_element(d, API_BLOB_NOT_NUMBER, a + 1, at);
            } else if (!isfinite(v)) {
                nested_fail_element(d, API_BLOB_NOT_FINITE, a + 1, at);
            } else {
                if (b->n == d->cap_data &&
                    grow(d, (void **)&b->data, &d->cap_data, b->n + 1,
                         sizeof(float)))
                    return;
                b->data[b->n++] = v;
            }
        }
    }
    if (a == 0) {
        size_t i = b->top++;
        if (!b->bad_kind && (kind != K_NUMBER || !isfinite(v))) {
            b->bad_kind = kind != K_NUMBER ? API_BLOB_NOT_NUMBER
                                           : API_BLOB_NOT_FINITE;
            b->bad_index = i;
            b->bad_at = at;
        }
        if (i == 0 && kind == K_NUMBER) {
            /* As api_json_stateless_batch reads a shape's first size. */
            char tmp[48];
            size_t n = num_len < sizeof tmp ? num_len : sizeof tmp - 1;
            memcpy(tmp, num, n);
            tmp[n] = '\0';
            double x = strtod(tmp, NULL);
            b->first_is_number = 1;
            b->first_batch = x >= -2e9 && x <= 2e9 ? (int)x : 0;
        }
        if (kind == '[')
            d->has_nested = 1;
    }
    if (!d->converted)
        maybe_convert(d);
}

static void element(api_jsondoc *d, int kind, size_t at)
{
    element_of(d, kind, at, 0, NULL, 0);
}

/* The array at stack level depth - 1 closes (byte `at` is its ']'). */
static void array_closed(api_jsondoc *d)
{
    api_blob *b = &d->b;
    int a = d->depth - 1 - d->cand;
    if (b->fail == API_BLOB_OK) {
        if (d->count[a] == 0) {
            if (b->dims[a])
                nested_fail(d, API_BLOB_RAGGED, a, d->opened[a]);
            else
                nested_fail(d, API_BLOB_EMPTY, 0, d->opened[a]);
        } else if (b->dims[a] && d->count[a] != b->dims[a]) {
            nested_fail(d, API_BLOB_RAGGED, a, d->opened[a]);
        } else {
            b->dims[a] = d->count[a];
        }
    }
    if (a > 0)
        maybe_convert(d);
}

static void candidate_closed(api_jsondoc *d)
{
    if (!d->converted) {
        drop_candidate(d);
        return;
    }
    api_blob *b = &d->b;
    b->end = d->pos + 1;
    size_t before = d->n_blobs ? d->blobs[d->n_blobs - 1].shift : 0;
    b->shift = before + (b->end - b->open) - 1;
    if (b->data && d->cap_data > b->n) {
        /* The growth's slack back. */
        float *q = realloc(b->data, (b->n ? b->n : 1) * sizeof *q);
        if (q)
            b->data = q;
    }
    if (grow(d, (void **)&d->blobs, &d->cap_blobs, d->n_blobs + 1,
             sizeof *d->blobs)) {
        drop_candidate(d);
        return;
    }
    d->blobs[d->n_blobs++] = *b;
    b->data = NULL;
    d->cap_data = 0;
    d->cand = -1;
}

/* --------------------------------------------------------- the check */

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_number_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' ||
           c == 'e' || c == 'E';
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}


static void value_done(api_jsondoc *d) { d->state = S_AFTER; }

/* The number's bytes are all here; -1 when it is malformed. */
static int number_done(api_jsondoc *d)
{
    size_t n = api_json_number_length(d->num, d->num_len);
    if (n == NPOS) {
        fail(d, d->tok_at, 0);
        return -1;
    }
    if (n < d->num_len) {
        /* What follows a number can be none of its bytes. */
        fail(d, d->tok_at + n, d->depth == 0);
        return -1;
    }
    float v;
    api_read_float(d->num, d->num_len, &v);
    element_of(d, K_NUMBER, d->tok_at, v, d->num, d->num_len);
    value_done(d);
    return d->broken ? -1 : 0;
}

static void close_container(api_jsondoc *d)
{
    int level = d->depth - 1;
    if (d->cand >= 0 && level >= d->cand) {
        if (d->stack[level] == '{')
            d->objs--;
        else if (d->objs == 0)
            array_closed(d);
        if (level == d->cand)
            candidate_closed(d);
    }
    d->depth--;
    value_done(d);
}

static void value_start(api_jsondoc *d, unsigned char c)
{
    size_t at = d->pos;
    if (c == '"') {
        element(d, '"', at);
        d->state = S_STRING;
        d->str_state = STR_PLAIN;
        d->str_key = 0;
        return;
    }
    if (c == '[' || c == '{') {
        if (d->depth >= API_JSON_MAX_DEPTH) {
            fail(d, at, 0);
            return;
        }
        element(d, c, at);
        int root = d->depth == 0 ||
                   (d->stack[d->depth - 1] == '{' && !d->key_is_index);
        d->stack[d->depth++] = (char)c;
        if (c == '[' && d->cand < 0 && root)
            start_candidate(d, at);
        else if (c == '{' && d->cand >= 0)
            d->objs++;
        d->state = c == '[' ? S_ARRAY_FIRST : S_OBJECT_FIRST;
        return;
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int w = 0; w < 3; w++)
        if (c == (unsigned char)words[w][0]) {
            element(d, c, at);
            d->word = words[w];
            d->word_k = 1;
            d->tok_at = at;
            d->state = S_WORD;
            return;
        }
    if (c == '-' || (c >= '0' && c <= '9')) {
        d->tok_at = at;
        d->num_len = 0;
        if (grow(d, (void **)&d->num, &d->num_cap, 1, 1))
            return;
        d->num[d->num_len++] = (char)c;
        d->state = S_NUMBER;
        return;
    }
    fail(d, at, 0);
}

static int is_index_key(const char *key, int len)
{
    static const char *const names[] = {"indptr", "indices", "row", "col"};
    for (int k = 0; k < 4; k++)
        if ((size_t)len == strlen(names[k]) && memcmp(key, names[k], len) == 0)
            return 1;
    return 0;
}

static void string_byte(api_jsondoc *d, unsigned char c)
{
    int h;
    switch (d->str_state) {
    case STR_PLAIN:
        if (c == '"') {
            d->state = d->str_key ? S_COLON : S_AFTER;
            if (d->str_key)
                d->key_is_index = is_index_key(d->key, d->key_len);
        } else if (d->str_key && c != '\\' && c >= 0x20) {
            if (d->key_len < (int)sizeof d->key)
                d->key[d->key_len] = (char)c;
            d->key_len++;
        } else if (c < 0x20) {
            fail(d, d->pos, 0);
        } else if (c == '\\') {
            d->esc_at = d->pos;
            d->str_state = STR_ESC;
            d->key_len = (int)sizeof d->key + 1; /* escaped: no index key */
        }
        return;
    case STR_ESC:
        if (c && strchr("\"\\/bfnrt", c)) {
            d->str_state = STR_PLAIN;
        } else if (c == 'u') {
            d->str_state = STR_HEX;
            d->hex_k = 0;
            d->hex_v = 0;
        } else {
            fail(d, d->esc_at, 0);
        }
        return;
    case STR_HEX:
    case STR_LOW_HEX:
        if ((h = hex_value(c)) < 0) {
            fail(d, d->esc_at, 0);
            return;
        }
        d->hex_v = d->hex_v << 4 | (unsigned)h;
        if (++d->hex_k < 4)
            return;
        if (d->str_state == STR_LOW_HEX) {
            if (d->hex_v >= 0xDC00 && d->hex_v <= 0xDFFF)
                d->str_state = STR_PLAIN;
            else
                fail(d, d->esc_at, 0);
        } else if (d->hex_v >= 0xDC00 && d->hex_v <= 0xDFFF) {
            fail(d, d->esc_at, 0); /* a lone low surrogate */
        } else if (d->hex_v >= 0xD800 && d->hex_v <= 0xDBFF) {
            d->str_state = STR_HIGH_BS;
        } else {
            d->str_state = STR_PLAIN;
        }
        return;
    case STR_HIGH_BS:
        if (c == '\\')
            d->str_state = STR_HIGH_U;
        else
            fail(d, d->esc_at, 0);
        return;
    case STR_HIGH_U:
        if (c == 'u') {
            d->str_state = STR_LOW_HEX;
            d->hex_k = 0;
            d->hex_v = 0;
        } else {
            fail(d, d->esc_at, 0);
        }
        return;
    }
}

static void key_start(api_jsondoc *d, unsigned char c)
{
    if (c == '"') {
        d->state = S_STRING;
        d->str_state = STR_PLAIN;
        d->str_key = 1;
        d->key_len = 0;
    } else {
        fail(d, d->pos, 0);
    }
}

static void step(api_jsondoc *d, unsigned char c)
{
    for (;;) {
        switch (d->state) {
        case S_STRING:
            string_byte(d, c);
            return;
        case S_NUMBER:
            if (is_number_byte(c)) {
                if (d->num_len == d->num_cap &&
                    grow(d, (void **)&d->num, &d->num_cap, d->num_len + 1, 1))
                    return;
                d->num[d->num_len++] = (char)c;
                return;
            }
            if (number_done(d))
                return;
            continue; /* c again, after the number */
        case S_WORD:
            if (c != (unsigned char)d->word[d->word_k]) {
                fail(d, d->tok_at, 0);
                return;
            }
            if (!d->word[++d->word_k])
                value_done(d);
            return;
        default:
            break;
        }
        break;
    }
    if (is_ws(c))
        return;
    switch (d->state) {
    case S_VALUE:
        value_start(d, c);
        return;
    case S_ARRAY_FIRST:
        if (c == ']')
            close_container(d);
        else
            value_start(d, c);
        return;
    case S_OBJECT_FIRST:
        if (c == '}')
            close_container(d);
        else
            key_start(d, c);
        return;
    case S_KEY:
        key_start(d, c);
        return;
    case S_COLON:
        if (c == ':')
            d->state = S_VALUE;
        else
            fail(d, d->pos, 0);
        return;
    case S_AFTER: {
        if (d->depth == 0) {
            fail(d, d->pos, 1);
            return;
        }
        char open = d->stack[d->depth - 1];
        if (c == ',')
            d->state = open == '[' ? S_VALUE : S_KEY;
        else if (c == (open == '[' ? ']' : '}'))
            close_container(d);
        else
            fail(d, d->pos, 0);
        return;
    }
    }
}

/* ------------------------------------------------------------ the API */

api_jsondoc *api_jsondoc_new(size_t blob_min,
                             int (*reserve_fn)(void *cls, size_t bytes),
                             void *cls)
{
    api_jsondoc *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->blob_min = blob_min;
    d->reserve = reserve_fn;
    d->cls = cls;
    d->cand = -1;
    d->state = S_VALUE;
    if (grow(d, (void **)&d->text, &d->cap, 256, 1)) {
        free(d);
        return NULL;
    }
    return d;
}

/* The common case, elements of an array being read as a blob that are
 * numbers whole in this piece, each followed by ',', without the
 * byte-by-byte machine: none of their bytes is one that the depth guard
 * or the check looks at between values. Returns the bytes taken, 0 when
 * the machine must go on. */
static size_t fast_numbers(api_jsondoc *d, const char *data, size_t i,
                           size_t n)
{
    if (d->failed || d->cand < 0 || d->objs > 0 ||
        (d->state != S_VALUE && d->state != S_ARRAY_FIRST) ||
        d->stack[d->depth - 1] != '[')
        return 0;
    size_t start = i;
    for (;;) {
        unsigned char c = (unsigned char)data[i];
        if (c != '-' && (c < '0' || c > '9'))
            break;
        float v;
        size_t len = api_read_float(data + i, n - i, &v);
        size_t e = i + len;
        /* Split, or malformed (what follows a number is none of its
         * bytes): the machine says how. */
        if (!len || e == n || is_number_byte((unsigned char)data[e]))
            break;
        /* Taken with the ',' after it when there is one. */
        size_t take = len + (data[e] == ',' && e + 1 < n);
        if (!d->converted) {
            if (grow(d, (void **)&d->text, &d->cap, d->len + take + 1, 1))
                break;
            memcpy(d->text + d->len, data + i, take);
            d->len += take;
        }
        /* The innermost axis of a blob being read, fine so far and with
         * room: what element_of would do, without its verdicts. */
        api_blob *b = &d->b;
        int a = d->depth - 1 - d->cand;
        if (d->converted && a > 0 && a + 1 == b->ndim &&
            b->fail == API_BLOB_OK && b->n < d->cap_data &&
            (!b->dims[a] || d->count[a] < b->dims[a]) && isfinite(v)) {
            d->index[a] = d->count[a]++;
            b->data[b->n++] = v;
        } else {
            element_of(d, K_NUMBER, d->pos + (i - start), v, data + i, len);
            if (d->broken)
                break;
        }
        i += take;
        if (take == len || d->cand < 0 || d->failed) {
            value_done(d);
            break;
        }
        d->state = S_VALUE;
    }
    return i - start;
}

int api_jsondoc_feed(api_jsondoc *d, const char *data, size_t n)
{
    if (d->broken)
        return -1;
    for (size_t i = 0; i < n; i++, d->pos++) {
        size_t fast = fast_numbers(d, data, i, n);
        if (d->broken)
            return -1;
        if (fast) {
            i += fast - 1;
            d->pos += fast - 1;
            continue;
        }
        unsigned char c = (unsigned char)data[i];
        if (d->g_string) {
            if (d->g_escape)
                d->g_escape = 0;
            else if (c == '\\')
                d->g_escape = 1;
            else if (c == '"')
                d->g_string = 0;
        } else if (c == '"') {
            d->g_string = 1;
        } else if (c == '[' || c == '{') {
            if (++d->g_depth > d->g_deepest)
                d->g_deepest = d->g_depth;
        } else if (c == ']' || c == '}') {
            d->g_depth--;
        }
        if (d->failed)
            continue;
        if (!(d->cand >= 0 && d->converted) && put(d, (char)c))
            return -1;
        step(d, c);
        if (d->broken)
            return -1;
    }
    return 0;
}

void api_jsondoc_finish(api_jsondoc *d)
{
    if (d->finished)
        return;
    d->finished = 1;
    if (d->broken || d->failed)
        return;
    if (d->state == S_NUMBER && number_done(d))
        return;
    if (d->state == S_STRING)
        fail(d, d->str_state == STR_PLAIN ? d->pos : d->esc_at, 0);
    else if (d->state == S_WORD)
        fail(d, d->tok_at, 0);
    else if (d->state != S_AFTER || d->depth > 0)
        fail(d, d->pos, 0);
    if (d->failed)
        return;
    d->text[d->len] = '\0';
}

int api_jsondoc_depth(const api_jsondoc *d) { return d->g_deepest; }

int api_jsondoc_check(const api_jsondoc *d, size_t *at, int *trailing)
{
    *at = d->bad_at;
    *trailing = d->trailing;
    return d->failed || d->broken || !d->finished ? -1 : 0;
}

api_json api_jsondoc_json(const api_jsondoc *d)
{
    api_json j = {d->text ? d->text : "", d->text ? d->len : 0, d};
    return j;
}

size_t api_jsondoc_charged(const api_jsondoc *d) { return d->charged; }

void api_jsondoc_free(api_jsondoc *d)
{
    if (!d)
        return;
    for (size_t k = 0; k < d->n_blobs; k++)
        free(d->blobs[k].data);
    free(d->blobs);
    free(d->b.data);
    free(d->num);
    free(d->text);
    free(d);
}

/* ---------------------------------------------------- for the reader */

const api_blob *api_jsondoc_blob_at(const api_jsondoc *d, size_t p)
{
    size_t lo = 0, hi = d->n_blobs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->blobs[mid].mark < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < d->n_blobs && d->blobs[lo].mark == p ? &d->blobs[lo] : NULL;
}

size_t api_jsondoc_offset(const api_jsondoc *d, size_t p)
{
    /* The last blob before p. */
    size_t lo = 0, hi = d->n_blobs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->blobs[mid].mark < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? p + d->blobs[lo - 1].shift : p;
}
