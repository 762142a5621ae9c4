/*
 * rnn.c — VanillaRNN: h = act(concat(x) · Wi + h · Wr + b (+ concat(fb) ·
 * Wfb)), the guide's VRNN with an activation and a bias. The state h lives
 * in each session; the output is the new h.
 *
 * two_biases gives PyTorch nn.RNN's form, b = bi + bh: the forward is the
 * same, but each bias gets the whole gradient, so SGD moves their sum twice
 * as far as one b; a model ported from nn.RNN trains as it did there.
 *
 * bidirectional is nn.RNN's bidirectional=True: a second set of weights
 * (Wi_reverse, ...) runs the sequence from its end, the output at t is
 * concat(h_t, h_reverse_t), and the node runs over whole sequences only
 * (bidir.c).
 */
#include "activations.h"
#include "bidir.h"
#include "builtins.h"
#include "matmul.h"

#include <stdio.h>
#include <string.h>

typedef struct rnn {
    nn_tensor *Wi, *Wr, *b, *bh, *Wfb; /* bh: with two_biases (b is bi) */
    int wi_index, wr_index, b_index, bh_index, wfb_index;
    int units;
    nn_act act;
} rnn;

/* The node's data: the forward direction, and the reverse one when
 * bidirectional. */
typedef struct rnn_node {
    rnn dir[2];
    int bidirectional;
} rnn_node;

