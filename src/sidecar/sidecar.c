/* SPDX-License-Identifier: Apache-2.0 */
/* The sidecar process (see sidecar.h): options -> components -> modules' routes ->
 * listening sockets -> workers. Every request goes through dispatch(), which checks
 * the API token and hands it to the module's handler. Shutdown of a worker:
 *
 *   DRAIN: modules stop background work; the HTTP server drains
 *   server closed and no module holds the worker -> modules stop + dispose
 *   -> client and timer closed -> tr_worker_finish()
 *
 * STOP (the drain deadline) closes the server at once and tells modules to cancel. */
#include "sidecar/sidecar.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "proxy/balancer.h"
#include "sidecar/api_invoke.h"

#define LOG "sidecar"

struct route_rec {
    struct route_rec *next; /* owned chain, freed with the sidecar */
    tr_http_handler_cb *handler;
    unsigned flags;
    struct tr_sidecar *sc;
};

/* ------------------------------------------------------------ responses */

void tr_sidecar_error_json(struct tr_buf *out, const char *code, const char *message)
{
    tr_buf_append_slice(out, TR_SLICE_LIT("{\"errorCode\":\""));
    tr_json_escape(out, tr_slice_cstr(code));
    tr_buf_append_slice(out, TR_SLICE_LIT("\",\"message\":\""));
    tr_json_escape(out, tr_slice_cstr(message));
    tr_buf_append_slice(out, TR_SLICE_LIT("\"}"));
}

void tr_sidecar_error(struct tr_http_req *req, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct tr_buf body;
    tr_buf_init(&body);
    tr_sidecar_error_json(&body, code, msg);
    TR_LOG_DEBUG(LOG, &req->log, "%d %s: %s", status, code, msg);
    tr_http_resp_send(req, status, TR_SLICE_LIT("application/json"), tr_buf_slice(&body));
    tr_buf_dispose(&body);
}

void tr_sidecar_send_json(struct tr_http_req *req, int status, json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (text == NULL) {
        tr_sidecar_error(req, 500, "ERR_INTERNAL", "cannot encode the answer");
        return;
    }
    tr_http_resp_send(req, status, TR_SLICE_LIT("application/json"), tr_slice_cstr(text));
    free(text);
}

/* ------------------------------------------------------------ routes */

/* Constant-time comparison, so the token cannot be guessed byte by byte from timing. */
static bool token_ok(struct tr_slice got, const char *want)
{
    size_t n = strlen(want);
    unsigned diff = got.len != n;
    for (size_t i = 0; i < n; i++) {
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < got.len ? got.ptr[i] : 0);
    }
    return got.ptr != NULL && diff == 0;
}

static void dispatch(struct tr_http_req *req)
{
    const struct route_rec *rec = tr_route_data(req->match.route);
    const char *token = rec->sc->opts.api_token;
    if (token != NULL && !(rec->flags & TR_SIDECAR_ROUTE_PUBLIC) &&
        !token_ok(tr_http_req_header(req, TR_SLICE_LIT("dapr-api-token")), token)) {
        req->resp_close = req->body_complete ? req->resp_close : true;
        tr_sidecar_error(req, 401, "ERR_UNAUTHORIZED",
                         "invalid api token: the dapr-api-token header is missing or wrong");
        return;
    }
    rec->handler(req);
}

int tr_sidecar_route(struct tr_sidecar *sc, const char *method, const char *pattern,
                     tr_http_handler_cb *handler, unsigned flags)
{
    struct route_rec *rec = tr_xcalloc(1, sizeof(*rec));
    rec->handler = handler;
    rec->flags = flags;
    rec->sc = sc;
    rec->next = sc->route_data;
    sc->route_data = rec;
    return tr_router_add(&sc->router, method, pattern, dispatch, rec,
                         flags & (TR_ROUTE_BUFFERED | TR_ROUTE_STREAM));
}

/* Anything no module claimed: the header forms of invocation, else 404. */
static void on_fallback(struct tr_http_req *req)
{
    if (tr_sidecar_invoke_header_form(req)) {
        return;
    }
    req->resp_close = !req->body_complete;
    tr_sidecar_error(req, 404, "ERR_NOT_FOUND", "no Dapr API matches %.*s %.*s",
                     TR_SLICE_FMT(req->method),
                     (int)(req->path.len > 200 ? 200 : req->path.len), req->path.ptr);
}

