/*
 * bidir.h — runs a recurrent cell over a whole sequence in both
 * directions, as PyTorch's bidirectional=True: the output at t is
 * concat(forward h_t, reverse h_t), the reverse cell having read the
 * sequence from its end back to t. VanillaRNN, LSTM and GRU hand their
 * one-step forward and backward, with two sets of weights, to these.
 */
#ifndef NN_BIDIR_H
#define NN_BIDIR_H

#include "nn.h"

/* One step of one direction: the node type's own forward and backward on
 * the weights dir points to, without feedback. ctx->state, state_next,
 * dstate, work and grad are as a stepped run hands them; state 0 is h,
 * which is also the output. */
typedef int (*nn_cell_forward)(const void *dir, const nn_tensor *ff, int n_ff,
                               nn_tensor *out, nn_ctx *ctx);
typedef int (*nn_cell_backward)(const void *dir, const nn_tensor *ff,
                                int n_ff, const nn_tensor *out,
                                const nn_tensor *dout, nn_tensor *dff,
                                nn_ctx *ctx);

typedef struct nn_bidir_cell {
    int units;               /* H: each direction's h */
    int n_state;             /* 1 (h) or 2 (h, c), each (batch, H) */
    size_t step_work;        /* the one-step scratch, floats per row */
    nn_cell_forward forward;
    nn_cell_backward backward;
    const void *dir[2];      /* forward, reverse */
} nn_bidir_cell;

/* The scratch to declare (nn_node_set_work) for a sequence node of this
 * cell: floats per row and per step. */
size_t nn_bidir_work_per_row(const nn_bidir_cell *cell);

/* forward_seq and backward_seq of the node (see nn.h): ff (T, batch, F),
 * out and dout (T, batch, 2H). Both directions start from zero state.
 * backward runs the forward again (the scratch does not survive), then
 * each direction backwards through its own time order. */
int nn_bidir_forward(const nn_bidir_cell *cell, const nn_tensor *ff, int n_ff,
                     nn_tensor *out, nn_ctx *ctx);
int nn_bidir_backward(const nn_bidir_cell *cell, const nn_tensor *ff,
                      int n_ff, const nn_tensor *dout, nn_tensor *dff,
                      nn_ctx *ctx);

#endif
