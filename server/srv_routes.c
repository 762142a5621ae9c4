/*
 * srv_routes.c — the route table and its handlers. Like redis's command
 * table: one row per route, looked up by the HTTP layer, each handler a flat
 * function of one request that answers through the srv_reply_* helpers.
 * What a row's flags ask for (the network, the session, their locks) is
 * there when the handler runs, and released by the dispatcher after it.
 */
#include "srv_routes.h"
#include "api_binary.h"
#include "api_codec.h"
#include "api_outputs.h"
#include "api_sparse.h"
#include "srv_budget.h"
#include "srv_fit.h"
#include "srv_http.h"
#include "srv_kserve.h"
#include "srv_live.h"
#include "srv_metrics.h"
#include "srv_persist.h"
#include "srv_state.h"
#include "srv_store.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------- helpers */

/* A body made of tensors, sent as its text is made: small documents in
 * one piece with a length, large ones chunked, so a response's text is
 * never whole in memory. Takes enc (NULL: out of memory). */
typedef struct enc_stream {
    api_enc *enc;
    char *head;          /* what was made before deciding to stream */
    size_t len, at;
} enc_stream;

static ssize_t enc_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    enc_stream *es = cls;
    size_t n = 0;
    if (es->at < es->len) {
        n = es->len - es->at < max ? es->len - es->at : max;
        memcpy(buf, es->head + es->at, n);
        es->at += n;
    }
    if (n < max)
        n += api_enc_next(es->enc, buf + n, max - n);
    return n ? (ssize_t)n : -1; /* -1: the end (srv_reply_stream) */
}

static void enc_stream_free(void *cls)
{
    enc_stream *es = cls;
    api_enc_free(es->enc);
    free(es->head);
    free(es);
}

/* Up to this much is sent in one piece. */
#define SMALL_REPLY (32 * 1024)

/* The q of media type `type` in an Accept header: 1 when named without
 * q, -1 when not named. */
static double accept_q(const char *accept, const char *type)
{
    size_t n = strlen(type);
    for (const char *p = accept; p && *p;) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        const char *end = p + strcspn(p, ",");
        if ((size_t)(end - p) >= n && strncasecmp(p, type, n) == 0 &&
            (p[n] == ';' || p[n] == ',' || p[n] == '\0' ||
             isspace((unsigned char)p[n]))) {
            const char *q = strstr(p, "q=");
            return q && q < end ? strtod(q + 2, NULL) : 1.0;
        }
        p = end;
    }
    return -1;
}

/* Whether the client asked for its tensors in the binary framing:
 * Accept names application/octet-stream, above application/json if it
 * names that too. */
static int wants_binary(const srv_request *req)
{
    double bin = accept_q(req->accept, "application/octet-stream");
    return bin > 0 && bin > accept_q(req->accept, "application/json");
}

/* enc in the binary tensor framing: the JSON header's length in
 * Inference-Header-Content-Length, then the header and the tensors'
 * bytes, streamed when large. Takes enc. */
static void reply_binary(srv_request *req, int status, api_enc *enc)
{
    size_t header_len, total;
    enc_stream *es = NULL;
    char *whole = NULL;
    if (api_enc_binary(enc, &header_len, &total) == 0) {
        if (total <= SMALL_REPLY)
            whole = malloc(total ? total : 1);
        else
            es = calloc(1, sizeof *es);
    }
    if (!whole && !es) {
        api_enc_free(enc);
        srv_reply_fail(req, 503, "out_of_memory", "out of memory");
        return;
    }
    req->reply_header = API_BINARY_HEADER;
    snprintf(req->reply_value, sizeof req->reply_value, "%zu", header_len);
    if (whole) {
        size_t n = api_enc_next(enc, whole, total);
        api_enc_free(enc);
        srv_reply_bytes(req, status, "application/octet-stream", whole, n);
        return;
    }
    es->enc = enc;
    srv_reply_stream_sized(req, status, "application/octet-stream", total,
                           enc_stream_read, es, enc_stream_free);
}

static void reply_encoded(srv_request *req, int status, api_enc *enc)
{
    if (enc && wants_binary(req)) {
        reply_binary(req, status, enc);
        return;
    }
    enc_stream *es = enc ? calloc(1, sizeof *es) : NULL;
    char *head = es ? malloc(SMALL_REPLY + 1) : NULL;
    if (!head) {
        free(es);
        api_enc_free(enc);
        srv_reply_fail(req, 503, "out_of_memory", "out of memory");
        return;
    }
    size_t n = api_enc_next(enc, head, SMALL_REPLY);
    if (n < SMALL_REPLY) {
        head[n] = '\0';
        free(es);
        api_enc_free(enc);
        srv_reply_text(req, status, "application/json", head);
        return;
    }
    es->enc = enc;
    es->head = head;
    es->len = n;
    srv_reply_stream(req, status, "application/json", enc_stream_read, es,
                     enc_stream_free);
}

/* With the binary tensor framing, indexes the bytes after the JSON
 * header into req->blobs (left NULL without it); -1 after replying. */
static int body_blobs(srv_request *req, const api_json *j)
{
    api_error err;
    if (!req->blob || req->blobs)
        return 0;
    if (api_json_blobs_index(j, req->blob, req->blob_len, &req->blobs,
                             &err)) {
        srv_reply_error(req, &err);
        return -1;
    }
    return 0;
}

/* Reads the form of a step body, or with sequence set of a run body (which
 * alone may hold "forced"); -1 after replying. */
