/*
 * batch.c — one step of several sessions of a graph as one batch
 * (nn_session_step_many).
 *
 * The batcher holds every node's output, state and scratch for max_rows
 * rows. A step gathers the sessions' rows into it, walks the graph's
 * execution order once — a row-wise node over the rows of many sessions at
 * once, any other node session by session on that session's rows — and
 * scatters the results back only once every node has succeeded, so a failed
 * step leaves every session as it was. The streams of the nodes that run
 * per session are advanced in copies for the same reason.
 *
 * Rows are laid out evaluation sessions first, then training ones, so a
 * row-wise node runs at most twice (once per mode) whatever the mix.
 *
 * Feedback works as in a session: a receiver runs before its sender, so the
 * sender's rows of the batch still hold the previous step's outputs, which
 * the gather copied in from each session.
 */
#include "nn_internal.h"

#include <stdio.h>
#include <string.h>

/* A node's part of the batch. */
typedef struct batch_node {
    float *out;             /* max_rows * out_row */
    size_t out_row;         /* floats of output per row */
    float **state;          /* n_state buffers of max_rows * state_row[k] */
    size_t *state_row;
    int n_state;
    float *work;            /* max_rows * the node's work_per_row */
    size_t work_floats;     /* its size, for nn_scratch_free */
    nn_tensor *ff, *fb, *state_view; /* views, set again for every run */
    int carry_in;           /* the sessions' outputs are gathered first */
    int carry_out;          /* and scattered back after */
    int stream;             /* among the nodes run per session, or -1 */
} batch_node;

struct nn_batcher {
    nn_graph *g;
    int n_nodes;            /* so freeing never reads the graph */
    int max_rows;
    batch_node *nodes;      /* by node->index */
    int n_streams;          /* nodes that are not row-wise */
    nn_rng *rngs;           /* max_rows * n_streams: each placed session's
                               streams as this step leaves them */
    nn_session **placed;    /* the sessions in row order */
    int *given;             /* their positions in the caller's array */
    int *train;             /* their modes */
    int *row0;              /* their first rows */
    nn_rng throwaway;       /* ctx->rng of row-wise runs, which never read it */
};

/* nn_calloc of rows * per_row floats, refusing a product that overflows. */
static float *alloc_rows(size_t rows, size_t per_row)
{
    if (per_row && rows > SIZE_MAX / sizeof(float) / per_row)
        return NULL;
    return nn_calloc(rows * per_row, sizeof(float));
}

void nn_batcher_free(nn_batcher *b)
{
    if (!b)
        return;
    for (int i = 0; b->nodes && i < b->n_nodes; i++) {
        batch_node *bn = &b->nodes[i];
        nn_free(bn->out);
        for (int k = 0; bn->state && k < bn->n_state; k++)
            nn_free(bn->state[k]);
        nn_free(bn->state);
        nn_free(bn->state_row);
        nn_scratch_free(bn->work, bn->work_floats);
        nn_free(bn->ff);
        nn_free(bn->fb);
        nn_free(bn->state_view);
    }
    nn_free(b->nodes);
    nn_free(b->rngs);
    nn_free(b->placed);
    nn_free(b->given);
    nn_free(b->train);
    nn_free(b->row0);
    nn_free(b);
}

