/*
 * api_codec.h — bulk numbers on the wire without a tree of JSON nodes:
 * shortest round-trip float32 text, a correct fast decimal reader, a pull
 * reader over the body text, a pushed reader that takes the body as it
 * arrives and keeps its numbers as float32 instead of text (for the pull
 * reader to read), a growable output buffer and a chunked
 * encoder that writes a document piece by piece into the caller's buffer
 * (so a response of millions of numbers is never whole in memory as text).
 *
 * cJSON stays for documents (graph definitions, fit requests); these are
 * for the request and response bodies that are mostly numbers.
 */
#ifndef API_CODEC_H
#define API_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "api.h"

/* ------------------------------------------------------------ numbers */

/* Longest text api_write_float produces ("-1.17549435e-38"), plus room. */
#define API_FLOAT_MAX 24

/* Writes v as the fewest significant digits that read back (strtof) as
 * the same float, in %g's layout (exponent form below 1e-4 and from
 * 10^max(digits, 6) up: "1e-07", "1.5e+10"), so the text is what the
 * former %.6g..%.9g search gave. -0 is "-0"; NaN and infinities, which
 * JSON cannot hold, are "null". buf needs API_FLOAT_MAX bytes, all of which
 * it may overwrite; returns the length of the text (no terminating NUL). */
size_t api_write_float(float v, char *buf);

/* Reads one JSON number (exactly JSON's grammar: -?(0|[1-9][0-9]*)
 * (.[0-9]+)?([eE][+-]?[0-9]+)?) from s[0..len) and rounds it correctly to
 * float32, as strtof would. Returns the number of bytes used, or 0 when
 * s does not start with a JSON number. *out may be an infinity when the
 * value is beyond float32's range (the caller refuses it) and is a zero of
 * the right sign below the smallest subnormal. */
size_t api_read_float(const char *s, size_t len, float *out);

/* -------------------------------------------------------- pull reader */

/* Deeper nesting is refused (as the HTTP layer refuses it for cJSON). */
#define API_JSON_MAX_DEPTH 64

/* Checks that s[0..len) is one JSON document (RFC 8259: strings without
 * raw control characters, valid escapes and \u surrogate pairs, numbers
 * in JSON's grammar, at most API_JSON_MAX_DEPTH levels) with only white
 * space after it. Returns 0, or -1 with *at set to the byte offset of the
 * first error and *trailing set when the document was complete and more
 * text followed it. */
int api_json_check(const char *s, size_t len, size_t *at, int *trailing);
/* The byte offset + 1 of the first \u0000 escape inside a string of the
 * JSON text s[0..len), or 0. cJSON ends its strings there, so "a\u0000b"
 * would silently be "a": a name or id other than the one sent. */
size_t api_json_nul_escape(const char *s, size_t len);

typedef struct api_jsondoc api_jsondoc;

/* A position in a body checked by api_json_check. The readers below also
 * stay inside s[0..len) on text that was not checked (they fail with
 * bad_json then), so a mistake cannot read past the body. */
typedef struct api_json {
    const char *s;
    size_t len;
    /* The pushed document whose kept text s is (api_jsondoc_json), or
     * NULL for plain text: a marker byte means a blob only in such a
     * text. Borrowed. */
    const struct api_jsondoc *doc;
} api_json;

/* A copy of j's text (NUL-terminated, the caller frees it) in which the
 * marker of each array the pushed reader read into float32 (j->doc) is
 * the JSON string "\u0001k", k its index in document order, so that
 * cJSON can parse the rest; *marks gets each marker's position in j (the
 * caller frees it), *n how many. Plain text comes back as it is. NULL when
 * out of memory. */
char *api_json_naming_blobs(const api_json *j, size_t **marks, int *n);
/* How the array at a marker reads as a flat list of numbers. */
enum {
    API_JSON_FLAT_OK = 0,
    API_JSON_FLAT_NOT_FINITE, /* an element is not a finite number */
    API_JSON_FLAT_UNEVEN,     /* its arrays are nested unevenly */
};
/* The numbers of the array at position p of j (a marker, see above),
 * flat in document order: how many in *count, and, when that is numel,
 * the numbers in dst. Returns one of the API_JSON_FLAT_ verdicts; the
 * caller words the error. */
int api_json_blob_floats(const api_json *j, size_t p, float *dst,
                         size_t numel, size_t *count);

