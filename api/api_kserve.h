/*
 * api_kserve.h — JSON of the KServe v2 / Open Inference Protocol, including
 * the sequence extension stateful model servers use (parameters.sequence_id,
 * sequence_start, sequence_end).
 */
#ifndef API_KSERVE_H
#define API_KSERVE_H

#include "api.h"
#include "api_binary.h"
#include "api_codec.h"

/* An output to return, binary (the binary tensor data extension) or as
 * JSON numbers. */
typedef struct api_kserve_output {
    const char *name;           /* borrowed from the graph */
    int binary;
} api_kserve_output;

typedef struct api_kserve_request {
    const char *id;             /* borrowed from the request, or NULL */
    char sequence_id[64];       /* "" when stateless (absent, 0 or "") */
    int sequence_numeric;       /* sequence_id was an integer, not a string */
    int sequence_start, sequence_end;
    double priority;            /* parameters.priority, 0 when absent */
    double timeout_us;          /* parameters.timeout, 0 when absent */
    nn_binding *inputs;         /* one per entry; tensors owned */
    int n_inputs;
    api_kserve_output *outputs; /* as requested, or every exit in the
                                   graph's order when none is named */
    int n_outputs;
    int batch;
    struct cJSON *parsed;       /* the document api_kserve_read_text parsed,
                                   which the strings above borrow from */
} api_kserve_request;

/* The sequence that parameters.sequence_id names, into id (at least
 * API_KSERVE_SEQUENCE_MAX bytes): an integer below 2^64 as its digits, or a
 * string of up to 63 bytes as it is; "" for none (absent, 0 or ""), as
 * tritonclient documents. j is the request's text (NULL when there is
 * none): cJSON reads numbers as doubles, exact only below 2^53, so a
 * larger integer is read from the text, as Triton reads its uint64 ids.
 * *numeric says which kind it was: 7 and "7" are different sequences, as
 * in Triton. Returns 0, or -1 with err filled (400). */
#define API_KSERVE_SEQUENCE_MAX 64
int api_kserve_sequence_id(const cJSON *params, const api_json *j, char *id,
                           int *numeric, api_error *err);

/* The JSON header a raw binary request stands for (the binary tensor data
 * extension: Inference-Header-Content-Length 0, the body the single
 * input's bytes): {"inputs": [{name, shape [rows, ...], "FP32",
 * binary_data_size}]}, rows from the body's size. NULL with err filled
 * (400) when g has not exactly one input or bytes is no whole number of
 * its rows. Caller frees. */
char *api_kserve_raw_header(const nn_graph *g, size_t bytes, api_error *err);

/* {name, versions, platform, inputs, outputs} with FP32 and -1 batch axes.
 * Caller owns the result. */
cJSON *api_kserve_model_metadata(const nn_graph *g, const char *name);

/* The model configuration extension's document, shaped after Triton's
 * ModelConfig: name, platform, backend, max_batch_size, input and output
 * ({name, data_type "TYPE_FP32", dims without the batch axis}), for a
 * network whose steps carry state sequence_batching with
 * max_sequence_idle_microseconds (sequence_idle_us, how long an idle
 * sequence lives), and parameters {"definition": {"string_value": text}},
 * the graph definition the network was created from as JSON text
 * (definition, or NULL to leave it out): every member is one of
 * ModelConfig's, so the document parses as that protobuf message. Caller
 * owns the result. */
cJSON *api_kserve_model_config(const nn_graph *g, const char *name,
                               const char *definition, int max_batch,
                               double sequence_idle_us);

/* Reads and checks an inference request against the graph: every entry
 * once, FP32, shapes [batch, ...] matching, data flat or nested with as
 * many values as the shape, or, with parameters.binary_data_size, that
 * many bytes taken in input order from blob (the bytes after the JSON
 * header; NULL when the body was JSON alone), which must be used up
 * exactly. Outputs named once each, any nodes of the graph (absent or
 * empty "outputs": the exits, as the protocol says); binary when their
 * parameters.binary_data or the request's parameters.binary_data_output
 * says so. Strings in *r borrow from body and g, so both must outlive r.
 * Free with api_kserve_request_free (also after a failure). */
int api_kserve_read_request(const cJSON *body, const char *blob,
                            size_t blob_len, const nn_graph *g,
                            const api_limits *lim, api_kserve_request *r,
                            api_error *err);
/* The same from the request's text: plain, or the text the pushed reader
 * kept (j->doc), whose large numeric arrays it already read into float32
 * as the body arrived, so that no cJSON node is made for their numbers.
 * The structure around them is parsed with cJSON into r->parsed. A
 * string holding \u0000 is refused, as on every route cJSON reads. */
int api_kserve_read_text(const api_json *j, const char *blob,
                         size_t blob_len, const nn_graph *g,
                         const api_limits *lim, api_kserve_request *r,
                         api_error *err);
void api_kserve_request_free(api_kserve_request *r);

/* The response's JSON to r after a step of s: binary outputs carry
 * parameters.binary_data_size instead of data, and their tensors are
 * listed in blobs (room for r->n_outputs; borrowed from s) in the order of
 * the JSON, *n_blobs of them. Caller owns the result. */
cJSON *api_kserve_response(const api_kserve_request *r, const char *model,
                           const nn_session *s, api_blob *blobs,
                           int *n_blobs);

/* The protocol's error body, {"error": message}. */
cJSON *api_kserve_error(const char *message);

#endif
