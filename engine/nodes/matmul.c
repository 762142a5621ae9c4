#include "matmul.h"

#include <cblas.h>
#include <string.h>

void nn_matmul_concat(const nn_tensor *in, int n, const float *W, int units,
                      float beta, float *out)
{
    int offset = 0;
    for (int i = 0; i < n; i++) {
        int rows = (int)nn_tensor_rows(&in[i]), cols = nn_tensor_cols(&in[i]);
        float b = i == 0 ? beta : 1.0f;
        const float *Wi = W + (size_t)offset * (size_t)units;
        offset += cols;
        if (rows == 1) {
            /* One row (a recurrent step at batch 1): sgemm would spend more
             * time packing W than multiplying. */
            cblas_sgemv(CblasRowMajor, CblasTrans, cols, units, 1.0f, Wi,
                        units, in[i].data, 1, b, out, 1);
            continue;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, units,
                    cols, 1.0f, in[i].data, cols, Wi, units, b, out, units);
    }
}

void nn_matmul_concat_backward(const nn_tensor *in, int n, const float *W,
                               int units, const float *dout, nn_tensor *dx,
                               float *dW)
{
    int offset = 0;
    for (int i = 0; i < n; i++) {
        int rows = (int)nn_tensor_rows(&in[i]), cols = nn_tensor_cols(&in[i]);
        const float *Wi = W + (size_t)offset * (size_t)units;
        if (dx)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols,
                        units, 1.0f, dout, units, Wi, units, 1.0f, dx[i].data,
                        cols);
        if (dW)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cols, units,
                        rows, 1.0f, in[i].data, cols, dout, units, 1.0f,
                        dW + (size_t)offset * (size_t)units, units);
        offset += cols;
    }
}

void nn_rows_set(float *out, size_t rows, const float *b, int units)
{
    for (size_t r = 0; r < rows; r++)
        memcpy(out + r * (size_t)units, b, (size_t)units * sizeof(float));
}

void nn_rows_sum_into(const float *dout, size_t rows, int units, float *db)
{
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < units; j++)
            db[j] += dout[r * (size_t)units + j];
}
