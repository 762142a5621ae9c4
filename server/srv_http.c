/*
 * srv_http.c — libmicrohttpd glue: collects a request body within the size
 * limit and the memory budget (or, for routes that read its text, reads
 * it as it arrives: api_jsondoc), matches the route table, resolves what
 * the route's row asks for, and either answers on the spot (SRV_INLINE) or
 * suspends the connection and hands the request to the compute scheduler,
 * resuming it when the answer is ready. It counts and logs every request,
 * and closes connections that take longer than --read-timeout to send one.
 */
#define _GNU_SOURCE /* SRV_SHORT_LOCK */
#include "srv_http.h"
#include "api_binary.h"
#include "api_kserve.h"
#include "srv_auth.h"
#include "srv_budget.h"
#include "srv_encoding.h"
#include "srv_metrics.h"
#include "srv_routes.h"
#include "srv_sched.h"
#include "srv_store.h"
#include "api_codec.h"

#include <ctype.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

/* Deeper JSON than this is refused before parsing: no client document
 * needs it, and it bounds the parser's recursion. */
#define MAX_JSON_DEPTH 64
/* Bodies up to this size are parsed on the HTTP thread (dispatch). */
#define SMALL_BODY 65536

/* Bytes a streamed reply is produced in at a time: chunked (the pool
 * bounds it further), and with a known length. */
#define STREAM_BLOCK (64 * 1024)
#define SIZED_STREAM_BLOCK (256 * 1024)
/* A refusal decided from the headers waits for a declared body of up to
 * 4 x --max-body or this, whichever is larger (see refuse()). */
#define DRAIN_FLOOR ((size_t)64 << 20)

/* What MHD keeps per connection (its socket context): enough to enforce
 * the read deadline from the reaper, which cannot reach MHD's own state. */
typedef struct conn_track {
    int fd;
    double since;         /* when the request being received began */
    int receiving;        /* a request is being received */
    struct conn_track *prev, *next;
} conn_track;

/* What MHD keeps per request. */
typedef struct conn_state {
    double start;
    int route;            /* index in srv_routes, or -1 */
    char params[2][96];   /* the route's {net} and {sid}, as matched */
    char *body;
    size_t len, cap;      /* len counts the body's bytes, also with doc */
    api_jsondoc *doc;     /* SRV_BODY_RAW: the body read as it arrives, in
                             place of body */
    int too_large;
    int no_memory;        /* the body did not fit the memory budget */
    int challenge;        /* answer with WWW-Authenticate */
    int close;            /* close the connection after the reply */
    int key;              /* the caller's API key index, or -1 */
    int refusing;         /* 1: refusal waits for the body; 2: it is sent */
    size_t drained;       /* body bytes dropped while refusing */
    api_error refusal;
    char refusal_allow[64];
    struct MHD_Connection *conn;
    srv_job job;          /* once the whole body is here */
    int submitted;        /* the job is the scheduler's, or answered */
    atomic_int answered;  /* the job's reply is ready */
    /* srv_request_send_now: the reply went out while the job still ran;
     * over(over_cls) marks the job's end. The request is freed by the
     * last of the connection and the job (holders). */
    int early;
    void (*over)(void *cls);
    void *over_cls;
    atomic_int holders;
} conn_state;

static const srv_config *config;
static nn_registry *registry;
static srv_persist *persistence;
static const srv_auth *keys;
static pthread_mutex_t tracks_lock = SRV_SHORT_LOCK;
static conn_track *tracks;
static int n_tracks; /* open connections, for /metrics */

void srv_http_init(const srv_config *cfg, nn_registry *reg,
                   srv_persist *persist, const srv_auth *auth)
{
    config = cfg;
    registry = reg;
    persistence = persist;
    keys = auth;
}

static double now_seconds(void) { return srv_now(); }

/* ------------------------------------------------------------- replies */

/* The Open Inference Protocol's routes, whose errors have its shape. */
static int is_v2_path(const char *path)
{
    return path && strncmp(path, "/v2", 3) == 0 &&
           (path[3] == '\0' || path[3] == '/');
}

void srv_reply_bytes(srv_request *req, int status, const char *content_type,
                     char *data, size_t len)
{
    free(req->body);
    req->status = status;
    req->body = data;
    req->body_len = data ? len : 0;
    req->content_type = content_type;
}

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
    srv_reply_stream_sized(req, status, content_type, SRV_UNSIZED, reader,
                           cls, free_fn);
}

void srv_reply_stream_sized(srv_request *req, int status,
                            const char *content_type, uint64_t size,
                            ssize_t (*reader)(void *cls, uint64_t pos,
                                              char *buf, size_t max),
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
    req->stream_size = size;
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
                       strdup(is_v2_path(req->path)
                                  ? "{\"error\":\"out of memory\"}"
                                  : "{\"error\":{\"code\":\"out_of_memory\","
                                    "\"message\":\"out of memory\"}}"));
        return;
    }
    srv_reply_text(req, status, "application/json", text);
}

/* Whatever produced the error (a handler, or this file before any handler
 * ran), /v2 answers {"error": "<message>"} as the protocol requires and
 * its clients parse; the rest of the API {"error": {"code", "message"}}.
 * The status is the same for both. */
