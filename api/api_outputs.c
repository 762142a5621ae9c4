/*
 * api_outputs.c — the list of nodes a request wants to see (api_outputs.h):
 * v1's "outputs": ["<node>", ...] read off the body text, the names KServe's
 * "outputs": [{"name": ...}] gives, and the messages that say what could
 * have been named.
 */
#include "api_outputs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPOS ((size_t)-1)

void api_outputs_free(api_outputs *o)
{
    if (!o)
        return;
    free(o->nodes);
    free(o->names);
    memset(o, 0, sizeof *o);
}

/* Room for n nodes. */
static int outputs_init(api_outputs *o, int n, api_error *err)
{
    memset(o, 0, sizeof *o);
    size_t cap = n > 0 ? (size_t)n : 1;
    o->nodes = calloc(cap, sizeof *o->nodes);
    o->names = calloc(cap, sizeof *o->names);
    if (!o->nodes || !o->names)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    return 0;
}

int api_outputs_exits(const nn_graph *g, api_outputs *o, api_error *err)
{
    int n = nn_graph_exit_count(g);
    if (outputs_init(o, n, err))
        return -1;
    for (int x = 0; x < n; x++) {
        o->nodes[x] = nn_graph_exit_at(g, x);
        o->names[x] = nn_node_name(o->nodes[x]);
    }
    o->n = n;
    return 0;
}

void api_node_list_text(const nn_graph *g, char *buf, size_t size)
{
    static const char more[] = ", ...";
    size_t len = 0;
    if (size)
        buf[0] = '\0';
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        const char *name = nn_node_name(nn_graph_node_at(g, i));
        size_t need = strlen(name) + (i ? 2 : 0);
        /* Keep room for ", ..." unless this is the last name. */
        size_t keep = i + 1 < nn_graph_node_count(g) ? sizeof more : 1;
        if (len + need + keep > size) {
            if (len + sizeof more <= size)
                memcpy(buf + len, more, sizeof more);
            return;
        }
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "",
                                name);
    }
}

int api_outputs_add(const nn_graph *g, api_outputs *o, const char *name,
                    const char *where, api_error *err)
{
    nn_node *node = name ? nn_graph_find(g, name) : NULL;
    if (!node) {
        char list[320];
        api_node_list_text(g, list, sizeof list);
        return api_fail(err, 400, "unknown_output", "%s: the network has no "
                        "node '%.64s'; its nodes are %s", where,
                        name ? name : "", list);
    }
    for (int k = 0; k < o->n; k++)
        if (o->nodes[k] == node)
            return api_fail(err, 400, "bad_request", "%s: output '%s' is "
                            "asked for twice", where, name);
    o->nodes[o->n] = node;
    o->names[o->n++] = nn_node_name(node);
    return 0;
}

size_t api_outputs_floats(const api_outputs *o)
{
    size_t n = 0;
    for (int k = 0; k < o->n; k++) {
        nn_shape s = nn_node_output_shape(o->nodes[k]);
        n += nn_shape_numel(&s);
    }
    return n;
}

static size_t skip_ws(const api_json *j, size_t p)
{
    while (p < j->len && (j->s[p] == ' ' || j->s[p] == '\t' ||
                          j->s[p] == '\n' || j->s[p] == '\r'))
        p++;
    return p;
}

/* The elements of the array at pos: *count of them, their positions in
 * at[0..cap) (counting on past cap). 0, or -1 when the text is not an
 * array. */
static int array_elements(const api_json *j, size_t pos, size_t *at,
                          int cap, int *count)
{
    *count = 0;
    size_t p = skip_ws(j, pos);
    if (p >= j->len || j->s[p] != '[')
        return -1;
    p = skip_ws(j, p + 1);
    if (p < j->len && j->s[p] == ']')
        return 0;
    for (;;) {
        if (*count < cap)
            at[*count] = p;
        (*count)++;
        size_t end = api_json_skip(j, p);
        if (end == NPOS)
            return -1;
        p = skip_ws(j, end);
        if (p < j->len && j->s[p] == ']')
            return 0;
        if (p >= j->len || j->s[p] != ',')
            return -1;
        p = skip_ws(j, p + 1);
    }
}

/* The string at pos, unescaped into buf (cut to size - 1 bytes). The body
 * was checked as JSON, so cJSON reads the one small value as the whole
 * document did. 0, or -1 when it is not a string. */
static int string_value(const api_json *j, size_t pos, char *buf, size_t size)
{
    size_t end = api_json_skip(j, pos);
    if (api_json_kind(j, pos) != '"' || end == NPOS)
        return -1;
    size_t p = skip_ws(j, pos);
    /* cJSON would end the name at a \u0000: "y\u0000z" would be "y". */
    for (size_t k = p; k + 6 <= end; k++)
        if (memcmp(j->s + k, "\\u0000", 6) == 0)
            return -1;
    cJSON *v = cJSON_ParseWithLength(j->s + p, end - p);
    int ok = cJSON_IsString(v);
    if (ok)
        snprintf(buf, size, "%s", v->valuestring);
    cJSON_Delete(v);
    return ok ? 0 : -1;
}

int api_json_outputs(const api_json *j, size_t pos, const nn_graph *g,
                     api_outputs *o, api_error *err)
{
    if (pos == NPOS)
        return api_outputs_exits(g, o, err);
    memset(o, 0, sizeof *o);
    static const char shape[] = "\"outputs\" must be a non-empty array of "
                                "node names, such as [\"r\", \"o\"] (leave it "
                                "out for the network's exits)";
    int nodes = nn_graph_node_count(g), count;
    if (outputs_init(o, nodes, err))
        return -1;
    /* Only the first nodes + 1 places are kept: by then a name must have
     * been unknown or repeated, so o never holds more than the nodes. */
    size_t *at = calloc((size_t)nodes + 1, sizeof *at);
    if (!at)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    int rc = array_elements(j, pos, at, nodes + 1, &count);
    if (rc || count == 0)
        rc = api_fail(err, 400, "bad_request", "%s", shape);
    for (int k = 0; rc == 0 && k < count && k <= nodes; k++) {
        char where[32], name[NN_NAME_MAX + 8];
        snprintf(where, sizeof where, "outputs[%d]", k);
        if (string_value(j, at[k], name, sizeof name))
            rc = api_fail(err, 400, "bad_request", "%s: %s", where, shape);
        else
            rc = api_outputs_add(g, o, name, where, err);
    }
    free(at);
    return rc;
}
