/*
 * linalg.c — eigenvalues and spectral radii (see nn_linalg.h).
 *
 * Two methods, chosen by the caller:
 *   - dense LAPACK (dgeev, eigenvalues only): exact to rounding, O(n³) time
 *     and n² doubles of memory, so for matrices up to a few thousand rows;
 *   - a thick-restarted Arnoldi iteration in the Davidson form: only
 *     products with the matrix, O(basis · n) memory, for large sparse ones.
 *
 * Why not power iteration: a random non-symmetric matrix (a reservoir) has
 * its largest eigenvalues spread on a circle, often as a complex-conjugate
 * pair. Power iteration then never settles — the iterate rotates in the
 * pair's plane and |A x| / |x| oscillates — and when it does converge, the
 * rate is |λ2 / λ1|, close to 1 for such spectra. The Arnoldi projection
 * finds a complex pair as a pair of eigenvalues of a small real matrix, and
 * keeping the best Ritz vectors across restarts (thick restart) makes the
 * outermost ones converge where power iteration would not. The cost is in
 * products: a random 10,000-unit reservoir at 1 % connectivity takes some
 * 1,700 to 4,000 of them, because the top of its spectrum is crowded.
 *
 * LAPACK is reached through its Fortran symbol, which OpenBLAS exports, so
 * nothing is added to the build. Results of LAPACK and BLAS can differ in
 * the last bits between builds and CPUs; the iterative method does its vector
 * arithmetic in plain C in a fixed order and calls LAPACK only on the small
 * projected matrix, so its estimate is reproducible to a few ulps.
 */
#include "nn_linalg.h"

#include <math.h>
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

/* ------------------------------------------------- iterative (Davidson) */

static double dot(const double *x, const double *y, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += x[i] * y[i];
    return s;
}

static double norm(const double *x, int n) { return sqrt(dot(x, x, n)); }

/* The search space: an orthonormal basis V (k columns of n), AV = A V and
 * the projected matrix G = Vᵀ A V, row-major in a cap x cap array. */
typedef struct space {
    int n, cap, k;
    double *V, *AV, *G;
    double *V2, *AV2;     /* restart targets, swapped with V and AV */
    double *Gc, *wr, *wi, *vr; /* projected eigenproblem */
    double *y;            /* cap x cap restart coefficients */
    double *ur, *ui, *aur, *aui, *rr, *ri, *tmp;
    nn_linop_fn op;
    void *ctx;
    int matvecs;
} space;

static double *col(double *base, int n, int j)
{
    return base + (size_t)j * (size_t)n;
}

/* Orthogonalises w against the basis twice (classical Gram-Schmidt run
 * twice is as stable as modified Gram-Schmidt and simpler); returns its
 * remaining norm. */
static double orthogonalize(space *s, double *w)
{
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < s->k; j++) {
            double *v = col(s->V, s->n, j);
            double c = dot(v, w, s->n);
            for (int i = 0; i < s->n; i++)
                w[i] -= c * v[i];
        }
    return norm(w, s->n);
}

/* Appends w (already orthogonal, of norm nrm) to the basis. */
static void append(space *s, const double *w, double nrm)
{
    int k = s->k, n = s->n;
    double *v = col(s->V, n, k), *av = col(s->AV, n, k);
    for (int i = 0; i < n; i++)
        v[i] = w[i] / nrm;
    s->op(s->ctx, v, av);
    s->matvecs++;
    s->k = k + 1;
    for (int j = 0; j <= k; j++) {
        s->G[(size_t)k * s->cap + j] = dot(v, col(s->AV, n, j), n);
        s->G[(size_t)j * s->cap + k] = dot(col(s->V, n, j), av, n);
    }
}

/* Solves the projected problem: Ritz values in wr/wi, vectors in vr. */
static int project(space *s, nn_error *err)
{
    int k = s->k;
    for (int r = 0; r < k; r++)
        for (int c = 0; c < k; c++)
            s->Gc[r + (size_t)c * k] = s->G[(size_t)r * s->cap + c];
    return geev(k, s->Gc, s->wr, s->wi, s->vr, err);
}

/* Index of the Ritz value of largest modulus (the first of a pair). */
static int best_ritz(const space *s)
{
    int best = 0;
    double bm = -1;
    for (int j = 0; j < s->k; j++) {
        double m = hypot(s->wr[j], s->wi[j]);
        if (m > bm * (1 + 1e-14)) {
            bm = m;
            best = j;
        }
        if (s->wi[j] != 0)
            j++; /* skip the conjugate */
    }
    return best;
}

/* The Ritz vector u = V y of value j and its residual r = A u − θ u, both
 * complex (real and imaginary parts); returns ‖r‖ / (|θ| ‖u‖). */
