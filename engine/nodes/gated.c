/*
 * gated.c — the gated recurrent cells LSTM and GRU, with PyTorch's
 * equations and gate order, so a trained torch.nn.LSTM or torch.nn.GRU maps
 * onto them weight for weight:
 *
 *   Wi (inputs, G*num_unit) = weight_ih_l0ᵀ   Wh (num_unit, G*num_unit) =
 *   weight_hh_l0ᵀ   bi = bias_ih_l0   bh = bias_hh_l0
 *
 * with the gates in blocks of num_unit columns: LSTM i, f, g, o (G = 4),
 * GRU r, z, n (G = 3). Feedback adds concat(fb) · Wfb to the input side of
 * the gates, where concat(ff) · Wi goes.
 *
 * bidirectional is PyTorch's bidirectional=True: Wi_reverse = weight_ih_l0_
 * reverseᵀ and so on run the sequence from its end, the output at t is
 * concat(h_t, h_reverse_t), and the node runs over whole sequences only
 * (bidir.c).
 */
#include "bidir.h"
#include "builtins.h"
#include "matmul.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct gated {
    nn_tensor *Wi, *Wh, *bi, *bh, *Wfb;
    int wi_index, wh_index, bi_index, bh_index, wfb_index;
    int units;
    int width; /* gates * units: the columns of every weight */
} gated;

/* The node's data: the forward direction, and the reverse one when
 * bidirectional. */
typedef struct gated_node {
    gated dir[2];
    int bidirectional;
    int n_state;      /* of the cell: LSTM h, c; GRU h */
    size_t step_work; /* of the cell, floats per row */
} gated_node;

#define BIDIRECTIONAL_PARAM(type)                                            \
    {"bidirectional", NN_PARAM_BOOL, "false", 0, 0, NULL,                    \
     "as torch.nn." type "'s bidirectional=True: weights Wi_reverse, "       \
     "Wh_reverse, bi_reverse, bh_reverse run the sequence backwards and "    \
     "the output is concat(h, h_reverse), 2*num_unit; whole sequences only " \
     "(runs, not steps), no feedback"}