const struct tr_sidecar_component *tr_sidecar_component(const struct tr_sidecar *sc,
                                                        enum tr_sidecar_comp_kind kind,
                                                        struct tr_slice name)
{
    for (size_t i = 0; i < sc->comps.ncomps; i++) {
        const struct tr_sidecar_component *c = &sc->comps.comps[i];
        if (c->kind == kind && tr_slice_eq(tr_slice_cstr(c->name), name)) {
            return c;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ ids */

static void hex64(uint64_t v, char *out, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) {
        out[i] = hex[v & 15];
        v >>= 4;
    }
}

void tr_sidecar_traceparent_new(uint64_t *rng, char out[56])
{
    uint64_t a = tr_proxy_rand(rng) | 1; /* all-zero ids are invalid (W3C §3.2.2.3) */
    uint64_t b = tr_proxy_rand(rng);
    uint64_t c = tr_proxy_rand(rng) | 1;
    memcpy(out, "00-", 3);
    hex64(a, out + 3, 16);
    hex64(b, out + 19, 16);
    out[35] = '-';
    hex64(c, out + 36, 16);
    memcpy(out + 52, "-01", 4);
}

static bool lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

void tr_sidecar_traceparent_child(struct tr_slice in, uint64_t *rng, char out[56])
{
    tr_sidecar_traceparent_new(rng, out);
    /* W3C Trace Context §3.2: version 00 is 55 characters; ff is invalid; an all-zero
     * trace id is invalid. Later versions may be longer: keep what we understand. */
    if (in.len < 55 || (in.len > 55 && in.ptr[55] != '-') || in.ptr[2] != '-' ||
        in.ptr[35] != '-' || in.ptr[52] != '-' || memcmp(in.ptr, "ff", 2) == 0 ||
        (in.len != 55 && memcmp(in.ptr, "00", 2) == 0)) {
        return;
    }
    for (size_t i = 0; i < 55; i++) {
        if (!lower_hex(in.ptr[i]) && i != 2 && i != 35 && i != 52) {
            return;
        }
    }
    if (memcmp(in.ptr + 3, "00000000000000000000000000000000", 32) == 0 ||
        memcmp(in.ptr + 36, "0000000000000000", 16) == 0) {
        return;
    }
    memcpy(out + 3, in.ptr + 3, 32);  /* trace id */
    memcpy(out + 53, in.ptr + 53, 2); /* flags */
}

void tr_sidecar_uuid(uint64_t *rng, char out[37])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t r[2] = {tr_proxy_rand(rng), tr_proxy_rand(rng)};
    for (int i = 0, nib = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            out[i] = '-';
            continue;
        }
        unsigned v = (unsigned)(r[nib / 16] >> ((nib % 16) * 4)) & 15;
        if (i == 14) {
            v = 4;
        } else if (i == 19) {
            v = 8 | (v & 3);
        }
        out[i] = hex[v];
        nib++;
    }
    out[36] = '\0';
}

/* ------------------------------------------------------------ deadlines */

static void on_deadline_timer(uv_timer_t *t);

static void rearm(struct tr_sidecar_worker *sw)
{
    struct tr_heap_node *min = tr_heap_min(&sw->deadlines);
    if (min == NULL || sw->closing) {
        if (sw->timer_due != 0) {
            uv_timer_stop(&sw->timer);
            sw->timer_due = 0;
        }
        return;
    }
    if (sw->timer_due != 0 && sw->timer_due <= min->key) {
        return;
    }
    uint64_t now = uv_now(sw->loop);
    sw->timer_due = min->key;
    uv_timer_start(&sw->timer, on_deadline_timer, min->key > now ? min->key - now : 0, 0);
}

static void on_deadline_timer(uv_timer_t *t)
{
    struct tr_sidecar_worker *sw = t->data;
    sw->timer_due = 0;
    uint64_t now = uv_now(t->loop);
    struct tr_heap_node *min;
    while ((min = tr_heap_min(&sw->deadlines)) != NULL && min->key <= now) {
        tr_heap_remove(&sw->deadlines, min);
        struct tr_sidecar_deadline *d = tr_container_of(min, struct tr_sidecar_deadline, node);
        d->cb(d);
    }
    rearm(sw);
}

void tr_sidecar_deadline_arm(struct tr_sidecar_worker *sw, struct tr_sidecar_deadline *d,
                             uint64_t due_ms, tr_sidecar_deadline_cb *cb)
{
    tr_heap_remove(&sw->deadlines, &d->node);
    d->cb = cb;
    tr_heap_push(&sw->deadlines, &d->node, due_ms);
    rearm(sw);
}

void tr_sidecar_deadline_cancel(struct tr_sidecar_worker *sw, struct tr_sidecar_deadline *d)
{
    tr_heap_remove(&sw->deadlines, &d->node);
}

