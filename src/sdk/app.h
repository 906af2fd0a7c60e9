/* SPDX-License-Identifier: Apache-2.0 */
/* Private definitions of the SDK's app, request and event objects, shared by app.c
 * (the loop and its lifecycle), req.c (accessors and replies) and event.c
 * (subscriptions and deliveries). */
#ifndef TR_SDK_APP_H
#define TR_SDK_APP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/mailbox.h"
#include "http/router.h"
#include "http/server.h"
#include "sdk/pool.h"
#include "sdk/trace.h"
#include "trellis/http.h"

#define TR_SDK_DEFAULT_THREADS 16
#define TR_SDK_MAX_THREADS 1024
#define TR_SDK_MAX_QUEUED 1024 /* requests waiting for a handler thread; beyond: 503 */
#define TR_SDK_DEFAULT_PORT 3000

enum tr_sdk_route_kind {
    TR_SDK_ROUTE_HANDLER = 0, /* user handler, on the pool */
    TR_SDK_ROUTE_EVENT,       /* a subscription's delivery route, on the pool */
    TR_SDK_ROUTE_HEALTH,      /* built-in GET /healthz, on the loop */
    TR_SDK_ROUTE_SUBSCRIBE,   /* built-in GET /dapr/subscribe, on the loop */
};

struct tr_sdk_sub {
    char *pubsub;            /* owned */
    char *topic;             /* owned */
    char *route;             /* owned: "/trellis/events/<n>" */
    char *dead_letter_topic; /* owned; NULL: none */
    bool raw_payload;
    trellis_event_cb *cb;
    void *data;
};

struct tr_sdk_route {
    enum tr_sdk_route_kind kind;
    struct trellis_app *app;
    trellis_handler_cb *cb; /* HANDLER */
    void *data;
    struct tr_sdk_sub *sub; /* EVENT */
};

struct trellis_app {
    char *name;   /* owned */
    char *listen; /* owned: "127.0.0.1:3000" */
    unsigned nthreads;
    size_t max_queued; /* TRELLIS_MAX_QUEUED */
    uint64_t drain_ms;
    struct tr_router router;
    struct tr_sdk_route **routes; /* owned, each owned: the router keeps pointers */
    size_t nroutes;
    struct tr_sdk_sub **subs; /* owned, each owned */
    size_t nsubs;
    bool has_health_route; /* the user routed GET /healthz */
    bool has_subscribe_route;
    trellis_start_cb *on_start;
    void *on_start_data;
    char *subscribe_json; /* owned: the GET /dapr/subscribe answer */

    pthread_mutex_t lock;            /* guards sidecar, loop_live, stop_requested */
    struct trellis_sidecar *sidecar; /* owned; created on first use */
    bool loop_live;                  /* stop_async may be signalled */
    bool stop_requested;             /* trellis_app_stop() before the loop ran */
    _Atomic bool ready;
    _Atomic int port;
    bool ran;

    /* Loop-thread state of trellis_app_run(). */
    uv_loop_t loop;
    struct tr_http_server srv;
    struct tr_mailbox done_mb; /* pool threads hand finished requests back here */
    uv_signal_t sig_term;
    uv_signal_t sig_int;
    uv_async_t stop_async;
    uv_timer_t drain_timer;
    struct tr_sdk_pool pool;
    size_t inflight; /* jobs handed to the pool and not back yet */
    bool shutting_down;
    bool server_closed;
    bool finishing;
    int exit_code;
};

/* One request handed to a handler: a copy of what the handler may read (the engine's
 * request can vanish if the client goes away) plus the reply being built. Created and
 * freed on the loop thread; between submit and the done message it belongs to the
 * handler thread, except `hreq`, which only the loop thread touches. */
struct trellis_req {
    struct tr_sdk_job job; /* pool queue link */
    struct tr_msg done;    /* back to the loop */
    struct trellis_app *app;
    const struct tr_sdk_route *route;
    struct tr_http_req *hreq; /* loop thread only; NULL once the client went away */
    struct tr_arena arena;    /* request copies below */

    const char *method;
    const char *path;
    struct tr_slice query; /* raw, in arena */
    struct {
        const char *name;
        const char *value;
    } * headers;
    size_t nheaders;
    struct {
        const char *name;
        const char *value; /* percent-decoded */
    } params[TR_ROUTE_MAX_PARAMS];
    size_t nparams;
    struct tr_buf body;        /* moved from the engine's request; NUL after len */
    struct trellis_json *json; /* parsed body, owned */
    bool json_tried;

    struct tr_trace trace;  /* this request's span */
    bool trace_from_caller; /* the request carried a valid traceparent */
    const char *tracestate; /* in arena; NULL if none */
    char traceparent[TR_TRACEPARENT_LEN + 1];
    struct tr_sdk_ctx ctx;

    /* Reply. */
    bool replied;
    int status;
    const char *content_type;   /* in arena */
    struct tr_buf resp_headers; /* "name\0value\0" pairs */
    struct tr_buf resp_body;
};

/* The subscription deliveries' handler (event.c), run on a pool thread. */
void tr_sdk_event_run(struct trellis_req *req);
/* Builds app->subscribe_json (event.c). */
void tr_sdk_subscribe_json(struct trellis_app *app);

/* Replies on the loop thread without a pool job (event.c / app.c built-ins). */
void tr_sdk_reply_json_now(struct tr_http_req *hreq, int status, const char *json);

#endif
