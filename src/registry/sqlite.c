/* SPDX-License-Identifier: Apache-2.0 */
/* Registry persistence in SQLite (WAL, synchronous=FULL): a commit returns only once
 * the WAL is fsynced, which is what "acknowledged" means for every write. KV entries
 * and tombstones live in `kv`, catalog objects as JSON in `objects`, the last index
 * in `meta`, so indexes never go backwards across a restart. State-store entries live
 * in `state`, keyed by store name and "appid||key", with their version (ETag). */
#include "registry/persist.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"

struct sq {
    sqlite3 *db;
    sqlite3_stmt *kv_put;
    sqlite3_stmt *obj_put;
    sqlite3_stmt *obj_del;
    sqlite3_stmt *meta_put;
    sqlite3_stmt *state_put;
    sqlite3_stmt *state_del;
};

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB, flags INTEGER,"
    " create_index INTEGER, modify_index INTEGER, lock_index INTEGER, deleted INTEGER);"
    "CREATE TABLE IF NOT EXISTS objects (kind TEXT, id BLOB, data BLOB, create_index INTEGER,"
    " modify_index INTEGER, PRIMARY KEY (kind, id));"
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER);"
    "CREATE TABLE IF NOT EXISTS state (store TEXT, key BLOB, value BLOB, content_type TEXT,"
    " version INTEGER, PRIMARY KEY (store, key));";

static int prepare(struct sq *s, const char *sql, sqlite3_stmt **st, char *err, size_t errlen)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(s->db));
        return -EIO;
    }
    return 0;
}

static void sq_close(void *self)
{
    struct sq *s = self;
    if (s == NULL) {
        return;
    }
    sqlite3_finalize(s->kv_put);
    sqlite3_finalize(s->obj_put);
    sqlite3_finalize(s->obj_del);
    sqlite3_finalize(s->meta_put);
    sqlite3_finalize(s->state_put);
    sqlite3_finalize(s->state_del);
    sqlite3_close(s->db);
    tr_free_null(&s);
}

static int sq_open(void **self, const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create data dir %s: %s", dir, strerror(errno));
        return -errno;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/registry.db", dir);
    struct sq *s = tr_xcalloc(1, sizeof(*s));
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path, sqlite3_errmsg(s->db));
        sq_close(s);
        return -EIO;
    }
    char *msg = NULL;
    if (sqlite3_exec(s->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "cannot initialise %s: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        sq_close(s);
        return -EIO;
    }
    int rc = prepare(s,
                     "INSERT OR REPLACE INTO kv (key, value, flags, create_index, modify_index,"
                     " lock_index, deleted) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                     &s->kv_put, err, errlen);
    rc = rc ? rc
            : prepare(s,
                      "INSERT OR REPLACE INTO objects (kind, id, data, create_index,"
                      " modify_index) VALUES (?1, ?2, ?3, ?4, ?5)",
                      &s->obj_put, err, errlen);
    rc = rc ? rc
            : prepare(s, "DELETE FROM objects WHERE kind = ?1 AND id = ?2", &s->obj_del, err,
                      errlen);
    rc = rc ? rc
            : prepare(s, "INSERT OR REPLACE INTO meta (name, value) VALUES ('index', ?1)",
                      &s->meta_put, err, errlen);
    rc = rc ? rc
            : prepare(s,
                      "INSERT OR REPLACE INTO state (store, key, value, content_type, version)"
                      " VALUES (?1, ?2, ?3, ?4, ?5)",
                      &s->state_put, err, errlen);
    rc = rc ? rc
            : prepare(s, "DELETE FROM state WHERE store = ?1 AND key = ?2", &s->state_del, err,
                      errlen);
    if (rc != 0) {
        sq_close(s);
        return rc;
    }
    *self = s;
    return 0;
}

/* State rows come back as records keyed "store/appid||key" (store names never hold
 * a '/'). */
static int load_state(struct sq *s, struct tr_persist_loader *l, uint64_t *max_index)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT store, key, value, content_type, version FROM state", -1,
                           &st, NULL) != SQLITE_OK) {
        return -EIO;
    }
    char *key = NULL;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct tr_reg_record r = {.kind = TR_REC_STATE};
        const char *store = (const char *)sqlite3_column_text(st, 0);
        size_t store_len = (size_t)sqlite3_column_bytes(st, 0);
        const char *k = sqlite3_column_blob(st, 1);
        size_t k_len = (size_t)sqlite3_column_bytes(st, 1);
        key = tr_xrealloc(key, store_len + k_len + 1);
        memcpy(key, store ? store : "", store_len);
        key[store_len] = '/';
        memcpy(key + store_len + 1, k ? k : "", k_len);
        r.key = key;
        r.key_len = store_len + 1 + k_len;
        r.data = (char *)sqlite3_column_blob(st, 2);
        r.data_len = (size_t)sqlite3_column_bytes(st, 2);
        r.meta = (char *)sqlite3_column_text(st, 3);
        r.meta_len = (size_t)sqlite3_column_bytes(st, 3);
        r.modify_index = (uint64_t)sqlite3_column_int64(st, 4);
        if (r.modify_index > *max_index) {
            *max_index = r.modify_index;
        }
        l->on_record(l->ctx, &r);
    }
    tr_free_null(&key);
    sqlite3_finalize(st);
    return 0;
}

