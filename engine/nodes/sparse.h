/*
 * sparse.h — the pattern of a sparse matrix in compressed sparse rows (CSR),
 * and the products a node needs with it.
 *
 * Only the pattern lives here. The values are kept apart, as a 1-d float
 * array of nnz entries in CSR order, because a node stores them as an
 * ordinary weight tensor (so export, import and training see them like any
 * other weight) while the pattern is private to the node.
 *
 * The matrix M is (rows, cols) and, as every weight of a node, multiplies
 * from the right: y = x · M, x shaped (batch, rows), y (batch, cols).
 */
#ifndef NN_SPARSE_H
#define NN_SPARSE_H

#include "nn.h"

typedef struct nn_csr {
    int rows, cols;
    size_t nnz;
    size_t *row_ptr; /* rows + 1 offsets into col */
    int *col;        /* nnz column indices, increasing within a row */
} nn_csr;

/* Draws a pattern where each of the rows x cols entries is present with
 * probability density, independently — the same law as a dense Bernoulli
 * mask — but in O(nnz) draws: the gaps between present entries, in
 * row-major order, are geometric. The same rng state gives the same pattern
 * on every machine. The caller releases m with nn_csr_release. */
int nn_csr_random(nn_csr *m, int rows, int cols, double density, nn_rng *rng,
                  nn_error *err);
/* Frees the arrays of m and zeroes it; a zeroed m is a no-op. */
void nn_csr_release(nn_csr *m);

/* y = beta * y + x · M for batch rows; val holds M's nnz values. */
void nn_csr_matmul(const nn_csr *m, const float *val, const float *x,
                   size_t batch, float beta, float *y);
/* dx += dy · Mᵀ (the input gradient of nn_csr_matmul). */
void nn_csr_matmul_t_add(const nn_csr *m, const float *val, const float *dy,
                         size_t batch, float *dx);
/* dval += (xᵀ · dy) on the pattern (the value gradient). */
void nn_csr_grad_add(const nn_csr *m, const float *x, const float *dy,
                     size_t batch, float *dval);

/* dense (rows, cols), row-major, = M; entries off the pattern are zero. */
void nn_csr_to_dense(const nn_csr *m, const float *val, float *dense);
/* y = x · M for one row, in double (for eigenvalue estimates). */
void nn_csr_vecmat_d(const nn_csr *m, const double *val, const double *x,
                     double *y);

#endif
