/* SPDX-License-Identifier: Apache-2.0 */
/* The embedded state store of `trellis server`: every store's entries in one in-memory
 * hash map owned by the registry thread, persisted through the registry's writer (record
 * kind TR_REC_STATE, table `state`). An entry's version is the registry index of the
 * write that made it, so ETags never repeat, not even across a delete and re-create or a
 * restart. Callers acknowledge a write only after tr_reg_after_commit(). */
#ifndef TR_STATE_EMBEDDED_H
#define TR_STATE_EMBEDDED_H

#include <stddef.h>
#include <stdint.h>

#include "core/map.h"
#include "registry/persist.h"
#include "state/state.h"

struct tr_reg;

struct tr_state_embedded {
    struct tr_map entries; /* "store/appid||key" -> struct tr_state_entry (owned) */
    struct tr_reg *reg;    /* borrowed: indexes and persistence */
    size_t bytes;          /* values held, for /metrics and limits later */
};

/* Registry thread (or the opener, before the threads start). */
struct tr_state_embedded *tr_state_embedded_new(struct tr_reg *reg);
/* Frees every entry; NULL is fine. */
void tr_state_embedded_free(struct tr_state_embedded *s);
/* Load: puts a stored entry back (copies what it keeps); deleted records are ignored. */
void tr_state_embedded_restore(struct tr_state_embedded *s, const struct tr_reg_record *r);
/* Number of entries over all stores. */
size_t tr_state_embedded_count(const struct tr_state_embedded *s);

/* The store as a tr_state_ops backend; `self` is the struct tr_state_embedded. Writes
 * queue their records on the registry's writer; the caller waits for the commit. */
extern const struct tr_state_ops tr_state_embedded_ops;

#endif
