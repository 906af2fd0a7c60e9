/* SPDX-License-Identifier: Apache-2.0 */
/* Rate limiting: a token bucket per key (client IP, a header's value, or the whole
 * route), kept as GCRA — the generic cell rate algorithm — so that a bucket is one
 * 64-bit number, its theoretical arrival time (TAT): the moment the bucket would be
 * full again. With interval = 1 s / rate, a request at `now` is allowed when
 * max(TAT, now) + interval - now <= burst × interval, and then moves TAT there. That is
 * exactly a bucket of `burst` tokens refilled at `rate` per second, with no timer.
 *
 * The buckets of a route are shared by every worker, so the configured rate holds for
 * the whole process however connections spread over workers: a fixed table of
 * {key hash, TAT} slots updated with compare-and-swap (no lock). A key lives in one of
 * 8 slots after its hash. A slot whose TAT has passed is a full bucket — the same as no
 * state — so it is free for any key: memory is bounded by the table and idle keys
 * expire by themselves. When all 8 slots hold live buckets, the one closest to full
 * (roughly the least recently used) is taken over and starts as a full bucket for the
 * new key, as does the evicted key if it comes back: with more live keys than the
 * table holds, limits err on the lax side (never refusing a newcomer because others
 * filled the table); size it with `max_keys`. Two keys whose 64-bit hashes collide
 * share a bucket. */
#ifndef TR_PROXY_RATELIMIT_H
#define TR_PROXY_RATELIMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TR_PROXY_RATELIMIT_PROBE 8

struct tr_proxy_rl_slot {
    _Atomic uint64_t key; /* hash of the key, never 0; 0 = empty */
    _Atomic uint64_t tat; /* ns, uv_hrtime() clock */
};

struct tr_proxy_ratelimit {
    size_t mask;                    /* slots - 1 */
    struct tr_proxy_rl_slot *slots; /* owned */
};

/* A table for about `max_keys` live keys (1 for a per-route limit). */
struct tr_proxy_ratelimit *tr_proxy_ratelimit_new(size_t max_keys);
void tr_proxy_ratelimit_free(struct tr_proxy_ratelimit *rl); /* NULL is a no-op */

/* Pure GCRA step: is a request at `now_ns` allowed for a bucket at `tat`, refilling
 * `rate` tokens per second up to `burst`? On success sets *new_tat; on refusal sets
 * *wait_ns to the time until one token is back. */
bool tr_proxy_gcra(uint64_t tat, uint64_t now_ns, uint64_t rate, uint64_t burst, uint64_t *new_tat,
                   uint64_t *wait_ns);

/* Takes a token from key `key` (any hash) at `now_ns`. Any thread. Returns true when
 * the request may go on; false with *wait_ns set otherwise. */
bool tr_proxy_ratelimit_take(struct tr_proxy_ratelimit *rl, uint64_t key, uint64_t rate,
                             uint64_t burst, uint64_t now_ns, uint64_t *wait_ns);

/* Retry-After for a wait: whole seconds, rounded up, at least 1. */
uint64_t tr_proxy_ratelimit_retry_after_s(uint64_t wait_ns);

#endif
