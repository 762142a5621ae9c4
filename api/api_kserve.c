/*
 * api_kserve.c — the KServe v2 / Open Inference Protocol's JSON: model
 * metadata, inference requests (named inputs with shape, datatype and flat
 * or nested data) and responses (flat data, FP32).
 */
#include "api_kserve.h"
#include "api_codec.h"
#include "api_outputs.h"

#include <ctype.h>
#include <errno.h>
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

static cJSON *config_tensor(const char *name, const nn_shape *per_sample)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", name);
    cJSON_AddStringToObject(t, "data_type", "TYPE_FP32");
    cJSON *dims = cJSON_AddArrayToObject(t, "dims");
    for (int d = 0; d < per_sample->ndim; d++)
        cJSON_AddItemToArray(dims, cJSON_CreateNumber(per_sample->dims[d]));
    return t;
}

static char *shape_text(const nn_shape *s, int batch_first, char *buf,
                        size_t size);

char *api_kserve_raw_header(const nn_graph *g, size_t bytes,
                            api_error *err)
{
    if (nn_graph_entry_count(g) != 1) {
        api_fail(err, 400, "bad_request", "a raw binary request ("
                 API_BINARY_HEADER " 0) is for a model of one input; this "
                 "one has %d: send the JSON header", nn_graph_entry_count(g));
        return NULL;
    }
    nn_node *in = nn_graph_entry_at(g, 0);
    nn_shape s = nn_node_output_shape(in);
    size_t row = 4;
    for (int d = 0; d < s.ndim; d++)
        row *= (size_t)s.dims[d];
    if (bytes == 0 || bytes % row != 0 || bytes / row > 1000000000u) {
        api_fail(err, 400, "bad_tensor", "a raw binary request ("
                 API_BINARY_HEADER " 0) is rows of input '%s' (%zu bytes "
                 "each, float32), not %zu bytes", nn_node_name(in), row,
                 bytes);
        return NULL;
    }
    char dims[160];
    shape_text(&s, 0, dims, sizeof dims);
    size_t cap = strlen(nn_node_name(in)) * 6 + sizeof dims + 160;
    char *text = malloc(cap);
    cJSON *name = cJSON_CreateString(nn_node_name(in));
    char *quoted = name ? cJSON_PrintUnformatted(name) : NULL;
    cJSON_Delete(name);
    if (!text || !quoted) {
        free(text);
        free(quoted);
        api_fail(err, 503, "out_of_memory", "out of memory");
        return NULL;
    }
    /* dims is "[d1, ..." without the batch: the rows go first. */
    snprintf(text, cap, "{\"inputs\": [{\"name\": %s, \"shape\": [%zu%s%s, "
             "\"datatype\": \"FP32\", \"parameters\": {\"binary_data_size\": "
             "%zu}}]}", quoted, bytes / row, s.ndim ? ", " : "", dims + 1,
             bytes);
    free(quoted);
    return text;
}

/* Whether a step of g leaves something for the next: a node's state or
 * a feedback edge's previous output. */
static int carries_state(const nn_graph *g)
{
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        const nn_node *n = nn_graph_node_at(g, i);
        if (nn_node_state_count(n) > 0 || nn_node_fb_count(n) > 0)
            return 1;
    }
    return 0;
}

