/*
 * sparse.c — sparse patterns and their products (see sparse.h).
 *
 * The forward product is the hot loop of a sparse reservoir. Each output
 * sums its entries in eight interleaved partial sums (entry k of a column
 * goes to lane k mod 8 of that column), then adds the lanes in a fixed tree
 * and the tail last. At batch 1, with AVX2, the eight lanes are one vector
 * register: the values of a block come in one load and the eight inputs
 * one by one (two loads per entry instead of the plain loop's three; an
 * AVX2 gather instruction measured slower still: gathers are microcoded on
 * AMD Zen 4 and slowed by the gather-data-sampling mitigation on recent
 * Intel CPUs). At batch B > 1, 16
 * (AVX-512) or 8 (AVX2) rows at a time are transposed into the scratch so
 * that the values an entry multiplies are contiguous: one load, multiply
 * and add per entry for all of them, each lane a vector register, and each
 * row still sees the lanes and tree of batch 1; the vector code multiplies
 * and adds separately (no fused multiply-add: C11 without extensions does
 * not contract either), so it gives the bits of the plain code. Rows left
 * over take the batch-1 path.
 */
#include "sparse.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NN_HAVE_AVX2_PATH 1
#endif

void nn_csr_release(nn_csr *m)
{
    nn_free(m->ptr);
    nn_free(m->idx16);
    nn_free(m->idx);
    memset(m, 0, sizeof *m);
}

double nn_csr_min_nnz(int rows, int cols, double density)
{
    double expect = (double)rows * (double)cols * density;
    double low = expect - 6.0 * sqrt(expect * (1 - density));
    return low > 0 ? low : 0;
}

int nn_csr_random(nn_csr *m, int rows, int cols, double density,
                  size_t max_nnz, nn_rng *rng, nn_error *err)
{
    memset(m, 0, sizeof *m);
    if (rows < 1 || cols < 1 || !(density > 0) || density > 1)
        return nn_error_set(err, NN_ERR_INVALID, "a sparse pattern needs "
                            "rows, cols >= 1 and 0 < density <= 1");
    uint64_t total = (uint64_t)rows * (uint64_t)cols;
    double expect = (double)total * density;
    if (max_nnz && nn_csr_min_nnz(rows, cols, density) > (double)max_nnz)
        return nn_error_set(err, NN_ERR_LIMIT, "a %d x %d pattern at density "
                            "%g holds about %.0f entries, more than the %zu "
                            "allowed", rows, cols, density, expect, max_nnz);
    /* Room for the expected count and a few standard deviations more; the
     * array grows if the draw is unusually dense. */
    size_t cap = (size_t)(expect + 6.0 * sqrt(expect) + 16.0);
    if ((double)cap > (double)total)
        cap = (size_t)total;
    int narrow = rows <= 65536;
    size_t esz = narrow ? sizeof(uint16_t) : sizeof(int);
    void *buf = nn_malloc(cap * esz);
    m->rows = rows;
    m->cols = cols;
    m->ptr = nn_calloc((size_t)cols + 1, sizeof(size_t));
    if (!m->ptr || !buf)
        goto oom;
    /* log(1 - p), for drawing the geometric gaps; p = 1 keeps everything. */
    double log_q = density < 1 ? log1p(-density) : 0;
    uint64_t pos = 0;
    size_t n = 0;
    for (;;) {
        if (density < 1) {
            double u = 1.0 - nn_rng_uniform(rng); /* (0, 1] */
            double gap = floor(log(u) / log_q);
            if (gap >= (double)(total - pos))
                break;
            pos += (uint64_t)gap;
        }
        if (pos >= total)
            break;
        if (n == cap) {
            size_t grown = cap + cap / 2 + 16;
            void *more = nn_realloc(buf, grown * esz);
            if (!more)
                goto oom;
            buf = more;
            cap = grown;
        }
        uint64_t c = pos / (uint64_t)rows, r = pos % (uint64_t)rows;
        if (narrow)
            ((uint16_t *)buf)[n++] = (uint16_t)r;
        else
            ((int *)buf)[n++] = (int)r;
        m->ptr[c + 1]++;
        pos++;
    }
    for (int c = 0; c < cols; c++)
        m->ptr[c + 1] += m->ptr[c];
    m->nnz = n;
    if (narrow)
        m->idx16 = buf;
    else
        m->idx = buf;
    return NN_OK;
oom:
    nn_free(buf);
    nn_csr_release(m);
    return nn_error_set(err, NN_ERR_NOMEM, "out of memory for a sparse "
                        "%d x %d pattern at density %g", rows, cols, density);
}

