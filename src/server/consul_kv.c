/* SPDX-License-Identifier: Apache-2.0 */
/* Consul's KV API (/v1/kv) and status endpoints, run on the registry thread. Shapes
 * and status codes follow Consul: values base64 in JSON, 404 for a missing key (with
 * X-Consul-Index so clients can block on a key that does not exist yet), PUT and
 * DELETE answer true/false, CAS failure is false rather than an HTTP error. */
#include "server/consul.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "registry/kv.h"

static json_t *entry_json(const struct tr_kv_entry *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "LockIndex", json_integer((json_int_t)e->lock_index));
    json_object_set_new(o, "Key", json_stringn(e->key, e->key_len));
    json_object_set_new(o, "Flags", json_integer((json_int_t)e->flags));
    if (e->value_len > 0) {
        json_object_set_new(o, "Value", tr_consul_base64(e->value, e->value_len));
    } else {
        json_object_set_new(o, "Value", json_null());
    }
    json_object_set_new(o, "CreateIndex", json_integer((json_int_t)e->create_index));
    json_object_set_new(o, "ModifyIndex", json_integer((json_int_t)e->modify_index));
    return o;
}

/* Keys under `prefix`, collapsed at the first `sep` after the prefix (Consul's
 * ?keys&separator=/ lists "dir/" once). */
static json_t *list_keys(const struct tr_kv *kv, struct tr_slice prefix, struct tr_slice sep)
{
    json_t *arr = json_array();
    struct tr_slice last = TR_SLICE_NULL;
    for (const struct tr_kv_entry *e = tr_kv_first_under(kv, prefix); e != NULL;
         e = tr_kv_next_under(e, prefix)) {
        if (e->deleted) {
            continue;
        }
        struct tr_slice k = tr_slice(e->key, e->key_len);
        if (sep.len > 0 && k.len > prefix.len) {
            const char *rest = k.ptr + prefix.len;
            size_t rest_len = k.len - prefix.len;
            for (size_t j = 0; j + sep.len <= rest_len; j++) {
                if (memcmp(rest + j, sep.ptr, sep.len) == 0) {
                    k.len = prefix.len + j + sep.len;
                    break;
                }
            }
        }
        if (last.ptr != NULL && tr_slice_eq(last, k)) {
            continue;
        }
        json_array_append_new(arr, json_stringn(k.ptr, k.len));
        last = k;
    }
    return arr;
}

static enum tr_call_result kv_get(struct tr_reg *reg, struct tr_srv_call *c)
{
    struct tr_slice key = c->param;
    bool keys = tr_srv_query_flag(c, "keys");
    bool recurse = keys || tr_srv_query_flag(c, "recurse");
    bool raw = tr_srv_query_flag(c, "raw");
    if (key.len > 0) {
        const char *problem = tr_kv_key_problem(key);
        if (problem != NULL) {
            return tr_srv_reply_error(c, TR_E_BAD_PARAM, "invalid key: %s", problem);
        }
    } else if (!recurse) {
        return tr_srv_reply_error(c, TR_E_BAD_PARAM, "missing key name (use ?recurse to list)");
    }
    char *topic = tr_arena_alloc(&c->arena, key.len + 8);
    snprintf(topic, key.len + 8, "%s%.*s", recurse ? "kvp:" : "kv:", TR_SLICE_FMT(key));
    uint64_t index = tr_kv_index(&reg->kv, key, recurse);
    if (index == 0) {
        index = reg->index;
    }
    enum tr_call_result r = tr_srv_block(reg, c, topic, index);
    if (r != TR_CALL_REPLY) {
        return r;
    }
    if (!recurse) {
        const struct tr_kv_entry *e = tr_kv_get(&reg->kv, key);
        if (e == NULL) {
            return tr_srv_reply_raw(c, 404, TR_SLICE_NULL, TR_SLICE_NULL);
        }
        if (raw) {
            return tr_srv_reply_raw(c, 200, TR_SLICE_LIT("text/plain; charset=utf-8"),
                                    tr_slice(e->value, e->value_len));
        }
        json_t *arr = json_array();
        json_array_append_new(arr, entry_json(e));
        return tr_srv_reply_json(c, 200, arr);
    }
    json_t *arr;
    if (keys) {
        struct tr_slice sep = TR_SLICE_NULL;
        tr_srv_query(c, "separator", &sep);
        arr = list_keys(&reg->kv, key, sep);
    } else {
        arr = json_array();
        for (const struct tr_kv_entry *e = tr_kv_first_under(&reg->kv, key); e != NULL;
             e = tr_kv_next_under(e, key)) {
            if (!e->deleted) {
                json_array_append_new(arr, entry_json(e));
            }
        }
    }
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        return tr_srv_reply_raw(c, 404, TR_SLICE_NULL, TR_SLICE_NULL);
    }
    return tr_srv_reply_json(c, 200, arr);
}

static void persist_entry(struct tr_reg *reg, struct tr_slice key)
{
    const struct tr_kv_entry *e = tr_kv_get_any(&reg->kv, key);
    struct tr_reg_record *r =
        tr_reg_record_new(TR_REC_KV, NULL, e->key, e->key_len, e->value, e->value_len);
    r->flags = e->flags;
    r->create_index = e->create_index;
    r->modify_index = e->modify_index;
    r->lock_index = e->lock_index;
    r->deleted = e->deleted;
    tr_reg_persist(reg, r);
}

