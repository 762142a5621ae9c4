/*
 * sparse.c — sparse patterns and their products (see sparse.h).
 *
 * The forward product is the hot loop of a sparse reservoir. Each output
 * sums its entries in eight interleaved partial sums (entry k of a column
 * goes to lane k mod 8 of that column), then adds the lanes in a fixed tree
 * and the tail last. At batch 1, with AVX2, the eight lanes are one vector
 * register and the values of a block come in one load; the eight inputs
 * come either one by one (two loads per entry instead of the plain loop's
 * three) or by one gather instruction. Which is faster depends on the CPU:
 * gathers are microcoded on AMD Zen 4 and slowed by the gather-data-
 * sampling mitigation on some Intel CPUs, and a fifth faster than the
 * loads one by one on Intel CPUs without that mitigation. Both give the
 * same bits, so the first pattern made times the two on a small pattern
 * and keeps the faster (choose_b1_kernel). At batch B > 1, 32 or 16 (AVX-512) or 32 or 8 (AVX2) rows at
 * a time are transposed, 8 x 8 blocks through vector registers, into the
 * scratch so that the values an entry multiplies are contiguous: one
 * broadcast of the value and, per vector of rows, one load, multiply and
 * add per entry, each lane one or two vector registers, and each row still
 * sees the lanes and tree of batch 1; the outputs come back transposed the
 * same way. The vector code multiplies and adds separately (no fused
 * multiply-add: C11 without extensions does not contract either), so it
 * gives the bits of the plain code. Rows left over take the batch-1 path.
 * At 10,000 units a 32-row chunk's inputs are 1.3 MB read at random, which
 * is why a session's large scratch is offered huge pages
 * (nn_scratch_alloc): on 4 KiB pages nearly every read missed the TLB;
 * and a W larger than L2 is fetched ahead past the caches so as not to
 * push those inputs out (NN_STREAM_W_BYTES).
 */
#include "sparse.h"

#include "nn_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NN_HAVE_AVX2_PATH 1
#endif

/* The batch-1 kernel in use, NN_CSR_B1_AUTO until measured; the measured
 * choice, written once before b1_chosen completes. */
static atomic_int b1_kernel = NN_CSR_B1_AUTO;
static int b1_measured = NN_CSR_B1_INSERT;
static pthread_once_t b1_chosen = PTHREAD_ONCE_INIT;
static void choose_b1_kernel_once(void);

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
    /* The kernel is chosen while a pattern is made, not in a step. */
    pthread_once(&b1_chosen, choose_b1_kernel_once);
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
    /* The kernel is chosen while a pattern is made, not in a step. */
    pthread_once(&b1_chosen, choose_b1_kernel_once);
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
/* The tree of reduce_lanes inside the register: (a0+a4, a1+a5, a2+a6,
 * a3+a7), then ((a0+a4)+(a2+a6), (a1+a5)+(a3+a7)), then their sum; the
 * same additions in the same order, without a round trip through memory. */
__attribute__((target("avx2"))) static inline float reduce_vector(__m256 a,
                                                                   float tail)
{
    __m128 v = _mm_add_ps(_mm256_castps256_ps128(a),
                          _mm256_extractf128_ps(a, 1));
    __m128 w = _mm_add_ps(v, _mm_movehl_ps(v, v));
    return _mm_cvtss_f32(_mm_add_ss(w, _mm_movehdup_ps(w))) + tail;
}

/* Batch 1 with the lanes in one vector register, the values of a block
 * in one load. The eight inputs come one by one (no gather instruction),
 * so an entry costs two loads instead of three, 16-bit indices four to a
 * 64-bit load taken apart with shifts, which cost no load; or, with
 * gather, by one gather instruction. Same lanes, same order, same bits as
 * matvec_plain either way. */
#define NN_X4(w)                                                             \
    x[(w) >> 48], x[((w) >> 32) & 0xffff], x[((w) >> 16) & 0xffff],          \
        x[(w) & 0xffff]
