/*
 * srv_routes.h — the route table: method, path pattern ({net}, {sid}
 * capture one segment each), a name for metrics, the handler, and whether a
 * JSON body is required.
 */
#ifndef SRV_ROUTES_H
#define SRV_ROUTES_H

#include "srv.h"

enum {
    SRV_BODY_REQUIRED = 1 << 0, /* a JSON body must be sent */
    SRV_BODY_OPTIONAL = 1 << 1, /* a JSON body may be sent */
    SRV_BODY_RAW = 1 << 2       /* no cJSON tree: the handler reads
                                   req->raw, checked as JSON */
};

typedef struct srv_route {
    const char *method;
    const char *pattern;
    const char *name;
    void (*handler)(srv_request *req);
    unsigned flags;
} srv_route;

/* Ends with a row of NULLs. */
extern const srv_route srv_routes[];
int srv_route_count(void);

#endif
