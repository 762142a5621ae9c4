/*
 * readout.c — the linear-readout trainers: offline ridge regression and
 * online recursive least squares (FORCE). See nn_train.h.
 *
 * Both see a readout as y = x · Θ with x = [ff inputs, feedback inputs, 1]
 * and Θ = [W; Wfb; b], the layout NN_TYPE_LINEAR promises. Sums are kept in
 * double: XᵀX over a long sequence loses the small eigenvalues in float.
 */
#include "nn_internal.h"
#include "nn_train.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* See linalg.c for why the hidden length argument is passed. */
extern void dposv_(const char *uplo, const int *n, const int *nrhs, double *a,
                   const int *lda, double *b, const int *ldb, int *info,
                   size_t uplo_len);

typedef struct readout {
    char name[NN_NAME_MAX];
    int d_ff, d_fb, bias; /* feature blocks: ff, feedback, the constant 1 */
    int D, U;             /* features (with the 1), output units */
    double *xtx, *xty;    /* ridge: D x D, D x U */
    double *P, *theta;    /* rls: D x D, D x U */
} readout;

typedef struct readouts {
    readout *r;
    int n;
} readouts;

static void readouts_release(readouts *rs)
{
    for (int i = 0; rs->r && i < rs->n; i++) {
        nn_free(rs->r[i].xtx);
        nn_free(rs->r[i].xty);
        nn_free(rs->r[i].P);
        nn_free(rs->r[i].theta);
    }
    nn_free(rs->r);
    rs->r = NULL;
    rs->n = 0;
}

/* The readout node behind a target name, with its feature layout. */
static int describe_readout(nn_graph *g, const char *name, readout *out,
                            nn_node **node_out, nn_error *err)
{
    nn_node *node = nn_graph_find(g, name);
    if (!node)
        return nn_error_set(err, NN_ERR_NOT_FOUND, "target '%s': no such node",
                            name);
    if (!(node->type->flags & NN_TYPE_LINEAR))
        return nn_error_set(err, NN_ERR_UNSUPPORTED, "node '%s' (%s) is not a "
                            "linear readout, so ridge and rls cannot train it; "
                            "use a Dense or LinearReadout, or bptt", name,
                            node->type->name);
    nn_tensor *W = nn_node_weight(node, "W");
    nn_tensor *Wfb = nn_node_weight(node, "Wfb");
    nn_tensor *b = nn_node_weight(node, "b");
    if (!W || W->shape.ndim != 2)
        return nn_error_set(err, NN_ERR_UNSUPPORTED, "node '%s' (%s) declares "
                            "a linear readout but has no 2-d weight 'W'", name,
                            node->type->name);
    int w_index = -1;
    for (int i = 0; i < node->n_weights; i++)
        if (&node->weights[i]->t == W)
            w_index = i;
    if (!node->weights[w_index]->trainable)
        return nn_error_set(err, NN_ERR_INVALID, "node '%s' is not trainable "
                            "(trainable=false)", name);
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name);
    out->U = W->shape.dims[1];
    out->d_ff = W->shape.dims[0];
    out->d_fb = Wfb ? Wfb->shape.dims[0] : 0;
    out->bias = b != NULL;
    out->D = out->d_ff + out->d_fb + out->bias;
    /* XᵀX (ridge) or P (RLS) is D x D doubles: held to the graph's cap on
     * what a session may hold, as a tape is. */
    size_t doubles = (size_t)out->D * (size_t)out->D;
    if (g->max_session_floats && doubles > g->max_session_floats / 2)
        return nn_error_set(err, NN_ERR_LIMIT, "readout '%s' has %d features: "
                            "its %d x %d matrix of doubles would pass the "
                            "network's limit of %zu floats", name, out->D,
                            out->D, out->D, g->max_session_floats);
    nn_shape os = node->out_shape;
    if (os.ndim < 1 || os.dims[os.ndim - 1] != out->U)
        return nn_error_set(err, NN_ERR_UNSUPPORTED, "node '%s': its output's "
                            "last axis is not W's columns", name);
    *node_out = node;
    return NN_OK;
}

