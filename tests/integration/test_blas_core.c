/*
 * test_blas_core.c — the daemon's choice of OpenBLAS kernels (--blas-core),
 * checked without depending on this machine's CPU: with keep the daemon
 * reports the core OpenBLAS picks by itself (as it does in this test
 * process); with auto it reports OpenBLAS's pick or one of the cores it may
 * choose, the self-test's result and the CPU features; a core asked for by
 * name that is already OpenBLAS's pick is kept without a re-execution; an
 * unknown name is refused at start, by flag and by NERVED_BLAS_CORE.
 */
#include "itest.h"
#include "testutil.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* GET /v2's "blas" object of a daemon started with args, and /metrics. */
static cJSON *blas_of(const char *const *args, char *metrics, size_t size)
{
    it_server s;
    if (it_start(&s, args)) {
        CU_FAIL("the daemon did not start");
        return NULL;
    }
    cJSON *v2 = it_call(&s, "GET", "/v2", NULL, 200);
    it_response r;
    memset(&r, 0, sizeof r);
    if (it_request(&s, "GET", "/metrics", NULL, NULL, 0, &r) == 0 && r.body)
        snprintf(metrics, size, "%s", r.body);
    it_response_free(&r);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
    cJSON *blas = cJSON_DetachItemFromObject(v2, "blas");
    cJSON_Delete(v2);
    CU_ASSERT_PTR_NOT_NULL(blas);
    return blas;
}

static const char *field(const cJSON *o, const char *key)
{
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
    return v ? v : "";
}

/* The core OpenBLAS picks in a process that does not tell it. */
static const char *own_core(void) { return openblas_get_corename(); }

/* Under a wrapper (valgrind) the daemon sees the wrapper's emulated CPU,
 * not this process's: its own pick may differ from ours. */
static int same_cpu(void)
{
    const char *w = getenv("NERVED_WRAPPER");
    return !w || !*w;
}

static void test_keep_reports_openblas_choice(void)
{
    static const char *const args[] = {"--blas-core", "keep", NULL};
    static char metrics[65536];
    cJSON *b = blas_of(args, metrics, sizeof metrics);
    if (!b)
        return;
    if (same_cpu())
        CU_ASSERT(strcasecmp(field(b, "core"), own_core()) == 0);
    CU_ASSERT(field(b, "core")[0] != '\0');
    CU_ASSERT_STRING_EQUAL(field(b, "mode"), "keep");
    CU_ASSERT_STRING_EQUAL(field(b, "selftest"), "passed");
    CU_ASSERT(field(b, "cpu_features")[0] != '\0');
    char want[256];
    snprintf(want, sizeof want, ",blas_core=\"%s\","
             "blas_mode=\"keep\",blas_selftest=\"passed\",cpu_features=\"%s\"} 1",
             field(b, "core"), field(b, "cpu_features"));
    CU_ASSERT_PTR_NOT_NULL(strstr(metrics, want));
    cJSON_Delete(b);
}

static void test_auto_is_an_allowed_choice(void)
{
    static char metrics[65536];
    cJSON *b = blas_of(NULL, metrics, sizeof metrics); /* auto by default */
    if (!b)
        return;
    const char *core = field(b, "core"), *choice = field(b, "choice");
    CU_ASSERT_STRING_EQUAL(field(b, "mode"), "auto");
    int own = strcasecmp(core, own_core()) == 0 || !same_cpu();
    int upgraded = strcmp(core, "Haswell") == 0 ||
                   strcmp(core, "SkylakeX") == 0;
    CU_ASSERT(own || upgraded);
    if (!own) /* a re-execution chose it, and says so */
        CU_ASSERT_PTR_NOT_NULL(strstr(choice, "chosen"));
    const char *t = field(b, "selftest");
    CU_ASSERT(strcmp(t, "passed") == 0 || strcmp(t, "failed") == 0);
    if (strcmp(t, "failed") == 0) /* then it went back to OpenBLAS's pick */
        CU_ASSERT(own);
    CU_ASSERT_PTR_NOT_NULL(strstr(metrics, "nerved_build_info{version=\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(metrics, "blas_mode=\"auto\""));
    cJSON_Delete(b);
}

static void test_named_core_already_picked(void)
{
    if (!same_cpu())
        return; /* the wrapper's CPU may lack what our pick needs */
    const char *args[] = {"--blas-core", own_core(), NULL};
    static char metrics[65536];
    cJSON *b = blas_of(args, metrics, sizeof metrics);
    if (!b)
        return;
    CU_ASSERT(strcasecmp(field(b, "core"), own_core()) == 0);
    CU_ASSERT_STRING_EQUAL(field(b, "mode"), own_core());
    CU_ASSERT_STRING_EQUAL(field(b, "selftest"), "passed");
    cJSON_Delete(b);
}

static void test_unknown_core_refused(void)
{
    static const char *const args[] = {"--blas-core", "Pentium9000", NULL};
    char err[4096] = "";
    CU_ASSERT_EQUAL(it_run(args, err, sizeof err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--blas-core Pentium9000"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a core"));
    /* The same through the environment. */
    setenv("NERVED_BLAS_CORE", "Pentium9000", 1);
    static const char *const none[] = {NULL};
    err[0] = '\0';
    CU_ASSERT_EQUAL(it_run(none, err, sizeof err), 2);
    unsetenv("NERVED_BLAS_CORE");
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "Pentium9000"));
}

int main(void)
{
    static const tu_test tests[] = {
        {"keep reports OpenBLAS's own choice",
         test_keep_reports_openblas_choice},
        {"auto reports an allowed choice and the self-test",
         test_auto_is_an_allowed_choice},
        {"a named core OpenBLAS picked anyway is kept",
         test_named_core_already_picked},
        {"an unknown core is refused at start", test_unknown_core_refused},
        {NULL, NULL}};
    return tu_run_suite("blas_core", tests);
}
