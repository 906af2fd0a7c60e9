/* SPDX-License-Identifier: Apache-2.0 */
/* The load-balancing algorithms (see balancer.h). Every function reads the immutable
 * set and the calling worker's row of counters only. */
#include "proxy/balancer.h"

#include "core/mem.h"
#include "proxy/outlier.h"
#include "proxy/ring_hash.h"

#define REPICK_TRIES 8

uint64_t tr_proxy_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

static size_t rand_below(uint64_t *rng, uint64_t n)
{
    /* Multiply-shift: no modulo bias worth mentioning for n far below 2^32. */
    return (size_t)(((tr_proxy_rand(rng) >> 32) * n) >> 32);
}

static int pick_round_robin(struct tr_proxy_eps *s, const struct tr_proxy_pick *p)
{
    int best = -1;
    int64_t best_score = 0;
    for (size_t i = 0; i < s->n; i++) {
        struct tr_proxy_ep_load *l = tr_proxy_eps_load(s, p->worker, i);
        l->rr_current += s->eps[i].weight;
        if ((int)i == p->avoid && s->n > 1) {
            continue;
        }
        if (best < 0 || l->rr_current > best_score) {
            best = (int)i;
            best_score = l->rr_current;
        }
    }
    tr_proxy_eps_load(s, p->worker, (size_t)best)->rr_current -= (int64_t)s->total_weight;
    return best;
}

static int pick_weighted_random(struct tr_proxy_eps *s, const struct tr_proxy_pick *p)
{
    uint64_t total = s->total_weight;
    bool skip = p->avoid >= 0 && s->n > 1;
    if (skip) {
        total -= s->eps[p->avoid].weight;
    }
    uint64_t r = rand_below(p->rng, total);
    if (skip && r >= (p->avoid > 0 ? s->cum_weight[p->avoid - 1] : 0)) {
        r += s->eps[p->avoid].weight; /* jump over the avoided endpoint's range */
    }
    size_t lo = 0;
    size_t hi = s->n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->cum_weight[mid] <= r) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return (int)lo;
}

static int pick_least_request(struct tr_proxy_eps *s, const struct tr_proxy_pick *p)
{
    size_t n = s->n;
    if (n == 1) {
        return 0;
    }
    size_t a;
    size_t b;
    if (p->avoid >= 0 && n == 2) {
        return p->avoid == 0 ? 1 : 0;
    }
    do {
        a = rand_below(p->rng, n);
    } while ((int)a == p->avoid);
    do {
        b = rand_below(p->rng, n);
    } while (b == a || (int)b == p->avoid);
    /* Fewer in flight per unit of weight: (active_a + 1) / w_a < (active_b + 1) / w_b. */
    uint64_t la = tr_proxy_counter_get(&tr_proxy_eps_load(s, p->worker, a)->active) + 1;
    uint64_t lb = tr_proxy_counter_get(&tr_proxy_eps_load(s, p->worker, b)->active) + 1;
    return la * s->eps[b].weight <= lb * s->eps[a].weight ? (int)a : (int)b;
}

static int pick_ring_hash(struct tr_proxy_eps *s, const struct tr_proxy_pick *p)
{
    if (!p->has_hash) {
        return pick_weighted_random(s, p);
    }
    const struct tr_proxy_ring *ring = tr_proxy_eps_ring(s);
    int ep = (int)tr_proxy_ring_lookup(ring, p->hash);
    if (ep == p->avoid && s->n > 1) {
        /* A retry: hash once more; if that lands on the same endpoint, take the next. */
        int alt = (int)tr_proxy_ring_lookup(ring, tr_proxy_hash64(&p->hash, sizeof(p->hash), 1));
        return alt != p->avoid ? alt : (ep + 1) % (int)s->n;
    }
    return ep;
}

static int pick_once(enum tr_proxy_lb lb, struct tr_proxy_eps *s, const struct tr_proxy_pick *p)
{
    switch (lb) {
    case TR_PROXY_LB_ROUND_ROBIN:
        return pick_round_robin(s, p);
    case TR_PROXY_LB_LEAST_REQUEST:
        return pick_least_request(s, p);
    case TR_PROXY_LB_RANDOM:
        return pick_weighted_random(s, p);
    case TR_PROXY_LB_RING_HASH:
        return pick_ring_hash(s, p);
    default:
        TR_ASSERT(!"unknown balancer");
        return -1;
    }
}

static bool ejected(const struct tr_proxy_eps *s, const struct tr_proxy_pick *p, int i)
{
    return tr_proxy_ep_ejected(s, p->worker, (size_t)i, p->now_ms);
}

/* `first` was ejected: pick again, skipping ejected endpoints. Off the fast path. */
static int repick(enum tr_proxy_lb lb, struct tr_proxy_eps *s, const struct tr_proxy_pick *p,
                  int first)
{
    size_t usable = 0;
    for (size_t i = 0; i < s->n; i++) {
        usable += ejected(s, p, (int)i) ? 0 : 1;
    }
    if (usable == 0) {
        return first; /* all ejected: ejections are ignored */
    }
    struct tr_proxy_pick q = *p;
    for (int t = 1; t <= REPICK_TRIES; t++) {
        if (lb == TR_PROXY_LB_RING_HASH && p->has_hash) {
            /* The key's next choices: deterministic, so the key stays sticky. */
            q.hash = tr_proxy_hash64(&p->hash, sizeof(p->hash), (uint64_t)t + 1);
        }
        int ep = pick_once(lb, s, &q);
        if (!ejected(s, p, ep)) {
            return ep;
        }
    }
    size_t start =
        lb == TR_PROXY_LB_RING_HASH && p->has_hash ? p->hash % s->n : rand_below(p->rng, s->n);
    int fallback = -1;
    for (size_t k = 0; k < s->n; k++) {
        int i = (int)((start + k) % s->n);
        if (ejected(s, p, i)) {
            continue;
        }
        if (i != p->avoid) {
            return i;
        }
        fallback = i;
    }
    return fallback;
}

int tr_proxy_balancer_pick(enum tr_proxy_lb lb, struct tr_proxy_eps *s,
                           const struct tr_proxy_pick *p)
{
    if (s == NULL || s->n == 0) {
        return -1;
    }
    int ep = pick_once(lb, s, p);
    if (!p->check_ejected || !ejected(s, p, ep)) {
        return ep;
    }
    return repick(lb, s, p, ep);
}
