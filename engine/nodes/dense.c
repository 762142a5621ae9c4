/*
 * dense.c — Dense: y = concat(ff) · W + b (+ concat(fb) · Wfb).
 * The guide's DotNode and FeedBackDotNode in one type. Weights are named
 * W, b and Wfb so the linear-readout trainers can find them.
 */
#include "builtins.h"
#include "matmul.h"

#include <stdio.h>

typedef struct dense {
    nn_tensor *W, *b, *Wfb;
    int w_index, b_index, wfb_index; /* positions in ctx->grad */
    int units;
} dense;

static const nn_param_def dense_params[] = {
    {"num_unit", NN_PARAM_INT, NULL, 1, 1 << 24, NULL,
     "number of output features"},
    {"W_initializer", NN_PARAM_INIT, "XavierNormal", 0, 0, NULL,
     "initializer of W (inputs, num_unit) and Wfb"},
    {"b_initializer", NN_PARAM_INIT, "Zeros", 0, 0, NULL,
     "initializer of the bias b (num_unit)"},
    {"use_bias", NN_PARAM_BOOL, "true", 0, 0, NULL, "add the bias b"},
    {"feedback", NN_PARAM_BOOL, "true", 0, 0, NULL,
     "accept feedback inputs (adding concat(fb) · Wfb); false refuses them, "
     "as the guide's DotNode does"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

/* Checks that inputs can be concatenated, naming them by their nodes. */
int nn_inputs_consistent(nn_node *node, const nn_shape *in, int n,
                         int feedback, nn_shape *lead, int *total,
                         nn_error *err)
{
    const char *labels[16];
    int named = n <= 16;
    for (int i = 0; named && i < n; i++) {
        nn_node *src = feedback ? nn_node_fb_at(node, i) : nn_node_ff_at(node, i);
        labels[i] = src ? nn_node_name(src) : "?";
    }
    return nn_check_shape_consistency(in, n, named ? labels : NULL, lead, NULL,
                                      total, err);
}

nn_tensor *nn_add_init_weight(nn_node *node, const char *name, nn_shape shape,
                              const char *init_param, int *index,
                              nn_error *err)
{
    nn_init init = nn_node_param_init(node, init_param);
    nn_tensor *t = nn_node_add_weight(node, name, &shape, &init, 1, err);
    *index = nn_node_weight_count(node) - 1;
    return t;
}

int nn_flat_inputs(nn_node *node, const nn_shape *in, int n, int feedback,
                   int *total, nn_error *err)
{
    nn_shape lead;
    int rc = nn_inputs_consistent(node, in, n, feedback, &lead, total, err);
    if (rc != NN_OK)
        return rc;
    if (lead.ndim != 0) {
        char buf[64];
        return nn_error_set(err, NN_ERR_SHAPE, "a %s takes (batch, features) "
                            "%s; got per-sample shape %s",
                            nn_node_type_of(node)->name,
                            feedback ? "feedback" : "inputs",
                            nn_shape_str(&in[0], buf, sizeof buf));
    }
    return NN_OK;
}

static int dense_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                         nn_error *err)
{
    dense *self = nn_node_priv(node);
    nn_shape lead;
    int total;
    int rc = nn_inputs_consistent(node, ff, n_ff, 0, &lead, &total, err);
    if (rc != NN_OK)
        return rc;
    self->units = (int)nn_node_param_int(node, "num_unit");
    nn_shape w = nn_shape2(total, self->units);
    nn_init init = nn_node_param_init(node, "W_initializer");
    if (!(self->W = nn_node_add_weight(node, "W", &w, &init, 1, err)))
        return err->code;
    self->w_index = nn_node_weight_count(node) - 1;
    self->b_index = -1;
    self->wfb_index = -1;
    if (nn_node_param_bool(node, "use_bias")) {
        nn_shape b = nn_shape1(self->units);
        nn_init binit = nn_node_param_init(node, "b_initializer");
        if (!(self->b = nn_node_add_weight(node, "b", &b, &binit, 1, err)))
            return err->code;
        self->b_index = nn_node_weight_count(node) - 1;
    }
    lead.dims[lead.ndim++] = self->units;
    nn_node_set_output_shape(node, &lead);
    return NN_OK;
}

static int dense_init_fb(nn_node *node, const nn_shape *fb, int n_fb,
                         nn_error *err)
{
    dense *self = nn_node_priv(node);
    if (!nn_node_param_bool(node, "feedback"))
        return nn_error_set(err, NN_ERR_UNSUPPORTED, "a %s with "
                            "feedback=false does not support feedback",
                            nn_node_type_of(node)->name);
    nn_shape lead;
    int total;
    int rc = nn_inputs_consistent(node, fb, n_fb, 1, &lead, &total, err);
    if (rc != NN_OK)
        return rc;
    nn_shape out = nn_node_output_shape(node);
    nn_shape out_lead = nn_shape_make(out.ndim - 1, out.dims);
    if (!nn_shape_equal(&lead, &out_lead)) {
        char a[64], b[64];
        return nn_error_set(err, NN_ERR_SHAPE, "feedback leading shape %s does "
                            "not match the output's %s",
                            nn_shape_str(&lead, a, sizeof a),
                            nn_shape_str(&out_lead, b, sizeof b));
    }
    nn_shape w = nn_shape2(total, self->units);
    nn_init init = nn_node_param_init(node, "W_initializer");
    if (!(self->Wfb = nn_node_add_weight(node, "Wfb", &w, &init, 1, err)))
        return err->code;
    self->wfb_index = nn_node_weight_count(node) - 1;
    return NN_OK;
}

static int dense_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                         const nn_tensor *fb, int n_fb, nn_tensor *out,
                         nn_ctx *ctx)
{
    (void)ctx;
    const dense *self = nn_node_priv_const(node);
    float beta = 0.0f;
    if (self->b) {
        nn_rows_set(out->data, nn_tensor_rows(out), self->b->data, self->units);
        beta = 1.0f;
    }
    nn_matmul_concat(ff, n_ff, self->W->data, self->units, beta, out->data);
    if (n_fb)
        nn_matmul_concat(fb, n_fb, self->Wfb->data, self->units, 1.0f,
                         out->data);
    return NN_OK;
}

