/*
 * srv_fit.h — training jobs: POST /v1/networks/{net}/fit starts one on its
 * own thread, GET .../fit/{job} reports it, DELETE .../fit/{job} cancels.
 *
 * A job trains a private clone of the network, so forward calls and
 * sessions keep running on the old weights meanwhile; when it succeeds the
 * new weights are copied in under the network's write lock, so a step sees
 * either all old or all new weights. A cancelled or failed job changes
 * nothing. One job runs per network at a time.
 */
#ifndef SRV_FIT_H
#define SRV_FIT_H

#include "srv.h"

/* Jobs kept (running and finished); the oldest finished are forgotten. */
#define SRV_FIT_MAX_JOBS 64

void srv_fit_start(srv_request *req);  /* POST /v1/networks/{net}/fit */
void srv_fit_get(srv_request *req);    /* GET  .../fit/{job} */
void srv_fit_cancel(srv_request *req); /* DELETE .../fit/{job} */
void srv_fit_list(srv_request *req);   /* GET  .../fit */

/* Refuses new jobs and asks running ones to stop, so requests waiting on
 * them end: called before the HTTP server drains its requests. */
void srv_fit_stop(void);
/* srv_fit_stop, then waits for every job's thread and frees all jobs. */
void srv_fit_shutdown(void);

#endif
