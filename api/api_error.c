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

cJSON *api_error_json(const api_error *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *body = cJSON_AddObjectToObject(root, "error");
    if (!body || !cJSON_AddStringToObject(body, "code", err->code) ||
        !cJSON_AddStringToObject(body, "message", err->message)) {
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
