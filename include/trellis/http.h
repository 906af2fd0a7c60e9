/* SPDX-License-Identifier: Apache-2.0 */
/* The service side of libtrellis: an HTTP app with routes, request accessors, replies,
 * and pub/sub subscriptions answered the way a Dapr sidecar expects.
 *
 * Threading model. trellis_app_run() runs the app's network loop on the calling thread
 * and a pool of handler threads (16 by default, TRELLIS_THREADS or
 * trellis_app_set_threads()). Every handler runs on a pool thread, so it may block:
 * call the sidecar, sleep, do CPU work. Other requests keep being accepted and served
 * meanwhile; when all handler threads are busy, requests queue (up to 1024, then 503).
 * A request and its reply belong to the one handler call that received them; the reply
 * is sent when the handler returns. Handlers run concurrently with each other, so
 * shared data needs a lock. GET /healthz and GET /dapr/subscribe are answered on the
 * loop itself (unless you route them), so health checks pass even when the pool is busy.
 *
 * Lifecycle. SIGTERM or SIGINT (or trellis_app_stop()) stops accepting connections,
 * lets requests in flight finish (their connections close after the reply), waits up
 * to TRELLIS_DRAIN_MS (default 10000) for them, then cancels sidecar calls still
 * pending and returns from trellis_app_run() once every handler has returned. */
#ifndef TRELLIS_HTTP_H
#define TRELLIS_HTTP_H

#include "trellis/base.h"
#include "trellis/json.h"

