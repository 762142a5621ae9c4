/*
 * core.c — errors, counted memory, shapes and tensors.
 */
#define _DEFAULT_SOURCE /* madvise */
#include "nn_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

/* ---------------------------------------------------------------- errors */

int nn_error_set(nn_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

int nn_error_prefix(nn_error *err, const char *fmt, ...)
{
    if (!err)
        return NN_ERR_INVALID;
    char prefix[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    return err->code;
}

void nn_error_clear(nn_error *err)
{
    if (err) {
        err->code = NN_OK;
        err->msg[0] = '\0';
    }
}

const char *nn_status_str(int status)
{
    switch (status) {
    case NN_OK: return "ok";
    case NN_ERR_INVALID: return "invalid";
    case NN_ERR_NOMEM: return "out_of_memory";
    case NN_ERR_SHAPE: return "shape";
    case NN_ERR_GRAPH: return "graph";
    case NN_ERR_NOT_FOUND: return "not_found";
    case NN_ERR_EXISTS: return "exists";
    case NN_ERR_UNSUPPORTED: return "unsupported";
    case NN_ERR_VERSION: return "version";
    case NN_ERR_LIMIT: return "limit";
    case NN_ERR_STATE: return "state";
    default: return "unknown";
    }
}

/* ---------------------------------------------------------------- memory */

static atomic_uint_fast64_t alloc_count;
static atomic_uint_fast64_t fail_countdown; /* 0 = never fail */
static atomic_size_t fail_above;             /* 0 = no size limit */

/* True when fault injection says this allocation must fail. */
static int injected_failure_sized(size_t size)
{
    size_t above = atomic_load(&fail_above);
    return above && size > above;
}

static int injected_failure(void)
{
    uint_fast64_t left = atomic_load(&fail_countdown);
    while (left > 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &left, left - 1))
            return left == 1;
    }
    return 0;
}

void *nn_malloc(size_t size)
{
    if (injected_failure_sized(size) || injected_failure())
        return NULL;
    void *p = malloc(size ? size : 1);
    if (p)
        atomic_fetch_add(&alloc_count, 1);
    return p;
}

void *nn_calloc(size_t count, size_t size)
{
    if ((size && count > SIZE_MAX / size) ||
        injected_failure_sized(count * size) || injected_failure())
        return NULL;
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p)
        atomic_fetch_add(&alloc_count, 1);
    return p;
}

void *nn_realloc(void *ptr, size_t size)
{
    if (injected_failure_sized(size) || injected_failure())
        return NULL;
    void *p = realloc(ptr, size ? size : 1);
    if (p)
        atomic_fetch_add(&alloc_count, 1);
    return p;
}

void nn_free(void *ptr)
{
    free(ptr);
}

/* Scratch from this size on is mapped on its own, 2 MiB-aligned, and
 * offered huge pages before anything touches it (after a touch the
 * kernel keeps the small pages it faulted in). */
#define NN_SCRATCH_MAP_MIN ((size_t)4 << 20)
#define NN_HUGE_PAGE ((size_t)2 << 20)

float *nn_scratch_alloc(size_t floats)
{
    if (floats > SIZE_MAX / sizeof(float) - NN_HUGE_PAGE)
        return NULL;
    size_t bytes = floats * sizeof(float);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= NN_SCRATCH_MAP_MIN) {
        if (injected_failure_sized(bytes) || injected_failure())
            return NULL;
        size_t len = (bytes + 4095) & ~(size_t)4095;
        char *raw = mmap(NULL, len + NN_HUGE_PAGE, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED)
            return NULL;
        uintptr_t at = ((uintptr_t)raw + NN_HUGE_PAGE - 1) &
                       ~(uintptr_t)(NN_HUGE_PAGE - 1);
        char *p = (char *)at;
        if (p > raw)
            munmap(raw, (size_t)(p - raw));
        if (raw + len + NN_HUGE_PAGE > p + len)
            munmap(p + len, (size_t)(raw + len + NN_HUGE_PAGE - (p + len)));
        (void)madvise(p, len, MADV_HUGEPAGE); /* a hint: refused is fine */
        atomic_fetch_add(&alloc_count, 1);
        return (float *)p; /* fresh anonymous pages are zero */
    }
#endif
    return nn_calloc(floats ? floats : 1, sizeof(float));
}

