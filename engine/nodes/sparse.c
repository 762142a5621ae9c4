/*
 * sparse.c — CSR patterns and their products (see sparse.h).
 *
 * The products are plain loops in a fixed order, so a sparse step gives the
 * same bits on every machine; at the densities reservoirs use (1-10 %) they
 * are memory-bound and BLAS would not help.
 */
#include "sparse.h"

#include <math.h>
#include <string.h>

void nn_csr_release(nn_csr *m)
{
    nn_free(m->row_ptr);
    nn_free(m->col);
    memset(m, 0, sizeof *m);
}

int nn_csr_random(nn_csr *m, int rows, int cols, double density, nn_rng *rng,
                  nn_error *err)
{
    memset(m, 0, sizeof *m);
    if (rows < 1 || cols < 1 || !(density > 0) || density > 1)
        return nn_error_set(err, NN_ERR_INVALID, "a sparse pattern needs "
                            "rows, cols >= 1 and 0 < density <= 1");
    uint64_t total = (uint64_t)rows * (uint64_t)cols;
    /* Room for the expected count and a few standard deviations more; the
     * array grows if the draw is unusually dense. */
    double expect = (double)total * density;
    size_t cap = (size_t)(expect + 6.0 * sqrt(expect) + 16.0);
    if ((double)cap > (double)total)
        cap = (size_t)total;
    m->rows = rows;
    m->cols = cols;
    m->row_ptr = nn_calloc((size_t)rows + 1, sizeof(size_t));
    m->col = nn_malloc(cap * sizeof(int));
    if (!m->row_ptr || !m->col)
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
            int *col = nn_realloc(m->col, grown * sizeof(int));
            if (!col)
                goto oom;
            m->col = col;
            cap = grown;
        }
        int r = (int)(pos / (uint64_t)cols);
        m->col[n++] = (int)(pos % (uint64_t)cols);
        m->row_ptr[r + 1]++;
        pos++;
    }
    for (int r = 0; r < rows; r++)
        m->row_ptr[r + 1] += m->row_ptr[r];
    m->nnz = n;
    return NN_OK;
oom:
    nn_csr_release(m);
    return nn_error_set(err, NN_ERR_NOMEM, "out of memory for a sparse "
                        "%d x %d pattern at density %g", rows, cols, density);
}

void nn_csr_matmul(const nn_csr *m, const float *val, const float *x,
                   size_t batch, float beta, float *y)
{
    size_t cols = (size_t)m->cols, rows = (size_t)m->rows;
    for (size_t b = 0; b < batch; b++) {
        float *yb = y + b * cols;
        const float *xb = x + b * rows;
        if (beta == 0.0f)
            memset(yb, 0, cols * sizeof(float));
        else if (beta != 1.0f)
            for (size_t j = 0; j < cols; j++)
                yb[j] *= beta;
        for (size_t r = 0; r < rows; r++) {
            float xr = xb[r];
            if (xr == 0.0f)
                continue;
            for (size_t k = m->row_ptr[r]; k < m->row_ptr[r + 1]; k++)
                yb[m->col[k]] += xr * val[k];
        }
    }
}

void nn_csr_matmul_t_add(const nn_csr *m, const float *val, const float *dy,
                         size_t batch, float *dx)
{
    size_t cols = (size_t)m->cols, rows = (size_t)m->rows;
    for (size_t b = 0; b < batch; b++) {
        const float *dyb = dy + b * cols;
        float *dxb = dx + b * rows;
        for (size_t r = 0; r < rows; r++) {
            float sum = 0;
            for (size_t k = m->row_ptr[r]; k < m->row_ptr[r + 1]; k++)
                sum += dyb[m->col[k]] * val[k];
            dxb[r] += sum;
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
        for (size_t r = 0; r < rows; r++) {
            float xr = xb[r];
            for (size_t k = m->row_ptr[r]; k < m->row_ptr[r + 1]; k++)
                dval[k] += xr * dyb[m->col[k]];
        }
    }
}

void nn_csr_to_dense(const nn_csr *m, const float *val, float *dense)
{
    size_t cols = (size_t)m->cols;
    memset(dense, 0, (size_t)m->rows * cols * sizeof(float));
    for (size_t r = 0; r < (size_t)m->rows; r++)
        for (size_t k = m->row_ptr[r]; k < m->row_ptr[r + 1]; k++)
            dense[r * cols + (size_t)m->col[k]] = val[k];
}

void nn_csr_vecmat_d(const nn_csr *m, const double *val, const double *x,
                     double *y)
{
    memset(y, 0, (size_t)m->cols * sizeof(double));
    for (size_t r = 0; r < (size_t)m->rows; r++) {
        double xr = x[r];
        for (size_t k = m->row_ptr[r]; k < m->row_ptr[r + 1]; k++)
            y[m->col[k]] += xr * val[k];
    }
}
