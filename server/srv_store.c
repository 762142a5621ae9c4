/*
 * srv_store.c — networks and sessions in two small arrays under one lock.
 * Lookups are linear: the counts are bounded by the configured limits and
 * a step's cost dwarfs a scan.
 */
#include "srv_store.h"
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;
static srv_network **networks;
static int n_networks, max_networks_;
static srv_session **sessions;
static int n_sessions, max_sessions_;
static unsigned long long next_network_id, next_session_id;

void srv_store_init(int max_networks, int max_sessions)
{
    max_networks_ = max_networks;
    max_sessions_ = max_sessions;
}

static void network_free(srv_network *net)
{
    if (net->trainer && net->trainer_free)
        net->trainer_free(net->trainer);
    nn_graph_free(net->graph);
    free(net->definition);
    pthread_rwlock_destroy(&net->weights);
    free(net);
}

static void session_free(srv_session *s)
{
    nn_session_free(s->run);
    pthread_mutex_destroy(&s->lock);
    srv_network_release(s->net);
    free(s);
}

/* Store lock held. Drops one reference; returns 1 when it was the last. */
static int drop(int *refs)
{
    return --*refs == 0;
}

void srv_network_release(srv_network *net)
{
    if (!net)
        return;
    pthread_mutex_lock(&store_lock);
    int last = drop(&net->refs);
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
    int last = drop(&s->refs);
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
    if (!net) {
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
    if (name && api_is_network_id(name)) {
        rc = api_fail(err, 400, "bad_request", "the name '%s' has the form "
                      "of a network id (\"n\" and digits)", name);
    } else if (n_networks >= max_networks_) {
        rc = api_fail(err, 429, "limit", "the server holds %d networks, its "
                      "limit; delete one first", n_networks);
    } else {
        for (int i = 0; name && i < n_networks; i++)
            if (strcmp(networks[i]->name, name) == 0)
                rc = api_fail(err, 409, "conflict", "a network named '%s' "
                              "exists (id %s)", name, networks[i]->id);
        for (int i = 0; id && rc == 0 && i < n_networks; i++)
            if (strcmp(networks[i]->id, id) == 0)
                rc = api_fail(err, 409, "conflict", "a network with id '%s' "
                              "exists", id);
    }
    if (rc == 0 && !networks &&
        !(networks = calloc((size_t)max_networks_, sizeof *networks)))
        rc = api_fail(err, 503, "out_of_memory", "out of memory");
    if (rc == 0) {
        if (id) {
            snprintf(net->id, sizeof net->id, "%s", id);
            reserve(id);
        } else {
            snprintf(net->id, sizeof net->id, "n%llu", ++next_network_id);
        }
        net->refs = 2; /* the store's and the caller's */
        net->linked = 1;
        networks[n_networks++] = net;
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

/* Store lock held. Ids first: a name never captures another network's id
 * (names of id form are refused, but data written before that may hold
 * one). */
static int find_network(const char *key)
{
    for (int i = 0; i < n_networks; i++)
        if (strcmp(networks[i]->id, key) == 0)
            return i;
    for (int i = 0; i < n_networks; i++)
        if (networks[i]->name[0] && strcmp(networks[i]->name, key) == 0)
            return i;
    return -1;
}

srv_network *srv_network_get(const char *key, api_error *err)
{
    pthread_mutex_lock(&store_lock);
    int i = find_network(key);
    srv_network *net = i >= 0 ? networks[i] : NULL;
    if (net)
        net->refs++;
    pthread_mutex_unlock(&store_lock);
    if (!net)
        api_fail(err, 404, "not_found", "no network '%.64s'", key);
    return net;
}

/* Store lock held: unlinks session i; returns it if its last reference
 * went with the link (to be freed outside the lock). */
static srv_session *unlink_session(int i)
{
    srv_session *s = sessions[i];
    sessions[i] = sessions[--n_sessions];
    s->linked = 0;
    return drop(&s->refs) ? s : NULL;
}

int srv_network_delete(const char *key, api_error *err)
{
    srv_session *dead[64];
    int n_dead = 0;
    pthread_mutex_lock(&store_lock);
    int i = find_network(key);
    if (i < 0) {
        pthread_mutex_unlock(&store_lock);
        return api_fail(err, 404, "not_found", "no network '%.64s'", key);
    }
    srv_network *net = networks[i];
    networks[i] = networks[--n_networks];
    net->linked = 0;
    for (int k = n_sessions - 1; k >= 0; k--) {
        if (sessions[k]->net != net)
            continue;
        srv_session *s = unlink_session(k);
        if (s && n_dead < 64)
            dead[n_dead++] = s;
        else if (s) { /* rare: free inside the lock rather than leak */
            pthread_mutex_unlock(&store_lock);
            session_free(s);
            pthread_mutex_lock(&store_lock);
        }
    }
    int last = drop(&net->refs);
    pthread_mutex_unlock(&store_lock);
    for (int k = 0; k < n_dead; k++)
        session_free(dead[k]);
    if (last)
        network_free(net);
    return 0;
}

void srv_network_each(void (*fn)(srv_network *net, void *arg), void *arg)
{
    pthread_mutex_lock(&store_lock);
    for (int i = 0; i < n_networks; i++)
        fn(networks[i], arg);
    pthread_mutex_unlock(&store_lock);
}

int srv_network_count(void)
{
    pthread_mutex_lock(&store_lock);
    int n = n_networks;
    pthread_mutex_unlock(&store_lock);
    return n;
}

/* Store lock held. */
static int session_id_taken(srv_network *net, const char *id)
{
    for (int i = 0; i < n_sessions; i++)
        if (sessions[i]->net == net && strcmp(sessions[i]->id, id) == 0)
            return 1;
    return 0;
}

int srv_session_add(srv_network *net, int batch, const char *id,
                    srv_session **out, api_error *err)
{
    pthread_mutex_lock(&store_lock);
    int full = n_sessions >= max_sessions_;
    unsigned long long serial = id ? 0 : ++next_session_id;
    pthread_mutex_unlock(&store_lock);
    if (full)
        return api_fail(err, 429, "limit", "the server holds %d sessions, its "
                        "limit", max_sessions_);
    srv_session *s = calloc(1, sizeof *s);
    if (!s)
        return api_fail(err, 503, "out_of_memory", "out of memory");
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
        free(s);
        return api_fail_from_nn(err, &e, 0);
    }
    pthread_mutex_init(&s->lock, NULL);
    s->last_used = time(NULL);
    int rc = 0;
    pthread_mutex_lock(&store_lock);
    if (!net->linked)
        rc = api_fail(err, 404, "not_found", "network '%s' was deleted",
                      net->id);
    else if (n_sessions >= max_sessions_)
        rc = api_fail(err, 429, "limit", "the server holds %d sessions, its "
                      "limit", max_sessions_);
    else if (session_id_taken(net, s->id))
        rc = api_fail(err, 409, "conflict", "network '%s' has a session '%s' "
                      "already", net->id, s->id);
    else if (!sessions &&
             !(sessions = calloc((size_t)max_sessions_, sizeof *sessions)))
        rc = api_fail(err, 503, "out_of_memory", "out of memory");
    if (rc == 0) {
        reserve(s->id);
        net->refs++;
        s->net = net;
        s->refs = 2;
        s->linked = 1;
        sessions[n_sessions++] = s;
    }
    pthread_mutex_unlock(&store_lock);
    if (rc) {
        nn_session_free(s->run);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

srv_session *srv_session_get(srv_network *net, const char *sid, api_error *err)
{
    srv_session *found = NULL;
    pthread_mutex_lock(&store_lock);
    for (int i = 0; i < n_sessions; i++)
        if (sessions[i]->net == net && strcmp(sessions[i]->id, sid) == 0) {
            found = sessions[i];
            found->refs++;
            found->last_used = time(NULL);
            break;
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
    int found = 0;
    pthread_mutex_lock(&store_lock);
    for (int i = 0; i < n_sessions; i++)
        if (sessions[i]->net == net && strcmp(sessions[i]->id, sid) == 0) {
            dead = unlink_session(i);
            found = 1;
            break;
        }
    pthread_mutex_unlock(&store_lock);
    if (dead)
        session_free(dead);
    if (!found)
        return api_fail(err, 404, "not_found", "network '%s' has no session "
                        "'%.64s'", net->id, sid);
    return 0;
}

void srv_session_each(srv_network *net,
                      void (*fn)(srv_session *s, void *arg), void *arg)
{
    pthread_mutex_lock(&store_lock);
    for (int i = 0; i < n_sessions; i++)
        if (sessions[i]->net == net)
            fn(sessions[i], arg);
    pthread_mutex_unlock(&store_lock);
}

int srv_session_hold_all(srv_session ***out)
{
    pthread_mutex_lock(&store_lock);
    int n = n_sessions;
    *out = malloc(sizeof **out * (size_t)(n ? n : 1));
    for (int i = 0; *out && i < n; i++) {
        sessions[i]->refs++;
        (*out)[i] = sessions[i];
    }
    pthread_mutex_unlock(&store_lock);
    return *out ? n : -1;
}

int srv_session_count(void)
{
    pthread_mutex_lock(&store_lock);
    int n = n_sessions;
    pthread_mutex_unlock(&store_lock);
    return n;
}

int srv_session_expire(int timeout)
{
    srv_session *dead[64];
    int n_dead = 0, expired = 0;
    time_t now = time(NULL);
    pthread_mutex_lock(&store_lock);
    for (int i = n_sessions - 1; i >= 0 && n_dead < 64; i--) {
        srv_session *s = sessions[i];
        /* refs == 1: only the store holds it, so no request is using it. */
        if (s->refs == 1 && now - s->last_used > timeout) {
            dead[n_dead++] = unlink_session(i);
            expired++;
        }
    }
    pthread_mutex_unlock(&store_lock);
    for (int k = 0; k < n_dead; k++)
        session_free(dead[k]);
    return expired;
}

void srv_store_shutdown(void)
{
    while (1) {
        pthread_mutex_lock(&store_lock);
        if (!n_networks) {
            pthread_mutex_unlock(&store_lock);
            break;
        }
        char id[24];
        snprintf(id, sizeof id, "%s", networks[0]->id);
        pthread_mutex_unlock(&store_lock);
        srv_network_delete(id, NULL);
    }
    free(networks);
    free(sessions);
    networks = NULL;
    sessions = NULL;
}

/* Store lock held. */
static srv_session *find_sequence(srv_network *net, const char *key)
{
    for (int i = 0; i < n_sessions; i++)
        if (sessions[i]->net == net && strcmp(sessions[i]->sequence, key) == 0)
            return sessions[i];
    return NULL;
}

int srv_session_sequence(srv_network *net, const char *key, int batch,
                         int create, srv_session **out, int *created,
                         api_error *err)
{
    *created = 0;
    pthread_mutex_lock(&store_lock);
    srv_session *s = find_sequence(net, key);
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
        return api_fail(err, 400, "unknown_sequence", "sequence '%.64s' was "
                        "not started (send parameters.sequence_start: true)",
                        key);
    srv_session *made;
    if (srv_session_add(net, batch, NULL, &made, err))
        return -1;
    /* Claim the key unless a concurrent request claimed it first. */
    pthread_mutex_lock(&store_lock);
    s = find_sequence(net, key);
    if (s) {
        s->refs++;
    } else {
        snprintf(made->sequence, sizeof made->sequence, "%s", key);
        *created = 1;
    }
    pthread_mutex_unlock(&store_lock);
    if (s) {
        srv_session_delete(net, made->id, NULL);
        srv_session_release(made);
        *out = s;
        return 0;
    }
    *out = made;
    return 0;
}
