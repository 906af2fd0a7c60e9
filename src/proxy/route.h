/* SPDX-License-Identifier: Apache-2.0 */
/* Routing: the first route whose match (path prefix, methods, exact header values)
 * accepts the request wins; it names one cluster or a weighted split between several,
 * and may rewrite the path prefix before the request goes upstream. */
#ifndef TR_PROXY_ROUTE_H
#define TR_PROXY_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/slice.h"
#include "http/server.h"
#include "proxy/config.h"

/* The matching route for a request, or NULL. `path` excludes the query. */
const struct tr_proxy_route_config *
tr_proxy_route_match(const struct tr_proxy_config *cfg, struct tr_slice method,
                     struct tr_slice path, const struct tr_http_header *headers, size_t nheaders);

/* The cluster index the request goes to: the route's cluster, or a weighted draw over
 * its split with `rng` (tr_proxy_rand state). */
unsigned tr_proxy_route_cluster(const struct tr_proxy_route_config *r, uint64_t *rng);

/* The origin-form target sent upstream: `path` with the route's prefix replaced by the
 * rewrite prefix (if any), then "?query" when the request had one. Allocated in `a`
 * unless nothing changes and `target` already is origin-form. */
struct tr_slice tr_proxy_route_target(const struct tr_proxy_route_config *r, struct tr_slice target,
                                      struct tr_slice path, struct tr_slice query,
                                      struct tr_arena *a);

#endif