static int readouts_init(readouts *rs, nn_graph *g, const nn_binding *targets,
                         int n_targets, nn_error *err)
{
    memset(rs, 0, sizeof *rs);
    if (!g->built)
        return nn_error_set(err, NN_ERR_STATE, "training needs a built graph");
    if (n_targets < 1)
        return nn_error_set(err, NN_ERR_INVALID, "no targets: give one for at "
                            "least one readout node");
    if (g->sequence)
        return nn_error_set(err, NN_ERR_UNSUPPORTED, "node '%s' (%s) is "
                            "bidirectional and needs whole sequences, and "
                            "the readout fits go step by step: train the "
                            "network by BPTT", g->sequence->name,
                            g->sequence->type->name);
    if (!(rs->r = nn_calloc((size_t)n_targets, sizeof *rs->r)))
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    for (int k = 0; k < n_targets; k++) {
        nn_node *node;
        int rc = describe_readout(g, targets[k].name, &rs->r[k], &node, err);
        if (rc != NN_OK)
            return rc;
        rs->n = k + 1;
        for (int j = 0; j < k; j++)
            if (strcmp(rs->r[j].name, targets[k].name) == 0)
                return nn_error_set(err, NN_ERR_INVALID, "target '%s' given "
                                    "twice", targets[k].name);
    }
    return NN_OK;
}

int nn_readouts_check(nn_graph *g, const nn_binding *targets, int n_targets,
                      size_t *bytes, nn_error *err)
{
    readouts rs;
    int rc = readouts_init(&rs, g, targets, n_targets, err);
    size_t total = 0;
    for (int i = 0; rc == NN_OK && i < rs.n; i++) {
        /* D is held under the session cap, so this does not overflow. */
        size_t D = (size_t)rs.r[i].D, U = (size_t)rs.r[i].U;
        total += (D * D + D * U) * sizeof(double);
    }
    readouts_release(&rs);
    if (bytes)
        *bytes = total;
    return rc;
}

/* ------------------------------------------------------ running the data */

/* What one run over a sequence needs per readout. */
typedef struct feed {
    nn_node *node;
    const nn_tensor *target; /* (batch, T, exit shape) */
    int rows;                /* feature rows per step: batch · leading dims */
    float *fb_seen;          /* rows x d_fb: the feedback it saw this step */
    int teacher;             /* its output is fed back: force the target */
} feed;

static int is_fb_sender(const nn_graph *g, const nn_node *node)
{
    for (int n = 0; n < g->n_nodes; n++)
        for (int k = 0; k < g->nodes[n]->n_fb; k++)
            if (g->nodes[n]->fb[k] == node)
                return 1;
    return 0;
}

/* Concatenates row r of the tensors on their last axis into x. */
static void concat_row(const nn_tensor *t, int n, size_t r, double *x)
{
    for (int i = 0; i < n; i++) {
        int c = nn_tensor_cols(&t[i]);
        const float *src = t[i].data + r * (size_t)c;
        for (int j = 0; j < c; j++)
            *x++ = src[j];
    }
}

static void concat_row_f(const nn_tensor *t, int n, size_t r, float *x)
{
    for (int i = 0; i < n; i++) {
        int c = nn_tensor_cols(&t[i]);
        memcpy(x, t[i].data + r * (size_t)c, (size_t)c * sizeof(float));
        x += c;
    }
}

/* Feature row r of a readout after a step: ff now, feedback as seen. */
static void features(const readout *ro, const feed *f, const node_run *run,
                     size_t r, double *x)
{
    concat_row(run->ff, f->node->n_ff, r, x);
    for (int j = 0; j < ro->d_fb; j++)
        x[ro->d_ff + j] = f->fb_seen[r * (size_t)ro->d_fb + j];
    if (ro->bias)
        x[ro->D - 1] = 1.0;
}

/* The target of batch row b at step t, (exit shape) floats. */
static const float *target_at(const feed *f, int b, int t, int T)
{
    size_t per = nn_tensor_numel(f->target) /
                 ((size_t)f->target->shape.dims[0] * (size_t)T);
    return f->target->data + ((size_t)b * (size_t)T + (size_t)t) * per;
}

