/*
 * main.c — nerved: configuration, node types (built-in and plugins), the
 * HTTP daemon and the compute scheduler, the reaper (idle sessions, queued
 * requests past their deadline, connections past the read deadline), and a
 * graceful shutdown on SIGTERM or SIGINT: stop accepting, finish what is in
 * flight within --shutdown-timeout (what is still queued then is answered
 * 503), checkpoint the sessions (with --data-dir), free everything, or exit
 * without what is still running. SIGHUP is ignored: the log is stderr,
 * which whoever started the daemon owns.
 */
#include "srv.h"
#include "srv_blas.h"
#include "srv_auth.h"
#include "srv_http.h"
#include "srv_metrics.h"
#include "srv_fit.h"
#include "srv_persist.h"
#include "srv_budget.h"
#include "srv_plugin.h"
#include "srv_probe.h"
#include "srv_routes.h"
#include "srv_sched.h"
#include "srv_store.h"

#include <arpa/inet.h>
#include <cblas.h>
#include <dirent.h>
#include <stdlib.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* SIGTERM and SIGINT write their number here; main waits on it. A handler
 * rather than sigwait, because threads that libraries start before main
 * (OpenBLAS starts its pool in a constructor) cannot have the signals
 * blocked, and any of them may be the one the signal is delivered to. */
static int stop_pipe[2] = {-1, -1};

static void on_stop_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    ssize_t ignored = write(stop_pipe[1], &b, 1);
    (void)ignored;
}

static int install_stop_handler(void)
{
    if (pipe(stop_pipe))
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: the main thread's read must return EINTR. Under
     * ThreadSanitizer the handler only runs once the interrupted call
     * returns, and a restarted read would wait forever. */
    sa.sa_flags = 0;
    struct sigaction ignore;
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    return sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL) ||
           sigaction(SIGHUP, &ignore, NULL);
}

/* Requests libmicrohttpd has begun (their request line read) and not yet
 * completed, so the shutdown knows when nothing is left in flight. */
static atomic_int in_flight;

static void *on_request_begun(void *cls, const char *uri,
                              struct MHD_Connection *conn)
{
    (void)cls, (void)conn;
    atomic_fetch_add(&in_flight, 1);
    return srv_http_begin(uri); /* NULL: the handler's state starts empty */
}

static void on_request_completed(void *cls, struct MHD_Connection *conn,
                                 void **con_cls,
                                 enum MHD_RequestTerminationCode code)
{
    srv_http_completed(cls, conn, con_cls, code);
    atomic_fetch_sub(&in_flight, 1);
}

static double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Waits until no request is in flight or `timeout` seconds have passed;
 * returns how many are still running. */
static int drain_requests(int timeout)
{
    double deadline = seconds_now() + timeout;
    int left;
    while ((left = atomic_load(&in_flight)) > 0 && seconds_now() < deadline) {
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return left;
}

/* Writes a checkpoint of every session no request holds, so a restart
 * resumes them; a session still busy keeps its last checkpoint (if any).
 * Returns how many were written. */
static int checkpoint_sessions(srv_persist *persist)
{
    srv_session **all;
    int n = srv_session_hold_all(&all), saved = 0;
    for (int i = 0; i < n; i++) {
        srv_session *s = all[i];
        api_error err;
        if (pthread_mutex_trylock(&s->lock) != 0) {
            fprintf(stderr, "nerved: session %s of network %s is busy: not "
                            "checkpointed\n", s->id, s->net->id);
        } else {
            if (pthread_rwlock_tryrdlock(&s->net->weights) != 0) {
                fprintf(stderr, "nerved: network %s is busy: session %s not "
                                "checkpointed\n", s->net->id, s->id);
            } else {
                if (srv_persist_save_session(persist, s, NULL, &err))
                    fprintf(stderr, "nerved: session %s: %s\n", s->id,
                            err.message);
                else
                    saved++;
                pthread_rwlock_unlock(&s->net->weights);
            }
            pthread_mutex_unlock(&s->lock);
        }
        srv_session_release(s);
    }
    free(n >= 0 ? all : NULL);
    return saved;
}

static int wait_for_stop_signal(void)
{
    unsigned char b = 0;
    while (read(stop_pipe[0], &b, 1) < 0 && errno == EINTR)
        ;
    return b;
}

static pthread_mutex_t reaper_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reaper_wake = PTHREAD_COND_INITIALIZER;
static int stopping;

typedef struct reaper_args {
    const srv_config *cfg;
    srv_persist *persist;
} reaper_args;

static void *reaper(void *arg)
{
    const srv_config *cfg = ((reaper_args *)arg)->cfg;
    srv_persist *persist = ((reaper_args *)arg)->persist;
    pthread_mutex_lock(&reaper_lock);
    while (!stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&reaper_wake, &reaper_lock, &until);
        if (stopping)
            break;
        pthread_mutex_unlock(&reaper_lock);
        int expired = srv_session_expire(cfg->session_timeout, persist);
        if (expired)
            srv_metrics_expired(expired);
        srv_sched_expire();
        srv_http_sweep(cfg->read_timeout);
        pthread_mutex_lock(&reaper_lock);
    }
    pthread_mutex_unlock(&reaper_lock);
    return NULL;
}

