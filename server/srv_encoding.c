/*
 * srv_encoding.c — gzip and deflate request bodies, through zlib.
 */
#include "srv_encoding.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

enum { IDENTITY, GZIP, DEFLATE, UNKNOWN };

static int coding_of(const char *encoding)
{
    static const char *const names[] = {"identity", "gzip", "deflate"};
    while (isspace((unsigned char)*encoding))
        encoding++;
    for (int k = 0; k < 3; k++) {
        size_t n = strlen(names[k]);
        if (strncasecmp(encoding, names[k], n) == 0 &&
            (encoding[n] == '\0' || encoding[n] == ';' ||
             isspace((unsigned char)encoding[n])))
            return k;
    }
    return UNKNOWN;
}

int srv_encoding_supported(const char *encoding)
{
    return !encoding || coding_of(encoding) != UNKNOWN;
}

enum { INFLATED, BROKEN, PAST_MAX, NO_MEMORY };

/* Inflates in into a new buffer of at most max bytes; window_bits as
 * zlib's inflateInit2 takes them. Returns INFLATED, BROKEN (not a stream
 * of that kind, corrupt, truncated or followed by other bytes), PAST_MAX
 * or NO_MEMORY. */
static int inflate_all(const char *in, size_t len, int window_bits,
                       size_t max, char **out, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, window_bits) != Z_OK)
        return NO_MEMORY;
    size_t cap = len * 4 + 1024 < max + 1 ? len * 4 + 1024 : max + 1;
    char *buf = malloc(cap + 1);
    if (!buf) {
        inflateEnd(&z);
        return NO_MEMORY;
    }
    size_t fed = 0, have = 0;
    int result = BROKEN;
    for (;;) {
        if (have == cap) {
            if (cap > max) {
                result = PAST_MAX;
                break;
            }
            size_t grown = cap * 2 < max + 1 ? cap * 2 : max + 1;
            char *p = realloc(buf, grown + 1);
            if (!p) {
                result = NO_MEMORY;
                break;
            }
            buf = p;
            cap = grown;
        }
        /* zlib counts in uInt: feed and drain in pieces. */
        uInt in_piece = (uInt)(len - fed < 1u << 30 ? len - fed : 1u << 30);
        uInt out_piece = (uInt)(cap - have < 1u << 30 ? cap - have : 1u << 30);
        z.next_in = (Bytef *)in + fed;
        z.avail_in = in_piece;
        z.next_out = (Bytef *)buf + have;
        z.avail_out = out_piece;
        int rc = inflate(&z, Z_NO_FLUSH);
        fed += in_piece - z.avail_in;
        have += out_piece - z.avail_out;
        if (rc == Z_STREAM_END) {
            /* Bytes after the stream are not part of it. */
            result = fed == len ? (have > max ? PAST_MAX : INFLATED) : BROKEN;
            break;
        }
        if (rc == Z_BUF_ERROR && fed == len && have < cap)
            break; /* the input ended before the stream */
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            break;
    }
    inflateEnd(&z);
    if (result != INFLATED) {
        free(buf);
        return result;
    }
    buf[have] = '\0';
    *out = buf;
    *out_len = have;
    return INFLATED;
}

int srv_decode_body(const char *encoding, char **body, size_t *len,
                    size_t max, api_error *err)
{
    int coding = encoding ? coding_of(encoding) : IDENTITY;
    if (coding == IDENTITY)
        return 0;
    if (coding == UNKNOWN)
        return api_fail(err, 415, "unsupported_media", "Content-Encoding "
                        "'%.32s' is not supported (gzip, deflate, identity)",
                        encoding);
    char *out = NULL;
    size_t out_len = 0;
    int rc = inflate_all(*body, *len, coding == GZIP ? 15 + 16 : 15, max, &out,
                         &out_len);
    if (rc == BROKEN && coding == DEFLATE)
        rc = inflate_all(*body, *len, -15, max, &out, &out_len);
    if (rc == PAST_MAX)
        return api_fail(err, 413, "too_large", "the body decompresses to "
                        "more than the limit of %zu bytes", max);
    if (rc == NO_MEMORY)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    if (rc != INFLATED)
        return api_fail(err, 400, "bad_request", "the body is not a valid "
                        "%s stream", coding == GZIP ? "gzip" : "deflate");
    free(*body);
    *body = out;
    *len = out_len;
    return 0;
}

/* The q of one element of Accept-Encoding ("gzip;q=0.5"): 1 without. */
static double element_q(const char *element)
{
    const char *semi = strchr(element, ';');
    const char *v = semi ? strstr(semi, "q=") : NULL;
    return v ? strtod(v + 2, NULL) : 1.0;
}

const char *srv_encoding_pick(const char *accept)
{
    /* Each coding's q, -1 while not named; "*" stands for the others. */
    double q_gzip = -1, q_deflate = -1, q_any = -1;
    for (const char *p = accept; p && *p;) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        /* Read up to its comma only: "gzip, deflate" names gzip. */
        size_t n = strcspn(p, ",");
        char element[64];
        if (n > 0 && n < sizeof element) {
            memcpy(element, p, n);
            element[n] = '\0';
            double q = element_q(element);
            int coding = coding_of(element);
            if (coding == GZIP)
                q_gzip = q;
            else if (coding == DEFLATE)
                q_deflate = q;
            else if (element[0] == '*' &&
                     (element[1] == '\0' || element[1] == ';' ||
                      isspace((unsigned char)element[1])))
                q_any = q;
        }
        p += n;
    }
    double gzip = q_gzip >= 0 ? q_gzip : q_any > 0 ? q_any : 0;
    double deflate = q_deflate >= 0 ? q_deflate : q_any > 0 ? q_any : 0;
    /* The higher q; gzip on a tie, as most servers prefer it. */
    if (gzip > 0 && gzip >= deflate)
        return "gzip";
    return deflate > 0 ? "deflate" : NULL;
}

int srv_encode_body(const char *coding, char **body, size_t *len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    int gzip = strcmp(coding, "gzip") == 0;
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, gzip ? 15 + 16 : 15,
                     8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t cap = deflateBound(&z, (uLong)*len) + 32;
    char *out = malloc(cap);
    if (!out) {
        deflateEnd(&z);
        return -1;
    }
    size_t fed = 0, have = 0;
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
        uInt in_piece = (uInt)(*len - fed < 1u << 30 ? *len - fed : 1u << 30);
        uInt out_piece = (uInt)(cap - have < 1u << 30 ? cap - have : 1u << 30);
        z.next_in = (Bytef *)*body + fed;
        z.avail_in = in_piece;
        z.next_out = (Bytef *)out + have;
        z.avail_out = out_piece;
        rc = deflate(&z, fed + in_piece == *len ? Z_FINISH : Z_NO_FLUSH);
        fed += in_piece - z.avail_in;
        have += out_piece - z.avail_out;
        int moved = z.avail_in != in_piece || z.avail_out != out_piece;
        if (rc != Z_STREAM_END &&
            ((rc != Z_OK && rc != Z_BUF_ERROR) || !moved || have == cap))
            break; /* deflateBound promises room enough */
    }
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(out);
        return -1;
    }
    free(*body);
    *body = out;
    *len = have;
    return 0;
}