void srv_reply_error(srv_request *req, const api_error *err)
{
    srv_reply_json(req, err->http_status,
                   is_v2_path(req->path) ? api_kserve_error(err->message)
                                         : api_error_json(err));
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

/* HEAD runs a route's GET row: the handler answers as for GET and
 * libmicrohttpd sends the headers (Content-Length included) without the
 * body. */
static int method_matches(const char *row, const char *method)
{
    return strcmp(row, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(row, "GET") == 0);
}

static int find_route(const char *method, const char *path, char params[2][96],
                      char *allow, size_t allow_size)
{
    char scratch[2][96] = {"", ""};
    allow[0] = '\0';
    for (int i = 0; srv_routes[i].method; i++) {
        if (!match(srv_routes[i].pattern, path, scratch))
            continue;
        if (method_matches(srv_routes[i].method, method)) {
            memcpy(params, scratch, sizeof scratch);
            return i;
        }
        size_t len = strlen(allow);
        snprintf(allow + len, allow_size - len, "%s%s%s", len ? ", " : "",
                 srv_routes[i].method,
                 strcmp(srv_routes[i].method, "GET") == 0 ? ", HEAD" : "");
    }
    return -1;
}

/* ---------------------------------------------------------------- bodies */

/* Whether a Content-Type names want, parameters aside. */
static int is_type(const char *type, const char *want)
{
    if (!type)
        return 0;
    while (isspace((unsigned char)*type))
        type++;
    size_t n = strlen(want);
    return strncasecmp(type, want, n) == 0 &&
           (type[n] == '\0' || type[n] == ';' || isspace((unsigned char)type[n]));
}

static int is_json_type(const char *type)
{
    return is_type(type, "application/json");
}

/* Whether a body's declared type (and encoding) can be read here; if not,
 * fills err with a 415. JSON is always read. /v2 also reads a body
 * without Content-Type, as Triton and KServe do and as tritonclient sends
 * it, and application/octet-stream when Inference-Header-Content-Length
 * announces the binary tensor framing (the extension's own example). On
 * /v2 octet-stream without that header is read as JSON: tritonclient's
 * asyncio client posts its JSON-only requests as bytes, which aiohttp
 * labels application/octet-stream. */
static int body_readable(struct MHD_Connection *conn, const char *path,
                         api_error *err)
{
    const char *type = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *framed = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     API_BINARY_HEADER);
    const char *encoding = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
    if (!srv_encoding_supported(encoding))
        return api_fail(err, 415, "unsupported_media", "Content-Encoding "
                        "'%.32s' is not supported (gzip, deflate, identity)",
                        encoding);
    if (is_json_type(type))
        return 0;
    if (is_v2_path(path) && !type)
        return 0;
    /* On any route: one that takes no binary tensors refuses the header
     * with 400 (unpack_body). */
    if (framed && is_type(type, "application/octet-stream"))
        return 0;
    if (is_v2_path(path) && is_type(type, "application/octet-stream"))
        return 0;
    if (is_v2_path(path))
        return api_fail(err, 415, "unsupported_media", "the body must be "
                        "application/json, application/octet-stream or none, "
                        "not '%.64s'",
                        type ? type : "(none)");
    return api_fail(err, 415, "unsupported_media", "the body must be "
                    "application/json (or application/octet-stream with "
                    API_BINARY_HEADER "), not '%.64s'", type ? type : "(none)");
}

/* The largest body route takes: --max-body unless its row says. */
static size_t route_body_limit(const srv_route *route)
{
    return route->max_body ? route->max_body(config) : config->max_body;
}

/* The whole body is here. A compressed body becomes what it decompresses
 * to (Inference-Header-Content-Length counts decoded bytes, as in Triton),
 * at most the route's body limit. With Inference-Header-Content-Length, on a
 * route that takes the binary tensor extension, the JSON is the body's
 * first *json_len bytes and the rest goes to the handler as req->blob;
 * otherwise the JSON is all of it. *body may be replaced by another
 * malloc'd buffer of *len bytes. Returns 0, or -1 with err filled. */
static int unpack_body(struct MHD_Connection *conn, const srv_route *route,
                       char **body, size_t *len, srv_request *req,
                       size_t *json_len, api_error *err)
{
    if (srv_decode_body(MHD_lookup_connection_value(
                            conn, MHD_HEADER_KIND,
                            MHD_HTTP_HEADER_CONTENT_ENCODING),
                        body, len, route_body_limit(route), err))
        return -1;
    *json_len = *len;
    const char *framed = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     API_BINARY_HEADER);
    if (!framed)
        return 0;
    if (!(route->flags & SRV_BODY_BINARY))
        return api_fail(err, 400, "bad_request", "%s %s does not take binary "
                        "tensor data (" API_BINARY_HEADER ")", req->method,
                        route->pattern);
    if (api_binary_split(framed, *len, is_v2_path(req->path), json_len, err))
        return -1;
    /* 0: the extension's raw binary request, no JSON at all (the infer
     * handler checks the model). */
    req->raw_binary = *json_len == 0;
    req->blob = *body + *json_len;
    req->blob_len = *len - *json_len;
    return 0;
}

/* Whether a Content-Length header other than the first (first) has
 * another value. */
typedef struct length_scan {
    const char *first;
    int differ;
} length_scan;

static enum MHD_Result scan_length(void *arg, enum MHD_ValueKind kind,
                                   const char *key, const char *value)
{
    (void)kind;
    length_scan *scan = arg;
    if (key && strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0 &&
        value && strcmp(value, scan->first) != 0)
        scan->differ = 1;
    return MHD_YES;
}

static int lengths_differ(struct MHD_Connection *conn, const char *first)
{
    length_scan scan = {first, 0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_length, &scan);
    return scan.differ;
}

/* The deepest nesting of arrays and objects, outside strings, and about
 * how many values the text holds (one more than its commas and brackets
 * outside strings, an upper bound). */
static int json_depth(const char *s, size_t len, size_t *values)
{
    int depth = 0, deepest = 0, in_string = 0;
    size_t separators = 0;
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
            separators++;
            if (++depth > deepest)
                deepest = depth;
        } else if (c == ']' || c == '}') {
            depth--;
        } else if (c == ',') {
            separators++;
        }
    }
    *values = separators + 1;
    return deepest;
}

