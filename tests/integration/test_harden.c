/*
 * test_harden.c — defects a hostile client or a careless operator could
 * reach: network names that would shadow ids, files in the data directory
 * that are not what their names say, the command
 * line (--version, boolean environment variables, SIGHUP) and a shutdown
 * that must end within --shutdown-timeout.
 */
#define _GNU_SOURCE
#include "api_persist.h"
#include "itest.h"
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const TINY =
    "{\"nodes\": [{\"name\": \"x\", \"type\": \"Input\", \"shape\": 2},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 1}],"
    "\"edges\": [\"x >> o\"]}";

static char *with_name(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "{\"name\": \"%s\", %s", name, TINY + 1);
    return buf;
}

/* A name of the daemon's id form is refused, so it can never capture the
 * routes of the network with that id. */
static void test_names_cannot_shadow_ids(void)
{
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, NULL), 0);
    cJSON *a = it_call(&s, "POST", "/v1/networks", TINY, 201);
    const cJSON *id = cJSON_GetObjectItem(a, "id");
    CU_ASSERT_FATAL(cJSON_IsString(id));
    /* The next id the daemon would give, and the one it gave. */
    static const char *const bad[] = {"n1", "n2", "n99", "n0", "n007"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        long status;
        cJSON *r = it_json(&s, "POST", "/v1/networks", with_name(bad[k]),
                           &status);
        CU_ASSERT_EQUAL(status, 400);
        char *text = r ? cJSON_PrintUnformatted(r) : NULL;
        CU_ASSERT(text && strstr(text, "network id") != NULL);
        free(text);
        cJSON_Delete(r);
    }
    /* Names that only look alike are fine. */
    static const char *const good[] = {"n", "n2a", "N2", "net2"};
    for (size_t k = 0; k < sizeof good / sizeof *good; k++)
        cJSON_Delete(it_call(&s, "POST", "/v1/networks", with_name(good[k]),
                             201));
    char path[96];
    snprintf(path, sizeof path, "/v1/networks/%s", id->valuestring);
    cJSON *got = it_call(&s, "GET", path, NULL, 200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(got, "id")->valuestring,
                           id->valuestring);
    cJSON_Delete(got);
    cJSON_Delete(a);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

/* A data directory written before some names were refused may hold a
 * network so named, in its file's meta and in its definition: it loads
 * without that name (log_says names why), and n1 is still its own. to is
 * two bytes, the length of the name it replaces. */
static void stored_name_refused_since(const char *to, const char *log_says)
{
    char *dir = it_temp_dir("nerved-oldname");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    const char *const args[] = {"--data-dir", dir, NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    cJSON *first = it_call(&s, "POST", "/v1/networks", TINY, 201);
    cJSON *second = it_call(&s, "POST", "/v1/networks", with_name("zz"), 201);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(first, "id")->valuestring,
                           "n1");
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(second, "id")->valuestring,
                           "n2");
    cJSON_Delete(first);
    cJSON_Delete(second);
    CU_ASSERT_EQUAL(it_stop(&s), 0);

    /* Rename n2 in its file, meta and definition, and seal it again. */
    char path[1024];
    snprintf(path, sizeof path, "%s/net-n2.nerved", dir);
    FILE *f = fopen(path, "r+b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    static unsigned char bytes[1 << 16];
    size_t len = fread(bytes, 1, sizeof bytes, f);
    CU_ASSERT_FATAL(len > API_PERSIST_HEADER && len < sizeof bytes);
    int renamed = 0;
    for (unsigned char *at = bytes + API_PERSIST_HEADER, *meta;
         (meta = memmem(at, len - (size_t)(at - bytes), "\"name\":\"zz\"",
                        11)) != NULL;
         at = meta + 11, renamed++)
        memcpy(meta + 8, to, 2);
    CU_ASSERT_EQUAL(renamed, 2); /* the meta's and the definition's */
    uint32_t crc = api_crc32(0, bytes, 24);
    crc = api_crc32(crc, bytes + 28, len - 28);
    for (int k = 0; k < 4; k++)
        bytes[24 + k] = (unsigned char)(crc >> (8 * k));
    rewind(f);
    CU_ASSERT_EQUAL(fwrite(bytes, 1, len, f), len);
    fclose(f);

    char log[1024];
    snprintf(log, sizeof log, "%s.log", dir);
    CU_ASSERT_EQUAL_FATAL(it_start_logged(&s, args, log), 0);
    cJSON *got = it_call(&s, "GET", "/v1/networks/n1", NULL, 200);
    const cJSON *id = cJSON_GetObjectItem(got, "id");
    CU_ASSERT(cJSON_IsString(id) && strcmp(id->valuestring, "n1") == 0);
    cJSON_Delete(got);
    got = it_call(&s, "GET", "/v1/networks/n2", NULL, 200);
    const cJSON *name = cJSON_GetObjectItem(got, "name");
    CU_ASSERT(!cJSON_IsString(name) ||
              strncmp(name->valuestring, to, 2) != 0);
    cJSON_Delete(got);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
    f = fopen(log, "r");
    static char text[8192];
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = '\0';
    if (f)
        fclose(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, log_says));
    unlink(log);
    it_remove_tree(dir);
    free(dir);
}

