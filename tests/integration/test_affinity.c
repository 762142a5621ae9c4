/*
 * test_affinity.c — docker/nginx/nerved-affinity.conf, run by Debian's
 * nginx on loopback in front of two nerved processes: sessions spread over
 * both backends, every request of a session lands on the backend that holds
 * it, and the results equal a single daemon's.
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

static int which_backend(const it_response *r)
{
    for (int b = 0; b < 2; b++) {
        char want[32];
        snprintf(want, sizeof want, "127.0.0.1:%d", backend[b].port);
        if (strcmp(r->backend, want) == 0)
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

int main(void)
{
    if (!mkdtemp(dir) || write_file("rnn.json", NETWORK))
        return 2;
    const char *args[] = {"--preload", dir, NULL};
    if (it_start(&backend[0], args) || it_start(&backend[1], args))
        return 2;
    int port = free_port();
    if (port < 0 || write_nginx_config(port) || start_nginx(port)) {
        fprintf(stderr, "nginx did not start (see %s/error.log)\n", dir);
        return 2;
    }
    static const tu_test tests[] = {
        {"sessions stay on their backend", test_sessions_stay_on_their_backend},
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
