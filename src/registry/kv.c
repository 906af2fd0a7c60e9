/* SPDX-License-Identifier: Apache-2.0 */
/* Sorted key/value store (see kv.h). A skip list keeps inserts O(log n) wherever the new
 * key sorts — a sorted array was O(n) per insert and made restarts quadratic — and a
 * prefix scan is a search for its first key followed by a walk along level 0. */
#include "registry/kv.h"

#include <string.h>

static int cmp_key(const struct tr_kv_entry *e, struct tr_slice key)
{
    size_t n = e->key_len < key.len ? e->key_len : key.len;
    int c = n ? memcmp(e->key, key.ptr, n) : 0;
    if (c != 0) {
        return c;
    }
    return e->key_len < key.len ? -1 : e->key_len > key.len;
}

static bool has_prefix(const struct tr_kv_entry *e, struct tr_slice prefix)
{
    return e->key_len >= prefix.len &&
           (prefix.len == 0 || memcmp(e->key, prefix.ptr, prefix.len) == 0);
}

static struct tr_kv_entry *entry_new(int level)
{
    return tr_xcalloc(1, sizeof(struct tr_kv_entry) + (size_t)level * sizeof(void *));
}

static void entry_free(struct tr_kv_entry *e)
{
    tr_free_null(&e->key);
    tr_free_null(&e->value);
    tr_free_null(&e);
}

void tr_kv_init(struct tr_kv *kv)
{
    kv->head = entry_new(TR_KV_MAX_LEVEL);
    kv->head->level = TR_KV_MAX_LEVEL;
    kv->level = 1;
    kv->len = 0;
    kv->live = 0;
    kv->rng = 0x9e3779b97f4a7c15ull;
}

void tr_kv_dispose(struct tr_kv *kv)
{
    if (kv->head == NULL) {
        return;
    }
    struct tr_kv_entry *e = kv->head->next[0];
    while (e != NULL) {
        struct tr_kv_entry *next = e->next[0];
        entry_free(e);
        e = next;
    }
    tr_free_null(&kv->head);
    kv->len = 0;
    kv->live = 0;
}

/* Level with P(level > k) = 4^-k (xorshift64*: deterministic, good enough here). */
static int random_level(struct tr_kv *kv)
{
    kv->rng ^= kv->rng >> 12;
    kv->rng ^= kv->rng << 25;
    kv->rng ^= kv->rng >> 27;
    uint64_t r = kv->rng * 2685821657736338717ull;
    int level = 1;
    while (level < TR_KV_MAX_LEVEL && (r & 3) == 0) {
        level++;
        r >>= 2;
    }
    return level;
}

/* Fills update[] with, per level, the last entry whose key is < `key`; returns the
 * first entry with key >= `key` (or NULL). */
static struct tr_kv_entry *find(const struct tr_kv *kv, struct tr_slice key,
                                struct tr_kv_entry **update)
{
    struct tr_kv_entry *x = kv->head;
    for (int lvl = kv->level - 1; lvl >= 0; lvl--) {
        while (x->next[lvl] != NULL && cmp_key(x->next[lvl], key) < 0) {
            x = x->next[lvl];
        }
        if (update != NULL) {
            update[lvl] = x;
        }
    }
    return x->next[0];
}

const char *tr_kv_key_problem(struct tr_slice key)
{
    if (key.len == 0) {
        return "missing key";
    }
    if (key.len > TR_KV_MAX_KEY) {
        return "key longer than 4096 bytes";
    }
    if (memchr(key.ptr, '\0', key.len) != NULL) {
        return "key contains a NUL byte";
    }
    if (key.ptr[0] == '/') {
        return "key must not start with '/'";
    }
    size_t start = 0;
    for (size_t i = 0; i <= key.len; i++) {
        if (i == key.len || key.ptr[i] == '/') {
            size_t n = i - start;
            if ((n == 1 && key.ptr[start] == '.') ||
                (n == 2 && key.ptr[start] == '.' && key.ptr[start + 1] == '.')) {
                return "key contains a \".\" or \"..\" path segment";
            }
            start = i + 1;
        }
    }
    return NULL;
}

const struct tr_kv_entry *tr_kv_get_any(const struct tr_kv *kv, struct tr_slice key)
{
    struct tr_kv_entry *e = find(kv, key, NULL);
    return e != NULL && cmp_key(e, key) == 0 ? e : NULL;
}

const struct tr_kv_entry *tr_kv_get(const struct tr_kv *kv, struct tr_slice key)
{
    const struct tr_kv_entry *e = tr_kv_get_any(kv, key);
    return e != NULL && !e->deleted ? e : NULL;
}

/* Finds `key` or inserts a new tombstone for it; returns the entry. */
static struct tr_kv_entry *find_or_insert(struct tr_kv *kv, struct tr_slice key)
{
    struct tr_kv_entry *update[TR_KV_MAX_LEVEL];
    struct tr_kv_entry *e = find(kv, key, update);
    if (e != NULL && cmp_key(e, key) == 0) {
        return e;
    }
    int level = random_level(kv);
    if (level > kv->level) {
        for (int lvl = kv->level; lvl < level; lvl++) {
            update[lvl] = kv->head;
        }
        kv->level = level;
    }
    e = entry_new(level);
    e->level = level;
    e->key = tr_xstrndup(key.ptr, key.len);
    e->key_len = key.len;
    e->deleted = true;
    for (int lvl = 0; lvl < level; lvl++) {
        e->next[lvl] = update[lvl]->next[lvl];
        update[lvl]->next[lvl] = e;
    }
    kv->len++;
    return e;
}