static void test_stored_name_of_id_form(void)
{
    stored_name_refused_since("n1", "network n2 loses its name 'n1', which "
                              "has the form of a network id");
}

static void test_stored_name_a_url_cannot_hold(void)
{
    stored_name_refused_since("..", "network n2 loses its name '..', which "
                              "no URL can address");
}

/* --------------------------------------------------- the data directory */

/* The daemon's peak resident memory in KiB (VmHWM), or -1. */
static long peak_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* Files named like the daemon's that are not: a FIFO (opening it blocked
 * the start forever), a directory, and a 2 GiB sparse file with a bad
 * header (read whole before). Each is skipped with its reason, and the
 * real network beside them loads. */
static void test_odd_files_in_the_data_dir(void)
{
    char *dir = it_temp_dir("nerved-odd");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    const char *const args[] = {"--data-dir", dir, NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    cJSON_Delete(it_call(&s, "POST", "/v1/networks", with_name("real"), 201));
    CU_ASSERT_EQUAL(it_stop(&s), 0);

    char path[1024];
    snprintf(path, sizeof path, "%s/net-n7.nerved", dir);
    CU_ASSERT_EQUAL_FATAL(mkfifo(path, 0600), 0);
    snprintf(path, sizeof path, "%s/net-n8.nerved", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/net-n9.nerved", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(write(fd, "NOTNERVED-a-bad-header......", 28), 28);
    CU_ASSERT_EQUAL(ftruncate(fd, 2L << 30), 0);
    close(fd);
    snprintf(path, sizeof path, "%s/ckpt-n9-s1.nerved", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CU_ASSERT_FATAL(fd >= 0);
    /* A good magic announcing far more than the file holds. */
    static const unsigned char head[28] = {'N', 'E', 'R', 'V', 'E', 'D', 'C',
                                           1,   2,   0,   0,   0,   0,   0,
                                           0,   0,   0xff, 0xff, 0xff, 0xff,
                                           0,   0,   0,   0};
    CU_ASSERT_EQUAL(write(fd, head, sizeof head), (ssize_t)sizeof head);
    CU_ASSERT_EQUAL(ftruncate(fd, 1L << 30), 0);
    close(fd);

    char log[1024];
    snprintf(log, sizeof log, "%s.log", dir);
    alarm(120); /* a start that blocks on the FIFO fails the test */
    CU_ASSERT_EQUAL_FATAL(it_start_logged(&s, args, log), 0);
    alarm(0);
    long kib = peak_kib(s.pid);
    if (kib > 512 * 1024)
        fprintf(stderr, "peak memory at start: %ld KiB\n", kib);
    CU_ASSERT(kib > 0 && kib < 512 * 1024);
    cJSON_Delete(it_call(&s, "GET", "/v1/networks/real", NULL, 200));
    CU_ASSERT_EQUAL(it_stop(&s), 0);
    FILE *f = fopen(log, "r");
    static char text[16384];
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = '\0';
    if (f)
        fclose(f);
    static const char *const want[] = {
        "net-n7.nerved: a FIFO, not a regular file; skipped",
        "net-n8.nerved: a directory, not a regular file; skipped",
        "net-n9.nerved: not a nerved file",
        "ckpt-n9-s1.nerved: 1073741824 bytes, but the header announces",
        "1 networks and 0 session checkpoints restored"};
    for (size_t k = 0; k < sizeof want / sizeof *want; k++) {
        if (!strstr(text, want[k])) {
            /* fputs: GCC with -fsanitize=address takes a table string in
             * a format for a possible NULL (-Werror=format-overflow). */
            fputs("not in the log: ", stderr);
            fputs(want[k], stderr);
            fputc('\n', stderr);
        }
        CU_ASSERT_PTR_NOT_NULL(strstr(text, want[k]));
    }
    unlink(log);
    it_remove_tree(dir);
    free(dir);
}

/* ------------------------------------------------------ the command line */

/* The first line `nerved --version` prints, without the newline. */
static void version_line(char *out, size_t size)
{
    const char *bin = getenv("NERVED_BIN");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' --version", bin ? bin : "nerved");
    FILE *p = popen(cmd, "r");
    out[0] = '\0';
    if (p && fgets(out, (int)size, p))
        out[strcspn(out, "\n")] = '\0';
    CU_ASSERT_EQUAL(p ? pclose(p) : -1, 0);
}

/* --version, GET /v2 and nerved_build_info tell the same version. */
static void test_version(void)
{
    char line[128];
    version_line(line, sizeof line);
    CU_ASSERT_EQUAL_FATAL(strncmp(line, "nerved ", 7), 0);
    const char *version = line + 7;
    CU_ASSERT(strlen(version) >= 5 && strchr(version, '.'));
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, NULL), 0);
    cJSON *v2 = it_call(&s, "GET", "/v2", NULL, 200);
    const cJSON *v = cJSON_GetObjectItem(v2, "version");
    CU_ASSERT(cJSON_IsString(v) && strcmp(v->valuestring, version) == 0);
    cJSON_Delete(v2);
    it_response r;
    CU_ASSERT_EQUAL_FATAL(it_request(&s, "GET", "/metrics", NULL, NULL, 0, &r),
                          0);
    char gauge[160];
    /* The version first; the BLAS kernels' labels follow. */
    snprintf(gauge, sizeof gauge, "\nnerved_build_info{version=\"%s\",",
             version);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, gauge));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "# TYPE nerved_build_info gauge"));
    it_response_free(&r);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