/* ------------------------------------------------------------ worker life cycle */

static void worker_close(struct tr_sidecar_worker *sw);

static void maybe_finish(struct tr_sidecar_worker *sw)
{
    if ((sw->draining || sw->stopping) && !sw->srv_live && sw->holds == 0 && !sw->closing &&
        !sw->in_hooks) {
        worker_close(sw);
    }
}

void tr_sidecar_worker_hold(struct tr_sidecar_worker *sw)
{
    sw->holds++;
}

void tr_sidecar_worker_release(struct tr_sidecar_worker *sw)
{
    TR_ASSERT(sw->holds > 0);
    sw->holds--;
    maybe_finish(sw);
}

static void close_step(struct tr_sidecar_worker *sw)
{
    if (--sw->pending_closes > 0) {
        return;
    }
    tr_heap_dispose(&sw->deadlines);
    tr_worker_finish(sw->w);
}

static void on_timer_closed(uv_handle_t *h)
{
    close_step(h->data);
}

static void on_client_closed(void *data)
{
    close_step(data);
}

static void worker_close(struct tr_sidecar_worker *sw)
{
    sw->closing = true;
    sw->in_hooks = true;
    for (size_t i = 0; tr_sidecar_modules[i] != NULL; i++) {
        if (tr_sidecar_modules[i]->worker_stop != NULL) {
            tr_sidecar_modules[i]->worker_stop(sw);
        }
    }
    for (size_t i = 0; tr_sidecar_modules[i] != NULL; i++) {
        if (tr_sidecar_modules[i]->worker_dispose != NULL) {
            tr_sidecar_modules[i]->worker_dispose(sw);
        }
    }
    sw->in_hooks = false;
    sw->pending_closes = 2;
    uv_timer_stop(&sw->timer);
    uv_close((uv_handle_t *)&sw->timer, on_timer_closed);
    tr_http_client_close(sw->client, on_client_closed, sw);
    sw->client = NULL;
}

static void on_server_closed(struct tr_http_server *srv)
{
    struct tr_sidecar_worker *sw = srv->worker_data;
    sw->srv_live = false;
    if (!sw->draining && !sw->stopping) {
        sw->stopping = true; /* failed start */
    }
    maybe_finish(sw);
}

static void on_server_drained(struct tr_http_server *srv)
{
    tr_http_server_close(srv);
}

static int worker_start(struct tr_worker *w)
{
    struct tr_sidecar *sc = w->rt->data;
    struct tr_sidecar_worker *sw = &sc->workers[w->id];
    sw->sc = sc;
    sw->w = w;
    sw->id = w->id;
    sw->loop = &w->loop;
    w->data = sw;
    sw->rng = (uv_hrtime() ^ ((uint64_t)(w->id + 1) * 0x9e3779b97f4a7c15ull)) | 1;
    struct tr_http_client_config cfg;
    tr_http_client_config_init(&cfg);
    cfg.max_idle_per_upstream = 256;
    cfg.idle_timeout_ms = 30000;
    cfg.connect_timeout_ms = 5000;
    cfg.response_timeout_ms = 0; /* every caller arms its own deadline */
    sw->client = tr_http_client_new(&w->loop, &cfg);
    tr_heap_init(&sw->deadlines);
    uv_timer_init(&w->loop, &sw->timer);
    sw->timer.data = sw;
    int err = tr_http_server_init(&sw->srv, &w->loop, sc->fds[w->id], &sc->router,
                                  &sc->opts.limits);
    sc->fds[w->id] = -1; /* the server owns it now, even on failure */
    sw->srv.name = "sidecar";
    sw->srv.data = sc;
    sw->srv.worker = w;
    sw->srv.worker_data = sw;
    sw->srv.worker_id = w->id;
    sw->srv.on_closed = on_server_closed;
    sw->srv.on_drained = on_server_drained;
    sw->srv_live = true;
    for (size_t i = 0; err == 0 && tr_sidecar_modules[i] != NULL; i++) {
        if (tr_sidecar_modules[i]->worker_start != NULL) {
            err = tr_sidecar_modules[i]->worker_start(sw);
            if (err != 0) {
                TR_LOG_ERROR(LOG, NULL, "worker %u: %s failed to start: %s", w->id,
                             tr_sidecar_modules[i]->name, tr_strerror(err));
            }
        }
    }
    if (err != 0) {
        sw->stopping = true;
        tr_http_server_close(&sw->srv);
        return err;
    }
    return 0;
}