/* The first non-space byte at or after pos ('{', '[', '"', 't', 'f',
 * 'n', '-' or a digit), or 0 at the end. */
int api_json_kind(const api_json *j, size_t pos);
/* The position just after the value at pos (white space skipped first),
 * or (size_t)-1 when it runs past the text. Brackets are matched outside
 * strings but nothing is checked again: that is api_json_check's. */
size_t api_json_skip(const api_json *j, size_t pos);

/* Walks the members of the object at pos: start with *it = 0 (after
 * checking api_json_kind is '{'). Each call that returns 1 gives the
 * member's key, unescaped and NUL-terminated into key (cut to keycap - 1
 * bytes; *cut set if it was longer), and the position of its value.
 * Returns 0 after the last member, -1 on malformed text. */
int api_json_member(const api_json *j, size_t pos, size_t *it, char *key,
                    size_t keycap, int *cut, size_t *value);
/* Walks the elements of the array at pos written as text (not one the
 * pushed reader kept as floats): start with *it = 0; each call that
 * returns 1 gives the position of the next element's value. Returns 0
 * after the last, -1 on malformed text. */
int api_json_element(const api_json *j, size_t pos, size_t *it,
                     size_t *value);
/* The value of the first member named key of the object at pos, or
 * (size_t)-1 when there is none (as cJSON_GetObjectItemCaseSensitive). */
size_t api_json_find(const api_json *j, size_t pos, const char *key);
/* The string value at pos, unescaped (UTF-8) and NUL-terminated into out,
 * cut to cap - 1 bytes with *cut set when longer or when it holds a
 * \u0000 (which a C string cannot). Returns the length written, or
 * (size_t)-1 when the value at pos is not a string. */
size_t api_json_string(const api_json *j, size_t pos, char *out, size_t cap,
                       int *cut);

/* Reads a tensor written as nested arrays or {"shape", "data"} (with
 * ignore_trainable, a "trainable" member is also allowed and ignored, as
 * parameter documents carry it) straight into float32, with the rules of
 * api_tensor_from_json: no ragged arrays, non-numbers, non-finite values,
 * empty axes or more than lim->max_tensor_elems elements; `where` names
 * the value in messages, which also give the element's place
 * ("inputs.x[0][3]") and byte offset. On success *out is a new tensor the
 * caller frees. */
int api_json_tensor(const api_json *j, size_t pos, const char *where,
                    const api_limits *lim, int ignore_trainable,
                    nn_tensor **out, api_error *err);

/* ---------------------------------------- binary tensors (framing) */

/* The binary tensors of a body in the binary tensor framing (api_binary.h):
 * the JSON header's tensor objects {"shape": [...], "datatype": "FP32",
 * "binary_data_size": bytes} (datatype optional) have no "data"; their
 * bytes follow the header, little-endian float32, row-major, one tensor
 * after another in the order the objects begin in the header. */
typedef struct api_json_blobs api_json_blobs;

/* Indexes every object of the checked header j that has a
 * "binary_data_size" member against the len bytes of data after it. Fails
 * with 400 when a size is not a byte count, or when the sizes do not add
 * up to len exactly (truncated, or bytes left over). On success *out is an
 * index the caller frees (api_json_blobs_free); it borrows data and j's
 * text, which must outlive it. */
int api_json_blobs_index(const api_json *j, const void *data, size_t len,
                         api_json_blobs **out, api_error *err);
void api_json_blobs_free(api_json_blobs *b);
/* The count float32 values of the tensor object at pos into dst. Fails
 * with 400 when b (NULL: the body was not framed) has no blob for that
 * object, when its size is not count * 4, or when a value is not finite.
 * where names the tensor in messages. */
int api_json_blobs_take(const api_json_blobs *b, const api_json *j,
                        size_t pos, float *dst, size_t count,
                        const char *where, api_error *err);

/* The readers below with the tensors of a framed body: bin NULL refuses
 * binary_data_size (the body was not framed), as the plain readers do. */
int api_json_tensor_bin(const api_json *j, const api_json_blobs *bin,
                        size_t pos, const char *where, const api_limits *lim,
                        int ignore_trainable, nn_tensor **out,
                        api_error *err);

/* ------------------------------------------------------ pushed reader */

