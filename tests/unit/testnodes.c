#include "testnodes.h"

#include <string.h>

static const nn_param_def source_params[] = {
    {"shape", NN_PARAM_SHAPE, NULL, 0, 0, NULL, "per-sample shape"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static int source_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                          nn_error *err)
{
    (void)ff, (void)n_ff, (void)err;
    nn_shape s = nn_node_param_shape(node, "shape");
    nn_node_set_output_shape(node, &s);
    return NN_OK;
}

static int nothing_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                           const nn_tensor *fb, int n_fb, nn_tensor *out,
                           nn_ctx *ctx)
{
    (void)node, (void)ff, (void)n_ff, (void)fb, (void)n_fb, (void)out;
    (void)ctx;
    return NN_OK;
}

static const nn_node_type t_source = {
    NN_API_VERSION, "TIn", "test input", NN_TYPE_SOURCE, source_params, 0,
    source_init_ff, NULL, NULL, nothing_forward, NULL, NULL, NULL, NULL, NULL};

static const nn_param_def add_params[] = {
    {"gain", NN_PARAM_FLOAT, "1", -10, 10, NULL, "feedback gain"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static int same_shapes(nn_node *node, const nn_shape *in, int n, nn_error *err)
{
    for (int i = 1; i < n; i++)
        if (!nn_shape_equal(&in[i], &in[0]))
            return nn_error_set(err, NN_ERR_SHAPE, "inputs of '%s' differ in "
                                "shape", nn_node_name(node));
    return NN_OK;
}

static int add_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                       nn_error *err)
{
    int rc = same_shapes(node, ff, n_ff, err);
    if (rc == NN_OK)
        nn_node_set_output_shape(node, &ff[0]);
    return rc;
}

static int add_init_fb(nn_node *node, const nn_shape *fb, int n_fb,
                       nn_error *err)
{
    int rc = same_shapes(node, fb, n_fb, err);
    nn_shape out = nn_node_output_shape(node);
    if (rc == NN_OK && !nn_shape_equal(&fb[0], &out))
        rc = nn_error_set(err, NN_ERR_SHAPE, "feedback must be shaped like "
                          "the output");
    return rc;
}

static int add_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                       const nn_tensor *fb, int n_fb, nn_tensor *out,
                       nn_ctx *ctx)
{
    (void)ctx;
    float gain = (float)nn_node_param_float(node, "gain");
    size_t n = nn_tensor_numel(out);
    for (size_t j = 0; j < n; j++) {
        float v = 0;
        for (int i = 0; i < n_ff; i++)
            v += ff[i].data[j];
        for (int i = 0; i < n_fb; i++)
            v += gain * fb[i].data[j];
        out->data[j] = v;
    }
    return NN_OK;
}

static int add_backward(nn_node *node, const nn_tensor *ff, int n_ff,
                        const nn_tensor *fb, int n_fb, const nn_tensor *out,
                        const nn_tensor *dout, nn_tensor *dff, nn_tensor *dfb,
                        nn_ctx *ctx)
{
    (void)ff, (void)fb, (void)ctx;
    float gain = (float)nn_node_param_float(node, "gain");
    size_t n = nn_tensor_numel(out);
    for (size_t j = 0; j < n; j++) {
        for (int i = 0; dff && i < n_ff; i++)
            dff[i].data[j] += dout->data[j];
        for (int i = 0; dfb && i < n_fb; i++)
            dfb[i].data[j] += gain * dout->data[j];
    }
    return NN_OK;
}

static const nn_node_type t_add = {
    NN_API_VERSION, "TAdd", "sum with feedback", 0, add_params, 0,
    add_init_ff, add_init_fb, NULL, add_forward, add_backward, NULL, NULL,
    NULL, NULL};

static const nn_node_type t_add_nofb = {
    NN_API_VERSION, "TNoFb", "sum without feedback", 0, NULL, 0,
    add_init_ff, NULL, NULL, add_forward, add_backward, NULL, NULL,
    NULL, NULL};

static int cat_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                       nn_error *err)
{
    const char *labels[8];
    for (int i = 0; i < n_ff && i < 8; i++)
        labels[i] = nn_node_name(nn_node_ff_at(node, i));
    nn_shape lead;
    int total;
    int rc = nn_check_shape_consistency(ff, n_ff, n_ff <= 8 ? labels : NULL,
                                        &lead, NULL, &total, err);
    if (rc != NN_OK)
        return rc;
    lead.dims[lead.ndim++] = total;
    nn_node_set_output_shape(node, &lead);
    return NN_OK;
}

static int cat_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                       const nn_tensor *fb, int n_fb, nn_tensor *out,
                       nn_ctx *ctx)
{
    (void)node, (void)fb, (void)n_fb;
    return nn_concat_last(ff, n_ff, out, ctx->err);
}

