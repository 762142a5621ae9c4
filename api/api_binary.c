/*
 * api_binary.c — splitting a body into a JSON header and tensor blobs, and
 * joining a response from them (the binary tensor data extension).
 */
#include "api_binary.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The wire is little-endian; a big-endian host swaps each float. */
static int host_is_little(void)
{
    const uint32_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

static void swap4(void *data, size_t count)
{
    unsigned char *p = data;
    for (size_t k = 0; k < count; k++, p += 4) {
        unsigned char t = p[0];
        p[0] = p[3], p[3] = t;
        t = p[1];
        p[1] = p[2], p[2] = t;
    }
}

int api_binary_split(const char *value, size_t body_len, int allow_raw,
                     size_t *json_len, api_error *err)
{
    const char *p = value ? value : "";
    while (isspace((unsigned char)*p))
        p++;
    size_t n = 0;
    int digits = 0;
    for (; isdigit((unsigned char)*p); p++, digits++) {
        if (n > (SIZE_MAX - 9) / 10)
            return api_fail(err, 400, "bad_request", API_BINARY_HEADER
                            " '%.32s' is too large", value);
        n = n * 10 + (size_t)(*p - '0');
    }
    while (isspace((unsigned char)*p))
        p++;
    if (!digits || *p)
        return api_fail(err, 400, "bad_request", API_BINARY_HEADER " must be "
                        "a byte count, not '%.32s'", value ? value : "");
    if (n == 0 && allow_raw && body_len > 0) {
        *json_len = 0;
        return 0;
    }
    if (n == 0)
        return api_fail(err, 400, "bad_request", API_BINARY_HEADER " is 0: a "
                        "body without a JSON header (a raw binary request) "
                        "is taken only by /v2 infer");
    if (n > body_len)
        return api_fail(err, 400, "bad_request", API_BINARY_HEADER " is %zu "
                        "but the body has only %zu bytes", n, body_len);
    *json_len = n;
    return 0;
}

void api_binary_reader_init(api_binary_reader *r, const void *data,
                            size_t len)
{
    r->at = data;
    r->left = data ? len : 0;
    r->offset = 0;
}

int api_binary_take_f32(api_binary_reader *r, float *dst, size_t count,
                        const char *where, api_error *err)
{
    if (count > r->left / 4)
        return api_fail(err, 400, "bad_tensor", "%s: needs %zu bytes of "
                        "binary data at offset %zu after the JSON header; "
                        "only %zu are left", where, count * 4, r->offset,
                        r->left);
    memcpy(dst, r->at, count * 4);
    if (!host_is_little())
        swap4(dst, count);
    /* All exponent bits set is NaN or infinity. One pass without an early
     * exit, which the compiler vectorizes; the place only on failure. */
    uint32_t bad = 0;
    for (size_t k = 0; k < count; k++) {
        uint32_t bits;
        memcpy(&bits, &dst[k], 4);
        bad |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u);
    }
    for (size_t k = 0; bad && k < count; k++)
        if (!isfinite(dst[k]))
            return api_fail(err, 400, "bad_tensor", "%s: value %zu of the "
                            "binary data is not a finite number", where, k);
    r->at += count * 4;
    r->left -= count * 4;
    r->offset += count * 4;
    return 0;
}

int api_binary_finish(const api_binary_reader *r, api_error *err)
{
    if (r->left)
        return api_fail(err, 400, "bad_request", "%zu bytes of binary data "
                        "after offset %zu belong to no input (the inputs' "
                        "binary_data_size add up to %zu)", r->left, r->offset,
                        r->offset);
    return 0;
}

char *api_binary_join(const char *header, size_t header_len,
                      const api_blob *blobs, int n_blobs, size_t *total)
{
    size_t size = header_len;
    for (int k = 0; k < n_blobs; k++) {
        if (blobs[k].count > (SIZE_MAX - size) / 4)
            return NULL;
        size += blobs[k].count * 4;
    }
    char *out = malloc(size ? size : 1);
    if (!out)
        return NULL;
    memcpy(out, header, header_len);
    size_t at = header_len;
    for (int k = 0; k < n_blobs; k++) {
        memcpy(out + at, blobs[k].data, blobs[k].count * 4);
        if (!host_is_little())
            swap4(out + at, blobs[k].count);
        at += blobs[k].count * 4;
    }
    *total = size;
    return out;
}