static int step_body(srv_request *req, int sequence, api_json *j,
                     api_step_body *b)
{
    api_error err;
    j->s = req->raw ? req->raw : "";
    j->len = req->raw_len;
    j->doc = req->raw_doc;
    if (api_read_step_body(j, sequence, b, &err)) {
        srv_reply_error(req, &err);
        return -1;
    }
    return body_blobs(req, j);
}

/* The nodes the body's "outputs" names, or the exits; -1 after replying
 * (o is empty then). */
static int step_outputs(srv_request *req, const api_json *j,
                        const api_step_body *b, api_outputs *o)
{
    api_error err;
    if (api_json_outputs(j, b->outputs, req->net->graph, o, &err)) {
        api_outputs_free(o);
        srv_reply_error(req, &err);
        return -1;
    }
    return 0;
}

static cJSON *network_json(srv_network *net)
{
    cJSON *o = api_graph_describe(net->graph);
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "id", net->id);
    if (net->name[0])
        cJSON_AddStringToObject(o, "name", net->name);
    else
        cJSON_AddNullToObject(o, "name");
    return o;
}

static cJSON *session_json(srv_session *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", s->id);
    cJSON_AddStringToObject(o, "network", s->net->id);
    cJSON_AddNumberToObject(o, "batch", nn_session_batch(s->run));
    cJSON_AddNumberToObject(o, "steps", (double)nn_session_steps(s->run));
    return o;
}

/* ------------------------------------------------------------- health */

static void handle_healthz(srv_request *req)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    srv_reply_json(req, 200, o);
}

static void handle_readyz(srv_request *req)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ready");
    cJSON_AddNumberToObject(o, "networks", srv_network_count());
    cJSON_AddNumberToObject(o, "sessions", srv_session_count());
    srv_reply_json(req, 200, o);
}

typedef struct queue_list {
    srv_metrics_queue *q;
    int n, cap;
} queue_list;

static void queue_of_network(srv_network *net, void *arg)
{
    queue_list *l = arg;
    if (l->n == l->cap)
        return;
    srv_metrics_queue *q = &l->q[l->n++];
    snprintf(q->network, sizeof q->network, "%s", net->id);
    srv_sched_queue_depth(net, &q->queued, &q->running);
}

static void handle_metrics(srv_request *req)
{
    const char *names[64];
    int n = srv_route_count();
    for (int i = 0; i < n && i < 64; i++)
        names[i] = srv_routes[i].name;
    srv_metrics_gauges g = {srv_network_count(), srv_session_count(),
                            srv_http_open_connections(), NULL, 0};
    /* Room for networks added between the count and the walk is not
     * needed: a scrape shows the queues of a moment, and those come
     * next time. */
    queue_list queues = {calloc((size_t)g.networks + 1, sizeof *queues.q), 0,
                         g.networks + 1};
    if (queues.q)
        srv_network_each(queue_of_network, &queues);
    g.queues = queues.q;
    g.n_queues = queues.n;
    char *text = queues.q ? srv_metrics_render(names, n, &g) : NULL;
    free(queues.q);
    if (!text) {
        srv_reply_fail(req, 503, "out_of_memory", "out of memory");
        return;
    }
    srv_reply_text(req, 200, "text/plain; version=0.0.4", text);
}

static void handle_openapi(srv_request *req)
{
    char *copy = strdup(api_openapi_json());
    if (!copy) {
        srv_reply_fail(req, 503, "out_of_memory", "out of memory");
        return;
    }
    srv_reply_text(req, 200, "application/json", copy);
}

static void handle_node_types(srv_request *req)
{
    srv_reply_json(req, 200, api_node_types_json(req->reg));
}

/* ------------------------------------------------------------- networks */

static void handle_network_create(srv_request *req)
{
    api_error err;
    const char *name;
    if (api_graph_def_name(req->json, &name, &err)) {
        srv_reply_error(req, &err);
        return;
    }
    nn_graph *g = api_graph_from_json(req->json, req->reg, &req->cfg->limits,
                                      &err);
    if (!g) {
        srv_reply_error(req, &err);
        return;
    }
    char *definition = cJSON_PrintUnformatted(req->json);
    if (!definition) {
        nn_graph_free(g);
        srv_reply_fail(req, 503, "out_of_memory", "out of memory");
        return;
    }
    srv_network *net;
    if (srv_network_add(g, definition, name, NULL, &net, &err)) {
        srv_reply_error(req, &err);
        return;
    }
    /* On disk before it is acknowledged; a network that could not be
     * saved is not kept either. */
    pthread_rwlock_rdlock(&net->weights);
    int rc = srv_persist_save_network(req->persist, net, &err);
    pthread_rwlock_unlock(&net->weights);
    if (rc) {
        srv_network_delete(net->id, NULL);
        srv_reply_error(req, &err);
    } else {
        srv_reply_json(req, 201, network_json(net));
    }
    srv_network_release(net);
}

static void list_network(srv_network *net, void *arg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", net->id);
    if (net->name[0])
        cJSON_AddStringToObject(o, "name", net->name);
    else
        cJSON_AddNullToObject(o, "name");
    cJSON *entries = cJSON_AddArrayToObject(o, "entries");
    for (int i = 0; i < nn_graph_entry_count(net->graph); i++)
        cJSON_AddItemToArray(entries, cJSON_CreateString(nn_node_name(
                                          nn_graph_entry_at(net->graph, i))));
    cJSON *exits = cJSON_AddArrayToObject(o, "exits");
    for (int i = 0; i < nn_graph_exit_count(net->graph); i++)
        cJSON_AddItemToArray(exits, cJSON_CreateString(nn_node_name(
                                        nn_graph_exit_at(net->graph, i))));
    cJSON_AddItemToArray((cJSON *)arg, o);
}

