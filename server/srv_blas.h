/*
 * srv_blas.h — the OpenBLAS kernel the daemon runs, chosen at start.
 *
 * OpenBLAS picks its kernels when the library loads, by CPU model; on a
 * CPU it does not recognise (common under virtualisation) it falls back to
 * generic ones several times slower. With --blas-core auto (the default)
 * the daemon re-executes itself once with OPENBLAS_CORETYPE set to the best
 * core the CPU's features allow, checks that core with a start-up self-test
 * (sgemm and sgemv against plain loops) and goes back to OpenBLAS's own
 * choice if the test fails. keep leaves OpenBLAS alone; a NAME forces that
 * core. A user's own OPENBLAS_CORETYPE is always kept.
 */
#ifndef SRV_BLAS_H
#define SRV_BLAS_H

/* Called first in main with the daemon's own argv, and mode the value of
 * --blas-core (NULL: auto). May not return (re-exec). Returns 0 to go on,
 * -1 when the start must be refused (message on stderr). */
int srv_blas_start(const char *mode, char **argv);

/* What was decided, for /metrics and GET /v2; static strings. */
typedef struct srv_blas_info {
    const char *core;     /* openblas_get_corename() */
    const char *mode;     /* auto | keep | the NAME asked for */
    const char *choice;   /* how the core came to be, one phrase */
    const char *selftest; /* passed | failed */
    const char *cpu;      /* features seen, e.g. "avx2,fma,avx512f" */
} srv_blas_info;
const srv_blas_info *srv_blas(void);

#endif
