/*
 * srv_metrics.c — request counts by route and status, a latency histogram,
 * steps computed and sessions expired, and per network the scheduler's
 * queue and compute times, batch sizes and refusals by reason. Networks
 * are capped (--max-networks) and forgotten when deleted, so the network
 * label's values are bounded.
 */
#include "srv_metrics.h"
#include "srv_blas.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROUTES 64
#define MAX_STATUSES 16

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                 5,      10};
#define N_BUCKETS (sizeof buckets / sizeof *buckets)

typedef struct route_stats {
    int status[MAX_STATUSES];
    unsigned long long count[MAX_STATUSES];
    int n_status;
} route_stats;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static route_stats routes[MAX_ROUTES + 1]; /* last: unmatched paths */
static unsigned long long bucket_count[N_BUCKETS + 1];
static double latency_sum;
static unsigned long long latency_count, steps_total, expired_total;
static unsigned long long fits_done, fits_other;

/* ---------------------------------------------------- per network */

static const double row_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512,
                                     1024};
#define N_ROW_BUCKETS (sizeof row_buckets / sizeof *row_buckets)
static const char *const reasons[] = {"queue_full", "deadline", "memory",
                                      "quota", "shutdown"};
#define N_REASONS (sizeof reasons / sizeof *reasons)
#define MAX_NET_STATS 4096

typedef struct histogram {
    unsigned long long bucket[N_BUCKETS + 1];
    double sum;
    unsigned long long count;
} histogram;

typedef struct row_histogram {
    unsigned long long bucket[N_ROW_BUCKETS + 1];
    double sum;
    unsigned long long count;
} row_histogram;

typedef struct net_stats {
    char id[24];
    histogram queue, compute;
    row_histogram rows, sessions;
    unsigned long long rejected[N_REASONS];
} net_stats;

static net_stats *nets[MAX_NET_STATS];
static int n_nets;

/* Lock held: the stats of network id ("" for jobs of no network), made on
 * first use; NULL when the table is full or out of memory. */
static net_stats *stats_of(const char *id)
{
    if (!id)
        id = "";
    for (int i = 0; i < n_nets; i++)
        if (strcmp(nets[i]->id, id) == 0)
            return nets[i];
    if (n_nets == MAX_NET_STATS)
        return NULL;
    net_stats *st = calloc(1, sizeof *st);
    if (st) {
        snprintf(st->id, sizeof st->id, "%s", id);
        nets[n_nets++] = st;
    }
    return st;
}

static void observe(histogram *h, double seconds)
{
    size_t b = 0;
    while (b < N_BUCKETS && seconds > buckets[b])
        b++;
    h->bucket[b]++;
    h->sum += seconds;
    h->count++;
}

void srv_metrics_job(const char *network, double queued, double computed)
{
    pthread_mutex_lock(&lock);
    net_stats *st = stats_of(network);
    if (st) {
        observe(&st->queue, queued);
        observe(&st->compute, computed);
    }
    pthread_mutex_unlock(&lock);
}

static void observe_rows(row_histogram *h, int n)
{
    size_t b = 0;
    while (b < N_ROW_BUCKETS && n > row_buckets[b])
        b++;
    h->bucket[b]++;
    h->sum += n;
    h->count++;
}

void srv_metrics_batch(const char *network, int rows, int sessions)
{
    pthread_mutex_lock(&lock);
    net_stats *st = stats_of(network);
    if (st) {
        observe_rows(&st->rows, rows);
        observe_rows(&st->sessions, sessions);
    }
    pthread_mutex_unlock(&lock);
}

void srv_metrics_rejected(const char *network, const char *reason)
{
    pthread_mutex_lock(&lock);
    net_stats *st = stats_of(network);
    for (size_t r = 0; st && r < N_REASONS; r++)
        if (strcmp(reasons[r], reason) == 0)
            st->rejected[r]++;
    pthread_mutex_unlock(&lock);
}