static char *read_file(const char *path, size_t limit)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(limit + 1);
    size_t n = buf ? fread(buf, 1, limit + 1, f) : 0;
    fclose(f);
    if (!buf || n > limit) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static int preload_one(const char *path, const char *file_name,
                       const srv_config *cfg, nn_registry *reg,
                       srv_persist *persist)
{
    char *text = read_file(path, cfg->max_body);
    cJSON *def = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!def) {
        fprintf(stderr, "nerved: --preload: '%s' is not a readable JSON "
                        "document of at most %zu bytes\n", path, cfg->max_body);
        return -1;
    }
    api_error err;
    const char *name;
    nn_graph *g = NULL;
    srv_network *net = NULL;
    int rc = -1;
    if (api_graph_def_name(def, &name, &err) == 0 && persist &&
        (net = srv_network_get(name ? name : file_name, &err)) != NULL) {
        /* Restored from the data directory, weights and all: what it
         * holds is newer than the definition's initial weights. */
        srv_network_release(net);
        cJSON_Delete(def);
        return 0;
    }
    char *definition = cJSON_PrintUnformatted(def);
    if (definition && api_graph_def_name(def, &name, &err) == 0 &&
        (g = api_graph_from_json(def, reg, &cfg->limits, &err)) != NULL &&
        srv_network_add(g, definition, name ? name : file_name, NULL, &net,
                        &err) == 0) {
        rc = srv_persist_save_network(persist, net, &err);
        srv_network_release(net);
    } else if (!definition) {
        api_fail(&err, 503, "out_of_memory", "out of memory");
    } else if (!g) {
        free(definition);
    }
    if (rc)
        fprintf(stderr, "nerved: --preload: %s: %s\n", path, err.message);
    cJSON_Delete(def);
    return rc;
}

static int load_plugins(const srv_config *cfg, nn_registry *reg)
{
    char msg[1024];
    for (int i = 0; i < cfg->n_plugins; i++)
        if (srv_plugin_load(reg, cfg->plugins[i], msg, sizeof msg)) {
            fprintf(stderr, "nerved: %s\n", msg);
            return -1;
        }
    if (cfg->plugin_dir &&
        srv_plugin_load_dir(reg, cfg->plugin_dir, msg, sizeof msg) < 0) {
        fprintf(stderr, "nerved: %s\n", msg);
        return -1;
    }
    return 0;
}

/* Creates a network from each *.json graph definition in dir, in name
 * order; a definition without "name" is named after its file. */
static int preload_networks(const srv_config *cfg, nn_registry *reg,
                            srv_persist *persist)
{
    struct dirent **entries;
    int n = scandir(cfg->preload_dir, &entries, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "nerved: --preload: cannot read '%s'\n",
                cfg->preload_dir);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *file = entries[i]->d_name;
        size_t len = strlen(file);
        if (rc == 0 && len > 5 && strcmp(file + len - 5, ".json") == 0) {
            char path[4096], name[NN_NAME_MAX];
            snprintf(path, sizeof path, "%s/%s", cfg->preload_dir, file);
            snprintf(name, sizeof name, "%.*s", (int)(len - 5), file);
            rc = preload_one(path, name, cfg, reg, persist);
        }
        free(entries[i]);
    }
    free(entries);
    return rc;
}

/* PEM certificate and key, read once; libmicrohttpd wants them in memory. */
typedef struct tls_files {
    char *cert, *key;
} tls_files;

