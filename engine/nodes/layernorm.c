/*
 * layernorm.c — LayerNorm: each row of the last axis normalised to zero
 * mean and unit variance, y = (x - mean) / sqrt(var + epsilon) * gain + b,
 * with the biased variance as PyTorch's nn.LayerNorm(last size).
 */
#include "builtins.h"

#include <math.h>

typedef struct layernorm {
    nn_tensor *gain, *b;
    int gain_index, b_index;
    float epsilon;
} layernorm;

static const nn_param_def layernorm_params[] = {
    {"epsilon", NN_PARAM_FLOAT, "1e-5", 1e-12, 1, NULL,
     "added to the variance, so a constant row does not divide by zero"},
    {"affine", NN_PARAM_BOOL, "true", 0, 0, NULL,
     "scale by a learnable gain and add a learnable bias b"},
    {"gain_initializer", NN_PARAM_INIT, "Ones", 0, 0, NULL,
     "initializer of gain (last-axis size)"},
    {"b_initializer", NN_PARAM_INIT, "Zeros", 0, 0, NULL,
     "initializer of b (last-axis size)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static int layernorm_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                             nn_error *err)
{
    layernorm *self = nn_node_priv(node);
    if (n_ff != 1)
        return nn_error_set(err, NN_ERR_SHAPE, "LayerNorm takes exactly one "
                            "feedforward input, got %d; put a Concat in front "
                            "to combine several", n_ff);
    if (ff[0].ndim < 1)
        return nn_error_set(err, NN_ERR_SHAPE, "LayerNorm needs an input with "
                            "at least one axis per sample to normalise over");
    self->epsilon = (float)nn_node_param_float(node, "epsilon");
    self->gain_index = self->b_index = -1;
    if (nn_node_param_bool(node, "affine")) {
        nn_shape size = nn_shape1(ff[0].dims[ff[0].ndim - 1]);
        nn_init gain_init = nn_node_param_init(node, "gain_initializer");
        nn_init b_init = nn_node_param_init(node, "b_initializer");
        if (!(self->gain = nn_node_add_weight(node, "gain", &size, &gain_init,
                                              1, err)))
            return err->code;
        self->gain_index = nn_node_weight_count(node) - 1;
        if (!(self->b = nn_node_add_weight(node, "b", &size, &b_init, 1, err)))
            return err->code;
        self->b_index = nn_node_weight_count(node) - 1;
    }
    nn_node_set_output_shape(node, &ff[0]);
    return NN_OK;
}

/* Mean and 1/sqrt(var + epsilon) of one row, summed in double so long rows
 * keep their precision. */
static void row_moments(const float *x, int cols, float epsilon, float *mean,
                        float *rstd)
{
    double sum = 0, sq = 0;
    for (int j = 0; j < cols; j++)
        sum += x[j];
    double m = sum / cols;
    for (int j = 0; j < cols; j++)
        sq += ((double)x[j] - m) * ((double)x[j] - m);
    *mean = (float)m;
    *rstd = (float)(1.0 / sqrt(sq / cols + epsilon));
}

static int layernorm_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                             const nn_tensor *fb, int n_fb, nn_tensor *out,
                             nn_ctx *ctx)
{
    (void)n_ff, (void)fb, (void)n_fb, (void)ctx;
    const layernorm *self = nn_node_priv_const(node);
    size_t rows = nn_tensor_rows(out);
    int cols = nn_tensor_cols(out);
    for (size_t r = 0; r < rows; r++) {
        const float *x = ff[0].data + r * (size_t)cols;
        float *y = out->data + r * (size_t)cols;
        float mean, rstd;
        row_moments(x, cols, self->epsilon, &mean, &rstd);
        for (int j = 0; j < cols; j++) {
            y[j] = (x[j] - mean) * rstd;
            if (self->gain)
                y[j] = y[j] * self->gain->data[j] + self->b->data[j];
        }
    }
    return NN_OK;
}

static int layernorm_backward(nn_node *node, const nn_tensor *ff, int n_ff,
                              const nn_tensor *fb, int n_fb,
                              const nn_tensor *out, const nn_tensor *dout,
                              nn_tensor *dff, nn_tensor *dfb, nn_ctx *ctx)
{
    (void)n_ff, (void)fb, (void)n_fb, (void)dfb;
    const layernorm *self = nn_node_priv_const(node);
    size_t rows = nn_tensor_rows(out);
    int cols = nn_tensor_cols(out);
    float *dgain = self->gain ? ctx->grad[self->gain_index].data : NULL;
    float *db = self->b ? ctx->grad[self->b_index].data : NULL;
    for (size_t r = 0; r < rows; r++) {
        const float *x = ff[0].data + r * (size_t)cols;
        const float *dy = dout->data + r * (size_t)cols;
        float mean, rstd;
        row_moments(x, cols, self->epsilon, &mean, &rstd);
        /* With g = dy * gain and x̂ the normalised row,
         * dx = rstd * (g - mean(g) - x̂ * mean(g * x̂)). */
        double g_sum = 0, gx_sum = 0;
        for (int j = 0; j < cols; j++) {
            float xhat = (x[j] - mean) * rstd;
            float g = self->gain ? dy[j] * self->gain->data[j] : dy[j];
            g_sum += g;
            gx_sum += (double)g * xhat;
            if (dgain) {
                dgain[j] += dy[j] * xhat;
                db[j] += dy[j];
            }
        }
        if (!dff)
            continue;
        float g_mean = (float)(g_sum / cols), gx_mean = (float)(gx_sum / cols);
        float *dx = dff[0].data + r * (size_t)cols;
        for (int j = 0; j < cols; j++) {
            float xhat = (x[j] - mean) * rstd;
            float g = self->gain ? dy[j] * self->gain->data[j] : dy[j];
            dx[j] += rstd * (g - g_mean - xhat * gx_mean);
        }
    }
    return NN_OK;
}

const nn_node_type nn_type_layernorm = {
    .api_version = NN_API_VERSION,
    .name = "LayerNorm",
    .doc = "normalises over the last axis: (x - mean) / sqrt(var + epsilon) * "
           "gain + b",
    .flags = NN_TYPE_TRAINABLE | NN_TYPE_ROWWISE,
    .params = layernorm_params,
    .priv_size = sizeof(layernorm),
    .init_ff = layernorm_init_ff,
    .forward = layernorm_forward,
    .backward = layernorm_backward,
};
