/*
 * tape.c — gradients and backpropagation through time.
 *
 * A taped run records, for every step t, each node's output, each stateful
 * node's state before the step, and each node's random stream before the
 * step. Backward then walks time backwards and, within a step, the execution
 * order backwards, so a node's d loss / d output is complete when it is
 * reached: its consumers in the step have added theirs, and the receivers of
 * its feedback in step t+1 added theirs one iteration earlier (feedback at t+1
 * reads the output of t).
 */
#include "nn_internal.h"
#include "nn_train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- grads */

struct nn_grads {
    nn_graph *g;
    nn_tensor **by_node; /* by_node[node->index][i], i < n_weights */
};

nn_grads *nn_grads_new(nn_graph *g, nn_error *err)
{
    if (!g->built) {
        nn_error_set(err, NN_ERR_STATE, "gradients need a built graph");
        return NULL;
    }
    nn_grads *grads = nn_calloc(1, sizeof *grads);
    if (!grads || !(grads->by_node = nn_calloc((size_t)g->n_nodes,
                                               sizeof(nn_tensor *)))) {
        nn_free(grads);
        nn_error_set(err, NN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    grads->g = g;
    for (int n = 0; n < g->n_nodes; n++) {
        nn_node *node = g->nodes[n];
        if (!node->n_weights)
            continue;
        grads->by_node[n] = nn_calloc((size_t)node->n_weights,
                                      sizeof(nn_tensor));
        if (!grads->by_node[n])
            goto oom;
        for (int i = 0; i < node->n_weights; i++)
            if (nn_tensor_alloc(&grads->by_node[n][i],
                                &node->weights[i]->t.shape, err) != NN_OK)
                goto oom;
    }
    return grads;
oom:
    nn_grads_free(grads);
    nn_error_set(err, NN_ERR_NOMEM, "out of memory for gradients");
    return NULL;
}

void nn_grads_free(nn_grads *grads)
{
    if (!grads)
        return;
    for (int n = 0; n < grads->g->n_nodes; n++) {
        if (!grads->by_node[n])
            continue;
        for (int i = 0; i < grads->g->nodes[n]->n_weights; i++)
            nn_tensor_release(&grads->by_node[n][i]);
        nn_free(grads->by_node[n]);
    }
    nn_free(grads->by_node);
    nn_free(grads);
}

void nn_grads_zero(nn_grads *grads)
{
    for (int n = 0; n < grads->g->n_nodes; n++)
        for (int i = 0; grads->by_node[n] && i < grads->g->nodes[n]->n_weights;
             i++)
            nn_tensor_zero(&grads->by_node[n][i]);
}

nn_tensor *nn_grads_at(nn_grads *grads, const nn_node *node, int i)
{
    if (!node || node->graph != grads->g || i < 0 || i >= node->n_weights)
        return NULL;
    return &grads->by_node[node->index][i];
}

double nn_grads_norm(const nn_grads *grads)
{
    double sum = 0;
    for (int n = 0; n < grads->g->n_nodes; n++) {
        nn_node *node = grads->g->nodes[n];
        for (int i = 0; i < node->n_weights; i++) {
            if (!node->weights[i]->trainable)
                continue;
            const nn_tensor *t = &grads->by_node[n][i];
            for (size_t k = 0; k < nn_tensor_numel(t); k++)
                sum += (double)t->data[k] * t->data[k];
        }
    }
    return sqrt(sum);
}

void nn_grads_scale(nn_grads *grads, float factor)
{
    for (int n = 0; n < grads->g->n_nodes; n++)
        for (int i = 0; grads->by_node[n] && i < grads->g->nodes[n]->n_weights;
             i++) {
            nn_tensor *t = &grads->by_node[n][i];
            for (size_t k = 0; k < nn_tensor_numel(t); k++)
                t->data[k] *= factor;
        }
}

/* ----------------------------------------------------------------- tape */

typedef struct tape_node {
    size_t out_n;          /* floats of one step's output (batch included) */
    float *out_hist;       /* max_steps * out_n */
    size_t *state_n;       /* floats of one step's state k */
    float **state_hist;    /* state k: (max_steps + 1) * state_n[k] */
    nn_rng *rng_hist;      /* stream before each step */
    int needs_grad;        /* trainable weights here or upstream */

    /* Backward scratch, wired once. */
    nn_tensor dout;        /* d loss / d output at the current step */
    nn_tensor carry;       /* d loss / d output of the previous step, added
                              by feedback receivers */
    nn_tensor *dstate;     /* per state */
    nn_tensor *state_before, *state_after;
    nn_tensor *ff_view, *fb_view; /* the inputs at the current step */
    nn_tensor *dff, *dfb;  /* views of the inputs' dout / senders' carry */
    nn_tensor out_view;

    /* A graph with a sequence node runs node by node (run_layered):
     * dout_hist holds d loss / d output for every step, as out_hist the
     * outputs, and a sequence node has its (T + 1)-step scratch. */
    float *dout_hist;      /* max_steps * out_n, with gradients only */
    float *seq_work;       /* (max_steps + 1) * batch * work_per_row */
} tape_node;

struct nn_tape {
    nn_session *s;
    int max_steps;
    int recorded;
    int train;
    long first_step;       /* session step index of the first recorded step */
    tape_node *nodes;
    float *zeros;          /* feedback before the first recorded step */
    int layered;           /* the graph has a sequence node */
};

static int has_trainable_weight(const nn_node *node)
{
    for (int i = 0; i < node->n_weights; i++)
        if (node->weights[i]->trainable)
            return 1;
    return 0;
}

/* needs_grad is true where a trainable weight is at or upstream of the node
 * along ff or fb edges; fb edges point back, so iterate to a fixed point. */
static void mark_needs_grad(nn_tape *tape)
{
    nn_graph *g = tape->s->g;
    for (int n = 0; n < g->n_nodes; n++)
        tape->nodes[n].needs_grad = has_trainable_weight(g->nodes[n]);
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 0; i < g->n_nodes; i++) {
            nn_node *node = g->order[i];
            tape_node *tn = &tape->nodes[node->index];
            if (tn->needs_grad)
                continue;
            for (int k = 0; k < node->n_ff && !tn->needs_grad; k++)
                tn->needs_grad = tape->nodes[node->ff[k]->index].needs_grad;
            for (int k = 0; k < node->n_fb && !tn->needs_grad; k++)
                tn->needs_grad = tape->nodes[node->fb[k]->index].needs_grad;
            changed |= tn->needs_grad;
        }
    }
}

