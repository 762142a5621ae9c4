/*
 * api_graph.c — graph definitions in, graph descriptions and node-type
 * listings out. Parameter values are checked against the type's table here
 * for their JSON type, then handed to the engine as text, which checks
 * bounds and choices: one table, one place for each rule.
 */
#include "api.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------- definitions */

int api_is_network_id(const char *key)
{
    size_t n = strlen(key);
    return key[0] == 'n' && n > 1 && strspn(key + 1, "0123456789") == n - 1;
}

int api_is_path_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n >= max || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
            return 0;
    return 1;
}

int api_graph_def_name(const cJSON *def, const char **name, api_error *err)
{
    *name = NULL;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(def, "name");
    if (!n || cJSON_IsNull(n))
        return 0;
    if (!cJSON_IsString(n) || !n->valuestring[0] ||
        strlen(n->valuestring) >= NN_NAME_MAX)
        return api_fail(err, 400, "bad_request", "\"name\" must be a non-empty "
                        "string of at most %d bytes", NN_NAME_MAX - 1);
    if (!api_is_path_name(n->valuestring, NN_NAME_MAX))
        return api_fail(err, 400, "bad_request", "\"name\" may hold "
                        "letters, digits, '_', '-' and '.' only, and may not "
                        "be \".\" or \"..\" (a URL cannot name those)");
    if (api_is_network_id(n->valuestring))
        return api_fail(err, 400, "bad_request", "\"name\" may not be \"n\" "
                        "and digits (the server's own network ids): '%s' "
                        "would shadow network %s", n->valuestring,
                        n->valuestring);
    *name = n->valuestring;
    return 0;
}

/* A JSON integer within [lo, hi]. */
static int json_integer(const cJSON *v, double lo, double hi, long long *out)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
        v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return 0;
    *out = (long long)v->valuedouble;
    return 1;
}

/* An initializer object {"type": "Normal", "scale": 0.1} as text. */
static int init_object_text(const cJSON *v, const char *where, char *buf,
                            size_t size, api_error *err)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(v, "type");
    if (!cJSON_IsString(type))
        return api_fail(err, 400, "bad_parameter", "%s: an initializer object "
                        "needs a \"type\" string", where);
    size_t len = (size_t)snprintf(buf, size, "%s(", type->valuestring);
    int first = 1;
    for (const cJSON *c = v->child; c && len < size; c = c->next) {
        if (strcmp(c->string, "type") == 0)
            continue;
        if (!cJSON_IsNumber(c))
            return api_fail(err, 400, "bad_parameter", "%s.%s must be a "
                            "number", where, c->string);
        len += (size_t)snprintf(buf + len, size - len, "%s%s=%.17g",
                                first ? "" : ", ", c->string, c->valuedouble);
        first = 0;
    }
    if (len + 2 >= size)
        return api_fail(err, 400, "bad_parameter", "%s: initializer too long",
                        where);
    snprintf(buf + len, size - len, ")");
    return 0;
}

/* Turns a JSON parameter value into the engine's text, refusing JSON types
 * that do not fit the parameter's kind. */
