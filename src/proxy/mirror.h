/* SPDX-License-Identifier: Apache-2.0 */
/* Mirroring (shadow traffic): a copy of a route's request — method, target after the
 * rewrite, the headers the main request gets plus `X-Trellis-Shadow: 1`, and the body
 * when it is at most TR_PROXY_MIRROR_MAX_BODY bytes (bigger bodies are not mirrored) —
 * goes to the mirror cluster as a separate upstream request whose response is read and
 * discarded. Nothing of it reaches the client: the main request neither waits for it
 * nor sees its failures. Each mirror request is bounded by the mirror cluster's
 * timeout, and a worker keeps at most TR_PROXY_MIRROR_MAX_IN_FLIGHT of them in flight
 * (more are skipped), so a slow or dead mirror costs bounded memory and connections.
 * Outcomes are counted on the route (TR_PROXY_MIRROR_*). */
#ifndef TR_PROXY_MIRROR_H
#define TR_PROXY_MIRROR_H

#include <stdbool.h>
#include <stdint.h>

#include "core/slice.h"
#include "http/server.h"
#include "proxy/config.h"
#include "proxy/stats.h"
#include "proxy/worker.h"

#define TR_PROXY_MIRROR_MAX_BODY (64u * 1024)
#define TR_PROXY_MIRROR_MAX_IN_FLIGHT 256

/* Is this request one of the route's mirror percent? (A draw from the worker's rng.) */
bool tr_proxy_mirror_draw(const struct tr_proxy_route_config *r, uint64_t *rng);

/* Sends the copy of `req` (head as received, `body` as given, `request_id` as for the
 * main request or a NULL slice) to the mirror cluster of `route` under generation
 * `gen`, which the mirror request holds until it ends. `req` and `body` are only read
 * during the call. Worker thread. */
void tr_proxy_mirror_send(struct tr_proxy_worker *pw, struct tr_proxy_gen *gen,
                          const struct tr_proxy_route_config *route, struct tr_http_req *req,
                          struct tr_slice body, struct tr_slice request_id);

/* Counts an outcome decided outside tr_proxy_mirror_send() (a skipped body). */
void tr_proxy_mirror_count(struct tr_proxy_worker *pw, const struct tr_proxy_route_config *route,
                           enum tr_proxy_mirror_result result);

#endif
