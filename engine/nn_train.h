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

#ifdef __cplusplus
}
#endif
#endif /* NN_TRAIN_H */