typedef struct run_ctx {
    nn_session *s;
    const nn_tensor **bound;
    feed *feeds;
    int n;
    int T;
} run_ctx;

static void run_ctx_release(run_ctx *rc)
{
    for (int i = 0; rc->feeds && i < rc->n; i++)
        nn_free(rc->feeds[i].fb_seen);
    nn_free(rc->feeds);
    nn_free(rc->bound);
}

static int run_ctx_init(run_ctx *rc, const readouts *rs, nn_session *s,
                        const nn_binding *inputs, int n_inputs,
                        const nn_binding *targets, int n_targets,
                        int num_steps, nn_error *err)
{
    memset(rc, 0, sizeof *rc);
    nn_graph *g = s->g;
    rc->s = s;
    rc->T = num_steps;
    rc->n = rs->n;
    if (num_steps < 1)
        return nn_error_set(err, NN_ERR_INVALID, "no steps to train on");
    if (!(rc->bound = nn_calloc((size_t)g->n_entries + 1, sizeof *rc->bound)) ||
        !(rc->feeds = nn_calloc((size_t)rs->n, sizeof *rc->feeds)))
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    int ret = nn_session_bind_sequence(s, inputs, n_inputs, num_steps,
                                       rc->bound, err);
    if (ret != NN_OK)
        return ret;
    if (n_targets != rs->n)
        return nn_error_set(err, NN_ERR_INVALID, "%d targets given; the "
                            "trainer was made for %d", n_targets, rs->n);
    for (int i = 0; i < rs->n; i++) {
        const readout *ro = &rs->r[i];
        feed *f = &rc->feeds[i];
        const nn_binding *b = NULL;
        for (int k = 0; k < n_targets && !b; k++)
            if (strcmp(targets[k].name, ro->name) == 0)
                b = &targets[k];
        if (!b)
            return nn_error_set(err, NN_ERR_NOT_FOUND, "no target for readout "
                                "'%s'", ro->name);
        f->node = nn_graph_find(g, ro->name);
        f->target = b->tensor;
        nn_shape want = nn_batched_shape(s->batch, &f->node->out_shape);
        int ok = b->tensor->shape.ndim == want.ndim + 1 &&
                 b->tensor->shape.dims[0] == s->batch &&
                 b->tensor->shape.dims[1] == num_steps;
        for (int d = 1; ok && d < want.ndim; d++)
            ok = b->tensor->shape.dims[d + 1] == want.dims[d];
        if (!ok) {
            char got[96];
            return nn_error_set(err, NN_ERR_SHAPE, "target '%s': expected "
                                "(%d sequences, %d steps, exit shape), got %s",
                                ro->name, s->batch, num_steps,
                                nn_shape_str(&b->tensor->shape, got,
                                             sizeof got));
        }
        f->rows = (int)(nn_shape_numel(&want) / (size_t)ro->U);
        f->teacher = is_fb_sender(g, f->node);
        if (ro->d_fb &&
            !(f->fb_seen = nn_malloc((size_t)f->rows * (size_t)ro->d_fb *
                                     sizeof(float))))
            return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    }
    return NN_OK;
}

/* Loads step t and remembers the feedback each readout is about to see
 * (its senders run after it and overwrite what it saw). */
static int run_step(run_ctx *rc, const readouts *rs, int t, nn_error *err)
{
    nn_session_load_step(rc->s, rc->bound, rc->T, t);
    for (int i = 0; i < rc->n; i++) {
        feed *f = &rc->feeds[i];
        if (!rs->r[i].d_fb)
            continue;
        node_run *run = &rc->s->runs[f->node->index];
        for (int r = 0; r < f->rows; r++)
            concat_row_f(run->fb, f->node->n_fb, (size_t)r,
                         f->fb_seen + (size_t)r * (size_t)rs->r[i].d_fb);
    }
    return nn_session_step(rc->s, 1, err);
}

/* Teacher forcing: what reads the readout's output from now on reads the
 * target of step t. */
