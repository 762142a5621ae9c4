/*
 * sparse_weight.c — replacing the pattern of a weight a node stores sparse
 * (see nn_graph.h). The node keeps its pattern in its private data and
 * tells the graph where (nn_node_set_weight_pattern), so that import,
 * export, cloning and the data directory can treat the pattern as part of
 * the weight without knowing the node's type.
 *
 * A replacement is checked and packed first, with no lock, and swapped in
 * afterwards by pointer moves alone: the swap cannot fail, so an import
 * that was accepted is never left half done.
 */
#include "nn_internal.h"
#include "nodes/sparse.h"

#include <math.h>
#include <string.h>

struct nn_sparse_values {
    nn_csr pattern;
    float *data; /* nnz values, in the pattern's order */
};

void nn_node_set_weight_pattern(nn_node *node, int w, nn_csr *pattern)
{
    if (w >= 0 && w < node->n_weights)
        node->weights[w]->pattern = pattern;
}

static const nn_csr *pattern_of(const nn_node *node, int w)
{
    return w >= 0 && w < node->n_weights ? node->weights[w]->pattern : NULL;
}

int nn_node_weight_sparse(const nn_node *node, int w, int *rows, int *cols)
{
    const nn_csr *m = pattern_of(node, w);
    if (!m)
        return 0;
    if (rows)
        *rows = m->rows;
    if (cols)
        *cols = m->cols;
    return 1;
}

void nn_node_weight_pattern(const nn_node *node, int w, size_t *ptr,
                            uint32_t *row)
{
    const nn_csr *m = pattern_of(node, w);
    if (!m)
        return;
    memcpy(ptr, m->ptr, ((size_t)m->cols + 1) * sizeof *ptr);
    for (size_t k = 0; k < m->nnz; k++)
        row[k] = (uint32_t)nn_csr_idx(m, k);
}

void nn_sparse_values_free(nn_sparse_values *v)
{
    if (!v)
        return;
    nn_csr_release(&v->pattern);
    nn_free(v->data);
    nn_free(v);
}

size_t nn_sparse_values_nnz(const nn_sparse_values *v)
{
    return v->pattern.nnz;
}

int nn_graph_params_fit(const nn_graph *g, size_t removed, size_t added,
                        nn_error *err)
{
    size_t others = g->n_params - removed;
    if (g->max_params && (added > g->max_params ||
                          others > g->max_params - added))
        return nn_error_set(err, NN_ERR_LIMIT, "%zu entries would bring the "
                            "network past %zu parameters, its limit (%zu "
                            "held by its other weights)", added,
                            g->max_params, others);
    return NN_OK;
}

/* Where the arrays break the rules, or NN_OK. */
static int check_pattern(const nn_csr *old, const size_t *ptr,
                         const uint32_t *row, const float *data, size_t nnz,
                         nn_error *err)
{
    int cols = old->cols;
    if (ptr[0] != 0)
        return nn_error_set(err, NN_ERR_INVALID, "the column offsets must "
                            "start at 0, not %zu", ptr[0]);
    for (int j = 0; j < cols; j++) {
        if (ptr[j + 1] < ptr[j] || ptr[j + 1] > nnz)
            return nn_error_set(err, NN_ERR_INVALID, "column offset %d is "
                                "%zu: offsets must be nondecreasing and at "
                                "most nnz (%zu)", j + 1, ptr[j + 1], nnz);
        for (size_t k = ptr[j]; k < ptr[j + 1]; k++) {
            if (row[k] >= (uint32_t)old->rows)
                return nn_error_set(err, NN_ERR_INVALID, "entry %zu: row %u "
                                    "is out of range (the matrix has %d "
                                    "rows)", k, row[k], old->rows);
            if (k > ptr[j] && row[k] <= row[k - 1])
                return nn_error_set(err, NN_ERR_INVALID, "entry %zu: row %u "
                                    "after row %u in column %d; rows must "
                                    "increase strictly within a column", k,
                                    row[k], row[k - 1], j);
            if (!isfinite(data[k]))
                return nn_error_set(err, NN_ERR_INVALID, "entry %zu (row %u, "
                                    "column %d) is not finite", k, row[k], j);
        }
    }
    if (ptr[cols] != nnz)
        return nn_error_set(err, NN_ERR_INVALID, "the last column offset is "
                            "%zu, the pattern has %zu entries", ptr[cols],
                            nnz);
    return NN_OK;
}

int nn_sparse_values_new(const nn_node *node, int w, const size_t *ptr,
                         const uint32_t *row, const float *data, size_t nnz,
                         nn_sparse_values **out, nn_error *err)
{
    *out = NULL;
    const nn_csr *old = pattern_of(node, w);
    if (!old)
        return nn_error_set(err, NN_ERR_UNSUPPORTED, "weight %d of node '%s' "
                            "is not stored sparse", w, node->name);
    if (nnz == 0)
        return nn_error_set(err, NN_ERR_INVALID, "a sparse weight needs at "
                            "least one entry");
    if (nnz > (size_t)INT32_MAX || nnz > (uint64_t)old->rows * old->cols)
        return nn_error_set(err, NN_ERR_INVALID, "%zu entries do not fit a "
                            "%d x %d matrix", nnz, old->rows, old->cols);
    /* The count alone; with the network's other weights it is checked
     * where no swap can run meanwhile (nn_graph_params_fit). */
    const nn_graph *g = node->graph;
    if (g->max_params && nnz > g->max_params)
        return nn_error_set(err, NN_ERR_LIMIT, "%zu entries would bring the "
                            "network past %zu parameters, its limit", nnz,
                            g->max_params);
    if (check_pattern(old, ptr, row, data, nnz, err) != NN_OK)
        return err->code;
    nn_sparse_values *v = nn_calloc(1, sizeof *v);
    if (!v)
        return nn_error_set(err, NN_ERR_NOMEM, "out of memory");
    nn_csr *m = &v->pattern;
    v->data = nn_malloc(nnz * sizeof *v->data);
    int rc = v->data ? nn_csr_from_arrays(m, old->rows, old->cols, ptr, row,
                                          nnz, err)
                     : nn_error_set(err, NN_ERR_NOMEM, "out of memory for "
                                    "%zu entries", nnz);
    if (rc != NN_OK) {
        nn_sparse_values_free(v);
        return rc;
    }
    memcpy(v->data, data, nnz * sizeof *v->data);
    /* Sessions sized their scratch from the pattern they were made with. */
    if (nn_csr_matmul_work(m) > nn_csr_matmul_work(old)) {
        nn_sparse_values_free(v);
        return nn_error_set(err, NN_ERR_UNSUPPORTED, "the new pattern needs "
                            "more scratch than the node's sessions hold");
    }
    *out = v;
    return NN_OK;
}

void nn_node_weight_swap_sparse(nn_node *node, int w, nn_sparse_values *v)
{
    nn_weight *wt = node->weights[w];
    nn_csr *m = wt->pattern;
    nn_graph *g = node->graph;
    g->n_params = g->n_params - m->nnz + v->pattern.nnz;
    nn_csr held = *m;
    float *held_data = wt->t.data;
    *m = v->pattern;
    int n = (int)m->nnz;
    wt->t.shape = nn_shape_make(1, &n);
    wt->t.data = v->data;
    wt->t.owns_data = 1;
    v->pattern = held;
    v->data = held_data;
}
