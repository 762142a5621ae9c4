/*
 * activations.c — activation functions and their derivatives.
 */
#include "activations.h"

#include <math.h>
#include <string.h>

static const char *const names[] = {"identity", "tanh", "relu", "sigmoid",
                                    "softmax", "log_softmax", "softplus",
                                    "elu", "leaky_relu", "gelu", "silu"};

int nn_act_parse(const char *name)
{
    for (size_t i = 0; name && i < sizeof names / sizeof *names; i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

static float sigmoid(float x)
{
    /* Two branches keep exp from overflowing for large |x|. */
    if (x >= 0) {
        float e = expf(-x);
        return 1.0f / (1.0f + e);
    }
    float e = expf(x);
    return e / (1.0f + e);
}

static const float GELU_C = 0.7978845608028654f; /* sqrt(2 / pi) */
static const float GELU_A = 0.044715f;

static float elementwise(nn_act act, float x)
{
    switch (act) {
    case NN_ACT_TANH: return tanhf(x);
    case NN_ACT_RELU: return x > 0 ? x : 0;
    case NN_ACT_SIGMOID: return sigmoid(x);
    case NN_ACT_SOFTPLUS: return x > 20 ? x : log1pf(expf(x));
    case NN_ACT_ELU: return x > 0 ? x : expm1f(x);
    case NN_ACT_LEAKY_RELU: return x > 0 ? x : 0.01f * x;
    case NN_ACT_GELU:
        return 0.5f * x * (1 + tanhf(GELU_C * (x + GELU_A * x * x * x)));
    case NN_ACT_SILU: return x * sigmoid(x);
    default: return x;
    }
}

static float derivative(nn_act act, float x, float y)
{
    switch (act) {
    case NN_ACT_TANH: return 1 - y * y;
    case NN_ACT_RELU: return x > 0 ? 1.0f : 0.0f;
    case NN_ACT_SIGMOID: return y * (1 - y);
    case NN_ACT_SOFTPLUS: return sigmoid(x);
    case NN_ACT_ELU: return x > 0 ? 1.0f : y + 1;
    case NN_ACT_LEAKY_RELU: return x > 0 ? 1.0f : 0.01f;
    case NN_ACT_GELU: {
        float u = GELU_C * (x + GELU_A * x * x * x);
        float t = tanhf(u);
        float du = GELU_C * (1 + 3 * GELU_A * x * x);
        return 0.5f * (1 + t) + 0.5f * x * (1 - t * t) * du;
    }
    case NN_ACT_SILU: {
        float s = sigmoid(x);
        return s * (1 + x * (1 - s));
    }
    default: return 1.0f;
    }
}

/* Stable softmax (or log-softmax) of one row. */
static void softmax_row(const float *x, float *y, size_t cols, int log_form)
{
    float max = x[0];
    for (size_t j = 1; j < cols; j++)
        if (x[j] > max)
            max = x[j];
    double sum = 0;
    for (size_t j = 0; j < cols; j++)
        sum += exp((double)x[j] - max);
    float log_sum = (float)log(sum);
    for (size_t j = 0; j < cols; j++)
        y[j] = log_form ? x[j] - max - log_sum
                        : (float)(exp((double)x[j] - max) / sum);
}

void nn_act_forward(nn_act act, const float *x, float *y, size_t rows,
                    size_t cols)
{
    if (act == NN_ACT_SOFTMAX || act == NN_ACT_LOG_SOFTMAX) {
        for (size_t r = 0; r < rows; r++)
            softmax_row(x + r * cols, y + r * cols, cols,
                        act == NN_ACT_LOG_SOFTMAX);
        return;
    }
    size_t n = rows * cols;
    if (act == NN_ACT_IDENTITY) {
        if (y != x)
            memmove(y, x, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; i++)
        y[i] = elementwise(act, x[i]);
}

void nn_act_backward(nn_act act, const float *x, const float *y,
                     const float *dy, float *dx, size_t rows, size_t cols)
{
    if (act == NN_ACT_SOFTMAX || act == NN_ACT_LOG_SOFTMAX) {
        for (size_t r = 0; r < rows; r++) {
            const float *yr = y + r * cols, *dyr = dy + r * cols;
            float *dxr = dx + r * cols;
            double s = 0;
            if (act == NN_ACT_SOFTMAX) {
                /* dx = y * (dy - sum(dy * y)) */
                for (size_t j = 0; j < cols; j++)
                    s += (double)dyr[j] * yr[j];
                for (size_t j = 0; j < cols; j++)
                    dxr[j] = yr[j] * (dyr[j] - (float)s);
            } else {
                /* dx = dy - softmax(x) * sum(dy), softmax(x) = exp(y) */
                for (size_t j = 0; j < cols; j++)
                    s += dyr[j];
                for (size_t j = 0; j < cols; j++)
                    dxr[j] = dyr[j] - expf(yr[j]) * (float)s;
            }
        }
        return;
    }
    size_t n = rows * cols;
    for (size_t i = 0; i < n; i++)
        dx[i] = dy[i] * derivative(act, x[i], y[i]);
}