static void handle_network_list(srv_request *req)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(o, "networks");
    srv_network_each(list_network, list);
    srv_reply_json(req, 200, o);
}

static void handle_network_get(srv_request *req)
{
    srv_reply_json(req, 200, network_json(req->net));
}

static void handle_network_delete(srv_request *req)
{
    srv_network *net = req->net;
    api_error err;
    /* The write lock keeps saves of the network and of its sessions'
     * checkpoints out while its files go, so none comes back. */
    if (req->persist)
        pthread_rwlock_wrlock(&net->weights);
    int rc = srv_network_linked(net)
                 ? srv_persist_remove_network(req->persist, net, &err)
                 : 0;
    if (rc == 0)
        rc = srv_network_delete(net->id, &err);
    if (req->persist)
        pthread_rwlock_unlock(&net->weights);
    if (rc) {
        srv_reply_error(req, &err);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "deleted", req->params[0]);
        srv_reply_json(req, 200, o);
    }
}

/* Charges a request's memory before it is allocated: working floats
 * (sessions, inputs) and a reply of out_floats numbers, held as float32
 * while its text is streamed. Refuses, with 413, a reply past
 * --max-output-floats or what the whole budget could never hold, and with
 * 503 what the daemon's budget cannot hold now. */
static int charge_held(srv_request *req, double work_floats,
                       double out_floats, double held_floats)
{
    if (out_floats > (double)req->cfg->max_output_floats) {
        srv_reply_fail(req, 413, "too_large", "the reply would hold %.0f "
                       "floats; the limit is %zu (--max-output-floats)",
                       out_floats, req->cfg->max_output_floats);
        return -1;
    }
    return srv_request_charge(req, 4.0 * (work_floats + held_floats),
                              "the request");
}

/* As charge_held for a reply that holds all its out_floats. */
static int charge(srv_request *req, double work_floats, double out_floats)
{
    return charge_held(req, work_floats, out_floats, out_floats);
}

static void handle_network_forward(srv_request *req)
{
    api_json j;
    api_step_body body;
    api_outputs outs;
    if (step_body(req, 0, &j, &body) || step_outputs(req, &j, &body, &outs))
        return;
    srv_network *net = req->net;
    int batch = api_json_stateless_batch(&j, body.inputs);
    if (batch < 1 || batch > req->cfg->limits.max_batch) {
        srv_reply_fail(req, 400, "bad_request", "the batch (axis 0 of the "
                       "inputs) must be from 1 to %d",
                       req->cfg->limits.max_batch);
        api_outputs_free(&outs);
        return;
    }
    if (charge(req, (double)nn_session_float_count(net->graph, batch),
               (double)batch * (double)api_outputs_floats(&outs))) {
        api_outputs_free(&outs);
        return;
    }
    nn_error e;
    api_error err;
    nn_session *run = srv_sched_stateless_session(
        net, batch, nn_graph_seed(net->graph), &e);
    if (!run) {
        api_fail_from_nn(&err, &e, 0);
        srv_reply_error(req, &err);
    } else if (api_json_bind_step_inputs_bin(&j, req->blobs, body.inputs,
                                             run, net->graph,
                                             &req->cfg->limits, &err)) {
        srv_reply_error(req, &err);
    } else if (nn_session_step(run, body.train, &e) != NN_OK) {
        api_fail_from_nn(&err, &e, 0);
        srv_reply_error(req, &err);
    } else {
        srv_metrics_steps(net->id, 1);
        /* The encoder copies the outputs: the session goes now. */
        reply_encoded(req, 200, api_step_nodes_enc(run, &outs, -1));
    }
    srv_sched_stateless_done(net, run);
    api_outputs_free(&outs);
}

/* Streamed from a float32 copy taken under the read lock (SRV_LOCK_READ):
 * a slow client holds no lock, and an import after the copy does not show
 * mid-answer. */
static void handle_params_get(srv_request *req)
{
    size_t total = 0;
    for (int i = 0; i < nn_graph_node_count(req->net->graph); i++) {
        nn_node *node = nn_graph_node_at(req->net->graph, i);
        total += nn_node_param_count(node);
        /* A sparse weight's offsets and indices are copied as well. */
        for (int w = 0; w < nn_node_weight_count(node); w++)
            total += api_sparse_extra_words(node, w);
    }
    if (charge(req, 0, (double)total))
        return;
    reply_encoded(req, 200, api_params_enc(req->net->graph));
}

/* Every weight of g, one after the other, in a malloc'd array (NULL when
 * out of memory); or, with back set, copies such an array back into g. */
static float *weights_copy(nn_graph *g, float *back)
{
    size_t total = 0;
    for (int i = 0; i < nn_graph_node_count(g); i++)
        total += nn_node_param_count(nn_graph_node_at(g, i));
    float *copy = back ? back : malloc((total ? total : 1) * sizeof *copy);
    size_t at = 0;
    for (int i = 0; copy && i < nn_graph_node_count(g); i++) {
        nn_node *node = nn_graph_node_at(g, i);
        for (int w = 0; w < nn_node_weight_count(node); w++) {
            nn_tensor *t = nn_node_weight_at(node, w);
            size_t n = nn_tensor_numel(t) * sizeof(float);
            if (back)
                memcpy(t->data, copy + at, n);
            else
                memcpy(copy + at, t->data, n);
            at += nn_tensor_numel(t);
        }
    }
    return copy;
}