cJSON *api_kserve_model_config(const nn_graph *g, const char *name,
                               const char *definition, int max_batch,
                               double sequence_idle_us)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "platform", "nerved");
    cJSON_AddStringToObject(o, "backend", "nerved");
    /* Every model batches on its first axis, which dims leave out, as
     * Triton's configuration does when max_batch_size > 0. */
    cJSON_AddNumberToObject(o, "max_batch_size", max_batch);
    cJSON *inputs = cJSON_AddArrayToObject(o, "input");
    for (int i = 0; i < nn_graph_entry_count(g); i++) {
        nn_node *n = nn_graph_entry_at(g, i);
        nn_shape s = nn_node_output_shape(n);
        cJSON_AddItemToArray(inputs, config_tensor(nn_node_name(n), &s));
    }
    cJSON *outputs = cJSON_AddArrayToObject(o, "output");
    for (int i = 0; i < nn_graph_exit_count(g); i++) {
        nn_node *n = nn_graph_exit_at(g, i);
        nn_shape s = nn_node_output_shape(n);
        cJSON_AddItemToArray(outputs, config_tensor(nn_node_name(n), &s));
    }
    /* A stateful network keeps state between requests only in a
     * sequence: this is how Triton's tools (perf_analyzer) tell that
     * they must send sequence ids. */
    if (carries_state(g)) {
        cJSON *seq = cJSON_AddObjectToObject(o, "sequence_batching");
        cJSON_AddNumberToObject(seq, "max_sequence_idle_microseconds",
                                sequence_idle_us);
    }
    /* The definition goes in ModelConfig's parameters map, as text: a
     * member ModelConfig does not have would make the document unreadable
     * to the tools that parse it into the protobuf message
     * (json_format.ParseDict refuses unknown fields). */
    if (definition) {
        cJSON *def = cJSON_AddObjectToObject(
            cJSON_AddObjectToObject(o, "parameters"), "definition");
        cJSON_AddStringToObject(def, "string_value", definition);
    }
    return o;
}

static long not_finite(const char *where, api_error *err)
{
    api_fail(err, 400, "bad_tensor", "%s: data must hold finite numbers",
             where);
    return -1;
}

static long too_many(const char *where, api_error *err)
{
    api_fail(err, 400, "bad_tensor", "%s: data holds more values than the "
             "shape", where);
    return -1;
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
        !isfinite((float)j->valuedouble))
        return not_finite(where, err);
    if (at >= n)
        return too_many(where, err);
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
    cJSON_Delete(r->parsed);
    memset(r, 0, sizeof *r);
}

