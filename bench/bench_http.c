/*
 * bench_http.c — requests per second and p50/p99 latency of a single-step
 * forward of a small network (Input(8) >> Dense(16) >> Dense(4)) over
 * keep-alive connections, next to a bare libmicrohttpd handler answering a
 * fixed body of the same size, measured the same way in the same run.
 *
 *   bench_http PATH_TO_NERVED [seconds=3] [clients=2] [server threads=2]
 *
 * Loopback only; each phase stops after `seconds` or 200,000 requests.
 *
 * Then the run route: a 1,000-unit Reservoir (as bench_reservoir.c: leak
 * 0.3, tanh, radius 1.25, 10 % connectivity, W dense and CSR) with a
 * LinearReadout, 10,000 steps in one POST .../sessions/{sid}/run; steps
 * per second including JSON both ways (the best of 3).
 */
#include "benchutil.h"

#include <curl/curl.h>
#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_REQUESTS 200000

static const char *NET =
    "{\"name\": \"bench\", \"nodes\": [{\"name\": \"x\", \"type\": \"Input\", "
    "\"shape\": 8}, {\"name\": \"h\", \"type\": \"Dense\", \"num_unit\": 16}, "
    "{\"name\": \"y\", \"type\": \"Dense\", \"num_unit\": 4}], "
    "\"edges\": [\"x >> h >> y\"]}";
static const char *STEP =
    "{\"inputs\": {\"x\": [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]]}}";
static char fixed_reply[256];

typedef struct client {
    const char *url;
    double seconds;
    double *latency; /* per request */
    long count;
    long failures;
} client;

static size_t sink(char *d, size_t s, size_t n, void *arg)
{
    (void)d, (void)arg;
    return s * n;
}

static void *run_client(void *arg)
{
    client *c = arg;
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, STEP);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    double end = bench_now() + c->seconds;
    while (c->count < MAX_REQUESTS / 2 && bench_now() < end) {
        double t0 = bench_now();
        long status = 0;
        if (curl_easy_perform(h) == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200)
            c->failures++;
        c->latency[c->count++] = bench_now() - t0;
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return NULL;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void measure(const char *label, const char *url, double seconds,
                    int clients, double *rps_out)
{
    client c[16];
    pthread_t th[16];
    double t0 = bench_now();
    for (int i = 0; i < clients; i++) {
        c[i] = (client){url, seconds, malloc(sizeof(double) * MAX_REQUESTS),
                        0, 0};
        pthread_create(&th[i], NULL, run_client, &c[i]);
    }
    long total = 0, failures = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        total += c[i].count;
        failures += c[i].failures;
    }
    double elapsed = bench_now() - t0;
    double *all = malloc(sizeof(double) * (size_t)(total ? total : 1));
    long k = 0;
    for (int i = 0; i < clients; i++) {
        memcpy(all + k, c[i].latency, sizeof(double) * (size_t)c[i].count);
        k += c[i].count;
        free(c[i].latency);
    }
    qsort(all, (size_t)total, sizeof *all, by_value);
    double rps = (double)total / elapsed;
    printf("  %-28s %9.0f req/s   p50 %7.3f ms   p99 %7.3f ms   (%ld requests, "
           "%ld failed)\n", label, rps, total ? all[total / 2] * 1e3 : 0,
           total ? all[(long)(total * 0.99)] * 1e3 : 0, total, failures);
    free(all);
    *rps_out = rps;
}

