#define _GNU_SOURCE
#include "itest.h"
#include "testutil.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <dirent.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

static const char *binary(void)
{
    const char *b = getenv("NERVED_BIN");
    return b ? b : "nerved";
}

/* argv = [wrapper words...] binary, fixed..., args... . NERVED_WRAPPER, when
 * set, is a command line the daemon runs under (valgrind, for one run of
 * the suite), split on spaces. */
static char **make_argv(const char *const *fixed, const char *const *args)
{
    static char wrapper[1024];
    char *words[32];
    size_t w = 0;
    const char *env = getenv("NERVED_WRAPPER");
    if (env && *env) {
        snprintf(wrapper, sizeof wrapper, "%s", env);
        for (char *save = NULL, *tok = strtok_r(wrapper, " ", &save);
             tok && w < 32; tok = strtok_r(NULL, " ", &save))
            words[w++] = tok;
    }
    size_t n = 0;
    while (fixed && fixed[n])
        n++;
    size_t m = 0;
    while (args && args[m])
        m++;
    char **argv = calloc(w + 1 + n + m + 1, sizeof *argv);
    if (!argv)
        return NULL;
    size_t at = 0;
    for (size_t i = 0; i < w; i++)
        argv[at++] = words[i];
    argv[at++] = (char *)binary();
    for (size_t i = 0; i < n; i++)
        argv[at++] = (char *)fixed[i];
    for (size_t i = 0; i < m; i++)
        argv[at++] = (char *)args[i];
    return argv;
}

/* Daemons started and not yet stopped. A fatal assertion leaves its test
 * early, past the it_stop; the daemon would outlive the test binary and
 * hold its output pipe open, so ctest would wait for it until the timeout.
 * At exit they are killed. */
#define MAX_LIVE 64
static pid_t live[MAX_LIVE];
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;

static void kill_leftovers(void)
{
    pthread_mutex_lock(&live_lock);
    for (int i = 0; i < MAX_LIVE; i++) {
        /* Only a child still ours and not reaped (by a test's own waitpid):
         * a reaped pid may have been given to another process. */
        if (live[i] > 0 && waitpid(live[i], NULL, WNOHANG) == 0) {
            fprintf(stderr, "killing daemon %d, left running by a failed "
                            "test\n", (int)live[i]);
            kill(live[i], SIGKILL);
            waitpid(live[i], NULL, 0);
        }
        live[i] = 0;
    }
    pthread_mutex_unlock(&live_lock);
}

static void track(pid_t pid, pid_t replace)
{
    static int registered;
    pthread_mutex_lock(&live_lock);
    if (!registered)
        registered = atexit(kill_leftovers) == 0;
    for (int i = 0; i < MAX_LIVE; i++)
        if (live[i] == replace) {
            live[i] = pid;
            break;
        }
    pthread_mutex_unlock(&live_lock);
}

/* In a forked child: the kernel kills it when the test binary dies, by a
 * crash too, which the atexit above never sees. (Daemons are started from
 * the tests' main thread, whose end is the process's.) */
static void die_with_parent(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* it died before the line above */
        _exit(127);
}

int it_start(it_server *s, const char *const *args)
{
    return it_start_logged(s, args, NULL);
}

int it_start_tls(it_server *s, const char *const *args, const char *ca_file)
{
    if (it_start(s, args))
        return -1;
    snprintf(s->base, sizeof s->base, "https://127.0.0.1:%d", s->port);
    snprintf(s->cainfo, sizeof s->cainfo, "%s", ca_file);
    return 0;
}

void it_kill(it_server *s)
{
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    track(0, s->pid);
}