/* The document is read and checked against the graph's names and shapes,
 * which never change, before the write lock: the lock is held only to
 * copy. Writers wait for running steps, and steps for the import, so a
 * step never sees half old, half new weights. The handler takes the write
 * lock itself (the route asks for none) so that reading holds no lock. */
static void handle_params_put(srv_request *req)
{
    srv_network *net = req->net;
    api_error err;
    api_json j = {req->raw ? req->raw : "", req->raw_len, req->raw_doc};
    api_params_import *imp;
    if (body_blobs(req, &j))
        return;
    if (api_params_read_bin(net->graph, &j, req->blobs, &imp, &err)) {
        srv_reply_error(req, &err);
        return;
    }
    pthread_rwlock_wrlock(&net->weights);
    /* An import that cannot be saved is undone, so what the daemon serves
     * is what its data directory holds. */
    float *before = req->persist ? weights_copy(net->graph, NULL) : NULL;
    int rc = req->persist && !before
                 ? api_fail(&err, 503, "out_of_memory", "out of memory")
                 : 0;
    if (rc == 0)
        rc = api_params_still_fits(net->graph, imp, &err);
    if (rc == 0)
        api_params_apply(net->graph, imp);
    if (rc == 0 && srv_persist_save_network(req->persist, net, &err)) {
        /* The former patterns first: the copy has their sizes. */
        api_params_unapply_patterns(net->graph, imp);
        weights_copy(net->graph, before);
        rc = -1;
    }
    pthread_rwlock_unlock(&net->weights);
    free(before);
    api_params_import_free(imp);
    if (rc) {
        srv_reply_error(req, &err);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "imported", net->id);
        srv_reply_json(req, 200, o);
    }
}

static void handle_graph(srv_request *req)
{
    const char *format = req->query_format ? req->query_format : "dot";
    int svg = strcmp(format, "svg") == 0;
    if (!svg && strcmp(format, "dot") != 0) {
        srv_reply_fail(req, 400, "bad_request", "format must be dot or svg, "
                       "got '%.32s'", format);
        return;
    }
    srv_network *net = req->net;
    char *text = svg ? api_graph_svg(net->graph) : api_graph_dot(net->graph);
    if (text)
        srv_reply_text(req, 200, svg ? "image/svg+xml" : "text/vnd.graphviz",
                       text);
    else
        srv_reply_fail(req, 503, "out_of_memory", "out of memory");
}

/* ------------------------------------------------------------- sessions */

/* A client's session id: what nginx hashes on to keep a session on one
 * replica, so it must be known before the session exists. */
static int valid_session_id(const char *id)
{
    size_t n = strlen(id);
    if (!api_is_path_name(id, 24))
        return 0;
    /* "s" and digits is the server's own form (s1, s2, ...). */
    return !(id[0] == 's' && n > 1 && strspn(id + 1, "0123456789") == n - 1);
}

static void handle_session_create(srv_request *req)
{
    int batch = 1;
    const char *id = NULL;
    if (req->json) {
        if (!cJSON_IsObject(req->json)) {
            srv_reply_fail(req, 400, "bad_request", "the body must be an "
                           "object such as {\"batch\": 1}");
            return;
        }
        for (const cJSON *c = req->json->child; c; c = c->next)
            if (strcmp(c->string, "batch") != 0 && strcmp(c->string, "id")) {
                srv_reply_fail(req, 400, "bad_request", "unknown member "
                               "'%.64s' (expected batch, id)", c->string);
                return;
            }
        const cJSON *id_j = cJSON_GetObjectItemCaseSensitive(req->json, "id");
        if (id_j) {
            if (!cJSON_IsString(id_j) || !valid_session_id(id_j->valuestring)) {
                srv_reply_fail(req, 400, "bad_request", "\"id\" must be 1-23 "
                               "letters, digits, '_', '-' or '.', and not "
                               "\"s\" and digits (the server's own ids), "
                               "\".\" or \"..\"");
                return;
            }
            id = id_j->valuestring;
        }
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(req->json, "batch");
        if (b) {
            if (!cJSON_IsNumber(b) || b->valuedouble < 1 ||
                b->valuedouble > req->cfg->limits.max_batch ||
                b->valuedouble != (double)(int)b->valuedouble) {
                srv_reply_fail(req, 400, "bad_request", "\"batch\" must be an "
                               "integer from 1 to %d",
                               req->cfg->limits.max_batch);
                return;
            }
            batch = (int)b->valuedouble;
        }
    }
    api_error err;
    srv_session *s;
    if (srv_session_add_for(req->net, batch, id, req->key, &s, &err)) {
        if (err.http_status == 503 || err.http_status == 413)
            req->retry_after = err.http_status == 503;
        srv_reply_error(req, &err);
    } else {
        srv_reply_json(req, 201, session_json(s));
        srv_session_release(s);
    }
}

static void list_session(srv_session *s, void *arg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", s->id);
    cJSON_AddItemToArray((cJSON *)arg, o);
}

static void handle_session_list(srv_request *req)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(o, "sessions");
    srv_session_each(req->net, list_session, list);
    srv_reply_json(req, 200, o);
}

static void handle_session_get(srv_request *req)
{
    srv_reply_json(req, 200, session_json(req->session));
}

static void handle_session_delete(srv_request *req)
{
    api_error err;
    if (srv_session_end(req->session, req->persist, &err)) {
        srv_reply_error(req, &err);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "deleted", req->params[1]);
        srv_reply_json(req, 200, o);
    }
}

/* What a checkpoint holds, for its answer: the session, the file's size
 * and each node's state tensors by name and shape. */
