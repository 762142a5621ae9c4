/*
 * session.c — the compiled run of a built graph for one batch size.
 *
 * Everything a step touches is allocated in nn_session_new: one output
 * buffer per node, each node's state and scratch, and the input views each
 * node's forward receives. A step walks the graph's execution order and
 * allocates nothing.
 *
 * Feedback needs no copy: a receiver has a feedforward path to its sender,
 * so it runs before the sender in every step and reads the sender's output
 * buffer while it still holds the previous step's value (zeros after reset).
 */
#include "nn_internal.h"

#include <stdio.h>
#include <string.h>

nn_shape nn_batched_shape(int batch, const nn_shape *per_sample)
{
    nn_shape s;
    memset(&s, 0, sizeof s);
    s.ndim = per_sample->ndim + 1;
    s.dims[0] = batch;
    for (int d = 0; d < per_sample->ndim; d++)
        s.dims[d + 1] = per_sample->dims[d];
    return s;
}

static void runs_release(nn_session *s)
{
    if (!s->runs)
        return;
    for (int i = 0; i < s->g->n_nodes; i++) {
        node_run *r = &s->runs[i];
        nn_tensor_release(&r->out);
        for (int k = 0; k < r->n_state; k++)
            nn_tensor_release(&r->state[k]);
        nn_free(r->state);
        nn_scratch_free(r->work, s->g->nodes[i]->work_per_row *
                                     (size_t)s->batch);
        nn_free(r->ff);
        nn_free(r->fb);
    }
    nn_free(s->runs);
    s->runs = NULL;
}

/* Adds b to *a, saturating. */
static void add_sat(size_t *a, size_t b)
{
    *a = *a > SIZE_MAX - b ? SIZE_MAX : *a + b;
}

size_t nn_floats_per_row(const nn_graph *g)
{
    size_t per_row = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const nn_node *node = g->nodes[i];
        add_sat(&per_row, nn_shape_numel(&node->out_shape));
        for (int k = 0; k < node->n_states; k++)
            add_sat(&per_row, nn_shape_numel(&node->states[k].shape));
        add_sat(&per_row, node->work_per_row);
    }
    return per_row;
}

size_t nn_session_float_count(const nn_graph *g, int num_batch)
{
    size_t per_row = nn_floats_per_row(g);
    size_t rows = num_batch > 0 ? (size_t)num_batch : 0;
    return rows && per_row > SIZE_MAX / rows ? SIZE_MAX : per_row * rows;
}

int nn_check_session_floats(const nn_graph *g, size_t rows, const char *what,
                            nn_error *err)
{
    size_t per_row = nn_floats_per_row(g);
    if (!g->max_session_floats || rows == 0 ||
        per_row <= g->max_session_floats / rows)
        return NN_OK;
    return nn_error_set(err, NN_ERR_LIMIT, "%s would hold %zu rows of %zu "
                        "floats (outputs, state, scratch); the network's "
                        "limit is %zu floats", what, rows, per_row,
                        g->max_session_floats);
}

