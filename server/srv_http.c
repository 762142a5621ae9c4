/*
 * srv_http.c — libmicrohttpd glue: collects a request body within the size
 * limit, matches the route table, parses JSON, calls the handler, sends its
 * reply, and counts and logs the request.
 */
#include "srv_http.h"
#include "srv_auth.h"
#include "srv_metrics.h"
#include "srv_routes.h"
#include "api_codec.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Deeper JSON than this is refused before parsing: no client document
 * needs it, and it bounds the parser's recursion. */
#define MAX_JSON_DEPTH 64

/* Bytes a streamed reply is produced in at a time. */
#define STREAM_BLOCK (64 * 1024)

typedef struct conn_state {
    double start;
    int route;            /* index in srv_routes, or -1 */
    char *body;
    size_t len, cap;
    int too_large;
    int challenge;        /* answer with WWW-Authenticate */
} conn_state;

static const srv_config *config;
static nn_registry *registry;
static srv_persist *persistence;
static const srv_auth *keys;

void srv_http_init(const srv_config *cfg, nn_registry *reg,
                   srv_persist *persist, const srv_auth *auth)
{
    config = cfg;
    registry = reg;
    persistence = persist;
    keys = auth;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------- replies */

static void drop_stream(srv_request *req)
{
    if (req->stream && req->stream_free)
        req->stream_free(req->stream_cls);
    req->stream = NULL;
    req->stream_cls = NULL;
    req->stream_free = NULL;
}

void srv_reply_stream(srv_request *req, int status, const char *content_type,
                      ssize_t (*reader)(void *cls, uint64_t pos, char *buf,
                                     size_t max),
                      void *cls, void (*free_fn)(void *cls))
{
    free(req->body);
    req->body = NULL;
    req->body_len = 0;
    drop_stream(req);
    req->status = status;
    req->content_type = content_type;
    req->stream = reader;
    req->stream_cls = cls;
    req->stream_free = free_fn;
}

void srv_reply_text(srv_request *req, int status, const char *content_type,
                    char *text)
{
    drop_stream(req);
    free(req->body);
    req->status = status;
    req->body = text;
    req->body_len = text ? strlen(text) : 0;
    req->content_type = content_type;
}

void srv_reply_json(srv_request *req, int status, cJSON *j)
{
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!text) {
        /* cJSON fails only when memory does. */
        srv_reply_text(req, 503, "application/json",
                       strdup("{\"error\":{\"code\":\"out_of_memory\","
                              "\"message\":\"out of memory\"}}"));
        return;
    }
    srv_reply_text(req, status, "application/json", text);
}

void srv_reply_error(srv_request *req, const api_error *err)
{
    srv_reply_json(req, err->http_status, api_error_json(err));
}

void srv_reply_fail(srv_request *req, int status, const char *code,
                    const char *fmt, ...)
{
    api_error err;
    va_list ap;
    va_start(ap, fmt);
    err.http_status = status;
    snprintf(err.code, sizeof err.code, "%s", code);
    vsnprintf(err.message, sizeof err.message, fmt, ap);
    va_end(ap);
    srv_reply_error(req, &err);
}

/* ------------------------------------------------------------- routing */

/* Matches path against pattern; captures {..} segments into params. */
static int match(const char *pattern, const char *path, char params[2][96])
{
    int n_params = 0;
    while (*pattern && *path) {
        if (*pattern != '/' || *path != '/')
            return 0;
        pattern++, path++;
        size_t plen = strcspn(pattern, "/"), slen = strcspn(path, "/");
        if (pattern[0] == '{') {
            if (slen == 0 || slen >= 96 || n_params == 2)
                return 0;
            memcpy(params[n_params], path, slen);
            params[n_params++][slen] = '\0';
        } else if (plen != slen || strncmp(pattern, path, plen) != 0) {
            return 0;
        }
        pattern += plen, path += slen;
    }
    return *pattern == '\0' && *path == '\0';
}

static int find_route(const char *method, const char *path, char params[2][96],
                      char *allow, size_t allow_size)
{
    char scratch[2][96];
    allow[0] = '\0';
    for (int i = 0; srv_routes[i].method; i++) {
        if (!match(srv_routes[i].pattern, path, scratch))
            continue;
        if (strcmp(srv_routes[i].method, method) == 0) {
            memcpy(params, scratch, sizeof scratch);
            return i;
        }
        size_t len = strlen(allow);
        snprintf(allow + len, allow_size - len, "%s%s", len ? ", " : "",
                 srv_routes[i].method);
    }
    return -1;
}

