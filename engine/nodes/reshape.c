/*
 * reshape.c — Reshape(shape): the same values, row-major, in another
 * per-sample shape; one size may be -1 and is then inferred. The batch axis
 * is never touched.
 */
#include "builtins.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const nn_param_def reshape_params[] = {
    {"shape", NN_PARAM_STRING, NULL, 0, 0, NULL,
     "per-sample shape, without the batch axis, such as [2, 3] or 2,-1; one "
     "size may be -1, inferred from the input's size"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

/* Reads "6", "2,3", "[2, -1]" or "(2, -1)" into out, with -1 left in place;
 * *inferred gets the index of the -1, or -1. */
static int parse_target(const char *text, nn_shape *out, int *inferred,
                        nn_error *err)
{
    const char *p = text;
    int dims[NN_MAX_DIMS], n = 0;
    *inferred = -1;
    while (isspace((unsigned char)*p))
        p++;
    char close = *p == '[' ? ']' : *p == '(' ? ')' : 0;
    if (close)
        p++;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (close && *p == close && n > 0)
            break;
        errno = 0;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || errno || (v != -1 && (v < 1 || v > (1L << 30))))
            return nn_error_set(err, NN_ERR_INVALID, "'shape' \"%s\": sizes "
                                "must be integers >= 1, or -1 once", text);
        if (n == NN_MAX_DIMS - 1)
            return nn_error_set(err, NN_ERR_INVALID, "'shape' \"%s\" has more "
                                "than %d axes", text, NN_MAX_DIMS - 1);
        if (v == -1) {
            if (*inferred >= 0)
                return nn_error_set(err, NN_ERR_INVALID, "'shape' \"%s\": only "
                                    "one size can be -1", text);
            *inferred = n;
        }
        dims[n++] = (int)v;
        p = end;
        while (isspace((unsigned char)*p))
            p++;
        if (*p != ',')
            break;
        p++;
    }
    if (close && *p++ != close)
        return nn_error_set(err, NN_ERR_INVALID, "'shape' \"%s\" lacks its "
                            "closing '%c'", text, close);
    while (isspace((unsigned char)*p))
        p++;
    if (*p)
        return nn_error_set(err, NN_ERR_INVALID, "'shape' \"%s\" is not a list "
                            "of sizes such as [2, 3]", text);
    *out = nn_shape_make(n, dims);
    return NN_OK;
}

static int reshape_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                           nn_error *err)
{
    if (n_ff != 1)
        return nn_error_set(err, NN_ERR_SHAPE, "Reshape takes exactly one "
                            "feedforward input, got %d; put a Concat in front "
                            "to combine several", n_ff);
    nn_shape target;
    int inferred;
    int rc = parse_target(nn_node_param_str(node, "shape"), &target, &inferred,
                          err);
    if (rc != NN_OK)
        return rc;
    size_t have = nn_shape_numel(&ff[0]), known = 1;
    for (int d = 0; d < target.ndim; d++)
        if (d != inferred)
            known *= (size_t)target.dims[d];
    char a[96], b[96];
    if (inferred >= 0) {
        if (have % known != 0)
            return nn_error_set(err, NN_ERR_SHAPE, "cannot reshape %s (%zu "
                                "values) to %s: %zu is not a multiple of %zu",
                                nn_shape_str(&ff[0], a, sizeof a), have,
                                nn_node_param_str(node, "shape"), have, known);
        target.dims[inferred] = (int)(have / known);
    } else if (known != have) {
        return nn_error_set(err, NN_ERR_SHAPE, "cannot reshape %s (%zu values) "
                            "to %s (%zu values)",
                            nn_shape_str(&ff[0], a, sizeof a), have,
                            nn_shape_str(&target, b, sizeof b), known);
    }
    nn_node_set_output_shape(node, &target);
    return NN_OK;
}

static int reshape_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                           const nn_tensor *fb, int n_fb, nn_tensor *out,
                           nn_ctx *ctx)
{
    (void)node, (void)n_ff, (void)fb, (void)n_fb, (void)ctx;
    memcpy(out->data, ff[0].data, nn_tensor_numel(out) * sizeof(float));
    return NN_OK;
}

static int reshape_backward(nn_node *node, const nn_tensor *ff, int n_ff,
                            const nn_tensor *fb, int n_fb, const nn_tensor *out,
                            const nn_tensor *dout, nn_tensor *dff,
                            nn_tensor *dfb, nn_ctx *ctx)
{
    (void)node, (void)ff, (void)n_ff, (void)fb, (void)n_fb, (void)dfb;
    (void)ctx;
    if (!dff)
        return NN_OK;
    size_t n = nn_tensor_numel(out);
    for (size_t i = 0; i < n; i++)
        dff[0].data[i] += dout->data[i];
    return NN_OK;
}

const nn_node_type nn_type_reshape = {
    .api_version = NN_API_VERSION,
    .name = "Reshape",
    .doc = "the same values in another per-sample shape; one size may be -1",
    .flags = NN_TYPE_ROWWISE,
    .params = reshape_params,
    .init_ff = reshape_init_ff,
    .forward = reshape_forward,
    .backward = reshape_backward,
};