static cJSON *checkpoint_json(srv_session *s, size_t bytes)
{
    cJSON *o = session_json(s);
    cJSON *saved = cJSON_AddObjectToObject(o, "checkpoint");
    cJSON_AddNumberToObject(saved, "bytes", (double)bytes);
    cJSON_AddNumberToObject(saved, "nodes", nn_graph_node_count(s->net->graph));
    cJSON *states = cJSON_AddArrayToObject(saved, "states");
    for (int i = 0; states && i < nn_graph_node_count(s->net->graph); i++) {
        nn_node *node = nn_graph_node_at(s->net->graph, i);
        for (int k = 0; k < nn_node_state_count(node); k++) {
            const nn_tensor *t = nn_session_state(s->run, nn_node_name(node), k);
            cJSON *st = cJSON_CreateObject();
            cJSON_AddStringToObject(st, "node", nn_node_name(node));
            cJSON_AddStringToObject(st, "state", nn_node_state_name(node, k));
            cJSON *shape = cJSON_AddArrayToObject(st, "shape");
            for (int d = 0; shape && d < t->shape.ndim; d++)
                cJSON_AddItemToArray(shape,
                                     cJSON_CreateNumber(t->shape.dims[d]));
            cJSON_AddItemToArray(states, st);
        }
    }
    return o;
}

/* Runs with the weights read-locked and the session locked. */
static void handle_session_checkpoint(srv_request *req)
{
    if (!req->persist) {
        srv_reply_fail(req, 409, "no_data_dir", "checkpoints need the daemon "
                       "to run with --data-dir");
        return;
    }
    srv_session *s = req->session;
    api_error err;
    size_t bytes;
    if (srv_persist_save_session(req->persist, s, &bytes, &err))
        srv_reply_error(req, &err);
    else if (!srv_session_linked(s))
        srv_reply_fail(req, 404, "not_found", "session '%s' was deleted",
                       s->id);
    else
        srv_reply_json(req, 200, checkpoint_json(s, bytes));
}

/* Runs with the session locked. */
static void handle_session_reset(srv_request *req)
{
    nn_error e;
    api_error err;
    if (nn_session_reset(req->session->run, &e) != NN_OK) {
        api_fail_from_nn(&err, &e, 0);
        srv_reply_error(req, &err);
    } else {
        srv_reply_json(req, 200, session_json(req->session));
    }
}

/* One step of a session, batchable with other sessions' steps: prepare
 * reads the inputs into the session (locked until finish), finish writes
 * the outputs. The weights are read-locked around both. */
static int session_step_prepare(srv_job *job)
{
    srv_request *req = &job->req;
    api_json j;
    api_step_body body;
    if (srv_request_parse_json(req) || step_body(req, 0, &j, &body))
        return -1;
    job->train = body.train;
    srv_session *s = req->session;
    api_error err;
    /* finish answers with these nodes' outputs and frees them. */
    api_outputs *outs = calloc(1, sizeof *outs);
    if (!outs) {
        srv_reply_fail(req, 503, "out_of_memory", "out of memory");
        return -1;
    }
    if (step_outputs(req, &j, &body, outs)) {
        free(outs);
        return -1;
    }
    if (job->may_wait) {
        pthread_mutex_lock(&s->lock);
    } else if (pthread_mutex_trylock(&s->lock) != 0) {
        api_outputs_free(outs);
        free(outs);
        return 1;
    }
    /* Deleted while this step waited behind another request of its
     * session: the step would go to a session no one can reach. */
    int refused = !srv_session_linked(s);
    if (refused)
        srv_reply_fail(req, 404, "not_found", "session '%s' was deleted",
                       s->id);
    /* Charged under the lock, so a prepare tried again after a taken
     * lock charges once; the batch size cannot change meanwhile. */
    if (!refused)
        refused = charge(req, 0, (double)nn_session_batch(s->run) *
                                     (double)api_outputs_floats(outs));
    if (!refused && api_json_bind_step_inputs_bin(&j, req->blobs, body.inputs,
                                                  s->run, req->net->graph,
                                                  &req->cfg->limits, &err)) {
        srv_reply_error(req, &err);
        refused = 1;
    }
    if (refused) {
        pthread_mutex_unlock(&s->lock);
        api_outputs_free(outs);
        free(outs);
        return -1;
    }
    job->run_session = s->run;
    job->step_ctx = outs;
    return 0;
}

static void session_step_finish(srv_job *job, int rc, const nn_error *e)
{
    srv_request *req = &job->req;
    srv_session *s = req->session;
    api_outputs *outs = job->step_ctx;
    if (rc != NN_OK) {
        api_error err;
        api_fail_from_nn(&err, e, 0);
        srv_reply_error(req, &err);
    } else {
        /* A copy of the outputs: the next step may start as soon as the
         * lock goes. */
        reply_encoded(req, 200, api_step_nodes_enc(s->run, outs,
                                                   nn_session_steps(s->run)));
    }
    pthread_mutex_unlock(&s->lock);
    api_outputs_free(outs);
    free(outs);
    job->step_ctx = NULL;
}

static const srv_step_ops session_step = {session_step_prepare,
                                          session_step_finish};

/* What a run holds beside the session: nothing when it goes step by step;
 * node by node (a network with a bidirectional node) every node's output,
 * state and scratch for every step. */
static double run_work_floats(const nn_graph *g, int batch, int steps)
{
    if (!nn_graph_sequence_node(g))
        return 0;
    return (double)nn_session_float_count(g, batch) * (double)steps;
}

