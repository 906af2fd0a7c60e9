/* SPDX-License-Identifier: Apache-2.0 */
/* Endpoint sets (see endpoints.h): one allocation per array, per-worker rows padded to
 * cache lines so that two workers counting their own requests never share a line. */
#include "proxy/endpoints.h"

#include <string.h>

#include "core/mem.h"
#include "proxy/ring_hash.h"

_Static_assert(sizeof(struct tr_proxy_eps_row) <= 64, "row header must fit its 64 bytes");

void tr_proxy_endpoint_init(struct tr_proxy_endpoint *ep, const struct tr_addr *addr,
                            uint32_t weight)
{
    memset(ep, 0, sizeof(*ep));
    ep->addr = *addr;
    ep->weight = weight > 0 ? weight : 1;
    tr_addr_format((const struct sockaddr *)&addr->ss, ep->name, sizeof(ep->name));
}

struct tr_proxy_eps *tr_proxy_eps_new(const struct tr_proxy_endpoint *eps, size_t n,
                                      unsigned nworkers)
{
    TR_ASSERT(nworkers > 0);
    struct tr_proxy_eps *s = tr_xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    atomic_init(&s->ring, NULL);
    s->n = n;
    s->nworkers = nworkers;
    s->eps = tr_xcalloc(n > 0 ? n : 1, sizeof(*s->eps));
    s->cum_weight = tr_xcalloc(n > 0 ? n : 1, sizeof(*s->cum_weight));
    for (size_t i = 0; i < n; i++) {
        s->eps[i] = eps[i];
        if (s->eps[i].weight == 0) {
            s->eps[i].weight = 1;
        }
        s->total_weight += s->eps[i].weight;
        s->cum_weight[i] = s->total_weight;
    }
    size_t stride = 64 + n * sizeof(struct tr_proxy_ep_load);
    s->row_stride = (stride + 63) & ~(size_t)63;
    s->rows = tr_xcalloc(nworkers, s->row_stride);
    return s;
}

void tr_proxy_eps_ref(struct tr_proxy_eps *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void tr_proxy_eps_unref(struct tr_proxy_eps *s)
{
    if (s == NULL) {
        return;
    }
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    tr_proxy_ring_free(atomic_load(&s->ring));
    tr_free_null(&s->eps);
    tr_free_null(&s->cum_weight);
    tr_free_null(&s->rows);
    tr_free_null(&s);
}

bool tr_proxy_eps_equal(const struct tr_proxy_eps *a, const struct tr_proxy_eps *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (a->eps[i].weight != b->eps[i].weight || a->eps[i].addr.len != b->eps[i].addr.len ||
            memcmp(&a->eps[i].addr.ss, &b->eps[i].addr.ss, a->eps[i].addr.len) != 0) {
            return false;
        }
    }
    return true;
}

const struct tr_proxy_ring *tr_proxy_eps_ring(struct tr_proxy_eps *s)
{
    struct tr_proxy_ring *ring = atomic_load_explicit(&s->ring, memory_order_acquire);
    if (ring != NULL || s->n == 0) {
        return ring;
    }
    struct tr_proxy_ring *built = tr_proxy_ring_build(s->eps, s->n);
    struct tr_proxy_ring *expected = NULL;
    if (atomic_compare_exchange_strong_explicit(&s->ring, &expected, built, memory_order_acq_rel,
                                                memory_order_acquire)) {
        return built;
    }
    tr_proxy_ring_free(built);
    return expected;
}
