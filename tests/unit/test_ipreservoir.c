/*
 * test_ipreservoir.c — IPReservoir and its intrinsic-plasticity trainer
 * against the published equations (Schrauwen et al. 2008 for tanh and a
 * normal target, Triesch 2005 for sigmoid and an exponential target, in
 * ReservoirPy's form), written out here in double from the node's drawn
 * weights: the forward r ← (1 − lr) r + lr (u Win + x W + bias),
 * x = f(a r + b), and the updates of a and b after each step past warmup.
 */
#include "nn_train.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nn_registry *reg;

enum { U = 6, F = 2, MAXN = 2 };

typedef struct ref_opts {
    int sigmoid;
    double leak, mu, sigma, eta;
} ref_opts;

/* The reference: runs epochs over (N, T, F) inputs from zero state,
 * updating a and b (U each, in and out) row by row after each step from
 * warmup on. */
static void reference(const ref_opts *o, const float *Win, const float *W,
                      const float *bias, const nn_tensor *in, int N, int T,
                      int epochs, int warmup, double *a, double *b)
{
    for (int u = 0; u < U; u++) {
        a[u] = 1;
        b[u] = 0;
    }
    for (int e = 0; e < epochs; e++) {
        double r[MAXN][U] = {{0}}, x[MAXN][U] = {{0}};
        for (int t = 0; t < T; t++) {
            double nr[MAXN][U], nx[MAXN][U];
            for (int n = 0; n < N; n++)
                for (int u = 0; u < U; u++) {
                    double pre = bias[u];
                    for (int f = 0; f < F; f++)
                        pre += in->data[((size_t)n * T + t) * F + f] *
                               Win[f * U + u];
                    for (int v = 0; v < U; v++)
                        pre += x[n][v] * W[v * U + u];
                    nr[n][u] = (1 - o->leak) * r[n][u] + o->leak * pre;
                    double z = a[u] * nr[n][u] + b[u];
                    nx[n][u] = o->sigmoid ? 1 / (1 + exp(-z)) : tanh(z);
                }
            memcpy(r, nr, sizeof r);
            memcpy(x, nx, sizeof x);
            if (t < warmup)
                continue;
            for (int n = 0; n < N; n++)
                for (int u = 0; u < U; u++) {
                    double y = x[n][u], s2 = o->sigma * o->sigma, db;
                    if (o->sigmoid)
                        db = o->eta * (1 - (2 + 1 / o->mu) * y + y * y / o->mu);
                    else
                        db = -o->eta * (-(o->mu / s2) +
                                        (y / s2) * (2 * s2 + 1 - y * y +
                                                    o->mu * y));
                    double da = o->eta / a[u] + db * r[n][u];
                    a[u] += da;
                    b[u] += db;
                }
        }
    }
}

static nn_tensor *inputs(int N, int T)
{
    int dims[3] = {N, T, F};
    return tu_wave(3, dims, 1.2f, 0.3f);
}

static nn_graph *ip_graph(const ref_opts *o)
{
    char leak[48], mu[48], sigma[48], eta[48], act[48];
    snprintf(leak, sizeof leak, "leaky_rate=%g", o->leak);
    snprintf(mu, sizeof mu, "mu=%g", o->mu);
    snprintf(sigma, sizeof sigma, "sigma=%g", o->sigma);
    snprintf(eta, sizeof eta, "learning_rate=%g", o->eta);
    snprintf(act, sizeof act, "activation=%s", o->sigmoid ? "sigmoid" : "tanh");
    nn_graph *g = tu_graph(reg, 11);
    tu_node(g, "Input", "u", "shape=2", NULL);
    tu_node(g, "IPReservoir", "r", "num_unit=6", "spectral_radius=0.9",
            "rc_connectivity=0.5", "input_connectivity=0.8",
            "bias_scaling=0.4", leak, mu, sigma, eta, act, NULL);
    tu_link(g, "u >> r");
    tu_build(g);
    return g;
}

