/*
 * reservoir.c — Reservoir: the fixed random recurrent layer of an echo
 * state network, after ReservoirPy's Reservoir and BrainPy's
 * brainpy.nn.Reservoir (internal activation):
 *
 *   pre = (u + ξ_in) · Win + s · W + (fb + ξ_fb) · Wfb + b
 *   s  ← (1 − a) · s + a · f(pre) + ξ_rc          output: the new s
 *
 * u is the concatenation of the feedforward inputs, fb of the feedback
 * inputs, ξ_* noise of the configured gain drawn from the node's stream in
 * the session (ctx->rng) at every step, in that order: input, feedback,
 * then state noise.
 *
 * Weights. Each matrix has a Bernoulli pattern of its connectivity (drawn
 * by nn_csr_random, so O(nnz) draws whatever the size) and values from its
 * initializer times its scaling, all from the node's init stream. W is then
 * rescaled to the wanted spectral radius. W is stored dense, or sparse: its
 * nnz values as the 1-d weight "W" in the pattern's order (by output unit:
 * column by column of W, increasing rows; see sparse.h) and the pattern
 * inside the node. Both storages draw the same
 * numbers in the same order, so for one seed they hold the same matrix and
 * `sparse` is purely a matter of speed and memory. The node registers the
 * pattern with the graph (nn_node_set_weight_pattern), so an import may
 * replace it with a foreign one between steps (sparse_weight.c); nothing
 * here depends on its count but W's own length.
 *
 * The weights are ordinary weight tensors, so export and import work; the
 * type is not trainable by default (reservoirs are fixed and only their
 * readout learns), but `trainable: true` opts in, and backward is complete
 * either way so gradients pass through to trainable nodes upstream.
 */
#include "activations.h"
#include "builtins.h"
#include "matmul.h"
#include "nn_linalg.h"
#include "sparse.h"

#include <math.h>
#include <string.h>

/* Above this many units a dense W's spectral radius comes from the Arnoldi
 * estimate as well: dgeev is O(n³) time and n² doubles of memory. */
#define DENSE_EIGEN_MAX_UNITS 2000

typedef struct reservoir {
    nn_tensor *Win, *W, *b, *Wfb;
    int win_index, w_index, b_index, wfb_index;
    int units, n_in, n_fb;
    float leak;
    nn_act act;
    int sparse;       /* W holds CSR values in pattern's order */
    nn_csr pattern;   /* W's pattern, when sparse */
    float noise_in, noise_rc, noise_fb;
    int uniform_noise;
    int noise_width; /* floats per row of input/feedback noise scratch */
} reservoir;

