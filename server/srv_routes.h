/*
 * srv_routes.h — the route table. Like redis's command table, each row says
 * what its handler needs, and the dispatcher (srv_http.c) provides it:
 * the body, the network and session the path names (404 before anything
 * runs), the locks to hold around the handler, and where it runs — on the
 * HTTP thread for what answers at once, on a compute thread for the rest.
 */
#ifndef SRV_ROUTES_H
#define SRV_ROUTES_H

#include "srv.h"
#include "srv_sched.h"

enum {
    SRV_BODY_REQUIRED = 1 << 0, /* a body must be sent */
    SRV_BODY_OPTIONAL = 1 << 1, /* a body may be sent */
    SRV_BODY_RAW = 1 << 2,      /* the handler reads req->raw itself; no
                                   JSON tree is built */
    SRV_INLINE = 1 << 3,        /* answered on the HTTP thread: cheap, and
                                   never waits for a lock or the disk */
    SRV_NET = 1 << 4,           /* {net} resolved into req->net (held) */
    SRV_SESSION = 1 << 5,       /* {sid} of {net} into req->session (held);
                                   requests of one session run in order */
    SRV_LOCK_READ = 1 << 6,     /* the network's weights, read-locked */
    SRV_LOCK_WRITE = 1 << 7,    /* the network's weights, write-locked */
    SRV_LOCK_SESSION = 1 << 8,  /* the session's mutex */
    SRV_BODY_BINARY = 1 << 9,   /* the JSON may be followed by binary
                                   tensor data (api_binary.h) */
    SRV_BUILD = 1 << 10         /* builds a network: run on the build lane,
                                   not the compute threads (srv_sched.h) */
};

typedef struct srv_route {
    const char *method;
    const char *pattern;
    const char *name;
    void (*handler)(srv_request *req);
    unsigned flags;
    /* A single step of one session, which the scheduler may batch with
     * other sessions' steps; then handler is not used. */
    const srv_step_ops *step;
    /* Orders requests the path alone does not (a KServe sequence named in
     * the body): requests with equal keys run one at a time, in order.
     * NULL: the session the path names, if any. */
    uint64_t (*order_key)(const srv_request *req);
    /* The largest body it takes, when that is not --max-body (a session's
     * state, which an export may make larger). NULL: --max-body. */
    size_t (*max_body)(const srv_config *cfg);
} srv_route;

/* Ends with a row of NULLs. */
extern const srv_route srv_routes[];
int srv_route_count(void);

/* Releases what the dispatcher resolved for req (after its reply). */
void srv_request_release(srv_request *req);

#endif
