/*
 * ipreservoir.c — IPReservoir: a reservoir whose units adapt their gain a
 * and bias b by intrinsic plasticity, after ReservoirPy's IPReservoir
 * (Triesch 2005; Schrauwen et al. 2008):
 *
 *   r ← (1 − lr) · r + lr · (u · Win + x · W + fb · Wfb + bias)
 *   x ← f(a ⊙ r + b)                            output: the new x
 *
 * with f tanh or sigmoid; r (the internal state) and x are the node's two
 * states. The leak acts on r, before f, as ReservoirPy's IPReservoir does
 * (its "external" equation is Reservoir's other form); W reads the output x.
 *
 * nn_ip_fit (nn_train.h) adapts a and b so that each unit's output follows
 * a target distribution: for tanh a normal N(mu, sigma²), for sigmoid an
 * exponential of mean mu. After each step, with y the unit's output and r
 * its internal state:
 *   tanh:    Δb = −η (−mu/σ² + (y/σ²)(2σ² + 1 − y² + mu·y))
 *   sigmoid: Δb =  η (1 − (2 + 1/mu) y + y²/mu)
 *   both:    Δa =  η / a + Δb · r
 * (the gradients of the KL divergence to the target; η = learning_rate).
 *
 * Weights are drawn dense: every entry of Win, W and Wfb is present with
 * its connectivity's probability (one Bernoulli draw per entry, then the
 * values from the initializer, all from the node's init stream), W is then
 * rescaled to the spectral radius. a starts at ones, b at zeros. None is
 * trainable by gradient (there is no backward); import and export see them
 * as ordinary weights, so a ReservoirPy model's a and b port as they are.
 */
#include "builtins.h"
#include "matmul.h"
#include "nn_linalg.h"
#include "nn_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define IP_EIGEN_MAX_UNITS 2000

typedef struct ipres {
    nn_tensor *Win, *W, *bias, *a, *b, *Wfb;
    int units;
    float leak;
    int sigmoid; /* else tanh */
    double mu, sigma, eta;
} ipres;

