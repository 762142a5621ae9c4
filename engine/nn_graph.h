/*
 * nn_graph.h — node graphs, their compiled plan, and sessions that run them.
 *
 * A graph is built in three stages:
 *   1. describe  — nn_graph_add_node, nn_node_set_param, nn_graph_ff /
 *                  nn_graph_fb or nn_graph_link("{a, b} >> c");
 *   2. build     — nn_graph_build validates, orders the nodes once, and runs
 *                  every node's init_ff then init_fb: weights now exist;
 *   3. run       — nn_session_new preallocates every buffer for a batch
 *                  size; nn_session_step / nn_session_run then compute
 *                  without allocating.
 * A built graph is read-only while sessions use it, so sessions of one graph
 * may run on different threads at once. One session is not thread-safe.
 */
#ifndef NN_GRAPH_H
#define NN_GRAPH_H

#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nn_graph nn_graph;
typedef struct nn_session nn_session;

/* ----------------------------------------------------------- description */

/* Creates an empty graph that looks types up in reg (which must outlive it)
 * and draws every weight from seed. The caller owns it: nn_graph_free. */
nn_graph *nn_graph_new(const nn_registry *reg, uint64_t seed);
/* Frees the graph and its nodes. No session of it may remain. */
void nn_graph_free(nn_graph *g);

/* Adds a node of the named type. name NULL or "" picks the type name plus a
 * per-type counter (Dense0, Dense1, ...). Returns the node (owned by the
 * graph) or NULL with err filled: unknown type, duplicate or invalid name. */
nn_node *nn_graph_add_node(nn_graph *g, const char *type, const char *name,
                           nn_error *err);
/* Sets a parameter from text, checked against the type's table (kind,
 * bounds, choices); `trainable` is accepted by every type. Errors name the
 * node and the parameter. Only before nn_graph_build. */
int nn_node_set_param(nn_node *node, const char *key, const char *value,
                      nn_error *err);

/* a >> b: from feeds to. Several ff inputs into one node are concatenated
 * in the order their edges were added. */
int nn_graph_ff(nn_graph *g, const char *from, const char *to, nn_error *err);
/* receiver << sender: sender's output of the previous step feeds receiver. */
int nn_graph_fb(nn_graph *g, const char *receiver, const char *sender,
                nn_error *err);
/* from >> to, delay steps late: adds a Delay node (named as automatic
 * names are: Delay0, Delay1, ...) with from >> it >> to, so to sees from's
 * output of step t − delay (zeros before). delay >= 1; the name of the new
 * node is written to name_out (NN_NAME_MAX) when not NULL. */
int nn_graph_ff_delayed(nn_graph *g, const char *from, const char *to,
                        int delay, char *name_out, nn_error *err);

/* Adds the edges of one expression in BrainPy's notation, where a term is
 * a node name or a set "{a, b, c}":
 *   "a >> b >> c", "{i1, i2} >> l", "a >> {b, c}", "r << o", "r << {o, p}".
 * A set on the left of >> feeds every node on the right. ReservoirPy's
 * merge joins chains over the nodes they share: "x >> r >> o & r << o"
 * adds both; an edge the chains share is added once. Errors give the
 * character position; a refused expression adds nothing. */
int nn_graph_link(nn_graph *g, const char *expr, nn_error *err);

/* Caps what building and running g may allocate, for graphs described by
 * untrusted clients: max_params weight elements in all, and
 * max_session_floats floats of outputs, state and scratch per session
 * (0: no cap). Refusals are NN_ERR_LIMIT naming the node or the batch.
 * Only before nn_graph_build. */
int nn_graph_set_limits(nn_graph *g, size_t max_params,
                        size_t max_session_floats, nn_error *err);

/* ------------------------------------------------------------------ build */

/* Validates the graph and initialises every node. Reports, naming nodes:
 * unknown names, source nodes (Input) with incoming edges, nodes without
 * ff input, no entry or no exit, a feedforward cycle (listing it), feedback
 * into a type without init_fb, feedback whose receiver has no feedforward
 * path to the sender, and shape errors from init_ff/init_fb. */
int nn_graph_build(nn_graph *g, nn_error *err);
int nn_graph_is_built(const nn_graph *g);

/* ------------------------------------------------------------ inspection */

