/*
 * nn_internal.h — layouts shared by the engine's own files. Not installed:
 * node types and the server see only nn.h and nn_graph.h.
 */
#ifndef NN_INTERNAL_H
#define NN_INTERNAL_H

#include "nn.h"
#include "nn_graph.h"

/* A parameter's validated value. text is the canonical form (owned). */
typedef struct nn_param_val {
    char *text;
    long i;
    double f;
    int b;
    nn_shape shape;
    nn_init init;
    double *vec;  /* FLOATS: n_vec listed values (n_vec 0: init) */
    int n_vec;
} nn_param_val;

typedef struct nn_weight {
    char name[NN_NAME_MAX];
    nn_tensor t;
    int trainable;
    /* Set when t holds the nnz values of a sparse matrix whose pattern the
     * node keeps (nn_node_set_weight_pattern); the node owns it. */
    struct nn_csr *pattern;
} nn_weight;

typedef struct nn_state_decl {
    char name[NN_NAME_MAX];
    nn_shape shape;
} nn_state_decl;

struct nn_node {
    nn_graph *graph;
    const nn_node_type *type;
    char name[NN_NAME_MAX];
    int index;               /* position in graph->nodes */
    void *priv;              /* type->priv_size bytes */
    nn_param_val *params;    /* aligned with type->params */
    int n_params;
    int trainable;

    nn_node **ff;            /* feedforward inputs, declaration order */
    int n_ff, cap_ff;
    nn_node **fb;            /* feedback senders, declaration order */
    int n_fb, cap_fb;
    int n_consumers;         /* nodes this one feeds forward */

    nn_shape out_shape;
    int out_shape_set;
    nn_weight **weights;     /* each allocated alone: pointers handed out stay valid */
    int n_weights, cap_weights;
    nn_state_decl *states;
    int n_states, cap_states;
    size_t work_per_row;
    int rowwise;             /* NN_TYPE_ROWWISE, or as init_ff/fb set it */
    int sequence;            /* nn_node_set_sequence: whole sequences only */
    nn_rng init_rng;
    /* The first name the type's own code asked nn_node_param_* for during
     * the build that is not in its table (a typo reads as 0): the build
     * fails naming it. */
    char unknown_param[NN_NAME_MAX];
};

typedef struct nn_type_counter {
    const nn_node_type *type;
    int next;
} nn_type_counter;

struct nn_graph {
    const nn_registry *reg;
    uint64_t seed;
    nn_node **nodes;
    int n_nodes, cap_nodes;
    nn_type_counter *counters;
    int n_counters, cap_counters;
    int built;
    int build_failed;         /* a failed build leaves nodes half made */
    nn_node **order;          /* execution order, n_nodes long */
    nn_node **entries;
    int n_entries;
    nn_node **exits;
    int n_exits;
    size_t max_params;         /* 0: no cap (nn_graph_set_limits) */
    size_t max_session_floats;
    size_t n_params;           /* weight elements so far */
    nn_node *sequence;         /* after build: the first sequence node, so
                                  a graph that has one runs node by node */
    int (*abort_fn)(void *);   /* nn_graph_set_abort, or NULL */
    void *abort_user;
};

/* A session's buffers for one node (session.c). */
typedef struct node_run {
    nn_tensor out;        /* (batch, output shape) */
    nn_tensor *state;     /* (batch, state shape) each */
    int n_state;
    float *work;
    nn_rng rng;
    nn_tensor *ff;        /* views of the inputs' out buffers */
    nn_tensor *fb;        /* views of the feedback senders' out buffers */
} node_run;

struct nn_session {
    nn_graph *g;
    int batch;
    uint64_t seed;
    /* Atomic: a server may read the count (a session's summary) while
     * another thread steps the session; only the stepping thread writes. */
    _Atomic long steps;
    node_run *runs;       /* indexed by node->index */
    int batch_mark;       /* nonzero while nn_session_step_many checks it */
};

/* (batch, per-sample shape). */
nn_shape nn_batched_shape(int batch, const nn_shape *per_sample);
/* Sequence runs, shared by nn_session_run and the taped run: bound[e] gets
 * the tensor of entry e after checking names and shapes. */
