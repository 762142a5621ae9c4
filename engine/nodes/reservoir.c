/*
 * reservoir.c — Reservoir: the fixed random recurrent layer of an echo
 * state network, after ReservoirPy's Reservoir and BrainPy's
 * brainpy.nn.Reservoir:
 *
 *   pre = (u + ξ_in) · Win + s · W + (g(fb) + ξ_fb) · Wfb + b
 *   internal (default):  s ← (1 − a) ⊙ s + a ⊙ f(pre) + ξ_rc
 *   external:            x ← (1 − a) ⊙ x + a ⊙ pre + ξ_rc,  s = f(x)
 *
 * output: the new s. u is the concatenation of the feedforward inputs, fb
 * of the feedback inputs, g the feedback activation (identity by default),
 * ξ_* noise of the configured gain drawn from the node's stream in the
 * session (ctx->rng) at every step, in that order: input, feedback, then
 * state noise. The external equation is ReservoirPy 0.3's forward_external:
 * the leak acts on the inner state x (a second state), W reads the emitted
 * s. a is one rate, or one per unit (the weight "lr").
 *
 * Weights. Each matrix has a Bernoulli pattern of its connectivity (drawn
 * by nn_csr_random, so O(nnz) draws whatever the size; or, by
 * connectivity_mode, an exact count as ReservoirPy draws it) and values
 * from its initializer times its scaling (Win and Wfb: one factor per
 * input row when the scaling is a list), all from the node's init stream.
 * W is then rescaled to the wanted spectral radius. W is stored dense, or
 * sparse: its nnz values as the 1-d weight "W" in the pattern's order (by
 * output unit: column by column of W, increasing rows; see sparse.h) and
 * the pattern inside the node. Both storages draw the same numbers in the
 * same order, so for one seed they hold the same matrix and `sparse` is
 * purely a matter of speed and memory. The node registers the pattern with
 * the graph (nn_node_set_weight_pattern), so an import may replace it with
 * a foreign one between steps (sparse_weight.c); nothing here depends on
 * its count but W's own length.
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
#include <stdlib.h>
#include <string.h>

/* Above this many units a dense W's spectral radius comes from the Arnoldi
 * estimate as well: dgeev is O(n³) time and n² doubles of memory. */
#define DENSE_EIGEN_MAX_UNITS 2000

typedef enum noise_law {
    NOISE_NORMAL,    /* gain · N(0, 1) */
    NOISE_UNIFORM,   /* gain · U(-1, 1) */
    NOISE_UNIFORM01  /* gain · U(0, 1): NumPy's rng.uniform(), ReservoirPy's */
} noise_law;

/* How a matrix's pattern is drawn (connectivity_mode). */
typedef enum conn_mode {
    CONN_ENTRY,   /* each entry present with probability p */
    CONN_TOTAL,   /* exactly round(p·rows·cols) entries, anywhere */
    CONN_IN,      /* each unit (column) exactly round(p·rows) inputs */
    CONN_OUT      /* each input (row) exactly round(p·cols) units */
} conn_mode;

typedef struct reservoir {
    nn_tensor *Win, *W, *b, *Wfb;
    int win_index, w_index, b_index, wfb_index;
    int units, n_in, n_fb;
    float leak;
    nn_tensor *lr;    /* per-unit leak rates, or NULL: `leak` for all */
    nn_act act, fb_act;
    int external;     /* equation "external": state x, output s = f(x) */
    int sparse;       /* W holds CSR values in pattern's order */
    nn_csr pattern;   /* W's pattern, when sparse */
    float noise_in, noise_rc, noise_fb;
    noise_law noise;
    int noise_width; /* floats per row of input/feedback noise scratch */
    int fb_width;    /* floats per row of each fb_activation scratch */
} reservoir;

