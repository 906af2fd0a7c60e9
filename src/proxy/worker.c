/* SPDX-License-Identifier: Apache-2.0 */
/* Per-worker state (see worker.h): generations, the worker's view of registry
 * endpoint sets, the deadline heap, and the once-a-second gauges. */
#include "proxy/worker.h"

#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "proxy/discovery.h"
#include "proxy/endpoints.h"
#include "proxy/forward.h"
#include "proxy/proxy.h"

#define TICK_MS 1000

/* ------------------------------------------------------------ generations */

struct tr_proxy_gen *tr_proxy_gen_acquire(struct tr_proxy_worker *pw)
{
    pw->gen->users++;
    return pw->gen;
}

void tr_proxy_gen_release(struct tr_proxy_gen *gen)
{
    TR_ASSERT(gen->users > 0);
    if (--gen->users > 0) {
        return;
    }
    tr_proxy_config_unref(gen->cfg);
    tr_free_null(&gen);
}

void tr_proxy_worker_update(struct tr_proxy_worker *pw)
{
    struct tr_proxy_config *cfg =
        atomic_exchange_explicit(&pw->proxy->next[pw->id], NULL, memory_order_acquire);
    if (cfg == NULL) {
        return;
    }
    struct tr_proxy_gen *gen = tr_xcalloc(1, sizeof(*gen));
    gen->cfg = cfg; /* the slot's reference becomes the generation's */
    gen->users = 1;
    struct tr_proxy_gen *old = pw->gen;
    pw->gen = gen;
    atomic_store_explicit(&pw->gauges.generation, cfg->generation, memory_order_relaxed);
    if (old != NULL) {
        tr_proxy_gen_release(old);
    }
}

/* ------------------------------------------------------------ endpoint sets */

static void eps_drop(struct tr_proxy_worker *pw, struct tr_proxy_eps *eps)
{
    struct tr_proxy_eps_row *row = tr_proxy_eps_row(eps, pw->id);
    if (row->active == 0) {
        tr_proxy_eps_unref(eps);
    } else {
        row->retired = true; /* the last request on it lets go */
    }
}

static struct tr_proxy_wsvc *wsvc_of(struct tr_proxy_worker *pw, struct tr_proxy_service *svc)
{
    if (svc->index >= pw->nsvcs) {
        size_t n = svc->index + 8;
        pw->svcs = tr_xrealloc(pw->svcs, n * sizeof(*pw->svcs));
        memset(pw->svcs + pw->nsvcs, 0, (n - pw->nsvcs) * sizeof(*pw->svcs));
        pw->nsvcs = n;
    }
    struct tr_proxy_wsvc *ws = &pw->svcs[svc->index];
    ws->svc = svc;
    return ws;
}

struct tr_proxy_eps *tr_proxy_worker_eps(struct tr_proxy_worker *pw,
                                         const struct tr_proxy_cluster_config *c)
{
    if (c->svc == NULL) {
        return c->eps;
    }
    struct tr_proxy_wsvc *ws = wsvc_of(pw, c->svc);
    struct tr_proxy_eps *fresh = tr_proxy_service_take(c->svc, pw->id);
    if (fresh != NULL) {
        if (ws->eps != NULL) {
            eps_drop(pw, ws->eps);
        }
        ws->eps = fresh;
    }
    return ws->eps;
}

void tr_proxy_worker_eps_hold(struct tr_proxy_worker *pw, struct tr_proxy_eps *eps, int ep)
{
    struct tr_proxy_ep_load *l = tr_proxy_eps_load(eps, pw->id, (size_t)ep);
    tr_proxy_eps_row(eps, pw->id)->active++;
    tr_proxy_counter_add(&l->active, 1);
    tr_proxy_counter_add(&l->requests, 1);
}

void tr_proxy_worker_eps_release(struct tr_proxy_worker *pw, struct tr_proxy_eps *eps, int ep)
{
    struct tr_proxy_eps_row *row = tr_proxy_eps_row(eps, pw->id);
    tr_proxy_counter_sub(&tr_proxy_eps_load(eps, pw->id, (size_t)ep)->active, 1);
    TR_ASSERT(row->active > 0);
    if (--row->active == 0 && row->retired) {
        tr_proxy_eps_unref(eps);
    }
}

/* ------------------------------------------------------------ deadlines */

static void on_deadline_timer(uv_timer_t *t);

static void rearm(struct tr_proxy_worker *pw)
{
    struct tr_heap_node *min = tr_heap_min(&pw->deadlines);
    if (min == NULL) {
        if (pw->timer_due != 0) {
            uv_timer_stop(&pw->timer);
            pw->timer_due = 0;
        }
        return;
    }
    if (pw->timer_due != 0 && pw->timer_due <= min->key) {
        return; /* fires early enough; it re-arms for the rest */
    }
    uint64_t now = uv_now(pw->srv.loop);
    pw->timer_due = min->key;
    uv_timer_start(&pw->timer, on_deadline_timer, min->key > now ? min->key - now : 0, 0);
}

static void on_deadline_timer(uv_timer_t *t)
{
    struct tr_proxy_worker *pw = t->data;
    pw->timer_due = 0;
    uint64_t now = uv_now(t->loop);
    struct tr_heap_node *min;
    while ((min = tr_heap_min(&pw->deadlines)) != NULL && min->key <= now) {
        tr_heap_remove(&pw->deadlines, min);
        struct tr_proxy_deadline *d = tr_container_of(min, struct tr_proxy_deadline, node);
        d->cb(d);
    }
    rearm(pw);
}

