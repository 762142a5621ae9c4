/*
 * srv_store.h — the networks and sessions the daemon holds.
 *
 * Networks and sessions are reference counted: a lookup returns a held
 * reference the caller releases, so a DELETE while requests run only
 * unlinks; the last release frees. A session's mutex serializes the
 * requests on it; a network's rwlock lets steps read the weights in
 * parallel while an import writes them alone.
 *
 * Networks are indexed by id and by name, sessions by id and by sequence
 * key within their network (srv_dict), so no lookup scans. A session's
 * memory is charged to the daemon's budget (srv_budget.h) before it is
 * allocated.
 */
#ifndef SRV_STORE_H
#define SRV_STORE_H

#include <pthread.h>
#include <time.h>

#include "api.h"
#include "srv_dict.h"

typedef struct srv_persist srv_persist;

typedef struct srv_network {
    char id[24];
    char name[NN_NAME_MAX];      /* "" when unnamed */
    nn_graph *graph;             /* owned */
    char *definition;            /* the JSON it was created from; owned */
    pthread_rwlock_t weights;    /* read: steps; write: params import */
    int refs;                    /* guarded by the store lock */
    int linked;
    /* Trainer state kept between requests (the RLS P matrices), owned by
     * the fit module, which alone touches it, one job at a time; freed
     * with the network through trainer_free. */
    void *trainer;
    void (*trainer_free)(void *trainer);
    void *sched;                 /* its job queue (srv_sched.c) */
    srv_dict sessions;           /* by id; guarded by the store lock */
    srv_dict sequences;          /* by KServe sequence key */
} srv_network;

typedef struct srv_session {
    char id[24];
    char sequence[66];           /* KServe sequence key: 'n' and the digits
                                    of an integer id, 's' and a string id;
                                    "" for none */
    srv_network *net;            /* a held reference */
    nn_session *run;             /* owned */
    pthread_mutex_t lock;        /* one request at a time */
    time_t last_used;
    int refs;
    int linked;
    int owner;                   /* API key index of its creator, or -1 */
    size_t charged;              /* bytes of the memory budget it holds */
} srv_session;

/* Prepares the store with its limits; max_per_owner caps the sessions one
 * API key may hold (0: no cap). */
void srv_store_init(int max_networks, int max_sessions, int max_per_owner);
/* Frees everything (at shutdown, with no request in flight). */
void srv_store_shutdown(void);

/* Takes graph and definition (malloc'd JSON text it was built from, kept
 * for the data directory; may be NULL). id NULL picks one ("n1", "n2",
 * ...); a given one (a network restored from disk) must be free, and ids
 * picked later never repeat it. On success *out is a held reference to the
 * new network. Fails with 409 (name or id taken) or 429 (limit). */
int srv_network_add(nn_graph *graph, char *definition, const char *name,
                    const char *id, srv_network **out, api_error *err);
/* Whether the network is still in the store (not deleted). */
int srv_network_linked(srv_network *net);
/* By id or name; a held reference, or NULL with a 404 in err. */
srv_network *srv_network_get(const char *key, api_error *err);
void srv_network_release(srv_network *net);
/* Unlinks the network and its sessions; returns 0, or -1 with a 404. */
int srv_network_delete(const char *key, api_error *err);
/* Calls fn for each linked network, under the store lock. */
void srv_network_each(void (*fn)(srv_network *net, void *arg), void *arg);
int srv_network_count(void);

/* Creates a session of batch rows; a held reference. id NULL picks one
 * ("s1", "s2", ...); a given id must be free in the network (409), and ids
 * picked later never repeat one of that form. 429 at the limit. */
int srv_session_add(srv_network *net, int batch, const char *id,
                    srv_session **out, api_error *err);
/* srv_session_add on behalf of API key owner (-1: none), refused with 429
 * once that key holds its quota of sessions. */
int srv_session_add_for(srv_network *net, int batch, const char *id,
                        int owner, srv_session **out, api_error *err);
/* Ends a session the one way DELETE, a KServe sequence_end and idle expiry
 * all use: under its lock, its checkpoint is removed (persist may be NULL)
 * and it is unlinked; requests still holding it finish first. */
int srv_session_end(srv_session *s, srv_persist *persist, api_error *err);
srv_session *srv_session_get(srv_network *net, const char *sid,
                             api_error *err);
void srv_session_release(srv_session *s);
int srv_session_linked(srv_session *s);
int srv_session_delete(srv_network *net, const char *sid, api_error *err);
void srv_session_each(srv_network *net,
                      void (*fn)(srv_session *s, void *arg), void *arg);
int srv_session_count(void);
/* Held references to every linked session, in a malloc'd array (*out, the
 * caller frees it after releasing each); returns how many, or -1 out of
 * memory. For work that must not run under the store lock (writing
 * checkpoints at shutdown). */
int srv_session_hold_all(srv_session ***out);
/* The session of net with the client's sequence id (the KServe sequence
 * extension; numeric: the id was an integer, which names another sequence
 * than the same digits as a string), held. When none exists and create is
 * set, one of batch rows is made on behalf of API key owner (-1: none),
 * under that key's session quota (*created = 1); two racing creators get
 * the same session. Without create, a missing one is a 400 naming the id. */
int srv_session_sequence(srv_network *net, const char *id, int numeric,
                         int owner,
                         int batch,
                         int create, srv_session **out, int *created,
                         api_error *err);

/* Makes ids picked from now on ("n..." or "s...") skip past a given one,
 * so an id named by a file on disk is never handed out again. */
void srv_store_reserve_id(const char *id);
/* The same for every serial up to networks ("n<serial>") and sessions
 * ("s<serial>"): the marks a data directory recorded. */
void srv_store_reserve_serials(unsigned long long networks,
                               unsigned long long sessions);

/* Records that ids up to the marks n<networks> and s<sessions> may be
 * handed out (a data directory's srv_persist_save_id_marks); 0, or -1
 * with err filled. */
typedef int (*srv_id_keeper)(void *user, unsigned long long networks,
                             unsigned long long sessions, api_error *err);
/* From now on, before an id of the daemon's form past the recorded marks
 * is handed out or taken, keeper records marks a block further (so it
 * writes once per SRV_ID_BLOCK ids); when it fails, the network or
 * session is refused with its error. So no id is ever handed out twice,
 * across restarts and crashes, even of a network deleted or a session
 * never checkpointed. NULL: no keeping (no data directory). */
void srv_store_keep_ids(srv_id_keeper keeper, void *user);
#define SRV_ID_BLOCK 1024ULL

/* Ends (srv_session_end) sessions idle longer than timeout seconds and not
 * in use; returns how many. */
int srv_session_expire(int timeout, srv_persist *persist);

#endif
