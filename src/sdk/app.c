/* SPDX-License-Identifier: Apache-2.0 */
/* The SDK app: route registration and trellis_app_run(), which serves HTTP on the
 * calling thread's libuv loop and hands each routed request to the handler pool (see
 * trellis/http.h for the threading model). The loop owns every libuv handle; pool
 * threads talk back only through the done mailbox, and trellis_app_stop() through an
 * async handle guarded by app->lock.
 *
 * Shutdown: begin_shutdown() drains the HTTP server (stop accepting, let requests in
 * flight finish) under a deadline; once the server has closed and no job is out in the
 * pool, finish() closes the remaining handles and uv_run() returns. At the deadline the
 * server closes its connections and the sidecar client cancels pending calls, so
 * handlers blocked in calls return quickly. */
#include "sdk/app.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"
#include "core/mem.h"
#include "sdk/client.h"
#include "sdk/sdk.h"
#include "trellis/sidecar.h"

static void on_http_request(struct tr_http_req *hreq);

/* ------------------------------------------------------------ configuration */

struct trellis_app *trellis_app_new(const char *name)
{
    const char *app_id = getenv("APP_ID");
    if (name == NULL) {
        name = app_id != NULL && app_id[0] != '\0' ? app_id : "app";
    }
    struct trellis_app *app = tr_xcalloc(1, sizeof(*app));
    app->name = tr_xstrdup(name);
    tr_sdk_set_log_area(app->name);
    unsigned port = (unsigned)tr_sdk_env_u64("APP_PORT", TR_SDK_DEFAULT_PORT, 0, 65535);
    char listen[32];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
    app->listen = tr_xstrdup(listen);
    app->nthreads =
        (unsigned)tr_sdk_env_u64("TRELLIS_THREADS", TR_SDK_DEFAULT_THREADS, 1, TR_SDK_MAX_THREADS);
    app->max_queued = tr_sdk_env_u64("TRELLIS_MAX_QUEUED", TR_SDK_MAX_QUEUED, 1, 1000000);
    app->drain_ms = tr_sdk_env_u64("TRELLIS_DRAIN_MS", 10000, 1, 3600 * 1000);
    tr_router_init(&app->router);
    pthread_mutex_init(&app->lock, NULL);
    atomic_store(&app->ready, false);
    atomic_store(&app->port, 0);
    return app;
}

void trellis_app_free(struct trellis_app *app)
{
    if (app == NULL) {
        return;
    }
    trellis_sidecar_free(app->sidecar);
    tr_router_dispose(&app->router);
    for (size_t i = 0; i < app->nroutes; i++) {
        tr_free_null(&app->routes[i]);
    }
    tr_free_null(&app->routes);
    for (size_t i = 0; i < app->nsubs; i++) {
        struct tr_sdk_sub *sub = app->subs[i];
        tr_free_null(&sub->pubsub);
        tr_free_null(&sub->topic);
        tr_free_null(&sub->route);
        tr_free_null(&sub->dead_letter_topic);
        tr_free_null(&sub);
    }
    tr_free_null(&app->subs);
    tr_free_null(&app->subscribe_json);
    pthread_mutex_destroy(&app->lock);
    tr_free_null(&app->name);
    tr_free_null(&app->listen);
    tr_free_null(&app);
}

static bool is_token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Rewrites "{name}" segments as ":name", the router's syntax. */
static int convert_pattern(const char *in, struct tr_buf *out)
{
    if (in == NULL || in[0] != '/') {
        return -EINVAL;
    }
    const char *p = in;
    while (*p != '\0') {
        if (p[0] == '/' && p[1] == '{') {
            const char *close = strchr(p + 2, '}');
            if (close == NULL || close == p + 2 || (close[1] != '/' && close[1] != '\0')) {
                return -EINVAL;
            }
            tr_buf_append(out, "/:", 2);
            tr_buf_append(out, p + 2, (size_t)(close - (p + 2)));
            p = close + 1;
            continue;
        }
        tr_buf_append(out, p, 1);
        p++;
    }
    tr_buf_append(out, "", 1);
    return 0;
}

