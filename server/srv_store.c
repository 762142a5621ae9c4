/*
 * srv_store.c — networks and sessions, indexed by id and name (srv_dict)
 * under one lock held only for lookups and link changes.
 */
#define _GNU_SOURCE /* SRV_SHORT_LOCK */
#include "srv_store.h"
#include "api.h"
#include "srv_budget.h"
#include "srv_metrics.h"
#include "srv_persist.h"
#include "srv_sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OWNERS 4096

static pthread_mutex_t store_lock = SRV_SHORT_LOCK;
static srv_dict networks_by_id, networks_by_name;
static int n_sessions, max_networks_, max_sessions_, max_per_owner_;
static int owner_sessions[MAX_OWNERS];
static unsigned long long next_network_id, next_session_id;

void srv_store_init(int max_networks, int max_sessions, int max_per_owner)
{
    max_networks_ = max_networks;
    max_sessions_ = max_sessions;
    max_per_owner_ = max_per_owner;
}

static void network_free(srv_network *net)
{
    /* No request holds it now, so none records its series again: they go,
     * and the network label stays bounded by the networks held. */
    srv_metrics_forget(net->id);
    if (net->trainer && net->trainer_free)
        net->trainer_free(net->trainer);
    srv_sched_queue_free(net->sched);
    srv_dict_clear(&net->sessions);
    srv_dict_clear(&net->sequences);
    nn_graph_free(net->graph);
    free(net->definition);
    pthread_rwlock_destroy(&net->weights);
    free(net);
}

static void session_free(srv_session *s)
{
    nn_session_free(s->run);
    pthread_mutex_destroy(&s->lock);
    srv_budget_release(s->charged);
    srv_network_release(s->net);
    free(s);
}

void srv_network_release(srv_network *net)
{
    if (!net)
        return;
    pthread_mutex_lock(&store_lock);
    int last = --net->refs == 0;
    pthread_mutex_unlock(&store_lock);
    if (last)
        network_free(net);
}

void srv_session_release(srv_session *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&store_lock);
    s->last_used = time(NULL); /* idleness counts from the last request */
    int last = --s->refs == 0;
    pthread_mutex_unlock(&store_lock);
    if (last)
        session_free(s);
}

/* The serial of an id of the daemon's own form (prefix and digits), or 0. */
static unsigned long long id_serial(const char *id, char prefix)
{
    if (id[0] != prefix || !id[1] || strspn(id + 1, "0123456789") !=
                                         strlen(id + 1) || strlen(id) > 19)
        return 0;
    return strtoull(id + 1, NULL, 10);
}

/* Store lock held. */
static void reserve(const char *id)
{
    unsigned long long n = id_serial(id, 'n'), s = id_serial(id, 's');
    if (n > next_network_id)
        next_network_id = n;
    if (s > next_session_id)
        next_session_id = s;
}

static srv_id_keeper keeper_;
static void *keeper_user_;
/* Under store_lock: serials up to these are recorded as possibly issued. */
static unsigned long long kept_networks, kept_sessions;

void srv_store_keep_ids(srv_id_keeper keeper, void *user)
{
    pthread_mutex_lock(&store_lock);
    keeper_ = keeper;
    keeper_user_ = user;
    pthread_mutex_unlock(&store_lock);
}

/* Store lock held: makes sure id's serial is within the recorded marks,
 * recording marks a block past the highest serial so far when it is not.
 * The write under the lock happens once a block. */
static int keep(const char *id, api_error *err)
{
    unsigned long long n = id_serial(id, 'n'), s = id_serial(id, 's');
    if (!keeper_ || (n <= kept_networks && s <= kept_sessions))
        return 0;
    unsigned long long nets = next_network_id > n ? next_network_id : n;
    unsigned long long sessions = next_session_id > s ? next_session_id : s;
    nets = nets > kept_networks ? nets + SRV_ID_BLOCK : kept_networks;
    sessions = sessions > kept_sessions ? sessions + SRV_ID_BLOCK
                                        : kept_sessions;
    if (keeper_(keeper_user_, nets, sessions, err))
        return -1;
    kept_networks = nets;
    kept_sessions = sessions;
    return 0;
}

