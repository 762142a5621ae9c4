/*
 * graph.c — describing a node graph, validating it and initialising its
 * nodes (the "build"). Running it is session.c's job.
 */
#include "nn_internal.h"
#include "nn_train.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ lifecycle */

nn_graph *nn_graph_new(const nn_registry *reg, uint64_t seed)
{
    if (!reg)
        return NULL;
    nn_graph *g = nn_calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->reg = reg;
    g->seed = seed;
    return g;
}

void nn_graph_set_abort(nn_graph *g, int (*fn)(void *user), void *user)
{
    g->abort_fn = fn;
    g->abort_user = fn ? user : NULL;
}

int nn_graph_abort_check(const nn_graph *g, nn_error *err)
{
    if (g->abort_fn && g->abort_fn(g->abort_user))
        return nn_error_set(err, NN_ERR_STATE, "cancelled");
    return NN_OK;
}

static void node_free(nn_node *node)
{
    if (!node)
        return;
    if (node->type->destroy && node->priv)
        node->type->destroy(node);
    for (int i = 0; i < node->n_params; i++)
        nn_param_val_clear(&node->params[i]);
    nn_free(node->params);
    for (int i = 0; i < node->n_weights; i++) {
        nn_tensor_release(&node->weights[i]->t);
        nn_free(node->weights[i]);
    }
    nn_free(node->weights);
    nn_free(node->states);
    nn_free(node->ff);
    nn_free(node->fb);
    nn_free(node->priv);
    nn_free(node);
}

void nn_graph_free(nn_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_nodes; i++)
        node_free(g->nodes[i]);
    nn_free(g->nodes);
    nn_free(g->counters);
    nn_free(g->order);
    nn_free(g->entries);
    nn_free(g->exits);
    nn_free(g);
}

/* ----------------------------------------------------------- adding nodes */

/* Letters, digits, '_', '-', '.'; not starting with a digit, '-' or '.', so
 * a name can never be mistaken for a number or an edge operator. */