/* Allocates one node's buffers and views; 0 on success, -1 out of memory. */
static int node_alloc(nn_batcher *b, const nn_node *node, batch_node *bn)
{
    size_t rows = (size_t)b->max_rows;
    bn->out_row = nn_shape_numel(&node->out_shape);
    if (!(bn->out = alloc_rows(rows, bn->out_row)))
        return -1;
    if (node->n_states) {
        bn->state = nn_calloc((size_t)node->n_states, sizeof *bn->state);
        bn->state_row = nn_calloc((size_t)node->n_states,
                                  sizeof *bn->state_row);
        bn->state_view = nn_calloc((size_t)node->n_states,
                                   sizeof *bn->state_view);
        if (!bn->state || !bn->state_row || !bn->state_view)
            return -1;
        bn->n_state = node->n_states;
        for (int k = 0; k < node->n_states; k++) {
            bn->state_row[k] = nn_shape_numel(&node->states[k].shape);
            if (!(bn->state[k] = alloc_rows(rows, bn->state_row[k])))
                return -1;
        }
    }
    /* Scratch like a session's: large buffers on huge pages (see
     * nn_scratch_alloc). */
    if (node->work_per_row) {
        if (rows > SIZE_MAX / sizeof(float) / node->work_per_row)
            return -1;
        bn->work_floats = rows * node->work_per_row;
        if (!(bn->work = nn_scratch_alloc(bn->work_floats)))
            return -1;
    }
    if (node->n_ff && !(bn->ff = nn_calloc((size_t)node->n_ff,
                                           sizeof *bn->ff)))
        return -1;
    if (node->n_fb && !(bn->fb = nn_calloc((size_t)node->n_fb,
                                           sizeof *bn->fb)))
        return -1;
    return 0;
}

nn_batcher *nn_batcher_new(nn_graph *g, int max_rows, nn_error *err)
{
    if (!g || !g->built) {
        nn_error_set(err, NN_ERR_STATE, "a batcher needs a built graph");
        return NULL;
    }
    if (max_rows < 1) {
        nn_error_set(err, NN_ERR_INVALID, "a batcher needs room for at least "
                     "1 row, got %d", max_rows);
        return NULL;
    }
    char what[48];
    snprintf(what, sizeof what, "a batcher of %d rows", max_rows);
    if (nn_check_session_floats(g, (size_t)max_rows, what, err) != NN_OK)
        return NULL;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->out_shape.ndim + 1 > NN_MAX_DIMS) {
            nn_error_set(err, NN_ERR_SHAPE, "node '%s': output has too many "
                         "axes", g->nodes[i]->name);
            return NULL;
        }
    nn_batcher *b = nn_calloc(1, sizeof *b);
    if (!b)
        goto oom;
    b->g = g;
    b->max_rows = max_rows;
    if (!(b->nodes = nn_calloc((size_t)g->n_nodes, sizeof *b->nodes)))
        goto oom;
    b->n_nodes = g->n_nodes;
    for (int i = 0; i < g->n_nodes; i++) {
        nn_node *node = g->nodes[i];
        batch_node *bn = &b->nodes[i];
        if (node_alloc(b, node, bn) != 0)
            goto oom;
        int source = (node->type->flags & NN_TYPE_SOURCE) != 0;
        /* A row-wise source (Input) holds the caller's input, which the
         * step reads and leaves alone; anything else not row-wise may read
         * what its output held, and keeps what it writes. */
        bn->carry_in = source || !node->rowwise;
        bn->carry_out = !(source && node->rowwise);
        bn->stream = node->rowwise ? -1 : b->n_streams++;
    }
    /* Receivers read their senders' outputs of the previous step. */
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i]->n_fb; k++)
            b->nodes[g->nodes[i]->fb[k]->index].carry_in = 1;
    size_t rows = (size_t)max_rows;
    if (b->n_streams && !(b->rngs = nn_calloc(rows * (size_t)b->n_streams,
                                              sizeof *b->rngs)))
        goto oom;
    if (!(b->placed = nn_calloc(rows, sizeof *b->placed)) ||
        !(b->given = nn_calloc(rows, sizeof *b->given)) ||
        !(b->train = nn_calloc(rows, sizeof *b->train)) ||
        !(b->row0 = nn_calloc(rows, sizeof *b->row0)))
        goto oom;
    return b;
oom:
    nn_batcher_free(b);
    nn_error_set(err, NN_ERR_NOMEM, "out of memory for a batcher of %d rows",
                 max_rows);
    return NULL;
}

int nn_batcher_max_rows(const nn_batcher *b) { return b->max_rows; }

