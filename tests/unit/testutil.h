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

#endif
