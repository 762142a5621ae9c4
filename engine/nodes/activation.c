/*
 * activation.c — Activation(function): applies one function to its single
 * input; softmax and log_softmax work over the last axis.
 */
#include "activations.h"
#include "builtins.h"

static const nn_param_def activation_params[] = {
    {"function", NN_PARAM_ENUM, NULL, 0, 0, NN_ACT_CHOICES,
     "the function to apply"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static int activation_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                              nn_error *err)
{
    if (n_ff != 1)
        return nn_error_set(err, NN_ERR_SHAPE, "Activation takes exactly one "
                            "feedforward input, got %d; put a Concat in front "
                            "to combine several", n_ff);
    nn_node_set_output_shape(node, &ff[0]);
    /* backward needs room for the input gradient before adding it in */
    nn_node_set_work(node, nn_shape_numel(&ff[0]));
    return NN_OK;
}

static nn_act function_of(const nn_node *node)
{
    return (nn_act)nn_act_parse(nn_node_param_str(node, "function"));
}

static int activation_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                              const nn_tensor *fb, int n_fb, nn_tensor *out,
                              nn_ctx *ctx)
{
    (void)n_ff, (void)fb, (void)n_fb, (void)ctx;
    nn_act_forward(function_of(node), ff[0].data, out->data,
                   nn_tensor_rows(out), (size_t)nn_tensor_cols(out));
    return NN_OK;
}

static int activation_backward(nn_node *node, const nn_tensor *ff, int n_ff,
                               const nn_tensor *fb, int n_fb,
                               const nn_tensor *out, const nn_tensor *dout,
                               nn_tensor *dff, nn_tensor *dfb, nn_ctx *ctx)
{
    (void)n_ff, (void)fb, (void)n_fb, (void)dfb;
    if (!dff)
        return NN_OK;
    size_t rows = nn_tensor_rows(out), cols = (size_t)nn_tensor_cols(out);
    nn_act_backward(function_of(node), ff[0].data, out->data, dout->data,
                    ctx->work, rows, cols);
    for (size_t i = 0; i < rows * cols; i++)
        dff[0].data[i] += ctx->work[i];
    return NN_OK;
}

const nn_node_type nn_type_activation = {
    .api_version = NN_API_VERSION,
    .name = "Activation",
    .doc = "applies an activation function to its input",
    .flags = NN_TYPE_ROWWISE,
    .params = activation_params,
    .init_ff = activation_init_ff,
    .forward = activation_forward,
    .backward = activation_backward,
};
