/*
 * fuzz_graph_def.c — graph definitions as a client sends them: parse, build,
 * describe, draw, and run one step of what builds. Whatever the bytes, the
 * answer is a graph or an error, never a crash, a leak or a hang.
 */
#include "api.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static nn_registry *reg;
    nn_error e;
    if (!reg) {
        reg = nn_registry_new();
        if (!reg || nn_registry_add_builtins(reg, &e) != NN_OK)
            abort();
    }
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    cJSON *def = cJSON_Parse(text);
    free(text);
    /* Small caps keep each run fast; the checks are the same at any size. */
    api_limits lim = api_default_limits();
    lim.max_nodes = 64;
    lim.max_params = 1u << 18;
    lim.max_session_floats = 1u << 18;
    api_error err;
    nn_graph *g = api_graph_from_json(def, reg, &lim, &err);
    cJSON_Delete(def);
    if (!g)
        return 0;
    cJSON_Delete(api_graph_describe(g));
    free(api_graph_dot(g));
    free(api_graph_svg(g));
    nn_session *s = nn_session_new(g, 2, 1, &e);
    if (s) {
        nn_session_step(s, 1, &e);
        nn_session_step(s, 0, &e);
        nn_session_free(s);
    }
    nn_graph_free(g);
    return 0;
}
