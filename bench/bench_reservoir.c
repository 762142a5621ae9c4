/*
 * bench_reservoir.c — a 1,000-unit Reservoir (leak 0.3, tanh, spectral
 * radius 1.25, 10 % connectivity) fed one feature over a 10,000-step
 * sequence at batch 1, with W stored dense and as CSR: steps per second of
 * one nn_session_run (the best of 3). Then the build time of a
 * 10,000-unit reservoir at 1 % rescaled by the Arnoldi estimate.
 * bench/run.sh sets NumPy/SciPy (bench/reservoir_numpy.py) beside it.
 */
#include "nn_graph.h"
#include "benchutil.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

enum { STEPS = 10000 };

static nn_graph *reservoir(nn_registry *reg, const char *units,
                           const char *density, const char *sparse)
{
    nn_error err;
    nn_graph *g = nn_graph_new(reg, 1);
    nn_node *x = nn_graph_add_node(g, "Input", "x", &err);
    nn_node *r = nn_graph_add_node(g, "Reservoir", "r", &err);
    if (!x || !r || nn_node_set_param(x, "shape", "1", &err) ||
        nn_node_set_param(r, "num_unit", units, &err) ||
        nn_node_set_param(r, "rc_connectivity", density, &err) ||
        nn_node_set_param(r, "sparse", sparse, &err) ||
        nn_node_set_param(r, "spectral_radius", "1.25", &err) ||
        nn_node_set_param(r, "bias_scaling", "0.1", &err) ||
        nn_graph_link(g, "x >> r", &err) || nn_graph_build(g, &err))
        bench_die("graph", err.msg);
    return g;
}

static double steps_per_second(nn_graph *g, nn_tensor *seq)
{
    nn_error err;
    nn_session *s = nn_session_new(g, 1, 0, &err);
    double best = 1e9;
    for (int round = 0; round < 3; round++) {
        nn_session_reset(s, &err);
        nn_binding bind = {"x", seq};
        nn_tensor *out[1];
        double t0 = bench_now();
        if (nn_session_run(s, &bind, 1, STEPS, 0, out, &err))
            bench_die("run", err.msg);
        best = fmin(best, bench_now() - t0);
        nn_tensor_free(out[0]);
    }
    nn_session_free(s);
    return STEPS / best;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    openblas_set_num_threads(threads);
    nn_error err;
    nn_registry *reg = nn_registry_new();
    nn_registry_add_builtins(reg, &err);
    int dims[3] = {1, STEPS, 1};
    nn_shape shape = nn_shape_make(3, dims);
    nn_tensor *seq = nn_tensor_new(&shape);
    for (size_t k = 0; k < nn_tensor_numel(seq); k++)
        seq->data[k] = sinf(0.05f * (float)k);

    nn_graph *dense = reservoir(reg, "1000", "0.1", "false");
    printf("nerved_dense_steps_per_s %.0f\n", steps_per_second(dense, seq));
    nn_graph_free(dense);
    nn_graph *sparse = reservoir(reg, "1000", "0.1", "true");
    printf("nerved_sparse_steps_per_s %.0f\n", steps_per_second(sparse, seq));
    nn_graph_free(sparse);

    double t0 = bench_now();
    nn_graph *big = reservoir(reg, "10000", "0.01", "auto");
    printf("nerved_build_10000_s %.2f\n", bench_now() - t0);
    nn_graph_free(big);
    printf("nerved_peak_mib %.1f\n", bench_peak_mib());
    nn_tensor_free(seq);
    nn_registry_free(reg);
    return 0;
}
