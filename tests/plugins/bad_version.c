/* A plugin built against a future node API: the daemon must refuse it
 * before calling anything. */
#include "nn.h"

NN_PLUGIN_EXPORT const int nerved_plugin_api_version = NN_API_VERSION + 1;

NN_PLUGIN_EXPORT int nerved_plugin_init(nn_registry *reg, nn_error *err)
{
    (void)reg;
    return nn_error_set(err, NN_ERR_INVALID, "must never be called");
}
