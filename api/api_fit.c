/*
 * api_fit.c — reading training requests (see api_fit.h).
 */
#include "api_fit.h"
#include "api_codec.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Members each method accepts; anything else is a 400 naming it. */
static const char *const common_keys[] = {"method", "inputs", "targets",
                                          "wait", NULL};
static const char *const ridge_keys[] = {"data", "beta", "warmup", NULL};
static const char *const rls_keys[] = {"alpha", "forgetting", "reset",
                                       "continue_state", NULL};
static const char *const lms_keys[] = {"lr", "reset", "continue_state", NULL};
static const char *const ip_keys[] = {"epochs", "warmup", NULL};
static const char *const bptt_keys[] = {"loss", "epochs", "batch_size",
                                        "shuffle", "window", "clip_norm",
                                        "seed", "optimizer", "schedule", NULL};

static int in_list(const char *const *list, const char *key)
{
    for (; *list; list++)
        if (strcmp(*list, key) == 0)
            return 1;
    return 0;
}

static int check_keys(const cJSON *obj, const char *const *a,
                      const char *const *b, const char *where,
                      const char *method, api_error *err)
{
    for (const cJSON *c = obj->child; c; c = c->next)
        if (!in_list(a, c->string) && !(b && in_list(b, c->string)))
            return api_fail(err, 400, "bad_request", "%s%s\"%s\" is not an "
                            "option of %s", where, *where ? ": " : "",
                            c->string, method);
    return 0;
}

/* An optional number in [min, max] (integer when asked); absent keeps
 * *out. */
static int number(const cJSON *obj, const char *key, int integer, double min,
                  double max, double *out, const char *where, api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
        (integer && v->valuedouble != floor(v->valuedouble)) ||
        v->valuedouble < min || v->valuedouble > max)
        return api_fail(err, 400, "bad_request", "%s%s\"%s\" must be %s in "
                        "[%g, %g]", where, *where ? "." : "", key,
                        integer ? "an integer" : "a number", min, max);
    *out = v->valuedouble;
    return 0;
}

static int integer(const cJSON *obj, const char *key, int min, int max,
                   int *out, const char *where, api_error *err)
{
    double d = *out;
    if (number(obj, key, 1, min, max, &d, where, err))
        return -1;
    *out = (int)d;
    return 0;
}

static int boolean(const cJSON *obj, const char *key, int *out,
                   api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    if (!cJSON_IsBool(v))
        return api_fail(err, 400, "bad_request", "\"%s\" must be true or "
                        "false", key);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* An optional string among choices; *index receives its position. */
static int choice(const cJSON *obj, const char *key, const char *const *list,
                  int *index, const char *where, api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    for (int i = 0; cJSON_IsString(v) && list[i]; i++)
        if (strcmp(v->valuestring, list[i]) == 0) {
            *index = i;
            return 0;
        }
    char all[160] = "";
    for (int i = 0; list[i]; i++)
        snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s",
                 i ? ", " : "", list[i]);
    return api_fail(err, 400, "bad_request", "%s%s\"%s\" must be one of: %s",
                    where, *where ? "." : "", key, all);
}

/* ------------------------------------------------------------ the data */

/* Axis 0 of the first tensor in an object of tensors, or 0. A number out
 * of int's range is not converted (that would be undefined): it is 0, which
 * the caller refuses by name. */
#define NPOS ((size_t)-1)

/* Axis 0 of the first input of the object at inputs, or 0 when there is
 * none to tell. */
static int first_batch(const api_json *j, size_t inputs)
{
    size_t it = 0, value;
    char key[8];
    int cut;
    if (api_json_member(j, inputs, &it, key, sizeof key, &cut, &value) != 1)
        return 0;
    int kind = api_json_kind(j, value);
    return kind == '[' || kind == '{' ? api_json_stateless_batch(j, inputs)
                                      : 0;
}

static void data_release(api_fit_data *d)
{
    api_bindings_free(d->inputs, d->n_inputs);
    api_bindings_free(d->targets, d->n_targets);
    memset(d, 0, sizeof *d);
}

/* Targets by node name, each (batch, steps, output shape). */
static int read_targets(const api_json *j, const api_json_blobs *bin,
                        size_t targets, nn_graph *g, const char *where,
                        api_fit_data *d, const api_limits *lim,
                        api_error *err)
{
    size_t it = 0, value;
    char key[8];
    int cut;
    if (targets == NPOS || api_json_kind(j, targets) != '{' ||
        api_json_member(j, targets, &it, key, sizeof key, &cut, &value) != 1)
        return api_fail(err, 400, "bad_request", "%s\"targets\" must be an "
                        "object {\"<node>\": (sequences, steps, features)} "
                        "with at least one node", where);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%stargets", where);
    return api_json_node_sequences_bin(j, bin, targets, g, d->batch, d->steps,
                                       prefix, lim, &d->targets,
                                       &d->n_targets, err);
}

