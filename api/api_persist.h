/*
 * api_persist.h — the data directory's files as bytes: a network (its
 * definition as accepted and its weights) and a session checkpoint (all it
 * carries from one step to the next). No file I/O here: the server writes
 * these bytes atomically and hands back what it reads.
 *
 * Format version 3; every integer and float is little-endian:
 *
 *   offset  size
 *        0     6  magic "NERVED"
 *        6     1  kind: 'N' a network, 'C' a session checkpoint
 *        7     1  format version: 3 (1 and 2 are read too)
 *        8     4  u32 length of the meta JSON
 *       12     4  u32 length of the definition JSON (0 in a checkpoint)
 *       16     8  u64 number of 4-byte values (float32, and in a
 *                 network the u32 words of its sparse patterns)
 *       24     4  u32 CRC-32 (IEEE 802.3, the polynomial of zlib and PNG)
 *                 of every byte of the file except these four
 *       28        meta JSON, definition JSON, values
 *
 * A file is exactly that long: a shorter or longer one is refused.
 *
 * Network: meta {"id": "n3", "name": "guide", "sparse": [{"node": "r",
 * "weight": "W", "rows": 100, "cols": 100, "nnz": 1012}]} (name null when
 * unnamed; "sparse" lists every weight stored sparse, in the order below);
 * the definition as accepted by POST /v1/networks; the values are every
 * weight in the order GET /v1/networks/{net}/params lists them (nodes in
 * the order they were added, each node's weights in creation order,
 * row-major; a sparse weight's nnz values in its pattern's order), then,
 * for each weight of "sparse" in turn, its pattern as u32 words: cols + 1
 * column offsets and nnz row indices (see nn_graph.h).
 *
 * Checkpoint: meta {"network": "n3", "session": "s1", "batch": 1,
 * "steps": 12, "nodes": [{"name": "r", "rng": "<64 hex digits>",
 * "output": [1, 4], "states": [[1, 4]]}, ...]} with every node of the graph
 * in the order it was added; the values are, node after node, its output
 * buffer then each of its state tensors.
 *
 * Readers return 0, or -1 with an api_error whose message says what is
 * wrong with the bytes (its HTTP status means nothing here).
 */
#ifndef API_PERSIST_H
#define API_PERSIST_H

#include "api.h"

/* 2: a sparse Reservoir's W values are stored by output unit (the layout
 * its gathering product reads); version 1 stored them by input. Files of
 * version 1 still load, unless they hold such a W.
 * 3: every weight stored sparse keeps its pattern in the file (an import
 * may have replaced the one the seed draws). Version 2 files still load,
 * with the seed's patterns. */
#define API_PERSIST_VERSION 3
#define API_PERSIST_VERSION_MIN 1
#define API_PERSIST_HEADER 28

/* Checks a file's header (its first API_PERSIST_HEADER bytes at b) against
 * the file's size len before the rest is read: magic, kind ('N' or 'C'),
 * version, section lengths adding up to len, and at most max_values
 * floats. */
int api_persist_header_check(const unsigned char *b, size_t len, char kind,
                             size_t max_values, api_error *err);

/* Continues a CRC-32 over len more bytes; start with crc = 0. */
uint32_t api_crc32(uint32_t crc, const void *data, size_t len);

/* ------------------------------------------------------------ networks */

typedef struct api_stored_network {
    char id[24];
    char name[NN_NAME_MAX];     /* "" when unnamed */
    char *definition;           /* NUL-terminated; owned */
    nn_graph *graph;            /* built, with the stored weights; owned */
} api_stored_network;

/* The file of a network. name may be NULL or ""; definition is the JSON
 * text it was created from and must build g. On success *bytes is a
 * malloc'd buffer of *len bytes the caller frees. The caller keeps the
 * weights from changing meanwhile. */
int api_network_file_write(const char *id, const char *name,
                           const char *definition, nn_graph *g,
                           unsigned char **bytes, size_t *len,
                           api_error *err);
/* Checks the bytes, rebuilds the graph from the definition against reg
 * and lim, and loads the stored weights into it. On success out holds what
 * the caller frees with api_stored_network_free. */
int api_network_file_read(const unsigned char *bytes, size_t len,
                          const nn_registry *reg, const api_limits *lim,
                          api_stored_network *out, api_error *err);
void api_stored_network_free(api_stored_network *n);
/* The most 4-byte values a network file of a server whose networks hold
 * at most max_params weights can need (its header is checked against it
 * before the rest is read). */
size_t api_network_max_words(size_t max_params);

/* --------------------------------------------------------- checkpoints */

typedef struct api_checkpoint {
    char network[24];           /* the network's id */
    char session[24];
    int batch;
    long steps;
    cJSON *meta;                /* owned */
    float *values;              /* owned */
    size_t n_values;
} api_checkpoint;

/* The checkpoint of session s of graph g (network id net_id, session id
 * sid). On success *bytes is a malloc'd buffer of *len bytes the caller
 * frees. Call between steps. */
int api_checkpoint_write(const char *net_id, const char *sid,
                         const nn_graph *g, nn_session *s,
                         unsigned char **bytes, size_t *len,
                         api_error *err);
/* Checks the bytes and reads the checkpoint into out, which the caller
 * frees with api_checkpoint_free (also after a failure). */
int api_checkpoint_read(const unsigned char *bytes, size_t len,
                        api_checkpoint *out, api_error *err);
/* Puts the checkpoint's state into s, a session of g with the checkpoint's
 * batch. Every node, shape and size is checked before anything is written,
 * so a refused checkpoint leaves s as it was. */
int api_checkpoint_apply(const api_checkpoint *c, const nn_graph *g,
                         nn_session *s, api_error *err);
void api_checkpoint_free(api_checkpoint *c);

#endif