static const nn_param_def rnn_params[] = {
    {"num_unit", NN_PARAM_INT, NULL, 1, 1 << 20, NULL, "size of the state h"},
    {"activation", NN_PARAM_ENUM, "relu", 0, 0, NN_ACT_CHOICES,
     "activation applied to the new state (relu, as BrainPy)"},
    {"Wi_initializer", NN_PARAM_INIT, "XavierNormal", 0, 0, NULL,
     "input weights Wi (inputs, num_unit), and Wfb"},
    {"Wr_initializer", NN_PARAM_INIT, "XavierNormal", 0, 0, NULL,
     "recurrent weights Wr (num_unit, num_unit)"},
    {"b_initializer", NN_PARAM_INIT, "Zeros", 0, 0, NULL, "bias b (num_unit)"},
    {"use_bias", NN_PARAM_BOOL, "true", 0, 0, NULL, "add the bias b"},
    {"two_biases", NN_PARAM_BOOL, "false", 0, 0, NULL,
     "two biases bi and bh as torch.nn.RNN's bias_ih and bias_hh (needs "
     "use_bias; b_initializer draws both)"},
    {"bidirectional", NN_PARAM_BOOL, "false", 0, 0, NULL,
     "as torch.nn.RNN's bidirectional=True: weights Wi_reverse, Wr_reverse, "
     "b_reverse (or bi_reverse, bh_reverse) run the sequence backwards and "
     "the output is concat(h, h_reverse), 2*num_unit; whole sequences only "
     "(runs, not steps), no feedback"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

/* One direction's weights, named with suffix ("" or "_reverse"). */
static int add_weights(nn_node *node, rnn *self, int total, int two,
                       const char *suffix, nn_error *err)
{
    char name[NN_NAME_MAX];
#define NAMED(base) (snprintf(name, sizeof name, "%s%s", base, suffix), name)
    self->b_index = self->bh_index = self->wfb_index = -1;
    if (!(self->Wi = nn_add_init_weight(node, NAMED("Wi"),
                                        nn_shape2(total, self->units),
                                        "Wi_initializer", &self->wi_index,
                                        err)) ||
        !(self->Wr = nn_add_init_weight(node, NAMED("Wr"),
                                        nn_shape2(self->units, self->units),
                                        "Wr_initializer", &self->wr_index,
                                        err)))
        return err->code;
    if (nn_node_param_bool(node, "use_bias") &&
        !(self->b = nn_add_init_weight(node, NAMED(two ? "bi" : "b"),
                                       nn_shape1(self->units), "b_initializer",
                                       &self->b_index, err)))
        return err->code;
    if (two && !(self->bh = nn_add_init_weight(node, NAMED("bh"),
                                               nn_shape1(self->units),
                                               "b_initializer",
                                               &self->bh_index, err)))
        return err->code;
#undef NAMED
    return NN_OK;
}

static int rnn_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                       nn_error *err)
{
    rnn_node *rn = nn_node_priv(node);
    rnn *self = &rn->dir[0];
    int total;
    int rc = nn_flat_inputs(node, ff, n_ff, 0, &total, err);
    if (rc != NN_OK)
        return rc;
    self->units = (int)nn_node_param_int(node, "num_unit");
    self->act = (nn_act)nn_act_parse(nn_node_param_str(node, "activation"));
    int two = nn_node_param_bool(node, "two_biases");
    if (two && !nn_node_param_bool(node, "use_bias"))
        return nn_error_set(err, NN_ERR_INVALID, "two_biases needs use_bias "
                            "true");
    rn->bidirectional = nn_node_param_bool(node, "bidirectional");
    rc = add_weights(node, self, total, two, "", err);
    if (rc == NN_OK && rn->bidirectional) {
        rn->dir[1].units = self->units;
        rn->dir[1].act = self->act;
        rc = add_weights(node, &rn->dir[1], total, two, "_reverse", err);
    }
    if (rc != NN_OK)
        return rc;
    nn_shape h = nn_shape1(self->units);
    if (rn->bidirectional) {
        nn_bidir_cell cell = {self->units, 1, 2 * (size_t)self->units, NULL,
                              NULL, {NULL, NULL}};
        nn_node_set_sequence(node, 1);
        nn_node_set_work(node, nn_bidir_work_per_row(&cell));
        nn_shape both = nn_shape1(2 * self->units);
        nn_node_set_output_shape(node, &both);
        return NN_OK;
    }
    rc = nn_node_add_state(node, "h", &h, err);
    if (rc < 0)
        return rc;
    /* Pre-activation, and in backward its gradient. */
    nn_node_set_work(node, 2 * (size_t)self->units);
    nn_node_set_output_shape(node, &h);
    return NN_OK;
}

static int rnn_init_fb(nn_node *node, const nn_shape *fb, int n_fb,
                       nn_error *err)
{
    rnn_node *rn = nn_node_priv(node);
    rnn *self = &rn->dir[0];
    if (rn->bidirectional)
        return nn_error_set(err, NN_ERR_GRAPH, "a bidirectional VanillaRNN "
                            "takes no feedback");
    int total;
    int rc = nn_flat_inputs(node, fb, n_fb, 1, &total, err);
    if (rc != NN_OK)
        return rc;
    if (!(self->Wfb = nn_add_init_weight(node, "Wfb", nn_shape2(total, self->units),
                                 "Wi_initializer", &self->wfb_index, err)))
        return err->code;
    return NN_OK;
}

/* pre = b (+ bh) + concat(ff) · Wi + h · Wr + concat(fb) · Wfb, into
 * pre. */
static void pre_activation(const rnn *self, const nn_tensor *ff, int n_ff,
                           const nn_tensor *fb, int n_fb, const nn_tensor *h,
                           float *pre)
{
    size_t rows = nn_tensor_rows(h);
    if (self->b)
        nn_rows_set(pre, rows, self->b->data, self->units);
    else
        memset(pre, 0, rows * (size_t)self->units * sizeof(float));
    for (size_t r = 0; self->bh && r < rows; r++)
        for (int u = 0; u < self->units; u++)
            pre[r * (size_t)self->units + (size_t)u] += self->bh->data[u];
    nn_matmul_concat(ff, n_ff, self->Wi->data, self->units, 1.0f, pre);
    nn_matmul_concat(h, 1, self->Wr->data, self->units, 1.0f, pre);
    if (n_fb)
        nn_matmul_concat(fb, n_fb, self->Wfb->data, self->units, 1.0f, pre);
}

static int rnn_step(const rnn *self, const nn_tensor *ff, int n_ff,
                    const nn_tensor *fb, int n_fb, nn_tensor *out,
                    nn_ctx *ctx)
{
    nn_tensor *h = &ctx->state[0];
    float *pre = ctx->work;
    pre_activation(self, ff, n_ff, fb, n_fb, h, pre);
    nn_act_forward(self->act, pre, out->data, nn_tensor_rows(out),
                   (size_t)self->units);
    memcpy(h->data, out->data, nn_tensor_numel(h) * sizeof(float));
    return NN_OK;
}

static int rnn_step_back(const rnn *self, const nn_tensor *ff, int n_ff,
                         const nn_tensor *fb, int n_fb, const nn_tensor *out,
                         const nn_tensor *dout, nn_tensor *dff, nn_tensor *dfb,
                         nn_ctx *ctx)
{
    const nn_tensor *h_prev = &ctx->state[0];
    nn_tensor *dh = &ctx->dstate[0];
    size_t rows = nn_tensor_rows(out), n = rows * (size_t)self->units;
    float *pre = ctx->work, *dpre = ctx->work + n;
    pre_activation(self, ff, n_ff, fb, n_fb, h_prev, pre);
    /* The new h is both the output and the next step's state. */
    for (size_t i = 0; i < n; i++)
        dpre[i] = dout->data[i] + dh->data[i];
    nn_act_backward(self->act, pre, out->data, dpre, dpre, rows,
                    (size_t)self->units);
    nn_matmul_concat_backward(ff, n_ff, self->Wi->data, self->units, dpre, dff,
                              ctx->grad[self->wi_index].data);
    if (n_fb)
        nn_matmul_concat_backward(fb, n_fb, self->Wfb->data, self->units, dpre,
                                  dfb, ctx->grad[self->wfb_index].data);
    if (self->b)
        nn_rows_sum_into(dpre, rows, self->units,
                         ctx->grad[self->b_index].data);
    if (self->bh)
        nn_rows_sum_into(dpre, rows, self->units,
                         ctx->grad[self->bh_index].data);
    /* d h_prev = dpre · Wrᵀ replaces the incoming state gradient. */
    nn_tensor_zero(dh);
    nn_matmul_concat_backward(h_prev, 1, self->Wr->data, self->units, dpre, dh,
                              ctx->grad[self->wr_index].data);
    return NN_OK;
}

static const rnn *forward_dir(const nn_node *node)
{
    return &((const rnn_node *)nn_node_priv_const(node))->dir[0];
}

static int rnn_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                       const nn_tensor *fb, int n_fb, nn_tensor *out,
                       nn_ctx *ctx)
{
    return rnn_step(forward_dir(node), ff, n_ff, fb, n_fb, out, ctx);
}

