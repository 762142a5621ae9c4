/*
 * guide_nodes.c — the four node types of BrainPy's node-customization guide,
 * written as a nerved plugin with nothing but the public node API (nn.h):
 *
 *   DotNode(num_unit, W_initializer)          y = concat(ff) · W
 *   VRNN(num_unit, wi_initializer, wr_initializer)
 *                                             s = concat(ff) · wi + s · wr
 *   FeedBackDotNode(num_unit, W_initializer)  y = concat(ff) · Wff
 *                                                 (+ concat(fb) · Wfb)
 *   GuideDropout(prob, seed)                  keep with probability prob,
 *                                             scale by 1/prob, in training
 *
 * Build it outside the source tree with one line:
 *   cc -shared -fPIC -o libguide_nodes.so guide_nodes.c \
 *      $(pkg-config --cflags --libs nerved)
 * and load it with `nerved --plugin ./libguide_nodes.so`.
 */
#include <nn.h>

#include <cblas.h>
#include <string.h>

/* ------------------------------------------------------------- helpers */

/* out (+)= x · W[row_offset : row_offset + cols(x), :], treating every
 * leading axis of x as rows. The guide concatenates the inputs first; taking
 * each input against its own block of rows of W gives the same product
 * without copying the inputs into one buffer. */
static void matmul_block(const nn_tensor *x, const nn_tensor *w, int row_offset,
                         float beta, nn_tensor *out)
{
    int rows = (int)nn_tensor_rows(x), cols = nn_tensor_cols(x);
    int units = w->shape.dims[1];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, units, cols,
                1.0f, x->data, cols, w->data + (size_t)row_offset * units,
                units, beta, out->data, units);
}

/* out = concat(in) · W, input by input. */
static void matmul_concat(const nn_tensor *in, int n, const nn_tensor *w,
                          float beta, nn_tensor *out)
{
    int offset = 0;
    for (int i = 0; i < n; i++) {
        matmul_block(&in[i], w, offset, i == 0 ? beta : 1.0f, out);
        offset += nn_tensor_cols(&in[i]);
    }
}

/* Creates an (inputs, num_unit) weight after checking that the inputs can
 * be concatenated; sets the output shape to lead + (num_unit,) when asked. */
static nn_tensor *dot_weight(nn_node *node, const char *weight,
                             const char *init_param, const nn_shape *in, int n,
                             int set_output, nn_error *err)
{
    nn_shape lead;
    int total;
    if (nn_check_shape_consistency(in, n, NULL, &lead, NULL, &total, err))
        return NULL;
    int units = (int)nn_node_param_int(node, "num_unit");
    nn_shape shape = nn_shape2(total, units);
    nn_init init = nn_node_param_init(node, init_param);
    nn_tensor *w = nn_node_add_weight(node, weight, &shape, &init, 1, err);
    if (w && set_output) {
        lead.dims[lead.ndim++] = units;
        nn_node_set_output_shape(node, &lead);
    }
    return w;
}

/* --------------------------------------------------------------- DotNode */

typedef struct dot_node {
    nn_tensor *W;
} dot_node;

