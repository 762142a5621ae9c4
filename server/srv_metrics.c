/*
 * srv_metrics.c — request counts by route and status and latency by route,
 * requests in flight, steps computed, sessions expired, training jobs, and
 * per network the requests, failures by reason, steps and latency, and the
 * scheduler's queue and compute times, batch sizes and refusals by reason;
 * with the process metrics every Prometheus client exports, from /proc.
 * Networks are capped (--max-networks) and forgotten when deleted, so the
 * network label's values are bounded.
 */
#define _GNU_SOURCE /* SRV_SHORT_LOCK */
#include "srv_metrics.h"
#include "srv.h"
#include "srv_blas.h"
#include "srv_budget.h"

#include <dirent.h>
#include <pthread.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define MAX_ROUTES 64
#define MAX_STATUSES 16

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                 5,      10};
#define N_BUCKETS (sizeof buckets / sizeof *buckets)

/* Counts per bucket of bounds (the latency buckets, or row_buckets, which
 * are fewer), the last for what is above them all. */
typedef struct histogram {
    unsigned long long bucket[N_BUCKETS + 1];
    double sum;
    unsigned long long count;
} histogram;

typedef struct route_stats {
    int status[MAX_STATUSES];
    unsigned long long count[MAX_STATUSES];
    int n_status;
    histogram latency;
} route_stats;

static pthread_mutex_t lock = SRV_SHORT_LOCK;
static route_stats routes[MAX_ROUTES + 1]; /* last: unmatched paths */
static unsigned long long steps_total, expired_total;
/* Moved twice by every request: an atomic, not the lock. */
static atomic_long in_flight;
static int fits_running;
static const char *const outcomes[] = {"done", "failed", "cancelled"};
#define N_OUTCOMES (sizeof outcomes / sizeof *outcomes)
static unsigned long long fits_ended[N_OUTCOMES];

/* Why a request failed, by its status: the values of the reason label of
 * nerved_network_failures_total. The last, "other", takes the rest. */
static const struct {
    int status;
    const char *reason;
} failure_reasons[] = {
    {400, "bad_request"}, {401, "unauthorized"}, {404, "not_found"},
    {405, "method_not_allowed"}, {409, "conflict"}, {413, "too_large"},
    {415, "unsupported_media_type"}, {422, "invalid"}, {429, "limit"},
    {500, "internal"}, {503, "unavailable"}, {504, "timeout"}, {0, "other"},
};
#define N_FAILURE_REASONS (sizeof failure_reasons / sizeof *failure_reasons)

/* ---------------------------------------------------- per network */

static const double row_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512,
                                     1024};
#define N_ROW_BUCKETS (sizeof row_buckets / sizeof *row_buckets)
static const char *const reasons[] = {"queue_full", "deadline", "memory",
                                      "quota", "shutdown"};
#define N_REASONS (sizeof reasons / sizeof *reasons)
#define MAX_NET_STATS 4096


