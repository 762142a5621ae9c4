/*
 * nn.h — the nerved node API: tensors, errors, random streams, initialisers,
 * parameter tables, and the node-type interface that built-in nodes and
 * plugins implement alike.
 *
 * This header is the stable public face of the engine. Everything a custom
 * node type needs is here; graphs and sessions are in nn_graph.h.
 *
 * Conventions
 *   - Functions that can fail return an nn_status (0 = NN_OK, negative on
 *     failure) and, when given a non-NULL nn_error, fill it with a message
 *     for people.
 *   - Shapes handed to node types are per-sample: the batch axis is implicit
 *     and always first at run time. A node fed (batch, 3) sees shape (3).
 *   - Ownership is stated on every function that creates or takes an object.
 *   - New members of nn_node_type are only ever appended, each with the
 *     version that added it; a type declares the NN_API_VERSION it was built
 *     against, the host accepts NN_API_VERSION_MIN up to NN_API_VERSION and
 *     never reads a member newer than the type (an older plugin's struct
 *     ends before it), as SQLite does with a module's iVersion.
 */
#ifndef NN_H
#define NN_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version this header describes: 2 appended nn_node_type.feature_name,
 * 3 forward_seq and backward_seq (sequence nodes, see below). Types built
 * against NN_API_VERSION_MIN or later still load. */
#define NN_API_VERSION 3
#define NN_API_VERSION_MIN 1

#define NN_MAX_DIMS 8
#define NN_NAME_MAX 64  /* node, type, weight and parameter names, with NUL */

/* ---------------------------------------------------------------- status */

typedef enum nn_status {
    NN_OK = 0,
    NN_ERR_INVALID = -1,     /* a bad value or argument */
    NN_ERR_NOMEM = -2,       /* an allocation failed */
    NN_ERR_SHAPE = -3,       /* shapes do not fit together */
    NN_ERR_GRAPH = -4,       /* the graph does not validate */
    NN_ERR_NOT_FOUND = -5,   /* unknown name */
    NN_ERR_EXISTS = -6,      /* name already taken */
    NN_ERR_UNSUPPORTED = -7, /* the node type cannot do what was asked */
    NN_ERR_VERSION = -8,     /* built against another NN_API_VERSION */
    NN_ERR_LIMIT = -9,       /* a configured limit was reached */
    NN_ERR_STATE = -10       /* called in the wrong lifecycle stage */
} nn_status;

/* A fixed-size error record: filling it never allocates. */
typedef struct nn_error {
    int code;        /* an nn_status */
    char msg[512];   /* a human message naming what is at fault */
} nn_error;

/* Fills err (when non-NULL) with code and a printf-style message; returns
 * code, so a failing path can `return nn_error_set(err, NN_ERR_..., ...)`. */
int nn_error_set(nn_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Prepends "prefix: " to err's message; returns err->code (NN_ERR_INVALID
 * when err is NULL, which has no code to return: the engine always hands
 * type callbacks a real record, also when its own caller passed NULL). */