void nn_scratch_free(float *p, size_t floats)
{
    if (!p)
        return;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    size_t bytes = floats * sizeof(float);
    if (bytes >= NN_SCRATCH_MAP_MIN) {
        munmap(p, (bytes + 4095) & ~(size_t)4095);
        return;
    }
#else
    (void)floats;
#endif
    nn_free(p);
}

static int vector_limit = -1;

void nn_limit_vectors(int level)
{
    vector_limit = level;
}

int nn_vector_level(void)
{
    int level = 0;
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx2"))
        level = __builtin_cpu_supports("avx512f") ? 2 : 1;
#endif
    return vector_limit >= 0 && vector_limit < level ? vector_limit : level;
}

uint64_t nn_alloc_count(void)
{
    return atomic_load(&alloc_count);
}

void nn_alloc_fail_after(uint64_t n)
{
    atomic_store(&fail_countdown, n);
}

void nn_alloc_fail_above(size_t bytes)
{
    atomic_store(&fail_above, bytes);
}

int nn_grow(void **arr, int *cap, int need, size_t elem, nn_error *err)
{
    if (need <= *cap)
        return NN_OK;
    int new_cap = *cap ? *cap : 4;
    while (new_cap < need)
        new_cap *= 2;
    void *p = nn_realloc(*arr, (size_t)new_cap * elem);
    if (!p)
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    *arr = p;
    *cap = new_cap;
    return NN_OK;
}

/* ---------------------------------------------------------------- shapes */

nn_shape nn_shape_make(int ndim, const int *dims)
{
    nn_shape s;
    memset(&s, 0, sizeof s);
    if (ndim < 0)
        ndim = 0;
    if (ndim > NN_MAX_DIMS)
        ndim = NN_MAX_DIMS;
    s.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        s.dims[i] = dims[i];
    return s;
}

nn_shape nn_shape1(int d0)
{
    return nn_shape_make(1, &d0);
}

nn_shape nn_shape2(int d0, int d1)
{
    int d[2] = {d0, d1};
    return nn_shape_make(2, d);
}

/* Saturates at SIZE_MAX instead of wrapping: a client's shape like
 * [65536, 65536, 65536, 65536] must make the allocation fail, not shrink
 * into a small buffer that later loops overrun. */
size_t nn_shape_numel(const nn_shape *s)
{
    size_t n = 1;
    for (int i = 0; i < s->ndim; i++) {
        size_t d = (size_t)(s->dims[i] > 0 ? s->dims[i] : 0);
        if (d == 0)
            return 0;
        if (n > SIZE_MAX / d)
            n = SIZE_MAX;
        else
            n *= d;
    }
    return n;
}

int nn_shape_equal(const nn_shape *a, const nn_shape *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->dims[i] != b->dims[i])
            return 0;
    return 1;
}

char *nn_shape_str(const nn_shape *s, char *buf, size_t bufsize)
{
    size_t len = 0;
    if (bufsize == 0)
        return buf;
    buf[0] = '\0';
    len += (size_t)snprintf(buf + len, bufsize - len, "(");
    for (int i = 0; i < s->ndim && len < bufsize; i++)
        len += (size_t)snprintf(buf + len, bufsize - len, "%s%d",
                                i ? ", " : "", s->dims[i]);
    if (len < bufsize)
        len += (size_t)snprintf(buf + len, bufsize - len,
                                s->ndim == 1 ? ",)" : ")");
    return buf;
}