static void force_targets(run_ctx *rc, int t)
{
    for (int i = 0; i < rc->n; i++) {
        feed *f = &rc->feeds[i];
        if (!f->teacher)
            continue;
        nn_tensor *out = &rc->s->runs[f->node->index].out;
        size_t per = nn_tensor_numel(out) / (size_t)rc->s->batch;
        for (int b = 0; b < rc->s->batch; b++)
            memcpy(out->data + (size_t)b * per, target_at(f, b, t, rc->T),
                   per * sizeof(float));
    }
}

/* The target row r (of feature rows) at step t. */
static const float *target_row(const feed *f, const readout *ro, int r, int t,
                               int T)
{
    int per_b = f->rows / f->target->shape.dims[0];
    return target_at(f, r / per_b, t, T) + (size_t)(r % per_b) * (size_t)ro->U;
}

/* ---------------------------------------------------------------- ridge */

struct nn_ridge {
    readouts rs;
    long rows;
};

nn_ridge *nn_ridge_new(nn_graph *g, const nn_binding *targets, int n_targets,
                       nn_error *err)
{
    nn_ridge *r = nn_calloc(1, sizeof *r);
    if (!r) {
        nn_error_set(err, NN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (readouts_init(&r->rs, g, targets, n_targets, err) != NN_OK) {
        nn_ridge_free(r);
        return NULL;
    }
    for (int i = 0; i < r->rs.n; i++) {
        readout *ro = &r->rs.r[i];
        if (!(ro->xtx = nn_calloc((size_t)ro->D * (size_t)ro->D,
                                  sizeof(double))) ||
            !(ro->xty = nn_calloc((size_t)ro->D * (size_t)ro->U,
                                  sizeof(double)))) {
            nn_error_set(err, NN_ERR_NOMEM, "out of memory for the %d x %d "
                         "normal equations of '%s'", ro->D, ro->D, ro->name);
            nn_ridge_free(r);
            return NULL;
        }
    }
    return r;
}

void nn_ridge_free(nn_ridge *r)
{
    if (!r)
        return;
    readouts_release(&r->rs);
    nn_free(r);
}

/* Rows buffered before one dsyrk/dgemm: products of many rows at once run
 * at BLAS speed, one row at a time would not. */
enum { RIDGE_CHUNK = 256 };

typedef struct chunk {
    double *x, *y;
    int n, cap;
} chunk;

static void chunk_flush(chunk *c, readout *ro)
{
    if (!c->n)
        return;
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, ro->D, c->n, 1.0, c->x,
                ro->D, 1.0, ro->xtx, ro->D);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ro->D, ro->U, c->n,
                1.0, c->x, ro->D, c->y, ro->U, 1.0, ro->xty, ro->U);
    c->n = 0;
}

int nn_ridge_feed(nn_ridge *r, nn_session *s, const nn_binding *inputs,
                  int n_inputs, const nn_binding *targets, int n_targets,
                  int num_steps, int warmup, nn_error *err)
{
    if (warmup < 0 || warmup >= num_steps)
        return nn_error_set(err, NN_ERR_INVALID, "warmup must be in [0, %d) "
                            "for %d steps", num_steps, num_steps);
    run_ctx rc;
    int ret = run_ctx_init(&rc, &r->rs, s, inputs, n_inputs, targets,
                           n_targets, num_steps, err);
    chunk *chunks = ret == NN_OK ? nn_calloc((size_t)r->rs.n, sizeof *chunks)
                                 : NULL;
    if (ret == NN_OK && !chunks)
        ret = nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    for (int i = 0; ret == NN_OK && i < r->rs.n; i++) {
        readout *ro = &r->rs.r[i];
        int cap = rc.feeds[i].rows > RIDGE_CHUNK ? rc.feeds[i].rows
                                                 : RIDGE_CHUNK;
        chunks[i].cap = cap;
        if (!(chunks[i].x = nn_malloc((size_t)cap * (size_t)ro->D *
                                      sizeof(double))) ||
            !(chunks[i].y = nn_malloc((size_t)cap * (size_t)ro->U *
                                      sizeof(double))))
            ret = nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    }
    long added = 0;
    for (int t = 0; ret == NN_OK && t < num_steps; t++) {
        ret = nn_graph_abort_check(s->g, err);
        if (ret == NN_OK)
            ret = run_step(&rc, &r->rs, t, err);
        if (ret != NN_OK)
            break;
        for (int i = 0; t >= warmup && i < r->rs.n; i++) {
            readout *ro = &r->rs.r[i];
            feed *f = &rc.feeds[i];
            chunk *c = &chunks[i];
            const node_run *run = &s->runs[f->node->index];
            if (c->n + f->rows > c->cap)
                chunk_flush(c, ro);
            for (int row = 0; row < f->rows; row++, c->n++) {
                features(ro, f, run, (size_t)row, c->x + (size_t)c->n * ro->D);
                const float *y = target_row(f, ro, row, t, num_steps);
                for (int u = 0; u < ro->U; u++)
                    c->y[(size_t)c->n * ro->U + u] = y[u];
            }
            if (i == 0)
                added += f->rows;
        }
        force_targets(&rc, t);
    }
    for (int i = 0; chunks && i < r->rs.n; i++) {
        if (ret == NN_OK)
            chunk_flush(&chunks[i], &r->rs.r[i]);
        nn_free(chunks[i].x);
        nn_free(chunks[i].y);
    }
    nn_free(chunks);
    run_ctx_release(&rc);
    if (ret == NN_OK)
        r->rows += added;
    return ret;
}