static int valid_node_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= NN_NAME_MAX)
        return 0;
    if (!(isalpha((unsigned char)name[0]) || name[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(isalnum(c) || c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* The next free automatic name for type: Dense0, Dense1, ... as BrainPy. */
static int auto_name(nn_graph *g, const nn_node_type *type, char *out,
                     nn_error *err)
{
    nn_type_counter *c = NULL;
    for (int i = 0; i < g->n_counters; i++)
        if (g->counters[i].type == type)
            c = &g->counters[i];
    if (!c) {
        int rc = nn_grow((void **)&g->counters, &g->cap_counters,
                         g->n_counters + 1, sizeof *g->counters, err);
        if (rc != NN_OK)
            return rc;
        c = &g->counters[g->n_counters++];
        c->type = type;
        c->next = 0;
    }
    do {
        snprintf(out, NN_NAME_MAX, "%.40s%d", type->name, c->next++);
    } while (nn_graph_find(g, out));
    return NN_OK;
}

nn_node *nn_graph_add_node(nn_graph *g, const char *type_name, const char *name,
                           nn_error *err)
{
    if (g->built || g->build_failed) {
        nn_error_set(err, NN_ERR_STATE, "nodes cannot be added to a graph "
                     "after it is built");
        return NULL;
    }
    const nn_node_type *type = nn_registry_find(g->reg, type_name);
    if (!type) {
        nn_error_set(err, NN_ERR_NOT_FOUND, "unknown node type '%.64s'",
                     type_name ? type_name : "");
        return NULL;
    }
    char chosen[NN_NAME_MAX];
    if (!name || !name[0]) {
        if (auto_name(g, type, chosen, err) != NN_OK)
            return NULL;
    } else {
        if (!valid_node_name(name)) {
            nn_error_set(err, NN_ERR_INVALID, "invalid node name '%.80s': use "
                         "1-%d letters, digits, '_', '-' or '.', starting with "
                         "a letter or '_'", name, NN_NAME_MAX - 1);
            return NULL;
        }
        if (nn_graph_find(g, name)) {
            nn_error_set(err, NN_ERR_EXISTS, "duplicate node name '%s'", name);
            return NULL;
        }
        snprintf(chosen, sizeof chosen, "%s", name);
    }
    if (nn_grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1,
                sizeof *g->nodes, err) != NN_OK)
        return NULL;

    nn_node *node = nn_calloc(1, sizeof *node);
    if (!node)
        goto oom;
    node->graph = g;
    node->type = type;
    node->index = g->n_nodes;
    snprintf(node->name, sizeof node->name, "%s", chosen);
    node->trainable = (type->flags & NN_TYPE_TRAINABLE) != 0;
    node->rowwise = (type->flags & NN_TYPE_ROWWISE) != 0;
    nn_rng_seed(&node->init_rng, nn_seed_derive(g->seed, node->name));
    if (type->priv_size && !(node->priv = nn_calloc(1, type->priv_size)))
        goto oom;
    int n_params = 0;
    while (type->params && type->params[n_params].name)
        n_params++;
    if (n_params && !(node->params = nn_calloc((size_t)n_params,
                                               sizeof *node->params)))
        goto oom;
    node->n_params = n_params;
    for (int i = 0; i < n_params; i++) {
        const nn_param_def *def = &type->params[i];
        /* Defaults were checked at registration; only memory can fail. */
        if (def->def &&
            nn_param_parse(def, node->name, def->def, &node->params[i], err)
                != NN_OK)
            goto fail;
    }
    g->nodes[g->n_nodes++] = node;
    return node;
oom:
    nn_error_set(err, NN_ERR_NOMEM, "out of memory adding node '%s'", chosen);
fail:
    if (node) {
        /* priv is untouched by the type yet: skip its destroy. */
        void *priv = node->priv;
        node->priv = NULL;
        node_free(node);
        nn_free(priv);
    }
    return NULL;
}

int nn_node_set_param(nn_node *node, const char *key, const char *value,
                      nn_error *err)
{
    if (node->graph->built || node->graph->build_failed)
        return nn_error_set(err, NN_ERR_STATE, "node '%s': parameters cannot "
                            "change after the graph is built", node->name);
    if (!key || !value)
        return nn_error_set(err, NN_ERR_INVALID, "node '%s': parameter name "
                            "and value are required", node->name);
    if (strcmp(key, "trainable") == 0) {
        static const nn_param_def trainable_def = {
            "trainable", NN_PARAM_BOOL, NULL, 0, 0, NULL, NULL};
        nn_param_val v;
        memset(&v, 0, sizeof v);
        int rc = nn_param_parse(&trainable_def, node->name, value, &v, err);
        if (rc != NN_OK)
            return rc;
        node->trainable = v.b;
        nn_param_val_clear(&v);
        return NN_OK;
    }
    int idx = nn_param_index(node->type, key);
    if (idx < 0) {
        char known[400];
        size_t len = 0;
        known[0] = '\0';
        for (int i = 0; i < node->n_params && len < sizeof known; i++)
            len += (size_t)snprintf(known + len, sizeof known - len, "%s, ",
                                    node->type->params[i].name);
        if (len < sizeof known)
            snprintf(known + len, sizeof known - len, "trainable");
        return nn_error_set(err, NN_ERR_INVALID, "node '%s': type '%s' has no "
                            "parameter '%.64s' (it has: %s)", node->name,
                            node->type->name, key, known);
    }
    return nn_param_parse(&node->type->params[idx], node->name, value,
                          &node->params[idx], err);
}

/* ------------------------------------------------------------------ edges */

static nn_node *resolve(nn_graph *g, const char *name, const char *role,
                        nn_error *err)
{
    nn_node *node = name ? nn_graph_find(g, name) : NULL;
    if (!node)
        nn_error_set(err, NN_ERR_NOT_FOUND, "%s: unknown node '%.64s'", role,
                     name ? name : "(null)");
    return node;
}

static int has_edge(nn_node **list, int n, const nn_node *node)
{
    for (int i = 0; i < n; i++)
        if (list[i] == node)
            return 1;
    return 0;
}

int nn_graph_ff(nn_graph *g, const char *from, const char *to, nn_error *err)
{
    if (g->built || g->build_failed)
        return nn_error_set(err, NN_ERR_STATE, "edges cannot be added to a "
                            "graph after it is built");
    nn_node *src = resolve(g, from, "feedforward edge source", err);
    nn_node *dst = src ? resolve(g, to, "feedforward edge target", err) : NULL;
    if (!dst)
        return NN_ERR_NOT_FOUND;
    if (has_edge(dst->ff, dst->n_ff, src))
        return nn_error_set(err, NN_ERR_GRAPH, "edge %s >> %s is declared "
                            "twice", src->name, dst->name);
    int rc = nn_grow((void **)&dst->ff, &dst->cap_ff, dst->n_ff + 1,
                     sizeof *dst->ff, err);
    if (rc != NN_OK)
        return rc;
    dst->ff[dst->n_ff++] = src;
    src->n_consumers++;
    return NN_OK;
}

int nn_graph_fb(nn_graph *g, const char *receiver, const char *sender,
                nn_error *err)
{
    if (g->built || g->build_failed)
        return nn_error_set(err, NN_ERR_STATE, "edges cannot be added to a "
                            "graph after it is built");
    nn_node *dst = resolve(g, receiver, "feedback edge receiver", err);
    nn_node *src = dst ? resolve(g, sender, "feedback edge sender", err) : NULL;
    if (!src)
        return NN_ERR_NOT_FOUND;
    if (has_edge(dst->fb, dst->n_fb, src))
        return nn_error_set(err, NN_ERR_GRAPH, "edge %s << %s is declared "
                            "twice", dst->name, src->name);
    int rc = nn_grow((void **)&dst->fb, &dst->cap_fb, dst->n_fb + 1,
                     sizeof *dst->fb, err);
    if (rc != NN_OK)
        return rc;
    dst->fb[dst->n_fb++] = src;
    return NN_OK;
}

int nn_graph_ff_delayed(nn_graph *g, const char *from, const char *to,
                        int delay, char *name_out, nn_error *err)
{
    if (g->built || g->build_failed)
        return nn_error_set(err, NN_ERR_STATE, "edges cannot be added to a "
                            "graph after it is built");
    /* Check the ends first: a refused edge adds no Delay node. */
    if (!resolve(g, from, "delayed edge source", err) ||
        !resolve(g, to, "delayed edge target", err))
        return NN_ERR_NOT_FOUND;
    if (delay < 1 || delay > (1 << 20))
        return nn_error_set(err, NN_ERR_INVALID, "edge %s >> %s: delay must "
                            "be from 1 to %d steps, not %d", from, to,
                            1 << 20, delay);
    nn_node *d = nn_graph_add_node(g, "Delay", NULL, err);
    if (!d)
        return err->code;
    char steps[16];
    snprintf(steps, sizeof steps, "%d", delay);
    int rc = nn_node_set_param(d, "delay", steps, err);
    if (rc == NN_OK)
        rc = nn_graph_ff(g, from, d->name, err);
    if (rc == NN_OK)
        rc = nn_graph_ff(g, d->name, to, err);
    if (rc == NN_OK && name_out)
        snprintf(name_out, NN_NAME_MAX, "%s", d->name);
    return rc;
}

/* Takes back the edge "left >> right" or "left << right" that was the last
 * one added to its receiver (undo for nn_graph_link). */
static void pop_edge(nn_graph *g, int feedback, const char *left,
                     const char *right)
{
    nn_node *l = nn_graph_find(g, left), *r = nn_graph_find(g, right);
    if (feedback) {
        l->n_fb--; /* left receives right's feedback */
    } else {
        r->n_ff--;
        l->n_consumers--;
    }
}

/* ------------------------------------------------- edge expressions */

#define LINK_MAX_TERMS 64
#define LINK_MAX_SET 64

typedef struct link_term {
    char names[LINK_MAX_SET][NN_NAME_MAX];
    int n;
} link_term;

typedef struct link_parser {
    const char *text;
    const char *p;
    nn_error *err;
} link_parser;

static int link_fail(link_parser *lp, const char *what)
{
    return nn_error_set(lp->err, NN_ERR_INVALID,
                        "edge expression '%.120s' at position %d: %s",
                        lp->text, (int)(lp->p - lp->text) + 1, what);
}

static void link_skip_space(link_parser *lp)
{
    while (isspace((unsigned char)*lp->p))
        lp->p++;
}

static int link_name(link_parser *lp, char *out)
{
    link_skip_space(lp);
    const char *start = lp->p;
    while (isalnum((unsigned char)*lp->p) || *lp->p == '_' || *lp->p == '-' ||
           *lp->p == '.')
        lp->p++;
    size_t n = (size_t)(lp->p - start);
    if (n == 0) {
        lp->p = start;
        return link_fail(lp, "expected a node name");
    }
    if (n >= NN_NAME_MAX) {
        lp->p = start;
        return link_fail(lp, "node name too long");
    }
    memcpy(out, start, n);
    out[n] = '\0';
    return NN_OK;
}

static int link_term_parse(link_parser *lp, link_term *t)
{
    link_skip_space(lp);
    t->n = 0;
    if (*lp->p != '{') {
        t->n = 1;
        return link_name(lp, t->names[0]);
    }
    lp->p++;
    for (;;) {
        if (t->n == LINK_MAX_SET)
            return link_fail(lp, "too many names in one set");
        int rc = link_name(lp, t->names[t->n]);
        if (rc != NN_OK)
            return rc;
        t->n++;
        link_skip_space(lp);
        if (*lp->p == ',') {
            lp->p++;
            continue;
        }
        if (*lp->p == '}') {
            lp->p++;
            return NN_OK;
        }
        return link_fail(lp, "expected ',' or '}'");
    }
}

/* The edges one expression added, in order, to take back on failure. */
typedef struct link_record {
    struct {
        int feedback;
        char left[NN_NAME_MAX], right[NN_NAME_MAX];
    } *edges;
    int n, cap;
} link_record;

static int record_has(const link_record *rec, int feedback, const char *left,
                      const char *right)
{
    for (int i = 0; i < rec->n; i++)
        if (rec->edges[i].feedback == feedback &&
            strcmp(rec->edges[i].left, left) == 0 &&
            strcmp(rec->edges[i].right, right) == 0)
            return 1;
    return 0;
}

/* Adds left >> right (or left << right) unless this expression added it
 * already: a merge "g1 & g2" unions the edges its operands share. */
static int link_edge(nn_graph *g, link_record *rec, int feedback,
                     const char *left, const char *right, nn_error *err)
{
    if (record_has(rec, feedback, left, right))
        return NN_OK;
    int rc = nn_grow((void **)&rec->edges, &rec->cap, rec->n + 1,
                     sizeof *rec->edges, err);
    if (rc != NN_OK)
        return rc;
    rc = feedback ? nn_graph_fb(g, left, right, err)
                  : nn_graph_ff(g, left, right, err);
    if (rc != NN_OK)
        return rc;
    rec->edges[rec->n].feedback = feedback;
    snprintf(rec->edges[rec->n].left, NN_NAME_MAX, "%s", left);
    snprintf(rec->edges[rec->n].right, NN_NAME_MAX, "%s", right);
    rec->n++;
    return NN_OK;
}

/* One chain "t0 op t1 op t2 ..." from lp->p up to '&' or the end. */
static int link_chain(nn_graph *g, link_parser *lp, link_term *terms,
                      link_record *rec)
{
    int ops[LINK_MAX_TERMS]; /* ops[i] joins terms[i] and terms[i+1]: 1 = << */
    int n_terms = 0, rc;
    for (;;) {
        if (n_terms == LINK_MAX_TERMS)
            return link_fail(lp, "too many terms");
        rc = link_term_parse(lp, &terms[n_terms++]);
        if (rc != NN_OK)
            return rc;
        link_skip_space(lp);
        if (*lp->p == '\0' || *lp->p == '&')
            break;
        if (lp->p[0] == '>' && lp->p[1] == '>')
            ops[n_terms - 1] = 0;
        else if (lp->p[0] == '<' && lp->p[1] == '<')
            ops[n_terms - 1] = 1;
        else
            return link_fail(lp, "expected '>>', '<<', '&' or the end");
        lp->p += 2;
    }
    if (n_terms < 2)
        return link_fail(lp, "an edge needs '>>' or '<<' between two terms");
    rc = NN_OK;
    for (int t = 0; t + 1 < n_terms && rc == NN_OK; t++)
        for (int a = 0; a < terms[t].n && rc == NN_OK; a++)
            for (int b = 0; b < terms[t + 1].n && rc == NN_OK; b++)
                rc = link_edge(g, rec, ops[t], terms[t].names[a],
                               terms[t + 1].names[b], lp->err);
    return rc;
}

int nn_graph_link(nn_graph *g, const char *expr, nn_error *err)
{
    if (!expr)
        return nn_error_set(err, NN_ERR_INVALID, "no edge expression given");
    link_parser lp = {expr, expr, err};
    /* Terms are large (sets of names); keep them off the stack. */
    link_term *terms = nn_malloc(sizeof(link_term) * LINK_MAX_TERMS);
    if (!terms)
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    link_record rec = {NULL, 0, 0};
    int rc;
    /* ReservoirPy's merge: "a >> r >> o & r << o" is both chains, over
     * the nodes they share. */
    for (;;) {
        rc = link_chain(g, &lp, terms, &rec);
        if (rc != NN_OK || *lp.p == '\0')
            break;
        lp.p++; /* '&' */
        link_skip_space(&lp);
        if (*lp.p == '\0') {
            rc = link_fail(&lp, "expected an edge after '&'");
            break;
        }
    }
    /* A refused expression leaves the graph as it was: take back what it
     * added, last first (each was then the last edge of its receiver). */
    if (rc != NN_OK) {
        if (rc != NN_ERR_INVALID)
            nn_error_prefix(err, "edge expression '%.120s'", expr);
        for (int i = rec.n - 1; i >= 0; i--)
            pop_edge(g, rec.edges[i].feedback, rec.edges[i].left,
                     rec.edges[i].right);
    }
    nn_free(rec.edges);
    nn_free(terms);
    return rc;
}

/* ------------------------------------------------------------ validation */

static int check_required_params(nn_graph *g, nn_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        nn_node *node = g->nodes[i];
        for (int p = 0; p < node->n_params; p++)
            if (!node->params[p].text)
                return nn_error_set(err, NN_ERR_INVALID, "node '%s' (%s): "
                                    "parameter '%s' is required", node->name,
                                    node->type->name,
                                    node->type->params[p].name);
    }
    return NN_OK;
}

static int is_source(const nn_node *node)
{
    return (node->type->flags & NN_TYPE_SOURCE) != 0;
}

static int check_connections(nn_graph *g, nn_error *err)
{
    int n_sources = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        nn_node *node = g->nodes[i];
        if (is_source(node)) {
            n_sources++;
            if (node->n_ff || node->n_fb)
                return nn_error_set(err, NN_ERR_GRAPH, "input node '%s' (%s) "
                                    "has incoming edges (from '%s'); inputs "
                                    "take their data from the caller only",
                                    node->name, node->type->name,
                                    node->n_ff ? node->ff[0]->name
                                               : node->fb[0]->name);
            if (!node->n_consumers)
                return nn_error_set(err, NN_ERR_GRAPH, "input node '%s' feeds "
                                    "no node", node->name);
        } else if (!node->n_ff) {
            return nn_error_set(err, NN_ERR_GRAPH, "node '%s' (%s) has no "
                                "feedforward input; connect it with '>>'",
                                node->name, node->type->name);
        }
    }
    if (!n_sources)
        return nn_error_set(err, NN_ERR_GRAPH, "the graph has no input node");
    return NN_OK;
}

/* Consumers of each node (reverse ff adjacency), in edge-declaration order
 * of the consumers' inputs; one flat array with offsets. */
typedef struct adjacency {
    int *start; /* n_nodes + 1 */
    nn_node **to;
} adjacency;

static int adjacency_build(nn_graph *g, adjacency *adj, nn_error *err)
{
    adj->start = nn_calloc((size_t)g->n_nodes + 1, sizeof(int));
    int total = 0;
    for (int i = 0; i < g->n_nodes; i++)
        total += g->nodes[i]->n_ff;
    adj->to = nn_calloc((size_t)total + 1, sizeof(nn_node *));
    if (!adj->start || !adj->to)
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i]->n_ff; k++)
            adj->start[g->nodes[i]->ff[k]->index + 1]++;
    for (int i = 0; i < g->n_nodes; i++)
        adj->start[i + 1] += adj->start[i];
    int *fill = nn_calloc((size_t)g->n_nodes, sizeof(int));
    if (!fill)
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i]->n_ff; k++) {
            int from = g->nodes[i]->ff[k]->index;
            adj->to[adj->start[from] + fill[from]++] = g->nodes[i];
        }
    nn_free(fill);
    return NN_OK;
}

