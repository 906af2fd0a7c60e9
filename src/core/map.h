/* SPDX-License-Identifier: Apache-2.0 */
/* String-keyed hash map with open addressing (linear probing, tombstone-free deletion
 * by backward shift). Keys are copied and owned by the map; values are borrowed
 * pointers. Iteration order is unspecified. Single-threaded. */
#ifndef TR_CORE_MAP_H
#define TR_CORE_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "core/slice.h"

struct tr_map_slot {
    char *key; /* owned; NULL = empty slot */
    size_t key_len;
    uint64_t hash;
    void *value;
};

struct tr_map {
    struct tr_map_slot *slots; /* owned */
    size_t cap;                /* power of two, or 0 */
    size_t len;
};

void tr_map_init(struct tr_map *m);
/* Frees the keys and the table; values are the caller's. */
void tr_map_dispose(struct tr_map *m);
void *tr_map_get(const struct tr_map *m, struct tr_slice key);
/* Inserts or replaces; returns the previous value or NULL. */
void *tr_map_put(struct tr_map *m, struct tr_slice key, void *value);
/* Removes; returns the removed value or NULL. */
void *tr_map_del(struct tr_map *m, struct tr_slice key);

/* Iteration: for (size_t i = 0; tr_map_next(m, &i, &slot);) { ... } — the map must not
 * be modified during iteration. */
int tr_map_next(const struct tr_map *m, size_t *i, const struct tr_map_slot **slot);

uint64_t tr_hash(const void *p, size_t len);

#endif
