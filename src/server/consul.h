/* SPDX-License-Identifier: Apache-2.0 */
/* The Consul-compatible HTTP API of `trellis server`: each file registers its routes. */
#ifndef TR_SERVER_CONSUL_H
#define TR_SERVER_CONSUL_H

#include <jansson.h>

#include "http/router.h"
#include "registry/catalog.h"
#include "server/call.h"
#include "server/consul_filter.h"

/* /v1/kv, /v1/status (consul_kv.c). */
TR_MUST_CHECK int tr_consul_kv_routes(struct tr_router *r);
/* /v1/catalog, /v1/health (consul_catalog.c). */
TR_MUST_CHECK int tr_consul_catalog_routes(struct tr_router *r);
/* /v1/agent (consul_agent.c); called by tr_consul_catalog_routes(). */
TR_MUST_CHECK int tr_consul_agent_routes(struct tr_router *r);

/* A JSON string holding the base64 encoding of the bytes. */
json_t *tr_consul_base64(const char *p, size_t n);

/* ---- response shapes (consul_json.c), named after Consul's Go structs ---- */

/* Top-level field names of each shape, NULL-terminated: what ?filter may select. */
extern const char *const tr_consul_fields_node[];
extern const char *const tr_consul_fields_agent_service[];
extern const char *const tr_consul_fields_service_node[];
extern const char *const tr_consul_fields_check_service_node[];
extern const char *const tr_consul_fields_health_check[];

/* structs.Node: the one node, as /v1/catalog/nodes and health entries show it. */
json_t *tr_consul_node(const struct tr_reg *reg);
/* api.AgentService: /v1/agent/services and /v1/agent/service/:id. */
json_t *tr_consul_agent_service(const struct tr_reg *reg, const struct tr_cat_service *s);
/* The "Service" member of a /v1/health/service entry. */
json_t *tr_consul_health_service(const struct tr_cat_service *s);
/* structs.ServiceNode: /v1/catalog/service/:name. */
json_t *tr_consul_service_node(const struct tr_reg *reg, const struct tr_cat_service *s);
/* structs.HealthCheck. */
json_t *tr_consul_check(const struct tr_reg *reg, const struct tr_cat_check *c);
/* The node-level "serfHealth" check, always passing (there is no gossip to fail). */
json_t *tr_consul_serf_check(const struct tr_reg *reg);
/* structs.CheckServiceNode: {Node, Service, Checks} with the node's checks first. */
json_t *tr_consul_check_service_node(const struct tr_reg *reg, const struct tr_cat_service *s);

/* ---- request helpers shared by the catalog, health and agent handlers ---- */

/* ?dc= other than ours: sets Consul's answer and returns false. */
bool tr_consul_dc_ok(const struct tr_reg *reg, struct tr_srv_call *c);
/* ?filter= parsed against `roots`: returns 1 with *f set (free it), 0 when absent,
 * -1 after setting a 400 naming the expression. */
int tr_consul_filter_param(struct tr_srv_call *c, const char *const *roots,
                           struct tr_consul_filter **f);
/* Does the node match every ?node-meta=k:v? (Only the node's own meta exists.) */
bool tr_consul_node_meta_ok(struct tr_srv_call *c);

#endif
