/* SPDX-License-Identifier: Apache-2.0 */
/* Load balancers: pick one endpoint of a set for a request, on the calling worker,
 * from that worker's own counters (see endpoints.h), without locks.
 *   round_robin    smooth weighted round robin (nginx): each pick adds every weight to
 *                  its endpoint's running score and takes the highest, which then pays
 *                  back the total; weights 5:1:1 give a a b a c a a, never a burst.
 *   least_request  power of two choices: two distinct endpoints at random, the one with
 *                  fewer requests in flight per unit of weight wins (Mitzenmacher).
 *   random         weighted random over the prefix sums of the weights.
 *   ring_hash      consistent hashing of the request's key (see ring_hash.h); a request
 *                  without a key gets a random endpoint.
 * Endpoints ejected by outlier detection are skipped: the algorithm picks again (ring
 * hash: with the key hashed again), and after a few misses the first usable endpoint
 * after a random index is taken. */
#ifndef TR_PROXY_BALANCER_H
#define TR_PROXY_BALANCER_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/config.h"
#include "proxy/endpoints.h"

struct tr_proxy_pick {
    unsigned worker;    /* the calling worker: whose counters to use */
    uint64_t *rng;      /* the worker's random state (tr_proxy_rand) */
    bool has_hash;      /* ring_hash: the request has a key */
    uint64_t hash;      /* ring_hash: tr_proxy_hash64 of the key */
    int avoid;          /* endpoint index to avoid if any other exists (a retry), or -1 */
    bool check_ejected; /* skip endpoints outlier detection ejected (for this worker) */
    uint64_t now_ms;    /* with check_ejected: loop time to compare ejections with */
};

/* Returns an endpoint index of `s`, or -1 when the set is empty. With check_ejected,
 * an ejected endpoint is taken only when every endpoint is ejected (better a suspect
 * endpoint than none), and `avoid` only when it is the one endpoint not ejected. */
int tr_proxy_balancer_pick(enum tr_proxy_lb lb, struct tr_proxy_eps *s,
                           const struct tr_proxy_pick *p);

/* xorshift64*: fast per-worker pseudo-random numbers (not for secrets). *state != 0. */
uint64_t tr_proxy_rand(uint64_t *state);

#endif