#ifdef __cplusplus
extern "C" {
#endif

struct trellis_app;
struct trellis_req;
struct trellis_event;
struct trellis_sidecar;

/* A route handler: runs on a handler thread; reply with one of the trellis_reply*()
 * calls before returning (otherwise the client gets 500 "handler did not reply"). */
typedef void trellis_handler_cb(struct trellis_req *req, void *data);

/* Runs once, on a handler thread, after the app listens: seed state, warm caches. Until
 * it returns 0 the built-in GET /healthz answers 503, so orchestrators wait. A non-zero
 * return stops the app: trellis_app_run() returns 1. */
typedef int trellis_start_cb(struct trellis_app *app, void *data);

/* What a subscriber tells the sidecar about one delivered event (Dapr's contract). */
enum trellis_event_status {
    TRELLIS_EVENT_SUCCESS = 0, /* processed: acknowledge */
    TRELLIS_EVENT_RETRY,       /* failed for now: deliver again later */
    TRELLIS_EVENT_DROP,        /* never processable: drop (dead-letter topic if any) */
};

/* An event handler: runs on a handler thread for each delivery. */
typedef enum trellis_event_status trellis_event_cb(const struct trellis_event *ev, void *data);

/* --- The app --- */

/* A new app. `name` is used in logs; NULL takes $APP_ID, else "app". The listen address
 * defaults to 127.0.0.1:$APP_PORT (3000 when unset). Returns NULL on bad arguments. */
TRELLIS_API struct trellis_app *trellis_app_new(const char *name);
/* Frees an app that is not running (after trellis_app_run() returned, or never run),
 * including the sidecar client trellis_app_sidecar() made. */
TRELLIS_API void trellis_app_free(struct trellis_app *app);

/* Adds a route. `method` is "GET", "POST", ... or "*" for any. `pattern` is a path with
 * literal segments, parameters written `:name` or `{name}` (one segment each, e.g.
 * "/products/{id}"), and optionally a last segment `*name` that takes the rest of the
 * path. Routes are tried in the order added; a path that matches a route but not its
 * method gets 405, no match 404. Returns 0 or -EINVAL (bad pattern, app already
 * running). */
TRELLIS_API int trellis_app_route(struct trellis_app *app, const char *method, const char *pattern,
                                  trellis_handler_cb *cb, void *data);

struct trellis_subscribe_opts {
    const char *dead_letter_topic; /* NULL: none */
    bool raw_payload;              /* ask for the message without a CloudEvent envelope */
};

/* Subscribes `cb` to `topic` of pub/sub component `pubsub`: the app then answers the
 * sidecar's GET /dapr/subscribe and routes the deliveries to `cb`. `opts` may be NULL.
 * Call before trellis_app_run(). Returns 0 or -EINVAL. */
TRELLIS_API int trellis_app_subscribe(struct trellis_app *app, const char *pubsub,
                                      const char *topic, const struct trellis_subscribe_opts *opts,
                                      trellis_event_cb *cb, void *data);

/* Registers the start hook (see trellis_start_cb). */
TRELLIS_API void trellis_app_on_start(struct trellis_app *app, trellis_start_cb *cb, void *data);

/* Overrides the listen address ("127.0.0.1:8080"; port 0 picks a free one). Returns 0
 * or -EINVAL. */
TRELLIS_API int trellis_app_set_listen(struct trellis_app *app, const char *host_port);
/* Number of handler threads (1..1024). Returns 0 or -EINVAL. */
TRELLIS_API int trellis_app_set_threads(struct trellis_app *app, unsigned n);
/* Marks the app (not) ready: the built-in GET /healthz answers 200 or 503. Any thread. */
TRELLIS_API void trellis_app_set_ready(struct trellis_app *app, bool ready);

/* The app's sidecar client (created on first use, for 127.0.0.1:$DAPR_HTTP_PORT); it
 * lives as long as the app. Any thread. NULL only when memory runs out. */
TRELLIS_API struct trellis_sidecar *trellis_app_sidecar(struct trellis_app *app);
TRELLIS_API const char *trellis_app_name(const struct trellis_app *app);
/* The port the app listens on once it does (useful with port 0), else 0. Any thread. */
TRELLIS_API int trellis_app_port(const struct trellis_app *app);

/* Serves until SIGTERM/SIGINT or trellis_app_stop(), then drains (see above). Logs
 * "listening on 127.0.0.1:PORT" once it accepts. Returns the process exit code: 0
 * after a clean stop, 1 if the address could not be bound or the start hook failed.
 * Call once per app. */
TRELLIS_API int trellis_app_run(struct trellis_app *app);
/* Starts the graceful stop of a running app, as SIGTERM does. Any thread. */
TRELLIS_API void trellis_app_stop(struct trellis_app *app);

/* --- Requests (valid during the handler call that received them) --- */

TRELLIS_API const char *trellis_req_method(const struct trellis_req *req);
/* The path as sent, without the query string, not percent-decoded. */
TRELLIS_API const char *trellis_req_path(const struct trellis_req *req);
/* Route parameter `name`, percent-decoded; NULL if the route has none by that name. */
TRELLIS_API const char *trellis_req_param(const struct trellis_req *req, const char *name);
/* First query parameter `name`, percent-decoded ('+' is a space); "" for "?flag";
 * NULL if absent. */
TRELLIS_API const char *trellis_req_query(const struct trellis_req *req, const char *name);
/* First header `name` (case-insensitive), or NULL. */
TRELLIS_API const char *trellis_req_header(const struct trellis_req *req, const char *name);
/* The body (NUL-terminated for convenience; may contain NULs); *len gets its length. */
TRELLIS_API const char *trellis_req_body(const struct trellis_req *req, size_t *len);
/* The body parsed as JSON (borrowed, parsed once). If the body is not JSON this replies
 * 400 {"error":{"code":"bad_json","message":"..."}} itself and returns NULL, so a
 * handler can simply return. */
TRELLIS_API struct trellis_json *trellis_req_json(struct trellis_req *req);
/* The W3C traceparent this request runs under: the caller's trace id with a span id of
 * its own (a new trace when the request carried none). Sidecar calls made from the
 * handler's thread while it runs carry the same trace id, each with a new span id. */
TRELLIS_API const char *trellis_req_traceparent(const struct trellis_req *req);
TRELLIS_API struct trellis_app *trellis_req_app(const struct trellis_req *req);
/* Shorthand for trellis_app_sidecar(trellis_req_app(req)). */
TRELLIS_API struct trellis_sidecar *trellis_req_sidecar(const struct trellis_req *req);

/* --- Replies (first reply wins; later ones are ignored and logged) --- */

/* Adds a response header (before the reply). A name that is not an HTTP token or a
 * value with CR, LF or NUL is refused: -EINVAL. */
TRELLIS_API int trellis_reply_header(struct trellis_req *req, const char *name, const char *value);
/* Replies with `len` bytes of `body` (copied); `content_type` may be NULL. */
TRELLIS_API void trellis_reply(struct trellis_req *req, int status, const char *content_type,
                               const void *body, size_t len);
/* Replies with a JSON body; takes `body`. A NULL body (a failed trellis_json_pack)
 * becomes a 500 naming trellis_last_error(). */
TRELLIS_API void trellis_reply_json(struct trellis_req *req, int status, struct trellis_json *body);
/* Replies {"error":{"code":CODE,"message":MESSAGE}}, the shape every Trellis error has. */
TRELLIS_API void trellis_reply_error(struct trellis_req *req, int status, const char *code,
                                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Has the handler replied yet? */
TRELLIS_API bool trellis_replied(const struct trellis_req *req);

/* --- Events (valid during the event handler call) --- */

/* CloudEvent attributes; NULL when the event has none. */
TRELLIS_API const char *trellis_event_id(const struct trellis_event *ev);
TRELLIS_API const char *trellis_event_type(const struct trellis_event *ev);
TRELLIS_API const char *trellis_event_source(const struct trellis_event *ev);
TRELLIS_API const char *trellis_event_subject(const struct trellis_event *ev);
TRELLIS_API const char *trellis_event_topic(const struct trellis_event *ev);
TRELLIS_API const char *trellis_event_pubsub(const struct trellis_event *ev);
TRELLIS_API const char *trellis_event_content_type(const struct trellis_event *ev);
/* The event's `data` as JSON (borrowed); NULL when it has none or it came as
 * data_base64. */
TRELLIS_API struct trellis_json *trellis_event_data(const struct trellis_event *ev);
/* The payload as bytes: data_base64 decoded, a string `data` as its text, other JSON
 * data as its compact text. NULL when there is no payload. */
TRELLIS_API const void *trellis_event_payload(const struct trellis_event *ev, size_t *len);
/* The whole CloudEvent (borrowed). */
TRELLIS_API struct trellis_json *trellis_event_cloudevent(const struct trellis_event *ev);
TRELLIS_API struct trellis_app *trellis_event_app(const struct trellis_event *ev);
TRELLIS_API struct trellis_sidecar *trellis_event_sidecar(const struct trellis_event *ev);

#ifdef __cplusplus
}
#endif

#endif
