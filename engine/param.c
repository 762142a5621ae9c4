/*
 * param.c — parameter values: parsed from text, checked against the type's
 * table. The table is the single source of validation and of the listing.
 */
#include "nn_internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STRING_PARAM_MAX 256

const char *nn_param_kind_str(nn_param_kind kind)
{
    switch (kind) {
    case NN_PARAM_INT: return "int";
    case NN_PARAM_FLOAT: return "float";
    case NN_PARAM_BOOL: return "bool";
    case NN_PARAM_ENUM: return "enum";
    case NN_PARAM_SHAPE: return "shape";
    case NN_PARAM_INIT: return "initializer";
    case NN_PARAM_STRING: return "string";
    case NN_PARAM_FLOATS: return "floats";
    }
    return "unknown";
}

int nn_param_index(const nn_node_type *type, const char *name)
{
    if (!type->params)
        return -1;
    for (int i = 0; type->params[i].name; i++)
        if (strcmp(type->params[i].name, name) == 0)
            return i;
    return -1;
}

void nn_param_val_clear(nn_param_val *v)
{
    nn_free(v->text);
    nn_free(v->vec);
    memset(v, 0, sizeof *v);
}

static char *dup_text(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = nn_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int bounded(const nn_param_def *def)
{
    return def->min != def->max;
}

static int choice_allowed(const char *choices, const char *value)
{
    size_t len = strlen(value);
    const char *p = choices;
    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, value, n) == 0)
            return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

/* Reads "3", "2,3", "[2, 3]" or "(2, 3)": one to NN_MAX_DIMS-1 sizes >= 1
 * (the batch axis takes the remaining one at run time). */
static int parse_shape(const char *text, nn_shape *out)
{
    const char *p = text;
    int dims[NN_MAX_DIMS], n = 0;
    while (isspace((unsigned char)*p))
        p++;
    char close = 0;
    if (*p == '[' || *p == '(') {
        close = *p == '[' ? ']' : ')';
        p++;
    }
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (close && *p == close && n > 0)
            break;
        if (!isdigit((unsigned char)*p))
            return -1;
        errno = 0;
        char *end;
        long v = strtol(p, &end, 10);
        if (errno || v < 1 || v > (1L << 30) || n == NN_MAX_DIMS - 1)
            return -1;
        dims[n++] = (int)v;
        p = end;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == ',') {
            p++;
            continue;
        }
        break;
    }
    if (close) {
        if (*p != close)
            return -1;
        p++;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p || n == 0)
        return -1;
    *out = nn_shape_make(n, dims);
    return 0;
}

/* Most values a FLOATS list holds: a per-unit list of the largest layer. */
#define FLOATS_MAX (1 << 20)

/* Reads a FLOATS value: an initialiser (starts with a letter), or one
 * number, or a list "[a, b]" / "a, b" of finite numbers within the bounds.
 * Fills v (vec, n_vec, f, init) and its canonical text into *canonical
 * (allocated). Returns 0, or -1 when the text is not such a value. */