void srv_store_reserve_serials(unsigned long long networks,
                               unsigned long long sessions)
{
    pthread_mutex_lock(&store_lock);
    if (networks > next_network_id)
        next_network_id = networks;
    if (sessions > next_session_id)
        next_session_id = sessions;
    if (networks > kept_networks)
        kept_networks = networks;
    if (sessions > kept_sessions)
        kept_sessions = sessions;
    pthread_mutex_unlock(&store_lock);
}

void srv_store_reserve_id(const char *id)
{
    pthread_mutex_lock(&store_lock);
    reserve(id);
    pthread_mutex_unlock(&store_lock);
}

int srv_network_add(nn_graph *graph, char *definition, const char *name,
                    const char *id, srv_network **out, api_error *err)
{
    srv_network *net = calloc(1, sizeof *net);
    if (!net || !(net->sched = srv_sched_queue_new())) {
        free(net);
        nn_graph_free(graph);
        free(definition);
        return api_fail(err, 503, "out_of_memory", "out of memory");
    }
    net->graph = graph;
    net->definition = definition;
    pthread_rwlock_init(&net->weights, NULL);
    snprintf(net->name, sizeof net->name, "%s", name ? name : "");
    pthread_mutex_lock(&store_lock);
    int rc = 0;
    srv_network *other;
    if (name && api_is_network_id(name))
        rc = api_fail(err, 400, "bad_request", "the name '%s' has the form "
                      "of a network id (\"n\" and digits)", name);
    else if (name && (strcmp(name, ".") == 0 || strcmp(name, "..") == 0))
        rc = api_fail(err, 400, "bad_request", "the name '%s' cannot be "
                      "addressed: a URL's path resolves it away", name);
    else if ((int)networks_by_id.used >= max_networks_)
        rc = api_fail(err, 429, "limit", "the server holds %d networks, its "
                      "limit; delete one first", (int)networks_by_id.used);
    else if (name && (other = srv_dict_find(&networks_by_name, name)))
        rc = api_fail(err, 409, "conflict", "a network named '%s' exists "
                      "(id %s)", name, other->id);
    else if (id && srv_dict_find(&networks_by_id, id))
        rc = api_fail(err, 409, "conflict", "a network with id '%s' exists",
                      id);
    if (rc == 0) {
        if (id)
            snprintf(net->id, sizeof net->id, "%s", id);
        else
            snprintf(net->id, sizeof net->id, "n%llu", next_network_id + 1);
        if (keep(net->id, err)) {
            rc = -1;
        } else if (srv_dict_add(&networks_by_id, net->id, net)) {
            rc = api_fail(err, 503, "out_of_memory", "out of memory");
        } else if (net->name[0] &&
                   srv_dict_add(&networks_by_name, net->name, net)) {
            srv_dict_delete(&networks_by_id, net->id);
            rc = api_fail(err, 503, "out_of_memory", "out of memory");
        }
    }
    if (rc == 0) {
        reserve(net->id);
        net->refs = 2; /* the store's and the caller's */
        net->linked = 1;
    }
    pthread_mutex_unlock(&store_lock);
    if (rc) {
        network_free(net);
        return rc;
    }
    *out = net;
    return 0;
}

int srv_network_linked(srv_network *net)
{
    pthread_mutex_lock(&store_lock);
    int linked = net->linked;
    pthread_mutex_unlock(&store_lock);
    return linked;
}

int srv_session_linked(srv_session *s)
{
    pthread_mutex_lock(&store_lock);
    int linked = s->linked;
    pthread_mutex_unlock(&store_lock);
    return linked;
}

/* Store lock held: by id first, so a name can never hide another
 * network's id. */
static srv_network *find_network(const char *key)
{
    srv_network *net = srv_dict_find(&networks_by_id, key);
    return net ? net : srv_dict_find(&networks_by_name, key);
}

srv_network *srv_network_get(const char *key, api_error *err)
{
    pthread_mutex_lock(&store_lock);
    srv_network *net = find_network(key);
    if (net)
        net->refs++;
    pthread_mutex_unlock(&store_lock);
    if (!net)
        api_fail(err, 404, "not_found", "no network '%.64s'", key);
    return net;
}

/* Store lock held: unlinks s; returns it if its last reference went with
 * the link (to be freed outside the lock). */