static const nn_param_def reservoir_params[] = {
    {"num_unit", NN_PARAM_INT, NULL, 1, 1 << 20, NULL,
     "number of reservoir units (the size of the state s)"},
    {"leaky_rate", NN_PARAM_FLOATS, "0.3", 1e-6, 1.0, NULL,
     "leak a in (0, 1]: s <- (1 - a) s + a f(pre); 1 is no leak. One rate, "
     "or one per unit: a list of num_unit rates or an initializer drawn from "
     "the seed (kept as the non-trainable weight \"lr\")"},
    {"activation", NN_PARAM_ENUM, "tanh", 0, 0, NN_ACT_CHOICES,
     "f, applied to the pre-activation"},
    {"spectral_radius", NN_PARAM_FLOAT, "0", 0, 1e6, NULL,
     "rescale W so that its largest |eigenvalue| is this (0: keep W as "
     "drawn). Measured exactly by LAPACK (dgeev) when W is stored dense with "
     "at most 2000 units, else by ARPACK's restarted Arnoldi method"},
    {"input_scaling", NN_PARAM_FLOATS, "1", 0, 1e6, NULL,
     "factor applied to Win after drawing it: one, or one per input feature "
     "(a list as long as the concatenated inputs, or an initializer)"},
    {"bias_scaling", NN_PARAM_FLOAT, "0", 0, 1e6, NULL,
     "factor applied to the bias b after drawing it (0: no bias)"},
    {"fb_scaling", NN_PARAM_FLOATS, "1", 0, 1e6, NULL,
     "factor applied to Wfb after drawing it: one, or one per feedback "
     "feature"},
    {"input_connectivity", NN_PARAM_FLOAT, "0.1", 1e-9, 1.0, NULL,
     "density of Win in (0, 1]: each entry is present with this probability "
     "(or an exact count: connectivity_mode)"},
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
    {"noise_type", NN_PARAM_ENUM, "normal", 0, 0, "normal|uniform|uniform01",
     "noise distribution: gain * N(0, 1), gain * U(-1, 1), or gain * U(0, 1) "
     "(what ReservoirPy's noise_type=\"uniform\" draws)"},
    {"equation", NN_PARAM_ENUM, "internal", 0, 0, "internal|external",
     "internal: s <- (1 - a) s + a f(pre) + noise; external (ReservoirPy's): "
     "x <- (1 - a) x + a pre + noise, s = f(x), pre reading s; x is the "
     "second state"},
    {"fb_activation", NN_PARAM_ENUM, "identity", 0, 0, NN_ACT_CHOICES,
     "g, applied to the feedback before Wfb: pre gets (g(fb) + noise) · Wfb"},
    {"connectivity_mode", NN_PARAM_ENUM, "entry", 0, 0,
     "entry|total|in_degree|out_degree",
     "how the connectivities draw Win, W and Wfb: entry, each entry present "
     "with that probability; total, exactly round(p rows cols) entries "
     "(scipy.sparse.random, ReservoirPy's connectivity); in_degree, every "
     "unit exactly round(p fan_in) inputs (ReservoirPy's degree with "
     "direction \"in\"); out_degree, every input exactly round(p units) "
     "units (direction \"out\")"},
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
    case NN_INIT_BERNOULLI:
        return NN_OK;
    default: {
        char buf[128];
        return nn_error_set(err, NN_ERR_INVALID, "parameter '%s' must be an "
                            "elementwise initializer (Zeros, Ones, Constant, "
                            "Normal, Uniform or Bernoulli), got '%s': a "
                            "reservoir's entries are drawn one by one", param,
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

/* The n values of the FLOATS parameter `param`: its one value n times, its
 * list (which must hold n: `what` names n in the error), or n draws of its
 * initializer from the node's init stream, checked against [lo, hi].
 * Returns an array the caller frees with nn_free, or NULL and fills err. */
static double *param_vector(nn_node *node, const char *param, int n,
                            const char *what, double lo, double hi,
                            nn_error *err)
{
    const double *vals;
    int count = nn_node_param_floats(node, param, &vals);
    if (count > 1 && count != n) {
        nn_error_set(err, NN_ERR_INVALID, "parameter '%s' lists %d values "
                     "but the node has %d %s: give one value, or one per %s",
                     param, count, n, what, what);
        return NULL;
    }
    double *out = nn_malloc((size_t)n * sizeof *out);
    if (!out) {
        nn_error_set(err, NN_ERR_NOMEM, "out of memory for '%s'", param);
        return NULL;
    }
    if (count > 0) {
        for (int i = 0; i < n; i++)
            out[i] = vals[count == 1 ? 0 : i];
        return out;
    }
    nn_init init;
    if (elementwise_init(node, param, &init, err) != NN_OK) {
        nn_free(out);
        return NULL;
    }
    nn_shape shape = nn_shape1(n);
    nn_tensor t;
    memset(&t, 0, sizeof t);
    if (nn_tensor_alloc(&t, &shape, err) != NN_OK ||
        nn_init_fill(&init, &t, nn_node_init_rng(node), err) != NN_OK) {
        nn_tensor_release(&t);
        nn_free(out);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        out[i] = t.data[i];
        if (!(out[i] >= lo && out[i] <= hi)) {
            nn_error_set(err, NN_ERR_INVALID, "parameter '%s': the "
                         "initializer drew %g for %s %d, outside [%g, %g]",
                         param, out[i], what, i, lo, hi);
            nn_tensor_release(&t);
            nn_free(out);
            return NULL;
        }
    }
    nn_tensor_release(&t);
    return out;
}

/* Row i of the dense (rows, cols) t times factor[i]: Win's and Wfb's rows
 * are the input features. */
static void scale_rows(nn_tensor *t, const double *factor)
{
    size_t rows = (size_t)t->shape.dims[0], cols = (size_t)t->shape.dims[1];
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            t->data[r * cols + c] = (float)(t->data[r * cols + c] * factor[r]);
}

/* ------------------------------------------- exact-count patterns */

/* A uniform index below n. */
static uint64_t below(nn_rng *rng, uint64_t n)
{
    uint64_t i = (uint64_t)(nn_rng_uniform(rng) * (double)n);
    return i < n ? i : n - 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Fills m (rows, cols) from `n` distinct positions c * rows + r, sorted. */
static int pattern_from_positions(nn_csr *m, int rows, int cols,
                                  const uint64_t *pos, size_t n, nn_error *err)
{
    memset(m, 0, sizeof *m);
    m->rows = rows;
    m->cols = cols;
    m->nnz = n;
    m->ptr = nn_calloc((size_t)cols + 1, sizeof(size_t));
    if (rows <= 65536)
        m->idx16 = nn_malloc((n ? n : 1) * sizeof(uint16_t));
    else
        m->idx = nn_malloc((n ? n : 1) * sizeof(int));
    if (!m->ptr || (!m->idx16 && !m->idx)) {
        nn_csr_release(m);
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory for a sparse "
                            "pattern");
    }
    for (size_t k = 0; k < n; k++) {
        uint64_t c = pos[k] / (uint64_t)rows, r = pos[k] % (uint64_t)rows;
        if (m->idx16)
            m->idx16[k] = (uint16_t)r;
        else
            m->idx[k] = (int)r;
        m->ptr[c + 1]++;
    }
    for (int c = 0; c < cols; c++)
        m->ptr[c + 1] += m->ptr[c];
    return NN_OK;
}

/* Sorts pos[0..n) and drops repeats; returns how many are left. */
static size_t sort_unique(uint64_t *pos, size_t n)
{
    qsort(pos, n, sizeof *pos, cmp_u64);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (kept == 0 || pos[i] != pos[kept - 1])
            pos[kept++] = pos[i];
    return kept;
}

/* Exactly k distinct positions below total, uniformly, sorted into pos:
 * positions are drawn with repeats and the repeats drawn again until k are
 * distinct (a procedure blind to which positions it holds, so every
 * k-subset is as likely), in 8 bytes a position. Above half the positions
 * it draws the ones to leave out instead, so repeats stay rare. */
static int positions_total(uint64_t total, size_t k, nn_rng *rng,
                           uint64_t *pos, nn_error *err)
{
    if ((uint64_t)k > total / 2) {
        size_t e = (size_t)(total - k);
        uint64_t *out = nn_malloc((e ? e : 1) * sizeof *out);
        if (!out)
            return nn_error_set(err, NN_ERR_NOMEM, "out of memory for a "
                                "sparse pattern");
        int rc = positions_total(total, e, rng, out, err);
        size_t n = 0, o = 0;
        for (uint64_t p = 0; rc == NN_OK && p < total; p++) {
            if (o < e && out[o] == p)
                o++;
            else
                pos[n++] = p;
        }
        nn_free(out);
        return rc;
    }
    size_t n = 0;
    while (n < k) {
        for (size_t i = n; i < k; i++)
            pos[i] = below(rng, total);
        n = sort_unique(pos, k);
    }
    return NN_OK;
}

/* `k` distinct indices below n into out[0..k), uniformly, by a partial
 * Fisher-Yates shuffle of perm (any permutation of 0..n-1, left shuffled). */
static void choose(int *perm, int n, int k, nn_rng *rng, int *out)
{
    for (int i = 0; i < k; i++) {
        int j = i + (int)below(rng, (uint64_t)(n - i));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        out[i] = perm[i];
    }
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return x < y ? -1 : x > y;
}

/* A pattern with an exact count of entries (modes other than CONN_ENTRY);
 * the count is checked against max_nnz (0: none) before drawing. */
static int pattern_exact(nn_csr *m, conn_mode mode, int rows, int cols,
                         double density, size_t max_nnz, nn_rng *rng,
                         nn_error *err)
{
    uint64_t total = (uint64_t)rows * (uint64_t)cols;
    int per = 0;
    double want;
    if (mode == CONN_TOTAL) {
        /* scipy.sparse.random's int(round(density * m * n)) on ReservoirPy's
         * (cols, rows) layout, in its order of products; nearbyint rounds
         * half to even as Python's round does. */
        want = nearbyint(density * (double)cols * (double)rows);
    } else {
        int fan = mode == CONN_IN ? rows : cols;
        per = (int)nearbyint(density * fan);
        want = (double)per * (mode == CONN_IN ? cols : rows);
    }
    if (max_nnz && want > (double)max_nnz)
        return nn_error_set(err, NN_ERR_LIMIT, "a %d x %d pattern at "
                            "connectivity %g holds %.0f entries, more than "
                            "the %zu allowed", rows, cols, density, want,
                            max_nnz);
    size_t k = (size_t)want;
    uint64_t *pos = nn_malloc((k ? k : 1) * sizeof *pos);
    int n = mode == CONN_IN ? rows : cols;
    int *perm = NULL, *pick = NULL;
    if (mode != CONN_TOTAL) {
        perm = nn_malloc((size_t)n * sizeof *perm);
        pick = nn_malloc(((size_t)per + 1) * sizeof *pick);
    }
    int rc = NN_OK;
    if (!pos || (mode != CONN_TOTAL && (!perm || !pick))) {
        rc = nn_error_set(err, NN_ERR_NOMEM, "out of memory for a sparse "
                          "pattern");
        goto done;
    }
    if (mode == CONN_TOTAL) {
        rc = positions_total(total, k, rng, pos, err);
    } else {
        for (int i = 0; i < n; i++)
            perm[i] = i;
        /* Unit (column) c, or input (row) r, in order: k entries each. */
        int lines = mode == CONN_IN ? cols : rows;
        size_t at = 0;
        for (int line = 0; line < lines; line++) {
            choose(perm, n, per, rng, pick);
            qsort(pick, (size_t)per, sizeof *pick, cmp_int);
            for (int i = 0; i < per; i++)
                pos[at++] = mode == CONN_IN
                                ? (uint64_t)line * (uint64_t)rows +
                                      (uint64_t)pick[i]
                                : (uint64_t)pick[i] * (uint64_t)rows +
                                      (uint64_t)line;
        }
        if (mode == CONN_OUT)
            qsort(pos, k, sizeof *pos, cmp_u64);
    }
    if (rc == NN_OK)
        rc = pattern_from_positions(m, rows, cols, pos, k, err);
done:
    nn_free(pos);
    nn_free(perm);
    nn_free(pick);
    return rc;
}

static conn_mode connectivity_mode(const nn_node *node)
{
    static const char *names[] = {"entry", "total", "in_degree", "out_degree"};
    const char *mode = nn_node_param_str(node, "connectivity_mode");
    for (int i = 0; i < 4; i++)
        if (mode && strcmp(mode, names[i]) == 0)
            return (conn_mode)i;
    return CONN_ENTRY;
}

static int draw_pattern(const nn_node *node, nn_csr *m, int rows, int cols,
                        double density, size_t max_nnz, nn_rng *rng,
                        nn_error *err)
{
    conn_mode mode = connectivity_mode(node);
    if (mode == CONN_ENTRY)
        return nn_csr_random(m, rows, cols, density, max_nnz, rng, err);
    memset(m, 0, sizeof *m);
    return pattern_exact(m, mode, rows, cols, density, max_nnz, rng, err);
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
    if (draw_pattern(node, &pattern, rows, cols, density, keep ? max_nnz : 0,
                     rng, err) != NN_OK) {
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
           3 * (size_t)self->fb_width +
           (self->sparse ? nn_csr_matmul_work(&self->pattern) : 0);
}

/* Scales the dense input matrix t (Win or Wfb) by the FLOATS parameter
 * `param`: one factor as before, or one per row (input feature). */
static int scale_inputs(nn_node *node, nn_tensor *t, const char *param,
                        const char *what, nn_error *err)
{
    const double *vals;
    if (nn_node_param_floats(node, param, &vals) == 1) {
        scale_values(t, vals[0]);
        return NN_OK;
    }
    double *f = param_vector(node, param, t->shape.dims[0], what, 0, 1e6, err);
    if (!f)
        return err->code;
    scale_rows(t, f);
    nn_free(f);
    return NN_OK;
}

/* One leak rate, or the per-unit rates as the weight "lr" (not trainable:
 * a rate must stay in (0, 1]), drawn last so the other weights keep their
 * numbers. */
static int init_leak(nn_node *node, reservoir *self, nn_error *err)
{
    const double *vals;
    if (nn_node_param_floats(node, "leaky_rate", &vals) == 1) {
        self->leak = (float)vals[0];
        return NN_OK;
    }
    double *rates = param_vector(node, "leaky_rate", self->units, "unit",
                                 1e-6, 1.0, err);
    if (!rates)
        return err->code;
    nn_init zeros = {NN_INIT_ZEROS, 0, 0};
    nn_shape shape = nn_shape1(self->units);
    self->lr = nn_node_add_weight(node, "lr", &shape, &zeros, 0, err);
    if (self->lr)
        for (int j = 0; j < self->units; j++)
            self->lr->data[j] = (float)rates[j];
    nn_free(rates);
    return self->lr ? NN_OK : err->code;
}

static noise_law noise_law_of(const char *name)
{
    return strcmp(name, "uniform") == 0   ? NOISE_UNIFORM
           : strcmp(name, "uniform01") == 0 ? NOISE_UNIFORM01
                                            : NOISE_NORMAL;
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
    self->act = (nn_act)nn_act_parse(nn_node_param_str(node, "activation"));
    self->fb_act = (nn_act)nn_act_parse(nn_node_param_str(node,
                                                          "fb_activation"));
    self->external = strcmp(nn_node_param_str(node, "equation"),
                            "external") == 0;
    self->sparse = use_sparse(node, units);
    self->noise_in = (float)nn_node_param_float(node, "noise_in");
    self->noise_rc = (float)nn_node_param_float(node, "noise_rc");
    self->noise_fb = (float)nn_node_param_float(node, "noise_fb");
    self->noise = noise_law_of(nn_node_param_str(node, "noise_type"));
    /* Noise comes from the session's stream: with it, sessions cannot share
     * one run over their gathered rows. */
    if (self->noise_in > 0 || self->noise_rc > 0)
        nn_node_set_rowwise(node, 0);
    self->wfb_index = -1;
    /* Everything this node will hold, checked before anything is drawn: a
     * few bytes of request must not cost seconds and gigabytes to refuse. */
    double density = nn_node_param_float(node, "rc_connectivity");
    const double *rates;
    int per_unit_leak = nn_node_param_floats(node, "leaky_rate", &rates) != 1;
    double need = (double)total * units + units * (1.0 + per_unit_leak) +
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
                                  "Win_initializer", 1.0, NULL,
                                  &self->win_index, err)) ||
        scale_inputs(node, self->Win, "input_scaling", "input feature",
                     err) != NN_OK ||
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
    if ((rc = init_leak(node, self, err)) != NN_OK)
        return rc;
    nn_shape s = nn_shape1(units);
    rc = nn_node_add_state(node, "s", &s, err);
    if (rc < 0)
        return rc;
    /* The external equation's inner state x, s being f(x). */
    if (self->external && (rc = nn_node_add_state(node, "x", &s, err)) < 0)
        return rc;
    /* pre, f(pre), the state gradient, the pre-activation gradient, the
     * input noise (init_fb widens it for feedback noise), the feedback
     * activation's three (init_fb) and the sparse product's scratch. */
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
                                  "Wfb_initializer", 1.0, NULL,
                                  &self->wfb_index, err)) ||
        scale_inputs(node, self->Wfb, "fb_scaling", "feedback feature",
                     err) != NN_OK)
        return err->code;
    if (total > self->noise_width)
        self->noise_width = total;
    if (self->fb_act != NN_ACT_IDENTITY)
        self->fb_width = total;
    nn_node_set_work(node, work_per_row(self));
    return NN_OK;
}

