/*
 * train.c — losses, optimizers and the BPTT fit loop (see nn_train.h).
 * The linear-readout trainers (ridge, RLS) are in readout.c.
 */
#include "nn_internal.h"
#include "nn_train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* --------------------------------------------------------------- losses */

int nn_loss_parse(const char *name)
{
    if (!name)
        return -1;
    if (strcmp(name, "mse") == 0)
        return NN_LOSS_MSE;
    if (strcmp(name, "softmax_cross_entropy") == 0 ||
        strcmp(name, "cross_entropy") == 0)
        return NN_LOSS_SOFTMAX_CE;
    return -1;
}

const char *nn_loss_name(nn_loss_kind kind)
{
    return kind == NN_LOSS_MSE ? "mse" : "softmax_cross_entropy";
}

static double mse(const nn_tensor *pred, const nn_tensor *target,
                  nn_tensor *dpred, double scale)
{
    size_t n = nn_tensor_numel(pred);
    double sum = 0;
    for (size_t k = 0; k < n; k++) {
        double d = (double)pred->data[k] - target->data[k];
        sum += d * d;
        if (dpred)
            dpred->data[k] = (float)(2.0 * scale * d / (double)n);
    }
    return n ? scale * sum / (double)n : 0;
}

/* Rows of the last axis; a max-shifted log-sum-exp keeps large logits
 * finite. */
static double softmax_ce(const nn_tensor *pred, const nn_tensor *target,
                         nn_tensor *dpred, double scale)
{
    size_t rows = nn_tensor_rows(pred);
    int cols = nn_tensor_cols(pred);
    double total = 0;
    for (size_t r = 0; r < rows; r++) {
        const float *y = pred->data + r * (size_t)cols;
        const float *p = target->data + r * (size_t)cols;
        double top = y[0], sum = 0, mass = 0;
        for (int c = 1; c < cols; c++)
            if (y[c] > top)
                top = y[c];
        for (int c = 0; c < cols; c++) {
            sum += exp((double)y[c] - top);
            mass += p[c];
        }
        double log_z = top + log(sum);
        for (int c = 0; c < cols; c++) {
            total -= p[c] * ((double)y[c] - log_z);
            if (dpred) {
                double softmax = exp((double)y[c] - log_z);
                dpred->data[r * (size_t)cols + c] =
                    (float)(scale * (softmax * mass - p[c]) / (double)rows);
            }
        }
    }
    return rows ? scale * total / (double)rows : 0;
}

double nn_loss(nn_loss_kind kind, const nn_tensor *pred,
               const nn_tensor *target, nn_tensor *dpred, double scale)
{
    return kind == NN_LOSS_MSE ? mse(pred, target, dpred, scale)
                               : softmax_ce(pred, target, dpred, scale);
}

/* ----------------------------------------------------------- optimizers */

nn_optim_opts nn_optim_defaults(void)
{
    nn_optim_opts o = {0};
    o.kind = NN_OPTIM_SGD;
    o.lr = 0.01;
    o.beta1 = 0.9;
    o.beta2 = 0.999;
    o.eps = 1e-8;
    o.schedule = NN_SCHEDULE_CONSTANT;
    o.step_size = 1;
    o.gamma = 0.1;
    o.epochs = 0; /* the fit's epochs, as PyTorch's T_max is usually set */
    return o;
}

double nn_optim_lr_at(const nn_optim_opts *o, int epoch)
{
    switch (o->schedule) {
    case NN_SCHEDULE_STEP:
        return o->lr * pow(o->gamma, (double)(epoch / o->step_size));
    case NN_SCHEDULE_EXPONENTIAL:
        return o->lr * pow(o->gamma, (double)epoch);
    case NN_SCHEDULE_COSINE: {
        double e = epoch < o->epochs ? (double)epoch : (double)o->epochs;
        return o->lr_min + (o->lr - o->lr_min) *
                               (1 + cos(3.14159265358979323846 * e / (double)o->epochs)) / 2;
    }
    case NN_SCHEDULE_CONSTANT:
    default:
        return o->lr;
    }
}

