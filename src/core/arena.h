/* SPDX-License-Identifier: Apache-2.0 */
/* Arenas: bump allocation for request-scoped data. Everything allocated from an arena
 * dies together at tr_arena_reset()/tr_arena_dispose(); the first chunk is kept across
 * resets so a keep-alive connection reuses it without touching malloc. */
#ifndef TR_CORE_ARENA_H
#define TR_CORE_ARENA_H

#include <stddef.h>

#include "core/slice.h"

struct tr_arena_chunk;

struct tr_arena {
    struct tr_arena_chunk *chunks; /* owned; newest first */
    char *pos;                     /* next free byte in chunks */
    char *end;                     /* end of chunks' usable space */
    size_t chunk_size;             /* default size of a new chunk */
};

void tr_arena_init(struct tr_arena *a, size_t chunk_size);
void tr_arena_dispose(struct tr_arena *a);
/* Frees all allocations; keeps one chunk of the default size for reuse. */
void tr_arena_reset(struct tr_arena *a);
/* Returns `n` bytes aligned for any type; aborts on OOM. */
void *tr_arena_alloc(struct tr_arena *a, size_t n);
char *tr_arena_strndup(struct tr_arena *a, const char *s, size_t n);
struct tr_slice tr_arena_slice_dup(struct tr_arena *a, struct tr_slice s);

#endif