/* What cJSON takes for a value: its node and the allocator's header. The
 * text of strings and keys is counted by the body's length. */
#define TREE_BYTES_PER_VALUE (sizeof(cJSON) + 16)

/* The largest body the route at index route (-1: none matched) takes. */
static size_t body_limit(int route)
{
    return route >= 0 ? route_body_limit(&srv_routes[route]) : config->max_body;
}

static int append(conn_state *st, const char *data, size_t size)
{
    if (st->no_memory)
        return 0;
    if (st->too_large || st->len + size > body_limit(st->route)) {
        st->too_large = 1;
        return 0;
    }
    if (st->doc) {
        /* Read as it comes: what is kept is charged as it grows. */
        st->len += size;
        if (api_jsondoc_feed(st->doc, data, size))
            st->no_memory = 1;
        return !st->no_memory;
    }
    if (st->len + size + 1 > st->cap) {
        size_t cap = st->cap ? st->cap : 4096;
        while (cap < st->len + size + 1)
            cap *= 2;
        /* The body counts against the daemon's memory before it grows. */
        if (srv_budget_charge(cap - st->cap)) {
            st->no_memory = 1;
            return 0;
        }
        char *p = realloc(st->body, cap);
        if (!p) {
            srv_budget_release(cap - st->cap);
            st->no_memory = 1;
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

/* ------------------------------------------------------------ logging */

/* Writes v as a logfmt value: bare when it is plain, else quoted with
 * quotes, backslashes and control characters escaped, so that a path of a
 * client's choosing can never start a line or a key of its own. */
static void logfmt_value(FILE *out, const char *v)
{
    int plain = *v != '\0';
    for (const char *p = v; *p && plain; p++)
        plain = (unsigned char)*p > ' ' && *p != '"' && *p != '=' &&
                *p != '\\' && (unsigned char)*p < 0x7f;
    if (plain) {
        fputs(v, out);
        return;
    }
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", out);
        else if (*p == '\r')
            fputs("\\r", out);
        else if (*p == '\t')
            fputs("\\t", out);
        else if (*p < ' ' || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void log_request(const srv_request *req, double seconds)
{
    /* One record per line, written whole. */
    flockfile(stderr);
    fputs("method=", stderr);
    logfmt_value(stderr, req->method);
    fputs(" path=", stderr);
    logfmt_value(stderr, req->path);
    fprintf(stderr, " status=%d duration_ms=%.3f\n", req->status,
            seconds * 1e3);
    funlockfile(stderr);
}

/* -------------------------------------------------------------- dispatch */

static enum MHD_Result send_reply(struct MHD_Connection *conn,
                                  conn_state *st, srv_request *req,
                                  const char *allow)
{
    struct MHD_Response *resp;
    if (req->stream) {
        /* MHD calls stream_free when done with the response, also when
         * the client goes away mid-stream. Chunked, MHD makes each piece
         * in the connection's pool (8 KiB at most); with a length it reads
         * into the response's own buffer of block_size and sends from
         * there, with a quarter of the sends. */
        int sized = req->stream_size != SRV_UNSIZED;
        resp = MHD_create_response_from_callback(
            sized ? req->stream_size : MHD_SIZE_UNKNOWN,
            sized ? SIZED_STREAM_BLOCK : STREAM_BLOCK, req->stream,
            req->stream_cls, req->stream_free);
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
            req->body = NULL;
            return MHD_NO;
        }
        req->body = NULL; /* the response owns it now */
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            req->content_type ? req->content_type
                                              : "application/json");
    if (req->reply_header)
        MHD_add_response_header(resp, req->reply_header, req->reply_value);
    if (req->content_encoding)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING,
                                req->content_encoding);
    if (req->vary_encoding)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY,
                                MHD_HTTP_HEADER_ACCEPT_ENCODING);
    if (allow && allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (st->challenge)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"nerved\"");
    /* Every 503 is a "not now": the queue, the memory budget, the disk,
     * a shutdown. */
    if (req->status == 503 && req->retry_after <= 0)
        req->retry_after = 1;
    if (req->retry_after > 0) {
        char seconds[16];
        snprintf(seconds, sizeof seconds, "%d", req->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
    }
    if (st->close)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)req->status, resp);
    MHD_destroy_response(resp);
    double seconds = now_seconds() - st->start;
    srv_metrics_request(st->route, req->net ? req->net->id : NULL,
                        req->status, seconds);
    if (!config->quiet)
        log_request(req, seconds);
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
    req->key = -1;
}

static enum MHD_Result answer_error(struct MHD_Connection *conn,
                                    conn_state *st, const char *method,
                                    const char *path, const api_error *err)
{
    srv_request req;
    init_request(&req, method, path);
    srv_reply_error(&req, err);
    return send_reply(conn, st, &req, NULL);
}

static size_t drain_limit(void)
{
    size_t four = config->max_body * 4;
    return four > DRAIN_FLOOR ? four : DRAIN_FLOOR;
}

/* A refusal decided from the headers alone (401, 404, 405, 413, 415).
 * Sent at once, it would close the connection under a client that writes
 * its whole request before reading the answer, as tritonclient and most
 * simple clients do: the client would see a broken pipe or a reset, never
 * why. So a declared body of up to drain_limit() bytes is read and
 * dropped first (no memory is kept, and the read deadline still holds);
 * a larger one is answered at once, and so is a request with "Expect:
 * 100-continue", whose client waits for the answer before it sends the
 * body. A chunked body is dropped up to the same bound; past it the
 * answer goes out and the connection closes. */
static enum MHD_Result refuse(struct MHD_Connection *conn, conn_state *st,
                              const char *method, const char *url,
                              const api_error *err, const char *allow)
{
    const char *length = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *chunked = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    const char *expect = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    unsigned long long declared = length ? strtoull(length, NULL, 10) : 0;
    if (length && chunked) {
        /* Which framing holds is unknowable (RFC 9112 6.1): read nothing. */
        st->close = 1;
    } else if (expect && strcasecmp(expect, "100-continue") == 0) {
        /* The client waits for this answer before sending its body. */
    } else if ((declared > 0 && declared <= drain_limit()) || chunked) {
        st->refusal = *err;
        snprintf(st->refusal_allow, sizeof st->refusal_allow, "%s",
                 allow ? allow : "");
        st->refusing = 1;
        return MHD_YES;
    }
    srv_request req;
    init_request(&req, method, url);
    srv_reply_error(&req, err);
    return send_reply(conn, st, &req, allow);
}

/* The later calls of a request being refused: drop its body, then send
 * the refusal once. */
static enum MHD_Result keep_refusing(struct MHD_Connection *conn,
                                     conn_state *st, const char *method,
                                     const char *url,
                                     size_t *upload_data_size)
{
    if (*upload_data_size) {
        st->drained += *upload_data_size;
        *upload_data_size = 0;
        if (st->refusing == 2 || st->drained <= drain_limit())
            return MHD_YES;
        st->close = 1;
    }
    if (st->refusing == 2)
        return MHD_YES;
    st->refusing = 2;
    srv_request req;
    init_request(&req, method, url);
    srv_reply_error(&req, &st->refusal);
    return send_reply(conn, st, &req, st->refusal_allow);
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

/* The budget, asked before a pushed body's document grows. */
static int doc_reserve(void *cls, size_t bytes)
{
    (void)cls;
    return srv_budget_charge(bytes);
}

/* Whether the body of this request is read as it arrives: a route that
 * reads the text itself, with a body declared plain JSON (a compressed
 * one, or the binary extension's framing, is whole before it is read). */
static int pushed_body(struct MHD_Connection *conn, const srv_route *route,
                       const char *path)
{
    const char *encoding = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
    const char *type = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    /* /v2 reads a body without a type as JSON (body_readable). */
    return (route->flags & SRV_BODY_RAW) &&
           (is_json_type(type) || (!type && is_v2_path(path))) &&
           (!encoding || strcasecmp(encoding, "identity") == 0) &&
           !MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                        API_BINARY_HEADER);
}

/* What text after the document most likely is, on a route that reads
 * the binary framing: its bytes, sent without the header. */
static const char *trailing_hint(const srv_request *req, int trailing)
{
    return trailing && (req->route_flags & SRV_BODY_BINARY) && !req->blob
               ? " (binary tensor data needs the " API_BINARY_HEADER " header)"
               : "";
}

int srv_request_charge(srv_request *req, double bytes, const char *what)
{
    if (bytes >= (double)SIZE_MAX || srv_budget_charge((size_t)bytes)) {
        srv_reply_fail(req, bytes > (double)srv_budget_limit() ? 413 : 503,
                       "out_of_memory", "%s needs about %.0f MiB; the "
                       "server's memory budget (--max-memory) has %.0f MiB "
                       "of %.0f left", what, bytes / 1048576.0,
                       (double)(srv_budget_limit() - srv_budget_used()) /
                           1048576.0,
                       (double)srv_budget_limit() / 1048576.0);
        srv_metrics_rejected(req->net ? req->net->id : NULL, "memory");
        req->retry_after = 1;
        return -1;
    }
    req->charged += (size_t)bytes;
    return 0;
}

/* A document parsed into a tree (a definition, a fit's data) takes some
 * twenty times its float32 numbers: charged to the budget before it is
 * built, as the body was, and released with the request. */
static int charge_tree(srv_request *req, size_t values)
{
    double bytes = (double)values * TREE_BYTES_PER_VALUE + (double)req->raw_len;
    char what[96];
    snprintf(what, sizeof what, "parsing the body's %zu JSON values", values);
    if (srv_request_charge(req, bytes, what))
        return -1;
    req->tree_bytes = (size_t)bytes;
    return 0;
}

/* Takes json as the request's tree (req->json) unless an object in it
 * holds a member twice, which lookups would read one way and loops
 * another; -1 after replying (json deleted). */
static int adopt_tree(srv_request *req, cJSON *json)
{
    int failed = 0;
    const char *twice = api_json_repeated_member(json, &failed);
    if (twice || failed) {
        if (failed)
            srv_reply_fail(req, 503, "out_of_memory", "out of memory");
        else
            srv_reply_fail(req, 400, "bad_json", "an object holds the member "
                           "'%.64s' twice", twice);
        cJSON_Delete(json);
        return -1;
    }
    cJSON_Delete((cJSON *)req->json);
    req->json = json;
    return 0;
}

int srv_request_parse_json(srv_request *req)
{
    if (req->raw_doc && !req->raw_checked) {
        /* Checked as it arrived; the verdicts, as for the text. */
        size_t at;
        int trailing;
        if (api_jsondoc_depth(req->raw_doc) > MAX_JSON_DEPTH) {
            srv_reply_fail(req, 400, "bad_json", "JSON nested deeper than %d "
                           "levels", MAX_JSON_DEPTH);
            return -1;
        }
        if (api_jsondoc_check(req->raw_doc, &at, &trailing)) {
            srv_reply_fail(req, 400, "bad_json", trailing
                               ? "unexpected text after the JSON document at "
                                 "byte %zu%s"
                               : "malformed JSON at byte %zu%s", at,
                           trailing_hint(req, trailing));
            return -1;
        }
        req->raw_checked = 1;
        return 0;
    }
    if (req->raw_len == 0 || req->json || req->raw_checked)
        return 0;
    size_t values;
    if (json_depth(req->raw, req->raw_len, &values) > MAX_JSON_DEPTH) {
        srv_reply_fail(req, 400, "bad_json", "JSON nested deeper than %d "
                       "levels", MAX_JSON_DEPTH);
        return -1;
    }
    if (!(req->route_flags & SRV_BODY_RAW) && charge_tree(req, values))
        return -1;
    if (req->route_flags & SRV_BODY_RAW) {
        /* The handler reads the text itself (api_codec.h): it is only
         * checked here, with the same messages. */
        size_t at;
        int trailing;
        if (api_json_check(req->raw, req->raw_len, &at, &trailing)) {
            srv_reply_fail(req, 400, "bad_json", trailing
                               ? "unexpected text after the JSON document at "
                                 "byte %zu%s"
                               : "malformed JSON at byte %zu%s", at,
                           trailing_hint(req, trailing));
            return -1;
        }
        req->raw_checked = 1;
        return 0;
    }
    size_t nul = api_json_nul_escape(req->raw, req->raw_len);
    if (nul) {
        srv_reply_fail(req, 400, "bad_json", "a string holds \\u0000 at byte "
                       "%zu: no name, id or value here can hold a NUL",
                       nul - 1);
        return -1;
    }
    const char *end = NULL;
    cJSON *json = cJSON_ParseWithLengthOpts(req->raw, req->raw_len, &end, 0);
    if (!json) {
        /* cJSON puts a document cut short at its last byte; the checker
         * the raw routes use says where it fails, the end included, so
         * every route reports the same byte. */
        size_t at = end ? (size_t)(end - req->raw) : 0, checked;
        int trailing;
        if (api_json_check(req->raw, req->raw_len, &checked, &trailing))
            at = checked;
        srv_reply_fail(req, 400, "bad_json", "malformed JSON at byte %zu", at);
        return -1;
    }
    const char *rest = end, *stop = req->raw + req->raw_len;
    while (rest && rest < stop && isspace((unsigned char)*rest))
        rest++;
    if (rest && rest < stop) {
        cJSON_Delete(json);
        srv_reply_fail(req, 400, "bad_json", "unexpected text after the JSON "
                       "document at byte %zu%s", (size_t)(rest - req->raw),
                       trailing_hint(req, 1));
        return -1;
    }
    return adopt_tree(req, json);
}

api_jsondoc *srv_request_take_doc(srv_request *req, size_t *charged)
{
    conn_state *st =
        (conn_state *)((char *)req - offsetof(conn_state, job.req));
    api_jsondoc *doc = st->doc;
    *charged = doc ? api_jsondoc_charged(doc) : 0;
    st->doc = NULL;
    /* Nothing of the request reads the text any more. */
    req->raw_doc = NULL;
    req->raw = "";
    req->raw_len = 0;
    return doc;
}

int srv_request_parse_text(srv_request *req, const char *text, size_t len)
{
    size_t values;
    if (json_depth(text, len, &values) > MAX_JSON_DEPTH) {
        srv_reply_fail(req, 400, "bad_json", "JSON nested deeper than %d "
                       "levels", MAX_JSON_DEPTH);
        return -1;
    }
    if (charge_tree(req, values))
        return -1;
    size_t nul = api_json_nul_escape(text, len);
    if (nul) {
        srv_reply_fail(req, 400, "bad_json", "a string holds \\u0000: no "
                       "name, id or value here can hold a NUL");
        return -1;
    }
    /* The text was checked whole: what fails to parse now is memory. */
    cJSON *json = cJSON_ParseWithLength(text, len);
    if (!json) {
        srv_reply_fail(req, 503, "out_of_memory", "out of memory");
        return -1;
    }
    return adopt_tree(req, json);
}

/* A large tree is millions of small blocks, which malloc keeps for the
 * process once freed: handed back, so that one large document does not
 * hold its memory for the daemon's life (the budget has it back). */
#define TRIM_TREE_BYTES (64u << 20)

static void free_tree(srv_request *req)
{
    cJSON_Delete((cJSON *)req->json);
    req->json = NULL;
    if (req->tree_bytes >= TRIM_TREE_BYTES)
        malloc_trim(0);
    req->tree_bytes = 0;
}

/* Calls the route's handler with its body parsed and its locks held. */
static void run_handler(const srv_route *route, srv_request *req)
{
    if (srv_request_parse_json(req))
        return;
    srv_network *net = req->net;
    srv_session *s = req->session;
    if (net && (route->flags & SRV_LOCK_WRITE))
        pthread_rwlock_wrlock(&net->weights);
    else if (net && (route->flags & SRV_LOCK_READ))
        pthread_rwlock_rdlock(&net->weights);
    if (s && (route->flags & SRV_LOCK_SESSION))
        pthread_mutex_lock(&s->lock);
    /* A session is resolved when its request arrives; one deleted while
     * the request waited behind another of its session is gone for it
     * too. */
    if (s && !srv_session_linked(s))
        srv_reply_fail(req, 404, "not_found", "session '%s' was deleted",
                       s->id);
    else
        route->handler(req);
    if (s && (route->flags & SRV_LOCK_SESSION))
        pthread_mutex_unlock(&s->lock);
    if (net && (route->flags & (SRV_LOCK_WRITE | SRV_LOCK_READ)))
        pthread_rwlock_unlock(&net->weights);
    free_tree(req);
    /* A deferred reply is another thread's to write from now on. */
    if (atomic_load(&req->defer_refs) == 0 && !req->status)
        srv_reply_fail(req, 500, "internal", "the handler gave no reply");
}

static void job_run(srv_job *job)
{
    conn_state *st = (conn_state *)((char *)job - offsetof(conn_state, job));
    run_handler(&srv_routes[st->route], &job->req);
}

static void state_put(conn_state *st);

/* On the compute thread: the reply is ready; MHD calls srv_http_handle
 * again for the connection, which sends it. Sent early, the reply is out
 * already: the job's end is told to it, and the job lets go of the
 * request. */
static void job_done(srv_job *job)
{
    conn_state *st = (conn_state *)((char *)job - offsetof(conn_state, job));
    if (st->early) {
        st->over(st->over_cls);
        state_put(st);
        return;
    }
    atomic_store(&st->answered, 1);
    MHD_resume_connection(st->conn);
}

void srv_request_send_now(srv_request *req, void (*over)(void *cls),
                          void *cls, void **conn)
{
    conn_state *st =
        (conn_state *)((char *)req - offsetof(conn_state, job.req));
    st->early = 1;
    st->over = over;
    st->over_cls = cls;
    atomic_store(&st->holders, 2);
    *conn = st->conn;
    atomic_store(&st->answered, 1);
    MHD_resume_connection(st->conn);
}

void srv_http_pause(void *conn)
{
    MHD_suspend_connection(conn);
}

void srv_http_wake(void *conn)
{
    MHD_resume_connection(conn);
}

/* Resolves {net} and {sid} as the route's row asks; replies 404 and
 * returns -1 when one does not exist. */
static int resolve(const srv_route *route, srv_request *req)
{
    api_error err;
    if (route->flags & (SRV_NET | SRV_SESSION)) {
        req->net = srv_network_get(req->params[0], &err);
        if (!req->net) {
            srv_reply_error(req, &err);
            return -1;
        }
    }
    if (route->flags & SRV_SESSION) {
        req->session = srv_session_get(req->net, req->params[1], &err);
        if (!req->session) {
            srv_reply_error(req, &err);
            return -1;
        }
    }
    return 0;
}


void srv_request_release(srv_request *req)
{
    free_tree(req);
    api_json_blobs_free(req->blobs);
    req->blobs = NULL;
    srv_session_release(req->session);
    srv_network_release(req->net);
    req->session = NULL;
    req->net = NULL;
    if (req->charged)
        srv_budget_release(req->charged);
    req->charged = 0;
}

static conn_track *track_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* The whole request is here: answer it, or hand it to the scheduler. */
static enum MHD_Result dispatch(struct MHD_Connection *conn, conn_state *st,
                                const char *method, const char *url)
{
    const srv_route *route = &srv_routes[st->route];
    conn_track *track = track_of(conn);
    if (track) {
        pthread_mutex_lock(&tracks_lock);
        track->receiving = 0;
        pthread_mutex_unlock(&tracks_lock);
    }
    if (st->no_memory)
        return answer_now(conn, st, method, url, 503, "out_of_memory", NULL,
                          "the server's memory budget (--max-memory) is "
                          "spent; retry later");
    if (st->too_large)
        return answer_now(conn, st, method, url, 413, "too_large", NULL,
                          "the body exceeds the limit of %zu bytes",
                          body_limit(st->route));
    if (st->len > 0 && !(route->flags & (SRV_BODY_REQUIRED | SRV_BODY_OPTIONAL)))
        return answer_now(conn, st, method, url, 400, "bad_request", NULL,
                          "%s %s takes no body", method, route->pattern);
    if (st->len == 0 && (route->flags & SRV_BODY_REQUIRED))
        return answer_now(conn, st, method, url, 400, "bad_request", NULL,
                          "%s %s needs a JSON body", method, route->pattern);

    srv_request *req = &st->job.req;
    init_request(req, method, url);
    memcpy(req->params, st->params, sizeof req->params);
    req->query_format = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND,
                                                    "format");
    req->accept_encoding = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    req->accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                              MHD_HTTP_HEADER_ACCEPT);
    req->route_flags = route->flags;
    req->key = st->key;
    size_t json_len = st->len;
    if (st->doc) {
        api_jsondoc_finish(st->doc);
        if (st->len > 0)
            req->raw_doc = st->doc;
    } else if (st->len > 0) {
        api_error err;
        char *received = st->body;
        int unpacked = unpack_body(conn, route, &st->body, &st->len, req,
                                   &json_len, &err);
        if (st->body != received) {
            /* The decoded body's buffer replaces the received one in the
             * budget. */
            srv_budget_release(st->cap);
            st->cap = srv_budget_charge(st->len + 1) == 0 ? st->len + 1 : 0;
            if (!st->cap && !unpacked)
                return answer_now(conn, st, method, url, 503, "out_of_memory",
                                  NULL, "the server's memory budget "
                                  "(--max-memory) is spent; retry later");
        }
        if (unpacked)
            return answer_error(conn, st, method, url, &err);
    }
    req->raw = st->body ? st->body : "";
    req->raw_len = json_len;
    if (req->raw_doc) {
        api_json kept = api_jsondoc_json(st->doc);
        req->raw = kept.s;
        req->raw_len = kept.len;
    }
    /* A small JSON document is parsed (or, for SRV_BODY_RAW, checked) here,
     * as part of receiving it: a malformed one is answered without taking
     * a place in a queue, and a batch of steps spends its compute thread on
     * the steps. A large one is parsed on the compute thread. */
    if (json_len <= SMALL_BODY && srv_request_parse_json(req)) {
        enum MHD_Result rc = send_reply(conn, st, req, NULL);
        srv_request_release(req);
        return rc;
    }
    if (resolve(route, req)) {
        enum MHD_Result rc = send_reply(conn, st, req, NULL);
        srv_request_release(req);
        return rc;
    }
    if (route->flags & SRV_INLINE) {
        run_handler(route, req);
        enum MHD_Result rc = send_reply(conn, st, req, NULL);
        srv_request_release(req);
        return rc;
    }
    srv_job *job = &st->job;
    job->net = req->net;
    job->step = route->step;
    job->build = (route->flags & SRV_BUILD) != 0;
    job->run = job_run;
    job->done = job_done;
    job->batch_rows = 1;
    if (req->session) {
        job->key = srv_sched_key(req->net->id, req->session->id);
        job->batch_rows = nn_session_batch(req->session->run);
    }
    if (route->order_key)
        job->key = route->order_key(req);
    st->conn = conn;
    st->submitted = 1;
    /* Suspended first: the compute thread may answer before submit
     * returns, and resumes only a suspended connection. */
    MHD_suspend_connection(conn);
    if (srv_sched_submit(job))
        job_done(job);
    return MHD_YES;
}