static int add_route(struct trellis_app *app, const char *method, const char *pattern,
                     struct tr_sdk_route *route)
{
    struct tr_buf pat;
    tr_buf_init(&pat);
    int err = convert_pattern(pattern, &pat);
    if (err == 0) {
        err = tr_router_add(&app->router, method, tr_buf_data(&pat), on_http_request, route, 0);
    }
    tr_buf_dispose(&pat);
    if (err != 0) {
        tr_free_null(&route);
        return err;
    }
    app->routes = tr_xrealloc(app->routes, (app->nroutes + 1) * sizeof(*app->routes));
    app->routes[app->nroutes++] = route;
    return 0;
}

int trellis_app_route(struct trellis_app *app, const char *method, const char *pattern,
                      trellis_handler_cb *cb, void *data)
{
    if (app == NULL || app->ran || method == NULL || pattern == NULL || cb == NULL) {
        return -EINVAL;
    }
    if (strcmp(method, "*") != 0) {
        for (const char *m = method; *m != '\0'; m++) {
            if (!is_token_char(*m)) {
                return -EINVAL;
            }
        }
        if (method[0] == '\0') {
            return -EINVAL;
        }
    }
    struct tr_sdk_route *route = tr_xcalloc(1, sizeof(*route));
    route->kind = TR_SDK_ROUTE_HANDLER;
    route->app = app;
    route->cb = cb;
    route->data = data;
    int err = add_route(app, method, pattern, route);
    if (err == 0 && strcmp(pattern, "/healthz") == 0 &&
        (strcmp(method, "GET") == 0 || strcmp(method, "*") == 0)) {
        app->has_health_route = true;
    }
    if (err == 0 && strcmp(pattern, "/dapr/subscribe") == 0) {
        app->has_subscribe_route = true;
    }
    return err;
}

int trellis_app_subscribe(struct trellis_app *app, const char *pubsub, const char *topic,
                          const struct trellis_subscribe_opts *opts, trellis_event_cb *cb,
                          void *data)
{
    if (app == NULL || app->ran || pubsub == NULL || pubsub[0] == '\0' || topic == NULL ||
        topic[0] == '\0' || cb == NULL) {
        return -EINVAL;
    }
    struct tr_sdk_sub *sub = tr_xcalloc(1, sizeof(*sub));
    char route_path[64];
    snprintf(route_path, sizeof(route_path), "/trellis/events/%zu", app->nsubs + 1);
    sub->pubsub = tr_xstrdup(pubsub);
    sub->topic = tr_xstrdup(topic);
    sub->route = tr_xstrdup(route_path);
    if (opts != NULL && opts->dead_letter_topic != NULL) {
        sub->dead_letter_topic = tr_xstrdup(opts->dead_letter_topic);
    }
    sub->raw_payload = opts != NULL && opts->raw_payload;
    sub->cb = cb;
    sub->data = data;
    app->subs = tr_xrealloc(app->subs, (app->nsubs + 1) * sizeof(*app->subs));
    app->subs[app->nsubs++] = sub;

    struct tr_sdk_route *route = tr_xcalloc(1, sizeof(*route));
    route->kind = TR_SDK_ROUTE_EVENT;
    route->app = app;
    route->sub = sub;
    /* Dapr delivers with POST; PUT is accepted too, as the JS SDK's server does. */
    return add_route(app, "POST", sub->route, route);
}

void trellis_app_on_start(struct trellis_app *app, trellis_start_cb *cb, void *data)
{
    if (app != NULL && !app->ran) {
        app->on_start = cb;
        app->on_start_data = data;
    }
}

int trellis_app_set_listen(struct trellis_app *app, const char *host_port)
{
    struct tr_addr addr;
    if (app == NULL || app->ran || host_port == NULL || tr_addr_parse(host_port, &addr) != 0) {
        return -EINVAL;
    }
    tr_free_null(&app->listen);
    app->listen = tr_xstrdup(host_port);
    return 0;
}

int trellis_app_set_threads(struct trellis_app *app, unsigned n)
{
    if (app == NULL || app->ran || n == 0 || n > TR_SDK_MAX_THREADS) {
        return -EINVAL;
    }
    app->nthreads = n;
    return 0;
}

void trellis_app_set_ready(struct trellis_app *app, bool ready)
{
    if (app != NULL) {
        atomic_store(&app->ready, ready);
    }
}