static enum MHD_Result bare(void *cls, struct MHD_Connection *conn,
                            const char *url, const char *method,
                            const char *version, const char *data,
                            size_t *size, void **state)
{
    (void)cls, (void)url, (void)method, (void)version, (void)data;
    if (!*state) { /* first call: headers only */
        *state = conn;
        return MHD_YES;
    }
    if (*size) { /* swallow the body */
        *size = 0;
        return MHD_YES;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(fixed_reply), fixed_reply, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return rc;
}

static pid_t start_nerved(const char *bin, const char *threads, int *port)
{
    int out[2];
    if (pipe(out))
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        execl(bin, bin, "--port", "0", "--quiet", "--threads", threads,
              (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    FILE *f = fdopen(out[0], "r");
    char line[256] = "";
    if (!fgets(line, sizeof line, f) ||
        sscanf(line, "nerved listening on %*[^:]:%d", port) != 1)
        bench_die("nerved", "did not start");
    fclose(f);
    return pid;
}

/* POSTs body to url; returns seconds, or dies. */
static double post_timed(const char *url, const char *body)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdr =
        curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    double t0 = bench_now();
    long status = 0;
    if (curl_easy_perform(h) != CURLE_OK)
        bench_die(url, "request failed");
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 300)
        bench_die(url, "refused");
    double dt = bench_now() - t0;
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return dt;
}

static void reservoir_run_route(int port)
{
    enum { STEPS = 10000 };
    size_t size = (size_t)STEPS * 24 + 64;
    char *body = malloc(size);
    if (!body)
        bench_die("body", "out of memory");
    size_t n = (size_t)snprintf(body, size, "{\"inputs\": {\"x\": [[");
    for (int t = 0; t < STEPS; t++)
        n += (size_t)snprintf(body + n, size - n, "%s[%.6f]", t ? "," : "",
                              sin(0.01 * t));
    snprintf(body + n, size - n, "]]}}");
    printf("Reservoir(1000), 10 %% connectivity, 10,000 steps at batch 1 "
           "through the run route (JSON in and out)\n");
    for (int sparse = 0; sparse < 2; sparse++) {
        char def[1024], url[256];
        snprintf(def, sizeof def,
                 "{\"name\": \"res%d\", \"seed\": 1, \"nodes\": ["
                 "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},"
                 "{\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": 1000,"
                 " \"rc_connectivity\": 0.1, \"spectral_radius\": 1.25,"
                 " \"bias_scaling\": 0.1, \"sparse\": %s},"
                 "{\"name\": \"o\", \"type\": \"LinearReadout\", \"num_unit\": 1}],"
                 " \"edges\": [\"x >> r >> o\"]}",
                 sparse, sparse ? "true" : "false");
        snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/networks", port);
        post_timed(url, def);
        snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/networks/res%d/sessions",
                 port, sparse);
        post_timed(url, "{\"id\": \"b\"}");
        snprintf(url, sizeof url,
                 "http://127.0.0.1:%d/v1/networks/res%d/sessions/b/run", port,
                 sparse);
        double best = 1e9;
        for (int round = 0; round < 3; round++) {
            double dt = post_timed(url, body);
            best = dt < best ? dt : best;
        }
        printf("  nerved_route_%s_steps_per_s %.0f\n", sparse ? "sparse" : "dense",
               STEPS / best);
    }
    free(body);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        bench_die("usage", "bench_http PATH_TO_NERVED [seconds] [clients] "
                           "[server threads]");
    double seconds = argc > 2 ? atof(argv[2]) : 3;
    int clients = argc > 3 ? atoi(argv[3]) : 2;
    const char *threads = argc > 4 ? argv[4] : "2";
    if (clients < 1 || clients > 16)
        bench_die("clients", "1 to 16");
    curl_global_init(CURL_GLOBAL_DEFAULT);

    int port;
    pid_t pid = start_nerved(argv[1], threads, &port);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/networks", port);
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, NET);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    if (curl_easy_perform(h) != CURLE_OK)
        bench_die("create", "failed");
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    /* The bare handler answers a body as long as nerved's reply. */
    snprintf(fixed_reply, sizeof fixed_reply, "{\"outputs\":{\"y\":[[0.1234567,"
             "-0.2345678,0.3456789,-0.4567891]]}}");

    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, bare, NULL,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)atoi(threads), MHD_OPTION_END);
    if (!d)
        bench_die("bare", "cannot start");
    int bare_port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
    char nerved_url[128], bare_url[128];
    snprintf(nerved_url, sizeof nerved_url,
             "http://127.0.0.1:%d/v1/networks/bench/forward", port);
    snprintf(bare_url, sizeof bare_url, "http://127.0.0.1:%d/", bare_port);

    printf("single-step forward over keep-alive, %d client threads, %s server "
           "threads, %.0f s each\n", clients, threads, seconds);
    double rps_nerved, rps_bare;
    measure("bare libmicrohttpd handler", bare_url, seconds, clients, &rps_bare);
    measure("nerved forward", nerved_url, seconds, clients, &rps_nerved);
    printf("  ratio nerved / bare: %.2f\n", rps_nerved / rps_bare);
    printf("  peak RSS of the client + bare server: %.1f MiB\n", bench_peak_mib());
    MHD_stop_daemon(d);
    reservoir_run_route(port);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    curl_global_cleanup();
    return 0;
}
