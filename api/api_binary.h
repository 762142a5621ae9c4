/*
 * api_binary.h — the framing of the binary tensor data extension (the Open
 * Inference Protocol's, as Triton defines it): a body is a JSON header
 * followed by raw tensor bytes, little-endian and row-major, one blob after
 * another in the order the header lists them; the HTTP header
 * Inference-Header-Content-Length gives the JSON header's length. Nothing
 * here knows the protocol's documents: these functions split and join
 * bodies, so any route can offer the same option.
 */
#ifndef API_BINARY_H
#define API_BINARY_H

#include <stddef.h>

#include "api.h"

#define API_BINARY_HEADER "Inference-Header-Content-Length"

/* Reads the Inference-Header-Content-Length value (decimal digits, spaces
 * around allowed) against a body of body_len bytes: the JSON header is the
 * first *json_len bytes, and the blobs are the rest. 0 is the extension's
 * raw binary request (no JSON; the body is the one input's bytes), taken
 * only when allow_raw (the /v2 infer route, a body not empty). Fails with
 * 400 when the value is not a number, is 0 where that is not allowed, or
 * is more than the body. */
int api_binary_split(const char *value, size_t body_len, int allow_raw,
                     size_t *json_len, api_error *err);

/* The blob bytes after the JSON header, consumed in order. */
typedef struct api_binary_reader {
    const unsigned char *at;
    size_t left;
    size_t offset;  /* bytes consumed so far, for messages */
} api_binary_reader;

void api_binary_reader_init(api_binary_reader *r, const void *data,
                            size_t len);
/* Takes the next count float32 values (count * 4 bytes) into dst. where
 * names the tensor in messages. Fails with 400 when fewer bytes are left,
 * or when a value is NaN or infinite (as the JSON reader refuses them). */
int api_binary_take_f32(api_binary_reader *r, float *dst, size_t count,
                        const char *where, api_error *err);
/* Fails with 400 when bytes are left over: every byte after the JSON
 * header must belong to a tensor. */
int api_binary_finish(const api_binary_reader *r, api_error *err);

/* One float32 tensor's data for a response. Borrowed. */
typedef struct api_blob {
    const float *data;
    size_t count;
} api_blob;

/* header (header_len bytes of JSON) then every blob as little-endian
 * float32, in one malloc'd buffer of *total bytes, which the caller owns.
 * NULL when memory fails. */
char *api_binary_join(const char *header, size_t header_len,
                      const api_blob *blobs, int n_blobs, size_t *total);

#endif
