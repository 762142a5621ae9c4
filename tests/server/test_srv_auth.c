/*
 * test_srv_auth.c — bearer keys: a header is compared at its full length,
 * so a NUL cannot cut it down to a key.
 */
#include "srv_auth.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static srv_auth *load(const char *text)
{
    char path[] = "/tmp/nerved-keys-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    char msg[256];
    srv_auth *a = srv_auth_load(path, msg, sizeof msg);
    unlink(path);
    if (!a)
        fprintf(stderr, "%s\n", msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    return a;
}

static int check(const srv_auth *a, const char *value, size_t len)
{
    return srv_auth_check(a, value, len);
}

static void test_full_length(void)
{
    srv_auth *a = load("sekrit-key-1\nother\n");
    static const char good[] = "Bearer sekrit-key-1";
    static const char nul[] = "Bearer sekrit-key-1\0junk";
    static const char nul_end[] = "Bearer sekrit-key-1\0";
    static const char other[] = "bearer  other";
    CU_ASSERT_TRUE(check(a, good, sizeof good - 1));
    CU_ASSERT_TRUE(check(a, other, sizeof other - 1));
    CU_ASSERT_FALSE(check(a, nul, sizeof nul - 1));
    CU_ASSERT_FALSE(check(a, nul_end, sizeof nul_end - 1));
    CU_ASSERT_FALSE(check(a, good, sizeof good - 2));
    CU_ASSERT_FALSE(check(a, "Bearer ", 7));
    CU_ASSERT_FALSE(check(a, "Bear", 4));
    CU_ASSERT_FALSE(check(a, NULL, 0));
    srv_auth_free(a);
}

int main(void)
{
    static const tu_test tests[] = {
        {"the header is compared at its full length", test_full_length},
        {NULL, NULL}};
    return tu_run_suite("bearer keys", tests);
}
