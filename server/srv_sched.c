/*
 * srv_sched.c — per-network job queues and the compute threads that drain
 * them, batching single steps of different sessions into one engine step.
 *
 * One mutex guards every queue. A queue with jobs is on the ready ring; a
 * compute thread takes the ring's first queue, takes from it what it can
 * run now (the first job whose key is not running, and, when that job is
 * a single step, the next steps of other keys up to --batch-max-rows),
 * puts the queue back at the ring's end when it still holds jobs, and runs
 * what it took without the lock. Jobs blocked behind a running key stay
 * where they are; the queue comes back on the ring when that key ends.
 */
#define _GNU_SOURCE /* SRV_SHORT_LOCK */
#include "srv_sched.h"
#include "srv_metrics.h"
#include "srv_store.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_THREADS 256
#define MAX_BATCH_JOBS 1024

typedef struct sched_queue {
    struct sched_queue *all_prev, *all_next; /* every queue, for sweeps */
    srv_job *head, *tail;
    int queued, running;
    int listed;                  /* on the ready ring */
    struct sched_queue *next_ready;
    uint64_t *busy;              /* keys of running jobs */
    int n_busy, cap_busy;
    /* A staging area per compute thread for batched steps, made when the
     * thread first batches this network's steps. */
    nn_batcher *batchers[MAX_THREADS];
    /* A small stateless session per compute thread, renewed for each
     * forward instead of allocated (srv_sched_stateless_session). */
    nn_session *stateless[MAX_THREADS];
    /* Threads still touching the queue after their jobs were answered
     * (which may have freed the network): the last one frees a dead
     * queue. */
    int pins;
    int dead;
    int step_batches;            /* batched steps running */
    /* The key of the last step submitted, and when a step of another key
     * than the one before it was last submitted: a batch waits for
     * company only when several sessions have been stepping lately. */
    uint64_t last_step_key;
    double mixed_at;
} sched_queue;

static pthread_mutex_t lock = SRV_SHORT_LOCK;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;
static sched_queue *ready_head, *ready_tail;
static sched_queue global_queue; /* jobs of no network */
static sched_queue *all_queues = &global_queue;
/* The build lane: one queue, never on the ready ring, drained by its own
 * threads (build_main). */
static sched_queue build_queue;
static pthread_cond_t build_work = PTHREAD_COND_INITIALIZER;
static pthread_t build_threads[MAX_THREADS];
static int n_build_threads;
static srv_sched_config conf;
static pthread_t threads[MAX_THREADS];
static int n_threads, stopping;
/* The compute thread's index, -1 on every other thread. */
static _Thread_local int this_thread = -1;

double srv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t srv_sched_key(const char *kind, const char *name)
{
    /* FNV-1a: equal names give equal keys; a rare collision only makes
     * two sessions wait for each other. */
    uint64_t h = 1469598103934665603ull;
    for (const char *p = kind; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ ':') * 1099511628211ull;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h ? h : 1;
}

/* ---------------------------------------------------------- queues */

void *srv_sched_queue_new(void)
{
    sched_queue *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    pthread_mutex_lock(&lock);
    q->all_next = all_queues;
    all_queues->all_prev = q;
    all_queues = q;
    pthread_mutex_unlock(&lock);
    return q;
}

/* Called when the network goes: its jobs held it, so none is queued and
 * no batch runs; a thread may still be finishing its bookkeeping. */
void srv_sched_queue_free(void *queue)
{
    sched_queue *q = queue;
    if (!q)
        return;
    for (int i = 0; i < MAX_THREADS; i++) {
        nn_batcher_free(q->batchers[i]);
        nn_session_free(q->stateless[i]);
    }
    pthread_mutex_lock(&lock);
    if (q->all_prev)
        q->all_prev->all_next = q->all_next;
    else
        all_queues = q->all_next;
    if (q->all_next)
        q->all_next->all_prev = q->all_prev;
    int later = q->pins > 0;
    q->dead = 1;
    pthread_mutex_unlock(&lock);
    if (!later) {
        free(q->busy);
        free(q);
    }
}

static sched_queue *queue_of(const srv_network *net)
{
    return net ? (sched_queue *)net->sched : &global_queue;
}