#define NN_X8(ip)                                                            \
    _mm256_set_ps(x[(ip)[7]], x[(ip)[6]], x[(ip)[5]], x[(ip)[4]],            \
                  x[(ip)[3]], x[(ip)[2]], x[(ip)[1]], x[(ip)[0]])
#define NN_ADD_BLOCK(inputs)                                                 \
    a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_loadu_ps(val + k), (inputs)))
__attribute__((target("avx2"))) static void
matvec_avx2(const nn_csr *m, const float *restrict val,
            const float *restrict x, float beta, float *restrict y, int gather)
{
    for (int j = 0; j < m->cols; j++) {
        size_t k = m->ptr[j], end = m->ptr[j + 1];
        __m256 a = _mm256_setzero_ps();
        if (gather && m->idx16)
            for (; k + LANES <= end; k += LANES)
                NN_ADD_BLOCK(_mm256_i32gather_ps(
                    x, _mm256_cvtepu16_epi32(_mm_loadu_si128(
                           (const __m128i *)(m->idx16 + k))), 4));
        else if (gather)
            for (; k + LANES <= end; k += LANES)
                NN_ADD_BLOCK(_mm256_i32gather_ps(
                    x, _mm256_loadu_si256((const __m256i *)(m->idx + k)), 4));
        else if (m->idx16)
            for (; k + LANES <= end; k += LANES) {
                uint64_t lo, hi;
                memcpy(&lo, m->idx16 + k, sizeof lo);
                memcpy(&hi, m->idx16 + k + 4, sizeof hi);
                NN_ADD_BLOCK(_mm256_set_ps(NN_X4(hi), NN_X4(lo)));
            }
        else
            for (; k + LANES <= end; k += LANES)
                NN_ADD_BLOCK(NN_X8(m->idx + k));
        float tail = 0;
        for (; k < end; k++)
            tail += val[k] * x[nn_csr_idx(m, k)];
        y[j] = start_value(y[j], beta) + reduce_vector(a, tail);
    }
}
#undef NN_ADD_BLOCK
#undef NN_X8
#undef NN_X4
#endif

static double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Times both ways on a pattern of 2,048 inputs by 512 outputs at 5 %
 * (about 52,000 entries, a few tens of microseconds a product), seven
 * times each, interleaved, and keeps the best time of each: the gather
 * must be a tenth faster to be chosen, so that noise keeps the loads one
 * by one, the way that is never slow. Without AVX2, or if the memory for
 * the trial is refused, nothing is measured. Plain malloc: the trial is
 * not the engine's memory, and must not count as a step's allocation. */
static void choose_b1_kernel_once(void)
{
    int chosen = NN_CSR_B1_INSERT;
#ifdef NN_HAVE_AVX2_PATH
    enum { IN = 2048, OUT = 512, MAX_NNZ = IN * OUT / 16 };
    nn_csr m = {IN, OUT, 0, NULL, NULL, NULL};
    m.ptr = malloc((OUT + 1) * sizeof *m.ptr);
    m.idx16 = malloc(MAX_NNZ * sizeof *m.idx16);
    float *val = malloc(MAX_NNZ * sizeof *val);
    float *x = malloc(IN * sizeof *x), *y = malloc(OUT * sizeof *y);
    /* The CPU's own level: a test's nn_limit_vectors must not decide. */
    if (__builtin_cpu_supports("avx2") && m.ptr && m.idx16 && val && x &&
        y) {
        uint32_t s = 2463534242u;
        for (int j = 0; j < OUT; j++) {
            m.ptr[j] = m.nnz;
            for (int i = 0; i < IN && m.nnz < MAX_NNZ; i++) {
                s ^= s << 13, s ^= s >> 17, s ^= s << 5;
                if (s % 20 == 0)
                    m.idx16[m.nnz++] = (uint16_t)i;
            }
        }
        m.ptr[OUT] = m.nnz;
        for (size_t k = 0; k < m.nnz; k++)
            val[k] = (float)(k % 7) - 3.0f;
        for (int i = 0; i < IN; i++)
            x[i] = (float)(i % 5) * 0.25f;
        double best[2] = {1e300, 1e300};
        for (int t = 0; t < 7; t++)
            for (int way = 0; way < 2; way++) {
                double t0 = seconds_now();
                matvec_avx2(&m, val, x, 0.0f, y, way);
                double dt = seconds_now() - t0;
                best[way] = dt < best[way] ? dt : best[way];
            }
        if (best[1] < 0.9 * best[0])
            chosen = NN_CSR_B1_GATHER;
    }
    free(m.ptr);
    free(m.idx16);
    free(val);
    free(x);
    free(y);
#endif
    b1_measured = chosen;
    atomic_store(&b1_kernel, chosen);
}

