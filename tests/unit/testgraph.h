/*
 * testgraph.h — building graphs of the built-in types in a line each, for
 * tests that are about something else than building. Every failure is a
 * fatal CUnit assertion that prints the engine's message.
 */
#ifndef TESTGRAPH_H
#define TESTGRAPH_H

#include "nn_graph.h"

/* A registry with the built-in types; the caller frees it. */
nn_registry *tg_registry(void);
nn_graph *tg_graph(nn_registry *reg, uint64_t seed);
/* Adds a node with "key=value" parameters, the list ending in NULL. */
nn_node *tg_node(nn_graph *g, const char *type, const char *name, ...);
void tg_link(nn_graph *g, const char *expr);
void tg_build(nn_graph *g);
/* A new tensor of the given dims filled with scale · sin(1.3 k + phase). */
nn_tensor *tg_wave(int ndim, const int *dims, float scale, float phase);

#endif