static const cJSON *member(const cJSON *o, const char *key)
{
    return o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

/* An optional boolean member of parameters; *out stays when absent. */
static int bool_param(const cJSON *params, const char *where, const char *key,
                      int *out, api_error *err)
{
    const cJSON *f = member(params, key);
    if (!f)
        return 0;
    if (!cJSON_IsBool(f))
        return api_fail(err, 400, "bad_request", "%s.%s must be true or "
                        "false", where, key);
    *out = cJSON_IsTrue(f);
    return 0;
}

/* An optional unsigned integer member of parameters, below 2^53 (what a
 * JSON number holds exactly). */
static int count_param(const cJSON *params, const char *where, const char *key,
                       double *out, api_error *err)
{
    const cJSON *f = member(params, key);
    if (!f)
        return 0;
    if (!cJSON_IsNumber(f) || f->valuedouble < 0 ||
        f->valuedouble != floor(f->valuedouble) ||
        f->valuedouble >= 9007199254740992.0)
        return api_fail(err, 400, "bad_request", "%s.%s must be an integer "
                        ">= 0", where, key);
    *out = f->valuedouble;
    return 0;
}

/* The extension parameters nerved does not serve, refused by name rather
 * than silently ignored (the client would wait for data that never
 * comes). */
static int refuse_unsupported(const cJSON *params, const char *where,
                              api_error *err)
{
    static const char *const keys[] = {"shared_memory_region",
                                       "shared_memory_byte_size",
                                       "shared_memory_offset"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
        if (member(params, keys[k]))
            return api_fail(err, 400, "bad_request", "%s.parameters.%s: the "
                            "shared memory extension is not supported; send "
                            "the data in the body", where, keys[k]);
    const cJSON *classes = member(params, "classification");
    if (classes && !(cJSON_IsNumber(classes) && classes->valuedouble == 0))
        return api_fail(err, 400, "bad_request", "%s.parameters."
                        "classification: the classification extension "
                        "(class_count) is not supported", where);
    return 0;
}

/* The digits of the unsigned integer at pos of j, if that is what is
 * written there (no sign, fraction or exponent), into out. */
static int integer_text(const api_json *j, size_t pos, char *out, size_t size)
{
    if (!j || pos == (size_t)-1)
        return 0;
    while (pos < j->len && isspace((unsigned char)j->s[pos]))
        pos++;
    size_t n = 0;
    while (pos + n < j->len && isdigit((unsigned char)j->s[pos + n]))
        n++;
    size_t end = pos + n;
    if (n == 0 || n >= size ||
        (end < j->len && strchr(".eE", j->s[end])))
        return 0;
    memcpy(out, j->s + pos, n);
    out[n] = '\0';
    return 1;
}

/* Where parameters.sequence_id's value is in the text j, or (size_t)-1. */
static size_t sequence_id_at(const api_json *j)
{
    if (!j || api_json_kind(j, 0) != '{')
        return (size_t)-1;
    size_t params = api_json_find(j, 0, "parameters");
    if (params == (size_t)-1 || api_json_kind(j, params) != '{')
        return (size_t)-1;
    return api_json_find(j, params, "sequence_id");
}

int api_kserve_sequence_id(const cJSON *params, const api_json *j, char *id,
                           int *numeric, api_error *err)
{
    id[0] = '\0';
    *numeric = 0;
    const cJSON *seq = member(params, "sequence_id");
    if (!seq)
        return 0;
    if (cJSON_IsString(seq) &&
        strlen(seq->valuestring) < API_KSERVE_SEQUENCE_MAX) {
        snprintf(id, API_KSERVE_SEQUENCE_MAX, "%s", seq->valuestring);
        return 0;
    }
    char digits[24];
    if (cJSON_IsNumber(seq) && seq->valuedouble >= 0 &&
        seq->valuedouble <= 18446744073709551616.0 &&
        integer_text(j, sequence_id_at(j), digits, sizeof digits)) {
        errno = 0;
        char *end;
        unsigned long long v = strtoull(digits, &end, 10);
        if (errno == 0 && *end == '\0') {
            *numeric = v > 0;
            if (v > 0)
                snprintf(id, API_KSERVE_SEQUENCE_MAX, "%llu", v);
            return 0;
        }
    } else if (cJSON_IsNumber(seq) && seq->valuedouble >= 0 &&
               seq->valuedouble == floor(seq->valuedouble) &&
               seq->valuedouble < 9007199254740992.0) {
        *numeric = seq->valuedouble > 0;
        if (seq->valuedouble > 0)
            snprintf(id, API_KSERVE_SEQUENCE_MAX, "%.0f", seq->valuedouble);
        return 0;
    }
    return api_fail(err, 400, "bad_request", "parameters.sequence_id must be "
                    "an integer from 0 to 2^64 - 1 or a string of up to %d "
                    "characters", API_KSERVE_SEQUENCE_MAX - 1);
}

static int read_parameters(const cJSON *body, const api_json *j,
                           api_kserve_request *r, int *binary_output,
                           api_error *err)
{
    const cJSON *params = member(body, "parameters");
    if (params && !cJSON_IsObject(params))
        return api_fail(err, 400, "bad_request", "\"parameters\" must be an "
                        "object");
    if (api_kserve_sequence_id(params, j, r->sequence_id,
                               &r->sequence_numeric, err))
        return -1;
    if (bool_param(params, "parameters", "sequence_start", &r->sequence_start,
                   err) ||
        bool_param(params, "parameters", "sequence_end", &r->sequence_end,
                   err) ||
        bool_param(params, "parameters", "binary_data_output", binary_output,
                   err) ||
        count_param(params, "parameters", "priority", &r->priority, err) ||
        count_param(params, "parameters", "timeout", &r->timeout_us, err))
        return -1;
    if (r->sequence_start && !r->sequence_id[0])
        return api_fail(err, 400, "bad_request", "parameters.sequence_start "
                        "needs parameters.sequence_id");
    if (r->sequence_end && !r->sequence_id[0])
        return api_fail(err, 400, "bad_request", "parameters.sequence_end "
                        "needs parameters.sequence_id");
    return 0;
}

/* The large numeric arrays of a kept text, in document order: in the
 * text cJSON parses, array k's marker became the string "\u0001k". */
typedef struct kept_blobs {
    const api_json *j;
    size_t *marks;
    int n;
} kept_blobs;

/* The position in the kept text of the array data names, or -1. */
static long kept_mark(const kept_blobs *kb, const cJSON *data)
{
    if (!kb || !cJSON_IsString(data) || data->valuestring[0] != '\001')
        return -1;
    char *end;
    long k = strtol(data->valuestring + 1, &end, 10);
    return *end == '\0' && end > data->valuestring + 1 && k >= 0 &&
                   k < kb->n
               ? (long)kb->marks[k]
               : -1;
}

/* One entry of "inputs": checked against the graph and filled from its
 * "data" (text, or an array kept as floats: kb) or, with
 * parameters.binary_data_size, from the blob. */
static int read_input(const cJSON *in, int index, const nn_graph *g,
                      const api_limits *lim, api_binary_reader *blob,
                      const kept_blobs *kb, api_kserve_request *r,
                      api_error *err)
{
    char where[96];
    snprintf(where, sizeof where, "inputs[%d]", index);
    const cJSON *name = member(in, "name");
    const cJSON *type = member(in, "datatype");
    if (!cJSON_IsString(name))
        return api_fail(err, 400, "bad_request", "%s.name must be a string",
                        where);
    nn_node *entry = nn_graph_find(g, name->valuestring);
    if (!entry || !(nn_node_type_of(entry)->flags & NN_TYPE_SOURCE))
        return api_fail(err, 400, "unknown_input", "%s: the model has no "
                        "input '%.64s'", where, name->valuestring);
    for (int k = 0; k < r->n_inputs; k++)
        if (strcmp(r->inputs[k].name, name->valuestring) == 0)
            return api_fail(err, 400, "bad_request", "%s: input '%s' is "
                            "given twice", where, name->valuestring);
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "FP32") != 0)
        return api_fail(err, 400, "bad_request", "%s ('%s'): datatype must "
                        "be \"FP32\" (the model's tensors are float32), not "
                        "%s%.16s%s", where, name->valuestring,
                        cJSON_IsString(type) ? "\"" : "",
                        cJSON_IsString(type) ? type->valuestring : "missing",
                        cJSON_IsString(type) ? "\"" : "");
    const cJSON *params = member(in, "parameters");
    if (params && !cJSON_IsObject(params))
        return api_fail(err, 400, "bad_request", "%s.parameters must be an "
                        "object", where);
    if (refuse_unsupported(params, where, err))
        return -1;
    nn_shape shape;
    if (read_shape(member(in, "shape"), where, &shape, lim, err))
        return -1;
    nn_shape per = nn_node_output_shape(entry);
    int fits = shape.ndim == per.ndim + 1;
    for (int d = 0; fits && d < per.ndim; d++)
        fits = shape.dims[d + 1] == per.dims[d];
    if (!fits) {
        char got[96], want[96];
        return api_fail(err, 400, "shape_mismatch", "%s ('%s'): shape %s "
                        "does not fit the model's %s", where,
                        name->valuestring,
                        shape_text(&shape, 0, got, sizeof got),
                        shape_text(&per, 1, want, sizeof want));
    }
    if (r->n_inputs > 0 && shape.dims[0] != r->inputs[0].tensor->shape.dims[0])
        return api_fail(err, 400, "shape_mismatch", "%s ('%s'): batch %d "
                        "differs from the first input's %d", where,
                        name->valuestring, shape.dims[0],
                        r->inputs[0].tensor->shape.dims[0]);
    nn_tensor *t = nn_tensor_new(&shape);
    if (!t)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    r->inputs[r->n_inputs].name = name->valuestring;
    r->inputs[r->n_inputs++].tensor = t;
    size_t numel = nn_tensor_numel(t);

    const cJSON *data = member(in, "data");
    const cJSON *size = member(params, "binary_data_size");
    if (size) {
        if (data)
            return api_fail(err, 400, "bad_request", "%s ('%s'): give either "
                            "data or parameters.binary_data_size, not both",
                            where, name->valuestring);
        if (!cJSON_IsNumber(size) || size->valuedouble < 0 ||
            size->valuedouble != floor(size->valuedouble))
            return api_fail(err, 400, "bad_request", "%s ('%s'): parameters."
                            "binary_data_size must be a byte count", where,
                            name->valuestring);
        if (size->valuedouble != (double)numel * 4)
            return api_fail(err, 400, "bad_tensor", "%s ('%s'): "
                            "binary_data_size is %.0f bytes; shape %s of FP32 "
                            "needs %zu", where, name->valuestring,
                            size->valuedouble,
                            shape_text(&shape, 0, (char[96]){0}, 96),
                            numel * 4);
        char named[160];
        snprintf(named, sizeof named, "%s ('%s')", where, name->valuestring);
        return api_binary_take_f32(blob, t->data, numel, named, err);
    }
    if (!data)
        return api_fail(err, 400, "bad_tensor", "%s ('%s'): needs data, or "
                        "parameters.binary_data_size with the bytes after the "
                        "JSON header", where, name->valuestring);
    long count, mark = kept_mark(kb, data);
    if (mark < 0) {
        count = flatten(data, t->data, (long)numel, 0, where, err);
    } else {
        size_t kept;
        int how = api_json_blob_floats(kb->j, (size_t)mark, t->data, numel,
                                       &kept);
        if (how == API_JSON_FLAT_UNEVEN)
            return api_fail(err, 400, "bad_tensor", "%s ('%s'): data must be "
                            "flat, or nested evenly", where,
                            name->valuestring);
        count = how == API_JSON_FLAT_NOT_FINITE ? not_finite(where, err)
                : kept > numel                  ? too_many(where, err)
                                                : (long)kept;
    }
    if (count < 0)
        return -1;
    if ((size_t)count != numel)
        return api_fail(err, 400, "bad_tensor", "%s ('%s'): data holds %ld "
                        "values; the shape needs %zu", where,
                        name->valuestring, count, numel);
    return 0;
}

