/*
 * dropout.c — Dropout(prob): in training each value is kept with
 * probability prob (the guide's convention) and scaled by 1/prob, else
 * zeroed; in evaluation it is the identity. The mask comes from the node's
 * stream in the session, and backward draws it again from the same stream.
 */
#include "builtins.h"

#include <string.h>

static const nn_param_def dropout_params[] = {
    {"prob", NN_PARAM_FLOAT, NULL, 1e-6, 1.0, NULL,
     "probability of keeping each value, in (0, 1]"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static int dropout_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                           nn_error *err)
{
    if (n_ff != 1)
        return nn_error_set(err, NN_ERR_SHAPE, "Dropout takes exactly one "
                            "feedforward input, got %d", n_ff);
    (void)node;
    nn_node_set_output_shape(node, &ff[0]);
    return NN_OK;
}

static int dropout_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                           const nn_tensor *fb, int n_fb, nn_tensor *out,
                           nn_ctx *ctx)
{
    (void)n_ff, (void)fb, (void)n_fb;
    size_t n = nn_tensor_numel(out);
    if (!ctx->train) {
        memcpy(out->data, ff[0].data, n * sizeof(float));
        return NN_OK;
    }
    float prob = (float)nn_node_param_float(node, "prob");
    for (size_t i = 0; i < n; i++)
        out->data[i] = nn_rng_bernoulli(ctx->rng, prob) ? ff[0].data[i] / prob
                                                        : 0.0f;
    return NN_OK;
}

static int dropout_backward(nn_node *node, const nn_tensor *ff, int n_ff,
                            const nn_tensor *fb, int n_fb, const nn_tensor *out,
                            const nn_tensor *dout, nn_tensor *dff,
                            nn_tensor *dfb, nn_ctx *ctx)
{
    (void)ff, (void)n_ff, (void)fb, (void)n_fb, (void)dfb;
    if (!dff)
        return NN_OK;
    size_t n = nn_tensor_numel(out);
    if (!ctx->train) {
        for (size_t i = 0; i < n; i++)
            dff[0].data[i] += dout->data[i];
        return NN_OK;
    }
    /* ctx->rng is the stream as forward found it: the same draws, the same
     * mask. */
    float prob = (float)nn_node_param_float(node, "prob");
    for (size_t i = 0; i < n; i++)
        if (nn_rng_bernoulli(ctx->rng, prob))
            dff[0].data[i] += dout->data[i] / prob;
    return NN_OK;
}

const nn_node_type nn_type_dropout = {
    .api_version = NN_API_VERSION,
    .name = "Dropout",
    .doc = "keeps each value with probability prob, scaled by 1/prob, in "
           "training; the identity in evaluation",
    .flags = NN_TYPE_TRAINABLE,
    .params = dropout_params,
    .init_ff = dropout_init_ff,
    .forward = dropout_forward,
    .backward = dropout_backward,
};
