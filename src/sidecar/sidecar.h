/* SPDX-License-Identifier: Apache-2.0 */
/* `trellis sidecar`: a Dapr-compatible building-block API (HTTP v1.0) beside one app
 * instance. The process is the runtime's: N worker loops (default 1), each with the
 * sidecar's HTTP server and one HTTP client (keep-alive pools to the trellis server,
 * the app and other sidecars). Worker 0 also runs the background work: registration,
 * the app's readiness probe and the pub/sub subscribers. Building blocks plug in as
 * modules (modules.c): they add routes at startup, get per-worker hooks, hold the
 * worker open while they finish work at shutdown, and add to /v1.0/metadata. */
#ifndef TR_SIDECAR_SIDECAR_H
#define TR_SIDECAR_SIDECAR_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "core/addr.h"
#include "core/buf.h"
#include "core/heap.h"
#include "core/runtime.h"
#include "http/client.h"
#include "http/router.h"
#include "http/server.h"
#include "sidecar/components.h"

#define TR_SIDECAR_DEFAULT_PORT 3500
#define TR_SIDECAR_MAX_BODY (4u * 1024 * 1024) /* Dapr's --max-body-size default */
#define TR_SIDECAR_RUNTIME_VERSION "trellis-" TRELLIS_VERSION

struct tr_sidecar;
struct tr_sidecar_worker;

/* What `trellis sidecar` was started with (see docs/sidecar.md). Strings are borrowed
 * from argv/environ and live as long as the process. */
struct tr_sidecar_options {
    const char *app_id;          /* --app-id, required */
    int app_port;                /* --app-port, 1..65535 */
    int http_port;               /* --http-port (default 3500; 0 picks a free port) */
    const char *host;            /* --host: listen address (default 127.0.0.1) */
    const char *server;          /* --server: "http://127.0.0.1:8500" */
    const char *components_dir;  /* --components, or NULL for the defaults */
    const char *app_health_path; /* --app-health-path, or NULL (TCP check) */
    const char *api_token;       /* DAPR_API_TOKEN, or NULL: no token check */
    const char *app_api_token;   /* APP_API_TOKEN, or NULL: sent to the app as dapr-api-token */
    bool register_app;           /* false with --no-register (tests, one-off runs) */
    unsigned workers;            /* --workers; 0 = 1 */
    uint64_t drain_ms;
    struct tr_http_limits limits;
};

/* A module: one building block (state, secrets, invocation, metadata, pub/sub). Every
 * hook is optional. Threads: init/cleanup on the main thread, worker_* on each worker's
 * own thread, ctl_* on worker 0 only, metadata on whichever worker serves the request. */
struct tr_sidecar_module {
    const char *name;
    /* Main thread, components loaded, before workers start: add routes with
     * tr_sidecar_route(), set up process-wide state (sc->mod[index]). Non-zero stops
     * the sidecar (log why first). */
    int (*init)(struct tr_sidecar *sc, unsigned index);
    /* Worker thread, after the worker's HTTP client exists. Non-zero stops the process. */
    int (*worker_start)(struct tr_sidecar_worker *sw);
    /* Worker 0: the app answered its readiness check for the first time. */
    void (*ctl_app_ready)(struct tr_sidecar_worker *sw);
    /* Worker thread, SIGTERM: stop starting background work. Work that must finish
     * first holds the worker (tr_sidecar_worker_hold/release). */
    void (*worker_drain)(struct tr_sidecar_worker *sw);
    /* Worker thread, drain deadline passed: cancel everything now and release every
     * hold. Also called after a graceful drain, just before worker_dispose. */
    void (*worker_stop)(struct tr_sidecar_worker *sw);
    /* Worker thread, last: free per-worker state. The worker's client is still open
     * (requests may still be cancelled), the server is gone. */
    void (*worker_dispose)(struct tr_sidecar_worker *sw);
    /* Any worker thread, for GET /v1.0/metadata: add to `meta` (an object that already
     * has "id", "components", "subscriptions" (an array) and "extended"). Must be
     * thread-safe against the module's own updates. */
    void (*metadata)(struct tr_sidecar *sc, json_t *meta);
    /* Main thread, after every worker has exited. */
    void (*cleanup)(struct tr_sidecar *sc);
};

/* The module table (modules.c), NULL-terminated, in init order. */
extern const struct tr_sidecar_module *const tr_sidecar_modules[];
#define TR_SIDECAR_MAX_MODULES 16

/* Route flags beyond the router's TR_ROUTE_BUFFERED / TR_ROUTE_STREAM. */
enum {
    TR_SIDECAR_ROUTE_PUBLIC = 1u << 8, /* no dapr-api-token check (health endpoints) */
};

struct tr_sidecar {
    struct tr_sidecar_options opts;
    struct tr_sidecar_components comps; /* read-only once workers start */
    struct tr_router router;            /* read-only once workers start */
    void *route_data;                   /* owned: the routes' dispatch records */
    struct tr_addr server_addr;         /* the trellis server */
    char server_host[128];              /* "127.0.0.1:8500" for Host headers */
    struct tr_addr app_addr;            /* 127.0.0.1:app_port */
    char app_host[64];                  /* "127.0.0.1:<app_port>" */
    char listen[128];                   /* effective "host:port" */
    int http_port;                      /* bound port (after --http-port 0) */
    char instance_id[192];              /* registry ID: "<app-id>-<http port>" */
    unsigned nworkers;
    int *fds;                           /* owned: one listening socket per worker */
    struct tr_sidecar_worker *workers;  /* owned, [nworkers] */
    struct tr_runtime *rt;
    _Atomic bool app_ready;             /* the app passed its readiness check */
    _Atomic bool draining;
    uint64_t started_ms;

