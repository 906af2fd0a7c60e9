/* SPDX-License-Identifier: Apache-2.0 */
/* On-demand registry clusters (see ondemand.h). A worker's view of a cluster's
 * endpoint set follows the same rules as a proxy worker's view of a registry service
 * (worker.c): take the newest set from the service's slot, retire the previous one,
 * and let the last request still using a retired set drop it. */
#include "proxy/ondemand.h"

#include <errno.h>
#include <string.h>

#include <uv.h>

#include "core/mem.h"
#include "proxy/discovery.h"

struct tr_proxy_ondemand *tr_proxy_ondemand_new(struct tr_proxy_discovery *disc, unsigned nworkers,
                                                const struct tr_proxy_cluster_config *defaults,
                                                const char *port_meta, size_t max_clusters)
{
    struct tr_proxy_ondemand *od = tr_xcalloc(1, sizeof(*od));
    pthread_mutex_init(&od->lock, NULL);
    od->disc = disc;
    tr_map_init(&od->by_name);
    od->max_clusters = max_clusters;
    od->nworkers = nworkers;
    od->port_meta = port_meta != NULL ? tr_xstrdup(port_meta) : NULL;
    od->defaults = *defaults;
    od->defaults.name = NULL;
    od->defaults.service = NULL;
    od->defaults.svc = NULL;
    od->defaults.eps = NULL;
    od->defaults.stats = NULL;
    od->defaults.guard = NULL;
    return od;
}

void tr_proxy_ondemand_free(struct tr_proxy_ondemand *od)
{
    if (od == NULL) {
        return;
    }
    for (size_t i = 0; i < od->nall; i++) {
        struct tr_proxy_odc *c = od->all[i];
        for (unsigned w = 0; w < c->nworkers; w++) {
            /* Workers disposed their parts; this only covers ones that never ran. */
            tr_proxy_eps_unref(c->workers[w].eps);
            tr_proxy_outlier_dispose(&c->workers[w].outlier);
        }
        tr_free_null(&c->workers);
        tr_free_null(&c->name);
        tr_free_null(&c);
    }
    tr_free_null(&od->all);
    tr_map_dispose(&od->by_name);
    tr_free_null(&od->port_meta);
    pthread_mutex_destroy(&od->lock);
    tr_free_null(&od);
}

static struct tr_proxy_odc *odc_new(struct tr_proxy_ondemand *od, struct tr_slice name)
{
    struct tr_proxy_odc *c = tr_xcalloc(1, sizeof(*c));
    c->name = tr_xstrndup(name.ptr, name.len);
    c->created_ns = uv_hrtime();
    c->cfg = od->defaults;
    c->cfg.name = c->name;
    c->cfg.service = c->name;
    c->nworkers = od->nworkers;
    c->workers = tr_xcalloc(od->nworkers, sizeof(*c->workers));
    for (unsigned w = 0; w < od->nworkers; w++) {
        tr_proxy_outlier_init(&c->workers[w].outlier);
    }
    /* Published last: workers only see the cluster once it is complete. */
    c->cfg.svc = tr_proxy_discovery_watch_meta(od->disc, c->name, od->port_meta);
    return c;
}

int tr_proxy_ondemand_get(struct tr_proxy_ondemand *od, struct tr_slice name,
                          struct tr_proxy_odc **out)
{
    int rc = 0;
    pthread_mutex_lock(&od->lock);
    struct tr_proxy_odc *c = tr_map_get(&od->by_name, name);
    if (c == NULL) {
        if (od->nall >= od->max_clusters) {
            rc = -E2BIG;
        } else {
            c = odc_new(od, name);
            od->all = tr_xrealloc(od->all, (od->nall + 1) * sizeof(*od->all));
            od->all[od->nall++] = c;
            tr_map_put(&od->by_name, name, c);
        }
    }
    pthread_mutex_unlock(&od->lock);
    *out = c;
    return rc;
}

bool tr_proxy_odc_synced(const struct tr_proxy_odc *c)
{
    return atomic_load(&c->cfg.svc->synced);
}

static void eps_drop(struct tr_proxy_eps *eps, unsigned w)
{
    struct tr_proxy_eps_row *row = tr_proxy_eps_row(eps, w);
    if (row->active == 0) {
        tr_proxy_eps_unref(eps);
    } else {
        row->retired = true; /* the last request on it lets go */
    }
}

struct tr_proxy_eps *tr_proxy_odc_eps(struct tr_proxy_odc *c, unsigned w)
{
    struct tr_proxy_odc_worker *cw = &c->workers[w];
    struct tr_proxy_eps *fresh = tr_proxy_service_take(c->cfg.svc, w);
    if (fresh != NULL) {
        if (cw->eps != NULL) {
            eps_drop(cw->eps, w);
        }
        cw->eps = fresh;
    }
    return cw->eps;
}

void tr_proxy_odc_hold(struct tr_proxy_odc *c, unsigned w, struct tr_proxy_eps *eps, int ep)
{
    (void)c;
    struct tr_proxy_ep_load *l = tr_proxy_eps_load(eps, w, (size_t)ep);
    tr_proxy_eps_row(eps, w)->active++;
    tr_proxy_counter_add(&l->active, 1);
    tr_proxy_counter_add(&l->requests, 1);
}

void tr_proxy_odc_release(struct tr_proxy_odc *c, unsigned w, struct tr_proxy_eps *eps, int ep)
{
    (void)c;
    struct tr_proxy_eps_row *row = tr_proxy_eps_row(eps, w);
    tr_proxy_counter_sub(&tr_proxy_eps_load(eps, w, (size_t)ep)->active, 1);
    TR_ASSERT(row->active > 0);
    if (--row->active == 0 && row->retired) {
        tr_proxy_eps_unref(eps);
    }
}

void tr_proxy_ondemand_worker_dispose(struct tr_proxy_ondemand *od, unsigned w)
{
    /* Under the lock: other workers may still be adding clusters (and moving `all`). */
    pthread_mutex_lock(&od->lock);
    for (size_t i = 0; i < od->nall; i++) {
        struct tr_proxy_odc_worker *cw = &od->all[i]->workers[w];
        if (cw->eps != NULL) {
            eps_drop(cw->eps, w);
            cw->eps = NULL;
        }
        tr_proxy_outlier_dispose(&cw->outlier);
        tr_proxy_outlier_init(&cw->outlier);
    }
    pthread_mutex_unlock(&od->lock);
}