/* The sequences of the object at obj (the body, or an item of "data"). */
static int read_data(const api_json *j, const api_json_blobs *bin, size_t obj,
                     nn_graph *g, const char *where, const api_limits *lim,
                     int need_targets, api_fit_data *d, api_error *err)
{
    size_t inputs = api_json_find(j, obj, "inputs");
    if (inputs == NPOS || api_json_kind(j, inputs) != '{')
        return api_fail(err, 400, "bad_request", "%s\"inputs\" must be an "
                        "object {\"<input>\": (sequences, steps, features)}",
                        where);
    d->batch = first_batch(j, inputs);
    if (d->batch < 1 || d->batch > lim->max_batch)
        return api_fail(err, 400, "bad_request", "%sthe number of sequences "
                        "(axis 0 of the inputs) must be from 1 to %d", where,
                        lim->max_batch);
    if (api_json_sequence_inputs_bin(j, bin, inputs, g, d->batch, lim,
                                     &d->inputs, &d->steps, err)) {
        if (*where)
            snprintf(err->message + strlen(err->message),
                     sizeof err->message - strlen(err->message), " (in %.*s)",
                     (int)strlen(where) - 2, where);
        return -1;
    }
    d->n_inputs = nn_graph_entry_count(g);
    if (!need_targets)
        return 0;
    return read_targets(j, bin, api_json_find(j, obj, "targets"), g, where, d,
                        lim, err);
}

/* --------------------------------------------------------------- options */

static int read_optimizer(const cJSON *o, nn_optim_opts *opt, api_error *err)
{
    static const char *const keys[] = {"type", "lr", "momentum", "beta1",
                                       "beta2", "eps", "weight_decay", NULL};
    static const char *const types[] = {"sgd", "adam", "adamw", NULL};
    if (!cJSON_IsObject(o))
        return api_fail(err, 400, "bad_request", "\"optimizer\" must be an "
                        "object such as {\"type\": \"adam\", \"lr\": 0.001}");
    int type = 0;
    if (check_keys(o, keys, NULL, "optimizer", "an optimizer", err) ||
        choice(o, "type", types, &type, "optimizer", err))
        return -1;
    opt->kind = type == 2 ? NN_OPTIM_ADAMW
                : type    ? NN_OPTIM_ADAM
                          : NN_OPTIM_SGD;
    /* PyTorch's defaults: Adam's and AdamW's lr, AdamW's decay. */
    if (type)
        opt->lr = 0.001;
    if (type == 2)
        opt->weight_decay = 0.01;
    if (number(o, "lr", 0, 1e-12, 1e6, &opt->lr, "optimizer", err) ||
        number(o, "momentum", 0, 0, 0.999999, &opt->momentum, "optimizer",
               err) ||
        number(o, "beta1", 0, 0, 0.999999, &opt->beta1, "optimizer", err) ||
        number(o, "beta2", 0, 0, 0.999999999, &opt->beta2, "optimizer", err) ||
        number(o, "eps", 0, 1e-30, 1, &opt->eps, "optimizer", err) ||
        number(o, "weight_decay", 0, 0, 1e6, &opt->weight_decay, "optimizer",
               err))
        return -1;
    if (type && cJSON_GetObjectItemCaseSensitive(o, "momentum"))
        return api_fail(err, 400, "bad_request", "optimizer: \"momentum\" is "
                        "for sgd; %s has beta1 and beta2", types[type]);
    return 0;
}

