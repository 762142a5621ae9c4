/*
 * client.h — the little HTTP client the examples share: JSON requests to a
 * running nerved, sequences written as JSON tensors, and the error measure
 * the examples print.
 */
#ifndef EXAMPLE_CLIENT_H
#define EXAMPLE_CLIENT_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Command-line options every example takes:
 *   --url URL        the daemon (default http://127.0.0.1:8080)
 *   --check LIMIT    exit 1 unless the printed NRMSE is below LIMIT
 *   --small          a smaller, faster run (what the test suite uses) */
typedef struct ex_options {
    const char *url;
    double check;   /* 0: no check */
    int small;
} ex_options;
/* Returns 0, or prints usage and returns -1. */
int ex_parse_args(int argc, char **argv, ex_options *o);

/* Sends body (NULL for none) and returns the parsed reply, or NULL after
 * printing the daemon's error (or the transport's) to stderr. The caller
 * deletes the reply. expect is the status that counts as success; 0 takes
 * any status quietly (for clean-ups that may find nothing). */
cJSON *ex_request(const ex_options *o, const char *method, const char *path,
                  const char *body, long expect);

/* Prints where an example gave up (after the request's own message) and
 * returns 1, the exit status. */
int ex_fail(int line);

/* A growing string for request bodies. */
typedef struct ex_buf {
    char *s;
    size_t len, cap;
} ex_buf;
void ex_printf(ex_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Appends a (1, steps, features) tensor of x[t * stride + offset + f]. */
void ex_sequence(ex_buf *b, const double *x, int steps, int features,
                 int stride, int offset);
void ex_free(ex_buf *b);

/* Reads out (steps x features) from a (1, steps, features) JSON tensor. */
int ex_read_sequence(const cJSON *t, double *out, int steps, int features);

/* sqrt(mean((pred - truth)²)) / std(truth), over n values of each of
 * features columns (row-major). */
double ex_nrmse(const double *pred, const double *truth, int n, int features);

#endif