/* NERVED_QUIET=false must not mean quiet: booleans take 1/0, true/false,
 * yes/no, on/off, and anything else stops the start with a message. */
static void test_boolean_words(void)
{
    char err[2048];
    static const char *const bad[] = {"maybe", "", "2", "falsey"};
    const char *const list[] = {"--list-routes", NULL};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        setenv("NERVED_QUIET", bad[k], 1);
        CU_ASSERT_EQUAL(it_run(list, err, sizeof err), 2);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "NERVED_QUIET"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "true/false"));
    }
    static const char *const good[] = {"false", "TRUE", "yes", "No", "on",
                                       "off", "1", "0"};
    for (size_t k = 0; k < sizeof good / sizeof *good; k++) {
        setenv("NERVED_QUIET", good[k], 1);
        CU_ASSERT_EQUAL(it_run(list, err, sizeof err), 0);
    }
    unsetenv("NERVED_QUIET");
    const char *const flag[] = {"--quiet=perhaps", "--list-routes", NULL};
    CU_ASSERT_EQUAL(it_run(flag, err, sizeof err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--quiet"));

    /* it_start passes --quiet; a later --quiet=off turns the log back on. */
    char *dir = it_temp_dir("nerved-bool");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    char log[512];
    snprintf(log, sizeof log, "%s/log", dir);
    const char *const loud[] = {"--quiet=off", NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start_logged(&s, loud, log), 0);
    cJSON_Delete(it_call(&s, "GET", "/healthz", NULL, 200));
    CU_ASSERT_EQUAL(it_stop(&s), 0);
    FILE *f = fopen(log, "r");
    char text[4096] = "";
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = '\0';
    if (f)
        fclose(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "/healthz"));
    it_remove_tree(dir);
    free(dir);
}

/* SIGHUP (a closed terminal, a reload by habit) does not stop the
 * daemon. */
static void test_sighup_is_ignored(void)
{
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, NULL), 0);
    CU_ASSERT_EQUAL(kill(s.pid, SIGHUP), 0);
    struct timespec pause = {0, 200 * 1000 * 1000};
    nanosleep(&pause, NULL);
    cJSON_Delete(it_call(&s, "GET", "/healthz", NULL, 200));
    int status;
    CU_ASSERT_EQUAL(waitpid(s.pid, &status, WNOHANG), 0);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