static int read_outputs(const cJSON *body, const nn_graph *g,
                        int binary_output, api_kserve_request *r,
                        api_error *err)
{
    const cJSON *outputs = member(body, "outputs");
    if (outputs && !cJSON_IsArray(outputs))
        return api_fail(err, 400, "bad_request", "\"outputs\" must be an "
                        "array of {name, parameters}");
    int named = outputs ? cJSON_GetArraySize(outputs) : 0;
    int m = named ? named : nn_graph_exit_count(g);
    r->outputs = calloc((size_t)(m ? m : 1), sizeof *r->outputs);
    if (!r->outputs)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    if (!named) {
        /* An empty or absent list is every output. */
        for (int x = 0; x < m; x++) {
            r->outputs[x].name = nn_node_name(nn_graph_exit_at(g, x));
            r->outputs[x].binary = binary_output;
        }
        r->n_outputs = m;
        return 0;
    }
    int index = 0;
    for (const cJSON *o = outputs->child; o; o = o->next, index++) {
        char where[64];
        snprintf(where, sizeof where, "outputs[%d]", index);
        const cJSON *name = member(o, "name");
        /* Any node, not only the exits: the model's inner states are
         * outputs too, for checking a ported model. */
        nn_node *node = cJSON_IsString(name)
                            ? nn_graph_find(g, name->valuestring) : NULL;
        if (!node) {
            char list[320];
            api_node_list_text(g, list, sizeof list);
            return api_fail(err, 400, "unknown_output", "%s: the model has "
                            "no node '%.64s' to output; its nodes are %s",
                            where,
                            cJSON_IsString(name) ? name->valuestring : "",
                            list);
        }
        for (int k = 0; k < r->n_outputs; k++)
            if (strcmp(r->outputs[k].name, nn_node_name(node)) == 0)
                return api_fail(err, 400, "bad_request", "%s: output '%s' "
                                "is requested twice", where,
                                nn_node_name(node));
        const cJSON *params = member(o, "parameters");
        if (params && !cJSON_IsObject(params))
            return api_fail(err, 400, "bad_request", "%s.parameters must be "
                            "an object", where);
        if (refuse_unsupported(params, where, err))
            return -1;
        int binary = binary_output;
        if (bool_param(params, where, "binary_data", &binary, err))
            return -1;
        r->outputs[r->n_outputs].name = nn_node_name(node);
        r->outputs[r->n_outputs++].binary = binary;
    }
    return 0;
}

