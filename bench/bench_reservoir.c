/*
 * bench_reservoir.c — Reservoir stepping and building, beside the same
 * loop in NumPy/SciPy (bench/reservoir_numpy.py; bench/run.sh prints the
 * two side by side). Leak 0.3, tanh, one input, bias 0.1, one BLAS thread:
 *
 *   - 1,000 units at 10 % and 10,000 units at 1 % connectivity (100,000 and
 *     1,000,000 non-zeros), W stored dense and sparse, at batch 1 and 64,
 *     in stream-steps per second (steps x batch / s, the best of 3);
 *     the 1,000-unit batch-1 figures through one nn_session_run over a
 *     10,000-step sequence, the others by nn_session_step.
 *   - where the sparse batch-1 product chose gathers (nn_csr_b1_kernel_name),
 *     the same batch-1 figures with the inputs loaded one by one, the
 *     reference in the same run;
 *   - building the 10,000-unit 1 % reservoir rescaled to spectral radius
 *     1.25 (the Arnoldi estimate), in seconds.
 *
 * Times are CPU seconds of the process (one thread, so the loop's own
 * time), as in reservoir_numpy.py: on a machine shared with other work,
 * wall-clock figures of the two programs moved by 2x between runs.
 *
 * The 1,000-unit W is rescaled to radius 1.25; the 10,000-unit one of the
 * stepping figures is drawn as Normal(0, 0.125) instead, whose radius is
 * 1.25 by the circular law (rescaling a dense 10,000 x 10,000 matrix would
 * cost minutes and measures nothing about stepping; the sparse build is
 * timed on its own).
 */
#include "nn_graph.h"
#include "benchutil.h"
#include "nodes/sparse.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

static nn_graph *reservoir(nn_registry *reg, int units, const char *density,
                           const char *sparse, int rescale)
{
    nn_error err;
    char u[32];
    snprintf(u, sizeof u, "%d", units);
    nn_graph *g = nn_graph_new(reg, 1);
    nn_node *x = nn_graph_add_node(g, "Input", "x", &err);
    nn_node *r = nn_graph_add_node(g, "Reservoir", "r", &err);
    if (!x || !r || nn_node_set_param(x, "shape", "1", &err) ||
        nn_node_set_param(r, "num_unit", u, &err) ||
        nn_node_set_param(r, "rc_connectivity", density, &err) ||
        nn_node_set_param(r, "sparse", sparse, &err) ||
        nn_node_set_param(r, "spectral_radius", rescale ? "1.25" : "0",
                          &err) ||
        (!rescale &&
         nn_node_set_param(r, "W_initializer", "Normal(0, 0.125)", &err)) ||
        nn_node_set_param(r, "bias_scaling", "0.1", &err) ||
        nn_graph_link(g, "x >> r", &err) || nn_graph_build(g, &err))
        bench_die("graph", err.msg);
    return g;
}

/* Stream-steps per second of `steps` steps at `batch`: one nn_session_run
 * over a sequence (run != 0) or nn_session_step in a loop. */
static double rate(nn_graph *g, int batch, int steps, int run)
{
    nn_error err;
    nn_session *s = nn_session_new(g, batch, 0, &err);
    if (!s)
        bench_die("session", err.msg);
    int dims[3] = {batch, steps, 1};
    nn_shape shape = nn_shape_make(3, dims);
    nn_tensor *seq = run ? nn_tensor_new(&shape) : NULL;
    for (size_t k = 0; seq && k < nn_tensor_numel(seq); k++)
        seq->data[k] = sinf(0.05f * (float)k);
    nn_tensor *in = nn_session_input(s, "x");
    double best = 1e9;
    for (int round = 0; round < 3; round++) {
        nn_session_reset(s, &err);
        double t0 = bench_cpu_now();
        if (run) {
            nn_binding bind = {"x", seq};
            nn_tensor *out[1];
            if (nn_session_run(s, &bind, 1, steps, 0, out, &err))
                bench_die("run", err.msg);
            nn_tensor_free(out[0]);
        } else {
            for (int t = 0; t < steps; t++) {
                for (int b = 0; b < batch; b++)
                    in->data[b] = sinf(0.05f * (float)(t + b));
                if (nn_session_step(s, 0, &err))
                    bench_die("step", err.msg);
            }
        }
        best = fmin(best, bench_cpu_now() - t0);
    }
    nn_tensor_free(seq);
    nn_session_free(s);
    return (double)steps * batch / best;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    openblas_set_num_threads(threads);
    nn_error err;
    nn_registry *reg = nn_registry_new();
    nn_registry_add_builtins(reg, &err);
    printf("nerved_openblas_core %s\n", openblas_get_corename());
    printf("nerved_sparse_b1_kernel %s\n", nn_csr_b1_kernel_name());

    static const struct {
        int units;
        const char *density;
        const char *sparse;
        int steps1, steps64;
    } cases[] = {
        {1000, "0.1", "false", 10000, 500},
        {1000, "0.1", "true", 10000, 1000},
        {10000, "0.01", "false", 40, 5},
        {10000, "0.01", "true", 1000, 100},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int units = cases[i].units;
        int dense = strcmp(cases[i].sparse, "false") == 0;
        nn_graph *g = reservoir(reg, units, cases[i].density, cases[i].sparse,
                                units <= 2000);
        const char *kind = dense ? "dense" : "sparse";
        printf("nerved_%s_%d_b1_steps_per_s %.0f\n", kind, units,
               rate(g, 1, cases[i].steps1, units == 1000));
        if (!dense && strcmp(nn_csr_b1_kernel_name(), "gather") == 0) {
            /* the reference in the same run: the inputs loaded one by one */
            nn_csr_set_b1_kernel(NN_CSR_B1_INSERT);
            printf("nerved_%s_%d_b1_insert_steps_per_s %.0f\n", kind, units,
                   rate(g, 1, cases[i].steps1, units == 1000));
            nn_csr_set_b1_kernel(NN_CSR_B1_AUTO);
        }
        printf("nerved_%s_%d_b64_steps_per_s %.0f\n", kind, units,
               rate(g, 64, cases[i].steps64, 0));
        nn_graph_free(g);
    }

    double t0 = bench_cpu_now();
    nn_graph *big = reservoir(reg, 10000, "0.01", "auto", 1);
    printf("nerved_build_10000_s %.2f\n", bench_cpu_now() - t0);
    nn_graph_free(big);
    printf("nerved_peak_mib %.1f\n", bench_peak_mib());
    nn_registry_free(reg);
    return 0;
}