void srv_metrics_forget(const char *network)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n_nets; i++)
        if (strcmp(nets[i]->id, network) == 0) {
            free(nets[i]);
            nets[i] = nets[--n_nets];
            break;
        }
    pthread_mutex_unlock(&lock);
}

void srv_metrics_request(int route, int status, double seconds)
{
    if (route < 0 || route >= MAX_ROUTES)
        route = MAX_ROUTES;
    pthread_mutex_lock(&lock);
    route_stats *r = &routes[route];
    int k = 0;
    while (k < r->n_status && r->status[k] != status)
        k++;
    if (k == r->n_status && k < MAX_STATUSES)
        r->status[r->n_status++] = status;
    if (k < MAX_STATUSES)
        r->count[k]++;
    size_t b = 0;
    while (b < N_BUCKETS && seconds > buckets[b])
        b++;
    bucket_count[b]++;
    latency_sum += seconds;
    latency_count++;
    pthread_mutex_unlock(&lock);
}

void srv_metrics_steps(long steps)
{
    pthread_mutex_lock(&lock);
    steps_total += (unsigned long long)steps;
    pthread_mutex_unlock(&lock);
}

void srv_metrics_fit(int succeeded)
{
    pthread_mutex_lock(&lock);
    if (succeeded)
        fits_done++;
    else
        fits_other++;
    pthread_mutex_unlock(&lock);
}

void srv_metrics_expired(int sessions)
{
    pthread_mutex_lock(&lock);
    expired_total += (unsigned long long)sessions;
    pthread_mutex_unlock(&lock);
}

typedef struct out {
    char *buf;
    size_t len, cap;
} out;

static void put(out *o, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(o->buf ? o->buf + o->len : NULL,
                          o->buf ? o->cap - o->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (o->buf && o->len + (size_t)n < o->cap) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap ? o->cap * 2 : 8192;
        while (cap <= o->len + (size_t)n)
            cap *= 2;
        char *p = realloc(o->buf, cap);
        if (!p)
            return;
        o->buf = p;
        o->cap = cap;
    }
}

static void put_histogram(out *o, const char *name, const char *network,
                          const unsigned long long *bucket,
                          const double *bounds, size_t n, double sum,
                          unsigned long long count)
{
    unsigned long long cumulative = 0;
    for (size_t b = 0; b < n; b++) {
        cumulative += bucket[b];
        put(o, "%s_bucket{network=\"%s\",le=\"%g\"} %llu\n", name, network,
            bounds[b], cumulative);
    }
    cumulative += bucket[n];
    put(o, "%s_bucket{network=\"%s\",le=\"+Inf\"} %llu\n"
           "%s_sum{network=\"%s\"} %.6f\n%s_count{network=\"%s\"} %llu\n",
        name, network, cumulative, name, network, sum, name, network, count);
}

/* Lock held. */
static void render_networks(out *o)
{
    put(o, "# HELP nerved_queue_seconds Time requests waited in their "
           "network's queue.\n# TYPE nerved_queue_seconds histogram\n");
    for (int i = 0; i < n_nets; i++)
        put_histogram(o, "nerved_queue_seconds", nets[i]->id,
                      nets[i]->queue.bucket, buckets, N_BUCKETS,
                      nets[i]->queue.sum, nets[i]->queue.count);
    put(o, "# HELP nerved_compute_seconds Time requests computed.\n"
           "# TYPE nerved_compute_seconds histogram\n");
    for (int i = 0; i < n_nets; i++)
        put_histogram(o, "nerved_compute_seconds", nets[i]->id,
                      nets[i]->compute.bucket, buckets, N_BUCKETS,
                      nets[i]->compute.sum, nets[i]->compute.count);
    put(o, "# HELP nerved_batch_rows Rows in each batched step.\n"
           "# TYPE nerved_batch_rows histogram\n");
    for (int i = 0; i < n_nets; i++)
        put_histogram(o, "nerved_batch_rows", nets[i]->id,
                      nets[i]->rows.bucket, row_buckets, N_ROW_BUCKETS,
                      nets[i]->rows.sum, nets[i]->rows.count);
    put(o, "# HELP nerved_batch_sessions Sessions stepped together in each "
           "batched step.\n# TYPE nerved_batch_sessions histogram\n");
    for (int i = 0; i < n_nets; i++)
        put_histogram(o, "nerved_batch_sessions", nets[i]->id,
                      nets[i]->sessions.bucket, row_buckets, N_ROW_BUCKETS,
                      nets[i]->sessions.sum, nets[i]->sessions.count);
    put(o, "# HELP nerved_rejected_total Requests refused unrun, by "
           "reason.\n# TYPE nerved_rejected_total counter\n");
    for (int i = 0; i < n_nets; i++)
        for (size_t r = 0; r < N_REASONS; r++)
            put(o, "nerved_rejected_total{network=\"%s\",reason=\"%s\"} "
                   "%llu\n", nets[i]->id, reasons[r], nets[i]->rejected[r]);
}