static const nn_param_def lstm_params[] = {
    {"num_unit", NN_PARAM_INT, NULL, 1, 1 << 20, NULL,
     "size of the hidden state h and the cell state c"},
    {"Wi_initializer", NN_PARAM_INIT, "XavierNormal", 0, 0, NULL,
     "input weights Wi (inputs, 4*num_unit), gates i, f, g, o; and Wfb"},
    {"Wh_initializer", NN_PARAM_INIT, "Orthogonal", 0, 0, NULL,
     "recurrent weights Wh (num_unit, 4*num_unit), gates i, f, g, o"},
    {"b_initializer", NN_PARAM_INIT, "Zeros", 0, 0, NULL,
     "biases bi and bh (4*num_unit each), as PyTorch's bias_ih and bias_hh"},
    {"use_bias", NN_PARAM_BOOL, "true", 0, 0, NULL, "add the biases bi and bh"},
    {"forget_bias", NN_PARAM_FLOAT, "0", -100, 100, NULL,
     "added to the forget gate's block of bi once, at initialisation: 0 as "
     "PyTorch, 1 to make the cell remember from the start (Jozefowicz et "
     "al., 2015)"},
    BIDIRECTIONAL_PARAM("LSTM"),
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static const nn_param_def gru_params[] = {
    {"num_unit", NN_PARAM_INT, NULL, 1, 1 << 20, NULL, "size of the state h"},
    {"Wi_initializer", NN_PARAM_INIT, "XavierNormal", 0, 0, NULL,
     "input weights Wi (inputs, 3*num_unit), gates r, z, n; and Wfb"},
    {"Wh_initializer", NN_PARAM_INIT, "Orthogonal", 0, 0, NULL,
     "recurrent weights Wh (num_unit, 3*num_unit), gates r, z, n"},
    {"b_initializer", NN_PARAM_INIT, "Zeros", 0, 0, NULL,
     "biases bi and bh (3*num_unit each), as PyTorch's bias_ih and bias_hh; "
     "bh's n block is the one scaled by r"},
    {"use_bias", NN_PARAM_BOOL, "true", 0, 0, NULL, "add the biases bi and bh"},
    BIDIRECTIONAL_PARAM("GRU"),
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

/* One direction's weights, named with suffix ("" or "_reverse"). */
static int add_weights(nn_node *node, gated *self, int total,
                       const char *suffix, nn_error *err)
{
    char name[NN_NAME_MAX];
#define NAMED(base) (snprintf(name, sizeof name, "%s%s", base, suffix), name)
    self->bi_index = self->bh_index = self->wfb_index = -1;
    if (!(self->Wi = nn_add_init_weight(node, NAMED("Wi"),
                                        nn_shape2(total, self->width),
                                        "Wi_initializer", &self->wi_index,
                                        err)) ||
        !(self->Wh = nn_add_init_weight(node, NAMED("Wh"),
                                        nn_shape2(self->units, self->width),
                                        "Wh_initializer", &self->wh_index,
                                        err)))
        return err->code;
    if (nn_node_param_bool(node, "use_bias") &&
        (!(self->bi = nn_add_init_weight(node, NAMED("bi"),
                                         nn_shape1(self->width),
                                         "b_initializer", &self->bi_index,
                                         err)) ||
         !(self->bh = nn_add_init_weight(node, NAMED("bh"),
                                         nn_shape1(self->width),
                                         "b_initializer", &self->bh_index,
                                         err))))
        return err->code;
#undef NAMED
    return NN_OK;
}

/* The shared part of init_ff: weights for `gates` gates (both directions
 * when bidirectional) and the states h (and c for LSTM: n_state 2);
 * work_per_unit floats of scratch per unit and batch row. */
static int gated_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                         int gates, int n_state, size_t work_per_unit,
                         nn_error *err)
{
    gated_node *gn = nn_node_priv(node);
    gated *self = &gn->dir[0];
    int total;
    int rc = nn_flat_inputs(node, ff, n_ff, 0, &total, err);
    if (rc != NN_OK)
        return rc;
    self->units = (int)nn_node_param_int(node, "num_unit");
    self->width = gates * self->units;
    gn->bidirectional = nn_node_param_bool(node, "bidirectional");
    gn->n_state = n_state;
    gn->step_work = work_per_unit * (size_t)self->units;
    rc = add_weights(node, self, total, "", err);
    if (rc == NN_OK && gn->bidirectional) {
        gn->dir[1].units = self->units;
        gn->dir[1].width = self->width;
        rc = add_weights(node, &gn->dir[1], total, "_reverse", err);
    }
    if (rc != NN_OK)
        return rc;
    if (gn->bidirectional) {
        nn_bidir_cell cell = {self->units, n_state, gn->step_work, NULL,
                              NULL, {NULL, NULL}};
        nn_node_set_sequence(node, 1);
        nn_node_set_work(node, nn_bidir_work_per_row(&cell));
        nn_shape both = nn_shape1(2 * self->units);
        nn_node_set_output_shape(node, &both);
        return NN_OK;
    }
    static const char *const names[2] = {"h", "c"};
    nn_shape h = nn_shape1(self->units);
    for (int k = 0; k < n_state; k++) {
        rc = nn_node_add_state(node, names[k], &h, err);
        if (rc < 0)
            return rc;
    }
    nn_node_set_work(node, gn->step_work);
    nn_node_set_output_shape(node, &h);
    return NN_OK;
}

static int gated_init_fb(nn_node *node, const nn_shape *fb, int n_fb,
                         nn_error *err)
{
    gated_node *gn = nn_node_priv(node);
    gated *self = &gn->dir[0];
    if (gn->bidirectional)
        return nn_error_set(err, NN_ERR_GRAPH, "a bidirectional %s takes no "
                            "feedback", nn_node_type_of(node)->name);
    int total;
    int rc = nn_flat_inputs(node, fb, n_fb, 1, &total, err);
    if (rc != NN_OK)
        return rc;
    if (!(self->Wfb = nn_add_init_weight(node, "Wfb", nn_shape2(total, self->width),
                                 "Wi_initializer", &self->wfb_index, err)))
        return err->code;
    return NN_OK;
}

/* pre = bi + concat(ff) · Wi + concat(fb) · Wfb: the input side of every
 * gate, (rows, width). */
static void input_side(const gated *self, const nn_tensor *ff, int n_ff,
                       const nn_tensor *fb, int n_fb, size_t rows, float *pre)
{
    if (self->bi)
        nn_rows_set(pre, rows, self->bi->data, self->width);
    else
        memset(pre, 0, rows * (size_t)self->width * sizeof(float));
    nn_matmul_concat(ff, n_ff, self->Wi->data, self->width, 1.0f, pre);
    if (n_fb)
        nn_matmul_concat(fb, n_fb, self->Wfb->data, self->width, 1.0f, pre);
}

/* pre (+)= bh + h · Wh: the recurrent side; accumulate adds onto pre. */
static void hidden_side(const gated *self, const nn_tensor *h, size_t rows,
                        int accumulate, float *pre)
{
    size_t w = (size_t)self->width;
    if (!accumulate)
        memset(pre, 0, rows * w * sizeof(float));
    if (self->bh)
        for (size_t r = 0; r < rows; r++)
            for (size_t j = 0; j < w; j++)
                pre[r * w + j] += self->bh->data[j];
    nn_matmul_concat(h, 1, self->Wh->data, self->width, 1.0f, pre);
}

/* The bias gradients of one step: both biases see the same gate gradient
 * where they are added together. */
static void bias_grads(const gated *self, nn_ctx *ctx, const float *dgi,
                       const float *dgh, size_t rows)
{
    if (!self->bi)
        return;
    nn_rows_sum_into(dgi, rows, self->width, ctx->grad[self->bi_index].data);
    nn_rows_sum_into(dgh, rows, self->width, ctx->grad[self->bh_index].data);
}

static float sigmoid(float x)
{
    /* exp of a positive argument only, so large |x| never overflows. */
    if (x >= 0)
        return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

/* ------------------------------------------------------------------- LSTM */

static int lstm_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                        nn_error *err)
{
    /* Gate pre-activations, and in backward their gradients. */
    int rc = gated_init_ff(node, ff, n_ff, 4, 2, 8, err);
    if (rc != NN_OK)
        return rc;
    gated_node *gn = nn_node_priv(node);
    float forget_bias = (float)nn_node_param_float(node, "forget_bias");
    if (!gn->dir[0].bi && forget_bias != 0)
        return nn_error_set(err, NN_ERR_INVALID, "'forget_bias' goes into the "
                            "bias bi, which use_bias=false leaves out");
    for (int d = 0; d < 1 + gn->bidirectional; d++) {
        gated *self = &gn->dir[d];
        for (int j = 0; self->bi && j < self->units; j++)
            self->bi->data[self->units + j] += forget_bias;
    }
    return NN_OK;
}

/* The four gates of one unit from their pre-activations (block stride u). */
typedef struct lstm_gates {
    float i, f, g, o;
} lstm_gates;

static lstm_gates lstm_activate(const float *pre, int u)
{
    lstm_gates a = {sigmoid(pre[0]), sigmoid(pre[u]), tanhf(pre[2 * u]),
                    sigmoid(pre[3 * u])};
    return a;
}

static int lstm_step(const gated *self, const nn_tensor *ff, int n_ff,
                        const nn_tensor *fb, int n_fb, nn_tensor *out,
                        nn_ctx *ctx)
{
    nn_tensor *h = &ctx->state[0], *c = &ctx->state[1];
    size_t rows = nn_tensor_rows(out), u = (size_t)self->units;
    float *pre = ctx->work;
    input_side(self, ff, n_ff, fb, n_fb, rows, pre);
    hidden_side(self, h, rows, 1, pre);
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < u; j++) {
            lstm_gates a = lstm_activate(pre + r * 4 * u + j, (int)u);
            float *cell = &c->data[r * u + j];
            *cell = a.f * *cell + a.i * a.g;
            out->data[r * u + j] = a.o * tanhf(*cell);
        }
    memcpy(h->data, out->data, nn_tensor_numel(h) * sizeof(float));
    return NN_OK;
}