/* A run streamed as it steps (srv_live.h): its first output goes out
 * through a window of this many floats at most (or two steps' worth);
 * runs whose first output is smaller are held whole, as are runs of more
 * than one batch row (whose output is row-major, every step of the first
 * row before any of the second) and of a network that runs node by node.
 * The outputs after the first are held. */
#define LIVE_WINDOW ((size_t)256 * 1024)

typedef struct live_run {
    srv_request *req;
    srv_live *live;
    api_enc *enc;     /* the answer, the live's once sent */
    int binary;
    size_t header_len; /* of the binary framing */
    size_t binary_size; /* the framed answer's whole length */
    int sent;         /* the answer has begun: errors end the document */
    nn_tensor **held; /* outputs 1..n, (1, steps, shape); the encoder's */
} live_run;

/* The answer goes out at the first step: whatever the engine refuses
 * before it (inputs, shapes, forcing, a failure of step 0) is still a
 * plain error. */
static void live_send(live_run *r)
{
    if (r->binary) {
        r->req->reply_header = API_BINARY_HEADER;
        snprintf(r->req->reply_value, sizeof r->req->reply_value, "%zu",
                 r->header_len);
    }
    srv_live_send(r->live, r->req, r->enc, r->binary, r->binary_size);
    r->enc = NULL; /* the live's */
    r->sent = 1;
}

static int live_step(void *ctx, int t, const nn_tensor *const *outs, int n)
{
    live_run *r = ctx;
    if (!r->sent)
        live_send(r);
    /* The held outputs first: the reader comes to them once the last
     * push is in, and the push's lock orders these writes before. */
    for (int x = 1; x < n; x++) {
        size_t row = nn_tensor_numel(outs[x]);
        memcpy(r->held[x]->data + (size_t)t * row, outs[x]->data,
               row * sizeof(float));
    }
    /* A client that went away stops nothing: the run completes. */
    srv_live_push(r->live, outs[0]->data, nn_tensor_numel(outs[0]));
    return 0;
}

/* The document's end after a failure mid-stream: what was sent of the
 * first output stays, and an "error" member says what happened. */
static void live_tail(const nn_error *e, char *tail, size_t size)
{
    api_error err;
    api_fail_from_nn(&err, e, 0);
    cJSON *j = api_error_json(&err);
    cJSON *inner = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
    char *text = inner ? cJSON_PrintUnformatted(inner) : NULL;
    snprintf(tail, size, "},\"error\":%s}",
             text ? text : "{\"code\":\"internal\",\"message\":\"the run "
                           "failed\"}");
    free(text);
    cJSON_Delete(j);
}

/* The answer of a run to stream: the first output live, the others held
 * (r->held, given to the encoder). -1 when memory fails. */
static int live_answer(live_run *r, const api_outputs *picked, int steps,
                       long step_after, size_t window)
{
    r->held = calloc((size_t)picked->n, sizeof *r->held);
    nn_tensor **rest = calloc((size_t)picked->n, sizeof *rest);
    nn_shape row = nn_node_output_shape(picked->nodes[0]);
    nn_shape first = {.ndim = row.ndim + 2, .dims = {1, steps}};
    int ok = r->held && rest && row.ndim + 2 <= NN_MAX_DIMS;
    if (ok)
        memcpy(first.dims + 2, row.dims, (size_t)row.ndim * sizeof(int));
    for (int x = 1; x < picked->n && ok; x++) {
        nn_shape out = nn_node_output_shape(picked->nodes[x]);
        nn_shape shape = {.ndim = out.ndim + 2, .dims = {1, steps}};
        ok = out.ndim + 2 <= NN_MAX_DIMS;
        if (ok)
            memcpy(shape.dims + 2, out.dims, (size_t)out.ndim * sizeof(int));
        ok = ok && (rest[x] = r->held[x] = nn_tensor_new(&shape)) != NULL;
    }
    r->live = ok ? srv_live_new(window, r->req->cfg->connection_timeout)
                 : NULL;
    if (r->live)
        /* Takes the held tensors, also when it fails. */
        r->enc = api_sequence_nodes_live_enc(picked, &first, srv_live_source,
                                             r->live, rest, step_after);
    else
        for (int x = 1; x < picked->n && rest; x++)
            nn_tensor_free(rest[x]);
    free(rest);
    if (r->enc && r->binary &&
        api_enc_binary(r->enc, &r->header_len, &r->binary_size) != 0) {
        api_enc_free(r->enc);
        r->enc = NULL;
    }
    return r->enc && !api_enc_failed(r->enc) ? 0 : -1;
}

/* Streams the run if it is one to stream (returns 0: answered, with an
 * early reply or an error); 1 leaves it to the caller, untouched. */
