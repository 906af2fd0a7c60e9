/* SPDX-License-Identifier: Apache-2.0 */
/* Retry decisions (see retry.h). */
#include "proxy/retry.h"

#include "proxy/balancer.h"

static bool attempts_left(const struct tr_proxy_retry_facts *f)
{
    return f->attempts <= f->policy->attempts && !f->body_acked && !f->headers_seen;
}

bool tr_proxy_retry_idempotent(const struct tr_proxy_retry_policy *p, bool idempotent_method,
                               struct tr_slice key)
{
    return idempotent_method || (p->idempotency_header.len > 0 && key.len > 0);
}

bool tr_proxy_retry_on_error(const struct tr_proxy_retry_facts *f)
{
    unsigned on = f->policy->on;
    if (!attempts_left(f)) {
        return false;
    }
    switch (f->err) {
    case TR_PROXY_UERR_CONNECT:
        return (on & TR_PROXY_RETRY_CONNECT_FAILURE) != 0;
    case TR_PROXY_UERR_RESET:
        return f->idempotent && (on & TR_PROXY_RETRY_RESET) != 0;
    case TR_PROXY_UERR_TIMEOUT:
    case TR_PROXY_UERR_PROTOCOL:
        return f->idempotent && (on & (TR_PROXY_RETRY_GATEWAY_ERROR | TR_PROXY_RETRY_5XX)) != 0;
    default:
        return false;
    }
}

bool tr_proxy_retry_on_status(const struct tr_proxy_retry_facts *f)
{
    unsigned on = f->policy->on;
    if (f->status < 500 || f->status > 599 || !f->idempotent || !attempts_left(f)) {
        return false;
    }
    if (on & TR_PROXY_RETRY_5XX) {
        return true;
    }
    if (f->status == 503 && (on & TR_PROXY_RETRY_503)) {
        return true;
    }
    return (f->status == 502 || f->status == 503 || f->status == 504) &&
           (on & TR_PROXY_RETRY_GATEWAY_ERROR) != 0;
}

uint64_t tr_proxy_retry_backoff_ms(const struct tr_proxy_retry_policy *p, unsigned n, uint64_t *rng)
{
    if (!p->configured || n == 0) {
        return 0;
    }
    uint64_t cap = TR_PROXY_RETRY_BACKOFF_BASE_MS;
    for (unsigned i = 1; i < n && cap < TR_PROXY_RETRY_BACKOFF_MAX_MS; i++) {
        cap *= 2;
    }
    if (cap > TR_PROXY_RETRY_BACKOFF_MAX_MS) {
        cap = TR_PROXY_RETRY_BACKOFF_MAX_MS;
    }
    /* Full jitter (AWS architecture blog): uniform in [0, cap]. */
    return tr_proxy_rand(rng) % (cap + 1);
}

bool tr_proxy_retry_budget_ok(const struct tr_proxy_retry_policy *p, uint64_t active,
                              uint64_t retries)
{
    if (p->budget_percent == 0) {
        return true;
    }
    uint64_t allowed = active * p->budget_percent / 100;
    if (allowed < TR_PROXY_RETRY_BUDGET_MIN) {
        allowed = TR_PROXY_RETRY_BUDGET_MIN;
    }
    return retries < allowed;
}
