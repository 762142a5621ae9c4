/*
 * srv_config.c — flags and NERVED_* environment variables, one table for
 * both and for --help.
 */
#include "srv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum opt_kind { OPT_STRING, OPT_INT, OPT_SIZE, OPT_FLAG } opt_kind;

typedef struct srv_option {
    const char *flag;
    const char *env;
    opt_kind kind;
    size_t offset;      /* into srv_config, or (size_t)-1 for special ones */
    long min, max;
    const char *doc;
} srv_option;

#define AT(member) offsetof(srv_config, member)
#define SPECIAL ((size_t)-1)

static const srv_option options[] = {
    {"--host", "NERVED_HOST", OPT_STRING, AT(host), 0, 0,
     "address to listen on (default 127.0.0.1)"},
    {"--port", "NERVED_PORT", OPT_INT, AT(port), 0, 65535,
     "port (default 8080; 0 picks a free one, printed on the first line)"},
    {"--threads", "NERVED_THREADS", OPT_INT, AT(threads), 1, 256,
     "worker threads (default 4)"},
    {"--max-body", "NERVED_MAX_BODY", OPT_SIZE, AT(max_body), 64, 1L << 31,
     "largest request body in bytes (default 67108864)"},
    {"--max-networks", "NERVED_MAX_NETWORKS", OPT_INT, AT(max_networks), 1,
     1000000, "networks held at once (default 100)"},
    {"--max-sessions", "NERVED_MAX_SESSIONS", OPT_INT, AT(max_sessions), 1,
     10000000, "sessions held at once (default 1000)"},
    {"--session-timeout", "NERVED_SESSION_TIMEOUT", OPT_INT,
     AT(session_timeout), 1, 100000000,
     "seconds an idle session lives (default 3600)"},
    {"--connection-timeout", "NERVED_CONNECTION_TIMEOUT", OPT_INT,
     AT(connection_timeout), 1, 3600,
     "seconds an idle connection is kept (default 30)"},
    {"--max-connections", "NERVED_MAX_CONNECTIONS", OPT_INT,
     AT(max_connections), 1, 1000000,
     "connections open at once; more are refused (default 1024)"},
    {"--max-tensor-elems", "NERVED_MAX_TENSOR_ELEMS", OPT_SIZE,
     AT(limits.max_tensor_elems), 1, 1L << 31,
     "elements per tensor in a request (default 16777216)"},
    {"--max-nodes", "NERVED_MAX_NODES", OPT_INT, AT(limits.max_nodes), 1,
     1000000, "nodes per graph (default 1000)"},
    {"--max-steps", "NERVED_MAX_STEPS", OPT_INT, AT(limits.max_steps), 1,
     100000000, "time steps per run request (default 100000)"},
    {"--max-batch", "NERVED_MAX_BATCH", OPT_INT, AT(limits.max_batch), 1,
     1000000, "batch size of a session or request (default 4096)"},
    {"--max-params", "NERVED_MAX_PARAMS", OPT_SIZE, AT(limits.max_params), 1,
     1L << 40, "weight elements per network (default 67108864: 256 MiB)"},
    {"--max-session-floats", "NERVED_MAX_SESSION_FLOATS", OPT_SIZE,
     AT(limits.max_session_floats), 1, 1L << 40,
     "floats of outputs, state and scratch per session, and per training "
     "tape (default 67108864: 256 MiB)"},
    {"--blas-threads", "NERVED_BLAS_THREADS", OPT_INT, AT(blas_threads), 1, 256,
     "OpenBLAS threads per request (default 1: requests already run in "
     "parallel)"},
    {"--compute-threads", "NERVED_COMPUTE_THREADS", OPT_INT,
     AT(compute_threads), 0, 256,
     "threads that compute requests (default 0: one per core)"},
    {"--build-threads", "NERVED_BUILD_THREADS", OPT_INT, AT(build_threads), 0,
     256, "threads that build networks, apart from the compute threads so "
     "that a long build holds up no other network's requests (default 0: "
     "one per core)"},
    {"--max-queue", "NERVED_MAX_QUEUE", OPT_INT, AT(max_queue), 1, 1000000,
     "requests queued per network; more are answered 503 (default 1024)"},
    {"--request-timeout", "NERVED_REQUEST_TIMEOUT", OPT_INT,
     AT(request_timeout), 1, 86400,
     "seconds a request may wait in its queue before it is answered 504 "
     "unrun (default 60)"},
    {"--batching", "NERVED_BATCHING", OPT_FLAG, AT(batching), 0, 1,
     "run queued steps of different sessions as one batched step (default "
     "on; --batching=0 turns it off)"},
    {"--batch-max-rows", "NERVED_BATCH_MAX_ROWS", OPT_INT, AT(batch_max_rows),
     1, 1024, "rows in one batched step (default 256)"},
    {"--batch-window-us", "NERVED_BATCH_WINDOW_US", OPT_INT,
     AT(batch_window_us), 0, 1000000,
     "microseconds a compute thread may wait for more steps to batch "
     "(default 100)"},
    {"--batch-instances", "NERVED_BATCH_INSTANCES", OPT_INT,
     AT(batch_instances), 0, 256,
     "batched steps of one network that may run at once; steps that wait "
     "meanwhile join the next batch (default 0: one per compute thread)"},
    {"--max-memory", "NERVED_MAX_MEMORY", OPT_SIZE, AT(max_memory), 0,
     1L << 50, "bytes the daemon may hold for sessions, bodies and replies "
     "(default 0: half the machine's or the cgroup's memory)"},
    {"--max-output-floats", "NERVED_MAX_OUTPUT_FLOATS", OPT_SIZE,
     AT(max_output_floats), 1, 1L << 40,
     "floats in one reply; more is refused with 413 (default 67108864)"},
    {"--per-ip-connections", "NERVED_PER_IP_CONNECTIONS", OPT_INT,
     AT(per_ip_connections), 0, 1000000,
     "connections open at once from one address (default 256; 0: no "
     "limit)"},
    {"--read-timeout", "NERVED_READ_TIMEOUT", OPT_INT, AT(read_timeout), 1,
     3600, "seconds a client has to send a whole request, however slowly "
     "it trickles (default 60)"},
    {"--max-sessions-per-key", "NERVED_MAX_SESSIONS_PER_KEY", OPT_INT,
     AT(max_sessions_per_key), 0, 10000000,
     "sessions one API key may hold (default 0: no quota)"},
    {"--max-fits-per-key", "NERVED_MAX_FITS_PER_KEY", OPT_INT,
     AT(max_fits_per_key), 0, 1000000,
     "training jobs one API key may run at once (default 0: no quota)"},
    {"--blas-core", "NERVED_BLAS_CORE", OPT_STRING, AT(blas_core), 0, 0,
     "OpenBLAS kernels: auto (default: re-execute once with the best core "
     "the CPU allows when OpenBLAS picked a generic one, self-tested), keep "
     "(OpenBLAS's own choice) or a core name such as Haswell or SkylakeX"},
    {"--plugin", "NERVED_PLUGINS", OPT_STRING, SPECIAL, 0, 0,
     "load a node-type plugin (repeatable; the variable takes a "
     "colon-separated list)"},
    {"--plugin-dir", "NERVED_PLUGIN_DIR", OPT_STRING, AT(plugin_dir), 0, 0,
     "load every *.so in this directory"},
    {"--preload", "NERVED_PRELOAD", OPT_STRING, AT(preload_dir), 0, 0,
     "create the networks defined by every *.json in this directory at "
     "start (so every replica serves the same ones)"},
    {"--data-dir", "NERVED_DATA_DIR", OPT_STRING, AT(data_dir), 0, 0,
     "keep every network and session checkpoint here, written before "
     "answering, and load them at start"},
    {"--api-key-file", "NERVED_API_KEY_FILE", OPT_STRING, AT(api_key_file),
     0, 0, "require 'Authorization: Bearer KEY' on every route but the "
     "health checks; one key per line"},
    {"--tls-cert", "NERVED_TLS_CERT", OPT_STRING, AT(tls_cert), 0, 0,
     "serve HTTPS with this PEM certificate (with --tls-key)"},
    {"--tls-key", "NERVED_TLS_KEY", OPT_STRING, AT(tls_key), 0, 0,
     "the PEM private key of --tls-cert"},
    {"--shutdown-timeout", "NERVED_SHUTDOWN_TIMEOUT", OPT_INT,
     AT(shutdown_timeout), 0, 3600,
     "seconds SIGTERM waits for requests in flight before the daemon "
     "checkpoints its sessions and exits without them (default 25)"},
    {"--quiet", "NERVED_QUIET", OPT_FLAG, AT(quiet), 0, 1,
     "no access log (a variable takes 1/0, true/false, yes/no, on/off)"},
    {"--probe", NULL, OPT_FLAG, AT(probe), 0, 1,
     "check /healthz of the daemon these options describe and exit 0 "
     "(healthy) or 1: the container health check"},
    {"--list-routes", NULL, OPT_FLAG, AT(list_routes), 0, 1,
     "print the route table and exit"},
    {"--version", NULL, OPT_FLAG, SPECIAL, 0, 0, "print the version and "
     "exit"},
    {"--help", NULL, OPT_FLAG, SPECIAL, 0, 0, "this help"},
};
#define N_OPTIONS (sizeof options / sizeof *options)