/* The scratch of one step, carved from ctx->work: fbx, fbh and fbd are
 * the concatenated feedback, g of it and its gradient (fb_activation). */
typedef struct scratch {
    float *pre, *fpre, *ds, *dpre, *noise, *fbx, *fbh, *fbd, *spmm;
} scratch;

static scratch carve(const reservoir *self, float *work, size_t rows)
{
    size_t n = rows * (size_t)self->units;
    size_t fbn = rows * (size_t)self->fb_width;
    float *noise = work + 4 * n;
    float *fbx = noise + rows * (size_t)self->noise_width;
    scratch w = {work, work + n, work + 2 * n, work + 3 * n, noise,
                 fbx,  fbx + fbn, fbx + 2 * fbn, fbx + 3 * fbn};
    return w;
}

static void draw_noise(const reservoir *self, nn_rng *rng, float gain,
                       float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double x = self->noise == NOISE_NORMAL  ? nn_rng_normal(rng)
                   : self->noise == NOISE_UNIFORM ? 2 * nn_rng_uniform(rng) - 1
                                                  : nn_rng_uniform(rng);
        dst[i] = gain * (float)x;
    }
}

/* Copies the feedback inputs side by side into w->fbx (rows x n_fb) and
 * g of them into w->fbh. */
static void feedback_activation(const reservoir *self, const nn_tensor *fb,
                                int n_fb, size_t rows, const scratch *w)
{
    size_t width = (size_t)self->n_fb, at = 0;
    for (int i = 0; i < n_fb; i++) {
        size_t cols = nn_tensor_numel(&fb[i]) / rows;
        for (size_t r = 0; r < rows; r++)
            memcpy(w->fbx + r * width + at, fb[i].data + r * cols,
                   cols * sizeof(float));
        at += cols;
    }
    nn_act_forward(self->fb_act, w->fbx, w->fbh, rows, width);
}

