/* SPDX-License-Identifier: Apache-2.0 */
/* Forwarding one request: route, pick a cluster and an endpoint, stream the request
 * body up and the response down with backpressure both ways, retry what is safe to
 * retry, and turn upstream failures into 502/503/504 with a JSON body naming the
 * cluster and the cause. */
#ifndef TR_PROXY_FORWARD_H
#define TR_PROXY_FORWARD_H

#include "http/server.h"

struct tr_proxy_worker;

/* Request bodies up to this size are read whole before the first attempt and sent as one
 * buffered copy, which the HTTP client can replay on a stale pooled connection and the
 * retry policy can resend; larger ones are streamed (the worker's body_buffer_max). */
#define TR_PROXY_BODY_BUFFER_MAX (64 * 1024)

/* The proxy route's handler (TR_ROUTE_STREAM). srv->worker_data is the worker. */
void tr_proxy_forward(struct tr_http_req *req);

/* Frees the worker's recycled exchanges (its handles are closed, nothing is in flight). */
void tr_proxy_forward_release(struct tr_proxy_worker *pw);

#endif
