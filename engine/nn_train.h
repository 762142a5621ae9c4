/*
 * nn_train.h — gradients of a graph's weights, and backpropagation through
 * time over a recorded run (the tape).
 *
 * A training step is:
 *   nn_tape_run(tape, inputs, T, train=1, outputs)   forward, recorded
 *   (compute d loss / d outputs)
 *   nn_tape_backward(tape, d_outputs, grads)         gradients accumulate
 *   (an optimizer updates the trainable weights from grads)
 * Running a long sequence window by window with the same session is
 * truncated BPTT: state carries over between windows, gradients do not.
 */
#ifndef NN_TRAIN_H
#define NN_TRAIN_H

#include "nn_graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- grads */

typedef struct nn_grads nn_grads;

/* One zeroed tensor per weight of every node of a built graph, shaped like
 * the weight. The caller owns it (nn_grads_free); g must outlive it. */
nn_grads *nn_grads_new(nn_graph *g, nn_error *err);
void nn_grads_free(nn_grads *grads);
void nn_grads_zero(nn_grads *grads);
/* The gradient of weight i of node (nn_node_weight_at order). */
nn_tensor *nn_grads_at(nn_grads *grads, const nn_node *node, int i);
/* Euclidean norm over the gradients of trainable weights. */
double nn_grads_norm(const nn_grads *grads);
/* Multiplies every gradient by factor (clipping, averaging). */
void nn_grads_scale(nn_grads *grads, float factor);

/* ----------------------------------------------------------------- tape */

typedef struct nn_tape nn_tape;

/* Prepares to record up to max_steps steps of session s: every node's
 * output, every stateful node's state and every node's random stream, for
 * each step. Memory is about max_steps * batch * (sum of output and state
 * sizes) floats. The caller owns the tape (nn_tape_free); s must outlive it.
 * Fails (naming the node) when a node that is not a source has no backward
 * while something upstream of it (through ff or fb edges) has weights. */
nn_tape *nn_tape_new(nn_session *s, int max_steps, nn_error *err);
void nn_tape_free(nn_tape *tape);

/* As nn_session_run (same inputs, outputs and errors), recording each step.
 * num_steps must not exceed the tape's max_steps. */
int nn_tape_run(nn_tape *tape, const nn_binding *inputs, int n_inputs,
                int num_steps, int train, nn_tensor **outputs, nn_error *err);

/* Backpropagates through the steps recorded by the last nn_tape_run.
 * d_outputs[i] is d loss / d exit i, shaped like that run's outputs[i]
 * (batch, time, ...), or NULL for an exit that does not enter the loss.
 * Gradients of every weight are added into grads. The gradient with respect
 * to the state and feedback before the first recorded step is dropped
 * (truncation). Allocates nothing: the tape holds its scratch. */
int nn_tape_backward(nn_tape *tape, nn_tensor *const *d_outputs,
                     nn_grads *grads, nn_error *err);

/* --------------------------------------------------------------- losses */

typedef enum nn_loss_kind {
    NN_LOSS_MSE,        /* mean of (y − target)² over every element */
    NN_LOSS_SOFTMAX_CE  /* mean over rows of −Σ target · log softmax(y), the
                           softmax over the last axis; targets are one-hot
                           rows or probabilities: a fit refuses a row with
                           a negative entry or a sum off 1 by > 1e-3 */
} nn_loss_kind;

/* "mse", "softmax_cross_entropy" (or "cross_entropy"); -1 if unknown. */
int nn_loss_parse(const char *name);
const char *nn_loss_name(nn_loss_kind kind);

/* The loss of pred against target (same shape) times scale, as PyTorch's
 * mean reductions define it; when dpred is not NULL it receives
 * d (scale · loss) / d pred, shaped like pred. */
double nn_loss(nn_loss_kind kind, const nn_tensor *pred,
               const nn_tensor *target, nn_tensor *dpred, double scale);

/* ----------------------------------------------------------- optimizers */

/* ADAMW is Adam with decoupled weight decay (Loshchilov & Hutter; PyTorch's
 * AdamW): w ← w (1 − lr · decay) before the Adam step, the decay kept out
 * of the moments. */
typedef enum nn_optim_kind {
    NN_OPTIM_SGD,
    NN_OPTIM_ADAM,
    NN_OPTIM_ADAMW
} nn_optim_kind;