void nn_tape_free(nn_tape *tape)
{
    if (!tape)
        return;
    nn_graph *g = tape->s->g;
    for (int n = 0; tape->nodes && n < g->n_nodes; n++) {
        tape_node *tn = &tape->nodes[n];
        nn_free(tn->out_hist);
        for (int k = 0; tn->state_hist && k < g->nodes[n]->n_states; k++)
            nn_free(tn->state_hist[k]);
        nn_free(tn->state_hist);
        nn_free(tn->state_n);
        nn_free(tn->rng_hist);
        nn_tensor_release(&tn->dout);
        nn_tensor_release(&tn->carry);
        for (int k = 0; tn->dstate && k < g->nodes[n]->n_states; k++)
            nn_tensor_release(&tn->dstate[k]);
        nn_free(tn->dstate);
        nn_free(tn->state_before);
        nn_free(tn->state_after);
        nn_free(tn->ff_view);
        nn_free(tn->fb_view);
        nn_free(tn->dff);
        nn_free(tn->dfb);
        nn_free(tn->dout_hist);
        nn_free(tn->seq_work);
    }
    nn_free(tape->nodes);
    nn_free(tape->zeros);
    nn_free(tape);
}

/* Allocates count elements of size bytes, zeroed; NULL-safe for count 0. */
static void *alloc_array(size_t count, size_t size, int *failed)
{
    if (!count)
        return NULL;
    void *p = nn_calloc(count, size);
    if (!p)
        *failed = 1;
    return p;
}

