/*
 * srv_fit.c — training jobs (see srv_fit.h).
 *
 * The request is read and checked in the handler, so a bad one is a 4xx
 * before any thread starts; the job thread then only trains. Job fields a
 * reader may see while the thread runs are guarded by jobs_lock.
 */
#include "srv_fit.h"
#include "srv_budget.h"
#include "api_codec.h"
#include "api_fit.h"
#include "srv_metrics.h"
#include "srv_persist.h"
#include "srv_store.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum job_status {
    JOB_RUNNING,
    JOB_DONE,
    JOB_FAILED,
    JOB_CANCELLED
} job_status;

static const char *const status_names[] = {"running", "done", "failed",
                                           "cancelled"};

typedef struct fit_job {
    char id[24];
    srv_network *net;        /* held while it runs (under jobs_lock) */
    char net_id[24];         /* the network's id, which is never reused */
    srv_persist *persist;    /* the data directory, or NULL */
    nn_graph *clone;         /* what the thread trains */
    api_fit_request req;     /* bindings point into clone */
    pthread_t thread;
    int joined;
    atomic_int cancel;

    /* Under jobs_lock. */
    srv_request *waiter;     /* the deferred request of a "wait" start */
    srv_request **cancellers; /* deferred DELETEs, answered at the end */
    int n_cancellers;
    int owner;               /* API key index of who started it, or -1 */
    size_t charged;          /* bytes of the memory budget it holds */
    job_status status;
    int epoch, epochs;
    double loss;             /* last epoch's (bptt), or the rls mse */
    long state_steps;        /* online: steps in the state at the end */
    double *history;         /* bptt: epochs long */
    long rows;               /* ridge: rows fed; ip: steps that updated */
    api_error error;         /* when failed */
    struct timespec started, ended;
    struct rls_trainer *trainer; /* online: what the job trained, put in
                                    net->trainer only with its weights */
    size_t matrix_bytes;     /* ridge, online: the readouts' matrices */
    api_jsondoc *doc;        /* the body read as it arrived, whose floats
                                req's tensors borrow; freed after req */
    size_t doc_charged;      /* its share of the memory budget */
    size_t trainer_bytes;    /* online: what its trainer holds, charged
                                with the job, then with the network */
} fit_job;

/* The online trainer a network keeps between requests, for one set of
 * targets and one rule: P, and with continue_state the session whose state
 * the next such request starts from. The session runs on a graph of its
 * own (a clone: the job's clone is freed at the job's end), which is one
 * more copy of the weights while a state is kept. */
typedef struct rls_trainer {
    size_t charged; /* bytes of the memory budget, once kept */
    nn_rls *rls;
    char targets[512]; /* the target names, as a key */
    nn_graph *graph;   /* with a kept state, else NULL */
    nn_session *session;
} rls_trainer;

static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static fit_job *jobs[SRV_FIT_MAX_JOBS];
static int n_jobs;
static long next_job_id = 1;
static int stopping; /* under jobs_lock: refuse new jobs */

