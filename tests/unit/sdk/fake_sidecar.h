/* SPDX-License-Identifier: Apache-2.0 */
/* A fake Dapr sidecar built with the SDK itself, for the client tests: state with
 * ETags and Trellis's concurrency table, bulk get, transactions, an invoke echo and a
 * publish recorder. Status codes follow docs/state.md and the Dapr compat notes. */
#ifndef TESTS_SDK_FAKE_SIDECAR_H
#define TESTS_SDK_FAKE_SIDECAR_H

#include "sdk_harness.h"

#define FAKE_MAX_KEYS 256

struct fake_entry {
    char key[128];
    char *value; /* JSON text */
    uint64_t version;
};

struct fake_sidecar {
    pthread_mutex_t lock;
    struct fake_entry entries[FAKE_MAX_KEYS];
    size_t n;
    uint64_t next_version;
    int not_ready_polls; /* healthz/outbound answers 500 this many times first */
    char last_publish_topic[128];
    char last_publish_type[128];
    char *last_publish_body;
    int publishes;
};

static struct fake_entry *fake_find(struct fake_sidecar *f, const char *key)
{
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->entries[i].key, key) == 0) {
            return &f->entries[i];
        }
    }
    return NULL;
}

static void fake_remove(struct fake_sidecar *f, struct fake_entry *e)
{
    free(e->value);
    *e = f->entries[--f->n];
}

static void fake_err(struct trellis_req *req, int status, const char *code, const char *msg)
{
    trellis_reply_json(req, status,
                       trellis_json_pack("{s:s, s:s}", "errorCode", code, "message", msg));
}

static void fake_health(struct trellis_req *req, void *data)
{
    struct fake_sidecar *f = data;
    pthread_mutex_lock(&f->lock);
    bool ready = f->not_ready_polls <= 0;
    f->not_ready_polls--;
    pthread_mutex_unlock(&f->lock);
    trellis_reply(req, ready ? 204 : 500, NULL, NULL, 0);
}

static void fake_get(struct trellis_req *req, void *data)
{
    struct fake_sidecar *f = data;
    char key[256];
    snprintf(key, sizeof(key), "%s||%s", trellis_req_param(req, "store"),
             trellis_req_param(req, "key"));
    pthread_mutex_lock(&f->lock);
    struct fake_entry *e = fake_find(f, key);
    if (e == NULL) {
        trellis_reply(req, 204, NULL, NULL, 0);
    } else {
        char etag[32];
        snprintf(etag, sizeof(etag), "%llu", (unsigned long long)e->version);
        trellis_reply_header(req, "ETag", etag);
        trellis_reply(req, 200, "application/json", e->value, strlen(e->value));
    }
    pthread_mutex_unlock(&f->lock);
}

/* Checks one write against the concurrency table; returns 0 or 409. */
static int fake_check(struct fake_sidecar *f, const char *key, struct trellis_json *item,
                      bool is_delete)
{
    struct fake_entry *e = fake_find(f, key);
    const char *etag = trellis_json_get_str(item, "etag");
    const char *conc = trellis_json_get_str(trellis_json_get(item, "options"), "concurrency");
    if (etag != NULL) {
        char cur[32];
        snprintf(cur, sizeof(cur), "%llu", e ? (unsigned long long)e->version : 0ull);
        return e != NULL && strcmp(cur, etag) == 0 ? 0 : 409;
    }
    if (!is_delete && e != NULL && conc != NULL && strcmp(conc, "first-write") == 0) {
        return 409;
    }
    return 0;
}

static void fake_apply_upsert(struct fake_sidecar *f, const char *key, struct trellis_json *v,
                              uint64_t version)
{
    struct fake_entry *e = fake_find(f, key);
    if (e == NULL) {
        e = &f->entries[f->n++];
        snprintf(e->key, sizeof(e->key), "%s", key);
        e->value = NULL;
    }
    free(e->value);
    e->value = trellis_json_dump(v);
    e->version = version;
}

