/*
 * test_linalg.c — eigenvalues and spectral radii (nn_linalg.h) on matrices
 * whose spectrum is known by construction, and the CSR patterns and
 * products of engine/nodes/sparse.h against dense arithmetic.
 */
#include "nn_internal.h"
#include "nn_linalg.h"
#include "sparse.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double PI = 3.14159265358979323846;

/* A random orthogonal n x n matrix (row-major), by Gram-Schmidt on
 * Gaussian columns. */
static void random_orthogonal(int n, nn_rng *rng, double *q)
{
    for (int i = 0; i < n * n; i++)
        q[i] = nn_rng_normal(rng);
    for (int j = 0; j < n; j++) {
        for (int pass = 0; pass < 2; pass++)
            for (int k = 0; k < j; k++) {
                double d = 0;
                for (int i = 0; i < n; i++)
                    d += q[i * n + k] * q[i * n + j];
                for (int i = 0; i < n; i++)
                    q[i * n + j] -= d * q[i * n + k];
            }
        double norm = 0;
        for (int i = 0; i < n; i++)
            norm += q[i * n + j] * q[i * n + j];
        norm = sqrt(norm);
        for (int i = 0; i < n; i++)
            q[i * n + j] /= norm;
    }
}

/* out = q · a · qᵀ (n x n, row-major): same spectrum as a, no structure. */
static void conjugate(int n, const double *q, const double *a, double *out)
{
    double *t = calloc((size_t)n * n, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++)
            for (int j = 0; j < n; j++)
                t[i * n + j] += q[i * n + k] * a[k * n + j];
    memset(out, 0, (size_t)n * n * sizeof(double));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++)
            for (int j = 0; j < n; j++)
                out[i * n + j] += t[i * n + k] * q[j * n + k];
    free(t);
}

/* Is (re, im) within tol of one of the n wanted eigenvalues not yet used? */
static int take_match(double re, double im, const double *want_re,
                      const double *want_im, int *used, int n, double tol)
{
    for (int k = 0; k < n; k++)
        if (!used[k] && hypot(re - want_re[k], im - want_im[k]) <= tol) {
            used[k] = 1;
            return 1;
        }
    return 0;
}

static void test_eigvals_rotation_blocks(void)
{
    /* Blocks r (cos θ, −sin θ; sin θ, cos θ) have eigenvalues r e^{±iθ};
     * plus two real 1 x 1 blocks. Conjugated by a random orthogonal Q. */
    enum { N = 8 };
    double r[3] = {0.5, 1.3, 2.0}, th[3] = {0.3, 2.0, PI / 2};
    double a[N * N] = {0}, want_re[N], want_im[N];
    for (int b = 0; b < 3; b++) {
        int o = 2 * b;
        a[o * N + o] = r[b] * cos(th[b]);
        a[o * N + o + 1] = -r[b] * sin(th[b]);
        a[(o + 1) * N + o] = r[b] * sin(th[b]);
        a[(o + 1) * N + o + 1] = r[b] * cos(th[b]);
        want_re[o] = want_re[o + 1] = r[b] * cos(th[b]);
        want_im[o] = r[b] * sin(th[b]);
        want_im[o + 1] = -r[b] * sin(th[b]);
    }
    a[6 * N + 6] = -2.5;
    a[7 * N + 7] = 0.25;
    want_re[6] = -2.5, want_im[6] = 0;
    want_re[7] = 0.25, want_im[7] = 0;
    double q[N * N], m[N * N], copy[N * N], re[N], im[N];
    nn_rng rng;
    nn_rng_seed(&rng, 7);
    random_orthogonal(N, &rng, q);
    conjugate(N, q, a, m);
    memcpy(copy, m, sizeof m);
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_eigvals(N, copy, re, im, &err), NN_OK);
    int used[N] = {0};
    for (int i = 0; i < N; i++)
        CU_ASSERT(take_match(re[i], im[i], want_re, want_im, used, N, 1e-10));
    double rho = 0;
    CU_ASSERT_EQUAL(nn_spectral_radius_dense(N, m, &rho, &err), NN_OK);
    TU_ASSERT_CLOSE(rho, 2.5, 1e-12);
}

