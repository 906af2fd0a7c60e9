/* SPDX-License-Identifier: Apache-2.0 */
/* The consistent-hash ring (see ring_hash.h). */
#include "proxy/ring_hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "proxy/endpoints.h"

uint64_t tr_proxy_hash64(const void *p, size_t len, uint64_t seed)
{
    const uint64_t m = 0xc6a4a7935bd1e995ull;
    const int r = 47;
    const unsigned char *data = p;
    uint64_t h = seed ^ ((uint64_t)len * m);
    size_t blocks = len / 8;
    for (size_t i = 0; i < blocks; i++) {
        uint64_t k;
        memcpy(&k, data + i * 8, 8);
        k *= m;
        k ^= k >> r;
        k *= m;
        h ^= k;
        h *= m;
    }
    const unsigned char *tail = data + blocks * 8;
    size_t rest = len & 7;
    if (rest > 0) {
        for (size_t i = rest; i > 0; i--) {
            h ^= (uint64_t)tail[i - 1] << (8 * (i - 1));
        }
        h *= m;
    }
    h ^= h >> r;
    h *= m;
    h ^= h >> r;
    return h;
}

static int cmp_points(const void *a, const void *b)
{
    const struct tr_proxy_ring_point *x = a;
    const struct tr_proxy_ring_point *y = b;
    if (x->hash != y->hash) {
        return x->hash < y->hash ? -1 : 1;
    }
    /* Equal hashes (vanishingly rare): order by endpoint so every worker agrees. */
    return x->ep < y->ep ? -1 : (x->ep > y->ep ? 1 : 0);
}

struct tr_proxy_ring *tr_proxy_ring_build(const struct tr_proxy_endpoint *eps, size_t n)
{
    TR_ASSERT(n > 0);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += (uint64_t)eps[i].weight * TR_PROXY_RING_POINTS_PER_WEIGHT;
    }
    /* Very large sets are scaled down; each endpoint keeps at least one point. */
    double scale = total > TR_PROXY_RING_MAX_POINTS ? (double)TR_PROXY_RING_MAX_POINTS / total : 1;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)((double)eps[i].weight * TR_PROXY_RING_POINTS_PER_WEIGHT * scale);
        cap += k > 0 ? k : 1;
    }
    struct tr_proxy_ring *ring = tr_xcalloc(1, sizeof(*ring));
    ring->points = tr_xcalloc(cap, sizeof(*ring->points));
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)((double)eps[i].weight * TR_PROXY_RING_POINTS_PER_WEIGHT * scale);
        k = k > 0 ? k : 1;
        for (size_t j = 0; j < k; j++) {
            char key[96];
            int len = snprintf(key, sizeof(key), "%s-%zu", eps[i].name, j);
            struct tr_proxy_ring_point *pt = &ring->points[ring->n++];
            pt->hash = tr_proxy_hash64(key, (size_t)len, 0);
            pt->ep = (uint32_t)i;
        }
    }
    qsort(ring->points, ring->n, sizeof(*ring->points), cmp_points);
    return ring;
}

void tr_proxy_ring_free(struct tr_proxy_ring *ring)
{
    if (ring == NULL) {
        return;
    }
    tr_free_null(&ring->points);
    tr_free_null(&ring);
}

uint32_t tr_proxy_ring_lookup(const struct tr_proxy_ring *ring, uint64_t hash)
{
    size_t lo = 0;
    size_t hi = ring->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ring->points[mid].hash < hash) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return ring->points[lo == ring->n ? 0 : lo].ep;
}
