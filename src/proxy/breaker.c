/* SPDX-License-Identifier: Apache-2.0 */
/* The circuit breaker's state transitions (see breaker.h): relaxed atomics, with a
 * compare-and-swap wherever two workers could race for the same transition. */
#include "proxy/breaker.h"

#include "core/mem.h"

static uint64_t load(const _Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static void store(_Atomic uint64_t *v, uint64_t x)
{
    atomic_store_explicit(v, x, memory_order_relaxed);
}

static bool cas(_Atomic uint64_t *v, uint64_t from, uint64_t to)
{
    return atomic_compare_exchange_strong_explicit(v, &from, to, memory_order_acq_rel,
                                                   memory_order_relaxed);
}

/* Opens the breaker from state `from` (if it is still there). The end time goes first,
 * so that a worker that sees OPEN never reads an older end. */
static bool trip(struct tr_proxy_breaker *b, const struct tr_proxy_breaker_policy *p, uint64_t from,
                 uint64_t now_ms)
{
    store(&b->open_until_ms, now_ms + p->open_for_ms);
    atomic_thread_fence(memory_order_release);
    if (!cas(&b->state, from, TR_PROXY_BREAKER_OPEN)) {
        return false;
    }
    store(&b->failures, 0);
    store(&b->probing, 0);
    return true;
}

bool tr_proxy_breaker_would_admit(const struct tr_proxy_breaker *b, uint64_t now_ms)
{
    switch ((enum tr_proxy_breaker_state)load(&b->state)) {
    case TR_PROXY_BREAKER_CLOSED:
        return true;
    case TR_PROXY_BREAKER_OPEN:
        atomic_thread_fence(memory_order_acquire);
        return now_ms >= load(&b->open_until_ms);
    case TR_PROXY_BREAKER_HALF_OPEN:
        return load(&b->probing) == 0;
    default:
        TR_ASSERT(!"breaker state");
        return true;
    }
}

enum tr_proxy_breaker_verdict tr_proxy_breaker_admit(struct tr_proxy_breaker *b, uint64_t now_ms)
{
    uint64_t st = load(&b->state);
    if (st == TR_PROXY_BREAKER_CLOSED) {
        return TR_PROXY_BREAKER_PASS;
    }
    if (!tr_proxy_breaker_would_admit(b, now_ms)) {
        return TR_PROXY_BREAKER_REJECT;
    }
    if (st == TR_PROXY_BREAKER_OPEN &&
        cas(&b->state, TR_PROXY_BREAKER_OPEN, TR_PROXY_BREAKER_HALF_OPEN)) {
        store(&b->probing, 1);
        return TR_PROXY_BREAKER_PROBE;
    }
    /* Half-open (maybe just now, by another worker): the first to claim the probe. */
    if (load(&b->state) == TR_PROXY_BREAKER_HALF_OPEN && cas(&b->probing, 0, 1)) {
        return TR_PROXY_BREAKER_PROBE;
    }
    return load(&b->state) == TR_PROXY_BREAKER_CLOSED ? TR_PROXY_BREAKER_PASS
                                                      : TR_PROXY_BREAKER_REJECT;
}

bool tr_proxy_breaker_report(struct tr_proxy_breaker *b, const struct tr_proxy_breaker_policy *p,
                             bool ok, bool probe, uint64_t now_ms)
{
    switch ((enum tr_proxy_breaker_state)load(&b->state)) {
    case TR_PROXY_BREAKER_CLOSED:
        if (ok) {
            if (load(&b->failures) != 0) { /* healthy traffic writes nothing shared */
                store(&b->failures, 0);
            }
            return false;
        }
        if (atomic_fetch_add_explicit(&b->failures, 1, memory_order_relaxed) + 1 <
            p->consecutive_failures) {
            return false;
        }
        return trip(b, p, TR_PROXY_BREAKER_CLOSED, now_ms);
    case TR_PROXY_BREAKER_OPEN:
        return false; /* an attempt that started before the breaker opened */
    case TR_PROXY_BREAKER_HALF_OPEN:
        if (!probe) {
            return false;
        }
        if (!ok) {
            return trip(b, p, TR_PROXY_BREAKER_HALF_OPEN, now_ms);
        }
        store(&b->failures, 0);
        if (cas(&b->state, TR_PROXY_BREAKER_HALF_OPEN, TR_PROXY_BREAKER_CLOSED)) {
            store(&b->probing, 0);
        }
        return false;
    default:
        TR_ASSERT(!"breaker state");
        return false;
    }
}

void tr_proxy_breaker_abandon(struct tr_proxy_breaker *b)
{
    if (load(&b->state) == TR_PROXY_BREAKER_HALF_OPEN) {
        store(&b->probing, 0);
    }
}

uint64_t tr_proxy_breaker_retry_after_s(const struct tr_proxy_breaker *b, uint64_t now_ms)
{
    uint64_t until = load(&b->open_until_ms);
    if (load(&b->state) != TR_PROXY_BREAKER_OPEN || until <= now_ms) {
        return 1;
    }
    return (until - now_ms + 999) / 1000;
}

uint64_t tr_proxy_breaker_share(uint64_t limit, unsigned nworkers, unsigned w)
{
    if (nworkers <= 1) {
        return limit > 0 ? limit : 1;
    }
    uint64_t share = limit / nworkers + (w < limit % nworkers ? 1 : 0);
    return share > 0 ? share : 1;
}

const char *tr_proxy_breaker_state_name(enum tr_proxy_breaker_state s)
{
    switch (s) {
    case TR_PROXY_BREAKER_CLOSED:
        return "closed";
    case TR_PROXY_BREAKER_OPEN:
        return "open";
    case TR_PROXY_BREAKER_HALF_OPEN:
        return "half_open";
    default:
        return "unknown";
    }
}
