/*
 * test_affinity.c — docker/nginx/nerved-affinity.conf, run by Debian's
 * nginx on loopback in front of two nerved processes: sessions spread over
 * both backends, every request of a session lands on the backend that holds
 * it, and the results equal a single daemon's. A backend killed and
 * restarted on its data directory brings its checkpointed sessions back
 * (and, while it is away, its sessions are a 404 elsewhere, never a fresh
 * state); a session exported from one backend continues on another.
 */
#include "itest.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { SESSIONS = 24, STEPS = 3 };

static const char *NETWORK =
    "{\"name\": \"rnn\", \"seed\": 9, \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 2},"
    "{\"name\": \"r\", \"type\": \"VanillaRNN\", \"num_unit\": 4, "
    "\"activation\": \"tanh\"},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 2}],"
    "\"edges\": [\"x >> r >> o\", \"r << o\"]}\n";

static char dir[] = "/tmp/nerved-affinity-XXXXXX";
static it_server backend[2], front;
static char data_dir[2][600];

/* A backend on its own data directory; port 0 picks one, a given port is
 * where a restarted backend must come back for the proxy to find it. */
static int start_backend(int b, int port)
{
    static char port_text[2][16];
    snprintf(port_text[b], sizeof port_text[b], "%d", port);
    const char *args[] = {"--preload", dir, "--data-dir", data_dir[b],
                          "--port", port_text[b], NULL};
    return it_start(&backend[b], args);
}
static pid_t nginx_pid;

static int write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* The project's affinity configuration, with only its port changed. */
static int write_nginx_config(int port)
{
    char src[1024];
    snprintf(src, sizeof src, "%s/docker/nginx/nerved-affinity.conf",
             getenv("NERVED_SOURCE"));
    FILE *f = fopen(src, "r");
    if (!f)
        return -1;
    static char conf[16384];
    size_t n = fread(conf, 1, sizeof conf - 1, f);
    fclose(f);
    conf[n] = '\0';
    char *listen = strstr(conf, "listen 8080;");
    if (!listen)
        return -1;
    char listen_line[64];
    snprintf(listen_line, sizeof listen_line, "listen 127.0.0.1:%d;", port);
    char affinity[17000];
    snprintf(affinity, sizeof affinity, "%.*s%s%s", (int)(listen - conf), conf,
             listen_line, listen + strlen("listen 8080;"));
    char backends[256], main_conf[2048];
    snprintf(backends, sizeof backends,
             "server 127.0.0.1:%d max_fails=0;\nserver 127.0.0.1:%d "
             "max_fails=0;\n", backend[0].port, backend[1].port);
    snprintf(main_conf, sizeof main_conf,
             "daemon off;\nmaster_process off;\nworker_processes 1;\n"
             "pid %s/nginx.pid;\nerror_log %s/error.log;\n"
             "events { worker_connections 256; }\n"
             "http {\n  access_log off;\n  client_body_temp_path %s;\n"
             "  proxy_temp_path %s;\n  fastcgi_temp_path %s;\n"
             "  uwsgi_temp_path %s;\n  scgi_temp_path %s;\n"
             "  include nerved-affinity.conf;\n}\n",
             dir, dir, dir, dir, dir, dir, dir);
    return write_file("nerved-affinity.conf", affinity) ||
           write_file("nerved-backends.conf", backends) ||
           write_file("nginx.conf", main_conf);
}

static int start_nginx(int port)
{
    char conf[512];
    snprintf(conf, sizeof conf, "%s/nginx.conf", dir);
    nginx_pid = fork();
    if (nginx_pid == 0) {
        execl("/usr/sbin/nginx", "nginx", "-p", dir, "-c", conf, (char *)NULL);
        _exit(127);
    }
    front.pid = nginx_pid;
    front.port = port;
    snprintf(front.base, sizeof front.base, "http://127.0.0.1:%d", port);
    for (int tries = 0; tries < 100; tries++) {
        it_response r;
        if (it_request(&front, "GET", "/healthz", NULL, NULL, 0, &r) == 0 &&
            r.status == 200) {
            it_response_free(&r);
            return 0;
        }
        it_response_free(&r);
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    return -1;
}

/* The backend that answered: the last of $upstream_addr, which lists
 * every upstream tried ("A, B" when A refused the connection). */
static int which_backend(const it_response *r)
{
    const char *last = strrchr(r->backend, ' ');
    last = last ? last + 1 : r->backend;
    for (int b = 0; b < 2; b++) {
        char want[32];
        snprintf(want, sizeof want, "127.0.0.1:%d", backend[b].port);
        if (strcmp(last, want) == 0)
            return b;
    }
    return -1;
}

static double output_of(const char *body)
{
    cJSON *j = cJSON_Parse(body);
    const cJSON *o = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "outputs"),
                                         "o");
    double v = cJSON_GetArrayItem(cJSON_GetArrayItem(o, 0), 1)->valuedouble;
    cJSON_Delete(j);
    return v;
}

