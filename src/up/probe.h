/* SPDX-License-Identifier: Apache-2.0 */
/* The requests trellis up makes on its own loop: HTTP calls (health probes, the
 * registry's health and agent APIs, the gateway's admin API) and TCP connect checks.
 * Each call has a handle that may be cancelled until its callback has run; the callback
 * runs exactly once otherwise, never from inside the call that started it. */
#ifndef TR_UP_PROBE_H
#define TR_UP_PROBE_H

#include <stdint.h>
#include <uv.h>

#include "core/addr.h"
#include "core/mem.h"
#include "core/slice.h"

#define TR_UP_PROBE_MAX_BODY (8u * 1024 * 1024)

struct tr_up_http;
struct tr_up_call;
struct tr_up_tcp;

/* `status` is the HTTP status, or a negative errno when no response arrived. `body` is
 * valid during the call only. */
typedef void tr_up_call_cb(void *data, int status, struct tr_slice body);
/* `status` is 0 when the connection was accepted, else a negative errno. */
typedef void tr_up_tcp_cb(void *data, int status);

struct tr_up_http *tr_up_http_new(uv_loop_t *loop);
/* Cancels every call in flight (no callbacks) and frees the client once its handles are
 * closed. */
void tr_up_http_free(struct tr_up_http *h);

/* Sends `method target` to `to` with `body` (TR_SLICE_NULL for none; sent as JSON).
 * Returns 0 and a handle in *out (may be NULL if the caller never cancels), or a negative
 * errno when the request could not start (no callback then). */
TR_MUST_CHECK int tr_up_http_call(struct tr_up_http *h, const struct tr_addr *to,
                                  const char *method, const char *target, struct tr_slice body,
                                  tr_up_call_cb *cb, void *data, struct tr_up_call **out);

/* No callback will run for `c`; the handle is gone. */
void tr_up_call_cancel(struct tr_up_call *c);

/* Connects to `to` and closes again; times out after 1 s. */
TR_MUST_CHECK int tr_up_tcp_check(uv_loop_t *loop, const struct tr_addr *to, tr_up_tcp_cb *cb,
                                  void *data, struct tr_up_tcp **out);
void tr_up_tcp_cancel(struct tr_up_tcp *t);

/* 127.0.0.1:port as an address. */
void tr_up_local_addr(uint16_t port, struct tr_addr *out);

#endif