static int sq_load(void *self, struct tr_persist_loader *l, uint64_t *max_index)
{
    struct sq *s = self;
    sqlite3_stmt *st = NULL;
    *max_index = 0;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT key, value, flags, create_index, modify_index, lock_index,"
                           " deleted FROM kv",
                           -1, &st, NULL) != SQLITE_OK) {
        return -EIO;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct tr_reg_record r = {.kind = TR_REC_KV};
        r.key = (char *)sqlite3_column_blob(st, 0);
        r.key_len = (size_t)sqlite3_column_bytes(st, 0);
        r.data = (char *)sqlite3_column_blob(st, 1);
        r.data_len = (size_t)sqlite3_column_bytes(st, 1);
        r.flags = (uint64_t)sqlite3_column_int64(st, 2);
        r.create_index = (uint64_t)sqlite3_column_int64(st, 3);
        r.modify_index = (uint64_t)sqlite3_column_int64(st, 4);
        r.lock_index = (uint64_t)sqlite3_column_int64(st, 5);
        r.deleted = sqlite3_column_int(st, 6) != 0;
        if (r.modify_index > *max_index) {
            *max_index = r.modify_index;
        }
        l->on_record(l->ctx, &r);
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(s->db, "SELECT kind, id, data, create_index, modify_index FROM objects",
                           -1, &st, NULL) != SQLITE_OK) {
        return -EIO;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct tr_reg_record r = {.kind = TR_REC_OBJ};
        snprintf(r.obj_kind, sizeof(r.obj_kind), "%s", (const char *)sqlite3_column_text(st, 0));
        r.key = (char *)sqlite3_column_blob(st, 1);
        r.key_len = (size_t)sqlite3_column_bytes(st, 1);
        r.data = (char *)sqlite3_column_blob(st, 2);
        r.data_len = (size_t)sqlite3_column_bytes(st, 2);
        r.create_index = (uint64_t)sqlite3_column_int64(st, 3);
        r.modify_index = (uint64_t)sqlite3_column_int64(st, 4);
        if (r.modify_index > *max_index) {
            *max_index = r.modify_index;
        }
        l->on_record(l->ctx, &r);
    }
    sqlite3_finalize(st);
    int rc = load_state(s, l, max_index);
    if (rc != 0) {
        return rc;
    }
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE name = 'index'", -1, &st, NULL) ==
        SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            uint64_t v = (uint64_t)sqlite3_column_int64(st, 0);
            *max_index = v > *max_index ? v : *max_index;
        }
        sqlite3_finalize(st);
    }
    return 0;
}

static int step_reset(struct sq *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        TR_LOG_ERROR("registry", NULL, "sqlite write failed: %s", sqlite3_errmsg(s->db));
        return -EIO;
    }
    return 0;
}