/* ---------------------------------------------------------------- bodies */

static int is_json_type(const char *type)
{
    if (!type)
        return 0;
    while (isspace((unsigned char)*type))
        type++;
    size_t n = strlen("application/json");
    return strncasecmp(type, "application/json", n) == 0 &&
           (type[n] == '\0' || type[n] == ';' || isspace((unsigned char)type[n]));
}

/* The deepest nesting of arrays and objects, outside strings. */
static int json_depth(const char *s, size_t len)
{
    int depth = 0, deepest = 0, in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > deepest)
                deepest = depth;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return deepest;
}

static int append(conn_state *st, const char *data, size_t size)
{
    if (st->too_large || st->len + size > config->max_body) {
        st->too_large = 1;
        return 0;
    }
    if (st->len + size + 1 > st->cap) {
        size_t cap = st->cap ? st->cap : 4096;
        while (cap < st->len + size + 1)
            cap *= 2;
        char *p = realloc(st->body, cap);
        if (!p) {
            st->too_large = 1;
            return 0;
        }
        st->body = p;
        st->cap = cap;
    }
    memcpy(st->body + st->len, data, size);
    st->len += size;
    st->body[st->len] = '\0';
    return 1;
}

/* -------------------------------------------------------------- dispatch */

static enum MHD_Result send_reply(struct MHD_Connection *conn,
                                  conn_state *st, srv_request *req,
                                  const char *allow)
{
    struct MHD_Response *resp;
    if (req->stream) {
        /* MHD calls stream_free when done with the response, also when
         * the client goes away mid-stream. */
        resp = MHD_create_response_from_callback(
            MHD_SIZE_UNKNOWN, STREAM_BLOCK, req->stream, req->stream_cls,
            req->stream_free);
        if (!resp) {
            drop_stream(req);
            return MHD_NO;
        }
        req->stream = NULL;
    } else {
        resp = MHD_create_response_from_buffer(
            req->body_len, req->body ? req->body : (char *)"",
            req->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!resp) {
            free(req->body);
            return MHD_NO;
        }
        req->body = NULL; /* the response owns it now */
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            req->content_type ? req->content_type
                                              : "application/json");
    if (allow && allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (st->challenge)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"nerved\"");
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)req->status, resp);
    MHD_destroy_response(resp);
    double seconds = now_seconds() - st->start;
    srv_metrics_request(st->route, req->status, seconds);
    if (!config->quiet)
        fprintf(stderr, "method=%s path=%s status=%d duration_ms=%.3f\n",
                req->method, req->path, req->status, seconds * 1e3);
    return rc;
}

static void init_request(srv_request *req, const char *method,
                         const char *path)
{
    memset(req, 0, sizeof *req);
    req->method = method;
    req->path = path;
    req->cfg = config;
    req->reg = registry;
    req->persist = persistence;
}

static enum MHD_Result answer_now(struct MHD_Connection *conn, conn_state *st,
                                  const char *method, const char *path,
                                  int status, const char *code,
                                  const char *allow, const char *fmt, ...)
{
    srv_request req;
    init_request(&req, method, path);
    api_error err;
    va_list ap;
    va_start(ap, fmt);
    err.http_status = status;
    snprintf(err.code, sizeof err.code, "%s", code);
    vsnprintf(err.message, sizeof err.message, fmt, ap);
    va_end(ap);
    srv_reply_error(&req, &err);
    return send_reply(conn, st, &req, allow);
}

