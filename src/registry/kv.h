/* SPDX-License-Identifier: Apache-2.0 */
/* The key/value store behind /v1/kv: keys kept sorted in a skip list (O(log n) lookups
 * and inserts, in-order prefix scans),
 * Consul's CreateIndex/ModifyIndex/LockIndex/Flags per entry, and tombstones for
 * deleted keys so that the index of a prefix never goes backwards when its newest
 * key is deleted. Single-threaded: only the registry thread touches it. */
#ifndef TR_REGISTRY_KV_H
#define TR_REGISTRY_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"
#include "core/slice.h"

#define TR_KV_MAX_KEY 4096
#define TR_KV_MAX_VALUE (512 * 1024)

#define TR_KV_MAX_LEVEL 24

struct tr_kv_entry {
    char *key; /* owned, NUL-terminated */
    size_t key_len;
    char *value; /* owned; may be NULL when value_len == 0 */
    size_t value_len;
    uint64_t flags;
    uint64_t create_index;
    uint64_t modify_index;
    uint64_t lock_index;
    bool deleted; /* tombstone: modify_index is the delete index */
    int level;    /* skip-list links in next[] */
    struct tr_kv_entry *next[];
};

struct tr_kv {
    struct tr_kv_entry *head; /* owned sentinel with TR_KV_MAX_LEVEL links */
    int level;                /* highest level in use */
    size_t len;               /* entries, tombstones included */
    size_t live;
    uint64_t rng;             /* for link levels */
};

void tr_kv_init(struct tr_kv *kv);
void tr_kv_dispose(struct tr_kv *kv);

/* Validates a key: 1..TR_KV_MAX_KEY bytes, no NUL, no "." or ".." path segment, no
 * leading '/'. Returns NULL when valid or a message naming the problem. */
const char *tr_kv_key_problem(struct tr_slice key);

/* Live entry for `key`, or NULL. */
const struct tr_kv_entry *tr_kv_get(const struct tr_kv *kv, struct tr_slice key);
/* Entry or tombstone for `key`, or NULL. */
const struct tr_kv_entry *tr_kv_get_any(const struct tr_kv *kv, struct tr_slice key);

/* Sets key to value at `index` (copied). CAS: when `cas` is non-NULL, *cas == 0 means
 * "only if absent", otherwise "only if ModifyIndex == *cas". Returns true if written. */
bool tr_kv_put(struct tr_kv *kv, struct tr_slice key, struct tr_slice value, uint64_t flags,
               const uint64_t *cas, uint64_t index);
/* Deletes key (or every key under the prefix when `recurse`), leaving tombstones at
 * `index`. CAS as for put (only without recurse). Returns true when the operation
 * succeeded (deleting a missing key succeeds, as in Consul); *changed counts keys. */
bool tr_kv_delete(struct tr_kv *kv, struct tr_slice key, bool recurse, const uint64_t *cas,
                  uint64_t index, size_t *changed);
/* Puts a loaded entry as it was stored (persistence replay); copies key and value. */
void tr_kv_restore(struct tr_kv *kv, struct tr_slice key, struct tr_slice value, uint64_t flags,
                   uint64_t create_index, uint64_t modify_index, uint64_t lock_index,
                   bool deleted);

/* Entries (live and tombstones) whose key starts with `prefix`, in key order:
 * for (e = tr_kv_first_under(kv, p); e != NULL; e = tr_kv_next_under(e, p)) */
const struct tr_kv_entry *tr_kv_first_under(const struct tr_kv *kv, struct tr_slice prefix);
const struct tr_kv_entry *tr_kv_next_under(const struct tr_kv_entry *e, struct tr_slice prefix);
/* Highest ModifyIndex (live or tombstone) for `key` (exact) or under it (prefix). */
uint64_t tr_kv_index(const struct tr_kv *kv, struct tr_slice key, bool prefix);

/* Drops tombstones whose index is below `before`. Returns how many were dropped. */
size_t tr_kv_reap(struct tr_kv *kv, uint64_t before);

#endif
