/* SPDX-License-Identifier: Apache-2.0 */
/* The admin listener: GET /metrics (Prometheus text), /ready and /clusters (JSON). It
 * runs on worker 0 and sums every worker's counters, which each worker writes alone
 * with relaxed atomics. */
#ifndef TR_PROXY_ADMIN_H
#define TR_PROXY_ADMIN_H

#include "core/mem.h"
#include "http/router.h"

/* Adds the admin routes to `r`. Returns 0 or -EINVAL. */
TR_MUST_CHECK int tr_proxy_admin_routes(struct tr_router *r);

#endif