/* The first *con_cls of a request srv_http_begin marked: its query cut,
 * or its path holding %00 or %2F. */
static char marks[3];
#define QUERY_CUT (&marks[0])
#define PATH_NUL (&marks[1])
#define PATH_SLASH (&marks[2])

void *srv_http_begin(const char *uri)
{
    /* libmicrohttpd decodes the path before the handler sees it, and a
     * %00 ends it there: DELETE /v1/networks/m%00/sessions/s1 would be
     * DELETE /v1/networks/m, and delete the network. */
    size_t path_len = strcspn(uri, "?");
    for (size_t i = 0; i + 2 < path_len; i++)
        if (uri[i] == '%' && uri[i + 1] == '0' && uri[i + 2] == '0')
            return PATH_NUL;
    /* A %2F would be decoded into a separator: m%2Fsessions%2Fs1, one
     * segment to a proxy in front, would be three here. No name holds a
     * '/', so it can only be such a confusion. */
    for (size_t i = 0; i + 2 < path_len; i++)
        if (uri[i] == '%' && uri[i + 1] == '2' &&
            (uri[i + 2] == 'F' || uri[i + 2] == 'f'))
            return PATH_SLASH;
    const char *query = strchr(uri, '?');
    if (!query)
        return NULL;
    size_t params = 1;
    for (const char *p = query + 1; *p; p++)
        params += *p == '&';
    if (params <= SRV_MAX_QUERY_PARAMS)
        return NULL;
    /* The buffer is libmicrohttpd's, writable, and read for the query
     * only after this callback returns. */
    ((char *)query)[1] = '\0';
    return QUERY_CUT;
}