int nn_graph_node_count(const nn_graph *g);
/* Nodes in the order they were added. */
nn_node *nn_graph_node_at(const nn_graph *g, int i);
nn_node *nn_graph_find(const nn_graph *g, const char *name);
uint64_t nn_graph_seed(const nn_graph *g);
/* After build: nodes in execution order. */
nn_node *nn_graph_order_at(const nn_graph *g, int i);
/* Entries (source nodes, the named inputs) and exits (nodes feeding no
 * other node), each in the order the nodes were added. */
int nn_graph_entry_count(const nn_graph *g);
nn_node *nn_graph_entry_at(const nn_graph *g, int i);
int nn_graph_exit_count(const nn_graph *g);
nn_node *nn_graph_exit_at(const nn_graph *g, int i);

/* After build: the first node (in execution order) that runs over whole
 * sequences only (nn_node_set_sequence), or NULL. A graph that has one
 * cannot be stepped: only nn_session_run and the taped run take it. */
nn_node *nn_graph_sequence_node(const nn_graph *g);

/* Edges of a node, in declaration order. */
int nn_node_ff_count(const nn_node *node);
nn_node *nn_node_ff_at(const nn_node *node, int i);
int nn_node_fb_count(const nn_node *node);
nn_node *nn_node_fb_at(const nn_node *node, int i);
/* Per-sample shapes, valid after build. */
nn_shape nn_node_output_shape(const nn_node *node);
/* Text of a parameter's value as set or defaulted; NULL if no such name. */
const char *nn_node_param_text(const nn_node *node, const char *name);

/* Weights of a node, in creation order. */
int nn_node_weight_count(const nn_node *node);
nn_tensor *nn_node_weight_at(nn_node *node, int i);
const char *nn_node_weight_name(const nn_node *node, int i);
int nn_node_weight_trainable(const nn_node *node, int i);
nn_tensor *nn_node_weight(nn_node *node, const char *name);
/* Number of weight elements in the node. */
size_t nn_node_param_count(const nn_node *node);

/*
 * Sparse weights. A node may store a (rows, cols) weight matrix M sparse
 * (a Reservoir's W with `sparse`): the weight tensor then holds only the
 * nnz values, 1-d, and the node keeps the pattern, compressed by column of
 * M (CSC): column j's entries are k = ptr[j] .. ptr[j + 1] - 1, at row
 * row[k] (strictly increasing within a column), value data[k]. M
 * multiplies from the right like every weight (y = x · M), so column j is
 * output unit j and row i input i; ReservoirPy's and SciPy's W (applied as
 * W · x) is Mᵀ, and SciPy's CSR arrays of that W are exactly these.
 */
/* 1 and M's shape when weight w of node is stored sparse, else 0. */
int nn_node_weight_sparse(const nn_node *node, int w, int *rows, int *cols);
/* The pattern of sparse weight w: ptr (cols + 1 offsets) and the nnz row
 * indices, copied into the caller's arrays. */
void nn_node_weight_pattern(const nn_node *node, int w, size_t *ptr,
                            uint32_t *row);

/* A pattern and values checked and packed to replace a sparse weight's. */
typedef struct nn_sparse_values nn_sparse_values;
/* Checks ptr (cols + 1 offsets from 0, nondecreasing, ending at nnz), row
 * (nnz indices below rows, strictly increasing within each column) and
 * data (nnz finite floats) against sparse weight w of node, and nnz alone
 * against the network's parameter cap; then packs copies of them. nnz >= 1
 * (an empty weight has no tensor). Reads only what never changes after
 * the build, so it may run while sessions step and imports swap. On
 * success *out is the caller's (nn_sparse_values_free, or given to
 * nn_node_weight_swap_sparse). */
int nn_sparse_values_new(const nn_node *node, int w, const size_t *ptr,
                         const uint32_t *row, const float *data, size_t nnz,
                         nn_sparse_values **out, nn_error *err);
/* The nnz of a packed pattern. */
size_t nn_sparse_values_nnz(const nn_sparse_values *v);
/* Whether g stays within its parameter cap when `removed` of its present
 * values are replaced by `added` new ones (the counts of the sparse
 * weights about to be swapped, before and after): NN_OK or NN_ERR_LIMIT.
 * Call where no swap can run meanwhile (under the network's write lock),
 * right before swapping. */
int nn_graph_params_fit(const nn_graph *g, size_t removed, size_t added,
                        nn_error *err);