void nn_csr_set_b1_kernel(nn_csr_b1_kernel k)
{
    pthread_once(&b1_chosen, choose_b1_kernel_once);
    atomic_store(&b1_kernel, k == NN_CSR_B1_AUTO ? b1_measured : (int)k);
}

const char *nn_csr_b1_kernel_name(void)
{
    pthread_once(&b1_chosen, choose_b1_kernel_once);
    if (nn_vector_level() < 1)
        return "plain";
    return atomic_load(&b1_kernel) == NN_CSR_B1_GATHER ? "gather" : "insert";
}

size_t nn_csr_matmul_work(const nn_csr *m)
{
    /* A chunk of w batch rows takes w * rows floats of transposed inputs
     * and w * cols of transposed outputs, w <= the batch, each aligned to
     * a cache line (at most 15 floats lost before each). */
    return (size_t)m->rows + (size_t)m->cols + 32;
}

#ifdef NN_HAVE_AVX2_PATH
static inline size_t row(const nn_csr *m, size_t k, size_t B)
{
    return (size_t)nn_csr_idx(m, k) * B;
}

/* W larger than this is fetched ahead with the non-temporal hint by the
 * batch product: each of its values and indices is read once per chunk,
 * and without the hint they pushed the chunk's transposed inputs, each
 * read about a hundred times, out of the 1 MB L2 (a batch-64 step of
 * 10,000 units at 1 % took 3 % longer in side-by-side runs on a quiet
 * machine, 10-13 % on a loaded one). A W that
 * fits stays in L2 between chunks and is better left alone (2-3 % slower
 * with the hint at 1,000 units). */
#define NN_STREAM_W_BYTES ((size_t)1 << 20)

static inline void fetch_ahead(const void *p)
{
    /* A prefetch never faults, so reading past the end is harmless; the
     * address is computed as an integer to stay clear of the array. */
    _mm_prefetch((const char *)((uintptr_t)p + 1024), _MM_HINT_NTA);
}

/* The outputs of one chunk of batch rows, transposed: yt (cols, width)
 * from xt (rows, width), width a multiple of the vector width V. Each of
 * the eight lanes and the tail is width / V registers (one or two), so a
 * non-zero costs one broadcast of its value and, per register, a load of V
 * inputs, a multiply and an add; every row sees the lanes, tree and tail
 * of batch 1. REG and the intrinsics name the vector type. */
/* The loops over lanes and registers must become straight code, or the
 * accumulators live in memory. */
