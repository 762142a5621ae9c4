/*
 * srv_live.c — see srv_live.h. Three parties share a live: the compute
 * thread pushing (until its job ends), the HTTP thread reading, and
 * libmicrohttpd's response (until it frees it). The last to leave frees
 * it.
 */
#include "srv_live.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_codec.h"
#include "srv_budget.h"
#include "srv_http.h"
#include "srv_sched.h"

struct srv_live {
    pthread_mutex_t lock;
    pthread_cond_t room;
    float *ring;
    size_t window;
    /* Rings outgrown while the reader may still read the one it was
     * given: freed at its next look. */
    float *retired[48];
    int n_retired;
    size_t retired_bytes; /* theirs, charged to the budget until freed */
    size_t charged;    /* bytes of growth charged to the memory budget */
    double stall_seconds;
    int stalled;       /* the client took nothing for stall_seconds with
                          the budget spent: cut off */
    size_t pushed;     /* floats pushed */
    size_t sent_from;  /* the reader has sent everything before it */
    int cut;           /* ended early with tail */
    char tail[600];
    int job_over;      /* the job ended: the body may end */
    int gone;          /* the response was freed (the client went away) */
    int paused;        /* the reader suspended the connection */
    void *conn;
    int refs;          /* the job, the response */
    api_enc *enc;
};

srv_live *srv_live_new(size_t window, double stall_seconds)
{
    srv_live *l = calloc(1, sizeof *l);
    float *ring = l ? malloc(window * sizeof *ring) : NULL;
    if (!ring) {
        free(l);
        return NULL;
    }
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->room, NULL);
    l->ring = ring;
    l->window = window;
    l->stall_seconds = stall_seconds;
    return l;
}

static void free_retired(srv_live *l)
{
    for (int i = 0; i < l->n_retired; i++)
        free(l->retired[i]);
    l->n_retired = 0;
    srv_budget_release(l->retired_bytes);
    l->retired_bytes = 0;
}

static void live_free(srv_live *l)
{
    free_retired(l);
    srv_budget_release(l->charged);
    api_enc_free(l->enc);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->room);
    free(l->ring);
    free(l);
}

/* Lock held: releases it and one reference. */
static void put_locked(srv_live *l)
{
    int last = --l->refs == 0;
    pthread_mutex_unlock(&l->lock);
    if (last)
        live_free(l);
}

/* Lock held: the connection to resume once it is released, or NULL.
 * A paused connection is not processed, so it cannot go away meanwhile;
 * resuming outside the lock keeps libmicrohttpd's own locks out of it. */
static void *reader_to_wake(srv_live *l)
{
    if (!l->paused || !l->conn)
        return NULL;
    l->paused = 0;
    return l->conn;
}

static void wake(void *conn)
{
    if (conn)
        srv_http_wake(conn);
}

const float *srv_live_source(void *live, size_t k, size_t *n,
                             const char **tail)
{
    srv_live *l = live;
    const float *w = NULL;
    pthread_mutex_lock(&l->lock);
    /* The reader is done with what it was given last. */
    free_retired(l);
    if (k > l->sent_from) {
        l->sent_from = k;
        pthread_cond_signal(&l->room);
    }
    *n = 0;
    if (k < l->pushed) {
        size_t at = k % l->window;
        *n = l->pushed - k < l->window - at ? l->pushed - k : l->window - at;
        w = l->ring + at;
    } else if (l->cut) {
        *tail = l->tail;
    }
    pthread_mutex_unlock(&l->lock);
    return w;
}