static void adjacency_free(adjacency *adj)
{
    nn_free(adj->start);
    nn_free(adj->to);
}

/* Finds a feedforward cycle by iterative DFS and names it. */
static int check_cycles(nn_graph *g, const adjacency *adj, nn_error *err)
{
    int n = g->n_nodes, rc = NN_OK;
    char *color = nn_calloc((size_t)n, 1); /* 0 new, 1 on stack, 2 done */
    int *stack = nn_malloc(sizeof(int) * (size_t)n);
    int *next = nn_calloc((size_t)n, sizeof(int)); /* next consumer to visit */
    if (!color || !stack || !next) {
        rc = nn_error_set(err, NN_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int root = 0; root < n && rc == NN_OK; root++) {
        if (color[root])
            continue;
        int top = 0;
        stack[top++] = root;
        color[root] = 1;
        while (top > 0 && rc == NN_OK) {
            int v = stack[top - 1];
            if (adj->start[v] + next[v] == adj->start[v + 1]) {
                color[v] = 2;
                top--;
                continue;
            }
            int w = adj->to[adj->start[v] + next[v]++]->index;
            if (color[w] == 0) {
                color[w] = 1;
                stack[top++] = w;
            } else if (color[w] == 1) {
                /* The cycle is the stack from w to v, closed by v >> w. */
                char path[400];
                size_t len = 0;
                int from = top - 1;
                while (stack[from] != w)
                    from--;
                for (int k = from; k < top && len < sizeof path; k++)
                    len += (size_t)snprintf(path + len, sizeof path - len,
                                            "%s >> ", g->nodes[stack[k]]->name);
                if (len < sizeof path)
                    snprintf(path + len, sizeof path - len, "%s",
                             g->nodes[w]->name);
                rc = nn_error_set(err, NN_ERR_GRAPH, "feedforward cycle: %s; "
                                  "make one of these edges a feedback edge "
                                  "('<<')", path);
            }
        }
    }
done:
    nn_free(color);
    nn_free(stack);
    nn_free(next);
    return rc;
}

/* Kahn's algorithm, taking ready nodes in the order they were added, so the
 * order depends on the description only. */
static int make_order(nn_graph *g, const adjacency *adj, nn_error *err)
{
    int n = g->n_nodes;
    int *pending = nn_malloc(sizeof(int) * (size_t)n);
    g->order = nn_malloc(sizeof(nn_node *) * (size_t)n);
    if (!pending || !g->order) {
        nn_free(pending);
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++)
        pending[i] = g->nodes[i]->n_ff;
    int done = 0;
    char *emitted = nn_calloc((size_t)n, 1);
    if (!emitted) {
        nn_free(pending);
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    }
    while (done < n) {
        int progressed = 0;
        for (int i = 0; i < n; i++) {
            if (emitted[i] || pending[i])
                continue;
            emitted[i] = 1;
            g->order[done++] = g->nodes[i];
            for (int k = adj->start[i]; k < adj->start[i + 1]; k++)
                pending[adj->to[k]->index]--;
            progressed = 1;
        }
        if (!progressed)
            break; /* unreachable: cycles were rejected before */
    }
    nn_free(emitted);
    nn_free(pending);
    if (done < n)
        return nn_error_set(err, NN_ERR_GRAPH, "the graph has a feedforward "
                            "cycle");
    return NN_OK;
}

/* Whether `to` is reachable from `from` along feedforward edges. */
static int ff_reachable(const nn_graph *g, const adjacency *adj,
                        const nn_node *from, const nn_node *to, char *seen,
                        int *stack)
{
    memset(seen, 0, (size_t)g->n_nodes);
    int top = 0;
    stack[top++] = from->index;
    seen[from->index] = 1;
    while (top) {
        int v = stack[--top];
        if (v == to->index)
            return 1;
        for (int k = adj->start[v]; k < adj->start[v + 1]; k++) {
            int w = adj->to[k]->index;
            if (!seen[w]) {
                seen[w] = 1;
                stack[top++] = w;
            }
        }
    }
    return 0;
}

static int check_feedback(nn_graph *g, const adjacency *adj, nn_error *err)
{
    char *seen = nn_malloc((size_t)g->n_nodes);
    int *stack = nn_malloc(sizeof(int) * (size_t)g->n_nodes);
    int rc = NN_OK;
    if (!seen || !stack) {
        rc = nn_error_set(err, NN_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < g->n_nodes && rc == NN_OK; i++) {
        nn_node *r = g->nodes[i];
        if (!r->n_fb)
            continue;
        if (!r->type->init_fb) {
            rc = nn_error_set(err, NN_ERR_GRAPH, "feedback edge %s << %s: node "
                              "'%s' (%s) does not support feedback", r->name,
                              r->fb[0]->name, r->name, r->type->name);
            break;
        }
        for (int k = 0; k < r->n_fb && rc == NN_OK; k++)
            if (!ff_reachable(g, adj, r, r->fb[k], seen, stack))
                rc = nn_error_set(err, NN_ERR_GRAPH, "feedback edge %s << %s: "
                                  "'%s' has no feedforward path to '%s', so "
                                  "there is no loop for the feedback to close; "
                                  "use '>>' instead", r->name, r->fb[k]->name,
                                  r->name, r->fb[k]->name);
    }
done:
    nn_free(seen);
    nn_free(stack);
    return rc;
}

static int collect_ends(nn_graph *g, nn_error *err)
{
    g->entries = nn_malloc(sizeof(nn_node *) * (size_t)g->n_nodes);
    g->exits = nn_malloc(sizeof(nn_node *) * (size_t)g->n_nodes);
    if (!g->entries || !g->exits)
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < g->n_nodes; i++) {
        nn_node *node = g->nodes[i];
        if (is_source(node))
            g->entries[g->n_entries++] = node;
        else if (!node->n_consumers)
            g->exits[g->n_exits++] = node;
    }
    if (!g->n_exits)
        return nn_error_set(err, NN_ERR_GRAPH, "the graph has no output node");
    return NN_OK;
}

/* ----------------------------------------------------------------- build */

static int unknown_param(const nn_node *node, const char *where,
                         nn_error *err)
{
    return nn_error_set(err, NN_ERR_UNSUPPORTED, "node '%s': node type '%s' "
                        "is defective: its %s reads parameter '%s', which is "
                        "not in its parameter table (a fault of the type or "
                        "its plugin, not of the request)", node->name,
                        node->type->name, where, node->unknown_param);
}

static int init_node_ff(nn_node *node, nn_error *err)
{
    nn_shape shapes[64];
    nn_shape *in = node->n_ff <= 64 ? shapes
                                    : nn_malloc(sizeof(nn_shape) *
                                                (size_t)node->n_ff);
    if (!in)
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    for (int k = 0; k < node->n_ff; k++)
        in[k] = node->ff[k]->out_shape;
    /* The type may write to its record and return err->code: it gets a
     * real one even when the caller passed none. */
    nn_error own, *e = err ? err : &own;
    nn_error_clear(e);
    int rc = node->type->init_ff(node, in, node->n_ff, e);
    if (in != shapes)
        nn_free(in);
    if (rc != NN_OK) {
        if (!e->msg[0])
            nn_error_set(e, rc, "init_ff failed");
        e->code = rc;
        return nn_error_prefix(e, "node '%s' (%s)", node->name,
                               node->type->name);
    }
    if (node->unknown_param[0])
        return unknown_param(node, "init_ff", err);
    if (!node->out_shape_set)
        return nn_error_set(err, NN_ERR_UNSUPPORTED, "node '%s': node type "
                            "'%s' is defective: its init_ff returned without "
                            "setting an output shape (a fault of the type or "
                            "its plugin, not of the request)", node->name,
                            node->type->name);
    return NN_OK;
}

static int init_node_fb(nn_node *node, nn_error *err)
{
    nn_shape shapes[64];
    nn_shape *in = node->n_fb <= 64 ? shapes
                                    : nn_malloc(sizeof(nn_shape) *
                                                (size_t)node->n_fb);
    if (!in)
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    for (int k = 0; k < node->n_fb; k++)
        in[k] = node->fb[k]->out_shape;
    /* The type may write to its record and return err->code: it gets a
     * real one even when the caller passed none. */
    nn_error own, *e = err ? err : &own;
    nn_error_clear(e);
    int rc = node->type->init_fb(node, in, node->n_fb, e);
    if (in != shapes)
        nn_free(in);
    if (rc != NN_OK) {
        if (!e->msg[0])
            nn_error_set(e, rc, "init_fb failed");
        e->code = rc;
        return nn_error_prefix(e, "node '%s' (%s)", node->name,
                               node->type->name);
    }
    if (node->unknown_param[0])
        return unknown_param(node, "init_fb", err);
    return NN_OK;
}

int nn_graph_set_limits(nn_graph *g, size_t max_params,
                        size_t max_session_floats, nn_error *err)
{
    if (g->built || g->build_failed)
        return nn_error_set(err, NN_ERR_STATE, "limits are set before the "
                            "graph is built");
    g->max_params = max_params;
    g->max_session_floats = max_session_floats;
    return NN_OK;
}

/* A graph with a sequence node runs node after node over all steps, which
 * feedback (step t + 1 of a node reading step t of a later one) cannot
 * follow; and such a node's type must be able to run a sequence. */
static int check_sequence_nodes(nn_graph *g, nn_error *err)
{
    g->sequence = NULL;
    for (int i = 0; i < g->n_nodes && !g->sequence; i++)
        if (g->order[i]->sequence)
            g->sequence = g->order[i];
    nn_node *seq = g->sequence;
    if (!seq)
        return NN_OK;
    for (int i = 0; i < g->n_nodes; i++) {
        const nn_node *n = g->order[i];
        if (!n->sequence)
            continue;
        if (n->type->api_version < 3 || !n->type->forward_seq)
            return nn_error_set(err, NN_ERR_INVALID, "node type '%s' is "
                                "defective: node '%s' asked to run over "
                                "whole sequences, but the type has no "
                                "forward_seq", n->type->name, n->name);
        if (n->n_states)
            return nn_error_set(err, NN_ERR_INVALID, "node type '%s' is "
                                "defective: node '%s' runs over whole "
                                "sequences, which keep no state, but it "
                                "declares some", n->type->name, n->name);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        nn_node *r = g->order[i];
        if (r->n_fb)
            return nn_error_set(err, NN_ERR_GRAPH, "node '%s' (%s) needs "
                                "whole sequences (it is bidirectional), so "
                                "the network can have no feedback edge; "
                                "'%s' receives feedback from '%s'",
                                seq->name, seq->type->name, r->name,
                                r->fb[0]->name);
    }
    return NN_OK;
}

int nn_graph_build(nn_graph *g, nn_error *err)
{
    if (g->built || g->build_failed)
        return nn_error_set(err, NN_ERR_STATE, "the graph was built already");
    if (!g->n_nodes)
        return nn_error_set(err, NN_ERR_GRAPH, "the graph has no nodes");
    adjacency adj = {NULL, NULL};
    int rc = check_required_params(g, err);
    if (rc == NN_OK)
        rc = check_connections(g, err);
    if (rc == NN_OK)
        rc = adjacency_build(g, &adj, err);
    if (rc == NN_OK)
        rc = check_cycles(g, &adj, err);
    if (rc == NN_OK)
        rc = check_feedback(g, &adj, err);
    if (rc == NN_OK)
        rc = make_order(g, &adj, err);
    if (rc == NN_OK)
        rc = collect_ends(g, err);
    adjacency_free(&adj);
    if (rc != NN_OK) {
        /* Nothing was initialised: the description may still be fixed. */
        nn_free(g->order);
        nn_free(g->entries);
        nn_free(g->exits);
        g->order = g->entries = g->exits = NULL;
        g->n_entries = g->n_exits = 0;
        return rc;
    }
    for (int i = 0; i < g->n_nodes && rc == NN_OK; i++)
        rc = init_node_ff(g->order[i], err);
    for (int i = 0; i < g->n_nodes && rc == NN_OK; i++)
        if (g->order[i]->n_fb)
            rc = init_node_fb(g->order[i], err);
    if (rc == NN_OK)
        rc = check_sequence_nodes(g, err);
    if (rc != NN_OK) {
        g->build_failed = 1;
        return rc;
    }
    g->built = 1;
    return NN_OK;
}

nn_node *nn_graph_sequence_node(const nn_graph *g)
{
    return g->built ? g->sequence : NULL;
}

int nn_graph_is_built(const nn_graph *g)
{
    return g->built;
}

/* ------------------------------------------------------------ inspection */

int nn_graph_node_count(const nn_graph *g) { return g->n_nodes; }
uint64_t nn_graph_seed(const nn_graph *g) { return g->seed; }

nn_node *nn_graph_node_at(const nn_graph *g, int i)
{
    return (i >= 0 && i < g->n_nodes) ? g->nodes[i] : NULL;
}

nn_node *nn_graph_find(const nn_graph *g, const char *name)
{
    if (!name)
        return NULL;
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i]->name, name) == 0)
            return g->nodes[i];
    return NULL;
}