/* A body read as it arrives, in chunks of any size, without keeping its
 * text whole: the document is checked as it goes (with api_json_check's
 * verdict and byte offsets), and every large array of numbers directly
 * under an object member (a tensor, nested or a "data" array) is read
 * into float32 as its text passes and kept as a blob in place of its
 * text. What is kept is the rest of the text (names, shapes, small
 * arrays) with one marker byte per blob; api_jsondoc_json gives it to the
 * pull reader above, which reads blobs as it reads text, with the same
 * results and the same messages and byte offsets of the body. A number
 * split across chunks is carried over, nothing else is. */

/* Arrays whose text is shorter than this stay text (kept whole, read by
 * the pull reader as text). */
#define API_JSONDOC_BLOB_MIN 4096

/* A new document the caller frees (api_jsondoc_free), or NULL. Before
 * each growth of its memory it asks reserve(cls, bytes) (when given):
 * nonzero refuses, and feeding fails. blob_min is API_JSONDOC_BLOB_MIN
 * but for tests (0 makes every eligible array a blob). */
api_jsondoc *api_jsondoc_new(size_t blob_min,
                             int (*reserve)(void *cls, size_t bytes),
                             void *cls);
/* The next n bytes of the body. 0, or -1 when memory was refused (the
 * document is then unusable). Malformed text is not a failure here: it is
 * recorded, and later bytes are only counted. */
int api_jsondoc_feed(api_jsondoc *d, const char *data, size_t n);
/* The body is complete: the check concludes (an unfinished document is
 * malformed at its end). Call once, after the last feed. */
void api_jsondoc_finish(api_jsondoc *d);
/* The deepest nesting of brackets outside strings over the whole body,
 * counted as the HTTP layer's depth guard counts it (also when the
 * document is malformed). */
int api_jsondoc_depth(const api_jsondoc *d);
/* After finish: 0 when the body was one JSON document, else -1 with *at
 * and *trailing as api_json_check gives them for the same text. */
int api_jsondoc_check(const api_jsondoc *d, size_t *at, int *trailing);
/* After finish, when the check passed: the kept text, for the readers
 * above; valid while d lives. Tensors read from its blobs borrow their
 * data from d (owns_data 0): they must be freed before d. */
api_json api_jsondoc_json(const api_jsondoc *d);
/* Bytes reserve() granted so far (the caller releases them after free). */
size_t api_jsondoc_charged(const api_jsondoc *d);
void api_jsondoc_free(api_jsondoc *d);

/* ------------------------------------------------ request documents */

/* The members of a step or run body {"inputs": {...}, "train": false,
 * "outputs": ["<node>", ...], "forced": {...}} ("forced" only with
 * sequence set): positions of the values, (size_t)-1 when absent;
 * "outputs" is read by api_json_outputs (api_outputs.h). */
typedef struct api_step_body {
    size_t inputs;
    size_t forced;
    size_t outputs;
    int train;
} api_step_body;
/* Checks the body's form with the messages the routes always gave. */
int api_read_step_body(const api_json *j, int sequence, api_step_body *b,
                       api_error *err);
/* The batch of a stateless request: axis 0 of the first input given (1
 * when there is none to tell; binding then reports what is wrong). */
int api_json_stateless_batch(const api_json *j, size_t inputs);

/* Over the text, with the checks, messages and ownership of the cJSON
 * readers in api.h: api_json_bind_step_inputs writes {"name": tensor, ...}
 * into the session's entry buffers for one step (every entry given,
 * shaped (batch, input shape), unknown names refused);
 * api_json_sequence_inputs and api_json_node_sequences are
 * api_read_sequence_inputs and api_read_node_sequences. */
int api_json_bind_step_inputs(const api_json *j, size_t inputs,
                              nn_session *s, const nn_graph *g,
                              const api_limits *lim, api_error *err);
int api_json_sequence_inputs(const api_json *j, size_t inputs,
                             const nn_graph *g, int batch,
                             const api_limits *lim, nn_binding **bindings,
                             int *num_steps, api_error *err);
int api_json_node_sequences(const api_json *j, size_t obj,
                            const nn_graph *g, int batch, int steps,
                            const char *what, const api_limits *lim,
                            nn_binding **bindings, int *n, api_error *err);
/* The same, with the tensors of a framed body (api_json_tensor_bin). */
int api_json_bind_step_inputs_bin(const api_json *j,
                                  const api_json_blobs *bin, size_t inputs,
                                  nn_session *s, const nn_graph *g,
                                  const api_limits *lim, api_error *err);
