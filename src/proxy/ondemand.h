/* SPDX-License-Identifier: Apache-2.0 */
/* On-demand registry clusters: a cluster per service name, created by the first
 * request that names it (the sidecar's app ids), instead of by a configuration. Each
 * one watches its service through the discovery thread — optionally with the port
 * taken from a Service.Meta key, so a caller can reach an instance's sidecar rather
 * than the app — and carries, per worker, the worker's view of the newest endpoint
 * set, a circuit breaker and outlier-detection state, all written only by that
 * worker. Creation takes a lock (any worker thread, first use of a name only); every
 * later request works on its worker's own part without locks. Clusters live until
 * the table is freed: a name seen once is watched for the rest of the process, which
 * is why the table has a size limit. */
#ifndef TR_PROXY_ONDEMAND_H
#define TR_PROXY_ONDEMAND_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/map.h"
#include "core/mem.h"
#include "core/slice.h"
#include "proxy/breaker.h"
#include "proxy/config.h"
#include "proxy/endpoints.h"
#include "proxy/outlier.h"

struct tr_proxy_discovery;

/* One worker's part of a cluster. */
struct tr_proxy_odc_worker {
    struct tr_proxy_eps *eps; /* owned ref: the newest set this worker took, or NULL */
    struct tr_proxy_breaker breaker;
    struct tr_proxy_outlier outlier;
} __attribute__((aligned(64)));

struct tr_proxy_odc {
    struct tr_proxy_cluster_config cfg; /* name, service, svc, lb, timeout, policies */
    char *name;                         /* owned; cfg.name and cfg.service point here */
    uint64_t created_ns;                /* uv_hrtime() at creation */
    unsigned nworkers;
    struct tr_proxy_odc_worker *workers; /* owned, [nworkers] */
};

struct tr_proxy_ondemand {
    pthread_mutex_t lock;            /* guards creation: by_name, all, the discovery watch */
    struct tr_proxy_discovery *disc; /* borrowed; outlives the table */
    struct tr_map by_name;           /* name -> struct tr_proxy_odc * */
    struct tr_proxy_odc **all;       /* owned array of owned clusters */
    size_t nall;
    size_t max_clusters;
    unsigned nworkers;
    char *port_meta; /* owned, or NULL */
    struct tr_proxy_cluster_config defaults; /* policies copied into every new cluster */
};

/* Creates a table whose clusters get `defaults`' lb, timeout, retry, breaker and
 * outlier policies (names and endpoints are ignored) and are watched through `disc`
 * with `port_meta` (NULL: Service.Port). At most `max_clusters` names. */
struct tr_proxy_ondemand *tr_proxy_ondemand_new(struct tr_proxy_discovery *disc, unsigned nworkers,
                                                const struct tr_proxy_cluster_config *defaults,
                                                const char *port_meta, size_t max_clusters);

/* Frees the table and its clusters. Every worker must have called
 * tr_proxy_odc_worker_dispose() (or never used them); call before
 * tr_proxy_discovery_stop(). NULL is a no-op. */
void tr_proxy_ondemand_free(struct tr_proxy_ondemand *od);

/* Any thread: the cluster for `name`, created (and watched) on first use. Returns 0,
 * or -E2BIG when the table is full. The caller validates the name (it ends up in a
 * registry URL). */
TR_MUST_CHECK int tr_proxy_ondemand_get(struct tr_proxy_ondemand *od, struct tr_slice name,
                                        struct tr_proxy_odc **out);

/* Worker `w`: the endpoint set to pick from now — the newest the registry published,
 * or NULL if it has not answered yet. Borrowed: a request that picks from it holds
 * the endpoint with tr_proxy_odc_hold() until tr_proxy_odc_release(). */
struct tr_proxy_eps *tr_proxy_odc_eps(struct tr_proxy_odc *c, unsigned w);

/* Has the registry answered at least once for this cluster? Any thread. */
bool tr_proxy_odc_synced(const struct tr_proxy_odc *c);

void tr_proxy_odc_hold(struct tr_proxy_odc *c, unsigned w, struct tr_proxy_eps *eps, int ep);
void tr_proxy_odc_release(struct tr_proxy_odc *c, unsigned w, struct tr_proxy_eps *eps, int ep);

/* Worker `w` is done with every cluster of the table (no request in flight): drops
 * its views and outlier state. */
void tr_proxy_ondemand_worker_dispose(struct tr_proxy_ondemand *od, unsigned w);

#endif