static void test_eigvals_companion(void)
{
    /* p(x) = (x − 1)(x + 2)(x − 3)(x² + 1)
     *      = x⁵ − 2x⁴ − 4x³ + 4x² − 5x + 6; its companion matrix has the
     * roots 1, −2, 3, ±i as eigenvalues. */
    enum { N = 5 };
    double c[N] = {6, -5, 4, -4, -2}; /* c0 .. c4 of x⁵ + ... − (...) */
    double a[N * N] = {0};
    for (int i = 1; i < N; i++)
        a[i * N + i - 1] = 1;          /* subdiagonal */
    for (int i = 0; i < N; i++)
        a[i * N + N - 1] = -c[i];      /* last column: −c_i */
    double want_re[N] = {1, -2, 3, 0, 0}, want_im[N] = {0, 0, 0, 1, -1};
    double copy[N * N], re[N], im[N], rho;
    memcpy(copy, a, sizeof a);
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_eigvals(N, copy, re, im, &err), NN_OK);
    int used[N] = {0};
    for (int i = 0; i < N; i++)
        CU_ASSERT(take_match(re[i], im[i], want_re, want_im, used, N, 1e-9));
    CU_ASSERT_EQUAL(nn_spectral_radius_dense(N, a, &rho, &err), NN_OK);
    TU_ASSERT_CLOSE(rho, 3.0, 1e-9);
}

/* ------------------------------------------------------- the iteration */

/* A permuted block diagonal of 2 x 2 rotation-scaling blocks, in CSR with
 * double values: the spectrum is the blocks' r e^{±iθ}, whatever the
 * permutation, and the matrix is as sparse as wanted. */
typedef struct sparse_d {
    nn_csr m;
    double *val;
} sparse_d;

static void op_csr(void *ctx, const double *x, double *y)
{
    const sparse_d *s = ctx;
    nn_csr_vecmat_d(&s->m, s->val, x, y);
}

