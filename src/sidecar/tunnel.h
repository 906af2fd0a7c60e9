/* SPDX-License-Identifier: Apache-2.0 */
/* Upgrade pass-through (WebSocket and any other protocol switch): the request head is
 * sent to the upstream over a fresh TCP connection with its Upgrade and Connection
 * headers, the client's socket is taken out of the HTTP server, and from then on the
 * bytes are relayed both ways untouched — the upstream's 101 (or whatever it answers)
 * included. Each direction stops reading while the other side has more than 256 KiB
 * unwritten; an EOF on one side half-closes the other; an error closes both. */
#ifndef TR_SIDECAR_TUNNEL_H
#define TR_SIDECAR_TUNNEL_H

#include <stddef.h>

#include "core/addr.h"
#include "core/list.h"
#include "core/slice.h"
#include "http/client.h"
#include "http/server.h"

struct tr_sidecar_tunnel;

struct tr_sidecar_tunnel_opts {
    const struct tr_addr *upstream;
    struct tr_slice method;
    struct tr_slice target;
    const struct tr_http_client_header *headers; /* end-to-end headers (hop-by-hop ones
                                                    removed: Upgrade is re-added from the
                                                    request) */
    size_t nheaders;
    const char *app_id;  /* for error messages */
    struct tr_list *list; /* the worker's live tunnels, for tr_sidecar_tunnels_close() */
};

/* Takes over `req` (a TR_ROUTE_STREAM request with Upgrade, no body): answers it with
 * 500 ERR_DIRECT_INVOKE if the upstream cannot be reached, else relays until either
 * side closes. Everything needed is copied; `o` may go away on return. */
void tr_sidecar_tunnel_start(struct tr_http_req *req, const struct tr_sidecar_tunnel_opts *o);

/* Closes every tunnel of `list` now (worker drain/stop). */
void tr_sidecar_tunnels_close(struct tr_list *list);

#endif
