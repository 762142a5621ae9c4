/*
 * api_error.c — HTTP errors with a stable code and a message naming the
 * fault, and their JSON body.
 */
#include "api.h"

#include <stdarg.h>
#include <stdio.h>

int api_fail(api_error *err, int http_status, const char *code,
             const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    err->http_status = http_status;
    snprintf(err->code, sizeof err->code, "%s", code);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

int api_fail_from_nn(api_error *err, const nn_error *e, int in_definition)
{
    switch (e->code) {
    case NN_ERR_SHAPE:
    case NN_ERR_GRAPH:
        return api_fail(err, 422, "graph_invalid", "%s", e->msg);
    case NN_ERR_UNSUPPORTED:
        return api_fail(err, 422, "unsupported", "%s", e->msg);
    case NN_ERR_NOT_FOUND:
        return in_definition ? api_fail(err, 422, "graph_invalid", "%s", e->msg)
                             : api_fail(err, 404, "not_found", "%s", e->msg);
    case NN_ERR_EXISTS:
        return in_definition ? api_fail(err, 422, "graph_invalid", "%s", e->msg)
                             : api_fail(err, 409, "conflict", "%s", e->msg);
    case NN_ERR_LIMIT:
        /* A size the server will not hold (weights, session buffers): the
         * request is too large, not too frequent. */
        return api_fail(err, in_definition ? 422 : 413, "too_large", "%s",
                        e->msg);
    case NN_ERR_NOMEM:
        return api_fail(err, 503, "out_of_memory", "%s", e->msg);
    default:
        return api_fail(err, 400, "bad_request", "%s", e->msg);
    }
}

/* The length of the well-formed UTF-8 sequence at s (RFC 3629: no
 * overlong forms, no surrogates, nothing past U+10FFFF), or 0. */
static int utf8_sequence(const unsigned char *s)
{
    int n;
    unsigned lo = 0x80, hi = 0xBF;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        n = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        n = 3;
        if (s[0] == 0xE0)
            lo = 0xA0;
        else if (s[0] == 0xED)
            hi = 0x9F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        n = 4;
        if (s[0] == 0xF0)
            lo = 0x90;
        else if (s[0] == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    for (int k = 1; k < n; k++, lo = 0x80, hi = 0xBF)
        if (s[k] < lo || s[k] > hi)
            return 0;
    return n;
}

int api_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    for (int n; *p; p += n)
        if ((n = utf8_sequence(p)) == 0)
            return 0;
    return 1;
}

void api_utf8_clean(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        int n = utf8_sequence(p);
        if (n == 0)
            *p++ = '?';
        else
            p += n;
    }
}

cJSON *api_error_json(const api_error *err)
{
    /* A message quotes what the client sent (names, keys, values), cut
     * to a width that may fall inside a character, and cJSON writes
     * bytes as they are: unchecked, the body would not be JSON. */
    char message[sizeof err->message];
    snprintf(message, sizeof message, "%s", err->message);
    api_utf8_clean(message);
    cJSON *root = cJSON_CreateObject();
    cJSON *body = cJSON_AddObjectToObject(root, "error");
    if (!body || !cJSON_AddStringToObject(body, "code", err->code) ||
        !cJSON_AddStringToObject(body, "message", message)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

api_limits api_default_limits(void)
{
    api_limits lim = {1u << 24, 1000, 100000, 4096, 1u << 26, 1u << 26};
    return lim;
}