int it_start_logged(it_server *s, const char *const *args, const char *log)
{
    static const char *const fixed[] = {"--port", "0", "--quiet", NULL};
    int out[2];
    if (pipe(out))
        return -1;
    char **argv = make_argv(fixed, args);
    if (!argv) {
        close(out[0]);
        close(out[1]);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        die_with_parent(parent);
        if (log) {
            int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
            if (fd >= 0)
                dup2(fd, 2);
        }
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    free(argv);
    close(out[1]);
    if (pid < 0) {
        close(out[0]);
        return -1;
    }
    FILE *f = fdopen(out[0], "r");
    char line[256] = "";
    int port = 0;
    if (!f || !fgets(line, sizeof line, f) ||
        sscanf(line, "nerved listening on %*[^:]:%d", &port) != 1) {
        fprintf(stderr, "nerved did not start: '%s'\n", line);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f); /* the daemon logs to stderr; stdout has no more to say */
    track(pid, 0);
    s->pid = pid;
    s->port = port;
    s->cainfo[0] = '\0';
    snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", port);
    return 0;
}

int it_stop(it_server *s)
{
    int status;
    if (kill(s->pid, SIGTERM))
        return -1;
    pid_t got = waitpid(s->pid, &status, 0);
    track(0, s->pid);
    if (got != s->pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int it_run(const char *const *args, char *err_out, size_t size)
{
    int err[2];
    if (pipe(err))
        return -1;
    char **argv = make_argv(NULL, args);
    if (!argv) {
        close(err[0]);
        close(err[1]);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        die_with_parent(parent);
        dup2(err[1], 2);
        int devnull = open("/dev/null", 1);
        if (devnull >= 0)
            dup2(devnull, 1);
        close(err[0]);
        close(err[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    free(argv);
    close(err[1]);
    size_t len = 0;
    ssize_t n;
    while (len + 1 < size && (n = read(err[0], err_out + len, size - 1 - len)) > 0)
        len += (size_t)n;
    err_out[len] = '\0';
    close(err[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    it_response *r = arg;
    size_t add = size * n;
    /* Doubling: growing by each chunk copies a large body quadratically
     * often where realloc cannot grow in place (always, under ASan). */
    if (r->len + add + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + add + 1)
            cap *= 2;
        char *p = realloc(r->body, cap);
        if (!p)
            return 0;
        r->body = p;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, add);
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    it_response *r = arg;
    size_t len = size * n;
    const char *names[5] = {"Content-Type:", "Allow:", "X-Nerved-Backend:",
                            "WWW-Authenticate:", "Retry-After:"};
    char *targets[5] = {r->content_type, r->allow, r->backend,
                        r->www_authenticate, r->retry_after};
    for (int k = 0; k < 5; k++) {
        size_t nl = strlen(names[k]);
        if (len > nl && strncasecmp(data, names[k], nl) == 0) {
            size_t start = nl;
            while (start < len && data[start] == ' ')
                start++;
            size_t end = len;
            while (end > start && (data[end - 1] == '\r' || data[end - 1] == '\n'))
                end--;
            snprintf(targets[k], k == 4 ? 32 : 128, "%.*s",
                     (int)(end - start), data + start);
        }
    }
    return len;
}

static void base64(cJSON *record, const char *name, const char *data,
                   size_t len)
{
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *text = malloc(4 * (len / 3 + 1) + 1);
    if (!text)
        return;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned char)data[i] << 16;
        if (i + 1 < len)
            v |= (unsigned char)data[i + 1] << 8;
        if (i + 2 < len)
            v |= (unsigned char)data[i + 2];
        text[o++] = digits[v >> 18 & 63];
        text[o++] = digits[v >> 12 & 63];
        text[o++] = i + 1 < len ? digits[v >> 6 & 63] : '=';
        text[o++] = i + 2 < len ? digits[v & 63] : '=';
    }
    text[o] = '\0';
    cJSON_AddStringToObject(record, name, text);
    free(text);
}

/* With $NERVED_RESPONSE_LOG naming a directory, each response is appended
 * as one JSON line to DIR/PID.jsonl, for the contract check to hold every
 * answer the tests saw against the OpenAPI document. */
void it_log_raw(const char *method, const char *path, long status,
                const char *content_type, const char *allow,
                const char *retry_after, const char *www_authenticate,
                const char *body, size_t len, long header_length)
{
    const char *dir = getenv("NERVED_RESPONSE_LOG");
    if (!dir || !*dir || status == 0)
        return;
    cJSON *rec = cJSON_CreateObject();
    if (!rec)
        return;
    cJSON_AddStringToObject(rec, "method", method);
    cJSON_AddStringToObject(rec, "path", path);
    cJSON_AddNumberToObject(rec, "status", (double)status);
    cJSON_AddStringToObject(rec, "content_type", content_type ? content_type : "");
    if (allow)
        cJSON_AddStringToObject(rec, "allow", allow);
    if (retry_after)
        cJSON_AddStringToObject(rec, "retry_after", retry_after);
    if (www_authenticate)
        cJSON_AddStringToObject(rec, "www_authenticate", www_authenticate);
    if (header_length >= 0)
        cJSON_AddNumberToObject(rec, "header_length", (double)header_length);
    base64(rec, "body", body ? body : "", len);
    char *line = cJSON_PrintUnformatted(rec);
    cJSON_Delete(rec);
    if (!line)
        return;
    char file[1024];
    snprintf(file, sizeof file, "%s/%ld.jsonl", dir, (long)getpid());
    int fd = open(file, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        size_t n = strlen(line);
        line[n] = '\n'; /* the NUL goes: one write of the whole line */
        if (write(fd, line, n + 1) != (ssize_t)(n + 1))
            fprintf(stderr, "itest: could not log a response to %s\n", file);
        close(fd);
    }
    free(line);
}

int it_request(const it_server *s, const char *method, const char *path,
               const char *content_type, const char *body, size_t body_len,
               it_response *r)
{
    return it_request_with(s, method, path, content_type, body, body_len, NULL,
                           r);
}

int it_request_with(const it_server *s, const char *method, const char *path,
                    const char *content_type, const char *body,
                    size_t body_len, const char *extra, it_response *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    char url[1024], header[160];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    struct curl_slist *headers = NULL;
    if (content_type) {
        snprintf(header, sizeof header, "Content-Type: %s", content_type);
        headers = curl_slist_append(headers, header);
    }
    headers = curl_slist_append(headers, "Expect:");
    if (extra)
        headers = curl_slist_append(headers, extra);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (s->cainfo[0]) {
        curl_easy_setopt(c, CURLOPT_CAINFO, s->cainfo);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    }
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    if (!r->body)
        r->body = calloc(1, 1);
    if (rc == CURLE_OK)
        it_log_raw(method, path, r->status, r->content_type, r->allow,
                   r->retry_after, r->www_authenticate, r->body, r->len, -1);
    return rc == CURLE_OK ? 0 : -1;
}

cJSON *it_json(const it_server *s, const char *method, const char *path,
               const char *body, long *status)
{
    it_response r;
    *status = 0;
    if (it_request(s, method, path, body ? "application/json" : NULL, body,
                   body ? strlen(body) : 0, &r))
        return NULL;
    *status = r.status;
    cJSON *j = cJSON_Parse(r.body);
    it_response_free(&r);
    return j;
}

char *it_temp_dir(const char *prefix)
{
    const char *tmp = getenv("TMPDIR");
    char *dir = malloc(512);
    if (!dir)
        return NULL;
    snprintf(dir, 512, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
    if (!mkdtemp(dir)) {
        free(dir);
        return NULL;
    }
    return dir;
}

void it_remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            it_remove_tree(path);
        else
            unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

cJSON *it_call(const it_server *s, const char *method, const char *path,
               const char *body, long expect)
{
    long status;
    cJSON *j = it_json(s, method, path, body, &status);
    if (status != expect) {
        char *text = j ? cJSON_PrintUnformatted(j) : NULL;
        fprintf(stderr, "%s %s: %ld, expected %ld: %s\n", method, path, status,
                expect, text ? text : "");
        free(text);
    }
    CU_ASSERT_EQUAL(status, expect);
    return j;
}

void it_response_free(it_response *r)
{
    free(r->body);
    r->body = NULL;
    r->cap = 0;
}

double it_metric(const it_server *s, const char *series)
{
    it_response r;
    double v = -1;
    if (it_request(s, "GET", "/metrics", NULL, NULL, 0, &r) == 0) {
        const char *line = strstr(r.body, series);
        if (line)
            v = atof(line + strlen(series));
    }
    it_response_free(&r);
    return v;
}

double it_metric_settled(const it_server *s, const char *series)
{
    double v = it_metric(s, series);
    for (int i = 0, same = 0; i < 200 && same < 3; i++) {
        nanosleep(&(struct timespec){0, 50000000}, NULL);
        double now = it_metric(s, series);
        same = now == v ? same + 1 : 0;
        v = now;
    }
    return v;
}

int it_float_close(double got, double want)
{
    double scale = fabs(got) > fabs(want) ? fabs(got) : fabs(want);
    return fabs(got - want) <= 1e-5 * scale + 1e-6;
}

double it_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

long it_peak_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

int it_rss_meaningful(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return 0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    return 0;
#endif
#endif
    const char *wrapper = getenv("NERVED_WRAPPER");
    return !wrapper || !*wrapper;
}
