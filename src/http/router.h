/* SPDX-License-Identifier: Apache-2.0 */
/* Routing by method and path pattern. Patterns are literal segments, `:name` for one
 * segment and `*name` (last only) for the rest of the path, e.g. the pattern
 * /v1/kv/ followed by *key, or "/v1/agent/service/deregister/:id". Routes are tried in the order they were added;
 * a path that matches some route but not its method yields 405 with an Allow list. */
#ifndef TR_HTTP_ROUTER_H
#define TR_HTTP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/mem.h"
#include "core/slice.h"

#define TR_ROUTE_MAX_PARAMS 8
#define TR_ROUTE_MAX_SEGMENTS 32

struct tr_http_req;
typedef void tr_http_handler_cb(struct tr_http_req *req);

enum tr_route_flags {
    TR_ROUTE_BUFFERED = 0,     /* handler runs once the whole body is in req->body */
    TR_ROUTE_STREAM = 1u << 0, /* handler runs at end of headers; body via on_body */
};

struct tr_route_param {
    struct tr_slice name;
    struct tr_slice value; /* raw (percent-encoded) path text */
};

struct tr_route_match {
    const struct tr_route *route; /* NULL: no route matched */
    size_t nparams;
    struct tr_route_param params[TR_ROUTE_MAX_PARAMS];
    bool method_mismatch;         /* some route matched the path, none the method */
    char allow[128];              /* "GET, PUT" when method_mismatch */
};

struct tr_route;

struct tr_router {
    struct tr_route *routes; /* owned */
    size_t nroutes;
    size_t cap;
};

void tr_router_init(struct tr_router *r);
void tr_router_dispose(struct tr_router *r);

/* Adds a route. `method` is "GET", "PUT", … or "*" for any; `pattern` must start with
 * '/'. Returns 0, or -EINVAL for a malformed pattern (empty param name, '*' not last,
 * too many params or segments). Strings are copied. */
TR_MUST_CHECK int tr_router_add(struct tr_router *r, const char *method, const char *pattern,
                                tr_http_handler_cb *handler, void *data, unsigned flags);

/* Matches a request. `path` excludes the query string. Param values point into `path`. */
void tr_router_match(const struct tr_router *r, struct tr_slice method, struct tr_slice path,
                     struct tr_route_match *m);

tr_http_handler_cb *tr_route_handler(const struct tr_route *route);
void *tr_route_data(const struct tr_route *route);
unsigned tr_route_flags(const struct tr_route *route);

#endif
