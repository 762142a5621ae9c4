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
/* The exposition text; caller frees. route_names[i] labels route i. */
char *srv_metrics_render(const char *const *route_names, int n_routes,
                         int networks, int sessions);

#endif