static double ritz_residual(space *s, int j)
{
    int n = s->n, k = s->k;
    int pair = s->wi[j] != 0;
    const double *yr = s->vr + (size_t)j * k;
    const double *yi = pair ? s->vr + (size_t)(j + 1) * k : NULL;
    memset(s->ur, 0, (size_t)n * sizeof(double));
    memset(s->ui, 0, (size_t)n * sizeof(double));
    memset(s->aur, 0, (size_t)n * sizeof(double));
    memset(s->aui, 0, (size_t)n * sizeof(double));
    for (int c = 0; c < k; c++) {
        const double *v = col(s->V, n, c), *av = col(s->AV, n, c);
        for (int i = 0; i < n; i++) {
            s->ur[i] += yr[c] * v[i];
            s->aur[i] += yr[c] * av[i];
        }
        if (pair)
            for (int i = 0; i < n; i++) {
                s->ui[i] += yi[c] * v[i];
                s->aui[i] += yi[c] * av[i];
            }
    }
    double a = s->wr[j], b = s->wi[j];
    for (int i = 0; i < n; i++) {
        s->rr[i] = s->aur[i] - (a * s->ur[i] - b * s->ui[i]);
        s->ri[i] = s->aui[i] - (a * s->ui[i] + b * s->ur[i]);
    }
    double rn = hypot(norm(s->rr, n), norm(s->ri, n));
    double un = hypot(norm(s->ur, n), norm(s->ui, n));
    double th = hypot(a, b);
    if (rn == 0)
        return 0;
    if (th == 0 || un == 0)
        return INFINITY;
    return rn / (th * un);
}

/* Shrinks the basis to the real and imaginary parts of the Ritz vectors of
 * the `keep` largest-modulus Ritz values (thick restart). */