struct trellis_sidecar *trellis_app_sidecar(struct trellis_app *app)
{
    if (app == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&app->lock);
    if (app->sidecar == NULL) {
        app->sidecar = trellis_sidecar_new(NULL);
    }
    struct trellis_sidecar *sc = app->sidecar;
    pthread_mutex_unlock(&app->lock);
    return sc;
}

const char *trellis_app_name(const struct trellis_app *app)
{
    return app == NULL ? NULL : app->name;
}

int trellis_app_port(const struct trellis_app *app)
{
    return app == NULL ? 0 : atomic_load(&((struct trellis_app *)app)->port);
}

/* ------------------------------------------------------------ requests on the loop */

void tr_sdk_reply_json_now(struct tr_http_req *hreq, int status, const char *json)
{
    tr_http_resp_send(hreq, status, TR_SLICE_LIT("application/json"), tr_slice_cstr(json));
}

static void on_client_gone(struct tr_http_req *hreq, bool complete)
{
    struct trellis_req *req = hreq->user;
    if (!complete && req != NULL) {
        /* The handler keeps running on its copy; its reply has nowhere to go. */
        trellis_log(TRELLIS_LOG_DEBUG, "client went away before the reply to %s %s", req->method,
                    req->path);
        req->hreq = NULL;
        hreq->user = NULL;
    }
}

static void copy_request(struct trellis_req *req, struct tr_http_req *hreq)
{
    struct tr_arena *a = &req->arena;
    req->method = tr_arena_strndup(a, hreq->method.ptr, hreq->method.len);
    req->path = tr_arena_strndup(a, hreq->path.ptr, hreq->path.len);
    req->query = tr_arena_slice_dup(a, hreq->query);
    req->nheaders = hreq->nheaders;
    req->headers = tr_arena_alloc(a, (hreq->nheaders + 1) * sizeof(*req->headers));
    for (size_t i = 0; i < hreq->nheaders; i++) {
        const struct tr_http_header *h = &hreq->headers[i];
        req->headers[i].name = tr_arena_strndup(a, h->name.ptr, h->name.len);
        req->headers[i].value = tr_arena_strndup(a, h->value.ptr, h->value.len);
    }
    req->nparams = hreq->match.nparams;
    for (size_t i = 0; i < hreq->match.nparams; i++) {
        const struct tr_route_param *p = &hreq->match.params[i];
        req->params[i].name = tr_arena_strndup(a, p->name.ptr, p->name.len);
        char *value = tr_arena_alloc(a, p->value.len + 1);
        size_t n = tr_pct_decode(value, p->value, false);
        value[n] = '\0';
        req->params[i].value = value;
    }
    /* Take the body over instead of copying it; the engine gets an empty buffer. */
    req->body = hreq->body;
    tr_buf_init(&hreq->body);
    char *nul = tr_buf_reserve(&req->body, 1);
    *nul = '\0';
}

static void setup_trace(struct trellis_req *req, struct tr_http_req *hreq)
{
    struct tr_trace parent;
    struct tr_slice tp = tr_http_req_header(hreq, TR_SLICE_LIT("traceparent"));
    if (tp.ptr != NULL && tr_trace_parse(tp, &parent) == 0) {
        tr_trace_child(&parent, &req->trace);
        req->trace_from_caller = true;
        struct tr_slice ts = tr_http_req_header(hreq, TR_SLICE_LIT("tracestate"));
        if (ts.ptr != NULL && ts.len > 0) {
            req->tracestate = tr_arena_strndup(&req->arena, ts.ptr, ts.len);
        }
    } else {
        tr_trace_new(&req->trace);
    }
    tr_trace_format(&req->trace, req->traceparent);
    req->ctx.trace = &req->trace;
    req->ctx.tracestate = req->tracestate;
}

static void req_free(struct trellis_req *req)
{
    trellis_json_free(req->json);
    tr_buf_dispose(&req->body);
    tr_buf_dispose(&req->resp_headers);
    tr_buf_dispose(&req->resp_body);
    tr_arena_dispose(&req->arena);
    tr_free_null(&req);
}

static void maybe_finish(struct trellis_app *app);