/* radii[b] and angles[b] for n/2 blocks, rows and columns permuted. */
static void block_matrix(int n, const double *radii, const double *angles,
                         nn_rng *rng, sparse_d *out)
{
    int *perm = malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++)
        perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(nn_rng_uniform(rng) * (i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    /* Dense triplets (row, col, value) of P A Pᵀ, then compressed by
     * counting (as the pattern of (P A Pᵀ)ᵀ: the same spectrum). */
    int nnz = 2 * n;
    int *rows = malloc((size_t)nnz * sizeof(int)),
        *cols = malloc((size_t)nnz * sizeof(int));
    double *vals = malloc((size_t)nnz * sizeof(double));
    int k = 0;
    for (int b = 0; b < n / 2; b++) {
        double c = radii[b] * cos(angles[b]), s = radii[b] * sin(angles[b]);
        int i = 2 * b, j = 2 * b + 1;
        int r4[4] = {i, i, j, j}, c4[4] = {i, j, i, j};
        double v4[4] = {c, -s, s, c};
        for (int e = 0; e < 4; e++, k++) {
            rows[k] = perm[r4[e]];
            cols[k] = perm[c4[e]];
            vals[k] = v4[e];
        }
    }
    memset(&out->m, 0, sizeof out->m);
    out->m.rows = out->m.cols = n;
    out->m.nnz = (size_t)nnz;
    out->m.ptr = nn_calloc((size_t)n + 1, sizeof(size_t));
    out->m.idx = nn_malloc((size_t)nnz * sizeof(int));
    out->val = malloc((size_t)nnz * sizeof(double));
    for (int e = 0; e < nnz; e++)
        out->m.ptr[rows[e] + 1]++;
    for (int r = 0; r < n; r++)
        out->m.ptr[r + 1] += out->m.ptr[r];
    size_t *fill = malloc((size_t)n * sizeof(size_t));
    for (int r = 0; r < n; r++)
        fill[r] = out->m.ptr[r];
    /* Columns within a row must increase: insert in order (2 per row). */
    for (int e = 0; e < nnz; e++) {
        size_t at = fill[rows[e]]++;
        while (at > out->m.ptr[rows[e]] && out->m.idx[at - 1] > cols[e]) {
            out->m.idx[at] = out->m.idx[at - 1];
            out->val[at] = out->val[at - 1];
            at--;
        }
        out->m.idx[at] = cols[e];
        out->val[at] = vals[e];
    }
    free(fill), free(perm), free(rows), free(cols), free(vals);
}

static void check_block_radius(int n, double outer_r, double outer_th,
                               const char *what)
{
    nn_rng rng;
    nn_rng_seed(&rng, 99);
    int blocks = n / 2;
    double *radii = malloc((size_t)blocks * sizeof(double));
    double *angles = malloc((size_t)blocks * sizeof(double));
    for (int b = 0; b < blocks; b++) {
        /* The rest spread over [0, 0.95 outer_r): a close second. */
        radii[b] = 0.95 * outer_r * nn_rng_uniform(&rng);
        angles[b] = 2 * PI * nn_rng_uniform(&rng);
    }
    radii[blocks / 3] = outer_r;
    angles[blocks / 3] = outer_th;
    sparse_d s;
    block_matrix(n, radii, angles, &rng, &s);
    double rho = 0;
    int matvecs = 0;
    nn_error err;
    int rc = nn_spectral_radius_op(n, op_csr, &s, NULL, &rho, &matvecs, &err);
    if (rc != NN_OK || fabs(rho - outer_r) > 1e-8 * outer_r)
        fprintf(stderr, "%s: rc %d rho %.12g want %.12g (%d products) %s\n",
                what, rc, rho, outer_r, matvecs, rc ? err.msg : "");
    CU_ASSERT_EQUAL(rc, NN_OK);
    TU_ASSERT_CLOSE(rho, outer_r, 1e-8 * outer_r);
    CU_ASSERT(matvecs > 0 && matvecs < 20000);
    nn_csr_release(&s.m);
    free(s.val), free(radii), free(angles);
}

static void test_arnoldi_complex_pair(void)
{
    /* Power iteration rotates forever on such a pair. */
    check_block_radius(3000, 1.7, 1.1, "complex pair");
}

static void test_arnoldi_plus_minus_pair(void)
{
    /* θ = π/2 with r: ±ir. And θ = 0 block r·I has a double eigenvalue r,
     * another case a single vector cannot settle on. */
    check_block_radius(2000, 0.9, PI / 2, "imaginary pair");
    check_block_radius(2000, 1.25, 0.0, "double real eigenvalue");
}

/* x · A for a dense row-major double matrix. */
typedef struct dense_d {
    int n;
    const double *a;
} dense_d;

static void op_dense(void *ctx, const double *x, double *y)
{
    const dense_d *d = ctx;
    for (int j = 0; j < d->n; j++)
        y[j] = 0;
    for (int i = 0; i < d->n; i++)
        for (int j = 0; j < d->n; j++)
            y[j] += x[i] * d->a[i * d->n + j];
}

static void test_arnoldi_matches_lapack_on_random_matrix(void)
{
    enum { N = 300 };
    double *a = malloc(sizeof(double) * N * N);
    nn_rng rng;
    nn_rng_seed(&rng, 3);
    for (int i = 0; i < N * N; i++)
        a[i] = nn_rng_bernoulli(&rng, 0.1) ? nn_rng_normal(&rng) : 0.0;
    double exact = 0, estimate = 0;
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_spectral_radius_dense(N, a, &exact, &err), NN_OK);
    dense_d d = {N, a};
    int matvecs = 0;
    CU_ASSERT_EQUAL(nn_spectral_radius_op(N, op_dense, &d, NULL, &estimate,
                                          &matvecs, &err), NN_OK);
    if (fabs(estimate - exact) > 1e-8 * exact)
        fprintf(stderr, "estimate %.12g exact %.12g (%d products)\n",
                estimate, exact, matvecs);
    TU_ASSERT_CLOSE(estimate, exact, 1e-8 * exact);
    free(a);
}

static void test_arnoldi_tiny_operators(void)
{
    /* The search space is the whole space: exact, no restart. */
    double one[1] = {-3};
    double rot[4] = {0, -2, 2, 0}; /* ±2i */
    double tri[9] = {1, 5, 0, 0, 2, 7, 0, 0, -4}; /* triangular: 1, 2, -4 */
    const double *mats[3] = {one, rot, tri};
    double want[3] = {3, 2, 4};
    for (int n = 1; n <= 3; n++) {
        dense_d d = {n, mats[n - 1]};
        double rho = 0;
        nn_error err;
        CU_ASSERT_EQUAL(nn_spectral_radius_op(n, op_dense, &d, NULL, &rho,
                                              NULL, &err), NN_OK);
        TU_ASSERT_CLOSE(rho, want[n - 1], 1e-12);
    }
}