#define NN_UNROLL _Pragma("GCC unroll 16")
#define NN_CHUNK_BODY(REG, V, NV, ZERO, ADD, MUL, SET1, LOADU, STOREU)        \
    do {                                                                     \
        const size_t W = (size_t)(V) * (NV);                                 \
        for (int j = 0; j < m->cols; j++) {                                  \
            size_t k = m->ptr[j], end = m->ptr[j + 1];                       \
            REG acc[LANES + 1][NV];                                          \
            NN_UNROLL for (int l = 0; l <= LANES; l++)                       \
                NN_UNROLL for (int h = 0; h < (NV); h++)                     \
                    acc[l][h] = ZERO();                                      \
            for (; k + LANES <= end; k += LANES) {                           \
                if (stream) {                                                \
                    fetch_ahead(val + k);                                    \
                    fetch_ahead(m->idx16 ? (const void *)(m->idx16 + k)      \
                                         : (const void *)(m->idx + k));      \
                }                                                            \
                NN_UNROLL for (int l = 0; l < LANES; l++) {                  \
                    REG v = SET1(val[k + l]);                                \
                    const float *p = xt + row(m, k + l, W);                  \
                    NN_UNROLL for (int h = 0; h < (NV); h++)                 \
                        acc[l][h] = ADD(acc[l][h],                           \
                                        MUL(v, LOADU(p + h * (V))));         \
                }                                                            \
            }                                                                \
            for (; k < end; k++) {                                           \
                REG v = SET1(val[k]);                                        \
                const float *p = xt + row(m, k, W);                          \
                NN_UNROLL for (int h = 0; h < (NV); h++)                     \
                    acc[LANES][h] = ADD(acc[LANES][h],                       \
                                        MUL(v, LOADU(p + h * (V))));         \
            }                                                                \
            NN_UNROLL for (int h = 0; h < (NV); h++)                         \
                STOREU(yt + (size_t)j * W + h * (V),                         \
                       ADD(ADD(ADD(ADD(acc[0][h], acc[4][h]),                 \
                                   ADD(acc[2][h], acc[6][h])),               \
                               ADD(ADD(acc[1][h], acc[5][h]),                 \
                                   ADD(acc[3][h], acc[7][h]))),              \
                           acc[LANES][h]));                                  \
        }                                                                    \
    } while (0)

__attribute__((target("avx2"))) static void
chunk8(const nn_csr *m, const float *restrict val, const float *restrict xt,
       float *restrict yt, int stream)
{
    NN_CHUNK_BODY(__m256, 8, 1, _mm256_setzero_ps, _mm256_add_ps,
                  _mm256_mul_ps, _mm256_set1_ps, _mm256_loadu_ps,
                  _mm256_storeu_ps);
}

__attribute__((target("avx512f"))) static void
chunk16(const nn_csr *m, const float *restrict val, const float *restrict xt,
        float *restrict yt, int stream)
{
    NN_CHUNK_BODY(__m512, 16, 1, _mm512_setzero_ps, _mm512_add_ps,
                  _mm512_mul_ps, _mm512_set1_ps, _mm512_loadu_ps,
                  _mm512_storeu_ps);
}

/* 32 rows: eighteen accumulators of the 32 AVX-512 registers. W is read
 * once per 32 rows, and the 32 inputs of an entry are two adjacent
 * cache lines. */
__attribute__((target("avx512f"))) static void
chunk32(const nn_csr *m, const float *restrict val, const float *restrict xt,
        float *restrict yt, int stream)
{
    NN_CHUNK_BODY(__m512, 16, 2, _mm512_setzero_ps, _mm512_add_ps,
                  _mm512_mul_ps, _mm512_set1_ps, _mm512_loadu_ps,
                  _mm512_storeu_ps);
}
#undef NN_CHUNK_BODY

/* 32 rows with AVX2's 16 registers: the nine accumulators of
 * NN_CHUNK_BODY would take 36. So a column's lanes go two at a time,
 * 0 and 4, 2 and 6, 1 and 5, 3 and 7, each lane still summing its
 * entries in order, and the pairs meet in the tree of batch 1: the same
 * additions in the same order, the same bits. The column's values and
 * indices are read four times, from L1; W streams past once per 32 rows
 * instead of once per 8. */