/* Loop thread: a handler returned; send its reply if the client is still there. */
static void on_req_done(struct tr_msg *msg)
{
    struct trellis_req *req = tr_container_of(msg, struct trellis_req, done);
    struct trellis_app *app = req->app;
    struct tr_http_req *hreq = req->hreq;
    if (hreq != NULL) {
        hreq->on_body_end = NULL;
        hreq->user = NULL;
        const char *p = tr_buf_data(&req->resp_headers);
        const char *end = p + req->resp_headers.len;
        while (p != NULL && p < end) {
            const char *name = p;
            const char *value = name + strlen(name) + 1;
            tr_http_resp_header(hreq, tr_slice_cstr(name), tr_slice_cstr(value));
            p = value + strlen(value) + 1;
        }
        tr_http_resp_send(hreq, req->status, tr_slice_cstr(req->content_type),
                          tr_buf_slice(&req->resp_body));
    }
    req_free(req);
    app->inflight--;
    maybe_finish(app);
}

/* Pool thread. */
static void run_req(struct tr_sdk_job *job)
{
    struct trellis_req *req = tr_container_of(job, struct trellis_req, job);
    const struct tr_sdk_ctx *prev = tr_sdk_ctx_swap(&req->ctx);
    tr_sdk_clear_error();
    if (req->route->kind == TR_SDK_ROUTE_EVENT) {
        tr_sdk_event_run(req);
    } else {
        req->route->cb(req, req->route->data);
    }
    if (!req->replied) {
        trellis_log(TRELLIS_LOG_ERROR, "handler for %s %s returned without replying", req->method,
                    req->path);
        trellis_reply_error(req, 500, "internal", "handler did not reply");
    }
    tr_sdk_ctx_swap(prev);
    bool posted = tr_mailbox_post(&req->app->done_mb, &req->done);
    TR_ASSERT(posted); /* the mailbox closes only once no job is out */
}

static void answer_builtin(struct trellis_app *app, const struct tr_sdk_route *route,
                           struct tr_http_req *hreq)
{
    if (route->kind == TR_SDK_ROUTE_SUBSCRIBE) {
        tr_sdk_reply_json_now(hreq, 200, app->subscribe_json);
    } else if (app->shutting_down) {
        tr_sdk_reply_json_now(hreq, 503, "{\"status\":\"stopping\"}");
    } else if (!atomic_load(&app->ready)) {
        tr_sdk_reply_json_now(hreq, 503, "{\"status\":\"starting\"}");
    } else {
        tr_sdk_reply_json_now(hreq, 200, "{\"status\":\"ok\"}");
    }
}

static void on_http_request(struct tr_http_req *hreq)
{
    struct tr_sdk_route *route = tr_route_data(hreq->match.route);
    struct trellis_app *app = route->app;
    if (route->kind == TR_SDK_ROUTE_HEALTH || route->kind == TR_SDK_ROUTE_SUBSCRIBE) {
        answer_builtin(app, route, hreq);
        return;
    }
    struct trellis_req *req = tr_xcalloc(1, sizeof(*req));
    req->app = app;
    req->route = route;
    req->hreq = hreq;
    req->status = 500;
    tr_arena_init(&req->arena, 4096);
    tr_buf_init(&req->resp_headers);
    tr_buf_init(&req->resp_body);
    copy_request(req, hreq);
    setup_trace(req, hreq);
    req->job.run = run_req;
    req->done.run = on_req_done;
    if (!tr_sdk_pool_submit(&app->pool, &req->job)) {
        req_free(req);
        char msg[128];
        snprintf(msg, sizeof(msg),
                 "all handler threads are busy and %zu requests wait already "
                 "(TRELLIS_MAX_QUEUED)",
                 app->max_queued);
        tr_http_resp_error(hreq, TR_E_UNAVAILABLE, msg);
        return;
    }
    app->inflight++;
    hreq->user = req;
    hreq->on_body_end = on_client_gone;
}

/* ------------------------------------------------------------ start hook */

struct start_job {
    struct tr_sdk_job job;
    struct tr_msg done;
    struct trellis_app *app;
    int rc;
};

static void run_start(struct tr_sdk_job *job)
{
    struct start_job *sj = tr_container_of(job, struct start_job, job);
    sj->rc = sj->app->on_start(sj->app, sj->app->on_start_data);
    bool posted = tr_mailbox_post(&sj->app->done_mb, &sj->done);
    TR_ASSERT(posted);
}

static void begin_shutdown(struct trellis_app *app, const char *why);

