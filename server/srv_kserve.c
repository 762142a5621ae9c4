/*
 * srv_kserve.c — the KServe v2 / Open Inference Protocol's REST routes,
 * beside v1: health, server and model metadata, readiness, model
 * configuration, statistics, and inference, stateless or stateful through
 * the sequence extension (sequence_id names a session, sequence_start
 * starts it, sequence_end frees it), with tensors as JSON or through the
 * binary tensor data extension. Errors use the protocol's body,
 * {"error": "..."} (srv_reply_error picks it for every /v2 path).
 */
#include "srv_kserve.h"
#include "api_binary.h"
#include "api_codec.h"
#include "srv_blas.h"
#include "api_kserve.h"
#include "srv_encoding.h"
#include "srv_metrics.h"
#include "srv_sched.h"
#include "srv_store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void v2_error(srv_request *req, const api_error *err)
{
    srv_reply_error(req, err);
}

/* The model {net}, checking the version segment when the route has one. */
static srv_network *v2_model(srv_request *req, int versioned)
{
    api_error err;
    srv_network *net = srv_network_get(req->params[0], &err);
    if (!net) {
        v2_error(req, &err);
        return NULL;
    }
    if (versioned && strcmp(req->params[1], "1") != 0) {
        api_fail(&err, 404, "not_found", "model '%s' has no version '%.32s' "
                 "(it has version 1)", req->params[0], req->params[1]);
        v2_error(req, &err);
        srv_network_release(net);
        return NULL;
    }
    return net;
}

/* ------------------------------------------------------------ statistics */

typedef struct duration {
    unsigned long long count, ns;
} duration;

#define MAX_BATCH_SIZES 16

typedef struct model_stats {
    char id[24];                /* the network's id, never reused */
    unsigned long long last_ms, inference_count, execution_count;
    duration success, fail, queue, input, infer, output;
    struct {
        int size;
        duration input, infer, output;
    } batch[MAX_BATCH_SIZES];   /* the first sizes seen */
    int n_batch;
} model_stats;

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static model_stats *stats;
static int n_stats, cap_stats;

static void add(duration *d, uint64_t ns)
{
    d->count++;
    d->ns += ns;
}

typedef struct id_list {
    char (*ids)[24];
    int n, cap;
    int incomplete;     /* memory failed: some ids are missing */
} id_list;

static void collect_id(srv_network *net, void *arg)
{
    id_list *l = arg;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        void *p = realloc(l->ids, (size_t)cap * sizeof *l->ids);
        if (!p) {
            l->incomplete = 1;
            return;
        }
        l->ids = p;
        l->cap = cap;
    }
    memcpy(l->ids[l->n++], net->id, sizeof net->id);
}

static int listed(const id_list *l, const char *id)
{
    for (int k = 0; k < l->n; k++)
        if (strcmp(l->ids[k], id) == 0)
            return 1;
    return 0;
}

/* Stats lock held. Drops the counters of deleted networks; live holds the
 * networks' ids, taken before the lock (the store calls back under its
 * own lock, which must not nest inside this one). */
static void prune(const id_list *live)
{
    int kept = 0;
    for (int k = 0; k < n_stats; k++)
        if (listed(live, stats[k].id))
            stats[kept++] = stats[k];
    n_stats = kept;
}

/* Stats lock held. The counters of id, created when missing; NULL when
 * memory fails. */
static model_stats *stats_of(const char *id, int create)
{
    for (int k = 0; k < n_stats; k++)
        if (strcmp(stats[k].id, id) == 0)
            return &stats[k];
    if (!create)
        return NULL;
    if (n_stats == cap_stats) {
        int cap = cap_stats ? 2 * cap_stats : 16;
        model_stats *p = realloc(stats, (size_t)cap * sizeof *stats);
        if (!p)
            return NULL;
        stats = p;
        cap_stats = cap;
    }
    model_stats *m = &stats[n_stats++];
    memset(m, 0, sizeof *m);
    snprintf(m->id, sizeof m->id, "%s", id);
    return m;
}

