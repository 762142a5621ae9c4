/*
 * sparse.h — the pattern of a sparse matrix, compressed by output column,
 * and the products a node needs with it.
 *
 * Only the pattern lives here. The values are kept apart, as a 1-d float
 * array of nnz entries in the pattern's order, because a node stores them as
 * an ordinary weight tensor (so export, import and training see them like
 * any other weight) while the pattern is private to the node.
 *
 * The matrix M is (rows, cols) and, as every weight of a node, multiplies
 * from the right: y = x · M, x shaped (batch, rows), y (batch, cols). The
 * pattern is stored so that each output's inputs are contiguous — CSR of
 * Mᵀ, i.e. CSC of M: output j sums val[k] · x[idx[k]] for k in
 * ptr[j] .. ptr[j+1]-1, input indices increasing. The forward product then
 * gathers into one sum per output (vectorisable, no write conflicts)
 * instead of scattering into all of them; the backward products scatter,
 * which is the cheaper direction to lose.
 */
#ifndef NN_SPARSE_H
#define NN_SPARSE_H

#include "nn.h"

#include <stdint.h>

typedef struct nn_csr {
    int rows, cols;  /* M's shape */
    size_t nnz;
    size_t *ptr;     /* cols + 1 offsets into idx */
    /* The input (row) index of each entry: 16 bits when rows <= 65536 (a
     * third less memory read per step), else 32. Exactly one is set. */
    uint16_t *idx16;
    int *idx;
} nn_csr;

/* The input index of entry k. */
static inline int nn_csr_idx(const nn_csr *m, size_t k)
{
    return m->idx16 ? (int)m->idx16[k] : m->idx[k];
}

/* Fewest entries a draw of nn_csr_random(rows, cols, density) holds, but
 * for odds below one in a billion (the expected count less six standard
 * deviations): a caller checks this against its caps before drawing, so a
 * request far over them is refused without the work or memory of a draw. */
double nn_csr_min_nnz(int rows, int cols, double density);

/* Draws a pattern where each of the rows x cols entries is present with
 * probability density, independently — the same law as a dense Bernoulli
 * mask — but in O(nnz) draws: the gaps between present entries, in
 * column-major order of M, are geometric. The same rng state gives the same
 * pattern on every machine. max_nnz (0: no limit) refuses, with
 * NN_ERR_LIMIT and before allocating the indices, a draw expected to hold
 * more. The caller releases m with nn_csr_release. */
int nn_csr_random(nn_csr *m, int rows, int cols, double density,
                  size_t max_nnz, nn_rng *rng, nn_error *err);
/* A pattern from given arrays (an import): ptr (cols + 1 offsets) and
 * the nnz row indices of each column in increasing order, already checked
 * by the caller; copied, in the index width nn_csr_random would choose.
 * The caller releases m with nn_csr_release. */
int nn_csr_from_arrays(nn_csr *m, int rows, int cols, const size_t *ptr,
                       const uint32_t *row, size_t nnz, nn_error *err);
/* Frees the arrays of m and zeroes it; a zeroed m is a no-op. */
void nn_csr_release(nn_csr *m);

/* Floats of scratch nn_csr_matmul needs per batch row. */
size_t nn_csr_matmul_work(const nn_csr *m);
/* y = beta * y + x · M for batch rows; val holds M's nnz values. work has
 * batch * nn_csr_matmul_work floats (unused at batch 1). With vector
 * instructions, W is read once per chunk of 32, 16 or 8 rows. A row's
 * result does not depend on the batch it is computed in: every output is
 * summed in the same fixed order (eight interleaved partial sums, then a
 * fixed tree, then the entries left over) by the vector and the plain
 * paths, so the bits are the same on every machine. */
void nn_csr_matmul(const nn_csr *m, const float *val, const float *x,
                   size_t batch, float beta, float *y, float *work);
/* How the batch-1 vector product fetches the eight inputs of a block: one
 * by one, or by one gather instruction. Which is faster depends on the
 * CPU, so the first pattern made (nn_csr_random, nn_csr_from_arrays, or
 * else the first product) times both and keeps the faster; both give the
 * same bits. */
typedef enum nn_csr_b1_kernel {
    NN_CSR_B1_AUTO,
    NN_CSR_B1_INSERT,
    NN_CSR_B1_GATHER
} nn_csr_b1_kernel;
/* For tests and benchmarks: uses kernel k from now on, process-wide
 * (NN_CSR_B1_AUTO: the measured one). Not to be called while products run
 * on other threads. */
void nn_csr_set_b1_kernel(nn_csr_b1_kernel k);
/* "gather" or "insert", or "plain" without AVX2: the kernel batch-1
 * products use now (measuring first if nothing has yet). */
const char *nn_csr_b1_kernel_name(void);

/* dx += dy · Mᵀ (the input gradient of nn_csr_matmul). */
void nn_csr_matmul_t_add(const nn_csr *m, const float *val, const float *dy,
                         size_t batch, float *dx);
/* dval += (xᵀ · dy) on the pattern (the value gradient). */
void nn_csr_grad_add(const nn_csr *m, const float *x, const float *dy,
                     size_t batch, float *dval);

/* dense (rows, cols), row-major, = M; entries off the pattern are zero. */
void nn_csr_to_dense(const nn_csr *m, const float *val, float *dense);
/* y = x · M for one row, in double (for eigenvalue estimates); the _f form
 * reads float values (half the memory traffic, the same exact products). */
void nn_csr_vecmat_d(const nn_csr *m, const double *val, const double *x,
                     double *y);
void nn_csr_vecmat_f(const nn_csr *m, const float *val, const double *x,
                     double *y);

/* Tells the graph that weight w of node holds the values of pattern, a
 * pattern the node keeps (in its private data, for its life): the weight
 * can then be exported, imported, cloned and saved with its pattern, and
 * an import may replace it between steps (sparse_weight.c). Call from
 * init_ff or init_fb, after creating the weight. */
void nn_node_set_weight_pattern(nn_node *node, int w, nn_csr *pattern);

#endif
