/* SPDX-License-Identifier: Apache-2.0 */
/* Constant-timeout queues (see timeq.h). */
#include "core/timeq.h"

#include "core/mem.h"

void tr_timeq_init(struct tr_timeq *q, uint64_t timeout_ms)
{
    tr_list_init(&q->entries);
    q->timeout_ms = timeout_ms;
}

void tr_timeq_entry_init(struct tr_timeq_entry *e, tr_timeq_cb *cb)
{
    tr_list_init(&e->link);
    e->deadline = 0;
    e->cb = cb;
}

void tr_timeq_arm(struct tr_timeq *q, struct tr_timeq_entry *e, uint64_t now)
{
    if (tr_list_linked(&e->link)) {
        tr_list_remove(&e->link);
    }
    if (q->timeout_ms == 0) {
        return;
    }
    e->deadline = now + q->timeout_ms;
    tr_list_insert_tail(&q->entries, &e->link);
}

void tr_timeq_cancel(struct tr_timeq_entry *e)
{
    if (tr_list_linked(&e->link)) {
        tr_list_remove(&e->link);
    }
}

unsigned tr_timeq_expire(struct tr_timeq *q, uint64_t now)
{
    unsigned fired = 0;
    struct tr_list *l;
    while ((l = tr_list_first(&q->entries)) != NULL) {
        struct tr_timeq_entry *e = tr_container_of(l, struct tr_timeq_entry, link);
        if (e->deadline > now) {
            break;
        }
        tr_list_remove(&e->link);
        fired++;
        e->cb(e);
    }
    return fired;
}

uint64_t tr_timeq_next(const struct tr_timeq *q)
{
    struct tr_list *l = tr_list_first(&q->entries);
    if (l == NULL) {
        return UINT64_MAX;
    }
    return tr_container_of(l, struct tr_timeq_entry, link)->deadline;
}
