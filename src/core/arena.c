/* SPDX-License-Identifier: Apache-2.0 */
/* Arena allocator (see arena.h). Large requests get a chunk of their own. */
#include "core/arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

struct tr_arena_chunk {
    struct tr_arena_chunk *next;
    size_t size; /* usable bytes after the header */
    alignas(max_align_t) char data[];
};

void tr_arena_init(struct tr_arena *a, size_t chunk_size)
{
    a->chunks = NULL;
    a->pos = NULL;
    a->end = NULL;
    a->chunk_size = chunk_size ? chunk_size : 4096;
}

void tr_arena_dispose(struct tr_arena *a)
{
    struct tr_arena_chunk *c = a->chunks;
    while (c != NULL) {
        struct tr_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->chunks = NULL;
    a->pos = NULL;
    a->end = NULL;
}

void tr_arena_reset(struct tr_arena *a)
{
    struct tr_arena_chunk *keep = NULL;
    struct tr_arena_chunk *c = a->chunks;
    while (c != NULL) {
        struct tr_arena_chunk *next = c->next;
        if (keep == NULL && c->size == a->chunk_size) {
            keep = c;
        } else {
            free(c);
        }
        c = next;
    }
    a->chunks = keep;
    if (keep != NULL) {
        keep->next = NULL;
        a->pos = keep->data;
        a->end = keep->data + keep->size;
    } else {
        a->pos = NULL;
        a->end = NULL;
    }
}

void *tr_arena_alloc(struct tr_arena *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    n = (n + align - 1) & ~(align - 1);
    if (a->pos != NULL && (size_t)(a->end - a->pos) >= n) {
        void *p = a->pos;
        a->pos += n;
        return p;
    }
    size_t size = n > a->chunk_size / 2 ? n : a->chunk_size;
    struct tr_arena_chunk *c = tr_xmalloc(sizeof(*c) + size);
    c->size = size;
    if (size != a->chunk_size) {
        /* An oversized chunk serves this allocation alone; keep bumping in the
         * current chunk. Link it behind the head so reset frees it. */
        if (a->chunks != NULL) {
            c->next = a->chunks->next;
            a->chunks->next = c;
        } else {
            c->next = NULL;
            a->chunks = c;
        }
        return c->data;
    }
    c->next = a->chunks;
    a->chunks = c;
    a->pos = c->data + n;
    a->end = c->data + size;
    return c->data;
}

char *tr_arena_strndup(struct tr_arena *a, const char *s, size_t n)
{
    char *p = tr_arena_alloc(a, n + 1);
    if (n > 0) {
        memcpy(p, s, n);
    }
    p[n] = '\0';
    return p;
}

struct tr_slice tr_arena_slice_dup(struct tr_arena *a, struct tr_slice s)
{
    return tr_slice(tr_arena_strndup(a, s.ptr, s.len), s.len);
}