void srv_kserve_record(const srv_network *net, int succeeded, int batch,
                       uint64_t total_ns, const srv_infer_times *times)
{
    /* A table grown to twice the live networks sheds the deleted ones. */
    id_list live = {0};
    pthread_mutex_lock(&stats_lock);
    int crowded = n_stats == cap_stats && n_stats >= 16;
    pthread_mutex_unlock(&stats_lock);
    if (crowded)
        srv_network_each(collect_id, &live);

    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    pthread_mutex_lock(&stats_lock);
    if (crowded && !live.incomplete && live.n * 2 <= n_stats)
        prune(&live);
    model_stats *m = stats_of(net->id, 1);
    if (m) {
        m->last_ms = (unsigned long long)wall.tv_sec * 1000u +
                     (unsigned long long)wall.tv_nsec / 1000000u;
        if (!succeeded) {
            add(&m->fail, total_ns);
        } else {
            add(&m->success, total_ns);
            add(&m->queue, times->queue_ns);
            add(&m->input, times->input_ns);
            add(&m->infer, times->infer_ns);
            add(&m->output, times->output_ns);
            m->inference_count += (unsigned long long)batch;
            m->execution_count++;
            int b = 0;
            while (b < m->n_batch && m->batch[b].size != batch)
                b++;
            if (b == m->n_batch && b < MAX_BATCH_SIZES)
                m->batch[m->n_batch++].size = batch;
            if (b < MAX_BATCH_SIZES) {
                add(&m->batch[b].input, times->input_ns);
                add(&m->batch[b].infer, times->infer_ns);
                add(&m->batch[b].output, times->output_ns);
            }
        }
    }
    pthread_mutex_unlock(&stats_lock);
    free(live.ids);
}

static cJSON *duration_json(const duration *d)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "count", (double)d->count);
    cJSON_AddNumberToObject(o, "ns", (double)d->ns);
    return o;
}

/* Triton's $model_stat for a network (zeros before its first request). */
static cJSON *model_stat_json(const char *name, const char *id)
{
    model_stats m;
    pthread_mutex_lock(&stats_lock);
    const model_stats *found = stats_of(id, 0);
    if (found)
        m = *found;
    else
        memset(&m, 0, sizeof m);
    pthread_mutex_unlock(&stats_lock);

    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "version", "1");
    cJSON_AddNumberToObject(o, "last_inference", (double)m.last_ms);
    cJSON_AddNumberToObject(o, "inference_count", (double)m.inference_count);
    cJSON_AddNumberToObject(o, "execution_count", (double)m.execution_count);
    cJSON *is = cJSON_AddObjectToObject(o, "inference_stats");
    cJSON_AddItemToObject(is, "success", duration_json(&m.success));
    cJSON_AddItemToObject(is, "fail", duration_json(&m.fail));
    cJSON_AddItemToObject(is, "queue", duration_json(&m.queue));
    cJSON_AddItemToObject(is, "compute_input", duration_json(&m.input));
    cJSON_AddItemToObject(is, "compute_infer", duration_json(&m.infer));
    cJSON_AddItemToObject(is, "compute_output", duration_json(&m.output));
    const duration none = {0, 0};
    cJSON_AddItemToObject(is, "cache_hit", duration_json(&none));
    cJSON_AddItemToObject(is, "cache_miss", duration_json(&none));
    cJSON *bs = cJSON_AddArrayToObject(o, "batch_stats");
    for (int b = 0; b < m.n_batch; b++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "batch_size", m.batch[b].size);
        cJSON_AddItemToObject(e, "compute_input",
                              duration_json(&m.batch[b].input));
        cJSON_AddItemToObject(e, "compute_infer",
                              duration_json(&m.batch[b].infer));
        cJSON_AddItemToObject(e, "compute_output",
                              duration_json(&m.batch[b].output));
        cJSON_AddItemToArray(bs, e);
    }
    return o;
}

static void model_stats_reply(srv_request *req, int versioned)
{
    srv_network *net = v2_model(req, versioned);
    if (!net)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(o, "model_stats");
    cJSON_AddItemToArray(list, model_stat_json(req->params[0], net->id));
    srv_network_release(net);
    srv_reply_json(req, 200, o);
}

void srv_v2_model_stats(srv_request *req) { model_stats_reply(req, 0); }
void srv_v2_model_version_stats(srv_request *req) { model_stats_reply(req, 1); }

typedef struct name_list {
    char (*names)[NN_NAME_MAX];
    char (*ids)[24];
    int n, cap;
} name_list;