static int parse_floats(const nn_param_def *def, const char *text,
                        nn_param_val *v, char **canonical, nn_error *err)
{
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    if (isalpha((unsigned char)*p)) {
        if (nn_init_parse(text, &v->init, err) != NN_OK)
            return -2;
        char buf[160];
        nn_init_str(&v->init, buf, sizeof buf);
        *canonical = dup_text(buf);
        return *canonical ? 0 : -3;
    }
    int bracket = *p == '[';
    if (bracket)
        p++;
    size_t cap = 8, n = 0;
    double *vec = nn_malloc(cap * sizeof *vec);
    if (!vec)
        return -3;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (end == p || !isfinite(x) || errno == ERANGE || n == FLOATS_MAX ||
            (bounded(def) && (x < def->min || x > def->max)))
            goto bad;
        if (n == cap) {
            double *more = nn_realloc(vec, 2 * cap * sizeof *vec);
            if (!more) {
                nn_free(vec);
                return -3;
            }
            vec = more;
            cap *= 2;
        }
        vec[n++] = x;
        p = end;
        while (isspace((unsigned char)*p))
            p++;
        if (*p != ',')
            break;
        p++;
    }
    if (bracket && *p++ != ']')
        goto bad;
    while (isspace((unsigned char)*p))
        p++;
    if (*p)
        goto bad;
    /* Canonical: "%.17g" alone, or "[a, b, ...]". */
    size_t size = n * 26 + 4, len = 0;
    char *out = nn_malloc(size);
    if (!out) {
        nn_free(vec);
        return -3;
    }
    if (n == 1 && !bracket)
        snprintf(out, size, "%.17g", vec[0]);
    else {
        len += (size_t)snprintf(out, size, "[");
        for (size_t i = 0; i < n; i++)
            len += (size_t)snprintf(out + len, size - len, "%s%.17g",
                                    i ? ", " : "", vec[i]);
        snprintf(out + len, size - len, "]");
    }
    v->vec = vec;
    v->n_vec = (int)n;
    v->f = vec[0];
    *canonical = out;
    return 0;
bad:
    nn_free(vec);
    return -1;
}

static void describe_expected(const nn_param_def *def, char *buf, size_t size)
{
    switch (def->kind) {
    case NN_PARAM_INT:
        if (bounded(def))
            snprintf(buf, size, "an integer from %.17g to %.17g", def->min,
                     def->max);
        else
            snprintf(buf, size, "an integer");
        break;
    case NN_PARAM_FLOAT:
        if (bounded(def))
            snprintf(buf, size, "a finite number from %.17g to %.17g",
                     def->min, def->max);
        else
            snprintf(buf, size, "a finite number");
        break;
    case NN_PARAM_BOOL: snprintf(buf, size, "true or false"); break;
    case NN_PARAM_ENUM: snprintf(buf, size, "one of %s", def->choices); break;
    case NN_PARAM_SHAPE:
        snprintf(buf, size, "a shape of 1 to %d sizes >= 1, such as 3 or [2, 3]",
                 NN_MAX_DIMS - 1);
        break;
    case NN_PARAM_INIT: snprintf(buf, size, "an initializer such as "
                                 "\"Normal(0, 0.1)\""); break;
    case NN_PARAM_STRING:
        snprintf(buf, size, "a string of at most %d bytes", STRING_PARAM_MAX);
        break;
    case NN_PARAM_FLOATS:
        if (bounded(def))
            snprintf(buf, size, "a number or a list of numbers from %.17g to "
                     "%.17g, or an initializer such as \"Uniform(0.1, 0.5)\"",
                     def->min, def->max);
        else
            snprintf(buf, size, "a number, a list of numbers, or an "
                     "initializer");
        break;
    }
}