static int load_tls(const srv_config *cfg, tls_files *tls)
{
    memset(tls, 0, sizeof *tls);
    if (!cfg->tls_cert)
        return 0;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        fprintf(stderr, "nerved: --tls-cert: this libmicrohttpd was built "
                        "without TLS support\n");
        return -1;
    }
    const size_t limit = 1u << 20;
    if (!(tls->cert = read_file(cfg->tls_cert, limit))) {
        fprintf(stderr, "nerved: --tls-cert: cannot read '%s' (at most %zu "
                        "bytes)\n", cfg->tls_cert, limit);
        return -1;
    }
    if (!(tls->key = read_file(cfg->tls_key, limit))) {
        fprintf(stderr, "nerved: --tls-key: cannot read '%s' (at most %zu "
                        "bytes)\n", cfg->tls_key, limit);
        return -1;
    }
    return 0;
}

static void free_tls(tls_files *tls)
{
    free(tls->cert);
    if (tls->key) /* a secret: no copy outlives its use */
        memset(tls->key, 0, strlen(tls->key));
    free(tls->key);
}

#define CONNECTION_MEMORY (16 * 1024)

static struct MHD_Daemon *start_daemon(const srv_config *cfg,
                                       const tls_files *tls,
                                       struct sockaddr_storage *addr)
{
    memset(addr, 0, sizeof *addr);
    /* poll, not select: select() could not watch more than 1024 sockets,
     * which a crowd of slow clients would reach. Not epoll either: with a
     * thread pool, libmicrohttpd 0.9.75's MHD_quiesce_daemon removes the
     * listen socket from each worker's epoll set while the worker may be
     * removing it itself, and panics (aborts) when it loses that race:
     * SIGTERM could end in SIGABRT. poll is as fast here (measured). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
                     MHD_USE_ITC | /* quiescing at shutdown needs it */
                     MHD_ALLOW_SUSPEND_RESUME | /* requests wait for compute */
                     MHD_USE_POLL;
    struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
    if (inet_pton(AF_INET, cfg->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)cfg->port);
    } else if (inet_pton(AF_INET6, cfg->host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)cfg->port);
        flags |= MHD_USE_IPv6;
    } else {
        fprintf(stderr, "nerved: --host must be a numeric IPv4 or IPv6 "
                        "address, got '%s'\n", cfg->host);
        return NULL;
    }
    struct MHD_OptionItem tls_options[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, tls->cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, tls->key},
        {MHD_OPTION_END, 0, NULL},
    };
    if (tls->cert)
        flags |= MHD_USE_TLS;
    else
        tls_options[0].option = MHD_OPTION_END;
    return MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, srv_http_handle, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
        /* Each connection's pool is zeroed for every request it carries:
         * at the default 32 KiB that memset was 6% of a small request's
         * CPU. 16 KiB still holds headers far larger than clients send
         * (nginx's default is 8 KiB); a body streams through it. */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->per_ip_connections,
        MHD_OPTION_URI_LOG_CALLBACK, on_request_begun, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, on_request_completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, srv_http_connection, NULL,
        MHD_OPTION_ARRAY, tls_options,
        MHD_OPTION_END);
}

