/*
 * bench_codec.c — tensors on the wire.
 *
 * In process: floats/s of the codec's writer and reader on 2 M float32
 * against the former cJSON path (a tree of one node per number, each
 * formatted by the former %.6g..%.9g search, printed; parsed into a tree,
 * then read) in the same run.
 *
 * Against a started daemon (optional, given its path): peak memory growth
 * of the daemon (VmHWM in /proc/<pid>/status, reset before each request
 * through /proc/<pid>/clear_refs) for a /run of 2,000 steps returning a
 * Reservoir(1000)'s states and one of 20,000 (streamed as it steps), for
 * the 2,000-step run's 2,000 x 1,000 input read
 * back in (by a run, and as a ridge fit's inputs), and for GET and PUT
 * /params of 4 M weights, each against its float32 payload.
 *
 * Usage: bench_codec [PATH_TO_NERVED...]
 */
#include "api.h"
#include "api_codec.h"
#include "benchutil.h"

#include <curl/curl.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { N = 2000000 };

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

/* This thread's CPU seconds: on a machine shared with other work, wall
 * time measures the neighbours; both are printed. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double (*clock_fn)(void) = bench_now;

static double best_of(double (*fn)(void *), void *arg, int rounds)
{
    double best = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t = fn(arg);
        best = t < best ? t : best;
    }
    return best;
}

static nn_tensor *tensor;
static char *text;
static size_t text_len;

static double write_codec(void *arg)
{
    (void)arg;
    double t0 = clock_fn();
    api_buf b = {0};
    api_buf_tensor(&b, tensor->data, &tensor->shape);
    char *s = api_buf_finish(&b, NULL);
    double dt = clock_fn() - t0;
    if (!s)
        bench_die("codec", "out of memory");
    free(s);
    return dt;
}

/* The streamed path: the same text in 64 KiB chunks, never whole. */
static double write_chunked(void *arg)
{
    (void)arg;
    nn_tensor *copy = nn_tensor_new(&tensor->shape);
    memcpy(copy->data, tensor->data, N * sizeof(float));
    static char chunk[64 * 1024];
    double t0 = clock_fn();
    api_enc *e = api_enc_new();
    api_enc_tensor(e, copy);
    size_t total = 0, n;
    while ((n = api_enc_next(e, chunk, sizeof chunk)) > 0)
        total += n;
    double dt = clock_fn() - t0;
    api_enc_free(e);
    if (total != text_len)
        bench_die("chunked", "different length");
    return dt;
}

/* The former api_format_float and api_tensor_to_json, as they were. */
static void old_format_float(float v, char *buf, size_t bufsize)
{
    if (!isfinite(v)) {
        snprintf(buf, bufsize, "null");
        return;
    }
    if (v == 0.0f) {
        snprintf(buf, bufsize, signbit(v) ? "-0" : "0");
        return;
    }
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, bufsize, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v)
            return;
    }
}

static cJSON *old_nested(const float *data, const nn_shape *shape, int axis,
                         size_t *pos)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < shape->dims[axis]; i++) {
        cJSON *item;
        if (axis + 1 == shape->ndim) {
            char buf[32];
            old_format_float(data[(*pos)++], buf, sizeof buf);
            item = cJSON_CreateRaw(buf);
        } else {
            item = old_nested(data, shape, axis + 1, pos);
        }
        cJSON_AddItemToArray(arr, item);
    }
    return arr;
}

static double write_cjson(void *arg)
{
    (void)arg;
    double t0 = clock_fn();
    size_t pos = 0;
    cJSON *j = old_nested(tensor->data, &tensor->shape, 0, &pos);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    double dt = clock_fn() - t0;
    if (!s)
        bench_die("cjson", "out of memory");
    free(s);
    return dt;
}

