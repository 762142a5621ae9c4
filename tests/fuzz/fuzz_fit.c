/*
 * fuzz_fit.c — training requests read the two ways a body can arrive: as
 * plain text (small or compressed bodies), and pushed in two pieces with
 * every eligible array kept as float32 (the options then from a tree of
 * the rest, as the daemon reads a fit). Both must give the same verdict,
 * status and message, and on success the same sequences, bit for bit (the
 * pushed request's tensors may borrow the document's floats); the
 * body is exactly as long as what was sent, so a sanitizer sees any read
 * past it.
 */
#include "api.h"
#include "api_codec.h"
#include "api_fit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *DEF =
    "{\"seed\": 1, \"nodes\": [{\"name\": \"x\", \"type\": \"Input\", "
    "\"shape\": 2}, {\"name\": \"r\", \"type\": \"Reservoir\", "
    "\"num_unit\": 4}, {\"name\": \"o\", \"type\": \"Dense\", "
    "\"num_unit\": 1}], \"edges\": [\"x >> r >> o\"]}";

static int same_bindings(const nn_binding *a, const nn_binding *b, int n)
{
    for (int i = 0; i < n; i++) {
        const nn_tensor *s = a[i].tensor, *t = b[i].tensor;
        if (strcmp(a[i].name, b[i].name) || !nn_shape_equal(&s->shape,
                                                            &t->shape) ||
            memcmp(s->data, t->data, nn_tensor_numel(s) * sizeof(float)))
            return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static nn_registry *reg;
    static nn_graph *g;
    api_limits lim = api_default_limits();
    lim.max_tensor_elems = 1u << 12;
    lim.max_steps = 64;
    lim.max_batch = 8;
    if (!reg) {
        nn_error e;
        api_error err;
        reg = nn_registry_new();
        cJSON *def = cJSON_Parse(DEF);
        if (!reg || nn_registry_add_builtins(reg, &e) != NN_OK || !def ||
            !(g = api_graph_from_json(def, reg, &lim, &err)))
            abort();
        cJSON_Delete(def);
    }
    char *text = malloc(size ? size : 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    size_t at;
    int trailing;
    if (api_json_check(text, size, &at, &trailing) ||
        api_json_nul_escape(text, size)) {
        free(text);
        return 0;
    }
    api_json plain = {text, size, NULL};
    cJSON *tree = cJSON_ParseWithLength(text, size);
    api_fit_request a, b;
    api_error ea, eb;
    int ra = api_fit_request_parse(tree, &plain, NULL, g, &lim, &a, &ea);

    api_jsondoc *doc = api_jsondoc_new(0, NULL, NULL);
    if (!doc || api_jsondoc_feed(doc, text, size / 2) ||
        api_jsondoc_feed(doc, text + size / 2, size - size / 2))
        abort();
    api_jsondoc_finish(doc);
    if (api_jsondoc_check(doc, &at, &trailing))
        abort(); /* the two checkers disagree */
    api_json pushed = api_jsondoc_json(doc);
    size_t *marks = NULL;
    int n = 0;
    char *named = api_json_naming_blobs(&pushed, &marks, &n);
    if (!named)
        abort();
    cJSON *named_tree = cJSON_Parse(named);
    int rb = api_fit_request_parse(named_tree, &pushed, NULL, g, &lim, &b,
                                   &eb);
    if ((ra == 0) != (rb == 0))
        abort();
    if (ra && (ea.http_status != eb.http_status ||
               strcmp(ea.message, eb.message) != 0))
        abort();
    if (ra == 0) {
        if (a.n_data != b.n_data)
            abort();
        for (int i = 0; i < a.n_data; i++) {
            const api_fit_data *p = &a.data[i], *q = &b.data[i];
            if (p->batch != q->batch || p->steps != q->steps ||
                p->n_inputs != q->n_inputs || p->n_targets != q->n_targets ||
                !same_bindings(p->inputs, q->inputs, p->n_inputs) ||
                !same_bindings(p->targets, q->targets, p->n_targets))
                abort();
        }
    }
    api_fit_request_release(&a);
    api_fit_request_release(&b);
    api_jsondoc_free(doc);
    cJSON_Delete(tree);
    cJSON_Delete(named_tree);
    free(named);
    free(marks);
    free(text);
    return 0;
}