static ssize_t live_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    srv_live *l = cls;
    for (;;) {
        size_t n = api_enc_next(l->enc, buf, max);
        if (n)
            return (ssize_t)n;
        if (api_enc_broken(l->enc))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        pthread_mutex_lock(&l->lock);
        if (l->stalled) {
            pthread_mutex_unlock(&l->lock);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        int more = api_enc_waiting(l->enc)
                       ? l->pushed > l->sent_from || l->cut
                       : 0;
        if (!more && l->job_over) {
            /* Still waiting once the job is over: it pushed less than it
             * said it would, and the body cannot end well. */
            int waiting = api_enc_waiting(l->enc);
            pthread_mutex_unlock(&l->lock);
            return waiting ? MHD_CONTENT_READER_END_WITH_ERROR
                           : MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (!more) {
            /* Nothing to send until a push, or the job's end: the
             * connection sleeps until one wakes it. */
            l->paused = 1;
            srv_http_pause(l->conn);
            pthread_mutex_unlock(&l->lock);
            return 0;
        }
        pthread_mutex_unlock(&l->lock);
    }
}

static void live_response_free(void *cls)
{
    srv_live *l = cls;
    pthread_mutex_lock(&l->lock);
    l->gone = 1;
    l->conn = NULL;
    pthread_cond_broadcast(&l->room);
    put_locked(l);
}

static void live_job_over(void *cls)
{
    srv_live *l = cls;
    pthread_mutex_lock(&l->lock);
    l->job_over = 1;
    void *conn = reader_to_wake(l);
    put_locked(l);
    wake(conn);
}

void srv_live_send(srv_live *l, srv_request *req, api_enc *enc, int binary,
                   uint64_t binary_size)
{
    l->enc = enc;
    l->refs = 2;
    srv_reply_stream_sized(
        req, 200, binary ? "application/octet-stream" : "application/json",
        binary ? binary_size : SRV_UNSIZED, live_read, l, live_response_free);
    srv_request_send_now(req, live_job_over, l, &l->conn);
}

void srv_live_drop(srv_live *l)
{
    if (l)
        live_free(l);
}

/* Lock held: doubles the window, if the memory budget allows, keeping
 * the floats not yet sent at their positions modulo the new size. */
static int grow(srv_live *l)
{
    /* The growth, and the old ring for as long as it is retired: both
     * rings are allocated until the reader's next look. */
    size_t window = l->window * 2, bytes = l->window * sizeof(float);
    if (l->n_retired == (int)(sizeof l->retired / sizeof *l->retired) ||
        srv_budget_charge(2 * bytes))
        return -1;
    float *ring = malloc(window * sizeof *ring);
    if (!ring) {
        srv_budget_release(2 * bytes);
        return -1;
    }
    for (size_t k = l->sent_from; k < l->pushed; k++)
        ring[k % window] = l->ring[k % l->window];
    l->retired[l->n_retired++] = l->ring;
    l->retired_bytes += bytes;
    l->ring = ring;
    l->window = window;
    l->charged += bytes;
    return 0;
}

/* How long the run waits for a reader that is taking nothing before it
 * grows the window instead: a reader that keeps up takes a piece every
 * few hundred microseconds. */
#define GROW_AFTER_SECONDS 0.02

int srv_live_push(srv_live *l, const float *v, size_t n)
{
    pthread_mutex_lock(&l->lock);
    double progress = 0; /* when the reader last took something */
    while (!l->gone && !l->stalled &&
           l->pushed + n - l->sent_from > l->window) {
        double now = srv_now();
        if (!progress)
            progress = now;
        /* A client slower than the run: hold more rather than keep a
         * compute thread waiting for it, while the budget allows. */
        if (now - progress >= GROW_AFTER_SECONDS && grow(l) == 0)
            continue;
        if (now - progress >= l->stall_seconds) {
            l->stalled = 1;
            break;
        }
        double wait = now - progress < GROW_AFTER_SECONDS
                          ? progress + GROW_AFTER_SECONDS - now
                          : 0.1;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)(wait * 1e9);
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        size_t before = l->sent_from;
        pthread_cond_timedwait(&l->room, &l->lock, &until);
        if (l->sent_from != before)
            progress = srv_now();
    }
    if (l->gone || l->stalled) {
        pthread_mutex_unlock(&l->lock);
        return -1;
    }
    for (size_t k = 0; k < n;) {
        size_t at = (l->pushed + k) % l->window;
        size_t run = n - k < l->window - at ? n - k : l->window - at;
        memcpy(l->ring + at, v + k, run * sizeof *v);
        k += run;
    }
    l->pushed += n;
    void *conn = reader_to_wake(l);
    pthread_mutex_unlock(&l->lock);
    wake(conn);
    return 0;
}

void srv_live_cut(srv_live *l, const char *tail)
{
    pthread_mutex_lock(&l->lock);
    snprintf(l->tail, sizeof l->tail, "%s", tail);
    l->cut = 1;
    void *conn = reader_to_wake(l);
    pthread_mutex_unlock(&l->lock);
    wake(conn);
}
