/* SPDX-License-Identifier: Apache-2.0 */
/* Consul's agent, catalog and health API (placeholder until the catalog lands). */
#include "server/consul.h"

int tr_consul_catalog_routes(struct tr_router *r)
{
    (void)r;
    return 0;
}
