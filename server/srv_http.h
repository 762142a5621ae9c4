/*
 * srv_http.h — the libmicrohttpd callbacks that turn connections into
 * srv_request calls of the route table.
 */
#ifndef SRV_HTTP_H
#define SRV_HTTP_H

#include <microhttpd.h>

#include "srv.h"
#include "srv_auth.h"

/* All must outlive the daemon. persist NULL: no data directory; auth
 * NULL: no keys required. */
void srv_http_init(const srv_config *cfg, nn_registry *reg,
                   srv_persist *persist, const srv_auth *auth);

/* From the URI log callback, with the request line's own buffer before
 * libmicrohttpd decodes its path and splits its query: a query of more
 * than SRV_MAX_QUERY_PARAMS parameters is cut to nothing in place (each
 * would take a record of the connection's memory pool, and a few hundred
 * leave the request hanging unanswered), and a path holding %00 (which
 * would end the decoded path there) or %2F (which would become a
 * separator) is marked. The value returned, the
 * request's first *con_cls, makes srv_http_handle refuse either with 400;
 * NULL otherwise. */
#define SRV_MAX_QUERY_PARAMS 32
void *srv_http_begin(const char *uri);

/* MHD_AccessHandlerCallback. */
enum MHD_Result srv_http_handle(void *cls, struct MHD_Connection *conn,
                                const char *url, const char *method,
                                const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls);
/* MHD_NotifyConnectionCallback: tracks connections for srv_http_sweep. */
void srv_http_connection(void *cls, struct MHD_Connection *conn,
                         void **socket_context,
                         enum MHD_ConnectionNotificationCode code);
/* Closes connections that have spent more than read_timeout seconds
 * receiving one request (headers and body) or waiting between requests;
 * returns how many. The reaper calls it every second. */
int srv_http_sweep(int read_timeout);
/* Connections open now, for /metrics. */
int srv_http_open_connections(void);
/* In a reply's reader on its connection's thread, before returning 0 for
 * "nothing yet": suspends the connection (a reader returning 0 without it
 * would be called again at once). conn is srv_request_send_now's. */
void srv_http_pause(void *conn);
/* From any thread: resumes a connection srv_http_pause suspended. */
void srv_http_wake(void *conn);
/* MHD_RequestCompletedCallback: frees what srv_http_handle kept. */
void srv_http_completed(void *cls, struct MHD_Connection *conn,
                        void **con_cls, enum MHD_RequestTerminationCode code);

#endif
