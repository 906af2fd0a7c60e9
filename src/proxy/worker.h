/* SPDX-License-Identifier: Apache-2.0 */
/* A proxy worker: one loop with its HTTP server (and the admin listener on worker 0),
 * its upstream HTTP client with keep-alive pools, a deadline heap for upstream
 * timeouts, and its view of the configuration and of registry endpoint sets. A new
 * configuration becomes the worker's current generation; a generation lives while it
 * is current or a request that started under it is in flight, so a reload never
 * changes a request half way. Nothing here is touched by another thread except the
 * relaxed-atomic gauges and the slots it takes new sets and configs from. */
#ifndef TR_PROXY_WORKER_H
#define TR_PROXY_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "core/heap.h"
#include "core/list.h"
#include "core/runtime.h"
#include "http/client.h"
#include "http/server.h"
#include "proxy/config.h"

struct tr_proxy;
struct tr_proxy_eps;
struct tr_proxy_service;

/* One worker's use of one configuration: alive while it is the worker's current one
 * or a request that started under it is still in flight. */
struct tr_proxy_gen {
    struct tr_proxy_config *cfg; /* owned ref */
    unsigned users;              /* requests in flight + 1 while current */
};

/* A worker's view of one registry service. */
struct tr_proxy_wsvc {
    struct tr_proxy_service *svc; /* borrowed; lives until the process ends */
    struct tr_proxy_eps *eps;     /* owned ref: the newest set taken, or NULL */
};

/* Gauges a worker refreshes once a second for the admin listener. */
struct tr_proxy_worker_gauges {
    _Atomic uint64_t client_conns;      /* open client connections */
    _Atomic uint64_t upstream_conns;    /* open upstream connections */
    _Atomic uint64_t upstream_idle;     /* of which idle in a pool */
    _Atomic uint64_t upstream_connects; /* connections opened */
    _Atomic uint64_t upstream_reuses;   /* requests sent on a pooled connection */
    _Atomic uint64_t stale_retries;     /* the HTTP client's transparent stale retries */
    _Atomic uint64_t generation;        /* config generation serving new requests */
} __attribute__((aligned(64)));

struct tr_proxy_worker {
    struct tr_proxy *proxy;
    struct tr_worker *w;
    unsigned id;
    struct tr_http_server srv;
    struct tr_http_server admin; /* worker 0 when an admin address is set */
    bool has_admin;
    bool srv_live;
    bool admin_live;
    struct tr_http_client *client;
    uv_timer_t timer;      /* request deadlines (the heap's minimum) */
    uv_timer_t tick;       /* gauges, once a second; unref'd */
    uv_check_t flush;      /* pushes responses written from upstream reads, per loop turn */
    struct tr_list flushq; /* struct tr_proxy_flush waiting for `flush` */
    uint64_t timer_due;    /* loop ms the timer fires at, 0 when stopped */
    struct tr_heap deadlines;
    uint64_t rng;
    size_t body_buffer_max;     /* request bodies read whole and sent buffered up to this */
    struct tr_proxy_gen *gen;   /* current */
    struct tr_proxy_wsvc *svcs; /* owned, indexed by service index */
    size_t nsvcs;
    uint64_t active;  /* requests in flight on this worker */
    unsigned mirrors; /* mirror (shadow) requests in flight (mirror.c) */
    void *free_exchanges;     /* owned: finished exchanges kept for reuse (forward.c) */
    unsigned nfree_exchanges;
    unsigned pending_closes;
    void (*on_closed)(struct tr_proxy_worker *pw); /* tr_proxy_worker_close() finished */
    bool draining;
    bool closing;
    struct tr_proxy_worker_gauges gauges;
};

/* Sets up the worker's client, timers and first generation. */
TR_MUST_CHECK int tr_proxy_worker_init(struct tr_proxy_worker *pw, uv_loop_t *loop);
/* Takes the newest configuration from the main thread, if any. */
void tr_proxy_worker_update(struct tr_proxy_worker *pw);
/* Releases what the worker holds and closes its handles; `done` runs when they are. */
void tr_proxy_worker_close(struct tr_proxy_worker *pw, void (*done)(struct tr_proxy_worker *pw));

/* Generations: a request takes one at its start and releases it at its end. */
struct tr_proxy_gen *tr_proxy_gen_acquire(struct tr_proxy_worker *pw);
void tr_proxy_gen_release(struct tr_proxy_gen *gen);

/* The endpoint set a cluster uses on this worker right now (registry clusters: the
 * newest published set), or NULL if the registry has not answered yet. Borrowed: a
 * request that picks from it calls tr_proxy_worker_eps_hold(). */
struct tr_proxy_eps *tr_proxy_worker_eps(struct tr_proxy_worker *pw,
                                         const struct tr_proxy_cluster_config *c);
void tr_proxy_worker_eps_hold(struct tr_proxy_worker *pw, struct tr_proxy_eps *eps, int ep);
void tr_proxy_worker_eps_release(struct tr_proxy_worker *pw, struct tr_proxy_eps *eps, int ep);

/* Output a request's response received from elsewhere than its own connection (the
 * upstream) is pushed once per loop turn, after every read of that turn, so that a
 * small response leaves in one write and a streamed one after each upstream read. */
struct tr_proxy_flush {
    struct tr_list link; /* in pw->flushq while queued */
    struct tr_http_req *req;
};
void tr_proxy_flush_later(struct tr_proxy_worker *pw, struct tr_proxy_flush *f,
                          struct tr_http_req *req);
void tr_proxy_flush_cancel(struct tr_proxy_flush *f); /* no-op when not queued */

/* Deadlines: `node` fires `cb` at loop time `due_ms` unless cancelled first. */
struct tr_proxy_deadline;
typedef void tr_proxy_deadline_cb(struct tr_proxy_deadline *d);
struct tr_proxy_deadline {
    struct tr_heap_node node;
    tr_proxy_deadline_cb *cb;
};
void tr_proxy_deadline_arm(struct tr_proxy_worker *pw, struct tr_proxy_deadline *d, uint64_t due_ms,
                           tr_proxy_deadline_cb *cb);
void tr_proxy_deadline_cancel(struct tr_proxy_worker *pw, struct tr_proxy_deadline *d);

#endif
