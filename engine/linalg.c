/*
 * linalg.c — eigenvalues and spectral radii (see nn_linalg.h).
 *
 * Two methods, chosen by the caller:
 *   - dense LAPACK (dgeev, eigenvalues only): exact to rounding, O(n³) time
 *     and n² doubles of memory, so for matrices up to a few thousand rows;
 *   - ARPACK's implicitly restarted Arnoldi method (dnaupd, the one SciPy's
 *     eigs uses): only products with the matrix, O(ncv · n) memory, for
 *     large sparse ones.
 *
 * Why not power iteration: a random non-symmetric matrix (a reservoir) has
 * its largest eigenvalues spread on a circle, often as a complex-conjugate
 * pair. Power iteration then never settles — the iterate rotates in the
 * pair's plane — and when it does converge, the rate is |λ2 / λ1|, close to
 * 1 for such spectra. Arnoldi finds a complex pair as a pair of eigenvalues
 * of a small real Hessenberg matrix, and ARPACK's implicit restarts with
 * exact shifts filter the unwanted part of the spectrum out at the cost of
 * ncv - nev products per restart. A random 10,000-unit reservoir at 1 %
 * takes some 600 to 3,000 products at tol 1e-5 (our own thick-restarted
 * Davidson iteration, used before, needed 1,700 to 4,000 and spent more
 * than the products on orthogonalisation in plain loops).
 *
 * LAPACK is reached through its Fortran symbol, which OpenBLAS exports.
 * ARPACK's vector work goes through BLAS, whose results can differ in the
 * last bits between builds and CPUs: an estimate is reproducible to its
 * tolerance, not to the bit. The start vector is fixed, so on one machine
 * the same matrix gives the same estimate.
 */
#include "nn_linalg.h"

#include <arpack.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

/* The Fortran LAPACK routine. Character arguments are followed, in the
 * gfortran calling convention, by hidden length arguments at the end; they
 * are passed explicitly because leaving them out is undefined behaviour that
 * newer gfortran builds punish with stack corruption. */
extern void dgeev_(const char *jobvl, const char *jobvr, const int *n,
                   double *a, const int *lda, double *wr, double *wi,
                   double *vl, const int *ldvl, double *vr, const int *ldvr,
                   double *work, const int *lwork, int *info, size_t jobvl_len,
                   size_t jobvr_len);

/* Eigenvalues (and right eigenvectors when vr is not NULL) of the n x n
 * column-major matrix a, which is overwritten. */
static int geev(int n, double *a, double *wr, double *wi, double *vr,
                nn_error *err)
{
    const char jobvl = 'N', jobvr = vr ? 'V' : 'N';
    int lda = n, ldv = n, info = 0, lwork = -1;
    double query = 0, dummy = 0;
    dgeev_(&jobvl, &jobvr, &n, a, &lda, wr, wi, &dummy, &ldv,
           vr ? vr : &dummy, &ldv, &query, &lwork, &info, 1, 1);
    if (info != 0)
        return nn_error_set(err, NN_ERR_INVALID, "dgeev workspace query "
                            "failed (info %d)", info);
    lwork = (int)query;
    if (lwork < 4 * n)
        lwork = 4 * n;
    double *work = nn_malloc((size_t)lwork * sizeof(double));
    if (!work)
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory for the "
                            "eigenvalues of a %d x %d matrix", n, n);
    dgeev_(&jobvl, &jobvr, &n, a, &lda, wr, wi, &dummy, &ldv,
           vr ? vr : &dummy, &ldv, work, &lwork, &info, 1, 1);
    nn_free(work);
    if (info < 0)
        return nn_error_set(err, NN_ERR_INVALID, "dgeev: argument %d is "
                            "invalid", -info);
    if (info > 0)
        return nn_error_set(err, NN_ERR_LIMIT, "dgeev: the QR algorithm did "
                            "not converge (%d eigenvalues missing)", info);
    return NN_OK;
}

int nn_eigvals(int n, double *a, double *re, double *im, nn_error *err)
{
    if (n < 1)
        return nn_error_set(err, NN_ERR_INVALID, "eigenvalues of an empty "
                            "matrix");
    return geev(n, a, re, im, NULL, err);
}

int nn_spectral_radius_dense(int n, const double *a, double *rho,
                             nn_error *err)
{
    *rho = 0;
    if (n < 1)
        return nn_error_set(err, NN_ERR_INVALID, "spectral radius of an empty "
                            "matrix");
    size_t nn = (size_t)n * (size_t)n;
    double *copy = nn_malloc(nn * sizeof(double));
    double *re = nn_malloc(2 * (size_t)n * sizeof(double));
    if (!copy || !re) {
        nn_free(copy);
        nn_free(re);
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory for the "
                            "spectral radius of a %d x %d matrix", n, n);
    }
    memcpy(copy, a, nn * sizeof(double));
    int rc = nn_eigvals(n, copy, re, re + n, err);
    for (int i = 0; rc == NN_OK && i < n; i++) {
        double m = hypot(re[i], re[n + i]);
        if (m > *rho)
            *rho = m;
    }
    nn_free(copy);
    nn_free(re);
    return rc;
}

/* ------------------------------------------------- iterative (ARPACK) */

/* ARPACK keeps its reverse-communication state in static variables, so one
 * iteration runs at a time in the process; builds on other threads wait. */

