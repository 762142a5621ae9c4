/*
 * nvar.c — NVAR(delay, order, stride, constant): the feature vector of a
 * next-generation reservoir computer (Gauthier et al., 2021), as
 * ReservoirPy's NVAR builds it.
 *
 * With x(t) the concatenated input (d features), the linear part is
 *   [x(t), x(t − s), x(t − 2s), ..., x(t − (k − 1)s)]     k = delay, s = stride
 * flattened lag by lag: x0(t), ..., x{d−1}(t), x0(t − s), ... — k·d values.
 * The nonlinear part is every unique monomial of degree `order` of those
 * values: the combinations with repetition of `order` indices
 * i1 <= i2 <= ... into the linear part, in lexicographic order (as Python's
 * itertools.combinations_with_replacement yields them). The output is
 *   [1 (when constant),] linear part, monomials
 * — the constant first, as Gauthier et al. write O_total = c ⊕ O_lin ⊕
 * O_nonlin. (ReservoirPy's NVAR has no constant: its readout adds a bias.)
 *
 * Past inputs live in the session: a ring of (k − 1)·s rows of d values,
 * zeros at the start, and the ring's head. No weights.
 */
#include "builtins.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define NVAR_MAX_ORDER 8
#define NVAR_MAX_FEATURES (1 << 20)

typedef struct nvar {
    int dim;      /* d, input features */
    int delay, stride, order;
    int constant; /* 1 when the constant leads the output */
    int lin;      /* delay * d */
    int past;     /* rows of history: (delay − 1) * stride */
    int features; /* output size */
} nvar;

