/*
 * api_kserve.c — the KServe v2 / Open Inference Protocol's JSON: model
 * metadata, inference requests (named inputs with shape, datatype and flat
 * or nested data) and responses (flat data, FP32).
 */
#include "api_kserve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *metadata_tensor(const char *name, const nn_shape *per_sample)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", name);
    cJSON_AddStringToObject(t, "datatype", "FP32");
    cJSON *shape = cJSON_AddArrayToObject(t, "shape");
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(-1)); /* the batch */
    for (int d = 0; d < per_sample->ndim; d++)
        cJSON_AddItemToArray(shape, cJSON_CreateNumber(per_sample->dims[d]));
    return t;
}

cJSON *api_kserve_model_metadata(const nn_graph *g, const char *name)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON *versions = cJSON_AddArrayToObject(o, "versions");
    cJSON_AddItemToArray(versions, cJSON_CreateString("1"));
    cJSON_AddStringToObject(o, "platform", "nerved");
    cJSON *inputs = cJSON_AddArrayToObject(o, "inputs");
    for (int i = 0; i < nn_graph_entry_count(g); i++) {
        nn_node *n = nn_graph_entry_at(g, i);
        nn_shape s = nn_node_output_shape(n);
        cJSON_AddItemToArray(inputs, metadata_tensor(nn_node_name(n), &s));
    }
    cJSON *outputs = cJSON_AddArrayToObject(o, "outputs");
    for (int i = 0; i < nn_graph_exit_count(g); i++) {
        nn_node *n = nn_graph_exit_at(g, i);
        nn_shape s = nn_node_output_shape(n);
        cJSON_AddItemToArray(outputs, metadata_tensor(nn_node_name(n), &s));
    }
    return o;
}

/* Flattens nested or flat numbers into data[0..n); returns count or -1. */
static long flatten(const cJSON *j, float *data, long n, long at,
                    const char *where, api_error *err)
{
    if (cJSON_IsArray(j)) {
        for (const cJSON *c = j->child; c; c = c->next) {
            at = flatten(c, data, n, at, where, err);
            if (at < 0)
                return -1;
        }
        return at;
    }
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) ||
        !isfinite((float)j->valuedouble)) {
        api_fail(err, 400, "bad_tensor", "%s: data must hold finite numbers",
                 where);
        return -1;
    }
    if (at >= n) {
        api_fail(err, 400, "bad_tensor", "%s: data holds more values than the "
                 "shape", where);
        return -1;
    }
    data[at] = (float)j->valuedouble;
    return at + 1;
}

/* "[2, 3]", or with the batch as -1 first, "[-1, 2, 3]". */
static char *shape_text(const nn_shape *s, int batch_first, char *buf,
                        size_t size)
{
    size_t len = (size_t)snprintf(buf, size, "[%s", batch_first ? "-1" : "");
    for (int d = 0; d < s->ndim && len < size; d++)
        len += (size_t)snprintf(buf + len, size - len, "%s%d",
                                (d || batch_first) ? ", " : "", s->dims[d]);
    if (len < size)
        snprintf(buf + len, size - len, "]");
    return buf;
}

static int read_shape(const cJSON *shape, const char *where, nn_shape *out,
                      const api_limits *lim, api_error *err)
{
    memset(out, 0, sizeof *out);
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) < 1 ||
        cJSON_GetArraySize(shape) > NN_MAX_DIMS)
        return api_fail(err, 400, "bad_request", "%s.shape must be an array of "
                        "1 to %d sizes", where, NN_MAX_DIMS);
    size_t total = 1;
    for (const cJSON *c = shape->child; c; c = c->next) {
        if (!cJSON_IsNumber(c) || c->valuedouble != floor(c->valuedouble) ||
            c->valuedouble < 1 || c->valuedouble > 1e9)
            return api_fail(err, 400, "bad_request", "%s.shape must hold "
                            "positive integers", where);
        out->dims[out->ndim++] = (int)c->valuedouble;
        total *= (size_t)c->valuedouble;
        if (total > lim->max_tensor_elems)
            return api_fail(err, 413, "too_large", "%s has more than %zu "
                            "elements", where, lim->max_tensor_elems);
    }
    return 0;
}

void api_kserve_request_free(api_kserve_request *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_inputs; i++)
        nn_tensor_free(r->inputs[i].tensor);
    free(r->inputs);
    free(r->outputs);
    memset(r, 0, sizeof *r);
}