static void step_body(int session, int t, char *buf, size_t size)
{
    snprintf(buf, size, "{\"inputs\": {\"x\": [[%d, %g]]}}", session % 5,
             0.5 * t - 0.25);
}

static void test_sessions_stay_on_their_backend(void)
{
    int owner[SESSIONS], per_backend[2] = {0, 0};
    double result[SESSIONS][STEPS];
    for (int i = 0; i < SESSIONS; i++) {
        char header[64], body[64];
        snprintf(header, sizeof header, "X-Nerved-Session: sess-%02d", i);
        snprintf(body, sizeof body, "{\"id\": \"sess-%02d\"}", i);
        it_response r;
        CU_ASSERT_EQUAL_FATAL(it_request_with(&front, "POST",
                                              "/v1/networks/rnn/sessions",
                                              "application/json", body,
                                              strlen(body), header, &r), 0);
        CU_ASSERT_EQUAL(r.status, 201);
        owner[i] = which_backend(&r);
        CU_ASSERT_FATAL(owner[i] >= 0);
        per_backend[owner[i]]++;
        it_response_free(&r);
        for (int t = 0; t < STEPS; t++) {
            char path[96];
            snprintf(path, sizeof path,
                     "/v1/networks/rnn/sessions/sess-%02d/forward", i);
            step_body(i, t, body, sizeof body);
            CU_ASSERT_EQUAL_FATAL(it_request(&front, "POST", path,
                                             "application/json", body,
                                             strlen(body), &r), 0);
            CU_ASSERT_EQUAL(r.status, 200);
            /* Every step of the session reaches the backend holding it. */
            CU_ASSERT_EQUAL(which_backend(&r), owner[i]);
            if (r.status == 200)
                result[i][t] = output_of(r.body);
            it_response_free(&r);
        }
    }
    /* Both backends hold sessions (all 24 on one would be a 2^-23 fluke). */
    CU_ASSERT(per_backend[0] > 0 && per_backend[1] > 0);
    fprintf(stderr, "sessions per backend: %d and %d\n", per_backend[0],
            per_backend[1]);

    /* Each session exists on its owner only. */
    for (int b = 0; b < 2; b++) {
        long status;
        cJSON *list = it_json(&backend[b], "GET", "/v1/networks/rnn/sessions",
                              NULL, &status);
        CU_ASSERT_EQUAL(status, 200);
        CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(list,
                                                               "sessions")),
                        per_backend[b]);
        cJSON_Delete(list);
    }

    /* The results equal one daemon's, given the same steps. */
    for (int i = 0; i < SESSIONS; i++) {
        long status;
        cJSON_Delete(it_json(&backend[0], "POST", "/v1/networks/rnn/sessions",
                             "{\"id\": \"single\"}", &status));
        CU_ASSERT_EQUAL(status, 201);
        for (int t = 0; t < STEPS; t++) {
            char body[64];
            step_body(i, t, body, sizeof body);
            it_response r;
            it_request(&backend[0], "POST",
                       "/v1/networks/rnn/sessions/single/forward",
                       "application/json", body, strlen(body), &r);
            /* Another daemon computed result: to float32 rounding. */
            CU_ASSERT(it_float_close(output_of(r.body), result[i][t]));
            it_response_free(&r);
        }
        cJSON_Delete(it_json(&backend[0], "DELETE",
                             "/v1/networks/rnn/sessions/single", NULL,
                             &status));
    }
}

/* Float32 results of two processes: close, not bit for bit. */
static int close_to(double a, double b)
{
    double d = a > b ? a - b : b - a;
    return d <= 1e-5 * (a > 0 ? a : -a) + 1e-6;
}

/* Step t of session sid through the proxy; the output, *owner the backend
 * that answered and *status its status. */
static double step_via_proxy(const char *sid, int i, int t, int *owner,
                             long *status, char *body_out, size_t size)
{
    char path[128], body[64];
    snprintf(path, sizeof path, "/v1/networks/rnn/sessions/%s/forward", sid);
    step_body(i, t, body, sizeof body);
    it_response r;
    double v = 0;
    *status = 0;
    *owner = -1;
    if (it_request(&front, "POST", path, "application/json", body,
                   strlen(body), &r) == 0) {
        *status = r.status;
        *owner = which_backend(&r);
        if (r.status == 200)
            v = output_of(r.body);
        if (body_out)
            snprintf(body_out, size, "%s", r.body ? r.body : "");
    }
    it_response_free(&r);
    return v;
}