void srv_sched_queue_depth(const srv_network *net, int *queued, int *running)
{
    pthread_mutex_lock(&lock);
    const sched_queue *q = queue_of(net);
    *queued = q->queued;
    *running = q->running;
    pthread_mutex_unlock(&lock);
}

/* Lock held. */
static void list_ready(sched_queue *q)
{
    if (q->listed || !q->queued)
        return;
    q->listed = 1;
    q->next_ready = NULL;
    if (ready_tail)
        ready_tail->next_ready = q;
    else
        ready_head = q;
    ready_tail = q;
}

/* Lock held: whether a listed queue other than q has work. */
static int others_ready(const sched_queue *q)
{
    for (const sched_queue *r = ready_head; r; r = r->next_ready)
        if (r != q && r->queued)
            return 1;
    return 0;
}

static sched_queue *pop_ready(void)
{
    sched_queue *q = ready_head;
    if (q) {
        ready_head = q->next_ready;
        if (!ready_head)
            ready_tail = NULL;
        q->listed = 0;
    }
    return q;
}

static int key_busy(const sched_queue *q, uint64_t key)
{
    for (int i = 0; key && i < q->n_busy; i++)
        if (q->busy[i] == key)
            return 1;
    return 0;
}

static int mark_busy(sched_queue *q, uint64_t key)
{
    if (!key)
        return 0;
    if (q->n_busy == q->cap_busy) {
        int cap = q->cap_busy ? 2 * q->cap_busy : 16;
        uint64_t *p = realloc(q->busy, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        q->busy = p;
        q->cap_busy = cap;
    }
    q->busy[q->n_busy++] = key;
    return 0;
}

static void unmark_busy(sched_queue *q, uint64_t key)
{
    for (int i = 0; key && i < q->n_busy; i++)
        if (q->busy[i] == key) {
            q->busy[i] = q->busy[--q->n_busy];
            return;
        }
}

static void unlink_job(sched_queue *q, srv_job *prev, srv_job *job)
{
    if (prev)
        prev->next = job->next;
    else
        q->head = job->next;
    if (q->tail == job)
        q->tail = prev;
    job->next = NULL;
    q->queued--;
}

/* ------------------------------------------------------ answering */

static int total_queued, total_running; /* lock held */

static void refuse(srv_job *job, int status, const char *code,
                   const char *reason, const char *message)
{
    srv_reply_fail(&job->req, status, code, "%s", message);
    job->req.retry_after = 1;
    srv_metrics_rejected(job->net ? job->net->id : NULL, reason);
}

static void answer(srv_job *job)
{
    job->finished_at = srv_now();
    if (job->started_at > 0)
        srv_metrics_job(job->net ? job->net->id : NULL,
                        job->started_at - job->queued_at,
                        job->finished_at - job->started_at);
    job->done(job);
}

/* Lock held: moves the queue's jobs whose deadline is before `before`
 * onto *out. */
static void take_expired(sched_queue *q, double before, srv_job **out)
{
    srv_job *prev = NULL;
    for (srv_job *j = q->head, *next; j; j = next) {
        next = j->next;
        if (j->deadline > before) {
            prev = j;
            continue;
        }
        unlink_job(q, prev, j);
        total_queued--;
        j->next = *out;
        *out = j;
    }
}

/* Answers jobs that will not run: 504 past their deadline, or 503 when
 * the server stops first. Neither changed anything. */
static void answer_unrun(srv_job *list, int shutting_down)
{
    for (srv_job *j = list, *next; j; j = next) {
        next = j->next;
        if (shutting_down)
            refuse(j, 503, "unavailable", "shutdown", "the server is shutting "
                   "down; the request was not run");
        else
            refuse(j, 504, "timeout", "deadline", "the request waited longer "
                   "than --request-timeout in its queue and was not run");
        answer(j);
    }
}

/* The deferred job's two parties, the compute thread that ran its handler
 * and the thread that replied later, each end their part here; the later
 * one answers. */
static void end_part(srv_job *job)
{
    if (atomic_fetch_sub(&job->req.defer_refs, 1) == 1)
        answer(job);
}

void srv_request_defer(srv_request *req)
{
    atomic_store(&req->defer_refs, 2);
}

void srv_request_finish(srv_request *req)
{
    /* The request is the first member of its job. */
    end_part((srv_job *)req);
}

/* ------------------------------------------------------ submitting */

int srv_sched_submit(srv_job *job)
{
    job->queued_at = srv_now();
    job->deadline = job->queued_at + conf.timeout;
    job->next = NULL;
    pthread_mutex_lock(&lock);
    sched_queue *q = job->build ? &build_queue : queue_of(job->net);
    int refused = stopping ? 1 : q->queued >= conf.max_queue ? 2 : 0;
    if (!refused) {
        if (q->tail)
            q->tail->next = job;
        else
            q->head = job;
        q->tail = job;
        q->queued++;
        total_queued++;
        if (job->step) {
            if (q->last_step_key && job->key != q->last_step_key)
                q->mixed_at = job->queued_at;
            q->last_step_key = job->key;
        }
        if (q == &build_queue) {
            pthread_cond_signal(&build_work);
        } else {
            list_ready(q);
            /* One thread: a thread filling a batch that wakes for another
             * network's job passes the signal on (fill_batch). Waking all
             * for every request cost the small ones a context switch
             * each. */
            pthread_cond_signal(&work);
        }
    }
    pthread_mutex_unlock(&lock);
    if (refused == 1)
        refuse(job, 503, "unavailable", "shutdown", "the server is shutting "
               "down");
    else if (refused == 2)
        refuse(job, 503, "queue_full", "queue_full", "the network's queue is "
               "full (--max-queue); retry later");
    return refused ? -1 : 0;
}

/* ------------------------------------------------------- computing */

/* Floats of the largest stateless session a thread keeps between
 * requests: the kept ones sit outside the memory budget, so only the
 * small requests, whose allocation costs as much as their step, keep
 * theirs (64 KiB each). */
#define STATELESS_KEEP_FLOATS ((size_t)16384)

nn_session *srv_sched_stateless_session(srv_network *net, int batch,
                                        uint64_t seed, nn_error *err)
{
    sched_queue *q = net ? queue_of(net) : NULL;
    nn_session *s = NULL;
    if (q && this_thread >= 0) {
        /* Only this thread touches its slot while it runs a job of the
         * network, which holds the network. */
        s = q->stateless[this_thread];
        q->stateless[this_thread] = NULL;
    }
    if (s && nn_session_batch(s) == batch &&
        nn_session_renew(s, seed, err) == NN_OK)
        return s;
    nn_session_free(s);
    return nn_session_new(net->graph, batch, seed, err);
}

void srv_sched_stateless_done(srv_network *net, nn_session *s)
{
    sched_queue *q = net ? queue_of(net) : NULL;
    if (s && q && this_thread >= 0 && !q->stateless[this_thread] &&
        nn_session_float_count(net->graph, nn_session_batch(s)) <=
            STATELESS_KEEP_FLOATS) {
        q->stateless[this_thread] = s;
        return;
    }
    nn_session_free(s);
}

/* Lock held: takes from q what can run now into jobs[]: the first job
 * whose key is free and, if it is a step, the further steps of other free
 * keys that fit in the row limit. Returns how many; *rows counts the
 * steps' rows. */
static int take(sched_queue *q, srv_job **jobs, int n, int cap, int *rows)
{
    srv_job *prev = NULL;
    uint64_t waiting[MAX_BATCH_JOBS];
    int n_waiting = 0;
    for (srv_job *j = q->head, *next; j && n < cap; j = next) {
        next = j->next;
        int listed = 0;
        for (int k = 0; !listed && j->key && k < n_waiting; k++)
            listed = waiting[k] == j->key;
        int blocked = listed || key_busy(q, j->key);
        /* A step starts a new batch only while fewer than
         * --batch-instances of the network's batches run: steps that wait
         * meanwhile make the next batch fuller, and one GEMM of many rows
         * reads W once where two of half as many read it twice. */
        int fits = n == 0 ? !j->step || !conf.batching ||
                                q->step_batches < conf.batch_instances
                          : jobs[0]->step && j->step && conf.batching &&
                                *rows + j->batch_rows <= conf.batch_max_rows;
        if (blocked || !fits || mark_busy(q, j->key)) {
            /* Later jobs of its key must wait behind it. When the list of
             * such keys is full, nothing further is taken this time:
             * a job passed over and forgotten would let a later one of
             * its key go first. */
            if (j->key && !listed) {
                if (n_waiting == MAX_BATCH_JOBS)
                    break;
                waiting[n_waiting++] = j->key;
            }
            prev = j;
            continue;
        }
        unlink_job(q, prev, j);
        total_queued--;
        q->running++;
        total_running++;
        if (n == 0 && j->step)
            q->step_batches++;
        jobs[n++] = j;
        if (!j->step)
            break;
        *rows += j->batch_rows;
    }
    return n;
}

/* Lock held: whether a step of q should wait for others to batch with:
 * when steps of two sessions came in turn within the last few windows. A
 * session stepping alone (one client's stream) would otherwise wait out
 * the window at every step for company that never comes, and sessions
 * whose steps come further apart than that would not meet anyway. */
static int company_likely(const sched_queue *q)
{
    double horizon = 4e-6 * conf.batch_window_us;
    if (horizon < 1e-3)
        horizon = 1e-3;
    return q->mixed_at > 0 && srv_now() - q->mixed_at < horizon;
}

/* Lock held: takes more steps for a batch until it is full or the batch
 * window has passed, as a dynamic batcher's queue delay. */
static int fill_batch(sched_queue *q, srv_job **jobs, int n, int cap,
                      int *rows)
{
    double until = srv_now() + 1e-6 * conf.batch_window_us;
    while (*rows < conf.batch_max_rows && !stopping) {
        double left = until - srv_now();
        if (left <= 0)
            break;
        if (!q->queued) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            long ns = ts.tv_nsec + (long)(left * 1e9);
            ts.tv_sec += ns / 1000000000L;
            ts.tv_nsec = ns % 1000000000L;
            pthread_cond_timedwait(&work, &lock, &ts);
            /* The signal may have been meant for another network's job.
             * Passed on for this queue's own, two threads filling batches
             * of it would wake each other without end. */
            if (others_ready(q))
                pthread_cond_signal(&work);
        }
        int before = n;
        n = take(q, jobs, n, cap, rows);
        if (n == before && q->queued)
            break; /* what is queued waits for a busy key or is no step */
    }
    return n;
}