/* Writes Θ (D x U, row-major, double) into the node's W, Wfb and b. */
static void store_theta(nn_node *node, const readout *ro, const double *theta)
{
    nn_tensor *W = nn_node_weight(node, "W");
    nn_tensor *Wfb = nn_node_weight(node, "Wfb");
    nn_tensor *b = nn_node_weight(node, "b");
    size_t U = (size_t)ro->U;
    for (size_t k = 0; k < (size_t)ro->d_ff * U; k++)
        W->data[k] = (float)theta[k];
    for (size_t k = 0; Wfb && k < (size_t)ro->d_fb * U; k++)
        Wfb->data[k] = (float)theta[(size_t)ro->d_ff * U + k];
    for (size_t u = 0; b && u < U; u++)
        b->data[u] = (float)theta[(size_t)(ro->D - 1) * U + u];
}

static void load_theta(nn_node *node, const readout *ro, double *theta)
{
    nn_tensor *W = nn_node_weight(node, "W");
    nn_tensor *Wfb = nn_node_weight(node, "Wfb");
    nn_tensor *b = nn_node_weight(node, "b");
    size_t U = (size_t)ro->U;
    for (size_t k = 0; k < (size_t)ro->d_ff * U; k++)
        theta[k] = W->data[k];
    for (size_t k = 0; Wfb && k < (size_t)ro->d_fb * U; k++)
        theta[(size_t)ro->d_ff * U + k] = Wfb->data[k];
    for (size_t u = 0; b && u < U; u++)
        theta[(size_t)(ro->D - 1) * U + u] = b->data[u];
}

/* The readouts still fit g: same names, same feature and unit counts. */
static int readouts_match(const readouts *rs, nn_graph *g, nn_error *err)
{
    for (int i = 0; i < rs->n; i++) {
        readout now;
        nn_node *node;
        int rc = describe_readout(g, rs->r[i].name, &now, &node, err);
        if (rc != NN_OK)
            return rc;
        if (now.D != rs->r[i].D || now.U != rs->r[i].U)
            return nn_error_set(err, NN_ERR_SHAPE, "readout '%s' now has %d "
                                "features and %d units, not %d and %d",
                                now.name, now.D, now.U, rs->r[i].D,
                                rs->r[i].U);
    }
    return NN_OK;
}