static const nn_param_def dot_params[] = {
    {"num_unit", NN_PARAM_INT, NULL, 1, 1 << 20, NULL,
     "number of output features"},
    {"W_initializer", NN_PARAM_INIT, "Normal", 0, 0, NULL,
     "initializer of W, shaped (inputs, num_unit)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static int dot_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                       nn_error *err)
{
    dot_node *self = nn_node_priv(node);
    self->W = dot_weight(node, "W", "W_initializer", ff, n_ff, 1, err);
    return self->W ? NN_OK : err->code;
}

static int dot_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                       const nn_tensor *fb, int n_fb, nn_tensor *out,
                       nn_ctx *ctx)
{
    (void)fb, (void)n_fb, (void)ctx;
    const dot_node *self = nn_node_priv_const(node);
    matmul_concat(ff, n_ff, self->W, 0.0f, out);
    return NN_OK;
}

static const nn_node_type dot_type = {
    .api_version = NN_API_VERSION,
    .name = "DotNode",
    .doc = "the guide's DotNode: concat(ff) · W, no feedback",
    .flags = NN_TYPE_TRAINABLE,
    .params = dot_params,
    .priv_size = sizeof(dot_node),
    .init_ff = dot_init_ff,
    /* No init_fb: the host refuses feedback edges into a DotNode. */
    .forward = dot_forward,
};

/* ------------------------------------------------------------------ VRNN */

typedef struct vrnn {
    nn_tensor *wi, *wr;
    int state; /* index of "state" in ctx->state */
} vrnn;

static const nn_param_def vrnn_params[] = {
    {"num_unit", NN_PARAM_INT, NULL, 1, 1 << 20, NULL, "state size"},
    {"wi_initializer", NN_PARAM_INIT, "XavierNormal", 0, 0, NULL,
     "input weights, shaped (inputs, num_unit)"},
    {"wr_initializer", NN_PARAM_INIT, "XavierNormal", 0, 0, NULL,
     "recurrent weights, shaped (num_unit, num_unit)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static int vrnn_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                        nn_error *err)
{
    vrnn *self = nn_node_priv(node);
    self->wi = dot_weight(node, "wi", "wi_initializer", ff, n_ff, 1, err);
    if (!self->wi)
        return err->code;
    int units = (int)nn_node_param_int(node, "num_unit");
    if (ff[0].ndim != 1)
        return nn_error_set(err, NN_ERR_SHAPE, "VRNN takes (batch, features) "
                            "inputs");
    nn_shape square = nn_shape2(units, units);
    nn_init init = nn_node_param_init(node, "wr_initializer");
    self->wr = nn_node_add_weight(node, "wr", &square, &init, 1, err);
    if (!self->wr)
        return err->code;
    /* The state lives in each session, not in the node: sessions of one
     * network run at once and must not share it. */
    nn_shape state = nn_shape1(units);
    self->state = nn_node_add_state(node, "state", &state, err);
    if (self->state < 0)
        return self->state;
    /* state · wr cannot be written over the state it reads. */
    nn_node_set_work(node, (size_t)units);
    return NN_OK;
}

/* init_state(num_batch): the host has made a zeroed (num_batch, num_unit)
 * tensor, which is what the guide's bm.zeros((num_batch, num_unit)) does. */
static int vrnn_init_state(nn_node *node, nn_tensor *state, int n_state,
                           int num_batch, nn_error *err)
{
    (void)node, (void)num_batch, (void)err;
    for (int i = 0; i < n_state; i++)
        nn_tensor_zero(&state[i]);
    return NN_OK;
}

static int vrnn_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                        const nn_tensor *fb, int n_fb, nn_tensor *out,
                        nn_ctx *ctx)
{
    (void)fb, (void)n_fb;
    const vrnn *self = nn_node_priv_const(node);
    nn_tensor *state = &ctx->state[self->state];
    nn_tensor next = nn_tensor_view(ctx->work, &state->shape);
    matmul_concat(ff, n_ff, self->wi, 0.0f, &next);  /* ff · wi          */
    matmul_block(state, self->wr, 0, 1.0f, &next);  /*      + state · wr */
    memcpy(state->data, next.data, nn_tensor_numel(state) * sizeof(float));
    memcpy(out->data, next.data, nn_tensor_numel(out) * sizeof(float));
    return NN_OK;
}

static const nn_node_type vrnn_type = {
    .api_version = NN_API_VERSION,
    .name = "VRNN",
    .doc = "the guide's VRNN: state = concat(ff) · wi + state · wr",
    .flags = NN_TYPE_TRAINABLE | NN_TYPE_STATEFUL,
    .params = vrnn_params,
    .priv_size = sizeof(vrnn),
    .init_ff = vrnn_init_ff,
    .init_state = vrnn_init_state,
    .forward = vrnn_forward,
};

/* -------------------------------------------------------- FeedBackDotNode */

typedef struct fb_dot_node {
    nn_tensor *Wff, *Wfb;
} fb_dot_node;

static int fb_dot_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                          nn_error *err)
{
    fb_dot_node *self = nn_node_priv(node);
    self->Wff = dot_weight(node, "Wff", "W_initializer", ff, n_ff, 1, err);
    return self->Wff ? NN_OK : err->code;
}

/* Called only when the node receives feedback, after every init_ff. */
static int fb_dot_init_fb(nn_node *node, const nn_shape *fb, int n_fb,
                          nn_error *err)
{
    fb_dot_node *self = nn_node_priv(node);
    self->Wfb = dot_weight(node, "Wfb", "W_initializer", fb, n_fb, 0, err);
    return self->Wfb ? NN_OK : err->code;
}

static int fb_dot_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                          const nn_tensor *fb, int n_fb, nn_tensor *out,
                          nn_ctx *ctx)
{
    (void)ctx;
    const fb_dot_node *self = nn_node_priv_const(node);
    matmul_concat(ff, n_ff, self->Wff, 0.0f, out);
    if (n_fb > 0) /* the sender's previous output; zeros at the start */
        matmul_concat(fb, n_fb, self->Wfb, 1.0f, out);
    return NN_OK;
}

