/*
 * api_jsonblob.c — where each binary tensor of a framed v1 body lies: the
 * JSON header is walked once, every object with "binary_data_size" is
 * given its offset in the bytes after the header, and the tensor readers
 * (api_jsonread.c) look their object up there. Offsets follow the order
 * the objects begin in the header, whatever order a reader visits them in
 * (inputs by the graph's entries, "forced" after "inputs"), so a client
 * lays its bytes out as it wrote its header.
 */
#include "api_binary.h"
#include "api_codec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NPOS ((size_t)-1)

typedef struct blob_at {
    size_t pos;     /* the object's '{' */
    size_t offset;  /* its bytes, after the JSON header */
    size_t size;
} blob_at;

struct api_json_blobs {
    const unsigned char *data;
    size_t len;
    blob_at *at;    /* sorted by pos */
    int n, cap;
};

static size_t ws(const api_json *j, size_t p)
{
    while (p < j->len && (j->s[p] == ' ' || j->s[p] == '\t' ||
                          j->s[p] == '\n' || j->s[p] == '\r'))
        p++;
    return p;
}

/* A byte count: a JSON number that is a non-negative integer. */
static int byte_count(const api_json *j, size_t p, size_t *out)
{
    float ignored;
    size_t used = api_read_float(j->s + p, j->len - p, &ignored);
    if (!used || used > 30)
        return -1;
    char tmp[32];
    memcpy(tmp, j->s + p, used);
    tmp[used] = '\0';
    double d = strtod(tmp, NULL);
    if (d < 0 || d != floor(d) || d > 1e18)
        return -1;
    *out = (size_t)d;
    return 0;
}

static int add(api_json_blobs *b, size_t pos, size_t size)
{
    if (b->n == b->cap) {
        int cap = b->cap ? b->cap * 2 : 16;
        blob_at *p = realloc(b->at, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        b->at = p;
        b->cap = cap;
    }
    b->at[b->n].pos = pos;
    b->at[b->n++].size = size;
    return 0;
}

/* Records the objects with binary_data_size in the value at p. The text
 * was checked (api_json_check), so its depth is bounded. */
static int walk(const api_json *j, size_t p, api_json_blobs *b, int depth,
                api_error *err)
{
    p = ws(j, p);
    if (p >= j->len || depth > API_JSON_MAX_DEPTH)
        return 0;
    if (j->s[p] == '{') {
        size_t it = 0, value;
        char key[32];
        int cut, rc;
        while ((rc = api_json_member(j, p, &it, key, sizeof key, &cut,
                                     &value)) == 1) {
            if (!cut && strcmp(key, "binary_data_size") == 0) {
                size_t size;
                if (byte_count(j, ws(j, value), &size))
                    return api_fail(err, 400, "bad_tensor", "binary_data_size "
                                    "at byte %zu must be a byte count",
                                    ws(j, value));
                if (add(b, p, size))
                    return api_fail(err, 503, "out_of_memory",
                                    "out of memory");
            } else if (walk(j, value, b, depth + 1, err)) {
                return -1;
            }
        }
        return 0;
    }
    if (j->s[p] != '[')
        return 0;
    p = ws(j, p + 1);
    while (p < j->len && j->s[p] != ']') {
        int kind = j->s[p];
        if ((kind == '{' || kind == '[') && walk(j, p, b, depth + 1, err))
            return -1;
        p = api_json_skip(j, p);
        if (p == NPOS)
            return 0;
        p = ws(j, p);
        if (p >= j->len || j->s[p] != ',')
            break;
        p = ws(j, p + 1);
    }
    return 0;
}

static int by_pos(const void *a, const void *b)
{
    size_t x = ((const blob_at *)a)->pos, y = ((const blob_at *)b)->pos;
    return x < y ? -1 : x > y;
}

int api_json_blobs_index(const api_json *j, const void *data, size_t len,
                         api_json_blobs **out, api_error *err)
{
    *out = NULL;
    api_json_blobs *b = calloc(1, sizeof *b);
    if (!b)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    b->data = data;
    b->len = data ? len : 0;
    if (walk(j, 0, b, 0, err)) {
        api_json_blobs_free(b);
        return -1;
    }
    if (b->n > 1)
        qsort(b->at, (size_t)b->n, sizeof *b->at, by_pos);
    size_t offset = 0;
    for (int k = 0; k < b->n; k++) {
        b->at[k].offset = offset;
        offset = b->at[k].size > SIZE_MAX - offset ? SIZE_MAX
                                                   : offset + b->at[k].size;
    }
    if (offset != b->len) {
        if (offset > b->len)
            api_fail(err, 400, "bad_tensor", "the tensors' binary_data_size "
                     "add up to %zu bytes, but only %zu follow the JSON header "
                     "(" API_BINARY_HEADER "): the body is truncated", offset,
                     b->len);
        else
            api_fail(err, 400, "bad_tensor", "%zu bytes after the JSON header "
                     "belong to no tensor (the tensors' binary_data_size add "
                     "up to %zu)", b->len - offset, offset);
        api_json_blobs_free(b);
        return -1;
    }
    *out = b;
    return 0;
}

void api_json_blobs_free(api_json_blobs *b)
{
    if (!b)
        return;
    free(b->at);
    free(b);
}

int api_json_blobs_take(const api_json_blobs *b, const api_json *j,
                        size_t pos, float *dst, size_t count,
                        const char *where, api_error *err)
{
    pos = ws(j, pos);
    int lo = 0, hi = b ? b->n : 0;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (b->at[mid].pos < pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (!b || lo == b->n || b->at[lo].pos != pos)
        return api_fail(err, 400, "bad_tensor", "%s: binary_data_size needs "
                        "the binary tensor framing (the header "
                        API_BINARY_HEADER " and the bytes after the JSON)",
                        where);
    const blob_at *at = &b->at[lo];
    if (count > SIZE_MAX / 4 || at->size != count * 4)
        return api_fail(err, 400, "bad_tensor", "%s: binary_data_size is %zu "
                        "bytes; its shape needs %zu (FP32, 4 bytes a value)",
                        where, at->size, count * 4);
    api_binary_reader r;
    api_binary_reader_init(&r, b->data + at->offset, at->size);
    return api_binary_take_f32(&r, dst, count, where, err);
}
