/*
 * srv.h — the daemon's configuration and the request a route handler sees.
 */
#ifndef SRV_H
#define SRV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "api.h"

#define SRV_MAX_PLUGINS 32

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
    int quiet;                  /* no access log */
} srv_config;

/* Defaults, then NERVED_* environment variables, then flags. Returns 0 to
 * run, 1 when it printed help (exit 0), -1 on a bad value (message on
 * stderr; exit 2). */
int srv_config_load(srv_config *cfg, int argc, char **argv);

typedef struct srv_persist srv_persist;

/* A request as route handlers see it; they answer through the srv_reply_*
 * helpers (srv_http.c). */
typedef struct srv_request {
    const char *method;
    const char *path;
    const char *query_format;   /* ?format=..., or NULL */
    char params[2][96];         /* {net}, {sid} */
    const cJSON *json;          /* parsed body; NULL when there was none
                                   or the route reads the text (SRV_BODY_RAW) */
    const char *raw;            /* the body text (checked JSON with
                                   SRV_BODY_RAW), NUL-terminated; NULL when
                                   there was none */
    size_t raw_len;
    const srv_config *cfg;
    nn_registry *reg;
    srv_persist *persist;       /* the data directory, or NULL */

    int status;                 /* reply */
    char *body;                 /* malloc'd */
    size_t body_len;
    const char *content_type;
    /* A streamed reply instead of body (srv_reply_stream). */
    ssize_t (*stream)(void *cls, uint64_t pos, char *buf, size_t max);
    void *stream_cls;
    void (*stream_free)(void *cls);
} srv_request;

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
/* A reply of unknown length, sent chunked as reader produces it: reader
 * fills at most max bytes of buf (the position pos of the reply so far)
 * and returns how many, or -1 at the end (MHD_ContentReaderCallback's
 * contract, MHD_CONTENT_READER_END_OF_STREAM). Takes cls: free_fn(cls) is
 * called once the reply is done or dropped. */
void srv_reply_stream(srv_request *req, int status, const char *content_type,
                      ssize_t (*reader)(void *cls, uint64_t pos, char *buf,
                                     size_t max),
                      void *cls, void (*free_fn)(void *cls));

#endif