int api_json_sequence_inputs_bin(const api_json *j, const api_json_blobs *bin,
                                 size_t inputs, const nn_graph *g, int batch,
                                 const api_limits *lim,
                                 nn_binding **bindings, int *num_steps,
                                 api_error *err);
int api_json_node_sequences_bin(const api_json *j, const api_json_blobs *bin,
                                size_t obj, const nn_graph *g, int batch,
                                int steps, const char *what,
                                const api_limits *lim, nn_binding **bindings,
                                int *n, api_error *err);

/* A parameter document ({"nodes": {"<node>": {"<weight>": tensor}}}, a
 * weight also in a sparse form, api_sparse.h) read and checked completely
 * against g's node and weight names and shapes, without touching g's
 * values: so it can be read outside the network's lock and applied under
 * it. */
typedef struct api_params_import api_params_import;
/* On success *out is an import the caller frees (api_params_import_free).
 * Reads only g's structure, which never changes after it is built. */
int api_params_read(const nn_graph *g, const api_json *j,
                    api_params_import **out, api_error *err);
int api_params_read_bin(const nn_graph *g, const api_json *j,
                        const api_json_blobs *bin, api_params_import **out,
                        api_error *err);
/* Copies every weight of the import into g (the caller holds the
 * network's write lock); weights it does not name keep their values. A
 * weight stored sparse given a new pattern swaps it in: the import then
 * holds the former pattern and values. Cannot fail. */
void api_params_apply(nn_graph *g, api_params_import *imp);
/* Under the same lock, right before applying: whether every weight given
 * by its values alone has their shape (a sparse weight's count is checked
 * here, as another import may change it; 400 shape_mismatch), and whether
 * the new patterns keep the network within its parameter cap, counted by
 * non-zeros with the present counts of the weights they replace (422
 * too_large). 0, or -1. */
int api_params_still_fits(const nn_graph *g, const api_params_import *imp,
                          api_error *err);
/* Undoes the pattern swaps of api_params_apply (every sparse weight gets
 * its former pattern and values back; dense values are the caller's to
 * restore). Cannot fail. */
void api_params_unapply_patterns(nn_graph *g, api_params_import *imp);
void api_params_import_free(api_params_import *imp);

/* ------------------------------------------------------------- writer */

/* A growable text buffer; an allocation failure sets failed and makes
 * every later write a no-op, so callers check once at the end. */
typedef struct api_buf {
    char *data;   /* malloc'd, NUL-terminated while not failed */
    size_t len, cap;
    int failed;
} api_buf;

/* Room for n more bytes (and a NUL); 0, or -1 when out of memory. */
int api_buf_reserve(api_buf *b, size_t n);
void api_buf_put(api_buf *b, const char *text, size_t n);
void api_buf_puts(api_buf *b, const char *text);
/* A JSON string literal, quoted and escaped. */
void api_buf_string(api_buf *b, const char *text);
void api_buf_float(api_buf *b, float v);
/* data as nested arrays of the given shape (a bare number for ndim 0). */
void api_buf_tensor(api_buf *b, const float *data, const nn_shape *shape);
/* Hands over the text (the caller frees it), or NULL when a write failed
 * (the buffer is freed then). */
char *api_buf_finish(api_buf *b, size_t *len);

/* ---------------------------------------------------- chunked encoder */

/* A document made of text pieces and float32 tensors, written out in
 * chunks of whatever size the caller asks for. The tensors' text is made
 * as it is sent, so an encoder holds the floats but never their text. */
typedef struct api_enc api_enc;

/* A new, empty encoder the caller frees (api_enc_free), or NULL. */
api_enc *api_enc_new(void);
/* Append to the document; copied text. An allocation failure is kept and
 * reported by api_enc_failed, so building is checked once. */
void api_enc_text(api_enc *e, const char *text);
void api_enc_string(api_enc *e, const char *text); /* quoted, escaped */
void api_enc_long(api_enc *e, long v);
/* Takes t (freed with the encoder); t's data must not change while the
 * encoder lives. */
void api_enc_tensor(api_enc *e, nn_tensor *t);
/* api_enc_tensor, but written as JSON text in the binary framing too
 * (api_enc_binary), for a member whose form has no binary descriptor. */
