/*
 * srv_kserve.h — handlers of the KServe v2 routes (see srv_routes.c).
 */
#ifndef SRV_KSERVE_H
#define SRV_KSERVE_H

#include "srv.h"

void srv_v2_live(srv_request *req);
void srv_v2_ready(srv_request *req);
void srv_v2_server_metadata(srv_request *req);
void srv_v2_model_metadata(srv_request *req);
void srv_v2_model_version_metadata(srv_request *req);
void srv_v2_model_ready(srv_request *req);
void srv_v2_model_version_ready(srv_request *req);
void srv_v2_infer(srv_request *req);
void srv_v2_version_infer(srv_request *req);

#endif
