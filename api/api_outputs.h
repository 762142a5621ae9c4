/*
 * api_outputs.h — which nodes' outputs a request asks to see. A step, run
 * or infer request may name any node ("outputs": ["r", "o"]), not only the
 * graph's exits: someone porting a reservoir checks it by comparing its
 * states. Every node keeps its own output buffer through a step, batched
 * or not (nn_graph.h), so a named node costs only its copy into the reply.
 */
#ifndef API_OUTPUTS_H
#define API_OUTPUTS_H

#include "api.h"
#include "api_codec.h"

/* The nodes to answer with, in the request's order, each once. */
struct api_outputs {
    nn_node **nodes;    /* malloc'd; the graph's nodes, borrowed */
    const char **names; /* their names, the same order (the engine's run
                           takes names) */
    int n;
};

/* The graph's exits, in nn_graph_exit_at order: what a request that names
 * nothing gets. Fills o (free with api_outputs_free, also on failure). */
int api_outputs_exits(const nn_graph *g, api_outputs *o, api_error *err);
/* Appends the node named name, refusing with 400 a name that is not a
 * node of g (unknown_output; the message lists g's nodes) or that o
 * already holds (bad_request). where names the place in the request
 * ("outputs[2]"). */
int api_outputs_add(const nn_graph *g, api_outputs *o, const char *name,
                    const char *where, api_error *err);
/* Reads v1's "outputs": ["<node>", ...] at pos in a request body (NPOS,
 * (size_t)-1: absent, the exits). The list must be a non-empty array of
 * node names, each once: an empty list is refused rather than taken for
 * the exits, since it most likely lost its names on the way. */
int api_json_outputs(const api_json *j, size_t pos, const nn_graph *g,
                     api_outputs *o, api_error *err);
void api_outputs_free(api_outputs *o);
/* Floats in one batch row of one step of the chosen outputs (saturating
 * is not needed: each node is there once, and a session holds them all). */
size_t api_outputs_floats(const api_outputs *o);

/* "x, r, o" (g's nodes in the order they were added) cut to fit size with
 * ", ..." when longer; for messages that show what could be named. */
void api_node_list_text(const nn_graph *g, char *buf, size_t size);

#endif
