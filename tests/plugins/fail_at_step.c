/* A node that fails on purpose: the identity until the session's step
 * "step", whose forward returns an error. Lets the tests see what a client
 * gets when a run fails after its answer has started. */
#include "nn.h"

#include <string.h>

static const nn_param_def fail_params[] = {
    {"step", NN_PARAM_INT, "0", 0, 1e9, NULL, "the step that fails"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static int fail_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                        nn_error *err)
{
    if (n_ff != 1)
        return nn_error_set(err, NN_ERR_SHAPE, "FailAtStep takes one "
                            "feedforward input, got %d", n_ff);
    nn_node_set_output_shape(node, &ff[0]);
    return NN_OK;
}

static int fail_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                        const nn_tensor *fb, int n_fb, nn_tensor *out,
                        nn_ctx *ctx)
{
    (void)n_ff, (void)fb, (void)n_fb;
    if (ctx->step == nn_node_param_int(node, "step"))
        return nn_error_set(ctx->err, NN_ERR_INVALID, "FailAtStep fails at "
                            "step %ld, as asked", ctx->step);
    memcpy(out->data, ff[0].data, nn_tensor_numel(out) * sizeof(float));
    return NN_OK;
}

static const nn_node_type fail_type = {
    .api_version = NN_API_VERSION,
    .name = "FailAtStep",
    .doc = "the identity, failing at one step (for tests)",
    .params = fail_params,
    .init_ff = fail_init_ff,
    .forward = fail_forward,
};

NN_PLUGIN_EXPORT_VERSION;

NN_PLUGIN_EXPORT int nerved_plugin_init(nn_registry *reg, nn_error *err)
{
    return nn_register_type(reg, &fail_type, err);
}