static int read_request(const cJSON *body, const api_json *text,
                        const char *blob, size_t blob_len,
                        const kept_blobs *kb,
                        const nn_graph *g, const api_limits *lim,
                        api_kserve_request *r, api_error *err)
{
    if (!cJSON_IsObject(body))
        return api_fail(err, 400, "bad_request", "an inference request is a "
                        "JSON object with \"inputs\"");
    /* Read by neither copy, on either path. */
    int failed = 0;
    const char *twice = api_json_repeated_member(body, &failed);
    if (failed)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    if (twice)
        return api_fail(err, 400, "bad_json", "an object holds the member "
                        "'%.64s' twice", twice);
    const cJSON *id = member(body, "id");
    if (id && !cJSON_IsString(id))
        return api_fail(err, 400, "bad_request", "\"id\" must be a string");
    /* It is echoed in the answer, which must stay JSON. */
    if (id && !api_utf8_valid(id->valuestring))
        return api_fail(err, 400, "bad_request", "\"id\" is not valid "
                        "UTF-8");
    r->id = id ? id->valuestring : NULL;
    int binary_output = 0;
    if (read_parameters(body, text, r, &binary_output, err))
        return -1;

    const cJSON *inputs = member(body, "inputs");
    if (!cJSON_IsArray(inputs) || cJSON_GetArraySize(inputs) < 1)
        return api_fail(err, 400, "bad_request", "\"inputs\" must be a "
                        "non-empty array of {name, shape, datatype, data}");
    int n = cJSON_GetArraySize(inputs);
    r->inputs = calloc((size_t)n, sizeof *r->inputs);
    if (!r->inputs)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    api_binary_reader reader;
    api_binary_reader_init(&reader, blob, blob_len);
    int index = 0;
    for (const cJSON *in = inputs->child; in; in = in->next, index++)
        if (read_input(in, index, g, lim, &reader, kb, r, err))
            return -1;
    if (api_binary_finish(&reader, err))
        return -1;
    for (int e = 0; e < nn_graph_entry_count(g); e++) {
        const char *need = nn_node_name(nn_graph_entry_at(g, e));
        int found = 0;
        for (int k = 0; k < r->n_inputs; k++)
            found |= strcmp(r->inputs[k].name, need) == 0;
        if (!found)
            return api_fail(err, 400, "missing_input", "input '%s' is "
                            "missing", need);
    }
    r->batch = r->inputs[0].tensor->shape.dims[0];
    return read_outputs(body, g, binary_output, r, err);
}

