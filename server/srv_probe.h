/*
 * srv_probe.h — `nerved --probe`: the container health check. It reads the
 * same flags and NERVED_* variables as the daemon, so it asks the address,
 * port and protocol (HTTP, or HTTPS with --tls-cert) the daemon actually
 * serves, and needs nothing installed beside the daemon itself.
 */
#ifndef SRV_PROBE_H
#define SRV_PROBE_H

#include "srv.h"

/* Seconds the probe waits for the connection, the TLS handshake and the
 * answer, each; below the HEALTHCHECK's and the kubelet's timeouts. */
#define SRV_PROBE_TIMEOUT 2

/* GET /healthz from the daemon cfg describes: a wildcard host (0.0.0.0,
 * ::) is asked on its loopback address. Over TLS the certificate is not
 * verified (the probe checks that the daemon answers, as the kubelet's
 * HTTPS probes do, and its certificate names a service, not loopback).
 * Returns 0 when the answer is 200, else 1 with the reason on stderr. */
int srv_probe(const srv_config *cfg);

#endif
