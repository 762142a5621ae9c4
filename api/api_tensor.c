/*
 * api_tensor.c — tensors in JSON: nested arrays or {"shape", "data"}, read
 * strictly (no ragged arrays, no non-finite values, bounded size) and
 * written with the fewest digits that read back as the same float32.
 */
#include "api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Walks nested arrays once to find the shape; checks raggedness after. */
static int nested_shape(const cJSON *j, const char *where, nn_shape *shape,
                        api_error *err)
{
    shape->ndim = 0;
    const cJSON *cur = j;
    while (cJSON_IsArray(cur)) {
        if (shape->ndim == NN_MAX_DIMS)
            return api_fail(err, 400, "bad_tensor", "%s: more than %d axes",
                            where, NN_MAX_DIMS);
        int n = cJSON_GetArraySize(cur);
        if (n == 0)
            return api_fail(err, 400, "bad_tensor", "%s: an empty array has "
                            "no shape", where);
        shape->dims[shape->ndim++] = n;
        cur = cur->child;
    }
    if (shape->ndim == 0)
        return api_fail(err, 400, "bad_tensor", "%s: expected an array of "
                        "numbers or {\"shape\", \"data\"}", where);
    return 0;
}

static int read_number(const cJSON *v, const char *where, size_t index,
                       float *out, api_error *err)
{
    double d;
    char *end = NULL;
    if (cJSON_IsNumber(v))
        d = v->valuedouble;
    else if (cJSON_IsRaw(v) && v->valuestring &&
             (d = strtod(v->valuestring, &end), end != v->valuestring &&
                                                    *end == '\0'))
        ; /* our own output, still in memory: numbers kept as text */
    else
        return api_fail(err, 400, "bad_tensor", "%s: element %zu is not a "
                        "number", where, index);
    float f = (float)d;
    if (!isfinite(d) || !isfinite(f))
        return api_fail(err, 400, "bad_tensor", "%s: element %zu is not a "
                        "finite float32", where, index);
    *out = f;
    return 0;
}

/* Copies nested arrays of the given shape into data, depth-first. */
static int fill_nested(const cJSON *j, const nn_shape *shape, int axis,
                       const char *where, float *data, size_t *pos,
                       api_error *err)
{
    if (axis == shape->ndim) {
        size_t at = (*pos)++;
        return read_number(j, where, at, &data[at], err);
    }
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != shape->dims[axis])
        return api_fail(err, 400, "bad_tensor", "%s: ragged array: every "
                        "array on axis %d must have %d elements", where, axis,
                        shape->dims[axis]);
    for (const cJSON *c = j->child; c; c = c->next)
        if (fill_nested(c, shape, axis + 1, where, data, pos, err))
            return -1;
    return 0;
}

static int check_size(const nn_shape *shape, const char *where,
                      const api_limits *lim, api_error *err)
{
    size_t n = 1;
    for (int d = 0; d < shape->ndim; d++) {
        if (shape->dims[d] < 1)
            return api_fail(err, 400, "bad_tensor", "%s: axis %d has size %d",
                            where, d, shape->dims[d]);
        n *= (size_t)shape->dims[d];
        if (n > lim->max_tensor_elems)
            return api_fail(err, 413, "too_large", "%s: more than %zu "
                            "elements", where, lim->max_tensor_elems);
    }
    return 0;
}

static int from_object(const cJSON *j, const char *where,
                       const api_limits *lim, nn_tensor **out, api_error *err)
{
    const cJSON *shape_j = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *data_j = cJSON_GetObjectItemCaseSensitive(j, "data");
    for (const cJSON *c = j->child; c; c = c->next) {
        if (strcmp(c->string, "shape") && strcmp(c->string, "data"))
            return api_fail(err, 400, "bad_tensor", "%s: unknown member '%s' "
                            "(a tensor object has \"shape\" and \"data\")",
                            where, c->string);
        /* As the text reader: a member given twice is read by neither. */
        if (c != (c->string[0] == 's' ? shape_j : data_j))
            return api_fail(err, 400, "bad_tensor", "%s: \"%s\" is given "
                            "twice", where, c->string);
    }
    if (!cJSON_IsArray(shape_j) || !cJSON_IsArray(data_j))
        return api_fail(err, 400, "bad_tensor", "%s: \"shape\" and \"data\" "
                        "must both be arrays", where);
    nn_shape shape;
    memset(&shape, 0, sizeof shape);
    int nd = cJSON_GetArraySize(shape_j);
    if (nd < 1 || nd > NN_MAX_DIMS)
        return api_fail(err, 400, "bad_tensor", "%s: \"shape\" must have 1 to "
                        "%d sizes", where, NN_MAX_DIMS);
    for (const cJSON *c = shape_j->child; c; c = c->next) {
        if (!cJSON_IsNumber(c) || c->valuedouble != floor(c->valuedouble) ||
            c->valuedouble < 1 || c->valuedouble > 1e9)
            return api_fail(err, 400, "bad_tensor", "%s: \"shape\" sizes must "
                            "be positive integers", where);
        shape.dims[shape.ndim++] = (int)c->valuedouble;
    }
    if (check_size(&shape, where, lim, err))
        return -1;
    size_t n = nn_shape_numel(&shape);
    if ((size_t)cJSON_GetArraySize(data_j) != n)
        return api_fail(err, 400, "bad_tensor", "%s: \"data\" has %d numbers "
                        "where the shape needs %zu", where,
                        cJSON_GetArraySize(data_j), n);
    nn_tensor *t = nn_tensor_new(&shape);
    if (!t)
        return api_fail(err, 503, "out_of_memory", "%s: out of memory", where);
    size_t i = 0;
    for (const cJSON *c = data_j->child; c; c = c->next, i++)
        if (read_number(c, where, i, &t->data[i], err)) {
            nn_tensor_free(t);
            return -1;
        }
    *out = t;
    return 0;
}

int api_tensor_from_json(const cJSON *j, const char *where,
                         const api_limits *lim, nn_tensor **out,
                         api_error *err)
{
    *out = NULL;
    if (cJSON_IsObject(j))
        return from_object(j, where, lim, out, err);
    nn_shape shape;
    memset(&shape, 0, sizeof shape);
    if (nested_shape(j, where, &shape, err) || check_size(&shape, where, lim,
                                                          err))
        return -1;
    nn_tensor *t = nn_tensor_new(&shape);
    if (!t)
        return api_fail(err, 503, "out_of_memory", "%s: out of memory", where);
    size_t pos = 0;
    if (fill_nested(j, &shape, 0, where, t->data, &pos, err)) {
        nn_tensor_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

static cJSON *nested(const float *data, const nn_shape *shape, int axis,
                     size_t *pos)
{
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return NULL;
    for (int i = 0; i < shape->dims[axis]; i++) {
        cJSON *item;
        if (axis + 1 == shape->ndim) {
            char buf[32];
            api_format_float(data[(*pos)++], buf, sizeof buf);
            item = cJSON_CreateRaw(buf);
        } else {
            item = nested(data, shape, axis + 1, pos);
        }
        if (!item) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, item);
    }
    return arr;
}

cJSON *api_tensor_to_json(const nn_tensor *t)
{
    size_t pos = 0;
    if (t->shape.ndim == 0) {
        char buf[32];
        api_format_float(t->data[0], buf, sizeof buf);
        return cJSON_CreateRaw(buf);
    }
    return nested(t->data, &t->shape, 0, &pos);
}
