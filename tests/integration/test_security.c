/*
 * test_security.c — who gets in: bearer keys on every route but the
 * health checks, HTTPS verified against a certificate made for the test,
 * and no request that makes the daemon open a file a client names.
 */
#include "itest.h"
#include "testutil.h"

#include <dirent.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char scratch[512];

static const char *NET =
    "{\"name\": \"tiny\", \"nodes\": [{\"name\": \"x\", \"type\": \"Input\","
    " \"shape\": 2}, {\"name\": \"d\", \"type\": \"Dense\", \"num_unit\": 2}],"
    " \"edges\": [\"x >> d\"]}";

static void scratch_path(const char *file, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", scratch, file);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

/* status of one request with an optional header line. */
static long status_of(const it_server *s, const char *method, const char *path,
                      const char *body, const char *header, it_response *keep)
{
    it_response r;
    if (it_request_with(s, method, path, body ? "application/json" : NULL,
                        body, body ? strlen(body) : 0, header, &r)) {
        it_response_free(&r);
        return 0;
    }
    long status = r.status;
    if (keep)
        *keep = r;
    else
        it_response_free(&r);
    return status;
}

/* ------------------------------------------------------------------ keys */

static void test_bearer_keys(void)
{
    char keys[600];
    scratch_path("keys", keys, sizeof keys);
    write_text(keys, "  first-Key.123  \n\n\tsecond_key\n");
    const char *const args[] = {"--api-key-file", keys, NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);

    /* Probes need no key. */
    static const char *const open_paths[] = {"/healthz", "/readyz",
                                             "/v2/health/live",
                                             "/v2/health/ready"};
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(status_of(&s, "GET", open_paths[i], NULL, NULL, NULL),
                        200);

    /* Everything else does, even routes that do not exist. */
    static const char *const closed[][2] = {
        {"GET", "/v1/networks"}, {"GET", "/metrics"},
        {"GET", "/openapi.json"}, {"GET", "/v1/node-types"},
        {"POST", "/v2/models/tiny/infer"}, {"GET", "/v2"},
        {"GET", "/no/such/route"}, {"DELETE", "/healthz"}};
    for (size_t i = 0; i < sizeof closed / sizeof *closed; i++) {
        it_response r;
        long status = status_of(&s, closed[i][0], closed[i][1], NULL, NULL, &r);
        CU_ASSERT_EQUAL(status, 401);
        if (status) {
            CU_ASSERT_EQUAL(strncmp(r.www_authenticate, "Bearer", 6), 0);
            CU_ASSERT_PTR_NOT_NULL(strstr(r.content_type, "application/json"));
            /* /v2 answers in the Open Inference Protocol's shape. */
            int v2 = strncmp(closed[i][1], "/v2", 3) == 0;
            CU_ASSERT_PTR_NOT_NULL(strstr(r.body, v2 ? "{\"error\":\""
                                                     : "\"code\":\"unauthorized\""));
            it_response_free(&r);
        }
    }

    /* Near misses are misses. */
    static const char *const wrong[] = {
        "Authorization: Bearer first-Key.12",
        "Authorization: Bearer first-Key.1234",
        "Authorization: Bearer first-key.123",
        "Authorization: Bearer second_key first-Key.123",
        "Authorization: Basic Zmlyc3QtS2V5LjEyMw==",
        "Authorization: first-Key.123",
        "Authorization: Bearer ",
        "Authorization: Bearer secon",
        "X-Api-Key: first-Key.123"};
    for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++) {
        long status = status_of(&s, "GET", "/v1/networks", NULL, wrong[i], NULL);
        if (status != 401)
            fprintf(stderr, "'%s' got %ld\n", wrong[i], status);
        CU_ASSERT_EQUAL(status, 401);
    }
    char longer[400];
    snprintf(longer, sizeof longer, "Authorization: Bearer first-Key.123%0300d",
             0);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/v1/networks", NULL, longer, NULL),
                    401);

    /* Each key works, the scheme in any case; with a key, routes behave. */
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/v1/networks", NULL,
                              "Authorization: Bearer first-Key.123", NULL), 200);
    CU_ASSERT_EQUAL(status_of(&s, "POST", "/v1/networks", NET,
                              "Authorization: bearer second_key", NULL), 201);
    CU_ASSERT_EQUAL(status_of(&s, "POST", "/v1/networks/tiny/forward",
                              "{\"inputs\": {\"x\": [[1, 2]]}}",
                              "Authorization: Bearer second_key", NULL), 200);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/no/such/route", NULL,
                              "Authorization: Bearer second_key", NULL), 404);
    /* A refused request changed nothing. */
    CU_ASSERT_EQUAL(status_of(&s, "DELETE", "/v1/networks/tiny", NULL, NULL,
                              NULL), 401);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/v1/networks/tiny", NULL,
                              "Authorization: Bearer first-Key.123", NULL),
                    200);
    CU_ASSERT_EQUAL(it_stop(&s), 0);

    /* The variable does what the flag does. */
    setenv("NERVED_API_KEY_FILE", keys, 1);
    CU_ASSERT_EQUAL_FATAL(it_start(&s, NULL), 0);
    unsetenv("NERVED_API_KEY_FILE");
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/v1/networks", NULL, NULL, NULL),
                    401);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/v1/networks", NULL,
                              "Authorization: Bearer second_key", NULL), 200);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