static int read_schedule(const cJSON *o, nn_optim_opts *opt, api_error *err)
{
    static const char *const keys[] = {"type", "step_size", "gamma", "lr_min",
                                       "epochs", NULL};
    static const char *const types[] = {"constant", "step", "exponential",
                                        "cosine", NULL};
    if (!cJSON_IsObject(o))
        return api_fail(err, 400, "bad_request", "\"schedule\" must be an "
                        "object such as {\"type\": \"step\", \"step_size\": "
                        "10, \"gamma\": 0.5}");
    int type = 0;
    if (check_keys(o, keys, NULL, "schedule", "a schedule", err) ||
        choice(o, "type", types, &type, "schedule", err) ||
        integer(o, "step_size", 1, 1 << 30, &opt->step_size, "schedule", err) ||
        number(o, "gamma", 0, 1e-12, 1, &opt->gamma, "schedule", err) ||
        number(o, "lr_min", 0, 0, 1e6, &opt->lr_min, "schedule", err) ||
        integer(o, "epochs", 1, 1000000, &opt->epochs, "schedule", err))
        return -1;
    opt->schedule = (nn_schedule_kind)type;
    if (opt->schedule == NN_SCHEDULE_COSINE && opt->lr_min > opt->lr)
        return api_fail(err, 400, "bad_request", "schedule.lr_min (%g) must "
                        "not exceed the optimizer's lr (%g)", opt->lr_min,
                        opt->lr);
    return 0;
}

static int read_bptt(const cJSON *body, nn_graph *g, api_fit_request *req,
                     api_error *err)
{
    static const char *const losses[] = {"mse", "softmax_cross_entropy",
                                         "cross_entropy", NULL};
    nn_fit_opts *f = &req->fit;
    *f = nn_fit_defaults();
    f->epochs = 10;
    f->seed = nn_graph_seed(g);
    int loss = 0;
    double seed = (double)(f->seed & ((1ull << 53) - 1));
    if (choice(body, "loss", losses, &loss, "", err) ||
        integer(body, "epochs", 1, 1000000, &f->epochs, "", err) ||
        integer(body, "batch_size", 0, 1 << 30, &f->batch_size, "", err) ||
        boolean(body, "shuffle", &f->shuffle, err) ||
        integer(body, "window", 0, 1 << 30, &f->window, "", err) ||
        number(body, "clip_norm", 0, 0, 1e12, &f->clip_norm, "", err) ||
        number(body, "seed", 1, 0, 9007199254740991.0, &seed, "", err))
        return -1;
    f->loss = loss ? NN_LOSS_SOFTMAX_CE : NN_LOSS_MSE;
    f->seed = (uint64_t)seed;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(body, "optimizer");
    if (o && read_optimizer(o, &f->optim, err))
        return -1;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(body, "schedule");
    if (s && read_schedule(s, &f->optim, err))
        return -1;
    return 0;
}