static void test_linalg_errors(void)
{
    nn_error err;
    double a[1] = {0}, re[1], im[1], rho = 5;
    CU_ASSERT_EQUAL(nn_eigvals(0, a, re, im, &err), NN_ERR_INVALID);
    CU_ASSERT(strstr(err.msg, "empty") != NULL);
    CU_ASSERT_EQUAL(nn_spectral_radius_dense(0, a, &rho, &err),
                    NN_ERR_INVALID);
    CU_ASSERT_EQUAL(rho, 0);
    dense_d d = {1, a};
    CU_ASSERT_EQUAL(nn_spectral_radius_op(0, op_dense, &d, NULL, &rho, NULL,
                                          &err), NN_ERR_INVALID);
    /* Too few products allowed: a clear limit error, the estimate kept. */
    enum { N = 200 };
    double *m = malloc(sizeof(double) * N * N);
    nn_rng rng;
    nn_rng_seed(&rng, 5);
    for (int i = 0; i < N * N; i++)
        m[i] = nn_rng_normal(&rng);
    dense_d big = {N, m};
    nn_eig_opts opts = {8, 10, 1e-14};
    int matvecs = 0;
    CU_ASSERT_EQUAL(nn_spectral_radius_op(N, op_dense, &big, &opts, &rho,
                                          &matvecs, &err), NN_ERR_LIMIT);
    CU_ASSERT(strstr(err.msg, "did not converge") != NULL);
    CU_ASSERT(rho > 0);
    CU_ASSERT(matvecs >= 10 && matvecs < 20);
    free(m);
    /* Allocation failure is reported, not a crash. */
    nn_alloc_fail_after(1);
    CU_ASSERT_EQUAL(nn_spectral_radius_dense(N, a, &rho, &err), NN_ERR_NOMEM);
    nn_alloc_fail_after(0);
}

/* ------------------------------------------------------------ CSR */

static void test_csr_random_pattern(void)
{
    nn_rng a, b;
    nn_rng_seed(&a, 11);
    nn_rng_seed(&b, 11);
    nn_csr m, m2;
    nn_error err;
    const int rows = 400, cols = 300;
    const double p = 0.05;
    CU_ASSERT_EQUAL_FATAL(nn_csr_random(&m, rows, cols, p, 0, &a, &err),
                          NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_csr_random(&m2, rows, cols, p, 0, &b, &err),
                          NN_OK);
    /* Reproducible from the stream; 16-bit indices for 400 rows. */
    CU_ASSERT_EQUAL(m.nnz, m2.nnz);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m.idx16);
    CU_ASSERT_PTR_NULL(m.idx);
    CU_ASSERT_EQUAL(memcmp(m.idx16, m2.idx16, m.nnz * sizeof *m.idx16), 0);
    /* Binomial count within 5 standard deviations. */
    double expect = rows * cols * p, sd = sqrt(expect * (1 - p));
    CU_ASSERT(fabs((double)m.nnz - expect) < 5 * sd);
    CU_ASSERT(nn_csr_min_nnz(rows, cols, p) < (double)m.nnz);
    CU_ASSERT(nn_csr_min_nnz(rows, cols, p) > expect - 7 * sd);
    CU_ASSERT_EQUAL(m.ptr[0], 0);
    CU_ASSERT_EQUAL(m.ptr[cols], m.nnz);
    int ordered = 1;
    for (int c = 0; c < cols; c++)
        for (size_t k = m.ptr[c]; k < m.ptr[c + 1]; k++)
            if (nn_csr_idx(&m, k) >= rows ||
                (k > m.ptr[c] && nn_csr_idx(&m, k) <= nn_csr_idx(&m, k - 1)))
                ordered = 0;
    CU_ASSERT(ordered);
    /* Every input row is hit about equally often (no bias from the gaps). */
    int first_half = 0;
    for (size_t k = 0; k < m.nnz; k++)
        first_half += nn_csr_idx(&m, k) < rows / 2;
    CU_ASSERT(fabs(first_half - m.nnz / 2.0) < 5 * sqrt(m.nnz / 4.0));
    nn_csr_release(&m);
    nn_csr_release(&m2);
    /* Density 1 is the full matrix. */
    CU_ASSERT_EQUAL_FATAL(nn_csr_random(&m, 3, 4, 1.0, 0, &a, &err), NN_OK);
    CU_ASSERT_EQUAL(m.nnz, 12);
    nn_csr_release(&m);
    /* More than 65536 rows takes 32-bit indices. */
    CU_ASSERT_EQUAL_FATAL(nn_csr_random(&m, 70000, 2, 0.01, 0, &a, &err),
                          NN_OK);
    CU_ASSERT_PTR_NULL(m.idx16);
    CU_ASSERT_PTR_NOT_NULL(m.idx);
    int high = 0;
    for (size_t k = 0; k < m.nnz; k++)
        high |= nn_csr_idx(&m, k) >= 65536;
    CU_ASSERT(high);
    nn_csr_release(&m);
    CU_ASSERT_EQUAL(nn_csr_random(&m, 3, 4, 0.0, 0, &a, &err), NN_ERR_INVALID);
    CU_ASSERT_EQUAL(nn_csr_random(&m, 0, 4, 0.5, 0, &a, &err), NN_ERR_INVALID);
    CU_ASSERT_EQUAL(nn_csr_random(&m, 3, 4, 1.5, 0, &a, &err), NN_ERR_INVALID);
    nn_csr_release(&m); /* a failed draw leaves a releasable, empty m */
}

