/*
 * testutil.h — shared helpers for the CUnit test executables.
 */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <CUnit/CUnit.h>

typedef struct tu_test {
    const char *name;
    void (*fn)(void);
} tu_test;

/* Runs one suite of tests (array ending in {NULL, NULL}) with CUnit's basic
 * runner; returns the process exit code: 0 when every assertion passed. */
int tu_run_suite(const char *suite, const tu_test *tests);

/* Asserts |a - b| <= tol, printing both values on failure. */
#define TU_ASSERT_CLOSE(a, b, tol) CU_ASSERT_DOUBLE_EQUAL((a), (b), (tol))

/* ------------------------------------------- building graphs in tests */

#include "nn_graph.h"

/* A registry of the built-in types, and an empty graph on it; fatal
 * assertions on failure. The caller frees both. */
nn_registry *tu_registry(void);
nn_graph *tu_graph(nn_registry *reg, uint64_t seed);
/* A session of g (the caller frees it); fatal, with the engine's message,
 * when refused. */
nn_session *tu_session(nn_graph *g, int batch, uint64_t seed);
/* A new tensor of the given dims filled as tu_fill does. */
nn_tensor *tu_wave(int ndim, const int *dims, float scale, float phase);

/* Adds a node and sets "key=value" parameters (NULL-terminated); fails the
 * test fatally, printing the engine's message, if anything is refused. */
nn_node *tu_node(nn_graph *g, const char *type, const char *name, ...);
void tu_link(nn_graph *g, const char *expr);
void tu_build(nn_graph *g);
/* t[k] = scale * sin(1.3 k + phase): varied, reproducible values. */
void tu_fill(nn_tensor *t, float scale, float phase);
/* How tu_check_gradients runs: steps (0: 3), entries checked per weight
 * (0: 8), and last_only: only the last step's output enters the loss, so
 * earlier steps are reached through the recurrent state alone. */
typedef struct tu_fd_opts {
    int steps, entries, last_only;
} tu_fd_opts;

/* Backpropagates L = sum(c * y) over a batch-2 run of g, whose one input is
 * `input` with `width` features and one exit y, and checks the gradient of
 * every trainable weight against central finite differences of L in
 * double (relative error < 1e-2); opts may be NULL; `what` names the case
 * in failure messages. */
void tu_check_gradients(nn_graph *g, const char *input, int width,
                        const tu_fd_opts *opts, const char *what);

#endif