/* pre = b + (u + ξ_in) · Win + s · W + (g(fb) + ξ_fb) · Wfb, the noise
 * drawn from rng: backward hands it a copy of the step's stream to
 * recompute the same pre. (u + ξ) · Win is computed as u · Win + ξ · Win so
 * the inputs are never copied. */
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
        if (self->fb_act != NN_ACT_IDENTITY) {
            feedback_activation(self, fb, n_fb, rows, w);
            nn_shape shape = nn_shape2((int)rows, self->n_fb);
            nn_tensor h = nn_tensor_view(w->fbh, &shape);
            nn_matmul_concat(&h, 1, self->Wfb->data, units, 1.0f, w->pre);
        } else {
            nn_matmul_concat(fb, n_fb, self->Wfb->data, units, 1.0f, w->pre);
        }
        if (self->noise_fb > 0) {
            nn_shape shape = nn_shape2((int)rows, self->n_fb);
            nn_tensor noise = nn_tensor_view(w->noise, &shape);
            draw_noise(self, rng, self->noise_fb, w->noise,
                       rows * (size_t)self->n_fb);
            nn_matmul_concat(&noise, 1, self->Wfb->data, units, 1.0f, w->pre);
        }
    }
}

/* The elementwise part beyond nn_act_leak's: per-unit leak rates, and the
 * external equation, x <- (1 - a) x + a pre + noise and s = f(x). */
