/*
 * test_serving.c — the serving core against the real daemon: health checks
 * answer while every compute thread is busy, every request under overload
 * gets an answer (200, 503 or 504) and a refused one changes nothing, a
 * slowloris from one address locks nobody else out, the memory budget
 * refuses before allocating, and steps batched across sessions equal the
 * same steps taken one at a time.
 */
#include "itest.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const cJSON *get(const cJSON *j, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(j, key);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Under valgrind (NERVED_WRAPPER) the daemon runs tens of times slower:
 * work is made smaller and waits longer. */
static int slow(void)
{
    const char *w = getenv("NERVED_WRAPPER");
    return w && *w;
}

/* The tests of timing under load mean nothing where the daemon's threads
 * take turns (valgrind runs one at a time): there they only say so. */
static int timing_meaningless(const char *test)
{
    if (!slow())
        return 0;
    fprintf(stderr, "%s: skipped under NERVED_WRAPPER, which serializes the "
            "daemon's threads\n", test);
    return 1;
}

/* {"inputs": {"x": (1, steps, 1)}} of a constant input. */
static char *run_body(int steps)
{
    size_t cap = (size_t)steps * 8 + 64;
    char *b = malloc(cap);
    size_t n = (size_t)snprintf(b, cap, "{\"inputs\": {\"x\": [[");
    for (int t = 0; t < steps; t++)
        n += (size_t)snprintf(b + n, cap - n, "%s[0.5]", t ? "," : "");
    snprintf(b + n, cap - n, "]]}}");
    return b;
}

typedef struct runner {
    const it_server *server;
    char path[128];
    char *body;
    long status;
    atomic_int done;
    const char *method; /* NULL: POST */
} runner;

static void *post_in_background(void *arg)
{
    runner *r = arg;
    it_response resp;
    if (it_request(r->server, r->method ? r->method : "POST", r->path,
                   r->body ? "application/json" : NULL, r->body,
                   r->body ? strlen(r->body) : 0, &resp) == 0)
        r->status = resp.status;
    it_response_free(&resp);
    atomic_store(&r->done, 1);
    return NULL;
}

static const char *LONG_NET =
    "{\"name\": \"long\", \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},"
    "{\"name\": \"r\", \"type\": \"VanillaRNN\", \"num_unit\": 400,"
    " \"activation\": \"tanh\"},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 1}],"
    "\"edges\": [\"x >> r >> o\"]}";

/* What keeps a compute thread busy for seconds: 30,000 steps of this take
 * about 9 s on a 2-core VM (AVX-512), well inside a client's 30 s. */
static const char *HOG_NET =
    "{\"name\": \"hog\", \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},"
    "{\"name\": \"r\", \"type\": \"VanillaRNN\", \"num_unit\": 1500,"
    " \"activation\": \"tanh\"},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 1}],"
    "\"edges\": [\"x >> r >> o\"]}";

/* ------------------------------------------------- health under load */

static void test_health_while_busy(void)
{
    if (timing_meaningless("test_health_while_busy"))
        return;
    const char *const args[] = {"--compute-threads", "2", NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    cJSON_Delete(it_call(&s, "POST", "/v1/networks", LONG_NET, 201));
    runner runs[2];
    pthread_t th[2];
    char *body = run_body(slow() ? 2000 : 60000);
    for (int i = 0; i < 2; i++) {
        char sid[32];
        snprintf(sid, sizeof sid, "{\"id\": \"busy%d\"}", i);
        cJSON_Delete(it_call(&s, "POST", "/v1/networks/long/sessions", sid,
                             201));
        memset(&runs[i], 0, sizeof runs[i]);
        runs[i].server = &s;
        runs[i].body = body;
        snprintf(runs[i].path, sizeof runs[i].path,
                 "/v1/networks/long/sessions/busy%d/run", i);
        pthread_create(&th[i], NULL, post_in_background, &runs[i]);
    }
    sleep_ms(slow() ? 2000 : 150);
    /* Both compute threads are running a long run now. */
    static const char *const probes[] = {"/healthz", "/readyz", "/metrics",
                                         "/v2/health/live", "/v2/health/ready"};
    double worst = 0;
    for (int k = 0; k < 20; k++) {
        double t0 = it_now();
        it_response r;
        CU_ASSERT_EQUAL(it_request(&s, "GET", probes[k % 5], NULL, NULL, 0, &r),
                        0);
        CU_ASSERT_EQUAL(r.status, 200);
        it_response_free(&r);
        double took = it_now() - t0;
        if (took > worst)
            worst = took;
        sleep_ms(10);
    }
    int still_running = !atomic_load(&runs[0].done) &&
                        !atomic_load(&runs[1].done);
    fprintf(stderr, "health probes while busy: worst %.1f ms (runs still "
            "going: %d)\n", worst * 1e3, still_running);
    /* The probes proved something only if the runs were still going. */
    CU_ASSERT(still_running);
    CU_ASSERT(worst < (slow() ? 2.0 : 0.1));
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(runs[i].status, 200);
    }
    free(body);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

/* CPU seconds (user + system) of each of the process's threads: up to
 * max into secs[], how many there are. */
static int thread_cpu_seconds(pid_t pid, double *secs, int max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    int n = 0;
    for (struct dirent *e; dir && n < max && (e = readdir(dir));) {
        if (e->d_name[0] == '.')
            continue;
        char stat[128], buf[1024];
        snprintf(stat, sizeof stat, "%s/%.20s/stat", path, e->d_name);
        FILE *f = fopen(stat, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        /* Fields 14 and 15 follow the name, which may hold spaces. */
        char *p = strrchr(buf, ')');
        unsigned long ut, st;
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                        "%lu %lu", &ut, &st) == 2)
            secs[n++] = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    }
    if (dir)
        closedir(dir);
    return n;
}

/* A step queued behind its session's long run waits asleep: the idle
 * compute thread must not spin on the blocked queue (it once did, taking
 * a whole core and the scheduler's lock from everyone who submits). */