static void restart(space *s, int keep)
{
    int n = s->n, k = s->k, m = 0;
    /* Order Ritz values by modulus, largest first (k is small). */
    int order[256];
    int count = 0;
    for (int j = 0; j < k; j++) {
        order[count++] = j;
        if (s->wi[j] != 0)
            j++;
    }
    for (int a = 1; a < count; a++)
        for (int b = a; b > 0; b--) {
            double mb = hypot(s->wr[order[b]], s->wi[order[b]]);
            double ma = hypot(s->wr[order[b - 1]], s->wi[order[b - 1]]);
            if (mb <= ma)
                break;
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    /* Columns of y: the kept eigenvectors in R^k, orthonormalised. */
    for (int q = 0; q < count && m < keep; q++) {
        int j = order[q];
        int parts = s->wi[j] != 0 ? 2 : 1;
        for (int p = 0; p < parts && m < s->cap; p++) {
            double *y = s->y + (size_t)m * k;
            memcpy(y, s->vr + (size_t)(j + p) * k, (size_t)k * sizeof(double));
            for (int pass = 0; pass < 2; pass++)
                for (int c = 0; c < m; c++) {
                    const double *yc = s->y + (size_t)c * k;
                    double d = dot(yc, y, k);
                    for (int i = 0; i < k; i++)
                        y[i] -= d * yc[i];
                }
            double ny = norm(y, k);
            if (ny < 1e-10)
                continue;
            for (int i = 0; i < k; i++)
                y[i] /= ny;
            m++;
        }
    }
    /* V2 = V y, AV2 = AV y; then swap. */
    for (int c = 0; c < m; c++) {
        double *v2 = col(s->V2, n, c), *av2 = col(s->AV2, n, c);
        const double *y = s->y + (size_t)c * k;
        memset(v2, 0, (size_t)n * sizeof(double));
        memset(av2, 0, (size_t)n * sizeof(double));
        for (int r = 0; r < k; r++) {
            const double *v = col(s->V, n, r), *av = col(s->AV, n, r);
            for (int i = 0; i < n; i++) {
                v2[i] += y[r] * v[i];
                av2[i] += y[r] * av[i];
            }
        }
    }
    double *t = s->V;
    s->V = s->V2;
    s->V2 = t;
    t = s->AV;
    s->AV = s->AV2;
    s->AV2 = t;
    s->k = m;
    for (int r = 0; r < m; r++)
        for (int c = 0; c < m; c++)
            s->G[(size_t)r * s->cap + c] =
                dot(col(s->V, n, r), col(s->AV, n, c), n);
}

/* Adds a pseudo-random direction, orthogonal to the basis; 0 if none is
 * found (the basis spans the whole space). */
static int add_random(space *s, nn_rng *rng)
{
    for (int tries = 0; tries < 4; tries++) {
        for (int i = 0; i < s->n; i++)
            s->tmp[i] = 2 * nn_rng_uniform(rng) - 1;
        double before = norm(s->tmp, s->n);
        double nrm = orthogonalize(s, s->tmp);
        if (nrm > 1e-8 * before) {
            append(s, s->tmp, nrm);
            return 1;
        }
    }
    return 0;
}

int nn_spectral_radius_op(int n, nn_linop_fn op, void *ctx,
                          const nn_eig_opts *opts, double *rho, int *matvecs,
                          nn_error *err)
{
    *rho = 0;
    if (matvecs)
        *matvecs = 0;
    if (n < 1)
        return nn_error_set(err, NN_ERR_INVALID, "spectral radius of an empty "
                            "operator");
    int cap = opts && opts->basis > 0 ? opts->basis : 40;
    int max_mv = opts && opts->max_matvec > 0 ? opts->max_matvec : 20000;
    double tol = opts && opts->tol > 0 ? opts->tol : 1e-10;
    if (cap < 6)
        cap = 6;
    if (cap > 200)
        cap = 200; /* restart() orders at most 256 Ritz values */
    if (cap > n)
        cap = n;
    space s;
    memset(&s, 0, sizeof s);
    s.n = n;
    s.cap = cap;
    s.op = op;
    s.ctx = ctx;
    size_t nc = (size_t)n * (size_t)cap, cc = (size_t)cap * (size_t)cap;
    int rc = NN_OK;
    s.V = nn_malloc(nc * sizeof(double));
    s.AV = nn_malloc(nc * sizeof(double));
    s.V2 = nn_malloc(nc * sizeof(double));
    s.AV2 = nn_malloc(nc * sizeof(double));
    s.G = nn_calloc(cc, sizeof(double));
    s.Gc = nn_malloc(cc * sizeof(double));
    s.vr = nn_malloc(cc * sizeof(double));
    s.y = nn_malloc(cc * sizeof(double));
    s.wr = nn_malloc((size_t)cap * sizeof(double));
    s.wi = nn_malloc((size_t)cap * sizeof(double));
    double *vecs = nn_malloc(7 * (size_t)n * sizeof(double));
    if (!s.V || !s.AV || !s.V2 || !s.AV2 || !s.G || !s.Gc || !s.vr || !s.y ||
        !s.wr || !s.wi || !vecs) {
        rc = nn_error_set(err, NN_ERR_NOMEM, "out of memory for the spectral "
                          "radius of a %d-row operator", n);
        goto done;
    }
    s.ur = vecs;
    s.ui = vecs + n;
    s.aur = vecs + 2 * (size_t)n;
    s.aui = vecs + 3 * (size_t)n;
    s.rr = vecs + 4 * (size_t)n;
    s.ri = vecs + 5 * (size_t)n;
    s.tmp = vecs + 6 * (size_t)n;

    /* A fixed start: the estimate depends on the matrix only. */
    nn_rng rng;
    nn_rng_seed(&rng, 0x5eed5eedULL);
    add_random(&s, &rng);
    double rel = INFINITY;
    for (;;) {
        if ((rc = project(&s, err)) != NN_OK)
            goto done;
        int j = best_ritz(&s);
        *rho = hypot(s.wr[j], s.wi[j]);
        rel = ritz_residual(&s, j);
        if (rel <= tol || s.k == n)
            break;
        if (s.matvecs >= max_mv)
            break;
        if (s.k >= cap) {
            restart(&s, cap / 2);
            continue; /* the residual is recomputed in the new basis */
        }
        /* Extend by the residual: the new direction that improves the best
         * Ritz pair most (for a Krylov space it is the next Arnoldi vector). */
        int added = 0;
        double before = norm(s.rr, n);
        double nrm = before > 0 ? orthogonalize(&s, s.rr) : 0;
        if (nrm > 1e-8 * before) {
            append(&s, s.rr, nrm);
            added++;
        }
        before = norm(s.ri, n);
        nrm = before > 0 ? orthogonalize(&s, s.ri) : 0;
        if (nrm > 1e-8 * before && s.k < cap) {
            append(&s, s.ri, nrm);
            added++;
        }
        if (!added && !add_random(&s, &rng))
            break; /* the basis spans an invariant subspace */
    }
    /* A loose tol is the caller's choice; a tight one not met within
     * max_matvec still counts as converged at 1e-6. */
    if (!(rel <= fmax(tol, 1e-6)) && s.k < n)
        rc = nn_error_set(err, NN_ERR_LIMIT, "the spectral radius did not "
                          "converge in %d matrix products (relative residual "
                          "%.2g, estimate %.6g)", s.matvecs, rel, *rho);
done:
    if (matvecs)
        *matvecs = s.matvecs;
    nn_free(s.V);
    nn_free(s.AV);
    nn_free(s.V2);
    nn_free(s.AV2);
    nn_free(s.G);
    nn_free(s.Gc);
    nn_free(s.vr);
    nn_free(s.y);
    nn_free(s.wr);
    nn_free(s.wi);
    nn_free(vecs);
    return rc;
}