static void leak_step(const reservoir *self, const float *pre, float *fpre,
                      float *s, float *x, const float *noise, float *out,
                      size_t rows)
{
    size_t units = (size_t)self->units;
    const float *lr = self->lr ? self->lr->data : NULL;
    if (!self->external)
        nn_act_forward(self->act, pre, fpre, rows, units);
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < units; j++) {
            size_t i = r * units + j;
            float a = lr ? lr[j] : self->leak;
            float *dst = self->external ? x : s;
            float v = (1.0f - a) * dst[i] +
                      a * (self->external ? pre[i] : fpre[i]);
            if (noise)
                v += noise[i];
            dst[i] = v;
        }
    if (self->external)
        nn_act_forward(self->act, x, s, rows, units);
    memcpy(out, s, rows * units * sizeof(float));
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
    if (self->lr || self->external)
        leak_step(self, w.pre, w.fpre, s->data,
                  self->external ? ctx->state[1].data : NULL, noise,
                  out->data, rows);
    else
        nn_act_leak(self->act, w.pre, s->data, self->leak, noise, out->data,
                    rows, (size_t)self->units);
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

/* The feedback's gradients through g: dWfb += g(fb)ᵀ · dpre and
 * dfb[i] += g'(fb) ⊙ (dpre · Wfbᵀ), w->fbx and w->fbh holding fb and g(fb)
 * from pre_activation. */