nn_node *nn_graph_order_at(const nn_graph *g, int i)
{
    return (g->built && i >= 0 && i < g->n_nodes) ? g->order[i] : NULL;
}

int nn_graph_entry_count(const nn_graph *g) { return g->n_entries; }
int nn_graph_exit_count(const nn_graph *g) { return g->n_exits; }

nn_node *nn_graph_entry_at(const nn_graph *g, int i)
{
    return (i >= 0 && i < g->n_entries) ? g->entries[i] : NULL;
}

nn_node *nn_graph_exit_at(const nn_graph *g, int i)
{
    return (i >= 0 && i < g->n_exits) ? g->exits[i] : NULL;
}

int nn_node_ff_count(const nn_node *node) { return node->n_ff; }
int nn_node_fb_count(const nn_node *node) { return node->n_fb; }

nn_node *nn_node_ff_at(const nn_node *node, int i)
{
    return (i >= 0 && i < node->n_ff) ? node->ff[i] : NULL;
}

nn_node *nn_node_fb_at(const nn_node *node, int i)
{
    return (i >= 0 && i < node->n_fb) ? node->fb[i] : NULL;
}

nn_shape nn_node_output_shape(const nn_node *node) { return node->out_shape; }

const char *nn_node_param_text(const nn_node *node, const char *name)
{
    if (strcmp(name, "trainable") == 0)
        return node->trainable ? "true" : "false";
    int idx = nn_param_index(node->type, name);
    return idx < 0 ? NULL : node->params[idx].text;
}

