/*
 * registry.c — node types by name. Built-ins and plugins register the same
 * way; lookups are linear because a registry holds tens of types and is
 * searched only while graphs are described, never while they run.
 */
#include "nn_internal.h"

#include <string.h>

struct nn_registry {
    const nn_node_type **types;
    int n_types, cap_types;
};

nn_registry *nn_registry_new(void)
{
    return nn_calloc(1, sizeof(nn_registry));
}

void nn_registry_free(nn_registry *reg)
{
    if (!reg)
        return;
    nn_free(reg->types);
    nn_free(reg);
}

static int valid_type_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= NN_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9' && i > 0) || c == '_';
        if (!ok)
            return 0;
    }
    return 1;
}

int nn_register_type(nn_registry *reg, const nn_node_type *type, nn_error *err)
{
    if (!type)
        return nn_error_set(err, NN_ERR_INVALID, "no node type given");
    const char *name = type->name ? type->name : "(unnamed)";
    if (type->api_version < NN_API_VERSION_MIN ||
        type->api_version > NN_API_VERSION)
        return nn_error_set(err, NN_ERR_VERSION, "node type '%s' was built "
                            "against node API version %d; this engine "
                            "accepts versions %d to %d", name,
                            type->api_version, NN_API_VERSION_MIN,
                            NN_API_VERSION);
    if (!valid_type_name(type->name))
        return nn_error_set(err, NN_ERR_INVALID, "node type name '%s' must be "
                            "1-%d letters, digits or underscores, not "
                            "starting with a digit", name, NN_NAME_MAX - 1);
    if (!type->init_ff || !type->forward)
        return nn_error_set(err, NN_ERR_INVALID, "node type '%s' lacks %s", name,
                            !type->init_ff ? "init_ff" : "forward");
    int rc = nn_param_table_check(type, err);
    if (rc != NN_OK)
        return rc;
    if (nn_registry_find(reg, type->name))
        return nn_error_set(err, NN_ERR_EXISTS, "node type '%s' is already "
                            "registered", name);
    rc = nn_grow((void **)&reg->types, &reg->cap_types, reg->n_types + 1,
                 sizeof *reg->types, err);
    if (rc != NN_OK)
        return rc;
    reg->types[reg->n_types++] = type;
    return NN_OK;
}

const nn_node_type *nn_registry_find(const nn_registry *reg, const char *name)
{
    if (!reg || !name)
        return NULL;
    for (int i = 0; i < reg->n_types; i++)
        if (strcmp(reg->types[i]->name, name) == 0)
            return reg->types[i];
    return NULL;
}

int nn_registry_count(const nn_registry *reg)
{
    return reg ? reg->n_types : 0;
}

const nn_node_type *nn_registry_at(const nn_registry *reg, int i)
{
    return (reg && i >= 0 && i < reg->n_types) ? reg->types[i] : NULL;
}

void nn_registry_truncate(nn_registry *reg, int count)
{
    if (reg && count >= 0 && count < reg->n_types)
        reg->n_types = count;
}
