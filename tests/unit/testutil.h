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

/* Adds a node and sets "key=value" parameters (NULL-terminated); fails the
 * test fatally, printing the engine's message, if anything is refused. */
nn_node *tu_node(nn_graph *g, const char *type, const char *name, ...);
void tu_link(nn_graph *g, const char *expr);
void tu_build(nn_graph *g);
/* t[k] = scale * sin(1.3 k + phase): varied, reproducible values. */
void tu_fill(nn_tensor *t, float scale, float phase);
/* Backpropagates L = sum(c * y) over a (batch 2, 3 steps) run of g, whose
 * one input is `input` with `width` features and one exit y, and checks the
 * gradient of every trainable weight (up to 8 entries each) against central
 * finite differences; `what` names the case in failure messages. */
void tu_check_gradients(nn_graph *g, const char *input, int width,
                        const char *what);

#endif
