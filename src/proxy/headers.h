/* SPDX-License-Identifier: Apache-2.0 */
/* Header rewriting at the proxy boundary (RFC 9110 §7.6). Hop-by-hop fields — the
 * Connection header and every field it names, Keep-Alive, Proxy-Connection, TE,
 * Transfer-Encoding, Upgrade, Trailer, and Proxy-Authorization / Proxy-Authenticate,
 * which address the proxy itself — never cross. Framing (Content-Length, chunked) is
 * redone by each side's engine. Requests gain X-Forwarded-For (appended),
 * X-Forwarded-Proto, X-Request-Id (when absent) and Via; responses gain Via. */
#ifndef TR_PROXY_HEADERS_H
#define TR_PROXY_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/slice.h"
#include "http/client.h"
#include "http/server.h"

/* Extra fields tr_proxy_headers_request() may add beyond the client's. */
#define TR_PROXY_HEADERS_ADDED 5

struct tr_proxy_fwd {
    struct tr_slice client_ip;  /* the peer's address, without port */
    struct tr_slice request_id; /* generated id to add, or a NULL slice to keep the client's */
};

/* Writes the header list for the upstream request into `out`, which must have room for
 * req->nheaders + TR_PROXY_HEADERS_ADDED entries; joined values are allocated in `a`.
 * Slices borrow from the request and `fwd`. Returns the number of entries. For an
 * absolute-form target ("GET http://host:1/p") Host becomes the target's authority
 * without userinfo (RFC 9112 §3.2.2), since the target goes up in origin-form. */
size_t tr_proxy_headers_request(const struct tr_http_req *req, const struct tr_proxy_fwd *fwd,
                                struct tr_http_client_header *out, struct tr_arena *a);

/* Adds the upstream response's end-to-end headers to the client response `req` with
 * tr_http_resp_header(), plus Via and, if `request_id` is not NULL and the upstream
 * did not send one, X-Request-Id. Returns the value of the upstream's Content-Length
 * header, or -1 (a HEAD response announces the length it would have had). */
int64_t tr_proxy_headers_response(struct tr_http_req *req, const struct tr_http_client_resp *resp,
                                  struct tr_slice request_id);

/* The value of cookie `name` in the request's Cookie headers (RFC 6265 §4.2), or a
 * NULL slice. */
struct tr_slice tr_proxy_headers_cookie(const struct tr_http_req *req, struct tr_slice name);

/* The client IP of "ip:port" or "[ip]:port" (the server's peer string). */
struct tr_slice tr_proxy_peer_ip(const char *peer);

#endif