void tr_proxy_deadline_arm(struct tr_proxy_worker *pw, struct tr_proxy_deadline *d, uint64_t due_ms,
                           tr_proxy_deadline_cb *cb)
{
    tr_heap_remove(&pw->deadlines, &d->node);
    d->cb = cb;
    tr_heap_push(&pw->deadlines, &d->node, due_ms);
    rearm(pw);
}

void tr_proxy_deadline_cancel(struct tr_proxy_worker *pw, struct tr_proxy_deadline *d)
{
    /* The timer may fire once for nothing; it then re-arms for the new minimum. */
    tr_heap_remove(&pw->deadlines, &d->node);
}

/* ------------------------------------------------------------ output flushing */

static void on_flush(uv_check_t *h)
{
    struct tr_proxy_worker *pw = h->data;
    struct tr_list *l;
    while ((l = tr_list_first(&pw->flushq)) != NULL) {
        tr_list_remove(l);
        /* May close the connection, and with it end the request that queued this. */
        tr_http_resp_flush(tr_container_of(l, struct tr_proxy_flush, link)->req);
    }
    uv_check_stop(h);
}

void tr_proxy_flush_later(struct tr_proxy_worker *pw, struct tr_proxy_flush *f,
                          struct tr_http_req *req)
{
    if (tr_list_linked(&f->link)) {
        return;
    }
    f->req = req;
    if (tr_list_empty(&pw->flushq)) {
        uv_check_start(&pw->flush, on_flush);
    }
    tr_list_insert_tail(&pw->flushq, &f->link);
}

void tr_proxy_flush_cancel(struct tr_proxy_flush *f)
{
    if (tr_list_linked(&f->link)) {
        tr_list_remove(&f->link);
    }
}

/* ------------------------------------------------------------ gauges */

static void on_tick(uv_timer_t *t)
{
    struct tr_proxy_worker *pw = t->data;
    struct tr_proxy_worker_gauges *g = &pw->gauges;
    struct tr_http_client_stats cs;
    tr_http_client_get_stats(pw->client, &cs);
    atomic_store_explicit(&g->client_conns, pw->srv.nconns, memory_order_relaxed);
    atomic_store_explicit(&g->upstream_conns, cs.conns_open, memory_order_relaxed);
    atomic_store_explicit(&g->upstream_idle, cs.conns_idle, memory_order_relaxed);
    atomic_store_explicit(&g->upstream_connects, cs.connects, memory_order_relaxed);
    atomic_store_explicit(&g->upstream_reuses, cs.reuses, memory_order_relaxed);
    atomic_store_explicit(&g->stale_retries, cs.retries, memory_order_relaxed);
}

/* ------------------------------------------------------------ life cycle */

int tr_proxy_worker_init(struct tr_proxy_worker *pw, uv_loop_t *loop)
{
    struct tr_http_client_config cfg;
    tr_http_client_config_init(&cfg);
    /* Enough idle connections for every request a busy worker has in flight, so that
     * steady load never closes and reopens upstream connections. */
    cfg.max_idle_per_upstream = 256;
    cfg.idle_timeout_ms = 30000;
    cfg.connect_timeout_ms = 5000;
    cfg.response_timeout_ms = 0; /* the cluster's timeout, armed per request */
    pw->client = tr_http_client_new(loop, &cfg);
    tr_heap_init(&pw->deadlines);
    uv_timer_init(loop, &pw->timer);
    pw->timer.data = pw;
    uv_timer_init(loop, &pw->tick);
    pw->tick.data = pw;
    uv_timer_start(&pw->tick, on_tick, TICK_MS, TICK_MS);
    uv_unref((uv_handle_t *)&pw->tick);
    uv_check_init(loop, &pw->flush);
    pw->flush.data = pw;
    tr_list_init(&pw->flushq);
    pw->pending_closes = 0;
    pw->body_buffer_max = TR_PROXY_BODY_BUFFER_MAX;
    pw->rng = (uv_hrtime() ^ ((uint64_t)(pw->id + 1) * 0x9e3779b97f4a7c15ull)) | 1;
    tr_proxy_worker_update(pw);
    TR_ASSERT(pw->gen != NULL);
    return 0;
}

static void close_step(struct tr_proxy_worker *pw)
{
    if (--pw->pending_closes > 0) {
        return;
    }
    tr_heap_dispose(&pw->deadlines);
    tr_proxy_forward_release(pw);
    pw->on_closed(pw);
}

static void on_timer_closed(uv_handle_t *h)
{
    close_step(h->data);
}

static void on_client_closed(void *data)
{
    close_step(data);
}

void tr_proxy_worker_close(struct tr_proxy_worker *pw, void (*done)(struct tr_proxy_worker *pw))
{
    pw->on_closed = done;
    pw->closing = true;
    for (size_t i = 0; i < pw->nsvcs; i++) {
        if (pw->svcs[i].eps != NULL) {
            eps_drop(pw, pw->svcs[i].eps);
            pw->svcs[i].eps = NULL;
        }
    }
    tr_free_null(&pw->svcs);
    pw->nsvcs = 0;
    if (pw->gen != NULL) {
        struct tr_proxy_gen *gen = pw->gen;
        pw->gen = NULL;
        tr_proxy_gen_release(gen);
    }
    /* Anything still in the slot was never taken. */
    tr_proxy_config_unref(atomic_exchange(&pw->proxy->next[pw->id], NULL));
    pw->pending_closes = 4;
    uv_check_stop(&pw->flush);
    uv_close((uv_handle_t *)&pw->flush, on_timer_closed);
    uv_timer_stop(&pw->timer);
    uv_close((uv_handle_t *)&pw->timer, on_timer_closed);
    uv_timer_stop(&pw->tick);
    uv_close((uv_handle_t *)&pw->tick, on_timer_closed);
    tr_http_client_close(pw->client, on_client_closed, pw);
    pw->client = NULL;
}