static int run_live(srv_request *req, const nn_binding *bind, int n_in,
                    const nn_binding *forced, int n_forced,
                    const api_outputs *picked, int steps, int train)
{
    srv_network *net = req->net;
    nn_session *s = req->session->run;
    if (nn_graph_sequence_node(net->graph) || nn_session_batch(s) != 1)
        return 1;
    nn_shape row = nn_node_output_shape(picked->nodes[0]);
    size_t per_step = nn_shape_numel(&row);
    if ((double)per_step * steps < (double)LIVE_WINDOW)
        return 1;
    size_t window = LIVE_WINDOW > 2 * per_step ? LIVE_WINDOW : 2 * per_step;
    double held = 0;
    for (int x = 1; x < picked->n; x++) {
        nn_shape out = nn_node_output_shape(picked->nodes[x]);
        held += (double)steps * (double)nn_shape_numel(&out);
    }
    if (charge_held(req, (double)window + held,
                    (double)steps * (double)api_outputs_floats(picked),
                    held))
        return 0;
    live_run r = {.req = req, .binary = wants_binary(req)};
    nn_error e;
    int rc = live_answer(&r, picked, steps, nn_session_steps(s) + steps,
                         window) == 0
                 ? nn_session_run_each(s, bind, n_in, forced, n_forced,
                                       picked->names, picked->n, steps,
                                       train, live_step, &r, &e)
                 : nn_error_set(&e, NN_ERR_NOMEM, "out of memory");
    if (r.sent && rc != NN_OK) {
        char tail[600];
        live_tail(&e, tail, sizeof tail);
        srv_live_cut(r.live, tail);
    } else if (!r.sent) {
        /* Nothing went out: an ordinary error (memory, or the run's own
         * refusal before its first step). */
        api_enc_free(r.enc);
        srv_live_drop(r.live);
        api_error err;
        api_fail_from_nn(&err, &e, 0);
        srv_reply_error(req, &err);
    }
    if (rc == NN_OK)
        srv_metrics_steps(net->id, steps);
    free(r.held);
    return 0;
}

/* Runs with the weights read-locked and the session locked. Outside
 * run_live, the whole run is done, and its outputs held as float32,
 * before the first byte of the answer: every error is a plain 4xx/5xx,
 * and what is streamed after cannot fail (api_enc_next needs no memory).
 * A streamed run's first byte goes after its first step, so the run's
 * own refusals are plain errors there too; only a step failing after
 * that ends it with an "error" member. */
static void handle_session_run(srv_request *req)
{
    api_json j;
    api_step_body body;
    api_outputs picked;
    if (step_body(req, 1, &j, &body) || step_outputs(req, &j, &body, &picked))
        return;
    srv_network *net = req->net;
    srv_session *s = req->session;
    api_error err;
    nn_error e;
    nn_binding *bind;
    int steps;
    nn_binding *forced = NULL;
    int n_forced = 0;
    int batch = nn_session_batch(s->run);
    if (api_json_sequence_inputs_bin(&j, req->blobs, body.inputs, net->graph,
                                     batch, &req->cfg->limits, &bind, &steps,
                                     &err)) {
        srv_reply_error(req, &err);
        api_outputs_free(&picked);
        return;
    }
    int n_in = nn_graph_entry_count(net->graph);
    int n_out = picked.n;
    if (body.forced != (size_t)-1 &&
        api_json_node_sequences_bin(&j, req->blobs, body.forced, net->graph,
                                    batch, steps, "forced",
                                    &req->cfg->limits, &forced, &n_forced,
                                    &err)) {
        srv_reply_error(req, &err);
    } else if (run_live(req, bind, n_in, forced, n_forced, &picked, steps,
                        body.train) == 0) {
        /* answered */
    } else if (charge(req, run_work_floats(net->graph, batch, steps),
                      (double)batch * steps *
                          (double)api_outputs_floats(&picked)) == 0) {
        nn_tensor **outs = calloc((size_t)n_out, sizeof *outs);
        int rc = outs ? nn_session_run_outputs(s->run, bind, n_in, forced,
                                               n_forced, picked.names, n_out,
                                               steps, body.train, outs, &e)
                      : nn_error_set(&e, NN_ERR_NOMEM, "out of memory");
        if (rc != NN_OK) {
            api_fail_from_nn(&err, &e, 0);
            srv_reply_error(req, &err);
        } else {
            srv_metrics_steps(net->id, steps);
            /* Takes the outputs. */
            reply_encoded(req, 200, api_sequence_nodes_enc(
                                        &picked, outs,
                                        nn_session_steps(s->run)));
        }
        free(outs);
    }
    /* The inputs are not needed for the answer. */
    api_bindings_free(bind, n_in);
    api_bindings_free(forced, n_forced);
    api_outputs_free(&picked);
}

/* PUT .../state may create the session it names, so the path's session
 * orders it among that session's requests even before it exists. */
static uint64_t path_session_key(const srv_request *req)
{
    return srv_sched_key(req->net->id, req->params[1]);
}

/* ---------------------------------------------------------------- table */

#define INLINE SRV_INLINE
#define NET SRV_NET
#define SESSION (SRV_NET | SRV_SESSION)
#define READ SRV_LOCK_READ
#define LOCKED SRV_LOCK_SESSION
#define BODY SRV_BODY_REQUIRED
#define MAYBE_BODY SRV_BODY_OPTIONAL
#define RAW SRV_BODY_RAW
#define BINARY SRV_BODY_BINARY
#define BUILD SRV_BUILD

