/*
 * test_attack.c — requests found to break the rule that every request
 * fully received gets a 4xx with a JSON body naming the fault: each case
 * here once hung, dropped its connection or answered with a body that was
 * not JSON. Sent over raw sockets, byte for byte, since an HTTP client
 * library would refuse to send most of them.
 */
#include "itest.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static it_server server;

static const char *NET =
    "{\"name\": \"m\", \"nodes\": [{\"name\": \"x\", \"type\": \"Input\", "
    "\"shape\": 2}, {\"name\": \"y\", \"type\": \"Dense\", \"num_unit\": 3}], "
    "\"edges\": [\"x >> y\"]}";

typedef struct raw_answer {
    int status; /* 0: closed or silent without a status line */
    char *body; /* after the headers, NUL-terminated; malloc'd */
    char head[2048];
    double seconds; /* until the answer was whole or the connection closed */
} raw_answer;

/* Sends the bytes as they are and reads until the server closes (every
 * request here says Connection: close) or ms pass. */
static void send_raw(const char *bytes, size_t len, int ms, raw_answer *a)
{
    memset(a, 0, sizeof *a);
    a->body = calloc(1, 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)server.port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0);
    double start = it_now();
    CU_ASSERT((size_t)send(fd, bytes, len, MSG_NOSIGNAL) == len);
    size_t size = 1 << 16, got = 0;
    char *buf = malloc(size);
    CU_ASSERT_FATAL(buf != NULL);
    for (;;) {
        int left = ms - (int)((it_now() - start) * 1000);
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t n = recv(fd, buf + got, size - got - 1, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got + 1 >= size)
            break;
    }
    a->seconds = it_now() - start;
    close(fd);
    buf[got] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.", 7) == 0 && end) {
        a->status = atoi(buf + 9);
        size_t hl = (size_t)(end - buf);
        snprintf(a->head, sizeof a->head, "%.*s", (int)hl, buf);
        free(a->body);
        a->body = strdup(end + 4);
    }
    free(buf);
}

/* The answer is the status with a JSON error body whose message holds
 * want. */
static void expect_json_error(const raw_answer *a, int status,
                              const char *want)
{
    CU_ASSERT_EQUAL(a->status, status);
    CU_ASSERT_PTR_NOT_NULL(strstr(a->head, "application/json"));
    cJSON *j = cJSON_Parse(a->body);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    CU_ASSERT_TRUE(cJSON_IsString(m));
    if (cJSON_IsString(m) && !strstr(m->valuestring, want)) {
        fprintf(stderr, "message '%s' does not say '%s'\n", m->valuestring,
                want);
        CU_FAIL("message");
    }
    if (a->status != status || !j)
        fprintf(stderr, "got %d: %s\n%s\n", a->status, a->head, a->body);
    cJSON_Delete(j);
}

/* Whether s is well-formed UTF-8 (RFC 3629), checked here independently
 * of the daemon's own check. */