/* The path of a request target in absolute form ("http://host/path",
 * which RFC 9112 3.2.2 says a server must accept, though clients send it
 * only to proxies): "/path", or "/" for none. Other targets as they are. */
static const char *origin_form(const char *url)
{
    size_t scheme = strncasecmp(url, "http://", 7) == 0    ? 7
                    : strncasecmp(url, "https://", 8) == 0 ? 8
                                                           : 0;
    if (!scheme)
        return url;
    const char *path = strchr(url + scheme, '/');
    return path ? path : "/";
}

enum MHD_Result srv_http_handle(void *cls, struct MHD_Connection *conn,
                                const char *url, const char *method,
                                const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls)
{
    (void)cls, (void)version;
    url = origin_form(url);
    int query_cut = *con_cls == QUERY_CUT, path_nul = *con_cls == PATH_NUL,
        path_slash = *con_cls == PATH_SLASH;
    if (query_cut || path_nul || path_slash)
        *con_cls = NULL;
    conn_state *st = *con_cls;
    char allow[64];
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st)
            return MHD_NO;
        atomic_init(&st->holders, 1);
        st->start = now_seconds();
        st->route = find_route(method, url, st->params, allow, sizeof allow);
        *con_cls = st;
        srv_metrics_in_flight(1);
        api_error err;
        /* The body's framing first, before the key: refused later, a
         * body of a framing libmicrohttpd reads to the client's close
         * would be drained for ever. These answers tell nothing of the
         * routes. */
        const char *length = MHD_lookup_connection_value(
            conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        const char *chunked = MHD_lookup_connection_value(
            conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        if (length && lengths_differ(conn, length)) {
            /* libmicrohttpd reads the first; a proxy that read another
             * would see the rest of the body as a second request
             * (RFC 9112 6.3: equal copies are allowed, others are an
             * unrecoverable framing error). */
            st->close = 1;
            return answer_now(conn, st, method, url, 400, "bad_request", NULL,
                              "a request may not have Content-Length "
                              "headers of different values");
        }
        if (length && chunked) {
            /* Two framings of one body: whichever a proxy in front read,
             * the rest would be taken for another request (RFC 9112 6.1). */
            st->close = 1;
            return answer_now(conn, st, method, url, 400, "bad_request", NULL,
                              "a request may not have both Content-Length "
                              "and Transfer-Encoding");
        }
        if (chunked && strcasecmp(chunked, "chunked") != 0) {
            /* libmicrohttpd frames only "chunked"; any other coding
             * (gzip, chunked; identity; a typo) it reads as a body that
             * ends when the client closes, so the request would hang
             * until the connection timeout with no answer. */
            st->close = 1;
            return answer_now(conn, st, method, url, 400, "bad_request", NULL,
                              "Transfer-Encoding '%.32s' is not supported: "
                              "send the body with Content-Length or "
                              "'Transfer-Encoding: chunked' (a compressed "
                              "body with Content-Encoding)", chunked);
        }
        /* Before anything of the routes: without a key, not even which
         * exist is told. */
        st->key = keys ? srv_auth_check_connection(keys, conn) - 1 : -1;
        if (keys && !srv_auth_exempt(method, url) && st->key < 0) {
            st->challenge = 1;
            api_fail(&err, 401, "unauthorized", "this server needs "
                     "'Authorization: Bearer <key>' with one of its keys");
            return refuse(conn, st, method, url, &err, NULL);
        }
        if (path_nul) {
            api_fail(&err, 400, "bad_request", "the path holds %%00 (a NUL "
                     "byte), which no route, network or session name can "
                     "hold");
            return refuse(conn, st, method, url, &err, NULL);
        }
        if (path_slash) {
            api_fail(&err, 400, "bad_request", "the path holds %%2F (an "
                     "encoded '/'), which no network or session name can "
                     "hold");
            return refuse(conn, st, method, url, &err, NULL);
        }
        if (query_cut) {
            api_fail(&err, 400, "bad_request", "the query string has more "
                     "than %d parameters", SRV_MAX_QUERY_PARAMS);
            return refuse(conn, st, method, url, &err, NULL);
        }
        if (st->route < 0) {
            if (allow[0])
                api_fail(&err, 405, "method_not_allowed", "%s is not allowed "
                         "on %s (allowed: %s)", method, url, allow);
            else
                api_fail(&err, 404, "not_found", "no route %s %s", method,
                         url);
            return refuse(conn, st, method, url, &err, allow);
        }
        if (length && strtoull(length, NULL, 10) > body_limit(st->route)) {
            api_fail(&err, 413, "too_large", "the body is %s bytes; the "
                     "limit is %zu", length, body_limit(st->route));
            return refuse(conn, st, method, url, &err, NULL);
        }
        int has_body = (length && strtoull(length, NULL, 10) > 0) || chunked;
        if (has_body && body_readable(conn, url, &err))
            return refuse(conn, st, method, url, &err, NULL);
        if (has_body && pushed_body(conn, &srv_routes[st->route], url))
            st->doc = api_jsondoc_new(API_JSONDOC_BLOB_MIN, doc_reserve, NULL);
        return MHD_YES;
    }
    if (st->refusing)
        return keep_refusing(conn, st, method, url, upload_data_size);
    if (st->submitted) {
        /* Resumed: the compute thread has answered. */
        if (!atomic_load(&st->answered))
            return MHD_YES;
        enum MHD_Result rc = send_reply(conn, st, &st->job.req, NULL);
        /* Sent early, the request is still the running job's. */
        if (!st->early)
            srv_request_release(&st->job.req);
        return rc;
    }
    if (*upload_data_size) {
        append(st, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    return dispatch(conn, st, method, url);
}

/* The connection's or the job's hold on a request's state ends; the last
 * frees it. */
static void state_put(conn_state *st)
{
    if (atomic_fetch_sub(&st->holders, 1) != 1)
        return;
    srv_request_release(&st->job.req);
    free(st->body);
    srv_budget_release(st->cap);
    if (st->doc)
        srv_budget_release(api_jsondoc_charged(st->doc));
    api_jsondoc_free(st->doc);
    free(st);
}

void srv_http_completed(void *cls, struct MHD_Connection *conn,
                        void **con_cls, enum MHD_RequestTerminationCode code)
{
    (void)cls, (void)code;
    conn_state *st = *con_cls == QUERY_CUT || *con_cls == PATH_NUL ||
                             *con_cls == PATH_SLASH
                         ? NULL
                         : *con_cls;
    if (st) {
        *con_cls = NULL;
        srv_metrics_in_flight(-1);
        state_put(st);
    }
    /* The next request on this connection starts its clock now. */
    conn_track *track = conn ? track_of(conn) : NULL;
    if (track) {
        pthread_mutex_lock(&tracks_lock);
        track->since = now_seconds();
        track->receiving = 1;
        pthread_mutex_unlock(&tracks_lock);
    }
}

void srv_http_connection(void *cls, struct MHD_Connection *conn,
                         void **socket_context,
                         enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    conn_track *t = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        t = calloc(1, sizeof *t);
        if (!t)
            return;
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        t->fd = info ? info->connect_fd : -1;
        t->since = now_seconds();
        t->receiving = 1;
        pthread_mutex_lock(&tracks_lock);
        t->next = tracks;
        if (tracks)
            tracks->prev = t;
        tracks = t;
        n_tracks++;
        pthread_mutex_unlock(&tracks_lock);
        *socket_context = t;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && t) {
        pthread_mutex_lock(&tracks_lock);
        if (t->prev)
            t->prev->next = t->next;
        else
            tracks = t->next;
        if (t->next)
            t->next->prev = t->prev;
        n_tracks--;
        pthread_mutex_unlock(&tracks_lock);
        free(t);
        *socket_context = NULL;
    }
}

int srv_http_sweep(int read_timeout)
{
    /* A client that trickles its request keeps resetting MHD's idle
     * timeout; this deadline holds whatever it sends. Shutting the socket
     * down makes MHD see the end of the stream and close it in its own
     * thread. A request received whole is never cut. */
    double now = now_seconds();
    int cut = 0;
    pthread_mutex_lock(&tracks_lock);
    for (conn_track *t = tracks; t; t = t->next)
        if (t->receiving && t->fd >= 0 && now - t->since > read_timeout) {
            shutdown(t->fd, SHUT_RDWR);
            t->receiving = 0;
            cut++;
        }
    pthread_mutex_unlock(&tracks_lock);
    return cut;
}

int srv_http_open_connections(void)
{
    pthread_mutex_lock(&tracks_lock);
    int n = n_tracks;
    pthread_mutex_unlock(&tracks_lock);
    return n;
}
