/*
 * api_jsonpush.h — what the pushed reader (api_jsonpush.c) keeps of a
 * large numeric array in place of its text, for the pull reader
 * (api_jsonread.c). Internal to api/.
 *
 * A blob holds the array's numbers as float32 and, worked out as the text
 * went by, the verdicts the pull reader would have reached reading that
 * text: as nested arrays (read_nested) and as a flat "data" array
 * (tensor_object), with what their messages need (places, byte offsets).
 */
#ifndef API_JSONPUSH_H
#define API_JSONPUSH_H

#include <stddef.h>

#include "api_codec.h"

/* The byte that stands for a blob in the kept text: a raw control
 * character, which checked JSON never has outside a blob. */
#define API_BLOB_MARK '\001'

/* How a nested read of the array fails (none: it gives a tensor). */
enum {
    API_BLOB_OK = 0,
    API_BLOB_RAGGED,     /* fail_axis, fail_dim, fail_index[0..axis), at */
    API_BLOB_EMPTY,      /* an empty array has no shape */
    API_BLOB_AXES,       /* more than NN_MAX_DIMS axes */
    API_BLOB_NOT_NUMBER, /* fail_n, fail_index[0..fail_axes), at */
    API_BLOB_NOT_FINITE, /* the same */
};

typedef struct api_blob {
    size_t mark;        /* its marker's position in the kept text */
    size_t open, end;   /* byte offsets of its '[' and just after its ']' */
    size_t shift;       /* kept-text position to byte offset, after it */
    float *data;        /* every number in document order (nn_malloc'd);
                           NULL when the nested read fails */
    size_t n;
    /* As nested arrays. */
    int ndim, dims[NN_MAX_DIMS];
    int fail, fail_axis, fail_axes, fail_dim;
    int fail_index[NN_MAX_DIMS];
    size_t fail_n, fail_at;
    /* As a flat array: its elements, and the first that is not a finite
     * number (kind API_BLOB_NOT_NUMBER or _NOT_FINITE, or 0). */
    size_t top;
    int bad_kind;
    size_t bad_index, bad_at;
    /* The first element as api_json_stateless_batch reads a shape's first
     * size, when it is a number. */
    int first_is_number, first_batch;
} api_blob;

/* The blob whose marker is at position p of the kept text, or NULL. */
const api_blob *api_jsondoc_blob_at(const api_jsondoc *d, size_t p);
/* The length of the JSON number (its grammar only) that s begins with,
 * or (size_t)-1; shared by the pull and the pushed readers. */
size_t api_json_number_length(const char *s, size_t len);
/* The body's byte offset of position p of the kept text. */
size_t api_jsondoc_offset(const api_jsondoc *d, size_t p);

#endif /* API_JSONPUSH_H */