int nn_error_prefix(nn_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void nn_error_clear(nn_error *err);
/* A short constant name for a status, e.g. "shape" for NN_ERR_SHAPE. */
const char *nn_status_str(int status);

/* ---------------------------------------------------------------- memory */

/* Every engine allocation goes through these, so tests can count them (a
 * compiled step must perform none) and inject failures. Counting is
 * thread-safe. nn_free(NULL) is a no-op. */
void *nn_malloc(size_t size);
void *nn_calloc(size_t count, size_t size);
void *nn_realloc(void *ptr, size_t size);
void nn_free(void *ptr);
/* Number of successful nn_malloc/nn_calloc/nn_realloc calls so far. */
uint64_t nn_alloc_count(void);
/* Make the n-th allocation from now fail (n >= 1), or disable with 0.
 * For out-of-memory tests only. */
void nn_alloc_fail_after(uint64_t n);
/* Make every allocation of more than `bytes` fail (0: no limit), so a test
 * can prove that a request is refused before its memory is asked for. For
 * tests only. */
void nn_alloc_fail_above(size_t bytes);

/* ---------------------------------------------------------------- shapes */

typedef struct nn_shape {
    int ndim;                 /* 0 .. NN_MAX_DIMS */
    int dims[NN_MAX_DIMS];
} nn_shape;

/* Builds a shape from ndim sizes. */
nn_shape nn_shape_make(int ndim, const int *dims);
nn_shape nn_shape1(int d0);
nn_shape nn_shape2(int d0, int d1);
size_t nn_shape_numel(const nn_shape *s); /* 1 for ndim 0; SIZE_MAX on overflow */
int nn_shape_equal(const nn_shape *a, const nn_shape *b);
/* Writes "(2, 3)" into buf; returns buf. */
char *nn_shape_str(const nn_shape *s, char *buf, size_t bufsize);

/* The C form of BrainPy's check_shape_consistency(shapes, axis=-1, True):
 * every shape must have the same number of axes and agree on all axes but
 * the last. On success *lead receives the shared leading shape (all axes but
 * the last), sizes[i] (when non-NULL) the last-axis size of input i, and
 * *total (when non-NULL) their sum. On failure the message names the first
 * offending input by index and label (labels may be NULL) with both shapes. */
int nn_check_shape_consistency(const nn_shape *shapes, int n,
                               const char *const *labels, nn_shape *lead,
                               int *sizes, int *total, nn_error *err);

/* --------------------------------------------------------------- tensors */

/* A float32 n-d tensor, row-major. At run time axis 0 is the batch. */
typedef struct nn_tensor {
    nn_shape shape;
    float *data;
    int owns_data;  /* nonzero: nn_tensor_free releases data */
} nn_tensor;

/* Allocates a zeroed tensor; the caller owns it (nn_tensor_free). */
nn_tensor *nn_tensor_new(const nn_shape *shape);
/* Frees t and, if it owns it, its data. NULL is a no-op. */
void nn_tensor_free(nn_tensor *t);
/* Initialises an embedded tensor with freshly allocated zeroed data. */
int nn_tensor_alloc(nn_tensor *t, const nn_shape *shape, nn_error *err);
/* Releases data of an embedded tensor (if owned) and clears it. */
void nn_tensor_release(nn_tensor *t);
/* A view sharing data; nothing to free. */
nn_tensor nn_tensor_view(float *data, const nn_shape *shape);
size_t nn_tensor_numel(const nn_tensor *t);
void nn_tensor_zero(nn_tensor *t);
/* Rows of a tensor seen as a matrix: numel / last-axis size. */
size_t nn_tensor_rows(const nn_tensor *t);
int nn_tensor_cols(const nn_tensor *t);

/* Concatenates n tensors along the last axis into dst, whose shape must
 * already be the concatenated shape (leading axes equal). */
int nn_concat_last(const nn_tensor *in, int n, nn_tensor *dst, nn_error *err);

/* ---------------------------------------------------------- random streams */

/* xoshiro256** seeded through splitmix64: the same seed gives the same
 * stream on every machine. */
typedef struct nn_rng {
    uint64_t s[4];
} nn_rng;

void nn_rng_seed(nn_rng *rng, uint64_t seed);
/* A seed for a named sub-stream of seed, so a node's weights depend on the
 * graph seed and its own name only, never on the other nodes. */
uint64_t nn_seed_derive(uint64_t seed, const char *name);
uint64_t nn_rng_u64(nn_rng *rng);
double nn_rng_uniform(nn_rng *rng);         /* [0, 1) with 53 random bits */
double nn_rng_normal(nn_rng *rng);          /* standard normal */
int nn_rng_bernoulli(nn_rng *rng, double p); /* 1 with probability p */

/* ----------------------------------------------------------- initialisers */

typedef enum nn_init_kind {
    NN_INIT_ZEROS,
    NN_INIT_ONES,
    NN_INIT_CONSTANT,        /* a = value */
    NN_INIT_NORMAL,          /* a = mean, b = scale (std) */
    NN_INIT_UNIFORM,         /* a = min, b = max */
    NN_INIT_XAVIER_NORMAL,   /* a = gain: std = gain*sqrt(2/(fan_in+fan_out)) */
    NN_INIT_XAVIER_UNIFORM,  /* a = gain: limit = gain*sqrt(6/(fan_in+fan_out)) */
    NN_INIT_KAIMING_NORMAL,  /* a = gain (default sqrt 2): std = gain/sqrt(fan_in) */
    NN_INIT_KAIMING_UNIFORM, /* a = gain (default sqrt 2): limit = gain*sqrt(3/fan_in) */
    NN_INIT_LECUN_NORMAL,    /* a = gain: std = gain/sqrt(fan_in) */
    NN_INIT_ORTHOGONAL,      /* a = gain: gain * a (semi-)orthogonal matrix */
    NN_INIT_BERNOULLI,       /* a = value: +value or -value, each with
                                probability 1/2 (ReservoirPy's bernoulli) */
    NN_INIT_COUNT_
} nn_init_kind;

typedef struct nn_init {
    nn_init_kind kind;
    double a, b;
} nn_init;

/* Parses an initialiser written as in BrainPy: "XavierNormal",
 * "Normal(0, 0.1)", "Normal(scale=0.1)", "Uniform(min=-1, max=1)",
 * "Orthogonal(gain=1.1)", "Constant(0.5)". Argument names are listed by
 * nn_init_describe. */
int nn_init_parse(const char *text, nn_init *out, nn_error *err);
/* Writes the canonical text of init (parseable by nn_init_parse). */
char *nn_init_str(const nn_init *init, char *buf, size_t bufsize);
/* Fills t from init, drawing from rng. Fans come from the last two axes:
 * fan_in = dims[n-2]*receptive, fan_out = dims[n-1]*receptive; a 1-d tensor
 * has fan_in = fan_out = its size. */
int nn_init_fill(const nn_init *init, nn_tensor *t, nn_rng *rng, nn_error *err);
/* Name and argument list of initialiser kind k, e.g. "Normal(mean=0, scale=1)". */
const char *nn_init_describe(nn_init_kind k);

/* ------------------------------------------------------- parameter tables */

typedef enum nn_param_kind {
    NN_PARAM_INT,    /* bounded by min/max */
    NN_PARAM_FLOAT,  /* bounded by min/max; NaN and Inf refused */
    NN_PARAM_BOOL,
    NN_PARAM_ENUM,   /* one of `choices`, "a|b|c" */
    NN_PARAM_SHAPE,  /* a per-sample shape, e.g. "3" or "2,3"; sizes >= 1 */
    NN_PARAM_INIT,   /* an initialiser, see nn_init_parse */
    NN_PARAM_STRING,
    NN_PARAM_FLOATS  /* a number, a list "[0.1, 2]" (each bounded by
                        min/max) or an initialiser to draw the values from;
                        the node decides the length (nn_node_param_floats) */
} nn_param_kind;

/* One row of a node type's parameter table. The table ends with a row whose
 * name is NULL. Validation, error messages and the node-types listing all
 * come from this table. */
typedef struct nn_param_def {
    const char *name;
    nn_param_kind kind;
    const char *def;      /* default, as text; NULL = required */
    double min, max;      /* bounds for INT, FLOAT and FLOATS, inclusive; not
                             checked when min == max */
    const char *choices;  /* ENUM only: "tanh|relu|sigmoid" */
    const char *doc;
} nn_param_def;

/* Name of a parameter kind: "int", "float", "bool", "enum", "shape",
 * "initializer", "string", "floats". */
const char *nn_param_kind_str(nn_param_kind kind);

/* ------------------------------------------------------------ node types */

typedef struct nn_node nn_node;  /* an instance of a type in a graph */
typedef struct nn_registry nn_registry;

/* What a node sees while it computes. The host owns everything in it. */
typedef struct nn_ctx {
    int train;           /* nonzero in training: Dropout is active */
    int num_batch;       /* rows in axis 0 of every input and output */
    long step;           /* steps since the session was created or reset;
                            -1 when a row-wise node runs over the rows of
                            several sessions (NN_TYPE_ROWWISE) */
    nn_rng *rng;         /* this node's stream in this session (seeded); a
                            throwaway stream in such a run */
    nn_tensor *state;    /* this node's state tensors, in declaration order;
                            each shaped (num_batch, per-sample shape) */
    int n_state;
    float *work;         /* scratch of num_batch * declared floats per row */
    nn_tensor *grad;     /* backward only: gradients of this node's weights,
                            in declaration order, to accumulate into (+=) */
    nn_tensor *dstate;   /* backward only: in, d loss / d state after the
                            step; out, d loss / d state before it */
    const nn_tensor *state_next; /* backward only: the state as this step's
                            forward left it (ctx->state is the state before) */
    nn_error *err;       /* where forward/backward report failures */
} nn_ctx;

/* Type flags. */
enum {
    NN_TYPE_SOURCE = 1u << 0,    /* takes no inputs; the caller binds its
                                    output by the node's name (Input) */
    NN_TYPE_TRAINABLE = 1u << 1, /* instances are trainable by default */
    NN_TYPE_STATEFUL = 1u << 2,  /* declares state (recurrent types) */
    NN_TYPE_LINEAR = 1u << 3,    /* a linear readout: the output is
                                    concat(ff) · W + concat(fb) · Wfb + b with
                                    weights named "W", "Wfb" (when it has
                                    feedback) and "b" (when it has a bias),
                                    each (inputs, units) / (units); the ridge
                                    and RLS trainers fit exactly these */
    NN_TYPE_ROWWISE = 1u << 4    /* forward treats samples independently;
                                    see below */
};

/*
 * NN_TYPE_ROWWISE (a flag bit, so no NN_API_VERSION bump: types built
 * before it simply lack it) promises that forward
 *   - computes each sample (row of axis 0) of out and of ctx->state from
 *     the same sample of its inputs, its state and its scratch alone, so
 *     the result does not depend on num_batch or on the other rows;
 *   - writes all of out before reading it (out carries nothing from the
 *     previous step);
 *   - reads neither ctx->rng nor ctx->step.
 * nn_session_step_many may then run the node once over the rows of several
 * sessions gathered into one batch (one GEMM instead of one GEMV per
 * session). There ctx->step is -1 and ctx->rng a throwaway stream; the rows
 * of one such run share ctx->train, so forward may read it. A node without
 * the flag runs session by session on that session's rows, with its own
 * stream, state and step count, exactly as nn_session_step runs it — the
 * safe default for any type that does not say otherwise. An instance whose
 * parameters decide (Reservoir draws noise from ctx->rng only when a noise
 * gain is set) sets its own value with nn_node_set_rowwise in init_ff or
 * init_fb.
 */

/*
 * A node type: a versioned table of functions, registered by name. Built-in
 * types and plugins use exactly this struct. Members are only appended.
 *
 * Lifecycle, driven by the host for each node of a graph:
 *   create      — node memory (priv_size bytes, zeroed) is allocated and the
 *                 parameters are validated against `params`;
 *   init_ff     — once, with the feedforward input shapes: create weights
 *                 (nn_node_add_weight), declare state (nn_node_add_state)
 *                 and scratch (nn_node_set_work), set the output shape;
 *   init_fb     — once, after every init_ff, with the feedback input shapes
 *                 (only if the node receives feedback; NULL: the type does
 *                 not support feedback and such an edge is refused);
 *   init_state  — for every session, on creation, on reset and when its
 *                 batch size changes: the host has allocated and zeroed the
 *                 declared state; fill in non-zero initial values (optional);
 *   forward     — every step;
 *   backward    — gradient training (optional: NULL = not differentiable);
 *   destroy     — release what the type allocated itself (optional).
 *
 * forward and backward must treat the node (priv and weights) as read-only:
 * sessions of one network run concurrently and share it. Everything that
 * changes per step lives in ctx->state. They must not allocate.
 */
typedef struct nn_node_type {
    int api_version;             /* NN_API_VERSION when built */
    const char *name;            /* registry key, e.g. "Dense" */
    const char *doc;             /* one line */
    unsigned flags;              /* NN_TYPE_* */
    const nn_param_def *params;  /* NULL or a table ending in {NULL} */
    size_t priv_size;            /* bytes of per-node data (nn_node_priv) */

    int (*init_ff)(nn_node *node, const nn_shape *ff, int n_ff, nn_error *err);
    int (*init_fb)(nn_node *node, const nn_shape *fb, int n_fb, nn_error *err);
    int (*init_state)(nn_node *node, nn_tensor *state, int n_state,
                      int num_batch, nn_error *err);
    /* Writes out (shaped (num_batch, output shape)) from the inputs. fb is
     * NULL and n_fb 0 when the node has no feedback edges; otherwise fb[i] is
     * the sender's output of the previous step (zeros before the first). */
    int (*forward)(nn_node *node, const nn_tensor *ff, int n_ff,
                   const nn_tensor *fb, int n_fb, nn_tensor *out, nn_ctx *ctx);
    /* Given the inputs and output of a step and dout = d loss / d out,
     * accumulates (+=) d loss / d input into dff[i] and dfb[i] (either may be
     * NULL when not wanted), d loss / d weight into ctx->grad, and updates
     * ctx->dstate. ctx->state holds the state from before the step and
     * ctx->state_next the state after it (both read-only); ctx->rng is this
     * node's stream as it was when the step's forward began, so a stochastic
     * type can draw the same numbers again; ctx->work is the node's scratch
     * (its contents from forward are gone). */
    int (*backward)(nn_node *node, const nn_tensor *ff, int n_ff,
                    const nn_tensor *fb, int n_fb, const nn_tensor *out,
                    const nn_tensor *dout, nn_tensor *dff, nn_tensor *dfb,
                    nn_ctx *ctx);
    void (*destroy)(nn_node *node);
    /* Since version 2. Optional (NULL: features are unnamed). Writes the
     * name of output feature i, 0 <= i < the output's last axis, into buf
     * (NUL-terminated, cut to size), e.g. "x0(t-2)" or "x0(t)*x1(t-2)".
     * Called after build; a network's description lists the names. Returns
     * NN_OK or fills err. */
    int (*feature_name)(const nn_node *node, int i, char *buf, size_t size,
                        nn_error *err);
    /* Since version 3. Optional: only instances that call
     * nn_node_set_sequence use them. forward_seq computes a whole output
     * sequence from whole input sequences, for a node whose output at t
     * depends on later inputs too (a bidirectional RNN). Every tensor is
     * time-major, (T, num_batch, per-sample shape): ff[i] the inputs, out
     * the outputs to write. ctx->state is NULL: such a node declares no
     * state and keeps nothing from one run to the next. ctx->step is the
     * session's step at t = 0; ctx->work holds work_per_row floats per
     * batch row and per step, plus one step: (T + 1) * num_batch *
     * work_per_row. Unlike forward they
     * may allocate (nn_malloc; NN_ERR_NOMEM on failure): a run over whole
     * sequences allocates its histories anyway. */
    int (*forward_seq)(nn_node *node, const nn_tensor *ff, int n_ff,
                       nn_tensor *out, nn_ctx *ctx);
    /* Since version 3. Optional (NULL: not differentiable). Given the
     * input and output sequences and dout = d loss / d out, shaped as
     * they are, accumulates (+=) d loss / d input into dff[i] and d loss /
     * d weight into ctx->grad. ctx->work is as for forward_seq, its
     * contents from forward_seq gone. */
    int (*backward_seq)(nn_node *node, const nn_tensor *ff, int n_ff,
                        const nn_tensor *out, const nn_tensor *dout,
                        nn_tensor *dff, nn_ctx *ctx);
} nn_node_type;

/* ------------------------------------------------- what a node type calls */

const char *nn_node_name(const nn_node *node);
const nn_node_type *nn_node_type_of(const nn_node *node);
/* The type's private data, priv_size bytes, zeroed at creation. */
void *nn_node_priv(nn_node *node);
const void *nn_node_priv_const(const nn_node *node);
/* Whether this instance's weights are trainable (the common `trainable`
 * parameter, defaulting to the type's NN_TYPE_TRAINABLE flag). */
int nn_node_trainable(const nn_node *node);
/* A stream seeded from the graph seed and this node's name, for drawing
 * weights during init_ff/init_fb. */
nn_rng *nn_node_init_rng(nn_node *node);

/* Validated parameter values; the name must be in the type's table. A name
 * that is not reads 0/NULL, and when asked during the build (init_ff,
 * init_fb) the build fails naming the type and the parameter. */
long nn_node_param_int(const nn_node *node, const char *name);
double nn_node_param_float(const nn_node *node, const char *name);
int nn_node_param_bool(const nn_node *node, const char *name);
/* ENUM and STRING; the string belongs to the node. */
const char *nn_node_param_str(const nn_node *node, const char *name);
nn_shape nn_node_param_shape(const nn_node *node, const char *name);
nn_init nn_node_param_init(const nn_node *node, const char *name);
/* FLOATS: the listed values (*values belongs to the node) and their count,
 * or 0 when the parameter is an initialiser (nn_node_param_init reads it).
 * nn_node_param_float reads the first value. */
int nn_node_param_floats(const nn_node *node, const char *name,
                         const double **values);

/* Sets the per-sample output shape (init_ff). */
void nn_node_set_output_shape(nn_node *node, const nn_shape *shape);
/* Creates a weight named name (unique in the node) of the given shape,
 * filled from init with the node's init stream. The host owns the tensor;
 * the pointer stays valid for the node's life and its data may be replaced
 * in place (import, training). trainable is ANDed with the node's flag.
 * Returns NULL and fills err on failure. */
/* Weight elements the network may still create under its parameter cap
 * (SIZE_MAX without one). A type whose weights take work to draw checks
 * their sizes against this first, so an oversized request costs nothing. */
size_t nn_node_params_left(const nn_node *node);
nn_tensor *nn_node_add_weight(nn_node *node, const char *name,
                              const nn_shape *shape, const nn_init *init,
                              int trainable, nn_error *err);
/* Declares a per-sample state tensor; returns its index in ctx->state or a
 * negative status. */
int nn_node_add_state(nn_node *node, const char *name, const nn_shape *shape,
                      nn_error *err);
/* Declares scratch space: floats per batch row, handed out as ctx->work. */
void nn_node_set_work(nn_node *node, size_t floats_per_row);
/* Whether this instance keeps the NN_TYPE_ROWWISE promise; it starts as
 * the type's flag says. Call from init_ff or init_fb only. */
void nn_node_set_rowwise(nn_node *node, int rowwise);
int nn_node_rowwise(const nn_node *node);

/*
 * Sequence nodes. An instance that calls nn_node_set_sequence(node, 1)
 * from init_ff (its type must have forward_seq) is run over whole
 * sequences only: its graph may hold no feedback edge (the build refuses
 * one), nn_session_step and nn_session_step_many refuse it
 * (NN_ERR_UNSUPPORTED naming the node), and nn_session_run and the taped
 * run compute node after node, each over all the run's steps, handing
 * such a node its inputs' whole sequences. Its forward and backward are
 * never called. Each run is a whole sequence for it: nothing of it
 * carries over to the next run (the other nodes' state does).
 */
void nn_node_set_sequence(nn_node *node, int sequence);
int nn_node_sequence(const nn_node *node);

/* --------------------------------------------------------------- registry */

/* A set of node types by name. */
nn_registry *nn_registry_new(void);             /* caller owns: _free */
void nn_registry_free(nn_registry *reg);
/* Adds every built-in node type. */
int nn_registry_add_builtins(nn_registry *reg, nn_error *err);
/* Registers type under type->name. The registry keeps the pointer, not a
 * copy: type must outlive the registry (a static struct, or one inside a
 * loaded plugin). Refuses another API version, a missing forward or
 * init_ff, a bad parameter table, or a name already taken. */
int nn_register_type(nn_registry *reg, const nn_node_type *type, nn_error *err);
const nn_node_type *nn_registry_find(const nn_registry *reg, const char *name);
int nn_registry_count(const nn_registry *reg);
/* Types in registration order; i in 0 .. count-1. */
const nn_node_type *nn_registry_at(const nn_registry *reg, int i);

/* Removes the types registered after the first `count`, so a plugin whose
 * loading fails midway leaves the registry as it found it. */
void nn_registry_truncate(nn_registry *reg, int count);

/*
 * Plugins. A plugin is a shared object that exports, at file scope,
 *
 *     NN_PLUGIN_EXPORT_VERSION;
 *     NN_PLUGIN_EXPORT int nerved_plugin_init(nn_registry *reg, nn_error *err)
 *     { return nn_register_type(reg, &my_type, err); }
 *
 * The host reads the version symbol before calling anything, and refuses a
 * plugin built against another NN_API_VERSION.
 */
typedef int (*nn_plugin_init_fn)(nn_registry *reg, nn_error *err);
#define NN_PLUGIN_INIT_SYMBOL "nerved_plugin_init"
#define NN_PLUGIN_VERSION_SYMBOL "nerved_plugin_api_version"
#if defined(__GNUC__)
#define NN_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define NN_PLUGIN_EXPORT
#endif
#define NN_PLUGIN_EXPORT_VERSION \
    NN_PLUGIN_EXPORT const int nerved_plugin_api_version = NN_API_VERSION

#ifdef __cplusplus
}
#endif
#endif /* NN_H */
