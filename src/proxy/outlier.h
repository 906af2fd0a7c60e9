/* SPDX-License-Identifier: Apache-2.0 */
/* Outlier detection: an endpoint whose attempts fail `consecutive_5xx` times in a row
 * (5xx responses, and connect failures, resets, timeouts and malformed responses
 * alike) is ejected — the balancers skip it — for base_ejection × the number of its
 * ejections not yet forgiven (at most 300 s, or base_ejection if that is longer). One
 * ejection is forgiven for each base_ejection the endpoint then stays un-ejected. An
 * ejection is refused when it would take the ejected share of the cluster's endpoints
 * above max_ejection_percent (strictly: 2 endpoints at 50 % allow one, at 10 % none).
 *
 * Each worker decides on its own, from its own attempts, for its own picks: no state
 * is shared between workers and nothing on the request path locks. Where things live:
 *   - the set's row for the worker (endpoints.h): the running failure count and
 *     `ejected_until` per endpoint, which the balancers and the admin listener read;
 *   - `struct tr_proxy_outlier` (one per worker per cluster): the history by address
 *     ("ip:port" -> ejections not yet forgiven, end of the last one), which outlives
 *     endpoint sets, so a registry update or a reload does not clear an ejection: when
 *     the worker first picks from a new set, ejections still running are copied in. */
#ifndef TR_PROXY_OUTLIER_H
#define TR_PROXY_OUTLIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/map.h"
#include "proxy/config.h"
#include "proxy/endpoints.h"

#define TR_PROXY_OUTLIER_MAX_EJECTION_MS (300u * 1000)

struct tr_proxy_outlier {
    struct tr_map history;    /* "ip:port" -> struct tr_proxy_ejection * (owned) */
    struct tr_proxy_eps *eps; /* owned ref: the set last brought up to date, or NULL */
    uint64_t max_until_ms;    /* no endpoint of this worker is ejected after this */
};

/* One address's ejection history. */
struct tr_proxy_ejection {
    unsigned times;    /* ejections not yet forgiven */
    uint64_t until_ms; /* end of the last ejection */
};

void tr_proxy_outlier_init(struct tr_proxy_outlier *o);
/* Frees the history and drops the set reference. Any thread, once unused. */
void tr_proxy_outlier_dispose(struct tr_proxy_outlier *o);

/* Pure: the length of a new ejection for an address with history `h` at `now_ms`;
 * updates h->times (forgiveness, then +1). h->until_ms is the caller's to set. */
uint64_t tr_proxy_outlier_ejection_ms(const struct tr_proxy_outlier_policy *p,
                                      struct tr_proxy_ejection *h, uint64_t now_ms);

/* Pure: may one more endpoint be ejected when `ejected` of `n` already are? */
bool tr_proxy_outlier_may_eject(const struct tr_proxy_outlier_policy *p, size_t ejected, size_t n);

/* Worker `w` is about to pick from `eps`: copies running ejections into a set it has
 * not seen yet. Returns true when some endpoint may be ejected at `now_ms`, i.e. the
 * pick must check (false is the common, cheap case). */
bool tr_proxy_outlier_prepare(struct tr_proxy_outlier *o, struct tr_proxy_eps *eps, unsigned w,
                              uint64_t now_ms);

/* Records the outcome of worker `w`'s attempt on endpoint `ep` of `eps`. Returns true
 * when it ejected the endpoint. */
bool tr_proxy_outlier_report(struct tr_proxy_outlier *o, const struct tr_proxy_outlier_policy *p,
                             struct tr_proxy_eps *eps, unsigned w, size_t ep, bool failed,
                             uint64_t now_ms);

/* Is endpoint `i` of `s` ejected for worker `w` at `now_ms`? Any thread. */
static inline bool tr_proxy_ep_ejected(const struct tr_proxy_eps *s, unsigned w, size_t i,
                                       uint64_t now_ms)
{
    return tr_proxy_counter_get(&tr_proxy_eps_load(s, w, i)->ejected_until) > now_ms;
}

#endif