int api_kserve_read_request(const cJSON *body, const char *blob,
                            size_t blob_len, const nn_graph *g,
                            const api_limits *lim, api_kserve_request *r,
                            api_error *err)
{
    memset(r, 0, sizeof *r);
    return read_request(body, NULL, blob, blob_len, NULL, g, lim, r, err);
}

int api_kserve_read_text(const api_json *j, const char *blob,
                         size_t blob_len, const nn_graph *g,
                         const api_limits *lim, api_kserve_request *r,
                         api_error *err)
{
    memset(r, 0, sizeof *r);
    kept_blobs kb = {j, NULL, 0};
    /* Plain text (a small body, the binary framing's header, a compressed
     * body) is parsed where it is. */
    const char *text = j->s;
    size_t len = j->len;
    char *named = NULL;
    if (j->doc) {
        named = api_json_naming_blobs(j, &kb.marks, &kb.n);
        if (!named)
            return api_fail(err, 503, "out_of_memory", "out of memory");
        text = named;
        len = strlen(named);
    }
    int rc;
    if (api_json_nul_escape(text, len)) {
        rc = api_fail(err, 400, "bad_json", "a string holds \\u0000: no "
                      "name, id or value here can hold a NUL");
    } else {
        r->parsed = cJSON_ParseWithLength(text, len);
        rc = r->parsed ? read_request(r->parsed, j, blob, blob_len, &kb, g,
                                      lim, r, err)
                       : api_fail(err, 400, "bad_json", "malformed JSON");
    }
    free(named);
    free(kb.marks);
    return rc;
}