static void on_start_done(struct tr_msg *msg)
{
    struct start_job *sj = tr_container_of(msg, struct start_job, done);
    struct trellis_app *app = sj->app;
    if (sj->rc != 0) {
        trellis_log(TRELLIS_LOG_ERROR, "start hook failed (%d: %s); stopping", sj->rc,
                    trellis_strerror(sj->rc));
        app->exit_code = 1;
        begin_shutdown(app, "start hook failed");
    } else {
        atomic_store(&app->ready, true);
        trellis_log(TRELLIS_LOG_INFO, "ready");
    }
    tr_free_null(&sj);
    app->inflight--;
    maybe_finish(app);
}

/* ------------------------------------------------------------ shutdown */

static void on_mailbox_closed(struct tr_mailbox *mb)
{
    (void)mb;
}

static void finish(struct trellis_app *app)
{
    app->finishing = true;
    pthread_mutex_lock(&app->lock);
    app->loop_live = false;
    pthread_mutex_unlock(&app->lock);
    uv_close((uv_handle_t *)&app->stop_async, NULL);
    uv_close((uv_handle_t *)&app->sig_term, NULL);
    uv_close((uv_handle_t *)&app->sig_int, NULL);
    uv_close((uv_handle_t *)&app->drain_timer, NULL);
    app->done_mb.on_closed = on_mailbox_closed;
    tr_mailbox_close(&app->done_mb);
}

static void maybe_finish(struct trellis_app *app)
{
    if (app->server_closed && app->inflight == 0 && !app->finishing) {
        finish(app);
    }
}

static void on_server_closed(struct tr_http_server *srv)
{
    struct trellis_app *app = srv->data;
    app->server_closed = true;
    maybe_finish(app);
}

static void on_server_drained(struct tr_http_server *srv)
{
    tr_http_server_close(srv);
}

static void on_drain_deadline(uv_timer_t *t)
{
    struct trellis_app *app = t->data;
    trellis_log(TRELLIS_LOG_WARN,
                "drain deadline of %llu ms passed: closing connections, cancelling sidecar "
                "calls, waiting for %zu handler(s)",
                (unsigned long long)app->drain_ms, app->inflight);
    if (!app->server_closed) {
        tr_http_server_close(&app->srv);
    }
    pthread_mutex_lock(&app->lock);
    if (app->sidecar != NULL) {
        tr_sdk_sidecar_abort(app->sidecar);
    }
    pthread_mutex_unlock(&app->lock);
}

