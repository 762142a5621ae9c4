/*
 * select.c — Select(index): part of the last axis, written as in Python: an
 * index "2" or "-1" (the axis is kept, with size 1, as BrainPy's Select
 * does), or a slice "start:stop[:step]" with any part left out ("1:",
 * "::2", "::-1"). Bounds follow Python's slice rules, resolved once the
 * input's size is known.
 */
#include "builtins.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

typedef struct selection {
    int start, step, count; /* element k of a row is start + k * step */
} selection;

static const nn_param_def select_params[] = {
    {"index", NN_PARAM_STRING, NULL, 0, 0, NULL,
     "on the last axis, an index such as 2 or -1 (kept as an axis of size 1) "
     "or a slice start:stop[:step] such as 1:4, ::2 or ::-1"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

/* Reads an optional integer at *p, spaces around it allowed; *present says
 * whether one was there. Returns -1 on a malformed or huge number. */
static int read_int(const char **p, int *present, long *value)
{
    while (isspace((unsigned char)**p))
        (*p)++;
    *present = 0;
    if (**p != '-' && **p != '+' && !isdigit((unsigned char)**p))
        return 0;
    errno = 0;
    char *end;
    *value = strtol(*p, &end, 10);
    if (end == *p || errno || *value < -INT_MAX || *value > INT_MAX)
        return -1;
    *p = end;
    while (isspace((unsigned char)**p))
        (*p)++;
    *present = 1;
    return 0;
}

/* Python's slice.indices for one bound: negative counts from the end, then
 * clamped to [lower, upper]. */
static long clamp_bound(long v, long size, long lower, long upper)
{
    if (v < 0)
        v += size;
    return v < lower ? lower : v > upper ? upper : v;
}

static int parse_selection(const char *text, int size, selection *out,
                           nn_error *err)
{
    const char *p = text;
    long part[3] = {0, 0, 1};
    int given[3] = {0, 0, 0}, parts = 0;
    for (;;) {
        if (read_int(&p, &given[parts], &part[parts]) != 0)
            break;
        parts++;
        if (*p != ':' || parts == 3)
            break;
        p++;
    }
    if (*p || parts == 0 || (parts == 1 && !given[0]))
        return nn_error_set(err, NN_ERR_INVALID, "'index' \"%s\" is neither an "
                            "integer nor a slice start:stop[:step]", text);
    if (parts == 1) {
        long i = part[0] < 0 ? part[0] + size : part[0];
        if (i < 0 || i >= size)
            return nn_error_set(err, NN_ERR_SHAPE, "'index' %ld is out of "
                                "range for a last axis of size %d", part[0],
                                size);
        out->start = (int)i;
        out->step = 1;
        out->count = 1;
        return NN_OK;
    }
    long step = given[2] ? part[2] : 1;
    if (step == 0)
        return nn_error_set(err, NN_ERR_INVALID, "'index' \"%s\": a slice step "
                            "cannot be zero", text);
    long lower = step > 0 ? 0 : -1, upper = step > 0 ? size : size - 1;
    long start = given[0] ? clamp_bound(part[0], size, lower, upper)
                          : step > 0 ? lower : upper;
    long stop = given[1] ? clamp_bound(part[1], size, lower, upper)
                         : step > 0 ? upper : lower;
    long count = step > 0 ? (stop > start ? (stop - start - 1) / step + 1 : 0)
                          : (start > stop ? (start - stop - 1) / -step + 1 : 0);
    if (count == 0)
        return nn_error_set(err, NN_ERR_SHAPE, "'index' \"%s\" selects nothing "
                            "from a last axis of size %d", text, size);
    out->start = (int)start;
    out->step = (int)step;
    out->count = (int)count;
    return NN_OK;
}

static int select_init_ff(nn_node *node, const nn_shape *ff, int n_ff,
                          nn_error *err)
{
    selection *self = nn_node_priv(node);
    if (n_ff != 1)
        return nn_error_set(err, NN_ERR_SHAPE, "Select takes exactly one "
                            "feedforward input, got %d; put a Concat in front "
                            "to combine several", n_ff);
    if (ff[0].ndim < 1)
        return nn_error_set(err, NN_ERR_SHAPE, "Select needs an input with at "
                            "least one axis per sample");
    nn_shape shape = ff[0];
    int rc = parse_selection(nn_node_param_str(node, "index"),
                             shape.dims[shape.ndim - 1], self, err);
    if (rc != NN_OK)
        return rc;
    shape.dims[shape.ndim - 1] = self->count;
    nn_node_set_output_shape(node, &shape);
    return NN_OK;
}

static int select_forward(nn_node *node, const nn_tensor *ff, int n_ff,
                          const nn_tensor *fb, int n_fb, nn_tensor *out,
                          nn_ctx *ctx)
{
    (void)n_ff, (void)fb, (void)n_fb, (void)ctx;
    const selection *self = nn_node_priv_const(node);
    size_t rows = nn_tensor_rows(out), in_cols = (size_t)nn_tensor_cols(&ff[0]);
    for (size_t r = 0; r < rows; r++) {
        const float *x = ff[0].data + r * in_cols + self->start;
        float *y = out->data + r * (size_t)self->count;
        for (int k = 0; k < self->count; k++)
            y[k] = x[(long)k * self->step];
    }
    return NN_OK;
}

static int select_backward(nn_node *node, const nn_tensor *ff, int n_ff,
                           const nn_tensor *fb, int n_fb, const nn_tensor *out,
                           const nn_tensor *dout, nn_tensor *dff,
                           nn_tensor *dfb, nn_ctx *ctx)
{
    (void)n_ff, (void)fb, (void)n_fb, (void)dfb, (void)ctx;
    if (!dff)
        return NN_OK;
    const selection *self = nn_node_priv_const(node);
    size_t rows = nn_tensor_rows(out), in_cols = (size_t)nn_tensor_cols(&ff[0]);
    for (size_t r = 0; r < rows; r++) {
        float *dx = dff[0].data + r * in_cols + self->start;
        const float *dy = dout->data + r * (size_t)self->count;
        for (int k = 0; k < self->count; k++)
            dx[(long)k * self->step] += dy[k];
    }
    return NN_OK;
}

const nn_node_type nn_type_select = {
    .api_version = NN_API_VERSION,
    .name = "Select",
    .doc = "part of the last axis: an index (kept as size 1) or a slice "
           "start:stop[:step], as in Python",
    .flags = NN_TYPE_ROWWISE,
    .params = select_params,
    .priv_size = sizeof(selection),
    .init_ff = select_init_ff,
    .forward = select_forward,
    .backward = select_backward,
};