static const nn_param_def ip_params[] = {
    {"num_unit", NN_PARAM_INT, NULL, 1, 1 << 16, NULL,
     "number of units (the size of r and x)"},
    {"leaky_rate", NN_PARAM_FLOAT, "1", 1e-6, 1.0, NULL,
     "leak lr in (0, 1] on the internal state r (1, ReservoirPy "
     "IPReservoir's default: no leak)"},
    {"activation", NN_PARAM_ENUM, "tanh", 0, 0, "tanh|sigmoid",
     "f: tanh (target normal) or sigmoid (target exponential)"},
    {"mu", NN_PARAM_FLOAT, "0", -1e6, 1e6, NULL,
     "mean of the target distribution (sigmoid: > 0)"},
    {"sigma", NN_PARAM_FLOAT, "1", 1e-9, 1e6, NULL,
     "standard deviation of the target normal (tanh)"},
    {"learning_rate", NN_PARAM_FLOAT, "0.0005", 0, 1e6, NULL,
     "η of the plasticity rule"},
    {"spectral_radius", NN_PARAM_FLOAT, "0", 0, 1e6, NULL,
     "rescale W so that its largest |eigenvalue| is this (0: as drawn)"},
    {"input_scaling", NN_PARAM_FLOAT, "1", 0, 1e6, NULL,
     "factor applied to Win after drawing it"},
    {"bias_scaling", NN_PARAM_FLOAT, "0", 0, 1e6, NULL,
     "factor applied to the input bias after drawing it (0: none)"},
    {"fb_scaling", NN_PARAM_FLOAT, "1", 0, 1e6, NULL,
     "factor applied to Wfb after drawing it"},
    {"input_connectivity", NN_PARAM_FLOAT, "0.1", 1e-9, 1.0, NULL,
     "density of Win in (0, 1]"},
    {"rc_connectivity", NN_PARAM_FLOAT, "0.1", 1e-9, 1.0, NULL,
     "density of W in (0, 1]"},
    {"fb_connectivity", NN_PARAM_FLOAT, "0.1", 1e-9, 1.0, NULL,
     "density of Wfb in (0, 1]"},
    {"Win_initializer", NN_PARAM_INIT, "Uniform(-1, 1)", 0, 0, NULL,
     "values of Win's present entries"},
    {"W_initializer", NN_PARAM_INIT, "Normal(0, 1)", 0, 0, NULL,
     "values of W's present entries, before the spectral rescaling"},
    {"Wfb_initializer", NN_PARAM_INIT, "Uniform(-1, 1)", 0, 0, NULL,
     "values of Wfb's present entries"},
    {"bias_initializer", NN_PARAM_INIT, "Uniform(-1, 1)", 0, 0, NULL,
     "values of the input bias"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

/* A (rows, cols) weight: the initializer's values, then each entry kept
 * with probability density and scaled. */
static nn_tensor *masked_weight(nn_node *node, const char *name, int rows,
                                int cols, const char *init_param,
                                const char *density_param, float scale,
                                nn_error *err)
{
    nn_init init = nn_node_param_init(node, init_param);
    nn_shape shape = nn_shape2(rows, cols);
    nn_tensor *w = nn_node_add_weight(node, name, &shape, &init, 0, err);
    if (!w)
        return NULL;
    nn_rng *rng = nn_node_init_rng(node);
    double density = nn_node_param_float(node, density_param);
    for (size_t k = 0; k < nn_tensor_numel(w); k++)
        w->data[k] = nn_rng_bernoulli(rng, density) ? w->data[k] * scale
                                                    : 0.0f;
    return w;
}

static int rescale(ipres *self, double want, nn_error *err)
{
    size_t n = (size_t)self->units;
    double *vals = malloc(n * n * sizeof(double));
    if (!vals)
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory for the "
                            "spectral radius of %zu units", n);
    for (size_t k = 0; k < n * n; k++)
        vals[k] = self->W->data[k];
    double rho = 0;
    int rc = nn_spectral_radius_dense(self->units, vals, &rho, err);
    free(vals);
    if (rc != NN_OK)
        return nn_error_prefix(err, "spectral_radius");
    if (!(rho > 0))
        return nn_error_set(err, NN_ERR_INVALID, "cannot rescale W to "
                            "spectral radius %g: the drawn W has spectral "
                            "radius 0 (raise rc_connectivity or num_unit)",
                            want);
    for (size_t k = 0; k < n * n; k++)
        self->W->data[k] = (float)(self->W->data[k] * (want / rho));
    return NN_OK;
}

static int ip_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                      nn_error *err)
{
    ipres *self = nn_node_priv(node);
    int total;
    int rc = nn_flat_inputs(node, ff, n_ff, 0, &total, err);
    if (rc != NN_OK)
        return rc;
    self->units = (int)nn_node_param_int(node, "num_unit");
    self->leak = (float)nn_node_param_float(node, "leaky_rate");
    self->sigmoid = strcmp(nn_node_param_str(node, "activation"),
                           "sigmoid") == 0;
    self->mu = nn_node_param_float(node, "mu");
    self->sigma = nn_node_param_float(node, "sigma");
    self->eta = nn_node_param_float(node, "learning_rate");
    if (self->sigmoid && !(self->mu > 0))
        return nn_error_set(err, NN_ERR_INVALID, "mu must be > 0 with a "
                            "sigmoid: it is the mean of the target "
                            "exponential");
    int U = self->units;
    float in_scale = (float)nn_node_param_float(node, "input_scaling");
    if (!(self->Win = masked_weight(node, "Win", total, U, "Win_initializer",
                                    "input_connectivity", in_scale, err)) ||
        !(self->W = masked_weight(node, "W", U, U, "W_initializer",
                                  "rc_connectivity", 1.0f, err)))
        return err->code;
    /* dgeev is O(n³) time and n² doubles: past this, import a W drawn
     * and scaled elsewhere. */
    double radius = nn_node_param_float(node, "spectral_radius");
    if (radius > 0 && U > IP_EIGEN_MAX_UNITS)
        return nn_error_set(err, NN_ERR_INVALID, "spectral_radius: an "
                            "IPReservoir measures W's spectrum exactly, up to "
                            "%d units (not %d); set spectral_radius 0 and "
                            "import W", IP_EIGEN_MAX_UNITS, U);
    if (radius > 0 && (rc = rescale(self, radius, err)) != NN_OK)
        return rc;
    nn_init init = nn_node_param_init(node, "bias_initializer");
    nn_shape vec = nn_shape1(U);
    if (!(self->bias = nn_node_add_weight(node, "bias", &vec, &init, 0, err)))
        return err->code;
    float bias_scale = (float)nn_node_param_float(node, "bias_scaling");
    for (int u = 0; u < U; u++)
        self->bias->data[u] *= bias_scale;
    nn_init ones = {0}, zeros = {0};
    ones.kind = NN_INIT_ONES;
    zeros.kind = NN_INIT_ZEROS;
    if (!(self->a = nn_node_add_weight(node, "a", &vec, &ones, 0, err)) ||
        !(self->b = nn_node_add_weight(node, "b", &vec, &zeros, 0, err)))
        return err->code;
    if ((rc = nn_node_add_state(node, "r", &vec, err)) < 0 ||
        (rc = nn_node_add_state(node, "x", &vec, err)) < 0)
        return rc;
    nn_node_set_work(node, (size_t)U);
    nn_node_set_output_shape(node, &vec);
    return NN_OK;
}