__attribute__((target("avx2"), always_inline)) static inline void
lane_pair32(const nn_csr *m, const float *restrict val,
            const float *restrict xt, size_t k0, size_t blocks, int la,
            int stream, __m256 out[4])
{
    __m256 a[4], b[4];
    NN_UNROLL for (int h = 0; h < 4; h++)
        a[h] = b[h] = _mm256_setzero_ps();
    for (size_t i = 0; i < blocks; i++) {
        size_t ka = k0 + i * LANES + (size_t)la, kb = ka + 4;
        if (stream) {
            fetch_ahead(val + ka);
            fetch_ahead(m->idx16 ? (const void *)(m->idx16 + ka)
                                 : (const void *)(m->idx + ka));
        }
        __m256 va = _mm256_set1_ps(val[ka]), vb = _mm256_set1_ps(val[kb]);
        const float *pa = xt + row(m, ka, 32), *pb = xt + row(m, kb, 32);
        NN_UNROLL for (int h = 0; h < 4; h++) {
            a[h] = _mm256_add_ps(a[h], _mm256_mul_ps(va,
                                                     _mm256_loadu_ps(pa + 8 * h)));
            b[h] = _mm256_add_ps(b[h], _mm256_mul_ps(vb,
                                                     _mm256_loadu_ps(pb + 8 * h)));
        }
    }
    NN_UNROLL for (int h = 0; h < 4; h++)
        out[h] = _mm256_add_ps(a[h], b[h]);
}

__attribute__((target("avx2"))) static void
chunk32_avx2(const nn_csr *m, const float *restrict val,
             const float *restrict xt, float *restrict yt, int stream)
{
    for (int j = 0; j < m->cols; j++) {
        size_t k0 = m->ptr[j], end = m->ptr[j + 1];
        size_t blocks = (end - k0) / LANES;
        __m256 p04[4], p26[4], p15[4], p37[4], even[4], tail[4];
        /* Only the first pass over the column fetches W ahead. */
        lane_pair32(m, val, xt, k0, blocks, 0, stream, p04);
        lane_pair32(m, val, xt, k0, blocks, 2, 0, p26);
        NN_UNROLL for (int h = 0; h < 4; h++)
            even[h] = _mm256_add_ps(p04[h], p26[h]);
        lane_pair32(m, val, xt, k0, blocks, 1, 0, p15);
        lane_pair32(m, val, xt, k0, blocks, 3, 0, p37);
        NN_UNROLL for (int h = 0; h < 4; h++)
            tail[h] = _mm256_setzero_ps();
        for (size_t k = k0 + blocks * LANES; k < end; k++) {
            __m256 v = _mm256_set1_ps(val[k]);
            const float *p = xt + row(m, k, 32);
            NN_UNROLL for (int h = 0; h < 4; h++)
                tail[h] = _mm256_add_ps(tail[h],
                                        _mm256_mul_ps(v, _mm256_loadu_ps(p + 8 * h)));
        }
        NN_UNROLL for (int h = 0; h < 4; h++)
            _mm256_storeu_ps(yt + (size_t)j * 32 + 8 * (size_t)h,
                             _mm256_add_ps(_mm256_add_ps(even[h],
                                                         _mm256_add_ps(p15[h], p37[h])),
                                           tail[h]));
    }
}
#undef NN_UNROLL

/* The first 64-byte boundary at or after p: an entry's inputs then fill
 * whole cache lines (two for a 32-row chunk, not three). */
static float *line_aligned(float *p)
{
    return p + ((64 - (uintptr_t)p % 64) % 64) / sizeof(float);
}