/* A gauge of 1 whose labels say what is running. */
static void build_info(out *o)
{
    const srv_blas_info *blas = srv_blas();
    put(o, "# HELP nerved_build_info The running daemon: its version and "
           "BLAS kernels as labels; always 1.\n"
           "# TYPE nerved_build_info gauge\n"
           "nerved_build_info{version=\"%s\",blas_core=\"%s\","
           "blas_mode=\"%s\",blas_selftest=\"%s\",cpu_features=\"%s\"} 1\n",
        NERVED_VERSION, blas->core, blas->mode, blas->selftest, blas->cpu);
}

char *srv_metrics_render(const char *const *route_names, int n_routes,
                         int networks, int sessions)
{
    out o = {0};
    pthread_mutex_lock(&lock);
    render_networks(&o);
    put(&o, "# HELP nerved_requests_total HTTP requests by route and status.\n"
            "# TYPE nerved_requests_total counter\n");
    for (int r = 0; r <= MAX_ROUTES; r++) {
        if (r >= n_routes && r != MAX_ROUTES)
            continue;
        for (int k = 0; k < routes[r].n_status; k++)
            put(&o, "nerved_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                r == MAX_ROUTES ? "unmatched" : route_names[r],
                routes[r].status[k], routes[r].count[k]);
    }
    put(&o, "# HELP nerved_request_duration_seconds Request latency.\n"
            "# TYPE nerved_request_duration_seconds histogram\n");
    unsigned long long cumulative = 0;
    for (size_t b = 0; b < N_BUCKETS; b++) {
        cumulative += bucket_count[b];
        put(&o, "nerved_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
            buckets[b], cumulative);
    }
    cumulative += bucket_count[N_BUCKETS];
    put(&o, "nerved_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
            "nerved_request_duration_seconds_sum %.6f\n"
            "nerved_request_duration_seconds_count %llu\n",
        cumulative, latency_sum, latency_count);
    put(&o, "# HELP nerved_networks Networks held.\n# TYPE nerved_networks gauge\n"
            "nerved_networks %d\n"
            "# HELP nerved_sessions Sessions held.\n# TYPE nerved_sessions gauge\n"
            "nerved_sessions %d\n"
            "# HELP nerved_forward_steps_total Steps computed.\n"
            "# TYPE nerved_forward_steps_total counter\n"
            "nerved_forward_steps_total %llu\n"
            "# HELP nerved_sessions_expired_total Sessions removed after idling.\n"
            "# TYPE nerved_sessions_expired_total counter\n"
            "nerved_sessions_expired_total %llu\n"
            "# HELP nerved_fits_total Training jobs ended, by outcome.\n"
            "# TYPE nerved_fits_total counter\n"
            "nerved_fits_total{outcome=\"done\"} %llu\n"
            "nerved_fits_total{outcome=\"failed_or_cancelled\"} %llu\n",
        networks, sessions, steps_total, expired_total, fits_done, fits_other);
    build_info(&o);
    pthread_mutex_unlock(&lock);
    return o.buf;
}