static srv_session *unlink_session(srv_session *s)
{
    srv_dict_delete(&s->net->sessions, s->id);
    if (s->sequence[0] && srv_dict_find(&s->net->sequences, s->sequence) == s)
        srv_dict_delete(&s->net->sequences, s->sequence);
    s->linked = 0;
    n_sessions--;
    if (s->owner >= 0 && s->owner < MAX_OWNERS)
        owner_sessions[s->owner]--;
    return --s->refs == 0 ? s : NULL;
}

typedef struct some_sessions {
    srv_session *items[64];
    int n;
} some_sessions;

static void collect_session(void *value, void *arg)
{
    some_sessions *d = arg;
    if (d->n < 64)
        d->items[d->n++] = value;
}

int srv_network_delete(const char *key, api_error *err)
{
    pthread_mutex_lock(&store_lock);
    srv_network *net = find_network(key);
    if (!net) {
        pthread_mutex_unlock(&store_lock);
        return api_fail(err, 404, "not_found", "no network '%.64s'", key);
    }
    srv_dict_delete(&networks_by_id, net->id);
    if (net->name[0])
        srv_dict_delete(&networks_by_name, net->name);
    net->linked = 0;
    /* Its sessions go with it, 64 at a time; those no request holds are
     * freed outside the lock. */
    while (net->sessions.used) {
        some_sessions some = {{0}, 0}, dead = {{0}, 0};
        srv_dict_each(&net->sessions, collect_session, &some);
        for (int i = 0; i < some.n; i++) {
            srv_session *s = unlink_session(some.items[i]);
            if (s)
                dead.items[dead.n++] = s;
        }
        pthread_mutex_unlock(&store_lock);
        for (int i = 0; i < dead.n; i++)
            session_free(dead.items[i]);
        pthread_mutex_lock(&store_lock);
    }
    int last = --net->refs == 0;
    pthread_mutex_unlock(&store_lock);
    if (last)
        network_free(net);
    return 0;
}

typedef struct each_network {
    void (*fn)(srv_network *net, void *arg);
    void *arg;
} each_network;

static void call_network(void *value, void *arg)
{
    each_network *e = arg;
    e->fn(value, e->arg);
}

void srv_network_each(void (*fn)(srv_network *net, void *arg), void *arg)
{
    each_network e = {fn, arg};
    pthread_mutex_lock(&store_lock);
    srv_dict_each(&networks_by_id, call_network, &e);
    pthread_mutex_unlock(&store_lock);
}

int srv_network_count(void)
{
    pthread_mutex_lock(&store_lock);
    int n = (int)networks_by_id.used;
    pthread_mutex_unlock(&store_lock);
    return n;
}

/* Store lock held: why a session cannot be added now, or 0. */
static int session_refused(srv_network *net, const char *id, int owner,
                           api_error *err)
{
    if (!net->linked)
        return api_fail(err, 404, "not_found", "network '%s' was deleted",
                        net->id);
    if (n_sessions >= max_sessions_)
        return api_fail(err, 429, "limit", "the server holds %d sessions, its "
                        "limit", max_sessions_);
    if (max_per_owner_ && owner >= 0 && owner < MAX_OWNERS &&
        owner_sessions[owner] >= max_per_owner_) {
        srv_metrics_rejected(net->id, "quota");
        return api_fail(err, 429, "quota", "this API key holds %d sessions, "
                        "its quota (--max-sessions-per-key)", max_per_owner_);
    }
    if (id && srv_dict_find(&net->sessions, id))
        return api_fail(err, 409, "conflict", "network '%s' has a session "
                        "'%s' already", net->id, id);
    return 0;
}