/* The output of step t of a session given steps 0..t, on backend b. */
static double reference(int b, int i, int t)
{
    long status;
    cJSON_Delete(it_json(&backend[b], "POST", "/v1/networks/rnn/sessions",
                         "{\"id\": \"reference\"}", &status));
    CU_ASSERT_EQUAL(status, 201);
    double v = 0;
    for (int k = 0; k <= t; k++) {
        char body[64];
        step_body(i, k, body, sizeof body);
        it_response r;
        if (it_request(&backend[b], "POST",
                       "/v1/networks/rnn/sessions/reference/forward",
                       "application/json", body, strlen(body), &r) == 0 &&
            r.status == 200)
            v = output_of(r.body);
        it_response_free(&r);
    }
    cJSON_Delete(it_json(&backend[b], "DELETE",
                         "/v1/networks/rnn/sessions/reference", NULL, &status));
    return v;
}

enum { KEPT = 12 };

static void test_killed_backend_restores_its_sessions(void)
{
    int owner[KEPT];
    char sid[KEPT][32];
    for (int i = 0; i < KEPT; i++) {
        snprintf(sid[i], sizeof sid[i], "kept-%02d", i);
        char header[64], body[64], path[128];
        snprintf(header, sizeof header, "X-Nerved-Session: %s", sid[i]);
        snprintf(body, sizeof body, "{\"id\": \"%s\"}", sid[i]);
        it_response r;
        CU_ASSERT_EQUAL_FATAL(it_request_with(&front, "POST",
                                              "/v1/networks/rnn/sessions",
                                              "application/json", body,
                                              strlen(body), header, &r), 0);
        CU_ASSERT_EQUAL(r.status, 201);
        owner[i] = which_backend(&r);
        it_response_free(&r);
        for (int t = 0; t < STEPS; t++) {
            int o;
            long status;
            step_via_proxy(sid[i], i, t, &o, &status, NULL, 0);
            CU_ASSERT_EQUAL(status, 200);
        }
        snprintf(path, sizeof path,
                 "/v1/networks/rnn/sessions/%s/checkpoint", sid[i]);
        CU_ASSERT_EQUAL(it_request(&front, "POST", path, NULL, NULL, 0, &r), 0);
        CU_ASSERT_EQUAL(r.status, 200);
        CU_ASSERT_EQUAL(which_backend(&r), owner[i]);
        it_response_free(&r);
    }
    const int victim = owner[0], survivor = 1 - victim;
    double expected[KEPT];
    for (int i = 0; i < KEPT; i++)
        expected[i] = reference(survivor, i, STEPS);

    /* A crash: nothing of the victim runs after it. */
    const int port = backend[victim].port;
    it_kill(&backend[victim]);
    char body[512];
    int o;
    long status;
    step_via_proxy(sid[0], 0, STEPS, &o, &status, body, sizeof body);
    /* The survivor answers for it, and knows it does not hold it. */
    CU_ASSERT_EQUAL(o, survivor);
    CU_ASSERT_EQUAL(status, 404);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, sid[0]));
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/rnn/sessions/%s", sid[0]);
    cJSON_Delete(it_json(&backend[survivor], "GET", path, NULL, &status));
    CU_ASSERT_EQUAL(status, 404); /* the 404 created nothing */

    /* Back on its data directory, at the same place in the ring. */
    CU_ASSERT_EQUAL_FATAL(start_backend(victim, port), 0);
    int restored = 0;
    for (int i = 0; i < KEPT; i++) {
        double v = step_via_proxy(sid[i], i, STEPS, &o, &status, body,
                                  sizeof body);
        CU_ASSERT_EQUAL(status, 200);
        CU_ASSERT_EQUAL(o, owner[i]);
        if (!close_to(v, expected[i]))
            fprintf(stderr, "%s: %.9g after the restart, %.9g expected\n",
                    sid[i], v, expected[i]);
        CU_ASSERT(close_to(v, expected[i]));
        restored += owner[i] == victim;
    }
    CU_ASSERT(restored > 0);
    fprintf(stderr, "%d of %d sessions came back with their backend\n",
            restored, KEPT);
}

/* The state document of a session, from GET .../state on backend b. */
static char *export_state(int b, const char *sid)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/rnn/sessions/%s/state", sid);
    it_response r;
    char *text = NULL;
    if (it_request(&backend[b], "GET", path, NULL, NULL, 0, &r) == 0 &&
        r.status == 200)
        text = strdup(r.body);
    CU_ASSERT_EQUAL(r.status, 200);
    it_response_free(&r);
    return text;
}

static long import_state(int b, const char *sid, const char *state,
                         char *body_out, size_t size)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/rnn/sessions/%s/state", sid);
    it_response r;
    long status = 0;
    if (it_request(&backend[b], "PUT", path, "application/json", state,
                   strlen(state), &r) == 0) {
        status = r.status;
        if (body_out)
            snprintf(body_out, size, "%s", r.body ? r.body : "");
    }
    it_response_free(&r);
    return status;
}

