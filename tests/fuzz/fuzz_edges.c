/*
 * fuzz_edges.c — edge expressions in BrainPy's notation ("{a, b} >> c",
 * "r << o"): parsed against a graph of a few nodes, then built. Any text
 * adds its edges or is refused with a position, never a crash.
 */
#include "nn_graph.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static nn_registry *reg;
    nn_error e;
    if (!reg) {
        reg = nn_registry_new();
        if (!reg || nn_registry_add_builtins(reg, &e) != NN_OK)
            abort();
    }
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    nn_graph *g = nn_graph_new(reg, 1);
    static const char *const dense[] = {"b", "c", "d", "r", "o"};
    nn_node *a = g ? nn_graph_add_node(g, "Input", "a", &e) : NULL;
    int ok = a && nn_node_set_param(a, "shape", "3", &e) == NN_OK;
    for (int i = 0; ok && i < 5; i++) {
        nn_node *n = nn_graph_add_node(g, "Dense", dense[i], &e);
        ok = n && nn_node_set_param(n, "num_unit", "2", &e) == NN_OK;
    }
    /* Several expressions per input, one per line, as a definition has. */
    for (char *line = text, *next; ok && line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        nn_graph_link(g, line, &e);
    }
    if (ok)
        nn_graph_build(g, &e);
    nn_graph_free(g);
    free(text);
    return 0;
}