int srv_session_add_for(srv_network *net, int batch, const char *id,
                        int owner, srv_session **out, api_error *err)
{
    pthread_mutex_lock(&store_lock);
    int rc = session_refused(net, id, owner, err);
    unsigned long long serial = id || rc ? 0 : ++next_session_id;
    pthread_mutex_unlock(&store_lock);
    if (rc)
        return rc;
    /* The session's floats count against the budget before they exist. */
    size_t floats = nn_session_float_count(net->graph, batch);
    size_t bytes = floats > (SIZE_MAX - sizeof(srv_session)) / sizeof(float)
                       ? SIZE_MAX
                       : floats * sizeof(float) + sizeof(srv_session);
    if (srv_budget_charge(bytes)) {
        int whole = bytes > srv_budget_limit();
        return api_fail(err, whole ? 413 : 503, "out_of_memory",
                        "a session of batch %d needs %.1f MiB; the server's "
                        "memory budget (--max-memory) %s", batch,
                        (double)bytes / 1048576.0,
                        whole ? "is smaller" : "has not that much left");
    }
    srv_session *s = calloc(1, sizeof *s);
    if (!s) {
        srv_budget_release(bytes);
        return api_fail(err, 503, "out_of_memory", "out of memory");
    }
    s->charged = bytes;
    s->owner = owner;
    if (id)
        snprintf(s->id, sizeof s->id, "%s", id);
    else
        snprintf(s->id, sizeof s->id, "s%llu", serial);
    nn_error e;
    /* Each session's random streams follow the network seed and its id. */
    s->run = nn_session_new(net->graph, batch,
                            nn_seed_derive(nn_graph_seed(net->graph), s->id),
                            &e);
    if (!s->run) {
        srv_budget_release(bytes);
        free(s);
        return api_fail_from_nn(err, &e, 0);
    }
    pthread_mutex_init(&s->lock, NULL);
    s->last_used = time(NULL);
    pthread_mutex_lock(&store_lock);
    rc = session_refused(net, s->id, owner, err);
    if (rc == 0)
        rc = keep(s->id, err);
    if (rc == 0 && srv_dict_add(&net->sessions, s->id, s))
        rc = api_fail(err, 503, "out_of_memory", "out of memory");
    if (rc == 0) {
        reserve(s->id);
        net->refs++;
        s->net = net;
        s->refs = 2;
        s->linked = 1;
        n_sessions++;
        if (owner >= 0 && owner < MAX_OWNERS)
            owner_sessions[owner]++;
    }
    pthread_mutex_unlock(&store_lock);
    if (rc) {
        nn_session_free(s->run);
        pthread_mutex_destroy(&s->lock);
        srv_budget_release(bytes);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int srv_session_add(srv_network *net, int batch, const char *id,
                    srv_session **out, api_error *err)
{
    return srv_session_add_for(net, batch, id, -1, out, err);
}

srv_session *srv_session_get(srv_network *net, const char *sid, api_error *err)
{
    pthread_mutex_lock(&store_lock);
    srv_session *found = srv_dict_find(&net->sessions, sid);
    if (found) {
        found->refs++;
        found->last_used = time(NULL);
    }
    pthread_mutex_unlock(&store_lock);
    if (!found)
        api_fail(err, 404, "not_found", "network '%s' has no session '%.64s'",
                 net->id, sid);
    return found;
}

int srv_session_delete(srv_network *net, const char *sid, api_error *err)
{
    srv_session *dead = NULL;
    pthread_mutex_lock(&store_lock);
    srv_session *s = srv_dict_find(&net->sessions, sid);
    if (s)
        dead = unlink_session(s);
    pthread_mutex_unlock(&store_lock);
    if (dead)
        session_free(dead);
    if (!s)
        return api_fail(err, 404, "not_found", "network '%s' has no session "
                        "'%.64s'", net->id, sid);
    return 0;
}

int srv_session_end(srv_session *s, srv_persist *persist, api_error *err)
{
    /* Under the session's lock no checkpoint of it is being written. The
     * caller holds a reference, so the unlink never frees it here. */
    pthread_mutex_lock(&s->lock);
    int rc = srv_persist_remove_session(persist, s, err);
    if (rc == 0) {
        pthread_mutex_lock(&store_lock);
        if (s->linked)
            unlink_session(s);
        pthread_mutex_unlock(&store_lock);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

typedef struct each_session {
    void (*fn)(srv_session *s, void *arg);
    void *arg;
} each_session;

static void call_session(void *value, void *arg)
{
    each_session *e = arg;
    e->fn(value, e->arg);
}

void srv_session_each(srv_network *net,
                      void (*fn)(srv_session *s, void *arg), void *arg)
{
    each_session e = {fn, arg};
    pthread_mutex_lock(&store_lock);
    srv_dict_each(&net->sessions, call_session, &e);
    pthread_mutex_unlock(&store_lock);
}

typedef struct held_sessions {
    srv_session **items;
    int n, cap;
} held_sessions;

static void hold_session(void *value, void *arg)
{
    held_sessions *h = arg;
    srv_session *s = value;
    if (h->n < h->cap) {
        s->refs++;
        h->items[h->n++] = s;
    }
}

static void hold_sessions_of(void *value, void *arg)
{
    srv_dict_each(&((srv_network *)value)->sessions, hold_session, arg);
}

int srv_session_hold_all(srv_session ***out)
{
    pthread_mutex_lock(&store_lock);
    held_sessions h = {malloc(sizeof *h.items * (size_t)(n_sessions + 1)), 0,
                       n_sessions};
    if (h.items)
        srv_dict_each(&networks_by_id, hold_sessions_of, &h);
    pthread_mutex_unlock(&store_lock);
    *out = h.items;
    return h.items ? h.n : -1;
}

int srv_session_count(void)
{
    pthread_mutex_lock(&store_lock);
    int n = n_sessions;
    pthread_mutex_unlock(&store_lock);
    return n;
}

typedef struct idle_list {
    srv_session *items[64];
    int n;
    time_t now;
    int timeout;
} idle_list;

static void collect_idle(void *value, void *arg)
{
    idle_list *l = arg;
    srv_session *s = value;
    /* refs == 1: only the store holds it, so no request is using it. */
    if (l->n < 64 && s->refs == 1 && l->now - s->last_used > l->timeout) {
        s->refs++;
        l->items[l->n++] = s;
    }
}

static void collect_idle_of(void *value, void *arg)
{
    srv_dict_each(&((srv_network *)value)->sessions, collect_idle, arg);
}

int srv_session_expire(int timeout, srv_persist *persist)
{
    idle_list idle = {{0}, 0, time(NULL), timeout};
    pthread_mutex_lock(&store_lock);
    srv_dict_each(&networks_by_id, collect_idle_of, &idle);
    pthread_mutex_unlock(&store_lock);
    int expired = 0;
    for (int i = 0; i < idle.n; i++) {
        api_error err;
        expired += srv_session_end(idle.items[i], persist, &err) == 0;
        srv_session_release(idle.items[i]);
    }
    return expired;
}

static void first_network(void *value, void *arg)
{
    srv_network **first = arg;
    if (!*first)
        *first = value;
}

void srv_store_shutdown(void)
{
    for (;;) {
        srv_network *net = NULL;
        char id[24];
        pthread_mutex_lock(&store_lock);
        srv_dict_each(&networks_by_id, first_network, &net);
        if (net)
            snprintf(id, sizeof id, "%s", net->id);
        pthread_mutex_unlock(&store_lock);
        if (!net)
            break;
        srv_network_delete(id, NULL);
    }
    srv_dict_clear(&networks_by_id);
    srv_dict_clear(&networks_by_name);
}

int srv_session_sequence(srv_network *net, const char *id, int numeric,
                         int owner, int batch,
                         int create, srv_session **out, int *created,
                         api_error *err)
{
    *created = 0;
    char key[sizeof ((srv_session *)0)->sequence];
    snprintf(key, sizeof key, "%c%.63s", numeric ? 'n' : 's', id);
    pthread_mutex_lock(&store_lock);
    srv_session *s = srv_dict_find(&net->sequences, key);
    if (s) {
        s->refs++;
        s->last_used = time(NULL);
    }
    pthread_mutex_unlock(&store_lock);
    if (s) {
        *out = s;
        return 0;
    }
    if (!create)
        return api_fail(err, 400, "unknown_sequence", "sequence %s%.64s%s "
                        "was not started (send parameters.sequence_start: "
                        "true)", numeric ? "" : "'", id, numeric ? "" : "'");
    srv_session *made;
    if (srv_session_add_for(net, batch, NULL, owner, &made, err))
        return -1;
    /* Claim the key unless a concurrent request claimed it first. */
    pthread_mutex_lock(&store_lock);
    s = srv_dict_find(&net->sequences, key);
    if (s) {
        s->refs++;
    } else {
        snprintf(made->sequence, sizeof made->sequence, "%s", key);
        if (srv_dict_add(&net->sequences, made->sequence, made) == 0)
            *created = 1;
        else
            made->sequence[0] = '\0';
    }
    pthread_mutex_unlock(&store_lock);
    if (s || !*created) {
        srv_session_delete(net, made->id, NULL);
        srv_session_release(made);
        if (!s)
            return api_fail(err, 503, "out_of_memory", "out of memory");
        *out = s;
        return 0;
    }
    *out = made;
    return 0;
}