static void test_bad_key_files_stop_the_start(void)
{
    char empty[600], spaced[600], err[2048];
    scratch_path("no-keys", empty, sizeof empty);
    scratch_path("spaced-keys", spaced, sizeof spaced);
    write_text(empty, "\n   \n");
    write_text(spaced, "good\ntwo words\n");
    const char *const a1[] = {"--api-key-file", empty, NULL};
    CU_ASSERT_EQUAL(it_run(a1, err, sizeof err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "holds no key"));
    const char *const a2[] = {"--api-key-file", spaced, NULL};
    CU_ASSERT_EQUAL(it_run(a2, err, sizeof err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "line 2"));
    const char *const a3[] = {"--api-key-file", "/nonexistent/keys", NULL};
    CU_ASSERT_EQUAL(it_run(a3, err, sizeof err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot read"));
}

/* ------------------------------------------------------------------- TLS */

/* A self-signed certificate for 127.0.0.1, made now: nothing secret is
 * kept in the tree. */
static void make_certificate(const char *name)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt "
             "ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 -keyout '%s/%s.key' "
             "-out '%s/%s.crt' >/dev/null 2>&1",
             scratch, name, scratch, name);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
}

static void test_https(void)
{
    make_certificate("server");
    make_certificate("stranger");
    char cert[600], key[600], stranger[600];
    scratch_path("server.crt", cert, sizeof cert);
    scratch_path("server.key", key, sizeof key);
    scratch_path("stranger.crt", stranger, sizeof stranger);
    const char *const args[] = {"--tls-cert", cert, "--tls-key", key, NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start_tls(&s, args, cert), 0);
    CU_ASSERT_EQUAL(strncmp(s.base, "https://", 8), 0);

    /* Verified against the certificate: the whole API works. */
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/healthz", NULL, NULL, NULL), 200);
    CU_ASSERT_EQUAL(status_of(&s, "POST", "/v1/networks", NET, NULL, NULL), 201);
    it_response r;
    CU_ASSERT_EQUAL(status_of(&s, "POST", "/v1/networks/tiny/forward",
                              "{\"inputs\": {\"x\": [[1, 2]]}}", NULL, &r), 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"outputs\""));
    it_response_free(&r);

    /* A client that trusts another certificate refuses this server, and
     * plain HTTP gets no answer. */
    it_server doubter = s;
    snprintf(doubter.cainfo, sizeof doubter.cainfo, "%s", stranger);
    CU_ASSERT_EQUAL(status_of(&doubter, "GET", "/healthz", NULL, NULL, NULL), 0);
    it_server plain = s;
    plain.cainfo[0] = '\0';
    snprintf(plain.base, sizeof plain.base, "http://127.0.0.1:%d", s.port);
    CU_ASSERT_EQUAL(status_of(&plain, "GET", "/healthz", NULL, NULL, NULL), 0);
    CU_ASSERT_EQUAL(it_stop(&s), 0);

    /* HTTPS and keys together. */
    char keys[600];
    scratch_path("tls-keys", keys, sizeof keys);
    write_text(keys, "over-tls\n");
    const char *const both[] = {"--tls-cert", cert, "--tls-key", key,
                                "--api-key-file", keys, NULL};
    CU_ASSERT_EQUAL_FATAL(it_start_tls(&s, both, cert), 0);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/v1/networks", NULL, NULL, NULL), 401);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/v1/networks", NULL,
                              "Authorization: Bearer over-tls", NULL), 200);
    CU_ASSERT_EQUAL(it_stop(&s), 0);

    /* Bad configurations stop the start, saying why. */
    char err[2048], garbage[600];
    const char *const half[] = {"--tls-cert", cert, NULL};
    CU_ASSERT_EQUAL(it_run(half, err, sizeof err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--tls-cert and --tls-key go together"));
    const char *const missing[] = {"--tls-cert", "/nonexistent.crt",
                                   "--tls-key", key, NULL};
    CU_ASSERT_EQUAL(it_run(missing, err, sizeof err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot read '/nonexistent.crt'"));
    scratch_path("garbage.pem", garbage, sizeof garbage);
    write_text(garbage, "not a certificate\n");
    const char *const junk[] = {"--port", "0", "--tls-cert", garbage,
                                "--tls-key", garbage, NULL};
    CU_ASSERT_EQUAL(it_run(junk, err, sizeof err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "TLS certificate and key were refused"));
}

/* --------------------------------------------------------------- plugins */

static int mapped(pid_t pid, const char *needle)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* ---------------------------------------------------------- quotas */

static const char *QUOTA_NET =
    "{\"name\": \"q\", \"nodes\": [{\"name\": \"x\", \"type\": \"Input\", "
    "\"shape\": 1}, {\"name\": \"r\", \"type\": \"VanillaRNN\", "
    "\"num_unit\": 8, \"activation\": \"tanh\"}, {\"name\": \"o\", "
    "\"type\": \"Dense\", \"num_unit\": 1}], \"edges\": [\"x >> r >> o\"]}";

static const char *ENDLESS_FIT =
    "{\"method\": \"bptt\", \"epochs\": 1000000, \"inputs\": {\"x\": "
    "[[[1], [0], [1], [0]]]}, \"targets\": {\"o\": [[[0], [1], [0], [1]]]}}";

static void test_quotas_per_key(void)
{
    char keys[600];
    scratch_path("quota-keys", keys, sizeof keys);
    write_text(keys, "alpha-key\nbeta-key\n");
    const char *const args[] = {"--api-key-file", keys,
                                "--max-sessions-per-key", "2",
                                "--max-fits-per-key", "1", NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    const char *a = "Authorization: Bearer alpha-key";
    const char *b = "Authorization: Bearer beta-key";
    CU_ASSERT_EQUAL(status_of(&s, "POST", "/v1/networks", QUOTA_NET, a, NULL),
                    201);
    /* Two sessions each; alpha's third is refused, beta's first is not. */
    CU_ASSERT_EQUAL(status_of(&s, "POST", "/v1/networks/q/sessions", NULL, a,
                              NULL), 201);
    CU_ASSERT_EQUAL(status_of(&s, "POST", "/v1/networks/q/sessions", NULL, a,
                              NULL), 201);
    it_response r;
    CU_ASSERT_EQUAL(status_of(&s, "POST", "/v1/networks/q/sessions", NULL, a,
                              &r), 429);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "--max-sessions-per-key"));
    it_response_free(&r);
    CU_ASSERT_EQUAL(status_of(&s, "POST", "/v1/networks/q/sessions", NULL, b,
                              NULL), 201);
    /* A KServe sequence is a session too: alpha cannot start one, beta can. */
    const char *seq = "{\"parameters\": {\"sequence_id\": \"k1\", "
                      "\"sequence_start\": true}, \"inputs\": [{\"name\": "
                      "\"x\", \"shape\": [1, 1], \"datatype\": \"FP32\", "
                      "\"data\": [1]}]}";
    CU_ASSERT_EQUAL(status_of(&s, "POST", "/v2/models/q/infer", seq, a, &r),
                    429);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "--max-sessions-per-key"));
    cJSON *shape = cJSON_Parse(r.body);
    CU_ASSERT_TRUE(cJSON_IsString(cJSON_GetObjectItem(shape, "error")));
    cJSON_Delete(shape);
    it_response_free(&r);
    CU_ASSERT_EQUAL(status_of(&s, "POST", "/v2/models/q/infer", seq, b, NULL),
                    200);
    /* Deleting one of alpha's gives its place back. */
    CU_ASSERT_EQUAL(status_of(&s, "DELETE", "/v1/networks/q/sessions/s1",
                              NULL, a, NULL), 200);
    CU_ASSERT_EQUAL(status_of(&s, "POST", "/v1/networks/q/sessions", NULL, a,
                              NULL), 201);

    /* One running fit each: alpha's second (on another network) waits its
     * turn with 429, beta's runs. */
    char def[1024];
    snprintf(def, sizeof def, "%s", QUOTA_NET);
    memcpy(strstr(def, "\"q\""), "\"p\"", 3);
    CU_ASSERT_EQUAL(status_of(&s, "POST", "/v1/networks", def, a, NULL), 201);
    CU_ASSERT_EQUAL(status_of(&s, "POST", "/v1/networks/q/fit", ENDLESS_FIT, a,
                              NULL), 202);
    CU_ASSERT_EQUAL(status_of(&s, "POST", "/v1/networks/p/fit", ENDLESS_FIT, a,
                              &r), 429);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "--max-fits-per-key"));
    it_response_free(&r);
    CU_ASSERT_EQUAL(status_of(&s, "POST", "/v1/networks/p/fit", ENDLESS_FIT, b,
                              NULL), 202);
    /* Each refusal is counted where the README says: q's session and
     * sequence, p's fit. */
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/metrics", NULL, a, &r), 200);
    const char *q = "\nnerved_rejected_total{network=\"n1\",reason=\"quota\"} ";
    const char *p = "\nnerved_rejected_total{network=\"n2\",reason=\"quota\"} ";
    const char *at_q = strstr(r.body, q), *at_p = strstr(r.body, p);
    CU_ASSERT(at_q && strtod(at_q + strlen(q), NULL) == 2);
    CU_ASSERT(at_p && strtod(at_p + strlen(p), NULL) == 1);
    it_response_free(&r);
    /* SIGTERM cancels the endless fits. */
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

