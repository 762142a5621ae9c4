/*
 * test_torch_ref.c — Dense, VanillaRNN (tanh and relu), LSTM, GRU (one way
 * and bidirectional) and both GELUs against PyTorch: each fixture of
 * tests/fixtures (written by torch_reference.py) holds a module's
 * weights, an input sequence, the outputs over time and the gradients of a
 * fixed loss with respect to every weight and the input. The node is built
 * with those weights through the public API, run through a session's tape,
 * and compared: outputs to 1e-4, gradients to 1e-3, relative. Training
 * fixtures (rnn_sgd.txt, rnn_adamw.txt) hold a few full-batch epochs of
 * nn.RNN >> nn.Linear under SGD and AdamW: VanillaRNN with two_biases and
 * Dense follow them epoch by epoch.
 */
#include "nn_train.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef NERVED_FIXTURE_DIR
#error "NERVED_FIXTURE_DIR must name the fixture directory (set by CMake)"
#endif

enum { MAX_TENSORS = 32, MAX_PARAMS = 8 };

typedef struct fixture {
    char type[NN_NAME_MAX];
    char params[MAX_PARAMS][2][128]; /* key, value */
    int n_params;
    char names[MAX_TENSORS][NN_NAME_MAX + 8];
    nn_tensor *tensors[MAX_TENSORS];
    int n_tensors;
} fixture;

static void fixture_free(fixture *f)
{
    for (int i = 0; i < f->n_tensors; i++)
        nn_tensor_free(f->tensors[i]);
    f->n_tensors = 0;
}

static const nn_tensor *fixture_get(const fixture *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->names[i], name) == 0)
            return f->tensors[i];
    return NULL;
}

/* Parses "NAME NDIM D0 .. VALUES..." into f; returns 0 or -1. */
static int parse_tensor(char *text, fixture *f)
{
    char *save = NULL, *tok = strtok_r(text, " \t\n", &save);
    if (!tok || f->n_tensors == MAX_TENSORS ||
        strlen(tok) >= sizeof f->names[0])
        return -1;
    strcpy(f->names[f->n_tensors], tok);
    char *ndim_text = strtok_r(NULL, " \t\n", &save);
    int ndim = ndim_text ? atoi(ndim_text) : -1;
    if (ndim < 1 || ndim > NN_MAX_DIMS)
        return -1;
    int dims[NN_MAX_DIMS];
    for (int d = 0; d < ndim; d++) {
        char *dim = strtok_r(NULL, " \t\n", &save);
        if (!dim || (dims[d] = atoi(dim)) < 1)
            return -1;
    }
    nn_shape shape = nn_shape_make(ndim, dims);
    nn_tensor *t = nn_tensor_new(&shape);
    if (!t)
        return -1;
    size_t n = 0;
    for (char *v; (v = strtok_r(NULL, " \t\n", &save)) != NULL; n++) {
        if (n == nn_tensor_numel(t)) {
            n++;
            break;
        }
        t->data[n] = strtof(v, NULL);
    }
    f->tensors[f->n_tensors++] = t;
    return n == nn_tensor_numel(t) ? 0 : -1;
}

/* Reads NERVED_FIXTURE_DIR/file into f; fails the test with the reason.
 * Every tensor named in `needs` (NULL-terminated) must be there. */
static int fixture_read(const char *file, fixture *f,
                        const char *const *needs)
{
    memset(f, 0, sizeof *f);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", NERVED_FIXTURE_DIR, file);
    FILE *in = fopen(path, "r");
    if (!in) {
        fprintf(stderr, "cannot open fixture %s; regenerate with python3 "
                "tests/fixtures/torch_reference.py\n", path);
        CU_FAIL("fixture missing");
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int rc = 0, lineno = 0;
    while (rc == 0 && getline(&line, &cap, in) > 0) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (strncmp(line, "node ", 5) == 0) {
            char *save = NULL, *tok = strtok_r(line + 5, " \t\n", &save);
            snprintf(f->type, sizeof f->type, "%s", tok ? tok : "");
            while ((tok = strtok_r(NULL, " \t\n", &save)) != NULL &&
                   f->n_params < MAX_PARAMS) {
                char *eq = strchr(tok, '=');
                if (!eq) {
                    rc = -1;
                    break;
                }
                *eq = '\0';
                snprintf(f->params[f->n_params][0], 128, "%s", tok);
                snprintf(f->params[f->n_params][1], 128, "%s", eq + 1);
                f->n_params++;
            }
            continue;
        }
        rc = parse_tensor(line, f);
    }
    free(line);
    fclose(in);
    for (; rc == 0 && *needs; needs++)
        if (!fixture_get(f, *needs))
            rc = -1;
    if (rc != 0) {
        fprintf(stderr, "%s: malformed near line %d\n", path, lineno);
        CU_FAIL("fixture malformed");
        fixture_free(f);
        return -1;
    }
    return 0;
}