static nn_batcher *batcher_for(sched_queue *q, int thread, nn_graph *g)
{
    if (!q->batchers[thread]) {
        nn_error e;
        q->batchers[thread] = nn_batcher_new(g, conf.batch_max_rows, &e);
    }
    return q->batchers[thread];
}

/* Runs single steps together: each is prepared alone (its inputs read
 * into its session), the prepared ones step as one batch, and each is
 * answered alone. While a batch holds some sessions' locks it only tries
 * the others' (their keys are this thread's, so only a request reaching
 * the same session another way can hold one); a job whose lock was taken
 * runs alone afterwards, waiting for it. */
static void run_steps(sched_queue *q, int thread, srv_job **jobs, int n)
{
    nn_session *sessions[MAX_BATCH_JOBS];
    int train[MAX_BATCH_JOBS];
    srv_job *ready[MAX_BATCH_JOBS], *later[MAX_BATCH_JOBS];
    srv_job *failed[MAX_BATCH_JOBS];
    int m = 0, rows = 0, n_later = 0, n_failed = 0;
    double started = srv_now();
    /* Weights before sessions, the order every route takes them in. */
    srv_network *net = jobs[0]->net;
    pthread_rwlock_rdlock(&net->weights);
    for (int i = 0; i < n; i++) {
        jobs[i]->started_at = started;
        jobs[i]->may_wait = n == 1;
        int rc = jobs[i]->step->prepare(jobs[i]);
        if (rc > 0) {
            later[n_later++] = jobs[i];
            continue;
        }
        if (rc < 0) {
            /* Answered once the lock is released: an answer may free the
             * network, lock and all. */
            failed[n_failed++] = jobs[i];
            continue;
        }
        ready[m] = jobs[i];
        sessions[m] = jobs[i]->run_session;
        train[m] = jobs[i]->train;
        rows += nn_session_batch(jobs[i]->run_session);
        m++;
    }
    if (m == 0) {
        pthread_rwlock_unlock(&net->weights);
        for (int i = 0; i < n_failed; i++)
            answer(failed[i]);
        for (int i = 0; i < n_later; i++)
            run_steps(q, thread, &later[i], 1);
        return;
    }
    nn_error e;
    nn_error_clear(&e);
    nn_batcher *b = m > 1 ? batcher_for(q, thread, net->graph) : NULL;
    /* A failed batch changes no session: then each steps alone, so each
     * failure reaches the request it belongs to. */
    int batched = b && rows <= nn_batcher_max_rows(b) &&
                  nn_session_step_many(b, sessions, train, m, &e) == NN_OK;
    for (int i = 0; i < m; i++) {
        int rc = NN_OK;
        nn_error_clear(&e);
        if (!batched)
            rc = nn_session_step(sessions[i], train[i], &e);
        ready[i]->batch_rows = batched ? rows : nn_session_batch(sessions[i]);
        ready[i]->step->finish(ready[i], rc, &e);
    }
    pthread_rwlock_unlock(&net->weights);
    srv_metrics_batch(net->id, rows, m);
    srv_metrics_steps(net->id, m);
    for (int i = 0; i < n_failed; i++)
        answer(failed[i]);
    for (int i = 0; i < m; i++)
        answer(ready[i]);
    for (int i = 0; i < n_later; i++)
        run_steps(q, thread, &later[i], 1);
}

