/*
 * delay.c — Delay: its input `delay` steps late, y(t) = x(t − delay), and
 * zeros for the first `delay` steps of a session (after ReservoirPy's
 * Delay node, whose initial values default to zeros). Several inputs are
 * concatenated. A delayed edge ({"from", "to", "delay": n} in a graph
 * definition, or nn_graph_ff_delayed) is one of these between its ends.
 *
 * The state is the last `delay` inputs, newest first: each step outputs
 * the oldest and shifts the rest, O(delay · features) per row.
 */
#include "builtins.h"

#include <string.h>

typedef struct delay {
    int n, width;
} delay;

static const nn_param_def delay_params[] = {
    {"delay", NN_PARAM_INT, "1", 1, 1 << 20, NULL,
     "steps of delay n: y(t) = x(t - n), zeros before"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static int delay_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                         nn_error *err)
{
    delay *self = nn_node_priv(node);
    int rc = nn_flat_inputs(node, ff, n_ff, 0, &self->width, err);
    if (rc != NN_OK)
        return rc;
    self->n = (int)nn_node_param_int(node, "delay");
    nn_shape buf = nn_shape2(self->n, self->width);
    if ((rc = nn_node_add_state(node, "buffer", &buf, err)) < 0)
        return rc;
    nn_shape out = nn_shape1(self->width);
    nn_node_set_output_shape(node, &out);
    return NN_OK;
}

static int delay_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                         const nn_tensor *fb, int n_fb, nn_tensor *out,
                         nn_ctx *ctx)
{
    (void)fb, (void)n_fb;
    const delay *self = nn_node_priv_const(node);
    size_t W = (size_t)self->width, per = (size_t)self->n * W;
    for (size_t r = 0; r < nn_tensor_rows(out); r++) {
        float *buf = ctx->state[0].data + r * per;
        memcpy(out->data + r * W, buf + per - W, W * sizeof(float));
        memmove(buf + W, buf, (per - W) * sizeof(float));
        size_t offset = 0;
        for (int i = 0; i < n_ff; i++) {
            size_t cols = (size_t)nn_tensor_cols(&ff[i]);
            memcpy(buf + offset, ff[i].data + r * cols, cols * sizeof(float));
            offset += cols;
        }
    }
    return NN_OK;
}

/* The step maps (buffer, x) to (x, buffer[0 .. n−2]) and outputs
 * buffer[n−1]; its gradient runs the other way. */
static int delay_backward(nn_node *node, const nn_tensor *ff, int n_ff,
                          const nn_tensor *fb, int n_fb, const nn_tensor *out,
                          const nn_tensor *dout, nn_tensor *dff,
                          nn_tensor *dfb, nn_ctx *ctx)
{
    (void)fb, (void)n_fb, (void)dfb;
    const delay *self = nn_node_priv_const(node);
    size_t W = (size_t)self->width, per = (size_t)self->n * W;
    for (size_t r = 0; r < nn_tensor_rows(out); r++) {
        float *dbuf = ctx->dstate[0].data + r * per;
        size_t offset = 0;
        for (int i = 0; dff && i < n_ff; i++) {
            size_t cols = (size_t)nn_tensor_cols(&ff[i]);
            for (size_t j = 0; j < cols; j++)
                dff[i].data[r * cols + j] += dbuf[offset + j];
            offset += cols;
        }
        memmove(dbuf, dbuf + W, (per - W) * sizeof(float));
        memcpy(dbuf + per - W, dout->data + r * W, W * sizeof(float));
    }
    return NN_OK;
}

const nn_node_type nn_type_delay = {
    .api_version = NN_API_VERSION,
    .name = "Delay",
    .doc = "y(t) = x(t - delay), zeros before (ReservoirPy's Delay)",
    .flags = NN_TYPE_STATEFUL | NN_TYPE_ROWWISE,
    .params = delay_params,
    .priv_size = sizeof(delay),
    .init_ff = delay_init_ff,
    .forward = delay_forward,
    .backward = delay_backward,
};