/* A module's fixture: a node line and x, y, dy, grad.x. */
static int fixture_load(const char *file, fixture *f)
{
    static const char *const needs[] = {"x", "y", "dy", "grad.x", NULL};
    if (fixture_read(file, f, needs))
        return -1;
    if (!f->type[0]) {
        fprintf(stderr, "%s: no node line\n", file);
        CU_FAIL("fixture malformed");
        fixture_free(f);
        return -1;
    }
    return 0;
}

/* Asserts got ≈ want elementwise: |got - want| <= tol * max(|want|, 1e-2 *
 * max|want|), so entries near zero are held to the tensor's own scale. */
static void assert_close(const char *what, const float *got,
                         const nn_tensor *want, double tol)
{
    size_t n = nn_tensor_numel(want);
    double peak = 0;
    for (size_t k = 0; k < n; k++)
        peak = fmax(peak, fabs(want->data[k]));
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        double ref = want->data[k];
        double limit = tol * fmax(fabs(ref), 1e-2 * peak);
        if (fabs(got[k] - ref) > limit) {
            if (bad++ < 3)
                fprintf(stderr, "%s[%zu]: %.9g, PyTorch %.9g\n", what, k,
                        got[k], ref);
        }
    }
    CU_ASSERT(peak > 0); /* an all-zero reference would prove nothing */
    CU_ASSERT_EQUAL(bad, 0);
}

/* ------------------------------------------------------------- the probe */

/* TProbe: out = x + b, with b a zero trainable weight. Its backward saves
 * d loss / d x of each step into `probe_dx` (batch, time, features), which
 * the tape does not otherwise expose; having a weight makes the tape reach
 * it. */
static float *probe_dx;
static int probe_steps;

static int probe_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                         nn_error *err)
{
    (void)n_ff;
    nn_init zeros = {NN_INIT_ZEROS, 0, 0};
    if (!nn_node_add_weight(node, "b", &ff[0], &zeros, 1, err))
        return err->code;
    nn_node_set_output_shape(node, &ff[0]);
    return NN_OK;
}

static int probe_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                         const nn_tensor *fb, int n_fb, nn_tensor *out,
                         nn_ctx *ctx)
{
    (void)n_ff, (void)fb, (void)n_fb, (void)ctx;
    const float *b = nn_node_weight(node, "b")->data;
    int cols = nn_tensor_cols(out);
    for (size_t k = 0; k < nn_tensor_numel(out); k++)
        out->data[k] = ff[0].data[k] + b[k % (size_t)cols];
    return NN_OK;
}

static int probe_backward(nn_node *node, const nn_tensor *ff, int n_ff,
                          const nn_tensor *fb, int n_fb, const nn_tensor *out,
                          const nn_tensor *dout, nn_tensor *dff,
                          nn_tensor *dfb, nn_ctx *ctx)
{
    (void)node, (void)ff, (void)n_ff, (void)fb, (void)n_fb, (void)dfb;
    size_t rows = nn_tensor_rows(out), cols = (size_t)nn_tensor_cols(out);
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j++) {
            float d = dout->data[r * cols + j];
            ctx->grad[0].data[j] += d;
            if (dff)
                dff[0].data[r * cols + j] += d;
            probe_dx[(r * (size_t)probe_steps + (size_t)ctx->step) * cols +
                     j] = d;
        }
    return NN_OK;
}

static const nn_node_type probe_type = {
    .api_version = NN_API_VERSION,
    .name = "TProbe",
    .doc = "x + b; saves d loss / d x",
    .flags = NN_TYPE_TRAINABLE,
    .init_ff = probe_init_ff,
    .forward = probe_forward,
    .backward = probe_backward,
};

/* ------------------------------------------------------------ the check */

static nn_registry *reg;

