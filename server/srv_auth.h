/*
 * srv_auth.h — bearer keys (--api-key-file): which requests may pass.
 */
#ifndef SRV_AUTH_H
#define SRV_AUTH_H

#include <stddef.h>

#define SRV_AUTH_KEY_MAX 255

typedef struct srv_auth srv_auth;

/* Reads the keys of path, one per line; surrounding white space and blank
 * lines are ignored. A key is 1 to SRV_AUTH_KEY_MAX printable characters
 * without spaces. Returns what the caller owns (srv_auth_free), or NULL
 * with the reason in msg: an unreadable file, a bad key (by line), or no
 * key at all. */
srv_auth *srv_auth_load(const char *path, char *msg, size_t size);
void srv_auth_free(srv_auth *a);

/* Whether the Authorization header value (NULL when absent), `length`
 * bytes long whatever it holds (a NUL in it is part of it), is "Bearer "
 * and one of the keys: 0 when not, else 1 + the key's line index among the
 * keys (so quotas can count per key). Takes the same time whichever key
 * matches or how much of one does: every key is compared in full. */
int srv_auth_check(const srv_auth *a, const char *authorization,
                   size_t length);
/* srv_auth_check on the request's Authorization header, at its full
 * length. */
struct MHD_Connection;
int srv_auth_check_connection(const srv_auth *a, struct MHD_Connection *conn);

/* Whether method and path are a health check, which probes reach without a
 * key: /healthz, /readyz, /v2/health/live, /v2/health/ready. */
int srv_auth_exempt(const char *method, const char *path);

#endif
