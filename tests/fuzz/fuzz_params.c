/*
 * fuzz_params.c — parameter documents for a network with a sparse
 * Reservoir and a Dense, over a body exactly as long as what was sent (so
 * a sanitizer sees any read past it), checked or not: read, and when read
 * and applied, exported and read back to the same export (the sparse W
 * with its pattern).
 */
#include "api.h"
#include "api_codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *DEF =
    "{\"seed\": 1, \"nodes\": [{\"name\": \"x\", \"type\": \"Input\", "
    "\"shape\": 3}, {\"name\": \"r\", \"type\": \"Reservoir\", "
    "\"num_unit\": 8, \"sparse\": \"true\", \"rc_connectivity\": 0.3}, "
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 2}], "
    "\"edges\": [\"x >> r >> o\"]}";

static nn_graph *build(const nn_registry *reg)
{
    api_limits lim = api_default_limits();
    lim.max_params = 100; /* the seed's W fits, a full 8 x 8 one does not */
    cJSON *def = cJSON_Parse(DEF);
    api_error err;
    nn_graph *g = def ? api_graph_from_json(def, reg, &lim, &err) : NULL;
    cJSON_Delete(def);
    return g;
}

static char *export_text(const nn_graph *g, size_t *len)
{
    api_enc *e = api_params_enc(g);
    if (!e)
        return NULL;
    api_buf b = {0};
    char chunk[61]; /* elements straddle chunks */
    size_t n;
    while ((n = api_enc_next(e, chunk, sizeof chunk)) > 0)
        api_buf_put(&b, chunk, n);
    api_buf_put(&b, "", 0);
    api_enc_free(e);
    return api_buf_finish(&b, len);
}

static int import(nn_graph *g, const char *text, size_t len)
{
    api_json j = {text, len, NULL};
    api_params_import *imp;
    api_error err;
    if (api_params_read(g, &j, &imp, &err))
        return -1;
    int rc = api_params_still_fits(g, imp, &err);
    if (rc == 0)
        api_params_apply(g, imp);
    api_params_import_free(imp);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static nn_registry *reg;
    if (!reg) {
        nn_error e;
        reg = nn_registry_new();
        if (!reg || nn_registry_add_builtins(reg, &e) != NN_OK)
            abort();
    }
    char *text = malloc(size ? size : 1);
    nn_graph *g = build(reg);
    if (!text || !g)
        abort();
    memcpy(text, data, size);
    if (import(g, text, size) == 0) {
        size_t len, len2;
        char *out = export_text(g, &len);
        nn_graph *h = build(reg);
        if (!out || !h || import(h, out, len) != 0)
            abort();
        char *again = export_text(h, &len2);
        if (!again || len != len2 || memcmp(out, again, len) != 0)
            abort();
        free(out);
        free(again);
        nn_graph_free(h);
    }
    nn_graph_free(g);
    free(text);
    return 0;
}
