/* SPDX-License-Identifier: Apache-2.0 */
/* Circuit breaker: a cluster's consecutive-failure state machine, and how its
 * connection and request limits are shared between workers.
 *
 *   CLOSED    --consecutive_failures failed attempts in a row-->  OPEN (for open_for)
 *   OPEN      --open_for elapsed; the next request is the probe--> HALF_OPEN
 *   HALF_OPEN --the probe succeeds--> CLOSED
 *   HALF_OPEN --the probe fails--> OPEN (for open_for again)
 *   HALF_OPEN --the probe ends without an outcome (client gone)--> HALF_OPEN, the next
 *               request probes
 *
 * A failed attempt is a connect failure, a reset, a timeout, a malformed response or a
 * 5xx status; any other response is a success. While OPEN every request is refused at
 * once; in HALF_OPEN only the probe goes through. Outcomes of attempts that were
 * already in flight when the breaker opened are ignored, as are those of non-probe
 * attempts in HALF_OPEN.
 *
 * The proxy keeps one breaker per cluster, shared by every worker, so that it opens
 * after `consecutive_failures` failures however requests spread over workers. The
 * transitions are compare-and-swaps on a few atomics (no lock); the request path only
 * reads them while the cluster is healthy (a success writes only when it resets a
 * non-zero count), so a closed breaker costs no shared writes. Two workers' outcomes
 * racing may make the count approximate by one; the probe is unique (a CAS). Times
 * are loop milliseconds (uv_now, the same clock for every loop). */
#ifndef TR_PROXY_BREAKER_H
#define TR_PROXY_BREAKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "proxy/config.h"

enum tr_proxy_breaker_state {
    TR_PROXY_BREAKER_CLOSED = 0, /* gauge value 0 */
    TR_PROXY_BREAKER_OPEN,       /* 1 */
    TR_PROXY_BREAKER_HALF_OPEN,  /* 2 */
};

struct tr_proxy_breaker {
    _Atomic uint64_t state;         /* enum tr_proxy_breaker_state */
    _Atomic uint64_t open_until_ms; /* loop ms; meaningful while OPEN */
    _Atomic uint64_t failures;      /* consecutive failed attempts while CLOSED */
    _Atomic uint64_t probing;       /* HALF_OPEN: 1 while the probe is in flight */
} __attribute__((aligned(64)));

enum tr_proxy_breaker_verdict {
    TR_PROXY_BREAKER_PASS = 0, /* closed: go on */
    TR_PROXY_BREAKER_PROBE,    /* go on as the half-open probe; report its outcome */
    TR_PROXY_BREAKER_REJECT,   /* refuse the request */
};

/* Would tr_proxy_breaker_admit() let a request through now? No state change. */
bool tr_proxy_breaker_would_admit(const struct tr_proxy_breaker *b, uint64_t now_ms);

/* Decides for one request at loop time `now_ms`. An OPEN breaker whose open_for has
 * elapsed turns HALF_OPEN and makes this request its probe. */
enum tr_proxy_breaker_verdict tr_proxy_breaker_admit(struct tr_proxy_breaker *b, uint64_t now_ms);

/* Records an attempt's outcome (`ok` false: a failure); `probe` says it was admitted
 * as the probe. Returns true when this outcome opened the breaker. */
bool tr_proxy_breaker_report(struct tr_proxy_breaker *b, const struct tr_proxy_breaker_policy *p,
                             bool ok, bool probe, uint64_t now_ms);

/* The probe (admitted as TR_PROXY_BREAKER_PROBE) ended without an outcome: the next
 * request may probe. */
void tr_proxy_breaker_abandon(struct tr_proxy_breaker *b);

/* Seconds a refused client should wait (Retry-After): until open_for ends when OPEN,
 * rounded up, at least 1. */
uint64_t tr_proxy_breaker_retry_after_s(const struct tr_proxy_breaker *b, uint64_t now_ms);

/* Worker `w`'s share of a cluster-wide `limit` over `nworkers` workers: the limit
 * divided evenly, the first limit % nworkers workers one more, never below 1 (so the
 * effective limit is at least the number of workers). */
uint64_t tr_proxy_breaker_share(uint64_t limit, unsigned nworkers, unsigned w);

const char *tr_proxy_breaker_state_name(enum tr_proxy_breaker_state s);

#endif
