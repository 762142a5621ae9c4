/* Calls a function of the engine that nn.h does not declare: the daemon
 * does not export it, so the plugin must fail to load, by name. */
#include "nn.h"

#include <stddef.h>

/* Declared by hand, as a plugin reaching past nn.h would. */
int nn_check_session_floats(const void *g, size_t rows, const char *what,
                            nn_error *err);

NN_PLUGIN_EXPORT_VERSION;

NN_PLUGIN_EXPORT int nerved_plugin_init(nn_registry *reg, nn_error *err)
{
    (void)reg;
    return nn_check_session_floats(NULL, 1, "internal", err);
}
