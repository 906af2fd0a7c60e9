/* SPDX-License-Identifier: Apache-2.0 */
/* Handler thread pool (see pool.h): one mutex, one condition variable, a list. */
#include "sdk/pool.h"

#include <errno.h>

static void *pool_main(void *arg)
{
    struct tr_sdk_pool *pool = arg;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        struct tr_list *l = tr_list_first(&pool->queue);
        if (l == NULL) {
            if (pool->stopping) {
                break;
            }
            pthread_cond_wait(&pool->cond, &pool->lock);
            continue;
        }
        tr_list_remove(l);
        pool->queued--;
        pthread_mutex_unlock(&pool->lock);
        struct tr_sdk_job *job = tr_container_of(l, struct tr_sdk_job, link);
        job->run(job);
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

int tr_sdk_pool_start(struct tr_sdk_pool *pool, unsigned n, size_t max_queued)
{
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->cond, NULL);
    tr_list_init(&pool->queue);
    pool->queued = 0;
    pool->max_queued = max_queued;
    pool->stopping = false;
    pool->threads = tr_xcalloc(n, sizeof(*pool->threads));
    pool->nthreads = 0;
    for (unsigned i = 0; i < n; i++) {
        int err = pthread_create(&pool->threads[i], NULL, pool_main, pool);
        if (err != 0) {
            tr_sdk_pool_stop(pool);
            return -err;
        }
        pool->nthreads++;
    }
    return 0;
}

bool tr_sdk_pool_submit(struct tr_sdk_pool *pool, struct tr_sdk_job *job)
{
    pthread_mutex_lock(&pool->lock);
    if (pool->stopping || pool->queued >= pool->max_queued) {
        pthread_mutex_unlock(&pool->lock);
        return false;
    }
    tr_list_insert_tail(&pool->queue, &job->link);
    pool->queued++;
    pthread_cond_signal(&pool->cond);
    pthread_mutex_unlock(&pool->lock);
    return true;
}

void tr_sdk_pool_stop(struct tr_sdk_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->cond);
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < pool->nthreads; i++) {
        pthread_join(pool->threads[i], NULL);
    }
    pool->nthreads = 0;
    tr_free_null(&pool->threads);
    pthread_cond_destroy(&pool->cond);
    pthread_mutex_destroy(&pool->lock);
}