static int lstm_step_back(const gated *self, const nn_tensor *ff,
                         int n_ff, const nn_tensor *fb, int n_fb,
                         const nn_tensor *out, const nn_tensor *dout,
                         nn_tensor *dff, nn_tensor *dfb, nn_ctx *ctx)
{
    const nn_tensor *h_prev = &ctx->state[0], *c_prev = &ctx->state[1];
    const nn_tensor *c_next = &ctx->state_next[1];
    nn_tensor *dh = &ctx->dstate[0], *dc = &ctx->dstate[1];
    size_t rows = nn_tensor_rows(out), u = (size_t)self->units;
    float *pre = ctx->work, *dpre = ctx->work + rows * 4 * u;
    input_side(self, ff, n_ff, fb, n_fb, rows, pre);
    hidden_side(self, h_prev, rows, 1, pre);
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < u; j++) {
            size_t k = r * u + j, p = r * 4 * u + j;
            lstm_gates a = lstm_activate(pre + p, (int)u);
            float tc = tanhf(c_next->data[k]);
            /* The new h is both the output and the next step's state. */
            float dh_total = dout->data[k] + dh->data[k];
            float dc_total = dc->data[k] + dh_total * a.o * (1 - tc * tc);
            dpre[p] = dc_total * a.g * a.i * (1 - a.i);
            dpre[p + u] = dc_total * c_prev->data[k] * a.f * (1 - a.f);
            dpre[p + 2 * u] = dc_total * a.i * (1 - a.g * a.g);
            dpre[p + 3 * u] = dh_total * tc * a.o * (1 - a.o);
            dc->data[k] = dc_total * a.f;
        }
    nn_matmul_concat_backward(ff, n_ff, self->Wi->data, self->width, dpre, dff,
                              ctx->grad[self->wi_index].data);
    if (n_fb)
        nn_matmul_concat_backward(fb, n_fb, self->Wfb->data, self->width, dpre,
                                  dfb, ctx->grad[self->wfb_index].data);
    bias_grads(self, ctx, dpre, dpre, rows);
    /* d h_prev = dpre · Whᵀ replaces the incoming state gradient. */
    nn_tensor_zero(dh);
    nn_matmul_concat_backward(h_prev, 1, self->Wh->data, self->width, dpre, dh,
                              ctx->grad[self->wh_index].data);
    return NN_OK;
}