enum MHD_Result srv_http_handle(void *cls, struct MHD_Connection *conn,
                                const char *url, const char *method,
                                const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls)
{
    (void)cls, (void)version;
    conn_state *st = *con_cls;
    char params[2][96] = {"", ""}, allow[64];
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st)
            return MHD_NO;
        st->start = now_seconds();
        st->route = find_route(method, url, params, allow, sizeof allow);
        *con_cls = st;
        /* Before anything else: without a key, not even which routes
         * exist is told. */
        if (keys && !srv_auth_exempt(method, url) &&
            !srv_auth_check(keys, MHD_lookup_connection_value(
                                      conn, MHD_HEADER_KIND,
                                      MHD_HTTP_HEADER_AUTHORIZATION))) {
            st->challenge = 1;
            return answer_now(conn, st, method, url, 401, "unauthorized",
                              NULL, "this server needs 'Authorization: "
                              "Bearer <key>' with one of its keys");
        }
        if (st->route < 0) {
            if (allow[0])
                return answer_now(conn, st, method, url, 405,
                                  "method_not_allowed", allow, "%s is not "
                                  "allowed on %s (allowed: %s)", method, url,
                                  allow);
            return answer_now(conn, st, method, url, 404, "not_found",
                              NULL, "no route %s %s", method, url);
        }
        const char *length = MHD_lookup_connection_value(
            conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (length && strtoull(length, NULL, 10) > config->max_body)
            return answer_now(conn, st, method, url, 413, "too_large", NULL,
                              "the body is %s bytes; the limit is %zu", length,
                              config->max_body);
        int has_body = (length && strtoull(length, NULL, 10) > 0) ||
                       MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                   "Transfer-Encoding");
        const char *type = MHD_lookup_connection_value(
            conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (has_body && !is_json_type(type))
            return answer_now(conn, st, method, url, 415, "unsupported_media",
                              NULL, "the body must be application/json, not "
                              "'%.64s'", type ? type : "(none)");
        return MHD_YES;
    }
    if (*upload_data_size) {
        append(st, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }

    /* The whole body is here. */
    const srv_route *route = &srv_routes[st->route];
    find_route(method, url, params, allow, sizeof allow);
    if (st->too_large)
        return answer_now(conn, st, method, url, 413, "too_large", NULL,
                          "the body exceeds the limit of %zu bytes",
                          config->max_body);
    srv_request req;
    init_request(&req, method, url);
    memcpy(req.params, params, sizeof params);
    req.query_format = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND,
                                                   "format");
    cJSON *json = NULL;
    if (st->len > 0 && !(route->flags & (SRV_BODY_REQUIRED | SRV_BODY_OPTIONAL)))
        return answer_now(conn, st, method, url, 400, "bad_request", NULL,
                          "%s %s takes no body", method, route->pattern);
    if (st->len == 0 && (route->flags & SRV_BODY_REQUIRED))
        return answer_now(conn, st, method, url, 400, "bad_request", NULL,
                          "%s %s needs a JSON body", method, route->pattern);
    if (st->len > 0) {
        if (json_depth(st->body, st->len) > MAX_JSON_DEPTH)
            return answer_now(conn, st, method, url, 400, "bad_json", NULL,
                              "JSON nested deeper than %d levels",
                              MAX_JSON_DEPTH);
        req.raw = st->body;
        req.raw_len = st->len;
    }
    if (st->len > 0 && (route->flags & SRV_BODY_RAW)) {
        size_t at;
        int trailing;
        if (api_json_check(st->body, st->len, &at, &trailing))
            return answer_now(conn, st, method, url, 400, "bad_json", NULL,
                              trailing ? "unexpected text after the JSON "
                                         "document at byte %zu"
                                       : "malformed JSON at byte %zu", at);
    } else if (st->len > 0) {
        const char *end = NULL;
        json = cJSON_ParseWithLengthOpts(st->body, st->len, &end, 0);
        if (!json) {
            size_t at = end ? (size_t)(end - st->body) : 0;
            return answer_now(conn, st, method, url, 400, "bad_json", NULL,
                              "malformed JSON at byte %zu", at);
        }
        const char *rest = end;
        while (rest && rest < st->body + st->len &&
               isspace((unsigned char)*rest))
            rest++;
        if (rest && rest < st->body + st->len) {
            cJSON_Delete(json);
            return answer_now(conn, st, method, url, 400, "bad_json", NULL,
                              "unexpected text after the JSON document at "
                              "byte %zu", (size_t)(rest - st->body));
        }
    }
    req.json = json;
    route->handler(&req);
    cJSON_Delete(json);
    if (!req.status)
        srv_reply_fail(&req, 500, "internal", "the handler gave no reply");
    return send_reply(conn, st, &req, NULL);
}

void srv_http_completed(void *cls, struct MHD_Connection *conn,
                        void **con_cls, enum MHD_RequestTerminationCode code)
{
    (void)cls, (void)conn, (void)code;
    conn_state *st = *con_cls;
    if (st) {
        free(st->body);
        free(st);
        *con_cls = NULL;
    }
}
