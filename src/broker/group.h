/* SPDX-License-Identifier: Apache-2.0 */
/* A consumer group on one topic: its committed offset (everything below it is acked)
 * and a window of deliveries [committed, next) that are in flight, acked out of order,
 * or waiting for redelivery. A delivery not acked before its deadline, or nacked, is
 * handed out again once due. The window has a fixed capacity, which bounds both memory
 * and how many messages a group can hold unacknowledged. Pure logic: every time is a
 * parameter (ms), so tests drive the clock. */
#ifndef TR_BROKER_GROUP_H
#define TR_BROKER_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"

enum tr_bk_slot_state {
    TR_BK_SLOT_INFLIGHT = 0, /* delivered; redelivered at due_ms unless acked */
    TR_BK_SLOT_READY,        /* nacked; redelivered at due_ms */
    TR_BK_SLOT_ACKED,
};

struct tr_bk_slot {
    uint64_t due_ms;
    uint32_t attempts;
    uint8_t state; /* enum tr_bk_slot_state */
};

struct tr_bk_group {
    char *name;             /* owned */
    uint64_t committed;     /* every offset below is acked */
    uint64_t next;          /* next offset never delivered */
    struct tr_bk_slot *win; /* owned ring, cap slots; offset o lives at o & (cap - 1) */
    size_t cap;             /* power of two */
    size_t unacked;         /* slots in the window not acked */
    uint64_t redelivered;   /* deliveries with attempts > 1 (stats) */
    uint64_t persisted;     /* committed value last handed to the writer */
};

/* One delivery handed out by tr_bk_group_poll(). */
struct tr_bk_delivery {
    uint64_t offset;
    uint32_t attempts;
};

/* `window` is rounded up to a power of two. Delivery starts at `start`. */
void tr_bk_group_init(struct tr_bk_group *g, const char *name, uint64_t start, size_t window);
void tr_bk_group_dispose(struct tr_bk_group *g);

/* Hands out up to `max` deliveries: first those due for redelivery (lowest offset
 * first), then fresh offsets below `end` while the window has room. Each is in flight
 * until now_ms + ack_timeout_ms. Returns how many were written to `out`. */
size_t tr_bk_group_poll(struct tr_bk_group *g, uint64_t now_ms, uint64_t end,
                        uint64_t ack_timeout_ms, struct tr_bk_delivery *out, size_t max);

/* True if a poll at now_ms would hand something out (end as for poll). */
bool tr_bk_group_has_work(const struct tr_bk_group *g, uint64_t now_ms, uint64_t end);

/* Acks `offset`: 0; 1 if it was acked already (below committed or acked in the window);
 * -ENOENT if it was never delivered. */
TR_MUST_CHECK int tr_bk_group_ack(struct tr_bk_group *g, uint64_t offset);

/* Nacks `offset`: redelivered at now_ms + delay_ms. 0, or -ENOENT if it is not in
 * flight. */
TR_MUST_CHECK int tr_bk_group_nack(struct tr_bk_group *g, uint64_t offset, uint64_t now_ms,
                                   uint64_t delay_ms);

/* Retention deleted everything below `first`: forget it (counted as acked). */
void tr_bk_group_skip_to(struct tr_bk_group *g, uint64_t first);

#endif