static int param_text(const nn_param_def *def, const cJSON *v,
                      const char *where, char *buf, size_t size,
                      api_error *err)
{
    long long i;
    switch (def->kind) {
    case NN_PARAM_INT:
        if (!json_integer(v, -9.2e18, 9.2e18, &i))
            return api_fail(err, 400, "bad_parameter", "%s must be an integer",
                            where);
        snprintf(buf, size, "%lld", i);
        return 0;
    case NN_PARAM_FLOAT:
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return api_fail(err, 400, "bad_parameter", "%s must be a finite "
                            "number", where);
        snprintf(buf, size, "%.17g", v->valuedouble);
        return 0;
    case NN_PARAM_BOOL:
        if (!cJSON_IsBool(v))
            return api_fail(err, 400, "bad_parameter", "%s must be true or "
                            "false", where);
        snprintf(buf, size, "%s", cJSON_IsTrue(v) ? "true" : "false");
        return 0;
    case NN_PARAM_ENUM:
        /* A choice that reads as a bool ("auto|true|false") may be written
         * as one; the engine checks it against the choices like any text. */
        if (cJSON_IsBool(v)) {
            snprintf(buf, size, "%s", cJSON_IsTrue(v) ? "true" : "false");
            return 0;
        }
        if (!cJSON_IsString(v))
            return api_fail(err, 400, "bad_parameter", "%s must be a string",
                            where);
        snprintf(buf, size, "%s", v->valuestring);
        return 0;
    case NN_PARAM_STRING:
        if (cJSON_IsString(v)) {
            snprintf(buf, size, "%s", v->valuestring);
            return 0;
        }
        /* Types parse their own strings, and some hold integers ("index":
         * 2, "shape": [2, -1]): JSON's own form is accepted as their text. */
        if (json_integer(v, -9.2e18, 9.2e18, &i)) {
            snprintf(buf, size, "%lld", i);
            return 0;
        }
        if (cJSON_IsArray(v) && cJSON_GetArraySize(v) >= 1) {
            size_t len = (size_t)snprintf(buf, size, "[");
            const cJSON *c = v->child;
            for (; c && json_integer(c, -9.2e18, 9.2e18, &i) && len < size;
                 c = c->next)
                len += (size_t)snprintf(buf + len, size - len, "%s%lld",
                                        c == v->child ? "" : ", ", i);
            if (!c && len < size)
                len += (size_t)snprintf(buf + len, size - len, "]");
            if (len >= size)
                return api_fail(err, 400, "bad_parameter", "%s: too many "
                                "values", where);
            if (!c)
                return 0;
        }
        return api_fail(err, 400, "bad_parameter", "%s must be a string, an "
                        "integer or an array of integers", where);
    case NN_PARAM_SHAPE: {
        if (json_integer(v, 1, 1 << 30, &i)) {
            snprintf(buf, size, "%lld", i);
            return 0;
        }
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1)
            return api_fail(err, 400, "bad_parameter", "%s must be a positive "
                            "integer or an array of them", where);
        size_t len = 0;
        buf[0] = '\0';
        for (const cJSON *c = v->child; c; c = c->next) {
            if (!json_integer(c, 1, 1 << 30, &i))
                return api_fail(err, 400, "bad_parameter", "%s must hold "
                                "positive integers", where);
            if (len < size)
                len += (size_t)snprintf(buf + len, size - len, "%s%lld",
                                        len ? "," : "", i);
        }
        return 0;
    }
    case NN_PARAM_FLOATS:
        /* A number or an initializer (string or object); add_nodes writes
         * an array itself (floats_text), as it may be long. */
        if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
            snprintf(buf, size, "%.17g", v->valuedouble);
            return 0;
        }
        /* An initializer, read as INIT reads it. */
        /* fall through */
    case NN_PARAM_INIT:
        if (cJSON_IsString(v)) {
            snprintf(buf, size, "%s", v->valuestring);
            return 0;
        }
        if (cJSON_IsObject(v))
            return init_object_text(v, where, buf, size, err);
        if (def->kind == NN_PARAM_FLOATS)
            return api_fail(err, 400, "bad_parameter", "%s must be a number, "
                            "an array of numbers or an initializer such as "
                            "\"Uniform(0.1, 0.5)\"", where);
        return api_fail(err, 400, "bad_parameter", "%s must be an initializer "
                        "such as \"Normal(0, 0.1)\" or {\"type\": \"Normal\", "
                        "\"scale\": 0.1}", where);
    }
    return api_fail(err, 400, "bad_parameter", "%s: unknown kind", where);
}

/* A FLOATS array as the engine's text "[a, b, ...]", allocated (the
 * caller frees it): a per-unit list may be far longer than other values. */
static char *floats_text(const cJSON *v, const char *where, api_error *err)
{
    int n = cJSON_GetArraySize(v);
    if (n < 1) {
        api_fail(err, 400, "bad_parameter", "%s must be a number, an array "
                 "of numbers or an initializer such as \"Uniform(0.1, "
                 "0.5)\"", where);
        return NULL;
    }
    size_t size = (size_t)n * 26 + 4, len = 0;
    char *buf = malloc(size);
    if (!buf) {
        api_fail(err, 503, "out_of_memory", "%s: out of memory", where);
        return NULL;
    }
    len += (size_t)snprintf(buf, size, "[");
    for (const cJSON *c = v->child; c; c = c->next) {
        if (!cJSON_IsNumber(c) || !isfinite(c->valuedouble)) {
            free(buf);
            api_fail(err, 400, "bad_parameter", "%s must hold finite "
                     "numbers", where);
            return NULL;
        }
        len += (size_t)snprintf(buf + len, size - len, "%s%.17g",
                                c == v->child ? "" : ", ", c->valuedouble);
    }
    snprintf(buf + len, size - len, "]");
    return buf;
}