int nn_csr_from_arrays(nn_csr *m, int rows, int cols, const size_t *ptr,
                       const uint32_t *row, size_t nnz, nn_error *err)
{
    memset(m, 0, sizeof *m);
    m->rows = rows;
    m->cols = cols;
    m->nnz = nnz;
    m->ptr = nn_malloc(((size_t)cols + 1) * sizeof *m->ptr);
    if (rows <= 65536)
        m->idx16 = nn_malloc((nnz ? nnz : 1) * sizeof *m->idx16);
    else
        m->idx = nn_malloc((nnz ? nnz : 1) * sizeof *m->idx);
    if (!m->ptr || (!m->idx16 && !m->idx)) {
        nn_csr_release(m);
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory for a sparse "
                            "%d x %d pattern of %zu entries", rows, cols,
                            nnz);
    }
    memcpy(m->ptr, ptr, ((size_t)cols + 1) * sizeof *m->ptr);
    for (size_t k = 0; k < nnz; k++) {
        if (m->idx16)
            m->idx16[k] = (uint16_t)row[k];
        else
            m->idx[k] = (int)row[k];
    }
    return NN_OK;
}

/* --------------------------------------------------------- forward */

enum { LANES = 8 };

static inline float reduce_lanes(const float *a, float tail)
{
    return (((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))) +
           tail;
}

static inline float start_value(float y, float beta)
{
    return beta == 0.0f ? 0.0f : beta == 1.0f ? y : beta * y;
}

/* One output of a batch-1 product, the plain way. */
static inline float column_plain(const nn_csr *m, const float *val,
                                 const float *x, size_t k, size_t end)
{
    float acc[LANES] = {0}, tail = 0;
    for (; k + LANES <= end; k += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += val[k + l] * x[nn_csr_idx(m, k + l)];
    for (; k < end; k++)
        tail += val[k] * x[nn_csr_idx(m, k)];
    return reduce_lanes(acc, tail);
}

static void matvec_plain(const nn_csr *m, const float *val, const float *x,
                         float beta, float *y)
{
    for (int j = 0; j < m->cols; j++)
        y[j] = start_value(y[j], beta) +
               column_plain(m, val, x, m->ptr[j], m->ptr[j + 1]);
}

#ifdef NN_HAVE_AVX2_PATH
/* Batch 1 with the lanes in one vector register: the eight inputs of a
 * block are loaded one by one into it (no gather instruction), the values
 * with one load, so an entry costs two loads instead of three. Same lanes,
 * same order, same bits as matvec_plain. */
#define NN_X8(ip)                                                            \
    _mm256_set_ps(x[(ip)[7]], x[(ip)[6]], x[(ip)[5]], x[(ip)[4]],            \
                  x[(ip)[3]], x[(ip)[2]], x[(ip)[1]], x[(ip)[0]])
__attribute__((target("avx2"))) static void
matvec_avx2(const nn_csr *m, const float *restrict val,
            const float *restrict x, float beta, float *restrict y)
{
    for (int j = 0; j < m->cols; j++) {
        size_t k = m->ptr[j], end = m->ptr[j + 1];
        __m256 a = _mm256_setzero_ps();
        if (m->idx16)
            for (; k + LANES <= end; k += LANES)
                a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_loadu_ps(val + k),
                                                   NN_X8(m->idx16 + k)));
        else
            for (; k + LANES <= end; k += LANES)
                a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_loadu_ps(val + k),
                                                   NN_X8(m->idx + k)));
        float acc[LANES], tail = 0;
        _mm256_storeu_ps(acc, a);
        for (; k < end; k++)
            tail += val[k] * x[nn_csr_idx(m, k)];
        y[j] = start_value(y[j], beta) + reduce_lanes(acc, tail);
    }
}
#undef NN_X8
#endif

