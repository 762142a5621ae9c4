/*
 * bench_wire.c — tensors through HTTP, binary against JSON, in the same
 * run on one started daemon:
 *   - a session /run of 4,000 steps of Input(1000) >> Activation(identity)
 *     (4 M floats in, the same 4 M out; the step itself is a copy), sent
 *     and answered in the binary tensor framing, then in JSON;
 *   - GET and PUT /params of a dense Reservoir(2000)'s 4 M weights, framed
 *     and in JSON.
 * Binary is reported in GB/s of body bytes (in + out), JSON in M floats/s
 * (in + out), both wall time, best of 3. The client is libcurl in this
 * process, counting the answer's bytes without keeping them, and sending
 * a body built beforehand; its own CPU time is printed beside each figure
 * to show it is not what limits.
 *
 * Usage: bench_wire PATH_TO_NERVED
 */
#include "api.h"
#include "api_codec.h"
#include "benchutil.h"

#include <curl/curl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <dirent.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { STEPS = 4000, WIDTH = 1000, ROUNDS = 5 };

static pid_t running;

static void stop_running(void)
{
    if (running > 0) {
        kill(running, SIGTERM);
        waitpid(running, NULL, 0);
        running = 0;
    }
}

static void start_nerved(const char *bin, int *port)
{
    int out[2];
    if (pipe(out))
        bench_die("pipe", "failed");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        execl(bin, bin, "--port", "0", "--quiet", "--threads", "2",
              "--max-body", "268435456", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    FILE *f = fdopen(out[0], "r");
    char line[256] = "";
    if (!f || !fgets(line, sizeof line, f) ||
        sscanf(line, "nerved listening on %*[^:]:%d", port) != 1)
        bench_die("nerved", "did not start");
    fclose(f);
    running = pid;
}

static double process_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The daemon's CPU seconds so far: the run time of each of its threads
 * (/proc/PID/task/TID/schedstat, in ns). On a machine shared with other
 * work the wall time measures the neighbours too; this does not. */
static double daemon_cpu(void)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)running);
    DIR *dir = opendir(path);
    double ns = 0;
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        if (e->d_name[0] == '.')
            continue;
        char stat[320];
        snprintf(stat, sizeof stat, "%s/%s/schedstat", path, e->d_name);
        FILE *f = fopen(stat, "r");
        unsigned long long run = 0;
        if (f && fscanf(f, "%llu", &run) == 1)
            ns += (double)run;
        if (f)
            fclose(f);
    }
    if (dir)
        closedir(dir);
    return ns * 1e-9;
}

static size_t received;
static char first[512]; /* the answer's first bytes, for messages */

static size_t count(char *d, size_t s, size_t n, void *arg)
{
    (void)arg;
    if (received < sizeof first - 1) {
        size_t k = s * n < sizeof first - 1 - received
                       ? s * n
                       : sizeof first - 1 - received;
        memcpy(first + received, d, k);
        first[received + k] = '\0';
    }
    received += s * n;
    return s * n;
}

typedef struct timing {
    double wall, client_cpu, daemon_cpu;
    size_t sent, got;
} timing;

/* One request; the body (len bytes) is sent as is. framed: the body's
 * JSON header is framed_len bytes; binary_out: Accept octet-stream. */
static timing request(const char *method, const char *url, const char *body,
                      size_t len, size_t framed_len, int binary_out)
{
    CURL *h = curl_easy_init();
    char length[80];
    struct curl_slist *hdr = curl_slist_append(
        NULL, framed_len ? "Content-Type: application/octet-stream"
                         : "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Expect:");
    if (framed_len) {
        snprintf(length, sizeof length,
                 "Inference-Header-Content-Length: %zu", framed_len);
        hdr = curl_slist_append(hdr, length);
    }
    if (binary_out)
        hdr = curl_slist_append(hdr, "Accept: application/octet-stream");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, count);
    /* Large reads: the client's syscalls are not what is measured. */
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
    received = 0;
    first[0] = '\0';
    timing t = {0, 0, 0, body ? len : 0, 0};
    double c0 = process_cpu(), d0 = daemon_cpu(), t0 = bench_now();
    if (curl_easy_perform(h) != CURLE_OK)
        bench_die(url, "request failed");
    t.wall = bench_now() - t0;
    t.client_cpu = process_cpu() - c0;
    t.daemon_cpu = daemon_cpu() - d0;
    t.got = received;
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 300)
        bench_die(url, first[0] ? first : "refused");
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return t;
}