static void test_blocked_request_waits_idle(void)
{
    if (timing_meaningless("test_blocked_request_waits_idle"))
        return;
    const char *const args[] = {"--compute-threads", "2", NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    cJSON_Delete(it_call(&s, "POST", "/v1/networks", HOG_NET, 201));
    cJSON_Delete(it_call(&s, "POST", "/v1/networks/hog/sessions",
                         "{\"id\": \"b\"}", 201));
    runner runs[2];
    pthread_t th[2];
    char *body = run_body(30000);
    const char *step = "{\"inputs\": {\"x\": [[0.5]]}}";
    for (int i = 0; i < 2; i++) {
        memset(&runs[i], 0, sizeof runs[i]);
        runs[i].server = &s;
        runs[i].body = i == 0 ? body : (char *)step;
        snprintf(runs[i].path, sizeof runs[i].path,
                 "/v1/networks/hog/sessions/b/%s", i == 0 ? "run" : "forward");
        pthread_create(&th[i], NULL, post_in_background, &runs[i]);
        sleep_ms(150);
    }
    /* One thread runs, the step waits behind it, the other thread idles.
     * Threads are compared with each other, not with the clock, so that a
     * loaded machine cannot hide a spinning one. The set of threads does
     * not change meanwhile: they are all started with the daemon. */
    enum { MAX_THREADS = 64 };
    double before[MAX_THREADS], after[MAX_THREADS];
    int n0 = thread_cpu_seconds(s.pid, before, MAX_THREADS);
    sleep_ms(1500);
    int n1 = thread_cpu_seconds(s.pid, after, MAX_THREADS);
    int still_running = !atomic_load(&runs[0].done);
    CU_ASSERT_EQUAL(n0, n1);
    double first = 0, second = 0;
    for (int i = 0; i < n0 && n0 == n1; i++) {
        double used = after[i] - before[i];
        if (used > first) {
            second = first;
            first = used;
        } else if (used > second) {
            second = used;
        }
    }
    fprintf(stderr, "while a step waits behind a run: busiest thread %.2f s, "
            "next %.2f s (run still going: %d)\n", first, second,
            still_running);
    CU_ASSERT(still_running);
    CU_ASSERT(first > 0.1);
    CU_ASSERT(second < 0.25 * first);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(runs[i].status, 200);
    }
    free(body);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

/* Polls /metrics until it has the line `line` (up to secs seconds): what
 * the daemon says it holds, instead of a guess of how long receiving a
 * body takes (a large one is read as it arrives, slower under the
 * sanitizers). */
static int metrics_show(const it_server *s, const char *line, double secs)
{
    char want[256];
    snprintf(want, sizeof want, "\n%s\n", line);
    for (double until = it_now() + secs; it_now() < until; sleep_ms(20)) {
        it_response r;
        if (it_request(s, "GET", "/metrics", NULL, NULL, 0, &r) != 0)
            continue;
        int found = r.body && strstr(r.body, want) != NULL;
        it_response_free(&r);
        if (found)
            return 1;
    }
    fprintf(stderr, "metrics never showed '%s'\n", line);
    return 0;
}

/* ------------------------------------------------- overload answered */

#define OVERLOAD_CLIENTS 12

static void test_overload_is_answered(void)
{
    if (timing_meaningless("test_overload_is_answered"))
        return;
    const char *const args[] = {"--compute-threads", "1", "--max-queue", "3",
                                "--request-timeout", "1", NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    cJSON_Delete(it_call(&s, "POST", "/v1/networks", LONG_NET, 201));
    cJSON_Delete(it_call(&s, "POST", "/v1/networks", HOG_NET, 201));
    cJSON_Delete(it_call(&s, "POST", "/v1/networks/hog/sessions",
                         "{\"id\": \"h\"}", 201));
    /* Sessions first: creating one is queued work too. */
    for (int i = 0; i < OVERLOAD_CLIENTS + 1; i++) {
        char sid[32];
        snprintf(sid, sizeof sid, "{\"id\": \"q%d\"}", i);
        cJSON_Delete(it_call(&s, "POST", "/v1/networks/long/sessions", sid,
                             201));
    }
    runner hog = {&s, "/v1/networks/hog/sessions/h/run",
                  run_body(slow() ? 1500 : 30000), 0, 0, NULL};
    pthread_t hog_thread;
    pthread_create(&hog_thread, NULL, post_in_background, &hog);
    CU_ASSERT(metrics_show(&s, "nerved_queue_running{network=\"n2\"} 1",
                           30));

    runner steps[OVERLOAD_CLIENTS];
    pthread_t th[OVERLOAD_CLIENTS];
    char step[] = "{\"inputs\": {\"x\": [[0.25]]}}";
    for (int i = 0; i < OVERLOAD_CLIENTS; i++) {
        memset(&steps[i], 0, sizeof steps[i]);
        steps[i].server = &s;
        steps[i].body = step;
        snprintf(steps[i].path, sizeof steps[i].path,
                 "/v1/networks/long/sessions/q%d/forward", i + 1);
        pthread_create(&th[i], NULL, post_in_background, &steps[i]);
    }
    int ok = 0, full = 0, late = 0;
    for (int i = 0; i < OVERLOAD_CLIENTS; i++) {
        pthread_join(th[i], NULL);
        long st = steps[i].status;
        ok += st == 200;
        full += st == 503;
        late += st == 504;
        if (st != 200 && st != 503 && st != 504)
            fprintf(stderr, "overload: client %d got %ld\n", i, st);
        CU_ASSERT(st == 200 || st == 503 || st == 504);
    }
    pthread_join(hog_thread, NULL);
    CU_ASSERT_EQUAL(hog.status, 200);
    /* A refused step changed nothing; an answered one moved exactly one
     * step. */
    for (int i = 0; i < OVERLOAD_CLIENTS; i++) {
        char path[96];
        snprintf(path, sizeof path, "/v1/networks/long/sessions/q%d", i + 1);
        cJSON *j = it_call(&s, "GET", path, NULL, 200);
        CU_ASSERT_EQUAL(cJSON_GetNumberValue(get(j, "steps")),
                        steps[i].status == 200);
        cJSON_Delete(j);
    }
    fprintf(stderr, "overload: %d ran, %d queue full, %d past deadline\n", ok,
            full, late);
    /* The queue holds 3; the rest were refused at once, and the queued
     * ones waited past their 1 s deadline behind the long run. */
    CU_ASSERT(full >= OVERLOAD_CLIENTS - 3);
    CU_ASSERT(late >= 1);

    /* Refusals say when to come back, and are counted by reason. */
    it_response r;
    CU_ASSERT_EQUAL_FATAL(it_request(&s, "GET", "/metrics", NULL, NULL, 0, &r),
                          0);
    char want[128];
    snprintf(want, sizeof want, "nerved_rejected_total{network=\"n1\","
             "reason=\"queue_full\"} %d", full);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, want));
    it_response_free(&r);
    free(hog.body);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

static void test_refusals_carry_retry_after(void)
{
    if (timing_meaningless("test_refusals_carry_retry_after"))
        return;
    const char *const args[] = {"--compute-threads", "1", "--max-queue", "1",
                                NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    cJSON_Delete(it_call(&s, "POST", "/v1/networks", LONG_NET, 201));
    cJSON_Delete(it_call(&s, "POST", "/v1/networks/long/sessions",
                         "{\"id\": \"a\"}", 201));
    runner hog = {&s, "/v1/networks/long/sessions/a/run",
                  run_body(slow() ? 1500 : 100000), 0, 0, NULL};
    runner queued = hog;
    pthread_t t1, t2;
    pthread_create(&t1, NULL, post_in_background, &hog);
    CU_ASSERT(metrics_show(&s, "nerved_queue_running{network=\"n1\"} 1",
                           30));
    pthread_create(&t2, NULL, post_in_background, &queued);
    CU_ASSERT(metrics_show(&s, "nerved_queue_depth{network=\"n1\"} 1", 30));
    it_response r;
    CU_ASSERT_EQUAL(it_request(&s, "POST", "/v1/networks/long/forward",
                               "application/json",
                               "{\"inputs\": {\"x\": [[1]]}}", 24, &r), 0);
    CU_ASSERT_EQUAL(r.status, 503);
    CU_ASSERT_STRING_EQUAL(r.retry_after, "1");
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "queue_full"));
    it_response_free(&r);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CU_ASSERT_EQUAL(hog.status, 200);
    CU_ASSERT_EQUAL(queued.status, 200);
    free(hog.body);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

/* A session is resolved when a request arrives; the requests queued
 * behind its DELETE found it still held and stepped it, answering 200 for
 * steps no one could ever see. They find it gone. */
static void test_queued_behind_delete(void)
{
    const char *const args[] = {"--compute-threads", "1", NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    cJSON_Delete(it_call(&s, "POST", "/v1/networks", HOG_NET, 201));
    cJSON_Delete(it_call(&s, "POST", "/v1/networks/hog/sessions",
                         "{\"id\": \"gone\"}", 201));
    /* Under valgrind a short run: the order does not depend on it still
     * running when the DELETE comes, and a long one outlasts the
     * client's timeout there. */
    runner hog = {&s, "/v1/networks/hog/sessions/gone/run",
                  run_body(slow() ? 50 : 30000), 0, 0, NULL};
    runner del = {&s, "/v1/networks/hog/sessions/gone", NULL, 0, 0,
                  "DELETE"};
    runner step = {&s, "/v1/networks/hog/sessions/gone/forward",
                   strdup("{\"inputs\": {\"x\": [[1]]}}"), 0, 0, NULL};
    runner run = {&s, "/v1/networks/hog/sessions/gone/run", run_body(2), 0,
                  0, NULL};
    /* The DELETE is sent once the run holds the session; the step and
     * the run queue behind it (whether or not the run is still going:
     * one session's requests keep their order). */
    pthread_t th[4];
    pthread_create(&th[0], NULL, post_in_background, &hog);
    if (slow()) /* its threads take turns: the run first, whole */
        pthread_join(th[0], NULL);
    else
        CU_ASSERT(metrics_show(&s, "nerved_queue_running{network=\"n1\"} 1",
                               30));
    pthread_create(&th[1], NULL, post_in_background, &del);
    if (slow())
        pthread_join(th[1], NULL);
    else
        metrics_show(&s, "nerved_queue_depth{network=\"n1\"} 1", 10);
    pthread_create(&th[2], NULL, post_in_background, &step);
    if (!slow())
        metrics_show(&s, "nerved_queue_depth{network=\"n1\"} 2", 10);
    pthread_create(&th[3], NULL, post_in_background, &run);
    for (int k = slow() ? 2 : 0; k < 4; k++)
        pthread_join(th[k], NULL);
    CU_ASSERT_EQUAL(hog.status, 200);
    CU_ASSERT_EQUAL(del.status, 200);
    CU_ASSERT_EQUAL(step.status, 404);
    CU_ASSERT_EQUAL(run.status, 404);
    free(hog.body);
    free(step.body);
    free(run.body);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

/* At SIGTERM, requests still queued are answered 503 unrun, those
 * waiting behind a running request of their own session too: their queue
 * was on no compute thread's list, and they went unanswered. */
static void test_shutdown_answers_the_queued(void)
{
    if (timing_meaningless("test_shutdown_answers_the_queued"))
        return;
    const char *const args[] = {"--compute-threads", "1",
                                "--shutdown-timeout", "1", NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    cJSON_Delete(it_call(&s, "POST", "/v1/networks", HOG_NET, 201));
    cJSON_Delete(it_call(&s, "POST", "/v1/networks/hog/sessions",
                         "{\"id\": \"busy\"}", 201));
    runner hog = {&s, "/v1/networks/hog/sessions/busy/run", run_body(60000),
                  0, 0, NULL};
    runner queued[3];
    pthread_t th[4];
    pthread_create(&th[0], NULL, post_in_background, &hog);
    CU_ASSERT(metrics_show(&s, "nerved_queue_running{network=\"n1\"} 1",
                           30));
    for (int k = 0; k < 3; k++) {
        queued[k] = (runner){&s, "/v1/networks/hog/sessions/busy/forward",
                             strdup("{\"inputs\": {\"x\": [[1]]}}"), 0, 0, NULL};
        pthread_create(&th[1 + k], NULL, post_in_background, &queued[k]);
    }
    CU_ASSERT(metrics_show(&s, "nerved_queue_depth{network=\"n1\"} 3", 30));
    it_stop(&s);
    for (int k = 0; k < 4; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < 3; k++) {
        CU_ASSERT_EQUAL(queued[k].status, 503);
        free(queued[k].body);
    }
    free(hog.body);
}

/* ------------------------------------------------------- slowloris */

/* A socket from address `from` (127.0.0.x) to the daemon, or -1. */
static int connect_from(const it_server *s, const char *from)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in local = {0}, remote = {0};
    local.sin_family = AF_INET;
    inet_pton(AF_INET, from, &local.sin_addr);
    remote.sin_family = AF_INET;
    remote.sin_port = htons((uint16_t)s->port);
    inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
    if (bind(fd, (struct sockaddr *)&local, sizeof local) ||
        connect(fd, (struct sockaddr *)&remote, sizeof remote)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Whether the daemon has closed fd (reads end of stream or an error). */
static int closed_by_peer(int fd)
{
    struct timeval tv = {0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

#define LORIS 40

static void test_slowloris_locks_nobody_out(void)
{
    const char *const args[] = {"--per-ip-connections", "8", "--read-timeout",
                                "2", "--max-connections", "100", NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    int fds[LORIS], opened = 0;
    for (int i = 0; i < LORIS; i++) {
        fds[i] = connect_from(&s, "127.0.0.2");
        if (fds[i] >= 0) {
            opened++;
            const char *start = "POST /v1/networks HTTP/1.1\r\nHost: x\r\n";
            if (send(fds[i], start, strlen(start), MSG_NOSIGNAL) < 0) {
                close(fds[i]);
                fds[i] = -1;
            }
        }
    }
    CU_ASSERT(opened > 0);
    /* The attacker trickles a byte a connection every 250 ms for 4 s;
     * a client from another address is served all along. Connections past
     * the per-address limit are closed at once, the others once they have
     * spent --read-timeout (2 s) on their request. */
    int served = 0, asked = 0, limited = 0, cut = 0;
    double t0 = it_now();
    while (it_now() - t0 < 4.0) {
        for (int i = 0; i < LORIS; i++)
            if (fds[i] >= 0 && send(fds[i], "X", 1, MSG_NOSIGNAL) < 0) {
                close(fds[i]);
                fds[i] = -1;
                if (it_now() - t0 < 1.5)
                    limited++;
                else
                    cut++;
            }
        it_response r;
        asked++;
        if (it_request(&s, "GET", "/healthz", NULL, NULL, 0, &r) == 0 &&
            r.status == 200)
            served++;
        it_response_free(&r);
        sleep_ms(250);
    }
    fprintf(stderr, "slowloris: %d of %d requests served\n", served, asked);
    CU_ASSERT_EQUAL(served, asked);
    /* Whatever the client still holds, the daemon has closed too. */
    int still = 0, closed = 0;
    for (int i = 0; i < LORIS; i++)
        if (fds[i] >= 0) {
            still++;
            closed += closed_by_peer(fds[i]);
            close(fds[i]);
        }
    fprintf(stderr, "slowloris: %d over the address limit, %d cut at the "
            "read deadline, %d left (%d closed)\n", limited, cut, still,
            closed);
    CU_ASSERT(limited >= LORIS - 8);
    CU_ASSERT(cut >= 1 && cut <= 8);
    CU_ASSERT_EQUAL(closed, still);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

/* ------------------------------------------------------- memory budget */

static void test_memory_budget(void)
{
    const char *const args[] = {"--max-memory", "100000000", NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    cJSON_Delete(it_call(&s, "POST", "/v1/networks",
                         "{\"name\": \"wide\", \"nodes\": ["
                         "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 2},"
                         "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": "
                         "4000}], \"edges\": [\"x >> o\"]}", 201));
    long before = it_peak_rss_kb(s.pid);
    /* Batch 4096 of Dense(4000): 16 M floats of reply, past the budget. */
    size_t cap = 4096 * 12 + 64;
    char *body = malloc(cap);
    size_t n = (size_t)snprintf(body, cap, "{\"inputs\": {\"x\": [");
    for (int b = 0; b < 4096; b++)
        n += (size_t)snprintf(body + n, cap - n, "%s[1,2]", b ? "," : "");
    snprintf(body + n, cap - n, "]}}");
    it_response r;
    CU_ASSERT_EQUAL(it_request(&s, "POST", "/v1/networks/wide/forward",
                               "application/json", body, strlen(body), &r), 0);
    CU_ASSERT_EQUAL(r.status, 413);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "--max-memory"));
    it_response_free(&r);
    free(body);

    /* A run whose reply would be 100,000 steps of 4000 floats. */
    cJSON_Delete(it_call(&s, "POST", "/v1/networks/wide/sessions",
                         "{\"id\": \"one\"}", 201));
    char *run = malloc(100000 * 8 + 64);
    n = (size_t)sprintf(run, "{\"inputs\": {\"x\": [[");
    for (int t = 0; t < 100000; t++)
        n += (size_t)sprintf(run + n, "%s[1,2]", t ? "," : "");
    sprintf(run + n, "]]}}");
    CU_ASSERT_EQUAL(it_request(&s, "POST",
                               "/v1/networks/wide/sessions/one/run",
                               "application/json", run, strlen(run), &r), 0);
    CU_ASSERT_EQUAL(r.status, 413);
    it_response_free(&r);
    free(run);

    /* Neither reply was allocated: the forward alone would have taken
     * 64 MiB of floats and 300 MB of text, the run 1.6 GB of floats. What
     * the run's request itself took to read (an 800 kB body of 200,000
     * numbers) remains. */
    long refused = it_peak_rss_kb(s.pid);
    fprintf(stderr, "memory: peak RSS %ld -> %ld KiB over the refusals\n",
            before, refused);
    if (it_rss_meaningful())
        CU_ASSERT(refused - before < 40 * 1024);

    /* A document parsed into a tree: 4 M numbers in an 8 MB definition
     * would take some 300 MB as cJSON nodes, refused before they are
     * made (a tree of the body was the one request cost not charged). */
    size_t tcap = 4000000 * 2 + 64;
    char *tree = malloc(tcap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tree);
    n = (size_t)snprintf(tree, tcap, "{\"nodes\": [");
    for (int k = 0; k < 4000000; k++) {
        tree[n++] = k ? ',' : ' ';
        tree[n++] = '0';
    }
    snprintf(tree + n, tcap - n, "]}");
    long tree_before = it_peak_rss_kb(s.pid);
    CU_ASSERT_EQUAL(it_request(&s, "POST", "/v1/networks", "application/json",
                               tree, strlen(tree), &r), 0);
    CU_ASSERT_EQUAL(r.status, 413);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "JSON values"));
    it_response_free(&r);
    free(tree);
    /* The body (8 MB) and its parse's bookkeeping, not 300 MB. */
    if (it_rss_meaningful())
        CU_ASSERT(it_peak_rss_kb(s.pid) - tree_before < 64 * 1024);

    /* An export holds the checkpoint and its base64 text: charged first.
     * A Delay of 60 features by 160,000 steps is 38 MB of state, which a
     * session may hold and its export (about 90 MB) may not. */
    cJSON_Delete(it_call(&s, "POST", "/v1/networks",
                         "{\"name\": \"slow\", \"nodes\": ["
                         "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 60},"
                         "{\"name\": \"d\", \"type\": \"Delay\", \"delay\": "
                         "160000}], \"edges\": [\"x >> d\"]}", 201));
    cJSON_Delete(it_call(&s, "POST", "/v1/networks/slow/sessions",
                         "{\"id\": \"held\"}", 201));
    CU_ASSERT_EQUAL(it_request(&s, "GET",
                               "/v1/networks/slow/sessions/held/state", NULL,
                               NULL, 0, &r), 0);
    CU_ASSERT(r.status == 413 || r.status == 503);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "export"));
    it_response_free(&r);
    cJSON_Delete(it_call(&s, "DELETE", "/v1/networks/slow", NULL, 200));


    /* Sessions of batch 4096 of Dense(1000) (16 MiB each) stop at the
     * budget with 503. */
    cJSON_Delete(it_call(&s, "POST", "/v1/networks",
                         "{\"name\": \"mid\", \"nodes\": ["
                         "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 2},"
                         "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": "
                         "1000}], \"edges\": [\"x >> o\"]}", 201));
    int made = 0;
    long status = 0;
    for (int k = 0; k < 20; k++) {
        char def[64];
        snprintf(def, sizeof def, "{\"batch\": 4096, \"id\": \"big%d\"}", k);
        CU_ASSERT_EQUAL(it_request(&s, "POST", "/v1/networks/mid/sessions",
                                   "application/json", def, strlen(def), &r),
                        0);
        status = r.status;
        if (status == 201)
            made++;
        else
            CU_ASSERT_STRING_EQUAL(r.retry_after, "1");
        it_response_free(&r);
        if (status != 201)
            break;
    }
    fprintf(stderr, "memory: %d sessions of 16 MiB, then %ld\n", made, status);
    CU_ASSERT_EQUAL(status, 503);
    CU_ASSERT(made >= 3 && made <= 6);
    long after = it_peak_rss_kb(s.pid);
    fprintf(stderr, "memory: peak RSS %ld -> %ld KiB\n", before, after);
    /* The budget held: 100 MB of sessions, plus what OpenBLAS and the
     * allocator keep beside them. */
    if (it_rss_meaningful())
        CU_ASSERT(after - before < (100000000 + 48 * 1048576) / 1024);
    /* A training job's tape counts too, before its thread makes it: 30
     * steps of 1000 sequences through a Dense(1000) hold 120 MB. */
    cJSON_Delete(it_call(&s, "POST", "/v1/networks",
                         "{\"name\": \"tall\", \"nodes\": ["
                         "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 2},"
                         "{\"name\": \"h\", \"type\": \"Dense\", \"num_unit\": "
                         "1000}, {\"name\": \"o\", \"type\": \"Dense\", "
                         "\"num_unit\": 1}], \"edges\": [\"x >> h >> o\"]}", 201));
    /* With room for its body's tree (charged as it is parsed), so that
     * what is refused is the job. */
    cJSON_Delete(it_call(&s, "DELETE", "/v1/networks/mid/sessions/big0",
                         NULL, 200));
    size_t fcap = 1000 * 30 * 16 + 256;
    char *fit = malloc(fcap);
    n = (size_t)snprintf(fit, fcap, "{\"method\": \"bptt\", \"epochs\": 1, "
                         "\"inputs\": {\"x\": [");
    for (int q = 0; q < 1000; q++) {
        n += (size_t)snprintf(fit + n, fcap - n, "%s[", q ? "," : "");
        for (int t = 0; t < 30; t++)
            n += (size_t)snprintf(fit + n, fcap - n, "%s[1,2]", t ? "," : "");
        n += (size_t)snprintf(fit + n, fcap - n, "]");
    }
    n += (size_t)snprintf(fit + n, fcap - n, "]}, \"targets\": {\"o\": [");
    for (int q = 0; q < 1000; q++) {
        n += (size_t)snprintf(fit + n, fcap - n, "%s[", q ? "," : "");
        for (int t = 0; t < 30; t++)
            n += (size_t)snprintf(fit + n, fcap - n, "%s[0]", t ? "," : "");
        n += (size_t)snprintf(fit + n, fcap - n, "]");
    }
    snprintf(fit + n, fcap - n, "]}}");
    CU_ASSERT_EQUAL(it_request(&s, "POST", "/v1/networks/tall/fit",
                               "application/json", fit, strlen(fit), &r), 0);
    CU_ASSERT_EQUAL(r.status, 413);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "training job"));
    it_response_free(&r);
    free(fit);

    /* Freed sessions give their budget back, and a refused job what it
     * was charged. */
    cJSON_Delete(it_call(&s, "POST", "/v1/networks/mid/sessions",
                         "{\"batch\": 4096, \"id\": \"again\"}", 201));
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

/* ------------------------------------------------- batched = unbatched */

typedef struct graph_case {
    const char *name;
    const char *def;
    int in;          /* input features */
    int train;       /* steps train (Dropout active) */
} graph_case;

static const graph_case graphs[] = {
    {"dense", "{\"name\": \"dense\", \"nodes\": [{\"name\": \"x\", \"type\": "
              "\"Input\", \"shape\": 3}, {\"name\": \"o\", \"type\": \"Dense\", "
              "\"num_unit\": 4}], \"edges\": [\"x >> o\"]}", 3, 0},
    {"rnn", "{\"name\": \"rnn\", \"nodes\": [{\"name\": \"x\", \"type\": "
            "\"Input\", \"shape\": 3}, {\"name\": \"r\", \"type\": "
            "\"VanillaRNN\", \"num_unit\": 5, \"activation\": \"tanh\"}, "
            "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 2}], "
            "\"edges\": [\"x >> r >> o\"]}", 3, 0},
    {"lstm", "{\"name\": \"lstm\", \"nodes\": [{\"name\": \"x\", \"type\": "
             "\"Input\", \"shape\": 3}, {\"name\": \"r\", \"type\": \"LSTM\", "
             "\"num_unit\": 4}, {\"name\": \"o\", \"type\": \"Dense\", "
             "\"num_unit\": 2}], \"edges\": [\"x >> r >> o\"]}", 3, 0},
    {"gru", "{\"name\": \"gru\", \"nodes\": [{\"name\": \"x\", \"type\": "
            "\"Input\", \"shape\": 3}, {\"name\": \"r\", \"type\": \"GRU\", "
            "\"num_unit\": 4}, {\"name\": \"o\", \"type\": \"Dense\", "
            "\"num_unit\": 2}], \"edges\": [\"x >> r >> o\"]}", 3, 0},
    {"esn", "{\"name\": \"esn\", \"seed\": 3, \"nodes\": [{\"name\": \"x\", "
            "\"type\": \"Input\", \"shape\": 3}, {\"name\": \"r\", \"type\": "
            "\"Reservoir\", \"num_unit\": 60, \"spectral_radius\": 0.9, "
            "\"sparse\": \"false\"}, {\"name\": \"o\", \"type\": "
            "\"LinearReadout\", \"num_unit\": 2}], \"edges\": "
            "[\"x >> r >> o\"]}", 3, 0},
    {"sparse", "{\"name\": \"sparse\", \"seed\": 4, \"nodes\": [{\"name\": "
               "\"x\", \"type\": \"Input\", \"shape\": 3}, {\"name\": \"r\", "
               "\"type\": \"Reservoir\", \"num_unit\": 60, \"sparse\": "
               "\"true\", \"noise_rc\": 0.01}, {\"name\": \"o\", \"type\": "
               "\"LinearReadout\", \"num_unit\": 2}], \"edges\": "
               "[\"x >> r >> o\"]}", 3, 0},
    {"nvar", "{\"name\": \"nvar\", \"nodes\": [{\"name\": \"x\", \"type\": "
             "\"Input\", \"shape\": 3}, {\"name\": \"f\", \"type\": \"NVAR\", "
             "\"delay\": 2, \"order\": 2}, {\"name\": \"o\", \"type\": "
             "\"LinearReadout\", \"num_unit\": 2}], \"edges\": "
             "[\"x >> f >> o\"]}", 3, 0},
    {"feedback", "{\"name\": \"feedback\", \"nodes\": [{\"name\": \"x\", "
                 "\"type\": \"Input\", \"shape\": 3}, {\"name\": \"r\", "
                 "\"type\": \"VanillaRNN\", \"num_unit\": 4, \"activation\": "
                 "\"tanh\"}, {\"name\": \"o\", \"type\": \"Dense\", "
                 "\"num_unit\": 2}], \"edges\": [\"x >> r >> o\", "
                 "\"r << o\"]}", 3, 0},
    {"dropout", "{\"name\": \"dropout\", \"nodes\": [{\"name\": \"x\", "
                "\"type\": \"Input\", \"shape\": 3}, {\"name\": \"h\", "
                "\"type\": \"Dense\", \"num_unit\": 8}, {\"name\": \"d\", "
                "\"type\": \"Dropout\", \"prob\": 0.5}, {\"name\": \"o\", "
                "\"type\": \"Dense\", \"num_unit\": 2}], \"edges\": "
                "[\"x >> h >> d >> o\"]}", 3, 1},
};
#define N_GRAPHS (sizeof graphs / sizeof *graphs)
#define STREAMS 6
#define STEPS 8

static const int stream_batch[STREAMS] = {1, 2, 1, 3, 1, 2};

static char *step_body(int k, int t, int batch, int in, int train)
{
    char *b = malloc(1024);
    size_t n = (size_t)snprintf(b, 1024, "{\"inputs\": {\"x\": [");
    for (int r = 0; r < batch; r++) {
        n += (size_t)snprintf(b + n, 1024 - n, "%s[", r ? "," : "");
        for (int f = 0; f < in; f++)
            n += (size_t)snprintf(b + n, 1024 - n, "%s%g", f ? "," : "",
                                  0.1 * ((k * 7 + t * 3 + r * 5 + f) % 11) -
                                      0.5);
        n += (size_t)snprintf(b + n, 1024 - n, "]");
    }
    snprintf(b + n, 1024 - n, "]}, \"train\": %s}", train ? "true" : "false");
    return b;
}

typedef struct stream {
    const it_server *server;
    const graph_case *g;
    int k;
    cJSON *outputs[STEPS];  /* "outputs" of each answer */
    int in_order;
} stream;

static void *step_stream(void *arg)
{
    stream *st = arg;
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/%s/sessions/k%d/forward",
             st->g->name, st->k);
    st->in_order = 1;
    for (int t = 0; t < STEPS; t++) {
        char *body = step_body(st->k, t, stream_batch[st->k], st->g->in,
                               st->g->train);
        long status;
        cJSON *j = it_json(st->server, "POST", path, body, &status);
        free(body);
        if (status != 200 || !j) {
            st->in_order = 0;
            cJSON_Delete(j);
            continue;
        }
        /* Each session's steps come back in the order they were sent. */
        if (cJSON_GetNumberValue(get(j, "step")) != t + 1)
            st->in_order = 0;
        st->outputs[t] = cJSON_DetachItemFromObject(j, "outputs");
        cJSON_Delete(j);
    }
    return NULL;
}

/* Whether two "outputs" objects hold the same tensors to float32 rounding. */
static int outputs_close(const cJSON *a, const cJSON *b)
{
    if (!a || !b)
        return 0;
    if (cJSON_IsNumber(a))
        return cJSON_IsNumber(b) &&
               it_float_close(a->valuedouble, b->valuedouble);
    if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b))
        return 0;
    for (const cJSON *x = a->child, *y = b->child; x || y;
         x = x->next, y = y->next)
        if (!outputs_close(x, y))
            return 0;
    return 1;
}