int api_kserve_read_request(const cJSON *body, const nn_graph *g,
                            const api_limits *lim, api_kserve_request *r,
                            api_error *err)
{
    memset(r, 0, sizeof *r);
    if (!cJSON_IsObject(body))
        return api_fail(err, 400, "bad_request", "an inference request is a "
                        "JSON object with \"inputs\"");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(body, "id");
    if (id && !cJSON_IsString(id))
        return api_fail(err, 400, "bad_request", "\"id\" must be a string");
    r->id = id ? id->valuestring : NULL;

    const cJSON *params = cJSON_GetObjectItemCaseSensitive(body, "parameters");
    if (params && !cJSON_IsObject(params))
        return api_fail(err, 400, "bad_request", "\"parameters\" must be an "
                        "object");
    const cJSON *seq = params ? cJSON_GetObjectItemCaseSensitive(params,
                                                                 "sequence_id")
                              : NULL;
    if (seq) {
        if (cJSON_IsString(seq) && seq->valuestring[0] &&
            strlen(seq->valuestring) < sizeof r->sequence_id)
            snprintf(r->sequence_id, sizeof r->sequence_id, "%s",
                     seq->valuestring);
        else if (cJSON_IsNumber(seq) && seq->valuedouble >= 1 &&
                 seq->valuedouble == floor(seq->valuedouble) &&
                 seq->valuedouble < 9007199254740992.0)
            snprintf(r->sequence_id, sizeof r->sequence_id, "%.0f",
                     seq->valuedouble);
        else
            return api_fail(err, 400, "bad_request", "parameters.sequence_id "
                            "must be a positive integer or a non-empty "
                            "string");
    }
    const char *flags[2] = {"sequence_start", "sequence_end"};
    int *dest[2] = {&r->sequence_start, &r->sequence_end};
    for (int k = 0; k < 2; k++) {
        const cJSON *f = params ? cJSON_GetObjectItemCaseSensitive(params,
                                                                   flags[k])
                                : NULL;
        if (f && !cJSON_IsBool(f))
            return api_fail(err, 400, "bad_request", "parameters.%s must be "
                            "true or false", flags[k]);
        *dest[k] = f && cJSON_IsTrue(f);
        if (*dest[k] && !r->sequence_id[0])
            return api_fail(err, 400, "bad_request", "parameters.%s needs "
                            "parameters.sequence_id", flags[k]);
    }

    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(body, "inputs");
    if (!cJSON_IsArray(inputs) || cJSON_GetArraySize(inputs) < 1)
        return api_fail(err, 400, "bad_request", "\"inputs\" must be a "
                        "non-empty array of {name, shape, datatype, data}");
    int n = cJSON_GetArraySize(inputs);
    r->inputs = calloc((size_t)n, sizeof *r->inputs);
    if (!r->inputs)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    int index = 0;
    for (const cJSON *in = inputs->child; in; in = in->next, index++) {
        char where[96];
        snprintf(where, sizeof where, "inputs[%d]", index);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(in, "name");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(in, "datatype");
        if (!cJSON_IsString(name)) {
            api_fail(err, 400, "bad_request", "%s.name must be a string",
                     where);
            goto fail;
        }
        nn_node *entry = nn_graph_find(g, name->valuestring);
        if (!entry || !(nn_node_type_of(entry)->flags & NN_TYPE_SOURCE)) {
            api_fail(err, 400, "unknown_input", "%s: the model has no input "
                     "'%.64s'", where, name->valuestring);
            goto fail;
        }
        for (int k = 0; k < r->n_inputs; k++)
            if (strcmp(r->inputs[k].name, name->valuestring) == 0) {
                api_fail(err, 400, "bad_request", "%s: input '%s' is given "
                         "twice", where, name->valuestring);
                goto fail;
            }
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "FP32") != 0) {
            api_fail(err, 400, "bad_request", "%s ('%s'): datatype must be "
                     "\"FP32\"", where, name->valuestring);
            goto fail;
        }
        nn_shape shape;
        if (read_shape(cJSON_GetObjectItemCaseSensitive(in, "shape"), where,
                       &shape, lim, err))
            goto fail;
        nn_shape per = nn_node_output_shape(entry);
        int fits = shape.ndim == per.ndim + 1;
        for (int d = 0; fits && d < per.ndim; d++)
            fits = shape.dims[d + 1] == per.dims[d];
        if (!fits) {
            char got[96], want[96];
            api_fail(err, 400, "shape_mismatch", "%s ('%s'): shape %s does "
                     "not fit the model's %s", where, name->valuestring,
                     shape_text(&shape, 0, got, sizeof got),
                     shape_text(&per, 1, want, sizeof want));
            goto fail;
        }
        nn_tensor *t = nn_tensor_new(&shape);
        if (!t) {
            api_fail(err, 503, "out_of_memory", "out of memory");
            goto fail;
        }
        r->inputs[r->n_inputs].name = name->valuestring;
        r->inputs[r->n_inputs++].tensor = t;
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(in, "data");
        long count = flatten(data, t->data, (long)nn_tensor_numel(t), 0, where,
                             err);
        if (count < 0)
            goto fail;
        if ((size_t)count != nn_tensor_numel(t)) {
            api_fail(err, 400, "bad_tensor", "%s ('%s'): data holds %ld values; "
                     "the shape needs %zu", where, name->valuestring, count,
                     nn_tensor_numel(t));
            goto fail;
        }
        if (index > 0 && t->shape.dims[0] != r->inputs[0].tensor->shape.dims[0]) {
            api_fail(err, 400, "shape_mismatch", "%s ('%s'): batch %d differs "
                     "from the first input's %d", where, name->valuestring,
                     t->shape.dims[0], r->inputs[0].tensor->shape.dims[0]);
            goto fail;
        }
    }
    for (int e = 0; e < nn_graph_entry_count(g); e++) {
        const char *need = nn_node_name(nn_graph_entry_at(g, e));
        int found = 0;
        for (int k = 0; k < r->n_inputs; k++)
            found |= strcmp(r->inputs[k].name, need) == 0;
        if (!found) {
            api_fail(err, 400, "missing_input", "input '%s' is missing", need);
            goto fail;
        }
    }
    r->batch = r->inputs[0].tensor->shape.dims[0];

    const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(body, "outputs");
    if (outputs) {
        if (!cJSON_IsArray(outputs)) {
            api_fail(err, 400, "bad_request", "\"outputs\" must be an array of "
                     "{name}");
            goto fail;
        }
        int m = cJSON_GetArraySize(outputs);
        r->outputs = calloc((size_t)(m ? m : 1), sizeof *r->outputs);
        if (!r->outputs) {
            api_fail(err, 503, "out_of_memory", "out of memory");
            goto fail;
        }
        index = 0;
        for (const cJSON *o = outputs->child; o; o = o->next, index++) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
            nn_node *exit = cJSON_IsString(name)
                                ? nn_graph_find(g, name->valuestring) : NULL;
            int is_exit = 0;
            for (int x = 0; exit && x < nn_graph_exit_count(g); x++)
                is_exit |= nn_graph_exit_at(g, x) == exit;
            if (!is_exit) {
                api_fail(err, 400, "unknown_output", "outputs[%d]: the model "
                         "has no output '%.64s'", index,
                         cJSON_IsString(name) ? name->valuestring : "");
                goto fail;
            }
            r->outputs[r->n_outputs++] = name->valuestring;
        }
    }
    return 0;