static int rnn_backward(nn_node *node, const nn_tensor *ff, int n_ff,
                        const nn_tensor *fb, int n_fb, const nn_tensor *out,
                        const nn_tensor *dout, nn_tensor *dff, nn_tensor *dfb,
                        nn_ctx *ctx)
{
    return rnn_step_back(forward_dir(node), ff, n_ff, fb, n_fb, out, dout,
                         dff, dfb, ctx);
}

/* ---------------------------------------------------- bidirectional */

static int cell_forward(const void *dir, const nn_tensor *ff, int n_ff,
                        nn_tensor *out, nn_ctx *ctx)
{
    return rnn_step(dir, ff, n_ff, NULL, 0, out, ctx);
}

static int cell_backward(const void *dir, const nn_tensor *ff, int n_ff,
                         const nn_tensor *out, const nn_tensor *dout,
                         nn_tensor *dff, nn_ctx *ctx)
{
    return rnn_step_back(dir, ff, n_ff, NULL, 0, out, dout, dff, NULL, ctx);
}

static nn_bidir_cell bidir_cell(const nn_node *node)
{
    const rnn_node *rn = nn_node_priv_const(node);
    nn_bidir_cell cell = {rn->dir[0].units, 1, 2 * (size_t)rn->dir[0].units,
                          cell_forward, cell_backward,
                          {&rn->dir[0], &rn->dir[1]}};
    return cell;
}

static int rnn_forward_seq(nn_node *node, const nn_tensor *ff, int n_ff,
                           nn_tensor *out, nn_ctx *ctx)
{
    nn_bidir_cell cell = bidir_cell(node);
    return nn_bidir_forward(&cell, ff, n_ff, out, ctx);
}

static int rnn_backward_seq(nn_node *node, const nn_tensor *ff, int n_ff,
                            const nn_tensor *out, const nn_tensor *dout,
                            nn_tensor *dff, nn_ctx *ctx)
{
    (void)out;
    nn_bidir_cell cell = bidir_cell(node);
    return nn_bidir_backward(&cell, ff, n_ff, dout, dff, ctx);
}

const nn_node_type nn_type_vanilla_rnn = {
    .api_version = NN_API_VERSION,
    .name = "VanillaRNN",
    .doc = "h = act(concat(ff) · Wi + h · Wr + b (+ concat(fb) · Wfb))",
    .flags = NN_TYPE_TRAINABLE | NN_TYPE_STATEFUL | NN_TYPE_ROWWISE,
    .params = rnn_params,
    .priv_size = sizeof(rnn_node),
    .init_ff = rnn_init_ff,
    .init_fb = rnn_init_fb,
    .forward = rnn_forward,
    .backward = rnn_backward,
    .forward_seq = rnn_forward_seq,
    .backward_seq = rnn_backward_seq,
};
