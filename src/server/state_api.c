/* SPDX-License-Identifier: Apache-2.0 */
/* The state API of `trellis server` (/v1/state/{store}/{app}/...), run on the registry
 * thread against the embedded store. It is internal: sidecars forward their apps' Dapr
 * state calls here with the app id in the path, so shapes, status codes and errors
 * ({"errorCode":"ERR_…","message":"…"}) are Dapr's runtime's, ready to be relayed.
 * Values are stored as the exact JSON text the client sent and returned as-is. */
#include "server/state_api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "server/json_span.h"
#include "state/embedded.h"
#include "state/state.h"

/* Values are kept as the text the client sent, so jansson only validates: reading every
 * integer as a real lets numbers beyond 64 bits through, as Go's decoder does. */
#define LOAD_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL)

struct target {
    struct tr_slice store;
    struct tr_slice app;
    struct tr_slice rest; /* key, "bulk", "transaction", or empty */
};

static enum tr_call_result reply_err(struct tr_srv_call *c, int status, const char *code,
                                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum tr_call_result reply_err(struct tr_srv_call *c, int status, const char *code,
                                     const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *o = json_object();
    json_object_set_new(o, "errorCode", json_string(code));
    json_object_set_new(o, "message", json_string(msg));
    return tr_srv_reply_json(c, status, o);
}

static enum tr_call_result reply_empty(struct tr_srv_call *c, int status)
{
    return tr_srv_reply_raw(c, status, TR_SLICE_NULL, TR_SLICE_NULL);
}

/* Splits "store/app[/rest]" and checks the names; false after setting a 400. */
static bool parse_target(struct tr_srv_call *c, struct target *t)
{
    struct tr_slice p = c->param;
    const char *slash = memchr(p.ptr, '/', p.len);
    t->store = slash ? tr_slice(p.ptr, (size_t)(slash - p.ptr)) : p;
    t->app = TR_SLICE_NULL;
    t->rest = TR_SLICE_NULL;
    if (slash != NULL) {
        const char *a = slash + 1;
        size_t left = p.len - (size_t)(a - p.ptr);
        const char *slash2 = memchr(a, '/', left);
        t->app = slash2 ? tr_slice(a, (size_t)(slash2 - a)) : tr_slice(a, left);
        if (slash2 != NULL) {
            t->rest = tr_slice(slash2 + 1, left - t->app.len - 1);
        }
    }
    const char *problem = tr_state_name_problem(t->store);
    if (problem != NULL) {
        reply_err(c, 400, "ERR_STATE_STORE_NOT_FOUND", "state store %.*s is not found: name %s",
                  TR_SLICE_FMT(t->store), problem);
        return false;
    }
    problem = tr_state_name_problem(t->app);
    if (problem != NULL) {
        reply_err(c, 400, "ERR_MALFORMED_REQUEST", "invalid app id \"%.*s\": %s",
                  TR_SLICE_FMT(t->app), problem);
        return false;
    }
    return true;
}

/* "app||key" in the call's arena; false after setting a 400 naming the key. */
static bool namespaced_key(struct tr_srv_call *c, struct tr_slice app, struct tr_slice key,
                           struct tr_slice *out)
{
    const char *problem = tr_state_key_problem(key);
    if (problem != NULL) {
        reply_err(c, 400, "ERR_MALFORMED_REQUEST", "invalid key \"%.*s\": %s",
                  TR_SLICE_FMT(tr_slice(key.ptr, key.len > 64 ? 64 : key.len)), problem);
        return false;
    }
    size_t n = app.len + 2 + key.len;
    char *p = tr_arena_alloc(&c->arena, n);
    memcpy(p, app.ptr, app.len);
    memcpy(p + app.len, TR_STATE_SEP, 2);
    memcpy(p + app.len + 2, key.ptr, key.len);
    *out = tr_slice(p, n);
    return true;
}

static struct tr_slice user_key(struct tr_slice full)
{
    for (size_t i = 0; i + 1 < full.len; i++) {
        if (full.ptr[i] == '|' && full.ptr[i + 1] == '|') {
            return tr_slice(full.ptr + i + 2, full.len - i - 2);
        }
    }
    return full;
}

/* Answers a failed write the way Dapr's runtime does for `code` (ERR_STATE_SAVE,
 * ERR_STATE_DELETE, ERR_STATE_TRANSACTION). */
static enum tr_call_result reply_write_error(struct tr_srv_call *c, const char *code,
                                             struct tr_slice store, int rc, struct tr_slice key)
{
    key = user_key(key);
    switch (rc) {
    case -ESTALE:
        return reply_err(c, 409, code,
                         "failed saving state in state store %.*s: possible etag mismatch. "
                         "error from state store: key \"%.*s\": etag mismatch",
                         TR_SLICE_FMT(store), TR_SLICE_FMT(key));
    case -EINVAL:
        return reply_err(c, 400, code,
                         "failed saving state in state store %.*s: invalid etag value for key "
                         "\"%.*s\"",
                         TR_SLICE_FMT(store), TR_SLICE_FMT(key));
    case -E2BIG:
        return reply_err(c, 413, code,
                         "the request exceeds a limit (value size 4 MiB, %d "
                         "operations)",
                         TR_STATE_MAX_OPS);
    default:
        return reply_err(c, 500, code,
                         "state store %.*s refuses writes: persisting to disk "
                         "failed (see server log)",
                         TR_SLICE_FMT(store));
    }
}

/* ------------------------------------------------------------ get / delete */

static enum tr_call_result state_get(struct tr_reg *reg, struct tr_srv_call *c)
{
    struct target t;
    struct tr_slice key;
    if (!parse_target(c, &t) || !namespaced_key(c, t.app, t.rest, &key)) {
        return TR_CALL_REPLY;
    }
    struct tr_state_item item;
    int rc = tr_state_embedded_ops.get(reg->state, t.store, key, &item);
    if (rc == -ENOENT) {
        return reply_empty(c, 204);
    }
    if (rc != 0) {
        return reply_err(c, 500, "ERR_STATE_GET", "fail to get %.*s from state store %.*s: %s",
                         TR_SLICE_FMT(t.rest), TR_SLICE_FMT(t.store), tr_strerror(rc));
    }
    /* The worker writes the answer after this thread has moved on: copy, not borrow. */
    struct tr_slice type =
        item.content_type.len > 0 ? item.content_type : TR_SLICE_LIT("application/json");
    c->etag = tr_arena_slice_dup(&c->arena, tr_slice_cstr(item.etag));
    return tr_srv_reply_raw(c, 200, tr_arena_slice_dup(&c->arena, type), item.value);
}

/* If-Match: <etag>, quoted or not. */
static struct tr_slice if_match_etag(struct tr_slice v)
{
    v = tr_slice_trim(v);
    if (v.len >= 2 && v.ptr[0] == '"' && v.ptr[v.len - 1] == '"') {
        v = tr_slice(v.ptr + 1, v.len - 2);
    }
    return v;
}

/* ?concurrency=first-write|last-write; false after setting a 400. */
static bool query_concurrency(struct tr_srv_call *c, enum tr_state_concurrency *out)
{
    struct tr_slice v;
    *out = TR_STATE_LAST_WRITE;
    if (!tr_srv_query(c, "concurrency", &v) || v.len == 0 ||
        tr_slice_eq(v, TR_SLICE_LIT("last-write"))) {
        return true;
    }
    if (tr_slice_eq(v, TR_SLICE_LIT("first-write"))) {
        *out = TR_STATE_FIRST_WRITE;
        return true;
    }
    reply_err(c, 400, "ERR_MALFORMED_REQUEST",
              "invalid concurrency \"%.*s\": expected first-write or last-write", TR_SLICE_FMT(v));
    return false;
}

static enum tr_call_result state_delete(struct tr_reg *reg, struct tr_srv_call *c)
{
    struct target t;
    struct tr_state_op op = {.kind = TR_STATE_DELETE};
    if (!parse_target(c, &t) || !namespaced_key(c, t.app, t.rest, &op.key) ||
        !query_concurrency(c, &op.concurrency)) {
        return TR_CALL_REPLY;
    }
    op.etag = if_match_etag(c->if_match);
    int rc = tr_state_embedded_ops.del(reg->state, t.store, &op);
    if (rc != 0) {
        return reply_write_error(c, "ERR_STATE_DELETE", t.store, rc, op.key);
    }
    reply_empty(c, 204);
    return TR_CALL_COMMIT;
}

/* ------------------------------------------------------------ save / transaction */

/* Fills `op` from one Dapr state request object {key, value, etag, metadata, options};
 * `span` is its raw text. False after setting a 4xx. */
static bool parse_request(struct tr_srv_call *c, const struct target *t, json_t *o,
                          struct tr_slice span, struct tr_state_op *op)
{
    if (!json_is_object(o)) {
        reply_err(c, 400, "ERR_MALFORMED_REQUEST", "each state request must be a JSON object");
        return false;
    }
    json_t *key = json_object_get(o, "key");
    if (!json_is_string(key)) {
        reply_err(c, 400, "ERR_MALFORMED_REQUEST", "a state request has no string \"key\"");
        return false;
    }
    struct tr_slice k = tr_slice(json_string_value(key), json_string_length(key));
    if (!namespaced_key(c, t->app, k, &op->key)) {
        return false;
    }
    json_t *etag = json_object_get(o, "etag");
    if (etag != NULL && !json_is_null(etag) && !json_is_string(etag)) {
        reply_err(c, 400, "ERR_MALFORMED_REQUEST", "etag of key \"%.*s\" must be a string",
                  TR_SLICE_FMT(k));
        return false;
    }
    if (json_is_string(etag)) {
        op->etag = tr_arena_slice_dup(&c->arena,
                                      tr_slice(json_string_value(etag), json_string_length(etag)));
    }
    json_t *conc = json_object_get(json_object_get(o, "options"), "concurrency");
    const char *cs = json_is_string(conc) ? json_string_value(conc) : "";
    if (strcmp(cs, "first-write") == 0) {
        op->concurrency = TR_STATE_FIRST_WRITE;
    } else if (conc != NULL && !json_is_null(conc) && strcmp(cs, "last-write") != 0 &&
               strcmp(cs, "") != 0) {
        reply_err(c, 400, "ERR_MALFORMED_REQUEST",
                  "invalid concurrency for key \"%.*s\": "
                  "expected first-write or last-write",
                  TR_SLICE_FMT(k));
        return false;
    }
    if (op->kind == TR_STATE_DELETE) {
        return true;
    }
    json_t *ct = json_object_get(json_object_get(o, "metadata"), "contentType");
    if (json_is_string(ct)) {
        op->content_type =
            tr_arena_slice_dup(&c->arena, tr_slice(json_string_value(ct), json_string_length(ct)));
    }
    json_t *value = json_object_get(o, "value");
    if (value == NULL) {
        op->value = TR_SLICE_LIT("null"); /* what Dapr stores for a missing value */
    } else if (json_is_string(value) && op->content_type.len > 0 &&
               !tr_state_content_type_is_json(op->content_type)) {
        /* Text with a non-JSON content type is stored as the text itself. */
        op->value = tr_arena_slice_dup(
            &c->arena, tr_slice(json_string_value(value), json_string_length(value)));
    } else if (!tr_json_span_member(span, "value", &op->value)) {
        reply_err(c, 400, "ERR_MALFORMED_REQUEST",
                  "cannot locate the value of key \"%.*s\" "
                  "(escaped member names are not supported)",
                  TR_SLICE_FMT(k));
        return false;
    }
    if (op->value.len > TR_STATE_MAX_VALUE) {
        reply_err(c, 413, "ERR_MALFORMED_REQUEST",
                  "value of key \"%.*s\" is %zu bytes, over "
                  "the %u-byte limit (max_value_bytes)",
                  TR_SLICE_FMT(k), op->value.len, TR_STATE_MAX_VALUE);
        return false;
    }
    if (op->content_type.len > TR_STATE_MAX_CONTENT_TYPE) {
        reply_err(c, 400, "ERR_MALFORMED_REQUEST",
                  "contentType of key \"%.*s\" is longer "
                  "than %d bytes",
                  TR_SLICE_FMT(k), TR_STATE_MAX_CONTENT_TYPE);
        return false;
    }
    return true;
}

/* Parses the body as JSON of the given kind (object or array); NULL after a 400. */
static json_t *load_body(struct tr_srv_call *c, bool array)
{
    json_error_t jerr;
    json_t *j = json_loadb(c->body.ptr ? c->body.ptr : "", c->body.len, LOAD_FLAGS, &jerr);
    if (j == NULL) {
        reply_err(c, 400, "ERR_MALFORMED_REQUEST",
                  "request body is not valid JSON: %s "
                  "(line %d, column %d)",
                  jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (array ? !json_is_array(j) : !json_is_object(j)) {
        json_decref(j);
        reply_err(c, 400, "ERR_MALFORMED_REQUEST", "request body must be a JSON %s",
                  array ? "array" : "object");
        return NULL;
    }
    return j;
}

/* Runs the operations and answers 204 once durable, or the error. */
static enum tr_call_result run_ops(struct tr_reg *reg, struct tr_srv_call *c,
                                   const struct target *t, const struct tr_state_op *ops, size_t n,
                                   const char *code)
{
    size_t failed = 0;
    int rc = tr_state_embedded_ops.transact(reg->state, t->store, ops, n, &failed);
    if (rc != 0) {
        struct tr_slice key = failed < n ? ops[failed].key : TR_SLICE_NULL;
        return reply_write_error(c, code, t->store, rc, key);
    }
    reply_empty(c, 204);
    return n > 0 ? TR_CALL_COMMIT : TR_CALL_REPLY;
}

static enum tr_call_result state_save(struct tr_reg *reg, struct tr_srv_call *c,
                                      const struct target *t)
{
    json_t *arr = load_body(c, true);
    if (arr == NULL) {
        return TR_CALL_REPLY;
    }
    size_t n = json_array_size(arr);
    if (n > TR_STATE_MAX_OPS) {
        json_decref(arr);
        return reply_err(c, 400, "ERR_MALFORMED_REQUEST",
                         "%zu state requests in one save, over "
                         "the limit of %d",
                         n, TR_STATE_MAX_OPS);
    }
    struct tr_slice *spans = tr_arena_alloc(&c->arena, (n + 1) * sizeof(*spans));
    struct tr_state_op *ops = tr_arena_alloc(&c->arena, (n + 1) * sizeof(*ops));
    memset(ops, 0, (n + 1) * sizeof(*ops));
    if (tr_json_span_items(c->body, spans, n) != (ssize_t)n) {
        json_decref(arr);
        return reply_err(c, 400, "ERR_MALFORMED_REQUEST", "cannot split the request array");
    }
    for (size_t i = 0; i < n; i++) {
        ops[i].kind = TR_STATE_UPSERT;
        if (!parse_request(c, t, json_array_get(arr, i), spans[i], &ops[i])) {
            json_decref(arr);
            return TR_CALL_REPLY;
        }
    }
    json_decref(arr);
    return run_ops(reg, c, t, ops, n, "ERR_STATE_SAVE");
}

static enum tr_call_result state_transaction(struct tr_reg *reg, struct tr_srv_call *c,
                                             const struct target *t)
{
    json_t *body = load_body(c, false);
    if (body == NULL) {
        return TR_CALL_REPLY;
    }
    json_t *list = json_object_get(body, "operations");
    struct tr_slice list_span;
    if (!json_is_array(list) || !tr_json_span_member(c->body, "operations", &list_span)) {
        json_decref(body);
        return reply_err(c, 400, "ERR_MALFORMED_REQUEST", "\"operations\" must be an array");
    }
    size_t n = json_array_size(list);
    if (n > TR_STATE_MAX_OPS) {
        json_decref(body);
        return reply_err(c, 400, "ERR_STATE_TRANSACTION",
                         "the transaction contains %zu "
                         "operations, which is more than what the state store supports: %d",
                         n, TR_STATE_MAX_OPS);
    }
    struct tr_slice *spans = tr_arena_alloc(&c->arena, (n + 1) * sizeof(*spans));
    struct tr_state_op *ops = tr_arena_alloc(&c->arena, (n + 1) * sizeof(*ops));
    memset(ops, 0, (n + 1) * sizeof(*ops));
    if (tr_json_span_items(list_span, spans, n) != (ssize_t)n) {
        json_decref(body);
        return reply_err(c, 400, "ERR_MALFORMED_REQUEST", "cannot split \"operations\"");
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(list, i);
        json_t *kind = json_object_get(o, "operation");
        const char *ks = json_is_string(kind) ? json_string_value(kind) : "";
        struct tr_slice req_span;
        if (strcmp(ks, "upsert") == 0) {
            ops[i].kind = TR_STATE_UPSERT;
        } else if (strcmp(ks, "delete") == 0) {
            ops[i].kind = TR_STATE_DELETE;
        } else {
            /* `ks` lives in `body`: answer before letting go of it. */
            reply_err(c, 400, "ERR_NOT_SUPPORTED_STATE_OPERATION",
                      "operation type %s not supported", ks[0] ? ks : "(missing)");
            json_decref(body);
            return TR_CALL_REPLY;
        }
        if (!tr_json_span_member(spans[i], "request", &req_span)) {
            req_span = TR_SLICE_LIT("{}");
        }
        if (!parse_request(c, t, json_object_get(o, "request"), req_span, &ops[i])) {
            json_decref(body);
            return TR_CALL_REPLY;
        }
    }
    json_decref(body);
    return run_ops(reg, c, t, ops, n, "ERR_STATE_TRANSACTION");
}

/* ------------------------------------------------------------ bulk get */

static bool append_item(struct tr_buf *out, struct tr_slice key, const struct tr_state_item *item,
                        bool found)
{
    json_t *k = json_stringn(key.ptr, key.len);
    char *text = json_dumps(k, JSON_ENCODE_ANY);
    json_decref(k);
    if (text == NULL) {
        return false;
    }
    tr_buf_appendf(out, "{\"key\":%s", text);
    free(text);
    if (found) {
        if (item->content_type.len == 0 || tr_state_content_type_is_json(item->content_type)) {
            tr_buf_append_slice(out, TR_SLICE_LIT(",\"data\":"));
            tr_buf_append_slice(out, item->value);
        } else {
            json_t *s = json_stringn(item->value.ptr, item->value.len);
            text = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
            json_decref(s);
            if (text != NULL) {
                tr_buf_appendf(out, ",\"data\":%s", text);
                free(text);
            } else {
                tr_buf_appendf(out, ",\"error\":\"value is not UTF-8 text\"");
            }
        }
        tr_buf_appendf(out, ",\"etag\":\"%s\"", item->etag);
    }
    tr_buf_append_slice(out, TR_SLICE_LIT("}"));
    return true;
}

static enum tr_call_result state_bulk(struct tr_reg *reg, struct tr_srv_call *c,
                                      const struct target *t)
{
    json_t *body = load_body(c, false);
    if (body == NULL) {
        return TR_CALL_REPLY;
    }
    json_t *list = json_object_get(body, "keys");
    size_t n = json_array_size(list);
    if (!json_is_array(list) || n > TR_STATE_MAX_BULK) {
        json_decref(body);
        return reply_err(c, 400, "ERR_MALFORMED_REQUEST",
                         "\"keys\" must be an array of at "
                         "most %d strings",
                         TR_STATE_MAX_BULK);
    }
    struct tr_slice *keys = tr_arena_alloc(&c->arena, (n + 1) * sizeof(*keys));
    struct tr_state_item *items = tr_arena_alloc(&c->arena, (n + 1) * sizeof(*items));
    bool *found = tr_arena_alloc(&c->arena, n + 1);
    for (size_t i = 0; i < n; i++) {
        json_t *k = json_array_get(list, i);
        if (!json_is_string(k)) {
            json_decref(body);
            return reply_err(c, 400, "ERR_MALFORMED_REQUEST", "\"keys\" must hold strings");
        }
        struct tr_slice s = tr_slice(json_string_value(k), json_string_length(k));
        if (!namespaced_key(c, t->app, s, &keys[i])) {
            json_decref(body);
            return TR_CALL_REPLY;
        }
    }
    json_decref(body);
    int rc = tr_state_embedded_ops.bulk_get(reg->state, t->store, keys, n, items, found);
    if (rc != 0) {
        return reply_err(c, 500, "ERR_STATE_BULK_GET", "failed getting state in bulk: %s",
                         tr_strerror(rc));
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += found[i] ? items[i].value.len : 0;
    }
    if (total > TR_STATE_MAX_BULK_BYTES) {
        return reply_err(c, 413, "ERR_STATE_BULK_GET",
                         "the values asked for add up to %zu "
                         "bytes, over the %u-byte limit of one bulk answer",
                         total, TR_STATE_MAX_BULK_BYTES);
    }
    tr_buf_reset(&c->out);
    tr_buf_append_slice(&c->out, TR_SLICE_LIT("["));
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            tr_buf_append_slice(&c->out, TR_SLICE_LIT(","));
        }
        if (!append_item(&c->out, user_key(keys[i]), &items[i], found[i])) {
            return reply_err(c, 500, "ERR_STATE_BULK_GET", "cannot encode key %zu", i);
        }
    }
    tr_buf_append_slice(&c->out, TR_SLICE_LIT("]"));
    c->status = 200;
    c->content_type = TR_SLICE_LIT("application/json");
    return TR_CALL_REPLY;
}

/* POST/PUT: save on /{store}/{app}, bulk get and transactions below it. */
static enum tr_call_result state_post(struct tr_reg *reg, struct tr_srv_call *c)
{
    struct target t;
    if (!parse_target(c, &t)) {
        return TR_CALL_REPLY;
    }
    if (t.rest.len == 0) {
        return state_save(reg, c, &t);
    }
    if (tr_slice_eq(t.rest, TR_SLICE_LIT("bulk"))) {
        return state_bulk(reg, c, &t);
    }
    if (tr_slice_eq(t.rest, TR_SLICE_LIT("transaction"))) {
        return state_transaction(reg, c, &t);
    }
    return reply_err(c, 404, "ERR_MALFORMED_REQUEST",
                     "no such state operation \"%.*s\" (use "
                     "/v1/state/{store}/{app}, .../bulk or .../transaction)",
                     TR_SLICE_FMT(t.rest));
}

int tr_state_api_routes(struct tr_router *r)
{
    int rc = 0;
    rc |= tr_srv_route(r, "GET", "/v1/state/*path", state_get);
    rc |= tr_srv_route(r, "DELETE", "/v1/state/*path", state_delete);
    rc |= tr_srv_route(r, "POST", "/v1/state/*path", state_post);
    rc |= tr_srv_route(r, "PUT", "/v1/state/*path", state_post);
    return rc;
}