static void known_params(const nn_node_type *type, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; type->params && type->params[i].name && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s, ",
                                type->params[i].name);
    if (len < size)
        snprintf(buf + len, size - len, "trainable");
}

static void known_types(const nn_registry *reg, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < nn_registry_count(reg) && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "",
                                nn_registry_at(reg, i)->name);
}

static int add_nodes(nn_graph *g, const cJSON *nodes, const nn_registry *reg,
                     api_error *err)
{
    int index = 0;
    char where[160], text[1024], list[600];
    for (const cJSON *n = nodes->child; n; n = n->next, index++) {
        if (!cJSON_IsObject(n))
            return api_fail(err, 400, "bad_request", "nodes[%d] must be an "
                            "object", index);
        const cJSON *type_j = cJSON_GetObjectItemCaseSensitive(n, "type");
        const cJSON *name_j = cJSON_GetObjectItemCaseSensitive(n, "name");
        if (!cJSON_IsString(type_j))
            return api_fail(err, 400, "bad_request", "nodes[%d].type must be a "
                            "string naming a node type", index);
        if (name_j && !cJSON_IsNull(name_j) && !cJSON_IsString(name_j))
            return api_fail(err, 400, "bad_request", "nodes[%d].name must be a "
                            "string", index);
        const nn_node_type *type = nn_registry_find(reg, type_j->valuestring);
        if (!type) {
            known_types(reg, list, sizeof list);
            return api_fail(err, 400, "unknown_node_type", "nodes[%d]: unknown "
                            "node type '%.64s' (known: %s)", index,
                            type_j->valuestring, list);
        }
        nn_error e;
        nn_node *node = nn_graph_add_node(
            g, type->name, cJSON_IsString(name_j) ? name_j->valuestring : NULL,
            &e);
        if (!node) {
            if (e.code == NN_ERR_EXISTS)
                return api_fail(err, 422, "graph_invalid", "nodes[%d]: %s",
                                index, e.msg);
            return api_fail(err, e.code == NN_ERR_NOMEM ? 503 : 400,
                            e.code == NN_ERR_NOMEM ? "out_of_memory"
                                                   : "bad_request",
                            "nodes[%d]: %s", index, e.msg);
        }
        for (const cJSON *p = n->child; p; p = p->next) {
            if (strcmp(p->string, "type") == 0 || strcmp(p->string, "name") == 0)
                continue;
            snprintf(where, sizeof where, "nodes[%d] ('%s').%.64s", index,
                     nn_node_name(node), p->string);
            static const nn_param_def trainable = {
                "trainable", NN_PARAM_BOOL, NULL, 0, 0, NULL, NULL};
            const nn_param_def *def = &trainable;
            if (strcmp(p->string, "trainable") != 0) {
                def = NULL;
                for (int k = 0; type->params && type->params[k].name; k++)
                    if (strcmp(type->params[k].name, p->string) == 0)
                        def = &type->params[k];
            }
            if (!def) {
                known_params(type, list, sizeof list);
                return api_fail(err, 400, "unknown_parameter", "%s: type '%s' "
                                "has no parameter '%.64s' (it has: %s)", where,
                                type->name, p->string, list);
            }
            char *list = NULL;
            if (def->kind == NN_PARAM_FLOATS && cJSON_IsArray(p)) {
                if (!(list = floats_text(p, where, err)))
                    return -1;
            } else if (param_text(def, p, where, text, sizeof text, err)) {
                return -1;
            }
            int rc = nn_node_set_param(node, p->string, list ? list : text,
                                       &e);
            free(list);
            if (rc != NN_OK)
                return api_fail(err, e.code == NN_ERR_NOMEM ? 503 : 400,
                                e.code == NN_ERR_NOMEM ? "out_of_memory"
                                                       : "bad_parameter",
                                "nodes[%d]: %s", index, e.msg);
        }
    }
    return 0;
}

static int add_pairs(nn_graph *g, const cJSON *pairs, const char *key,
                     api_error *err)
{
    int index = 0;
    for (const cJSON *p = pairs->child; p; p = p->next, index++) {
        if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) != 2 ||
            !cJSON_IsString(p->child) || !cJSON_IsString(p->child->next))
            return api_fail(err, 400, "bad_request", "%s[%d] must be a pair of "
                            "node names", key, index);
        const char *a = p->child->valuestring, *b = p->child->next->valuestring;
        nn_error e;
        int rc = strcmp(key, "ff") == 0 ? nn_graph_ff(g, a, b, &e)
                                        : nn_graph_fb(g, a, b, &e);
        if (rc != NN_OK)
            return api_fail(err, 422, "graph_invalid", "%s[%d]: %s", key, index,
                            e.msg);
    }
    return 0;
}

