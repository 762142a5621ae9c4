/*
 * srv_probe.c — `nerved --probe`: one GET /healthz over a plain socket or
 * GnuTLS (the TLS library libmicrohttpd already brings), so the image's
 * HEALTHCHECK needs no curl and follows NERVED_PORT and TLS.
 */
#include "srv_probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int probe_fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static int probe_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nerved --probe: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 1;
}

/* A connected socket to the daemon's address, or -1 after reporting. */
static int probe_connect(const srv_config *cfg, char *host, size_t size)
{
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
    socklen_t len;
    if (inet_pton(AF_INET, cfg->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)cfg->port);
        if (v4->sin_addr.s_addr == htonl(INADDR_ANY))
            v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *v4;
    } else if (inet_pton(AF_INET6, cfg->host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)cfg->port);
        if (IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr))
            v6->sin6_addr = in6addr_loopback;
        len = sizeof *v6;
    } else {
        probe_fail("--host must be a numeric IPv4 or IPv6 address, got '%s'",
                   cfg->host);
        return -1;
    }
    if (addr.ss_family == AF_INET)
        inet_ntop(AF_INET, &v4->sin_addr, host, (socklen_t)size);
    else
        inet_ntop(AF_INET6, &v6->sin6_addr, host, (socklen_t)size);
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        probe_fail("cannot create a socket: %s", strerror(errno));
        return -1;
    }
    /* The timeouts bound connect() as well as every read and write. */
    struct timeval tv = {SRV_PROBE_TIMEOUT, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&addr, len)) {
        probe_fail("cannot connect to %s port %d: %s", host, cfg->port,
                   strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Whether an HTTP response's status line says 200. */
static int status_ok(const char *reply)
{
    return strncmp(reply, "HTTP/1.", 7) == 0 && reply[7] && reply[8] == ' ' &&
           strncmp(reply + 9, "200", 3) == 0;
}

static int exchange_plain(int fd, const char *request, char *reply,
                          size_t size)
{
    size_t n = strlen(request), got = 0;
    if (send(fd, request, n, MSG_NOSIGNAL) != (ssize_t)n)
        return probe_fail("cannot send the request: %s", strerror(errno));
    /* The status line is all that is needed; stop at the first bytes. */
    while (got < 12) {
        ssize_t r = recv(fd, reply + got, size - 1 - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    reply[got] = '\0';
    return 0;
}

static int exchange_tls(int fd, const char *request, char *reply,
                        size_t size)
{
    gnutls_certificate_credentials_t cred = NULL;
    gnutls_session_t tls = NULL;
    int rc = 1, r;
    if (gnutls_certificate_allocate_credentials(&cred) < 0 ||
        gnutls_init(&tls, GNUTLS_CLIENT) < 0 ||
        gnutls_set_default_priority(tls) < 0 ||
        gnutls_credentials_set(tls, GNUTLS_CRD_CERTIFICATE, cred) < 0) {
        probe_fail("%s", "cannot set up TLS (out of memory)");
        goto out;
    }
    gnutls_transport_set_int(tls, fd);
    gnutls_handshake_set_timeout(tls, SRV_PROBE_TIMEOUT * 1000);
    do
        r = gnutls_handshake(tls);
    while (r < 0 && !gnutls_error_is_fatal(r));
    if (r < 0) {
        probe_fail("TLS handshake failed: %s", gnutls_strerror(r));
        goto out;
    }
    size_t n = strlen(request), got = 0;
    do
        r = (int)gnutls_record_send(tls, request, n);
    while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED);
    if (r != (int)n) {
        probe_fail("cannot send the request: %s",
                   r < 0 ? gnutls_strerror(r) : "short write");
        goto out;
    }
    while (got < 12) {
        ssize_t k = gnutls_record_recv(tls, reply + got, size - 1 - got);
        if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    reply[got] = '\0';
    gnutls_bye(tls, GNUTLS_SHUT_WR);
    rc = 0;
out:
    if (tls)
        gnutls_deinit(tls);
    if (cred)
        gnutls_certificate_free_credentials(cred);
    return rc;
}

int srv_probe(const srv_config *cfg)
{
    if (cfg->port == 0)
        return probe_fail("%s", "--port 0 picks a port at start; the probe "
                                "needs the port the daemon serves");
    char host[INET6_ADDRSTRLEN];
    int fd = probe_connect(cfg, host, sizeof host);
    if (fd < 0)
        return 1;
    char request[256], reply[256];
    snprintf(request, sizeof request, "GET /healthz HTTP/1.1\r\nHost: %s\r\n"
             "Connection: close\r\n\r\n", host);
    int rc = cfg->tls_cert ? exchange_tls(fd, request, reply, sizeof reply)
                           : exchange_plain(fd, request, reply, sizeof reply);
    close(fd);
    if (rc)
        return 1;
    if (!status_ok(reply)) {
        /* Only the status line: the rest is the daemon's, not ours. */
        reply[strcspn(reply, "\r\n")] = '\0';
        return probe_fail("/healthz answered '%.64s', not 200",
                          reply[0] ? reply : "nothing");
    }
    return 0;
}