static void make_streams(const it_server *s, const graph_case *g)
{
    cJSON_Delete(it_call(s, "POST", "/v1/networks", g->def, 201));
    for (int k = 0; k < STREAMS; k++) {
        char body[64], path[96];
        snprintf(body, sizeof body, "{\"id\": \"k%d\", \"batch\": %d}", k,
                 stream_batch[k]);
        snprintf(path, sizeof path, "/v1/networks/%s/sessions", g->name);
        cJSON_Delete(it_call(s, "POST", path, body, 201));
    }
}

/* Batched steps on network id: (steps that stepped more than one session,
 * all steps), from the nerved_batch_sessions histogram. */
static void batch_counts(const it_server *s, const char *id, double *shared,
                         double *all)
{
    it_response r;
    *shared = *all = 0;
    if (it_request(s, "GET", "/metrics", NULL, NULL, 0, &r))
        return;
    char one[128], count[128];
    snprintf(one, sizeof one, "nerved_batch_sessions_bucket{network=\"%s\","
             "le=\"1\"} ", id);
    snprintf(count, sizeof count, "nerved_batch_sessions_count{network="
             "\"%s\"} ", id);
    const char *p = strstr(r.body, one), *q = strstr(r.body, count);
    if (p && q) {
        *all = atof(q + strlen(count));
        *shared = *all - atof(p + strlen(one));
    }
    it_response_free(&r);
}

