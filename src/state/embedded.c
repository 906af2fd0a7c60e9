/* SPDX-License-Identifier: Apache-2.0 */
/* The embedded state store (see embedded.h). Every write, single or transactional, is
 * checked in full against the current entries before anything changes, then applied
 * under one new version and queued as one batch, so memory and disk both see all of
 * it or none of it. */
#include "state/embedded.h"

#include <errno.h>
#include <string.h>

#include "core/list.h"
#include "core/log.h"
#include "core/mem.h"
#include "registry/registry.h"

/* "store/" + "appid||key" */
#define FULL_KEY_MAX (TR_STATE_MAX_NAME + 1 + TR_STATE_MAX_NAME + 2 + TR_STATE_MAX_KEY)

struct tr_state_entry {
    char *value; /* owned; never NULL */
    size_t value_len;
    char *content_type; /* owned; NULL = JSON */
    size_t content_type_len;
    uint64_t version; /* registry index of the last write; the ETag */
};

static void entry_free(struct tr_state_entry *e)
{
    if (e == NULL) {
        return;
    }
    tr_free_null(&e->value);
    tr_free_null(&e->content_type);
    tr_free_null(&e);
}

/* Builds "store/key" into buf (FULL_KEY_MAX bytes); -EINVAL when it does not fit or
 * a part is empty. */
static int full_key(char *buf, struct tr_slice store, struct tr_slice key, struct tr_slice *out)
{
    if (store.len == 0 || key.len == 0 || store.len + 1 + key.len > FULL_KEY_MAX) {
        return -EINVAL;
    }
    memcpy(buf, store.ptr, store.len);
    buf[store.len] = '/';
    memcpy(buf + store.len + 1, key.ptr, key.len);
    *out = tr_slice(buf, store.len + 1 + key.len);
    return 0;
}

static void fill_item(const struct tr_state_entry *e, struct tr_state_item *out)
{
    out->value = tr_slice(e->value, e->value_len);
    out->content_type = tr_slice(e->content_type, e->content_type_len);
    tr_state_etag_format(e->version, out->etag);
}

struct tr_state_embedded *tr_state_embedded_new(struct tr_reg *reg)
{
    struct tr_state_embedded *s = tr_xcalloc(1, sizeof(*s));
    tr_map_init(&s->entries);
    s->reg = reg;
    return s;
}

void tr_state_embedded_free(struct tr_state_embedded *s)
{
    if (s == NULL) {
        return;
    }
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&s->entries, &i, &slot)) {
        entry_free(slot->value);
    }
    tr_map_dispose(&s->entries);
    tr_free_null(&s);
}

size_t tr_state_embedded_count(const struct tr_state_embedded *s)
{
    return s->entries.len;
}

/* Replaces (or creates) the entry under `full` with the given contents. */
static void put_entry(struct tr_state_embedded *s, struct tr_slice full, struct tr_slice value,
                      struct tr_slice content_type, uint64_t version)
{
    struct tr_state_entry *e = tr_map_get(&s->entries, full);
    if (e == NULL) {
        e = tr_xcalloc(1, sizeof(*e));
        tr_map_put(&s->entries, full, e);
    } else {
        s->bytes -= e->value_len;
        tr_free_null(&e->value);
        tr_free_null(&e->content_type);
    }
    e->value = tr_xmalloc(value.len > 0 ? value.len : 1);
    if (value.len > 0) {
        memcpy(e->value, value.ptr, value.len);
    }
    e->value_len = value.len;
    e->content_type_len = content_type.len;
    if (content_type.len > 0) {
        e->content_type = tr_xstrndup(content_type.ptr, content_type.len);
    }
    e->version = version;
    s->bytes += value.len;
}

void tr_state_embedded_restore(struct tr_state_embedded *s, const struct tr_reg_record *r)
{
    if (r->deleted || r->key_len == 0) {
        return;
    }
    put_entry(s, tr_slice(r->key, r->key_len), tr_slice(r->data, r->data_len),
              tr_slice(r->meta, r->meta_len), r->modify_index);
}

/* ------------------------------------------------------------ checks */

/* Dapr's rules, as its in-memory and SQL stores apply them: an ETag, whatever the
 * concurrency mode, must name the current version (a missing key has none); without
 * an ETag, first-write refuses to overwrite an existing key and last-write always
 * wins. A delete without an ETag always succeeds (the SQL stores' behaviour). */
