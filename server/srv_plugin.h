/*
 * srv_plugin.h — loading node-type plugins into a registry at start-up.
 *
 * Only paths given on the command line are ever opened; nothing a client
 * sends reaches these functions.
 */
#ifndef SRV_PLUGIN_H
#define SRV_PLUGIN_H

#include <stddef.h>

#include "nn.h"

/* Opens the shared object at path, checks that it was built against this
 * NN_API_VERSION, and calls its nerved_plugin_init to register its types
 * into reg. On any failure (not a file, not a shared object, another API
 * version, a missing symbol, a refused type such as a duplicate name) the
 * registry is left as it was, the object is closed, and msg receives the
 * reason; returns 0 on success, -1 on failure. The loaded object stays open
 * until srv_plugins_unload_all. */
int srv_plugin_load(nn_registry *reg, const char *path, char *msg,
                    size_t msgsize);
/* Loads every "*.so" file in dir, in name order; stops at the first failure
 * (msg names the file). Returns the number loaded, or -1. */
int srv_plugin_load_dir(nn_registry *reg, const char *dir, char *msg,
                        size_t msgsize);
/* Closes every loaded object. Call after the registry and every graph that
 * used their types are freed. */
void srv_plugins_unload_all(void);

#endif