/* {"from": "a", "to": "b", "delay": n}: a >> b, n steps late (a Delay
 * node between them) when n >= 1; without delay (or 0) a plain edge. */
static int add_edge_object(nn_graph *g, const cJSON *e, int index,
                           api_error *err)
{
    for (const cJSON *c = e->child; c; c = c->next)
        if (strcmp(c->string, "from") && strcmp(c->string, "to") &&
            strcmp(c->string, "delay"))
            return api_fail(err, 400, "bad_edge", "edges[%d]: \"%s\" is not "
                            "a member of an edge object (from, to, delay)",
                            index, c->string);
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(e, "from");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(e, "to");
    const cJSON *delay = cJSON_GetObjectItemCaseSensitive(e, "delay");
    if (!cJSON_IsString(from) || !cJSON_IsString(to))
        return api_fail(err, 400, "bad_edge", "edges[%d]: an edge object "
                        "needs \"from\" and \"to\", node names", index);
    double steps = 0;
    if (delay) {
        steps = cJSON_IsNumber(delay) ? delay->valuedouble : -1;
        if (!(steps >= 0 && steps <= (1 << 20)) || steps != floor(steps))
            return api_fail(err, 400, "bad_edge", "edges[%d]: \"delay\" must "
                            "be an integer from 0 to %d (steps)", index,
                            1 << 20);
    }
    nn_error ne;
    int rc = steps >= 1 ? nn_graph_ff_delayed(g, from->valuestring,
                                              to->valuestring, (int)steps,
                                              NULL, &ne)
                        : nn_graph_ff(g, from->valuestring, to->valuestring,
                                      &ne);
    if (rc != NN_OK)
        return api_fail(err, 422, "graph_invalid", "edges[%d]: %s", index,
                        ne.msg);
    return 0;
}

static int add_edges(nn_graph *g, const cJSON *def, api_error *err)
{
    const char *keys[] = {"ff", "fb", "edges"};
    for (int k = 0; k < 3; k++) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(def, keys[k]);
        if (!list || cJSON_IsNull(list))
            continue;
        if (!cJSON_IsArray(list))
            return api_fail(err, 400, "bad_request", "\"%s\" must be an array",
                            keys[k]);
        if (k < 2) {
            if (add_pairs(g, list, keys[k], err))
                return -1;
            continue;
        }
        int index = 0;
        for (const cJSON *e = list->child; e; e = e->next, index++) {
            nn_error ne;
            if (cJSON_IsObject(e)) {
                if (add_edge_object(g, e, index, err))
                    return -1;
                continue;
            }
            if (!cJSON_IsString(e))
                return api_fail(err, 400, "bad_request", "edges[%d] must be a "
                                "string such as \"{a, b} >> c\" or an object "
                                "{\"from\": \"a\", \"to\": \"b\", "
                                "\"delay\": 3}", index);
            int rc = nn_graph_link(g, e->valuestring, &ne);
            if (rc == NN_ERR_INVALID)
                return api_fail(err, 400, "bad_edge", "edges[%d]: %s", index,
                                ne.msg);
            if (rc != NN_OK)
                return api_fail(err, 422, "graph_invalid", "edges[%d]: %s",
                                index, ne.msg);
        }
    }
    return 0;
}

