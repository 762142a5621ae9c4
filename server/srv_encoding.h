/*
 * srv_encoding.h — request bodies sent compressed (Content-Encoding gzip
 * or deflate, as tritonclient's request_compression_algorithm sends them).
 */
#ifndef SRV_ENCODING_H
#define SRV_ENCODING_H

#include <stddef.h>

#include "api.h"

/* Whether a Content-Encoding value names a coding the daemon reads:
 * identity, gzip, deflate (any case, parameters ignored). */
int srv_encoding_supported(const char *encoding);

/* Replaces *body (len bytes, malloc'd) by its decoding for a supported,
 * non-identity encoding; "deflate" is read as the zlib stream HTTP means,
 * or as a raw deflate stream. The decoding may be at most max bytes (413
 * past it: a small body must not expand without bound); a corrupt or
 * truncated stream is 400. On success the old buffer is freed and *body
 * is the new one (malloc'd, NUL-terminated, owned by the caller); on
 * failure *body is left as it was. identity: nothing to do. */
int srv_decode_body(const char *encoding, char **body, size_t *len,
                    size_t max, api_error *err);

/* The coding to answer in for an Accept-Encoding value: "gzip" or
 * "deflate", the one of higher q ("*" standing for those not named; q=0
 * refuses), gzip on a tie; NULL (identity) when neither is accepted. */
const char *srv_encoding_pick(const char *accept);

/* Compresses *body (len bytes, malloc'd) with coding ("gzip", or
 * "deflate": a zlib stream, as HTTP means it). On success the old buffer
 * is freed and *body, *len are the compressed ones; -1 (memory) leaves
 * them as they were. */
int srv_encode_body(const char *coding, char **body, size_t *len);

#endif
