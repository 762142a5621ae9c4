/*
 * srv_kserve.c — the KServe v2 / Open Inference Protocol's REST routes,
 * beside v1: health, server and model metadata, readiness, and inference,
 * stateless or stateful through the sequence extension (sequence_id names
 * a session, sequence_start starts it fresh, sequence_end frees it). Errors
 * use the protocol's body, {"error": "..."}.
 */
#include "srv_kserve.h"
#include "srv_blas.h"
#include "api_kserve.h"
#include "srv_metrics.h"
#include "srv_store.h"

#include <string.h>

static void v2_error(srv_request *req, const api_error *err)
{
    srv_reply_json(req, err->http_status, api_kserve_error(err->message));
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
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", "nerved");
    cJSON_AddStringToObject(o, "version", "0.1.0");
    cJSON *ext = cJSON_AddArrayToObject(o, "extensions");
    cJSON_AddItemToArray(ext, cJSON_CreateString("sequence"));
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

/* Copies the request's inputs into the session and steps it. */
static int step(srv_network *net, nn_session *run,
                const api_kserve_request *r, api_error *err)
{
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
    nn_error e;
    pthread_rwlock_rdlock(&net->weights);
    int rc = nn_session_step(run, 0, &e);
    pthread_rwlock_unlock(&net->weights);
    if (rc != NN_OK)
        return api_fail_from_nn(err, &e, 0);
    srv_metrics_steps(1);
    return 0;
}

static void infer(srv_request *req, int versioned)
{
    srv_network *net = v2_model(req, versioned);
    if (!net)
        return;
    api_error err;
    api_kserve_request r;
    if (api_kserve_read_request(req->json, net->graph, &req->cfg->limits, &r,
                                &err)) {
        v2_error(req, &err);
        srv_network_release(net);
        return;
    }
    if (r.batch > req->cfg->limits.max_batch) {
        api_fail(&err, 400, "bad_request", "batch %d is over the limit of %d",
                 r.batch, req->cfg->limits.max_batch);
        v2_error(req, &err);
    } else if (!r.sequence_id[0]) {
        nn_error e;
        nn_session *run = nn_session_new(net->graph, r.batch,
                                         nn_graph_seed(net->graph), &e);
        if (!run)
            api_fail_from_nn(&err, &e, 0), v2_error(req, &err);
        else if (step(net, run, &r, &err))
            v2_error(req, &err);
        else
            srv_reply_json(req, 200, api_kserve_response(&r, req->params[0],
                                                         run, net->graph));
        nn_session_free(run);
    } else {
        srv_session *s;
        int created;
        if (srv_session_sequence(net, r.sequence_id, r.batch,
                                 r.sequence_start, &s, &created, &err)) {
            v2_error(req, &err);
        } else {
            nn_error e;
            pthread_mutex_lock(&s->lock);
            int rc = 0;
            /* sequence_start on a live sequence starts it over. */
            if (r.sequence_start && !created) {
                rc = nn_session_batch(s->run) != r.batch
                         ? nn_session_resize(s->run, r.batch, &e)
                         : nn_session_reset(s->run, &e);
                if (rc)
                    api_fail_from_nn(&err, &e, 0);
            }
            if (!rc)
                rc = step(net, s->run, &r, &err);
            if (rc)
                v2_error(req, &err);
            else
                srv_reply_json(req, 200, api_kserve_response(
                                             &r, req->params[0], s->run,
                                             net->graph));
            pthread_mutex_unlock(&s->lock);
            if (r.sequence_end)
                srv_session_delete(net, s->id, NULL);
            srv_session_release(s);
        }
    }
    api_kserve_request_free(&r);
    srv_network_release(net);
}

void srv_v2_infer(srv_request *req) { infer(req, 0); }
void srv_v2_version_infer(srv_request *req) { infer(req, 1); }