nn_graph *api_graph_from_json(const cJSON *def, const nn_registry *reg,
                              const api_limits *lim, api_error *err)
{
    static const char *const members[] = {"name", "seed", "nodes", "ff", "fb",
                                          "edges", NULL};
    if (!cJSON_IsObject(def)) {
        api_fail(err, 400, "bad_request", "a graph definition must be a JSON "
                 "object");
        return NULL;
    }
    for (const cJSON *c = def->child; c; c = c->next) {
        int known = 0;
        for (int k = 0; members[k]; k++)
            known |= strcmp(c->string, members[k]) == 0;
        if (!known) {
            api_fail(err, 400, "bad_request", "unknown member '%.64s' in the "
                     "graph definition (expected name, seed, nodes, ff, fb, "
                     "edges)", c->string);
            return NULL;
        }
    }
    const char *name;
    if (api_graph_def_name(def, &name, err))
        return NULL;
    long long seed = 0;
    const cJSON *seed_j = cJSON_GetObjectItemCaseSensitive(def, "seed");
    if (seed_j && !json_integer(seed_j, 0, 9007199254740991.0, &seed)) {
        api_fail(err, 400, "bad_request", "\"seed\" must be a non-negative "
                 "integer below 2^53");
        return NULL;
    }
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(def, "nodes");
    if (!cJSON_IsArray(nodes) || cJSON_GetArraySize(nodes) == 0) {
        api_fail(err, 400, "bad_request", "\"nodes\" must be a non-empty array "
                 "of {\"name\", \"type\", ...parameters}");
        return NULL;
    }
    /* 422: the document is well formed, the graph is too big to accept. */
    if (cJSON_GetArraySize(nodes) > lim->max_nodes) {
        api_fail(err, 422, "too_many_nodes", "the graph has %d nodes; the "
                 "limit is %d", cJSON_GetArraySize(nodes), lim->max_nodes);
        return NULL;
    }
    nn_graph *g = nn_graph_new(reg, (uint64_t)seed);
    if (!g) {
        api_fail(err, 503, "out_of_memory", "out of memory");
        return NULL;
    }
    nn_error e;
    if (nn_graph_set_limits(g, lim->max_params, lim->max_session_floats,
                            &e) != NN_OK) {
        api_fail_from_nn(err, &e, 1);
        goto fail;
    }
    if (add_nodes(g, nodes, reg, err) || add_edges(g, def, err))
        goto fail;
    if (nn_graph_build(g, &e) != NN_OK) {
        api_fail_from_nn(err, &e, 1);
        goto fail;
    }
    return g;
fail:
    nn_graph_free(g);
    return NULL;
}

/* ------------------------------------------------------------- describing */

/* A per-sample shape with the batch axis first as null. */
static cJSON *batch_shape_json(const nn_shape *s)
{
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return NULL;
    cJSON_AddItemToArray(arr, cJSON_CreateNull());
    for (int d = 0; d < s->ndim; d++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(s->dims[d]));
    return arr;
}

static cJSON *shape_json(const nn_shape *s)
{
    cJSON *arr = cJSON_CreateArray();
    for (int d = 0; arr && d < s->ndim; d++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(s->dims[d]));
    return arr;
}

/* "feature_names": what each output feature is, for types that say so
 * (NVAR's "x0(t)*x1(t-2)"); left out if the type reports an error. */
static void add_feature_names(cJSON *o, const nn_node *node, int count)
{
    const nn_node_type *type = nn_node_type_of(node);
    cJSON *names = cJSON_CreateArray();
    for (int i = 0; names && i < count; i++) {
        char buf[256];
        nn_error err;
        if (type->feature_name(node, i, buf, sizeof buf, &err) != NN_OK) {
            cJSON_Delete(names);
            return;
        }
        cJSON_AddItemToArray(names, cJSON_CreateString(buf));
    }
    if (names)
        cJSON_AddItemToObject(o, "feature_names", names);
}