static double read_codec(void *arg)
{
    (void)arg;
    api_limits lim = api_default_limits();
    lim.max_tensor_elems = N;
    api_json j = {text, text_len, NULL};
    nn_tensor *t;
    api_error err;
    double t0 = clock_fn();
    if (api_json_tensor(&j, 0, "x", &lim, 0, &t, &err))
        bench_die("codec read", err.message);
    double dt = clock_fn() - t0;
    if (memcmp(t->data, tensor->data, N * sizeof(float)))
        bench_die("codec read", "different values");
    nn_tensor_free(t);
    return dt;
}

/* The body as it arrives, in 64 KiB pieces, through the pushed reader. */
static double read_pushed(void *arg)
{
    (void)arg;
    api_limits lim = api_default_limits();
    lim.max_tensor_elems = N;
    nn_tensor *t;
    api_error err;
    double t0 = clock_fn();
    api_jsondoc *d = api_jsondoc_new(API_JSONDOC_BLOB_MIN, NULL, NULL);
    for (size_t at = 0; d && at < text_len; at += 65536)
        if (api_jsondoc_feed(d, text + at, text_len - at < 65536
                                               ? text_len - at : 65536))
            bench_die("pushed read", "out of memory");
    if (!d)
        bench_die("pushed read", "out of memory");
    api_jsondoc_finish(d);
    api_json j = api_jsondoc_json(d);
    if (api_json_tensor(&j, 0, "x", &lim, 0, &t, &err))
        bench_die("pushed read", err.message);
    double dt = clock_fn() - t0;
    if (memcmp(t->data, tensor->data, N * sizeof(float)))
        bench_die("pushed read", "different values");
    nn_tensor_free(t);
    api_jsondoc_free(d);
    return dt;
}

static double read_cjson(void *arg)
{
    (void)arg;
    api_limits lim = api_default_limits();
    lim.max_tensor_elems = N;
    nn_tensor *t = NULL;
    api_error err;
    double t0 = clock_fn();
    cJSON *j = cJSON_ParseWithLength(text, text_len);
    if (!j || api_tensor_from_json(j, "x", &lim, &t, &err))
        bench_die("cjson read", "refused");
    cJSON_Delete(j);
    double dt = clock_fn() - t0;
    nn_tensor_free(t);
    return dt;
}

static void in_process(void)
{
    int dims[2] = {2000, 1000};
    nn_shape shape = nn_shape_make(2, dims);
    tensor = nn_tensor_new(&shape);
    fill(tensor->data, N);
    api_buf b = {0};
    api_buf_tensor(&b, tensor->data, &tensor->shape);
    text = api_buf_finish(&b, &text_len);
    printf("2,000 x 1,000 float32 (2 M, %.1f MB of JSON), one thread, best "
           "of 3\n", (double)text_len / 1e6);
    for (int cpu = 0; cpu < 2; cpu++) {
        clock_fn = cpu ? cpu_now : bench_now;
        const char *unit = cpu ? "cpu" : "wall";
        double w = best_of(write_codec, NULL, 3);
        double wc = best_of(write_chunked, NULL, 3);
        double wo = best_of(write_cjson, NULL, 3);
        double r = best_of(read_codec, NULL, 3);
        double rp = best_of(read_pushed, NULL, 3);
        double ro = best_of(read_cjson, NULL, 3);
        printf("  %s: write_codec_mfloats_per_s %.1f\n", unit, N / w / 1e6);
        printf("  %s: write_chunked_mfloats_per_s %.1f\n", unit, N / wc / 1e6);
        printf("  %s: write_cjson_mfloats_per_s %.2f\n", unit, N / wo / 1e6);
        printf("  %s: read_codec_mfloats_per_s %.1f\n", unit, N / r / 1e6);
        printf("  %s: read_pushed_mfloats_per_s %.1f\n", unit, N / rp / 1e6);
        printf("  %s: read_cjson_mfloats_per_s %.2f\n", unit, N / ro / 1e6);
        printf("  %s: speed-up %.0fx (write), %.0fx (read)\n", unit, wo / w,
               ro / r);
    }
}

/* ------------------------------------------------------------- daemon */

/* The daemon running, stopped also when the benchmark dies. */
static pid_t running;

static void stop_running(void)
{
    if (running > 0) {
        kill(running, SIGTERM);
        waitpid(running, NULL, 0);
        running = 0;
    }
}

