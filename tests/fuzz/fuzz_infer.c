/*
 * fuzz_infer.c — an Open Inference Protocol request as a client sends it:
 * the input's first line is the Inference-Header-Content-Length value
 * (empty: none), the rest the body (a JSON header, then binary tensor
 * data). Read against a fixed model; a request that reads is stepped and
 * answered, binary outputs joined after the JSON as the daemon does.
 * The JSON is also read as the daemon reads it, from its text (plain, and
 * through the pushed reader with a small array threshold): where both
 * readers take the request, they give the same tensors bit for bit, and
 * the plain text refuses only what holds \u0000.
 */
#include "api.h"
#include "api_binary.h"
#include "api_codec.h"
#include "api_kserve.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static nn_registry *reg;
static nn_graph *graph;

/* r and the text reader's verdict on the same request agree. */
static void same_inputs(const api_kserve_request *a,
                        const api_kserve_request *b)
{
    if (a->n_inputs != b->n_inputs || a->batch != b->batch ||
        a->n_outputs != b->n_outputs)
        abort();
    for (int k = 0; k < a->n_inputs; k++) {
        const nn_tensor *x = a->inputs[k].tensor, *y = b->inputs[k].tensor;
        if (strcmp(a->inputs[k].name, b->inputs[k].name) ||
            !nn_shape_equal(&x->shape, &y->shape) ||
            memcmp(x->data, y->data, nn_tensor_numel(x) * sizeof(float)))
            abort();
    }
}

/* The text reader on body[0..len) as the daemon gives it: plain (pushed
 * 0) or kept by the pushed reader, every array of 16 bytes of text or
 * more read into float32 as it passes. -1 when the pushed reader finds
 * the text malformed (the daemon answers before any route then). */
static int read_text(const char *body, size_t len, int pushed,
                     const char *blob, size_t blob_len,
                     const api_limits *lim, api_kserve_request *r)
{
    api_error err;
    memset(r, 0, sizeof *r);
    if (!pushed) {
        api_json j = {body, len, NULL};
        return api_kserve_read_text(&j, blob, blob_len, graph, lim, r, &err);
    }
    api_jsondoc *d = api_jsondoc_new(16, NULL, NULL);
    if (!d)
        return -1;
    size_t at;
    int trailing, rc = -1;
    /* In two pieces: a number may be split between them. */
    if (api_jsondoc_feed(d, body, len / 2) == 0 &&
        api_jsondoc_feed(d, body + len / 2, len - len / 2) == 0) {
        api_jsondoc_finish(d);
        if (api_jsondoc_check(d, &at, &trailing) == 0) {
            api_json j = api_jsondoc_json(d);
            rc = api_kserve_read_text(&j, blob, blob_len, graph, lim, r,
                                      &err);
        }
    }
    /* The tensors are r's own copies: the document may go. */
    api_jsondoc_free(d);
    return rc;
}

static int setup(void)
{
    if (graph)
        return 0;
    nn_error e;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &e) != NN_OK)
        return -1;
    cJSON *def = cJSON_Parse(
        "{\"seed\": 1, \"nodes\": [{\"name\": \"a\", \"type\": \"Input\", "
        "\"shape\": 2}, {\"name\": \"b\", \"type\": \"Input\", \"shape\": 1},"
        "{\"name\": \"y\", \"type\": \"Dense\", \"num_unit\": 2}, {\"name\": "
        "\"z\", \"type\": \"Dense\", \"num_unit\": 1}], \"edges\": "
        "[\"{a, b} >> y\", \"a >> z\"]}");
    api_limits lim = api_default_limits();
    api_error err;
    graph = def ? api_graph_from_json(def, reg, &lim, &err) : NULL;
    cJSON_Delete(def);
    return graph ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (setup())
        abort();
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl)
        return 0;
    char value[32];
    size_t vlen = (size_t)(nl - data);
    if (vlen >= sizeof value)
        return 0;
    memcpy(value, data, vlen);
    value[vlen] = '\0';
    const char *body = (const char *)nl + 1;
    size_t body_len = size - vlen - 1;
    api_error err;
    size_t json_len = body_len;
    if (vlen && api_binary_split(value, body_len, 0, &json_len, &err))
        return 0;
    cJSON *j = cJSON_ParseWithLength(body, json_len);
    api_limits lim = api_default_limits();
    lim.max_tensor_elems = 1u << 12;
    lim.max_batch = 64;
    api_kserve_request r;
    memset(&r, 0, sizeof r);
    int read = j && api_kserve_read_request(j, vlen ? body + json_len : NULL,
                                            body_len - json_len, graph, &lim,
                                            &r, &err) == 0;
    if (read && r.batch <= lim.max_batch) {
        nn_error e;
        nn_session *s = nn_session_new(graph, r.batch, 1, &e);
        if (s) {
            for (int k = 0; k < r.n_inputs; k++)
                memcpy(nn_session_input(s, r.inputs[k].name)->data,
                       r.inputs[k].tensor->data,
                       nn_tensor_numel(r.inputs[k].tensor) * sizeof(float));
            if (nn_session_step(s, 0, &e) == NN_OK) {
                api_blob blobs[8];
                int n = 0;
                if (r.n_outputs > 8)
                    abort(); /* each exit once: the model has two */
                cJSON *head = api_kserve_response(&r, "m", s, blobs, &n);
                char *text = head ? cJSON_PrintUnformatted(head) : NULL;
                size_t total = 0;
                char *frame = text ? api_binary_join(text, strlen(text), blobs,
                                                     n, &total)
                                   : NULL;
                free(frame);
                free(text);
                cJSON_Delete(head);
            }
            nn_session_free(s);
        }
    }
    size_t check_at;
    int trailing;
    if (api_json_check(body, json_len, &check_at, &trailing) == 0) {
        const char *blob = vlen ? body + json_len : NULL;
        for (int pushed = 0; pushed < 2; pushed++) {
            api_kserve_request t;
            int rc = read_text(body, json_len, pushed, blob,
                               body_len - json_len, &lim, &t);
            if (read && rc == 0)
                same_inputs(&r, &t);
            if (!pushed && read && rc != 0 &&
                !api_json_nul_escape(body, json_len))
                abort();
            api_kserve_request_free(&t);
        }
    }
    api_kserve_request_free(&r);
    cJSON_Delete(j);
    return 0;
}
