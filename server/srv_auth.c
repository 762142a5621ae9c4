/*
 * srv_auth.c — bearer keys compared in constant time: each key lives in a
 * fixed-size, zero-padded slot and the presented token is compared with
 * every slot in full, so the time taken says nothing about which key
 * matched or how many leading characters were right.
 */
#include "srv_auth.h"

#include <ctype.h>
#include <microhttpd.h>
#include <stdint.h>
#include <sys/types.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SLOT (SRV_AUTH_KEY_MAX + 1)

struct srv_auth {
    int n_keys;
    size_t *lengths;
    unsigned char (*keys)[SLOT];
};

void srv_auth_free(srv_auth *a)
{
    if (!a)
        return;
    /* Keys are secrets: no copy outlives the daemon's need. */
    if (a->keys)
        memset(a->keys, 0, (size_t)a->n_keys * SLOT);
    free(a->keys);
    free(a->lengths);
    free(a);
}

static int add_key(srv_auth *a, const char *key, size_t len)
{
    unsigned char (*keys)[SLOT] = realloc(a->keys, (size_t)(a->n_keys + 1) *
                                                       sizeof *keys);
    if (!keys)
        return -1;
    a->keys = keys;
    size_t *lengths = realloc(a->lengths, (size_t)(a->n_keys + 1) *
                                              sizeof *lengths);
    if (!lengths)
        return -1;
    a->lengths = lengths;
    memset(a->keys[a->n_keys], 0, SLOT);
    memcpy(a->keys[a->n_keys], key, len);
    a->lengths[a->n_keys++] = len;
    return 0;
}

srv_auth *srv_auth_load(const char *path, char *msg, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(msg, size, "--api-key-file: cannot read '%s': %s", path,
                 strerror(errno));
        return NULL;
    }
    srv_auth *a = calloc(1, sizeof *a);
    char line[4096];
    int number = 0, failed = !a;
    if (failed)
        snprintf(msg, size, "out of memory");
    while (!failed && fgets(line, sizeof line, f)) {
        number++;
        char *start = line, *end = line + strlen(line);
        while (*start && isspace((unsigned char)*start))
            start++;
        while (end > start && isspace((unsigned char)end[-1]))
            end--;
        size_t len = (size_t)(end - start);
        if (len == 0)
            continue;
        int printable = 1;
        for (size_t i = 0; i < len; i++)
            printable &= isgraph((unsigned char)start[i]) != 0;
        if (len > SRV_AUTH_KEY_MAX || !printable) {
            snprintf(msg, size, "--api-key-file: line %d of '%s': a key is 1 "
                     "to %d printable characters without spaces", number,
                     path, SRV_AUTH_KEY_MAX);
            failed = 1;
        } else if (add_key(a, start, len)) {
            snprintf(msg, size, "out of memory");
            failed = 1;
        }
    }
    memset(line, 0, sizeof line);
    fclose(f);
    if (!failed && a->n_keys == 0) {
        snprintf(msg, size, "--api-key-file: '%s' holds no key", path);
        failed = 1;
    }
    if (failed) {
        srv_auth_free(a);
        return NULL;
    }
    return a;
}

int srv_auth_check(const srv_auth *a, const char *authorization,
                   size_t length)
{
    static const char scheme[] = "Bearer ";
    unsigned char token[SLOT];
    size_t len = 0;
    /* The scheme's name is not secret; the token is. */
    int ok = authorization && length >= sizeof scheme - 1 &&
             strncasecmp(authorization, scheme, sizeof scheme - 1) == 0;
    if (ok) {
        const char *t = authorization + sizeof scheme - 1;
        const char *end = authorization + length;
        while (t < end && *t == ' ')
            t++;
        /* The header's whole length, not strlen: "KEY\0junk" is not KEY. */
        len = (size_t)(end - t);
        memset(token, 0, sizeof token);
        memcpy(token, t, len < SLOT ? len : SLOT - 1);
    } else {
        memset(token, 0, sizeof token);
    }
    unsigned match = 0;
    for (int k = 0; k < a->n_keys; k++) {
        /* A token longer than any key differs in its length. */
        unsigned diff = (unsigned)(len != a->lengths[k]);
        for (size_t i = 0; i < SLOT; i++)
            diff |= (unsigned)(token[i] ^ a->keys[k][i]);
        /* Which key, without a branch on it: keys are distinct, so at
         * most one term is not zero. */
        match |= (unsigned)(diff == 0) * (unsigned)(k + 1);
    }
    memset(token, 0, sizeof token);
    return ok ? (int)match : 0;
}

int srv_auth_check_connection(const srv_auth *a, struct MHD_Connection *conn)
{
    const char *value = NULL;
    size_t length = 0;
    if (MHD_lookup_connection_value_n(conn, MHD_HEADER_KIND,
                                      MHD_HTTP_HEADER_AUTHORIZATION,
                                      sizeof MHD_HTTP_HEADER_AUTHORIZATION - 1,
                                      &value, &length) != MHD_YES)
        value = NULL;
    return srv_auth_check(a, value, value ? length : 0);
}

int srv_auth_exempt(const char *method, const char *path)
{
    static const char *const open_paths[] = {"/healthz", "/readyz",
                                             "/v2/health/live",
                                             "/v2/health/ready"};
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return 0;
    for (size_t i = 0; i < sizeof open_paths / sizeof *open_paths; i++)
        if (strcmp(path, open_paths[i]) == 0)
            return 1;
    return 0;
}
