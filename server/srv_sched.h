/*
 * srv_sched.h — the compute scheduler. HTTP threads only receive, route and
 * write: every request that computes, waits for a lock or touches the disk
 * becomes a job, queued on its network, and the connection is suspended
 * until a compute thread has answered it.
 *
 * Order. A job may carry an ordering key (a session, a sequence): jobs with
 * the same key on one network run one at a time, in the order they were
 * queued. Jobs without a key run in any order.
 *
 * Batching. A job that is one step of one session (srv_step_ops) may run
 * together with queued steps of other sessions of the same network as one
 * batched engine step (nn_session_step_many): one GEMM instead of one GEMV
 * per session, W read once. A compute thread that finds fewer rows than
 * --batch-max-rows waits at most --batch-window-us for more.
 *
 * Builds. A network build (SRV_BUILD routes) may take minutes (a dense
 * reservoir's spectral radius): it queues on a lane of its own, run by
 * build threads (--build-threads), so builds never hold the compute
 * threads and other networks' requests go on meanwhile, as a model server
 * loads a model beside the ones serving.
 *
 * Admission. Every queued job is answered: a full queue (--max-queue per
 * network) is refused at once with 503, a job still queued when its
 * deadline (--request-timeout) passes gets 504; both carry Retry-After and
 * change nothing. A job that has started completes.
 */
#ifndef SRV_SCHED_H
#define SRV_SCHED_H

#include <stdint.h>

#include "srv.h"

typedef struct srv_network srv_network;
typedef struct srv_job srv_job;

/* A single step of one session, split so the scheduler can run several
 * sessions' steps as one. */
typedef struct srv_step_ops {
    /* Resolves (or creates) the job's session, locks it, writes the
     * request's inputs into its input buffers and sets job->run_session
     * and job->train. Returns 0 to step; -1 when the reply is set (an
     * error) and nothing is held; 1 when the session's lock is taken by
     * another request (only without job->may_wait): nothing changed, and
     * the job is prepared again alone, allowed to wait. */
    int (*prepare)(srv_job *job);
    /* After the step (rc NN_OK, or the failure in e): writes the reply and
     * unlocks and releases what prepare took. */
    void (*finish)(srv_job *job, int rc, const nn_error *e);
} srv_step_ops;

struct srv_job {
    srv_request req;             /* the request, and its reply; first */
    srv_network *net;            /* queue it waits on; held; may be NULL */
    uint64_t key;                /* ordering key, 0 for none */
    const srv_step_ops *step;    /* batchable single step, or NULL */
    void (*run)(srv_job *job);   /* otherwise: computes the reply */
    /* Called on the compute thread once the reply is set. */
    void (*done)(srv_job *job);
    /* Filled by step->prepare. */
    nn_session *run_session;
    int train;
    int may_wait;                /* prepare may block on the session lock */
    int build;                   /* runs on the build lane (see above) */
    void *step_ctx;              /* what prepare took, for finish */
    /* The scheduler's. */
    double queued_at, started_at, finished_at, deadline;
    int batch_rows;              /* rows of the batched step it ran in */
    srv_job *next;
};

typedef struct srv_sched_config {
    int threads;          /* compute threads */
    int max_queue;        /* queued jobs per network */
    double timeout;       /* seconds a job may wait in its queue */
    int batching;         /* 0: every step alone */
    int batch_max_rows;
    int batch_window_us;
    int batch_instances;  /* batched steps of one network running at once */
    int build_threads;    /* threads of the build lane */
} srv_sched_config;

/* Starts the compute threads. Returns 0, or -1 with a message in msg. */
int srv_sched_start(const srv_sched_config *cfg, char *msg, size_t size);
/* Refuses new jobs and lets queued and running ones finish until deadline
 * (monotonic seconds); then the compute threads answer what is still
 * queued with 503 and exit once their running jobs end. Returns how many
 * jobs are still running. */
int srv_sched_drain(double deadline);
/* Waits for the compute and build threads to exit (after
 * srv_sched_drain). */
void srv_sched_join(void);

/* Queues job. On refusal (queue full, shutting down) returns -1 with the
 * reply set, and the job is not queued: the caller answers it itself. */
int srv_sched_submit(srv_job *job);

/* The network's queue state, created with the network and freed with it. */
void *srv_sched_queue_new(void);
void srv_sched_queue_free(void *queue);
/* Queued and running jobs of a network. */
void srv_sched_queue_depth(const srv_network *net, int *queued, int *running);

/* A session of net's graph for batch rows, as nn_session_new(net->graph,
 * batch, seed, err) makes it (NULL with err filled on failure). The caller
 * owns it until it hands it to srv_sched_stateless_done. On a compute
 * thread a small one is kept by the network for that thread and renewed
 * here, so a stateless forward allocates no session; the network frees
 * what it keeps when it goes. */
nn_session *srv_sched_stateless_session(srv_network *net, int batch,
                                        uint64_t seed, nn_error *err);
/* Takes back s (from srv_sched_stateless_session): kept or freed. */
void srv_sched_stateless_done(srv_network *net, nn_session *s);

/* Answers queued jobs whose deadline has passed (504); the reaper calls it
 * every second. */
void srv_sched_expire(void);

/* The ordering key of a name, never 0. */
uint64_t srv_sched_key(const char *kind, const char *name);

/* Monotonic seconds. */
double srv_now(void);

#endif