static int ip_init_fb(nn_node *node, const nn_shape *fb, int n_fb,
                      nn_error *err)
{
    ipres *self = nn_node_priv(node);
    int total;
    int rc = nn_flat_inputs(node, fb, n_fb, 1, &total, err);
    if (rc != NN_OK)
        return rc;
    if (!(self->Wfb = masked_weight(node, "Wfb", total, self->units,
                                    "Wfb_initializer", "fb_connectivity",
                                    (float)nn_node_param_float(node,
                                                               "fb_scaling"),
                                    err)))
        return err->code;
    return NN_OK;
}

static int ip_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                      const nn_tensor *fb, int n_fb, nn_tensor *out,
                      nn_ctx *ctx)
{
    const ipres *self = nn_node_priv_const(node);
    nn_tensor *r = &ctx->state[0], *x = &ctx->state[1];
    size_t rows = nn_tensor_rows(r), U = (size_t)self->units;
    float *pre = ctx->work;
    nn_rows_set(pre, rows, self->bias->data, self->units);
    nn_matmul_concat(ff, n_ff, self->Win->data, self->units, 1.0f, pre);
    nn_matmul_concat(x, 1, self->W->data, self->units, 1.0f, pre);
    if (n_fb)
        nn_matmul_concat(fb, n_fb, self->Wfb->data, self->units, 1.0f, pre);
    for (size_t i = 0; i < rows * U; i++) {
        size_t u = i % U;
        r->data[i] = (1.0f - self->leak) * r->data[i] + self->leak * pre[i];
        float z = self->a->data[u] * r->data[i] + self->b->data[u];
        out->data[i] = self->sigmoid ? 1.0f / (1.0f + expf(-z)) : tanhf(z);
    }
    memcpy(x->data, out->data, rows * U * sizeof(float));
    return NN_OK;
}

const nn_node_type nn_type_ipreservoir = {
    .api_version = NN_API_VERSION,
    .name = "IPReservoir",
    .doc = "reservoir with intrinsic plasticity: x = f(a ⊙ r + b), a and b "
           "adapted by fit method ip (ReservoirPy's IPReservoir)",
    .flags = NN_TYPE_STATEFUL | NN_TYPE_ROWWISE,
    .params = ip_params,
    .priv_size = sizeof(ipres),
    .init_ff = ip_init_ff,
    .init_fb = ip_init_fb,
    .forward = ip_forward,
};

/* ------------------------------------------------------------ the trainer */

static int is_ip(const nn_node *node)
{
    return nn_node_type_of(node) == &nn_type_ipreservoir;
}

int nn_ip_check(nn_graph *g, nn_error *err)
{
    const nn_node *seq = nn_graph_sequence_node(g);
    if (seq)
        return nn_error_set(err, NN_ERR_UNSUPPORTED, "node '%s' (%s) is "
                            "bidirectional and needs whole sequences, and "
                            "intrinsic plasticity adapts step by step",
                            nn_node_name(seq), nn_node_type_of(seq)->name);
    for (int i = 0; i < nn_graph_node_count(g); i++)
        if (is_ip(nn_graph_node_at(g, i)))
            return NN_OK;
    return nn_error_set(err, NN_ERR_UNSUPPORTED, "the network has no "
                        "IPReservoir node for intrinsic plasticity to adapt");
}