static const nn_node_type t_cat = {
    NN_API_VERSION, "TCat", "concatenate", 0, NULL, 0,
    cat_init_ff, NULL, NULL, cat_forward, NULL, NULL, NULL, NULL, NULL};

static const nn_param_def acc_params[] = {
    {"start", NN_PARAM_FLOAT, "0", 0, 0, NULL, "initial state"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static int acc_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                       nn_error *err)
{
    if (n_ff != 1)
        return nn_error_set(err, NN_ERR_SHAPE, "one input only");
    nn_node_set_output_shape(node, &ff[0]);
    int idx = nn_node_add_state(node, "s", &ff[0], err);
    return idx < 0 ? idx : NN_OK;
}

static int acc_init_state(nn_node *node, nn_tensor *state, int n_state,
                          int num_batch, nn_error *err)
{
    (void)n_state, (void)err, (void)num_batch;
    float start = (float)nn_node_param_float(node, "start");
    for (size_t j = 0; j < nn_tensor_numel(&state[0]); j++)
        state[0].data[j] = start;
    return NN_OK;
}

static int acc_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                       const nn_tensor *fb, int n_fb, nn_tensor *out,
                       nn_ctx *ctx)
{
    (void)node, (void)n_ff, (void)fb, (void)n_fb;
    nn_tensor *s = &ctx->state[0];
    for (size_t j = 0; j < nn_tensor_numel(out); j++) {
        s->data[j] += ff[0].data[j];
        out->data[j] = s->data[j];
    }
    return NN_OK;
}

/* s' = s + x, out = s': d s = d s' + d out, d x = the same. */
static int acc_backward(nn_node *node, const nn_tensor *ff, int n_ff,
                        const nn_tensor *fb, int n_fb, const nn_tensor *out,
                        const nn_tensor *dout, nn_tensor *dff, nn_tensor *dfb,
                        nn_ctx *ctx)
{
    (void)node, (void)ff, (void)n_ff, (void)fb, (void)n_fb, (void)dfb;
    nn_tensor *ds = &ctx->dstate[0];
    for (size_t j = 0; j < nn_tensor_numel(out); j++) {
        float g = ds->data[j] + dout->data[j];
        ds->data[j] = g;
        if (dff)
            dff[0].data[j] += g;
    }
    return NN_OK;
}

static const nn_node_type t_acc = {
    NN_API_VERSION, "TAcc", "accumulator", NN_TYPE_STATEFUL, acc_params, 0,
    acc_init_ff, NULL, acc_init_state, acc_forward, acc_backward, NULL, NULL,
    NULL, NULL};

static int weighted_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                            nn_error *err)
{
    (void)n_ff;
    nn_init init;
    if (nn_init_parse("Normal(0, 1)", &init, err) != NN_OK)
        return err->code;
    nn_tensor **w = nn_node_priv(node);
    if (!(*w = nn_node_add_weight(node, "w", &ff[0], &init, 1, err)))
        return err->code;
    nn_node_set_output_shape(node, &ff[0]);
    return NN_OK;
}

static int weighted_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                            const nn_tensor *fb, int n_fb, nn_tensor *out,
                            nn_ctx *ctx)
{
    (void)n_ff, (void)fb, (void)n_fb, (void)ctx;
    nn_tensor *const *w = nn_node_priv_const(node);
    size_t row = nn_tensor_numel(*w);
    for (size_t j = 0; j < nn_tensor_numel(out); j++)
        out->data[j] = ff[0].data[j] * (*w)->data[j % row];
    return NN_OK;
}

static int weighted_backward(nn_node *node, const nn_tensor *ff, int n_ff,
                             const nn_tensor *fb, int n_fb,
                             const nn_tensor *out, const nn_tensor *dout,
                             nn_tensor *dff, nn_tensor *dfb, nn_ctx *ctx)
{
    (void)n_ff, (void)fb, (void)n_fb, (void)dfb;
    nn_tensor *const *w = nn_node_priv_const(node);
    size_t row = nn_tensor_numel(*w);
    for (size_t j = 0; j < nn_tensor_numel(out); j++) {
        if (dff)
            dff[0].data[j] += dout->data[j] * (*w)->data[j % row];
        ctx->grad[0].data[j % row] += dout->data[j] * ff[0].data[j];
    }
    return NN_OK;
}

static const nn_node_type t_weighted = {
    NN_API_VERSION, "TWeighted", "elementwise weights", NN_TYPE_TRAINABLE,
    NULL, sizeof(nn_tensor *), weighted_init_ff, NULL, NULL,
    weighted_forward, weighted_backward, NULL, NULL, NULL, NULL};

int tn_register_all(nn_registry *reg, nn_error *err)
{
    const nn_node_type *types[] = {&t_source, &t_add, &t_add_nofb, &t_cat,
                                   &t_acc, &t_weighted};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        int rc = nn_register_type(reg, types[i], err);
        if (rc != NN_OK)
            return rc;
    }
    return NN_OK;
}