static double seconds_between(const struct timespec *a,
                              const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) +
           (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void rls_trainer_free(void *p)
{
    rls_trainer *t = p;
    nn_session_free(t->session);
    nn_graph_free(t->graph);
    nn_rls_free(t->rls);
    srv_budget_release(t->charged);
    free(t);
}

static void job_free(fit_job *job)
{
    if (job->trainer)
        rls_trainer_free(job->trainer);
    free(job->cancellers);
    api_fit_request_release(&job->req);
    api_jsondoc_free(job->doc);
    srv_budget_release(job->doc_charged);
    nn_graph_free(job->clone);
    free(job->history);
    srv_network_release(job->net);
    srv_budget_release(job->charged);
    free(job);
}

static size_t add_bytes(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* What a job will hold while it trains, in bytes: its data, its clone's
 * weights, the floats of the session (ridge, RLS, LMS, IP: one of the data's batch) or
 * of the BPTT tape (the window's steps at the minibatch's rows) that its
 * thread allocates, and the readouts' matrices (ridge's XᵀX, the online
 * trainer's P). An online job's trainer, which the network keeps after it
 * (its matrices, and with continue_state one more graph and session), is
 * job->trainer_bytes of that. Saturates. */
static size_t job_bytes(fit_job *job)
{
    const api_fit_data *d = &job->req.data[0];
    size_t params = 0;
    for (int i = 0; i < nn_graph_node_count(job->clone); i++)
        params += nn_node_param_count(nn_graph_node_at(job->clone, i));
    size_t rows = d->batch > 0 ? (size_t)d->batch : 1;
    if (job->req.method == API_FIT_BPTT) {
        size_t B = job->req.fit.batch_size && job->req.fit.batch_size < d->batch
                       ? (size_t)job->req.fit.batch_size : rows;
        size_t K = job->req.fit.window && job->req.fit.window < d->steps
                       ? (size_t)job->req.fit.window
                       : (size_t)(d->steps > 0 ? d->steps : 1);
        rows = K > SIZE_MAX / B ? SIZE_MAX : K * B;
        /* Node by node (a bidirectional node) the tape also keeps every
         * step's output gradients. */
        if (nn_graph_sequence_node(job->clone))
            rows = rows > SIZE_MAX / 2 ? SIZE_MAX : 2 * rows;
    }
    size_t floats = rows > INT32_MAX ? SIZE_MAX
                                     : nn_session_float_count(job->clone,
                                                              (int)rows);
    floats = floats > SIZE_MAX - params ? SIZE_MAX : floats + params;
    size_t bytes = floats > SIZE_MAX / sizeof(float) ? SIZE_MAX
                                                     : floats * sizeof(float);
    if (job->req.method == API_FIT_RLS)
        job->trainer_bytes = add_bytes(job->matrix_bytes,
                                       job->req.continue_state ? bytes : 0);
    /* The data it trains on outlives the request that brought it: what
     * was read from text, and the body's document (doc_charged) for the
     * rest. */
    for (int i = 0; i < job->req.n_data; i++) {
        const api_fit_data *item = &job->req.data[i];
        for (int k = 0; k < item->n_inputs + item->n_targets; k++) {
            const nn_tensor *t = k < item->n_inputs
                                     ? item->inputs[k].tensor
                                     : item->targets[k - item->n_inputs].tensor;
            if (t->owns_data)
                bytes = add_bytes(bytes, nn_tensor_numel(t) * sizeof(float));
        }
    }
    if (job->req.method == API_FIT_RIDGE)
        return add_bytes(bytes, job->matrix_bytes);
    if (job->req.method == API_FIT_RLS)
        return add_bytes(bytes, job->trainer_bytes);
    return bytes;
}

/* --------------------------------------------------------------- the JSON */

/* Under jobs_lock. */
static cJSON *job_json(const fit_job *job)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "job", job->id);
    cJSON_AddStringToObject(o, "network", job->net_id);
    cJSON_AddStringToObject(o, "method", job->req.method_name);
    cJSON_AddStringToObject(o, "status", status_names[job->status]);
    if (job->req.method == API_FIT_BPTT) {
        cJSON_AddNumberToObject(o, "epoch", job->epoch);
        cJSON_AddNumberToObject(o, "epochs", job->epochs);
        cJSON *h = cJSON_AddArrayToObject(o, "history");
        for (int e = 0; h && e < job->epoch; e++) {
            char buf[32];
            snprintf(buf, sizeof buf, "%.9g", job->history[e]);
            cJSON_AddItemToArray(h, cJSON_CreateRaw(buf));
        }
        if (job->epoch > 0)
            cJSON_AddNumberToObject(o, "loss", job->loss);
    } else if (job->req.method == API_FIT_IP) {
        cJSON_AddNumberToObject(o, "epochs", job->req.ip_epochs);
        cJSON_AddNumberToObject(o, "warmup", job->req.warmup);
        if (job->status == JOB_DONE)
            cJSON_AddNumberToObject(o, "updates", (double)job->rows);
    } else if (job->req.method == API_FIT_RIDGE) {
        if (job->status == JOB_DONE)
            cJSON_AddNumberToObject(o, "rows", (double)job->rows);
        cJSON_AddNumberToObject(o, "beta", job->req.beta);
    } else if (job->status == JOB_DONE) {
        cJSON_AddNumberToObject(o, "mse", job->loss);
        cJSON_AddBoolToObject(o, "continue_state", job->req.continue_state);
        cJSON_AddNumberToObject(o, "state_steps", (double)job->state_steps);
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    cJSON_AddNumberToObject(o, "seconds",
                            seconds_between(&job->started,
                                            job->status == JOB_RUNNING
                                                ? &now
                                                : &job->ended));
    if (job->status == JOB_FAILED)
        cJSON_AddItemToObject(o, "error", api_error_json(&job->error));
    return o;
}

/* ------------------------------------------------------------ the thread */

/* The trainers' abort callback (nn_graph_set_abort): asked between
 * steps, so a cancel stops every method within a step or a BPTT window. */
static int job_cancelled(void *user)
{
    fit_job *job = user;
    return atomic_load(&job->cancel);
}

static int bptt_progress(void *user, int epoch, int epochs, double loss)
{
    fit_job *job = user;
    pthread_mutex_lock(&jobs_lock);
    job->history[epoch - 1] = loss;
    job->epoch = epoch;
    job->epochs = epochs;
    job->loss = loss;
    pthread_mutex_unlock(&jobs_lock);
    return atomic_load(&job->cancel);
}

static int run_ridge(fit_job *job, nn_error *e)
{
    api_fit_request *req = &job->req;
    nn_ridge *ridge = nn_ridge_new(job->clone, req->data[0].targets,
                                   req->data[0].n_targets, e);
    if (!ridge)
        return e->code;
    int rc = NN_OK;
    for (int i = 0; i < req->n_data && rc == NN_OK; i++) {
        api_fit_data *d = &req->data[i];
        if (atomic_load(&job->cancel)) {
            rc = nn_error_set(e, NN_ERR_STATE, "cancelled");
            break;
        }
        nn_session *s = nn_session_new(job->clone, d->batch,
                                       nn_graph_seed(job->clone), e);
        rc = s ? nn_ridge_feed(ridge, s, d->inputs, d->n_inputs, d->targets,
                               d->n_targets, d->steps, req->warmup, e)
               : e->code;
        nn_session_free(s);
    }
    long rows = 0;
    if (rc == NN_OK)
        rc = nn_ridge_solve(ridge, job->clone, req->beta, &rows, e);
    pthread_mutex_lock(&jobs_lock);
    job->rows = rows;
    pthread_mutex_unlock(&jobs_lock);
    nn_ridge_free(ridge);
    return rc;
}

static void targets_key(const api_fit_data *d, char *key, size_t size)
{
    key[0] = '\0';
    for (int i = 0; i < d->n_targets; i++)
        snprintf(key + strlen(key), size - strlen(key), "%s\n",
                 d->targets[i].name);
}

/* The trainer this job trains, into job->trainer: a copy of the network's
 * (its P, and with continue_state its kept state), or a new one on reset,
 * for other targets or another rule, or when the readouts changed shape;
 * retuned to this request's forgetting and lr. The network's own stays as
 * it is until the job's weights are swapped in, so a cancelled or failed
 * job changes nothing. Only the job running on the network reads
 * net->trainer. */
static int rls_state(fit_job *job, nn_error *e)
{
    srv_network *net = job->net;
    const api_fit_data *d = &job->req.data[0];
    const nn_online_opts *opts = &job->req.online;
    char key[512];
    targets_key(d, key, sizeof key);
    const rls_trainer *base = net->trainer;
    if (base && (job->req.reset || strcmp(base->targets, key) ||
                 nn_rls_rule(base->rls) != opts->rule ||
                 nn_rls_compatible(base->rls, job->clone, e) != NN_OK))
        base = NULL;
    if (base && job->req.continue_state && base->session &&
        nn_session_batch(base->session) != d->batch)
        return nn_error_set(e, NN_ERR_INVALID, "continue_state: the kept "
                            "state holds %d sequences and this request has "
                            "%d; send as many, or \"reset\": true to start "
                            "from zero", nn_session_batch(base->session),
                            d->batch);
    rls_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return nn_error_set(e, NN_ERR_NOMEM, "out of memory");
    job->trainer = t;
    snprintf(t->targets, sizeof t->targets, "%s", key);
    t->rls = base ? nn_rls_clone(base->rls, e)
                  : nn_online_new(job->clone, d->targets, d->n_targets, opts,
                                  e);
    if (!t->rls)
        return e->code;
    if (nn_rls_tune(t->rls, opts, e) != NN_OK)
        return e->code;
    if (!job->req.continue_state)
        return NN_OK; /* and a state kept before is dropped */
    /* The kept state runs on a graph of its own, with the weights the job
     * starts from. */
    if (!(t->graph = nn_graph_clone(job->clone, e)) ||
        !(t->session = nn_session_new(t->graph, d->batch,
                                      nn_graph_seed(t->graph), e)))
        return e->code;
    nn_graph_set_abort(t->graph, job_cancelled, job);
    if (base && base->session)
        return nn_session_copy_state(t->session, base->session, e);
    return NN_OK;
}

/* A fit can run away (lms with a large lr, rls or ridge on targets near
 * float32's limit) into weights that are not finite: the network would
 * then answer null for ever, and its export could not be imported back.
 * Such a fit fails and changes nothing, as bptt's diverged loss does. */
static int weights_finite(nn_graph *g, nn_error *e)
{
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        nn_node *node = nn_graph_node_at(g, i);
        for (int w = 0; w < nn_node_weight_count(node); w++) {
            const nn_tensor *t = nn_node_weight_at(node, w);
            size_t n = t ? nn_tensor_numel(t) : 0;
            for (size_t k = 0; k < n; k++)
                if (!isfinite(t->data[k]))
                    return nn_error_set(e, NN_ERR_INVALID, "the fit made "
                                        "weight '%s' of node '%s' "
                                        "non-finite (element %zu); lower "
                                        "lr or alpha, or scale the targets",
                                        nn_node_weight_name(node, w),
                                        nn_node_name(node), k);
        }
    }
    return NN_OK;
}

static int run_rls(fit_job *job, nn_error *e)
{
    int rc = rls_state(job, e);
    rls_trainer *t = job->trainer;
    api_fit_data *d = &job->req.data[0];
    double mse = 0;
    long steps = 0;
    if (rc == NN_OK && t->session) {
        rc = nn_rls_run(t->rls, t->session, d->inputs, d->n_inputs,
                        d->targets, d->n_targets, d->steps, &mse, e);
        if (rc == NN_OK)
            rc = nn_graph_copy_weights(job->clone, t->graph, e);
        steps = nn_session_steps(t->session);
    } else if (rc == NN_OK) {
        nn_session *s = nn_session_new(job->clone, d->batch,
                                       nn_graph_seed(job->clone), e);
        rc = s ? nn_rls_run(t->rls, s, d->inputs, d->n_inputs, d->targets,
                            d->n_targets, d->steps, &mse, e)
               : e->code;
        steps = s ? nn_session_steps(s) : 0;
        nn_session_free(s);
    }
    pthread_mutex_lock(&jobs_lock);
    job->loss = mse;
    job->state_steps = steps;
    pthread_mutex_unlock(&jobs_lock);
    return rc;
}

static void *job_main(void *arg)
{
    fit_job *job = arg;
    srv_metrics_fit_started();
    nn_error e = {0};
    int rc;
    api_fit_data *d = &job->req.data[0];
    nn_graph_set_abort(job->clone, job_cancelled, job);
    switch (job->req.method) {
    case API_FIT_RIDGE:
        rc = run_ridge(job, &e);
        break;
    case API_FIT_RLS:
        rc = run_rls(job, &e);
        break;
    case API_FIT_IP: {
        long updates = 0;
        rc = nn_ip_fit(job->clone, d->inputs, d->n_inputs, d->batch, d->steps,
                       job->req.ip_epochs, job->req.warmup, &updates, &e);
        pthread_mutex_lock(&jobs_lock);
        job->rows = updates;
        pthread_mutex_unlock(&jobs_lock);
        break;
    }
    case API_FIT_BPTT:
    default:
        job->req.fit.progress = bptt_progress;
        job->req.fit.user = job;
        rc = nn_fit_bptt(job->clone, d->inputs, d->n_inputs, d->targets,
                         d->n_targets, &job->req.fit, NULL, NULL, &e);
        break;
    }
    if (rc == NN_OK)
        rc = weights_finite(job->clone, &e);
    int cancelled = atomic_load(&job->cancel);
    api_error stored = {0};
    int store_failed = 0;
    if (rc == NN_OK && !cancelled) {
        /* The swap: steps hold the read lock, so none sees a mix. With a
         * data directory the new weights are on disk before anyone is told
         * the fit is done, and a failed write puts the old ones back, so
         * what is served is what a restart would load. */
        pthread_rwlock_wrlock(&job->net->weights);
        nn_graph *old = job->persist ? nn_graph_clone(job->net->graph, &e)
                                     : NULL;
        if (job->persist && !old)
            rc = e.code;
        if (rc == NN_OK)
            rc = nn_graph_copy_weights(job->net->graph, job->clone, &e);
        if (rc == NN_OK && job->persist &&
            srv_persist_save_network(job->persist, job->net, &stored)) {
            nn_graph_copy_weights(job->net->graph, old, &e);
            store_failed = 1;
        }
        if (rc == NN_OK && !store_failed && job->trainer) {
            /* The trainer goes with the weights it trained, and its
             * memory is the network's from now on. */
            rls_trainer *kept = job->net->trainer;
            job->net->trainer = job->trainer;
            job->net->trainer_free = rls_trainer_free;
            job->trainer->charged = job->trainer_bytes;
            job->trainer = kept;
            pthread_mutex_lock(&jobs_lock);
            job->charged -= job->trainer_bytes;
            pthread_mutex_unlock(&jobs_lock);
        }
        pthread_rwlock_unlock(&job->net->weights);
        nn_graph_free(old);
    }
    if (job->trainer) {
        rls_trainer_free(job->trainer);
        job->trainer = NULL;
    }
    /* What the job trained on and with is not needed to report it: a
     * finished job kept in the table holds its few numbers only. */
    api_fit_request_release(&job->req);
    api_jsondoc_free(job->doc);
    job->doc = NULL;
    nn_graph_free(job->clone);
    job->clone = NULL;
    pthread_mutex_lock(&jobs_lock);
    clock_gettime(CLOCK_MONOTONIC, &job->ended);
    if (cancelled) {
        job->status = JOB_CANCELLED;
    } else if (store_failed) {
        job->status = JOB_FAILED;
        job->error = stored;
    } else if (rc == NN_OK) {
        job->status = JOB_DONE;
    } else {
        job->status = JOB_FAILED;
        api_fail_from_nn(&job->error, &e, 0);
    }
    srv_metrics_fit(job->status == JOB_DONE        ? "done"
                    : job->status == JOB_CANCELLED ? "cancelled"
                                                   : "failed");
    srv_request *waiter = job->waiter;
    job->waiter = NULL;
    cJSON *o = waiter ? job_json(job) : NULL;
    int failed = job->status == JOB_FAILED;
    api_error failure = job->error;
    /* Its memory went with its clone and data above (the trainer it
     * leaves to the network took its own share). */
    size_t release = job->charged + job->doc_charged;
    job->charged = job->doc_charged = 0;
    /* A deleted network goes now, not when its last job is forgotten. */
    srv_network *net = job->net;
    job->net = NULL;
    /* Who asked to cancel hears how the job ended. */
    srv_request **cancellers = job->cancellers;
    int n_cancellers = job->n_cancellers;
    cJSON *ended = n_cancellers ? job_json(job) : NULL;
    job->cancellers = NULL;
    job->n_cancellers = 0;
    pthread_mutex_unlock(&jobs_lock);
    srv_budget_release(release);
    srv_network_release(net);
    for (int i = 0; i < n_cancellers; i++) {
        cJSON *copy = i + 1 < n_cancellers ? cJSON_Duplicate(ended, 1) : ended;
        if (copy)
            srv_reply_json(cancellers[i], 200, copy);
        else
            srv_reply_fail(cancellers[i], 503, "out_of_memory", "out of "
                           "memory; the job has ended");
        srv_request_finish(cancellers[i]);
    }
    free(cancellers);
    if (waiter) {
        if (failed) {
            cJSON_Delete(o);
            srv_reply_error(waiter, &failure);
        } else {
            srv_reply_json(waiter, 200, o);
        }
        srv_request_finish(waiter);
    }
    return NULL;
}

/* ---------------------------------------------------------- the job table */

/* Under jobs_lock: a free slot, forgetting the oldest finished job when
 * full; -1 when every slot runs. */
static int free_slot(fit_job **forget)
{
    *forget = NULL;
    if (n_jobs < SRV_FIT_MAX_JOBS)
        return n_jobs++;
    for (int i = 0; i < n_jobs; i++)
        if (jobs[i]->status != JOB_RUNNING) {
            *forget = jobs[i];
            memmove(&jobs[i], &jobs[i + 1],
                    (size_t)(n_jobs - i - 1) * sizeof *jobs);
            return n_jobs - 1;
        }
    return -1;
}

static fit_job *find_job(const char *net_id, const char *job_id)
{
    for (int i = 0; i < n_jobs; i++)
        if (strcmp(jobs[i]->net_id, net_id) == 0 &&
            strcmp(jobs[i]->id, job_id) == 0)
            return jobs[i];
    return NULL;
}

static fit_job *running_on(const srv_network *net)
{
    for (int i = 0; i < n_jobs; i++)
        if (jobs[i]->status == JOB_RUNNING && jobs[i]->net == net)
            return jobs[i];
    return NULL;
}

/* Running jobs started with API key owner (jobs_lock held). */
static int running_for(int owner)
{
    int n = 0;
    for (int i = 0; owner >= 0 && i < n_jobs; i++)
        n += jobs[i]->owner == owner && jobs[i]->status == JOB_RUNNING;
    return n;
}

static void join_job(fit_job *job)
{
    if (!job->joined) {
        pthread_join(job->thread, NULL);
        job->joined = 1;
    }
}

/* ---------------------------------------------------------------- routes */

/* Checks what the trainer would refuse, before a thread starts. */
static int precheck(fit_job *job, nn_error *e)
{
    api_fit_request *req = &job->req;
    api_fit_data *d = &req->data[0];
    for (int i = 1; i < req->n_data; i++) {
        int same = req->data[i].n_targets == d->n_targets;
        for (int k = 0; same && k < d->n_targets; k++)
            same = strcmp(req->data[i].targets[k].name,
                          d->targets[k].name) == 0;
        if (!same)
            return nn_error_set(e, NN_ERR_INVALID, "data[%d]: every item must "
                                "target the same nodes, in the same order", i);
    }
    if (req->method == API_FIT_BPTT) {
        if (req->n_data > 1)
            return nn_error_set(e, NN_ERR_INVALID, "bptt takes \"inputs\" and "
                                "\"targets\", not \"data\"");
        return nn_fit_check(job->clone, d->inputs, d->n_inputs, d->targets,
                            d->n_targets, &req->fit, e);
    }
    if (req->method == API_FIT_IP)
        return nn_ip_check(job->clone, e);
    if (req->method == API_FIT_RLS && req->n_data > 1)
        return nn_error_set(e, NN_ERR_INVALID, "%s takes \"inputs\" and "
                            "\"targets\", not \"data\"",
                            req->method_name);
    return nn_readouts_check(job->clone, d->targets, d->n_targets,
                             &job->matrix_bytes, e);
}

void srv_fit_start(srv_request *req)
{
    api_error err;
    nn_error e;
    srv_network *net = srv_network_get(req->params[0], &err);
    if (!net) {
        srv_reply_error(req, &err);
        return;
    }
    fit_job *job = calloc(1, sizeof *job);
    if (!job) {
        srv_network_release(net);
        srv_reply_fail(req, 503, "out_of_memory", "out of memory");
        return;
    }
    job->net = net;
    snprintf(job->net_id, sizeof job->net_id, "%s", net->id);
    job->persist = req->persist;
    pthread_rwlock_rdlock(&net->weights);
    job->clone = nn_graph_clone(net->graph, &e);
    pthread_rwlock_unlock(&net->weights);
    if (!job->clone) {
        api_fail_from_nn(&err, &e, 0);
        goto refuse;
    }
    /* The body was read as it arrived, its bulk numbers into float32
     * (SRV_BODY_RAW): only the rest becomes a tree, for the options. */
    api_json text = {req->raw ? req->raw : "", req->raw_len, req->raw_doc};
    size_t *marks = NULL;
    int n_marks = 0;
    char *named = text.doc ? api_json_naming_blobs(&text, &marks, &n_marks)
                           : NULL;
    free(marks);
    if (text.doc && !named) {
        api_fail(&err, 503, "out_of_memory", "out of memory");
        goto refuse;
    }
    int parsed = text.len && srv_request_parse_text(req,
                                                    named ? named : text.s,
                                                    named ? strlen(named)
                                                          : text.len);
    free(named);
    if (parsed) {
        job_free(job);
        return;
    }
    /* With the binary tensor framing, the tensors' bytes follow the JSON
     * header; they are copied out as they are read. */
    int read = req->blob && !req->blobs
                   ? api_json_blobs_index(&text, req->blob, req->blob_len,
                                          &req->blobs, &err)
                   : 0;
    if (!read)
        read = api_fit_request_parse(req->json, &text, req->blobs,
                                     job->clone, &req->cfg->limits, &job->req,
                                     &err);
    /* Its tensors read the body's floats where they are: the job keeps
     * the body (a copy would double it). */
    job->doc = srv_request_take_doc(req, &job->doc_charged);
    if (read)
        goto refuse;
    if (precheck(job, &e) != NN_OK) {
        api_fail_from_nn(&err, &e, 0);
        if (err.http_status == 404)
            err.http_status = 422;
        goto refuse;
    }
    /* The tape or session is charged before the job's thread allocates
     * it; the clone, made to check the request, counts while the job
     * holds it. */
    size_t bytes = job_bytes(job);
    if (srv_budget_charge(bytes)) {
        int never = bytes > srv_budget_limit();
        api_fail(&err, never ? 413 : 503, "out_of_memory", "the training job "
                 "needs about %.0f MiB; the server's memory budget "
                 "(--max-memory) %s", (double)bytes / 1048576.0,
                 never ? "is smaller" : "has not that much left now");
        req->retry_after = !never;
        srv_metrics_rejected(net->id, "memory");
        goto refuse;
    }
    job->charged = bytes;
    if (job->req.method == API_FIT_BPTT &&
        !(job->history = calloc((size_t)job->req.fit.epochs, sizeof(double)))) {
        api_fail(&err, 503, "out_of_memory", "out of memory");
        goto refuse;
    }
    job->epochs = job->req.fit.epochs;

    job->owner = req->key;
    pthread_mutex_lock(&jobs_lock);
    fit_job *busy = running_on(net), *forget = NULL;
    int quota = req->cfg->max_fits_per_key;
    int over = quota && running_for(job->owner) >= quota;
    int slot = busy || stopping || over ? -1 : free_slot(&forget);
    if (stopping)
        api_fail(&err, 503, "unavailable", "the server is shutting down");
    else if (over) {
        api_fail(&err, 429, "quota", "this API key runs %d training jobs, "
                 "its quota (--max-fits-per-key); wait for one to end",
                 quota);
        srv_metrics_rejected(net->id, "quota");
    }
    else if (busy)
        api_fail(&err, 409, "busy", "network '%s' is already training (job "
                 "%s); wait for it or cancel it", net->id, busy->id);
    else if (slot < 0)
        api_fail(&err, 429, "limit", "%d training jobs are running, the "
                 "limit; wait for one to end", SRV_FIT_MAX_JOBS);
    if (slot >= 0) {
        snprintf(job->id, sizeof job->id, "f%ld", next_job_id++);
        job->status = JOB_RUNNING;
        clock_gettime(CLOCK_MONOTONIC, &job->started);
        if (pthread_create(&job->thread, NULL, job_main, job) != 0) {
            api_fail(&err, 503, "unavailable", "could not start a thread");
            n_jobs--;
            slot = -1;
        } else {
            jobs[slot] = job;
        }
    }
    pthread_mutex_unlock(&jobs_lock);
    if (forget) {
        join_job(forget);
        job_free(forget);
    }
    if (slot < 0)
        goto refuse;

    pthread_mutex_lock(&jobs_lock);
    if (!job->req.wait) {
        cJSON *started = job_json(job);
        pthread_mutex_unlock(&jobs_lock);
        srv_reply_json(req, 202, started);
        return;
    }
    if (job->status == JOB_RUNNING) {
        /* No compute thread waits through a training: the job's own
         * thread answers when it ends. */
        srv_request_defer(req);
        job->waiter = req;
        pthread_mutex_unlock(&jobs_lock);
        return;
    }
    cJSON *o = job_json(job);
    int failed = job->status == JOB_FAILED;
    api_error failure = job->error;
    pthread_mutex_unlock(&jobs_lock);
    if (failed) {
        cJSON_Delete(o);
        srv_reply_error(req, &failure);
    } else {
        srv_reply_json(req, 200, o);
    }
    return;
refuse:
    srv_reply_error(req, &err);
    job_free(job);
}

/* The job {job} of network {net}, under jobs_lock (held on return when a
 * job is found; the caller unlocks), or NULL after replying 404. */
static fit_job *lock_job(srv_request *req)
{
    api_error err;
    srv_network *net = srv_network_get(req->params[0], &err);
    if (!net) {
        srv_reply_error(req, &err);
        return NULL;
    }
    pthread_mutex_lock(&jobs_lock);
    fit_job *job = find_job(net->id, req->params[1]);
    if (!job) {
        pthread_mutex_unlock(&jobs_lock);
        srv_reply_fail(req, 404, "not_found", "network '%s' has no training "
                       "job '%.32s'", net->id, req->params[1]);
    }
    srv_network_release(net);
    return job;
}

void srv_fit_get(srv_request *req)
{
    fit_job *job = lock_job(req);
    if (!job)
        return;
    cJSON *o = job_json(job);
    pthread_mutex_unlock(&jobs_lock);
    srv_reply_json(req, 200, o);
}

/* Asks the job to stop and answers once it has (every method stops
 * within a step, BPTT within a window); the network keeps the weights and
 * the online trainer it had. No thread waits meanwhile: the job's own
 * answers when it ends. A finished job is reported as it is. */
void srv_fit_cancel(srv_request *req)
{
    fit_job *job = lock_job(req);
    if (!job)
        return;
    atomic_store(&job->cancel, 1);
    if (job->status == JOB_RUNNING) {
        srv_request **grown = realloc(job->cancellers,
                                      (size_t)(job->n_cancellers + 1) *
                                          sizeof *grown);
        if (grown) {
            job->cancellers = grown;
            job->cancellers[job->n_cancellers++] = req;
            srv_request_defer(req);
            pthread_mutex_unlock(&jobs_lock);
            return;
        }
        pthread_mutex_unlock(&jobs_lock);
        srv_reply_fail(req, 503, "out_of_memory", "out of memory; the job "
                       "was asked to stop");
        return;
    }
    cJSON *o = job_json(job);
    pthread_mutex_unlock(&jobs_lock);
    srv_reply_json(req, 200, o);
}

void srv_fit_list(srv_request *req)
{
    api_error err;
    srv_network *net = srv_network_get(req->params[0], &err);
    if (!net) {
        srv_reply_error(req, &err);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(o, "jobs");
    pthread_mutex_lock(&jobs_lock);
    for (int i = 0; list && i < n_jobs; i++)
        if (strcmp(jobs[i]->net_id, net->id) == 0)
            cJSON_AddItemToArray(list, job_json(jobs[i]));
    pthread_mutex_unlock(&jobs_lock);
    srv_network_release(net);
    srv_reply_json(req, 200, o);
}

void srv_fit_stop(void)
{
    pthread_mutex_lock(&jobs_lock);
    stopping = 1;
    for (int i = 0; i < n_jobs; i++)
        atomic_store(&jobs[i]->cancel, 1);
    pthread_mutex_unlock(&jobs_lock);
}

void srv_fit_shutdown(void)
{
    srv_fit_stop();
    for (int i = 0; i < n_jobs; i++) {
        join_job(jobs[i]);
        job_free(jobs[i]);
        jobs[i] = NULL;
    }
    n_jobs = 0;
}