static void fake_save(struct trellis_req *req, void *data)
{
    struct fake_sidecar *f = data;
    struct trellis_json *items = trellis_req_json(req);
    if (items == NULL) {
        return;
    }
    const char *store = trellis_req_param(req, "store");
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < trellis_json_size(items); i++) {
        struct trellis_json *item = trellis_json_at(items, i);
        char key[256];
        snprintf(key, sizeof(key), "%s||%s", store, trellis_json_get_str(item, "key"));
        if (fake_check(f, key, item, false) != 0) {
            pthread_mutex_unlock(&f->lock);
            fake_err(req, 409, "ERR_STATE_SAVE", "possible etag mismatch");
            return;
        }
    }
    uint64_t version = ++f->next_version;
    for (size_t i = 0; i < trellis_json_size(items); i++) {
        struct trellis_json *item = trellis_json_at(items, i);
        char key[256];
        snprintf(key, sizeof(key), "%s||%s", store, trellis_json_get_str(item, "key"));
        fake_apply_upsert(f, key, trellis_json_get(item, "value"), version);
    }
    pthread_mutex_unlock(&f->lock);
    trellis_reply(req, 204, NULL, NULL, 0);
}

static void fake_delete(struct trellis_req *req, void *data)
{
    struct fake_sidecar *f = data;
    char key[256];
    snprintf(key, sizeof(key), "%s||%s", trellis_req_param(req, "store"),
             trellis_req_param(req, "key"));
    const char *if_match = trellis_req_header(req, "If-Match");
    struct trellis_json *item = trellis_json_pack("{s:s?}", "etag", if_match);
    pthread_mutex_lock(&f->lock);
    int rc = fake_check(f, key, item, true);
    if (rc == 0 && fake_find(f, key) != NULL) {
        fake_remove(f, fake_find(f, key));
    }
    pthread_mutex_unlock(&f->lock);
    trellis_json_free(item);
    if (rc != 0) {
        fake_err(req, 409, "ERR_STATE_DELETE", "possible etag mismatch");
        return;
    }
    trellis_reply(req, 204, NULL, NULL, 0);
}

static void fake_bulk(struct trellis_req *req, void *data)
{
    struct fake_sidecar *f = data;
    struct trellis_json *body = trellis_req_json(req);
    if (body == NULL) {
        return;
    }
    struct trellis_json *keys = trellis_json_get(body, "keys");
    struct trellis_json *out = trellis_json_array();
    pthread_mutex_lock(&f->lock);
    /* Reverse order: clients must match by key, not position. */
    for (size_t i = trellis_json_size(keys); i-- > 0;) {
        const char *k = trellis_json_string(trellis_json_at(keys, i));
        char key[256];
        snprintf(key, sizeof(key), "%s||%s", trellis_req_param(req, "store"), k);
        struct fake_entry *e = fake_find(f, key);
        struct trellis_json *item = trellis_json_pack("{s:s}", "key", k);
        if (e != NULL) {
            char etag[32];
            snprintf(etag, sizeof(etag), "%llu", (unsigned long long)e->version);
            trellis_json_set(item, "data", trellis_json_parse(e->value, strlen(e->value), 0, 0));
            trellis_json_set_str(item, "etag", etag);
        }
        trellis_json_append(out, item);
    }
    pthread_mutex_unlock(&f->lock);
    trellis_reply_json(req, 200, out);
}

static void fake_transaction(struct trellis_req *req, void *data)
{
    struct fake_sidecar *f = data;
    struct trellis_json *body = trellis_req_json(req);
    if (body == NULL) {
        return;
    }
    struct trellis_json *ops = trellis_json_get(body, "operations");
    const char *store = trellis_req_param(req, "store");
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < trellis_json_size(ops); i++) {
        struct trellis_json *op = trellis_json_at(ops, i);
        struct trellis_json *r = trellis_json_get(op, "request");
        char key[256];
        snprintf(key, sizeof(key), "%s||%s", store, trellis_json_get_str(r, "key"));
        bool del = strcmp(trellis_json_get_str(op, "operation"), "delete") == 0;
        if (fake_check(f, key, r, del) != 0) {
            pthread_mutex_unlock(&f->lock);
            fake_err(req, 409, "ERR_STATE_TRANSACTION", "possible etag mismatch");
            return;
        }
    }
    uint64_t version = ++f->next_version;
    for (size_t i = 0; i < trellis_json_size(ops); i++) {
        struct trellis_json *op = trellis_json_at(ops, i);
        struct trellis_json *r = trellis_json_get(op, "request");
        char key[256];
        snprintf(key, sizeof(key), "%s||%s", store, trellis_json_get_str(r, "key"));
        if (strcmp(trellis_json_get_str(op, "operation"), "delete") == 0) {
            if (fake_find(f, key) != NULL) {
                fake_remove(f, fake_find(f, key));
            }
        } else {
            fake_apply_upsert(f, key, trellis_json_get(r, "value"), version);
        }
    }
    pthread_mutex_unlock(&f->lock);
    trellis_reply(req, 204, NULL, NULL, 0);
}