cJSON *api_kserve_response(const api_kserve_request *r, const char *model,
                           const nn_session *s, api_blob *blobs,
                           int *n_blobs)
{
    *n_blobs = 0;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "model_name", model);
    cJSON_AddStringToObject(o, "model_version", "1");
    if (r->id)
        cJSON_AddStringToObject(o, "id", r->id);
    if (r->sequence_id[0]) {
        /* In the kind it came as; an integer as its digits, which a
         * double would round from 2^53 on. */
        cJSON *p = cJSON_AddObjectToObject(o, "parameters");
        if (r->sequence_numeric)
            cJSON_AddRawToObject(p, "sequence_id", r->sequence_id);
        else
            cJSON_AddStringToObject(p, "sequence_id", r->sequence_id);
    }
    cJSON *outputs = cJSON_AddArrayToObject(o, "outputs");
    for (int k = 0; k < r->n_outputs; k++) {
        const char *name = r->outputs[k].name;
        const nn_tensor *t = nn_session_output(s, name);
        cJSON *out = cJSON_CreateObject();
        cJSON_AddItemToArray(outputs, out);
        cJSON_AddStringToObject(out, "name", name);
        cJSON_AddStringToObject(out, "datatype", "FP32");
        cJSON *shape = cJSON_AddArrayToObject(out, "shape");
        for (int d = 0; d < t->shape.ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber(t->shape.dims[d]));
        size_t numel = nn_tensor_numel(t);
        if (r->outputs[k].binary) {
            cJSON *p = cJSON_AddObjectToObject(out, "parameters");
            cJSON_AddNumberToObject(p, "binary_data_size", (double)numel * 4);
            blobs[*n_blobs].data = t->data;
            blobs[(*n_blobs)++].count = numel;
            continue;
        }
        /* The data as one raw text written by the codec: a node per
         * number cost some hundred bytes and a formatting call each. */
        api_buf text = {0};
        nn_shape flat = nn_shape_make(1, (int[]){(int)numel});
        if (numel)
            api_buf_tensor(&text, t->data, &flat);
        else
            api_buf_puts(&text, "[]");
        char *raw = api_buf_finish(&text, NULL);
        cJSON *data = raw ? cJSON_CreateRaw(raw) : NULL;
        free(raw);
        if (!data) {
            cJSON_Delete(o);
            return NULL;
        }
        cJSON_AddItemToObject(out, "data", data);
    }
    return o;
}

cJSON *api_kserve_error(const char *message)
{
    /* As api_error_json: the message may quote bytes that are not UTF-8. */
    char *clean = strdup(message);
    if (!clean)
        return NULL;
    api_utf8_clean(clean);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", clean);
    free(clean);
    return o;
}