static pid_t start_nerved(const char *bin, int *port)
{
    int out[2];
    if (pipe(out))
        return -1;
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
    if (!fgets(line, sizeof line, f) ||
        sscanf(line, "nerved listening on %*[^:]:%d", port) != 1)
        bench_die("nerved", "did not start");
    fclose(f);
    running = pid;
    return pid;
}

/* kB of the daemon's VmRSS or VmHWM. */
static long status_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0)
            kb = atol(line + strlen(field) + 1);
    if (f)
        fclose(f);
    return kb;
}

/* Sets the peak back to the current resident size (Linux clear_refs 5). */
static void reset_peak(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/clear_refs", (int)pid);
    FILE *f = fopen(path, "w");
    if (!f || fputs("5", f) < 0)
        bench_die("clear_refs", "cannot reset the peak");
    fclose(f);
}

static size_t received;
static size_t count(char *d, size_t s, size_t n, void *arg)
{
    (void)d, (void)arg;
    received += s * n;
    return s * n;
}

static char *kept;
static size_t kept_len, kept_cap;
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

static double request(const char *method, const char *url, const char *body,
                      int keep_body)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdr =
        curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep_body ? keep : count);
    received = 0;
    kept_len = 0;
    double t0 = bench_now();
    long status = 0;
    if (curl_easy_perform(h) != CURLE_OK)
        bench_die(url, "request failed");
    double dt = bench_now() - t0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 300)
        bench_die(url, kept_len ? kept : "refused");
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return dt;
}

static void measure(pid_t pid, const char *label, const char *method,
                    const char *url, const char *body, double payload_mib,
                    int keep_body)
{
    reset_peak(pid);
    long before = status_kb(pid, "VmRSS");
    double dt = request(method, url, body, keep_body);
    long peak = status_kb(pid, "VmHWM");
    double growth = (double)(peak - before) / 1024.0;
    printf("  %s: %.2f s, %.1f MB sent, %.1f MB received, peak growth %.1f "
           "MiB = %.1fx the %.1f MiB float32 payload\n", label, dt,
           body ? (double)strlen(body) / 1e6 : 0.0,
           (double)(keep_body ? kept_len : received) / 1e6, growth,
           growth / payload_mib, payload_mib);
}

static const char *RES =
    "{\"name\": \"res\", \"seed\": 1, \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},"
    "{\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": 1000,"
    " \"rc_connectivity\": 0.1, \"spectral_radius\": 1.25}],"
    " \"edges\": [\"x >> r\"]}";
static const char *WIDE =
    "{\"name\": \"res\", \"seed\": 1, \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1000},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 1}],"
    " \"edges\": [\"x >> o\"]}";
/* 4 M weights: a dense Reservoir(2000)'s W, and its input weights. */
static const char *BIG =
    "{\"name\": \"res\", \"seed\": 1, \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},"
    "{\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": 2000,"
    " \"rc_connectivity\": 1.0, \"spectral_radius\": 0.9,"
    " \"sparse\": false}],"
    " \"edges\": [\"x >> r\"]}";

/* A fresh daemon holding network "res" from def and its session "b", so
 * the request measured is the first to need its memory. */
static pid_t fresh(const char *bin, const char *def, char *base, size_t size)
{
    int port;
    pid_t pid = start_nerved(bin, &port);
    snprintf(base, size, "http://127.0.0.1:%d/v1/networks", port);
    request("POST", base, def, 0);
    char url[256];
    snprintf(url, sizeof url, "%s/res/sessions", base);
    request("POST", url, "{\"id\": \"b\"}", 0);
    return pid;
}

static void stop(pid_t pid)
{
    (void)pid;
    stop_running();
}

/* {"inputs": {"x": (1, steps, 1)}}. */
static char *run_body(int steps)
{
    api_buf b = {0};
    api_buf_puts(&b, "{\"inputs\": {\"x\": [[");
    for (int t = 0; t < steps; t++) {
        api_buf_puts(&b, t ? ",[" : "[");
        api_buf_float(&b, (float)sin(0.01 * t));
        api_buf_puts(&b, "]");
    }
    api_buf_puts(&b, "]]}}");
    return api_buf_finish(&b, NULL);
}