static const nn_node_type fb_dot_type = {
    .api_version = NN_API_VERSION,
    .name = "FeedBackDotNode",
    .doc = "the guide's FeedBackDotNode: concat(ff) · Wff + concat(fb) · Wfb",
    .flags = NN_TYPE_TRAINABLE,
    .params = dot_params,
    .priv_size = sizeof(fb_dot_node),
    .init_ff = fb_dot_init_ff,
    .init_fb = fb_dot_init_fb,
    .forward = fb_dot_forward,
};

/* ---------------------------------------------------------- GuideDropout */

static const nn_param_def dropout_params[] = {
    {"prob", NN_PARAM_FLOAT, NULL, 1e-6, 1.0, NULL,
     "probability of keeping each value"},
    {"seed", NN_PARAM_INT, "-1", -1, 4294967295.0, NULL,
     "fixes the mask stream of every session; -1 derives it from the "
     "session"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static int dropout_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                           nn_error *err)
{
    if (n_ff != 1)
        return nn_error_set(err, NN_ERR_SHAPE, "GuideDropout takes exactly one "
                            "feedforward input, got %d", n_ff);
    nn_node_set_output_shape(node, &ff[0]);
    return NN_OK;
}

static int dropout_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                           const nn_tensor *fb, int n_fb, nn_tensor *out,
                           nn_ctx *ctx)
{
    (void)n_ff, (void)fb, (void)n_fb;
    size_t n = nn_tensor_numel(out);
    if (!ctx->train) { /* evaluation: the identity */
        memcpy(out->data, ff[0].data, n * sizeof(float));
        return NN_OK;
    }
    long seed = nn_node_param_int(node, "seed");
    if (seed >= 0 && ctx->step == 0) /* the stream restarts with the session */
        nn_rng_seed(ctx->rng, nn_seed_derive((uint64_t)seed,
                                             nn_node_name(node)));
    float prob = (float)nn_node_param_float(node, "prob");
    for (size_t i = 0; i < n; i++)
        out->data[i] = nn_rng_bernoulli(ctx->rng, prob) ? ff[0].data[i] / prob
                                                        : 0.0f;
    return NN_OK;
}

static const nn_node_type dropout_type = {
    .api_version = NN_API_VERSION,
    .name = "GuideDropout",
    .doc = "the guide's Dropout: keeps with probability prob in training",
    .flags = NN_TYPE_TRAINABLE,
    .params = dropout_params,
    .init_ff = dropout_init_ff,
    .forward = dropout_forward,
};

/* ------------------------------------------------------------ entry point */

NN_PLUGIN_EXPORT_VERSION;

NN_PLUGIN_EXPORT int nerved_plugin_init(nn_registry *reg, nn_error *err)
{
    const nn_node_type *types[] = {&dot_type, &vrnn_type, &fb_dot_type,
                                   &dropout_type};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        int rc = nn_register_type(reg, types[i], err);
        if (rc != NN_OK)
            return rc;
    }
    return NN_OK;
}