typedef enum nn_schedule_kind {
    NN_SCHEDULE_CONSTANT,    /* lr */
    NN_SCHEDULE_STEP,        /* lr · gamma^floor(epoch / step_size) */
    NN_SCHEDULE_EXPONENTIAL, /* lr · gamma^epoch */
    NN_SCHEDULE_COSINE       /* lr_min + (lr − lr_min)(1 + cos(π e / E)) / 2,
                                E = epochs below (by default the fit's),
                                held at lr_min after E */
} nn_schedule_kind;

typedef struct nn_optim_opts {
    nn_optim_kind kind;
    double lr;            /* > 0 */
    double momentum;      /* SGD, in [0, 1) (PyTorch's form: v = μv + g) */
    double beta1, beta2;  /* Adam, AdamW, in [0, 1) */
    double eps;           /* Adam, AdamW, > 0 */
    double weight_decay;  /* SGD, Adam: added to the gradient as decay · w;
                             AdamW: decoupled, as above */
    nn_schedule_kind schedule;
    int step_size;        /* STEP: epochs per decay */
    double gamma;         /* STEP, EXPONENTIAL */
    double lr_min;        /* COSINE */
    int epochs;           /* COSINE: the horizon E; 0 (the default): the
                             fit's epochs, as PyTorch's T_max = epochs */
} nn_optim_opts;

/* SGD without momentum at lr 0.01, Adam's usual betas, a constant rate. */
nn_optim_opts nn_optim_defaults(void);
/* The schedule's learning rate at an epoch (from 0). */
double nn_optim_lr_at(const nn_optim_opts *opts, int epoch);
/* Checks the ranges above; the message names the field. */
int nn_optim_check(const nn_optim_opts *opts, nn_error *err);

typedef struct nn_optim nn_optim;

/* Momentum or moment buffers for every trainable weight of a built graph.
 * The caller owns it (nn_optim_free); g must outlive it. */
nn_optim *nn_optim_new(nn_graph *g, const nn_optim_opts *opts, nn_error *err);
void nn_optim_free(nn_optim *opt);
/* One update of every trainable weight from grads at the epoch's learning
 * rate. Weights that are not trainable, or of nodes with trainable=false,
 * never change. */
void nn_optim_step(nn_optim *opt, const nn_grads *grads, int epoch);

/* Scales grads so their norm (nn_grads_norm) is at most max_norm; returns
 * the norm before clipping. */
double nn_grads_clip(nn_grads *grads, double max_norm);

/* ------------------------------------------------------ stopping a trainer */

/* A training call on g (nn_fit_bptt, nn_ridge_feed, nn_rls_run, nn_ip_fit)
 * asks fn(user) between steps, or between BPTT windows, and stops with
 * NN_ERR_STATE "cancelled" as soon as it answers nonzero, so a long call
 * can be cut short from another thread (fn must be safe to call from the
 * training thread). What the call changed until then stays: the caller
 * that wants all or nothing trains a clone. NULL fn removes it. A clone of
 * g does not inherit it. The same idea as llama.cpp's abort callback. */
void nn_graph_set_abort(nn_graph *g, int (*fn)(void *user), void *user);
/* What those calls ask: NN_OK, or NN_ERR_STATE "cancelled" once the
 * callback asks to stop. */
int nn_graph_abort_check(const nn_graph *g, nn_error *err);

/* ------------------------------------------------ gradient training (BPTT) */

/* Called after each epoch; a nonzero return stops the fit (cancelled). */
typedef int (*nn_fit_progress_fn)(void *user, int epoch, int epochs,
                                  double loss);

typedef struct nn_fit_opts {
    nn_loss_kind loss;
    nn_optim_opts optim;
    int epochs;           /* >= 1 */
    int batch_size;       /* sequences per minibatch; 0: all */
    int shuffle;          /* reshuffle the sequences every epoch */
    int window;           /* truncated BPTT: steps per backward; 0: all */
    double clip_norm;     /* > 0: clip the gradient norm of each update */
    uint64_t seed;        /* shuffling and the sessions' random streams */
    nn_fit_progress_fn progress;
    void *user;
} nn_fit_opts;

nn_fit_opts nn_fit_defaults(void);