static void test_batched_steps_equal_single_steps(void)
{
    /* A: batching on, with a window that lets the streams meet; B: off,
     * each stream stepped alone, one after the other. */
    const char *const batched_args[] = {"--batch-window-us", "3000", NULL};
    const char *const single_args[] = {"--batching=0", NULL};
    it_server a, b;
    CU_ASSERT_EQUAL_FATAL(it_start(&a, batched_args), 0);
    CU_ASSERT_EQUAL_FATAL(it_start(&b, single_args), 0);
    double shared_total = 0;
    for (size_t gi = 0; gi < N_GRAPHS; gi++) {
        const graph_case *g = &graphs[gi];
        make_streams(&a, g);
        make_streams(&b, g);
        stream on_a[STREAMS], on_b[STREAMS];
        pthread_t th[STREAMS];
        for (int k = 0; k < STREAMS; k++) {
            memset(&on_a[k], 0, sizeof on_a[k]);
            on_a[k] = (stream){&a, g, k, {0}, 0};
            on_b[k] = (stream){&b, g, k, {0}, 0};
            pthread_create(&th[k], NULL, step_stream, &on_a[k]);
        }
        for (int k = 0; k < STREAMS; k++)
            pthread_join(th[k], NULL);
        for (int k = 0; k < STREAMS; k++)
            step_stream(&on_b[k]);
        int same = 1;
        for (int k = 0; k < STREAMS; k++) {
            CU_ASSERT(on_a[k].in_order);
            CU_ASSERT(on_b[k].in_order);
            for (int t = 0; t < STEPS; t++) {
                if (!outputs_close(on_a[k].outputs[t], on_b[k].outputs[t])) {
                    char *x = cJSON_PrintUnformatted(on_a[k].outputs[t]);
                    char *y = cJSON_PrintUnformatted(on_b[k].outputs[t]);
                    fprintf(stderr, "%s stream %d step %d:\n  batched %s\n  "
                            "single  %s\n", g->name, k, t, x ? x : "-",
                            y ? y : "-");
                    free(x);
                    free(y);
                    same = 0;
                }
                cJSON_Delete(on_a[k].outputs[t]);
                cJSON_Delete(on_b[k].outputs[t]);
            }
        }
        CU_ASSERT(same);
        char id[16];
        snprintf(id, sizeof id, "n%zu", gi + 1);
        double shared, all;
        batch_counts(&a, id, &shared, &all);
        fprintf(stderr, "%s: %.0f of %.0f batched steps stepped several "
                "sessions\n", g->name, shared, all);
        shared_total += shared;
        double none;
        batch_counts(&b, id, &none, &all);
        CU_ASSERT_EQUAL(none, 0);
    }
    /* The streams did meet: otherwise this proved nothing. */
    CU_ASSERT(shared_total > 0);

    /* A session stepped in batches continues into a run with forced
     * feedback exactly as one stepped alone. */
    char body[512];
    snprintf(body, sizeof body, "{\"inputs\": {\"x\": [[[0.1,0.2,0.3],"
             "[0.3,0.2,0.1]]]}, \"forced\": {\"o\": [[[1,-1],[0.5,0.5]]]}}");
    cJSON *ra = it_call(&a, "POST", "/v1/networks/feedback/sessions/k0/run",
                        body, 200);
    cJSON *rb = it_call(&b, "POST", "/v1/networks/feedback/sessions/k0/run",
                        body, 200);
    CU_ASSERT(outputs_close(get(ra, "outputs"), get(rb, "outputs")));
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(get(ra, "step")), STEPS + 2);
    cJSON_Delete(ra);
    cJSON_Delete(rb);
    CU_ASSERT_EQUAL(it_stop(&a), 0);
    CU_ASSERT_EQUAL(it_stop(&b), 0);
}