static cJSON *node_json(nn_node *node)
{
    const nn_node_type *type = nn_node_type_of(node);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", nn_node_name(node));
    cJSON_AddStringToObject(o, "type", type->name);
    cJSON *params = cJSON_AddObjectToObject(o, "params");
    for (int i = 0; type->params && type->params[i].name; i++) {
        const nn_param_def *def = &type->params[i];
        const char *text = nn_node_param_text(node, def->name);
        if (!text)
            continue;
        if (def->kind == NN_PARAM_INT || def->kind == NN_PARAM_FLOAT)
            cJSON_AddNumberToObject(params, def->name, strtod(text, NULL));
        else if (def->kind == NN_PARAM_BOOL)
            cJSON_AddBoolToObject(params, def->name, strcmp(text, "true") == 0);
        else if (def->kind == NN_PARAM_SHAPE) {
            nn_shape s = nn_node_param_shape(node, def->name);
            cJSON_AddItemToObject(params, def->name, shape_json(&s));
        } else if (def->kind == NN_PARAM_FLOATS &&
                   (text[0] == '[' || !isalpha((unsigned char)text[0]))) {
            /* As written: one number, or a list. */
            const double *vals;
            int n = nn_node_param_floats(node, def->name, &vals);
            if (text[0] != '[')
                cJSON_AddNumberToObject(params, def->name, vals[0]);
            else
                cJSON_AddItemToObject(params, def->name,
                                      cJSON_CreateDoubleArray(vals, n));
        } else
            cJSON_AddStringToObject(params, def->name, text);
    }
    cJSON_AddBoolToObject(params, "trainable", nn_node_trainable(node));
    cJSON *ff = cJSON_AddArrayToObject(o, "ff");
    cJSON *fb = cJSON_AddArrayToObject(o, "fb");
    cJSON *in_shapes = cJSON_AddArrayToObject(o, "input_shapes");
    for (int i = 0; i < nn_node_ff_count(node); i++) {
        nn_node *src = nn_node_ff_at(node, i);
        nn_shape s = nn_node_output_shape(src);
        cJSON_AddItemToArray(ff, cJSON_CreateString(nn_node_name(src)));
        cJSON_AddItemToArray(in_shapes, batch_shape_json(&s));
    }
    cJSON *fb_shapes = cJSON_AddArrayToObject(o, "feedback_shapes");
    for (int i = 0; i < nn_node_fb_count(node); i++) {
        nn_node *src = nn_node_fb_at(node, i);
        nn_shape s = nn_node_output_shape(src);
        cJSON_AddItemToArray(fb, cJSON_CreateString(nn_node_name(src)));
        cJSON_AddItemToArray(fb_shapes, batch_shape_json(&s));
    }
    nn_shape out = nn_node_output_shape(node);
    cJSON_AddItemToObject(o, "output_shape", batch_shape_json(&out));
    /* A version-1 type's struct ends before feature_name. */
    if (type->api_version >= 2 && type->feature_name && out.ndim >= 1)
        add_feature_names(o, node, out.dims[out.ndim - 1]);
    cJSON_AddNumberToObject(o, "param_count", (double)nn_node_param_count(node));
    cJSON *weights = cJSON_AddArrayToObject(o, "weights");
    for (int i = 0; i < nn_node_weight_count(node); i++) {
        cJSON *w = cJSON_CreateObject();
        cJSON_AddStringToObject(w, "name", nn_node_weight_name(node, i));
        cJSON_AddItemToObject(w, "shape",
                              shape_json(&nn_node_weight_at(node, i)->shape));
        cJSON_AddBoolToObject(w, "trainable",
                              nn_node_weight_trainable(node, i));
        cJSON_AddItemToArray(weights, w);
    }
    cJSON *state = cJSON_AddArrayToObject(o, "state");
    for (int i = 0; i < nn_node_state_count(node); i++) {
        cJSON *s = cJSON_CreateObject();
        nn_shape shape = nn_node_state_shape(node, i);
        cJSON_AddStringToObject(s, "name", nn_node_state_name(node, i));
        cJSON_AddItemToObject(s, "shape", batch_shape_json(&shape));
        cJSON_AddItemToArray(state, s);
    }
    return o;
}

cJSON *api_graph_describe(const nn_graph *g)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "seed", (double)nn_graph_seed(g));
    cJSON *entries = cJSON_AddArrayToObject(o, "entries");
    for (int i = 0; i < nn_graph_entry_count(g); i++)
        cJSON_AddItemToArray(entries, cJSON_CreateString(
                                          nn_node_name(nn_graph_entry_at(g, i))));
    cJSON *exits = cJSON_AddArrayToObject(o, "exits");
    for (int i = 0; i < nn_graph_exit_count(g); i++)
        cJSON_AddItemToArray(exits, cJSON_CreateString(
                                        nn_node_name(nn_graph_exit_at(g, i))));
    cJSON *nodes = cJSON_AddArrayToObject(o, "nodes");
    size_t total = 0;
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        nn_node *node = nn_graph_node_at(g, i);
        total += nn_node_param_count(node);
        cJSON_AddItemToArray(nodes, node_json(node));
    }
    cJSON_AddNumberToObject(o, "param_count", (double)total);
    return o;
}

