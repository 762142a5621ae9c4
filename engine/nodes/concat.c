/*
 * concat.c — Concat: its feedforward inputs joined on the last axis, in the
 * order their edges were declared.
 */
#include "builtins.h"

static int concat_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                          nn_error *err)
{
    nn_shape lead;
    int total;
    int rc = nn_inputs_consistent(node, ff, n_ff, 0, &lead, &total, err);
    if (rc != NN_OK)
        return rc;
    lead.dims[lead.ndim++] = total;
    nn_node_set_output_shape(node, &lead);
    return NN_OK;
}

static int concat_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                          const nn_tensor *fb, int n_fb, nn_tensor *out,
                          nn_ctx *ctx)
{
    (void)node, (void)fb, (void)n_fb;
    return nn_concat_last(ff, n_ff, out, ctx->err);
}

static int concat_backward(nn_node *node, const nn_tensor *ff, int n_ff,
                           const nn_tensor *fb, int n_fb, const nn_tensor *out,
                           const nn_tensor *dout, nn_tensor *dff,
                           nn_tensor *dfb, nn_ctx *ctx)
{
    (void)node, (void)fb, (void)n_fb, (void)dfb, (void)ctx;
    if (!dff)
        return NN_OK;
    size_t rows = nn_tensor_rows(out);
    int width = nn_tensor_cols(out), offset = 0;
    for (int i = 0; i < n_ff; i++) {
        int cols = nn_tensor_cols(&ff[i]);
        for (size_t r = 0; r < rows; r++)
            for (int j = 0; j < cols; j++)
                dff[i].data[r * (size_t)cols + j] +=
                    dout->data[r * (size_t)width + offset + j];
        offset += cols;
    }
    return NN_OK;
}

const nn_node_type nn_type_concat = {
    .api_version = NN_API_VERSION,
    .name = "Concat",
    .doc = "concatenates its inputs on the last axis, in edge order",
    .flags = NN_TYPE_ROWWISE,
    .init_ff = concat_init_ff,
    .forward = concat_forward,
    .backward = concat_backward,
};
