/* SPDX-License-Identifier: Apache-2.0 */
/* Intrusive binary min-heap keyed by a 64-bit deadline. Each node remembers its slot,
 * so removing an arbitrary node is O(log n): what timers with per-entry durations
 * (blocking queries, health-check intervals) need. Single-threaded. */
#ifndef TR_CORE_HEAP_H
#define TR_CORE_HEAP_H

#include <stddef.h>
#include <stdint.h>

struct tr_heap_node {
    uint64_t key;  /* ms, loop time */
    size_t slot;   /* position in the heap + 1; 0 when not in a heap */
};

struct tr_heap {
    struct tr_heap_node **nodes; /* owned array of borrowed nodes */
    size_t len;
    size_t cap;
};

void tr_heap_init(struct tr_heap *h);
void tr_heap_dispose(struct tr_heap *h);
void tr_heap_push(struct tr_heap *h, struct tr_heap_node *n, uint64_t key);
void tr_heap_remove(struct tr_heap *h, struct tr_heap_node *n); /* no-op if not in it */
struct tr_heap_node *tr_heap_min(const struct tr_heap *h);       /* NULL when empty */

#endif