static void fake_invoke(struct trellis_req *req, void *data)
{
    const char *path = trellis_req_param(req, "path");
    const char *ms = trellis_req_query(req, "sleep_ms");
    if (ms != NULL) {
        sleep_ms(atol(ms));
    }
    if (strncmp(path, "status/", 7) == 0) {
        trellis_reply_error(req, atoi(path + 7), "teapot", "as asked");
        return;
    }
    size_t len;
    const char *body = trellis_req_body(req, &len);
    trellis_reply_header(req, "X-Echo", "1");
    trellis_reply_json(req, 200,
                       trellis_json_pack("{s:s, s:s, s:s, s:s?, s:s%, s:s?, s:s?, s:s?, s:s?}",
                                         "app", trellis_req_param(req, "app"), "method",
                                         trellis_req_method(req), "path", path, "q",
                                         trellis_req_query(req, "q"), "body", body, len,
                                         "traceparent", trellis_req_header(req, "traceparent"),
                                         "tracestate", trellis_req_header(req, "tracestate"),
                                         "content_type", trellis_req_header(req, "content-type"),
                                         "token", trellis_req_header(req, "dapr-api-token")));
}

static void fake_publish(struct trellis_req *req, void *data)
{
    struct fake_sidecar *f = data;
    const char *topic = trellis_req_param(req, "topic");
    if (strcmp(topic, "fail") == 0) {
        fake_err(req, 500, "ERR_PUBSUB_PUBLISH_MESSAGE", "broker down");
        return;
    }
    size_t len;
    const char *body = trellis_req_body(req, &len);
    pthread_mutex_lock(&f->lock);
    snprintf(f->last_publish_topic, sizeof(f->last_publish_topic), "%s/%s",
             trellis_req_param(req, "pubsub"), topic);
    const char *ct = trellis_req_header(req, "content-type");
    snprintf(f->last_publish_type, sizeof(f->last_publish_type), "%s", ct ? ct : "");
    free(f->last_publish_body);
    f->last_publish_body = strndup(body, len);
    f->publishes++;
    pthread_mutex_unlock(&f->lock);
    trellis_reply(req, 204, NULL, NULL, 0);
}

static struct trellis_app *fake_sidecar_app(struct fake_sidecar *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    struct trellis_app *app = trellis_app_new("fake-sidecar");
    trellis_app_set_threads(app, 32);
    trellis_app_route(app, "GET", "/v1.0/healthz/outbound", fake_health, f);
    trellis_app_route(app, "GET", "/v1.0/state/:store/:key", fake_get, f);
    trellis_app_route(app, "DELETE", "/v1.0/state/:store/:key", fake_delete, f);
    trellis_app_route(app, "POST", "/v1.0/state/:store/bulk", fake_bulk, f);
    trellis_app_route(app, "POST", "/v1.0/state/:store/transaction", fake_transaction, f);
    trellis_app_route(app, "POST", "/v1.0/state/:store", fake_save, f);
    trellis_app_route(app, "*", "/v1.0/invoke/:app/method/*path", fake_invoke, f);
    trellis_app_route(app, "POST", "/v1.0/publish/:pubsub/*topic", fake_publish, f);
    return app;
}

static void fake_sidecar_dispose(struct fake_sidecar *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->entries[i].value);
    }
    free(f->last_publish_body);
    pthread_mutex_destroy(&f->lock);
}

#endif