static const nn_param_def nvar_params[] = {
    {"delay", NN_PARAM_INT, "2", 1, 1000, NULL,
     "k: the linear part holds the current input and k - 1 past ones"},
    {"order", NN_PARAM_INT, "2", 1, NVAR_MAX_ORDER, NULL,
     "degree of the monomials of the nonlinear part"},
    {"stride", NN_PARAM_INT, "1", 1, 1000, NULL,
     "s: steps between the inputs of the linear part, x(t), x(t - s), ..."},
    {"constant", NN_PARAM_BOOL, "false", 0, 0, NULL,
     "put a constant 1 first in the output"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

/* C(n + r − 1, r): combinations with repetition of r out of n, in double so
 * large counts are compared against the limit without overflow. */
static double multichoose(double n, int r)
{
    double c = 1;
    for (int i = 1; i <= r; i++)
        c = c * (n + i - 1) / i;
    return floor(c + 0.5);
}

static int nvar_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                        nn_error *err)
{
    nvar *self = nn_node_priv(node);
    int total;
    int rc = nn_flat_inputs(node, ff, n_ff, 0, &total, err);
    if (rc != NN_OK)
        return rc;
    self->dim = total;
    self->delay = (int)nn_node_param_int(node, "delay");
    self->stride = (int)nn_node_param_int(node, "stride");
    self->order = (int)nn_node_param_int(node, "order");
    self->constant = nn_node_param_bool(node, "constant");
    double lin = (double)self->delay * total;
    double features = self->constant + lin + multichoose(lin, self->order);
    if (features > NVAR_MAX_FEATURES)
        return nn_error_set(err, NN_ERR_LIMIT, "NVAR(delay=%d, order=%d) of %d "
                            "input features would output %.0f features, more "
                            "than %d; lower delay or order", self->delay,
                            self->order, total, features, NVAR_MAX_FEATURES);
    self->lin = (int)lin;
    self->features = (int)features;
    self->past = (self->delay - 1) * self->stride;
    if (self->past > 0) {
        nn_shape ring = nn_shape2(self->past, total), head = nn_shape1(1);
        if ((rc = nn_node_add_state(node, "past", &ring, err)) < 0 ||
            (rc = nn_node_add_state(node, "head", &head, err)) < 0)
            return rc;
    }
    /* The linear part of a row, and in backward its gradient. */
    nn_node_set_work(node, 2 * (size_t)self->lin);
    nn_shape out = nn_shape1(self->features);
    nn_node_set_output_shape(node, &out);
    return NN_OK;
}

/* Row `row` of the concatenated inputs into x (d values). */
static void gather_row(const nn_tensor *ff, int n_ff, size_t row, float *x)
{
    for (int i = 0; i < n_ff; i++) {
        int cols = nn_tensor_cols(&ff[i]);
        memcpy(x, ff[i].data + row * (size_t)cols, (size_t)cols * sizeof(float));
        x += cols;
    }
}

/* Adds dx (d values) into row `row` of the input gradients. */
static void scatter_row_add(nn_tensor *dff, int n_ff, size_t row,
                            const float *dx)
{
    for (int i = 0; i < n_ff; i++) {
        int cols = nn_tensor_cols(&dff[i]);
        float *dst = dff[i].data + row * (size_t)cols;
        for (int j = 0; j < cols; j++)
            dst[j] += dx[j];
        dx += cols;
    }
}

/* Ring slot of x(t − lag), 1 <= lag <= past, when x(t) goes to `head`. */
static int slot(const nvar *self, int head, int lag)
{
    return ((head - lag) % self->past + self->past) % self->past;
}

static int ring_head(const nvar *self, const nn_tensor *state, size_t row)
{
    if (self->past == 0)
        return 0;
    int head = (int)state[1].data[row];
    return head >= 0 && head < self->past ? head : 0;
}

/* The linear part of one row: x(t) from the inputs, the past from the ring. */
static void linear_part(const nvar *self, const nn_tensor *ff, int n_ff,
                        const nn_tensor *state, size_t row, int head,
                        float *lin)
{
    int d = self->dim;
    gather_row(ff, n_ff, row, lin);
    for (int k = 1; k < self->delay; k++) {
        const float *ring = state[0].data + row * (size_t)self->past * d;
        memcpy(lin + (size_t)k * d,
               ring + (size_t)slot(self, head, k * self->stride) * d,
               (size_t)d * sizeof(float));
    }
}

/* Advances idx (order indices, nondecreasing) to the next monomial in
 * lexicographic order; returns 0 after the last. */
static int next_monomial(const nvar *self, int *idx)
{
    int k = self->order - 1;
    while (k >= 0 && idx[k] == self->lin - 1)
        k--;
    if (k < 0)
        return 0;
    idx[k]++;
    for (int m = k + 1; m < self->order; m++)
        idx[m] = idx[k];
    return 1;
}

static int nvar_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                        const nn_tensor *fb, int n_fb, nn_tensor *out,
                        nn_ctx *ctx)
{
    (void)fb, (void)n_fb;
    const nvar *self = nn_node_priv_const(node);
    size_t rows = nn_tensor_rows(out);
    int d = self->dim;
    float *lin = ctx->work;
    for (size_t r = 0; r < rows; r++) {
        int head = ring_head(self, ctx->state, r);
        linear_part(self, ff, n_ff, ctx->state, r, head, lin);
        float *y = out->data + r * (size_t)self->features;
        if (self->constant)
            *y++ = 1.0f;
        memcpy(y, lin, (size_t)self->lin * sizeof(float));
        y += self->lin;
        int idx[NVAR_MAX_ORDER] = {0};
        do {
            float p = 1.0f;
            for (int m = 0; m < self->order; m++)
                p *= lin[idx[m]];
            *y++ = p;
        } while (next_monomial(self, idx));
        if (self->past > 0) {
            /* x(t) overwrites x(t − past), read above for the last lag. */
            float *ring = ctx->state[0].data + r * (size_t)self->past * d;
            memcpy(ring + (size_t)head * d, lin, (size_t)d * sizeof(float));
            ctx->state[1].data[r] = (float)((head + 1) % self->past);
        }
    }
    return NN_OK;
}