static timing best(const char *method, const char *url, const char *body,
                   size_t len, size_t framed_len, int binary_out)
{
    timing b = {1e30, 0, 0, 0, 0};
    for (int r = 0; r < ROUNDS; r++) {
        timing t = request(method, url, body, len, framed_len, binary_out);
        if (t.wall < b.wall)
            b = t;
    }
    return b;
}

static void report_binary(const char *label, timing t)
{
    double bytes = (double)(t.sent + t.got);
    printf("  %s: %.2f GB/s wall, %.2f GB/s of the daemon's CPU time (%.1f "
           "MB in, %.1f MB out, %.3f s; client CPU %.0f%% of it)\n", label,
           bytes / t.wall / 1e9, bytes / t.daemon_cpu / 1e9,
           (double)t.sent / 1e6, (double)t.got / 1e6, t.wall,
           100.0 * t.client_cpu / t.wall);
}

static void report_json(const char *label, timing t, double floats)
{
    printf("  %s: %.1f M floats/s wall, %.1f M of the daemon's CPU time "
           "(%.1f MB in, %.1f MB out, %.3f s; client CPU %.0f%% of it)\n",
           label, floats / t.wall / 1e6, floats / t.daemon_cpu / 1e6,
           (double)t.sent / 1e6, (double)t.got / 1e6, t.wall,
           100.0 * t.client_cpu / t.wall);
}

/* Reservoir-like values: tanh outputs of every magnitude, some exact. */
static void fill(float *x, size_t n)
{
    uint64_t s = 88172645463325252ull;
    for (size_t k = 0; k < n; k++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        double u = (double)(s >> 11) / 9007199254740992.0;
        x[k] = (float)tanh(4.0 * (u - 0.5)) * (k % 97 == 0 ? 1e-3f : 1.0f);
    }
}

/* header then the floats little-endian (the host's order on x86 and
 * arm64; swapped on a big-endian host). Caller frees. */
static char *framed(const char *header, const float *x, size_t n, size_t *len)
{
    size_t hl = strlen(header);
    char *out = malloc(hl + 4 * n);
    if (!out)
        bench_die("client", "out of memory");
    memcpy(out, header, hl);
    unsigned char *p = (unsigned char *)out + hl;
    for (size_t k = 0; k < n; k++) {
        uint32_t bits;
        memcpy(&bits, &x[k], 4);
        for (int b = 0; b < 4; b++)
            *p++ = (unsigned char)(bits >> (8 * b));
    }
    *len = hl + 4 * n;
    return out;
}

static const char *WIDE =
    "{\"name\": \"wide\", \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1000},"
    "{\"name\": \"a\", \"type\": \"Activation\", \"function\": \"identity\"}],"
    " \"edges\": [\"x >> a\"]}";
/* 4 M weights: a dense Reservoir(2000)'s W, and its input weights. */
static const char *BIG =
    "{\"name\": \"big\", \"seed\": 1, \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},"
    "{\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": 2000,"
    " \"rc_connectivity\": 1.0, \"spectral_radius\": 0.9,"
    " \"sparse\": false}],"
    " \"edges\": [\"x >> r\"]}";

/* A GET's answer kept whole (to send back as a PUT). */
static char *kept;
static size_t kept_len, kept_cap;
static char kept_header[64];
static size_t keep(char *d, size_t s, size_t n, void *arg)
{
    (void)arg;
    if (kept_len + s * n + 1 > kept_cap) {
        kept_cap = (kept_len + s * n + 1) * 2;
        kept = realloc(kept, kept_cap);
        if (!kept)
            bench_die("client", "out of memory");
    }
    memcpy(kept + kept_len, d, s * n);
    kept_len += s * n;
    kept[kept_len] = '\0';
    return s * n;
}

