/*
 * bench_batch.c — 64 streams of Input(1) >> Reservoir(N, dense) >>
 * LinearReadout(1), N = 500 and 2000, each its own batch-1 session: stepped
 * one by one (64 GEMVs that each read W) against one nn_session_step_many
 * over all 64 (one GEMM), with one batch-64 session beside them as the
 * ceiling. Prints stream-steps per second, the best of 3 interleaved rounds
 * of about half a second each. W is kept as drawn (no spectral rescaling):
 * the timing does not depend on its values, and a dense eigen-decomposition
 * of 2000 units would only slow the build.
 */
#include "nn_graph.h"
#include "benchutil.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

enum { STREAMS = 64 };

static nn_graph *network(nn_registry *reg, const char *units)
{
    nn_error err;
    nn_graph *g = nn_graph_new(reg, 1);
    nn_node *x = nn_graph_add_node(g, "Input", "x", &err);
    nn_node *r = nn_graph_add_node(g, "Reservoir", "r", &err);
    nn_node *o = nn_graph_add_node(g, "LinearReadout", "o", &err);
    if (!x || !r || !o || nn_node_set_param(x, "shape", "1", &err) ||
        nn_node_set_param(r, "num_unit", units, &err) ||
        nn_node_set_param(r, "sparse", "false", &err) ||
        nn_node_set_param(o, "num_unit", "1", &err) ||
        nn_graph_link(g, "x >> r >> o", &err) || nn_graph_build(g, &err))
        bench_die("graph", err.msg);
    return g;
}

typedef struct streams {
    nn_session *alone[STREAMS];
    nn_session *wide; /* the 64 streams as one batch-64 session */
    nn_batcher *batcher;
    long t;
} streams;

typedef void (*round_fn)(streams *st);

static void feed(nn_session *s, long t, int k)
{
    nn_tensor *in = nn_session_input(s, "x");
    for (int b = 0; b < nn_session_batch(s); b++)
        in->data[b] = sinf(0.05f * (float)t + 0.1f * (float)(k + b));
}

static void one_by_one(streams *st)
{
    nn_error err;
    for (int k = 0; k < STREAMS; k++) {
        feed(st->alone[k], st->t, k);
        if (nn_session_step(st->alone[k], 0, &err))
            bench_die("step", err.msg);
    }
    st->t++;
}

static void step_many(streams *st)
{
    nn_error err;
    for (int k = 0; k < STREAMS; k++)
        feed(st->alone[k], st->t, k);
    if (nn_session_step_many(st->batcher, st->alone, NULL, STREAMS, &err))
        bench_die("step_many", err.msg);
    st->t++;
}

static void one_session(streams *st)
{
    nn_error err;
    feed(st->wide, st->t, 0);
    if (nn_session_step(st->wide, 0, &err))
        bench_die("step", err.msg);
    st->t++;
}

/* Stream-steps per second of fn over about half a second. */
static double rate(streams *st, round_fn fn)
{
    long rounds = 0;
    double t0 = bench_now(), elapsed;
    do {
        fn(st);
        rounds++;
    } while ((elapsed = bench_now() - t0) < 0.5);
    return (double)rounds * STREAMS / elapsed;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    openblas_set_num_threads(threads);
    nn_error err;
    nn_registry *reg = nn_registry_new();
    nn_registry_add_builtins(reg, &err);
    const char *sizes[] = {"500", "2000"};
    for (int i = 0; i < 2; i++) {
        nn_graph *g = network(reg, sizes[i]);
        streams st;
        memset(&st, 0, sizeof st);
        for (int k = 0; k < STREAMS; k++)
            if (!(st.alone[k] = nn_session_new(g, 1, (uint64_t)k, &err)))
                bench_die("session", err.msg);
        if (!(st.wide = nn_session_new(g, STREAMS, 0, &err)) ||
            !(st.batcher = nn_batcher_new(g, STREAMS, &err)))
            bench_die("batch", err.msg);
        /* Interleaved, the best of 3 each: load from elsewhere on the
         * machine then hits the three alike. */
        double alone = 0, many = 0, wide = 0;
        for (int round = 0; round < 3; round++) {
            alone = fmax(alone, rate(&st, one_by_one));
            many = fmax(many, rate(&st, step_many));
            wide = fmax(wide, rate(&st, one_session));
        }
        printf("reservoir_%s_one_by_one_stream_steps_per_s %.0f\n", sizes[i],
               alone);
        printf("reservoir_%s_step_many_stream_steps_per_s %.0f\n", sizes[i],
               many);
        printf("reservoir_%s_batch64_session_stream_steps_per_s %.0f\n",
               sizes[i], wide);
        printf("reservoir_%s_step_many_over_one_by_one %.2f\n", sizes[i],
               many / alone);
        printf("reservoir_%s_step_many_over_batch64_session %.2f\n", sizes[i],
               many / wide);
        nn_batcher_free(st.batcher);
        nn_session_free(st.wide);
        for (int k = 0; k < STREAMS; k++)
            nn_session_free(st.alone[k]);
        nn_graph_free(g);
    }
    nn_registry_free(reg);
    return 0;
}
