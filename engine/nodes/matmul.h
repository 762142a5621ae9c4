/*
 * matmul.h — the product every dense node computes: the concatenation of
 * its inputs on the last axis times one weight matrix, done input by input
 * against row blocks of the matrix so the inputs are never copied.
 */
#ifndef NN_MATMUL_H
#define NN_MATMUL_H

#include "nn.h"

/* out = beta * out + concat(in) · W, with W shaped (sum of in cols, units)
 * and out (rows, units); rows = nn_tensor_rows of each input. */
void nn_matmul_concat(const nn_tensor *in, int n, const float *W, int units,
                      float beta, float *out);

/* The backward of nn_matmul_concat: dx[i] += dout · W_iᵀ (when dx is not
 * NULL) and dW += concat(in)ᵀ · dout (when dW is not NULL). */
void nn_matmul_concat_backward(const nn_tensor *in, int n, const float *W,
                               int units, const float *dout, nn_tensor *dx,
                               float *dW);

/* Each of rows rows of out (units wide) = b. */
void nn_rows_set(float *out, size_t rows, const float *b, int units);
/* db += column sums of dout (rows x units). */
void nn_rows_sum_into(const float *dout, size_t rows, int units, float *db);

#endif
