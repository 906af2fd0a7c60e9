/* SPDX-License-Identifier: Apache-2.0 */
/* The handler thread pool: a FIFO of jobs served by N threads. Handlers run here so
 * they may block (sidecar calls, sleeps) without stalling the app's network loop. */
#ifndef TR_SDK_POOL_H
#define TR_SDK_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/list.h"
#include "core/mem.h"

struct tr_sdk_job;
typedef void tr_sdk_job_cb(struct tr_sdk_job *job);

struct tr_sdk_job {
    struct tr_list link;
    tr_sdk_job_cb *run; /* runs on a pool thread; owns the job from then on */
};

struct tr_sdk_pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct tr_list queue; /* guarded by lock */
    size_t queued;        /* guarded by lock */
    size_t max_queued;    /* submit refuses beyond this */
    bool stopping;        /* guarded by lock */
    pthread_t *threads;   /* owned */
    unsigned nthreads;
};

/* Starts `n` threads. Returns 0 or a negative errno (no thread left running then). */
TR_MUST_CHECK int tr_sdk_pool_start(struct tr_sdk_pool *pool, unsigned n, size_t max_queued);
/* Queues `job`. Returns false (job not taken) when max_queued jobs wait already or the
 * pool is stopping. Any thread. */
bool tr_sdk_pool_submit(struct tr_sdk_pool *pool, struct tr_sdk_job *job);
/* Runs what is queued, then joins the threads. Not from a pool thread. */
void tr_sdk_pool_stop(struct tr_sdk_pool *pool);

#endif
