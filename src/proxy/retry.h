/* SPDX-License-Identifier: Apache-2.0 */
/* Retry policy: when a failed attempt may be tried again, how long to wait first, and
 * the budget that keeps retries from multiplying the load on a failing cluster. The
 * rules, as pure functions of what happened:
 *   - never after a request-body byte reached the upstream's socket (it may have acted
 *     on a partial body; the body is only held here until then);
 *   - a connection that could not be opened sent nothing: retried for every method when
 *     `on` has connect_failure (the default, once, at once);
 *   - anything else — reset before a response, a per-try timeout, a bad response, a
 *     5xx status — only for idempotent methods (RFC 9110 §9.2.2), or for any method
 *     when the policy names an idempotency_header and the request carries it (the
 *     upstream promises to dedupe by its value, e.g. Idempotency-Key);
 *   - at most `attempts` retries, each after a jittered exponential backoff
 *     (full jitter over 25 ms x 2^(n-1), at most 250 ms);
 *   - with budget_percent, retries in flight on a worker stay under that share of the
 *     cluster's requests in flight (but 3 are always allowed, so low traffic retries). */
#ifndef TR_PROXY_RETRY_H
#define TR_PROXY_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/config.h"
#include "proxy/stats.h"

#define TR_PROXY_RETRY_BACKOFF_BASE_MS 25
#define TR_PROXY_RETRY_BACKOFF_MAX_MS 250
#define TR_PROXY_RETRY_BUDGET_MIN 3

struct tr_proxy_retry_facts {
    const struct tr_proxy_retry_policy *policy;
    enum tr_proxy_upstream_err err; /* what failed (tr_proxy_retry_on_error) */
    int status;                     /* the response status (tr_proxy_retry_on_status) */
    unsigned attempts;              /* attempts made, the failed one included */
    bool headers_seen;              /* the response had started: too late */
    bool idempotent;
    bool body_acked;
};

/* Is a request retryable beyond connect failures: an idempotent method, or one carrying
 * the policy's idempotency_header with a non-empty value (`key`: NULL slice if absent). */
bool tr_proxy_retry_idempotent(const struct tr_proxy_retry_policy *p, bool idempotent_method,
                               struct tr_slice key);

bool tr_proxy_retry_on_error(const struct tr_proxy_retry_facts *f);
bool tr_proxy_retry_on_status(const struct tr_proxy_retry_facts *f);

/* Wait before retry number `n` (1 = the first retry). The default policy (no retry:
 * section) retries at once. */
uint64_t tr_proxy_retry_backoff_ms(const struct tr_proxy_retry_policy *p, unsigned n,
                                   uint64_t *rng);

/* May one more retry start with `active` requests and `retries` retries in flight? */
bool tr_proxy_retry_budget_ok(const struct tr_proxy_retry_policy *p, uint64_t active,
                              uint64_t retries);

#endif