int nn_node_weight_count(const nn_node *node) { return node->n_weights; }

nn_tensor *nn_node_weight_at(nn_node *node, int i)
{
    return (i >= 0 && i < node->n_weights) ? &node->weights[i]->t : NULL;
}

const char *nn_node_weight_name(const nn_node *node, int i)
{
    return (i >= 0 && i < node->n_weights) ? node->weights[i]->name : NULL;
}

int nn_node_weight_trainable(const nn_node *node, int i)
{
    return (i >= 0 && i < node->n_weights) ? node->weights[i]->trainable : 0;
}

nn_tensor *nn_node_weight(nn_node *node, const char *name)
{
    for (int i = 0; i < node->n_weights; i++)
        if (strcmp(node->weights[i]->name, name) == 0)
            return &node->weights[i]->t;
    return NULL;
}

size_t nn_node_param_count(const nn_node *node)
{
    size_t n = 0;
    for (int i = 0; i < node->n_weights; i++)
        n += nn_tensor_numel(&node->weights[i]->t);
    return n;
}

int nn_node_state_count(const nn_node *node) { return node->n_states; }

const char *nn_node_state_name(const nn_node *node, int i)
{
    return (i >= 0 && i < node->n_states) ? node->states[i].name : NULL;
}

nn_shape nn_node_state_shape(const nn_node *node, int i)
{
    if (i >= 0 && i < node->n_states)
        return node->states[i].shape;
    return nn_shape_make(0, NULL);
}