/* A draw far above max_nnz is refused before its memory is asked for: with
 * allocations above 1 MiB failing, a 100000 x 100000 pattern at 10 % (4 GB
 * of indices) comes back as the limit, not as out of memory. */
static void test_csr_refused_before_drawing(void)
{
    nn_rng rng;
    nn_rng_seed(&rng, 3);
    nn_csr m;
    nn_error err;
    nn_alloc_fail_above(1 << 20);
    uint64_t before = nn_alloc_count();
    int rc = nn_csr_random(&m, 100000, 100000, 0.1, 1000000, &rng, &err);
    nn_alloc_fail_above(0);
    CU_ASSERT_EQUAL(rc, NN_ERR_LIMIT);
    CU_ASSERT_EQUAL(nn_alloc_count(), before);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "1000000 allowed"));
    nn_csr_release(&m);
}

static void test_csr_products_match_dense(void)
{
    enum { R = 60, C = 17, B = 21 };
    nn_rng rng;
    nn_rng_seed(&rng, 12);
    nn_csr m;
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_csr_random(&m, R, C, 0.3, 0, &rng, &err), NN_OK);
    float *val = malloc(m.nnz * sizeof(float));
    for (size_t k = 0; k < m.nnz; k++)
        val[k] = (float)nn_rng_normal(&rng);
    float dense[R * C], x[B * R], y[B * C], dy[B * C], dx[B * R];
    float dval[R * C], want[B * R > B * C ? B * R : B * C];
    nn_csr_to_dense(&m, val, dense);
    for (int i = 0; i < B * R; i++)
        x[i] = (float)nn_rng_normal(&rng);
    for (int i = 0; i < B * C; i++)
        y[i] = dy[i] = (float)nn_rng_normal(&rng);
    /* y = 0.5 y + x · M */
    for (int b = 0; b < B; b++)
        for (int j = 0; j < C; j++) {
            double s = 0.5 * y[b * C + j];
            for (int i = 0; i < R; i++)
                s += (double)x[b * R + i] * dense[i * C + j];
            want[b * C + j] = (float)s;
        }
    float y1[B * C], work[B * (R + C + 32)];
    memcpy(y1, y, sizeof y);
    CU_ASSERT_FATAL(nn_csr_matmul_work(&m) <= R + C + 32);
    nn_csr_matmul(&m, val, x, B, 0.5f, y, work);
    for (int i = 0; i < B * C; i++)
        TU_ASSERT_CLOSE(y[i], want[i], 1e-5);
    /* A row gives the same bits alone as in a batch (one summation order
     * for the batch loop and for the vector path of batch 1). */
    for (int b = 0; b < B; b++) {
        nn_csr_matmul(&m, val, x + b * R, 1, 0.5f, y1 + b * C, NULL);
        CU_ASSERT_EQUAL(memcmp(y1 + b * C, y + b * C, C * sizeof(float)), 0);
    }
    /* dx = 1 + dy · Mᵀ */
    for (int i = 0; i < B * R; i++)
        dx[i] = 1;
    nn_csr_matmul_t_add(&m, val, dy, B, dx);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < R; i++) {
            double s = 1;
            for (int j = 0; j < C; j++)
                s += (double)dy[b * C + j] * dense[i * C + j];
            TU_ASSERT_CLOSE(dx[b * R + i], s, 1e-5);
        }
    /* dval = (xᵀ · dy) on the pattern */
    float *g = calloc(m.nnz, sizeof(float));
    nn_csr_grad_add(&m, x, dy, B, g);
    nn_csr_to_dense(&m, g, dval);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++) {
            double s = 0;
            for (int b = 0; b < B; b++)
                s += (double)x[b * R + i] * dy[b * C + j];
            if (dense[i * C + j] != 0)
                TU_ASSERT_CLOSE(dval[i * C + j], s, 1e-5);
        }
    free(g);
    free(val);
    nn_csr_release(&m);
}