int nn_session_bind_sequence(nn_session *s, const nn_binding *inputs,
                             int n_inputs, int num_steps,
                             const nn_tensor **bound, nn_error *err);
int nn_session_sequence_outputs(nn_session *s, int num_steps,
                                nn_tensor **outputs, nn_error *err);
void nn_session_outputs_free(nn_session *s, nn_tensor **outputs);
/* The same for the n nodes given instead of the exits. */
int nn_session_sequence_outputs_of(nn_session *s, nn_node *const *nodes,
                                   int n, int num_steps, nn_tensor **outputs,
                                   nn_error *err);
void nn_session_outputs_free_of(nn_tensor **outputs, int n);
/* Copies step t of the bound inputs into the entry buffers. */
void nn_session_load_step(nn_session *s, const nn_tensor **bound,
                          int num_steps, int t);
/* Copies the exits' outputs into step t of the sequence outputs. */
void nn_session_store_step(nn_session *s, nn_tensor **outputs, int num_steps,
                           int t);
void nn_session_store_step_of(nn_session *s, nn_node *const *nodes, int n,
                              nn_tensor **outputs, int num_steps, int t);

/* One node's forward at the session's next step, from the inputs ff (its
 * own views in a step; other buffers in a run node by node); errors name
 * the node. */
int nn_session_forward_node(nn_session *s, nn_node *node, nn_tensor *ff,
                            int train, long step, nn_error *err);
/* NN_OK, or NN_ERR_UNSUPPORTED naming g's sequence node: what every step
 * (single or batched) answers for a graph that has one. */
int nn_session_refuse_sequence(const nn_graph *g, nn_error *err);
/* The run of a graph with a sequence node (tape.c): node after node, each
 * over all num_steps steps of the bound inputs, with the outputs of
 * nodes[0..n_nodes) written into outputs already allocated for them
 * (nn_session_sequence_outputs_of); the session's state, outputs and step
 * count afterwards as a stepped run would leave them. */
int nn_sequence_run(nn_session *s, const nn_tensor **bound, int num_steps,
                    int train, nn_node *const *nodes, int n_nodes,
                    nn_tensor **outputs, nn_error *err);

/* Floats of outputs, state and scratch one batch row of a session holds
 * (saturating), and the check of `rows` such rows against the graph's
 * max_session_floats; `what` names the holder in the message. */
size_t nn_floats_per_row(const nn_graph *g);
int nn_check_session_floats(const nn_graph *g, size_t rows, const char *what,
                            nn_error *err);

/* A zeroed scratch buffer of `floats` floats, counted as nn_calloc, or
 * NULL. Large ones (4 MiB and more, on Linux) are mapped on their own and
 * offered 2 MiB pages: a sparse batch product reads its transposed inputs
 * (megabytes) at random, and on 4 KiB pages nearly every read misses the
 * first-level TLB. Released with nn_scratch_free and the same count. */
float *nn_scratch_alloc(size_t floats);
void nn_scratch_free(float *p, size_t floats);

/* Grows *arr (of elem bytes) so that it holds at least need elements. */
int nn_grow(void **arr, int *cap, int need, size_t elem, nn_error *err);

/* Parameters (param.c). */
int nn_param_parse(const nn_param_def *def, const char *node, const char *text,
                   nn_param_val *out, nn_error *err);
void nn_param_val_clear(nn_param_val *v);
int nn_param_table_check(const nn_node_type *type, nn_error *err);
/* Index of name in the type's table, or -1. */
int nn_param_index(const nn_node_type *type, const char *name);

/* The widest vector instructions the engine's own kernels (sparse
 * products, activations) may use on this CPU: 0 none, 1 AVX2, 2 AVX-512F
 * as well. */
int nn_vector_level(void);
/* For tests only: caps nn_vector_level at level even if the CPU has more;
 * -1 lifts the cap. Not thread-safe: set it before kernels run. */
void nn_limit_vectors(int level);

#endif /* NN_INTERNAL_H */