/* ---------------------------------------------- what node types call */

const char *nn_node_name(const nn_node *node) { return node->name; }
const nn_node_type *nn_node_type_of(const nn_node *node) { return node->type; }
void *nn_node_priv(nn_node *node) { return node->priv; }
const void *nn_node_priv_const(const nn_node *node) { return node->priv; }
int nn_node_trainable(const nn_node *node) { return node->trainable; }
nn_rng *nn_node_init_rng(nn_node *node) { return &node->init_rng; }

static const nn_param_val *param_val(const nn_node *node, const char *name)
{
    int idx = nn_param_index(node->type, name);
    if (idx < 0 && !node->graph->built && !node->unknown_param[0]) {
        /* Only while building (one thread), when the node is the graph's
         * to change: the build then refuses it. */
        nn_node *n = (nn_node *)node;
        snprintf(n->unknown_param, sizeof n->unknown_param, "%s", name);
    }
    return idx < 0 ? NULL : &node->params[idx];
}

long nn_node_param_int(const nn_node *node, const char *name)
{
    const nn_param_val *v = param_val(node, name);
    return v ? v->i : 0;
}

double nn_node_param_float(const nn_node *node, const char *name)
{
    const nn_param_val *v = param_val(node, name);
    return v ? v->f : 0.0;
}