void api_enc_tensor_text(api_enc *e, nn_tensor *t);
/* A tensor of the given shape whose elements are made while the document
 * is sent (a long run's output, step by step). source(ctx, k, &n, &tail)
 * is asked, from api_enc_next, for the elements from element k on: it
 * returns a pointer to element k with *n > 0 of them ready, which must
 * stay valid until it is asked again (everything before k has been sent);
 * or *n = 0 when none is ready yet (api_enc_next returns what it has, and
 * api_enc_waiting says so); or *n = 0 with *tail set when the tensor ends
 * early at k, which must be a boundary of its axis 1: the text closes the
 * open arrays there and ends the whole document with *tail (a string that
 * outlives the encoder), leaving out what came after; the binary framing,
 * whose sizes were sent first, cannot end then (api_enc_broken). */
typedef const float *(*api_enc_source)(void *ctx, size_t k, size_t *n,
                                       const char **tail);
void api_enc_tensor_live(api_enc *e, const nn_shape *shape,
                         api_enc_source source, void *ctx);
/* After api_enc_next: nonzero when it stopped at a live tensor's elements
 * that are not ready yet, so the document is not at its end. */
int api_enc_waiting(const api_enc *e);
/* After api_enc_next returned 0: nonzero when the binary framing was cut
 * short, so the body must be ended as broken. */
int api_enc_broken(const api_enc *e);
/* Takes v, n integers written as a JSON array (freed with the encoder). */
void api_enc_uints(api_enc *e, uint32_t *v, size_t n);
/* Marks the document failed (an append's allocation of the caller's own
 * failed). */
void api_enc_fail(api_enc *e);
/* Nonzero when an append failed: the document is incomplete and must not
 * be sent. */
int api_enc_failed(const api_enc *e);
/* Writes the next at most cap (>= 1) bytes of the document into buf and
 * returns how many; 0 at the end (or, with a live tensor, while it waits:
 * api_enc_waiting). Never fails: everything it needs was
 * allocated while the document was built. */
size_t api_enc_next(api_enc *e, char *buf, size_t cap);
/* Turns e, before its first api_enc_next, into the binary tensor framing
 * (api_binary.h): the same document with each tensor as {"shape": [...],
 * "datatype": "FP32", "binary_data_size": bytes} (a weight's "shape" and
 * "data" members likewise, inside its object), then every tensor's
 * float32 bytes, little-endian, in the document's order. *header_len is
 * the JSON header's length (Inference-Header-Content-Length), *total the
 * whole body's. -1 when memory fails; e is still freed with
 * api_enc_free. */
int api_enc_binary(api_enc *e, size_t *header_len, size_t *total);
void api_enc_free(api_enc *e);

/* {"outputs": {"<exit>": tensor, ...}[, "step": step]} of the session's
 * exits after a step (step < 0 leaves "step" out): a copy of the outputs,
 * so the session may step on. NULL when out of memory. */
api_enc *api_step_outputs_enc(const nn_session *s, const nn_graph *g,
                              long step);
/* The same for nn_session_run's outputs, which it takes (and frees, also
 * on failure; outputs itself stays the caller's). */
api_enc *api_sequence_outputs_enc(const nn_graph *g, nn_tensor **outputs,
                                  long step);
/* The same two for the nodes a request chose (api_outputs.h), in its
 * order; the sequence form takes outputs[0..o->n), in that order (as
 * nn_session_run_outputs fills them). */
typedef struct api_outputs api_outputs;
api_enc *api_step_nodes_enc(const nn_session *s, const api_outputs *o,
                            long step);
api_enc *api_sequence_nodes_enc(const api_outputs *o, nn_tensor **outputs,
                                long step);
/* api_sequence_nodes_enc with the first output live (api_enc_tensor_live,
 * shaped *first, its elements from source(ctx)): outputs[1..o->n) are
 * taken, outputs[0] is not read. */
api_enc *api_sequence_nodes_live_enc(const api_outputs *o,
                                     const nn_shape *first,
                                     api_enc_source source, void *ctx,
                                     nn_tensor **outputs, long step);
/* {"nodes": {"<node>": {"<weight>": {"shape": [...], "data": [...],
 * "trainable": true}}}} (nodes without weights left out; data flat, row-
 * major; a weight stored sparse in the "csc" form of api_sparse.h, its
 * pattern with it) from a float32 copy of g's weights: the caller holds the
 * network's read lock while this copies, and the encoder is independent
 * of g after. NULL when out of memory. */
api_enc *api_params_enc(const nn_graph *g);

#endif /* API_CODEC_H */