/* y = beta * y + x · M in double, with the sum of the terms' magnitudes for
 * a float32 bound. */
static void csr_reference(const nn_csr *m, const float *val, const float *x,
                          size_t batch, float beta, const float *y0,
                          double *want, double *mag)
{
    for (size_t b = 0; b < batch; b++)
        for (int j = 0; j < m->cols; j++) {
            size_t o = b * (size_t)m->cols + (size_t)j;
            double s = beta == 0.0f ? 0 : (double)beta * y0[o];
            double a = fabs(s);
            for (size_t k = m->ptr[j]; k < m->ptr[j + 1]; k++) {
                double t = (double)val[k] *
                           x[b * (size_t)m->rows + (size_t)nn_csr_idx(m, k)];
                s += t;
                a += fabs(t);
            }
            want[o] = s;
            mag[o] = a;
        }
}

/* Every path of the forward product (plain, AVX2, AVX-512 where the CPU
 * has them; chunks of 32, 16 and 8 rows and single rows, these with their
 * inputs loaded one by one and gathered; W fetched ahead
 * or not) against double arithmetic, on odd sizes, outputs with no
 * inputs, 16- and 32-bit indices, and the three kinds of beta; and the same bits from every path
 * and every batch a row is computed in. */
static void test_csr_matmul_paths(void)
{
    /* The fourth has 32-bit indices; the fifth a W over 1 MiB, which the
     * batch product fetches ahead past the caches. */
    static const struct {
        int rows, cols;
        double density;
        size_t maxb;
    } shapes[] = {{37, 29, 0.3, 65},      {20, 50, 0.05, 65},
                  {1000, 70, 0.02, 65},   {70000, 5, 0.0005, 33},
                  {3000, 1200, 0.06, 40}};
    static const size_t batches[] = {1, 3, 8, 16, 24, 31, 32, 64, 65};
    static const float betas[] = {0.0f, 1.0f, 0.5f};
    nn_rng rng;
    nn_rng_seed(&rng, 21);
    nn_error err;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        nn_csr m;
        CU_ASSERT_EQUAL_FATAL(nn_csr_random(&m, shapes[si].rows,
                                            shapes[si].cols,
                                            shapes[si].density, 0, &rng, &err),
                              NN_OK);
        int wide = m.rows > 65536, empty = 0;
        CU_ASSERT_EQUAL(wide, m.idx != NULL);
        for (int j = 0; j < m.cols; j++)
            empty += m.ptr[j] == m.ptr[j + 1];
        if (si == 1)
            CU_ASSERT(empty > 0); /* the case is meant to have some */
        if (si == 4)
            CU_ASSERT(m.nnz * (sizeof(float) + sizeof(uint16_t)) > 1u << 20);
        size_t rows = (size_t)m.rows, cols = (size_t)m.cols;
        size_t maxb = shapes[si].maxb;
        float *val = malloc((m.nnz ? m.nnz : 1) * sizeof(float));
        float *x = malloc(maxb * rows * sizeof(float));
        float *y0 = malloc(maxb * cols * sizeof(float));
        float *y = malloc(maxb * cols * sizeof(float));
        float *first = malloc(maxb * cols * sizeof(float));
        float *one = malloc(cols * sizeof(float));
        /* one float more, to hand the product a scratch off any line */
        float *work = malloc((maxb * nn_csr_matmul_work(&m) + 1) *
                             sizeof(float));
        double *want = malloc(maxb * cols * sizeof(double));
        double *mag = malloc(maxb * cols * sizeof(double));
        CU_ASSERT_FATAL(val && x && y0 && y && first && one && work && want &&
                        mag);
        for (size_t k = 0; k < m.nnz; k++)
            val[k] = (float)nn_rng_normal(&rng);
        for (size_t i = 0; i < maxb * rows; i++)
            x[i] = (float)nn_rng_normal(&rng);
        for (size_t bi = 0; bi < sizeof batches / sizeof *batches; bi++) {
            size_t batch = batches[bi];
            if (batch > maxb)
                continue;
            float beta = betas[bi % 3];
            for (size_t i = 0; i < batch * cols; i++)
                /* beta 0 must not read y, not even a NaN */
                y0[i] = beta == 0.0f ? NAN : (float)nn_rng_normal(&rng);
            csr_reference(&m, val, x, batch, beta, y0, want, mag);
            /* Levels 1 and 2 twice: batch-1 inputs loaded one by one, then
             * by gathers; both must give the plain path's bits. */
            for (int pass = 0; pass < 5; pass++) {
                int level = pass < 3 ? pass : pass - 2;
                nn_csr_set_b1_kernel(pass < 3 ? NN_CSR_B1_INSERT
                                              : NN_CSR_B1_GATHER);
                nn_limit_vectors(level);
                memcpy(y, y0, batch * cols * sizeof(float));
                nn_csr_matmul(&m, val, x, batch, beta, y, work + 1);
                int bad = 0, differ = 0;
                for (size_t i = 0; i < batch * cols; i++)
                    bad += !(fabs(y[i] - want[i]) <= 1e-5 * mag[i] + 1e-6);
                if (level == 0)
                    memcpy(first, y, batch * cols * sizeof(float));
                else
                    differ = memcmp(first, y, batch * cols * sizeof(float));
                for (size_t b = 0; b < batch; b++) {
                    memcpy(one, y0 + b * cols, cols * sizeof(float));
                    nn_csr_matmul(&m, val, x + b * rows, 1, beta, one, NULL);
                    differ |= memcmp(one, y + b * cols, cols * sizeof(float));
                }
                if (bad || differ)
                    fprintf(stderr, "%d x %d, batch %zu, beta %g, level %d, "
                            "%s: %d outputs off, bits differ %d\n", m.rows,
                            m.cols, batch, beta, level, nn_csr_b1_kernel_name(),
                            bad, differ != 0);
                CU_ASSERT_EQUAL(bad, 0);
                CU_ASSERT_EQUAL(differ, 0);
            }
            nn_limit_vectors(-1);
            nn_csr_set_b1_kernel(NN_CSR_B1_AUTO);
        }
        free(val);
        free(x);
        free(y0);
        free(y);
        free(first);
        free(one);
        free(work);
        free(want);
        free(mag);
        nn_csr_release(&m);
    }
}

int main(void)
{
    static const tu_test tests[] = {
        {"eigenvalues of conjugated rotation-scaling blocks",
         test_eigvals_rotation_blocks},
        {"a sparse draw far over its limit is refused before allocating",
         test_csr_refused_before_drawing},
        {"eigenvalues of a companion matrix", test_eigvals_companion},
        {"Arnoldi: a complex outer pair, sparse", test_arnoldi_complex_pair},
        {"Arnoldi: imaginary pair and double eigenvalue",
         test_arnoldi_plus_minus_pair},
        {"Arnoldi agrees with LAPACK on a random matrix",
         test_arnoldi_matches_lapack_on_random_matrix},
        {"Arnoldi on 1 x 1 to 3 x 3 operators", test_arnoldi_tiny_operators},
        {"linalg errors", test_linalg_errors},
        {"CSR random pattern", test_csr_random_pattern},
        {"CSR products match dense", test_csr_products_match_dense},
        {"CSR forward product: every path and batch, double reference",
         test_csr_matmul_paths},
        {NULL, NULL}};
    return tu_run_suite("linalg", tests);
}