static int runs_alloc(nn_session *s, nn_error *err)
{
    nn_graph *g = s->g;
    s->runs = nn_calloc((size_t)g->n_nodes, sizeof *s->runs);
    if (!s->runs)
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    char what[48];
    snprintf(what, sizeof what, "a session of batch %d", s->batch);
    int rc = nn_check_session_floats(g, (size_t)s->batch, what, err);
    if (rc != NN_OK)
        return rc;
    /* Output buffers first: the input views below point into them. */
    for (int i = 0; i < g->n_nodes; i++) {
        nn_node *node = g->nodes[i];
        node_run *r = &s->runs[i];
        if (node->out_shape.ndim + 1 > NN_MAX_DIMS)
            return nn_error_set(err, NN_ERR_SHAPE, "node '%s': output has too "
                                "many axes", node->name);
        nn_shape shape = nn_batched_shape(s->batch, &node->out_shape);
        if (nn_tensor_alloc(&r->out, &shape, err) != NN_OK)
            return nn_error_prefix(err, "node '%s' output", node->name);
        if (node->n_states) {
            r->state = nn_calloc((size_t)node->n_states, sizeof *r->state);
            if (!r->state)
                return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
            r->n_state = node->n_states;
            for (int k = 0; k < node->n_states; k++) {
                nn_shape ss = nn_batched_shape(s->batch, &node->states[k].shape);
                if (nn_tensor_alloc(&r->state[k], &ss, err) != NN_OK)
                    return nn_error_prefix(err, "node '%s' state '%s'",
                                           node->name, node->states[k].name);
            }
        }
        if (node->work_per_row) {
            r->work = nn_scratch_alloc(node->work_per_row * (size_t)s->batch);
            if (!r->work)
                return nn_error_set(err, NN_ERR_NOMEM, "out of memory for the "
                                    "scratch of node '%s'", node->name);
        }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        nn_node *node = g->nodes[i];
        node_run *r = &s->runs[i];
        if (node->n_ff && !(r->ff = nn_calloc((size_t)node->n_ff,
                                              sizeof(nn_tensor))))
            return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
        if (node->n_fb && !(r->fb = nn_calloc((size_t)node->n_fb,
                                              sizeof(nn_tensor))))
            return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
        for (int k = 0; k < node->n_ff; k++) {
            nn_tensor *src = &s->runs[node->ff[k]->index].out;
            r->ff[k] = nn_tensor_view(src->data, &src->shape);
        }
        for (int k = 0; k < node->n_fb; k++) {
            nn_tensor *src = &s->runs[node->fb[k]->index].out;
            r->fb[k] = nn_tensor_view(src->data, &src->shape);
        }
    }
    return NN_OK;
}

int nn_session_reset(nn_session *s, nn_error *err)
{
    nn_graph *g = s->g;
    s->steps = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        nn_node *node = g->nodes[i];
        node_run *r = &s->runs[i];
        nn_tensor_zero(&r->out);
        for (int k = 0; k < r->n_state; k++)
            nn_tensor_zero(&r->state[k]);
        nn_rng_seed(&r->rng, nn_seed_derive(s->seed, node->name));
        if (node->type->init_state) {
            nn_error own, *e = err ? err : &own; /* a real record always */
            nn_error_clear(e);
            int rc = node->type->init_state(node, r->state, r->n_state,
                                            s->batch, e);
            if (rc != NN_OK) {
                e->code = rc;
                return nn_error_prefix(e, "node '%s' (%s) init_state",
                                       node->name, node->type->name);
            }
        }
    }
    return NN_OK;
}

int nn_session_renew(nn_session *s, uint64_t seed, nn_error *err)
{
    /* A fresh session's scratch is zero too: a node that reads its scratch
     * before writing it must not see the last request's numbers. */
    for (int i = 0; i < s->g->n_nodes; i++)
        if (s->runs[i].work)
            memset(s->runs[i].work, 0, s->g->nodes[i]->work_per_row *
                                           (size_t)s->batch * sizeof(float));
    s->seed = seed;
    s->batch_mark = 0;
    return nn_session_reset(s, err);
}