static void against_daemon(const char *bin)
{
    char base[128], url[256];
    printf("\n%s (--max-body 256 MiB), peak resident growth of one request "
           "on a fresh daemon\n", bin);
    /* The run: (1, 2000, 1) in, the states (1, 2000, 1000) out; then ten
     * times as long, whose answer goes out as it steps. */
    char *run = run_body(2000);
    pid_t pid = fresh(bin, RES, base, sizeof base);
    snprintf(url, sizeof url, "%s/res/sessions/b/run", base);
    measure(pid, "/run of 2,000 steps returning Reservoir(1000) states", "POST",
            url, run, 2000.0 * 1000 * 4 / 1048576, 1);
    stop(pid);
    free(run);
    run = run_body(20000);
    pid = fresh(bin, RES, base, sizeof base);
    snprintf(url, sizeof url, "%s/res/sessions/b/run", base);
    measure(pid, "/run of 20,000 steps returning Reservoir(1000) states",
            "POST", url, run, 20000.0 * 1000 * 4 / 1048576, 0);
    stop(pid);
    free(run);

    /* The states sent back in: a (1, 2000, 1000) input. */
    char *tensor_at = strstr(kept, "\"r\":") + 4;
    char *end = strstr(tensor_at, "]]]") + 3;
    *end = '\0';
    api_buf in = {0};
    api_buf_puts(&in, "{\"inputs\": {\"x\": ");
    api_buf_puts(&in, tensor_at);
    api_buf_puts(&in, "}}");
    char *big = api_buf_finish(&in, NULL);
    pid = fresh(bin, WIDE, base, sizeof base);
    snprintf(url, sizeof url, "%s/res/sessions/b/run", base);
    measure(pid, "/run reading a (1, 2,000, 1,000) input", "POST", url, big,
            2000.0 * 1000 * 4 / 1048576, 0);
    stop(pid);
    free(big);

    /* The same states as a ridge fit's inputs, with a target a step. */
    api_buf fit = {0};
    api_buf_puts(&fit, "{\"method\": \"ridge\", \"wait\": true, "
                 "\"inputs\": {\"x\": ");
    api_buf_puts(&fit, tensor_at);
    api_buf_puts(&fit, "}, \"targets\": {\"o\": [[");
    for (int t = 0; t < 2000; t++) {
        api_buf_puts(&fit, t ? ",[" : "[");
        api_buf_float(&fit, (float)cos(0.01 * t));
        api_buf_puts(&fit, "]");
    }
    api_buf_puts(&fit, "]]}}");
    char *fit_body = api_buf_finish(&fit, NULL);
    pid = fresh(bin, WIDE, base, sizeof base);
    snprintf(url, sizeof url, "%s/res/fit", base);
    measure(pid, "ridge fit reading a (1, 2,000, 1,000) input", "POST", url,
            fit_body, 2001.0 * 1000 * 4 / 1048576, 0);
    stop(pid);
    free(fit_body);

    pid = fresh(bin, BIG, base, sizeof base);
    snprintf(url, sizeof url, "%s/res/params", base);
    measure(pid, "GET /params of 4 M weights", "GET", url, NULL,
            4.0e6 * 4 / 1048576, 1);
    stop(pid);
    char *params = strdup(kept);
    pid = fresh(bin, BIG, base, sizeof base);
    snprintf(url, sizeof url, "%s/res/params", base);
    measure(pid, "PUT /params of 4 M weights", "PUT", url, params,
            4.0e6 * 4 / 1048576, 0);
    stop(pid);
    free(params);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    atexit(stop_running);
    in_process();
    /* Several daemons (a former build beside this one) in the same run. */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (int a = 1; a < argc; a++)
        against_daemon(argv[a]);
    curl_global_cleanup();
    free(text);
    free(kept);
    nn_tensor_free(tensor);
    return 0;
}