/* -------------------------------------------------------------------- GRU */

static int gru_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                       nn_error *err)
{
    /* Input and hidden sides of the gates, and in backward their
     * gradients: the n gate needs the two sides apart. */
    return gated_init_ff(node, ff, n_ff, 3, 1, 12, err);
}

static int gru_step(const gated *self, const nn_tensor *ff, int n_ff,
                        const nn_tensor *fb, int n_fb, nn_tensor *out,
                        nn_ctx *ctx)
{
    nn_tensor *h = &ctx->state[0];
    size_t rows = nn_tensor_rows(out), u = (size_t)self->units;
    float *gi = ctx->work, *gh = ctx->work + rows * 3 * u;
    input_side(self, ff, n_ff, fb, n_fb, rows, gi);
    hidden_side(self, h, rows, 0, gh);
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < u; j++) {
            size_t k = r * u + j, p = r * 3 * u + j;
            float reset = sigmoid(gi[p] + gh[p]);
            float update = sigmoid(gi[p + u] + gh[p + u]);
            float n = tanhf(gi[p + 2 * u] + reset * gh[p + 2 * u]);
            out->data[k] = (1 - update) * n + update * h->data[k];
        }
    memcpy(h->data, out->data, nn_tensor_numel(h) * sizeof(float));
    return NN_OK;
}

static int gru_step_back(const gated *self, const nn_tensor *ff,
                         int n_ff, const nn_tensor *fb, int n_fb,
                         const nn_tensor *out, const nn_tensor *dout,
                         nn_tensor *dff, nn_tensor *dfb, nn_ctx *ctx)
{
    const nn_tensor *h_prev = &ctx->state[0];
    nn_tensor *dh = &ctx->dstate[0];
    size_t rows = nn_tensor_rows(out), u = (size_t)self->units;
    size_t block = rows * 3 * u;
    float *gi = ctx->work, *gh = gi + block, *dgi = gh + block,
          *dgh = dgi + block;
    input_side(self, ff, n_ff, fb, n_fb, rows, gi);
    hidden_side(self, h_prev, rows, 0, gh);
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < u; j++) {
            size_t k = r * u + j, p = r * 3 * u + j;
            float reset = sigmoid(gi[p] + gh[p]);
            float update = sigmoid(gi[p + u] + gh[p + u]);
            float n = tanhf(gi[p + 2 * u] + reset * gh[p + 2 * u]);
            float dh_total = dout->data[k] + dh->data[k];
            float dn = dh_total * (1 - update) * (1 - n * n);
            float dz = dh_total * (h_prev->data[k] - n) * update * (1 - update);
            float dr = dn * gh[p + 2 * u] * reset * (1 - reset);
            dgi[p] = dgh[p] = dr;
            dgi[p + u] = dgh[p + u] = dz;
            dgi[p + 2 * u] = dn;
            dgh[p + 2 * u] = dn * reset;
            /* The direct path h' = ... + z * h; Wh's path is added below. */
            dh->data[k] = dh_total * update;
        }
    nn_matmul_concat_backward(ff, n_ff, self->Wi->data, self->width, dgi, dff,
                              ctx->grad[self->wi_index].data);
    if (n_fb)
        nn_matmul_concat_backward(fb, n_fb, self->Wfb->data, self->width, dgi,
                                  dfb, ctx->grad[self->wfb_index].data);
    bias_grads(self, ctx, dgi, dgh, rows);
    nn_matmul_concat_backward(h_prev, 1, self->Wh->data, self->width, dgh, dh,
                              ctx->grad[self->wh_index].data);
    return NN_OK;
}

/* ---------------------------------------------- node hooks, both cells */

static const gated *forward_dir(const nn_node *node)
{
    return &((const gated_node *)nn_node_priv_const(node))->dir[0];
}

