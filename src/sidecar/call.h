/* SPDX-License-Identifier: Apache-2.0 */
/* One HTTP exchange with a buffered answer, on a worker's client: how the sidecar
 * talks to the trellis server (state, broker, registry), to its app (/dapr/subscribe,
 * pub/sub deliveries, readiness) and anything else that fits in memory. Connections
 * are the client's keep-alive pools, so many small calls reuse a few connections.
 * Each call has a deadline and a body limit; the callback runs exactly once, from the
 * loop, unless the call is cancelled first. */
#ifndef TR_SIDECAR_CALL_H
#define TR_SIDECAR_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/addr.h"
#include "core/slice.h"
#include "http/client.h"

struct tr_sidecar_worker;
struct tr_sidecar_call;

#define TR_SIDECAR_CALL_TIMEOUT_MS 30000
#define TR_SIDECAR_CALL_MAX_BODY (16u * 1024 * 1024)
#define TR_SIDECAR_CALL_MAX_HEADERS 32 /* response headers kept for the callback */

/* Errors besides the HTTP client's (see client.h): */
#define TR_SIDECAR_CALL_E_TIMEOUT (-ETIMEDOUT) /* the call's deadline passed */
#define TR_SIDECAR_CALL_E_TOO_BIG (-EFBIG)     /* the answer exceeded max_body */

/* The answer, valid during the callback only. */
struct tr_sidecar_reply {
    int err;    /* 0, or why there is no answer (negative errno) */
    int status; /* when err == 0 */
    struct tr_http_client_header headers[TR_SIDECAR_CALL_MAX_HEADERS]; /* first ones */
    size_t nheaders;
    struct tr_slice body;
};

typedef void tr_sidecar_call_cb(const struct tr_sidecar_reply *r, void *data);

struct tr_sidecar_call_opts {
    const struct tr_addr *to;
    struct tr_slice host;   /* Host header */
    struct tr_slice method; /* "GET" */
    struct tr_slice target; /* "/v1/state/s/app/k?x=1" */
    const struct tr_http_client_header *headers; /* no framing headers; copied */
    size_t nheaders;
    struct tr_slice body;   /* copied; NULL ptr = none */
    uint64_t timeout_ms;    /* 0 = TR_SIDECAR_CALL_TIMEOUT_MS */
    size_t max_body;        /* 0 = TR_SIDECAR_CALL_MAX_BODY */
};

/* Starts the call. Returns 0 (and, if `out` is not NULL, a handle valid until the
 * callback has run or the call is cancelled), or a negative errno, in which case `cb`
 * never runs. */
TR_MUST_CHECK int tr_sidecar_call(struct tr_sidecar_worker *sw,
                                  const struct tr_sidecar_call_opts *o, tr_sidecar_call_cb *cb,
                                  void *data, struct tr_sidecar_call **out);

/* The same to the trellis server (--server): `to` and `host` are filled in. */
TR_MUST_CHECK int tr_sidecar_server_call(struct tr_sidecar_worker *sw,
                                         struct tr_sidecar_call_opts *o, tr_sidecar_call_cb *cb,
                                         void *data, struct tr_sidecar_call **out);

/* The same to the app (127.0.0.1:--app-port). APP_API_TOKEN is added when set. */
TR_MUST_CHECK int tr_sidecar_app_call(struct tr_sidecar_worker *sw,
                                      struct tr_sidecar_call_opts *o, tr_sidecar_call_cb *cb,
                                      void *data, struct tr_sidecar_call **out);

/* Abandons the call: its callback will not run. Not from inside the callback. */
void tr_sidecar_call_cancel(struct tr_sidecar_call *call);

/* Calls bound to a client request: the answer is for `req`, and if the client goes
 * away first the call is cancelled and `cb` never runs (so `data` must not need
 * freeing then: pass NULL, a constant, or state owned elsewhere). `cb` gets `req`
 * back, detached (req->user and req->on_body_end are cleared), and must answer it.
 * Uses req->user and req->on_body_end until then: for TR_ROUTE_BUFFERED handlers. */
struct tr_http_req;
typedef void tr_sidecar_req_cb(struct tr_http_req *req, const struct tr_sidecar_reply *r,
                               void *data);
TR_MUST_CHECK int tr_sidecar_req_call(struct tr_http_req *req, struct tr_sidecar_call_opts *o,
                                      tr_sidecar_req_cb *cb, void *data);
TR_MUST_CHECK int tr_sidecar_req_server_call(struct tr_http_req *req,
                                             struct tr_sidecar_call_opts *o,
                                             tr_sidecar_req_cb *cb, void *data);

/* First header `name` of a reply (case-insensitive), or a NULL slice. */
struct tr_slice tr_sidecar_reply_header(const struct tr_sidecar_reply *r, struct tr_slice name);

#endif