int nn_ridge_solve(nn_ridge *r, nn_graph *g, double beta, long *rows,
                   nn_error *err)
{
    if (rows)
        *rows = r->rows;
    if (!(beta >= 0) || !isfinite(beta))
        return nn_error_set(err, NN_ERR_INVALID, "beta must be >= 0");
    if (r->rows == 0)
        return nn_error_set(err, NN_ERR_INVALID, "no data was fed: every step "
                            "fell in the warmup");
    int rc = readouts_match(&r->rs, g, err);
    if (rc != NN_OK)
        return rc;
    double **solutions = nn_calloc((size_t)r->rs.n, sizeof(double *));
    if (!solutions)
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    /* Solve all first, store after: a failure leaves every weight as it
     * was. */
    for (int i = 0; i < r->rs.n && rc == NN_OK; i++) {
        readout *ro = &r->rs.r[i];
        int D = ro->D, U = ro->U, info = 0;
        double *a = nn_malloc((size_t)D * (size_t)D * sizeof(double));
        double *b = nn_malloc((size_t)D * (size_t)U * sizeof(double));
        solutions[i] = nn_malloc((size_t)D * (size_t)U * sizeof(double));
        if (!a || !b || !solutions[i]) {
            rc = nn_error_set(err, NN_ERR_NOMEM, "out of memory for a %d x %d "
                              "solve", D, D);
        } else {
            /* dsyrk filled the upper triangle (row-major): mirror it, so the
             * column-major view LAPACK takes is the same matrix. */
            for (int p = 0; p < D; p++)
                for (int q = 0; q < D; q++) {
                    double v = p <= q ? ro->xtx[(size_t)p * D + q]
                                      : ro->xtx[(size_t)q * D + p];
                    a[(size_t)p * D + q] = v + (p == q ? beta : 0.0);
                }
            for (int p = 0; p < D; p++)
                for (int u = 0; u < U; u++)
                    b[(size_t)u * D + p] = ro->xty[(size_t)p * U + u];
            dposv_("U", &D, &U, a, &D, b, &D, &info, 1);
            if (info > 0)
                rc = nn_error_set(err, NN_ERR_INVALID, "readout '%s': XᵀX + "
                                  "βI is not positive definite (features are "
                                  "linearly dependent); use beta > 0",
                                  ro->name);
            else if (info < 0)
                rc = nn_error_set(err, NN_ERR_INVALID, "dposv: argument %d is "
                                  "invalid", -info);
            else
                for (int p = 0; p < D; p++)
                    for (int u = 0; u < U; u++)
                        solutions[i][(size_t)p * U + u] = b[(size_t)u * D + p];
        }
        nn_free(a);
        nn_free(b);
    }
    for (int i = 0; i < r->rs.n; i++) {
        if (rc == NN_OK)
            store_theta(nn_graph_find(g, r->rs.r[i].name), &r->rs.r[i],
                        solutions[i]);
        nn_free(solutions[i]);
    }
    nn_free(solutions);
    return rc;
}

/* ------------------------------------------------------------------ RLS */

struct nn_rls {
    readouts rs;
    nn_online_opts opts;
};

nn_online_opts nn_online_defaults(void)
{
    nn_online_opts o = {NN_ONLINE_RLS, 1.0, 1.0, 1e-6};
    return o;
}

int nn_online_check(const nn_online_opts *o, nn_error *err)
{
    if (o->rule != NN_ONLINE_RLS && o->rule != NN_ONLINE_LMS)
        return nn_error_set(err, NN_ERR_INVALID, "unknown online rule %d",
                            (int)o->rule);
    if (!(o->alpha > 0) || !isfinite(o->alpha))
        return nn_error_set(err, NN_ERR_INVALID, "alpha must be > 0 (P starts "
                            "as I / alpha)");
    if (!(o->forgetting > 0 && o->forgetting <= 1))
        return nn_error_set(err, NN_ERR_INVALID, "forgetting must be in "
                            "(0, 1] (1: no forgetting)");
    if (!(o->lr > 0) || !isfinite(o->lr))
        return nn_error_set(err, NN_ERR_INVALID, "lr must be > 0");
    return NN_OK;
}