size_t nn_csr_matmul_work(const nn_csr *m)
{
    return (size_t)m->rows; /* 16 rows of it per 16 batch rows */
}

#ifdef NN_HAVE_AVX2_PATH
/* One output j for the batch rows b0 .. b0 + width - 1 of xt (rows, B), with
 * the lanes in vector registers of `width` floats: per entry one load of
 * `width` inputs, a multiply and an add. REG, ZERO, ADD, MUL, SET1, LOADU,
 * STOREU name the vector type's intrinsics. */
#define NN_COLUMN_CHUNK(REG, width, ZERO, ADD, MUL, SET1, LOADU, STOREU)      \
    do {                                                                     \
        REG a0 = ZERO(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0,         \
            a6 = a0, a7 = a0, t = a0;                                        \
        size_t k = k0;                                                       \
        for (; k + LANES <= end; k += LANES) {                               \
            const float *v = val + k;                                        \
            a0 = ADD(a0, MUL(SET1(v[0]), LOADU(xt + row(m, k, B) + b0)));      \
            a1 = ADD(a1, MUL(SET1(v[1]), LOADU(xt + row(m, k + 1, B) + b0)));  \
            a2 = ADD(a2, MUL(SET1(v[2]), LOADU(xt + row(m, k + 2, B) + b0)));  \
            a3 = ADD(a3, MUL(SET1(v[3]), LOADU(xt + row(m, k + 3, B) + b0)));  \
            a4 = ADD(a4, MUL(SET1(v[4]), LOADU(xt + row(m, k + 4, B) + b0)));  \
            a5 = ADD(a5, MUL(SET1(v[5]), LOADU(xt + row(m, k + 5, B) + b0)));  \
            a6 = ADD(a6, MUL(SET1(v[6]), LOADU(xt + row(m, k + 6, B) + b0)));  \
            a7 = ADD(a7, MUL(SET1(v[7]), LOADU(xt + row(m, k + 7, B) + b0)));  \
        }                                                                    \
        for (; k < end; k++)                                                 \
            t = ADD(t, MUL(SET1(val[k]), LOADU(xt + row(m, k, B) + b0)));      \
        REG r = ADD(ADD(ADD(ADD(a0, a4), ADD(a2, a6)),                        \
                        ADD(ADD(a1, a5), ADD(a3, a7))),                      \
                    t);                                                      \
        float out[width];                                                    \
        STOREU(out, r);                                                      \
        for (int l = 0; l < (width); l++) {                                  \
            float *yb = y + (b0 + (size_t)l) * (size_t)m->cols + j;          \
            *yb = start_value(*yb, beta) + out[l];                           \
        }                                                                    \
    } while (0)

static inline size_t row(const nn_csr *m, size_t k, size_t B)
{
    return (size_t)nn_csr_idx(m, k) * B;
}

/* xt holds the rows b0 .. b0 + 7 of x transposed, (m->rows, 8). */
__attribute__((target("avx2"))) static void
chunk_avx2(const nn_csr *m, const float *restrict val,
           const float *restrict xt, size_t b0, float beta, float *restrict y)
{
    const size_t B = 8;
    xt -= b0; /* the macro adds b0 back */
    for (int j = 0; j < m->cols; j++) {
        size_t k0 = m->ptr[j], end = m->ptr[j + 1];
        NN_COLUMN_CHUNK(__m256, 8, _mm256_setzero_ps, _mm256_add_ps,
                        _mm256_mul_ps, _mm256_set1_ps, _mm256_loadu_ps,
                        _mm256_storeu_ps);
    }
}

/* The same for sixteen rows in AVX-512 registers. */
__attribute__((target("avx512f"))) static void
chunk_avx512(const nn_csr *m, const float *restrict val,
             const float *restrict xt, size_t b0, float beta,
             float *restrict y)
{
    const size_t B = 16;
    xt -= b0;
    for (int j = 0; j < m->cols; j++) {
        size_t k0 = m->ptr[j], end = m->ptr[j + 1];
        NN_COLUMN_CHUNK(__m512, 16, _mm512_setzero_ps, _mm512_add_ps,
                        _mm512_mul_ps, _mm512_set1_ps, _mm512_loadu_ps,
                        _mm512_storeu_ps);
    }
}
#endif

/* 0: plain, 1: AVX2, 2: AVX-512F as well. */
static int vector_level(void)
{
#ifdef NN_HAVE_AVX2_PATH
    if (!__builtin_cpu_supports("avx2"))
        return 0;
    return __builtin_cpu_supports("avx512f") ? 2 : 1;
#else
    return 0;
#endif
}

void nn_csr_matmul(const nn_csr *m, const float *val, const float *x,
                   size_t batch, float beta, float *y, float *work)
{
    int level = vector_level();
    size_t rows = (size_t)m->rows, cols = (size_t)m->cols, done = 0;
#ifdef NN_HAVE_AVX2_PATH
    /* Chunks of a vector's width of rows, each transposed so that the
     * values an entry multiplies are contiguous; the chunk's inputs stay in
     * the first cache levels while W streams past once per chunk. */
    size_t width = level == 2 ? 16 : level == 1 ? 8 : 0;
    if (width && batch >= width) {
        size_t full = batch / width * width;
        for (size_t b0 = 0; b0 < full; b0 += width) {
            for (size_t r = 0; r < rows; r++)
                for (size_t l = 0; l < width; l++)
                    work[r * width + l] = x[(b0 + l) * rows + r];
            if (width == 16)
                chunk_avx512(m, val, work, b0, beta, y);
            else
                chunk_avx2(m, val, work, b0, beta, y);
        }
        done = full;
    }
#endif
    (void)work;
    for (size_t b = done; b < batch; b++) {
#ifdef NN_HAVE_AVX2_PATH
        if (level >= 1) {
            matvec_avx2(m, val, x + b * rows, beta, y + b * cols);
            continue;
        }
#endif
        matvec_plain(m, val, x + b * rows, beta, y + b * cols);
    }
}

/* -------------------------------------------------------- backward */

void nn_csr_matmul_t_add(const nn_csr *m, const float *val, const float *dy,
                         size_t batch, float *dx)
{
    size_t cols = (size_t)m->cols, rows = (size_t)m->rows;
    for (size_t b = 0; b < batch; b++) {
        const float *dyb = dy + b * cols;
        float *dxb = dx + b * rows;
        for (size_t j = 0; j < cols; j++) {
            float d = dyb[j];
            if (d == 0.0f)
                continue;
            for (size_t k = m->ptr[j]; k < m->ptr[j + 1]; k++)
                dxb[nn_csr_idx(m, k)] += val[k] * d;
        }
    }
}

void nn_csr_grad_add(const nn_csr *m, const float *x, const float *dy,
                     size_t batch, float *dval)
{
    size_t cols = (size_t)m->cols, rows = (size_t)m->rows;
    for (size_t b = 0; b < batch; b++) {
        const float *dyb = dy + b * cols;
        const float *xb = x + b * rows;
        for (size_t j = 0; j < cols; j++) {
            float d = dyb[j];
            for (size_t k = m->ptr[j]; k < m->ptr[j + 1]; k++)
                dval[k] += xb[nn_csr_idx(m, k)] * d;
        }
    }
}

void nn_csr_to_dense(const nn_csr *m, const float *val, float *dense)
{
    size_t cols = (size_t)m->cols;
    memset(dense, 0, (size_t)m->rows * cols * sizeof(float));
    for (size_t j = 0; j < cols; j++)
        for (size_t k = m->ptr[j]; k < m->ptr[j + 1]; k++)
            dense[(size_t)nn_csr_idx(m, k) * cols + j] = val[k];
}

void nn_csr_vecmat_d(const nn_csr *m, const double *val, const double *x,
                     double *y)
{
    for (size_t j = 0; j < (size_t)m->cols; j++) {
        double sum = 0;
        for (size_t k = m->ptr[j]; k < m->ptr[j + 1]; k++)
            sum += val[k] * x[nn_csr_idx(m, k)];
        y[j] = sum;
    }
}

void nn_csr_vecmat_f(const nn_csr *m, const float *val, const double *x,
                     double *y)
{
    for (size_t j = 0; j < (size_t)m->cols; j++) {
        double sum = 0;
        for (size_t k = m->ptr[j]; k < m->ptr[j + 1]; k++)
            sum += (double)val[k] * x[nn_csr_idx(m, k)];
        y[j] = sum;
    }
}