/* One plasticity update of every unit of one row: r and y that row's
 * internal state and output. */
static void ip_update(ipres *self, const float *r, const float *y)
{
    double s2 = self->sigma * self->sigma;
    for (int u = 0; u < self->units; u++) {
        double db = self->sigmoid
                        ? self->eta * (1 - (2 + 1 / self->mu) * y[u] +
                                       (double)y[u] * y[u] / self->mu)
                        : -self->eta * (-self->mu / s2 +
                                        y[u] / s2 *
                                            (2 * s2 + 1 - (double)y[u] * y[u] +
                                             self->mu * y[u]));
        double da = self->eta / self->a->data[u] + db * r[u];
        self->a->data[u] = (float)(self->a->data[u] + da);
        self->b->data[u] = (float)(self->b->data[u] + db);
    }
}

/* Copies step t of every input into the session's entry buffers. */
static int load_step(nn_session *s, const nn_binding *inputs, int n_inputs,
                     int batch, int T, int t, nn_error *err)
{
    for (int i = 0; i < n_inputs; i++) {
        nn_tensor *dst = nn_session_input(s, inputs[i].name);
        if (!dst)
            return nn_error_set(err, NN_ERR_NOT_FOUND, "input '%s': no such "
                                "entry", inputs[i].name);
        const nn_tensor *src = inputs[i].tensor;
        size_t per = nn_tensor_numel(dst) / (size_t)batch;
        if (nn_tensor_numel(src) != per * (size_t)batch * (size_t)T)
            return nn_error_set(err, NN_ERR_SHAPE, "input '%s' does not hold "
                                "%d sequences of %d steps", inputs[i].name,
                                batch, T);
        for (int n = 0; n < batch; n++)
            memcpy(dst->data + (size_t)n * per,
                   src->data + ((size_t)n * (size_t)T + (size_t)t) * per,
                   per * sizeof(float));
    }
    return NN_OK;
}

int nn_ip_fit(nn_graph *g, const nn_binding *inputs, int n_inputs, int batch,
              int num_steps, int epochs, int warmup, long *updates,
              nn_error *err)
{
    if (updates)
        *updates = 0;
    int rc = nn_ip_check(g, err);
    if (rc != NN_OK)
        return rc;
    if (epochs < 1)
        return nn_error_set(err, NN_ERR_INVALID, "epochs must be >= 1");
    if (warmup < 0 || warmup >= num_steps)
        return nn_error_set(err, NN_ERR_INVALID, "warmup must be in [0, %d) "
                            "for %d steps", num_steps, num_steps);
    nn_session *s = nn_session_new(g, batch, nn_graph_seed(g), err);
    if (!s)
        return err->code;
    long done = 0;
    for (int e = 0; rc == NN_OK && e < epochs; e++) {
        rc = nn_session_reset(s, err);
        for (int t = 0; rc == NN_OK && t < num_steps; t++) {
            rc = nn_graph_abort_check(g, err);
            if (rc == NN_OK)
                rc = load_step(s, inputs, n_inputs, batch, num_steps, t, err);
            if (rc == NN_OK)
                rc = nn_session_step(s, 0, err);
            if (rc != NN_OK || t < warmup)
                continue;
            for (int i = 0; i < nn_graph_node_count(g); i++) {
                nn_node *node = nn_graph_node_at(g, i);
                if (!is_ip(node))
                    continue;
                ipres *self = nn_node_priv(node);
                const float *r = nn_session_state(s, nn_node_name(node), 0)
                                     ->data;
                const float *y = nn_session_state(s, nn_node_name(node), 1)
                                     ->data;
                for (int n = 0; n < batch; n++)
                    ip_update(self, r + (size_t)n * self->units,
                              y + (size_t)n * self->units);
            }
            done++;
        }
    }
    nn_session_free(s);
    if (updates)
        *updates = done;
    return rc;
}