fail:
    api_kserve_request_free(r);
    return -1;
}

static int wanted(const api_kserve_request *r, const char *name)
{
    if (!r->outputs)
        return 1;
    for (int k = 0; k < r->n_outputs; k++)
        if (strcmp(r->outputs[k], name) == 0)
            return 1;
    return 0;
}

cJSON *api_kserve_response(const api_kserve_request *r, const char *model,
                           const nn_session *s, const nn_graph *g)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model_name", model);
    cJSON_AddStringToObject(o, "model_version", "1");
    if (r->id)
        cJSON_AddStringToObject(o, "id", r->id);
    if (r->sequence_id[0]) {
        cJSON *p = cJSON_AddObjectToObject(o, "parameters");
        cJSON_AddStringToObject(p, "sequence_id", r->sequence_id);
    }
    cJSON *outputs = cJSON_AddArrayToObject(o, "outputs");
    for (int x = 0; x < nn_graph_exit_count(g); x++) {
        const char *name = nn_node_name(nn_graph_exit_at(g, x));
        if (!wanted(r, name))
            continue;
        const nn_tensor *t = nn_session_output(s, name);
        cJSON *out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "name", name);
        cJSON *shape = cJSON_AddArrayToObject(out, "shape");
        for (int d = 0; d < t->shape.ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber(t->shape.dims[d]));
        cJSON_AddStringToObject(out, "datatype", "FP32");
        cJSON *data = cJSON_AddArrayToObject(out, "data");
        for (size_t k = 0; k < nn_tensor_numel(t); k++) {
            char buf[32];
            api_format_float(t->data[k], buf, sizeof buf);
            cJSON_AddItemToArray(data, cJSON_CreateRaw(buf));
        }
        cJSON_AddItemToArray(outputs, out);
    }
    return o;
}

cJSON *api_kserve_error(const char *message)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", message);
    return o;
}
