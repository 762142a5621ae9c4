/*
 * fuzz_infer.c — an Open Inference Protocol request as a client sends it:
 * the input's first line is the Inference-Header-Content-Length value
 * (empty: none), the rest the body (a JSON header, then binary tensor
 * data). Read against a fixed model; a request that reads is stepped and
 * answered, binary outputs joined after the JSON as the daemon does.
 */
#include "api.h"
#include "api_binary.h"
#include "api_kserve.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static nn_registry *reg;
static nn_graph *graph;

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
    if (vlen && api_binary_split(value, body_len, &json_len, &err))
        return 0;
    cJSON *j = cJSON_ParseWithLength(body, json_len);
    api_limits lim = api_default_limits();
    lim.max_tensor_elems = 1u << 12;
    lim.max_batch = 64;
    api_kserve_request r;
    memset(&r, 0, sizeof r);
    if (j && api_kserve_read_request(j, vlen ? body + json_len : NULL,
                                     body_len - json_len, graph, &lim, &r,
                                     &err) == 0 &&
        r.batch <= lim.max_batch) {
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
    api_kserve_request_free(&r);
    cJSON_Delete(j);
    return 0;
}
