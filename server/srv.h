/*
 * srv.h — the daemon's configuration and the request a route handler sees.
 */
#ifndef SRV_H
#define SRV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "api.h"

#define SRV_MAX_PLUGINS 32

/* The initializer of a lock that every request takes for a few hundred
 * nanoseconds (the scheduler's queues, the metrics, the store, the
 * connection list). With more threads than cores, an ordinary mutex puts
 * a waiter to sleep at once, and the sleep and wake-up cost more than the
 * wait; glibc's adaptive kind spins a little first. Measured under wrk on
 * 2 cores: 8 % more single-step forwards a second. A file using it
 * defines _GNU_SOURCE before its first include, or gets the ordinary
 * kind. */
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
#define SRV_SHORT_LOCK PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
#else
#define SRV_SHORT_LOCK PTHREAD_MUTEX_INITIALIZER
#endif

/* The project's version (CMake's project(VERSION)), for --version, GET /v2
 * and nerved_build_info. */
#ifndef NERVED_VERSION
#error "NERVED_VERSION must be defined by the build"
#endif

typedef struct srv_config {
    char host[128];
    int port;
    int threads;
    size_t max_body;
    int max_networks;
    int max_sessions;
    int session_timeout;        /* seconds idle before a session expires */
    int connection_timeout;     /* seconds a connection may sit idle */
    int max_connections;        /* open at once; more are refused */
    int blas_threads;
    const char *blas_core;      /* auto | keep | a core name (NULL: auto) */
    api_limits limits;
    const char *plugins[SRV_MAX_PLUGINS];
    int n_plugins;
    const char *plugin_dir;
    const char *preload_dir;    /* graph definitions (*.json) to load */
    const char *data_dir;       /* networks and checkpoints on disk */
    const char *api_key_file;   /* bearer keys, one per line */
    const char *tls_cert;       /* PEM files: serve HTTPS */
    const char *tls_key;
    int list_routes;            /* print the route table and exit */
    int probe;                  /* check /healthz and exit (srv_probe.h) */
    int quiet;                  /* no access log */
    /* The serving core (srv_sched.h). */
    int compute_threads;        /* 0: one per core */
    int build_threads;          /* network builds' threads; 0: one per core */
    int max_queue;              /* queued requests per network */
    int request_timeout;        /* seconds a request may wait to start */
    int batching;               /* batch steps of different sessions */
    int batch_max_rows;
    int batch_window_us;
    int batch_instances;        /* batched steps of a network at once */
    size_t max_memory;          /* bytes for the whole daemon; 0: default */
    size_t max_output_floats;   /* floats in one response */
    int per_ip_connections;     /* open connections from one address */
    int read_timeout;           /* seconds to receive a whole request */
    int max_sessions_per_key;   /* with --api-key-file; 0: no quota */
    int max_fits_per_key;
    int shutdown_timeout;       /* seconds SIGTERM waits for requests */
} srv_config;

/* Defaults, then NERVED_* environment variables, then flags. Returns 0 to
 * run, 1 when it printed help or the version (exit 0), -1 on a bad value (message on
 * stderr; exit 2). */
int srv_config_load(srv_config *cfg, int argc, char **argv);

typedef struct srv_persist srv_persist;

typedef struct srv_network srv_network;
typedef struct srv_session srv_session;

/* A request as route handlers see it; they answer through the srv_reply_*
 * helpers (srv_http.c). What the route's row asks for (srv_routes.h) is
 * resolved, held and locked before the handler runs and released after. */
typedef struct srv_request {
    const char *method;
    const char *path;
    const char *query_format;   /* ?format=..., or NULL */
    char params[2][96];         /* {net}, {sid} */
    const cJSON *json;          /* parsed body; NULL when there was none
                                   or the route reads the text (SRV_BODY_RAW) */
    const char *raw;            /* the body as received, raw_len bytes (its
                                   JSON part with the binary extension);
                                   checked JSON with SRV_BODY_RAW */
    size_t raw_len;
    int raw_checked;            /* raw was checked as JSON (SRV_BODY_RAW) */
    int raw_binary;             /* a /v2 raw binary request: no JSON, the
                                   whole body is blob */
    const struct api_jsondoc *raw_doc; /* SRV_BODY_RAW bodies read as they
                                   arrived (api_codec.h): raw is its kept
                                   text, and its check's verdict is the
                                   body's; NULL when raw is the text */
    const char *blob;           /* routes with SRV_BODY_BINARY: the bytes
                                   after the JSON header when the request
                                   used the binary tensor extension, or
                                   NULL */
    size_t blob_len;
    struct api_json_blobs *blobs; /* SRV_BODY_RAW with a blob: where each
                                   binary tensor lies (api_codec.h), made
                                   by the handler, freed with the request */
    const char *accept_encoding; /* the request's Accept-Encoding, or NULL */
    const char *accept;         /* the request's Accept, or NULL */
    uint64_t queue_ns;          /* how long it waited for a compute thread
                                   (whoever schedules it sets this; 0 when
                                   it runs where it was received) */
    const srv_config *cfg;
    nn_registry *reg;
    srv_persist *persist;       /* the data directory, or NULL */
    srv_network *net;           /* {net}, for routes that name one */
    srv_session *session;       /* {sid}, for routes that name one */
    int key;                    /* index of the caller's API key, or -1 */
    unsigned route_flags;       /* its route's row's SRV_* flags */
    size_t charged;             /* bytes charged to the memory budget for
                                   this request, released after its reply */

    int status;                 /* reply */
    char *body;                 /* malloc'd */
    size_t body_len;
    const char *content_type;
    int retry_after;            /* seconds, for a Retry-After header; 0 none */
    atomic_int defer_refs;      /* srv_request_defer's handshake */
    const char *content_encoding; /* of body: "gzip", "deflate" or NULL */
    size_t tree_bytes;          /* charged for its parsed JSON tree */
    int vary_encoding;          /* the answer depends on Accept-Encoding
                                   (Vary, for caches) */
    const char *reply_header;   /* one more response header, or NULL */
    char reply_value[32];
    /* A streamed reply instead of body (srv_reply_stream). */
    ssize_t (*stream)(void *cls, uint64_t pos, char *buf, size_t max);
    void *stream_cls;
    void (*stream_free)(void *cls);
    uint64_t stream_size;       /* its length, or SRV_UNSIZED (chunked) */
} srv_request;