static void collect_name(srv_network *net, void *arg)
{
    name_list *l = arg;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        void *names = realloc(l->names, (size_t)cap * sizeof *l->names);
        if (names)
            l->names = names;
        void *ids = realloc(l->ids, (size_t)cap * sizeof *l->ids);
        if (ids)
            l->ids = ids;
        if (!names || !ids)
            return;
        l->cap = cap;
    }
    snprintf(l->names[l->n], NN_NAME_MAX, "%s",
             net->name[0] ? net->name : net->id);
    memcpy(l->ids[l->n++], net->id, sizeof net->id);
}

void srv_v2_stats(srv_request *req)
{
    name_list l = {0};
    srv_network_each(collect_name, &l);
    cJSON *o = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(o, "model_stats");
    for (int k = 0; k < l.n; k++)
        cJSON_AddItemToArray(list, model_stat_json(l.names[k], l.ids[k]));
    free(l.names);
    free(l.ids);
    srv_reply_json(req, 200, o);
}

/* ------------------------------------------------------ metadata, health */

void srv_v2_live(srv_request *req)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "live", 1);
    srv_reply_json(req, 200, o);
}

void srv_v2_ready(srv_request *req)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ready", 1);
    srv_reply_json(req, 200, o);
}

void srv_v2_server_metadata(srv_request *req)
{
    static const char *const extensions[] = {
        "binary_tensor_data", "sequence", "statistics", "model_configuration"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", "nerved");
    cJSON_AddStringToObject(o, "version", NERVED_VERSION);
    cJSON *ext = cJSON_AddArrayToObject(o, "extensions");
    for (size_t k = 0; k < sizeof extensions / sizeof *extensions; k++)
        cJSON_AddItemToArray(ext, cJSON_CreateString(extensions[k]));
    const srv_blas_info *blas = srv_blas(); /* an extra field, not KServe's */
    cJSON *b = cJSON_AddObjectToObject(o, "blas");
    cJSON_AddStringToObject(b, "core", blas->core);
    cJSON_AddStringToObject(b, "mode", blas->mode);
    cJSON_AddStringToObject(b, "choice", blas->choice);
    cJSON_AddStringToObject(b, "selftest", blas->selftest);
    cJSON_AddStringToObject(b, "cpu_features", blas->cpu);
    srv_reply_json(req, 200, o);
}

static void model_metadata(srv_request *req, int versioned)
{
    srv_network *net = v2_model(req, versioned);
    if (!net)
        return;
    srv_reply_json(req, 200, api_kserve_model_metadata(net->graph,
                                                       req->params[0]));
    srv_network_release(net);
}

void srv_v2_model_metadata(srv_request *req) { model_metadata(req, 0); }
void srv_v2_model_version_metadata(srv_request *req) { model_metadata(req, 1); }

static void model_config(srv_request *req, int versioned)
{
    srv_network *net = v2_model(req, versioned);
    if (!net)
        return;
    srv_reply_json(req, 200, api_kserve_model_config(
                                 net->graph, req->params[0], net->definition,
                                 req->cfg->limits.max_batch,
                                 req->cfg->session_timeout * 1e6));
    srv_network_release(net);
}

void srv_v2_model_config(srv_request *req) { model_config(req, 0); }
void srv_v2_model_version_config(srv_request *req) { model_config(req, 1); }

static void model_ready(srv_request *req, int versioned)
{
    srv_network *net = v2_model(req, versioned);
    if (!net)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", req->params[0]);
    cJSON_AddBoolToObject(o, "ready", 1);
    srv_reply_json(req, 200, o);
    srv_network_release(net);
}

void srv_v2_model_ready(srv_request *req) { model_ready(req, 0); }
void srv_v2_model_version_ready(srv_request *req) { model_ready(req, 1); }

/* ------------------------------------------------------------- inference */

/* An answer the client asked to be compressed (tritonclient's
 * response_compression_algorithm), as Triton does for infer answers;
 * Inference-Header-Content-Length still counts the uncompressed JSON. When
 * memory fails it goes uncompressed, which the client reads too. */
static void compress_reply(srv_request *req)
{
    const char *coding = srv_encoding_pick(req->accept_encoding);
    req->vary_encoding = 1;
    if (coding && req->status == 200 && req->body_len &&
        srv_encode_body(coding, &req->body, &req->body_len) == 0)
        req->content_encoding = coding;
}

/* The answer to r after the step of s: JSON alone, or, when an output is
 * binary, the JSON header and the tensors' bytes with the header's length
 * in Inference-Header-Content-Length and Triton's Content-Type. */
static int reply_outputs(srv_request *req, const api_kserve_request *r,
                         const nn_session *s, api_error *err)
{
    api_blob *blobs = calloc((size_t)(r->n_outputs ? r->n_outputs : 1),
                             sizeof *blobs);
    int n_blobs = 0;
    cJSON *head = blobs ? api_kserve_response(r, req->params[0], s, blobs,
                                              &n_blobs)
                        : NULL;
    if (head && n_blobs == 0) {
        free(blobs);
        srv_reply_json(req, 200, head);
        compress_reply(req);
        return 0;
    }
    char *text = head ? cJSON_PrintUnformatted(head) : NULL;
    cJSON_Delete(head);
    size_t total = 0;
    char *frame = text ? api_binary_join(text, strlen(text), blobs, n_blobs,
                                         &total)
                       : NULL;
    free(blobs);
    if (!frame) {
        free(text);
        return api_fail(err, 503, "out_of_memory", "out of memory");
    }
    snprintf(req->reply_value, sizeof req->reply_value, "%zu", strlen(text));
    free(text);
    req->reply_header = API_BINARY_HEADER;
    srv_reply_bytes(req, 200, "application/octet-stream", frame, total);
    compress_reply(req);
    return 0;
}

/* Copies the request's inputs into the session, steps it, and answers. */
static int step(srv_request *req, nn_session *run,
                const api_kserve_request *r, srv_infer_times *times,
                api_error *err)
{
    uint64_t t = now_ns();
    for (int k = 0; k < r->n_inputs; k++) {
        nn_tensor *dst = nn_session_input(run, r->inputs[k].name);
        if (!nn_shape_equal(&dst->shape, &r->inputs[k].tensor->shape))
            return api_fail(err, 400, "shape_mismatch", "input '%s': the "
                            "sequence's batch is %d, this request's %d",
                            r->inputs[k].name, dst->shape.dims[0],
                            r->inputs[k].tensor->shape.dims[0]);
        memcpy(dst->data, r->inputs[k].tensor->data,
               nn_tensor_numel(dst) * sizeof(float));
    }
    uint64_t t1 = now_ns();
    times->input_ns += t1 - t;
    nn_error e;
    /* The dispatcher holds the weights read-locked (SRV_LOCK_READ). */
    int rc = nn_session_step(run, 0, &e);
    uint64_t t2 = now_ns();
    times->infer_ns = t2 - t1;
    if (rc != NN_OK)
        return api_fail_from_nn(err, &e, 0);
    srv_metrics_steps(req->net ? req->net->id : NULL, 1);
    rc = reply_outputs(req, r, run, err);
    times->output_ns = now_ns() - t2;
    return rc;
}

/* A stateless request: a fresh state, one step. */
static int infer_once(srv_request *req, srv_network *net,
                      const api_kserve_request *r, srv_infer_times *times,
                      api_error *err)
{
    nn_error e;
    nn_session *run = nn_session_new(net->graph, r->batch,
                                     nn_graph_seed(net->graph), &e);
    if (!run)
        return api_fail_from_nn(err, &e, 0);
    int rc = step(req, run, r, times, err);
    nn_session_free(run);
    return rc;
}

/* A step of the sequence r names: sequence_start creates it (or starts a
 * live one over), a sequence_id alone continues one that was started, and
 * sequence_end frees it after the step. */
static int infer_in_sequence(srv_request *req, srv_network *net,
                             const api_kserve_request *r,
                             srv_infer_times *times, api_error *err)
{
    srv_session *s;
    int created;
    if (srv_session_sequence(net, r->sequence_id, r->sequence_numeric,
                             req->key, r->batch,
                             r->sequence_start,
                             &s, &created, err))
        return -1;
    nn_error e;
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    if (r->sequence_start && !created) {
        rc = nn_session_batch(s->run) != r->batch
                 ? nn_session_resize(s->run, r->batch, &e)
                 : nn_session_reset(s->run, &e);
        if (rc)
            api_fail_from_nn(err, &e, 0);
    }
    if (!rc)
        rc = step(req, s->run, r, times, err);
    pthread_mutex_unlock(&s->lock);
    if (r->sequence_end) {
        api_error ignored;
        srv_session_end(s, req->persist, &ignored);
    }
    srv_session_release(s);
    return rc;
}

/* ----------------------------------------------------------- ordering */

uint64_t srv_v2_order_key(const srv_request *req)
{
    /* The body is read only up to its parameters, with the codec's
     * reader, which skips values without building them and never reads
     * past the text. */
    const cJSON *params = NULL;
    cJSON *parsed = NULL;
    if (req->json) {
        params = cJSON_GetObjectItemCaseSensitive(req->json, "parameters");
    } else if (req->raw_len) {
        api_json j = {req->raw, req->raw_len, req->raw_doc};
        size_t at = api_json_kind(&j, 0) == '{'
                        ? api_json_find(&j, 0, "parameters")
                        : (size_t)-1;
        size_t end = at != (size_t)-1 ? api_json_skip(&j, at) : (size_t)-1;
        if (end != (size_t)-1)
            params = parsed = cJSON_ParseWithLength(req->raw + at, end - at);
    }
    api_json text = {req->raw, req->raw_len, req->raw_doc};
    char id[API_KSERVE_SEQUENCE_MAX];
    int numeric;
    api_error ignored; /* the request itself says so */
    if (api_kserve_sequence_id(params, req->json ? NULL : &text, id, &numeric,
                               &ignored))
        id[0] = '\0';
    cJSON_Delete(parsed);
    if (!id[0])
        return 0;
    return srv_sched_key(numeric ? "sequence" : "sequence-string", id);
}

/* The requested outputs, inner nodes included, against
 * --max-output-floats before anything is stepped or allocated for them. */
static int check_output_floats(const srv_request *req, const nn_graph *g,
                               const api_kserve_request *r, api_error *err)
{
    double floats = 0;
    for (int k = 0; k < r->n_outputs; k++) {
        nn_node *node = nn_graph_find(g, r->outputs[k].name);
        nn_shape per = nn_node_output_shape(node);
        floats += (double)r->batch * (double)nn_shape_numel(&per);
    }
    if (floats > (double)req->cfg->max_output_floats)
        return api_fail(err, 413, "too_large", "the reply would hold %.0f "
                        "floats; the limit is %zu (--max-output-floats)",
                        floats, req->cfg->max_output_floats);
    return 0;
}

static void infer(srv_request *req, int versioned)
{
    uint64_t start = now_ns();
    srv_network *net = v2_model(req, versioned);
    if (!net)
        return;
    srv_infer_times times = {req->queue_ns, 0, 0, 0};
    api_error err;
    api_kserve_request r;
    /* The route reads its text itself (SRV_BODY_RAW): a JSON body's large
     * "data" arrays were read into float32 as they arrived. */
    api_json j = {req->raw ? req->raw : "", req->raw_len, req->raw_doc};
    /* A raw binary request stands for the header of its one input. */
    char *header = req->raw_binary ? api_kserve_raw_header(
                                         net->graph, req->blob_len, &err)
                                   : NULL;
    if (header)
        j = (api_json){header, strlen(header), NULL};
    int rc = req->raw_binary && !header
                 ? (memset(&r, 0, sizeof r), -1)
                 : api_kserve_read_text(&j, req->blob, req->blob_len,
                                        net->graph, &req->cfg->limits, &r,
                                        &err);
    times.input_ns = now_ns() - start;
    if (!rc && r.batch > req->cfg->limits.max_batch)
        rc = api_fail(&err, 400, "bad_request", "batch %d is over the limit "
                      "of %d", r.batch, req->cfg->limits.max_batch);
    if (!rc)
        rc = check_output_floats(req, net->graph, &r, &err);
    if (!rc)
        rc = r.sequence_id[0] ? infer_in_sequence(req, net, &r, &times, &err)
                              : infer_once(req, net, &r, &times, &err);
    if (rc)
        v2_error(req, &err);
    srv_kserve_record(net, rc == 0, r.batch,
                      req->queue_ns + (now_ns() - start), &times);
    api_kserve_request_free(&r);
    free(header);
    srv_network_release(net);
}

void srv_v2_infer(srv_request *req) { infer(req, 0); }
void srv_v2_version_infer(srv_request *req) { infer(req, 1); }
