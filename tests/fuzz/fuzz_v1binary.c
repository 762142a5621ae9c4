/*
 * fuzz_v1binary.c — a v1 tensor in the binary tensor framing: the input's
 * first two bytes (little-endian) give the JSON header's length, the
 * header follows and the rest is the bytes after it, each in a buffer
 * exactly as long (so a sanitizer sees any read past either). A header
 * that checks is indexed and read as a tensor; what is read is written
 * back in the framing, in small chunks, and read again to the same bits.
 */
#include "api.h"
#include "api_codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads the tensor at 0 of header (len bytes) with blob; NULL when refused
 * (a 4xx, or 503 when memory fails). */
static nn_tensor *read_framed(const char *header, size_t len,
                              const void *blob, size_t blob_len,
                              const api_limits *lim)
{
    size_t at;
    int trailing;
    if (api_json_check(header, len, &at, &trailing))
        return NULL;
    api_json j = {header, len, NULL};
    api_error err;
    api_json_blobs *bin;
    if (api_json_blobs_index(&j, blob, blob_len, &bin, &err)) {
        if (err.http_status != 400 && err.http_status != 503)
            abort();
        return NULL;
    }
    nn_tensor *t = NULL;
    if (api_json_tensor_bin(&j, bin, 0, "t", lim, 1, &t, &err)) {
        if (err.http_status < 400 || t)
            abort();
        t = NULL;
    }
    api_json_blobs_free(bin);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t len = (size_t)data[0] | (size_t)data[1] << 8;
    if (len > size - 2)
        len = size - 2;
    char *header = malloc(len ? len : 1);
    size_t blob_len = size - 2 - len;
    unsigned char *blob = malloc(blob_len ? blob_len : 1);
    if (!header || !blob) {
        free(header);
        free(blob);
        return 0;
    }
    memcpy(header, data + 2, len);
    memcpy(blob, data + 2 + len, blob_len);
    api_limits lim = api_default_limits();
    lim.max_tensor_elems = 1u << 16;
    nn_tensor *t = read_framed(header, len, blob, blob_len, &lim);
    if (t) {
        api_enc *e = api_enc_new();
        nn_tensor *dup = e ? nn_tensor_new(&t->shape) : NULL;
        size_t header_len, total;
        if (dup) {
            memcpy(dup->data, t->data, nn_tensor_numel(t) * sizeof(float));
            api_enc_tensor(e, dup);
        }
        if (dup && api_enc_binary(e, &header_len, &total) == 0) {
            char *back = malloc(total);
            size_t got = 0, n;
            while (back && (n = api_enc_next(e, back + got, 7)) > 0)
                got += n;
            if (back && got != total)
                abort();
            nn_tensor *again = back ? read_framed(back, header_len,
                                                  back + header_len,
                                                  total - header_len, &lim)
                                    : NULL;
            if (back && (!again || !nn_shape_equal(&t->shape, &again->shape) ||
                         memcmp(t->data, again->data,
                                nn_tensor_numel(t) * sizeof(float)) != 0))
                abort();
            nn_tensor_free(again);
            free(back);
        }
        api_enc_free(e);
        nn_tensor_free(t);
    }
    free(header);
    free(blob);
    return 0;
}
