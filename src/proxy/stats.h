/* SPDX-License-Identifier: Apache-2.0 */
/* Request statistics per route and per cluster, kept as one block of counters per
 * worker. A worker only ever writes its own block (relaxed loads and stores: no lock, no
 * atomic read-modify-write, no shared cache line); the admin listener sums the blocks
 * when /metrics is scraped. A stats object is ref-counted and keyed by name, so a reload
 * that keeps a route or cluster keeps its counters. */
#ifndef TR_PROXY_STATS_H
#define TR_PROXY_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/map.h"

/* Latency histogram upper bounds in microseconds; one more bucket for +Inf. */
#define TR_PROXY_LAT_BUCKETS 14
extern const uint64_t tr_proxy_lat_bounds_us[TR_PROXY_LAT_BUCKETS];

enum tr_proxy_upstream_err {
    TR_PROXY_UERR_CONNECT = 0, /* connect refused, unreachable, connect timeout */
    TR_PROXY_UERR_RESET,       /* closed or reset before the response was complete */
    TR_PROXY_UERR_TIMEOUT,     /* no response in time */
    TR_PROXY_UERR_PROTOCOL,    /* malformed response framing, oversized headers */
    TR_PROXY_UERR_NO_ENDPOINT, /* the cluster had no endpoint to try */
    TR_PROXY_UERR_COUNT
};

/* Requests the proxy answered itself because of a cluster's circuit breaker. */
enum tr_proxy_overflow {
    TR_PROXY_OVERFLOW_OPEN = 0,        /* the breaker is open (or half-open, probe in flight) */
    TR_PROXY_OVERFLOW_MAX_REQUESTS,    /* max_requests in flight reached */
    TR_PROXY_OVERFLOW_MAX_PENDING,     /* max_connections busy and max_pending waiting */
    TR_PROXY_OVERFLOW_PENDING_TIMEOUT, /* waited for a connection until the cluster timeout */
    TR_PROXY_OVERFLOW_COUNT
};

/* Mirrored (shadow) requests by outcome, counted on the route. */
enum tr_proxy_mirror_result {
    TR_PROXY_MIRROR_OK = 0,  /* the mirror cluster answered (any status); answer discarded */
    TR_PROXY_MIRROR_FAILED,  /* connect failure, reset, timeout */
    TR_PROXY_MIRROR_SKIPPED, /* body too large, too many mirrors in flight, no endpoint */
    TR_PROXY_MIRROR_COUNT
};

struct tr_proxy_stats_block {
    _Atomic uint64_t requests;
    _Atomic uint64_t active;
    _Atomic uint64_t status[6]; /* [1..5]: responses by class 1xx..5xx; [0]: client gone */
    _Atomic uint64_t lat_bucket[TR_PROXY_LAT_BUCKETS + 1];
    _Atomic uint64_t lat_sum_us;
    _Atomic uint64_t upstream_requests; /* attempts */
    _Atomic uint64_t upstream_errors[TR_PROXY_UERR_COUNT];
    _Atomic uint64_t retries;
    _Atomic uint64_t retries_active;  /* requests of this worker that have retried, in flight */
    _Atomic uint64_t upstream_active; /* attempts in flight, each on its own connection */
    _Atomic uint64_t pending;         /* requests waiting for a connection (max_connections) */
    _Atomic uint64_t overflows[TR_PROXY_OVERFLOW_COUNT];
    _Atomic uint64_t breaker_opens;                 /* closed or half-open -> open transitions */
    _Atomic uint64_t ejections;                     /* endpoints ejected by outlier detection */
    _Atomic uint64_t rate_limited;                  /* requests answered 429 (routes) */
    _Atomic uint64_t mirror[TR_PROXY_MIRROR_COUNT]; /* routes; keep this field last */
} __attribute__((aligned(64)));

struct tr_proxy_stats {
    _Atomic unsigned refs;
    char *name; /* owned */
    unsigned nworkers;
    struct tr_proxy_stats_block *blocks; /* owned, [nworkers] */
};

/* A registry of stats objects by name, so a new config can pick up the old counters.
 * Main thread only. */
struct tr_proxy_stats_set {
    struct tr_map by_name; /* name -> struct tr_proxy_stats * (one reference each) */
    unsigned nworkers;
};

void tr_proxy_stats_set_init(struct tr_proxy_stats_set *set, unsigned nworkers);
/* Drops the set's references (objects still used by configs live on). */
void tr_proxy_stats_set_dispose(struct tr_proxy_stats_set *set);
/* Returns a new reference to the stats called `name`, creating them if needed. */
struct tr_proxy_stats *tr_proxy_stats_get(struct tr_proxy_stats_set *set, const char *name);

void tr_proxy_stats_ref(struct tr_proxy_stats *st);
void tr_proxy_stats_unref(struct tr_proxy_stats *st); /* any thread; NULL is a no-op */

/* Worker `w` records a finished request: class 1..5, or 0 when the client went away. */
void tr_proxy_stats_record(struct tr_proxy_stats *st, unsigned w, int status, uint64_t latency_us);

/* Sums every worker's blocks into `out` (plain numbers in the atomics' place). */
void tr_proxy_stats_sum(const struct tr_proxy_stats *st, struct tr_proxy_stats_block *out);

#endif
