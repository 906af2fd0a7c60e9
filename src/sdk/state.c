/* SPDX-License-Identifier: Apache-2.0 */
/* The state API through the sidecar (Dapr's /v1.0/state/{store}/...): get with ETag,
 * save with ETag / first-write options, delete with If-Match, bulk get, transactions,
 * and trellis_state_update(), the optimistic read-modify-write loop services need to
 * keep replicas from overwriting each other. Status mapping follows the Dapr runtime:
 * get 200 / 204 (missing), writes 204, 409 on an ETag conflict. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sdk/client.h"
#include "sdk/sdk.h"
#include "sdk/trace.h"

#define UPDATE_ATTEMPTS 32

static void store_target(struct tr_buf *t, const char *store, const char *key, const char *suffix)
{
    tr_buf_append_slice(t, TR_SLICE_LIT("/v1.0/state/"));
    tr_sdk_pct_encode(t, store, false);
    if (key != NULL) {
        tr_buf_append(t, "/", 1);
        tr_sdk_pct_encode(t, key, false);
    }
    if (suffix != NULL) {
        tr_buf_append(t, suffix, strlen(suffix));
    }
    tr_buf_append(t, "", 1);
}

static bool bad_names(const char *store, const char *key)
{
    return store == NULL || store[0] == '\0' || key == NULL || key[0] == '\0';
}

/* ETags may come quoted ("17") from some stores; hand them out bare. */
static char *etag_dup(const char *etag)
{
    if (etag == NULL) {
        return NULL;
    }
    size_t len = strlen(etag);
    if (len >= 2 && etag[0] == '"' && etag[len - 1] == '"') {
        return tr_xstrndup(etag + 1, len - 2);
    }
    return tr_xstrdup(etag);
}

/* Sends a JSON body built by the caller (taken) and maps the status of a write. */
static int state_write(struct trellis_sidecar *sc, const char *target, json_t *body,
                       const char *what)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        return tr_sdk_fail(-EINVAL, "%s: the value cannot be serialised", what);
    }
    struct tr_sdk_call_spec spec = {
        .method = "POST",
        .target = target,
        .content_type = "application/json",
        .body = text,
        .body_len = strlen(text),
    };
    struct trellis_response *resp = NULL;
    int rc = tr_sdk_call(sc, &spec, &resp);
    free(text);
    if (rc == 0) {
        int status = trellis_response_status(resp);
        if (status == 409) {
            tr_sdk_unexpected(resp, what);
            rc = TRELLIS_ECONFLICT;
        } else if (status < 200 || status > 299) {
            rc = tr_sdk_unexpected(resp, what);
        }
    }
    trellis_response_free(resp);
    return rc;
}

int trellis_state_get(struct trellis_sidecar *sc, const char *store, const char *key,
                      struct trellis_json **value, char **etag)
{
    tr_sdk_clear_error();
    *value = NULL;
    if (etag != NULL) {
        *etag = NULL;
    }
    if (bad_names(store, key)) {
        return tr_sdk_fail(-EINVAL, "trellis_state_get: store and key are required");
    }
    struct tr_buf target;
    tr_buf_init(&target);
    store_target(&target, store, key, NULL);
    struct tr_sdk_call_spec spec = {.method = "GET", .target = tr_buf_data(&target)};
    struct trellis_response *resp = NULL;
    int rc = tr_sdk_call(sc, &spec, &resp);
    tr_buf_dispose(&target);
    if (rc != 0) {
        return rc;
    }
    int status = trellis_response_status(resp);
    char what[200];
    snprintf(what, sizeof(what), "get %s/%s", store, key);
    if (status == 204 || status == 404) {
        rc = TRELLIS_ENOTFOUND;
    } else if (status != 200) {
        rc = tr_sdk_unexpected(resp, what);
    } else {
        size_t len;
        const char *body = trellis_response_body(resp, &len);
        json_error_t error;
        json_t *v = json_loadb(body, len, JSON_DECODE_ANY, &error);
        if (v == NULL) {
            v = json_stringn(body, len); /* a non-JSON value (metadata.contentType) */
        }
        if (v == NULL) {
            rc =
                tr_sdk_fail(TRELLIS_EBADJSON, "%s: the value is neither JSON nor UTF-8 text", what);
        } else {
            *value = (struct trellis_json *)v;
            if (etag != NULL) {
                *etag = etag_dup(trellis_response_header(resp, "ETag"));
            }
        }
    }
    trellis_response_free(resp);
    return rc;
}