static int check_op(const struct tr_state_embedded *s, struct tr_slice full,
                    const struct tr_state_op *op)
{
    if (op->kind == TR_STATE_UPSERT) {
        if (op->value.len > TR_STATE_MAX_VALUE) {
            return -E2BIG;
        }
        if (op->content_type.len > TR_STATE_MAX_CONTENT_TYPE) {
            return -EINVAL;
        }
    }
    const struct tr_state_entry *e = tr_map_get(&s->entries, full);
    if (op->etag.len > 0) {
        uint64_t version = 0;
        int rc = tr_state_etag_parse(op->etag, &version);
        if (rc != 0) {
            return rc;
        }
        return e != NULL && e->version == version ? 0 : -ESTALE;
    }
    if (op->kind == TR_STATE_UPSERT && op->concurrency == TR_STATE_FIRST_WRITE && e != NULL) {
        return -ESTALE;
    }
    return 0;
}

/* Applies a checked operation and appends its record to `records`. */
static void apply_op(struct tr_state_embedded *s, struct tr_slice full,
                     const struct tr_state_op *op, uint64_t version, struct tr_list *records)
{
    if (op->kind == TR_STATE_DELETE) {
        struct tr_state_entry *e = tr_map_del(&s->entries, full);
        if (e == NULL) {
            return;
        }
        s->bytes -= e->value_len;
        entry_free(e);
        struct tr_reg_record *r =
            tr_reg_record_new(TR_REC_STATE, NULL, full.ptr, full.len, NULL, 0);
        r->modify_index = version;
        r->deleted = true;
        tr_list_insert_tail(records, &r->link);
        return;
    }
    put_entry(s, full, op->value, op->content_type, version);
    struct tr_reg_record *r =
        tr_reg_record_new(TR_REC_STATE, NULL, full.ptr, full.len, op->value.ptr, op->value.len);
    if (op->content_type.len > 0) {
        r->meta = tr_xstrndup(op->content_type.ptr, op->content_type.len);
        r->meta_len = op->content_type.len;
    }
    r->modify_index = version;
    tr_list_insert_tail(records, &r->link);
}

/* ------------------------------------------------------------ the ops */

static int emb_transact(void *self, struct tr_slice store, const struct tr_state_op *ops, size_t n,
                        size_t *failed)
{
    struct tr_state_embedded *s = self;
    char buf[FULL_KEY_MAX];
    struct tr_slice full;
    *failed = 0;
    if (n > TR_STATE_MAX_OPS) {
        *failed = TR_STATE_MAX_OPS;
        return -E2BIG;
    }
    if (s->reg->persist_failed) {
        return -EIO;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = full_key(buf, store, ops[i].key, &full);
        rc = rc != 0 ? rc : check_op(s, full, &ops[i]);
        if (rc != 0) {
            *failed = i;
            return rc;
        }
    }
    if (n == 0) {
        return 0;
    }
    uint64_t version = tr_reg_next_index(s->reg);
    struct tr_list records;
    tr_list_init(&records);
    for (size_t i = 0; i < n; i++) {
        int rc = full_key(buf, store, ops[i].key, &full);
        TR_ASSERT(rc == 0); /* checked above */
        apply_op(s, full, &ops[i], version, &records);
    }
    tr_reg_persist_batch(s->reg, &records);
    return 0;
}

static int emb_set(void *self, struct tr_slice store, const struct tr_state_op *op)
{
    size_t failed;
    struct tr_state_op up = *op;
    up.kind = TR_STATE_UPSERT;
    return emb_transact(self, store, &up, 1, &failed);
}

static int emb_del(void *self, struct tr_slice store, const struct tr_state_op *op)
{
    size_t failed;
    struct tr_state_op del = *op;
    del.kind = TR_STATE_DELETE;
    return emb_transact(self, store, &del, 1, &failed);
}

static int emb_get(void *self, struct tr_slice store, struct tr_slice key,
                   struct tr_state_item *out)
{
    struct tr_state_embedded *s = self;
    char buf[FULL_KEY_MAX];
    struct tr_slice full;
    int rc = full_key(buf, store, key, &full);
    if (rc != 0) {
        return rc;
    }
    const struct tr_state_entry *e = tr_map_get(&s->entries, full);
    if (e == NULL) {
        return -ENOENT;
    }
    fill_item(e, out);
    return 0;
}

static int emb_bulk_get(void *self, struct tr_slice store, const struct tr_slice *keys, size_t n,
                        struct tr_state_item *out, bool *found)
{
    if (n > TR_STATE_MAX_BULK) {
        return -E2BIG;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = emb_get(self, store, keys[i], &out[i]);
        if (rc != 0 && rc != -ENOENT) {
            return rc;
        }
        found[i] = rc == 0;
    }
    return 0;
}

const struct tr_state_ops tr_state_embedded_ops = {
    .name = "embedded",
    .get = emb_get,
    .bulk_get = emb_bulk_get,
    .set = emb_set,
    .del = emb_del,
    .transact = emb_transact,
};