int api_fit_request_parse(const cJSON *body, const api_json *text,
                          const api_json_blobs *bin, nn_graph *g,
                          const api_limits *lim, api_fit_request *req,
                          api_error *err)
{
    static const char *const methods[] = {"ridge", "rls", "force", "bptt",
                                          "lms", "ip", NULL};
    memset(req, 0, sizeof *req);
    if (!cJSON_IsObject(body))
        return api_fail(err, 400, "bad_request", "the body must be an object "
                        "{\"method\": \"ridge\" | \"rls\" | \"force\" | "
                        "\"lms\" | \"bptt\" | \"ip\", \"inputs\": {...}, "
                        "\"targets\": {...}}");
    if (!cJSON_GetObjectItemCaseSensitive(body, "method"))
        return api_fail(err, 400, "bad_request", "\"method\" is required: "
                        "ridge, rls, force, bptt, lms or ip");
    int m = 0;
    if (choice(body, "method", methods, &m, "", err))
        return -1;
    snprintf(req->method_name, sizeof req->method_name, "%s", methods[m]);
    req->method = m == 0   ? API_FIT_RIDGE
                  : m == 3 ? API_FIT_BPTT
                  : m == 5 ? API_FIT_IP
                           : API_FIT_RLS;
    const char *const *own = req->method == API_FIT_RIDGE ? ridge_keys
                             : req->method == API_FIT_BPTT ? bptt_keys
                             : req->method == API_FIT_IP   ? ip_keys
                             : m == 4                      ? lms_keys
                                                           : rls_keys;
    if (check_keys(body, common_keys, own, "", methods[m], err) ||
        boolean(body, "wait", &req->wait, err))
        return -1;
    int need_targets = req->method != API_FIT_IP;
    if (!need_targets && cJSON_GetObjectItemCaseSensitive(body, "targets"))
        return api_fail(err, 400, "bad_request", "\"targets\" is not an "
                        "option of ip: intrinsic plasticity is unsupervised "
                        "(it adapts the IPReservoir nodes' a and b from the "
                        "inputs alone)");
    req->ip_epochs = 1;
    if (req->method == API_FIT_IP &&
        integer(body, "epochs", 1, 1000000, &req->ip_epochs, "", err))
        return -1;

    req->beta = 1e-7;
    req->online = nn_online_defaults();
    req->online.rule = m == 4 ? NN_ONLINE_LMS : NN_ONLINE_RLS;
    if (number(body, "beta", 0, 0, 1e12, &req->beta, "", err) ||
        integer(body, "warmup", 0, 1 << 30, &req->warmup, "", err) ||
        number(body, "alpha", 0, 1e-12, 1e12, &req->online.alpha, "", err) ||
        number(body, "lr", 0, 1e-12, 1e6, &req->online.lr, "", err) ||
        boolean(body, "reset", &req->reset, err) ||
        boolean(body, "continue_state", &req->continue_state, err))
        return -1;
    if (cJSON_GetObjectItemCaseSensitive(body, "forgetting")) {
        if (number(body, "forgetting", 0, 0, 1, &req->online.forgetting, "",
                   err))
            return -1;
        if (req->online.forgetting <= 0)
            return api_fail(err, 400, "bad_request", "\"forgetting\" must be "
                            "in (0, 1] (1: no forgetting)");
    }
    if (req->method == API_FIT_BPTT && read_bptt(body, g, req, err))
        return -1;

    const cJSON *data = cJSON_GetObjectItemCaseSensitive(body, "data");
    if (data && (cJSON_GetObjectItemCaseSensitive(body, "inputs") ||
                 cJSON_GetObjectItemCaseSensitive(body, "targets")))
        return api_fail(err, 400, "bad_request", "give either \"inputs\" and "
                        "\"targets\" or \"data\", not both");
    if (data && (!cJSON_IsArray(data) || cJSON_GetArraySize(data) < 1))
        return api_fail(err, 400, "bad_request", "\"data\" must be a non-empty "
                        "array of {\"inputs\": ..., \"targets\": ...}");
    req->n_data = data ? cJSON_GetArraySize(data) : 1;
    if (!(req->data = calloc((size_t)req->n_data, sizeof *req->data)))
        return api_fail(err, 503, "out_of_memory", "out of memory");
    /* The tree and the text are one document: the items of "data" come in
     * the same order in both. */
    size_t root = 0, items = 0, at = 0;
    if (api_json_kind(text, root) != '{')
        return api_fail(err, 400, "bad_request", "the body must be an object");
    size_t data_at = data ? api_json_find(text, root, "data") : NPOS;
    if (data && (data_at == NPOS || api_json_kind(text, data_at) != '['))
        return api_fail(err, 400, "bad_request", "\"data\" must be a non-empty "
                        "array of {\"inputs\": ..., \"targets\": ...}");
    size_t total = 0;
    const cJSON *item = data ? data->child : body;
    for (int i = 0; i < req->n_data; i++, item = data ? item->next : body) {
        char where[32] = "";
        at = root;
        if (data && api_json_element(text, data_at, &items, &at) != 1)
            return api_fail(err, 400, "bad_json", "data[%d]: malformed JSON",
                            i);
        if (data) {
            snprintf(where, sizeof where, "data[%d]: ", i);
            if (!cJSON_IsObject(item))
                return api_fail(err, 400, "bad_request", "%severy item must "
                                "be {\"inputs\": ..., \"targets\": ...}",
                                where);
            for (const cJSON *c = item->child; c; c = c->next)
                if (strcmp(c->string, "inputs") && strcmp(c->string, "targets"))
                    return api_fail(err, 400, "bad_request", "%s\"%s\" is not "
                                    "a member of a data item", where,
                                    c->string);
        }
        if (read_data(text, bin, at, g, where, lim, need_targets,
                      &req->data[i], err))
            return -1;
        total += (size_t)req->data[i].batch * (size_t)req->data[i].steps;
        if (total > (size_t)lim->max_steps * (size_t)lim->max_batch)
            return api_fail(err, 413, "too_large", "the data hold more than "
                            "%d x %d steps", lim->max_batch, lim->max_steps);
    }
    if (req->method == API_FIT_RIDGE || req->method == API_FIT_IP)
        for (int i = 0; i < req->n_data; i++)
            if (req->warmup >= req->data[i].steps)
                return api_fail(err, 400, "bad_request", "\"warmup\" (%d) "
                                "must be shorter than the sequences (%d "
                                "steps%s)", req->warmup, req->data[i].steps,
                                req->n_data > 1 ? " in one data item" : "");
    return 0;
}

void api_fit_request_release(api_fit_request *req)
{
    for (int i = 0; req->data && i < req->n_data; i++)
        data_release(&req->data[i]);
    free(req->data);
    req->data = NULL;
    req->n_data = 0;
}
