/*
 * api_render.c — the node graph as Graphviz DOT, or as a standalone SVG
 * drawn by a small layered layout (column = longest feedforward path from
 * an input), so no Graphviz is needed at run time. Feedforward edges are
 * solid; feedback edges dashed, red, and curved.
 */
#include "api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct strbuf {
    char *data;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_printf(strbuf *sb, const char *fmt, ...)
{
    if (sb->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(sb->data ? sb->data + sb->len : NULL,
                          sb->data ? sb->cap - sb->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            sb->failed = 1;
            return;
        }
        if (sb->data && sb->len + (size_t)n < sb->cap) {
            sb->len += (size_t)n;
            return;
        }
        size_t cap = sb->cap ? sb->cap * 2 : 4096;
        while (cap <= sb->len + (size_t)n)
            cap *= 2;
        char *p = realloc(sb->data, cap);
        if (!p) {
            sb->failed = 1;
            return;
        }
        sb->data = p;
        sb->cap = cap;
    }
}

static char *sb_finish(strbuf *sb)
{
    if (sb->failed) {
        free(sb->data);
        return NULL;
    }
    return sb->data;
}

/* "(None, 10)": the batch axis first, as BrainPy prints shapes. */
static void batch_shape_text(const nn_shape *s, char *buf, size_t size)
{
    size_t len = (size_t)snprintf(buf, size, "(None");
    for (int d = 0; d < s->ndim && len < size; d++)
        len += (size_t)snprintf(buf + len, size - len, ", %d", s->dims[d]);
    if (len < size)
        snprintf(buf + len, size - len, ")");
}

/* Node names are [A-Za-z0-9_.-]; escaping anyway keeps the output valid if
 * that rule ever widens. */
static void escaped(strbuf *sb, const char *s, int xml)
{
    for (; *s; s++) {
        if (xml && *s == '<')
            sb_printf(sb, "&lt;");
        else if (xml && *s == '>')
            sb_printf(sb, "&gt;");
        else if (xml && *s == '&')
            sb_printf(sb, "&amp;");
        else if (*s == '"')
            sb_printf(sb, xml ? "&quot;" : "\\\"");
        else if (!xml && *s == '\\')
            sb_printf(sb, "\\\\");
        else
            sb_printf(sb, "%c", *s);
    }
}

char *api_graph_dot(const nn_graph *g)
{
    strbuf sb = {0};
    char shape[96];
    sb_printf(&sb, "digraph nerved {\n  rankdir=LR;\n"
                   "  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n");
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        nn_node *node = nn_graph_node_at(g, i);
        nn_shape s = nn_node_output_shape(node);
        batch_shape_text(&s, shape, sizeof shape);
        sb_printf(&sb, "  \"");
        escaped(&sb, nn_node_name(node), 0);
        sb_printf(&sb, "\" [label=\"");
        escaped(&sb, nn_node_name(node), 0);
        sb_printf(&sb, "\\n%s\\n%s\"];\n", nn_node_type_of(node)->name, shape);
    }
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        nn_node *node = nn_graph_node_at(g, i);
        for (int k = 0; k < nn_node_ff_count(node); k++) {
            sb_printf(&sb, "  \"");
            escaped(&sb, nn_node_name(nn_node_ff_at(node, k)), 0);
            sb_printf(&sb, "\" -> \"");
            escaped(&sb, nn_node_name(node), 0);
            sb_printf(&sb, "\";\n");
        }
        for (int k = 0; k < nn_node_fb_count(node); k++) {
            sb_printf(&sb, "  \"");
            escaped(&sb, nn_node_name(nn_node_fb_at(node, k)), 0);
            sb_printf(&sb, "\" -> \"");
            escaped(&sb, nn_node_name(node), 0);
            sb_printf(&sb, "\" [style=dashed, color=red, constraint=false, "
                           "label=\"feedback\"];\n");
        }
    }
    sb_printf(&sb, "}\n");
    return sb_finish(&sb);
}

enum { BOX_W = 170, BOX_H = 58, GAP_X = 80, GAP_Y = 36, MARGIN = 30 };

