/*
 * api_openapi.c — the OpenAPI document, compiled in from api/openapi.json.
 */
#include "api.h"

extern const char nn_openapi_document[];

const char *api_openapi_json(void)
{
    return nn_openapi_document;
}