static int write_state(struct sq *s, const struct tr_reg_record *r)
{
    const char *slash = memchr(r->key, '/', r->key_len);
    if (slash == NULL) {
        TR_LOG_ERROR("registry", NULL, "state record without a store name");
        return -EINVAL;
    }
    int store_len = (int)(slash - r->key);
    int key_len = (int)(r->key_len - (size_t)store_len - 1);
    sqlite3_stmt *st = r->deleted ? s->state_del : s->state_put;
    sqlite3_bind_text(st, 1, r->key, store_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, slash + 1, key_len, SQLITE_STATIC);
    if (!r->deleted) {
        sqlite3_bind_blob(st, 3, r->data ? r->data : "", (int)r->data_len, SQLITE_STATIC);
        if (r->meta != NULL) {
            sqlite3_bind_text(st, 4, r->meta, (int)r->meta_len, SQLITE_STATIC);
        }
        sqlite3_bind_int64(st, 5, (sqlite3_int64)r->modify_index);
    }
    return step_reset(s, st);
}

static int write_record(struct sq *s, const struct tr_reg_record *r)
{
    if (r->kind == TR_REC_STATE) {
        return write_state(s, r);
    }
    if (r->kind == TR_REC_KV) {
        sqlite3_stmt *st = s->kv_put;
        sqlite3_bind_blob(st, 1, r->key, (int)r->key_len, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, r->data ? r->data : "", (int)r->data_len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)r->flags);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)r->create_index);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)r->modify_index);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)r->lock_index);
        sqlite3_bind_int(st, 7, r->deleted ? 1 : 0);
        return step_reset(s, st);
    }
    if (r->deleted) {
        sqlite3_stmt *st = s->obj_del;
        sqlite3_bind_text(st, 1, r->obj_kind, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, r->key, (int)r->key_len, SQLITE_STATIC);
        return step_reset(s, st);
    }
    sqlite3_stmt *st = s->obj_put;
    sqlite3_bind_text(st, 1, r->obj_kind, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, r->key, (int)r->key_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, r->data ? r->data : "", (int)r->data_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)r->create_index);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)r->modify_index);
    return step_reset(s, st);
}

static int sq_commit(void *self, struct tr_list *records, uint64_t index)
{
    struct sq *s = self;
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        TR_LOG_ERROR("registry", NULL, "sqlite begin failed: %s", sqlite3_errmsg(s->db));
        return -EIO;
    }
    int rc = 0;
    struct tr_list *it;
    for (it = records->next; it != records && rc == 0; it = it->next) {
        rc = write_record(s, tr_container_of(it, struct tr_reg_record, link));
    }
    if (rc == 0) {
        sqlite3_bind_int64(s->meta_put, 1, (sqlite3_int64)index);
        rc = step_reset(s, s->meta_put);
    }
    if (rc != 0) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        TR_LOG_ERROR("registry", NULL, "sqlite commit failed: %s", sqlite3_errmsg(s->db));
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return -EIO;
    }
    return 0;
}

const struct tr_persist_ops tr_persist_sqlite = {
    .name = "sqlite",
    .open = sq_open,
    .load = sq_load,
    .commit = sq_commit,
    .close = sq_close,
};

struct tr_reg_record *tr_reg_record_new(enum tr_rec_kind kind, const char *obj_kind,
                                        const char *key, size_t key_len, const char *data,
                                        size_t data_len)
{
    struct tr_reg_record *r = tr_xcalloc(1, sizeof(*r));
    tr_list_init(&r->link);
    r->kind = kind;
    if (obj_kind != NULL) {
        snprintf(r->obj_kind, sizeof(r->obj_kind), "%s", obj_kind);
    }
    r->key = tr_xstrndup(key, key_len);
    r->key_len = key_len;
    if (data != NULL && data_len > 0) {
        r->data = tr_xmalloc(data_len);
        memcpy(r->data, data, data_len);
        r->data_len = data_len;
    }
    return r;
}

void tr_reg_record_free(struct tr_reg_record *r)
{
    if (r == NULL) {
        return;
    }
    tr_free_null(&r->key);
    tr_free_null(&r->data);
    tr_free_null(&r->meta);
    tr_free_null(&r);
}