static int nvar_backward(nn_node *node, const nn_tensor *ff, int n_ff,
                         const nn_tensor *fb, int n_fb, const nn_tensor *out,
                         const nn_tensor *dout, nn_tensor *dff,
                         nn_tensor *dfb, nn_ctx *ctx)
{
    (void)fb, (void)n_fb, (void)dfb;
    const nvar *self = nn_node_priv_const(node);
    size_t rows = nn_tensor_rows(out);
    int d = self->dim;
    float *lin = ctx->work, *dlin = ctx->work + self->lin;
    for (size_t r = 0; r < rows; r++) {
        int head = ring_head(self, ctx->state, r);
        linear_part(self, ff, n_ff, ctx->state, r, head, lin);
        const float *dy = dout->data + r * (size_t)self->features +
                          self->constant;
        memcpy(dlin, dy, (size_t)self->lin * sizeof(float));
        dy += self->lin;
        int idx[NVAR_MAX_ORDER] = {0};
        do {
            float g = *dy++;
            if (g == 0.0f)
                continue;
            for (int m = 0; m < self->order; m++) {
                float others = 1.0f;
                for (int q = 0; q < self->order; q++)
                    if (q != m)
                        others *= lin[idx[q]];
                dlin[idx[m]] += g * others;
            }
        } while (next_monomial(self, idx));
        if (self->past > 0) {
            float *dring = ctx->dstate[0].data + r * (size_t)self->past * d;
            float *dhead = dring + (size_t)head * d;
            /* The copy of x(t) the step stored carries gradient to x(t);
             * what the slot held before (x(t − past)) gets only what this
             * step's features send it, below. */
            for (int j = 0; j < d; j++) {
                dlin[j] += dhead[j];
                dhead[j] = 0;
            }
            for (int k = 1; k < self->delay; k++) {
                float *dst = dring +
                             (size_t)slot(self, head, k * self->stride) * d;
                for (int j = 0; j < d; j++)
                    dst[j] += dlin[(size_t)k * d + j];
            }
            ctx->dstate[1].data[r] = 0;
        }
        if (dff)
            scatter_row_add(dff, n_ff, r, dlin);
    }
    return NN_OK;
}

/* Name of linear feature i: "x3(t)" or "x3(t-4)". */
static int linear_name(const nvar *self, int i, char *buf, size_t size)
{
    int lag = (i / self->dim) * self->stride, j = i % self->dim;
    return lag ? snprintf(buf, size, "x%d(t-%d)", j, lag)
               : snprintf(buf, size, "x%d(t)", j);
}

static int nvar_feature_name(const nn_node *node, int i, char *buf,
                             size_t size, nn_error *err)
{
    const nvar *self = nn_node_priv_const(node);
    if (i < 0 || i >= self->features)
        return nn_error_set(err, NN_ERR_INVALID, "feature %d of %d", i,
                            self->features);
    if (size)
        buf[0] = '\0';
    if (self->constant) {
        if (i == 0) {
            snprintf(buf, size, "1");
            return NN_OK;
        }
        i--;
    }
    if (i < self->lin) {
        linear_name(self, i, buf, size);
        return NN_OK;
    }
    /* Unrank monomial i: at each position take the smallest index whose
     * block of combinations (those starting with it) contains i. */
    double rank = i - self->lin;
    size_t len = 0;
    int low = 0;
    for (int m = 0; m < self->order; m++) {
        int rest = self->order - m - 1;
        int v = low;
        for (; v < self->lin - 1; v++) {
            double block = multichoose(self->lin - v, rest);
            if (rank < block)
                break;
            rank -= block;
        }
        if (m && len < size)
            len += (size_t)snprintf(buf + len, size - len, "*");
        if (len < size)
            len += (size_t)linear_name(self, v, buf + len, size - len);
        low = v;
    }
    return NN_OK;
}

const nn_node_type nn_type_nvar = {
    .api_version = NN_API_VERSION,
    .name = "NVAR",
    .doc = "next-generation RC features: [1,] x(t), x(t-s), ..., "
           "x(t-(k-1)s), then their unique monomials of degree `order`",
    .flags = NN_TYPE_STATEFUL | NN_TYPE_ROWWISE,
    .params = nvar_params,
    .priv_size = sizeof(nvar),
    .init_ff = nvar_init_ff,
    .forward = nvar_forward,
    .backward = nvar_backward,
    .feature_name = nvar_feature_name,
};