static json_t *item_json(const char *key, const struct trellis_json *value, const char *etag,
                         bool first_write, bool strong)
{
    json_t *item = json_pack("{s:s, s:O}", "key", key, "value", (json_t *)value);
    if (item == NULL) {
        return NULL;
    }
    if (etag != NULL) {
        json_object_set_new(item, "etag", json_string(etag));
    }
    if (first_write || strong) {
        json_t *options = json_object();
        if (first_write) {
            json_object_set_new(options, "concurrency", json_string("first-write"));
        }
        if (strong) {
            json_object_set_new(options, "consistency", json_string("strong"));
        }
        json_object_set_new(item, "options", options);
    }
    return item;
}

int trellis_state_save(struct trellis_sidecar *sc, const char *store, const char *key,
                       const struct trellis_json *value, const struct trellis_state_opts *opts)
{
    tr_sdk_clear_error();
    if (bad_names(store, key) || value == NULL) {
        return tr_sdk_fail(-EINVAL, "trellis_state_save: store, key and value are required");
    }
    json_t *item = item_json(key, value, opts != NULL ? opts->etag : NULL,
                             opts != NULL && opts->first_write, opts != NULL && opts->strong);
    if (item == NULL) {
        return tr_sdk_fail(-EINVAL, "trellis_state_save: key or ETag is not UTF-8");
    }
    json_t *body = json_array();
    json_array_append_new(body, item);
    struct tr_buf target;
    tr_buf_init(&target);
    store_target(&target, store, NULL, NULL);
    char what[200];
    snprintf(what, sizeof(what), "save %s/%s", store, key);
    int rc = state_write(sc, tr_buf_data(&target), body, what);
    tr_buf_dispose(&target);
    return rc;
}

int trellis_state_delete(struct trellis_sidecar *sc, const char *store, const char *key,
                         const char *etag)
{
    tr_sdk_clear_error();
    if (bad_names(store, key)) {
        return tr_sdk_fail(-EINVAL, "trellis_state_delete: store and key are required");
    }
    struct tr_buf target;
    tr_buf_init(&target);
    store_target(&target, store, key, NULL);
    const char *headers[] = {"If-Match", etag, NULL};
    struct tr_sdk_call_spec spec = {
        .method = "DELETE",
        .target = tr_buf_data(&target),
        .headers = etag != NULL ? headers : NULL,
    };
    struct trellis_response *resp = NULL;
    int rc = tr_sdk_call(sc, &spec, &resp);
    tr_buf_dispose(&target);
    if (rc == 0) {
        int status = trellis_response_status(resp);
        char what[200];
        snprintf(what, sizeof(what), "delete %s/%s", store, key);
        if (status == 409) {
            tr_sdk_unexpected(resp, what);
            rc = TRELLIS_ECONFLICT;
        } else if (status < 200 || status > 299) {
            rc = tr_sdk_unexpected(resp, what);
        }
    }
    trellis_response_free(resp);
    return rc;
}