static int valid_utf8(const unsigned char *s)
{
    while (*s) {
        int n = *s < 0x80 ? 1 : (*s & 0xE0) == 0xC0 ? 2
                              : (*s & 0xF0) == 0xE0 ? 3
                              : (*s & 0xF8) == 0xF0 ? 4 : 0;
        if (n == 0 || (n == 2 && *s < 0xC2))
            return 0;
        unsigned cp = n == 1 ? *s : n == 2 ? (*s & 0x1Fu)
                              : n == 3 ? (*s & 0x0Fu) : (*s & 0x07u);
        for (int k = 1; k < n; k++) {
            if ((s[k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[k] & 0x3Fu);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 ||
                                                  cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        s += n;
    }
    return 1;
}

/* "Transfer-Encoding: gzip, chunked" (or any coding but chunked):
 * libmicrohttpd took the body to end at the client's close, so the
 * request waited, unanswered, for the connection timeout. */
static void test_transfer_codings(void)
{
    static const char *const codings[] = {"gzip, chunked", "identity",
                                          "chunked, gzip", "chunkedx"};
    for (size_t i = 0; i < sizeof codings / sizeof *codings; i++) {
        char req[512];
        int n = snprintf(req, sizeof req,
                         "POST /v1/networks/m/forward HTTP/1.1\r\n"
                         "Host: x\r\nConnection: close\r\n"
                         "Content-Type: application/json\r\n"
                         "Transfer-Encoding: %s\r\n\r\n"
                         "1b\r\n{\"inputs\": {\"x\": [[1, 2]]}}\r\n0\r\n\r\n",
                         codings[i]);
        raw_answer a;
        send_raw(req, (size_t)n, 4000, &a);
        expect_json_error(&a, 400, "Transfer-Encoding");
        CU_ASSERT(a.seconds < 3);
        free(a.body);
    }
    /* chunked itself, in any case, still works. */
    static const char ok[] =
        "POST /v1/networks/m/forward HTTP/1.1\r\nHost: x\r\n"
        "Connection: close\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: Chunked\r\n\r\n"
        "1b\r\n{\"inputs\": {\"x\": [[1, 2]]}}\r\n0\r\n\r\n";
    raw_answer a;
    send_raw(ok, sizeof ok - 1, 4000, &a);
    CU_ASSERT_EQUAL(a.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(a.body, "\"outputs\""));
    free(a.body);
}

/* Two Content-Length headers of different values: libmicrohttpd read the
 * first, so the bytes past it became a second request, one that a proxy
 * reading the last length would have passed on unseen. */
static void test_conflicting_lengths(void)
{
    cJSON_Delete(it_call(&server, "POST", "/v1/networks",
                         "{\"name\": \"smuggled\", \"nodes\": [{\"name\": "
                         "\"x\", \"type\": \"Input\", \"shape\": 1}, "
                         "{\"name\": \"y\", \"type\": \"Dense\", "
                         "\"num_unit\": 1}], \"edges\": [\"x >> y\"]}", 201));
    static const char hidden[] = "DELETE /v1/networks/smuggled HTTP/1.1\r\n"
                                 "Host: x\r\n\r\n";
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /v1/networks/m/forward HTTP/1.1\r\nHost: x\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: 27\r\nContent-Length: %zu\r\n\r\n"
                     "{\"inputs\": {\"x\": [[1, 2]]}}%s",
                     27 + strlen(hidden), hidden);
    raw_answer a;
    send_raw(req, (size_t)n, 4000, &a);
    expect_json_error(&a, 400, "Content-Length");
    free(a.body);
    /* The hidden request did not run. */
    cJSON_Delete(it_call(&server, "GET", "/v1/networks/smuggled", NULL, 200));
    /* Copies of one value are one length (RFC 9112 6.3). */
    static const char same[] =
        "POST /v1/networks/m/forward HTTP/1.1\r\nHost: x\r\n"
        "Connection: close\r\nContent-Type: application/json\r\n"
        "Content-Length: 27\r\nContent-Length: 27\r\n\r\n"
        "{\"inputs\": {\"x\": [[1, 2]]}}";
    send_raw(same, sizeof same - 1, 4000, &a);
    CU_ASSERT_EQUAL(a.status, 200);
    free(a.body);
}

/* A member given twice was read two ways: lookups took the first (the
 * network's name), loops over the members the last (a node's
 * parameters). Now it is refused, in any object of the document. */
static void test_repeated_members(void)
{
    static const char *const bodies[] = {
        "{\"name\": \"a\", \"name\": \"b\", \"nodes\": [{\"name\": \"x\", "
        "\"type\": \"Input\", \"shape\": 1}, {\"name\": \"y\", \"type\": "
        "\"Dense\", \"num_unit\": 1}], \"edges\": [\"x >> y\"]}",
        "{\"nodes\": [{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1}, "
        "{\"name\": \"y\", \"type\": \"Dense\", \"num_unit\": 3, "
        "\"num_unit\": 5}], \"edges\": [\"x >> y\"]}",
    };
    const char *names[] = {"name", "num_unit"};
    for (size_t k = 0; k < sizeof bodies / sizeof *bodies; k++) {
        cJSON *j = it_call(&server, "POST", "/v1/networks", bodies[k], 400);
        const char *msg = cJSON_GetStringValue(
            cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message"));
        CU_ASSERT(msg && strstr(msg, "twice") && strstr(msg, names[k]));
        cJSON_Delete(j);
    }
    /* An object of many members is checked too (sorted, not pairwise). */
    char big[4096];
    size_t n = (size_t)snprintf(big, sizeof big, "{\"batch\": 1, \"meta\": {");
    for (int k = 0; k < 100; k++)
        n += (size_t)snprintf(big + n, sizeof big - n, "\"k%d\": %d, ", k, k);
    snprintf(big + n, sizeof big - n, "\"k7\": 0}}");
    cJSON *j = it_call(&server, "POST", "/v1/networks/m/sessions", big, 400);
    const char *msg = cJSON_GetStringValue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message"));
    CU_ASSERT(msg && strstr(msg, "'k7' twice"));
    cJSON_Delete(j);
}

/* With keys, a request without one was refused first, and its body
 * drained: under a coding libmicrohttpd reads to the client's close, for
 * ever. The framing is refused before the key is asked for. */
static void test_transfer_coding_without_key(void)
{
    char *dir = it_temp_dir("nerved-attack");
    CU_ASSERT_FATAL(dir != NULL);
    char keys[512];
    snprintf(keys, sizeof keys, "%s/keys", dir);
    FILE *f = fopen(keys, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs("attack-key-1\n", f);
    fclose(f);
    const char *args[] = {"--api-key-file", keys, NULL};
    it_server keyed;
    CU_ASSERT_FATAL(it_start(&keyed, args) == 0);
    it_server plain = server;
    server = keyed;
    static const char req[] =
        "POST /v1/networks/m/forward HTTP/1.1\r\nHost: x\r\n"
        "Connection: close\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: gzip, chunked\r\n\r\n"
        "1b\r\n{\"inputs\": {\"x\": [[1, 2]]}}\r\n0\r\n\r\n";
    raw_answer a;
    send_raw(req, sizeof req - 1, 4000, &a);
    expect_json_error(&a, 400, "Transfer-Encoding");
    CU_ASSERT(a.seconds < 3);
    free(a.body);
    server = plain;
    CU_ASSERT_EQUAL(it_stop(&keyed), 0);
    it_remove_tree(dir);
    free(dir);
}

/* A message quotes what the client sent; bytes that are not UTF-8 went
 * into the JSON as they were, and the body was not JSON. */
static void test_error_bodies_are_utf8(void)
{
    static const char *const bodies[] = {
        "{\"inputs\": {\"x\xff\xfe\": [[1, 2]]}}",
        /* é cut in two by the message's width for a name */
        "{\"inputs\": {\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaa\xc3\xa9\": [[1, 2]]}}",
        "{\"inputs\": {\"x\": [[1, 2]]}, \"\xed\xa0\x80\": 1}",
    };
    static const char *const paths[] = {"/v1/networks/m/forward",
                                        "/v2/models/m/infer"};
    for (size_t p = 0; p < 2; p++)
        for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
            char req[1024];
            int n = snprintf(req, sizeof req,
                             "POST %s HTTP/1.1\r\nHost: x\r\n"
                             "Connection: close\r\n"
                             "Content-Type: application/json\r\n"
                             "Content-Length: %zu\r\n\r\n%s",
                             paths[p], strlen(bodies[i]), bodies[i]);
            raw_answer a;
            send_raw(req, (size_t)n, 4000, &a);
            CU_ASSERT_EQUAL(a.status, 400);
            CU_ASSERT_TRUE(valid_utf8((const unsigned char *)a.body));
            cJSON *j = cJSON_Parse(a.body);
            CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItemCaseSensitive(j,
                                                                   "error"));
            if (!j || !valid_utf8((const unsigned char *)a.body))
                fprintf(stderr, "%s: %s\n", paths[p], a.body);
            cJSON_Delete(j);
            free(a.body);
        }
}

/* libmicrohttpd keeps each query parameter in the connection's memory
 * pool: some 250 short ones (a query of 1 KB) left the request hanging,
 * unanswered, until the connection timeout. */
static void test_many_query_params(void)
{
    static const int counts[] = {250, 2000};
    for (size_t i = 0; i < 2; i++) {
        size_t size = 64 + (size_t)counts[i] * 8;
        char *req = malloc(size + 128);
        CU_ASSERT_FATAL(req != NULL);
        int n = sprintf(req, "GET /v1/networks/m/graph?format=dot");
        for (int k = 0; k < counts[i]; k++)
            n += sprintf(req + n, "&a%d=b", k);
        n += sprintf(req + n, " HTTP/1.1\r\nHost: x\r\n"
                              "Connection: close\r\n\r\n");
        raw_answer a;
        send_raw(req, (size_t)n, 4000, &a);
        expect_json_error(&a, 400, "more than 32 parameters");
        free(a.body);
        free(req);
    }
    /* A few are read as before. */
    raw_answer a;
    static const char few[] = "GET /v1/networks/m/graph?format=svg&a=1&b=2 "
                              "HTTP/1.1\r\nHost: x\r\n"
                              "Connection: close\r\n\r\n";
    send_raw(few, sizeof few - 1, 4000, &a);
    CU_ASSERT_EQUAL(a.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(a.body, "<svg"));
    free(a.body);
}

/* lms with a large lr on targets near float32's limit ran its readout's
 * weights to inf and NaN and reported "done": the network then answered
 * null, and its export could not be imported back. */
static void test_fit_running_away(void)
{
    static const char net[] =
        "{\"name\": \"away\", \"nodes\": [{\"name\": \"x\", \"type\": "
        "\"Input\", \"shape\": 2}, {\"name\": \"y\", \"type\": \"Dense\", "
        "\"num_unit\": 2}], \"edges\": [\"x >> y\"]}";
    cJSON_Delete(it_call(&server, "POST", "/v1/networks", net, 201));
    it_response before, after;
    CU_ASSERT_FATAL(it_request(&server, "GET", "/v1/networks/away/params",
                               NULL, NULL, 0, &before) == 0);
    char fit[1024];
    int n = snprintf(fit, sizeof fit, "{\"method\": \"lms\", \"lr\": 1, "
                     "\"wait\": true, \"inputs\": {\"x\": [[");
    for (int t = 0; t < 10; t++)
        n += snprintf(fit + n, sizeof fit - (size_t)n, "%s[1, 2]",
                      t ? ", " : "");
    n += snprintf(fit + n, sizeof fit - (size_t)n,
                  "]]}, \"targets\": {\"y\": [[");
    for (int t = 0; t < 10; t++)
        n += snprintf(fit + n, sizeof fit - (size_t)n, "%s[1e38, -1e38]",
                      t ? ", " : "");
    snprintf(fit + n, sizeof fit - (size_t)n, "]]}}");
    long status = 0;
    cJSON *j = it_json(&server, "POST", "/v1/networks/away/fit", fit,
                       &status);
    CU_ASSERT_EQUAL(status, 400);
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    CU_ASSERT(text && strstr(text, "non-finite"));
    if (status != 400)
        fprintf(stderr, "fit: %ld %s\n", status, text ? text : "");
    free(text);
    cJSON_Delete(j);
    /* Nothing changed: the export is what it was, byte for byte. */
    CU_ASSERT_FATAL(it_request(&server, "GET", "/v1/networks/away/params",
                               NULL, NULL, 0, &after) == 0);
    CU_ASSERT_EQUAL(after.len, before.len);
    CU_ASSERT_TRUE(after.len == before.len &&
                   memcmp(after.body, before.body, before.len) == 0);
    it_response_free(&before);
    it_response_free(&after);
}

/* cJSON and the tensor reader both end a string at \u0000, so a name,
 * key or id "a\u0000b" was silently taken for "a": a network created
 * under another name, an input bound to another node, a KServe sequence
 * id read as none. */
static void test_nul_in_strings(void)
{
    static const struct {
        const char *method, *path, *body, *needle;
    } cases[] = {
        {"POST", "/v1/networks",
         "{\"name\": \"nul\\u0000zz\", \"nodes\": [{\"name\": \"x\", "
         "\"type\": \"Input\", \"shape\": 2}, {\"name\": \"y\", \"type\": "
         "\"Dense\", \"num_unit\": 3}], \"edges\": [\"x >> y\"]}",
         "u0000 at byte 13"},
        {"POST", "/v1/networks/m/forward",
         "{\"inputs\": {\"x\\u0000\": [[1, 2]]}}", "inputs.x"},
        {"POST", "/v1/networks/m/forward",
         "{\"inputs\": {\"x\": [[1, 2]]}, \"outputs\": [\"y\\u0000\"]}",
         "outputs[0]"},
        {"POST", "/v2/models/m/infer",
         "{\"inputs\": [{\"name\": \"x\", \"shape\": [1, 2], \"datatype\": "
         "\"FP32\", \"data\": [1, 2]}], \"parameters\": {\"sequence_id\": "
         "\"\\u0000\"}}", "u0000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        it_response r;
        CU_ASSERT_FATAL(it_request(&server, cases[i].method, cases[i].path,
                                   "application/json", cases[i].body,
                                   strlen(cases[i].body), &r) == 0);
        CU_ASSERT_EQUAL(r.status, 400);
        CU_ASSERT_PTR_NOT_NULL(strstr(r.body, cases[i].needle));
        if (r.status != 400 || !strstr(r.body, cases[i].needle))
            fprintf(stderr, "%s %s: %ld %s\n", cases[i].method,
                    cases[i].path, r.status, r.body);
        it_response_free(&r);
    }
    /* No network "nul" was made. */
    long status = 0;
    cJSON_Delete(it_json(&server, "GET", "/v1/networks/nul", NULL, &status));
    CU_ASSERT_EQUAL(status, 404);
}

/* libmicrohttpd decodes the path before the handler sees it, and %00
 * ended it: DELETE /v1/networks/keep%00/sessions/s1 was DELETE
 * /v1/networks/keep, and deleted the network. */
static void test_nul_in_path(void)
{
    static const char net[] =
        "{\"name\": \"keep\", \"nodes\": [{\"name\": \"x\", \"type\": "
        "\"Input\", \"shape\": 2}, {\"name\": \"y\", \"type\": \"Dense\", "
        "\"num_unit\": 2}], \"edges\": [\"x >> y\"]}";
    cJSON_Delete(it_call(&server, "POST", "/v1/networks", net, 201));
    static const char *const paths[] = {"/v1/networks/keep%00/sessions/s1",
                                        "/v1/networks/keep%00",
                                        "/v1/networks/keep/sessions/a%00b"};
    for (size_t i = 0; i < 3; i++) {
        long status = 0;
        cJSON *j = it_json(&server, "DELETE", paths[i], NULL, &status);
        CU_ASSERT_EQUAL(status, 400);
        char *text = j ? cJSON_PrintUnformatted(j) : NULL;
        CU_ASSERT(text && strstr(text, "%00"));
        free(text);
        cJSON_Delete(j);
    }
    /* %2F: one segment to a proxy in front, a separator here. */
    long status = 0;
    cJSON *j = it_json(&server, "DELETE", "/v1/networks/keep%2Fsessions%2Fs1",
                       NULL, &status);
    CU_ASSERT_EQUAL(status, 400);
    cJSON_Delete(j);
    cJSON_Delete(it_call(&server, "GET", "/v1/networks/keep", NULL, 200));
    /* Other escapes are decoded as before. */
    cJSON_Delete(it_call(&server, "GET", "/v1/networks/k%65ep", NULL, 200));
}

/* RFC 9112 3.2.2: a server must accept a target in absolute form. It
 * was routed as a path starting "http:", and every such request was a
 * 404. */
static void test_absolute_form(void)
{
    static const char *const targets[] = {
        "http://127.0.0.1/v1/networks/m", "HTTP://x:80/v1/networks/m",
        "https://x/v1/networks/m?format=dot"};
    for (size_t i = 0; i < 3; i++) {
        char req[256];
        int n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: x\r\n"
                         "Connection: close\r\n\r\n", targets[i]);
        raw_answer a;
        send_raw(req, (size_t)n, 4000, &a);
        CU_ASSERT_EQUAL(a.status, 200);
        CU_ASSERT_PTR_NOT_NULL(strstr(a.body, "\"name\":\"m\""));
        if (a.status != 200)
            fprintf(stderr, "%s: %d %s\n", targets[i], a.status, a.body);
        free(a.body);
    }
}

/* A KServe request's "id" is echoed in its answer: one that was not
 * UTF-8 made a 200 whose body was not JSON. */
static void test_kserve_id_utf8(void)
{
    static const char body[] =
        "{\"id\": \"a\xff\xfe\", \"inputs\": [{\"name\": \"x\", "
        "\"shape\": [1, 2], \"datatype\": \"FP32\", \"data\": [1, 2]}]}";
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n"
                     "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
                     sizeof body - 1, body);
    raw_answer a;
    send_raw(req, (size_t)n, 4000, &a);
    CU_ASSERT_EQUAL(a.status, 400);
    CU_ASSERT_TRUE(valid_utf8((const unsigned char *)a.body));
    CU_ASSERT_PTR_NOT_NULL(strstr(a.body, "is not valid UTF-8"));
    free(a.body);
    /* A valid one, with characters beyond ASCII, still comes back. */
    cJSON *j = it_call(&server, "POST", "/v2/models/m/infer",
                       "{\"id\": \"r\u00e9q-1\", \"inputs\": [{\"name\": "
                       "\"x\", \"shape\": [1, 2], \"datatype\": \"FP32\", "
                       "\"data\": [1, 2]}]}", 200);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    CU_ASSERT_TRUE(cJSON_IsString(id) &&
                   strcmp(id->valuestring, "r\xc3\xa9q-1") == 0);
    cJSON_Delete(j);
}

int main(void)
{
    static const char *const args[] = {"--connection-timeout", "10", NULL};
    if (it_start(&server, args)) {
        fprintf(stderr, "cannot start nerved\n");
        return 1;
    }
    long status = 0;
    cJSON_Delete(it_json(&server, "POST", "/v1/networks", NET, &status));
    if (status != 201) {
        fprintf(stderr, "cannot create the network: %ld\n", status);
        it_stop(&server);
        return 1;
    }
    static const tu_test tests[] = {
        {"a transfer coding other than chunked is refused at once",
         test_transfer_codings},
        {"a transfer coding is refused at once also without a key",
         test_transfer_coding_without_key},
        {"Content-Length headers of different values are refused",
         test_conflicting_lengths},
        {"a member given twice is refused", test_repeated_members},
        {"error bodies are UTF-8 whatever bytes the request quoted",
         test_error_bodies_are_utf8},
        {"a query of hundreds of parameters is refused, not left hanging",
         test_many_query_params},
        {"a fit that runs its weights to inf fails and changes nothing",
         test_fit_running_away},
        {"a \\u0000 in a name, key or id is refused, not cut",
         test_nul_in_strings},
        {"a %00 in the path is refused, not taken for its end",
         test_nul_in_path},
        {"a target in absolute form is routed by its path",
         test_absolute_form},
        {"a KServe id that is not UTF-8 is refused, not echoed",
         test_kserve_id_utf8},
        {NULL, NULL}};
    int rc = tu_run_suite("attack", tests);
    if (it_stop(&server) != 0)
        rc = 1;
    return rc;
}
