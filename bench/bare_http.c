/*
 * bare_http.c — the load generator's ceiling: a libmicrohttpd server set up
 * as nerved's (a pool of polling threads, epoll) that answers every request
 * with a fixed JSON body of a given size and does nothing else. What wrk
 * reaches against it is the most any handler could reach on this machine.
 *
 *   bare_http PORT BODY_BYTES [THREADS=4]
 */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *body;
static size_t body_len;

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    (void)cls, (void)url, (void)method, (void)version, (void)upload;
    if (!*state) {
        *state = (void *)1;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* the request body is read and dropped */
        return MHD_YES;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(
        body_len, body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bare_http PORT BODY_BYTES [THREADS]\n");
        return 2;
    }
    body_len = (size_t)atol(argv[2]);
    body = malloc(body_len + 1);
    if (!body)
        return 1;
    /* A JSON array of the right length: ["xxx..."]. */
    memset(body, 'x', body_len);
    if (body_len >= 4) {
        body[0] = '[', body[1] = '"';
        body[body_len - 2] = '"', body[body_len - 1] = ']';
    }
    unsigned threads = argc > 3 ? (unsigned)atoi(argv[3]) : 4;
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC,
        (uint16_t)atoi(argv[1]), NULL, NULL, answer, NULL,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT,
        1024u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(16 * 1024),
        MHD_OPTION_END); /* the daemon's pool size */
    if (!d)
        return 1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sig;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    free(body);
    return 0;
}
