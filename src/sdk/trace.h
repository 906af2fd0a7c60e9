/* SPDX-License-Identifier: Apache-2.0 */
/* W3C trace context (https://www.w3.org/TR/trace-context/) for the SDK: parsing and
 * formatting `traceparent`, fresh ids, and the per-thread context that lets sidecar
 * calls made from a handler carry the handler's trace id. */
#ifndef TR_SDK_TRACE_H
#define TR_SDK_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"
#include "core/slice.h"

#define TR_TRACEPARENT_LEN 55 /* "00-" 32 hex "-" 16 hex "-" 2 hex */

struct tr_trace {
    char trace_id[33]; /* 32 lowercase hex digits + NUL */
    char span_id[17];  /* 16 lowercase hex digits + NUL */
    uint8_t flags;     /* trace-flags; bit 0 = sampled */
};

/* Parses a traceparent header value (surrounding spaces allowed). Version 00 must be
 * exactly 55 characters; a later version may carry more after a '-'; version ff, upper
 * case hex, and all-zero ids are invalid. Returns 0 or -EINVAL. Pure function. */
TR_MUST_CHECK int tr_trace_parse(struct tr_slice value, struct tr_trace *out);
/* A new trace: random trace and span ids, sampled. */
void tr_trace_new(struct tr_trace *t);
/* `child` = `parent`'s trace id and flags with a new random span id. */
void tr_trace_child(const struct tr_trace *parent, struct tr_trace *child);
/* Writes the version-00 form and a NUL into out[56]. */
void tr_trace_format(const struct tr_trace *t, char out[TR_TRACEPARENT_LEN + 1]);

/* Random bytes from a per-thread generator seeded by getrandom(2) (ids, jitter; not
 * for secrets). */
void tr_sdk_random(void *buf, size_t n);
uint64_t tr_sdk_random_u64(void);

/* The trace context of the handler running on this thread, or NULL. Set by the pool
 * around each handler call. */
struct tr_sdk_ctx {
    const struct tr_trace *trace;
    const char *tracestate; /* NULL when the request had none */
};

const struct tr_sdk_ctx *tr_sdk_ctx_current(void);
/* Installs `ctx` (may be NULL) for this thread and returns the previous one. */
const struct tr_sdk_ctx *tr_sdk_ctx_swap(const struct tr_sdk_ctx *ctx);

#endif