/* Checks the sessions and lays their rows out, evaluation first; sets
 * *rows and *eval_rows. */
static int place(nn_batcher *b, nn_session *const *sessions, const int *train,
                 int n, int *rows, int *eval_rows, nn_error *err)
{
    if (n > b->max_rows)
        return nn_error_set(err, NN_ERR_LIMIT, "%d sessions hold at least %d "
                            "rows; this batcher holds at most %d", n, n,
                            b->max_rows);
    int rc = NN_OK, marked = 0;
    long total = 0;
    for (; marked < n; marked++) {
        nn_session *s = sessions[marked];
        if (!s) {
            rc = nn_error_set(err, NN_ERR_INVALID, "session %d is missing",
                              marked);
            break;
        }
        if (s->g != b->g) {
            rc = nn_error_set(err, NN_ERR_INVALID, "session %d belongs to "
                              "another network than the batcher", marked);
            break;
        }
        if (s->batch_mark) {
            /* Stepping one session twice at once has no meaning. */
            rc = nn_error_set(err, NN_ERR_INVALID, "session %d is given more "
                              "than once", marked);
            break;
        }
        s->batch_mark = 1;
        total += s->batch;
    }
    for (int i = 0; i < marked; i++)
        sessions[i]->batch_mark = 0;
    if (rc != NN_OK)
        return rc;
    if (total > b->max_rows)
        return nn_error_set(err, NN_ERR_LIMIT, "%d sessions hold %ld rows; "
                            "this batcher holds at most %d: take fewer "
                            "sessions at once, a larger one alone with "
                            "nn_session_step", n, total, b->max_rows);
    int k = 0, row = 0;
    for (int mode = 0; mode < 2; mode++) {
        if (mode == 1)
            *eval_rows = row;
        for (int i = 0; i < n; i++) {
            if ((train && train[i]) != mode)
                continue;
            b->placed[k] = sessions[i];
            b->given[k] = i;
            b->train[k] = mode;
            b->row0[k] = row;
            row += sessions[i]->batch;
            k++;
        }
    }
    *rows = row;
    return NN_OK;
}

/* Rows row0 .. row0 + rows - 1 of a node's output in the batch. */
static nn_tensor out_rows(const nn_batcher *b, const nn_node *node, int row0,
                          int rows)
{
    const batch_node *bn = &b->nodes[node->index];
    nn_shape shape = nn_batched_shape(rows, &node->out_shape);
    return nn_tensor_view(bn->out + (size_t)row0 * bn->out_row, &shape);
}

/* One forward of node over rows row0 .. row0 + rows - 1 of the batch. */
static int run_node(nn_batcher *b, nn_node *node, int row0, int rows,
                    int train, long step, nn_rng *rng, nn_error *err)
{
    batch_node *bn = &b->nodes[node->index];
    for (int k = 0; k < node->n_ff; k++)
        bn->ff[k] = out_rows(b, node->ff[k], row0, rows);
    for (int k = 0; k < node->n_fb; k++)
        bn->fb[k] = out_rows(b, node->fb[k], row0, rows);
    for (int k = 0; k < bn->n_state; k++) {
        nn_shape shape = nn_batched_shape(rows, &node->states[k].shape);
        bn->state_view[k] = nn_tensor_view(bn->state[k] + (size_t)row0 *
                                                              bn->state_row[k],
                                           &shape);
    }
    nn_tensor out = out_rows(b, node, row0, rows);
    nn_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.train = train;
    ctx.num_batch = rows;
    ctx.step = step;
    ctx.rng = rng;
    ctx.state = bn->state_view;
    ctx.n_state = bn->n_state;
    ctx.work = bn->work ? bn->work + (size_t)row0 * node->work_per_row : NULL;
    ctx.err = err;
    nn_error_clear(err);
    int rc = node->type->forward(node, bn->ff, node->n_ff, bn->fb, node->n_fb,
                                 &out, &ctx);
    if (rc != NN_OK) {
        if (err) {
            err->code = rc;
            if (!err->msg[0])
                nn_error_set(err, rc, "forward failed");
        }
        nn_error_prefix(err, "node '%s' (%s)", node->name, node->type->name);
    }
    return rc;
}