static void set_value(struct tr_kv_entry *e, struct tr_slice value)
{
    tr_free_null(&e->value);
    e->value_len = value.len;
    if (value.len > 0) {
        e->value = tr_xmalloc(value.len);
        memcpy(e->value, value.ptr, value.len);
    }
}

bool tr_kv_put(struct tr_kv *kv, struct tr_slice key, struct tr_slice value, uint64_t flags,
               const uint64_t *cas, uint64_t index)
{
    const struct tr_kv_entry *cur = tr_kv_get(kv, key);
    if (cas != NULL) {
        if (*cas == 0 ? cur != NULL : (cur == NULL || cur->modify_index != *cas)) {
            return false;
        }
    }
    struct tr_kv_entry *e = find_or_insert(kv, key);
    if (e->deleted) {
        e->deleted = false;
        e->create_index = index;
        e->lock_index = 0;
        kv->live++;
    }
    set_value(e, value);
    e->flags = flags;
    e->modify_index = index;
    return true;
}

static void tombstone(struct tr_kv *kv, struct tr_kv_entry *e, uint64_t index)
{
    tr_free_null(&e->value);
    e->value_len = 0;
    e->deleted = true;
    e->modify_index = index;
    kv->live--;
}

bool tr_kv_delete(struct tr_kv *kv, struct tr_slice key, bool recurse, const uint64_t *cas,
                  uint64_t index, size_t *changed)
{
    *changed = 0;
    if (recurse) {
        for (struct tr_kv_entry *e = (struct tr_kv_entry *)tr_kv_first_under(kv, key); e != NULL;
             e = (struct tr_kv_entry *)tr_kv_next_under(e, key)) {
            if (!e->deleted) {
                tombstone(kv, e, index);
                (*changed)++;
            }
        }
        return true;
    }
    struct tr_kv_entry *e = (struct tr_kv_entry *)tr_kv_get(kv, key);
    if (cas != NULL && (e == NULL || e->modify_index != *cas)) {
        return false;
    }
    if (e != NULL) {
        tombstone(kv, e, index);
        *changed = 1;
    }
    return true;
}

void tr_kv_restore(struct tr_kv *kv, struct tr_slice key, struct tr_slice value, uint64_t flags,
                   uint64_t create_index, uint64_t modify_index, uint64_t lock_index,
                   bool deleted)
{
    struct tr_kv_entry *e = find_or_insert(kv, key);
    kv->live -= e->deleted ? 0 : 1;
    set_value(e, deleted ? tr_slice(NULL, 0) : value);
    e->flags = flags;
    e->create_index = create_index;
    e->modify_index = modify_index;
    e->lock_index = lock_index;
    e->deleted = deleted;
    kv->live += deleted ? 0 : 1;
}

const struct tr_kv_entry *tr_kv_first_under(const struct tr_kv *kv, struct tr_slice prefix)
{
    struct tr_kv_entry *e = find(kv, prefix, NULL);
    return e != NULL && has_prefix(e, prefix) ? e : NULL;
}

const struct tr_kv_entry *tr_kv_next_under(const struct tr_kv_entry *e, struct tr_slice prefix)
{
    const struct tr_kv_entry *n = e->next[0];
    return n != NULL && has_prefix(n, prefix) ? n : NULL;
}

uint64_t tr_kv_index(const struct tr_kv *kv, struct tr_slice key, bool prefix)
{
    if (!prefix) {
        const struct tr_kv_entry *e = tr_kv_get_any(kv, key);
        return e != NULL ? e->modify_index : 0;
    }
    uint64_t max = 0;
    for (const struct tr_kv_entry *e = tr_kv_first_under(kv, key); e != NULL;
         e = tr_kv_next_under(e, key)) {
        if (e->modify_index > max) {
            max = e->modify_index;
        }
    }
    return max;
}

size_t tr_kv_reap(struct tr_kv *kv, uint64_t before)
{
    struct tr_kv_entry *update[TR_KV_MAX_LEVEL];
    for (int lvl = 0; lvl < TR_KV_MAX_LEVEL; lvl++) {
        update[lvl] = kv->head;
    }
    size_t dropped = 0;
    struct tr_kv_entry *e = kv->head->next[0];
    while (e != NULL) {
        struct tr_kv_entry *next = e->next[0];
        if (e->deleted && e->modify_index < before) {
            for (int lvl = 0; lvl < e->level; lvl++) {
                update[lvl]->next[lvl] = e->next[lvl];
            }
            entry_free(e);
            kv->len--;
            dropped++;
        } else {
            for (int lvl = 0; lvl < e->level; lvl++) {
                update[lvl] = e;
            }
        }
        e = next;
    }
    return dropped;
}