/* ------------------------------------------------ framing and the log */

/* Sends raw bytes on a fresh connection; reads what comes back (up to
 * size - 1 bytes) until the daemon closes or 3 s pass. */
static size_t raw_exchange(const it_server *s, const char *request,
                           char *reply, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {0};
    to.sin_family = AF_INET;
    to.sin_port = htons((uint16_t)s->port);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    size_t got = 0;
    if (fd >= 0 && connect(fd, (struct sockaddr *)&to, sizeof to) == 0 &&
        send(fd, request, strlen(request), MSG_NOSIGNAL) >= 0) {
        struct timeval tv = {3, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ssize_t n;
        while (got + 1 < size &&
               (n = recv(fd, reply + got, size - 1 - got, 0)) > 0)
            got += (size_t)n;
    }
    if (fd >= 0)
        close(fd);
    reply[got] = '\0';
    return got;
}

static void test_smuggling_is_refused(void)
{
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, NULL), 0);
    /* Both framings: whichever a proxy used, the rest would be read as a
     * second request. Refused, and the connection closed, so no second
     * answer comes. */
    char reply[8192];
    raw_exchange(&s, "POST /v1/networks HTTP/1.1\r\nHost: x\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                 reply, sizeof reply);
    CU_ASSERT_EQUAL(strncmp(reply, "HTTP/1.1 400", 12), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(reply, "Content-Length and "
                                         "Transfer-Encoding"));
    CU_ASSERT_PTR_NULL(strstr(reply + 1, "HTTP/1.1 200"));
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

/* How many times key appears as a key of the logfmt record line (values
 * are bare words or quoted with backslash escapes), or -1 when the line is
 * not logfmt. */
static int logfmt_count(const char *line, const char *key)
{
    int count = 0;
    const char *p = line;
    while (*p && *p != '\n') {
        const char *k = p;
        while (*p && *p != '=' && *p != ' ' && *p != '\n')
            p++;
        if (*p != '=' || p == k)
            return -1;
        count += (size_t)(p - k) == strlen(key) && strncmp(k, key, strlen(key)) == 0;
        p++;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (*p != '"')
                return -1;
            p++;
        } else {
            while (*p && *p != ' ' && *p != '\n')
                p++;
        }
        if (*p == ' ')
            p++;
    }
    return count;
}

