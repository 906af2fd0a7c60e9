/* SPDX-License-Identifier: Apache-2.0 */
/* Guards by name, and the per-worker queue of requests waiting for a connection
 * (see guard.h). */
#include "proxy/guard.h"

#include <string.h>

#include "core/mem.h"

void tr_proxy_guard_set_init(struct tr_proxy_guard_set *set, unsigned nworkers)
{
    tr_map_init(&set->by_name);
    set->nworkers = nworkers;
}

void tr_proxy_guard_set_dispose(struct tr_proxy_guard_set *set)
{
    const struct tr_map_slot *slot;
    for (size_t i = 0; tr_map_next(&set->by_name, &i, &slot);) {
        tr_proxy_guard_unref(slot->value);
    }
    tr_map_dispose(&set->by_name);
}

static struct tr_proxy_guard *guard_new(const char *name, unsigned nworkers, size_t rl_keys)
{
    struct tr_proxy_guard *g = tr_xcalloc(1, sizeof(*g));
    atomic_init(&g->refs, 1);
    g->name = tr_xstrdup(name);
    g->nworkers = nworkers;
    g->workers = tr_xcalloc(nworkers, sizeof(*g->workers));
    for (unsigned w = 0; w < nworkers; w++) {
        tr_proxy_outlier_init(&g->workers[w].outlier);
        tr_list_init(&g->workers[w].queue);
    }
    if (rl_keys > 0) {
        g->rl = tr_proxy_ratelimit_new(rl_keys);
        g->rl_keys = rl_keys;
    }
    return g;
}

struct tr_proxy_guard *tr_proxy_guard_get(struct tr_proxy_guard_set *set, const char *name,
                                          size_t rl_keys)
{
    struct tr_proxy_guard *g = tr_map_get(&set->by_name, tr_slice_cstr(name));
    if (g == NULL || (rl_keys > 0 && g->rl_keys != rl_keys)) {
        struct tr_proxy_guard *fresh = guard_new(name, set->nworkers, rl_keys);
        if (g != NULL) {
            /* A route whose max_keys changed: its buckets start over in a new table.
             * (Cluster guards never have a table, so they are never replaced.) */
            tr_proxy_guard_unref(g);
        }
        tr_map_put(&set->by_name, tr_slice_cstr(name), fresh);
        g = fresh;
    }
    tr_proxy_guard_ref(g);
    return g;
}

void tr_proxy_guard_ref(struct tr_proxy_guard *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}

void tr_proxy_guard_unref(struct tr_proxy_guard *g)
{
    if (g == NULL || atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    for (unsigned w = 0; w < g->nworkers; w++) {
        TR_ASSERT(tr_list_empty(&g->workers[w].queue));
        tr_proxy_outlier_dispose(&g->workers[w].outlier);
    }
    tr_proxy_ratelimit_free(g->rl);
    tr_free_null(&g->workers);
    tr_free_null(&g->name);
    tr_free_null(&g);
}

/* ------------------------------------------------------------ connection queue */

static void on_kick(struct tr_proxy_deadline *d)
{
    struct tr_proxy_guard_worker *gw = tr_container_of(d, struct tr_proxy_guard_worker, kick);
    struct tr_list *l;
    while ((l = tr_list_first(&gw->queue)) != NULL) {
        struct tr_proxy_waiter *wt = tr_container_of(l, struct tr_proxy_waiter, link);
        if (tr_proxy_counter_get(wt->active) >= wt->limit) {
            return; /* the next freed connection kicks again */
        }
        tr_list_remove(l);
        /* Waiters hold the configuration that holds this guard: once the last one has
         * run, the guard may be gone, so do not look at it again. */
        bool last = tr_list_empty(&gw->queue);
        wt->run(wt);
        if (last) {
            return;
        }
    }
}

void tr_proxy_guard_wait(struct tr_proxy_guard_worker *gw, struct tr_proxy_worker *pw,
                         struct tr_proxy_waiter *wt)
{
    gw->worker = pw;
    tr_list_insert_tail(&gw->queue, &wt->link);
}

void tr_proxy_guard_unwait(struct tr_proxy_guard_worker *gw, struct tr_proxy_waiter *wt)
{
    if (!tr_list_linked(&wt->link)) {
        return;
    }
    tr_list_remove(&wt->link);
    if (tr_list_empty(&gw->queue) && gw->worker != NULL) {
        tr_proxy_deadline_cancel(gw->worker, &gw->kick);
    }
}

void tr_proxy_guard__kick_later(struct tr_proxy_guard_worker *gw)
{
    tr_proxy_deadline_arm(gw->worker, &gw->kick, uv_now(gw->worker->srv.loop), on_kick);
}
