/* A plugin that registers one new type, then one whose name is taken by a
 * built-in: the daemon must refuse it and keep neither. */
#include "nn.h"

static int init_ff(nn_node *node, const nn_shape *ff, int n_ff, nn_error *err)
{
    (void)n_ff, (void)err;
    nn_node_set_output_shape(node, &ff[0]);
    return NN_OK;
}

static int forward(nn_node *node, const nn_tensor *ff, int n_ff,
                   const nn_tensor *fb, int n_fb, nn_tensor *out, nn_ctx *ctx)
{
    (void)node, (void)ff, (void)n_ff, (void)fb, (void)n_fb, (void)out;
    (void)ctx;
    return NN_OK;
}

static const nn_node_type fresh = {
    .api_version = NN_API_VERSION, .name = "FreshType", .init_ff = init_ff,
    .forward = forward};
static const nn_node_type taken = {
    .api_version = NN_API_VERSION, .name = "Dense", .init_ff = init_ff,
    .forward = forward};

NN_PLUGIN_EXPORT_VERSION;

NN_PLUGIN_EXPORT int nerved_plugin_init(nn_registry *reg, nn_error *err)
{
    int rc = nn_register_type(reg, &fresh, err);
    return rc ? rc : nn_register_type(reg, &taken, err);
}