int nn_check_shape_consistency(const nn_shape *shapes, int n,
                               const char *const *labels, nn_shape *lead,
                               int *sizes, int *total, nn_error *err)
{
    char a[96], b[96];
    if (n <= 0)
        return nn_error_set(err, NN_ERR_SHAPE, "no inputs to check");
    for (int i = 0; i < n; i++) {
        if (shapes[i].ndim < 1)
            return nn_error_set(err, NN_ERR_SHAPE,
                                "input %d%s%s%s has no axis to concatenate on",
                                i, labels ? " ('" : "", labels ? labels[i] : "",
                                labels ? "')" : "");
    }
    for (int i = 1; i < n; i++) {
        int same = shapes[i].ndim == shapes[0].ndim;
        for (int d = 0; same && d < shapes[0].ndim - 1; d++)
            same = shapes[i].dims[d] == shapes[0].dims[d];
        if (!same) {
            if (labels)
                return nn_error_set(err, NN_ERR_SHAPE,
                    "inputs '%s' %s and '%s' %s differ on an axis other than "
                    "the last, so they cannot be concatenated",
                    labels[0], nn_shape_str(&shapes[0], a, sizeof a),
                    labels[i], nn_shape_str(&shapes[i], b, sizeof b));
            return nn_error_set(err, NN_ERR_SHAPE,
                "inputs 0 %s and %d %s differ on an axis other than the last, "
                "so they cannot be concatenated",
                nn_shape_str(&shapes[0], a, sizeof a), i,
                nn_shape_str(&shapes[i], b, sizeof b));
        }
    }
    int sum = 0;
    for (int i = 0; i < n; i++) {
        int last = shapes[i].dims[shapes[i].ndim - 1];
        if (sizes)
            sizes[i] = last;
        sum += last;
    }
    if (lead)
        *lead = nn_shape_make(shapes[0].ndim - 1, shapes[0].dims);
    if (total)
        *total = sum;
    return NN_OK;
}

/* --------------------------------------------------------------- tensors */

int nn_tensor_alloc(nn_tensor *t, const nn_shape *shape, nn_error *err)
{
    memset(t, 0, sizeof *t);
    t->shape = *shape;
    t->data = nn_calloc(nn_shape_numel(shape), sizeof(float));
    if (!t->data)
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory for a tensor of "
                            "%zu floats", nn_shape_numel(shape));
    t->owns_data = 1;
    return NN_OK;
}

nn_tensor *nn_tensor_new(const nn_shape *shape)
{
    nn_tensor *t = nn_malloc(sizeof *t);
    if (!t)
        return NULL;
    if (nn_tensor_alloc(t, shape, NULL) != NN_OK) {
        nn_free(t);
        return NULL;
    }
    return t;
}

void nn_tensor_release(nn_tensor *t)
{
    if (!t)
        return;
    if (t->owns_data)
        nn_free(t->data);
    memset(t, 0, sizeof *t);
}

void nn_tensor_free(nn_tensor *t)
{
    if (!t)
        return;
    nn_tensor_release(t);
    nn_free(t);
}

nn_tensor nn_tensor_view(float *data, const nn_shape *shape)
{
    nn_tensor t;
    memset(&t, 0, sizeof t);
    t.shape = *shape;
    t.data = data;
    return t;
}

size_t nn_tensor_numel(const nn_tensor *t)
{
    return nn_shape_numel(&t->shape);
}

void nn_tensor_zero(nn_tensor *t)
{
    if (t->data)
        memset(t->data, 0, nn_tensor_numel(t) * sizeof(float));
}

int nn_tensor_cols(const nn_tensor *t)
{
    return t->shape.ndim ? t->shape.dims[t->shape.ndim - 1] : 1;
}

size_t nn_tensor_rows(const nn_tensor *t)
{
    int cols = nn_tensor_cols(t);
    return cols > 0 ? nn_tensor_numel(t) / (size_t)cols : 0;
}

int nn_concat_last(const nn_tensor *in, int n, nn_tensor *dst, nn_error *err)
{
    size_t rows = nn_tensor_rows(dst);
    int dst_cols = nn_tensor_cols(dst), sum = 0;
    for (int i = 0; i < n; i++) {
        if (nn_tensor_rows(&in[i]) != rows)
            return nn_error_set(err, NN_ERR_SHAPE, "concatenation input %d has "
                                "%zu rows where %zu are expected", i,
                                nn_tensor_rows(&in[i]), rows);
        sum += nn_tensor_cols(&in[i]);
    }
    if (sum != dst_cols)
        return nn_error_set(err, NN_ERR_SHAPE, "concatenated inputs have %d "
                            "columns where the output has %d", sum, dst_cols);
    int offset = 0;
    for (int i = 0; i < n; i++) {
        int cols = nn_tensor_cols(&in[i]);
        for (size_t r = 0; r < rows; r++)
            memcpy(dst->data + r * (size_t)dst_cols + offset,
                   in[i].data + r * (size_t)cols, (size_t)cols * sizeof(float));
        offset += cols;
    }
    return NN_OK;
}