static enum tr_call_result answer_bool(struct tr_srv_call *c, bool ok)
{
    tr_srv_reply_raw(c, 200, TR_SLICE_LIT("application/json"),
                     ok ? TR_SLICE_LIT("true") : TR_SLICE_LIT("false"));
    return TR_CALL_REPLY;
}

static enum tr_call_result refuse_writes(struct tr_reg *reg, struct tr_srv_call *c)
{
    (void)reg;
    return tr_srv_reply_error(c, TR_E_UNAVAILABLE,
                              "writes are refused: persisting to disk failed (see server log)");
}

static enum tr_call_result kv_put(struct tr_reg *reg, struct tr_srv_call *c)
{
    struct tr_slice key = c->param;
    const char *problem = tr_kv_key_problem(key);
    if (problem != NULL) {
        return tr_srv_reply_error(c, TR_E_BAD_PARAM, "invalid key: %s", problem);
    }
    if (c->body.len > TR_KV_MAX_VALUE) {
        return tr_srv_reply_error(c, TR_E_BODY_TOO_LARGE,
                                  "value of %zu bytes exceeds the 512 KiB limit", c->body.len);
    }
    struct tr_slice v;
    if (tr_srv_query(c, "acquire", &v) || tr_srv_query(c, "release", &v)) {
        return tr_srv_reply_error(c, TR_E_NOT_IMPLEMENTED,
                                  "sessions (acquire/release) are not supported");
    }
    uint64_t flags = 0;
    uint64_t cas = 0;
    if (tr_srv_query_u64(c, "flags", &flags) < 0) {
        return TR_CALL_REPLY;
    }
    if (flags > INT64_MAX) {
        /* JSON numbers above 2^63-1 do not survive most clients' decoders (nor
         * jansson's), so refuse them rather than hand back a different number. */
        return tr_srv_reply_error(c, TR_E_BAD_PARAM,
                                  "flags must be at most 9223372036854775807 (2^63-1)");
    }
    int has_cas = tr_srv_query_u64(c, "cas", &cas);
    if (has_cas < 0) {
        return TR_CALL_REPLY;
    }
    if (reg->persist_failed) {
        return refuse_writes(reg, c);
    }
    uint64_t index = reg->index + 1;
    if (!tr_kv_put(&reg->kv, key, c->body, flags, has_cas ? &cas : NULL, index)) {
        return answer_bool(c, false);
    }
    tr_reg_next_index(reg);
    persist_entry(reg, key);
    tr_reg_kv_changed(reg, key);
    answer_bool(c, true);
    return TR_CALL_COMMIT;
}

static enum tr_call_result kv_delete(struct tr_reg *reg, struct tr_srv_call *c)
{
    struct tr_slice key = c->param;
    bool recurse = tr_srv_query_flag(c, "recurse");
    if (key.len > 0 || !recurse) {
        const char *problem = tr_kv_key_problem(key);
        if (problem != NULL) {
            return tr_srv_reply_error(c, TR_E_BAD_PARAM, "invalid key: %s", problem);
        }
    }
    uint64_t cas = 0;
    int has_cas = tr_srv_query_u64(c, "cas", &cas);
    if (has_cas < 0) {
        return TR_CALL_REPLY;
    }
    if (has_cas && cas == 0) {
        return tr_srv_reply_error(c, TR_E_BAD_PARAM, "cas for a delete must be greater than 0");
    }
    if (reg->persist_failed) {
        return refuse_writes(reg, c);
    }
    uint64_t index = reg->index + 1;
    size_t changed = 0;
    bool ok = tr_kv_delete(&reg->kv, key, recurse, has_cas ? &cas : NULL, index, &changed);
    if (!ok || changed == 0) {
        return answer_bool(c, ok);
    }
    tr_reg_next_index(reg);
    if (recurse) {
        for (const struct tr_kv_entry *e = tr_kv_first_under(&reg->kv, key); e != NULL;
             e = tr_kv_next_under(e, key)) {
            if (e->deleted && e->modify_index == index) {
                persist_entry(reg, tr_slice(e->key, e->key_len));
                tr_reg_kv_changed(reg, tr_slice(e->key, e->key_len));
            }
        }
    } else {
        persist_entry(reg, key);
        tr_reg_kv_changed(reg, key);
    }
    answer_bool(c, true);
    return TR_CALL_COMMIT;
}

static enum tr_call_result status_leader(struct tr_reg *reg, struct tr_srv_call *c)
{
    char buf[96];
    snprintf(buf, sizeof(buf), "%s:8300", reg->address);
    return tr_srv_reply_json(c, 200, json_string(buf));
}

static enum tr_call_result status_peers(struct tr_reg *reg, struct tr_srv_call *c)
{
    char buf[96];
    snprintf(buf, sizeof(buf), "%s:8300", reg->address);
    json_t *arr = json_array();
    json_array_append_new(arr, json_string(buf));
    return tr_srv_reply_json(c, 200, arr);
}

int tr_consul_kv_routes(struct tr_router *r)
{
    int rc = 0;
    rc |= tr_srv_route(r, "GET", "/v1/kv/*key", kv_get);
    rc |= tr_srv_route(r, "PUT", "/v1/kv/*key", kv_put);
    rc |= tr_srv_route(r, "DELETE", "/v1/kv/*key", kv_delete);
    rc |= tr_srv_route(r, "GET", "/v1/status/leader", status_leader);
    rc |= tr_srv_route(r, "GET", "/v1/status/peers", status_peers);
    return rc;
}