typedef struct net_stats {
    char id[24];
    histogram queue, compute, latency;
    histogram rows, sessions;    /* of row_buckets */
    unsigned long long rejected[N_REASONS];
    unsigned long long requests, steps, failed[N_FAILURE_REASONS];
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

static void observe_in(histogram *h, const double *bounds, size_t n,
                       double value)
{
    size_t b = 0;
    while (b < n && value > bounds[b])
        b++;
    h->bucket[b]++;
    h->sum += value;
    h->count++;
}

static void observe(histogram *h, double seconds)
{
    observe_in(h, buckets, N_BUCKETS, seconds);
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

void srv_metrics_batch(const char *network, int rows, int sessions)
{
    pthread_mutex_lock(&lock);
    net_stats *st = stats_of(network);
    if (st) {
        observe_in(&st->rows, row_buckets, N_ROW_BUCKETS, rows);
        observe_in(&st->sessions, row_buckets, N_ROW_BUCKETS, sessions);
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

void srv_metrics_request(int route, const char *network, int status,
                         double seconds)
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
    observe(&r->latency, seconds);
    net_stats *st = network ? stats_of(network) : NULL;
    if (st) {
        st->requests++;
        observe(&st->latency, seconds);
        if (status >= 400) {
            size_t f = 0;
            while (failure_reasons[f].status &&
                   failure_reasons[f].status != status)
                f++;
            st->failed[f]++;
        }
    }
    pthread_mutex_unlock(&lock);
}

void srv_metrics_in_flight(int delta)
{
    atomic_fetch_add_explicit(&in_flight, delta, memory_order_relaxed);
}

void srv_metrics_steps(const char *network, long steps)
{
    pthread_mutex_lock(&lock);
    steps_total += (unsigned long long)steps;
    net_stats *st = network ? stats_of(network) : NULL;
    if (st)
        st->steps += (unsigned long long)steps;
    pthread_mutex_unlock(&lock);
}

void srv_metrics_fit_started(void)
{
    pthread_mutex_lock(&lock);
    fits_running++;
    pthread_mutex_unlock(&lock);
}

void srv_metrics_fit(const char *outcome)
{
    pthread_mutex_lock(&lock);
    fits_running--;
    for (size_t k = 0; k < N_OUTCOMES; k++)
        if (strcmp(outcomes[k], outcome) == 0)
            fits_ended[k]++;
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

/* One series of histogram name, its one label set to value. */
static void put_histogram(out *o, const char *name, const char *label,
                          const char *value, const unsigned long long *bucket,
                          const double *bounds, size_t n, double sum,
                          unsigned long long count)
{
    unsigned long long cumulative = 0;
    for (size_t b = 0; b < n; b++) {
        cumulative += bucket[b];
        put(o, "%s_bucket{%s=\"%s\",le=\"%g\"} %llu\n", name, label, value,
            bounds[b], cumulative);
    }
    cumulative += bucket[n];
    put(o, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %llu\n"
           "%s_sum{%s=\"%s\"} %.6f\n%s_count{%s=\"%s\"} %llu\n",
        name, label, value, cumulative, name, label, value, sum, name, label,
        value, count);
}

/* The scheduler's histograms of every network, in exposition order. */
static const struct {
    const char *name, *help;
    size_t offset;               /* of the histogram in net_stats */
    const double *bounds;
    size_t n;
} net_histograms[] = {
    {"nerved_queue_seconds", "Time requests waited in their network's "
     "queue.", offsetof(net_stats, queue), buckets, N_BUCKETS},
    {"nerved_compute_seconds", "Time requests computed.",
     offsetof(net_stats, compute), buckets, N_BUCKETS},
    {"nerved_batch_rows", "Rows in each batched step.",
     offsetof(net_stats, rows), row_buckets, N_ROW_BUCKETS},
    {"nerved_batch_sessions", "Sessions stepped together in each batched "
     "step.", offsetof(net_stats, sessions), row_buckets, N_ROW_BUCKETS},
    {"nerved_network_request_duration_seconds", "Latency of the requests "
     "for a network, received to answered.", offsetof(net_stats, latency),
     buckets, N_BUCKETS},
};

/* Lock held. */
static void render_networks(out *o)
{
    for (size_t h = 0; h < sizeof net_histograms / sizeof *net_histograms;
         h++) {
        put(o, "# HELP %s %s\n# TYPE %s histogram\n", net_histograms[h].name,
            net_histograms[h].help, net_histograms[h].name);
        for (int i = 0; i < n_nets; i++) {
            const histogram *x = (const histogram *)(
                (const char *)nets[i] + net_histograms[h].offset);
            put_histogram(o, net_histograms[h].name, "network", nets[i]->id,
                          x->bucket, net_histograms[h].bounds,
                          net_histograms[h].n, x->sum, x->count);
        }
    }
    put(o, "# HELP nerved_rejected_total Requests refused unrun, by "
           "reason.\n# TYPE nerved_rejected_total counter\n");
    for (int i = 0; i < n_nets; i++)
        for (size_t r = 0; r < N_REASONS; r++)
            put(o, "nerved_rejected_total{network=\"%s\",reason=\"%s\"} "
                   "%llu\n", nets[i]->id, reasons[r], nets[i]->rejected[r]);
    put(o, "# HELP nerved_network_requests_total Requests answered for a "
           "network their path named.\n"
           "# TYPE nerved_network_requests_total counter\n");
    for (int i = 0; i < n_nets; i++)
        put(o, "nerved_network_requests_total{network=\"%s\"} %llu\n",
            nets[i]->id, nets[i]->requests);
    put(o, "# HELP nerved_network_failures_total Requests for a network "
           "answered with an error, by reason (from the status).\n"
           "# TYPE nerved_network_failures_total counter\n");
    for (int i = 0; i < n_nets; i++)
        for (size_t f = 0; f < N_FAILURE_REASONS; f++)
            put(o, "nerved_network_failures_total{network=\"%s\","
                   "reason=\"%s\"} %llu\n", nets[i]->id,
                failure_reasons[f].reason, nets[i]->failed[f]);
    put(o, "# HELP nerved_network_steps_total Steps computed, by network.\n"
           "# TYPE nerved_network_steps_total counter\n");
    for (int i = 0; i < n_nets; i++)
        put(o, "nerved_network_steps_total{network=\"%s\"} %llu\n",
            nets[i]->id, nets[i]->steps);
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

/* The standard process metrics of Prometheus's client libraries, from
 * /proc/self; what cannot be read is left out rather than made up. */
static void process_metrics(out *o)
{
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/stat", "r");
    char line[1024];
    if (f && ticks > 0 && page > 0 && fgets(line, sizeof line, f)) {
        /* After the command's closing parenthesis: field 3 on. */
        const char *p = strrchr(line, ')');
        unsigned long long utime, stime, start, vsize;
        long rss;
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                        "%llu %llu %*d %*d %*d %*d %*d %*d %llu %llu %ld",
                        &utime, &stime, &start, &vsize, &rss) == 5) {
            put(o, "# HELP process_cpu_seconds_total Total user and system "
                   "CPU time spent in seconds.\n"
                   "# TYPE process_cpu_seconds_total counter\n"
                   "process_cpu_seconds_total %.2f\n"
                   "# HELP process_resident_memory_bytes Resident memory "
                   "size in bytes.\n"
                   "# TYPE process_resident_memory_bytes gauge\n"
                   "process_resident_memory_bytes %lld\n"
                   "# HELP process_virtual_memory_bytes Virtual memory size "
                   "in bytes.\n"
                   "# TYPE process_virtual_memory_bytes gauge\n"
                   "process_virtual_memory_bytes %llu\n",
                (double)(utime + stime) / (double)ticks,
                (long long)rss * page, vsize);
            FILE *st = fopen("/proc/stat", "r");
            unsigned long long boot = 0;
            while (st && fgets(line, sizeof line, st))
                if (sscanf(line, "btime %llu", &boot) == 1)
                    break;
            if (st)
                fclose(st);
            if (boot)
                put(o, "# HELP process_start_time_seconds Start time of the "
                       "process since unix epoch in seconds.\n"
                       "# TYPE process_start_time_seconds gauge\n"
                       "process_start_time_seconds %.2f\n",
                    (double)boot + (double)start / (double)ticks);
        }
    }
    if (f)
        fclose(f);
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long n = 0;
        for (struct dirent *e; (e = readdir(d));)
            n += e->d_name[0] != '.';
        closedir(d);
        put(o, "# HELP process_open_fds Number of open file descriptors.\n"
               "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n",
            n - 1); /* less the one opendir holds */
    }
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
        put(o, "# HELP process_max_fds Maximum number of open file "
               "descriptors.\n# TYPE process_max_fds gauge\n"
               "process_max_fds %llu\n", (unsigned long long)lim.rlim_cur);
}

/* Lock held. */
static void render_routes(out *o, const char *const *route_names,
                          int n_routes)
{
    put(o, "# HELP nerved_requests_total HTTP requests by route and status.\n"
           "# TYPE nerved_requests_total counter\n");
    for (int r = 0; r <= MAX_ROUTES; r++) {
        if (r >= n_routes && r != MAX_ROUTES)
            continue;
        for (int k = 0; k < routes[r].n_status; k++)
            put(o, "nerved_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                r == MAX_ROUTES ? "unmatched" : route_names[r],
                routes[r].status[k], routes[r].count[k]);
    }
    put(o, "# HELP nerved_request_duration_seconds Request latency by "
           "route, received to answered.\n"
           "# TYPE nerved_request_duration_seconds histogram\n");
    for (int r = 0; r <= MAX_ROUTES; r++) {
        if ((r >= n_routes && r != MAX_ROUTES) || !routes[r].latency.count)
            continue;
        const histogram *h = &routes[r].latency;
        put_histogram(o, "nerved_request_duration_seconds", "route",
                      r == MAX_ROUTES ? "unmatched" : route_names[r],
                      h->bucket, buckets, N_BUCKETS, h->sum, h->count);
    }
}

char *srv_metrics_render(const char *const *route_names, int n_routes,
                         const srv_metrics_gauges *g)
{
    out o = {0};
    pthread_mutex_lock(&lock);
    render_networks(&o);
    render_routes(&o, route_names, n_routes);
    put(&o, "# HELP nerved_memory_budget_bytes The memory budget "
            "(--max-memory).\n# TYPE nerved_memory_budget_bytes gauge\n"
            "nerved_memory_budget_bytes %zu\n"
            "# HELP nerved_memory_charged_bytes Bytes charged to the memory "
            "budget now.\n# TYPE nerved_memory_charged_bytes gauge\n"
            "nerved_memory_charged_bytes %zu\n"
            "# HELP nerved_in_flight_requests Requests received and not yet "
            "answered.\n# TYPE nerved_in_flight_requests gauge\n"
            "nerved_in_flight_requests %ld\n"
            "# HELP nerved_open_connections Open HTTP connections.\n"
            "# TYPE nerved_open_connections gauge\n"
            "nerved_open_connections %d\n"
            "# HELP nerved_networks Networks held.\n# TYPE nerved_networks gauge\n"
            "nerved_networks %d\n"
            "# HELP nerved_sessions Sessions held.\n# TYPE nerved_sessions gauge\n"
            "nerved_sessions %d\n"
            "# HELP nerved_forward_steps_total Steps computed.\n"
            "# TYPE nerved_forward_steps_total counter\n"
            "nerved_forward_steps_total %llu\n"
            "# HELP nerved_sessions_expired_total Sessions removed after idling.\n"
            "# TYPE nerved_sessions_expired_total counter\n"
            "nerved_sessions_expired_total %llu\n"
            "# HELP nerved_fits_running Training jobs running.\n"
            "# TYPE nerved_fits_running gauge\n"
            "nerved_fits_running %d\n"
            "# HELP nerved_fits_total Training jobs ended, by outcome.\n"
            "# TYPE nerved_fits_total counter\n",
        srv_budget_limit(), srv_budget_used(),
        atomic_load_explicit(&in_flight, memory_order_relaxed),
        g->connections, g->networks, g->sessions, steps_total,
        expired_total, fits_running);
    for (size_t k = 0; k < N_OUTCOMES; k++)
        put(&o, "nerved_fits_total{outcome=\"%s\"} %llu\n", outcomes[k],
            fits_ended[k]);
    build_info(&o);
    pthread_mutex_unlock(&lock);
    put(&o, "# HELP nerved_queue_depth Requests waiting in a network's "
            "queue.\n# TYPE nerved_queue_depth gauge\n");
    for (int i = 0; i < g->n_queues; i++)
        put(&o, "nerved_queue_depth{network=\"%s\"} %d\n",
            g->queues[i].network, g->queues[i].queued);
    put(&o, "# HELP nerved_queue_running Requests of a network computing "
            "now.\n# TYPE nerved_queue_running gauge\n");
    for (int i = 0; i < g->n_queues; i++)
        put(&o, "nerved_queue_running{network=\"%s\"} %d\n",
            g->queues[i].network, g->queues[i].running);
    process_metrics(&o);
    return o.buf;
}
