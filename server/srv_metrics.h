/*
 * srv_metrics.h — counters for GET /metrics, in Prometheus text format.
 * Every label's values are bounded: route by the route table, network by
 * --max-networks (a deleted network's series go), status and reason by the
 * tables in srv_metrics.c.
 */
#ifndef SRV_METRICS_H
#define SRV_METRICS_H

#include <stddef.h>

/* A request was answered. route: index in the route table, or -1 for an
 * unmatched path; network: the id of the network its path named and the
 * daemon resolved, or NULL. */
void srv_metrics_request(int route, const char *network, int status,
                         double seconds);
/* A request began (+1) or ended (-1), answered or not. */
void srv_metrics_in_flight(int delta);
/* Steps computed for network (NULL: of none). */
void srv_metrics_steps(const char *network, long steps);
void srv_metrics_expired(int sessions);
/* Training jobs: one began running; one ended with outcome "done",
 * "failed" or "cancelled". */
void srv_metrics_fit_started(void);
void srv_metrics_fit(const char *outcome);
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

/* A network's scheduler queue at the time of a scrape. */
typedef struct srv_metrics_queue {
    char network[24];
    int queued, running;
} srv_metrics_queue;

/* What the daemon holds at the time of a scrape. */
typedef struct srv_metrics_gauges {
    int networks, sessions;
    int connections;                 /* open HTTP connections */
    const srv_metrics_queue *queues; /* n_queues, one per network */
    int n_queues;
} srv_metrics_gauges;

/* The exposition text; caller frees. route_names[i] labels route i. */
char *srv_metrics_render(const char *const *route_names, int n_routes,
                         const srv_metrics_gauges *gauges);

#endif