cJSON *api_node_types_json(const nn_registry *reg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *types = cJSON_AddArrayToObject(o, "node_types");
    for (int i = 0; i < nn_registry_count(reg); i++) {
        const nn_node_type *type = nn_registry_at(reg, i);
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "name", type->name);
        cJSON_AddStringToObject(t, "doc", type->doc ? type->doc : "");
        cJSON_AddBoolToObject(t, "supports_feedback", type->init_fb != NULL);
        cJSON_AddBoolToObject(t, "stateful",
                              (type->flags & NN_TYPE_STATEFUL) != 0);
        cJSON_AddBoolToObject(t, "trainable",
                              (type->flags & NN_TYPE_TRAINABLE) != 0);
        cJSON_AddBoolToObject(t, "differentiable", type->backward != NULL);
        cJSON_AddBoolToObject(t, "source", (type->flags & NN_TYPE_SOURCE) != 0);
        cJSON *params = cJSON_AddArrayToObject(t, "params");
        for (int k = 0; type->params && type->params[k].name; k++) {
            const nn_param_def *def = &type->params[k];
            cJSON *p = cJSON_CreateObject();
            cJSON_AddStringToObject(p, "name", def->name);
            cJSON_AddStringToObject(p, "type", nn_param_kind_str(def->kind));
            if (def->def)
                cJSON_AddStringToObject(p, "default", def->def);
            else
                cJSON_AddBoolToObject(p, "required", 1);
            if ((def->kind == NN_PARAM_INT || def->kind == NN_PARAM_FLOAT ||
                 def->kind == NN_PARAM_FLOATS) &&
                def->min != def->max) {
                cJSON_AddNumberToObject(p, "min", def->min);
                cJSON_AddNumberToObject(p, "max", def->max);
            }
            if (def->kind == NN_PARAM_ENUM && def->choices) {
                cJSON *choices = cJSON_AddArrayToObject(p, "choices");
                char buf[512];
                snprintf(buf, sizeof buf, "%s", def->choices);
                for (char *save = NULL, *c = strtok_r(buf, "|", &save); c;
                     c = strtok_r(NULL, "|", &save))
                    cJSON_AddItemToArray(choices, cJSON_CreateString(c));
            }
            cJSON_AddStringToObject(p, "doc", def->doc ? def->doc : "");
            cJSON_AddItemToArray(params, p);
        }
        cJSON *common = cJSON_CreateObject();
        cJSON_AddStringToObject(common, "name", "trainable");
        cJSON_AddStringToObject(common, "type", "bool");
        cJSON_AddStringToObject(common, "default", (type->flags &
                                                    NN_TYPE_TRAINABLE)
                                                       ? "true" : "false");
        cJSON_AddStringToObject(common, "doc", "whether the node's weights are "
                                "trained");
        cJSON_AddItemToArray(params, common);
        cJSON_AddItemToArray(types, t);
    }
    return o;
}

/* ------------------------------------------------------ inputs and outputs */

static int check_input_names(const cJSON *inputs, const nn_graph *g,
                             api_error *err)
{
    if (!cJSON_IsObject(inputs))
        return api_fail(err, 400, "bad_request", "\"inputs\" must be an object "
                        "mapping input names to tensors");
    for (const cJSON *c = inputs->child; c; c = c->next) {
        nn_node *node = nn_graph_find(g, c->string);
        if (!node || !(nn_node_type_of(node)->flags & NN_TYPE_SOURCE))
            return api_fail(err, 400, "unknown_input", "inputs.%.64s: the "
                            "network has no input of that name", c->string);
    }
    for (int e = 0; e < nn_graph_entry_count(g); e++) {
        const char *name = nn_node_name(nn_graph_entry_at(g, e));
        if (!cJSON_GetObjectItemCaseSensitive(inputs, name))
            return api_fail(err, 400, "missing_input", "inputs.%s is missing",
                            name);
    }
    return 0;
}

void api_bindings_free(nn_binding *bindings, int n)
{
    if (!bindings)
        return;
    for (int i = 0; i < n; i++)
        nn_tensor_free(bindings[i].tensor);
    free(bindings);
}

/* One entry's sequence tensor t: shaped (batch, time, the entry's shape),
 * with the time length *steps of the inputs before it (when *steps >= 0),
 * which it then sets. */
static int check_sequence_input(const nn_node *entry, const nn_tensor *t,
                                int batch, const char *where, int *steps,
                                api_error *err)
{
    const nn_shape *got = &t->shape;
    nn_shape per = nn_node_output_shape(entry);
    int ok = got->ndim == per.ndim + 2 && got->dims[0] == batch;
    for (int d = 0; ok && d < per.ndim; d++)
        ok = got->dims[d + 2] == per.dims[d];
    if (!ok) {
        char gs[96], ps[96];
        return api_fail(err, 400, "shape_mismatch", "%s has shape %s; a run "
                        "needs (batch=%d, time, %s without parentheses)",
                        where, nn_shape_str(got, gs, sizeof gs), batch,
                        nn_shape_str(&per, ps, sizeof ps));
    }
    if (*steps >= 0 && got->dims[1] != *steps)
        return api_fail(err, 400, "shape_mismatch", "%s has %d time steps "
                        "where the other inputs have %d", where, got->dims[1],
                        *steps);
    *steps = got->dims[1];
    return 0;
}