static const nn_param_def reservoir_params[] = {
    {"num_unit", NN_PARAM_INT, NULL, 1, 1 << 20, NULL,
     "number of reservoir units (the size of the state s)"},
    {"leaky_rate", NN_PARAM_FLOAT, "0.3", 1e-6, 1.0, NULL,
     "leak a in (0, 1]: s <- (1 - a) s + a f(pre); 1 is no leak"},
    {"activation", NN_PARAM_ENUM, "tanh", 0, 0, NN_ACT_CHOICES,
     "f, applied to the pre-activation"},
    {"spectral_radius", NN_PARAM_FLOAT, "0", 0, 1e6, NULL,
     "rescale W so that its largest |eigenvalue| is this (0: keep W as "
     "drawn). Measured exactly by LAPACK (dgeev) when W is stored dense with "
     "at most 2000 units, else by ARPACK's restarted Arnoldi method"},
    {"input_scaling", NN_PARAM_FLOAT, "1", 0, 1e6, NULL,
     "factor applied to Win after drawing it"},
    {"bias_scaling", NN_PARAM_FLOAT, "0", 0, 1e6, NULL,
     "factor applied to the bias b after drawing it (0: no bias)"},
    {"fb_scaling", NN_PARAM_FLOAT, "1", 0, 1e6, NULL,
     "factor applied to Wfb after drawing it"},
    {"input_connectivity", NN_PARAM_FLOAT, "0.1", 1e-9, 1.0, NULL,
     "density of Win in (0, 1]: each entry is present with this probability"},
    {"rc_connectivity", NN_PARAM_FLOAT, "0.1", 1e-9, 1.0, NULL,
     "density of the recurrent W in (0, 1]"},
    {"fb_connectivity", NN_PARAM_FLOAT, "0.1", 1e-9, 1.0, NULL,
     "density of the feedback Wfb in (0, 1]"},
    {"Win_initializer", NN_PARAM_INIT, "Uniform(-1, 1)", 0, 0, NULL,
     "values of Win's present entries (elementwise initializers only)"},
    {"W_initializer", NN_PARAM_INIT, "Normal(0, 1)", 0, 0, NULL,
     "values of W's present entries, before the spectral rescaling"},
    {"Wfb_initializer", NN_PARAM_INIT, "Uniform(-1, 1)", 0, 0, NULL,
     "values of Wfb's present entries"},
    {"b_initializer", NN_PARAM_INIT, "Uniform(-1, 1)", 0, 0, NULL,
     "values of the bias b"},
    {"sparse", NN_PARAM_ENUM, "auto", 0, 0, "auto|true|false",
     "store W as CSR (true) or dense (false); auto picks CSR above 2000 "
     "units, or from 500 units when rc_connectivity <= 0.1"},
    {"noise_in", NN_PARAM_FLOAT, "0", 0, 1e6, NULL,
     "gain of the noise added to the inputs at every step"},
    {"noise_rc", NN_PARAM_FLOAT, "0", 0, 1e6, NULL,
     "gain of the noise added to the new state at every step"},
    {"noise_fb", NN_PARAM_FLOAT, "0", 0, 1e6, NULL,
     "gain of the noise added to the feedback inputs at every step"},
    {"noise_type", NN_PARAM_ENUM, "normal", 0, 0, "normal|uniform",
     "noise distribution: gain * N(0, 1), or gain * U(-1, 1)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

/* Entries of a sparse matrix are drawn one by one, so an initializer that
 * looks at the whole matrix (fans, orthogonality) has no meaning here. */
static int elementwise_init(nn_node *node, const char *param, nn_init *init,
                            nn_error *err)
{
    *init = nn_node_param_init(node, param);
    switch (init->kind) {
    case NN_INIT_ZEROS:
    case NN_INIT_ONES:
    case NN_INIT_CONSTANT:
    case NN_INIT_NORMAL:
    case NN_INIT_UNIFORM:
        return NN_OK;
    default: {
        char buf[128];
        return nn_error_set(err, NN_ERR_INVALID, "parameter '%s' must be an "
                            "elementwise initializer (Zeros, Ones, Constant, "
                            "Normal or Uniform), got '%s': a reservoir's "
                            "entries are drawn one by one", param,
                            nn_init_str(init, buf, sizeof buf));
    }
    }
}

static void scale_values(nn_tensor *t, double factor)
{
    size_t n = nn_tensor_numel(t);
    for (size_t i = 0; i < n; i++)
        t->data[i] = (float)(t->data[i] * factor);
}

/* Draws a (rows, cols) matrix with Bernoulli(density) pattern and values
 * from init_param times scale, as the weight `name`. Sparse (keep != NULL):
 * the weight is the nnz values and *keep receives the pattern (the caller
 * owns it). Dense: the values are scattered into a zeroed (rows, cols)
 * weight. Both consume the node's init stream identically. Sizes are checked
 * against the network's parameter cap before anything is drawn. */
static nn_tensor *draw_matrix(nn_node *node, const char *name, int rows,
                              int cols, double density, const char *init_param,
                              double scale, nn_csr *keep, int *index,
                              nn_error *err)
{
    nn_init init, zeros = {NN_INIT_ZEROS, 0, 0};
    if (elementwise_init(node, init_param, &init, err) != NN_OK)
        return NULL;
    size_t left = nn_node_params_left(node);
    size_t max_nnz = left < (size_t)INT32_MAX ? left : (size_t)INT32_MAX;
    if (!keep && (uint64_t)rows * (uint64_t)cols > (uint64_t)left) {
        nn_error_set(err, NN_ERR_LIMIT, "%s (%d x %d) would bring the network "
                     "past its parameter limit (%zu left)", name, rows, cols,
                     left);
        return NULL;
    }
    nn_rng *rng = nn_node_init_rng(node);
    nn_csr pattern;
    if (nn_csr_random(&pattern, rows, cols, density, keep ? max_nnz : 0, rng,
                      err) != NN_OK) {
        nn_error_prefix(err, "%s", name);
        return NULL;
    }
    nn_tensor *w = NULL;
    if (keep) {
        if (pattern.nnz == 0) {
            nn_error_set(err, NN_ERR_INVALID, "the drawn pattern of %s (%d x "
                         "%d at density %g) is empty; raise the connectivity "
                         "or store it dense", name, rows, cols, density);
            goto done;
        }
        if (pattern.nnz > (size_t)INT32_MAX) {
            nn_error_set(err, NN_ERR_LIMIT, "%s would hold %zu entries, more "
                         "than a weight tensor can", name, pattern.nnz);
            goto done;
        }
        nn_shape shape = nn_shape1((int)pattern.nnz);
        if (!(w = nn_node_add_weight(node, name, &shape, &init, 1, err)))
            goto done;
        *keep = pattern;
        memset(&pattern, 0, sizeof pattern);
    } else {
        nn_shape shape = nn_shape2(rows, cols);
        if (!(w = nn_node_add_weight(node, name, &shape, &zeros, 1, err)))
            goto done;
        nn_tensor values;
        memset(&values, 0, sizeof values);
        if (pattern.nnz) {
            nn_shape vs = nn_shape1((int)pattern.nnz);
            if (nn_tensor_alloc(&values, &vs, err) != NN_OK ||
                nn_init_fill(&init, &values, rng, err) != NN_OK) {
                nn_tensor_release(&values);
                w = NULL;
                goto done;
            }
            nn_csr_to_dense(&pattern, values.data, w->data);
        }
        nn_tensor_release(&values);
    }
    scale_values(w, scale);
    *index = nn_node_weight_count(node) - 1;
done:
    nn_csr_release(&pattern);
    return w;
}

/* y = W x (dense) or x · W (sparse) in double, for the Arnoldi estimate:
 * W and Wᵀ have the same spectrum, so each storage is read in the order
 * that gathers into one sum per output. */
typedef struct radius_op {
    const reservoir *self;
    const float *val; /* W's values, dense or in the pattern's order */
} radius_op;

static void radius_apply(void *ctx, const double *x, double *y)
{
    const radius_op *op = ctx;
    const reservoir *self = op->self;
    size_t n = (size_t)self->units;
    if (self->sparse) {
        nn_csr_vecmat_f(&self->pattern, op->val, x, y);
        return;
    }
    for (size_t r = 0; r < n; r++) {
        double sum = 0;
        for (size_t c = 0; c < n; c++)
            sum += (double)op->val[r * n + c] * x[c];
        y[r] = sum;
    }
}

/* Rescales W so that its spectral radius becomes `want`. */
static int rescale_radius(reservoir *self, double want, nn_error *err)
{
    double rho = 0;
    int rc;
    if (!self->sparse && self->units <= DENSE_EIGEN_MAX_UNITS) {
        size_t count = nn_tensor_numel(self->W);
        double *vals = nn_malloc(count * sizeof(double));
        if (!vals)
            return nn_error_set(err, NN_ERR_NOMEM, "out of memory for the "
                                "spectral radius of W");
        for (size_t i = 0; i < count; i++)
            vals[i] = self->W->data[i];
        rc = nn_spectral_radius_dense(self->units, vals, &rho, err);
        nn_free(vals);
    } else {
        /* The float values are read as they are: products in double are
         * exact, and no double copy of W is made. */
        radius_op op = {self, self->W->data};
        /* A relative error of 1e-5 on |λ|'s Ritz value puts it well within
         * the 1e-3 a rescaled reservoir is checked against. */
        nn_eig_opts opts = {0, 0, 1e-5};
        rc = nn_spectral_radius_op(self->units, radius_apply, &op, &opts, &rho,
                                   NULL, err);
    }
    if (rc != NN_OK)
        return nn_error_prefix(err, "spectral_radius");
    if (!(rho > 1e-12 * want))
        return nn_error_set(err, NN_ERR_INVALID, "cannot rescale W to spectral "
                            "radius %g: the drawn W has spectral radius %g "
                            "(raise rc_connectivity or num_unit)", want, rho);
    scale_values(self->W, want / rho);
    return NN_OK;
}

static int use_sparse(nn_node *node, int units)
{
    const char *mode = nn_node_param_str(node, "sparse");
    if (strcmp(mode, "true") == 0)
        return 1;
    if (strcmp(mode, "false") == 0)
        return 0;
    double density = nn_node_param_float(node, "rc_connectivity");
    return units > DENSE_EIGEN_MAX_UNITS || (units >= 500 && density <= 0.1);
}

static size_t work_per_row(const reservoir *self)
{
    return 4 * (size_t)self->units + (size_t)self->noise_width +
           (self->sparse ? nn_csr_matmul_work(&self->pattern) : 0);
}

static int reservoir_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                             nn_error *err)
{
    reservoir *self = nn_node_priv(node);
    int total;
    int rc = nn_flat_inputs(node, ff, n_ff, 0, &total, err);
    if (rc != NN_OK)
        return rc;
    int units = (int)nn_node_param_int(node, "num_unit");
    self->units = units;
    self->n_in = total;
    self->leak = (float)nn_node_param_float(node, "leaky_rate");
    self->act = (nn_act)nn_act_parse(nn_node_param_str(node, "activation"));
    self->sparse = use_sparse(node, units);
    self->noise_in = (float)nn_node_param_float(node, "noise_in");
    self->noise_rc = (float)nn_node_param_float(node, "noise_rc");
    self->noise_fb = (float)nn_node_param_float(node, "noise_fb");
    self->uniform_noise = strcmp(nn_node_param_str(node, "noise_type"),
                                 "uniform") == 0;
    /* Noise comes from the session's stream: with it, sessions cannot share
     * one run over their gathered rows. */
    if (self->noise_in > 0 || self->noise_rc > 0)
        nn_node_set_rowwise(node, 0);
    self->wfb_index = -1;
    /* Everything this node will hold, checked before anything is drawn: a
     * few bytes of request must not cost seconds and gigabytes to refuse. */
    double density = nn_node_param_float(node, "rc_connectivity");
    double need = (double)total * units + units +
                  (self->sparse ? nn_csr_min_nnz(units, units, density)
                                : (double)units * units);
    size_t left = nn_node_params_left(node);
    if (need > (double)left)
        return nn_error_set(err, NN_ERR_LIMIT, "%d units with %d inputs "
                            "(W %s at connectivity %g) would hold about %.0f "
                            "parameters, past the network's limit (%zu left)",
                            units, total, self->sparse ? "sparse" : "dense",
                            density, need, left);
    if (!(self->Win = draw_matrix(node, "Win", total, units,
                                  nn_node_param_float(node,
                                                      "input_connectivity"),
                                  "Win_initializer",
                                  nn_node_param_float(node, "input_scaling"),
                                  NULL, &self->win_index, err)) ||
        !(self->W = draw_matrix(node, "W", units, units,
                                nn_node_param_float(node, "rc_connectivity"),
                                "W_initializer", 1.0,
                                self->sparse ? &self->pattern : NULL,
                                &self->w_index, err)))
        return err->code;
    if (self->sparse)
        nn_node_set_weight_pattern(node, self->w_index, &self->pattern);
    nn_init binit;
    if (elementwise_init(node, "b_initializer", &binit, err) != NN_OK)
        return err->code;
    nn_shape bs = nn_shape1(units);
    if (!(self->b = nn_node_add_weight(node, "b", &bs, &binit, 1, err)))
        return err->code;
    self->b_index = nn_node_weight_count(node) - 1;
    scale_values(self->b, nn_node_param_float(node, "bias_scaling"));
    double radius = nn_node_param_float(node, "spectral_radius");
    if (radius > 0 && (rc = rescale_radius(self, radius, err)) != NN_OK)
        return rc;
    nn_shape s = nn_shape1(units);
    rc = nn_node_add_state(node, "s", &s, err);
    if (rc < 0)
        return rc;
    /* pre, f(pre), the state gradient, the pre-activation gradient, the
     * input noise (init_fb widens it for feedback noise) and the sparse
     * product's scratch. */
    self->noise_width = total;
    nn_node_set_work(node, work_per_row(self));
    nn_node_set_output_shape(node, &s);
    return NN_OK;
}

static int reservoir_init_fb(nn_node *node, const nn_shape *fb, int n_fb,
                             nn_error *err)
{
    reservoir *self = nn_node_priv(node);
    int total;
    int rc = nn_flat_inputs(node, fb, n_fb, 1, &total, err);
    if (rc != NN_OK)
        return rc;
    self->n_fb = total;
    if (self->noise_fb > 0)
        nn_node_set_rowwise(node, 0);
    if (!(self->Wfb = draw_matrix(node, "Wfb", total, self->units,
                                  nn_node_param_float(node, "fb_connectivity"),
                                  "Wfb_initializer",
                                  nn_node_param_float(node, "fb_scaling"), NULL,
                                  &self->wfb_index, err)))
        return err->code;
    if (total > self->noise_width)
        self->noise_width = total;
    nn_node_set_work(node, work_per_row(self));
    return NN_OK;
}

/* The scratch of one step, carved from ctx->work. */
typedef struct scratch {
    float *pre, *fpre, *ds, *dpre, *noise, *spmm;
} scratch;

static scratch carve(const reservoir *self, float *work, size_t rows)
{
    size_t n = rows * (size_t)self->units;
    float *noise = work + 4 * n;
    scratch w = {work,  work + n, work + 2 * n, work + 3 * n,
                 noise, noise + rows * (size_t)self->noise_width};
    return w;
}

static void draw_noise(const reservoir *self, nn_rng *rng, float gain,
                       float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = gain * (float)(self->uniform_noise
                                    ? 2 * nn_rng_uniform(rng) - 1
                                    : nn_rng_normal(rng));
}

/* pre = b + (u + ξ_in) · Win + s · W + (fb + ξ_fb) · Wfb, the noise drawn
 * from rng: backward hands it a copy of the step's stream to recompute the
 * same pre. (u + ξ) · Win is computed as u · Win + ξ · Win so the inputs are
 * never copied. */
static void pre_activation(const reservoir *self, const nn_tensor *ff,
                           int n_ff, const nn_tensor *fb, int n_fb,
                           const nn_tensor *s, nn_rng *rng, const scratch *w)
{
    size_t rows = nn_tensor_rows(s);
    int units = self->units;
    nn_rows_set(w->pre, rows, self->b->data, units);
    nn_matmul_concat(ff, n_ff, self->Win->data, units, 1.0f, w->pre);
    if (self->noise_in > 0) {
        nn_shape shape = nn_shape2((int)rows, self->n_in);
        nn_tensor noise = nn_tensor_view(w->noise, &shape);
        draw_noise(self, rng, self->noise_in, w->noise,
                   rows * (size_t)self->n_in);
        nn_matmul_concat(&noise, 1, self->Win->data, units, 1.0f, w->pre);
    }
    if (self->sparse)
        nn_csr_matmul(&self->pattern, self->W->data, s->data, rows, 1.0f,
                      w->pre, w->spmm);
    else
        nn_matmul_concat(s, 1, self->W->data, units, 1.0f, w->pre);
    if (n_fb) {
        nn_matmul_concat(fb, n_fb, self->Wfb->data, units, 1.0f, w->pre);
        if (self->noise_fb > 0) {
            nn_shape shape = nn_shape2((int)rows, self->n_fb);
            nn_tensor noise = nn_tensor_view(w->noise, &shape);
            draw_noise(self, rng, self->noise_fb, w->noise,
                       rows * (size_t)self->n_fb);
            nn_matmul_concat(&noise, 1, self->Wfb->data, units, 1.0f, w->pre);
        }
    }
}

static int reservoir_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                             const nn_tensor *fb, int n_fb, nn_tensor *out,
                             nn_ctx *ctx)
{
    const reservoir *self = nn_node_priv_const(node);
    nn_tensor *s = &ctx->state[0];
    size_t rows = nn_tensor_rows(s), n = rows * (size_t)self->units;
    scratch w = carve(self, ctx->work, rows);
    pre_activation(self, ff, n_ff, fb, n_fb, s, ctx->rng, &w);
    /* The state noise comes last in the stream, after the input and
     * feedback noise; then leak, activation, noise and the copy to the
     * output are one pass over the state. */
    const float *noise = NULL;
    if (self->noise_rc > 0) {
        draw_noise(self, ctx->rng, self->noise_rc, w.ds, n);
        noise = w.ds;
    }
    nn_act_leak(self->act, w.pre, s->data, self->leak, noise, out->data, rows,
                (size_t)self->units);
    return NN_OK;
}

