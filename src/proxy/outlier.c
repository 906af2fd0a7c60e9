/* SPDX-License-Identifier: Apache-2.0 */
/* Outlier detection (see outlier.h): per-worker failure counts in the set's rows,
 * ejection history by address, and the ejection arithmetic. */
#include "proxy/outlier.h"

#include <string.h>

#include "core/mem.h"

void tr_proxy_outlier_init(struct tr_proxy_outlier *o)
{
    memset(o, 0, sizeof(*o));
    tr_map_init(&o->history);
}

void tr_proxy_outlier_dispose(struct tr_proxy_outlier *o)
{
    const struct tr_map_slot *slot;
    for (size_t i = 0; tr_map_next(&o->history, &i, &slot);) {
        struct tr_proxy_ejection *h = slot->value;
        tr_free_null(&h);
    }
    tr_map_dispose(&o->history);
    tr_proxy_eps_unref(o->eps);
    o->eps = NULL;
}

uint64_t tr_proxy_outlier_ejection_ms(const struct tr_proxy_outlier_policy *p,
                                      struct tr_proxy_ejection *h, uint64_t now_ms)
{
    uint64_t base = p->base_ejection_ms > 0 ? p->base_ejection_ms : 1;
    if (h->times > 0 && now_ms > h->until_ms) {
        uint64_t forgiven = (now_ms - h->until_ms) / base;
        h->times = forgiven >= h->times ? 0 : h->times - (unsigned)forgiven;
    }
    if (h->times < 1000000) {
        h->times++;
    }
    uint64_t cap =
        base > TR_PROXY_OUTLIER_MAX_EJECTION_MS ? base : TR_PROXY_OUTLIER_MAX_EJECTION_MS;
    uint64_t ms = base * h->times;
    return ms < cap ? ms : cap;
}

bool tr_proxy_outlier_may_eject(const struct tr_proxy_outlier_policy *p, size_t ejected, size_t n)
{
    return (uint64_t)(ejected + 1) * 100 <= (uint64_t)n * p->max_ejection_percent;
}

bool tr_proxy_outlier_prepare(struct tr_proxy_outlier *o, struct tr_proxy_eps *eps, unsigned w,
                              uint64_t now_ms)
{
    if (eps == NULL) {
        return false;
    }
    if (eps != o->eps) {
        /* A set this worker has not picked from yet: carry running ejections over. */
        for (size_t i = 0; o->history.len > 0 && i < eps->n; i++) {
            struct tr_proxy_ejection *h = tr_map_get(&o->history, tr_slice_cstr(eps->eps[i].name));
            struct tr_proxy_ep_load *l = tr_proxy_eps_load(eps, w, i);
            if (h != NULL && h->until_ms > now_ms &&
                tr_proxy_counter_get(&l->ejected_until) < h->until_ms) {
                atomic_store_explicit(&l->ejected_until, h->until_ms, memory_order_relaxed);
            }
        }
        tr_proxy_eps_ref(eps); /* held so that the pointer cannot be reused by a new set */
        tr_proxy_eps_unref(o->eps);
        o->eps = eps;
    }
    return now_ms < o->max_until_ms;
}

/* Drops histories that are fully forgiven and not running, when the table has grown
 * well past the set (registry endpoints come and go with new ports). */
static void prune(struct tr_proxy_outlier *o, const struct tr_proxy_outlier_policy *p, size_t n,
                  uint64_t now_ms)
{
    if (o->history.len <= 2 * n + 64) {
        return;
    }
    uint64_t base = p->base_ejection_ms > 0 ? p->base_ejection_ms : 1;
    const struct tr_map_slot *slot;
    for (;;) {
        char victim[sizeof(((struct tr_proxy_endpoint *)0)->name)];
        size_t victim_len = 0;
        for (size_t i = 0; tr_map_next(&o->history, &i, &slot);) {
            const struct tr_proxy_ejection *h = slot->value;
            if (h->until_ms <= now_ms && (now_ms - h->until_ms) / base >= h->times &&
                slot->key_len <= sizeof(victim)) {
                victim_len = slot->key_len;
                memcpy(victim, slot->key, victim_len);
                break;
            }
        }
        if (victim_len == 0) {
            return;
        }
        struct tr_proxy_ejection *h =
            tr_map_del(&o->history, (struct tr_slice){.ptr = victim, .len = victim_len});
        tr_free_null(&h);
    }
}

static bool eject(struct tr_proxy_outlier *o, const struct tr_proxy_outlier_policy *p,
                  struct tr_proxy_eps *eps, unsigned w, size_t ep, uint64_t now_ms)
{
    size_t ejected = 0;
    for (size_t i = 0; i < eps->n; i++) {
        ejected += tr_proxy_ep_ejected(eps, w, i, now_ms) ? 1 : 0;
    }
    if (!tr_proxy_outlier_may_eject(p, ejected, eps->n)) {
        return false;
    }
    struct tr_slice name = tr_slice_cstr(eps->eps[ep].name);
    struct tr_proxy_ejection *h = tr_map_get(&o->history, name);
    if (h == NULL) {
        prune(o, p, eps->n, now_ms);
        h = tr_xcalloc(1, sizeof(*h));
        tr_map_put(&o->history, name, h);
    }
    h->until_ms = now_ms + tr_proxy_outlier_ejection_ms(p, h, now_ms);
    atomic_store_explicit(&tr_proxy_eps_load(eps, w, ep)->ejected_until, h->until_ms,
                          memory_order_relaxed);
    if (h->until_ms > o->max_until_ms) {
        o->max_until_ms = h->until_ms;
    }
    return true;
}

bool tr_proxy_outlier_report(struct tr_proxy_outlier *o, const struct tr_proxy_outlier_policy *p,
                             struct tr_proxy_eps *eps, unsigned w, size_t ep, bool failed,
                             uint64_t now_ms)
{
    struct tr_proxy_ep_load *l = tr_proxy_eps_load(eps, w, ep);
    if (!failed) {
        l->consecutive_5xx = 0;
        return false;
    }
    if (++l->consecutive_5xx < p->consecutive_5xx) {
        return false;
    }
    l->consecutive_5xx = 0;
    if (tr_proxy_ep_ejected(eps, w, ep, now_ms)) {
        return false; /* attempts sent before the ejection, finishing now */
    }
    return eject(o, p, eps, w, ep, now_ms);
}