int api_bind_sequence_inputs(const nn_graph *g, int batch,
                             const api_limits *lim,
                             api_sequence_reader read, void *ctx,
                             nn_binding **bindings, int *num_steps,
                             api_error *err)
{
    *bindings = NULL;
    *num_steps = 0;
    int n = nn_graph_entry_count(g);
    nn_binding *b = calloc((size_t)n, sizeof *b);
    if (!b)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    int steps = -1;
    for (int e = 0; e < n; e++) {
        nn_node *entry = nn_graph_entry_at(g, e);
        char where[96];
        snprintf(where, sizeof where, "inputs.%s", nn_node_name(entry));
        b[e].name = nn_node_name(entry);
        if (read(ctx, nn_node_name(entry), where, lim, &b[e].tensor, err) ||
            check_sequence_input(entry, b[e].tensor, batch, where, &steps,
                                 err))
            goto fail;
    }
    if (steps > lim->max_steps) {
        api_fail(err, 413, "too_large", "%d time steps; the limit is %d", steps,
                 lim->max_steps);
        goto fail;
    }
    *bindings = b;
    *num_steps = steps;
    return 0;
fail:
    api_bindings_free(b, n);
    return -1;
}

static int read_cjson_input(void *ctx, const char *name, const char *where,
                            const api_limits *lim, nn_tensor **out,
                            api_error *err)
{
    return api_tensor_from_json(cJSON_GetObjectItemCaseSensitive(
                                    (const cJSON *)ctx, name),
                                where, lim, out, err);
}

int api_read_sequence_inputs(const cJSON *inputs, const nn_graph *g,
                             int batch, const api_limits *lim,
                             nn_binding **bindings, int *num_steps,
                             api_error *err)
{
    *bindings = NULL;
    *num_steps = 0;
    if (check_input_names(inputs, g, err))
        return -1;
    return api_bind_sequence_inputs(g, batch, lim, read_cjson_input,
                                    (void *)inputs, bindings, num_steps, err);
}

int api_read_node_sequences(const cJSON *obj, const nn_graph *g, int batch,
                            int steps, const char *what,
                            const api_limits *lim, nn_binding **bindings,
                            int *n, api_error *err)
{
    *bindings = NULL;
    *n = 0;
    if (!cJSON_IsObject(obj))
        return api_fail(err, 400, "bad_request", "\"%s\" must be an object "
                        "{\"<node>\": (batch, steps, features)}", what);
    int count = cJSON_GetArraySize(obj);
    nn_binding *b = calloc((size_t)count + 1, sizeof *b);
    if (!b)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    *bindings = b;
    for (const cJSON *c = obj->child; c; c = c->next) {
        char here[160];
        snprintf(here, sizeof here, "%s.%s", what, c->string);
        nn_node *node = nn_graph_find(g, c->string);
        if (!node)
            /* A name in the body, as an unknown input or output is: 404
             * means the path named nothing. */
            return api_fail(err, 400, "unknown_node", "%s: the network has no "
                            "node '%s'", here, c->string);
        nn_binding *bind = &b[(*n)++];
        bind->name = nn_node_name(node);
        if (api_tensor_from_json(c, here, lim, &bind->tensor, err))
            return -1;
        nn_shape per = nn_node_output_shape(node);
        const nn_shape *got = &bind->tensor->shape;
        int ok = got->ndim == per.ndim + 2 && got->dims[0] == batch &&
                 got->dims[1] == steps;
        for (int k = 0; ok && k < per.ndim; k++)
            ok = got->dims[k + 2] == per.dims[k];
        if (!ok) {
            char gs[96], ps[96];
            return api_fail(err, 400, "shape_mismatch", "%s has shape %s; it "
                            "needs (%d sequences, %d steps, %s without "
                            "parentheses) like the inputs and node '%s'", here,
                            nn_shape_str(got, gs, sizeof gs), batch, steps,
                            nn_shape_str(&per, ps, sizeof ps), c->string);
        }
    }
    return 0;
}
