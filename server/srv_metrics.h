/*
 * srv_metrics.h — counters for GET /metrics, in Prometheus text format.
 */
#ifndef SRV_METRICS_H
#define SRV_METRICS_H

#include <stddef.h>

/* route: index in the route table, or -1 for an unmatched path. */
void srv_metrics_request(int route, int status, double seconds);
void srv_metrics_steps(long steps);
void srv_metrics_expired(int sessions);
/* A training job ended: done, or failed/cancelled. */
void srv_metrics_fit(int succeeded);
/* The scheduler's observations of a network (NULL: jobs of no network):
 * how long a job waited and computed, the rows and sessions of a batched
 * step, and a
 * request refused without running, by reason (queue_full, deadline,
 * memory, quota, shutdown). */
void srv_metrics_job(const char *network, double queued, double computed);
void srv_metrics_batch(const char *network, int rows, int sessions);
void srv_metrics_rejected(const char *network, const char *reason);
/* Drops a deleted network's series. */
void srv_metrics_forget(const char *network);
/* The exposition text; caller frees. route_names[i] labels route i. */
char *srv_metrics_render(const char *const *route_names, int n_routes,
                         int networks, int sessions);

#endif