static int dense_backward(nn_node *node, const nn_tensor *ff, int n_ff,
                          const nn_tensor *fb, int n_fb, const nn_tensor *out,
                          const nn_tensor *dout, nn_tensor *dff,
                          nn_tensor *dfb, nn_ctx *ctx)
{
    const dense *self = nn_node_priv_const(node);
    nn_matmul_concat_backward(ff, n_ff, self->W->data, self->units,
                              dout->data, dff, ctx->grad[self->w_index].data);
    if (self->b)
        nn_rows_sum_into(dout->data, nn_tensor_rows(out), self->units,
                         ctx->grad[self->b_index].data);
    if (n_fb)
        nn_matmul_concat_backward(fb, n_fb, self->Wfb->data, self->units,
                                  dout->data, dfb,
                                  ctx->grad[self->wfb_index].data);
    return NN_OK;
}

const nn_node_type nn_type_dense = {
    .api_version = NN_API_VERSION,
    .name = "Dense",
    .doc = "y = concat(ff) · W + b (+ concat(fb) · Wfb)",
    .flags = NN_TYPE_TRAINABLE | NN_TYPE_LINEAR | NN_TYPE_ROWWISE,
    .params = dense_params,
    .priv_size = sizeof(dense),
    .init_ff = dense_init_ff,
    .init_fb = dense_init_fb,
    .forward = dense_forward,
    .backward = dense_backward,
};

/* BrainPy's and ReservoirPy's readout: a Dense that declares itself for the
 * ridge and RLS trainers (they fit any NN_TYPE_LINEAR type; Dense is one
 * too) and always takes feedback. Its own name says what the node is for in
 * a reservoir graph, and its weights start at zero, as a readout's do
 * before it is fitted. */
static const nn_param_def readout_params[] = {
    {"num_unit", NN_PARAM_INT, NULL, 1, 1 << 24, NULL,
     "number of output features"},
    {"W_initializer", NN_PARAM_INIT, "Zeros", 0, 0, NULL,
     "initializer of W (inputs, num_unit) and Wfb"},
    {"b_initializer", NN_PARAM_INIT, "Zeros", 0, 0, NULL,
     "initializer of the bias b (num_unit)"},
    {"use_bias", NN_PARAM_BOOL, "true", 0, 0, NULL, "add the bias b"},
    {"feedback", NN_PARAM_BOOL, "true", 0, 0, NULL,
     "accept feedback inputs (adding concat(fb) · Wfb)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

const nn_node_type nn_type_linear_readout = {
    .api_version = NN_API_VERSION,
    .name = "LinearReadout",
    .doc = "a linear readout y = concat(ff) · W + b (+ concat(fb) · Wfb), "
           "fitted by ridge or rls (or bptt)",
    .flags = NN_TYPE_TRAINABLE | NN_TYPE_LINEAR | NN_TYPE_ROWWISE,
    .params = readout_params,
    .priv_size = sizeof(dense),
    .init_ff = dense_init_ff,
    .init_fb = dense_init_fb,
    .forward = dense_forward,
    .backward = dense_backward,
};