static void worker_drain(struct tr_worker *w)
{
    struct tr_sidecar_worker *sw = w->data;
    if (sw->draining || sw->closing) {
        return;
    }
    sw->draining = true;
    sw->in_hooks = true;
    for (size_t i = 0; tr_sidecar_modules[i] != NULL; i++) {
        if (tr_sidecar_modules[i]->worker_drain != NULL) {
            tr_sidecar_modules[i]->worker_drain(sw);
        }
    }
    sw->in_hooks = false;
    if (sw->srv_live) {
        tr_http_server_drain(&sw->srv);
    }
    maybe_finish(sw);
}

static void worker_stop(struct tr_worker *w)
{
    struct tr_sidecar_worker *sw = w->data;
    if (sw->closing) {
        return;
    }
    sw->stopping = true;
    sw->in_hooks = true;
    for (size_t i = 0; tr_sidecar_modules[i] != NULL; i++) {
        if (tr_sidecar_modules[i]->worker_stop != NULL) {
            tr_sidecar_modules[i]->worker_stop(sw);
        }
    }
    sw->in_hooks = false;
    if (sw->srv_live) {
        tr_http_server_close(&sw->srv);
    }
    maybe_finish(sw);
}

static void drain(struct tr_runtime *rt)
{
    struct tr_sidecar *sc = rt->data;
    atomic_store(&sc->draining, true);
    TR_LOG_INFO(LOG, NULL, "shutting down: deregistering, stopping subscriptions, draining");
}

/* ------------------------------------------------------------ startup */

static int bind_sockets(struct tr_sidecar *sc)
{
    struct tr_addr addr;
    snprintf(sc->listen, sizeof(sc->listen), strchr(sc->opts.host, ':') ? "[%s]:%d" : "%s:%d",
             sc->opts.host, sc->opts.http_port);
    if (tr_addr_parse(sc->listen, &addr) != 0) {
        TR_LOG_ERROR(LOG, NULL, "invalid listen address \"%s\"", sc->listen);
        return -1;
    }
    int rc = tr_listen_probe(&addr);
    if (rc != 0) {
        TR_LOG_ERROR(LOG, NULL, "cannot listen on %s: %s", sc->listen, tr_strerror(rc));
        return -1;
    }
    for (unsigned i = 0; i < sc->nworkers; i++) {
        int fd = tr_listen_socket(&addr, 1024);
        if (fd < 0) {
            TR_LOG_ERROR(LOG, NULL, "cannot listen on %s: %s", sc->listen, tr_strerror(fd));
            return -1;
        }
        sc->fds[i] = fd;
    }
    sc->http_port = tr_addr_port(&addr);
    tr_addr_format((struct sockaddr *)&addr.ss, sc->listen, sizeof(sc->listen));
    snprintf(sc->instance_id, sizeof(sc->instance_id), "%s-%d", sc->opts.app_id, sc->http_port);
    return 0;
}

static int prepare(struct tr_runtime *rt)
{
    struct tr_sidecar *sc = rt->data;
    if (bind_sockets(sc) != 0) {
        return -1;
    }
    TR_LOG_INFO(LOG, NULL, "app \"%s\" (port %d): listening on %s with %u worker(s), server %s",
                sc->opts.app_id, sc->opts.app_port, sc->listen, sc->nworkers, sc->server_host);
    return 0;
}

static void log_warnings(const struct tr_buf *warnings)
{
    struct tr_slice all = tr_buf_slice(warnings);
    while (all.len > 0) {
        const char *nl = memchr(all.ptr, '\n', all.len);
        size_t len = nl != NULL ? (size_t)(nl - all.ptr) : all.len;
        TR_LOG_WARN(LOG, NULL, "%.*s", (int)len, all.ptr);
        all.ptr += len + (nl != NULL);
        all.len -= len + (nl != NULL);
    }
}

/* "http://host:port[/]" -> address and Host header. */
static int parse_server(struct tr_sidecar *sc)
{
    const char *s = sc->opts.server;
    if (strncmp(s, "http://", 7) == 0) {
        s += 7;
    } else if (strstr(s, "://") != NULL) {
        fprintf(stderr, "trellis sidecar: --server: only http:// is supported, got \"%s\"\n",
                sc->opts.server);
        return 2;
    }
    size_t n = strcspn(s, "/");
    if (n == 0 || n >= sizeof(sc->server_host)) {
        fprintf(stderr, "trellis sidecar: --server: expected http://host:port, got \"%s\"\n",
                sc->opts.server);
        return 2;
    }
    memcpy(sc->server_host, s, n);
    sc->server_host[n] = '\0';
    if (tr_addr_parse(sc->server_host, &sc->server_addr) != 0) {
        fprintf(stderr,
                "trellis sidecar: --server: expected http://<numeric ip or localhost>:port, "
                "got \"%s\"\n",
                sc->opts.server);
        return 2;
    }
    return 0;
}

