/*
 * bench_dense.c — a batch of 256 through Dense 512-1024-1024-10, stepped by
 * the engine, next to the raw cblas_sgemm calls of the same shapes (with the
 * same bias adds) in the same run. Prints times and the ratio
 * raw / engine (1.0 = no overhead).
 */
#include "nn_graph.h"
#include "benchutil.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

enum { BATCH = 256, REPEAT = 200 };
static const int widths[] = {512, 1024, 1024, 10};

static double time_engine(nn_session *s)
{
    nn_error err;
    for (int i = 0; i < 10; i++) /* warm-up */
        if (nn_session_step(s, 0, &err))
            bench_die("step", err.msg);
    double t0 = bench_now();
    for (int i = 0; i < REPEAT; i++)
        nn_session_step(s, 0, &err);
    return (bench_now() - t0) / REPEAT;
}

static double time_raw(float **act, float **W, float **b)
{
    double best = 0;
    for (int pass = 0; pass < 2; pass++) { /* the first pass warms up */
        double t0 = bench_now();
        for (int i = 0; i < (pass ? REPEAT : 10); i++)
            for (int l = 0; l < 3; l++) {
                int in = widths[l], out = widths[l + 1];
                for (int r = 0; r < BATCH; r++)
                    memcpy(act[l + 1] + (size_t)r * out, b[l],
                           sizeof(float) * (size_t)out);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, BATCH,
                            out, in, 1.0f, act[l], in, W[l], out, 1.0f,
                            act[l + 1], out);
            }
        best = (bench_now() - t0) / REPEAT;
    }
    return best;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    openblas_set_num_threads(threads);
    nn_error err;
    nn_registry *reg = nn_registry_new();
    nn_registry_add_builtins(reg, &err);
    nn_graph *g = nn_graph_new(reg, 1);
    char units[32];
    nn_node *in = nn_graph_add_node(g, "Input", "x", &err);
    snprintf(units, sizeof units, "%d", widths[0]);
    nn_node_set_param(in, "shape", units, &err);
    const char *names[] = {"d1", "d2", "d3"};
    for (int l = 0; l < 3; l++) {
        nn_node *d = nn_graph_add_node(g, "Dense", names[l], &err);
        snprintf(units, sizeof units, "%d", widths[l + 1]);
        if (!d || nn_node_set_param(d, "num_unit", units, &err))
            bench_die("dense", err.msg);
    }
    if (nn_graph_link(g, "x >> d1 >> d2 >> d3", &err) || nn_graph_build(g, &err))
        bench_die("graph", err.msg);
    nn_session *s = nn_session_new(g, BATCH, 0, &err);
    if (!s)
        bench_die("session", err.msg);
    nn_tensor *x = nn_session_input(s, "x");
    for (size_t k = 0; k < nn_tensor_numel(x); k++)
        x->data[k] = (float)((k * 37) % 101) / 101.0f;

    /* The raw run uses its own copies of the same weights. */
    float *act[4], *W[3], *b[3];
    for (int l = 0; l < 4; l++)
        act[l] = calloc((size_t)BATCH * widths[l], sizeof(float));
    memcpy(act[0], x->data, sizeof(float) * BATCH * widths[0]);
    for (int l = 0; l < 3; l++) {
        nn_node *d = nn_graph_find(g, names[l]);
        size_t nw = (size_t)widths[l] * widths[l + 1];
        W[l] = malloc(nw * sizeof(float));
        b[l] = malloc((size_t)widths[l + 1] * sizeof(float));
        memcpy(W[l], nn_node_weight(d, "W")->data, nw * sizeof(float));
        memcpy(b[l], nn_node_weight(d, "b")->data,
               (size_t)widths[l + 1] * sizeof(float));
    }
    double engine = 0, raw = 0;
    for (int round = 0; round < 3; round++) { /* interleave to share noise */
        engine += time_engine(s);
        raw += time_raw(act, W, b);
    }
    engine /= 3;
    raw /= 3;
    const float *y = nn_session_output(s, "d3")->data;
    double diff = 0;
    for (int k = 0; k < BATCH * 10; k++)
        diff = fmax(diff, fabs((double)y[k] - act[3][k]));
    double flops = 2.0 * BATCH * (512.0 * 1024 + 1024.0 * 1024 + 1024.0 * 10);
    printf("dense 512-1024-1024-10, batch %d, %d BLAS thread(s)\n", BATCH,
           threads);
    printf("  engine step     %8.3f ms  (%.1f GFLOP/s)\n", engine * 1e3,
           flops / engine * 1e-9);
    printf("  raw cblas_sgemm %8.3f ms  (%.1f GFLOP/s)\n", raw * 1e3,
           flops / raw * 1e-9);
    printf("  ratio raw/engine %.3f   (max |difference| %.2g)\n", raw / engine,
           diff);
    printf("  peak RSS %.1f MiB\n", bench_peak_mib());
    nn_session_free(s);
    nn_graph_free(g);

    /* Building Dense(4000) on 4000 inputs with an orthogonal W: the QR of a
     * 4000 x 4000 Gaussian matrix. */
    nn_graph *og = nn_graph_new(reg, 1);
    nn_node *oi = nn_graph_add_node(og, "Input", "x", &err);
    nn_node *od = nn_graph_add_node(og, "Dense", "d", &err);
    if (!oi || !od || nn_node_set_param(oi, "shape", "4000", &err) ||
        nn_node_set_param(od, "num_unit", "4000", &err) ||
        nn_node_set_param(od, "W_initializer", "Orthogonal", &err) ||
        nn_graph_link(og, "x >> d", &err))
        bench_die("orthogonal graph", err.msg);
    double o0 = bench_now();
    if (nn_graph_build(og, &err))
        bench_die("orthogonal build", err.msg);
    printf("  build Dense(4000), W_initializer Orthogonal: %.2f s\n",
           bench_now() - o0);
    nn_graph_free(og);
    nn_registry_free(reg);
    return 0;
}