static void begin_shutdown(struct trellis_app *app, const char *why)
{
    if (app->shutting_down) {
        return;
    }
    app->shutting_down = true;
    trellis_log(TRELLIS_LOG_INFO, "%s: draining (deadline %llu ms)", why,
                (unsigned long long)app->drain_ms);
    uv_timer_start(&app->drain_timer, on_drain_deadline, app->drain_ms, 0);
    tr_http_server_drain(&app->srv);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct trellis_app *app = s->data;
    if (app->shutting_down && signum == SIGINT) {
        on_drain_deadline(&app->drain_timer); /* a second Ctrl-C: stop waiting */
        return;
    }
    begin_shutdown(app, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_stop_async(uv_async_t *a)
{
    begin_shutdown(a->data, "stop requested");
}

void trellis_app_stop(struct trellis_app *app)
{
    if (app == NULL) {
        return;
    }
    pthread_mutex_lock(&app->lock);
    if (app->loop_live) {
        uv_async_send(&app->stop_async);
    } else {
        app->stop_requested = true;
    }
    pthread_mutex_unlock(&app->lock);
}

/* ------------------------------------------------------------ run */

static void add_builtin_routes(struct trellis_app *app)
{
    if (!app->has_health_route) {
        struct tr_sdk_route *r = tr_xcalloc(1, sizeof(*r));
        r->kind = TR_SDK_ROUTE_HEALTH;
        r->app = app;
        TR_ASSERT(add_route(app, "GET", "/healthz", r) == 0);
    }
    if (!app->has_subscribe_route && app->nsubs > 0) {
        tr_sdk_subscribe_json(app);
        struct tr_sdk_route *r = tr_xcalloc(1, sizeof(*r));
        r->kind = TR_SDK_ROUTE_SUBSCRIBE;
        r->app = app;
        TR_ASSERT(add_route(app, "GET", "/dapr/subscribe", r) == 0);
    }
}

/* Binds the listen address: a plain probe first so that a port another process holds
 * (even with SO_REUSEPORT) is an error, as serve.c does. */
static int bind_listener(struct trellis_app *app, int *fd_out, char *text, size_t text_size)
{
    struct tr_addr addr;
    if (tr_addr_parse(app->listen, &addr) != 0) {
        trellis_log(TRELLIS_LOG_ERROR, "invalid listen address \"%s\" (expected host:port)",
                    app->listen);
        return -EINVAL;
    }
    int err = tr_listen_probe(&addr);
    int fd = err == 0 ? tr_listen_socket(&addr, 1024) : err;
    if (fd < 0) {
        trellis_log(TRELLIS_LOG_ERROR, "cannot listen on %s: %s", app->listen,
                    trellis_strerror(fd));
        return fd;
    }
    tr_addr_format((struct sockaddr *)&addr.ss, text, text_size);
    atomic_store(&app->port, tr_addr_port(&addr));
    *fd_out = fd;
    return 0;
}

static int init_loop(struct trellis_app *app, int fd)
{
    uv_loop_init(&app->loop);
    struct tr_http_limits limits;
    tr_http_limits_default(&limits);
    int err = tr_http_server_init(&app->srv, &app->loop, fd, &app->router, &limits);
    app->srv.name = app->name;
    app->srv.data = app;
    app->srv.on_closed = on_server_closed;
    app->srv.on_drained = on_server_drained;
    if (err != 0) {
        trellis_log(TRELLIS_LOG_ERROR, "cannot serve: %s", trellis_strerror(err));
        tr_http_server_close(&app->srv);
        uv_run(&app->loop, UV_RUN_DEFAULT);
        uv_loop_close(&app->loop);
        return err;
    }
    TR_ASSERT(tr_mailbox_init(&app->done_mb, &app->loop) == 0);
    uv_signal_t *sigs[] = {&app->sig_term, &app->sig_int};
    int nums[] = {SIGTERM, SIGINT};
    for (int i = 0; i < 2; i++) {
        uv_signal_init(&app->loop, sigs[i]);
        sigs[i]->data = app;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    uv_async_init(&app->loop, &app->stop_async, on_stop_async);
    app->stop_async.data = app;
    uv_timer_init(&app->loop, &app->drain_timer);
    app->drain_timer.data = app;
    return 0;
}

int trellis_app_run(struct trellis_app *app)
{
    if (app == NULL || app->ran) {
        return 1;
    }
    app->ran = true;
    signal(SIGPIPE, SIG_IGN);
    add_builtin_routes(app);
    int fd = -1;
    char where[80];
    if (bind_listener(app, &fd, where, sizeof(where)) != 0) {
        return 1;
    }
    if (init_loop(app, fd) != 0) {
        return 1;
    }
    int err = tr_sdk_pool_start(&app->pool, app->nthreads, app->max_queued);
    if (err != 0) {
        trellis_log(TRELLIS_LOG_ERROR, "cannot start %u handler threads: %s", app->nthreads,
                    trellis_strerror(err));
        app->exit_code = 1;
        app->nthreads = 0;
        begin_shutdown(app, "no handler threads");
    } else {
        trellis_log(TRELLIS_LOG_INFO, "listening on %s with %u handler threads", where,
                    app->nthreads);
    }
    if (app->on_start != NULL && err == 0) {
        struct start_job *sj = tr_xcalloc(1, sizeof(*sj));
        sj->app = app;
        sj->job.run = run_start;
        sj->done.run = on_start_done;
        TR_ASSERT(tr_sdk_pool_submit(&app->pool, &sj->job));
        app->inflight++;
    } else if (err == 0) {
        atomic_store(&app->ready, true);
    }
    pthread_mutex_lock(&app->lock);
    app->loop_live = true;
    bool stop_now = app->stop_requested;
    pthread_mutex_unlock(&app->lock);
    if (stop_now) {
        begin_shutdown(app, "stop requested");
    }
    uv_run(&app->loop, UV_RUN_DEFAULT);
    if (err == 0) {
        tr_sdk_pool_stop(&app->pool);
    }
    if (uv_loop_close(&app->loop) != 0) {
        trellis_log(TRELLIS_LOG_WARN, "loop still had open handles at exit");
    }
    atomic_store(&app->port, 0);
    trellis_log(TRELLIS_LOG_INFO, "stopped");
    return app->exit_code;
}
