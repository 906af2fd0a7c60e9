/* SPDX-License-Identifier: Apache-2.0 */
/* The sidecar client's core: one I/O thread with its own libuv loop and HTTP client;
 * callers on any thread post a call to its mailbox and wait on a condition variable
 * for the response. invoke.c, state.c and publish.c build on tr_sdk_call(). */
#ifndef TR_SDK_CLIENT_H
#define TR_SDK_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/mem.h"
#include "trellis/sidecar.h"

struct tr_sdk_call_spec {
    const char *method;
    const char *target;       /* origin-form: "/v1.0/state/s/k?x=y" */
    const char *content_type; /* NULL: no Content-Type */
    const void *body;         /* NULL: no body */
    size_t body_len;
    const char *const *headers; /* NULL, or name/value pairs ending with NULL */
    uint64_t timeout_ms;        /* 0: the client's default */
};

/* Sends one request to the sidecar and waits for the whole response. Returns 0 and a
 * response in *out (any status), or a negative errno (-ECONNREFUSED, -ETIMEDOUT,
 * -ECANCELED, ...) with trellis_last_error() set. Adds traceparent/tracestate from the
 * calling thread's handler context and the dapr-api-token. Borrows `spec` only while
 * it runs. */
TR_MUST_CHECK int tr_sdk_call(struct trellis_sidecar *sc, const struct tr_sdk_call_spec *spec,
                              struct trellis_response **out);

/* Fails every call in flight and every later one with -ECANCELED (shutdown deadline).
 * Any thread. */
void tr_sdk_sidecar_abort(struct trellis_sidecar *sc);

/* Records "what: the sidecar answered STATUS: BODY" as the error and returns
 * TRELLIS_EHTTP. */
int tr_sdk_unexpected(const struct trellis_response *resp, const char *what);

/* Appends `s` percent-encoded for a path segment (all but unreserved characters; '/'
 * too unless keep_slash). */
void tr_sdk_pct_encode(struct tr_buf *out, const char *s, bool keep_slash);

/* $APP_ID or NULL. */
const char *tr_sdk_app_id(void);

#endif
