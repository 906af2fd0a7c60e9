/* SPDX-License-Identifier: Apache-2.0 */
/* The sidecar client: service invocation, state and publish through the Dapr HTTP API
 * of a Trellis (or Dapr) sidecar at 127.0.0.1:$DAPR_HTTP_PORT.
 *
 * Calls block the calling thread until the sidecar answers or the call's timeout
 * passes; the network work happens on the client's own I/O thread, so any number of
 * threads may call at once and they share a pool of keep-alive connections. Do not
 * call from inside a libuv callback of your own loop if that loop must keep running.
 *
 * Trace context: a call made on a handler's thread while the handler runs sends that
 * request's trace id in `traceparent` with a new span id (and passes `tracestate` on);
 * other calls start a new trace. $DAPR_API_TOKEN, when set, is sent as dapr-api-token.
 *
 * Every call returns 0 or a negative code (trellis/base.h); on failure
 * trellis_last_error() says what the sidecar answered. */
#ifndef TRELLIS_SIDECAR_H
#define TRELLIS_SIDECAR_H

#include "trellis/base.h"
#include "trellis/json.h"

#ifdef __cplusplus
extern "C" {
#endif

struct trellis_sidecar;
struct trellis_response;

/* A client for the sidecar at `address` ("127.0.0.1:3500"); NULL means
 * 127.0.0.1:$DAPR_HTTP_PORT, or :3500 when unset. Starts the client's I/O thread.
 * Returns NULL on a bad address or when the thread cannot start. */
TRELLIS_API struct trellis_sidecar *trellis_sidecar_new(const char *address);
/* Stops the client: calls still in flight fail with -ECANCELED. No thread may be
 * inside a call of this client when it is freed. NULL is fine. */
TRELLIS_API void trellis_sidecar_free(struct trellis_sidecar *sc);
/* Default timeout of each call, in ms (initially $TRELLIS_SIDECAR_TIMEOUT_MS or 15000). */
TRELLIS_API void trellis_sidecar_set_timeout(struct trellis_sidecar *sc, uint64_t timeout_ms);
/* Waits until the sidecar answers GET /v1.0/healthz/outbound with 2xx (its components
 * are ready), checking every 100 ms. Returns 0 or -ETIMEDOUT. */
TRELLIS_API int trellis_sidecar_wait(struct trellis_sidecar *sc, uint64_t timeout_ms);

/* --- Service invocation --- */

struct trellis_call_opts {
    uint64_t timeout_ms;        /* 0: the client's default */
    const char *content_type;   /* raw bodies only; JSON bodies are application/json */
    const char *const *headers; /* NULL, or {"name", "value", ..., NULL} extra headers */
};

/* Calls `method` `path` (with any query string, e.g. "/items?limit=5") on app `app_id`
 * through the sidecar (POST /v1.0/invoke/APP/method/PATH). `body` (may be NULL) is sent
 * as application/json. Returns 0 once a response arrived, whatever its status, with
 * *out set (free it with trellis_response_free()); or a negative code and *out NULL
 * when no response came (refused, timed out, cancelled). */
TRELLIS_API int trellis_invoke(struct trellis_sidecar *sc, const char *app_id, const char *method,
                               const char *path, const struct trellis_json *body,
                               const struct trellis_call_opts *opts, struct trellis_response **out);
/* Same with a raw body of `len` bytes (NULL for none). */
TRELLIS_API int trellis_invoke_raw(struct trellis_sidecar *sc, const char *app_id,
                                   const char *method, const char *path, const void *body,
                                   size_t len, const struct trellis_call_opts *opts,
                                   struct trellis_response **out);

TRELLIS_API int trellis_response_status(const struct trellis_response *resp);
/* First response header `name` (case-insensitive), or NULL. */
TRELLIS_API const char *trellis_response_header(const struct trellis_response *resp,
                                                const char *name);
/* The body, NUL-terminated; *len (if not NULL) gets its length. */
TRELLIS_API const char *trellis_response_body(const struct trellis_response *resp, size_t *len);
/* The body parsed as JSON (borrowed, parsed once), or NULL if it is not JSON. */
TRELLIS_API struct trellis_json *trellis_response_json(struct trellis_response *resp);
TRELLIS_API void trellis_response_free(struct trellis_response *resp);

/* --- State (store = the state component's name, e.g. "statestore") --- */

struct trellis_state_opts {
    const char *etag; /* write only if the stored ETag is this one (else TRELLIS_ECONFLICT) */
    bool first_write; /* concurrency first-write; without an ETag: create only, a key
                         that exists already is TRELLIS_ECONFLICT (Trellis's store) */
    bool strong;      /* consistency strong */
};

/* Reads `key`. On success *value is a new JSON value (free with trellis_json_free())
 * and, if `etag` is not NULL, *etag the key's ETag (free with trellis_free()).
 * TRELLIS_ENOTFOUND when the key does not exist (both outputs NULL). A stored value
 * that is not JSON comes back as a JSON string. */
TRELLIS_API int trellis_state_get(struct trellis_sidecar *sc, const char *store, const char *key,
                                  struct trellis_json **value, char **etag);
/* Writes `key` = `value`. `opts` may be NULL (last-write-wins). */
TRELLIS_API int trellis_state_save(struct trellis_sidecar *sc, const char *store, const char *key,
                                   const struct trellis_json *value,
                                   const struct trellis_state_opts *opts);
/* Deletes `key`; with an `etag`, only if it still matches (else TRELLIS_ECONFLICT).
 * Deleting a missing key without an ETag succeeds. */
TRELLIS_API int trellis_state_delete(struct trellis_sidecar *sc, const char *store, const char *key,
                                     const char *etag);

struct trellis_state_item {
    char *key;                  /* owned */
    struct trellis_json *value; /* owned; NULL when the key does not exist */
    char *etag;                 /* owned; NULL when the key does not exist */
};

/* Reads many keys at once. *items gets `nkeys` entries in the order of `keys`; free them
 * with trellis_state_items_free(). */
TRELLIS_API int trellis_state_get_bulk(struct trellis_sidecar *sc, const char *store,
                                       const char *const *keys, size_t nkeys,
                                       struct trellis_state_item **items);
TRELLIS_API void trellis_state_items_free(struct trellis_state_item *items, size_t n);

enum trellis_state_op_kind {
    TRELLIS_STATE_UPSERT = 0,
    TRELLIS_STATE_DELETE,
};

struct trellis_state_op {
    enum trellis_state_op_kind kind;
    const char *key;
    const struct trellis_json *value; /* upserts */
    const char *etag;                 /* NULL: no ETag check */
    bool first_write;
};

/* Applies all operations atomically: if one ETag check fails nothing is written and
 * the result is TRELLIS_ECONFLICT. */
TRELLIS_API int trellis_state_transaction(struct trellis_sidecar *sc, const char *store,
                                          const struct trellis_state_op *ops, size_t nops);

/* What an update callback decided. */
enum trellis_state_update {
    TRELLIS_STATE_KEEP = 0,   /* leave the key as it is */
    TRELLIS_STATE_WRITE = 1,  /* write *value */
    TRELLIS_STATE_REMOVE = 2, /* delete the key */
};

/* Called with *value = the current value (NULL if the key does not exist), which the
 * callback owns: it may change it in place or replace it (freeing the old one). Returns
 * an enum trellis_state_update, or a negative code to stop with that result. It may be
 * called several times (once per attempt), so it must recompute everything it reports
 * through `data` on each call. */
typedef int trellis_state_update_cb(struct trellis_json **value, void *data);

/* Read-modify-write with optimistic concurrency: reads `key` with its ETag, lets `cb`
 * decide, writes back only if nobody wrote in between (a missing key is created with
 * first-write), and on a conflict starts over, up to 32 attempts with a short random
 * pause. Returns 0, the callback's negative code, TRELLIS_ECONFLICT when every attempt
 * lost, or a call failure. */
TRELLIS_API int trellis_state_update(struct trellis_sidecar *sc, const char *store, const char *key,
                                     trellis_state_update_cb *cb, void *data);

/* --- Publish --- */

struct trellis_publish_opts {
    const char *id;      /* CloudEvent id (subscribers dedupe on it); NULL: the sidecar's */
    const char *type;    /* NULL: com.dapr.event.sent */
    const char *source;  /* NULL: $APP_ID, else left to the sidecar */
    const char *subject; /* NULL: none */
};

/* Publishes `data` (JSON) to `topic` of pub/sub component `pubsub`. Without `opts` the
 * sidecar wraps it in a CloudEvent; with `opts` the client sends the CloudEvent itself
 * (application/cloudevents+json) so its id and type are yours. */
TRELLIS_API int trellis_publish(struct trellis_sidecar *sc, const char *pubsub, const char *topic,
                                const struct trellis_json *data,
                                const struct trellis_publish_opts *opts);
/* Publishes `len` bytes with `content_type` as they are ("text/plain",
 * "application/cloudevents+json" for a CloudEvent you built). */
TRELLIS_API int trellis_publish_raw(struct trellis_sidecar *sc, const char *pubsub,
                                    const char *topic, const char *content_type, const void *data,
                                    size_t len);

#ifdef __cplusplus
}
#endif

#endif
