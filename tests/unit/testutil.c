#include "testutil.h"

#include "nn_train.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int tu_run_suite(const char *suite_name, const tu_test *tests)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite suite = CU_add_suite(suite_name, NULL, NULL);
    if (!suite)
        goto fail;
    for (const tu_test *t = tests; t->name; t++)
        if (!CU_add_test(suite, t->name, t->fn))
            goto fail;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    /* A suite that ran nothing proves nothing. */
    return (failed == 0 && ran > 0) ? 0 : 1;
fail:
    fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
    CU_cleanup_registry();
    return 2;
}

nn_registry *tu_registry(void)
{
    nn_error err;
    nn_registry *reg = nn_registry_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(reg);
    CU_ASSERT_EQUAL_FATAL(nn_registry_add_builtins(reg, &err), NN_OK);
    return reg;
}

nn_graph *tu_graph(nn_registry *reg, uint64_t seed)
{
    nn_graph *g = nn_graph_new(reg, seed);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    return g;
}

nn_session *tu_session(nn_graph *g, int batch, uint64_t seed)
{
    nn_error err;
    nn_session *s = nn_session_new(g, batch, seed, &err);
    if (!s)
        fprintf(stderr, "session: %s\n", err.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

nn_tensor *tu_wave(int ndim, const int *dims, float scale, float phase)
{
    nn_shape shape = nn_shape_make(ndim, dims);
    nn_tensor *t = nn_tensor_new(&shape);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    tu_fill(t, scale, phase);
    return t;
}

nn_node *tu_node(nn_graph *g, const char *type, const char *name, ...)
{
    nn_error err;
    nn_node *n = nn_graph_add_node(g, type, name, &err);
    if (!n)
        fprintf(stderr, "add %s: %s\n", name, err.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    va_list ap;
    va_start(ap, name);
    for (const char *kv; (kv = va_arg(ap, const char *)) != NULL;) {
        char key[64];
        const char *eq = strchr(kv, '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
        int rc = nn_node_set_param(n, key, eq + 1, &err);
        if (rc != NN_OK)
            fprintf(stderr, "%s: %s\n", kv, err.msg);
        CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
    }
    va_end(ap);
    return n;
}

void tu_link(nn_graph *g, const char *expr)
{
    nn_error err;
    int rc = nn_graph_link(g, expr, &err);
    if (rc != NN_OK)
        fprintf(stderr, "%s: %s\n", expr, err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
}

void tu_build(nn_graph *g)
{
    nn_error err;
    int rc = nn_graph_build(g, &err);
    if (rc != NN_OK)
        fprintf(stderr, "build: %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
}

void tu_fill(nn_tensor *t, float scale, float phase)
{
    for (size_t k = 0; k < nn_tensor_numel(t); k++)
        t->data[k] = scale * sinf(1.3f * (float)k + phase);
}

enum { FD_B = 2 };

/* L = sum(c * y) over a fresh session of `steps`, in double. */
static double fd_loss(nn_graph *g, const char *input, nn_tensor *x,
                      int steps, const nn_tensor *c)
{
    nn_error err;
    nn_session *s = nn_session_new(g, FD_B, 9, &err);
    nn_binding bind = {input, x};
    nn_tensor *out[1];
    double sum = 0;
    CU_ASSERT_EQUAL_FATAL(nn_session_run(s, &bind, 1, steps, 1, out, &err),
                          NN_OK);
    for (size_t k = 0; k < nn_tensor_numel(out[0]); k++)
        sum += (double)c->data[k] * out[0]->data[k];
    nn_tensor_free(out[0]);
    nn_session_free(s);
    return sum;
}

void tu_check_gradients(nn_graph *g, const char *input, int width,
                        const tu_fd_opts *opts, const char *what)
{
    int steps = opts && opts->steps ? opts->steps : 3;
    int entries = opts && opts->entries ? opts->entries : 8;
    nn_error err;
    int dims[3] = {FD_B, steps, width};
    nn_shape xs = nn_shape_make(3, dims);
    nn_tensor *x = nn_tensor_new(&xs);
    tu_fill(x, 0.8f, 0.1f);
    nn_session *s = nn_session_new(g, FD_B, 9, &err);
    nn_tape *tape = nn_tape_new(s, steps, &err);
    if (!tape)
        fprintf(stderr, "%s: %s\n", what, err.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tape);
    nn_grads *grads = nn_grads_new(g, &err);
    nn_binding bind = {input, x};
    nn_tensor *out[1];
    CU_ASSERT_EQUAL_FATAL(nn_tape_run(tape, &bind, 1, steps, 1, out, &err),
                          NN_OK);
    nn_tensor *c = nn_tensor_new(&out[0]->shape);
    tu_fill(c, 1.0f, 2.0f);
    if (opts && opts->last_only) {
        size_t per_step = nn_tensor_numel(c) / ((size_t)FD_B * (size_t)steps);
        for (int b = 0; b < FD_B; b++)
            memset(c->data + (size_t)b * (size_t)steps * per_step, 0,
                   (size_t)(steps - 1) * per_step * sizeof(float));
    }
    nn_tensor *d_out[1] = {c};
    CU_ASSERT_EQUAL_FATAL(nn_tape_backward(tape, d_out, grads, &err), NN_OK);
    int checked = 0;
    for (int n = 0; n < nn_graph_node_count(g); n++) {
        nn_node *node = nn_graph_node_at(g, n);
        for (int w = 0; w < nn_node_weight_count(node); w++) {
            if (!nn_node_weight_trainable(node, w))
                continue;
            nn_tensor *weight = nn_node_weight_at(node, w);
            nn_tensor *grad = nn_grads_at(grads, node, w);
            size_t count = nn_tensor_numel(weight);
            size_t stride = count > (size_t)entries ? count / (size_t)entries : 1;
            for (size_t k = 0; k < count; k += stride) {
                const float eps = 1e-3f;
                float keep = weight->data[k];
                weight->data[k] = keep + eps;
                double up = fd_loss(g, input, x, steps, c);
                weight->data[k] = keep - eps;
                double down = fd_loss(g, input, x, steps, c);
                weight->data[k] = keep;
                double numeric = (up - down) / (2.0 * eps);
                double analytic = grad->data[k];
                double tol = 1e-2 * fmax(1.0, fabs(numeric));
                if (fabs(numeric - analytic) > tol)
                    fprintf(stderr, "%s: %s.%s[%zu] numeric %g analytic %g\n",
                            what, nn_node_name(node),
                            nn_node_weight_name(node, w), k, numeric,
                            analytic);
                CU_ASSERT(fabs(numeric - analytic) <= tol);
                checked++;
            }
        }
    }
    CU_ASSERT(checked > 0);
    CU_ASSERT(nn_grads_norm(grads) > 0);
    nn_tensor_free(out[0]);
    nn_tensor_free(c);
    nn_tensor_free(x);
    nn_grads_free(grads);
    nn_tape_free(tape);
    nn_session_free(s);
}
