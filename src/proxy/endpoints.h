/* SPDX-License-Identifier: Apache-2.0 */
/* Endpoint sets: the upstream addresses of a cluster at one moment, immutable and
 * ref-counted, shared by every worker. A static cluster's set is built with its config;
 * a registry cluster gets a new set each time the registry's answer changes. Beside the
 * immutable part, a set carries one row of counters per worker (requests in flight per
 * endpoint, round-robin state), each row written only by its worker, so that picking an
 * endpoint takes no lock and no atomic read-modify-write. */
#ifndef TR_PROXY_ENDPOINTS_H
#define TR_PROXY_ENDPOINTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/addr.h"

struct tr_proxy_ring;

struct tr_proxy_endpoint {
    struct tr_addr addr;
    char name[64];   /* "ip:port", for metrics and logs */
    uint32_t weight; /* >= 1 */
};

/* One worker's counters for one endpoint. Only that worker writes them (relaxed loads
 * and stores); the admin listener reads them from another thread. */
struct tr_proxy_ep_load {
    _Atomic uint64_t active;        /* requests in flight */
    _Atomic uint64_t requests;      /* attempts sent */
    _Atomic uint64_t failures;      /* connect failures, resets, timeouts, bad responses */
    _Atomic uint64_t ejected_until; /* loop ms: outlier detection ejected it until then */
    int64_t rr_current;             /* smooth weighted round robin; the worker's own */
    uint64_t consecutive_5xx;       /* outlier detection: failed attempts in a row */
};

/* One worker's bookkeeping for a whole set. */
struct tr_proxy_eps_row {
    uint64_t active; /* requests of this worker still using the set */
    bool retired;    /* the worker dropped the set: the last request unrefs it */
};

struct tr_proxy_eps {
    _Atomic unsigned refs;
    size_t n;
    unsigned nworkers;
    uint64_t total_weight;
    struct tr_proxy_endpoint *eps;        /* owned, [n] */
    uint64_t *cum_weight;                 /* owned, [n]: prefix sums for weighted random */
    char *rows;                           /* owned: per worker, a row header then [n] loads */
    size_t row_stride;                    /* bytes per worker, a multiple of 64 */
    _Atomic(struct tr_proxy_ring *) ring; /* built on first ring_hash use; owned */
};

/* Fills `ep` for `addr` with `weight` (0 counts as 1), naming it "ip:port". */
void tr_proxy_endpoint_init(struct tr_proxy_endpoint *ep, const struct tr_addr *addr,
                            uint32_t weight);

/* Copies `n` endpoints into a new set with one reference. `n` may be 0. */
struct tr_proxy_eps *tr_proxy_eps_new(const struct tr_proxy_endpoint *eps, size_t n,
                                      unsigned nworkers);
void tr_proxy_eps_ref(struct tr_proxy_eps *s);
/* Any thread; the last reference frees the set. NULL is a no-op. */
void tr_proxy_eps_unref(struct tr_proxy_eps *s);

/* Same addresses with the same weights, in the same order? */
bool tr_proxy_eps_equal(const struct tr_proxy_eps *a, const struct tr_proxy_eps *b);

/* The consistent-hash ring of the set, built by the first caller (any worker; a lost
 * race frees its copy). Never NULL for a non-empty set. */
const struct tr_proxy_ring *tr_proxy_eps_ring(struct tr_proxy_eps *s);

static inline struct tr_proxy_eps_row *tr_proxy_eps_row(const struct tr_proxy_eps *s, unsigned w)
{
    return (struct tr_proxy_eps_row *)(s->rows + (size_t)w * s->row_stride);
}

static inline struct tr_proxy_ep_load *tr_proxy_eps_load(const struct tr_proxy_eps *s, unsigned w,
                                                         size_t i)
{
    struct tr_proxy_ep_load *loads =
        (struct tr_proxy_ep_load *)(s->rows + (size_t)w * s->row_stride + 64);
    return &loads[i];
}

/* Single-writer counters: a relaxed load and store, which compiles to a plain add. */
static inline void tr_proxy_counter_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void tr_proxy_counter_sub(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - n,
                          memory_order_relaxed);
}

static inline uint64_t tr_proxy_counter_get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

#endif
