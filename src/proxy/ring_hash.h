/* SPDX-License-Identifier: Apache-2.0 */
/* Consistent hashing (ring_hash): every endpoint owns points on a 64-bit ring, one
 * hundred per unit of weight, each the hash of "<ip:port>-<i>"; a request's key maps to
 * the first point at or after its hash. A point depends only on its own endpoint's
 * address, so when endpoints come or go only the keys of those endpoints move (Karger
 * et al.; Envoy's ring_hash, HAProxy's lb_chash). */
#ifndef TR_PROXY_RING_HASH_H
#define TR_PROXY_RING_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "core/slice.h"

struct tr_proxy_endpoint;

#define TR_PROXY_RING_POINTS_PER_WEIGHT 100
#define TR_PROXY_RING_MAX_POINTS 65536

struct tr_proxy_ring_point {
    uint64_t hash;
    uint32_t ep; /* endpoint index */
};

struct tr_proxy_ring {
    size_t n;
    struct tr_proxy_ring_point *points; /* owned, sorted by hash */
};

/* Builds the ring of `n` > 0 endpoints. Aborts on OOM. */
struct tr_proxy_ring *tr_proxy_ring_build(const struct tr_proxy_endpoint *eps, size_t n);
void tr_proxy_ring_free(struct tr_proxy_ring *ring);

/* The endpoint index owning `hash`. */
uint32_t tr_proxy_ring_lookup(const struct tr_proxy_ring *ring, uint64_t hash);

/* A 64-bit hash of bytes with good dispersion (MurmurHash64A). */
uint64_t tr_proxy_hash64(const void *p, size_t len, uint64_t seed);

#endif
