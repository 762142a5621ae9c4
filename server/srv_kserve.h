/*
 * srv_kserve.h — handlers of the KServe v2 routes (see srv_routes.c), and
 * the per-model counters of the statistics extension.
 */
#ifndef SRV_KSERVE_H
#define SRV_KSERVE_H

#include <stdint.h>

#include "srv.h"
#include "srv_store.h"

void srv_v2_live(srv_request *req);
void srv_v2_ready(srv_request *req);
void srv_v2_server_metadata(srv_request *req);
void srv_v2_model_metadata(srv_request *req);
void srv_v2_model_version_metadata(srv_request *req);
void srv_v2_model_ready(srv_request *req);
void srv_v2_model_version_ready(srv_request *req);
void srv_v2_model_config(srv_request *req);
void srv_v2_model_version_config(srv_request *req);
void srv_v2_stats(srv_request *req);
void srv_v2_model_stats(srv_request *req);
void srv_v2_model_version_stats(srv_request *req);
void srv_v2_infer(srv_request *req);
/* The ordering key of an infer request's body: its sequence (so requests
 * of one sequence run one at a time, in order), or 0 without one. Reads
 * only the top-level "parameters" member; the rest of the body is skipped
 * unparsed, so this is cheap enough for the HTTP thread. */
uint64_t srv_v2_order_key(const srv_request *req);
void srv_v2_version_infer(srv_request *req);

/* Where an inference request's time went, in nanoseconds: waiting for a
 * worker, reading and copying its inputs, computing, writing its outputs.
 * Whoever schedules the computation fills queue_ns (0 while requests run
 * on the HTTP threads). */
typedef struct srv_infer_times {
    uint64_t queue_ns, input_ns, infer_ns, output_ns;
} srv_infer_times;

/* Counts one inference request of batch rows on net for GET
 * /v2/models/{m}/stats: succeeded or failed, total_ns from its start to
 * its answer, and (when it computed) the parts in times. One request is
 * one execution. Thread-safe. */
void srv_kserve_record(const srv_network *net, int succeeded, int batch,
                       uint64_t total_ns, const srv_infer_times *times);

#endif
