/*
 * bench_train.c — the trainers' speed, beside PyTorch on the same data and
 * architecture (bench/train_torch.py, run together by bench/run.sh):
 *   ridge: a frozen VanillaRNN(500, tanh) of 8 inputs feeding a Dense(1)
 *          readout, 5,000 steps at batch 1: run, accumulate XᵀX and XᵀY,
 *          solve; best of 3, in ms;
 *   bptt:  VanillaRNN(128, tanh) of 32 inputs >> Dense(1), 32 sequences of
 *          50 steps, MSE and Adam: one forward + backward + update, best
 *          of 20, in ms.
 * One thread each.
 */
#include "nn_train.h"
#include "benchutil.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

static nn_graph *rnn_readout(nn_registry *reg, const char *in, const char *units,
                             const char *rnn_trainable)
{
    nn_error err;
    nn_graph *g = nn_graph_new(reg, 1);
    nn_node *x = nn_graph_add_node(g, "Input", "x", &err);
    nn_node *r = x ? nn_graph_add_node(g, "VanillaRNN", "r", &err) : NULL;
    nn_node *o = r ? nn_graph_add_node(g, "Dense", "o", &err) : NULL;
    if (!o || nn_node_set_param(x, "shape", in, &err) ||
        nn_node_set_param(r, "num_unit", units, &err) ||
        nn_node_set_param(r, "activation", "tanh", &err) ||
        nn_node_set_param(r, "trainable", rnn_trainable, &err) ||
        nn_node_set_param(o, "num_unit", "1", &err) ||
        nn_graph_link(g, "x >> r >> o", &err) || nn_graph_build(g, &err))
        bench_die("graph", err.msg);
    return g;
}

static nn_tensor *wave(int n, int t, int f, float freq)
{
    int dims[3] = {n, t, f};
    nn_shape s = nn_shape_make(3, dims);
    nn_tensor *x = nn_tensor_new(&s);
    for (size_t k = 0; k < nn_tensor_numel(x); k++)
        x->data[k] = sinf(freq * (float)k);
    return x;
}

static double bench_ridge(nn_registry *reg)
{
    enum { T = 5000 };
    nn_error err;
    nn_graph *g = rnn_readout(reg, "8", "500", "false");
    nn_tensor *x = wave(1, T, 8, 0.01f), *y = wave(1, T, 1, 0.013f);
    nn_binding in = {"x", x}, tg = {"o", y};
    nn_session *s = nn_session_new(g, 1, 0, &err);
    double best = 1e9;
    for (int round = 0; round < 3; round++) {
        nn_session_reset(s, &err);
        double t0 = bench_now();
        nn_ridge *r = nn_ridge_new(g, &tg, 1, &err);
        if (!r || nn_ridge_feed(r, s, &in, 1, &tg, 1, T, 100, &err) ||
            nn_ridge_solve(r, g, 1e-6, NULL, &err))
            bench_die("ridge", err.msg);
        best = fmin(best, bench_now() - t0);
        nn_ridge_free(r);
    }
    nn_session_free(s);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_graph_free(g);
    return best * 1e3;
}

static double bench_bptt(nn_registry *reg)
{
    enum { N = 32, T = 50 };
    nn_error err;
    nn_graph *g = rnn_readout(reg, "32", "128", "true");
    nn_tensor *x = wave(N, T, 32, 0.01f), *y = wave(N, T, 1, 0.05f);
    nn_binding in = {"x", x}, tg = {"o", y};
    nn_fit_opts fo = nn_fit_defaults();
    fo.optim.kind = NN_OPTIM_ADAM;
    fo.optim.lr = 1e-3;
    fo.shuffle = 0;
    double best = 1e9;
    for (int round = 0; round < 20; round++) {
        double t0 = bench_now();
        /* One epoch of one minibatch is one update; the fit's setup (the
         * session and tape) is part of what a request pays. */
        if (nn_fit_bptt(g, &in, 1, &tg, 1, &fo, NULL, NULL, &err))
            bench_die("bptt", err.msg);
        best = fmin(best, bench_now() - t0);
    }
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_graph_free(g);
    return best * 1e3;
}

int main(void)
{
    openblas_set_num_threads(1);
    printf("openblas_core %s\n", openblas_get_corename());
    nn_error err;
    nn_registry *reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &err))
        bench_die("registry", err.msg);
    printf("nerved_ridge_ms %.3f\n", bench_ridge(reg));
    printf("nerved_bptt_update_ms %.3f\n", bench_bptt(reg));
    nn_registry_free(reg);
    return 0;
}