/* Runs a job that is not a single step, and answers it unless its
 * handler deferred the answer (then whoever ends last answers). */
static void run_job(srv_job *job)
{
    job->started_at = srv_now();
    job->req.queue_ns = (uint64_t)((job->started_at - job->queued_at) * 1e9);
    job->run(job);
    if (atomic_load(&job->req.defer_refs) == 0)
        answer(job);
    else
        end_part(job);
}

static void *worker_main(void *arg)
{
    int thread = (int)(intptr_t)arg;
    srv_job *jobs[MAX_BATCH_JOBS];
    this_thread = thread;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!ready_head && !(stopping && !total_running))
            pthread_cond_wait(&work, &lock);
        sched_queue *q = pop_ready();
        if (!q)
            break;
        srv_job *unrun = NULL;
        take_expired(q, stopping ? 1e300 : srv_now(), &unrun);
        int rows = 0, n = take(q, jobs, 0, MAX_BATCH_JOBS, &rows);
        if (n > 0 && jobs[0]->step && conf.batching &&
            conf.batch_window_us > 0 && company_likely(q))
            n = fill_batch(q, jobs, n, MAX_BATCH_JOBS, &rows);
        /* A queue whose every job waits behind a running one is listed
         * again when that one ends: listing it now would have this thread
         * spin on it meanwhile, taking the lock from those who submit.
         * With nothing running, only a failed allocation blocks it. */
        if (n > 0 || q->running == 0)
            list_ready(q);
        q->pins++;
        int shutting_down = stopping;
        pthread_mutex_unlock(&lock);
        answer_unrun(unrun, shutting_down);
        /* Once answered, a job may be freed at once: what the
         * bookkeeping below needs is copied first. */
        uint64_t keys[MAX_BATCH_JOBS];
        for (int i = 0; i < n; i++)
            keys[i] = jobs[i]->key;
        int steps = n > 0 && jobs[0]->step;
        if (steps) {
            run_steps(q, thread, jobs, n);
        } else if (n > 0) {
            run_job(jobs[0]);
        }
        pthread_mutex_lock(&lock);
        for (int i = 0; i < n; i++)
            unmark_busy(q, keys[i]);
        q->running -= n;
        total_running -= n;
        if (steps)
            q->step_batches--;
        int gone = --q->pins == 0 && q->dead;
        if (!gone && (n > 0 || q->running == 0))
            list_ready(q);
        if (stopping)
            pthread_cond_broadcast(&work);
        else if (ready_head)
            pthread_cond_signal(&work);
        if (gone) {
            free(q->busy);
            free(q);
        }
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

