/* SPDX-License-Identifier: Apache-2.0 */
/* Timeout queues: one list per constant timeout. Because every entry in a queue waits
 * the same duration, appending at the tail keeps the list sorted by deadline, so arming,
 * re-arming and cancelling are O(1) and expiry only looks at the head. A worker holds a
 * handful of queues (header, body, idle, write) and sweeps them from one uv timer,
 * which is what lets 10,000 idle connections cost no timer-heap churn. */
#ifndef TR_CORE_TIMEQ_H
#define TR_CORE_TIMEQ_H

#include <stdbool.h>
#include <stdint.h>

#include "core/list.h"

struct tr_timeq_entry;
typedef void tr_timeq_cb(struct tr_timeq_entry *e);

struct tr_timeq_entry {
    struct tr_list link;
    uint64_t deadline; /* ms, loop time */
    tr_timeq_cb *cb;
};

struct tr_timeq {
    struct tr_list entries; /* sorted by deadline, earliest first */
    uint64_t timeout_ms;    /* 0 disables the queue: arm() does nothing */
};

void tr_timeq_init(struct tr_timeq *q, uint64_t timeout_ms);
void tr_timeq_entry_init(struct tr_timeq_entry *e, tr_timeq_cb *cb);
/* (Re)arms `e` in `q` with deadline now + q->timeout_ms; removes it from any queue first. */
void tr_timeq_arm(struct tr_timeq *q, struct tr_timeq_entry *e, uint64_t now);
void tr_timeq_cancel(struct tr_timeq_entry *e);
static inline bool tr_timeq_armed(const struct tr_timeq_entry *e)
{
    return tr_list_linked(&e->link);
}
/* Fires (and disarms) every entry whose deadline is <= now. Callbacks may arm or
 * cancel any entry, including others in the same queue. Returns how many fired. */
unsigned tr_timeq_expire(struct tr_timeq *q, uint64_t now);
/* Earliest deadline in the queue, or UINT64_MAX when empty. */
uint64_t tr_timeq_next(const struct tr_timeq *q);

#endif