const srv_route srv_routes[] = {
    {"GET", "/healthz", "healthz", handle_healthz, INLINE, NULL, NULL, NULL},
    {"GET", "/readyz", "readyz", handle_readyz, INLINE, NULL, NULL, NULL},
    {"GET", "/metrics", "metrics", handle_metrics, INLINE, NULL, NULL, NULL},
    {"GET", "/openapi.json", "openapi", handle_openapi, INLINE, NULL, NULL,
     NULL},
    {"GET", "/v1/node-types", "node_types", handle_node_types, INLINE, NULL,
     NULL, NULL},
    {"POST", "/v1/networks", "network_create", handle_network_create,
     BODY | BUILD, NULL, NULL, NULL},
    {"GET", "/v1/networks", "network_list", handle_network_list, INLINE,
     NULL, NULL, NULL},
    {"GET", "/v1/networks/{net}", "network_get", handle_network_get,
     INLINE | NET, NULL, NULL, NULL},
    {"DELETE", "/v1/networks/{net}", "network_delete", handle_network_delete,
     NET, NULL, NULL, NULL},
    {"POST", "/v1/networks/{net}/forward", "network_forward",
     handle_network_forward, NET | READ | BODY | RAW | BINARY, NULL, NULL,
     NULL},
    {"GET", "/v1/networks/{net}/params", "params_get", handle_params_get,
     NET | READ, NULL, NULL, NULL},
    {"PUT", "/v1/networks/{net}/params", "params_put", handle_params_put,
     NET | BODY | RAW | BINARY, NULL, NULL, NULL},
    {"GET", "/v1/networks/{net}/graph", "graph", handle_graph, NET, NULL, NULL,
     NULL},
    {"POST", "/v1/networks/{net}/sessions", "session_create",
     handle_session_create, NET | MAYBE_BODY, NULL, NULL, NULL},
    {"GET", "/v1/networks/{net}/sessions", "session_list", handle_session_list,
     INLINE | NET, NULL, NULL, NULL},
    {"GET", "/v1/networks/{net}/sessions/{sid}", "session_get",
     handle_session_get, SESSION, NULL, NULL, NULL},
    {"DELETE", "/v1/networks/{net}/sessions/{sid}", "session_delete",
     handle_session_delete, SESSION, NULL, NULL, NULL},
    {"POST", "/v1/networks/{net}/sessions/{sid}/reset", "session_reset",
     handle_session_reset, SESSION | LOCKED | MAYBE_BODY, NULL, NULL, NULL},
    {"POST", "/v1/networks/{net}/sessions/{sid}/forward", "session_forward",
     NULL, SESSION | BODY | RAW | BINARY, &session_step, NULL, NULL},
    {"POST", "/v1/networks/{net}/sessions/{sid}/run", "session_run",
     handle_session_run, SESSION | READ | LOCKED | BODY | RAW | BINARY, NULL,
     NULL, NULL},
    {"POST", "/v1/networks/{net}/fit", "fit_start", srv_fit_start,
     BODY | RAW | BINARY, NULL, NULL, NULL},
    {"GET", "/v1/networks/{net}/fit", "fit_list", srv_fit_list, INLINE, NULL,
     NULL, NULL},
    {"GET", "/v1/networks/{net}/fit/{job}", "fit_get", srv_fit_get, INLINE,
     NULL, NULL, NULL},
    {"DELETE", "/v1/networks/{net}/fit/{job}", "fit_cancel", srv_fit_cancel,
     0, NULL, NULL, NULL},
    {"POST", "/v1/networks/{net}/sessions/{sid}/checkpoint",
     "session_checkpoint", handle_session_checkpoint, SESSION | READ | LOCKED,
     NULL, NULL, NULL},
    {"GET", "/v1/networks/{net}/sessions/{sid}/state", "session_state_get",
     srv_state_get, SESSION, NULL, NULL, NULL},
    {"PUT", "/v1/networks/{net}/sessions/{sid}/state", "session_state_put",
     srv_state_put, NET | READ | BODY | RAW, NULL, path_session_key,
     srv_state_max_body},
    /* KServe v2 / Open Inference Protocol */
    {"GET", "/v2/health/live", "v2_live", srv_v2_live, INLINE, NULL, NULL,
     NULL},
    {"GET", "/v2/health/ready", "v2_ready", srv_v2_ready, INLINE, NULL, NULL,
     NULL},
    {"GET", "/v2", "v2_server", srv_v2_server_metadata, INLINE, NULL, NULL,
     NULL},
    /* Before /v2/models/{net, NULL}, which would take "stats" for a model. */
    {"GET", "/v2/models/stats", "v2_stats", srv_v2_stats, INLINE, NULL, NULL,
     NULL},
    {"GET", "/v2/models/{net}", "v2_model", srv_v2_model_metadata, INLINE,
     NULL, NULL, NULL},
    {"GET", "/v2/models/{net}/ready", "v2_model_ready", srv_v2_model_ready,
     INLINE, NULL, NULL, NULL},
    {"GET", "/v2/models/{net}/config", "v2_model_config", srv_v2_model_config,
     INLINE, NULL, NULL, NULL},
    {"GET", "/v2/models/{net}/stats", "v2_model_stats", srv_v2_model_stats,
     INLINE, NULL, NULL, NULL},
    {"POST", "/v2/models/{net}/infer", "v2_infer", srv_v2_infer,
     NET | READ | BODY | RAW | BINARY, NULL, srv_v2_order_key, NULL},
    {"GET", "/v2/models/{net}/versions/{version}", "v2_model_version",
     srv_v2_model_version_metadata, INLINE, NULL, NULL, NULL},
    {"GET", "/v2/models/{net}/versions/{version}/ready", "v2_model_version_ready",
     srv_v2_model_version_ready, INLINE, NULL, NULL, NULL},
    {"GET", "/v2/models/{net}/versions/{version}/config",
     "v2_model_version_config", srv_v2_model_version_config, INLINE, NULL,
     NULL, NULL},
    {"GET", "/v2/models/{net}/versions/{version}/stats", "v2_model_version_stats",
     srv_v2_model_version_stats, INLINE, NULL, NULL, NULL},
    {"POST", "/v2/models/{net}/versions/{version}/infer", "v2_version_infer",
     srv_v2_version_infer, NET | READ | BODY | RAW | BINARY, NULL,
     srv_v2_order_key, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL},
};

int srv_route_count(void)
{
    int n = 0;
    while (srv_routes[n].method)
        n++;
    return n;
}