/* A build thread: takes the build lane's jobs in order, one at a time. */
static void *build_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!build_queue.head && !stopping)
            pthread_cond_wait(&build_work, &lock);
        srv_job *job = build_queue.head;
        if (!job)
            break; /* stopping, and drain answered what was queued */
        unlink_job(&build_queue, NULL, job);
        total_queued--;
        int late = job->deadline <= srv_now();
        if (!late) {
            build_queue.running++;
            total_running++;
        }
        pthread_mutex_unlock(&lock);
        if (late)
            answer_unrun(job, 0);
        else
            run_job(job);
        pthread_mutex_lock(&lock);
        if (!late) {
            build_queue.running--;
            total_running--;
        }
        /* Compute threads that stop wait for nothing to run. */
        if (stopping)
            pthread_cond_broadcast(&work);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

/* A job blocked behind a long one of its key, or queued while every
 * thread is busy, still gets its 504 when its deadline passes: the reaper
 * sweeps every queue each second. */
void srv_sched_expire(void)
{
    srv_job *unrun = NULL;
    double now = srv_now();
    pthread_mutex_lock(&lock);
    for (sched_queue *q = all_queues; q; q = q->all_next)
        take_expired(q, now, &unrun);
    pthread_mutex_unlock(&lock);
    answer_unrun(unrun, 0);
}