/* ------------------------------------------------------------ shutdown */

typedef struct long_request {
    const it_server *s;
    char path[128];
    char *body;
} long_request;

static void *run_long(void *arg)
{
    long_request *lr = arg;
    it_response r;
    /* The daemon exits under it: no answer is expected, but the response
     * (empty) is still allocated. */
    it_request(lr->s, "POST", lr->path, "application/json", lr->body,
               strlen(lr->body), &r);
    it_response_free(&r);
    return NULL;
}

/* SIGTERM with a request running far past --shutdown-timeout 1: the daemon
 * checkpoints the idle session and exits 0 soon after the timeout instead
 * of waiting for the request. */
static void test_shutdown_timeout(void)
{
    char *dir = it_temp_dir("nerved-shutdown");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    const char *const args[] = {"--data-dir", dir, "--shutdown-timeout", "1",
                                NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    cJSON_Delete(it_call(&s, "POST", "/v1/networks",
                         "{\"name\": \"big\", \"nodes\": [{\"name\": \"x\", "
                         "\"type\": \"Input\", \"shape\": 1}, {\"name\": "
                         "\"r\", \"type\": \"VanillaRNN\", \"num_unit\": "
                         "1500}], \"edges\": [\"x >> r\"]}", 201));
    cJSON *idle = it_call(&s, "POST", "/v1/networks/big/sessions", "{}", 201);
    cJSON *busy = it_call(&s, "POST", "/v1/networks/big/sessions", "{}", 201);
    const cJSON *idle_id = cJSON_GetObjectItem(idle, "id");
    const cJSON *busy_id = cJSON_GetObjectItem(busy, "id");
    const cJSON *net_id = cJSON_GetObjectItem(idle, "network");
    CU_ASSERT_FATAL(cJSON_IsString(idle_id) && cJSON_IsString(busy_id) &&
                    cJSON_IsString(net_id));

    /* 100000 steps of a 1500-unit recurrence: minutes of work. */
    enum { STEPS = 100000 };
    long_request lr = {&s, "", malloc(STEPS * 6 + 64)};
    CU_ASSERT_PTR_NOT_NULL_FATAL(lr.body);
    snprintf(lr.path, sizeof lr.path, "/v1/networks/big/sessions/%s/run",
             busy_id->valuestring);
    char *p = lr.body + sprintf(lr.body, "{\"inputs\": {\"x\": [[");
    for (int t = 0; t < STEPS; t++)
        p += sprintf(p, "%s[1]", t ? "," : "");
    sprintf(p, "]]}}");
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, run_long, &lr), 0);
    struct timespec pause = {1, 500 * 1000 * 1000};
    nanosleep(&pause, NULL); /* the run has begun */

    double t0 = it_now();
    CU_ASSERT_EQUAL(kill(s.pid, SIGTERM), 0);
    int status = -1;
    CU_ASSERT_EQUAL(waitpid(s.pid, &status, 0), s.pid);
    double took = it_now() - t0;
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (took > 1 + 10)
        fprintf(stderr, "shutdown took %.1f s\n", took);
    CU_ASSERT(took < 1 + 10);
    pthread_join(th, NULL);

    char ckpt[1024];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt-%s-%s.nerved", dir,
             net_id->valuestring, idle_id->valuestring);
    struct stat st;
    CU_ASSERT_EQUAL(stat(ckpt, &st), 0);
    free(lr.body);
    cJSON_Delete(idle);
    cJSON_Delete(busy);
    it_remove_tree(dir);
    free(dir);
}

int main(void)
{
    static const tu_test tests[] = {
        {"network names cannot shadow ids", test_names_cannot_shadow_ids},
        {"a stored name of id form is dropped at load",
         test_stored_name_of_id_form},
        {"a stored name no URL can address is dropped, the network kept",
         test_stored_name_a_url_cannot_hold},
        {"odd files in the data directory are skipped",
         test_odd_files_in_the_data_dir},
        {"--version, GET /v2 and nerved_build_info", test_version},
        {"boolean variables take words, refuse others", test_boolean_words},
        {"SIGHUP is ignored", test_sighup_is_ignored},
        {"SIGTERM exits within --shutdown-timeout", test_shutdown_timeout},
        {NULL, NULL}};
    return tu_run_suite("hardening", tests);
}
