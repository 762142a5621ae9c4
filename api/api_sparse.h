/*
 * api_sparse.h — sparse matrices in parameter documents.
 *
 * A weight may be given, and a weight stored sparse is exported, as
 *
 *   {"format": "csc", "shape": [rows, cols], "indptr": [cols + 1 offsets],
 *    "indices": [nnz row indices], "data": [nnz values]}
 *   {"format": "csr", ... "indptr": [rows + 1], "indices": [nnz columns]}
 *   {"format": "coo", "shape": [rows, cols], "row": [nnz], "col": [nnz],
 *    "data": [nnz]}
 *
 * always of nerved's matrix M (y = x · M, rows the inputs, cols the
 * units: the dense form's layout). ReservoirPy's W is Mᵀ, so SciPy's CSR
 * arrays of that W are M's "csc" arrays unchanged. Entries may come in any
 * order within a column (csc), a row (csr) or at all (coo); they are
 * sorted, and a repeated (row, column) is refused, as are indices out of
 * range, offsets that do not add up and values that are not finite float32
 * — each naming the weight, the array and the position.
 */
#ifndef API_SPARSE_H
#define API_SPARSE_H

#include "api_codec.h"

/* Whether the weight value at pos is the sparse form (an object with a
 * "format" member). */
int api_sparse_is_form(const api_json *j, size_t pos);

/* Reads the sparse form at pos for weight w of node (where names it in
 * messages). A weight stored sparse gets *sparse (its new pattern and
 * values, checked against the network's parameter cap by non-zeros); a
 * dense 2-d weight gets *dense, the matrix with zeros off the pattern. The
 * other is NULL; the caller owns what is set. */
int api_sparse_read(const api_json *j, size_t pos, const char *where,
                    const nn_node *node, int w, nn_sparse_values **sparse,
                    nn_tensor **dense, api_error *err);

/* The non-zeros of t, a dense (rows, cols) matrix, as the new pattern and
 * values of sparse weight w of node. */
int api_sparse_from_dense(const nn_node *node, int w, const nn_tensor *t,
                          const char *where, nn_sparse_values **out,
                          api_error *err);

/* Appends sparse weight w of node in the "csc" form without "trainable"
 * or the closing brace: a copy of the pattern and values, so the encoder
 * is independent of the node after. */
void api_enc_sparse_weight(api_enc *e, nn_node *node, int w);

/* The 4-byte words the export of sparse weight w adds to its values (its
 * offsets and indices), for the answer's memory charge. */
size_t api_sparse_extra_words(const nn_node *node, int w);

#endif