static void check_rule(const ref_opts *o)
{
    enum { N = 2, T = 40, EPOCHS = 3, WARMUP = 5 };
    nn_error err;
    nn_graph *g = ip_graph(o);
    nn_node *r = nn_graph_find(g, "r");
    const float *Win = nn_node_weight(r, "Win")->data;
    const float *W = nn_node_weight(r, "W")->data;
    const float *bias = nn_node_weight(r, "bias")->data;
    nn_tensor *x = inputs(N, T);
    double a[U], b[U];
    reference(o, Win, W, bias, x, N, T, EPOCHS, WARMUP, a, b);
    nn_binding in = {"u", x};
    long updates = 0;
    int rc = nn_ip_fit(g, &in, 1, N, T, EPOCHS, WARMUP, &updates, &err);
    if (rc != NN_OK)
        fprintf(stderr, "%s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
    CU_ASSERT_EQUAL(updates, (long)EPOCHS * (T - WARMUP));
    const float *ga = nn_node_weight(r, "a")->data;
    const float *gb = nn_node_weight(r, "b")->data;
    double moved = 0;
    for (int u = 0; u < U; u++) {
        TU_ASSERT_CLOSE(ga[u], a[u], 1e-5 + 1e-4 * fabs(a[u]));
        TU_ASSERT_CLOSE(gb[u], b[u], 1e-5 + 1e-4 * fabs(b[u]));
        moved = fmax(moved, fabs(a[u] - 1) + fabs(b[u]));
    }
    CU_ASSERT(moved > 1e-3); /* the rule did something to compare */

    /* The forward uses the adapted a and b: x = f(a r + b) from r. */
    nn_session *s = nn_session_new(g, 1, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    nn_tensor *u = nn_session_input(s, "u");
    u->data[0] = 0.5f;
    u->data[1] = -0.25f;
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
    const float *rs = nn_session_state(s, "r", 0)->data;
    const float *out = nn_session_output(s, "r")->data;
    for (int k = 0; k < U; k++) {
        double pre = bias[k] + 0.5 * Win[k] - 0.25 * Win[U + k];
        TU_ASSERT_CLOSE(rs[k], o->leak * pre, 1e-5);
        double z = ga[k] * rs[k] + gb[k];
        TU_ASSERT_CLOSE(out[k], o->sigmoid ? 1 / (1 + exp(-z)) : tanh(z),
                        1e-5);
    }
    nn_session_free(s);
    nn_tensor_free(x);
    nn_graph_free(g);
}

static void test_tanh_normal_target(void)
{
    ref_opts o = {0, 0.7, 0.1, 0.4, 0.01};
    check_rule(&o);
}

static void test_sigmoid_exponential_target(void)
{
    ref_opts o = {1, 1.0, 0.2, 1.0, 0.01};
    check_rule(&o);
}

/* Over many epochs the outputs approach the target: for tanh and
 * N(0, 0.2²) the spread of every unit's output shrinks toward 0.2 from the
 * wider spread it has at a = 1, b = 0. */
static void test_distribution_moves_to_target(void)
{
    enum { T = 300 };
    ref_opts o = {0, 1.0, 0.0, 0.2, 0.005};
    nn_error err;
    nn_graph *g = ip_graph(&o);
    nn_tensor *x = inputs(1, T);
    double before = 0, after = 0;
    for (int pass = 0; pass < 2; pass++) {
        nn_session *s = nn_session_new(g, 1, 0, &err);
        double sum[U] = {0}, sq[U] = {0};
        for (int t = 0; t < T; t++) {
            memcpy(nn_session_input(s, "u")->data, x->data + t * F,
                   F * sizeof(float));
            CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &err), NN_OK);
            const float *y = nn_session_output(s, "r")->data;
            for (int k = 0; k < U; k++) {
                sum[k] += y[k];
                sq[k] += (double)y[k] * y[k];
            }
        }
        double spread = 0;
        for (int k = 0; k < U; k++) {
            double m = sum[k] / T;
            spread += fabs(sqrt(fmax(sq[k] / T - m * m, 0)) - 0.2);
        }
        *(pass ? &after : &before) = spread / U;
        nn_session_free(s);
        if (pass == 0) {
            nn_binding in = {"u", x};
            CU_ASSERT_EQUAL_FATAL(nn_ip_fit(g, &in, 1, 1, T, 30, 10, NULL,
                                            &err), NN_OK);
        }
    }
    CU_ASSERT(after < before / 2);
    nn_tensor_free(x);
    nn_graph_free(g);
}

static void test_refusals(void)
{
    nn_error err;
    nn_graph *g = tu_graph(reg, 1);
    tu_node(g, "Input", "u", "shape=2", NULL);
    tu_node(g, "Dense", "o", "num_unit=1", NULL);
    tu_link(g, "u >> o");
    tu_build(g);
    CU_ASSERT_EQUAL(nn_ip_check(g, &err), NN_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no IPReservoir"));
    nn_graph_free(g);

    g = tu_graph(reg, 1);
    tu_node(g, "Input", "u", "shape=2", NULL);
    nn_node *r = tu_node(g, "IPReservoir", "r", "num_unit=4",
                         "activation=sigmoid", NULL);
    tu_link(g, "u >> r");
    /* A sigmoid's target is an exponential of mean mu > 0. */
    CU_ASSERT_NOT_EQUAL(nn_graph_build(g, &err), NN_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "mu must be > 0"));
    nn_graph_free(g);
    (void)r;

    ref_opts o = {0, 1.0, 0.0, 1.0, 0.01};
    g = ip_graph(&o);
    nn_tensor *x = inputs(1, 4);
    nn_binding in = {"u", x};
    CU_ASSERT_EQUAL(nn_ip_fit(g, &in, 1, 1, 4, 1, 4, NULL, &err),
                    NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "warmup"));
    CU_ASSERT_EQUAL(nn_ip_fit(g, &in, 1, 1, 4, 0, 0, NULL, &err),
                    NN_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "epochs"));
    nn_tensor_free(x);
    nn_graph_free(g);
}

int main(void)
{
    nn_error err;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &err) != NN_OK)
        return 2;
    static const tu_test tests[] = {
        {"tanh: the Schrauwen rule to a normal target",
         test_tanh_normal_target},
        {"sigmoid: the Triesch rule to an exponential target",
         test_sigmoid_exponential_target},
        {"the outputs' spread moves to the target",
         test_distribution_moves_to_target},
        {"refusals name the problem", test_refusals},
        {NULL, NULL}};
    int rc = tu_run_suite("ipreservoir", tests);
    nn_registry_free(reg);
    return rc;
}
