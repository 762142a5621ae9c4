/*
 * testgraph.c — see testgraph.h.
 */
#include "testgraph.h"
#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

nn_registry *tg_registry(void)
{
    nn_error err;
    nn_registry *reg = nn_registry_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(reg);
    CU_ASSERT_EQUAL_FATAL(nn_registry_add_builtins(reg, &err), NN_OK);
    return reg;
}

nn_graph *tg_graph(nn_registry *reg, uint64_t seed)
{
    nn_graph *g = nn_graph_new(reg, seed);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    return g;
}

nn_node *tg_node(nn_graph *g, const char *type, const char *name, ...)
{
    nn_error err;
    nn_node *n = nn_graph_add_node(g, type, name, &err);
    if (!n)
        fprintf(stderr, "add %s: %s\n", name, err.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    va_list ap;
    va_start(ap, name);
    for (const char *kv; (kv = va_arg(ap, const char *)) != NULL;) {
        char key[64];
        const char *eq = strchr(kv, '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
        int rc = nn_node_set_param(n, key, eq + 1, &err);
        if (rc != NN_OK)
            fprintf(stderr, "%s: %s\n", kv, err.msg);
        CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
    }
    va_end(ap);
    return n;
}

void tg_link(nn_graph *g, const char *expr)
{
    nn_error err;
    int rc = nn_graph_link(g, expr, &err);
    if (rc != NN_OK)
        fprintf(stderr, "%s: %s\n", expr, err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
}

void tg_build(nn_graph *g)
{
    nn_error err;
    int rc = nn_graph_build(g, &err);
    if (rc != NN_OK)
        fprintf(stderr, "build: %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
}

nn_tensor *tg_wave(int ndim, const int *dims, float scale, float phase)
{
    nn_shape shape = nn_shape_make(ndim, dims);
    nn_tensor *t = nn_tensor_new(&shape);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    for (size_t k = 0; k < nn_tensor_numel(t); k++)
        t->data[k] = scale * sinf(1.3f * (float)k + phase);
    return t;
}