/* Adds ξᵀ · dpre to dW for the noise just drawn into w->noise. */
static void noise_grad(const reservoir *self, size_t rows, int width,
                       const float *W, const float *dpre, const scratch *w,
                       float *dW)
{
    nn_shape shape = nn_shape2((int)rows, width);
    nn_tensor noise = nn_tensor_view(w->noise, &shape);
    nn_matmul_concat_backward(&noise, 1, W, self->units, dpre, NULL, dW);
}

static int reservoir_backward(nn_node *node, const nn_tensor *ff, int n_ff,
                              const nn_tensor *fb, int n_fb,
                              const nn_tensor *out, const nn_tensor *dout,
                              nn_tensor *dff, nn_tensor *dfb, nn_ctx *ctx)
{
    const reservoir *self = nn_node_priv_const(node);
    const nn_tensor *s_prev = &ctx->state[0];
    nn_tensor *dstate = &ctx->dstate[0];
    size_t rows = nn_tensor_rows(out), n = rows * (size_t)self->units;
    int units = self->units;
    int train = nn_node_trainable(node);
    scratch w = carve(self, ctx->work, rows);
    nn_rng noise_rng = *ctx->rng;
    pre_activation(self, ff, n_ff, fb, n_fb, s_prev, &noise_rng, &w);
    nn_act_forward(self->act, w.pre, w.fpre, rows, (size_t)units);
    /* The new s is both the output and the next step's state. */
    float a = self->leak;
    for (size_t i = 0; i < n; i++) {
        w.ds[i] = dout->data[i] + dstate->data[i];
        w.dpre[i] = a * w.ds[i];
    }
    nn_act_backward(self->act, w.pre, w.fpre, w.dpre, w.dpre, rows,
                    (size_t)units);
    float *grad_win = train ? ctx->grad[self->win_index].data : NULL;
    nn_matmul_concat_backward(ff, n_ff, self->Win->data, units, w.dpre, dff,
                              grad_win);
    /* Redraw the noise in forward's order for its share of the gradients. */
    noise_rng = *ctx->rng;
    if (self->noise_in > 0) {
        draw_noise(self, &noise_rng, self->noise_in, w.noise,
                   rows * (size_t)self->n_in);
        if (train)
            noise_grad(self, rows, self->n_in, self->Win->data, w.dpre, &w,
                       grad_win);
    }
    if (n_fb) {
        float *grad_wfb = train ? ctx->grad[self->wfb_index].data : NULL;
        nn_matmul_concat_backward(fb, n_fb, self->Wfb->data, units, w.dpre, dfb,
                                  grad_wfb);
        if (self->noise_fb > 0) {
            draw_noise(self, &noise_rng, self->noise_fb, w.noise,
                       rows * (size_t)self->n_fb);
            if (train)
                noise_grad(self, rows, self->n_fb, self->Wfb->data, w.dpre, &w,
                           grad_wfb);
        }
    }
    if (train)
        nn_rows_sum_into(w.dpre, rows, units, ctx->grad[self->b_index].data);
    /* d s_prev = (1 − a) ds + dpre · Wᵀ replaces the incoming gradient. */
    for (size_t i = 0; i < n; i++)
        dstate->data[i] = (1.0f - a) * w.ds[i];
    if (self->sparse) {
        nn_csr_matmul_t_add(&self->pattern, self->W->data, w.dpre, rows,
                            dstate->data);
        if (train)
            nn_csr_grad_add(&self->pattern, s_prev->data, w.dpre, rows,
                            ctx->grad[self->w_index].data);
    } else {
        nn_matmul_concat_backward(s_prev, 1, self->W->data, units, w.dpre,
                                  dstate,
                                  train ? ctx->grad[self->w_index].data : NULL);
    }
    return NN_OK;
}

static void reservoir_destroy(nn_node *node)
{
    reservoir *self = nn_node_priv(node);
    nn_csr_release(&self->pattern);
}

const nn_node_type nn_type_reservoir = {
    .api_version = NN_API_VERSION,
    .name = "Reservoir",
    .doc = "echo-state reservoir: s <- (1 - a) s + a f((u + noise) · Win + "
           "s · W + fb · Wfb + b) + noise, W rescaled to a spectral radius, "
           "dense or sparse; not trained by default",
    .flags = NN_TYPE_STATEFUL | NN_TYPE_ROWWISE,
    .params = reservoir_params,
    .priv_size = sizeof(reservoir),
    .init_ff = reservoir_init_ff,
    .init_fb = reservoir_init_fb,
    .forward = reservoir_forward,
    .backward = reservoir_backward,
    .destroy = reservoir_destroy,
};