static void check_fixture(const char *file)
{
    fixture f;
    if (fixture_load(file, &f) != 0)
        return;
    const nn_tensor *x = fixture_get(&f, "x"), *y = fixture_get(&f, "y");
    int batch = x->shape.dims[0], steps = x->shape.dims[1];
    char shape[32];
    snprintf(shape, sizeof shape, "%d", x->shape.dims[2]);

    nn_error err;
    nn_graph *g = nn_graph_new(reg, 1);
    nn_node *in = nn_graph_add_node(g, "Input", "x", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    CU_ASSERT_EQUAL_FATAL(nn_node_set_param(in, "shape", shape, &err), NN_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(nn_graph_add_node(g, "TProbe", "probe", &err));
    nn_node *n = nn_graph_add_node(g, f.type, "n", &err);
    if (!n)
        fprintf(stderr, "%s: %s\n", file, err.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    for (int p = 0; p < f.n_params; p++)
        CU_ASSERT_EQUAL_FATAL(nn_node_set_param(n, f.params[p][0],
                                                f.params[p][1], &err), NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_graph_link(g, "x >> probe >> n", &err), NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_graph_build(g, &err), NN_OK);

    /* Every weight of the node comes from the fixture, shape for shape. */
    int set = 0;
    for (int w = 0; w < nn_node_weight_count(n); w++) {
        char name[NN_NAME_MAX + 8];
        snprintf(name, sizeof name, "weight.%s", nn_node_weight_name(n, w));
        const nn_tensor *src = fixture_get(&f, name);
        nn_tensor *dst = nn_node_weight_at(n, w);
        if (!src || !nn_shape_equal(&src->shape, &dst->shape)) {
            fprintf(stderr, "%s: %s missing or of another shape\n", file,
                    name);
            CU_FAIL("weight not in the fixture");
            continue;
        }
        memcpy(dst->data, src->data, nn_tensor_numel(dst) * sizeof(float));
        set++;
    }
    int in_file = 0;
    for (int i = 0; i < f.n_tensors; i++)
        in_file += strncmp(f.names[i], "weight.", 7) == 0;
    CU_ASSERT_EQUAL(set, in_file);

    nn_session *s = nn_session_new(g, batch, 0, &err);
    nn_tape *tape = nn_tape_new(s, steps, &err);
    nn_grads *grads = nn_grads_new(g, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tape);
    CU_ASSERT_PTR_NOT_NULL_FATAL(grads);
    nn_binding bind = {"x", (nn_tensor *)x};
    nn_tensor *out[1];
    CU_ASSERT_EQUAL_FATAL(nn_tape_run(tape, &bind, 1, steps, 0, out, &err),
                          NN_OK);
    CU_ASSERT(nn_shape_equal(&out[0]->shape, &y->shape));
    char what[128];
    snprintf(what, sizeof what, "%s y", file);
    assert_close(what, out[0]->data, y, 1e-4);

    probe_steps = steps;
    probe_dx = calloc(nn_tensor_numel(x), sizeof(float));
    CU_ASSERT_PTR_NOT_NULL_FATAL(probe_dx);
    nn_tensor *d_out[1] = {(nn_tensor *)fixture_get(&f, "dy")};
    CU_ASSERT_EQUAL_FATAL(nn_tape_backward(tape, d_out, grads, &err), NN_OK);
    for (int w = 0; w < nn_node_weight_count(n); w++) {
        char name[NN_NAME_MAX + 8];
        snprintf(name, sizeof name, "grad.%s", nn_node_weight_name(n, w));
        const nn_tensor *want = fixture_get(&f, name);
        CU_ASSERT_PTR_NOT_NULL(want);
        if (!want)
            continue;
        snprintf(what, sizeof what, "%s %s", file, name);
        assert_close(what, nn_grads_at(grads, n, w)->data, want, 1e-3);
    }
    snprintf(what, sizeof what, "%s grad.x", file);
    assert_close(what, probe_dx, fixture_get(&f, "grad.x"), 1e-3);

    free(probe_dx);
    probe_dx = NULL;
    nn_tensor_free(out[0]);
    nn_grads_free(grads);
    nn_tape_free(tape);
    nn_session_free(s);
    nn_graph_free(g);
    fixture_free(&f);
}

static void test_dense(void) { check_fixture("dense.txt"); }
static void test_vanilla_rnn_tanh(void) { check_fixture("vanilla_rnn_tanh.txt"); }
static void test_vanilla_rnn_relu(void) { check_fixture("vanilla_rnn_relu.txt"); }
static void test_lstm(void) { check_fixture("lstm.txt"); }
static void test_gru(void) { check_fixture("gru.txt"); }
static void test_vanilla_rnn_bidir(void)
{
    check_fixture("vanilla_rnn_bidir.txt");
}
static void test_lstm_bidir(void) { check_fixture("lstm_bidir.txt"); }
static void test_gru_bidir(void) { check_fixture("gru_bidir.txt"); }
static void test_gelu_exact(void) { check_fixture("gelu_exact.txt"); }
static void test_gelu_tanh(void) { check_fixture("gelu_tanh.txt"); }

/* ------------------------------------------------------------ schedules */

/* GRU >> Dense trained by nn_fit_bptt with the fixture's weights, SGD at lr
 * 0.2 over 6 epochs, full batch and window, under `schedule`; the epoch
 * losses must follow PyTorch's (loss.<name>) to float32 accuracy. The cosine
 * horizon is left at its default: the fit's epochs. */
static void check_schedule(const char *name, nn_schedule_kind schedule,
                           int step_size, double gamma)
{
    static const char *const needs[] = {"x", "y", "loss.cosine", "loss.step",
                                        "loss.exponential", NULL};
    fixture f;
    if (fixture_read("schedules.txt", &f, needs))
        return;
    const nn_tensor *x = fixture_get(&f, "x"), *y = fixture_get(&f, "y");
    char key[64];
    snprintf(key, sizeof key, "loss.%s", name);
    const nn_tensor *want = fixture_get(&f, key);
    int epochs = (int)nn_tensor_numel(want);

    nn_error err;
    nn_graph *g = nn_graph_new(reg, 1);
    char shape[16];
    snprintf(shape, sizeof shape, "%d", x->shape.dims[2]);
    nn_node *in = nn_graph_add_node(g, "Input", "x", &err);
    nn_node *gru = nn_graph_add_node(g, "GRU", "gru", &err);
    nn_node *out = nn_graph_add_node(g, "Dense", "out", &err);
    CU_ASSERT_FATAL(in && gru && out);
    CU_ASSERT_EQUAL_FATAL(nn_node_set_param(in, "shape", shape, &err), NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_node_set_param(gru, "num_unit", "4", &err),
                          NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_node_set_param(out, "num_unit", "1", &err),
                          NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_graph_link(g, "x >> gru >> out", &err), NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_graph_build(g, &err), NN_OK);
    nn_node *nodes[2] = {gru, out};
    const char *prefix[2] = {"weight.gru.", "weight.out."};
    for (int k = 0; k < 2; k++)
        for (int w = 0; w < nn_node_weight_count(nodes[k]); w++) {
            char wname[NN_NAME_MAX + 16];
            snprintf(wname, sizeof wname, "%s%s", prefix[k],
                     nn_node_weight_name(nodes[k], w));
            const nn_tensor *src = fixture_get(&f, wname);
            nn_tensor *dst = nn_node_weight_at(nodes[k], w);
            CU_ASSERT_PTR_NOT_NULL_FATAL(src);
            CU_ASSERT_FATAL(nn_shape_equal(&src->shape, &dst->shape));
            memcpy(dst->data, src->data, nn_tensor_numel(dst) * sizeof(float));
        }

    nn_fit_opts fo = nn_fit_defaults();
    fo.epochs = epochs;
    fo.optim.lr = 0.2;
    fo.optim.schedule = schedule;
    fo.optim.step_size = step_size;
    fo.optim.gamma = gamma;
    nn_binding bin = {"x", (nn_tensor *)x}, btg = {"out", (nn_tensor *)y};
    double history[16];
    CU_ASSERT_FATAL(epochs >= 3 && epochs <= 16);
    int rc = nn_fit_bptt(g, &bin, 1, &btg, 1, &fo, history, NULL, &err);
    if (rc != NN_OK)
        fprintf(stderr, "%s: %s\n", name, err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
    for (int e = 0; e < epochs; e++) {
        double ref = want->data[e];
        if (fabs(history[e] - ref) > 1e-5 * fabs(ref) + 1e-6) {
            fprintf(stderr, "%s epoch %d: loss %.9g, PyTorch %.9g\n", name,
                    e, history[e], ref);
            CU_FAIL("loss history differs from PyTorch's");
        }
    }
    nn_graph_free(g);
    fixture_free(&f);
}

static void test_cosine(void)
{
    check_schedule("cosine", NN_SCHEDULE_COSINE, 1, 0.1);
}
static void test_step(void)
{
    check_schedule("step", NN_SCHEDULE_STEP, 2, 0.5);
}
static void test_exponential(void)
{
    check_schedule("exponential", NN_SCHEDULE_EXPONENTIAL, 1, 0.7);
}

/* ------------------------------------------------- training fixtures */

/* VanillaRNN(tanh, two_biases as asked) >> Dense from the fixture's
 * weight.* (with one bias, b = bi + bh), trained by nn_fit_bptt full batch
 * under opts. Returns how many epoch losses differ from PyTorch's beyond
 * float32 tolerance; when `match` (a run that should follow PyTorch) the
 * differences are printed and the final weights must match too. */
static int check_training(const char *file, const nn_optim_opts *opts,
                          int two_biases, int match)
{
    static const char *const needs[] = {"x", "y", "loss.history", NULL};
    fixture f;
    if (fixture_read(file, &f, needs))
        return -1;
    const nn_tensor *x = fixture_get(&f, "x"), *y = fixture_get(&f, "y");
    const nn_tensor *want = fixture_get(&f, "loss.history");
    int epochs = (int)nn_tensor_numel(want);
    const nn_tensor *bi = fixture_get(&f, "weight.rnn.bi");
    const nn_tensor *bh = fixture_get(&f, "weight.rnn.bh");
    CU_ASSERT_FATAL(bi && bh && epochs >= 2 && epochs <= 16);

    nn_error err;
    nn_graph *g = nn_graph_new(reg, 1);
    char shape[16], units[16];
    snprintf(shape, sizeof shape, "%d", x->shape.dims[2]);
    snprintf(units, sizeof units, "%d", bi->shape.dims[0]);
    nn_node *in = nn_graph_add_node(g, "Input", "x", &err);
    nn_node *rnn = nn_graph_add_node(g, "VanillaRNN", "rnn", &err);
    nn_node *out = nn_graph_add_node(g, "Dense", "out", &err);
    CU_ASSERT_FATAL(in && rnn && out);
    CU_ASSERT_EQUAL_FATAL(nn_node_set_param(in, "shape", shape, &err), NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_node_set_param(rnn, "num_unit", units, &err),
                          NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_node_set_param(rnn, "activation", "tanh", &err),
                          NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_node_set_param(rnn, "two_biases",
                                            two_biases ? "true" : "false",
                                            &err), NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_node_set_param(out, "num_unit", "1", &err),
                          NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_graph_link(g, "x >> rnn >> out", &err), NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_graph_build(g, &err), NN_OK);
    nn_node *nodes[2] = {rnn, out};
    const char *prefix[2] = {"rnn", "out"};
    for (int k = 0; k < 2; k++)
        for (int w = 0; w < nn_node_weight_count(nodes[k]); w++) {
            const char *wn = nn_node_weight_name(nodes[k], w);
            nn_tensor *dst = nn_node_weight_at(nodes[k], w);
            if (k == 0 && strcmp(wn, "b") == 0) {
                for (size_t u = 0; u < nn_tensor_numel(dst); u++)
                    dst->data[u] = bi->data[u] + bh->data[u];
                continue;
            }
            char name[NN_NAME_MAX + 16];
            snprintf(name, sizeof name, "weight.%s.%s", prefix[k], wn);
            const nn_tensor *src = fixture_get(&f, name);
            CU_ASSERT_PTR_NOT_NULL_FATAL(src);
            CU_ASSERT_FATAL(nn_shape_equal(&src->shape, &dst->shape));
            memcpy(dst->data, src->data, nn_tensor_numel(dst) * sizeof(float));
        }

    nn_fit_opts fo = nn_fit_defaults();
    fo.epochs = epochs;
    fo.shuffle = 0;
    fo.optim = *opts;
    nn_binding bin = {"x", (nn_tensor *)x}, btg = {"out", (nn_tensor *)y};
    double history[16];
    int rc = nn_fit_bptt(g, &bin, 1, &btg, 1, &fo, history, NULL, &err);
    if (rc != NN_OK)
        fprintf(stderr, "%s: %s\n", file, err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
    int differ = 0;
    for (int e = 0; e < epochs; e++) {
        double ref = want->data[e];
        if (fabs(history[e] - ref) > 1e-5 * fabs(ref) + 1e-6) {
            if (match)
                fprintf(stderr, "%s epoch %d: loss %.9g, PyTorch %.9g\n",
                        file, e, history[e], ref);
            differ++;
        }
    }
    for (int k = 0; match && k < 2; k++)
        for (int w = 0; w < nn_node_weight_count(nodes[k]); w++) {
            char name[NN_NAME_MAX + 16];
            snprintf(name, sizeof name, "final.%s.%s", prefix[k],
                     nn_node_weight_name(nodes[k], w));
            const nn_tensor *ref = fixture_get(&f, name);
            CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
            assert_close(name, nn_node_weight_at(nodes[k], w)->data, ref,
                         1e-4);
        }
    nn_graph_free(g);
    fixture_free(&f);
    return differ;
}

/* SGD moves each of nn.RNN's two biases by the whole gradient: with
 * two_biases nerved follows PyTorch; with one bias (the default) the sum
 * moves half as far, and the losses part from the second epoch. */
static void test_two_biases_sgd(void)
{
    nn_optim_opts o = nn_optim_defaults();
    o.lr = 0.3;
    CU_ASSERT_EQUAL(check_training("rnn_sgd.txt", &o, 1, 1), 0);
    CU_ASSERT(check_training("rnn_sgd.txt", &o, 0, 0) > 0);

    /* Two biases without a bias is a contradiction, refused by name. */
    nn_error err;
    nn_graph *g = nn_graph_new(reg, 1);
    nn_node *in = nn_graph_add_node(g, "Input", "x", &err);
    nn_node *rnn = nn_graph_add_node(g, "VanillaRNN", "rnn", &err);
    CU_ASSERT_FATAL(in && rnn);
    CU_ASSERT_EQUAL(nn_node_set_param(in, "shape", "2", &err), NN_OK);
    CU_ASSERT_EQUAL(nn_node_set_param(rnn, "num_unit", "3", &err), NN_OK);
    CU_ASSERT_EQUAL(nn_node_set_param(rnn, "use_bias", "false", &err), NN_OK);
    CU_ASSERT_EQUAL(nn_node_set_param(rnn, "two_biases", "true", &err), NN_OK);
    CU_ASSERT_EQUAL(nn_graph_link(g, "x >> rnn", &err), NN_OK);
    CU_ASSERT_NOT_EQUAL(nn_graph_build(g, &err), NN_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "two_biases needs use_bias"));
    nn_graph_free(g);
}

/* AdamW's decay is decoupled: Adam with the same weight_decay in the
 * gradient parts from PyTorch's AdamW. */
static void test_adamw(void)
{
    nn_optim_opts o = nn_optim_defaults();
    o.kind = NN_OPTIM_ADAMW;
    o.lr = 0.05;
    o.weight_decay = 0.2;
    CU_ASSERT_EQUAL(check_training("rnn_adamw.txt", &o, 1, 1), 0);
    o.kind = NN_OPTIM_ADAM;
    CU_ASSERT(check_training("rnn_adamw.txt", &o, 1, 0) > 0);
}

int main(void)
{
    nn_error err;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &err) != NN_OK ||
        nn_register_type(reg, &probe_type, &err) != NN_OK)
        return 2;
    static const tu_test tests[] = {
        {"Dense = torch.nn.Linear", test_dense},
        {"VanillaRNN(tanh) = torch.nn.RNN", test_vanilla_rnn_tanh},
        {"VanillaRNN(relu) = torch.nn.RNN", test_vanilla_rnn_relu},
        {"LSTM = torch.nn.LSTM", test_lstm},
        {"GRU = torch.nn.GRU", test_gru},
        {"VanillaRNN bidirectional = torch.nn.RNN(bidirectional=True)",
         test_vanilla_rnn_bidir},
        {"LSTM bidirectional = torch.nn.LSTM(bidirectional=True)",
         test_lstm_bidir},
        {"GRU bidirectional = torch.nn.GRU(bidirectional=True)",
         test_gru_bidir},
        {"gelu_exact = torch.nn.GELU()", test_gelu_exact},
        {"gelu = torch.nn.GELU(approximate='tanh')", test_gelu_tanh},
        {"cosine schedule = CosineAnnealingLR(T_max=epochs)", test_cosine},
        {"step schedule = StepLR", test_step},
        {"exponential schedule = ExponentialLR", test_exponential},
        {"VanillaRNN two_biases + SGD = nn.RNN + SGD", test_two_biases_sgd},
        {"AdamW = torch.optim.AdamW", test_adamw},
        {NULL, NULL}};
    int rc = tu_run_suite("torch reference", tests);
    nn_registry_free(reg);
    return rc;
}