int nn_node_param_bool(const nn_node *node, const char *name)
{
    if (strcmp(name, "trainable") == 0)
        return node->trainable;
    const nn_param_val *v = param_val(node, name);
    return v ? v->b : 0;
}

const char *nn_node_param_str(const nn_node *node, const char *name)
{
    const nn_param_val *v = param_val(node, name);
    return v ? v->text : NULL;
}

nn_shape nn_node_param_shape(const nn_node *node, const char *name)
{
    const nn_param_val *v = param_val(node, name);
    return v ? v->shape : nn_shape_make(0, NULL);
}

nn_init nn_node_param_init(const nn_node *node, const char *name)
{
    const nn_param_val *v = param_val(node, name);
    nn_init zero = {NN_INIT_ZEROS, 0, 0};
    return v ? v->init : zero;
}

int nn_node_param_floats(const nn_node *node, const char *name,
                         const double **values)
{
    const nn_param_val *v = param_val(node, name);
    *values = v ? v->vec : NULL;
    return v ? v->n_vec : 0;
}

void nn_node_set_output_shape(nn_node *node, const nn_shape *shape)
{
    node->out_shape = *shape;
    node->out_shape_set = 1;
}

size_t nn_node_params_left(const nn_node *node)
{
    const nn_graph *g = node->graph;
    if (!g->max_params)
        return SIZE_MAX;
    return g->n_params < g->max_params ? g->max_params - g->n_params : 0;
}

