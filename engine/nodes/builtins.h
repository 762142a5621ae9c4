/*
 * builtins.h — the built-in node types. Each is an ordinary nn_node_type,
 * written with the public API only, exactly as a plugin would be.
 */
#ifndef NN_BUILTINS_H
#define NN_BUILTINS_H

#include "nn.h"
#include "nn_graph.h"

extern const nn_node_type nn_type_input;
extern const nn_node_type nn_type_dense;
extern const nn_node_type nn_type_vanilla_rnn;
extern const nn_node_type nn_type_dropout;
extern const nn_node_type nn_type_activation;
extern const nn_node_type nn_type_concat;
extern const nn_node_type nn_type_linear_readout;
extern const nn_node_type nn_type_lstm;
extern const nn_node_type nn_type_gru;
extern const nn_node_type nn_type_layernorm;
extern const nn_node_type nn_type_select;
extern const nn_node_type nn_type_reshape;
extern const nn_node_type nn_type_summation;
extern const nn_node_type nn_type_reservoir;
extern const nn_node_type nn_type_nvar;
extern const nn_node_type nn_type_ipreservoir;
extern const nn_node_type nn_type_delay;

/* nn_check_shape_consistency over a node's ff (or fb) input shapes, with
 * the senders' names as labels for the error message. */
int nn_inputs_consistent(nn_node *node, const nn_shape *in, int n,
                         int feedback, nn_shape *lead, int *total,
                         nn_error *err);

/* Adds a trainable weight drawn by the initialiser of parameter init_param
 * and sets *index to its position (in ctx->grad); NULL with err filled on
 * failure. */
nn_tensor *nn_add_init_weight(nn_node *node, const char *name, nn_shape shape,
                              const char *init_param, int *index,
                              nn_error *err);

/* nn_inputs_consistent for a node that takes only (batch, features)
 * inputs (the recurrent types, NVAR): *total receives the concatenated
 * width; inputs with more axes are an error naming the type. */
int nn_flat_inputs(nn_node *node, const nn_shape *in, int n, int feedback,
                   int *total, nn_error *err);

#endif