int nn_optim_check(const nn_optim_opts *o, nn_error *err)
{
    if (!(o->lr > 0) || !isfinite(o->lr))
        return nn_error_set(err, NN_ERR_INVALID, "lr must be > 0");
    if (!(o->momentum >= 0 && o->momentum < 1))
        return nn_error_set(err, NN_ERR_INVALID, "momentum must be in [0, 1)");
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        return nn_error_set(err, NN_ERR_INVALID, "beta1 and beta2 must be in "
                            "[0, 1)");
    if (!(o->eps > 0))
        return nn_error_set(err, NN_ERR_INVALID, "eps must be > 0");
    if (!(o->weight_decay >= 0) || !isfinite(o->weight_decay))
        return nn_error_set(err, NN_ERR_INVALID, "weight_decay must be >= 0");
    if (o->schedule == NN_SCHEDULE_STEP && o->step_size < 1)
        return nn_error_set(err, NN_ERR_INVALID, "step_size must be >= 1");
    if ((o->schedule == NN_SCHEDULE_STEP ||
         o->schedule == NN_SCHEDULE_EXPONENTIAL) &&
        !(o->gamma > 0 && o->gamma <= 1))
        return nn_error_set(err, NN_ERR_INVALID, "gamma must be in (0, 1]");
    if (o->schedule == NN_SCHEDULE_COSINE &&
        !(o->lr_min >= 0 && o->lr_min <= o->lr))
        return nn_error_set(err, NN_ERR_INVALID, "lr_min must be in [0, lr]");
    if (o->schedule == NN_SCHEDULE_COSINE && o->epochs < 1)
        return nn_error_set(err, NN_ERR_INVALID, "a cosine schedule needs "
                            "its horizon epochs >= 1 (0 takes the fit's "
                            "epochs in a fit)");
    return NN_OK;
}

struct nn_optim {
    nn_graph *g;
    nn_optim_opts o;
    nn_grads *m, *v; /* momentum (SGD) or first moment (Adam); second moment */
    long t;          /* updates so far, for Adam's bias correction */
};

