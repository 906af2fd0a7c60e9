/* SPDX-License-Identifier: Apache-2.0 */
/* Open-addressing hash map (see map.h). FNV-1a hashing; the table doubles at 3/4 load. */
#include "core/map.h"

#include <string.h>

#include "core/mem.h"

uint64_t tr_hash(const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

void tr_map_init(struct tr_map *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->len = 0;
}

void tr_map_dispose(struct tr_map *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        tr_free_null(&m->slots[i].key);
    }
    tr_free_null(&m->slots);
    m->cap = 0;
    m->len = 0;
}

static size_t find(const struct tr_map *m, struct tr_slice key, uint64_t h)
{
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    while (m->slots[i].key != NULL) {
        const struct tr_map_slot *s = &m->slots[i];
        if (s->hash == h && s->key_len == key.len && memcmp(s->key, key.ptr, key.len) == 0) {
            return i;
        }
        i = (i + 1) & mask;
    }
    return i;
}

static void grow(struct tr_map *m)
{
    struct tr_map_slot *old = m->slots;
    size_t old_cap = m->cap;
    m->cap = old_cap ? old_cap * 2 : 16;
    m->slots = tr_xcalloc(m->cap, sizeof(*m->slots));
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key != NULL) {
            size_t j = old[i].hash & (m->cap - 1);
            while (m->slots[j].key != NULL) {
                j = (j + 1) & (m->cap - 1);
            }
            m->slots[j] = old[i];
        }
    }
    tr_free_null(&old);
}

void *tr_map_get(const struct tr_map *m, struct tr_slice key)
{
    if (m->len == 0) {
        return NULL;
    }
    size_t i = find(m, key, tr_hash(key.ptr, key.len));
    return m->slots[i].key != NULL ? m->slots[i].value : NULL;
}

void *tr_map_put(struct tr_map *m, struct tr_slice key, void *value)
{
    if ((m->len + 1) * 4 > m->cap * 3) {
        grow(m);
    }
    uint64_t h = tr_hash(key.ptr, key.len);
    size_t i = find(m, key, h);
    struct tr_map_slot *s = &m->slots[i];
    if (s->key != NULL) {
        void *prev = s->value;
        s->value = value;
        return prev;
    }
    s->key = tr_xstrndup(key.ptr, key.len);
    s->key_len = key.len;
    s->hash = h;
    s->value = value;
    m->len++;
    return NULL;
}

void *tr_map_del(struct tr_map *m, struct tr_slice key)
{
    if (m->len == 0) {
        return NULL;
    }
    size_t mask = m->cap - 1;
    size_t i = find(m, key, tr_hash(key.ptr, key.len));
    if (m->slots[i].key == NULL) {
        return NULL;
    }
    void *value = m->slots[i].value;
    tr_free_null(&m->slots[i].key);
    m->len--;
    /* Backward-shift deletion: pull later members of the probe run into the hole so
     * lookups never stop early. */
    size_t hole = i;
    size_t j = (i + 1) & mask;
    while (m->slots[j].key != NULL) {
        size_t home = m->slots[j].hash & mask;
        bool wrapped_ok = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
        if (wrapped_ok) {
            m->slots[hole] = m->slots[j];
            m->slots[j].key = NULL;
            hole = j;
        }
        j = (j + 1) & mask;
    }
    return value;
}

int tr_map_next(const struct tr_map *m, size_t *i, const struct tr_map_slot **slot)
{
    while (*i < m->cap) {
        const struct tr_map_slot *s = &m->slots[(*i)++];
        if (s->key != NULL) {
            *slot = s;
            return 1;
        }
    }
    return 0;
}