/* Copies each placed session's carried outputs and state into the batch
 * (in) or back (!in). */
static void transfer(nn_batcher *b, int n, int in)
{
    nn_graph *g = b->g;
    for (int k = 0; k < n; k++) {
        nn_session *s = b->placed[k];
        size_t row0 = (size_t)b->row0[k], rows = (size_t)s->batch;
        for (int i = 0; i < g->n_nodes; i++) {
            batch_node *bn = &b->nodes[i];
            node_run *r = &s->runs[i];
            if (in ? bn->carry_in : bn->carry_out) {
                float *batch = bn->out + row0 * bn->out_row;
                size_t bytes = rows * bn->out_row * sizeof(float);
                if (in)
                    memcpy(batch, r->out.data, bytes);
                else
                    memcpy(r->out.data, batch, bytes);
            }
            for (int st = 0; st < bn->n_state; st++) {
                float *batch = bn->state[st] + row0 * bn->state_row[st];
                size_t bytes = rows * bn->state_row[st] * sizeof(float);
                if (in)
                    memcpy(batch, r->state[st].data, bytes);
                else
                    memcpy(r->state[st].data, batch, bytes);
            }
            if (!in && bn->stream >= 0)
                r->rng = b->rngs[(size_t)k * (size_t)b->n_streams +
                                 (size_t)bn->stream];
        }
        if (!in)
            s->steps++;
    }
}

/* The graph's order once over the gathered rows. */
static int run_batch(nn_batcher *b, int n, int rows, int eval_rows,
                     nn_error *err)
{
    nn_graph *g = b->g;
    for (int i = 0; i < g->n_nodes; i++) {
        nn_node *node = g->order[i];
        batch_node *bn = &b->nodes[node->index];
        int rc = NN_OK;
        if (node->rowwise) {
            if (eval_rows > 0)
                rc = run_node(b, node, 0, eval_rows, 0, -1, &b->throwaway,
                              err);
            if (rc == NN_OK && rows > eval_rows)
                rc = run_node(b, node, eval_rows, rows - eval_rows, 1, -1,
                              &b->throwaway, err);
            if (rc != NN_OK)
                return rc;
            continue;
        }
        for (int k = 0; k < n; k++) {
            nn_session *s = b->placed[k];
            nn_rng *rng = &b->rngs[(size_t)k * (size_t)b->n_streams +
                                   (size_t)bn->stream];
            *rng = s->runs[node->index].rng;
            rc = run_node(b, node, b->row0[k], s->batch, b->train[k],
                          s->steps, rng, err);
            if (rc != NN_OK) {
                nn_error_prefix(err, "session %d", b->given[k]);
                return rc;
            }
        }
    }
    return NN_OK;
}

int nn_session_step_many(nn_batcher *b, nn_session *const *sessions,
                         const int *train, int n, nn_error *err)
{
    if (!b || n < 0 || (n > 0 && !sessions))
        return nn_error_set(err, NN_ERR_INVALID, "a batched step needs a "
                            "batcher and n >= 0 sessions");
    if (n == 0)
        return NN_OK;
    int rc = nn_session_refuse_sequence(b->g, err);
    if (rc != NN_OK)
        return rc;
    int rows = 0, eval_rows = 0;
    rc = place(b, sessions, train, n, &rows, &eval_rows, err);
    if (rc != NN_OK)
        return rc;
    nn_rng_seed(&b->throwaway, 0);
    transfer(b, n, 1);
    rc = run_batch(b, n, rows, eval_rows, err);
    if (rc == NN_OK)
        transfer(b, n, 0);
    return rc;
}
