/*
 * builtins.c — registers the built-in node types, through the same call a
 * plugin uses.
 */
#include "builtins.h"

int nn_registry_add_builtins(nn_registry *reg, nn_error *err)
{
    static const nn_node_type *const types[] = {
        &nn_type_input,   &nn_type_dense,      &nn_type_vanilla_rnn,
        &nn_type_dropout, &nn_type_activation, &nn_type_concat,
        &nn_type_lstm,    &nn_type_gru,        &nn_type_layernorm,
        &nn_type_select,  &nn_type_reshape,    &nn_type_summation,
        &nn_type_linear_readout,
        &nn_type_reservoir, &nn_type_nvar,   &nn_type_ipreservoir,
        &nn_type_delay,
    };
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        int rc = nn_register_type(reg, types[i], err);
        if (rc != NN_OK)
            return rc;
    }
    return NN_OK;
}