/* A session stepped alone does not wait out the batch window at every
 * step for company that never comes; several stepping together still
 * share batches. The window is long enough (100 ms) that waiting it out
 * would take 3 s over 30 steps, where the steps take a few ms each (also
 * under valgrind). */
static void test_lone_stream_does_not_wait(void)
{
    const char *const args[] = {"--batch-window-us", "100000", NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    const graph_case *g = &graphs[0]; /* dense */
    make_streams(&s, g);
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/%s/sessions/k0/forward",
             g->name);
    double t0 = it_now();
    for (int t = 0; t < 30; t++) {
        char *body = step_body(0, t, stream_batch[0], g->in, 0);
        cJSON_Delete(it_call(&s, "POST", path, body, 200));
        free(body);
    }
    double alone = it_now() - t0;
    fprintf(stderr, "30 steps of a lone session: %.3f s\n", alone);
    CU_ASSERT(alone < 1.5);
    /* Then the streams together: they meet in batches. */
    stream st[STREAMS];
    pthread_t th[STREAMS];
    for (int k = 1; k < STREAMS; k++) {
        st[k] = (stream){&s, g, k, {0}, 0};
        pthread_create(&th[k], NULL, step_stream, &st[k]);
    }
    for (int k = 1; k < STREAMS; k++) {
        pthread_join(th[k], NULL);
        CU_ASSERT(st[k].in_order);
        for (int t = 0; t < STEPS; t++)
            cJSON_Delete(st[k].outputs[t]);
    }
    double shared, all;
    batch_counts(&s, "n1", &shared, &all);
    CU_ASSERT(shared > 0);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

/* ------------------------------------------- a waiting fit holds nothing */

static const char *FIT_NET =
    "{\"name\": \"fitme\", \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},"
    "{\"name\": \"r\", \"type\": \"VanillaRNN\", \"num_unit\": 16,"
    " \"activation\": \"tanh\"},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 1}],"
    "\"edges\": [\"x >> r >> o\"]}";

/* A BPTT fit of a million epochs, waited for: it ends only when cancelled. */
static char *endless_fit(void)
{
    char *b = malloc(4096);
    size_t n = (size_t)snprintf(b, 4096, "{\"method\": \"bptt\", \"wait\": "
                                "true, \"epochs\": 1000000, \"inputs\": "
                                "{\"x\": [[");
    for (int t = 0; t < 20; t++)
        n += (size_t)snprintf(b + n, 4096 - n, "%s[%d]", t ? "," : "", t % 3);
    n += (size_t)snprintf(b + n, 4096 - n, "]]}, \"targets\": {\"o\": [[");
    for (int t = 0; t < 20; t++)
        n += (size_t)snprintf(b + n, 4096 - n, "%s[%d]", t ? "," : "",
                              (t + 1) % 3);
    snprintf(b + n, 4096 - n, "]]}}");
    return b;
}

static void test_waiting_fit_holds_no_thread(void)
{
    const char *const args[] = {"--compute-threads", "1", NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    cJSON_Delete(it_call(&s, "POST", "/v1/networks", FIT_NET, 201));
    cJSON_Delete(it_call(&s, "POST", "/v1/networks", LONG_NET, 201));
    cJSON_Delete(it_call(&s, "POST", "/v1/networks/long/sessions",
                         "{\"id\": \"a\"}", 201));
    runner fit = {&s, "/v1/networks/fitme/fit", endless_fit(), 0, 0, NULL};
    pthread_t th;
    pthread_create(&th, NULL, post_in_background, &fit);
    /* Wait until the job runs. */
    char job[32] = "";
    for (int k = 0; k < 200 && !job[0]; k++) {
        cJSON *j = it_call(&s, "GET", "/v1/networks/fitme/fit", NULL, 200);
        const cJSON *first = cJSON_GetArrayItem(get(j, "jobs"), 0);
        if (first)
            snprintf(job, sizeof job, "%s",
                     cJSON_GetStringValue(get(first, "job")));
        cJSON_Delete(j);
        if (!job[0])
            sleep_ms(20);
    }
    CU_ASSERT_FATAL(job[0] != '\0');
    /* The one compute thread is free for others while the fit trains. */
    double t0 = it_now();
    cJSON_Delete(it_call(&s, "POST", "/v1/networks/long/sessions/a/forward",
                         "{\"inputs\": {\"x\": [[1]]}}", 200));
    double took = it_now() - t0;
    fprintf(stderr, "step beside a waiting fit: %.1f ms\n", took * 1e3);
    CU_ASSERT(!atomic_load(&fit.done));
    CU_ASSERT(took < 1.0);
    /* Cancelling ends the fit, and its waiting request gets the answer. */
    char path[96];
    snprintf(path, sizeof path, "/v1/networks/fitme/fit/%s", job);
    cJSON_Delete(it_call(&s, "DELETE", path, NULL, 200));
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(fit.status, 200);
    free(fit.body);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

/* A network build runs on the build lane: a long one (a dense reservoir's
 * spectral radius, here about a second) holds no compute thread, so with
 * a single compute thread another network's request is answered while the
 * build goes on. It used to wait for the build. */
static void test_build_holds_no_compute_thread(void)
{
    /* Under valgrind a build long enough to watch outlasts the client's
     * timeout. */
    if (timing_meaningless("test_build_holds_no_compute_thread"))
        return;
    const char *const args[] = {"--compute-threads", "1", "--build-threads",
                                "1", NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    cJSON_Delete(it_call(&s, "POST", "/v1/networks", LONG_NET, 201));
    cJSON_Delete(it_call(&s, "POST", "/v1/networks/long/sessions",
                         "{\"id\": \"a\"}", 201));
    static char def[] =
        "{\"name\": \"slowbuild\", \"nodes\": ["
        "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},"
        "{\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": 1600,"
        " \"sparse\": false, \"rc_connectivity\": 1.0,"
        " \"spectral_radius\": 1.25}], \"edges\": [\"x >> r\"]}";
    runner build = {&s, "/v1/networks", def, 0, 0, NULL};
    pthread_t th;
    pthread_create(&th, NULL, post_in_background, &build);
    sleep_ms(100); /* the build has begun */
    double t0 = it_now();
    cJSON_Delete(it_call(&s, "POST", "/v1/networks/long/sessions/a/forward",
                         "{\"inputs\": {\"x\": [[1]]}}", 200));
    double took = it_now() - t0;
    /* The network is listed once built: not yet, so the forward did not
     * wait for the build. */
    cJSON *listed = it_json(&s, "GET", "/v1/networks/slowbuild", NULL,
                            &(long){0});
    int building = !atomic_load(&build.done) && !get(listed, "nodes");
    cJSON_Delete(listed);
    fprintf(stderr, "step beside a network build: %.1f ms (build %s)\n",
            took * 1e3, building ? "still running" : "already done");
    CU_ASSERT(building);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(build.status, 201);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

int main(void)
{
    static const tu_test tests[] = {
        {"health checks answer while every compute thread is busy",
         test_health_while_busy},
        {"a network build holds no compute thread",
         test_build_holds_no_compute_thread},
        {"under overload every request is answered; refusals change nothing",
         test_overload_is_answered},
        {"refusals carry Retry-After", test_refusals_carry_retry_after},
        {"requests queued behind a DELETE find the session gone",
         test_queued_behind_delete},
        {"at shutdown every queued request is answered",
         test_shutdown_answers_the_queued},
        {"a request waiting behind its session spins no thread",
         test_blocked_request_waits_idle},
        {"a slowloris from one address locks nobody else out",
         test_slowloris_locks_nobody_out},
        {"the memory budget refuses before allocating", test_memory_budget},
        {"batched steps equal single steps, in order",
         test_batched_steps_equal_single_steps},
        {"a session stepped alone does not wait for company",
         test_lone_stream_does_not_wait},
        {"a fit waited for holds no compute thread",
         test_waiting_fit_holds_no_thread},
        {NULL, NULL}};
    return tu_run_suite("serving", tests);
}
