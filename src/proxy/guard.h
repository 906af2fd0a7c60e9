/* SPDX-License-Identifier: Apache-2.0 */
/* Guards: the run-time state of a cluster's or a route's resilience policies — the
 * circuit breaker, outlier detection and the queue of requests waiting for a
 * connection (clusters), the rate limiter's buckets (routes). Like the counters in
 * stats.h, a guard is ref-counted and kept by name in a registry on the main thread,
 * so a reload that keeps a cluster or route keeps its breaker state, ejections and
 * buckets; the configuration holds a reference. Per-worker parts (outlier detection,
 * the connection queue) are touched by their worker only; the breaker and the rate
 * limiter's table are shared by all workers (compare-and-swap, no lock). */
#ifndef TR_PROXY_GUARD_H
#define TR_PROXY_GUARD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/list.h"
#include "core/map.h"
#include "proxy/breaker.h"
#include "proxy/outlier.h"
#include "proxy/ratelimit.h"
#include "proxy/worker.h"

/* A request waiting for one of a cluster's connections (max_connections). */
struct tr_proxy_waiter;
typedef void tr_proxy_waiter_cb(struct tr_proxy_waiter *w);
struct tr_proxy_waiter {
    struct tr_list link;      /* in the worker's queue for the cluster */
    _Atomic uint64_t *active; /* the counter of busy connections it waits on */
    uint64_t limit;           /* ... to go below this */
    tr_proxy_waiter_cb *run;  /* called (from the worker's timer) when it may go */
};

/* One worker's part of a guard. */
struct tr_proxy_guard_worker {
    struct tr_proxy_outlier outlier;
    struct tr_list queue;           /* struct tr_proxy_waiter, first come first served */
    struct tr_proxy_deadline kick;  /* armed while a connection freed and someone waits */
    struct tr_proxy_worker *worker; /* set when the queue is first used */
} __attribute__((aligned(64)));

struct tr_proxy_guard {
    struct tr_proxy_breaker breaker; /* clusters; shared by the workers (breaker.h) */
    _Atomic unsigned refs;
    char *name; /* owned: "cluster/NAME" or "route/NAME" */
    unsigned nworkers;
    struct tr_proxy_guard_worker *workers; /* owned, [nworkers] */
    struct tr_proxy_ratelimit *rl;         /* owned, shared by the workers; NULL: none */
    size_t rl_keys;                        /* the table's max_keys (0 without one) */
};

/* Main thread only. */
struct tr_proxy_guard_set {
    struct tr_map by_name; /* name -> struct tr_proxy_guard * (one reference each) */
    unsigned nworkers;
};

void tr_proxy_guard_set_init(struct tr_proxy_guard_set *set, unsigned nworkers);
void tr_proxy_guard_set_dispose(struct tr_proxy_guard_set *set);

/* Returns a new reference to the guard called `name`. `rl_keys` > 0 asks for a rate
 * limiter table of that size: a guard whose table differs (or has none) is replaced in
 * the set by a new one (configs holding the old one keep it until they go). */
struct tr_proxy_guard *tr_proxy_guard_get(struct tr_proxy_guard_set *set, const char *name,
                                          size_t rl_keys);

void tr_proxy_guard_ref(struct tr_proxy_guard *g);
/* Any thread. The last reference frees the guard; its queues must be empty. */
void tr_proxy_guard_unref(struct tr_proxy_guard *g);

static inline struct tr_proxy_guard_worker *tr_proxy_guard_of(struct tr_proxy_guard *g, unsigned w)
{
    return &g->workers[w];
}

/* Queues `wt` (with its counter and limit set) behind the others on worker `pw`. */
void tr_proxy_guard_wait(struct tr_proxy_guard_worker *gw, struct tr_proxy_worker *pw,
                         struct tr_proxy_waiter *wt);
/* Takes `wt` out of the queue (it gave up: timeout, client gone). No-op if not queued. */
void tr_proxy_guard_unwait(struct tr_proxy_guard_worker *gw, struct tr_proxy_waiter *wt);
/* A busy connection of the cluster became free: the first waiters whose counter is
 * below their limit run on the next loop turn (never from inside this call). */
void tr_proxy_guard__kick_later(struct tr_proxy_guard_worker *gw);
static inline void tr_proxy_guard_freed(struct tr_proxy_guard_worker *gw)
{
    if (!tr_list_empty(&gw->queue)) {
        tr_proxy_guard__kick_later(gw);
    }
}

#endif
