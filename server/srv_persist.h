/*
 * srv_persist.h — the data directory (--data-dir): every network and every
 * session checkpoint is one file in the format of api/api_persist.h,
 * written before the request that changed it is answered.
 *
 * Files: net-<network id>.nerved and ckpt-<network id>-<session id>.nerved,
 * and ids.nerved, the marks below which ids may have been handed out.
 * A write goes to a temporary file in the same directory, which is
 * fsync'd, renamed over the old file, and then the directory is fsync'd:
 * after a crash each file is its old version or its new one, never a mix,
 * and an answered change is on disk.
 *
 * Every function takes p NULL (no data directory) and then does nothing
 * and returns 0. Failures are 503 "storage" errors whose message gives the
 * system's reason; the file on disk is then what it was before.
 */
#ifndef SRV_PERSIST_H
#define SRV_PERSIST_H

#include "srv_store.h"

typedef struct srv_persist srv_persist;

/* Opens dir, creating it (mode 0700) if missing, and removes temporary
 * files a crash left. Returns the handle the caller owns
 * (srv_persist_close), or NULL with the reason in msg. */
srv_persist *srv_persist_open(const char *dir, char *msg, size_t size);
void srv_persist_close(srv_persist *p);

/* Creates every network of the directory's net-*.nerved files with its
 * id, name, definition and weights, then every session of its
 * ckpt-*.nerved files with its id and state. A file that cannot be read,
 * is damaged, or no longer fits (a plugin type not loaded, a network
 * missing) is reported by name on stderr and skipped; the others load.
 * *networks and *sessions receive how many loaded. */
void srv_persist_load(srv_persist *p, const nn_registry *reg,
                      const api_limits *lim, int *networks, int *sessions);

/* Writes net's file: its definition and its current weights. Call it
 * after anything that changes a network's weights (a weights import,
 * training) and before answering, with net->weights held (read or write)
 * so they do not change meanwhile; a network no longer linked (deleted
 * meanwhile) is not written. */
int srv_persist_save_network(srv_persist *p, srv_network *net,
                             api_error *err);
/* Removes net's file and the checkpoints of its sessions. Call it with
 * net->weights held for writing, so no save of the network or of one of
 * its sessions runs at the same time. */
int srv_persist_remove_network(srv_persist *p, srv_network *net,
                               api_error *err);

/* Writes the checkpoint of session s: every node's output buffer, state
 * tensors and random stream, the step count and the batch. Call it with
 * s->lock and s->net->weights (read) held; a session no longer linked is
 * not written. *bytes (may be NULL) receives the file's size. */
int srv_persist_save_session(srv_persist *p, srv_session *s, size_t *bytes,
                             api_error *err);
/* A srv_id_keeper (srv_store.h) for the srv_persist p: writes ids.nerved,
 * which srv_persist_load reads back, so ids up to n<networks> and
 * s<sessions> are never handed out again. */
int srv_persist_save_id_marks(void *p, unsigned long long networks,
                              unsigned long long sessions, api_error *err);

/* Removes the checkpoint of session s, if any. Call with s->lock held. */
int srv_persist_remove_session(srv_persist *p, srv_session *s,
                               api_error *err);

#endif
