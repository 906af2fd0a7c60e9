/* SPDX-License-Identifier: Apache-2.0 */
/* Per-worker counter blocks (see stats.h). */
#include "proxy/stats.h"

#include <stddef.h>
#include <string.h>

#include "core/mem.h"
#include "proxy/endpoints.h"

const uint64_t tr_proxy_lat_bounds_us[TR_PROXY_LAT_BUCKETS] = {
    250,   500,    1000,   2500,   5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 10000000,
};

void tr_proxy_stats_set_init(struct tr_proxy_stats_set *set, unsigned nworkers)
{
    tr_map_init(&set->by_name);
    set->nworkers = nworkers;
}

void tr_proxy_stats_set_dispose(struct tr_proxy_stats_set *set)
{
    const struct tr_map_slot *slot;
    for (size_t i = 0; tr_map_next(&set->by_name, &i, &slot);) {
        tr_proxy_stats_unref(slot->value);
    }
    tr_map_dispose(&set->by_name);
}

struct tr_proxy_stats *tr_proxy_stats_get(struct tr_proxy_stats_set *set, const char *name)
{
    struct tr_proxy_stats *st = tr_map_get(&set->by_name, tr_slice_cstr(name));
    if (st == NULL) {
        st = tr_xcalloc(1, sizeof(*st));
        atomic_init(&st->refs, 1);
        st->name = tr_xstrdup(name);
        st->nworkers = set->nworkers;
        st->blocks = tr_xcalloc(set->nworkers, sizeof(*st->blocks));
        tr_map_put(&set->by_name, tr_slice_cstr(name), st);
    }
    tr_proxy_stats_ref(st);
    return st;
}

void tr_proxy_stats_ref(struct tr_proxy_stats *st)
{
    atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
}

void tr_proxy_stats_unref(struct tr_proxy_stats *st)
{
    if (st == NULL || atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    tr_free_null(&st->name);
    tr_free_null(&st->blocks);
    tr_free_null(&st);
}

void tr_proxy_stats_record(struct tr_proxy_stats *st, unsigned w, int status, uint64_t latency_us)
{
    struct tr_proxy_stats_block *b = &st->blocks[w];
    int cls = status >= 100 && status < 600 ? status / 100 : 0;
    tr_proxy_counter_add(&b->status[cls], 1);
    size_t i = 0;
    while (i < TR_PROXY_LAT_BUCKETS && latency_us > tr_proxy_lat_bounds_us[i]) {
        i++;
    }
    tr_proxy_counter_add(&b->lat_bucket[i], 1);
    tr_proxy_counter_add(&b->lat_sum_us, latency_us);
}

static void add_all(_Atomic uint64_t *dst, _Atomic uint64_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        atomic_store_explicit(&dst[i],
                              atomic_load_explicit(&dst[i], memory_order_relaxed) +
                                  atomic_load_explicit(&src[i], memory_order_relaxed),
                              memory_order_relaxed);
    }
}

void tr_proxy_stats_sum(const struct tr_proxy_stats *st, struct tr_proxy_stats_block *out)
{
    memset(out, 0, sizeof(*out));
    /* The block is a run of _Atomic uint64_t counters: add it field by field. */
    size_t n =
        offsetof(struct tr_proxy_stats_block, mirror) / sizeof(uint64_t) + TR_PROXY_MIRROR_COUNT;
    for (unsigned w = 0; w < st->nworkers; w++) {
        add_all((_Atomic uint64_t *)out, (_Atomic uint64_t *)&st->blocks[w], n);
    }
}