nn_optim *nn_optim_new(nn_graph *g, const nn_optim_opts *opts, nn_error *err)
{
    if (nn_optim_check(opts, err) != NN_OK)
        return NULL;
    nn_optim *opt = nn_calloc(1, sizeof *opt);
    if (!opt) {
        nn_error_set(err, NN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    opt->g = g;
    opt->o = *opts;
    int adam = opts->kind == NN_OPTIM_ADAM || opts->kind == NN_OPTIM_ADAMW;
    if (((adam || opts->momentum > 0) && !(opt->m = nn_grads_new(g, err))) ||
        (adam && !(opt->v = nn_grads_new(g, err)))) {
        nn_optim_free(opt);
        return NULL;
    }
    return opt;
}

void nn_optim_free(nn_optim *opt)
{
    if (!opt)
        return;
    nn_grads_free(opt->m);
    nn_grads_free(opt->v);
    nn_free(opt);
}

void nn_optim_step(nn_optim *opt, const nn_grads *grads, int epoch)
{
    const nn_optim_opts *o = &opt->o;
    double lr = nn_optim_lr_at(o, epoch);
    opt->t++;
    double c1 = 1 - pow(o->beta1, (double)opt->t);
    double c2 = 1 - pow(o->beta2, (double)opt->t);
    nn_graph *g = opt->g;
    for (int n = 0; n < g->n_nodes; n++) {
        nn_node *node = g->nodes[n];
        for (int i = 0; i < node->n_weights; i++) {
            if (!node->weights[i]->trainable)
                continue;
            nn_tensor *w = &node->weights[i]->t;
            const nn_tensor *gr = nn_grads_at((nn_grads *)grads, node, i);
            float *m = opt->m ? nn_grads_at(opt->m, node, i)->data : NULL;
            float *v = opt->v ? nn_grads_at(opt->v, node, i)->data : NULL;
            int decoupled = o->kind == NN_OPTIM_ADAMW;
            double coupled = decoupled ? 0.0 : o->weight_decay;
            for (size_t k = 0; k < nn_tensor_numel(w); k++) {
                double d = (double)gr->data[k] + coupled * w->data[k];
                if (decoupled)
                    w->data[k] = (float)(w->data[k] *
                                         (1 - lr * o->weight_decay));
                if (o->kind != NN_OPTIM_SGD) {
                    m[k] = (float)(o->beta1 * m[k] + (1 - o->beta1) * d);
                    v[k] = (float)(o->beta2 * v[k] + (1 - o->beta2) * d * d);
                    d = (m[k] / c1) / (sqrt(v[k] / c2) + o->eps);
                } else if (m) {
                    m[k] = (float)(o->momentum * m[k] + d);
                    d = m[k];
                }
                w->data[k] -= (float)(lr * d);
            }
        }
    }
}

double nn_grads_clip(nn_grads *grads, double max_norm)
{
    double norm = nn_grads_norm(grads);
    if (max_norm > 0 && norm > max_norm)
        nn_grads_scale(grads, (float)(max_norm / norm));
    return norm;
}

/* ------------------------------------------------ gradient training (BPTT) */

nn_fit_opts nn_fit_defaults(void)
{
    nn_fit_opts f = {0};
    f.loss = NN_LOSS_MSE;
    f.optim = nn_optim_defaults();
    f.epochs = 1;
    f.shuffle = 1;
    f.seed = 1;
    return f;
}

/* A copy of src's sparse weight w packed for dst's, or NULL (err set). */
static nn_sparse_values *sparse_copy(nn_node *dst, nn_node *src, int w,
                                     nn_error *err)
{
    int rows, cols;
    nn_node_weight_sparse(src, w, &rows, &cols);
    const nn_tensor *t = &src->weights[w]->t;
    size_t nnz = nn_tensor_numel(t);
    size_t *ptr = nn_malloc(((size_t)cols + 1) * sizeof *ptr);
    uint32_t *row = nn_malloc(nnz * sizeof *row);
    nn_sparse_values *v = NULL;
    if (!ptr || !row)
        nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    else {
        nn_node_weight_pattern(src, w, ptr, row);
        if (nn_sparse_values_new(dst, w, ptr, row, t->data, nnz, &v, err) !=
            NN_OK)
            nn_error_prefix(err, "weight %s.%s", src->name,
                            src->weights[w]->name);
    }
    nn_free(ptr);
    nn_free(row);
    return v;
}

/* A weight stored sparse travels with its pattern, which an import may have
 * changed since the graph was built: its value count is then the pattern's,
 * and the matrix's shape is what must agree. */
static int same_storage(nn_node *a, nn_node *b, int i)
{
    int ra, ca, rb, cb;
    int sa = nn_node_weight_sparse(a, i, &ra, &ca);
    int sb = nn_node_weight_sparse(b, i, &rb, &cb);
    if (sa != sb)
        return 0;
    if (sa)
        return ra == rb && ca == cb;
    return nn_shape_equal(&a->weights[i]->t.shape, &b->weights[i]->t.shape);
}

int nn_graph_copy_weights(nn_graph *dst, nn_graph *src, nn_error *err)
{
    if (dst->n_nodes != src->n_nodes)
        return nn_error_set(err, NN_ERR_INVALID, "the graphs differ: %d and "
                            "%d nodes", dst->n_nodes, src->n_nodes);
    size_t n_sparse = 0;
    for (int n = 0; n < src->n_nodes; n++) {
        nn_node *a = dst->nodes[n], *b = src->nodes[n];
        if (strcmp(a->name, b->name) || a->n_weights != b->n_weights)
            return nn_error_set(err, NN_ERR_INVALID, "the graphs differ at "
                                "node '%s'", b->name);
        for (int i = 0; i < b->n_weights; i++) {
            if (!same_storage(a, b, i))
                return nn_error_set(err, NN_ERR_INVALID, "the graphs differ "
                                    "at weight %s.%s", b->name,
                                    b->weights[i]->name);
            n_sparse += nn_node_weight_sparse(b, i, NULL, NULL);
        }
    }
    /* Every sparse copy is made before anything is written, so a failure
     * leaves dst as it was. */
    nn_sparse_values **packed = NULL;
    if (n_sparse && !(packed = nn_calloc(n_sparse, sizeof *packed)))
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    size_t k = 0;
    int rc = NN_OK;
    for (int n = 0; n < src->n_nodes && rc == NN_OK; n++)
        for (int i = 0; i < src->nodes[n]->n_weights && rc == NN_OK; i++)
            if (nn_node_weight_sparse(src->nodes[n], i, NULL, NULL) &&
                !(packed[k++] = sparse_copy(dst->nodes[n], src->nodes[n], i,
                                            err)))
                rc = err->code;
    /* dst's cap, with the copied counts in place of its own. */
    size_t removed = 0, added = 0;
    k = 0;
    for (int n = 0; n < src->n_nodes && rc == NN_OK; n++)
        for (int i = 0; i < src->nodes[n]->n_weights; i++)
            if (nn_node_weight_sparse(src->nodes[n], i, NULL, NULL)) {
                removed += nn_tensor_numel(&dst->nodes[n]->weights[i]->t);
                added += nn_sparse_values_nnz(packed[k++]);
            }
    if (rc == NN_OK)
        rc = nn_graph_params_fit(dst, removed, added, err);
    k = n_sparse;
    if (rc != NN_OK) {
        for (size_t j = 0; j < k; j++)
            nn_sparse_values_free(packed[j]);
        nn_free(packed);
        return rc;
    }
    k = 0;
    for (int n = 0; n < src->n_nodes; n++)
        for (int i = 0; i < src->nodes[n]->n_weights; i++) {
            if (nn_node_weight_sparse(src->nodes[n], i, NULL, NULL)) {
                nn_node_weight_swap_sparse(dst->nodes[n], i, packed[k]);
                nn_sparse_values_free(packed[k++]);
                continue;
            }
            memcpy(dst->nodes[n]->weights[i]->t.data,
                   src->nodes[n]->weights[i]->t.data,
                   nn_tensor_numel(&src->nodes[n]->weights[i]->t) *
                       sizeof(float));
        }
    nn_free(packed);
    return NN_OK;
}

/* A sequence tensor (N, T, ...) checked against the node it binds. */
static int check_sequence(const char *what, const char *name,
                          const nn_tensor *t, const nn_shape *per_step, int N,
                          int T, nn_error *err)
{
    char want[96], got[96];
    int ok = t->shape.ndim == per_step->ndim + 2 && t->shape.dims[0] == N &&
             t->shape.dims[1] == T;
    for (int d = 0; ok && d < per_step->ndim; d++)
        ok = t->shape.dims[d + 2] == per_step->dims[d];
    if (ok)
        return NN_OK;
    int dims[NN_MAX_DIMS + 2] = {N, T};
    for (int d = 0; d < per_step->ndim && d < NN_MAX_DIMS; d++)
        dims[d + 2] = per_step->dims[d];
    nn_shape w = nn_shape_make(per_step->ndim + 2, dims);
    return nn_error_set(err, NN_ERR_SHAPE, "%s '%s': expected shape %s "
                        "(sequences, steps, features), got %s", what, name,
                        nn_shape_str(&w, want, sizeof want),
                        nn_shape_str(&t->shape, got, sizeof got));
}

static int exit_index(const nn_graph *g, const char *name)
{
    for (int x = 0; x < g->n_exits; x++)
        if (strcmp(g->exits[x]->name, name) == 0)
            return x;
    return -1;
}

/* Finds the targets' exits; target_of[x] is the binding of exit x or -1. */
static int bind_targets(const nn_graph *g, const nn_binding *targets,
                        int n_targets, int *target_of, nn_error *err)
{
    for (int x = 0; x < g->n_exits; x++)
        target_of[x] = -1;
    if (n_targets < 1)
        return nn_error_set(err, NN_ERR_INVALID, "no targets: give one for at "
                            "least one exit node");
    for (int k = 0; k < n_targets; k++) {
        int x = exit_index(g, targets[k].name);
        if (x < 0) {
            if (nn_graph_find(g, targets[k].name))
                return nn_error_set(err, NN_ERR_INVALID, "target '%s': the "
                                    "node is not an exit of the network (it "
                                    "feeds other nodes)", targets[k].name);
            return nn_error_set(err, NN_ERR_NOT_FOUND, "target '%s': no such "
                                "node", targets[k].name);
        }
        if (target_of[x] >= 0)
            return nn_error_set(err, NN_ERR_INVALID, "target '%s' given twice",
                                targets[k].name);
        target_of[x] = k;
    }
    return NN_OK;
}

/* Checks inputs and targets; *N and *T come from the first input. */
static int check_data(nn_graph *g, const nn_binding *inputs, int n_inputs,
                      const nn_binding *targets, const int *target_of, int *N,
                      int *T, nn_error *err)
{
    if (n_inputs < 1 || !inputs[0].tensor || inputs[0].tensor->shape.ndim < 2)
        return nn_error_set(err, NN_ERR_SHAPE, "inputs must be (sequences, "
                            "steps, features) tensors, one per input node");
    *N = inputs[0].tensor->shape.dims[0];
    *T = inputs[0].tensor->shape.dims[1];
    if (*N < 1 || *T < 1)
        return nn_error_set(err, NN_ERR_SHAPE, "no data: %d sequences of %d "
                            "steps", *N, *T);
    for (int e = 0; e < g->n_entries; e++) {
        const nn_binding *b = NULL;
        for (int k = 0; k < n_inputs && !b; k++)
            if (strcmp(inputs[k].name, g->entries[e]->name) == 0)
                b = &inputs[k];
        if (!b)
            return nn_error_set(err, NN_ERR_NOT_FOUND, "no input for node "
                                "'%s'", g->entries[e]->name);
        int rc = check_sequence("input", b->name, b->tensor,
                                &g->entries[e]->out_shape, *N, *T, err);
        if (rc != NN_OK)
            return rc;
    }
    for (int k = 0; k < n_inputs; k++) {
        nn_node *node = nn_graph_find(g, inputs[k].name);
        if (!node || !(node->type->flags & NN_TYPE_SOURCE))
            return nn_error_set(err, NN_ERR_NOT_FOUND, "input '%s': no such "
                                "input node", inputs[k].name);
    }
    for (int x = 0; x < g->n_exits; x++) {
        if (target_of[x] < 0)
            continue;
        const nn_binding *b = &targets[target_of[x]];
        int rc = check_sequence("target", b->name, b->tensor,
                                &g->exits[x]->out_shape, *N, *T, err);
        if (rc != NN_OK)
            return rc;
    }
    return NN_OK;
}

/* softmax_cross_entropy reads each row of a target's last axis as a
 * distribution: anything else gives negative or meaningless losses. The
 * tolerance admits float32 rounding of rows written in decimal. */
static int check_distributions(const nn_binding *b, nn_error *err)
{
    const nn_tensor *t = b->tensor;
    size_t rows = nn_tensor_rows(t);
    int cols = nn_tensor_cols(t);
    size_t per_step = rows / ((size_t)t->shape.dims[0] *
                              (size_t)t->shape.dims[1]);
    for (size_t r = 0; r < rows; r++) {
        const float *p = t->data + r * (size_t)cols;
        double sum = 0;
        int bad = 0;
        for (int c = 0; c < cols; c++) {
            bad |= !(p[c] >= 0) || !isfinite(p[c]);
            sum += p[c];
        }
        if (bad || !(fabs(sum - 1) <= 1e-3)) {
            size_t step = r / per_step;
            return nn_error_set(err, NN_ERR_INVALID, "target '%s': "
                                "softmax_cross_entropy needs every row to be "
                                "a distribution (non-negative, summing to 1); "
                                "row %zu (sequence %zu, step %zu) %s %g",
                                b->name, r, step / (size_t)t->shape.dims[1],
                                step % (size_t)t->shape.dims[1],
                                bad ? "has a negative or non-finite entry; "
                                      "its sum is" : "sums to", sum);
        }
    }
    return NN_OK;
}

/* Copies sequences rows[0..B) and steps [t0, t0 + K) of src (N, T, ...)
 * into dst, shaped (B, K, ...). */
static void gather(const nn_tensor *src, const int *rows, int B, int t0,
                   int K, nn_tensor *dst)
{
    int N = src->shape.dims[0], T = src->shape.dims[1];
    size_t e = nn_tensor_numel(src) / ((size_t)N * (size_t)T);
    dst->shape = src->shape;
    dst->shape.dims[0] = B;
    dst->shape.dims[1] = K;
    for (int b = 0; b < B; b++)
        memcpy(dst->data + (size_t)b * (size_t)K * e,
               src->data + ((size_t)rows[b] * (size_t)T + (size_t)t0) * e,
               (size_t)K * e * sizeof(float));
}

/* Minibatch and window buffers of one fit. */
typedef struct fit_run {
    nn_session *s;
    nn_tape *tape;
    nn_tensor *in, *tg, *dout; /* per input / target binding / exit */
    nn_binding *bind;          /* views of in */
    nn_tensor **outputs;       /* per exit, from nn_tape_run */
    nn_tensor **douts;         /* per exit: &dout[x] or NULL */
} fit_run;

static int bptt_trainable_check(nn_graph *g, nn_error *err)
{
    int any = 0;
    for (int n = 0; n < g->n_nodes; n++) {
        nn_node *node = g->nodes[n];
        for (int i = 0; i < node->n_weights; i++) {
            if (!node->weights[i]->trainable)
                continue;
            any = 1;
            if (!node->type->backward)
                return nn_error_set(err, NN_ERR_UNSUPPORTED, "node '%s' (%s) "
                                    "is trainable but its type has no "
                                    "backward, so BPTT cannot train it; set "
                                    "its trainable to false or use ridge/rls",
                                    node->name, node->type->name);
        }
    }
    if (!any)
        return nn_error_set(err, NN_ERR_INVALID, "the network has no "
                            "trainable weight");
    return NN_OK;
}

static void fit_run_free(fit_run *fr, nn_graph *g, int n_inputs)
{
    nn_tape_free(fr->tape);
    nn_session_free(fr->s);
    for (int k = 0; fr->in && k < n_inputs; k++)
        nn_tensor_release(&fr->in[k]);
    for (int x = 0; x < g->n_exits; x++) {
        if (fr->tg)
            nn_tensor_release(&fr->tg[x]);
        if (fr->dout)
            nn_tensor_release(&fr->dout[x]);
    }
    nn_free(fr->in);
    nn_free(fr->tg);
    nn_free(fr->dout);
    nn_free(fr->bind);
    nn_free(fr->outputs);
    nn_free(fr->douts);
}

static int fit_run_init(fit_run *fr, nn_graph *g, const nn_binding *inputs,
                        int n_inputs, const nn_binding *targets,
                        const int *target_of, int B, int K, uint64_t seed,
                        nn_error *err)
{
    memset(fr, 0, sizeof *fr);
    size_t nx = (size_t)g->n_exits;
    if (!(fr->in = nn_calloc((size_t)n_inputs, sizeof *fr->in)) ||
        !(fr->bind = nn_calloc((size_t)n_inputs, sizeof *fr->bind)) ||
        !(fr->tg = nn_calloc(nx, sizeof *fr->tg)) ||
        !(fr->dout = nn_calloc(nx, sizeof *fr->dout)) ||
        !(fr->outputs = nn_calloc(nx, sizeof *fr->outputs)) ||
        !(fr->douts = nn_calloc(nx, sizeof *fr->douts)))
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    for (int k = 0; k < n_inputs; k++) {
        nn_shape sh = inputs[k].tensor->shape;
        sh.dims[0] = B;
        sh.dims[1] = K;
        if (nn_tensor_alloc(&fr->in[k], &sh, err) != NN_OK)
            return err->code;
        fr->bind[k].name = inputs[k].name;
        fr->bind[k].tensor = &fr->in[k];
    }
    for (int x = 0; x < g->n_exits; x++) {
        if (target_of[x] < 0)
            continue;
        nn_shape sh = targets[target_of[x]].tensor->shape;
        sh.dims[0] = B;
        sh.dims[1] = K;
        if (nn_tensor_alloc(&fr->tg[x], &sh, err) != NN_OK ||
            nn_tensor_alloc(&fr->dout[x], &sh, err) != NN_OK)
            return err->code;
        fr->douts[x] = &fr->dout[x];
    }
    if (!(fr->s = nn_session_new(g, B, seed, err)) ||
        !(fr->tape = nn_tape_new(fr->s, K, err)))
        return err->code;
    return NN_OK;
}

/* One minibatch: fresh state, then window by window forward, loss,
 * backward, update. Adds the loss summed over windows (each a mean) to
 * *loss_sum and the windows' weights (steps) to *weight. */
static int fit_minibatch(fit_run *fr, nn_graph *g, const nn_binding *inputs,
                         int n_inputs, const nn_binding *targets,
                         const int *target_of, const int *rows, int B, int T,
                         int K, const nn_fit_opts *o, nn_grads *grads,
                         nn_optim *opt, int epoch, double *loss_sum,
                         double *weight, nn_error *err)
{
    int rc = nn_session_reset(fr->s, err);
    for (int t0 = 0; t0 < T && rc == NN_OK; t0 += K) {
        if ((rc = nn_graph_abort_check(g, err)) != NN_OK)
            break;
        int k = T - t0 < K ? T - t0 : K;
        for (int i = 0; i < n_inputs; i++)
            gather(inputs[i].tensor, rows, B, t0, k, &fr->in[i]);
        for (int x = 0; x < g->n_exits; x++)
            if (target_of[x] >= 0) {
                gather(targets[target_of[x]].tensor, rows, B, t0, k,
                       &fr->tg[x]);
                fr->dout[x].shape = fr->tg[x].shape;
            }
        rc = nn_tape_run(fr->tape, fr->bind, n_inputs, k, 1, fr->outputs, err);
        if (rc != NN_OK)
            break;
        double loss = 0;
        for (int x = 0; x < g->n_exits; x++)
            if (target_of[x] >= 0)
                loss += nn_loss(o->loss, fr->outputs[x], &fr->tg[x],
                                &fr->dout[x], 1.0);
        nn_grads_zero(grads);
        rc = nn_tape_backward(fr->tape, fr->douts, grads, err);
        for (int x = 0; x < g->n_exits; x++) {
            nn_tensor_free(fr->outputs[x]);
            fr->outputs[x] = NULL;
        }
        if (rc != NN_OK)
            break;
        if (!isfinite(loss))
            return nn_error_set(err, NN_ERR_INVALID, "the loss diverged (%g) "
                                "at epoch %d; lower lr or clip gradients",
                                loss, epoch + 1);
        if (o->clip_norm > 0)
            nn_grads_clip(grads, o->clip_norm);
        nn_optim_step(opt, grads, epoch);
        *loss_sum += loss * (double)B * k;
        *weight += (double)B * k;
    }
    return rc;
}

/* The checks of nn_fit_bptt; on success *target_of (exits long, owned by
 * the caller) maps exits to target bindings. */
static int fit_check(nn_graph *g, const nn_binding *inputs, int n_inputs,
                     const nn_binding *targets, int n_targets,
                     const nn_fit_opts *opts, nn_optim_opts *optim,
                     int **target_of, int *N, int *T, nn_error *err)
{
    *target_of = NULL;
    if (!g->built)
        return nn_error_set(err, NN_ERR_STATE, "training needs a built graph");
    if (opts->epochs < 1 || opts->batch_size < 0 || opts->window < 0 ||
        !(opts->clip_norm >= 0))
        return nn_error_set(err, NN_ERR_INVALID, "epochs must be >= 1, "
                            "batch_size, window and clip_norm >= 0");
    *optim = opts->optim;
    if (optim->epochs < 0)
        return nn_error_set(err, NN_ERR_INVALID, "the schedule's epochs must "
                            "be >= 0 (0: the fit's epochs)");
    if (optim->schedule == NN_SCHEDULE_COSINE && optim->epochs == 0)
        optim->epochs = opts->epochs;
    int rc = nn_optim_check(optim, err);
    if (rc != NN_OK)
        return rc;
    if (!(*target_of = nn_malloc(sizeof(int) * ((size_t)g->n_exits + 1))))
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    rc = bind_targets(g, targets, n_targets, *target_of, err);
    if (rc == NN_OK)
        rc = check_data(g, inputs, n_inputs, targets, *target_of, N, T, err);
    for (int k = 0; rc == NN_OK && opts->loss == NN_LOSS_SOFTMAX_CE &&
                    k < n_targets; k++)
        rc = check_distributions(&targets[k], err);
    if (rc == NN_OK && g->sequence && opts->window && opts->window < *T)
        rc = nn_error_set(err, NN_ERR_INVALID, "node '%s' (%s) is "
                          "bidirectional and needs whole sequences: the "
                          "window (%d) must be 0 or cover the %d steps",
                          g->sequence->name, g->sequence->type->name,
                          opts->window, *T);
    if (rc == NN_OK)
        rc = bptt_trainable_check(g, err);
    if (rc == NN_OK) {
        size_t B = opts->batch_size && opts->batch_size < *N
                       ? (size_t)opts->batch_size : (size_t)*N;
        size_t K = opts->window && opts->window < *T ? (size_t)opts->window
                                                     : (size_t)*T;
        char what[96];
        snprintf(what, sizeof what, "a BPTT tape of %zu steps (the window) "
                 "at batch %zu", K, B);
        rc = nn_check_session_floats(g, K * B, what, err);
    }
    if (rc != NN_OK) {
        nn_free(*target_of);
        *target_of = NULL;
    }
    return rc;
}

int nn_fit_check(nn_graph *g, const nn_binding *inputs, int n_inputs,
                 const nn_binding *targets, int n_targets,
                 const nn_fit_opts *opts, nn_error *err)
{
    nn_optim_opts oo;
    int *target_of, N, T;
    int rc = fit_check(g, inputs, n_inputs, targets, n_targets, opts, &oo,
                       &target_of, &N, &T, err);
    nn_free(target_of);
    return rc;
}

int nn_fit_bptt(nn_graph *g, const nn_binding *inputs, int n_inputs,
                const nn_binding *targets, int n_targets,
                const nn_fit_opts *opts, double *history, int *epochs_done,
                nn_error *err)
{
    if (epochs_done)
        *epochs_done = 0;
    nn_optim_opts oo;
    int *target_of = NULL, N = 0, T = 0;
    int rc = fit_check(g, inputs, n_inputs, targets, n_targets, opts, &oo,
                       &target_of, &N, &T, err);
    if (rc != NN_OK)
        return rc;
    int B = opts->batch_size && opts->batch_size < N ? opts->batch_size : N;
    int K = opts->window && opts->window < T ? opts->window : T;
    int tail = N % B;
    fit_run full, last;
    memset(&last, 0, sizeof last);
    nn_grads *grads = NULL;
    nn_optim *opt = NULL;
    int *perm = nn_malloc(sizeof(int) * (size_t)N);
    rc = perm ? NN_OK : nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    if (rc == NN_OK)
        rc = fit_run_init(&full, g, inputs, n_inputs, targets, target_of, B, K,
                          opts->seed, err);
    else
        memset(&full, 0, sizeof full);
    if (rc == NN_OK && tail)
        rc = fit_run_init(&last, g, inputs, n_inputs, targets, target_of, tail,
                          K, opts->seed, err);
    if (rc == NN_OK && !(grads = nn_grads_new(g, err)))
        rc = err->code;
    if (rc == NN_OK && !(opt = nn_optim_new(g, &oo, err)))
        rc = err->code;
    nn_rng rng;
    nn_rng_seed(&rng, nn_seed_derive(opts->seed, "shuffle"));
    for (int i = 0; i < N && perm; i++)
        perm[i] = i;
    for (int epoch = 0; epoch < opts->epochs && rc == NN_OK; epoch++) {
        if (opts->shuffle)
            for (int i = N - 1; i > 0; i--) {
                int j = (int)(nn_rng_u64(&rng) % (uint64_t)(i + 1));
                int tmp = perm[i];
                perm[i] = perm[j];
                perm[j] = tmp;
            }
        double loss_sum = 0, weight = 0;
        for (int start = 0; start < N && rc == NN_OK; start += B) {
            int b = N - start < B ? N - start : B;
            rc = fit_minibatch(b == B ? &full : &last, g, inputs, n_inputs,
                               targets, target_of, perm + start, b, T, K, opts,
                               grads, opt, epoch, &loss_sum, &weight, err);
        }
        if (rc != NN_OK)
            break;
        double loss = loss_sum / weight;
        if (history)
            history[epoch] = loss;
        if (epochs_done)
            *epochs_done = epoch + 1;
        if (opts->progress &&
            opts->progress(opts->user, epoch + 1, opts->epochs, loss))
            rc = nn_error_set(err, NN_ERR_STATE, "cancelled after epoch %d",
                              epoch + 1);
    }
    nn_optim_free(opt);
    nn_grads_free(grads);
    fit_run_free(&full, g, n_inputs);
    if (tail)
        fit_run_free(&last, g, n_inputs);
    nn_free(perm);
    nn_free(target_of);
    return rc;
}

/* Re-describes g node by node (same names, types, parameter texts and edges
 * in the same order), builds it, then copies the weights: the result is g
 * again, with its own weights. */
nn_graph *nn_graph_clone(nn_graph *g, nn_error *err)
{
    if (!g->built) {
        nn_error_set(err, NN_ERR_STATE, "only a built graph can be cloned");
        return NULL;
    }
    nn_graph *c = nn_graph_new(g->reg, g->seed);
    if (!c) {
        nn_error_set(err, NN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    int rc = nn_graph_set_limits(c, g->max_params, g->max_session_floats, err);
    for (int n = 0; n < g->n_nodes && rc == NN_OK; n++) {
        nn_node *src = g->nodes[n];
        nn_node *dst = nn_graph_add_node(c, src->type->name, src->name, err);
        if (!dst) {
            rc = err->code;
            break;
        }
        for (int p = 0; p < src->n_params && rc == NN_OK; p++)
            if (src->params[p].text)
                rc = nn_node_set_param(dst, src->type->params[p].name,
                                       src->params[p].text, err);
        if (rc == NN_OK)
            rc = nn_node_set_param(dst, "trainable",
                                   src->trainable ? "true" : "false", err);
    }
    for (int n = 0; n < g->n_nodes && rc == NN_OK; n++) {
        nn_node *node = g->nodes[n];
        for (int k = 0; k < node->n_ff && rc == NN_OK; k++)
            rc = nn_graph_ff(c, node->ff[k]->name, node->name, err);
        for (int k = 0; k < node->n_fb && rc == NN_OK; k++)
            rc = nn_graph_fb(c, node->name, node->fb[k]->name, err);
    }
    if (rc == NN_OK)
        rc = nn_graph_build(c, err);
    if (rc == NN_OK)
        rc = nn_graph_copy_weights(c, g, err);
    if (rc != NN_OK) {
        nn_graph_free(c);
        return NULL;
    }
    return c;
}
