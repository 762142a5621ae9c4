/*
 * bench_rnn.c — a VanillaRNN(256) fed 64 features, stepped 1,000 times at
 * batch 1: once with 1,000 nn_session_step calls and once as one
 * nn_session_run over the sequence. Prints milliseconds for the 1,000 steps
 * (the best of 5) and peak memory; bench/run.sh sets PyTorch beside it.
 */
#include "nn_graph.h"
#include "benchutil.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

enum { STEPS = 1000, IN = 64, UNITS = 256 };

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    openblas_set_num_threads(threads);
    printf("openblas_core %s\n", openblas_get_corename());
    nn_error err;
    nn_registry *reg = nn_registry_new();
    nn_registry_add_builtins(reg, &err);
    nn_graph *g = nn_graph_new(reg, 1);
    nn_node *x = nn_graph_add_node(g, "Input", "x", &err);
    nn_node *r = nn_graph_add_node(g, "VanillaRNN", "r", &err);
    if (!x || !r || nn_node_set_param(x, "shape", "64", &err) ||
        nn_node_set_param(r, "num_unit", "256", &err) ||
        nn_node_set_param(r, "activation", "tanh", &err) ||
        nn_graph_link(g, "x >> r", &err) || nn_graph_build(g, &err))
        bench_die("graph", err.msg);
    nn_session *s = nn_session_new(g, 1, 0, &err);
    int dims[3] = {1, STEPS, IN};
    nn_shape shape = nn_shape_make(3, dims);
    nn_tensor *seq = nn_tensor_new(&shape);
    for (size_t k = 0; k < nn_tensor_numel(seq); k++)
        seq->data[k] = sinf(0.01f * (float)k);

    double best_step = 1e9, best_run = 1e9;
    for (int round = 0; round < 5; round++) {
        nn_session_reset(s, &err);
        double t0 = bench_now();
        nn_tensor *in = nn_session_input(s, "x");
        for (int t = 0; t < STEPS; t++) {
            memcpy(in->data, seq->data + (size_t)t * IN, IN * sizeof(float));
            nn_session_step(s, 0, &err);
        }
        best_step = fmin(best_step, bench_now() - t0);

        nn_session_reset(s, &err);
        nn_binding bind = {"x", seq};
        nn_tensor *out[1];
        t0 = bench_now();
        if (nn_session_run(s, &bind, 1, STEPS, 0, out, &err))
            bench_die("run", err.msg);
        best_run = fmin(best_run, bench_now() - t0);
        nn_tensor_free(out[0]);
    }
    printf("nerved_step_ms %.3f\n", best_step * 1e3);
    printf("nerved_run_ms %.3f\n", best_run * 1e3);
    printf("nerved_peak_mib %.1f\n", bench_peak_mib());
    nn_tensor_free(seq);
    nn_session_free(s);
    nn_graph_free(g);
    nn_registry_free(reg);
    return 0;
}