int nn_param_parse(const nn_param_def *def, const char *node, const char *text,
                   nn_param_val *out, nn_error *err)
{
    nn_param_val v;
    memset(&v, 0, sizeof v);
    char *end = NULL;
    int ok = 1;
    char canon[STRING_PARAM_MAX + 64];
    const char *canonical = text;

    switch (def->kind) {
    case NN_PARAM_INT: {
        errno = 0;
        long long x = strtoll(text, &end, 10);
        ok = *text && !isspace((unsigned char)*text) && *end == '\0' && !errno;
        if (ok && bounded(def))
            ok = (double)x >= def->min && (double)x <= def->max;
        v.i = (long)x;
        v.f = (double)x;
        snprintf(canon, sizeof canon, "%lld", x);
        canonical = canon;
        break;
    }
    case NN_PARAM_FLOAT: {
        errno = 0;
        double x = strtod(text, &end);
        ok = *text && !isspace((unsigned char)*text) && *end == '\0' &&
             isfinite(x) && errno != ERANGE;
        if (ok && bounded(def))
            ok = x >= def->min && x <= def->max;
        v.f = x;
        snprintf(canon, sizeof canon, "%.17g", x);
        canonical = canon;
        break;
    }
    case NN_PARAM_BOOL:
        if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0)
            v.b = 1, canonical = "true";
        else if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0)
            v.b = 0, canonical = "false";
        else
            ok = 0;
        break;
    case NN_PARAM_ENUM:
        ok = def->choices && choice_allowed(def->choices, text);
        break;
    case NN_PARAM_SHAPE:
        ok = parse_shape(text, &v.shape) == 0;
        if (ok) {
            size_t len = 0;
            for (int i = 0; i < v.shape.ndim; i++)
                len += (size_t)snprintf(canon + len, sizeof canon - len,
                                        "%s%d", i ? "," : "", v.shape.dims[i]);
            canonical = canon;
        }
        break;
    case NN_PARAM_INIT: {
        nn_error init_err;
        if (nn_init_parse(text, &v.init, &init_err) != NN_OK)
            return nn_error_set(err, NN_ERR_INVALID,
                                "node '%s': parameter '%s': %s", node,
                                def->name, init_err.msg);
        nn_init_str(&v.init, canon, sizeof canon);
        canonical = canon;
        break;
    }
    case NN_PARAM_STRING:
        ok = strlen(text) <= STRING_PARAM_MAX;
        break;
    case NN_PARAM_FLOATS: {
        nn_error init_err;
        char *floats_text = NULL;
        int frc = parse_floats(def, text, &v, &floats_text, &init_err);
        if (frc == -2)
            return nn_error_set(err, NN_ERR_INVALID,
                                "node '%s': parameter '%s': %s", node,
                                def->name, init_err.msg);
        if (frc == -3)
            return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
        if (frc == 0) {
            nn_param_val_clear(out);
            v.text = floats_text;
            *out = v;
            return NN_OK;
        }
        ok = 0;
        break;
    }
    }
    if (!ok) {
        char expected[160];
        describe_expected(def, expected, sizeof expected);
        return nn_error_set(err, NN_ERR_INVALID,
                            "node '%s': parameter '%s' must be %s, got '%.80s'",
                            node, def->name, expected, text);
    }
    v.text = dup_text(canonical);
    if (!v.text)
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    nn_param_val_clear(out);
    *out = v;
    return NN_OK;
}

int nn_param_table_check(const nn_node_type *type, nn_error *err)
{
    if (!type->params)
        return NN_OK;
    for (int i = 0; type->params[i].name; i++) {
        const nn_param_def *def = &type->params[i];
        if (!def->name[0] || strlen(def->name) >= NN_NAME_MAX ||
            strcmp(def->name, "trainable") == 0 ||
            strcmp(def->name, "name") == 0 || strcmp(def->name, "type") == 0)
            return nn_error_set(err, NN_ERR_INVALID, "type '%s': parameter "
                                "name '%s' is empty, too long or reserved",
                                type->name, def->name);
        if ((int)def->kind < NN_PARAM_INT || def->kind > NN_PARAM_FLOATS)
            return nn_error_set(err, NN_ERR_INVALID, "type '%s': parameter "
                                "'%s' has an unknown kind", type->name,
                                def->name);
        if (def->kind == NN_PARAM_ENUM && (!def->choices || !def->choices[0]))
            return nn_error_set(err, NN_ERR_INVALID, "type '%s': enum "
                                "parameter '%s' lists no choices", type->name,
                                def->name);
        if (nn_param_index(type, def->name) != i)
            return nn_error_set(err, NN_ERR_INVALID, "type '%s': parameter "
                                "'%s' is declared twice", type->name,
                                def->name);
        if (def->def) {
            nn_param_val v;
            memset(&v, 0, sizeof v);
            nn_error perr;
            if (nn_param_parse(def, "(default)", def->def, &v, &perr) != NN_OK)
                return nn_error_set(err, NN_ERR_INVALID, "type '%s': default "
                                    "of parameter '%s' is invalid: %s",
                                    type->name, def->name, perr.msg);
            nn_param_val_clear(&v);
        }
    }
    return NN_OK;
}
