/*
 * api_kserve.h — JSON of the KServe v2 / Open Inference Protocol, including
 * the sequence extension stateful model servers use (parameters.sequence_id,
 * sequence_start, sequence_end).
 */
#ifndef API_KSERVE_H
#define API_KSERVE_H

#include "api.h"

typedef struct api_kserve_request {
    const char *id;             /* borrowed from the request, or NULL */
    char sequence_id[64];       /* "" when stateless */
    int sequence_start, sequence_end;
    nn_binding *inputs;         /* one per entry; tensors owned */
    int n_inputs;
    const char **outputs;       /* requested names, NULL = all; borrowed */
    int n_outputs;
    int batch;
} api_kserve_request;

/* {name, versions, platform, inputs, outputs} with FP32 and -1 batch axes.
 * Caller owns the result. */
cJSON *api_kserve_model_metadata(const nn_graph *g, const char *name);

/* Reads and checks an inference request against the graph: every entry
 * once, FP32, shapes [batch, ...] matching, data flat or nested with as
 * many values as the shape. Strings in *r borrow from body, so body must
 * outlive r. Free with api_kserve_request_free. */
int api_kserve_read_request(const cJSON *body, const nn_graph *g,
                            const api_limits *lim, api_kserve_request *r,
                            api_error *err);
void api_kserve_request_free(api_kserve_request *r);

/* The response to r after a step of s. Caller owns the result. */
cJSON *api_kserve_response(const api_kserve_request *r, const char *model,
                           const nn_session *s, const nn_graph *g);

/* The protocol's error body, {"error": message}. */
cJSON *api_kserve_error(const char *message);

#endif