/* Exchanges sparse weight w's pattern and values with v's: the weight
 * then holds what v held, and v the weight's former pattern and values (so
 * a second swap undoes the first). No step may run meanwhile (the caller
 * holds the network's write lock); sessions keep working, as their scratch
 * does not grow with the pattern (nn_sparse_values_new checks). v stays
 * the caller's. Cannot fail. */
void nn_node_weight_swap_sparse(nn_node *node, int w, nn_sparse_values *v);
void nn_sparse_values_free(nn_sparse_values *v);

/* Per-sample state declared by the node. */
int nn_node_state_count(const nn_node *node);
const char *nn_node_state_name(const nn_node *node, int i);
nn_shape nn_node_state_shape(const nn_node *node, int i);

/* -------------------------------------------------------------- sessions */

/* Compiles the run of a built graph for num_batch rows: one output buffer
 * per node, the state of every stateful node and each node's scratch are
 * allocated here and never again. Steps then allocate nothing. seed drives
 * the per-node random streams used in forward (Dropout). The caller owns the
 * session (nn_session_free); the graph must outlive it. */
nn_session *nn_session_new(nn_graph *g, int num_batch, uint64_t seed,
                           nn_error *err);
void nn_session_free(nn_session *s);
/* Floats a session of g with num_batch rows holds (outputs, state and
 * scratch), known before it is made, so a server can charge the memory
 * first; saturates at SIZE_MAX. */
size_t nn_session_float_count(const nn_graph *g, int num_batch);
int nn_session_batch(const nn_session *s);
/* Zeroes all state and feedback, runs init_state, restarts the step count
 * and the random streams. */
int nn_session_reset(nn_session *s, nn_error *err);
/* Makes s as nn_session_new(its graph, its batch, seed) would: reset, with
 * its scratch zeroed and seed's random streams, without allocating; for
 * reusing a session across stateless requests. */
int nn_session_renew(nn_session *s, uint64_t seed, nn_error *err);
/* Makes dst continue where src stands: outputs (what feedback reads next),
 * state, scratch, random streams, step count and seed are copied. Both
 * sessions have the same batch and run graphs of one definition (a
 * clone); else an error naming the first node that differs, and dst is
 * unchanged. Allocates nothing. */
int nn_session_copy_state(nn_session *dst, const nn_session *src,
                          nn_error *err);
/* Reallocates for another batch size and resets. */
int nn_session_resize(nn_session *s, int num_batch, nn_error *err);
long nn_session_steps(const nn_session *s);

/* The buffer of entry `name`, shaped (batch, input shape), to fill before a
 * step; NULL if name is not an entry. */
nn_tensor *nn_session_input(nn_session *s, const char *name);
/* One step over the inputs already written. Refused (NN_ERR_UNSUPPORTED,
 * naming the node) for a graph with a sequence node. */
int nn_session_step(nn_session *s, int train, nn_error *err);
/* The output of any node after a step, shaped (batch, output shape). */
const nn_tensor *nn_session_output(const nn_session *s, const char *name);
/* State tensor i of the named node, or NULL. */
nn_tensor *nn_session_state(nn_session *s, const char *node, int i);

/* The rest of what one step hands the next, so a checkpoint can bring a
 * session back exactly: each node's output buffer (feedback reads the
 * previous step's), each node's random stream, and the step count. Meant
 * for saving and restoring between steps; NULL for an unknown name. */
nn_tensor *nn_session_output_buffer(nn_session *s, const char *name);
nn_rng *nn_session_rng(nn_session *s, const char *node);
/* Fails on a negative count. */
int nn_session_set_steps(nn_session *s, long steps, nn_error *err);

/* An input or output bound by node name. */
typedef struct nn_binding {
    const char *name;
    nn_tensor *tensor;
} nn_binding;

/* Runs num_steps steps. inputs has one binding per entry, each shaped
 * (batch, num_steps, input shape); a missing or unknown name is an error
 * naming it. On success outputs[i] receives a new tensor shaped
 * (batch, num_steps, exit shape) for exit i (nn_graph_exit_at order); the
 * caller frees them. The session's state afterwards is as if each step had
 * been taken on its own. */
int nn_session_run(nn_session *s, const nn_binding *inputs, int n_inputs,
                   int num_steps, int train, nn_tensor **outputs,
                   nn_error *err);

