/* SPDX-License-Identifier: Apache-2.0 */
/* Registry discovery: one thread with its own loop and HTTP client keeps every watched
 * service's endpoint set current with Consul blocking queries
 * (GET /v1/health/service/<name>?passing&index=N&wait=D), and publishes each new set
 * to the workers through one atomic slot per worker: the publisher swaps a referenced
 * set in, the worker swaps it out (taking the reference) the next time it looks, so
 * the request path sees no lock and no shared write. Sets are immutable; a request
 * that picked an endpoint from an older set finishes on it. */
#ifndef TR_PROXY_DISCOVERY_H
#define TR_PROXY_DISCOVERY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "core/addr.h"
#include "core/buf.h"
#include "core/list.h"
#include "core/mailbox.h"
#include "core/map.h"
#include "http/client.h"

struct tr_proxy_eps;
struct tr_proxy_discovery;

#define TR_PROXY_DISCOVERY_WAIT_MS 30000
#define TR_PROXY_DISCOVERY_MAX_BODY (16u * 1024 * 1024)

struct tr_proxy_service {
    char *name;     /* owned */
    char *port_meta; /* owned, or NULL: take the port from Service.Meta[port_meta] */
    unsigned index; /* 0, 1, ... in creation order: workers index their tables by it */
    unsigned nworkers;
    _Atomic(struct tr_proxy_eps *) *slots; /* owned, [nworkers]: newest set not yet taken */
    _Atomic bool synced;                   /* the registry has answered at least once */
    _Atomic uint64_t registry_index;       /* last X-Consul-Index */
    _Atomic uint64_t updates;              /* sets published */
    _Atomic uint64_t errors;               /* failed queries */
    _Atomic unsigned healthy;              /* endpoints in the newest set */

    /* Discovery thread only. */
    struct tr_proxy_discovery *disc;
    struct tr_list link;            /* in disc->watching */
    struct tr_proxy_eps *last;      /* owned ref: the newest set */
    struct tr_http_client_req *req; /* query in flight */
    struct tr_buf body;
    int status;
    uint64_t next_index;
    uint64_t query_started; /* loop ms */
    uv_timer_t timer;       /* retry backoff; timer.data = service */
    unsigned failures;
    bool timer_live;
};

struct tr_proxy_discovery {
    unsigned nworkers;
    uint64_t wait_ms;
    uv_thread_t thread;
    uv_loop_t loop;
    struct tr_mailbox mailbox; /* main thread -> discovery thread */
    struct tr_http_client *client;
    struct tr_list watching; /* discovery thread: services with a query loop */
    bool has_registry;       /* discovery thread's copy */
    struct tr_addr registry;
    char registry_host[128];
    bool stopping;
    unsigned pending_closes;

    /* Main thread only. */
    struct tr_map by_name;         /* name -> struct tr_proxy_service * */
    struct tr_proxy_service **all; /* owned array of owned services, by index */
    size_t nall;
    size_t capall;
};

/* Main thread: starts the discovery thread for `nworkers` workers. Returns NULL (and
 * logs) if the thread cannot start. */
struct tr_proxy_discovery *tr_proxy_discovery_start(unsigned nworkers, uint64_t wait_ms);

/* Main thread: stops the thread, waits for it, and frees every service and the sets
 * still in their slots. Workers must be gone. NULL is a no-op. */
void tr_proxy_discovery_stop(struct tr_proxy_discovery *d);

/* Main thread: where the registry is. Queries restart from index 0 when it changes. */
void tr_proxy_discovery_set_registry(struct tr_proxy_discovery *d, const struct tr_addr *addr,
                                     const char *host);

/* Main thread: the service called `name`, created and watched on first use. The
 * pointer stays valid until tr_proxy_discovery_stop(). */
struct tr_proxy_service *tr_proxy_discovery_watch(struct tr_proxy_discovery *d, const char *name);

/* As tr_proxy_discovery_watch(), but the endpoints' ports come from the string
 * Service.Meta[port_meta] (e.g. "dapr_http_port": a sidecar's port beside the app's)
 * instead of Service.Port; instances without it are skipped. A service keeps the
 * port_meta it was first watched with. Callers on several threads must serialise
 * their calls to the watch functions (one lock of their own is enough: the discovery
 * thread never touches the service table). */
struct tr_proxy_service *tr_proxy_discovery_watch_meta(struct tr_proxy_discovery *d,
                                                       const char *name, const char *port_meta);

/* Worker `w`: the set published since the last call, with its reference passing to the
 * caller, or NULL when nothing changed. */
static inline struct tr_proxy_eps *tr_proxy_service_take(struct tr_proxy_service *s, unsigned w)
{
    if (atomic_load_explicit(&s->slots[w], memory_order_relaxed) == NULL) {
        return NULL;
    }
    return atomic_exchange_explicit(&s->slots[w], NULL, memory_order_acquire);
}

/* Parses a /v1/health/service answer (a JSON array of {Node, Service, Checks}) into
 * endpoints: Service.Address (Node.Address when empty) and Service.Port, weight from
 * Service.Weights.Passing. Entries without a usable numeric address are skipped.
 * Returns a new set with one reference, or NULL if the JSON is not such an array. */
struct tr_proxy_eps *tr_proxy_discovery_parse(const char *json, size_t len, unsigned nworkers);

/* As tr_proxy_discovery_parse() with the port read from Service.Meta[port_meta] (a
 * decimal string) when port_meta is not NULL. */
struct tr_proxy_eps *tr_proxy_discovery_parse_port(const char *json, size_t len,
                                                   unsigned nworkers, const char *port_meta);

#endif
