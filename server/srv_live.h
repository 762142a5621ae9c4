/*
 * srv_live.h — a reply sent while its request still computes: a long
 * run's outputs go out step by step, so what the daemon holds for them is
 * a fixed window, whatever the run's length.
 *
 * The compute thread pushes each step's floats into the window; the HTTP
 * thread's reader turns what is there into text (api_enc_tensor_live)
 * and suspends its connection while there is nothing; a push resumes it.
 * The run waits for a reader that is taking the window; when the client
 * takes nothing for 20 ms, the run does not wait for it but doubles the
 * window, charged to the memory budget, up to the run's whole output if
 * need be (what a held run takes). Only with the budget spent
 * does the run wait for the client, and a client that then takes nothing
 * for the stall time is cut off (its body ends broken) while the run
 * completes without it.
 */
#ifndef SRV_LIVE_H
#define SRV_LIVE_H

#include <stddef.h>

#include "api_codec.h"
#include "srv.h"

typedef struct srv_live srv_live;

/* A window of `window` floats (at least two pushes' worth), and the
 * seconds a client may take nothing once the window cannot grow. NULL
 * when out of memory. The caller owns it until srv_live_send, or frees
 * it with srv_live_drop. */
srv_live *srv_live_new(size_t window, double stall_seconds);
/* The encoder's source for the streamed tensor (api_enc_tensor_live),
 * with the srv_live as its ctx. */
const float *srv_live_source(void *live, size_t k, size_t *n,
                             const char **tail);
/* Takes enc, the reply's document (holding the streamed tensor, built
 * without failure: api_enc_failed is 0), and sends it now as req's reply
 * (srv_request_send_now), in the binary framing when binary (whose
 * Inference-Header-Content-Length the caller set), whose whole length
 * binary_size is then known before the first byte. From then the live is
 * shared with the reply; the caller pushes, its job's end ends the body
 * (srv_live_cut first on a failure), and it must not reply again. */
void srv_live_send(srv_live *l, srv_request *req, api_enc *enc, int binary,
                   uint64_t binary_size);
/* Frees a live never sent (NULL: nothing). */
void srv_live_drop(srv_live *l);
/* Appends n floats, one step's, growing the window or waiting for room.
 * 0; -1 when the client is gone or cut off (the floats are dropped: the
 * caller goes on computing). */
int srv_live_push(srv_live *l, const float *v, size_t n);
/* The run failed after its first bytes: the streamed tensor ends where
 * the pushes stopped and the document with tail (copied; the text form
 * only — the binary framing is cut and its body ends broken). */
void srv_live_cut(srv_live *l, const char *tail);

#endif
