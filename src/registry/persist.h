/* SPDX-License-Identifier: Apache-2.0 */
/* Persistence of the registry: a small vtable so the embedded SQLite store and later
 * backends (etcd) are interchangeable. The registry thread produces records; a writer
 * thread commits them in batches (group commit: every record queued while one commit
 * is in progress goes into the next one), and the registry acknowledges a write only
 * once the commit holding it has returned, i.e. is on disk. */
#ifndef TR_REGISTRY_PERSIST_H
#define TR_REGISTRY_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/list.h"
#include "core/mem.h"

enum tr_rec_kind {
    TR_REC_KV = 0, /* a KV entry or tombstone */
    TR_REC_OBJ,    /* a catalog object (service, check) as JSON text */
    TR_REC_STATE,  /* a state-store entry (src/state/embedded.c) or its deletion */
};

struct tr_reg_record {
    struct tr_list link;
    enum tr_rec_kind kind;
    char obj_kind[16]; /* TR_REC_OBJ: "service", "check" */
    char *key;         /* owned: KV key, object id, or STATE "store/appid||key" */
    size_t key_len;
    char *data;        /* owned: KV value or object JSON; NULL when empty */
    size_t data_len;
    char *meta;        /* owned: STATE content type; NULL when none */
    size_t meta_len;
    uint64_t flags;
    uint64_t create_index;
    uint64_t modify_index; /* STATE: the entry's version (its ETag) */
    uint64_t lock_index;
    bool deleted;      /* KV: tombstone; OBJ, STATE: row removed */
};

/* Builds a record; copies key and data. */
struct tr_reg_record *tr_reg_record_new(enum tr_rec_kind kind, const char *obj_kind,
                                        const char *key, size_t key_len, const char *data,
                                        size_t data_len);
void tr_reg_record_free(struct tr_reg_record *r);

/* What a load replays, in no particular order. */
struct tr_persist_loader {
    void *ctx;
    /* Takes ownership of nothing; copies what it keeps. */
    void (*on_record)(void *ctx, const struct tr_reg_record *r);
};

struct tr_persist_ops {
    const char *name;
    /* Opens (creating if needed) the store in `dir`. Writes a message into err. */
    TR_MUST_CHECK int (*open)(void **self, const char *dir, char *err, size_t errlen);
    /* Replays every stored record and reports the highest index ever committed. */
    TR_MUST_CHECK int (*load)(void *self, struct tr_persist_loader *l, uint64_t *max_index);
    /* Writer thread: stores the records and the index atomically and durably. */
    TR_MUST_CHECK int (*commit)(void *self, struct tr_list *records, uint64_t index);
    void (*close)(void *self);
};

extern const struct tr_persist_ops tr_persist_sqlite;

#endif