static void usage(FILE *out)
{
    fprintf(out, "usage: nerved [options]\n\nnerved serves neural node graphs "
                 "over HTTP.\n\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const srv_option *o = &options[i];
        char left[64];
        snprintf(left, sizeof left, "%s%s", o->flag,
                 o->kind == OPT_FLAG ? "" : " VALUE");
        fprintf(out, "  %-26s %s", left, o->doc);
        if (o->env)
            fprintf(out, " [%s]", o->env);
        fprintf(out, "\n");
    }
}

/* 1, 0, or -1 for a word that is neither: NERVED_QUIET=false must not mean
 * "quiet". */
static int parse_boolean(const char *value)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        if (strcasecmp(value, yes[i]) == 0)
            return 1;
        if (strcasecmp(value, no[i]) == 0)
            return 0;
    }
    return -1;
}

static int add_plugin(srv_config *cfg, const char *path)
{
    if (cfg->n_plugins == SRV_MAX_PLUGINS) {
        fprintf(stderr, "nerved: at most %d plugins\n", SRV_MAX_PLUGINS);
        return -1;
    }
    cfg->plugins[cfg->n_plugins++] = path;
    return 0;
}

static int set_option(srv_config *cfg, const srv_option *o, const char *value,
                      const char *source)
{
    char *base = (char *)cfg;
    if (o->offset == SPECIAL) { /* --plugin: a list in the environment */
        if (strcmp(source, "environment") != 0)
            return add_plugin(cfg, value);
        static char env_copy[4096];
        snprintf(env_copy, sizeof env_copy, "%s", value);
        for (char *save = NULL, *p = strtok_r(env_copy, ":", &save); p;
             p = strtok_r(NULL, ":", &save))
            if (add_plugin(cfg, p))
                return -1;
        return 0;
    }
    switch (o->kind) {
    case OPT_STRING:
        if (o->offset == AT(host)) {
            if (strlen(value) >= sizeof cfg->host) {
                fprintf(stderr, "nerved: %s: too long\n", o->flag);
                return -1;
            }
            snprintf(cfg->host, sizeof cfg->host, "%s", value);
        } else {
            *(const char **)(base + o->offset) = value;
        }
        return 0;
    case OPT_FLAG: {
        int on = parse_boolean(value);
        if (on < 0) {
            fprintf(stderr, "nerved: %s (from the %s) must be 1/0, true/false, "
                            "yes/no or on/off, got '%s'\n",
                    strcmp(source, "environment") == 0 && o->env ? o->env
                                                                 : o->flag,
                    source, value);
            return -1;
        }
        *(int *)(base + o->offset) = on;
        return 0;
    }
    case OPT_INT:
    case OPT_SIZE: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end || v < o->min || v > o->max) {
            fprintf(stderr, "nerved: %s (from the %s) must be an integer from "
                            "%ld to %ld, got '%s'\n", o->flag, source, o->min,
                    o->max, value);
            return -1;
        }
        if (o->kind == OPT_INT)
            *(int *)(base + o->offset) = (int)v;
        else
            *(size_t *)(base + o->offset) = (size_t)v;
        return 0;
    }
    }
    return -1;
}

