/*
 * itest.h — start the real nerved on a free port and talk HTTP to it.
 */
#ifndef ITEST_H
#define ITEST_H

#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

typedef struct it_server {
    pid_t pid;
    int port;
    char base[64];  /* "http://127.0.0.1:PORT" or "https://..." */
    char cainfo[512]; /* https: the PEM the server's certificate must match */
} it_server;

/* Starts $NERVED_BIN --port 0 --quiet plus args (NULL-terminated) and reads
 * the bound port from its first line. Returns 0, or -1. */
int it_start(it_server *s, const char *const *args);
/* As it_start, with the daemon's stderr appended to the file log. */
int it_start_logged(it_server *s, const char *const *args, const char *log);
/* As it_start for a daemon serving HTTPS (args give --tls-cert and
 * --tls-key): requests go to https://127.0.0.1:PORT and the client checks
 * the server's certificate against ca_file. */
int it_start_tls(it_server *s, const char *const *args, const char *ca_file);
/* SIGTERM, then waits: the exit status (0 after a clean shutdown), or -1. */
int it_stop(it_server *s);
/* SIGKILL, as a crash: nothing of the daemon runs after it. Waits. */
void it_kill(it_server *s);
/* Runs $NERVED_BIN with args expecting it to exit by itself; captures up to
 * size-1 bytes of its stderr and returns its exit status. */
int it_run(const char *const *args, char *err_out, size_t size);

typedef struct it_response {
    long status;
    char *body;     /* NUL-terminated, malloc'd */
    size_t len;
    size_t cap;     /* bytes allocated for body; grows by doubling */
    char content_type[128];
    char allow[128];
    char backend[128];  /* X-Nerved-Backend, set by the nginx front */
    char www_authenticate[128];
    char retry_after[32];
} it_response;

/* One request; content_type NULL sends none. Returns 0 when a response
 * came back. */
int it_request(const it_server *s, const char *method, const char *path,
               const char *content_type, const char *body, size_t body_len,
               it_response *r);
/* As it_request, with one more request header line ("Name: value"). */
int it_request_with(const it_server *s, const char *method, const char *path,
                    const char *content_type, const char *body,
                    size_t body_len, const char *header, it_response *r);

/* JSON shorthands: body may be NULL. The parsed reply (or NULL) is
 * returned; *status gets the HTTP status. Caller deletes the JSON. */
cJSON *it_json(const it_server *s, const char *method, const char *path,
               const char *body, long *status);
void it_response_free(it_response *r);
/* With $NERVED_RESPONSE_LOG naming a directory, appends one response to
 * DIR/PID.jsonl for the contract check (tests/contract). it_request logs
 * its own; tests with their own HTTP client call this. A header the
 * client did not read is NULL (the check then does not ask for it);
 * header_length is Inference-Header-Content-Length, or -1. */
void it_log_raw(const char *method, const char *path, long status,
                const char *content_type, const char *allow,
                const char *retry_after, const char *www_authenticate,
                const char *body, size_t len, long header_length);
/* A new empty directory under $TMPDIR (or /tmp) named prefix-XXXXXX;
 * malloc'd, NULL on failure. it_remove_tree deletes it and its contents. */
char *it_temp_dir(const char *prefix);
void it_remove_tree(const char *dir);

/* Whether a float the daemon computed is the same as the one this test
 * computed for it with the engine, to float32 rounding. The two come from
 * different processes, and OpenBLAS picks its kernels from the CPU each
 * process sees (under valgrind, or in another container, another one), so
 * sums are rounded in another order and the last bits differ. The bound:
 * a relative 1e-5 (some 80 ulps, room for reductions of a few hundred
 * terms and a few dozen recurrent steps) plus 1e-6 for values near zero.
 * Only what must be identical (weights saved and restored, exported and
 * imported back) is compared bit for bit, never through this. */
int it_float_close(double got, double want);
/* The value of the sample in the daemon's /metrics that follows series
 * (written with its line's newline and its trailing space, as
 * "\nnerved_fits_running "), or -1 when there is none. */
double it_metric(const it_server *s, const char *series);
/* it_metric once the value has stopped moving (the same on three readings
 * 50 ms apart, for at most 10 s). A request's charges are given back when
 * libmicrohttpd reports it complete, which may come after its answer has
 * reached the client: a reading of nerved_memory_charged_bytes right after
 * an answer can still include the request that produced it. */
double it_metric_settled(const it_server *s, const char *series);

/* Monotonic seconds, for the tests that time the daemon. */
double it_now(void);
/* The peak resident set (VmHWM) of process pid in KiB, or -1. */
long it_peak_rss_kb(pid_t pid);

/* Whether the daemon's RSS measures what it allocates: not under a wrapper
 * (NERVED_WRAPPER: valgrind), and not in a sanitizer build (GCC's or
 * clang's), which keeps freed memory in quarantine and shadows it. */
int it_rss_meaningful(void);

/* it_json that asserts (CUnit) the status is expect, printing the body when
 * it is not. */
cJSON *it_call(const it_server *s, const char *method, const char *path,
               const char *body, long expect);

#endif