static nn_bidir_cell bidir_cell(const nn_node *node, nn_cell_forward f,
                                nn_cell_backward b)
{
    const gated_node *gn = nn_node_priv_const(node);
    nn_bidir_cell cell = {gn->dir[0].units, gn->n_state, gn->step_work, f, b,
                          {&gn->dir[0], &gn->dir[1]}};
    return cell;
}

/* A cell's hooks: the stepped ones on the forward direction's weights,
 * and the whole-sequence ones through bidir.c on both. */
#define GATED_HOOKS(cell)                                                    \
    static int cell##_forward(nn_node *node, const nn_tensor *ff, int n_ff,  \
                              const nn_tensor *fb, int n_fb, nn_tensor *out, \
                              nn_ctx *ctx)                                   \
    {                                                                        \
        return cell##_step(forward_dir(node), ff, n_ff, fb, n_fb, out, ctx); \
    }                                                                        \
    static int cell##_backward(nn_node *node, const nn_tensor *ff, int n_ff, \
                               const nn_tensor *fb, int n_fb,                \
                               const nn_tensor *out, const nn_tensor *dout,  \
                               nn_tensor *dff, nn_tensor *dfb, nn_ctx *ctx)  \
    {                                                                        \
        return cell##_step_back(forward_dir(node), ff, n_ff, fb, n_fb, out,  \
                                dout, dff, dfb, ctx);                        \
    }                                                                        \
    static int cell##_cell_forward(const void *dir, const nn_tensor *ff,     \
                                   int n_ff, nn_tensor *out, nn_ctx *ctx)    \
    {                                                                        \
        return cell##_step(dir, ff, n_ff, NULL, 0, out, ctx);                \
    }                                                                        \
    static int cell##_cell_backward(const void *dir, const nn_tensor *ff,    \
                                    int n_ff, const nn_tensor *out,          \
                                    const nn_tensor *dout, nn_tensor *dff,   \
                                    nn_ctx *ctx)                             \
    {                                                                        \
        return cell##_step_back(dir, ff, n_ff, NULL, 0, out, dout, dff,      \
                                NULL, ctx);                                  \
    }                                                                        \
    static int cell##_forward_seq(nn_node *node, const nn_tensor *ff,        \
                                  int n_ff, nn_tensor *out, nn_ctx *ctx)     \
    {                                                                        \
        nn_bidir_cell c = bidir_cell(node, cell##_cell_forward,              \
                                     cell##_cell_backward);                  \
        return nn_bidir_forward(&c, ff, n_ff, out, ctx);                     \
    }                                                                        \
    static int cell##_backward_seq(nn_node *node, const nn_tensor *ff,       \
                                   int n_ff, const nn_tensor *out,           \
                                   const nn_tensor *dout, nn_tensor *dff,    \
                                   nn_ctx *ctx)                              \
    {                                                                        \
        (void)out;                                                           \
        nn_bidir_cell c = bidir_cell(node, cell##_cell_forward,              \
                                     cell##_cell_backward);                  \
        return nn_bidir_backward(&c, ff, n_ff, dout, dff, ctx);              \
    }

GATED_HOOKS(lstm)
GATED_HOOKS(gru)

const nn_node_type nn_type_lstm = {
    .api_version = NN_API_VERSION,
    .name = "LSTM",
    .doc = "long short-term memory, PyTorch's equations and gate order i, f, "
           "g, o: c = f*c + i*g, h = o*tanh(c); the output is h",
    .flags = NN_TYPE_TRAINABLE | NN_TYPE_STATEFUL | NN_TYPE_ROWWISE,
    .params = lstm_params,
    .priv_size = sizeof(gated_node),
    .init_ff = lstm_init_ff,
    .init_fb = gated_init_fb,
    .forward = lstm_forward,
    .backward = lstm_backward,
    .forward_seq = lstm_forward_seq,
    .backward_seq = lstm_backward_seq,
};

const nn_node_type nn_type_gru = {
    .api_version = NN_API_VERSION,
    .name = "GRU",
    .doc = "gated recurrent unit, PyTorch's equations and gate order r, z, n: "
           "n = tanh(x·Win + bin + r*(h·Whn + bhn)), h = (1-z)*n + z*h; the "
           "output is h",
    .flags = NN_TYPE_TRAINABLE | NN_TYPE_STATEFUL | NN_TYPE_ROWWISE,
    .params = gru_params,
    .priv_size = sizeof(gated_node),
    .init_ff = gru_init_ff,
    .init_fb = gated_init_fb,
    .forward = gru_forward,
    .backward = gru_backward,
    .forward_seq = gru_forward_seq,
    .backward_seq = gru_backward_seq,
};