/* Trains g's trainable weights by backpropagation through time. inputs bind
 * every entry to a (N, T, input shape) tensor, targets bind some exits to
 * (N, T, exit shape) tensors; the loss is the sum over those exits. Each
 * epoch visits the N sequences in minibatches (shuffled when asked); each
 * minibatch starts from a fresh state and is cut into windows of
 * opts->window steps, with one update per window and the state carried
 * across windows (truncated BPTT). history[epoch] (when not NULL, epochs
 * long) receives the epoch's mean loss; *epochs_done the epochs completed.
 * Errors name the node: a target that is not an exit, a trainable node
 * without backward, no trainable weight at all, a window shorter than the
 * sequences in a graph with a bidirectional (sequence) node. Returns
 * NN_ERR_STATE with "cancelled" when progress asked to stop; the weights
 * then hold the last update. */
int nn_fit_bptt(nn_graph *g, const nn_binding *inputs, int n_inputs,
                const nn_binding *targets, int n_targets,
                const nn_fit_opts *opts, double *history, int *epochs_done,
                nn_error *err);

/* Every check nn_fit_bptt makes before training, with its errors, and no
 * training: a server answers bad requests before it starts a job. */
int nn_fit_check(nn_graph *g, const nn_binding *inputs, int n_inputs,
                 const nn_binding *targets, int n_targets,
                 const nn_fit_opts *opts, nn_error *err);

/* ------------------------------------------ linear readouts: ridge and RLS */

/* Both trainers fit nodes whose type has NN_TYPE_LINEAR, whose output is
 * targeted; unlike BPTT's, these targets need not be exits (a readout may
 * feed a node that feeds back into it). A readout's features at step t are its ff inputs at t, its
 * feedback inputs (what it saw: the senders' outputs of t − 1) and a 1 for
 * the bias when it has one. Readouts are named by the target bindings. */

/* The checks nn_ridge_new and nn_rls_new make of the targets (each a
 * linear, trainable node, within the memory cap), without allocating the
 * matrices. *bytes (when not NULL) receives what either then allocates for
 * them, (D² + D·U) doubles a readout of D features and U units (XᵀX and
 * XᵀY, or P and the weights), so a server can charge it first. */
int nn_readouts_check(nn_graph *g, const nn_binding *targets, int n_targets,
                      size_t *bytes, nn_error *err);

typedef struct nn_ridge nn_ridge;

/* Accumulators XᵀX and XᵀY (double) for each targeted readout of g. Memory
 * is (features + 1)² + (features + 1) · units doubles per readout, however
 * long the data. Fails naming a target that is not a linear, trainable
 * node. The caller owns it (nn_ridge_free); it refers to nodes by name, so
 * it may be fed from any graph of the same definition. */
nn_ridge *nn_ridge_new(nn_graph *g, const nn_binding *targets, int n_targets,
                       nn_error *err);
void nn_ridge_free(nn_ridge *r);

/* Runs s over the sequences (inputs (batch, T, ...), targets as for
 * nn_ridge_new, shaped (batch, T, exit shape)) from its current state and
 * adds every step after the first `warmup` to the accumulators. A readout
 * whose output is fed back is teacher-forced: after each step its output
 * is replaced by the target, so what follows sees the target. */
int nn_ridge_feed(nn_ridge *r, nn_session *s, const nn_binding *inputs,
                  int n_inputs, const nn_binding *targets, int n_targets,
                  int num_steps, int warmup, nn_error *err);
/* Solves (XᵀX + βI) W = XᵀY for each readout (Cholesky, LAPACK dposv) and
 * writes W, Wfb and b into g's weights. Rows fed so far: *rows. */
int nn_ridge_solve(nn_ridge *r, nn_graph *g, double beta, long *rows,
                   nn_error *err);

typedef struct nn_rls nn_rls;

/* The online rules, as ReservoirPy's RLS and LMS nodes define them. With
 * x the feature row, Θ the weights and e = x·Θ − target the error of the
 * output just produced (before the update):
 *   RLS: k = P x, c = 1 / (λ + xᵀ k), Θ ← Θ − c k eᵀ, P ← (P − c k kᵀ) / λ,
 *        P₀ = I / alpha; λ = 1 is plain RLS, λ < 1 forgets old rows with
 *        weight λ per step (ReservoirPy's `forgetting`).
 *   LMS: Θ ← Θ − lr · x eᵀ (ReservoirPy's `learning_rate`), no P. */