int trellis_state_transaction(struct trellis_sidecar *sc, const char *store,
                              const struct trellis_state_op *ops, size_t nops)
{
    tr_sdk_clear_error();
    if (store == NULL || store[0] == '\0' || (ops == NULL && nops > 0)) {
        return tr_sdk_fail(-EINVAL, "trellis_state_transaction: store and operations required");
    }
    json_t *list = json_array();
    for (size_t i = 0; i < nops; i++) {
        const struct trellis_state_op *op = &ops[i];
        bool upsert = op->kind == TRELLIS_STATE_UPSERT;
        json_t *request = NULL;
        if (op->key != NULL && op->key[0] != '\0' && (!upsert || op->value != NULL)) {
            request = upsert ? item_json(op->key, op->value, op->etag, op->first_write, false)
                             : json_pack("{s:s}", "key", op->key);
        }
        if (request == NULL) {
            json_decref(list);
            return tr_sdk_fail(-EINVAL, "trellis_state_transaction: operation %zu needs a key%s", i,
                               upsert ? " and a value" : "");
        }
        if (!upsert && op->etag != NULL) {
            json_object_set_new(request, "etag", json_string(op->etag));
        }
        json_array_append_new(list, json_pack("{s:s, s:o}", "operation",
                                              upsert ? "upsert" : "delete", "request", request));
    }
    struct tr_buf target;
    tr_buf_init(&target);
    store_target(&target, store, NULL, "/transaction");
    char what[200];
    snprintf(what, sizeof(what), "transaction on %s (%zu operations)", store, nops);
    int rc = state_write(sc, tr_buf_data(&target), json_pack("{s:o}", "operations", list), what);
    tr_buf_dispose(&target);
    return rc;
}

void trellis_state_items_free(struct trellis_state_item *items, size_t n)
{
    if (items == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        tr_free_null(&items[i].key);
        trellis_json_free(items[i].value);
        tr_free_null(&items[i].etag);
    }
    tr_free_null(&items);
}

/* Fills items[] (in the order of keys) from a bulk answer [{key, data, etag, error}]. */
static int fill_bulk(json_t *answer, const char *const *keys, size_t nkeys,
                     struct trellis_state_item *items, const char *what)
{
    if (!json_is_array(answer)) {
        return tr_sdk_fail(TRELLIS_EBADJSON, "%s: the answer is not a JSON array", what);
    }
    bool *used = tr_xcalloc(json_array_size(answer) + 1, sizeof(bool));
    int rc = 0;
    for (size_t i = 0; i < nkeys && rc == 0; i++) {
        items[i].key = tr_xstrdup(keys[i]);
        for (size_t k = 0; k < json_array_size(answer); k++) {
            json_t *e = json_array_get(answer, k);
            const char *key = json_string_value(json_object_get(e, "key"));
            if (used[k] || key == NULL || strcmp(key, keys[i]) != 0) {
                continue;
            }
            used[k] = true;
            const char *error = json_string_value(json_object_get(e, "error"));
            if (error != NULL && error[0] != '\0') {
                rc = tr_sdk_fail(TRELLIS_EHTTP, "%s: key \"%s\": %s", what, keys[i], error);
                break;
            }
            json_t *data = json_object_get(e, "data");
            if (data != NULL) {
                items[i].value = (struct trellis_json *)json_incref(data);
                items[i].etag = etag_dup(json_string_value(json_object_get(e, "etag")));
            }
            break;
        }
    }
    tr_free_null(&used);
    return rc;
}