#define SRV_UNSIZED UINT64_MAX

/* Parses req->raw into req->json (deleted with the request); replies 400
 * and returns -1 when it is not one JSON document. An empty body leaves
 * req->json NULL. */
int srv_request_parse_json(srv_request *req);
/* For a route with SRV_BODY_RAW that wants a tree of the document part of
 * its body: parses text (the body's text with its bulk numbers named,
 * api_json_naming_blobs, or the body's own) into req->json, charged and
 * checked as srv_request_parse_json does it (depth, \u0000, repeated
 * members); -1 after replying. */
int srv_request_parse_text(srv_request *req, const char *text, size_t len);
/* For a handler whose work outlives the request and reads its body's
 * floats in place (a training job): takes the body read as it arrived
 * (req->raw_doc; NULL when there is none) with its share of the memory
 * budget, *charged bytes, which the caller releases once it frees the
 * document. req's text is gone afterwards. */
struct api_jsondoc *srv_request_take_doc(srv_request *req, size_t *charged);
/* Charges bytes to the memory budget for the request (released with it).
 * When they do not fit, replies 503 (or 413 when they never could) saying
 * that `what` needs them, counts the refusal, and returns -1. */
int srv_request_charge(srv_request *req, double bytes, const char *what);

/* For a handler whose answer comes later from another thread (a training
 * job started with "wait", so no compute thread waits for it): the
 * dispatcher leaves req unanswered when the handler returns, and whoever
 * calls srv_request_finish(req), once it has replied to it, sends the
 * answer. Only in handlers that run on a compute thread; the body, params
 * and locks of req are gone by then, its reply fields remain. */
void srv_request_defer(srv_request *req);
void srv_request_finish(srv_request *req);

/* Takes j (deletes it). */
void srv_reply_json(srv_request *req, int status, cJSON *j);
void srv_reply_error(srv_request *req, const api_error *err);
void srv_reply_fail(srv_request *req, int status, const char *code,
                    const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Takes text (free()d later). */
void srv_reply_text(srv_request *req, int status, const char *content_type,
                    char *text);
/* As srv_reply_text for len bytes that may hold NULs. Takes data. */
void srv_reply_bytes(srv_request *req, int status, const char *content_type,
                     char *data, size_t len);
/* A reply of unknown length, sent chunked as reader produces it: reader
 * fills at most max bytes of buf (the position pos of the reply so far)
 * and returns how many, or -1 at the end (MHD_ContentReaderCallback's
 * contract, MHD_CONTENT_READER_END_OF_STREAM). Takes cls: free_fn(cls) is
 * called once the reply is done or dropped. */
void srv_reply_stream(srv_request *req, int status, const char *content_type,
                      ssize_t (*reader)(void *cls, uint64_t pos, char *buf,
                                     size_t max),
                      void *cls, void (*free_fn)(void *cls));
/* As srv_reply_stream when the reply's length is known before its first
 * byte (the binary framing's; SRV_UNSIZED: not known, as srv_reply_stream
 * does): sent with a Content-Length, not chunked, in
 * pieces of the response's own 256 KiB buffer rather than of the
 * connection's 16 KiB pool. A reader ending before size bytes, or with
 * MHD_CONTENT_READER_END_WITH_ERROR, cuts the connection: the client sees
 * a body shorter than announced. */
void srv_reply_stream_sized(srv_request *req, int status,
                            const char *content_type, uint64_t size,
                            ssize_t (*reader)(void *cls, uint64_t pos,
                                              char *buf, size_t max),
                            void *cls, void (*free_fn)(void *cls));

/* For a handler on a compute thread that goes on making its reply after
 * the first bytes (a long run, streamed as it steps): sends the reply set
 * with srv_reply_stream now, while the handler still runs. From then on
 * the handler must not reply again; the request stays the job's until
 * the job ends, when over(cls) is called, the last touch of the job, and
 * only after it may the reply's reader end the body. *conn receives the
 * connection (before the reader can run), for srv_http_pause and
 * srv_http_wake (srv_http.h). */
void srv_request_send_now(srv_request *req, void (*over)(void *cls),
                          void *cls, void **conn);

#endif
