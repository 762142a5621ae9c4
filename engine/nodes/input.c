/*
 * input.c — Input(shape): where the caller's data enters a graph. A source
 * type: the host writes the data bound to this node's name into its output
 * before each step, so forward has nothing to do.
 */
#include "builtins.h"

static const nn_param_def input_params[] = {
    {"shape", NN_PARAM_SHAPE, NULL, 0, 0, NULL,
     "per-sample shape, without the batch axis: 3 or [2, 3]"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static int input_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                         nn_error *err)
{
    (void)ff, (void)n_ff, (void)err;
    nn_shape shape = nn_node_param_shape(node, "shape");
    nn_node_set_output_shape(node, &shape);
    return NN_OK;
}

static int input_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                         const nn_tensor *fb, int n_fb, nn_tensor *out,
                         nn_ctx *ctx)
{
    (void)node, (void)ff, (void)n_ff, (void)fb, (void)n_fb, (void)out;
    (void)ctx;
    return NN_OK;
}

const nn_node_type nn_type_input = {
    .api_version = NN_API_VERSION,
    .name = "Input",
    .doc = "an input of the network, bound by its name",
    .flags = NN_TYPE_SOURCE | NN_TYPE_ROWWISE,
    .params = input_params,
    .init_ff = input_init_ff,
    .forward = input_forward,
};