nn_tensor *nn_node_add_weight(nn_node *node, const char *name,
                              const nn_shape *shape, const nn_init *init,
                              int trainable, nn_error *err)
{
    if (!name || !name[0] || strlen(name) >= NN_NAME_MAX) {
        nn_error_set(err, NN_ERR_INVALID, "weight name is empty or too long");
        return NULL;
    }
    if (nn_node_weight(node, name)) {
        nn_error_set(err, NN_ERR_EXISTS, "weight '%s' is created twice", name);
        return NULL;
    }
    for (int d = 0; d < shape->ndim; d++)
        if (shape->dims[d] < 1) {
            char buf[96];
            nn_error_set(err, NN_ERR_SHAPE, "weight '%s' has an empty shape %s",
                         name, nn_shape_str(shape, buf, sizeof buf));
            return NULL;
        }
    nn_graph *g = node->graph;
    size_t numel = nn_shape_numel(shape);
    if (g->max_params && (numel > g->max_params ||
                          g->n_params > g->max_params - numel)) {
        char buf[96];
        nn_error_set(err, NN_ERR_LIMIT, "weight '%s' %s would bring the "
                     "network past %zu parameters, its limit", name,
                     nn_shape_str(shape, buf, sizeof buf), g->max_params);
        return NULL;
    }
    if (nn_grow((void **)&node->weights, &node->cap_weights,
                node->n_weights + 1, sizeof *node->weights, err) != NN_OK)
        return NULL;
    nn_weight *w = nn_calloc(1, sizeof *w);
    if (!w) {
        nn_error_set(err, NN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(w->name, sizeof w->name, "%s", name);
    w->trainable = trainable && node->trainable;
    if (nn_tensor_alloc(&w->t, shape, err) != NN_OK) {
        nn_free(w);
        return NULL;
    }
    if (init && nn_init_fill(init, &w->t, &node->init_rng, err) != NN_OK) {
        nn_error_prefix(err, "weight '%s'", name);
        nn_tensor_release(&w->t);
        nn_free(w);
        return NULL;
    }
    node->weights[node->n_weights++] = w;
    g->n_params += numel;
    return &w->t;
}

int nn_node_add_state(nn_node *node, const char *name, const nn_shape *shape,
                      nn_error *err)
{
    if (!name || !name[0] || strlen(name) >= NN_NAME_MAX)
        return nn_error_set(err, NN_ERR_INVALID, "state name is empty or too "
                            "long");
    if (shape->ndim >= NN_MAX_DIMS)
        return nn_error_set(err, NN_ERR_SHAPE, "state '%s' has too many axes",
                            name);
    int rc = nn_grow((void **)&node->states, &node->cap_states,
                     node->n_states + 1, sizeof *node->states, err);
    if (rc != NN_OK)
        return rc;
    nn_state_decl *s = &node->states[node->n_states];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->shape = *shape;
    return node->n_states++;
}

void nn_node_set_work(nn_node *node, size_t floats_per_row)
{
    node->work_per_row = floats_per_row;
}

void nn_node_set_rowwise(nn_node *node, int rowwise)
{
    node->rowwise = rowwise != 0;
}

int nn_node_rowwise(const nn_node *node) { return node->rowwise; }

void nn_node_set_sequence(nn_node *node, int sequence)
{
    node->sequence = sequence != 0;
    if (node->sequence)
        node->rowwise = 0;
}

int nn_node_sequence(const nn_node *node) { return node->sequence; }