nn_rls *nn_online_new(nn_graph *g, const nn_binding *targets, int n_targets,
                      const nn_online_opts *opts, nn_error *err)
{
    if (nn_online_check(opts, err) != NN_OK)
        return NULL;
    nn_rls *r = nn_calloc(1, sizeof *r);
    if (!r) {
        nn_error_set(err, NN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    r->opts = *opts;
    if (readouts_init(&r->rs, g, targets, n_targets, err) != NN_OK) {
        nn_rls_free(r);
        return NULL;
    }
    for (int i = 0; i < r->rs.n; i++) {
        readout *ro = &r->rs.r[i];
        size_t D = (size_t)ro->D;
        /* LMS keeps no P: its memory is the weights alone. */
        int rls = opts->rule == NN_ONLINE_RLS;
        if ((rls && !(ro->P = nn_calloc(D * D, sizeof(double)))) ||
            !(ro->theta = nn_calloc(D * (size_t)ro->U, sizeof(double)))) {
            nn_error_set(err, NN_ERR_NOMEM, "out of memory for the %d x %d P "
                         "of '%s'", ro->D, ro->D, ro->name);
            nn_rls_free(r);
            return NULL;
        }
        for (size_t p = 0; rls && p < D; p++)
            ro->P[p * D + p] = 1.0 / opts->alpha;
    }
    return r;
}

nn_rls *nn_rls_new(nn_graph *g, const nn_binding *targets, int n_targets,
                   double alpha, nn_error *err)
{
    nn_online_opts o = nn_online_defaults();
    o.alpha = alpha;
    return nn_online_new(g, targets, n_targets, &o, err);
}

static double *copy_doubles(const double *src, size_t n)
{
    double *d = src ? nn_malloc(n * sizeof(double)) : NULL;
    if (d)
        memcpy(d, src, n * sizeof(double));
    return d;
}

nn_rls *nn_rls_clone(const nn_rls *r, nn_error *err)
{
    nn_rls *c = nn_calloc(1, sizeof *c);
    if (c)
        c->rs.r = nn_calloc((size_t)r->rs.n, sizeof *c->rs.r);
    if (!c || !c->rs.r) {
        nn_free(c);
        nn_error_set(err, NN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    c->opts = r->opts;
    c->rs.n = r->rs.n;
    for (int i = 0; i < r->rs.n; i++) {
        const readout *ro = &r->rs.r[i];
        readout *co = &c->rs.r[i];
        *co = *ro;
        co->xtx = co->xty = NULL;
        size_t D = (size_t)ro->D, U = (size_t)ro->U;
        co->P = copy_doubles(ro->P, D * D);
        co->theta = copy_doubles(ro->theta, D * U);
        if ((ro->P && !co->P) || (ro->theta && !co->theta)) {
            nn_error_set(err, NN_ERR_NOMEM, "out of memory for a copy of the "
                         "%d x %d P of '%s'", ro->D, ro->D, ro->name);
            nn_rls_free(c);
            return NULL;
        }
    }
    return c;
}

nn_online_rule nn_rls_rule(const nn_rls *r)
{
    return r->opts.rule;
}

int nn_rls_tune(nn_rls *r, const nn_online_opts *opts, nn_error *err)
{
    if (nn_online_check(opts, err) != NN_OK)
        return err->code;
    if (opts->rule != r->opts.rule)
        return nn_error_set(err, NN_ERR_INVALID, "this trainer runs %s, not "
                            "%s", r->opts.rule == NN_ONLINE_RLS ? "rls" : "lms",
                            opts->rule == NN_ONLINE_RLS ? "rls" : "lms");
    r->opts.forgetting = opts->forgetting;
    r->opts.lr = opts->lr;
    return NN_OK;
}

void nn_rls_free(nn_rls *r)
{
    if (!r)
        return;
    readouts_release(&r->rs);
    nn_free(r);
}

int nn_rls_compatible(const nn_rls *r, nn_graph *g, nn_error *err)
{
    return readouts_match(&r->rs, g, err);
}

/* The readout's outputs for feature row x from Θ, and the error against
 * the target into e; returns the squared error. */
static double online_error(const readout *ro, const double *x,
                           const float *target, double *e)
{
    size_t D = (size_t)ro->D, U = (size_t)ro->U;
    double sq = 0;
    for (size_t u = 0; u < U; u++) {
        double y = 0;
        for (size_t p = 0; p < D; p++)
            y += x[p] * ro->theta[p * U + u];
        e[u] = y - target[u];
        sq += e[u] * e[u];
    }
    return sq;
}

/* One RLS update (with forgetting factor lambda) of a readout from feature
 * row x and its error e. px is D doubles of scratch. */
static void rls_update(readout *ro, const double *x, const double *e,
                       double lambda, double *px)
{
    size_t D = (size_t)ro->D, U = (size_t)ro->U;
    cblas_dsymv(CblasRowMajor, CblasUpper, ro->D, 1.0, ro->P, ro->D, x, 1, 0.0,
                px, 1);
    double c = 1.0 / (lambda + cblas_ddot(ro->D, x, 1, px, 1));
    /* P ← (P − c (P x)(P x)ᵀ) / λ, kept symmetric by construction. */
    cblas_dsyr(CblasRowMajor, CblasUpper, ro->D, -c, px, 1, ro->P, ro->D);
    for (size_t p = 0; p < D; p++) {
        if (lambda != 1.0)
            for (size_t q = p; q < D; q++)
                ro->P[p * D + q] /= lambda;
        for (size_t q = 0; q < p; q++)
            ro->P[p * D + q] = ro->P[q * D + p];
    }
    for (size_t u = 0; u < U; u++)
        for (size_t p = 0; p < D; p++)
            ro->theta[p * U + u] -= c * px[p] * e[u];
}

static void lms_update(readout *ro, const double *x, const double *e,
                       double lr)
{
    size_t D = (size_t)ro->D, U = (size_t)ro->U;
    for (size_t p = 0; p < D; p++)
        for (size_t u = 0; u < U; u++)
            ro->theta[p * U + u] -= lr * x[p] * e[u];
}

int nn_rls_run(nn_rls *r, nn_session *s, const nn_binding *inputs,
               int n_inputs, const nn_binding *targets, int n_targets,
               int num_steps, double *mse, nn_error *err)
{
    int ret = readouts_match(&r->rs, s->g, err);
    if (ret != NN_OK)
        return ret;
    run_ctx rc;
    ret = run_ctx_init(&rc, &r->rs, s, inputs, n_inputs, targets, n_targets,
                       num_steps, err);
    int maxD = 1;
    for (int i = 0; i < r->rs.n; i++) {
        maxD = r->rs.r[i].D > maxD ? r->rs.r[i].D : maxD;
        maxD = r->rs.r[i].U > maxD ? r->rs.r[i].U : maxD;
    }
    /* x, P x and e. */
    double *x = ret == NN_OK ? nn_malloc(3 * (size_t)maxD * sizeof(double))
                             : NULL;
    if (ret == NN_OK && !x)
        ret = nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    /* The weights may have changed since the last run (an import, another
     * trainer): start from what the graph holds now. */
    for (int i = 0; ret == NN_OK && i < r->rs.n; i++)
        load_theta(rc.feeds[i].node, &r->rs.r[i], r->rs.r[i].theta);
    double sq = 0;
    long count = 0;
    for (int t = 0; ret == NN_OK && t < num_steps; t++) {
        ret = nn_graph_abort_check(s->g, err);
        if (ret == NN_OK)
            ret = run_step(&rc, &r->rs, t, err);
        for (int i = 0; ret == NN_OK && i < r->rs.n; i++) {
            readout *ro = &r->rs.r[i];
            feed *f = &rc.feeds[i];
            const node_run *run = &s->runs[f->node->index];
            for (int row = 0; row < f->rows; row++) {
                double *e = x + 2 * (size_t)maxD;
                features(ro, f, run, (size_t)row, x);
                sq += online_error(ro, x,
                                   target_row(f, ro, row, t, num_steps), e);
                if (r->opts.rule == NN_ONLINE_RLS)
                    rls_update(ro, x, e, r->opts.forgetting, x + maxD);
                else
                    lms_update(ro, x, e, r->opts.lr);
                count += ro->U;
            }
            store_theta(f->node, ro, ro->theta);
        }
    }
    if (mse)
        *mse = count ? sq / (double)count : 0;
    nn_free(x);
    run_ctx_release(&rc);
    return ret;
}