typedef enum nn_online_rule { NN_ONLINE_RLS, NN_ONLINE_LMS } nn_online_rule;

typedef struct nn_online_opts {
    nn_online_rule rule;
    double alpha;      /* RLS: > 0 */
    double forgetting; /* RLS: λ in (0, 1] */
    double lr;         /* LMS: > 0 */
} nn_online_opts;

/* RLS with alpha 1 and no forgetting; LMS's rate ReservoirPy's 1e-6. */
nn_online_opts nn_online_defaults(void);
/* Checks the ranges above; the message names the field. */
int nn_online_check(const nn_online_opts *opts, nn_error *err);

/* An online trainer (FORCE when the readout's output feeds back) for each
 * targeted readout. Keeps P between runs, so training continues across
 * calls; nodes are referred to by name. The caller owns it
 * (nn_rls_free). */
nn_rls *nn_online_new(nn_graph *g, const nn_binding *targets, int n_targets,
                      const nn_online_opts *opts, nn_error *err);
/* nn_online_new for RLS with P₀ = I/alpha and no forgetting. */
nn_rls *nn_rls_new(nn_graph *g, const nn_binding *targets, int n_targets,
                   double alpha, nn_error *err);
void nn_rls_free(nn_rls *r);
/* A trainer equal to r (P, the weights it holds, rule and rates), sharing
 * nothing: train the copy and keep it only if the training succeeds. The
 * caller owns it. */
nn_rls *nn_rls_clone(const nn_rls *r, nn_error *err);
nn_online_rule nn_rls_rule(const nn_rls *r);
/* Changes forgetting and lr for the runs to come (alpha only shapes P₀,
 * which exists already). The rule cannot change: a trainer of another rule
 * is a new trainer. */
int nn_rls_tune(nn_rls *r, const nn_online_opts *opts, nn_error *err);
/* Checks that the rls still fits g (same readouts and feature sizes). */
int nn_rls_compatible(const nn_rls *r, nn_graph *g, nn_error *err);

/* Runs s over the sequences from its current state; after each step (and
 * each batch row, in order) updates the readouts' weights in s's graph by
 * the rule above. The output is not replaced by the target: FORCE feeds
 * back the readout's own output. *mse (when not NULL) receives the mean
 * squared error before each update, over the run. */
int nn_rls_run(nn_rls *r, nn_session *s, const nn_binding *inputs,
               int n_inputs, const nn_binding *targets, int n_targets,
               int num_steps, double *mse, nn_error *err);

/* ------------------------------------------------ intrinsic plasticity */

/* NN_OK when g has an IPReservoir node, else an error saying so. */
int nn_ip_check(nn_graph *g, nn_error *err);

/* Adapts the gain a and bias b of every IPReservoir node of g by intrinsic
 * plasticity (the rule in engine/nodes/ipreservoir.c, from each node's mu,
 * sigma and learning_rate). inputs bind every entry to (batch, num_steps,
 * input shape) tensors. Each of the epochs runs the batch from zero state;
 * after each step past `warmup`, every unit of every row is updated, row
 * after row (ReservoirPy runs its sequences one after another; here they
 * run side by side, so the rows of one step see the a and b the step ran
 * with). *updates (when not NULL) receives the steps that updated. */
int nn_ip_fit(nn_graph *g, const nn_binding *inputs, int n_inputs, int batch,
              int num_steps, int epochs, int warmup, long *updates,
              nn_error *err);

/* A new built graph equal to g: same nodes, parameters, edges and weight
 * values, sharing nothing but the registry. Trainers work on a clone while
 * sessions keep running on the original. The caller owns it. */
nn_graph *nn_graph_clone(nn_graph *g, nn_error *err);

/* Copies every weight of src into dst; both built from one definition
 * (same nodes, weight names and shapes), else an error naming the first
 * difference. A sparse weight comes with its pattern (an import may have
 * replaced it); everything is checked and allocated before dst changes. */
int nn_graph_copy_weights(nn_graph *dst, nn_graph *src, nn_error *err);

#ifdef __cplusplus
}
#endif
#endif /* NN_TRAIN_H */
