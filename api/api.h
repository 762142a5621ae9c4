/*
 * api.h — JSON ⇄ engine: graph definitions, tensors, parameters, node-type
 * listings, graph drawings and errors. No HTTP here: the server calls these
 * and sends what they return.
 *
 * Every function that can fail returns 0 on success or -1 and fills an
 * api_error with the HTTP status, a stable code and a message that names
 * the field, node or input at fault.
 */
#ifndef API_H
#define API_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "nn_graph.h"

typedef struct api_error {
    int http_status;  /* 400, 404, 409, 413, 415, 422, 429, ... */
    char code[48];    /* e.g. "bad_request", "graph_invalid", "not_found" */
    char message[600];
} api_error;

/* Fills err and returns -1. */
int api_fail(api_error *err, int http_status, const char *code,
             const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Maps an engine error to an HTTP error: graph and shape errors are 422,
 * invalid values 400, unknown names 404 (or 422 inside a graph definition:
 * pass in_definition nonzero), taken names 409, sizes past a limit 413
 * (422 in a definition). Returns -1. */
int api_fail_from_nn(api_error *err, const nn_error *e, int in_definition);
/* {"error": {"code": ..., "message": ...}}; caller owns (cJSON_Delete).
 * The message is written as valid UTF-8 (see api_utf8_clean). */
cJSON *api_error_json(const api_error *err);
/* Replaces, in place, every byte of s that does not begin a well-formed
 * UTF-8 sequence with '?', so text quoting a client's bytes (or cut
 * inside a character) can go into a JSON document. */
void api_utf8_clean(char *s);
/* Whether s is well-formed UTF-8 (RFC 3629). */
int api_utf8_valid(const char *s);
/* The first member name an object anywhere in j holds twice, or NULL
 * (*failed set when memory ran out). cJSON keeps both, its lookups take
 * the first and loops over the members the last: one document, two
 * readings, so readers refuse such a document. */
const char *api_json_repeated_member(const cJSON *j, int *failed);

/* Limits applied while reading client documents. */
typedef struct api_limits {
    size_t max_tensor_elems;  /* per tensor */
    int max_nodes;            /* per graph */
    int max_steps;            /* time steps per run request */
    int max_batch;
    size_t max_params;        /* weight elements per network */
    size_t max_session_floats; /* outputs, state, scratch per session */
} api_limits;
api_limits api_default_limits(void);

/* ------------------------------------------------------------ graphs */

/* Builds a graph from a definition:
 *   {"name": "...", "seed": 42,
 *    "nodes": [{"name": "i1", "type": "Input", "shape": [3]}, ...],
 *    "ff": [["i1", "l"]], "fb": [["r", "o"]],     (fb pairs: receiver, sender)
 *    "edges": ["{i1, i2, i3} >> l", "r << o"]}
 * Every member of a node other than name and type is a parameter of its
 * type, checked against the type's table (JSON type, bounds, choices).
 * Returns a built graph the caller owns, or NULL. */
nn_graph *api_graph_from_json(const cJSON *def, const nn_registry *reg,
                              const api_limits *lim, api_error *err);
/* The optional "name" of a definition, or NULL (borrowed from def).
 * Fails (-1) when present but not a valid name string, or of id form. */
int api_graph_def_name(const cJSON *def, const char **name, api_error *err);
/* 1 when key has the form of the server's network ids ("n" and digits), which
 * no network name may take: a name n2 would capture the routes of id n2. */
int api_is_network_id(const char *key);
/* 1 when s is 1 to max - 1 bytes of letters, digits, '_', '-' and '.', and
 * not "." or "..": the names and ids that stand in a URL's path, where
 * those two would be resolved away before any request reached them. */
int api_is_path_name(const char *s, size_t max);

/* Describes a built graph: seed, entries, exits, and for every node its
 * type, parameters, ff and fb inputs, input shapes, output shape (batch
 * axis as null), parameter count, weights (name, shape, trainable), state,
 * and the names of its output features when its type gives them
 * (nn_node_type.feature_name). Caller owns the result. */
cJSON *api_graph_describe(const nn_graph *g);

/* Every registered type: name, doc, supports_feedback, stateful,
 * trainable, differentiable, source, and its parameter table (name, type,
 * default, min, max, choices, doc). Caller owns the result. */
cJSON *api_node_types_json(const nn_registry *reg);

/* The graph as Graphviz DOT (ff edges solid, fb edges dashed, shapes on the
 * nodes) or as a standalone SVG drawn by our own layered layout. Caller
 * frees with free(). */
char *api_graph_dot(const nn_graph *g);
char *api_graph_svg(const nn_graph *g);

/* ----------------------------------------------------------- tensors */

/* Reads a tensor written as nested arrays ([[1, 2], [3, 4]]) or as
 * {"shape": [2, 2], "data": [1, 2, 3, 4]}. Refuses ragged arrays, non-
 * numbers, NaN/Inf, empty axes and more than lim->max_tensor_elems
 * elements; `where` names the value in messages ("inputs.i1"). On success
 * *out is a new tensor the caller frees (nn_tensor_free). */
int api_tensor_from_json(const cJSON *j, const char *where,
                         const api_limits *lim, nn_tensor **out,
                         api_error *err);
/* Nested arrays of numbers, each written with the fewest digits that read
 * back as the same float32. Caller owns the result. */
cJSON *api_tensor_to_json(const nn_tensor *t);
/* A float32 as the shortest decimal text that reads back to it; NaN and
 * infinities, which JSON cannot hold, as null. */
void api_format_float(float v, char *buf, size_t bufsize);

/* ------------------------------------------------ inputs and outputs */

/* Reads {"name": (batch, time, features...)} for a whole sequence: every
 * entry present, all with the same batch (must equal batch) and time
 * length. On success *bindings is an array of nn_graph_entry_count entries
 * (aligned with nn_graph_entry_at) of new tensors, and *num_steps is set;
 * free with api_bindings_free. */
int api_read_sequence_inputs(const cJSON *inputs, const nn_graph *g,
                             int batch, const api_limits *lim,
                             nn_binding **bindings, int *num_steps,
                             api_error *err);
void api_bindings_free(nn_binding *bindings, int n);
/* Reads the input of one entry, `name`, from a document (ctx) into a new
 * tensor *out; `where` names it in messages. */
typedef int (*api_sequence_reader)(void *ctx, const char *name,
                                   const char *where, const api_limits *lim,
                                   nn_tensor **out, api_error *err);
/* The sequence inputs of every entry of g, each read by read(ctx, ...),
 * however the document is held: each shaped (batch, time, the entry's
 * shape), all with one time length within lim. Sets *bindings (free with
 * api_bindings_free) and *num_steps as api_read_sequence_inputs does. */
int api_bind_sequence_inputs(const nn_graph *g, int batch,
                             const api_limits *lim,
                             api_sequence_reader read, void *ctx,
                             nn_binding **bindings, int *num_steps,
                             api_error *err);
/* Reads {"<node>": (batch, steps, output shape)} for any nodes (targets,
 * forced feedback): each node must exist and each tensor fit it; `what`
 * names the object in messages ("targets"). *bindings (names point into g)
 * is set even on failure; free it with api_bindings_free(*bindings, *n). */
int api_read_node_sequences(const cJSON *obj, const nn_graph *g, int batch,
                            int steps, const char *what,
                            const api_limits *lim, nn_binding **bindings,
                            int *n, api_error *err);

/* (Step inputs and outputs of the routes go through api_codec.h.) */

/* -------------------------------------------------------- parameters */

/* Parameter documents ({"nodes": {"<node>": {"<weight>": {"shape": [...],
 * "data": [...], "trainable": true}}}}) are read and written by
 * api_codec.h (api_params_read, api_params_enc). */

/* ------------------------------------------------------------ OpenAPI */

/* The OpenAPI 3 document of the daemon's API (api/openapi.json, compiled
 * in). */
const char *api_openapi_json(void);

#endif /* API_H */