nn_session *nn_session_new(nn_graph *g, int num_batch, uint64_t seed,
                           nn_error *err)
{
    if (!g || !g->built) {
        nn_error_set(err, NN_ERR_STATE, "a session needs a built graph");
        return NULL;
    }
    if (num_batch < 1) {
        nn_error_set(err, NN_ERR_INVALID, "batch size must be at least 1, "
                     "got %d", num_batch);
        return NULL;
    }
    nn_session *s = nn_calloc(1, sizeof *s);
    if (!s) {
        nn_error_set(err, NN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    s->g = g;
    s->batch = num_batch;
    s->seed = seed;
    if (runs_alloc(s, err) != NN_OK || nn_session_reset(s, err) != NN_OK) {
        nn_session_free(s);
        return NULL;
    }
    return s;
}

void nn_session_free(nn_session *s)
{
    if (!s)
        return;
    runs_release(s);
    nn_free(s);
}

int nn_session_copy_state(nn_session *dst, const nn_session *src,
                          nn_error *err)
{
    if (dst->batch != src->batch || dst->g->n_nodes != src->g->n_nodes)
        return nn_error_set(err, NN_ERR_SHAPE, "the sessions differ: %d and "
                            "%d rows, %d and %d nodes", dst->batch, src->batch,
                            dst->g->n_nodes, src->g->n_nodes);
    for (int i = 0; i < src->g->n_nodes; i++) {
        const node_run *a = &src->runs[i];
        const node_run *b = &dst->runs[i];
        int same = a->n_state == b->n_state &&
                   nn_tensor_numel(&a->out) == nn_tensor_numel(&b->out) &&
                   src->g->nodes[i]->work_per_row ==
                       dst->g->nodes[i]->work_per_row;
        for (int k = 0; same && k < a->n_state; k++)
            same = nn_tensor_numel(&a->state[k]) ==
                   nn_tensor_numel(&b->state[k]);
        if (!same)
            return nn_error_set(err, NN_ERR_SHAPE, "the sessions differ at "
                                "node '%s'", src->g->nodes[i]->name);
    }
    for (int i = 0; i < src->g->n_nodes; i++) {
        const node_run *a = &src->runs[i];
        node_run *b = &dst->runs[i];
        memcpy(b->out.data, a->out.data,
               nn_tensor_numel(&a->out) * sizeof(float));
        for (int k = 0; k < a->n_state; k++)
            memcpy(b->state[k].data, a->state[k].data,
                   nn_tensor_numel(&a->state[k]) * sizeof(float));
        if (a->work)
            memcpy(b->work, a->work, src->g->nodes[i]->work_per_row *
                                         (size_t)src->batch * sizeof(float));
        b->rng = a->rng;
    }
    dst->seed = src->seed;
    dst->steps = nn_session_steps(src);
    return NN_OK;
}

int nn_session_batch(const nn_session *s) { return s->batch; }
long nn_session_steps(const nn_session *s) { return s->steps; }

int nn_session_resize(nn_session *s, int num_batch, nn_error *err)
{
    if (num_batch < 1)
        return nn_error_set(err, NN_ERR_INVALID, "batch size must be at least "
                            "1, got %d", num_batch);
    int old = s->batch;
    node_run *old_runs = s->runs;
    s->runs = NULL;
    s->batch = num_batch;
    int rc = runs_alloc(s, err);
    if (rc == NN_OK)
        rc = nn_session_reset(s, err);
    if (rc != NN_OK) {
        /* Keep the session usable at its old size. */
        runs_release(s);
        s->runs = old_runs;
        s->batch = old;
        return rc;
    }
    node_run *fresh = s->runs;
    s->runs = old_runs;
    s->batch = old;
    runs_release(s);
    s->runs = fresh;
    s->batch = num_batch;
    return NN_OK;
}

nn_tensor *nn_session_input(nn_session *s, const char *name)
{
    nn_node *node = nn_graph_find(s->g, name);
    if (!node || !(node->type->flags & NN_TYPE_SOURCE))
        return NULL;
    return &s->runs[node->index].out;
}

int nn_session_refuse_sequence(const nn_graph *g, nn_error *err)
{
    const nn_node *seq = g->sequence;
    if (!seq)
        return NN_OK;
    return nn_error_set(err, NN_ERR_UNSUPPORTED, "node '%s' (%s) is "
                        "bidirectional and needs whole sequences: run the "
                        "network over a sequence (a run, .../run) instead "
                        "of stepping it", seq->name, seq->type->name);
}

int nn_session_forward_node(nn_session *s, nn_node *node, nn_tensor *ff,
                            int train, long step, nn_error *err)
{
    node_run *r = &s->runs[node->index];
    nn_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.train = train != 0;
    ctx.num_batch = s->batch;
    ctx.step = step;
    ctx.rng = &r->rng;
    ctx.state = r->state;
    ctx.n_state = r->n_state;
    ctx.work = r->work;
    nn_error own, *e = err ? err : &own; /* a real record always */
    ctx.err = e;
    nn_error_clear(e);
    int rc = node->type->forward(node, ff, node->n_ff, r->fb, node->n_fb,
                                 &r->out, &ctx);
    if (rc != NN_OK) {
        e->code = rc;
        if (!e->msg[0])
            nn_error_set(e, rc, "forward failed");
        return nn_error_prefix(e, "node '%s' (%s)", node->name,
                               node->type->name);
    }
    return NN_OK;
}

int nn_session_step(nn_session *s, int train, nn_error *err)
{
    nn_graph *g = s->g;
    int rc = nn_session_refuse_sequence(g, err);
    for (int i = 0; i < g->n_nodes && rc == NN_OK; i++) {
        nn_node *node = g->order[i];
        rc = nn_session_forward_node(s, node, s->runs[node->index].ff, train,
                                     s->steps, err);
    }
    if (rc == NN_OK)
        s->steps++;
    return rc;
}

const nn_tensor *nn_session_output(const nn_session *s, const char *name)
{
    nn_node *node = nn_graph_find(s->g, name);
    return node ? &s->runs[node->index].out : NULL;
}

nn_tensor *nn_session_state(nn_session *s, const char *name, int i)
{
    nn_node *node = nn_graph_find(s->g, name);
    if (!node || i < 0 || i >= s->runs[node->index].n_state)
        return NULL;
    return &s->runs[node->index].state[i];
}

nn_tensor *nn_session_output_buffer(nn_session *s, const char *name)
{
    nn_node *node = nn_graph_find(s->g, name);
    return node ? &s->runs[node->index].out : NULL;
}

nn_rng *nn_session_rng(nn_session *s, const char *name)
{
    nn_node *node = nn_graph_find(s->g, name);
    return node ? &s->runs[node->index].rng : NULL;
}

int nn_session_set_steps(nn_session *s, long steps, nn_error *err)
{
    if (steps < 0)
        return nn_error_set(err, NN_ERR_INVALID, "a step count cannot be "
                            "negative, got %ld", steps);
    s->steps = steps;
    return NN_OK;
}

/* Checks that a sequence tensor is (batch, num_steps, per-sample shape). */
static int check_sequence(const nn_session *s, const nn_node *entry,
                          const nn_tensor *t, int *num_steps, nn_error *err)
{
    char got[96], want[96];
    nn_shape expect = nn_batched_shape(s->batch, &entry->out_shape);
    int ok = t && t->data && t->shape.ndim == expect.ndim + 1 &&
             t->shape.dims[0] == s->batch && t->shape.dims[1] >= 1;
    for (int d = 1; ok && d < expect.ndim; d++)
        ok = t->shape.dims[d + 1] == expect.dims[d];
    if (ok && *num_steps >= 0 && t->shape.dims[1] != *num_steps)
        ok = 0;
    if (!ok) {
        nn_shape_str(&entry->out_shape, want, sizeof want);
        return nn_error_set(err, NN_ERR_SHAPE, "input '%s' must be shaped "
                            "(batch=%d, time, %s), all inputs with the same "
                            "time length; got %s", entry->name, s->batch,
                            want, t ? nn_shape_str(&t->shape, got, sizeof got)
                                    : "nothing");
    }
    *num_steps = t->shape.dims[1];
    return NN_OK;
}

int nn_session_bind_sequence(nn_session *s, const nn_binding *inputs,
                             int n_inputs, int num_steps,
                             const nn_tensor **bound, nn_error *err)
{
    nn_graph *g = s->g;
    if (num_steps < 1)
        return nn_error_set(err, NN_ERR_INVALID, "a run needs at least one "
                            "step, got %d", num_steps);
    for (int e = 0; e < g->n_entries; e++)
        bound[e] = NULL;
    /* Bind by name: every entry exactly once, nothing unknown. */
    for (int k = 0; k < n_inputs; k++) {
        int found = -1;
        for (int e = 0; e < g->n_entries; e++)
            if (inputs[k].name && strcmp(inputs[k].name,
                                         g->entries[e]->name) == 0)
                found = e;
        if (found < 0)
            return nn_error_set(err, NN_ERR_NOT_FOUND, "'%.64s' is not an "
                                "input of this network",
                                inputs[k].name ? inputs[k].name : "");
        if (bound[found])
            return nn_error_set(err, NN_ERR_INVALID, "input '%s' is given "
                                "twice", g->entries[found]->name);
        int steps = num_steps;
        int rc = check_sequence(s, g->entries[found], inputs[k].tensor, &steps,
                                err);
        if (rc != NN_OK)
            return rc;
        bound[found] = inputs[k].tensor;
    }
    for (int e = 0; e < g->n_entries; e++)
        if (!bound[e])
            return nn_error_set(err, NN_ERR_INVALID, "input '%s' is missing",
                                g->entries[e]->name);
    return NN_OK;
}

int nn_session_sequence_outputs_of(nn_session *s, nn_node *const *nodes,
                                   int n, int num_steps, nn_tensor **outputs,
                                   nn_error *err)
{
    for (int x = 0; x < n; x++)
        outputs[x] = NULL;
    for (int x = 0; x < n; x++) {
        nn_shape per = nodes[x]->out_shape;
        if (per.ndim + 2 > NN_MAX_DIMS) {
            nn_session_outputs_free_of(outputs, n);
            return nn_error_set(err, NN_ERR_SHAPE, "output '%s' has too many "
                                "axes for a sequence", nodes[x]->name);
        }
        nn_shape seq = nn_batched_shape(s->batch, &per);
        memmove(&seq.dims[2], &seq.dims[1], sizeof(int) * (size_t)per.ndim);
        seq.dims[1] = num_steps;
        seq.ndim = per.ndim + 2;
        if (!(outputs[x] = nn_tensor_new(&seq))) {
            nn_session_outputs_free_of(outputs, n);
            return nn_error_set(err, NN_ERR_NOMEM, "out of memory for output "
                                "'%s'", nodes[x]->name);
        }
    }
    return NN_OK;
}

int nn_session_sequence_outputs(nn_session *s, int num_steps,
                                nn_tensor **outputs, nn_error *err)
{
    return nn_session_sequence_outputs_of(s, s->g->exits, s->g->n_exits,
                                          num_steps, outputs, err);
}

void nn_session_outputs_free_of(nn_tensor **outputs, int n)
{
    for (int x = 0; x < n; x++) {
        nn_tensor_free(outputs[x]);
        outputs[x] = NULL;
    }
}

void nn_session_outputs_free(nn_session *s, nn_tensor **outputs)
{
    nn_session_outputs_free_of(outputs, s->g->n_exits);
}

void nn_session_load_step(nn_session *s, const nn_tensor **bound,
                          int num_steps, int t)
{
    nn_graph *g = s->g;
    for (int e = 0; e < g->n_entries; e++) {
        nn_tensor *dst = &s->runs[g->entries[e]->index].out;
        size_t row = nn_shape_numel(&g->entries[e]->out_shape);
        for (int b = 0; b < s->batch; b++)
            memcpy(dst->data + (size_t)b * row,
                   bound[e]->data + ((size_t)b * (size_t)num_steps +
                                     (size_t)t) * row,
                   row * sizeof(float));
    }
}

void nn_session_store_step_of(nn_session *s, nn_node *const *nodes, int n,
                              nn_tensor **outputs, int num_steps, int t)
{
    for (int x = 0; x < n; x++) {
        const nn_tensor *src = &s->runs[nodes[x]->index].out;
        size_t row = nn_shape_numel(&nodes[x]->out_shape);
        for (int b = 0; b < s->batch; b++)
            memcpy(outputs[x]->data + ((size_t)b * (size_t)num_steps +
                                       (size_t)t) * row,
                   src->data + (size_t)b * row, row * sizeof(float));
    }
}

void nn_session_store_step(nn_session *s, nn_tensor **outputs, int num_steps,
                           int t)
{
    nn_session_store_step_of(s, s->g->exits, s->g->n_exits, outputs,
                             num_steps, t);
}

/* The node behind each forced binding, checked: it must feed some node
 * back (forcing anything else would change nothing) and its values must be
 * (batch, num_steps, output shape). */
static int bind_forced(nn_session *s, const nn_binding *forced, int n_forced,
                       int num_steps, nn_node **nodes, nn_error *err)
{
    nn_graph *g = s->g;
    for (int k = 0; k < n_forced; k++) {
        nn_node *node = nn_graph_find(g, forced[k].name);
        if (!node)
            return nn_error_set(err, NN_ERR_NOT_FOUND, "forced '%s': no such "
                                "node", forced[k].name);
        int sender = 0;
        for (int n = 0; n < g->n_nodes && !sender; n++)
            for (int f = 0; f < g->nodes[n]->n_fb && !sender; f++)
                sender = g->nodes[n]->fb[f] == node;
        if (!sender)
            return nn_error_set(err, NN_ERR_INVALID, "forced '%s': no node "
                                "receives its feedback, so forcing it would "
                                "change nothing", forced[k].name);
        nn_shape want = nn_batched_shape(s->batch, &node->out_shape);
        const nn_shape *got = &forced[k].tensor->shape;
        int ok = got->ndim == want.ndim + 1 && got->dims[0] == s->batch &&
                 got->dims[1] == num_steps;
        for (int d = 1; ok && d < want.ndim; d++)
            ok = got->dims[d + 1] == want.dims[d];
        if (!ok) {
            char a[96];
            return nn_error_set(err, NN_ERR_SHAPE, "forced '%s' has shape %s; "
                                "it needs (batch %d, %d steps, the node's "
                                "output shape)", forced[k].name,
                                nn_shape_str(got, a, sizeof a), s->batch,
                                num_steps);
        }
        nodes[k] = node;
    }
    return NN_OK;
}

/* Overwrites each forced node's output with step t of its values: what
 * reads that output from now on (the feedback of step t + 1) reads them. */
static void apply_forced(nn_session *s, const nn_binding *forced,
                         int n_forced, nn_node *const *nodes, int num_steps,
                         int t)
{
    for (int k = 0; k < n_forced; k++) {
        nn_tensor *out = &s->runs[nodes[k]->index].out;
        size_t per = nn_tensor_numel(out) / (size_t)s->batch;
        for (int b = 0; b < s->batch; b++)
            memcpy(out->data + (size_t)b * per,
                   forced[k].tensor->data +
                       ((size_t)b * (size_t)num_steps + (size_t)t) * per,
                   per * sizeof(float));
    }
}

/* The nodes names picks (every one a node of g, none twice), or g's exits
 * when names is NULL; *out is g's own exits array then, else allocated. */
static int pick_nodes(nn_graph *g, const char *const *names, int n_names,
                      nn_node ***out, int *n, nn_error *err)
{
    if (!names) {
        *out = g->exits;
        *n = g->n_exits;
        return NN_OK;
    }
    *out = NULL;
    *n = 0;
    if (n_names < 1)
        return nn_error_set(err, NN_ERR_INVALID, "a run needs at least one "
                            "output, got none");
    nn_node **nodes = nn_calloc((size_t)n_names, sizeof *nodes);
    if (!nodes)
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    for (int k = 0; k < n_names; k++) {
        nodes[k] = names[k] ? nn_graph_find(g, names[k]) : NULL;
        if (!nodes[k]) {
            nn_free(nodes);
            return nn_error_set(err, NN_ERR_NOT_FOUND, "output '%.64s': no "
                                "such node", names[k] ? names[k] : "");
        }
        for (int j = 0; j < k; j++)
            if (nodes[j] == nodes[k]) {
                nn_free(nodes);
                return nn_error_set(err, NN_ERR_INVALID, "output '%s' is "
                                    "asked for twice", names[k]);
            }
    }
    *out = nodes;
    *n = n_names;
    return NN_OK;
}

/* What nn_session_run_outputs and nn_session_run_each share: the checks,
 * then every step with its forcing; after step t, store(ctx, t) (which
 * reads the picked nodes' outputs). outputs non-NULL: filled by the
 * node-by-node run of a graph with a bidirectional node instead. */
static int run_steps(nn_session *s, const nn_binding *inputs, int n_inputs,
                     const nn_binding *forced, int n_forced,
                     nn_node *const *picked, int n_out, int num_steps,
                     int train, nn_tensor **outputs,
                     int (*store)(void *ctx, int t), void *ctx,
                     nn_error *err)
{
    nn_graph *g = s->g;
    const nn_tensor **bound = nn_calloc((size_t)g->n_entries + 1,
                                        sizeof *bound);
    nn_node **nodes = nn_calloc((size_t)n_forced + 1, sizeof *nodes);
    int rc = bound && nodes ? NN_OK
                            : nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    if (rc == NN_OK)
        rc = nn_session_bind_sequence(s, inputs, n_inputs, num_steps, bound,
                                      err);
    if (rc == NN_OK)
        rc = bind_forced(s, forced, n_forced, num_steps, nodes, err);
    if (rc == NN_OK && outputs)
        rc = nn_session_sequence_outputs_of(s, picked, n_out, num_steps,
                                            outputs, err);
    if (rc == NN_OK && g->sequence) /* no feedback, so nothing is forced */
        rc = outputs ? nn_sequence_run(s, bound, num_steps, train,
                                       picked, n_out, outputs,
                                       err)
                     : nn_error_set(err, NN_ERR_INVALID, "a network with a "
                                    "bidirectional node runs node by node, "
                                    "not step by step");
    for (int t = 0; t < num_steps && rc == NN_OK && !g->sequence; t++) {
        nn_session_load_step(s, bound, num_steps, t);
        rc = nn_session_step(s, train, err);
        if (rc != NN_OK) {
            nn_error_prefix(err, "step %d", t);
        } else {
            if (store(ctx, t))
                rc = nn_error_set(err, NN_ERR_INVALID, "step %d: stopped by "
                                  "its caller", t);
            apply_forced(s, forced, n_forced, nodes, num_steps, t);
        }
    }
    nn_free(bound);
    nn_free(nodes);
    return rc;
}

typedef struct store_all {
    nn_session *s;
    nn_node *const *picked;
    int n_out, num_steps;
    nn_tensor **outputs;
} store_all;

static int store_into_outputs(void *ctx, int t)
{
    store_all *a = ctx;
    nn_session_store_step_of(a->s, a->picked, a->n_out, a->outputs,
                             a->num_steps, t);
    return 0;
}

int nn_session_run_outputs(nn_session *s, const nn_binding *inputs,
                           int n_inputs, const nn_binding *forced,
                           int n_forced, const char *const *names,
                           int n_names, int num_steps, int train,
                           nn_tensor **outputs, nn_error *err)
{
    nn_graph *g = s->g;
    nn_node **picked;
    int n_out;
    if (names)
        for (int x = 0; x < n_names; x++)
            outputs[x] = NULL;
    int rc = pick_nodes(g, names, n_names, &picked, &n_out, err);
    if (rc != NN_OK)
        return rc;
    for (int x = 0; x < n_out; x++)
        outputs[x] = NULL;
    store_all all = {s, picked, n_out, num_steps, outputs};
    rc = run_steps(s, inputs, n_inputs, forced, n_forced, picked, n_out,
                   num_steps, train, outputs, store_into_outputs, &all, err);
    if (rc != NN_OK)
        nn_session_outputs_free_of(outputs, n_out);
    if (picked != g->exits)
        nn_free(picked);
    return rc;
}

typedef struct each_step {
    const nn_tensor **outs; /* the picked nodes' output buffers */
    int n_out;
    nn_step_fn each;
    void *ctx;
} each_step;

static int store_through_callback(void *ctx, int t)
{
    each_step *a = ctx;
    return a->each(a->ctx, t, a->outs, a->n_out);
}

int nn_session_run_each(nn_session *s, const nn_binding *inputs,
                        int n_inputs, const nn_binding *forced, int n_forced,
                        const char *const *names, int n_names, int num_steps,
                        int train, nn_step_fn each, void *ctx, nn_error *err)
{
    nn_graph *g = s->g;
    nn_node **picked;
    int n_out;
    int rc = pick_nodes(g, names, n_names, &picked, &n_out, err);
    if (rc != NN_OK)
        return rc;
    /* A node keeps its output buffer for the session's life. */
    const nn_tensor **now = nn_calloc((size_t)n_out + 1, sizeof *now);
    for (int x = 0; now && x < n_out; x++)
        now[x] = &s->runs[picked[x]->index].out;
    each_step a = {now, n_out, each, ctx};
    rc = now ? run_steps(s, inputs, n_inputs, forced, n_forced, picked, n_out,
                         num_steps, train, NULL, store_through_callback, &a,
                         err)
             : nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    nn_free(now);
    if (picked != g->exits)
        nn_free(picked);
    return rc;
}

int nn_session_run_forced(nn_session *s, const nn_binding *inputs,
                          int n_inputs, const nn_binding *forced,
                          int n_forced, int num_steps, int train,
                          nn_tensor **outputs, nn_error *err)
{
    return nn_session_run_outputs(s, inputs, n_inputs, forced, n_forced, NULL,
                                  0, num_steps, train, outputs, err);
}

int nn_session_run(nn_session *s, const nn_binding *inputs, int n_inputs,
                   int num_steps, int train, nn_tensor **outputs,
                   nn_error *err)
{
    return nn_session_run_forced(s, inputs, n_inputs, NULL, 0, num_steps,
                                 train, outputs, err);
}
