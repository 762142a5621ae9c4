/*
 * test_harden.c — defects a hostile client or a careless operator could
 * reach: network names that would shadow ids, files in the data directory
 * that are not what their names say, the command
 * line (--version, boolean environment variables, SIGHUP) and a shutdown
 * that must end within --shutdown-timeout.
 */
#define _GNU_SOURCE
#include "itest.h"
#include "testutil.h"

#include <errno.h>
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
        CU_ASSERT_PTR_NOT_NULL(text && strstr(text, "network id"));
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

int main(void)
{
    static const tu_test tests[] = {
        {"network names cannot shadow ids", test_names_cannot_shadow_ids},
        {NULL, NULL}};
    return tu_run_suite("hardening", tests);
}