/* for_grad: a tape to backpropagate through, not only a run node by node
 * (nn_sequence_run), which needs no backward and no gradient buffers. */
static nn_tape *tape_new(nn_session *s, int max_steps, int for_grad,
                         nn_error *err)
{
    nn_graph *g = s->g;
    if (max_steps < 1) {
        nn_error_set(err, NN_ERR_INVALID, "a tape needs at least one step");
        return NULL;
    }
    /* A tape holds a session's worth of floats for every step; node by
     * node with gradients, about as much again for the gradients. */
    int layered = g->sequence != NULL;
    char what[80];
    snprintf(what, sizeof what, "a %s of %d steps at batch %d",
             for_grad ? "BPTT tape" : "run", max_steps, s->batch);
    if (nn_check_session_floats(g, (size_t)max_steps * (size_t)s->batch *
                                       (layered && for_grad ? 2u : 1u),
                                what, err) != NN_OK)
        return NULL;
    nn_tape *tape = nn_calloc(1, sizeof *tape);
    if (!tape) {
        nn_error_set(err, NN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    tape->s = s;
    tape->max_steps = max_steps;
    tape->layered = layered;
    if (!(tape->nodes = nn_calloc((size_t)g->n_nodes, sizeof(tape_node))))
        goto oom;
    mark_needs_grad(tape);
    for (int n = 0; n < g->n_nodes && for_grad; n++) {
        nn_node *node = g->nodes[n];
        tape_node *tn = &tape->nodes[n];
        if (tn->needs_grad && node->sequence && !node->type->backward_seq) {
            nn_error_set(err, NN_ERR_UNSUPPORTED, "node '%s' (%s) cannot "
                         "be differentiated over a whole sequence, so "
                         "gradients cannot reach the trainable weights at "
                         "or before it", node->name, node->type->name);
            nn_tape_free(tape);
            return NULL;
        }
        if (tn->needs_grad && !(node->type->flags & NN_TYPE_SOURCE) &&
            !node->sequence && !node->type->backward) {
            nn_error_set(err, NN_ERR_UNSUPPORTED, "node '%s' (%s) has no "
                         "backward, so gradients cannot reach the trainable "
                         "weights at or before it", node->name,
                         node->type->name);
            nn_tape_free(tape);
            return NULL;
        }
    }
    size_t max_out = 0;
    int failed = 0;
    for (int n = 0; n < g->n_nodes && !failed; n++) {
        nn_node *node = g->nodes[n];
        node_run *r = &s->runs[n];
        tape_node *tn = &tape->nodes[n];
        tn->out_n = nn_tensor_numel(&r->out);
        if (tn->out_n > max_out)
            max_out = tn->out_n;
        tn->out_hist = alloc_array((size_t)max_steps * tn->out_n,
                                   sizeof(float), &failed);
        tn->rng_hist = alloc_array((size_t)max_steps, sizeof(nn_rng), &failed);
        int ns = node->n_states;
        tn->state_n = alloc_array((size_t)ns, sizeof(size_t), &failed);
        tn->state_hist = alloc_array((size_t)ns, sizeof(float *), &failed);
        tn->dstate = alloc_array((size_t)ns, sizeof(nn_tensor), &failed);
        tn->state_before = alloc_array((size_t)ns, sizeof(nn_tensor), &failed);
        tn->state_after = alloc_array((size_t)ns, sizeof(nn_tensor), &failed);
        for (int k = 0; k < ns && !failed; k++) {
            tn->state_n[k] = nn_tensor_numel(&r->state[k]);
            tn->state_hist[k] = alloc_array((size_t)(max_steps + 1) *
                                            tn->state_n[k], sizeof(float),
                                            &failed);
            if (!failed && nn_tensor_alloc(&tn->dstate[k], &r->state[k].shape,
                                           err) != NN_OK)
                failed = 1;
        }
        if (!failed && (nn_tensor_alloc(&tn->dout, &r->out.shape, err) ||
                        nn_tensor_alloc(&tn->carry, &r->out.shape, err)))
            failed = 1;
        tn->ff_view = alloc_array((size_t)node->n_ff, sizeof(nn_tensor),
                                  &failed);
        tn->dff = alloc_array((size_t)node->n_ff, sizeof(nn_tensor), &failed);
        tn->fb_view = alloc_array((size_t)node->n_fb, sizeof(nn_tensor),
                                  &failed);
        tn->dfb = alloc_array((size_t)node->n_fb, sizeof(nn_tensor), &failed);
        if (layered && for_grad)
            tn->dout_hist = alloc_array((size_t)max_steps * tn->out_n,
                                        sizeof(float), &failed);
        if (node->sequence)
            tn->seq_work = alloc_array((size_t)(max_steps + 1) *
                                       (size_t)s->batch * node->work_per_row,
                                       sizeof(float), &failed);
        if (layered && r->out.shape.ndim + 1 > NN_MAX_DIMS) {
            nn_tape_free(tape);
            nn_error_set(err, NN_ERR_SHAPE, "node '%s': output has too many "
                         "axes for a sequence", node->name);
            return NULL;
        }
    }
    if (failed || !(tape->zeros = nn_calloc(max_out, sizeof(float))))
        goto oom;
    /* Wire the gradient views once: an input's gradient goes straight into
     * the producer's dout, a feedback gradient into the sender's carry. */
    for (int n = 0; n < g->n_nodes; n++) {
        nn_node *node = g->nodes[n];
        tape_node *tn = &tape->nodes[n];
        for (int k = 0; k < node->n_ff; k++) {
            nn_tensor *d = &tape->nodes[node->ff[k]->index].dout;
            tn->dff[k] = nn_tensor_view(d->data, &d->shape);
        }
        for (int k = 0; k < node->n_fb; k++) {
            nn_tensor *c = &tape->nodes[node->fb[k]->index].carry;
            tn->dfb[k] = nn_tensor_view(c->data, &c->shape);
        }
    }
    return tape;
oom:
    nn_tape_free(tape);
    nn_error_set(err, NN_ERR_NOMEM, "out of memory for a tape of %d steps",
                 max_steps);
    return NULL;
}

nn_tape *nn_tape_new(nn_session *s, int max_steps, nn_error *err)
{
    return tape_new(s, max_steps, 1, err);
}

static void record_node_states(nn_tape *tape, int n, int t)
{
    node_run *r = &tape->s->runs[n];
    tape_node *tn = &tape->nodes[n];
    for (int k = 0; k < r->n_state; k++)
        memcpy(tn->state_hist[k] + (size_t)t * tn->state_n[k],
               r->state[k].data, tn->state_n[k] * sizeof(float));
}

static void record_states(nn_tape *tape, int t)
{
    for (int n = 0; n < tape->s->g->n_nodes; n++)
        record_node_states(tape, n, t);
}

/* (T, shape...): a node's batched shape with a time axis in front, the
 * layout of out_hist and dout_hist. */
static nn_shape time_major(int T, const nn_shape *batched)
{
    nn_shape s = *batched;
    memmove(&s.dims[1], &s.dims[0], sizeof(int) * (size_t)s.ndim);
    s.dims[0] = T;
    s.ndim++;
    return s;
}

/* The run node by node, for a graph with a sequence node (it has no
 * feedback): the entries over all steps first, then each node in
 * execution order over all steps, from its inputs' recorded outputs; a
 * sequence node at once. */
static int run_layered(nn_tape *tape, const nn_tensor **bound, int T,
                       int train, nn_error *err)
{
    nn_session *s = tape->s;
    nn_graph *g = s->g;
    for (int t = 0; t < T; t++) {
        nn_session_load_step(s, bound, T, t);
        for (int e = 0; e < g->n_entries; e++) {
            int n = g->entries[e]->index;
            memcpy(tape->nodes[n].out_hist + (size_t)t * tape->nodes[n].out_n,
                   s->runs[n].out.data, tape->nodes[n].out_n * sizeof(float));
        }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        nn_node *node = g->order[i];
        int n = node->index;
        node_run *r = &s->runs[n];
        tape_node *tn = &tape->nodes[n];
        if (node->type->flags & NN_TYPE_SOURCE)
            continue;
        if (node->sequence) {
            for (int k = 0; k < node->n_ff; k++) {
                tape_node *src = &tape->nodes[node->ff[k]->index];
                nn_shape sh = time_major(T, &src->dout.shape);
                tn->ff_view[k] = nn_tensor_view(src->out_hist, &sh);
            }
            nn_shape sh = time_major(T, &r->out.shape);
            nn_tensor out = nn_tensor_view(tn->out_hist, &sh);
            tn->rng_hist[0] = r->rng;
            nn_ctx ctx;
            memset(&ctx, 0, sizeof ctx);
            ctx.train = train != 0;
            ctx.num_batch = s->batch;
            ctx.step = s->steps;
            ctx.rng = &r->rng;
            ctx.work = tn->seq_work;
            nn_error own, *e = err ? err : &own; /* a real record always */
            ctx.err = e;
            nn_error_clear(e);
            int rc = node->type->forward_seq(node, tn->ff_view, node->n_ff,
                                             &out, &ctx);
            if (rc != NN_OK) {
                e->code = rc;
                if (!e->msg[0])
                    nn_error_set(e, rc, "forward failed");
                return nn_error_prefix(e, "node '%s' (%s)", node->name,
                                       node->type->name);
            }
            /* What a stepped run leaves: the last step's output. */
            memcpy(r->out.data, tn->out_hist + (size_t)(T - 1) * tn->out_n,
                   tn->out_n * sizeof(float));
            continue;
        }
        for (int t = 0; t < T; t++) {
            for (int k = 0; k < node->n_ff; k++) {
                tape_node *src = &tape->nodes[node->ff[k]->index];
                tn->ff_view[k] = nn_tensor_view(
                    src->out_hist + (size_t)t * src->out_n, &src->dout.shape);
            }
            record_node_states(tape, n, t);
            tn->rng_hist[t] = r->rng;
            int rc = nn_session_forward_node(s, node, tn->ff_view, train,
                                             s->steps + t, err);
            if (rc != NN_OK)
                return nn_error_prefix(err, "step %d", t);
            memcpy(tn->out_hist + (size_t)t * tn->out_n, r->out.data,
                   tn->out_n * sizeof(float));
        }
        record_node_states(tape, n, T);
    }
    s->steps += T;
    return NN_OK;
}

/* The exits' recorded outputs, (T, batch, ...), into the sequence outputs,
 * (batch, T, ...). */
/* The (batch, T, ...) outputs of nodes[0..n) from the run's histories. */
static void store_layered(nn_tape *tape, nn_node *const *nodes, int n,
                          nn_tensor **outputs, int T)
{
    nn_session *s = tape->s;
    for (int x = 0; x < n; x++) {
        const tape_node *tn = &tape->nodes[nodes[x]->index];
        size_t row = tn->out_n / (size_t)s->batch;
        for (int t = 0; t < T; t++)
            for (int b = 0; b < s->batch; b++)
                memcpy(outputs[x]->data + ((size_t)b * (size_t)T +
                                           (size_t)t) * row,
                       tn->out_hist + (size_t)t * tn->out_n + (size_t)b * row,
                       row * sizeof(float));
    }
}

int nn_sequence_run(nn_session *s, const nn_tensor **bound, int num_steps,
                    int train, nn_node *const *nodes, int n_nodes,
                    nn_tensor **outputs, nn_error *err)
{
    nn_tape *tape = tape_new(s, num_steps, 0, err);
    if (!tape)
        return err ? err->code : NN_ERR_NOMEM;
    int rc = run_layered(tape, bound, num_steps, train, err);
    if (rc == NN_OK)
        store_layered(tape, nodes, n_nodes, outputs, num_steps);
    nn_tape_free(tape);
    return rc;
}

int nn_tape_run(nn_tape *tape, const nn_binding *inputs, int n_inputs,
                int num_steps, int train, nn_tensor **outputs, nn_error *err)
{
    nn_session *s = tape->s;
    nn_graph *g = s->g;
    for (int x = 0; x < g->n_exits; x++)
        outputs[x] = NULL;
    tape->recorded = 0;
    if (num_steps > tape->max_steps)
        return nn_error_set(err, NN_ERR_LIMIT, "%d steps do not fit a tape of "
                            "%d", num_steps, tape->max_steps);
    const nn_tensor **bound = nn_calloc((size_t)g->n_entries + 1,
                                        sizeof *bound);
    if (!bound)
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    int rc = nn_session_bind_sequence(s, inputs, n_inputs, num_steps, bound,
                                      err);
    if (rc == NN_OK)
        rc = nn_session_sequence_outputs(s, num_steps, outputs, err);
    tape->first_step = s->steps;
    tape->train = train != 0;
    if (rc == NN_OK && tape->layered) {
        rc = run_layered(tape, bound, num_steps, train, err);
        if (rc == NN_OK) {
            store_layered(tape, g->exits, g->n_exits, outputs, num_steps);
            tape->recorded = num_steps;
        } else {
            nn_session_outputs_free(s, outputs);
        }
        nn_free(bound);
        return rc;
    }
    for (int t = 0; t < num_steps && rc == NN_OK; t++) {
        nn_session_load_step(s, bound, num_steps, t);
        record_states(tape, t);
        for (int n = 0; n < g->n_nodes; n++)
            tape->nodes[n].rng_hist[t] = s->runs[n].rng;
        rc = nn_session_step(s, train, err);
        if (rc != NN_OK) {
            nn_error_prefix(err, "step %d", t);
            break;
        }
        for (int n = 0; n < g->n_nodes; n++)
            memcpy(tape->nodes[n].out_hist + (size_t)t * tape->nodes[n].out_n,
                   s->runs[n].out.data, tape->nodes[n].out_n * sizeof(float));
        nn_session_store_step(s, outputs, num_steps, t);
    }
    if (rc == NN_OK) {
        record_states(tape, num_steps);
        tape->recorded = num_steps;
    } else {
        nn_session_outputs_free(s, outputs);
    }
    nn_free(bound);
    return rc;
}

/* Adds step t of a (batch, T, ...) sequence gradient into dout. */
static void add_sequence_step(nn_tensor *dout, const nn_tensor *seq, int T,
                              int t)
{
    size_t batch = (size_t)dout->shape.dims[0];
    size_t row = nn_tensor_numel(dout) / batch;
    for (size_t b = 0; b < batch; b++) {
        const float *src = seq->data + (b * (size_t)T + (size_t)t) * row;
        float *dst = dout->data + b * row;
        for (size_t j = 0; j < row; j++)
            dst[j] += src[j];
    }
}

/* Backward node by node, the reverse of run_layered: a node's dout_hist
 * is complete when it is reached, as its consumers come after it in the
 * execution order (there is no feedback). */
static int backward_layered(nn_tape *tape, nn_tensor *const *d_outputs,
                            nn_grads *grads, int T, nn_error *err)
{
    nn_session *s = tape->s;
    nn_graph *g = s->g;
    for (int n = 0; n < g->n_nodes; n++)
        memset(tape->nodes[n].dout_hist, 0,
               (size_t)T * tape->nodes[n].out_n * sizeof(float));
    for (int x = 0; x < g->n_exits; x++) {
        if (!d_outputs || !d_outputs[x])
            continue;
        tape_node *tn = &tape->nodes[g->exits[x]->index];
        for (int t = 0; t < T; t++) {
            nn_tensor step = nn_tensor_view(
                tn->dout_hist + (size_t)t * tn->out_n, &tn->dout.shape);
            add_sequence_step(&step, d_outputs[x], T, t);
        }
    }
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        nn_node *node = g->order[i];
        tape_node *tn = &tape->nodes[node->index];
        if (!tn->needs_grad || (node->type->flags & NN_TYPE_SOURCE))
            continue;
        nn_ctx ctx;
        memset(&ctx, 0, sizeof ctx);
        ctx.train = tape->train;
        ctx.num_batch = s->batch;
        ctx.grad = grads->by_node[node->index];
        nn_error own, *e = err ? err : &own; /* a real record always */
        ctx.err = e;
        nn_error_clear(e);
        int rc = NN_OK;
        if (node->sequence) {
            for (int k = 0; k < node->n_ff; k++) {
                tape_node *src = &tape->nodes[node->ff[k]->index];
                nn_shape sh = time_major(T, &src->dout.shape);
                tn->ff_view[k] = nn_tensor_view(src->out_hist, &sh);
                tn->dff[k] = nn_tensor_view(src->dout_hist, &sh);
            }
            nn_shape sh = time_major(T, &tn->dout.shape);
            nn_tensor out = nn_tensor_view(tn->out_hist, &sh);
            nn_tensor dout = nn_tensor_view(tn->dout_hist, &sh);
            nn_rng rng = tn->rng_hist[0];
            ctx.step = tape->first_step;
            ctx.rng = &rng;
            ctx.work = tn->seq_work;
            rc = node->type->backward_seq(node, tn->ff_view, node->n_ff, &out,
                                          &dout, tn->dff, &ctx);
            if (rc != NN_OK) {
                e->code = rc;
                if (!e->msg[0])
                    nn_error_set(e, rc, "backward failed");
                return nn_error_prefix(e, "node '%s' (%s) backward",
                                       node->name, node->type->name);
            }
            continue;
        }
        for (int k = 0; k < node->n_states; k++)
            nn_tensor_zero(&tn->dstate[k]);
        for (int t = T - 1; t >= 0; t--) {
            for (int k = 0; k < node->n_ff; k++) {
                tape_node *src = &tape->nodes[node->ff[k]->index];
                tn->ff_view[k] = nn_tensor_view(
                    src->out_hist + (size_t)t * src->out_n, &src->dout.shape);
                tn->dff[k] = nn_tensor_view(
                    src->dout_hist + (size_t)t * src->out_n, &src->dout.shape);
            }
            for (int k = 0; k < node->n_states; k++) {
                nn_shape shape = tn->dstate[k].shape;
                tn->state_before[k] = nn_tensor_view(
                    tn->state_hist[k] + (size_t)t * tn->state_n[k], &shape);
                tn->state_after[k] = nn_tensor_view(
                    tn->state_hist[k] + (size_t)(t + 1) * tn->state_n[k],
                    &shape);
            }
            tn->out_view = nn_tensor_view(tn->out_hist + (size_t)t * tn->out_n,
                                          &tn->dout.shape);
            nn_tensor dout = nn_tensor_view(
                tn->dout_hist + (size_t)t * tn->out_n, &tn->dout.shape);
            nn_rng rng = tn->rng_hist[t];
            ctx.step = tape->first_step + t;
            ctx.rng = &rng;
            ctx.state = tn->state_before;
            ctx.n_state = node->n_states;
            ctx.state_next = tn->state_after;
            ctx.work = s->runs[node->index].work;
            ctx.dstate = tn->dstate;
            nn_error_clear(e);
            rc = node->type->backward(node, tn->ff_view, node->n_ff, NULL, 0,
                                      &tn->out_view, &dout, tn->dff, NULL,
                                      &ctx);
            if (rc != NN_OK) {
                e->code = rc;
                if (!e->msg[0])
                    nn_error_set(e, rc, "backward failed");
                return nn_error_prefix(e, "node '%s' (%s) backward at step "
                                       "%d", node->name, node->type->name, t);
            }
        }
    }
    return NN_OK;
}

int nn_tape_backward(nn_tape *tape, nn_tensor *const *d_outputs,
                     nn_grads *grads, nn_error *err)
{
    nn_session *s = tape->s;
    nn_graph *g = s->g;
    int T = tape->recorded;
    if (T < 1)
        return nn_error_set(err, NN_ERR_STATE, "nothing was recorded to "
                            "backpropagate through");
    if (grads->g != g)
        return nn_error_set(err, NN_ERR_INVALID, "the gradients belong to "
                            "another graph");
    for (int x = 0; x < g->n_exits; x++) {
        const nn_tensor *d = d_outputs ? d_outputs[x] : NULL;
        size_t want = tape->nodes[g->exits[x]->index].out_n * (size_t)T;
        if (d && (nn_tensor_numel(d) != want || d->shape.dims[0] != s->batch))
            return nn_error_set(err, NN_ERR_SHAPE, "the gradient of output "
                                "'%s' must be shaped like the output (batch, "
                                "%d steps, ...)", g->exits[x]->name, T);
    }
    for (int n = 0; n < g->n_nodes; n++) {
        tape_node *tn = &tape->nodes[n];
        nn_tensor_zero(&tn->carry);
        for (int k = 0; k < g->nodes[n]->n_states; k++)
            nn_tensor_zero(&tn->dstate[k]);
    }
    if (tape->layered)
        return backward_layered(tape, d_outputs, grads, T, err);
    for (int t = T - 1; t >= 0; t--) {
        /* What feedback receivers of step t+1 sent back becomes part of
         * this step's output gradient. */
        for (int n = 0; n < g->n_nodes; n++) {
            tape_node *tn = &tape->nodes[n];
            memcpy(tn->dout.data, tn->carry.data, tn->out_n * sizeof(float));
            nn_tensor_zero(&tn->carry);
        }
        for (int x = 0; x < g->n_exits; x++)
            if (d_outputs && d_outputs[x])
                add_sequence_step(&tape->nodes[g->exits[x]->index].dout,
                                  d_outputs[x], T, t);
        for (int i = g->n_nodes - 1; i >= 0; i--) {
            nn_node *node = g->order[i];
            tape_node *tn = &tape->nodes[node->index];
            if (!tn->needs_grad || (node->type->flags & NN_TYPE_SOURCE))
                continue;
            for (int k = 0; k < node->n_ff; k++) {
                tape_node *src = &tape->nodes[node->ff[k]->index];
                tn->ff_view[k] = nn_tensor_view(
                    src->out_hist + (size_t)t * src->out_n, &src->dout.shape);
            }
            for (int k = 0; k < node->n_fb; k++) {
                tape_node *src = &tape->nodes[node->fb[k]->index];
                float *prev = t > 0 ? src->out_hist + (size_t)(t - 1) *
                                                          src->out_n
                                    : tape->zeros;
                tn->fb_view[k] = nn_tensor_view(prev, &src->dout.shape);
            }
            for (int k = 0; k < node->n_states; k++) {
                nn_shape shape = tn->dstate[k].shape;
                tn->state_before[k] = nn_tensor_view(
                    tn->state_hist[k] + (size_t)t * tn->state_n[k], &shape);
                tn->state_after[k] = nn_tensor_view(
                    tn->state_hist[k] + (size_t)(t + 1) * tn->state_n[k],
                    &shape);
            }
            tn->out_view = nn_tensor_view(tn->out_hist + (size_t)t * tn->out_n,
                                          &tn->dout.shape);
            nn_rng rng = tn->rng_hist[t];
            nn_ctx ctx;
            memset(&ctx, 0, sizeof ctx);
            ctx.train = tape->train;
            ctx.num_batch = s->batch;
            ctx.step = tape->first_step + t;
            ctx.rng = &rng;
            ctx.state = tn->state_before;
            ctx.n_state = node->n_states;
            ctx.state_next = tn->state_after;
            ctx.work = s->runs[node->index].work;
            ctx.grad = grads->by_node[node->index];
            ctx.dstate = tn->dstate;
            nn_error own, *e = err ? err : &own; /* a real record always */
            ctx.err = e;
            nn_error_clear(e);
            int rc = node->type->backward(node, tn->ff_view, node->n_ff,
                                          tn->fb_view, node->n_fb,
                                          &tn->out_view, &tn->dout, tn->dff,
                                          tn->dfb, &ctx);
            if (rc != NN_OK) {
                e->code = rc;
                if (!e->msg[0])
                    nn_error_set(e, rc, "backward failed");
                return nn_error_prefix(e, "node '%s' (%s) backward at step "
                                       "%d", node->name, node->type->name, t);
            }
        }
    }
    return NN_OK;
}
