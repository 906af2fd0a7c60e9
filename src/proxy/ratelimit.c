/* SPDX-License-Identifier: Apache-2.0 */
/* GCRA buckets in a shared, fixed-size, lock-free table (see ratelimit.h). */
#include "proxy/ratelimit.h"

#include "core/mem.h"

#define NS_PER_S 1000000000ull
#define CLAIM_TRIES 4

struct tr_proxy_ratelimit *tr_proxy_ratelimit_new(size_t max_keys)
{
    struct tr_proxy_ratelimit *rl = tr_xcalloc(1, sizeof(*rl));
    size_t want = max_keys <= 1 ? 1 : max_keys * 2;
    size_t n = 1;
    while (n < want) {
        n <<= 1;
    }
    rl->mask = n - 1;
    rl->slots = tr_xcalloc(n, sizeof(*rl->slots));
    return rl;
}

void tr_proxy_ratelimit_free(struct tr_proxy_ratelimit *rl)
{
    if (rl == NULL) {
        return;
    }
    tr_free_null(&rl->slots);
    tr_free_null(&rl);
}

bool tr_proxy_gcra(uint64_t tat, uint64_t now_ns, uint64_t rate, uint64_t burst, uint64_t *new_tat,
                   uint64_t *wait_ns)
{
    uint64_t interval = NS_PER_S / (rate > 0 ? rate : 1);
    if (interval == 0) {
        interval = 1;
    }
    uint64_t limit = (burst > 0 ? burst : 1) * interval;
    uint64_t next = (tat > now_ns ? tat : now_ns) + interval;
    if (next - now_ns > limit) {
        *wait_ns = next - now_ns - limit;
        return false;
    }
    *new_tat = next;
    return true;
}

/* The slot holding `key`, or one taken over for it; NULL if others kept winning the
 * race for the slots (the caller lets the request through). */
static struct tr_proxy_rl_slot *find_slot(struct tr_proxy_ratelimit *rl, uint64_t key,
                                          uint64_t now_ns)
{
    size_t probe =
        rl->mask + 1 < TR_PROXY_RATELIMIT_PROBE ? rl->mask + 1 : TR_PROXY_RATELIMIT_PROBE;
    for (int attempt = 0; attempt < CLAIM_TRIES; attempt++) {
        struct tr_proxy_rl_slot *victim = NULL;
        uint64_t victim_key = 0;
        uint64_t victim_tat = UINT64_MAX;
        for (size_t i = 0; i < probe; i++) {
            struct tr_proxy_rl_slot *s = &rl->slots[(key + i) & rl->mask];
            uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
            if (k == key) {
                return s;
            }
            /* Empty or expired (a full bucket) beats live; among live, the fullest. */
            uint64_t t = k == 0 ? 0 : atomic_load_explicit(&s->tat, memory_order_relaxed);
            uint64_t rank = t <= now_ns ? 0 : t;
            if (victim == NULL || rank < victim_tat) {
                victim = s;
                victim_key = k;
                victim_tat = rank;
            }
        }
        if (atomic_compare_exchange_strong_explicit(&victim->key, &victim_key, key,
                                                    memory_order_acq_rel, memory_order_acquire)) {
            if (victim_tat != 0) {
                /* A live bucket taken over: the new key starts with a full one. */
                atomic_store_explicit(&victim->tat, 0, memory_order_relaxed);
            }
            return victim;
        }
    }
    return NULL;
}

bool tr_proxy_ratelimit_take(struct tr_proxy_ratelimit *rl, uint64_t key, uint64_t rate,
                             uint64_t burst, uint64_t now_ns, uint64_t *wait_ns)
{
    if (key == 0) {
        key = 1;
    }
    struct tr_proxy_rl_slot *s = find_slot(rl, key, now_ns);
    if (s == NULL) {
        return true;
    }
    uint64_t tat = atomic_load_explicit(&s->tat, memory_order_relaxed);
    for (;;) {
        uint64_t next;
        if (!tr_proxy_gcra(tat, now_ns, rate, burst, &next, wait_ns)) {
            return false;
        }
        /* Another worker may have moved TAT (or, rarely, taken the slot over: the
         * token then comes from that key's bucket, which only errs on the strict side). */
        if (atomic_compare_exchange_weak_explicit(&s->tat, &tat, next, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            return true;
        }
    }
}

uint64_t tr_proxy_ratelimit_retry_after_s(uint64_t wait_ns)
{
    uint64_t s = (wait_ns + NS_PER_S - 1) / NS_PER_S;
    return s > 0 ? s : 1;
}
