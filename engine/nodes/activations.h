/*
 * activations.h — elementwise (and row-wise softmax) activation functions
 * and their derivatives, shared by every node type that applies one.
 */
#ifndef NN_ACTIVATIONS_H
#define NN_ACTIVATIONS_H

#include <stddef.h>

typedef enum nn_act {
    NN_ACT_IDENTITY,
    NN_ACT_TANH,
    NN_ACT_RELU,
    NN_ACT_SIGMOID,
    NN_ACT_SOFTMAX,     /* over the last axis */
    NN_ACT_LOG_SOFTMAX, /* over the last axis */
    NN_ACT_SOFTPLUS,
    NN_ACT_ELU,         /* alpha = 1 */
    NN_ACT_LEAKY_RELU,  /* slope 0.01 below zero */
    NN_ACT_GELU,        /* tanh approximation, torch's approximate='tanh' */
    NN_ACT_SILU,
    NN_ACT_GELU_EXACT   /* x Phi(x), the erf form: torch.nn.GELU()'s default */
} nn_act;

/* The choices string for an NN_PARAM_ENUM parameter, in enum order. */
#define NN_ACT_CHOICES \
    "identity|tanh|relu|sigmoid|softmax|log_softmax|softplus|elu|" \
    "leaky_relu|gelu|silu|gelu_exact"

/* The function named name (one of NN_ACT_CHOICES), or -1. */
int nn_act_parse(const char *name);

/* y = f(x) for a rows x cols block; y may be x. */
void nn_act_forward(nn_act act, const float *x, float *y, size_t rows,
                    size_t cols);

/* dx = d loss / d x given x, y = f(x) and dy = d loss / d y; dx may be dy
 * but not x or y. */
void nn_act_backward(nn_act act, const float *x, const float *y,
                     const float *dy, float *dx, size_t rows, size_t cols);

/* s = (1 - a) s + a f(pre) (+ noise[i] when noise is not NULL), and out =
 * the new s: the elementwise part of a leaky-integrator step in one pass
 * for identity, tanh, sigmoid and relu (two for the others). None of the
 * arrays may overlap. Same bits as nn_act_forward and the combination done
 * apart. */
void nn_act_leak(nn_act act, const float *pre, float *s, float a,
                 const float *noise, float *out, size_t rows, size_t cols);

/* y[i] = e^x[i], tanh(x[i]), 1 / (1 + e^-x[i]) for n values, vectorised;
 * y may be x. Within NN_VMATH_MAX_ULP units in the last place of libm's
 * results in double, over the whole float range (inf, NaN and denormals
 * included). */
#define NN_VMATH_MAX_ULP 4
void nn_vexp(const float *x, float *y, size_t n);
void nn_vtanh(const float *x, float *y, size_t n);
void nn_vsigmoid(const float *x, float *y, size_t n);
/* y[i] = x[i] (1 + erf(x[i] / sqrt 2)) / 2, the exact GELU, for n values,
 * vectorised; y may be x. Within NN_GELU_EXACT_MAX_ULP of libm's erfc in
 * double over the whole float range (-inf gives -0, the limit). */
#define NN_GELU_EXACT_MAX_ULP 8
void nn_vgelu_exact(const float *x, float *y, size_t n);

#endif
