/*
 * srv_metrics.c — request counts by route and status, a latency histogram,
 * steps computed and sessions expired.
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

char *srv_metrics_render(const char *const *route_names, int n_routes,
                         int networks, int sessions)
{
    out o = {0};
    pthread_mutex_lock(&lock);
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
    const srv_blas_info *blas = srv_blas();
    put(&o, "# HELP nerved_build_info Facts about this daemon as labels; "
            "always 1.\n# TYPE nerved_build_info gauge\n"
            "nerved_build_info{blas_core=\"%s\",blas_mode=\"%s\","
            "blas_selftest=\"%s\",cpu_features=\"%s\"} 1\n",
        blas->core, blas->mode, blas->selftest, blas->cpu);
    pthread_mutex_unlock(&lock);
    return o.buf;
}
