/* SPDX-License-Identifier: Apache-2.0 */
/* Forwarding one request: route, pick a cluster and an endpoint, stream the request
 * body up and the response down with backpressure both ways, retry what is safe to
 * retry, and turn upstream failures into 502/503/504 with a JSON body naming the
 * cluster and the cause. */
#ifndef TR_PROXY_FORWARD_H
#define TR_PROXY_FORWARD_H

#include "http/server.h"

/* The proxy route's handler (TR_ROUTE_STREAM). srv->worker_data is the worker. */
void tr_proxy_forward(struct tr_http_req *req);

#endif
