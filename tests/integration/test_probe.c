/*
 * test_probe.c — `nerved --probe`, the image's health check: healthy (0)
 * only while a daemon answers /healthz at the address, port and protocol
 * its flags and environment describe, and 1, saying why, otherwise.
 */
#include "itest.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *scratch;

static int probe(const char *port, const char *cert, const char *key,
                 char *err, size_t size)
{
    const char *args[8] = {"--probe", "--port", port, NULL};
    if (cert) {
        args[3] = "--tls-cert";
        args[4] = cert;
        args[5] = "--tls-key";
        args[6] = key;
    }
    return it_run(args, err, size);
}

static void test_plain(void)
{
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, NULL), 0);
    char port[16], err[1024];
    snprintf(port, sizeof port, "%d", s.port);
    CU_ASSERT_EQUAL(probe(port, NULL, NULL, err, sizeof err), 0);
    CU_ASSERT_EQUAL(err[0], '\0');
    /* The variables the image sets are read as the daemon reads them: a
     * wildcard host is asked on loopback. */
    setenv("NERVED_HOST", "0.0.0.0", 1);
    setenv("NERVED_PORT", port, 1);
    const char *const by_env[] = {"--probe", NULL};
    CU_ASSERT_EQUAL(it_run(by_env, err, sizeof err), 0);
    unsetenv("NERVED_HOST");
    unsetenv("NERVED_PORT");
    CU_ASSERT_EQUAL(it_stop(&s), 0);

    /* Nobody there any more. */
    CU_ASSERT_EQUAL(probe(port, NULL, NULL, err, sizeof err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot connect to 127.0.0.1"));
    CU_ASSERT_EQUAL(probe("0", NULL, NULL, err, sizeof err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--port 0"));
}

static void test_tls(void)
{
    char cmd[2048], cert[600], key[600];
    snprintf(cert, sizeof cert, "%s/server.crt", scratch);
    snprintf(key, sizeof key, "%s/server.key", scratch);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt "
             "ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=nerved "
             "-keyout '%s' -out '%s' >/dev/null 2>&1", key, cert);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
    const char *const args[] = {"--tls-cert", cert, "--tls-key", key, NULL};
    it_server s;
    CU_ASSERT_EQUAL_FATAL(it_start_tls(&s, args, cert), 0);
    char port[16], err[1024];
    snprintf(port, sizeof port, "%d", s.port);
    CU_ASSERT_EQUAL(probe(port, cert, key, err, sizeof err), 0);
    /* Plain HTTP to an HTTPS daemon gets no HTTP answer: unhealthy. */
    CU_ASSERT_EQUAL(probe(port, NULL, NULL, err, sizeof err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not 200"));
    CU_ASSERT_EQUAL(it_stop(&s), 0);

    /* And TLS to a plain daemon fails its handshake. */
    CU_ASSERT_EQUAL_FATAL(it_start(&s, NULL), 0);
    snprintf(port, sizeof port, "%d", s.port);
    CU_ASSERT_EQUAL(probe(port, cert, key, err, sizeof err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "TLS handshake failed"));
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

int main(void)
{
    scratch = it_temp_dir("nerved-probe");
    if (!scratch)
        return 2;
    static const tu_test tests[] = {
        {"--probe over plain HTTP, by flags and by environment", test_plain},
        {"--probe over TLS", test_tls},
        {NULL, NULL}};
    int rc = tu_run_suite("probe", tests);
    it_remove_tree(scratch);
    free(scratch);
    return rc;
}