char *api_graph_svg(const nn_graph *g)
{
    int n = nn_graph_node_count(g);
    int *layer = calloc((size_t)n + 1, sizeof(int));
    int *row = calloc((size_t)n + 1, sizeof(int));
    int *count = calloc((size_t)n + 1, sizeof(int));
    if (!layer || !row || !count) {
        free(layer), free(row), free(count);
        return NULL;
    }
    /* Execution order puts inputs before consumers: one pass suffices. */
    int layers = 1, rows = 1;
    for (int i = 0; i < n; i++) {
        nn_node *node = nn_graph_order_at(g, i);
        int index = 0;
        for (int k = 0; k < n; k++)
            if (nn_graph_node_at(g, k) == node)
                index = k;
        int l = 0;
        for (int k = 0; k < nn_node_ff_count(node); k++)
            for (int m = 0; m < n; m++)
                if (nn_graph_node_at(g, m) == nn_node_ff_at(node, k) &&
                    layer[m] + 1 > l)
                    l = layer[m] + 1;
        layer[index] = l;
        row[index] = count[l]++;
        if (l + 1 > layers)
            layers = l + 1;
        if (count[l] > rows)
            rows = count[l];
    }
    int width = 2 * MARGIN + layers * BOX_W + (layers - 1) * GAP_X;
    int height = 2 * MARGIN + rows * BOX_H + (rows - 1) * GAP_Y + 40;
    strbuf sb = {0};
    char shape[96];
    sb_printf(&sb,
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
              "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
              "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"Helvetica, "
              "Arial, sans-serif\" font-size=\"12\">\n"
              "<defs><marker id=\"ff\" markerWidth=\"10\" markerHeight=\"8\" "
              "refX=\"9\" refY=\"4\" orient=\"auto\"><path d=\"M0,0 L10,4 "
              "L0,8 z\" fill=\"#333\"/></marker><marker id=\"fb\" "
              "markerWidth=\"10\" markerHeight=\"8\" refX=\"9\" refY=\"4\" "
              "orient=\"auto\"><path d=\"M0,0 L10,4 L0,8 z\" "
              "fill=\"#c62828\"/></marker></defs>\n"
              "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
              width, height, width, height);
#define BOX_X(i) (MARGIN + layer[i] * (BOX_W + GAP_X))
#define BOX_Y(i) (MARGIN + row[i] * (BOX_H + GAP_Y))
    for (int i = 0; i < n; i++) {
        nn_node *node = nn_graph_node_at(g, i);
        for (int k = 0; k < nn_node_ff_count(node); k++) {
            int src = 0;
            for (int m = 0; m < n; m++)
                if (nn_graph_node_at(g, m) == nn_node_ff_at(node, k))
                    src = m;
            sb_printf(&sb, "<line class=\"ff\" x1=\"%d\" y1=\"%d\" x2=\"%d\" "
                      "y2=\"%d\" stroke=\"#333\" stroke-width=\"1.5\" "
                      "marker-end=\"url(#ff)\"/>\n", BOX_X(src) + BOX_W,
                      BOX_Y(src) + BOX_H / 2, BOX_X(i), BOX_Y(i) + BOX_H / 2);
        }
        for (int k = 0; k < nn_node_fb_count(node); k++) {
            int src = 0;
            for (int m = 0; m < n; m++)
                if (nn_graph_node_at(g, m) == nn_node_fb_at(node, k))
                    src = m;
            /* From the sender's bottom back to the receiver's bottom, bowed
             * below both. */
            int x1 = BOX_X(src) + BOX_W / 2, y1 = BOX_Y(src) + BOX_H;
            int x2 = BOX_X(i) + BOX_W / 2, y2 = BOX_Y(i) + BOX_H;
            int dip = (y1 > y2 ? y1 : y2) + GAP_Y;
            sb_printf(&sb, "<path class=\"fb\" d=\"M%d,%d C%d,%d %d,%d %d,%d\" "
                      "fill=\"none\" stroke=\"#c62828\" stroke-width=\"1.5\" "
                      "stroke-dasharray=\"6,4\" marker-end=\"url(#fb)\"/>\n",
                      x1, y1, x1, dip, x2, dip, x2, y2);
        }
    }
    for (int i = 0; i < n; i++) {
        nn_node *node = nn_graph_node_at(g, i);
        nn_shape s = nn_node_output_shape(node);
        batch_shape_text(&s, shape, sizeof shape);
        int x = BOX_X(i), y = BOX_Y(i);
        sb_printf(&sb, "<g class=\"node\"><rect x=\"%d\" y=\"%d\" width=\"%d\" "
                  "height=\"%d\" rx=\"8\" fill=\"#e3f2fd\" stroke=\"#1565c0\"/>"
                  "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" "
                  "font-weight=\"bold\">", x, y, BOX_W, BOX_H, x + BOX_W / 2,
                  y + 18);
        escaped(&sb, nn_node_name(node), 1);
        sb_printf(&sb, "</text><text x=\"%d\" y=\"%d\" text-anchor=\"middle\">",
                  x + BOX_W / 2, y + 34);
        escaped(&sb, nn_node_type_of(node)->name, 1);
        sb_printf(&sb, "</text><text x=\"%d\" y=\"%d\" text-anchor=\"middle\" "
                  "fill=\"#555\">%s</text></g>\n", x + BOX_W / 2, y + 50, shape);
    }
#undef BOX_X
#undef BOX_Y
    sb_printf(&sb, "<text x=\"%d\" y=\"%d\" fill=\"#555\">solid: feedforward "
              "&#8594;   dashed red: feedback (one step late)</text>\n",
              MARGIN, height - 14);
    sb_printf(&sb, "</svg>\n");
    free(layer), free(row), free(count);
    return sb_finish(&sb);
}