int srv_config_load(srv_config *cfg, int argc, char **argv)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->host, sizeof cfg->host, "127.0.0.1");
    cfg->port = 8080;
    cfg->threads = 4;
    cfg->max_body = 64u << 20;
    cfg->max_networks = 100;
    cfg->max_sessions = 1000;
    cfg->session_timeout = 3600;
    cfg->connection_timeout = 30;
    cfg->max_connections = 1024;
    cfg->blas_threads = 1;
    cfg->shutdown_timeout = 25;
    cfg->limits = api_default_limits();
    cfg->max_queue = 1024;
    cfg->request_timeout = 60;
    cfg->batching = 1;
    cfg->batch_max_rows = 256;
    cfg->batch_window_us = 100;
    cfg->max_output_floats = 64u << 20;
    cfg->per_ip_connections = 256;
    cfg->read_timeout = 60;

    for (size_t i = 0; i < N_OPTIONS; i++) {
        const char *v = options[i].env ? getenv(options[i].env) : NULL;
        if (v && set_option(cfg, &options[i], v, "environment"))
            return -1;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a], *value = NULL;
        const srv_option *o = NULL;
        size_t flag_len = strcspn(arg, "=");
        for (size_t i = 0; i < N_OPTIONS; i++)
            if (strlen(options[i].flag) == flag_len &&
                strncmp(options[i].flag, arg, flag_len) == 0)
                o = &options[i];
        if (!o) {
            fprintf(stderr, "nerved: unknown option '%s' (see --help)\n", arg);
            return -1;
        }
        if (strcmp(o->flag, "--help") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(o->flag, "--version") == 0) {
            printf("nerved %s\n", NERVED_VERSION);
            return 1;
        }
        if (arg[flag_len] == '=')
            value = arg + flag_len + 1;
        else if (o->kind == OPT_FLAG)
            value = "1";
        else if (a + 1 < argc)
            value = argv[++a];
        else {
            fprintf(stderr, "nerved: %s needs a value\n", o->flag);
            return -1;
        }
        if (set_option(cfg, o, value, "command line"))
            return -1;
    }
    if (!cfg->tls_cert != !cfg->tls_key) {
        fprintf(stderr, "nerved: --tls-cert and --tls-key go together\n");
        return -1;
    }
    return 0;
}