    /* PUT /v1.0/metadata/<key>: shown under "extended". */
    pthread_mutex_t extended_lock;
    json_t *extended; /* owned; guarded by extended_lock */

    /* Per-module process-wide state, indexed by the module's position in the table. */
    void *mod[TR_SIDECAR_MAX_MODULES];
};

struct tr_sidecar_worker {
    struct tr_sidecar *sc;
    struct tr_worker *w;
    unsigned id;
    uv_loop_t *loop;
    struct tr_http_server srv;
    struct tr_http_client *client; /* to the server, the app and other sidecars */
    uint64_t rng;                  /* xorshift state (tr_proxy_rand) */
    uv_timer_t timer;              /* fires at the minimum of `deadlines` */
    uint64_t timer_due;            /* loop ms it fires at, 0 when stopped */
    struct tr_heap deadlines;
    bool srv_live;
    bool draining;
    bool stopping;
    bool closing;
    bool in_hooks;                 /* running module hooks: releases do not close yet */
    unsigned holds;                /* work that must end before the worker does */
    unsigned pending_closes;

    /* Per-module per-worker state, indexed like sc->mod. */
    void *mod[TR_SIDECAR_MAX_MODULES];
};

/* Runs the sidecar until SIGTERM drains it. Returns the exit code (2 for bad options
 * or components, after printing why). */
int tr_sidecar_run(const struct tr_sidecar_options *opts);

/* --- Helpers for modules --- */

/* Adds a route (main thread, in a module's init). `flags`: TR_ROUTE_BUFFERED or
 * TR_ROUTE_STREAM, plus TR_SIDECAR_ROUTE_PUBLIC to skip the API token check. The
 * handler runs after the token check; tr_sidecar_worker_of(req) gives its worker. */
TR_MUST_CHECK int tr_sidecar_route(struct tr_sidecar *sc, const char *method,
                                   const char *pattern, tr_http_handler_cb *handler,
                                   unsigned flags);

static inline struct tr_sidecar_worker *tr_sidecar_worker_of(const struct tr_http_req *req)
{
    return (struct tr_sidecar_worker *)req->server->worker_data;
}

/* Answers with Dapr's error shape {"errorCode":"<code>","message":"<message>"}. */
void tr_sidecar_error(struct tr_http_req *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Appends the same JSON object to `out`. */
void tr_sidecar_error_json(struct tr_buf *out, const char *code, const char *message);

/* Sends a JSON value with status (and Content-Type: application/json); takes `v`. */
void tr_sidecar_send_json(struct tr_http_req *req, int status, json_t *v);

/* Keeps the worker running after a drain started, until the matching release. */
void tr_sidecar_worker_hold(struct tr_sidecar_worker *sw);
void tr_sidecar_worker_release(struct tr_sidecar_worker *sw);

/* The component named `name` of `kind`, or NULL. */
const struct tr_sidecar_component *tr_sidecar_component(const struct tr_sidecar *sc,
                                                        enum tr_sidecar_comp_kind kind,
                                                        struct tr_slice name);

/* A random W3C traceparent "00-<32 hex>-<16 hex>-01" (55 chars + NUL) from `rng`. */
void tr_sidecar_traceparent_new(uint64_t *rng, char out[56]);
/* The traceparent for the next hop of a request that carried `in` (any bytes, maybe
 * a NULL slice): a valid W3C traceparent keeps its trace id and flags and gets a new
 * parent id; anything else starts a new trace. Always writes a valid version-00 value
 * (55 chars + NUL). */
void tr_sidecar_traceparent_child(struct tr_slice in, uint64_t *rng, char out[56]);
/* A random UUID v4 (36 chars + NUL). */
void tr_sidecar_uuid(uint64_t *rng, char out[37]);

/* Deadlines on a worker's loop: `d->cb(d)` runs at loop time `due_ms` unless cancelled.
 * One uv timer per worker serves them all; arming an armed deadline moves it. */
struct tr_sidecar_deadline;
typedef void tr_sidecar_deadline_cb(struct tr_sidecar_deadline *d);
struct tr_sidecar_deadline {
    struct tr_heap_node node;
    tr_sidecar_deadline_cb *cb;
};
void tr_sidecar_deadline_arm(struct tr_sidecar_worker *sw, struct tr_sidecar_deadline *d,
                             uint64_t due_ms, tr_sidecar_deadline_cb *cb);
void tr_sidecar_deadline_cancel(struct tr_sidecar_worker *sw, struct tr_sidecar_deadline *d);
static inline bool tr_sidecar_deadline_armed(const struct tr_sidecar_deadline *d)
{
    return d->node.slot != 0;
}

/* Worker 0's process-wide role: the sidecar's background work runs there. */
static inline struct tr_sidecar_worker *tr_sidecar_ctl(struct tr_sidecar *sc)
{
    return &sc->workers[0];
}

#endif
