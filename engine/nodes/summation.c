/*
 * summation.c — Summation: the element-wise sum of its feedforward inputs,
 * which must all have one shape. Unlike every other node it does not
 * concatenate several inputs: that is what it is for.
 */
#include "builtins.h"

#include <string.h>

static int summation_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                             nn_error *err)
{
    for (int i = 1; i < n_ff; i++) {
        if (nn_shape_equal(&ff[i], &ff[0]))
            continue;
        char a[96], b[96];
        return nn_error_set(err, NN_ERR_SHAPE, "Summation adds inputs of one "
                            "shape, but '%s' is %s and '%s' is %s; use Concat "
                            "to join inputs of different sizes",
                            nn_node_name(nn_node_ff_at(node, 0)),
                            nn_shape_str(&ff[0], a, sizeof a),
                            nn_node_name(nn_node_ff_at(node, i)),
                            nn_shape_str(&ff[i], b, sizeof b));
    }
    nn_node_set_output_shape(node, &ff[0]);
    return NN_OK;
}

static int summation_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                             const nn_tensor *fb, int n_fb, nn_tensor *out,
                             nn_ctx *ctx)
{
    (void)node, (void)fb, (void)n_fb, (void)ctx;
    size_t n = nn_tensor_numel(out);
    memcpy(out->data, ff[0].data, n * sizeof(float));
    for (int i = 1; i < n_ff; i++)
        for (size_t k = 0; k < n; k++)
            out->data[k] += ff[i].data[k];
    return NN_OK;
}

static int summation_backward(nn_node *node, const nn_tensor *ff, int n_ff,
                              const nn_tensor *fb, int n_fb,
                              const nn_tensor *out, const nn_tensor *dout,
                              nn_tensor *dff, nn_tensor *dfb, nn_ctx *ctx)
{
    (void)node, (void)ff, (void)fb, (void)n_fb, (void)dfb, (void)ctx;
    if (!dff)
        return NN_OK;
    size_t n = nn_tensor_numel(out);
    for (int i = 0; i < n_ff; i++)
        for (size_t k = 0; k < n; k++)
            dff[i].data[k] += dout->data[k];
    return NN_OK;
}

const nn_node_type nn_type_summation = {
    .api_version = NN_API_VERSION,
    .name = "Summation",
    .doc = "the element-wise sum of its inputs, which must share one shape",
    .flags = NN_TYPE_ROWWISE,
    .init_ff = summation_init_ff,
    .forward = summation_forward,
    .backward = summation_backward,
};