/* nn_session_run with teacher forcing, as ReservoirPy's forced feedbacks:
 * forced binds nodes whose output is fed back to (batch, num_steps, output
 * shape) values; after step t each such node's output is replaced by step
 * t of its values, so the feedback of step t + 1 reads them. outputs still
 * hold what the nodes computed. A forced node that no node receives
 * feedback from is an error. */
int nn_session_run_forced(nn_session *s, const nn_binding *inputs,
                          int n_inputs, const nn_binding *forced,
                          int n_forced, int num_steps, int train,
                          nn_tensor **outputs, nn_error *err);

/* nn_session_run_forced returning the outputs of the n_names nodes names
 * (any nodes of the graph, each once, n_names >= 1) instead of the exits:
 * outputs[i] receives (batch, num_steps, output shape of names[i]), for a
 * client checking a model's inner states. Every node keeps its own output
 * buffer for the whole step (nothing is aliased), so what is copied out is
 * what the node computed at that step. names NULL: the exits, as
 * nn_session_run_forced. An unknown or repeated name is an error naming
 * it. */
int nn_session_run_outputs(nn_session *s, const nn_binding *inputs,
                           int n_inputs, const nn_binding *forced,
                           int n_forced, const char *const *names,
                           int n_names, int num_steps, int train,
                           nn_tensor **outputs, nn_error *err);

/* nn_session_run_outputs for a caller that takes each step's outputs as
 * they come (a server streaming a long run's answer) instead of holding
 * all of them: after step t, each(ctx, t, outs, n) gets outs[i], the
 * output of names[i] (or of exit i, names NULL) at that step, shaped
 * (batch, output shape) and valid during the call only. each returns 0 to
 * go on; anything else stops the run there with an error (the steps taken
 * stay taken). Allocates nothing per step. A graph that runs node by node
 * (a bidirectional node) is refused: its outputs come all at once. */
typedef int (*nn_step_fn)(void *ctx, int t, const nn_tensor *const *outs,
                          int n);
int nn_session_run_each(nn_session *s, const nn_binding *inputs,
                        int n_inputs, const nn_binding *forced, int n_forced,
                        const char *const *names, int n_names, int num_steps,
                        int train, nn_step_fn each, void *ctx, nn_error *err);

/* ------------------------------------------------ batching across sessions */

/* Staging for one step of several sessions of one graph taken together, as a
 * server batches the queued steps of different clients: the sessions' rows
 * are gathered into one batch, each node runs once over all of them (one
 * GEMM instead of one GEMV per session), and outputs and state are
 * scattered back. Nodes that are not NN_TYPE_ROWWISE (Dropout, a Reservoir
 * with noise, plugins that did not opt in) still run session by session, on
 * that session's rows of the batch, with its own random stream and step
 * count.
 *
 * What a step copies, per row: in, the state of every stateful node, the
 * entries' inputs and the previous outputs of feedback senders and of nodes
 * that are not row-wise; out, every node's output (nn_session_output reads
 * any node) and the state. That is O(outputs + state) per row, against the
 * O(units²) of the products it batches. */
typedef struct nn_batcher nn_batcher;

/* Preallocates, once, every node's output, state and scratch for max_rows
 * rows (checked against the graph's max_session_floats as a session of
 * max_rows would be) and the bookkeeping for up to max_rows sessions, so
 * nn_session_step_many allocates nothing. g must be built and outlive the
 * batcher. A batcher is used by one thread at a time; several threads each
 * need their own. The caller owns it: nn_batcher_free. */
nn_batcher *nn_batcher_new(nn_graph *g, int max_rows, nn_error *err);
void nn_batcher_free(nn_batcher *b);
int nn_batcher_max_rows(const nn_batcher *b);

/* One step of each of n distinct sessions of the batcher's graph, with
 * their inputs already written (nn_session_input), as one batch. Sessions
 * may have different batch sizes; their rows together must fit in the
 * batcher (else NN_ERR_LIMIT: split the sessions over several calls).
 * train[i] is session i's mode (NULL: all evaluation); sessions in both
 * modes may share a call. Afterwards each session is as nn_session_step
 * (s, train[i]) would have left it — outputs, state, feedback, random
 * streams, step count — within float32 rounding (a GEMM over the batch and
 * a GEMV over one row sum in different orders). On failure no session has
 * changed. n == 0 does nothing. */
int nn_session_step_many(nn_batcher *b, nn_session *const *sessions,
                         const int *train, int n, nn_error *err);

#ifdef __cplusplus
}
#endif
#endif /* NN_GRAPH_H */