static pthread_mutex_t arpack_lock = PTHREAD_MUTEX_INITIALIZER;

/* Small operators: the dense matrix from n products, then dgeev. */
static int radius_small(int n, nn_linop_fn op, void *ctx, double *rho,
                        int *matvecs, nn_error *err)
{
    size_t nn = (size_t)n * (size_t)n;
    double *a = nn_calloc(nn + (size_t)n, sizeof(double));
    if (!a)
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory for the "
                            "spectral radius of a %d-row operator", n);
    double *e = a + nn;
    for (int j = 0; j < n; j++) {
        e[j] = 1;
        op(ctx, e, a + (size_t)j * n); /* column j = A e_j */
        e[j] = 0;
    }
    *matvecs = n;
    int rc = nn_spectral_radius_dense(n, a, rho, err);
    nn_free(a);
    return rc;
}

int nn_spectral_radius_op(int n, nn_linop_fn op, void *ctx,
                          const nn_eig_opts *opts, double *rho, int *matvecs,
                          nn_error *err)
{
    *rho = 0;
    int count = 0;
    if (matvecs)
        *matvecs = 0;
    if (n < 1)
        return nn_error_set(err, NN_ERR_INVALID, "spectral radius of an empty "
                            "operator");
    int ncv = opts && opts->basis > 0 ? opts->basis : 40;
    int max_mv = opts && opts->max_matvec > 0 ? opts->max_matvec : 20000;
    double tol = opts && opts->tol > 0 ? opts->tol : 1e-10;
    if (n <= 8 || ncv >= n) {
        int rc = radius_small(n, op, ctx, rho, &count, err);
        if (matvecs)
            *matvecs = count;
        return rc;
    }
    if (ncv < 4)
        ncv = 4;
    /* Each implicit restart costs ncv - nev products after the first ncv. */
    /* Six wanted values, not one: with a single one ARPACK settles, on the
     * crowded edge of a random matrix's spectrum, for whichever Ritz value
     * converges first, often not the outermost (seen 0.3 % low). The
     * largest of six is the outermost in every case tried. */
    const int nev = ncv >= 14 ? 6 : ncv / 2 - 1;
    int maxiter = max_mv > ncv ? 1 + (max_mv - ncv) / (ncv - nev - 1) : 1;
    int lworkl = 3 * ncv * ncv + 6 * ncv;
    double *resid = nn_malloc((size_t)n * sizeof(double));
    double *v = nn_malloc((size_t)n * (size_t)ncv * sizeof(double));
    double *workd = nn_malloc(3 * (size_t)n * sizeof(double));
    double *workl = nn_malloc((size_t)lworkl * sizeof(double));
    int rc = NN_OK;
    if (!resid || !v || !workd || !workl) {
        rc = nn_error_set(err, NN_ERR_NOMEM, "out of memory for the spectral "
                          "radius of a %d-row operator", n);
        goto done;
    }
    /* A fixed start: the estimate depends on the matrix only. */
    nn_rng rng;
    nn_rng_seed(&rng, 0x5eed5eedULL);
    for (int i = 0; i < n; i++)
        resid[i] = 2 * nn_rng_uniform(&rng) - 1;
    int iparam[11] = {0}, ipntr[14] = {0};
    iparam[0] = 1;       /* exact shifts */
    iparam[2] = maxiter; /* restarts allowed */
    iparam[6] = 1;       /* mode 1: A x = λ x */
    int ido = 0, info = 1; /* info 1: resid is the start vector */
    pthread_mutex_lock(&arpack_lock);
    for (;;) {
        dnaupd_c(&ido, "I", n, "LM", nev, tol, resid, ncv, v, n, iparam, ipntr,
                 workd, workl, lworkl, &info);
        if (ido != -1 && ido != 1)
            break;
        op(ctx, workd + ipntr[0] - 1, workd + ipntr[1] - 1);
        count++;
    }
    pthread_mutex_unlock(&arpack_lock);
    if (info < 0 || (info != 0 && info != 1)) {
        rc = nn_error_set(err, NN_ERR_INVALID, "ARPACK dnaupd failed (info "
                          "%d)", info);
        goto done;
    }
    /* The Ritz values of the final projection and their error bounds: the
     * largest in modulus is the estimate, converged or not. */
    const double *ritzr = workl + ipntr[5] - 1, *ritzi = workl + ipntr[6] - 1;
    const double *bounds = workl + ipntr[7] - 1;
    double bound = INFINITY;
    for (int j = 0; j < ncv; j++) {
        double m = hypot(ritzr[j], ritzi[j]);
        if (m > *rho) {
            *rho = m;
            bound = fabs(bounds[j]);
        }
    }
    /* A tight tol not met within max_matvec still counts as converged at
     * 1e-6 (relative), as the caller of a float matrix needs no more. */
    int converged = (info == 0 && iparam[4] >= nev) ||
                    (*rho > 0 && bound <= fmax(tol, 1e-6) * *rho);
    if (!converged)
        rc = nn_error_set(err, NN_ERR_LIMIT, "the spectral radius did not "
                          "converge in %d matrix products (relative error "
                          "bound %.2g, estimate %.6g)", count,
                          *rho > 0 ? bound / *rho : INFINITY, *rho);
done:
    if (matvecs)
        *matvecs = count;
    nn_free(resid);
    nn_free(v);
    nn_free(workd);
    nn_free(workl);
    return rc;
}