int main(int argc, char **argv)
{
    srv_config cfg;
    int rc = srv_config_load(&cfg, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    if (cfg.probe)
        return srv_probe(&cfg);
    if (cfg.list_routes) {
        for (int i = 0; srv_routes[i].method; i++)
            printf("%s %s\n", srv_routes[i].method, srv_routes[i].pattern);
        return 0;
    }
    if (srv_blas_start(cfg.blas_core, argv)) /* may re-execute */
        return 2;
    openblas_set_num_threads(cfg.blas_threads);
    signal(SIGPIPE, SIG_IGN);

    nn_error err;
    nn_registry *reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &err) != NN_OK) {
        fprintf(stderr, "nerved: built-in node types: %s\n", err.msg);
        nn_registry_free(reg);
        return 1;
    }
    srv_auth *auth = NULL;
    srv_persist *persist = NULL;
    tls_files tls = {NULL, NULL};
    char msg[1024];
    int scheduling = 0;
    rc = 2; /* a start refused for its configuration */
    srv_budget_init(cfg.max_memory);
    srv_store_init(cfg.max_networks, cfg.max_sessions,
                   cfg.max_sessions_per_key);
    if (load_plugins(&cfg, reg) || load_tls(&cfg, &tls))
        goto out;
    if (cfg.api_key_file && !(auth = srv_auth_load(cfg.api_key_file, msg,
                                                   sizeof msg))) {
        fprintf(stderr, "nerved: %s\n", msg);
        goto out;
    }
    if (cfg.data_dir) {
        if (!(persist = srv_persist_open(cfg.data_dir, msg, sizeof msg))) {
            fprintf(stderr, "nerved: %s\n", msg);
            goto out;
        }
        int networks, sessions;
        srv_persist_load(persist, reg, &cfg.limits, &networks, &sessions);
        /* From here on no id is handed out twice, across restarts. */
        srv_store_keep_ids(srv_persist_save_id_marks, persist);
        fprintf(stderr, "nerved: data directory %s: %d networks and %d "
                        "session checkpoints restored\n", cfg.data_dir,
                networks, sessions);
    }
    srv_http_init(&cfg, reg, persist, auth);
    if (cfg.preload_dir && preload_networks(&cfg, reg, persist))
        goto out;

    rc = 1;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    srv_sched_config sched = {
        .threads = cfg.compute_threads ? cfg.compute_threads
                                       : (int)(cores > 0 ? cores : 2),
        .max_queue = cfg.max_queue,
        .timeout = cfg.request_timeout,
        .batching = cfg.batching,
        .batch_max_rows = cfg.batch_max_rows,
        .batch_window_us = cfg.batch_window_us,
        .batch_instances = cfg.batch_instances,
        .build_threads = cfg.build_threads ? cfg.build_threads
                                           : (int)(cores > 0 ? cores : 2),
    };
    scheduling = srv_sched_start(&sched, msg, sizeof msg) == 0;
    if (!scheduling) {
        fprintf(stderr, "nerved: %s\n", msg);
        goto out;
    }
    if (install_stop_handler()) {
        fprintf(stderr, "nerved: cannot install signal handlers\n");
        goto out;
    }
    /* The daemon's own threads are created with the stop signals blocked,
     * so their system calls are not interrupted; main takes them again. */
    sigset_t stop_signals, previous;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);

    struct sockaddr_storage addr;
    struct MHD_Daemon *daemon = start_daemon(&cfg, &tls, &addr);
    if (!daemon) {
        fprintf(stderr, "nerved: cannot listen on %s:%d%s\n", cfg.host,
                cfg.port, tls.cert ? " (or the TLS certificate and key were "
                                     "refused)" : "");
        goto out;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    printf("nerved listening on %s:%u\n", cfg.host,
           info ? (unsigned)info->port : (unsigned)cfg.port);
    fflush(stdout);

    pthread_t reaper_thread;
    reaper_args reaping_args = {&cfg, persist};
    int reaping = pthread_create(&reaper_thread, NULL, reaper,
                                 &reaping_args) == 0;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);

    int sig = wait_for_stop_signal();
    fprintf(stderr, "nerved: signal %d, shutting down\n", sig);
    /* Stop accepting, then let queued and running requests finish within
     * the timeout (a container's grace period ends in a SIGKILL); what is
     * still queued then is answered 503 unrun. */
    MHD_quiesce_daemon(daemon);
    srv_fit_stop();
    double deadline = srv_now() + cfg.shutdown_timeout;
    srv_sched_drain(deadline);
    double remaining = deadline - srv_now();
    /* At least a second: the 503s the drain just gave must reach their
     * clients before an exit that leaves running requests behind. */
    int left = drain_requests(remaining > 0 ? (int)remaining + 1 : 1);
    if (persist) {
        int saved = checkpoint_sessions(persist);
        fprintf(stderr, "nerved: %d session checkpoints written\n", saved);
    }
    if (left > 0) {
        /* Their threads cannot be stopped from outside: exit without
         * them. Everything answered is already on disk. */
        fprintf(stderr, "nerved: %d requests still running after the %d s "
                        "shutdown timeout; exiting without them\n", left,
                cfg.shutdown_timeout);
        fflush(stderr);
        _exit(0);
    }
    /* Every suspended connection has been answered and resumed now, as
     * MHD_stop_daemon requires. */
    srv_sched_join();
    scheduling = 0;
    MHD_stop_daemon(daemon);
    pthread_mutex_lock(&reaper_lock);
    stopping = 1;
    pthread_cond_signal(&reaper_wake);
    pthread_mutex_unlock(&reaper_lock);
    if (reaping)
        pthread_join(reaper_thread, NULL);
    rc = 0;
out:
    if (scheduling) {
        srv_sched_drain(0);
        srv_sched_join();
    }
    srv_fit_shutdown();
    srv_store_shutdown();
    srv_persist_close(persist);
    srv_auth_free(auth);
    free_tls(&tls);
    nn_registry_free(reg);
    srv_plugins_unload_all();
    return rc;
}
