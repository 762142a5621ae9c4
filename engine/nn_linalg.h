/*
 * nn_linalg.h — eigenvalues and spectral radii, for node types that scale a
 * matrix to a wanted spectral radius (Reservoir).
 *
 * Everything is in double precision: a radius computed in float from a
 * float matrix would be off by more than the 1e-3 a rescaled reservoir is
 * checked against once the matrix has thousands of rows.
 */
#ifndef NN_LINALG_H
#define NN_LINALG_H

#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Eigenvalues of a general real n x n matrix, through LAPACK's dgeev (the
 * one in OpenBLAS). a (n*n, either storage order: A and Aᵀ have the same
 * spectrum) is overwritten; re and im receive n values each. O(n³). */
int nn_eigvals(int n, double *a, double *re, double *im, nn_error *err);

/* max |eigenvalue| of a dense n x n matrix (not modified), by nn_eigvals. */
int nn_spectral_radius_dense(int n, const double *a, double *rho,
                             nn_error *err);

/* A linear operator on R^n: y = A x (or x · A: the same spectrum). */
typedef void (*nn_linop_fn)(void *ctx, const double *x, double *y);

typedef struct nn_eig_opts {
    int basis;      /* Arnoldi vectors kept, ARPACK's ncv (0: 40) */
    int max_matvec; /* operator applications allowed, about (0: 20000) */
    double tol;     /* wanted relative accuracy of the Ritz value (0: 1e-10) */
} nn_eig_opts;

/* max |eigenvalue| of the operator, by ARPACK's implicitly restarted
 * Arnoldi method (dnaupd, six wanted values of largest modulus, the largest
 * taken): only matrix-vector products, so a sparse matrix of any size
 * works, and complex or ± pairs of largest modulus are found as such.
 * Operators of up to 8 rows, or no larger than the basis, are made dense
 * and go to LAPACK. The start vector is fixed. ARPACK is not reentrant:
 * calls from several threads run one at a time. opts may be NULL.
 * *matvecs (when not NULL) receives the number of products used. Fails
 * with NN_ERR_LIMIT, *rho still holding the best estimate, when the Ritz
 * value's error bound did not reach tol (or 1e-6, if tol is tighter) within
 * max_matvec. */
int nn_spectral_radius_op(int n, nn_linop_fn op, void *ctx,
                          const nn_eig_opts *opts, double *rho, int *matvecs,
                          nn_error *err);

#ifdef __cplusplus
}
#endif
#endif /* NN_LINALG_H */