/* ------------------------------------------------------- lifecycle */

int srv_sched_start(const srv_sched_config *cfg, char *msg, size_t size)
{
    conf = *cfg;
    if (conf.batch_max_rows > MAX_BATCH_JOBS)
        conf.batch_max_rows = MAX_BATCH_JOBS;
    if (conf.threads > MAX_THREADS)
        conf.threads = MAX_THREADS;
    if (conf.batch_instances < 1)
        conf.batch_instances = conf.threads;
    stopping = 0;
    pthread_mutex_lock(&lock);
    if (!build_queue.all_next && all_queues != &build_queue) {
        /* Swept with the others (deadlines, drain). */
        build_queue.all_next = all_queues;
        all_queues->all_prev = &build_queue;
        all_queues = &build_queue;
    }
    pthread_mutex_unlock(&lock);
    if (conf.build_threads < 1)
        conf.build_threads = 1;
    if (conf.build_threads > MAX_THREADS)
        conf.build_threads = MAX_THREADS;
    for (n_build_threads = 0; n_build_threads < conf.build_threads;
         n_build_threads++)
        if (pthread_create(&build_threads[n_build_threads], NULL, build_main,
                           NULL) != 0) {
            snprintf(msg, size, "cannot start build thread %d",
                     n_build_threads);
            srv_sched_drain(0);
            srv_sched_join();
            return -1;
        }
    for (n_threads = 0; n_threads < conf.threads; n_threads++)
        if (pthread_create(&threads[n_threads], NULL, worker_main,
                           (void *)(intptr_t)n_threads) != 0) {
            snprintf(msg, size, "cannot start compute thread %d", n_threads);
            srv_sched_drain(0);
            srv_sched_join();
            return -1;
        }
    return 0;
}

int srv_sched_drain(double deadline)
{
    pthread_mutex_lock(&lock);
    while ((total_queued || total_running) && srv_now() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&work, &lock, &ts);
    }
    /* What is still queued is answered 503 unrun, every queue's: one
     * whose jobs all wait behind a running job of their key is on no
     * thread's list and would never be reached. The threads exit once
     * nothing runs. */
    stopping = 1;
    srv_job *unrun = NULL;
    for (sched_queue *q = all_queues; q; q = q->all_next)
        take_expired(q, INFINITY, &unrun);
    pthread_cond_broadcast(&work);
    pthread_cond_broadcast(&build_work);
    int running = total_running;
    pthread_mutex_unlock(&lock);
    answer_unrun(unrun, 1);
    return running;
}

void srv_sched_join(void)
{
    for (int i = 0; i < n_threads; i++)
        pthread_join(threads[i], NULL);
    n_threads = 0;
    for (int i = 0; i < n_build_threads; i++)
        pthread_join(build_threads[i], NULL);
    n_build_threads = 0;
}