static double step_on(int b, const char *sid, int i, int t, long *status)
{
    char path[128], body[64];
    snprintf(path, sizeof path, "/v1/networks/rnn/sessions/%s/forward", sid);
    step_body(i, t, body, sizeof body);
    it_response r;
    double v = 0;
    *status = 0;
    if (it_request(&backend[b], "POST", path, "application/json", body,
                   strlen(body), &r) == 0) {
        *status = r.status;
        if (r.status == 200)
            v = output_of(r.body);
    }
    it_response_free(&r);
    return v;
}

static void test_exported_session_continues_elsewhere(void)
{
    long status;
    cJSON_Delete(it_json(&backend[0], "POST", "/v1/networks/rnn/sessions",
                         "{\"id\": \"moving\"}", &status));
    CU_ASSERT_EQUAL_FATAL(status, 201);
    for (int t = 0; t < STEPS; t++) {
        step_on(0, "moving", 7, t, &status);
        CU_ASSERT_EQUAL(status, 200);
    }
    char *state = export_state(0, "moving");
    CU_ASSERT_PTR_NOT_NULL_FATAL(state);
    char body[512];
    CU_ASSERT_EQUAL(import_state(1, "moving", state, body, sizeof body), 201);
    /* Both copies take the same next steps with the same results. */
    for (int t = STEPS; t < STEPS + 2; t++) {
        long s0, s1;
        double here = step_on(0, "moving", 7, t, &s0);
        double there = step_on(1, "moving", 7, t, &s1);
        CU_ASSERT_EQUAL(s0, 200);
        CU_ASSERT_EQUAL(s1, 200);
        CU_ASSERT(close_to(here, there));
        CU_ASSERT(close_to(there, reference(1, 7, t)));
    }
    /* The import is on the new owner's disk, as a checkpoint. */
    char file[700];
    snprintf(file, sizeof file, "%s/ckpt-n1-moving.nerved", data_dir[1]);
    CU_ASSERT_EQUAL(access(file, F_OK), 0);
    /* Drained from the old owner, it is gone there. */
    cJSON_Delete(it_json(&backend[0], "DELETE",
                         "/v1/networks/rnn/sessions/moving", NULL, &status));
    CU_ASSERT_EQUAL(status, 200);
    step_on(0, "moving", 7, 0, &status);
    CU_ASSERT_EQUAL(status, 404);
    /* Importing again over the live session replaces its state. */
    CU_ASSERT_EQUAL(import_state(1, "moving", state, body, sizeof body), 200);
    double again = step_on(1, "moving", 7, STEPS, &status);
    CU_ASSERT(close_to(again, reference(1, 7, STEPS)));

    /* A damaged state is refused, naming why, and creates nothing. */
    char *bad = strstr(state, "\"checkpoint\":\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
    bad += strlen("\"checkpoint\":\"") + 60;
    *bad = *bad == 'A' ? 'B' : 'A';
    CU_ASSERT_EQUAL(import_state(1, "damaged", state, body, sizeof body), 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "bad_state"));
    cJSON_Delete(it_json(&backend[1], "GET",
                         "/v1/networks/rnn/sessions/damaged", NULL, &status));
    CU_ASSERT_EQUAL(status, 404);
    CU_ASSERT_EQUAL(import_state(1, "damaged", "{\"checkpoint\": 5}", body,
                                 sizeof body), 400);
    free(state);
}

int main(void)
{
    if (!mkdtemp(dir) || write_file("rnn.json", NETWORK))
        return 2;
    for (int b = 0; b < 2; b++)
        snprintf(data_dir[b], sizeof data_dir[b], "%s/data%d", dir, b);
    if (start_backend(0, 0) || start_backend(1, 0))
        return 2;
    int port = free_port();
    if (port < 0 || write_nginx_config(port) || start_nginx(port)) {
        fprintf(stderr, "nginx did not start (see %s/error.log)\n", dir);
        return 2;
    }
    static const tu_test tests[] = {
        {"sessions stay on their backend", test_sessions_stay_on_their_backend},
        {"a killed backend restarted on its data directory restores its "
         "sessions", test_killed_backend_restores_its_sessions},
        {"an exported session continues on another backend",
         test_exported_session_continues_elsewhere},
        {NULL, NULL}};
    int rc = tu_run_suite("affinity", tests);
    kill(nginx_pid, SIGTERM);
    waitpid(nginx_pid, NULL, 0);
    for (int b = 0; b < 2; b++)
        if (it_stop(&backend[b]) != 0)
            rc = 1;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
