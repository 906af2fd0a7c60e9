/* SPDX-License-Identifier: Apache-2.0 */
/* Sorted key/value store (see kv.h). Entries sit in one sorted array of pointers:
 * lookups and prefix scans are binary searches, and an insert moves pointers only,
 * which stays cheap next to the fsync every write pays anyway. */
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

/* First position whose key is >= `key`. */
static size_t lower_bound(const struct tr_kv *kv, struct tr_slice key)
{
    size_t lo = 0;
    size_t hi = kv->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_key(kv->entries[mid], key) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

void tr_kv_init(struct tr_kv *kv)
{
    kv->entries = NULL;
    kv->len = 0;
    kv->cap = 0;
    kv->live = 0;
}

static void entry_free(struct tr_kv_entry *e)
{
    tr_free_null(&e->key);
    tr_free_null(&e->value);
    tr_free_null(&e);
}

void tr_kv_dispose(struct tr_kv *kv)
{
    for (size_t i = 0; i < kv->len; i++) {
        entry_free(kv->entries[i]);
    }
    tr_free_null(&kv->entries);
    tr_kv_init(kv);
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
    size_t i = lower_bound(kv, key);
    if (i < kv->len && cmp_key(kv->entries[i], key) == 0) {
        return kv->entries[i];
    }
    return NULL;
}

const struct tr_kv_entry *tr_kv_get(const struct tr_kv *kv, struct tr_slice key)
{
    const struct tr_kv_entry *e = tr_kv_get_any(kv, key);
    return e != NULL && !e->deleted ? e : NULL;
}

static void insert_at(struct tr_kv *kv, size_t i, struct tr_kv_entry *e)
{
    if (kv->len == kv->cap) {
        kv->cap = kv->cap ? kv->cap * 2 : 64;
        kv->entries = tr_xrealloc(kv->entries, kv->cap * sizeof(*kv->entries));
    }
    memmove(kv->entries + i + 1, kv->entries + i, (kv->len - i) * sizeof(*kv->entries));
    kv->entries[i] = e;
    kv->len++;
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
    size_t i = lower_bound(kv, key);
    struct tr_kv_entry *e = NULL;
    if (i < kv->len && cmp_key(kv->entries[i], key) == 0) {
        e = kv->entries[i];
    }
    bool live = e != NULL && !e->deleted;
    if (cas != NULL) {
        if (*cas == 0 ? live : (!live || e->modify_index != *cas)) {
            return false;
        }
    }
    if (e == NULL) {
        e = tr_xcalloc(1, sizeof(*e));
        e->key = tr_xstrndup(key.ptr, key.len);
        e->key_len = key.len;
        e->deleted = true;
        insert_at(kv, i, e);
    }
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
        size_t first;
        size_t end;
        tr_kv_prefix_range(kv, key, &first, &end);
        for (size_t i = first; i < end; i++) {
            if (!kv->entries[i]->deleted) {
                tombstone(kv, kv->entries[i], index);
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

void tr_kv_restore(struct tr_kv *kv, struct tr_kv_entry *e)
{
    size_t i = lower_bound(kv, tr_slice(e->key, e->key_len));
    if (i < kv->len && cmp_key(kv->entries[i], tr_slice(e->key, e->key_len)) == 0) {
        struct tr_kv_entry *old = kv->entries[i];
        kv->live -= old->deleted ? 0 : 1;
        entry_free(old);
        kv->entries[i] = e;
    } else {
        insert_at(kv, i, e);
    }
    kv->live += e->deleted ? 0 : 1;
}

void tr_kv_prefix_range(const struct tr_kv *kv, struct tr_slice prefix, size_t *first,
                        size_t *end)
{
    size_t i = lower_bound(kv, prefix);
    *first = i;
    /* Keys with the prefix are contiguous from the lower bound. */
    size_t lo = i;
    size_t hi = kv->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct tr_kv_entry *e = kv->entries[mid];
        bool has = e->key_len >= prefix.len &&
                   (prefix.len == 0 || memcmp(e->key, prefix.ptr, prefix.len) == 0);
        if (has) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *end = lo;
}

uint64_t tr_kv_index(const struct tr_kv *kv, struct tr_slice key, bool prefix)
{
    if (!prefix) {
        const struct tr_kv_entry *e = tr_kv_get_any(kv, key);
        return e != NULL ? e->modify_index : 0;
    }
    size_t first;
    size_t end;
    tr_kv_prefix_range(kv, key, &first, &end);
    uint64_t max = 0;
    for (size_t i = first; i < end; i++) {
        if (kv->entries[i]->modify_index > max) {
            max = kv->entries[i]->modify_index;
        }
    }
    return max;
}

size_t tr_kv_reap(struct tr_kv *kv, uint64_t before)
{
    size_t out = 0;
    size_t dropped = 0;
    for (size_t i = 0; i < kv->len; i++) {
        struct tr_kv_entry *e = kv->entries[i];
        if (e->deleted && e->modify_index < before) {
            entry_free(e);
            dropped++;
            continue;
        }
        kv->entries[out++] = e;
    }
    kv->len = out;
    return dropped;
}
