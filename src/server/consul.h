/* SPDX-License-Identifier: Apache-2.0 */
/* The Consul-compatible HTTP API of `trellis server`: each file registers its routes. */
#ifndef TR_SERVER_CONSUL_H
#define TR_SERVER_CONSUL_H

#include <jansson.h>

#include "http/router.h"
#include "server/call.h"

/* /v1/kv, /v1/status (consul_kv.c). */
TR_MUST_CHECK int tr_consul_kv_routes(struct tr_router *r);
/* /v1/agent, /v1/catalog, /v1/health (consul_catalog.c). */
TR_MUST_CHECK int tr_consul_catalog_routes(struct tr_router *r);

/* A JSON string holding the base64 encoding of the bytes. */
json_t *tr_consul_base64(const char *p, size_t n);

#endif
