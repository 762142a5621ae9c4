/*
 * srv_state.h — a session's state as a portable document, so a session can
 * move between replicas on request (draining one before a scale-down):
 *
 *   GET /v1/networks/{net}/sessions/{sid}/state
 *     -> 200 {"network": "n1", "session": "s1", "batch": 1, "steps": 12,
 *             "format": "nerved-checkpoint", "version": 1,
 *             "checkpoint": "<base64>"}
 *   PUT /v1/networks/{net}/sessions/{sid}/state   (that document as body)
 *     -> 201 (the session was created) or 200 (its state was replaced)
 *   (taken up to srv_state_max_body, which may exceed --max-body)
 *
 * "checkpoint" is the base64 of the very bytes a checkpoint file holds
 * (api/api_persist.h): every node's output buffer and state tensors, its
 * random stream, the step count and the batch, CRC-checked. An imported
 * session continues exactly as the exported one would have. The other
 * members describe it and are optional in a PUT; the session takes the id
 * and network of the PUT's path. With --data-dir an import is on disk, as
 * a checkpoint, before it is answered.
 */
#ifndef SRV_STATE_H
#define SRV_STATE_H

#include "srv.h"

void srv_state_get(srv_request *req);
void srv_state_put(srv_request *req);
/* The largest body PUT .../state takes: --max-body, or the text of the
 * largest state a session may hold (--max-session-floats, --max-nodes)
 * when that is more, so that every export can be put back. The body is
 * charged to the memory budget as it arrives, as any other. */
size_t srv_state_max_body(const srv_config *cfg);

#endif