static int setup(struct tr_sidecar *sc)
{
    int rc = parse_server(sc);
    if (rc != 0) {
        return rc;
    }
    snprintf(sc->app_host, sizeof(sc->app_host), "127.0.0.1:%d", sc->opts.app_port);
    if (tr_addr_parse(sc->app_host, &sc->app_addr) != 0) {
        fprintf(stderr, "trellis sidecar: invalid --app-port %d\n", sc->opts.app_port);
        return 2;
    }
    struct tr_conf_err err;
    if (sc->opts.components_dir != NULL) {
        if (tr_sidecar_components_load_dir(&sc->comps, sc->opts.components_dir, sc->opts.app_id,
                                           &err) != 0) {
            fprintf(stderr, "trellis sidecar: %s\n", err.msg);
            return 2;
        }
    } else {
        tr_sidecar_components_defaults(&sc->comps);
    }
    log_warnings(&sc->comps.warnings);
    for (size_t i = 0; tr_sidecar_modules[i] != NULL; i++) {
        TR_ASSERT(i < TR_SIDECAR_MAX_MODULES);
        if (tr_sidecar_modules[i]->init != NULL && tr_sidecar_modules[i]->init(sc, (unsigned)i) != 0) {
            return 2;
        }
    }
    if (tr_sidecar_route(sc, "*", "/*path", on_fallback, TR_ROUTE_STREAM) != 0) {
        TR_ASSERT(!"fallback route");
    }
    for (size_t i = 0; i < sc->comps.ncomps; i++) {
        const struct tr_sidecar_component *c = &sc->comps.comps[i];
        TR_LOG_INFO(LOG, NULL, "component \"%s\" (%s/%s) from %s", c->name, c->type, c->version,
                    c->file);
    }
    return 0;
}

static const struct tr_runtime_ops sidecar_ops = {
    .prepare = prepare,
    .drain = drain,
    .worker_start = worker_start,
    .worker_drain = worker_drain,
    .worker_stop = worker_stop,
};

static void teardown(struct tr_sidecar *sc)
{
    for (size_t i = 0; tr_sidecar_modules[i] != NULL; i++) {
        if (tr_sidecar_modules[i]->cleanup != NULL) {
            tr_sidecar_modules[i]->cleanup(sc);
        }
    }
    for (unsigned i = 0; i < sc->nworkers; i++) {
        if (sc->fds[i] >= 0) {
            close(sc->fds[i]);
        }
    }
    struct route_rec *rec = sc->route_data;
    while (rec != NULL) {
        struct route_rec *next = rec->next;
        tr_free_null(&rec);
        rec = next;
    }
    tr_router_dispose(&sc->router);
    tr_sidecar_components_dispose(&sc->comps);
    json_decref(sc->extended);
    pthread_mutex_destroy(&sc->extended_lock);
    tr_free_null(&sc->fds);
    tr_free_null(&sc->workers);
}

int tr_sidecar_run(const struct tr_sidecar_options *opts)
{
    struct tr_sidecar *sc = tr_xcalloc(1, sizeof(*sc));
    sc->opts = *opts;
    if (sc->opts.host == NULL) {
        sc->opts.host = "127.0.0.1";
    }
    sc->nworkers = opts->workers > 0 ? opts->workers : 1;
    sc->fds = tr_xmalloc(sc->nworkers * sizeof(*sc->fds));
    for (unsigned i = 0; i < sc->nworkers; i++) {
        sc->fds[i] = -1;
    }
    sc->workers = tr_xcalloc(sc->nworkers, sizeof(*sc->workers));
    sc->extended = json_object();
    pthread_mutex_init(&sc->extended_lock, NULL);
    sc->started_ms = uv_hrtime() / 1000000;
    tr_router_init(&sc->router);
    tr_sidecar_components_init(&sc->comps);
    int rc = setup(sc);
    if (rc == 0) {
        struct tr_runtime rt = {
            .ops = &sidecar_ops,
            .data = sc,
            .name = "sidecar",
            .nworkers = sc->nworkers,
            .drain_ms = opts->drain_ms,
        };
        sc->rt = &rt;
        rc = tr_runtime_run(&rt);
        sc->rt = NULL;
    }
    teardown(sc);
    tr_free_null(&sc);
    return rc;
}