/* dst (8 x 8, row stride ds) = the transpose of src (8 x 8, stride ss). */
__attribute__((target("avx2"), always_inline)) static inline void
transpose8(const float *src, size_t ss, float *dst, size_t ds)
{
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm256_loadu_ps(src + (size_t)i * ss);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(dst + (size_t)i * ds,
                         _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
        _mm256_storeu_ps(dst + (size_t)(i + 4) * ds,
                         _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
    }
}

/* xt (rows, w) = rows b0 .. b0 + w - 1 of x (batch, rows); w % 8 == 0. */
__attribute__((target("avx2"))) static void
gather_rows(const float *restrict x, size_t rows, size_t b0, size_t w,
            float *restrict xt)
{
    const float *xb = x + b0 * rows;
    size_t r = 0;
    for (; r + 8 <= rows; r += 8)
        for (size_t l = 0; l < w; l += 8)
            transpose8(xb + l * rows + r, rows, xt + r * w + l, w);
    for (; r < rows; r++)
        for (size_t l = 0; l < w; l++)
            xt[r * w + l] = xb[l * rows + r];
}

/* Rows b0 .. b0 + w - 1 of y (batch, cols) = start_value(y, beta) + yt
 * (cols, w) transposed, as the batch-1 path writes them. */
__attribute__((target("avx2"))) static void
scatter_rows(const float *restrict yt, size_t cols, size_t b0, size_t w,
             float beta, float *restrict y)
{
    float *yb = y + b0 * cols;
    float blk[64];
    __m256 vb = _mm256_set1_ps(beta);
    size_t j = 0;
    for (; j + 8 <= cols; j += 8)
        for (size_t l = 0; l < w; l += 8) {
            transpose8(yt + j * w + l, w, blk, 8);
            for (int i = 0; i < 8; i++) {
                float *o = yb + (l + (size_t)i) * cols + j;
                __m256 s = beta == 0.0f   ? _mm256_setzero_ps()
                           : beta == 1.0f ? _mm256_loadu_ps(o)
                                          : _mm256_mul_ps(vb, _mm256_loadu_ps(o));
                _mm256_storeu_ps(o, _mm256_add_ps(s, _mm256_loadu_ps(blk + 8 * i)));
            }
        }
    for (; j < cols; j++)
        for (size_t l = 0; l < w; l++) {
            float *o = yb + l * cols + j;
            *o = start_value(*o, beta) + yt[j * w + l];
        }
}
#endif

void nn_csr_matmul(const nn_csr *m, const float *val, const float *x,
                   size_t batch, float beta, float *y, float *work)
{
    int level = nn_vector_level();
    size_t rows = (size_t)m->rows, cols = (size_t)m->cols, b = 0;
#ifdef NN_HAVE_AVX2_PATH
    /* Chunks of 32, 16 or 8 rows, each transposed so that the inputs an
     * entry multiplies are contiguous: W streams past once per chunk while
     * the chunk's inputs stay in cache. */
    static const struct {
        size_t width;
        int level;
        void (*run)(const nn_csr *, const float *restrict,
                    const float *restrict, float *restrict, int);
    } chunks[] = {{32, 2, chunk32}, {16, 2, chunk16}, {32, 1, chunk32_avx2},
                  {8, 1, chunk8}};
    size_t w_bytes = m->nnz * (sizeof(float) + (m->idx16 ? sizeof(uint16_t)
                                                       : sizeof(int)));
    int stream = w_bytes > NN_STREAM_W_BYTES;
    for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
        size_t w = chunks[c].width;
        if (level < chunks[c].level)
            continue;
        for (; b + w <= batch; b += w) {
            float *xt = line_aligned(work), *yt = line_aligned(xt + w * rows);
            gather_rows(x, rows, b, w, xt);
            chunks[c].run(m, val, xt, yt, stream);
            scatter_rows(yt, cols, b, w, beta, y);
        }
    }
#endif
    (void)work;
    for (; b < batch; b++) {
#ifdef NN_HAVE_AVX2_PATH
        if (level >= 1) {
            if (atomic_load_explicit(&b1_kernel, memory_order_relaxed) ==
                NN_CSR_B1_AUTO)
                pthread_once(&b1_chosen, choose_b1_kernel_once);
            matvec_avx2(m, val, x + b * rows, beta, y + b * cols,
                        atomic_load_explicit(&b1_kernel, memory_order_relaxed) ==
                            NN_CSR_B1_GATHER);
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