static void feedback_backward(const reservoir *self, const nn_tensor *fb,
                              int n_fb, size_t rows, const float *dpre,
                              nn_tensor *dfb, float *grad_wfb,
                              const scratch *w)
{
    size_t width = (size_t)self->n_fb;
    nn_shape shape = nn_shape2((int)rows, self->n_fb);
    nn_tensor h = nn_tensor_view(w->fbh, &shape);
    nn_tensor dh = nn_tensor_view(w->fbd, &shape);
    memset(w->fbd, 0, rows * width * sizeof(float));
    nn_matmul_concat_backward(&h, 1, self->Wfb->data, self->units, dpre,
                              dfb ? &dh : NULL, grad_wfb);
    if (!dfb)
        return;
    /* g'(fb) ⊙ dh in place of dh, then scattered back to the inputs. */
    nn_act_backward(self->fb_act, w->fbx, w->fbh, w->fbd, w->fbd, rows, width);
    size_t at = 0;
    for (int i = 0; i < n_fb; i++) {
        size_t cols = nn_tensor_numel(&fb[i]) / rows;
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++)
                dfb[i].data[r * cols + c] += w->fbd[r * width + at + c];
        at += cols;
    }
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
    const float *lr = self->lr ? self->lr->data : NULL;
    scratch w = carve(self, ctx->work, rows);
    nn_rng noise_rng = *ctx->rng;
    pre_activation(self, ff, n_ff, fb, n_fb, s_prev, &noise_rng, &w);
    /* The new s is both the output and the next step's state. */
    for (size_t i = 0; i < n; i++)
        w.ds[i] = dout->data[i] + dstate->data[i];
    if (self->external) {
        /* s = f(x_new): dx = f'(x_new) ds + the next step's dx; then
         * dpre = a dx and dx_prev = (1 - a) dx. */
        const float *x_new = ctx->state_next[1].data;
        float *dx = ctx->dstate[1].data;
        nn_act_backward(self->act, x_new, out->data, w.ds, w.dpre, rows,
                        (size_t)units);
        for (size_t i = 0; i < n; i++) {
            float a = lr ? lr[i % (size_t)units] : self->leak;
            float g = w.dpre[i] + dx[i];
            w.dpre[i] = a * g;
            dx[i] = (1.0f - a) * g;
        }
    } else {
        nn_act_forward(self->act, w.pre, w.fpre, rows, (size_t)units);
        for (size_t i = 0; i < n; i++)
            w.dpre[i] = (lr ? lr[i % (size_t)units] : self->leak) * w.ds[i];
        nn_act_backward(self->act, w.pre, w.fpre, w.dpre, w.dpre, rows,
                        (size_t)units);
    }
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
        if (self->fb_act != NN_ACT_IDENTITY)
            feedback_backward(self, fb, n_fb, rows, w.dpre, dfb, grad_wfb, &w);
        else
            nn_matmul_concat_backward(fb, n_fb, self->Wfb->data, units, w.dpre,
                                      dfb, grad_wfb);
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
    /* d s_prev = (1 − a) ds + dpre · Wᵀ replaces the incoming gradient
     * (only dpre · Wᵀ in the external equation: s_prev reaches the new
     * state through W alone). */
    float keep = 1.0f - self->leak;
    for (size_t i = 0; i < n; i++)
        dstate->data[i] = self->external ? 0.0f
                          : lr ? (1.0f - lr[i % (size_t)units]) * w.ds[i]
                               : keep * w.ds[i];
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
           "s · W + g(fb) · Wfb + b) + noise, or ReservoirPy's external "
           "equation; W rescaled to a spectral radius, dense or sparse; not "
           "trained by default",
    .flags = NN_TYPE_STATEFUL | NN_TYPE_ROWWISE,
    .params = reservoir_params,
    .priv_size = sizeof(reservoir),
    .init_ff = reservoir_init_ff,
    .init_fb = reservoir_init_fb,
    .forward = reservoir_forward,
    .backward = reservoir_backward,
    .destroy = reservoir_destroy,
};