static void test_access_log_is_logfmt(void)
{
    char log[600];
    scratch_path("access.log", log, sizeof log);
    it_server s;
    const char *const args[] = {"--quiet=false", NULL};
    CU_ASSERT_EQUAL_FATAL(it_start_logged(&s, args, log), 0);
    /* A path with a new line, quotes, a space and a key of its own. */
    char reply[4096];
    raw_exchange(&s, "GET /x%0a%22y\"z%20status=200 HTTP/1.1\r\nHost: x\r\n"
                     "Connection: close\r\n\r\n", reply, sizeof reply);
    CU_ASSERT_EQUAL(strncmp(reply, "HTTP/1.1 404", 12), 0);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
    /* Every line of the access log is one record: method=, a quoted path,
     * then exactly one status. */
    FILE *f = fopen(log, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char line[2048];
    int records = 0, forged = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "method=", 7) != 0)
            continue;
        records++;
        forged += logfmt_count(line, "status") != 1 ||
                  logfmt_count(line, "path") != 1;
    }
    fclose(f);
    CU_ASSERT_EQUAL(records, 1);
    CU_ASSERT_EQUAL(forged, 0);
}

static void test_clients_cannot_load_plugins(void)
{
    const char *plugin = getenv("NERVED_PLUGIN");
    CU_ASSERT_PTR_NOT_NULL_FATAL(plugin);
    const char *base = strrchr(plugin, '/') ? strrchr(plugin, '/') + 1 : plugin;
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, NULL), 0);
    it_response before;
    CU_ASSERT_EQUAL_FATAL(status_of(&s, "GET", "/v1/node-types", NULL, NULL,
                                    &before), 200);

    /* Every place a client could name the plugin file. */
    char body[2048];
    long status;
    snprintf(body, sizeof body, "{\"nodes\": [{\"name\": \"i\", \"type\": "
             "\"Input\", \"shape\": 2}, {\"name\": \"p\", \"type\": \"%s\"}], "
             "\"edges\": [\"i >> p\"]}", plugin);
    status = status_of(&s, "POST", "/v1/networks", body, NULL, NULL);
    CU_ASSERT(status >= 400 && status < 500);
    snprintf(body, sizeof body, "{\"plugin\": \"%s\", \"plugins\": [\"%s\"], "
             "\"nodes\": [{\"name\": \"i\", \"type\": \"Input\", \"shape\": 2}],"
             " \"edges\": []}", plugin, plugin);
    status = status_of(&s, "POST", "/v1/networks", body, NULL, NULL);
    CU_ASSERT(status >= 400 && status < 500);
    snprintf(body, sizeof body, "{\"nodes\": [{\"name\": \"i\", \"type\": "
             "\"Input\", \"shape\": 2}, {\"name\": \"d\", \"type\": \"Dense\", "
             "\"num_unit\": 2, \"plugin\": \"%s\", \"init\": \"%s\"}], "
             "\"edges\": [\"i >> d\"]}", plugin, plugin);
    status = status_of(&s, "POST", "/v1/networks", body, NULL, NULL);
    CU_ASSERT(status >= 400 && status < 500);
    snprintf(body, sizeof body, "{\"path\": \"%s\"}", plugin);
    static const char *const routes[][2] = {
        {"POST", "/v1/plugins"}, {"PUT", "/v1/node-types"},
        {"POST", "/v1/node-types"}};
    for (int i = 0; i < 3; i++) {
        status = status_of(&s, routes[i][0], routes[i][1], body, NULL, NULL);
        CU_ASSERT(status == 404 || status == 405);
    }
    char path[1200];
    snprintf(path, sizeof path, "/v1/node-types?plugin=%s", plugin);
    CU_ASSERT_EQUAL(status_of(&s, "GET", path, NULL, NULL, NULL), 200);

    /* Nothing was loaded: the same node types, the file not mapped. */
    it_response after;
    CU_ASSERT_EQUAL_FATAL(status_of(&s, "GET", "/v1/node-types", NULL, NULL,
                                    &after), 200);
    CU_ASSERT_STRING_EQUAL(before.body, after.body);
    CU_ASSERT_PTR_NULL(strstr(after.body, "\"DotNode\""));
    CU_ASSERT_EQUAL(mapped(s.pid, base), 0);
    it_response_free(&before);
    it_response_free(&after);
    CU_ASSERT_EQUAL(it_stop(&s), 0);

    /* The check can fail: loaded at start, the file is mapped. */
    const char *const args[] = {"--plugin", plugin, NULL};
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    CU_ASSERT_EQUAL(mapped(s.pid, base), 1);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

/* ------------------------------------------------------------------ main */

static void remove_scratch(void)
{
    DIR *d = opendir(scratch);
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", scratch, e->d_name);
        if (e->d_name[0] != '.')
            unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(scratch);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/nerved-security-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(scratch))
        return 2;
    static const tu_test tests[] = {
        {"bearer keys on every route but the health checks", test_bearer_keys},
        {"bad key files stop the start", test_bad_key_files_stop_the_start},
        {"sessions and fits are counted per key", test_quotas_per_key},
        {"a request framed twice is refused", test_smuggling_is_refused},
        {"the access log is logfmt, whatever the path",
         test_access_log_is_logfmt},
        {"HTTPS verified against the server's certificate", test_https},
        {"no request makes the daemon load a plugin",
         test_clients_cannot_load_plugins},
        {NULL, NULL}};
    int rc = tu_run_suite("security", tests);
    remove_scratch();
    return rc;
}