int trellis_state_get_bulk(struct trellis_sidecar *sc, const char *store, const char *const *keys,
                           size_t nkeys, struct trellis_state_item **items)
{
    tr_sdk_clear_error();
    *items = NULL;
    if (store == NULL || store[0] == '\0' || (keys == NULL && nkeys > 0)) {
        return tr_sdk_fail(-EINVAL, "trellis_state_get_bulk: store and keys are required");
    }
    json_t *list = json_array();
    for (size_t i = 0; i < nkeys; i++) {
        json_t *k = keys[i] != NULL ? json_string(keys[i]) : NULL;
        if (k == NULL) {
            json_decref(list);
            return tr_sdk_fail(-EINVAL, "trellis_state_get_bulk: key %zu is NULL or not UTF-8", i);
        }
        json_array_append_new(list, k);
    }
    json_t *req_body = json_pack("{s:o}", "keys", list);
    char *text = json_dumps(req_body, JSON_COMPACT);
    json_decref(req_body);
    struct tr_buf target;
    tr_buf_init(&target);
    store_target(&target, store, NULL, "/bulk");
    struct tr_sdk_call_spec spec = {
        .method = "POST",
        .target = tr_buf_data(&target),
        .content_type = "application/json",
        .body = text,
        .body_len = text != NULL ? strlen(text) : 0,
    };
    struct trellis_response *resp = NULL;
    int rc = text != NULL ? tr_sdk_call(sc, &spec, &resp) : -ENOMEM;
    free(text);
    tr_buf_dispose(&target);
    char what[200];
    snprintf(what, sizeof(what), "bulk get on %s (%zu keys)", store, nkeys);
    if (rc == 0 && trellis_response_status(resp) != 200) {
        rc = tr_sdk_unexpected(resp, what);
    }
    if (rc == 0) {
        struct trellis_state_item *out = tr_xcalloc(nkeys + 1, sizeof(*out));
        rc = fill_bulk((json_t *)trellis_response_json(resp), keys, nkeys, out, what);
        if (rc == 0) {
            *items = out;
        } else {
            trellis_state_items_free(out, nkeys);
        }
    }
    trellis_response_free(resp);
    return rc;
}

static void pause_before_retry(int attempt)
{
    /* Full jitter over 1 ms x 2^attempt, capped at 50 ms: replicas that collided once
     * should not collide again in lock step. */
    uint64_t cap_us = 1000ull << (attempt < 6 ? attempt : 6);
    if (cap_us > 50000) {
        cap_us = 50000;
    }
    uint64_t us = tr_sdk_random_u64() % cap_us;
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

int trellis_state_update(struct trellis_sidecar *sc, const char *store, const char *key,
                         trellis_state_update_cb *cb, void *data)
{
    if (bad_names(store, key) || cb == NULL) {
        tr_sdk_clear_error();
        return tr_sdk_fail(-EINVAL, "trellis_state_update: store, key and callback required");
    }
    for (int attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
        struct trellis_json *value = NULL;
        char *etag = NULL;
        int rc = trellis_state_get(sc, store, key, &value, &etag);
        if (rc != 0 && rc != TRELLIS_ENOTFOUND) {
            return rc;
        }
        bool existed = rc == 0;
        int decision = cb(&value, data);
        if (decision > TRELLIS_STATE_REMOVE) {
            decision = -EINVAL;
            tr_sdk_fail(decision, "trellis_state_update: unknown callback result");
        } else if (decision == TRELLIS_STATE_WRITE && value == NULL) {
            decision = -EINVAL;
            tr_sdk_fail(decision, "trellis_state_update: the callback asked to write NULL");
        }
        if (decision < 0 || decision == TRELLIS_STATE_KEEP ||
            (decision == TRELLIS_STATE_REMOVE && !existed)) {
            trellis_json_free(value);
            trellis_free(etag);
            return decision < 0 ? decision : 0;
        }
        if (decision == TRELLIS_STATE_REMOVE) {
            rc = trellis_state_delete(sc, store, key, etag);
        } else {
            struct trellis_state_opts opts = {.etag = etag, .first_write = true};
            rc = trellis_state_save(sc, store, key, value, &opts);
        }
        trellis_json_free(value);
        trellis_free(etag);
        if (rc != TRELLIS_ECONFLICT) {
            return rc;
        }
        pause_before_retry(attempt);
    }
    tr_sdk_clear_error();
    return tr_sdk_fail(TRELLIS_ECONFLICT, "update of %s/%s lost %d races in a row", store, key,
                       UPDATE_ATTEMPTS);
}