static size_t keep_header(char *d, size_t s, size_t n, void *arg)
{
    (void)arg;
    const char *name = "Inference-Header-Content-Length:";
    if (s * n > strlen(name) && strncasecmp(d, name, strlen(name)) == 0)
        snprintf(kept_header, sizeof kept_header, "%.*s",
                 (int)(s * n - strlen(name)), d + strlen(name));
    return s * n;
}

static void fetch(const char *url, int binary_out)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = binary_out ? curl_slist_append(
                                              NULL, "Accept: application/octet-stream")
                                        : NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, keep_header);
    kept_len = 0;
    kept_header[0] = '\0';
    if (curl_easy_perform(h) != CURLE_OK)
        bench_die(url, "request failed");
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_wire PATH_TO_NERVED\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    atexit(stop_running);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int port;
    start_nerved(argv[1], &port);
    char base[128], url[256];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/v1/networks", port);
    request("POST", base, WIDE, strlen(WIDE), 0, 0);
    request("POST", base, BIG, strlen(BIG), 0, 0);
    snprintf(url, sizeof url, "%s/wide/sessions", base);
    request("POST", url, "{\"id\": \"s\"}", 11, 0, 0);

    size_t n = (size_t)STEPS * WIDTH;
    float *x = malloc(n * sizeof *x);
    if (!x)
        bench_die("client", "out of memory");
    fill(x, n);
    char header[256];
    snprintf(header, sizeof header, "{\"inputs\": {\"x\": {\"shape\": [1, %d, "
             "%d], \"binary_data_size\": %zu}}}", STEPS, WIDTH, n * 4);
    size_t bin_len;
    char *bin = framed(header, x, n, &bin_len);
    api_buf b = {0};
    api_buf_puts(&b, "{\"inputs\": {\"x\": [");
    int dims[2] = {STEPS, WIDTH};
    nn_shape shape = nn_shape_make(2, dims);
    api_buf_tensor(&b, x, &shape);
    api_buf_puts(&b, "]}}");
    size_t json_len;
    char *json = api_buf_finish(&b, &json_len);
    if (!json)
        bench_die("client", "out of memory");

    printf("%s, loopback, one connection, wall time, best of %d\n", argv[1],
           ROUNDS);
    printf("/run of %d steps of Input(%d) >> Activation(identity): %.0f M "
           "floats in, the same out\n", STEPS, WIDTH, (double)n / 1e6);
    snprintf(url, sizeof url, "%s/wide/sessions/s/run", base);
    timing t = best("POST", url, bin, bin_len, strlen(header), 1);
    if (t.got < n * 4)
        bench_die(url, "the binary answer is short");
    report_binary("binary in, binary out", t);
    t = best("POST", url, json, json_len, 0, 0);
    report_json("JSON in, JSON out    ", t, 2.0 * (double)n);
    t = best("POST", url, bin, bin_len, strlen(header), 0);
    printf("  binary in, JSON out : %.3f s\n", t.wall);
    t = best("POST", url, json, json_len, 0, 1);
    printf("  JSON in, binary out : %.3f s\n", t.wall);

    printf("/params of a dense Reservoir(2000): 4 M weights\n");
    snprintf(url, sizeof url, "%s/big/params", base);
    fetch(url, 1);
    size_t framed_len = strtoul(kept_header, NULL, 10);
    if (!framed_len || framed_len > kept_len)
        bench_die(url, "no Inference-Header-Content-Length");
    double weights = (double)(kept_len - framed_len) / 4;
    char *params_bin = malloc(kept_len);
    if (!params_bin)
        bench_die("client", "out of memory");
    memcpy(params_bin, kept, kept_len);
    size_t params_bin_len = kept_len;
    fetch(url, 0);
    t = best("GET", url, NULL, 0, 0, 1);
    report_binary("GET binary ", t);
    t = best("GET", url, NULL, 0, 0, 0);
    report_json("GET JSON   ", t, weights);
    t = best("PUT", url, params_bin, params_bin_len, framed_len, 0);
    report_binary("PUT binary ", t);
    t = best("PUT", url, kept, kept_len, 0, 0);
    report_json("PUT JSON   ", t, weights);

    free(params_bin);
    free(kept);
    free(json);
    free(bin);
    free(x);
    stop_running();
    curl_global_cleanup();
    return 0;
}
