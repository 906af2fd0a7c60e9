/* SPDX-License-Identifier: Apache-2.0 */
/* Service invocation: ANY /v1.0/invoke/{app-id}/method/{path} and the dapr-app-id
 * header form. One struct inv per request:
 *
 *   app-id == ours  -> the local app: <method> /{path}?{query} to 127.0.0.1:app-port
 *   otherwise       -> the app's on-demand cluster (registry, healthy instances, port
 *                      from Meta.dapr_http_port): breaker admit, balancer pick (outlier
 *                      ejections skipped), the same /v1.0/invoke/... to that sidecar,
 *                      which delivers it to its app
 *   request body  --on_body--> pending --req_write--> inflight --write cb--> (kernel)
 *   response      --headers/body--> client (upstream paused above the high-water mark)
 *   failure before the response: the proxy's retry policy (connect failures for every
 *   method, resets for idempotent ones, the next endpoint) or 500 ERR_DIRECT_INVOKE
 *
 * The body relay, retry and backoff follow src/proxy/forward.c; the breaker and
 * outlier detection are the proxy's (breaker.h, outlier.h) fed with transport
 * failures only: an app's own 5xx answers are results, not failures (Dapr has no
 * default resiliency policy). Requests with Upgrade become a raw tunnel (tunnel.c):
 * WebSockets pass through, which Dapr cannot do. traceparent keeps its trace id and
 * gets a new parent id per sidecar hop; one is generated when absent. */
#include "sidecar/api_invoke.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/map.h"
#include "core/mem.h"
#include "http/client.h"
#include "proxy/balancer.h"
#include "proxy/breaker.h"
#include "proxy/discovery.h"
#include "proxy/endpoints.h"
#include "proxy/headers.h"
#include "proxy/ondemand.h"
#include "proxy/outlier.h"
#include "proxy/retry.h"
#include "sidecar/modules.h"
#include "sidecar/sidecar.h"
#include "sidecar/tunnel.h"

#define LOG "sidecar"
#define BODY_HIGH_WATER (64 * 1024)
#define INVOKE_TIMEOUT_MS 60000 /* request start (or body end) to response headers */
#define SYNC_WAIT_MS 3000       /* first call to an app: wait for the registry's answer */
#define SYNC_POLL_MS 5
#define YOUNG_MS 10000     /* a cluster this new may not have seen its first instance yet */
#define EMPTY_WAIT_MS 1000 /* ... so an empty answer is waited on this long */
#define MAX_APPS 1024
#define EXTRA_HEADERS 6

struct invoke_mod {
    struct tr_proxy_discovery *disc;
    struct tr_proxy_ondemand *od;
};

struct flushq_entry {
    struct tr_list link;
    struct tr_http_req *req;
};

struct invoke_worker {
    struct tr_sidecar_worker *sw;
    struct tr_map apps;     /* app id -> struct tr_proxy_odc * (this worker's cache) */
    uv_check_t flush;       /* pushes responses written from upstream reads */
    struct tr_list flushq;  /* struct flushq_entry */
    struct tr_list live;    /* struct inv in flight */
    struct tr_list tunnels; /* struct tr_sidecar_tunnel */
};

struct inv {
    struct tr_http_req *req; /* NULL once answered or gone */
    struct tr_sidecar_worker *sw;
    struct invoke_worker *iw;
    struct tr_list link;      /* in iw->live */
    struct tr_proxy_odc *odc; /* remote app's cluster; NULL for our own app */
    struct tr_http_client_req *up;
    struct tr_proxy_eps *eps; /* the current attempt's set (held), or NULL */
    int ep;
    struct tr_proxy_eps *last_eps; /* compared, never read */
    int last_ep;
    char last_name[64];
    struct tr_sidecar_deadline deadline; /* overall timeout */
    struct tr_sidecar_deadline timer;    /* registry wait poll, retry backoff */
    struct flushq_entry flush;
    struct tr_buf pending;
    struct tr_buf inflight;
    struct tr_slice target; /* upstream request-target, in the request arena */
    uint64_t wait_until;    /* loop ms: give up waiting for the registry */
    uint64_t empty_until;   /* loop ms: give up waiting for a first instance */
    unsigned attempts;
    char app_id[129];
    char traceparent[56];
    bool has_body;
    bool body_done;
    bool body_acked;
    bool body_ended;
    bool writing;
    bool client_paused;
    bool resp_started;
    bool retry_after_write;
    bool idempotent;
    bool probe;   /* admitted as the breaker's half-open probe */
    bool upgrade; /* an Upgrade request: becomes a tunnel */
    bool finished;
};

static unsigned mod_index;

static void attempt_start(struct inv *x);
static void flush_body(struct inv *x);

static struct invoke_mod *mod_of(struct tr_sidecar *sc)
{
    return sc->mod[mod_index];
}

static struct invoke_worker *iw_of(struct tr_sidecar_worker *sw)
{
    return sw->mod[mod_index];
}

/* ------------------------------------------------------------ output flushing */

static void on_flush(uv_check_t *h)
{
    struct invoke_worker *iw = h->data;
    struct tr_list *l;
    while ((l = tr_list_first(&iw->flushq)) != NULL) {
        tr_list_remove(l);
        tr_http_resp_flush(tr_container_of(l, struct flushq_entry, link)->req);
    }
    uv_check_stop(h);
}

static void flush_later(struct inv *x)
{
    if (tr_list_linked(&x->flush.link) || x->req == NULL) {
        return;
    }
    x->flush.req = x->req;
    if (tr_list_empty(&x->iw->flushq)) {
        uv_check_start(&x->iw->flush, on_flush);
    }
    tr_list_insert_tail(&x->iw->flushq, &x->flush.link);
}

static void flush_cancel(struct inv *x)
{
    if (tr_list_linked(&x->flush.link)) {
        tr_list_remove(&x->flush.link);
    }
}

/* ------------------------------------------------------------ finishing */

static void inv_free(struct inv *x)
{
    tr_buf_dispose(&x->pending);
    tr_buf_dispose(&x->inflight);
    tr_free_null(&x);
}

static void release_endpoint(struct inv *x)
{
    if (x->eps != NULL) {
        memcpy(x->last_name, x->eps->eps[x->ep].name, sizeof(x->last_name));
        tr_proxy_odc_release(x->odc, x->sw->id, x->eps, x->ep);
        x->last_eps = x->eps;
        x->last_ep = x->ep;
        x->eps = NULL;
    }
}

static void finish(struct inv *x)
{
    x->finished = true;
    tr_sidecar_deadline_cancel(x->sw, &x->deadline);
    tr_sidecar_deadline_cancel(x->sw, &x->timer);
    release_endpoint(x);
    if (x->probe) {
        tr_proxy_breaker_abandon(&x->odc->workers[x->sw->id].breaker);
        x->probe = false;
    }
    tr_list_remove(&x->link);
    if (!x->writing) {
        inv_free(x);
    }
}

/* Detaches from the client request before answering: ending a response may start the
 * connection's next pipelined request in the same struct at once. */
static struct tr_http_req *take_req(struct inv *x)
{
    struct tr_http_req *req = x->req;
    x->req = NULL;
    flush_cancel(x);
    req->on_body = NULL;
    req->on_body_end = NULL;
    req->user = NULL;
    return req;
}

static void fail(struct inv *x, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Answers 500 ERR_DIRECT_INVOKE (Dapr's code for every invocation failure). */
static void fail(struct inv *x, int status, const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    struct tr_http_req *req = take_req(x);
    if (!req->body_complete) {
        req->resp_close = true;
    }
    tr_sidecar_error(req, status, "ERR_DIRECT_INVOKE", "failed to invoke, id: %s, err: %s",
                     x->app_id, why);
    finish(x);
}

/* ------------------------------------------------------------ client side */

static void on_client_drain(struct tr_http_req *req)
{
    struct inv *x = req->user;
    if (x != NULL && x->up != NULL) {
        tr_http_client_req_resume(x->up);
    }
}

static void client_gone(struct inv *x)
{
    x->req = NULL;
    flush_cancel(x);
    if (x->up != NULL) {
        tr_http_client_req_cancel(x->up);
        x->up = NULL;
    }
    finish(x);
}

static void maybe_end_body(struct inv *x)
{
    if (!x->has_body || !x->body_done || x->writing || x->pending.len > 0 || x->up == NULL ||
        x->body_ended) {
        return;
    }
    x->body_ended = true;
    if (tr_http_client_req_end(x->up) != 0) {
        tr_http_client_req_cancel(x->up);
        x->up = NULL;
        release_endpoint(x);
        fail(x, 500, "the request body ended early");
    }
}

static void on_client_body(struct tr_http_req *req, struct tr_slice chunk)
{
    struct inv *x = req->user;
    tr_buf_append_slice(&x->pending, chunk);
    if (x->up != NULL && !x->writing) {
        flush_body(x);
    } else if (x->pending.len >= BODY_HIGH_WATER && !x->client_paused) {
        x->client_paused = true;
        tr_http_req_pause(req);
    }
}

static void on_deadline(struct tr_sidecar_deadline *d);

static void on_client_body_end(struct tr_http_req *req, bool complete)
{
    struct inv *x = req->user;
    if (!complete) {
        client_gone(x);
        return;
    }
    x->body_done = true;
    if (x->has_body && !x->resp_started) {
        tr_sidecar_deadline_arm(x->sw, &x->deadline, uv_now(x->sw->loop) + INVOKE_TIMEOUT_MS,
                                on_deadline);
    }
    maybe_end_body(x);
}

/* ------------------------------------------------------------ request body up */

static void on_up_written(int status, void *data)
{
    struct inv *x = data;
    x->writing = false;
    if (status == 0) {
        x->body_acked = true;
        tr_buf_reset(&x->inflight);
    }
    if (x->finished) {
        inv_free(x);
        return;
    }
    if (x->retry_after_write) {
        x->retry_after_write = false;
        attempt_start(x);
        return;
    }
    if (status == 0) {
        flush_body(x);
        maybe_end_body(x);
    }
}

static void flush_body(struct inv *x)
{
    if (x->writing || x->up == NULL || x->pending.len == 0) {
        return;
    }
    TR_ASSERT(x->inflight.len == 0);
    struct tr_buf tmp = x->inflight;
    x->inflight = x->pending;
    x->pending = tmp;
    if (tr_http_client_req_write(x->up, tr_buf_slice(&x->inflight), on_up_written, x) != 0) {
        struct tr_buf back = x->pending;
        x->pending = x->inflight;
        x->inflight = back;
        return;
    }
    x->writing = true;
    if (x->client_paused && x->req != NULL) {
        x->client_paused = false;
        tr_http_req_resume(x->req);
    }
}

/* ------------------------------------------------------------ resilience */

static uint64_t now_ms(const struct inv *x)
{
    return uv_now(x->sw->loop);
}

/* Feeds the breaker and outlier detection with an attempt's outcome (remote only). */
static void report(struct inv *x, bool failed)
{
    if (x->odc == NULL) {
        return;
    }
    struct tr_proxy_odc_worker *cw = &x->odc->workers[x->sw->id];
    if (tr_proxy_breaker_report(&cw->breaker, &x->odc->cfg.breaker, !failed, x->probe,
                                now_ms(x))) {
        TR_LOG_WARN(LOG, NULL, "app \"%s\": circuit breaker open for %llu ms after %llu failures",
                    x->app_id, (unsigned long long)x->odc->cfg.breaker.open_for_ms,
                    (unsigned long long)x->odc->cfg.breaker.consecutive_failures);
    }
    x->probe = false;
    if (x->eps != NULL &&
        tr_proxy_outlier_report(&cw->outlier, &x->odc->cfg.outlier, x->eps, x->sw->id,
                                (size_t)x->ep, failed, now_ms(x))) {
        TR_LOG_WARN(LOG, NULL, "app \"%s\": instance %s ejected after %llu failures in a row",
                    x->app_id, x->eps->eps[x->ep].name,
                    (unsigned long long)x->odc->cfg.outlier.consecutive_5xx);
    }
}

static const struct tr_proxy_retry_policy *retry_policy(const struct inv *x)
{
    static const struct tr_proxy_retry_policy local = {
        .configured = true,
        .attempts = 1,
        .on = TR_PROXY_RETRY_CONNECT_FAILURE,
    };
    return x->odc != NULL ? &x->odc->cfg.retry : &local;
}

static void on_retry_timer(struct tr_sidecar_deadline *d)
{
    struct inv *x = tr_container_of(d, struct inv, timer);
    if (x->writing) {
        x->retry_after_write = true;
        return;
    }
    attempt_start(x);
}

static bool retry_allowed(struct inv *x, struct tr_proxy_retry_facts *f)
{
    f->policy = retry_policy(x);
    f->attempts = x->attempts;
    f->idempotent = x->idempotent;
    f->body_acked = x->body_acked;
    return f->status != 0 ? tr_proxy_retry_on_status(f) : tr_proxy_retry_on_error(f);
}

static void retry_start(struct inv *x)
{
    uint64_t wait = tr_proxy_retry_backoff_ms(retry_policy(x), x->attempts, &x->sw->rng);
    if (wait > 0) {
        tr_sidecar_deadline_arm(x->sw, &x->timer, now_ms(x) + wait, on_retry_timer);
    } else if (x->writing) {
        x->retry_after_write = true;
    } else {
        attempt_start(x);
    }
}

/* ------------------------------------------------------------ upstream response */

static void up_headers(struct tr_http_client_req *up, const struct tr_http_client_resp *resp,
                       void *data)
{
    struct inv *x = data;
    (void)up;
    report(x, false);
    x->resp_started = true;
    tr_sidecar_deadline_cancel(x->sw, &x->deadline);
    struct tr_http_req *req = x->req;
    int64_t announced = tr_proxy_headers_response(req, resp, TR_SLICE_NULL);
    uint64_t len;
    if (resp->has_body) {
        len = resp->content_length >= 0 ? (uint64_t)resp->content_length : UINT64_MAX;
    } else if (req->method_id == HTTP_HEAD) {
        len = announced >= 0 ? (uint64_t)announced : UINT64_MAX;
    } else {
        len = 0;
    }
    tr_http_resp_start(req, resp->status, TR_SLICE_NULL, len);
    tr_buf_dispose(&req->resp_headers);
    tr_buf_init(&req->resp_headers);
    flush_later(x);
}

static void up_body(struct tr_http_client_req *up, struct tr_slice chunk, void *data)
{
    struct inv *x = data;
    if (tr_http_resp_write(x->req, chunk, on_client_drain)) {
        tr_http_client_req_pause(up);
    }
    flush_later(x);
}

static void up_end(struct tr_http_client_req *up, void *data)
{
    struct inv *x = data;
    (void)up;
    x->up = NULL;
    struct tr_http_req *req = take_req(x);
    tr_http_resp_end(req);
    finish(x);
}

static const char *cause(int err, unsigned flags)
{
    if ((flags & TR_HTTP_CLIENT_ERR_CONNECT) || err == TR_HTTP_CLIENT_E_CONNECT_TIMEOUT) {
        return "connection failed";
    }
    return "upstream failed";
}

static enum tr_proxy_upstream_err classify(int err, unsigned flags)
{
    if ((flags & TR_HTTP_CLIENT_ERR_CONNECT) || err == TR_HTTP_CLIENT_E_CONNECT_TIMEOUT) {
        return TR_PROXY_UERR_CONNECT;
    }
    switch (err) {
    case TR_HTTP_CLIENT_E_RESPONSE_TIMEOUT:
    case TR_HTTP_CLIENT_E_READ_TIMEOUT:
        return TR_PROXY_UERR_TIMEOUT;
    case TR_HTTP_CLIENT_E_BAD_RESPONSE:
    case TR_HTTP_CLIENT_E_HEADERS_TOO_LARGE:
        return TR_PROXY_UERR_PROTOCOL;
    default:
        return TR_PROXY_UERR_RESET;
    }
}

static void up_error(struct tr_http_client_req *up, int err, unsigned flags, void *data)
{
    struct inv *x = data;
    (void)up;
    x->up = NULL;
    report(x, true);
    release_endpoint(x);
    tr_sidecar_deadline_cancel(x->sw, &x->timer);
    if (x->resp_started) {
        struct tr_http_req *req = take_req(x);
        tr_http_resp_abort(req);
        finish(x);
        return;
    }
    struct tr_proxy_retry_facts f = {
        .err = classify(err, flags),
        .headers_seen = (flags & TR_HTTP_CLIENT_ERR_HEADERS_SEEN) != 0,
    };
    if (retry_allowed(x, &f)) {
        retry_start(x);
        return;
    }
    if (x->odc == NULL) {
        fail(x, 500, "app on port %d: %s: %s", x->sw->sc->opts.app_port, cause(err, flags),
             tr_http_client_strerror(err));
    } else {
        fail(x, 500, "instance %s: %s: %s", x->last_name, cause(err, flags),
             tr_http_client_strerror(err));
    }
}

static const struct tr_http_client_handler up_handler = {
    .on_headers = up_headers,
    .on_body = up_body,
    .on_end = up_end,
    .on_error = up_error,
};

static void on_deadline(struct tr_sidecar_deadline *d)
{
    struct inv *x = tr_container_of(d, struct inv, deadline);
    tr_sidecar_deadline_cancel(x->sw, &x->timer);
    x->retry_after_write = false;
    if (x->up != NULL) {
        tr_http_client_req_cancel(x->up);
        x->up = NULL;
        report(x, true);
        release_endpoint(x);
    }
    fail(x, 500, "no response within %d ms", INVOKE_TIMEOUT_MS);
}

/* ------------------------------------------------------------ attempts */

static bool hidden_header(struct tr_slice name, bool replace_caller)
{
    return tr_slice_caseeq(name, TR_SLICE_LIT("dapr-api-token")) ||
           tr_slice_caseeq(name, TR_SLICE_LIT("dapr-app-id")) ||
           tr_slice_caseeq(name, TR_SLICE_LIT("traceparent")) ||
           tr_slice_caseeq(name, TR_SLICE_LIT("dapr-callee-app-id")) ||
           (replace_caller && tr_slice_caseeq(name, TR_SLICE_LIT("dapr-caller-app-id")));
}

/* The headers for the next hop: the client's end-to-end ones (proxy rules), minus
 * tokens and routing headers, plus traceparent, caller/callee ids and the token the
 * next hop expects. */
static size_t build_headers(struct inv *x, struct tr_http_client_header **out)
{
    struct tr_http_req *req = x->req;
    struct tr_sidecar *sc = x->sw->sc;
    size_t cap = req->nheaders + TR_PROXY_HEADERS_ADDED + EXTRA_HEADERS;
    struct tr_http_client_header *h = tr_arena_alloc(&req->arena, cap * sizeof(*h));
    struct tr_proxy_fwd fwd = {
        .client_ip = tr_proxy_peer_ip(req->log.peer != NULL ? req->log.peer : ""),
        .request_id = TR_SLICE_NULL,
    };
    size_t n = tr_proxy_headers_request(req, &fwd, h, &req->arena);
    bool had_caller = tr_http_req_header(req, TR_SLICE_LIT("dapr-caller-app-id")).ptr != NULL;
    /* From the app (no caller header yet): we are the caller. From a sidecar: keep it. */
    bool replace_caller = !had_caller || x->odc != NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!hidden_header(h[i].name, replace_caller)) {
            h[k++] = h[i];
        }
    }
    h[k++] = (struct tr_http_client_header){TR_SLICE_LIT("traceparent"),
                                            tr_slice(x->traceparent, 55)};
    if (replace_caller) {
        h[k++] = (struct tr_http_client_header){TR_SLICE_LIT("dapr-caller-app-id"),
                                                tr_slice_cstr(sc->opts.app_id)};
    }
    h[k++] = (struct tr_http_client_header){TR_SLICE_LIT("dapr-callee-app-id"),
                                            tr_slice_cstr(x->app_id)};
    const char *token = x->odc != NULL ? sc->opts.api_token : sc->opts.app_api_token;
    if (token != NULL) {
        h[k++] = (struct tr_http_client_header){TR_SLICE_LIT("dapr-api-token"),
                                                tr_slice_cstr(token)};
    }
    *out = h;
    return k;
}

static int send_request(struct inv *x, const struct tr_addr *addr)
{
    struct tr_http_req *req = x->req;
    struct tr_http_client_header *hdrs;
    size_t n = build_headers(x, &hdrs);
    struct tr_http_client_request r = {
        .upstream = *addr,
        .method = req->method,
        .target = x->target,
        .headers = hdrs,
        .header_count = n,
        .handler = &up_handler,
        .data = x,
    };
    if (x->has_body) {
        r.stream_body = true;
        r.content_length = req->chunked ? -1 : (int64_t)req->content_length;
    }
    return tr_http_client_request(x->sw->client, &r, &x->up);
}

static void tunnel_start(struct inv *x);

static void on_sync_poll(struct tr_sidecar_deadline *d)
{
    struct inv *x = tr_container_of(d, struct inv, timer);
    if (x->upgrade) {
        tunnel_start(x);
    } else {
        attempt_start(x);
    }
}

/* Picks the remote instance; false after answering (`x` is gone then) or scheduling
 * a wait (on_sync_poll tries again). */
static bool pick_remote(struct inv *x, const struct tr_addr **addr)
{
    unsigned w = x->sw->id;
    struct tr_proxy_eps *eps = tr_proxy_odc_eps(x->odc, w);
    if (eps == NULL && !tr_proxy_odc_synced(x->odc)) {
        if (now_ms(x) < x->wait_until) {
            tr_sidecar_deadline_arm(x->sw, &x->timer, now_ms(x) + SYNC_POLL_MS, on_sync_poll);
            return false;
        }
        fail(x, 500, "the registry at %s did not answer for app %s", x->sw->sc->server_host,
             x->app_id);
        return false;
    }
    if (eps == NULL || eps->n == 0) {
        /* Apps that start together call each other before their registrations are
         * passing: a cluster's first calls wait a little for an instance. */
        uint64_t age_ms = (uv_hrtime() - x->odc->created_ns) / 1000000;
        if (age_ms < YOUNG_MS && now_ms(x) < x->empty_until) {
            tr_sidecar_deadline_arm(x->sw, &x->timer, now_ms(x) + SYNC_POLL_MS, on_sync_poll);
            return false;
        }
        fail(x, 500, "no healthy instance of app %s in the registry", x->app_id);
        return false;
    }
    struct tr_proxy_odc_worker *cw = &x->odc->workers[w];
    if (x->attempts == 0) {
        enum tr_proxy_breaker_verdict v = tr_proxy_breaker_admit(&cw->breaker, now_ms(x));
        if (v == TR_PROXY_BREAKER_REJECT) {
            fail(x, 500, "circuit breaker is open for app %s (retry in %llu s)", x->app_id,
                 (unsigned long long)tr_proxy_breaker_retry_after_s(&cw->breaker, now_ms(x)));
            return false;
        }
        x->probe = v == TR_PROXY_BREAKER_PROBE;
    }
    struct tr_proxy_pick pick = {
        .worker = w,
        .rng = &x->sw->rng,
        .avoid = eps == x->last_eps ? x->last_ep : -1,
        .check_ejected = tr_proxy_outlier_prepare(&cw->outlier, eps, w, now_ms(x)),
        .now_ms = now_ms(x),
    };
    int ep = tr_proxy_balancer_pick(x->odc->cfg.lb, eps, &pick);
    if (ep < 0) {
        fail(x, 500, "no healthy instance of app %s in the registry", x->app_id);
        return false;
    }
    x->eps = eps;
    x->ep = ep;
    tr_proxy_odc_hold(x->odc, w, eps, ep);
    *addr = &eps->eps[ep].addr;
    return true;
}

static void attempt_start(struct inv *x)
{
    const struct tr_addr *addr = &x->sw->sc->app_addr;
    if (x->odc != NULL && !pick_remote(x, &addr)) {
        return;
    }
    x->attempts++;
    if (x->inflight.len > 0) {
        tr_buf_append_slice(&x->inflight, tr_buf_slice(&x->pending));
        struct tr_buf tmp = x->pending;
        x->pending = x->inflight;
        x->inflight = tmp;
        tr_buf_reset(&x->inflight);
    }
    x->body_ended = false;
    int err = send_request(x, addr);
    if (err != 0) {
        x->up = NULL;
        up_error(NULL, err, TR_HTTP_CLIENT_ERR_CONNECT, x);
        return;
    }
    flush_body(x);
    maybe_end_body(x);
}

/* ------------------------------------------------------------ entry */

/* RFC 9110 §9.2.2. */
static bool method_idempotent(uint8_t m)
{
    return m == HTTP_GET || m == HTTP_HEAD || m == HTTP_OPTIONS || m == HTTP_TRACE ||
           m == HTTP_PUT || m == HTTP_DELETE;
}

static bool valid_app_id(struct tr_slice id)
{
    if (id.len == 0 || id.len > 128) {
        return false;
    }
    for (size_t i = 0; i < id.len; i++) {
        char c = id.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.')) {
            return false;
        }
    }
    return true;
}

/* Looks the app's cluster up (this worker's cache, then the shared table). */
static int cluster_of(struct tr_sidecar_worker *sw, struct tr_slice app, struct tr_proxy_odc **out)
{
    struct invoke_worker *iw = iw_of(sw);
    *out = tr_map_get(&iw->apps, app);
    if (*out != NULL) {
        return 0;
    }
    int rc = tr_proxy_ondemand_get(mod_of(sw->sc)->od, app, out);
    if (rc == 0) {
        tr_map_put(&iw->apps, app, *out);
    }
    return rc;
}

static bool wants_upgrade(const struct tr_http_req *req)
{
    return tr_http_req_header(req, TR_SLICE_LIT("Upgrade")).ptr != NULL &&
           tr_slice_list_has(tr_http_req_header(req, TR_SLICE_LIT("Connection")),
                             TR_SLICE_LIT("upgrade"));
}

/* `app` is the target app id, `target` the request-target to send upstream. */
static void start(struct tr_http_req *req, struct tr_slice app, struct tr_slice local_target,
                  struct tr_slice remote_target)
{
    struct tr_sidecar_worker *sw = tr_sidecar_worker_of(req);
    struct tr_sidecar *sc = sw->sc;
    if (app.len == 0) {
        req->resp_close = !req->body_complete;
        tr_sidecar_error(req, 404, "ERR_DIRECT_INVOKE",
                         "failed getting app id either from the URL path or the header "
                         "dapr-app-id");
        return;
    }
    if (!valid_app_id(app)) {
        req->resp_close = !req->body_complete;
        tr_sidecar_error(req, 400, "ERR_DIRECT_INVOKE",
                         "invalid app id \"%.*s\": 1 to 128 letters, digits, '-', '_' or '.'",
                         (int)(app.len > 64 ? 64 : app.len), app.ptr);
        return;
    }
    struct inv *x = tr_xcalloc(1, sizeof(*x));
    x->req = req;
    x->sw = sw;
    x->iw = iw_of(sw);
    x->ep = -1;
    x->last_ep = -1;
    memcpy(x->app_id, app.ptr, app.len);
    x->app_id[app.len] = '\0';
    x->idempotent = method_idempotent(req->method_id);
    x->has_body = req->chunked || (req->content_length != UINT64_MAX && req->content_length > 0);
    tr_buf_init(&x->pending);
    tr_buf_init(&x->inflight);
    tr_list_init(&x->flush.link);
    tr_list_insert_tail(&x->iw->live, &x->link);
    tr_sidecar_traceparent_child(tr_http_req_header(req, TR_SLICE_LIT("traceparent")), &sw->rng,
                                 x->traceparent);
    bool local = tr_slice_eq(app, tr_slice_cstr(sc->opts.app_id));
    x->target = local ? local_target : remote_target;
    if (!local) {
        int rc = cluster_of(sw, app, &x->odc);
        if (rc != 0) {
            fail(x, 500, "more than %d app ids were called: app %s is not looked up", MAX_APPS,
                 x->app_id);
            return;
        }
    }
    x->wait_until = now_ms(x) + SYNC_WAIT_MS;
    x->empty_until = now_ms(x) + EMPTY_WAIT_MS;
    req->user = x;
    req->on_body_end = on_client_body_end;
    if (wants_upgrade(req)) {
        x->upgrade = true;
        tunnel_start(x);
        return;
    }
    if (x->has_body) {
        req->on_body = on_client_body;
    }
    tr_sidecar_deadline_arm(sw, &x->deadline, now_ms(x) + INVOKE_TIMEOUT_MS, on_deadline);
    attempt_start(x);
}

/* "/" + path + ("?" query), in the request arena. */
static struct tr_slice join_target(struct tr_http_req *req, struct tr_slice path)
{
    bool q = req->target.len > req->path.len; /* a '?' was sent, maybe with nothing after */
    size_t n = 1 + path.len + (q ? 1 + req->query.len : 0);
    char *p = tr_arena_alloc(&req->arena, n);
    p[0] = '/';
    memcpy(p + 1, path.ptr, path.len);
    if (q) {
        p[1 + path.len] = '?';
        memcpy(p + 2 + path.len, req->query.ptr, req->query.len);
    }
    return tr_slice(p, n);
}

static void on_invoke_no_method(struct tr_http_req *req);

static void on_invoke(struct tr_http_req *req)
{
    struct tr_slice app = tr_http_req_param(req, "app");
    struct tr_slice path = tr_http_req_param(req, "path");
    if (path.len == 0) {
        on_invoke_no_method(req);
        return;
    }
    start(req, app, join_target(req, path), req->target);
}

static void on_invoke_no_method(struct tr_http_req *req)
{
    req->resp_close = !req->body_complete;
    tr_sidecar_error(req, 400, "ERR_DIRECT_INVOKE", "no method: use /v1.0/invoke/%.*s/method/<path>",
                     TR_SLICE_FMT(tr_http_req_param(req, "app")));
}

/* Authorization: Basic base64("dapr-app-id:<app>"), Dapr's URL form
 * http://dapr-app-id:<app>@localhost:3500/<path>. The app id, in the request arena. */
static struct tr_slice basic_auth_app(struct tr_http_req *req)
{
    struct tr_slice auth = tr_http_req_header(req, TR_SLICE_LIT("Authorization"));
    if (auth.len <= 6 || strncasecmp(auth.ptr, "Basic ", 6) != 0) {
        return TR_SLICE_NULL;
    }
    struct tr_buf dec;
    tr_buf_init(&dec);
    struct tr_slice app = TR_SLICE_NULL;
    if (tr_base64_decode(&dec, tr_slice_trim(tr_slice(auth.ptr + 6, auth.len - 6))) == 0 &&
        tr_slice_starts_with(tr_buf_slice(&dec), TR_SLICE_LIT("dapr-app-id:"))) {
        app = tr_arena_slice_dup(&req->arena, tr_slice(tr_buf_data(&dec) + 12, dec.len - 12));
    }
    tr_buf_dispose(&dec);
    return app;
}

bool tr_sidecar_invoke_header_form(struct tr_http_req *req)
{
    struct tr_slice app = tr_http_req_header(req, TR_SLICE_LIT("dapr-app-id"));
    if (app.ptr == NULL) {
        app = basic_auth_app(req);
    }
    if (app.ptr == NULL) {
        return false;
    }
    /* The remote sidecar gets the path form: /v1.0/invoke/<app>/method<target>. */
    size_t n = 13 + app.len + 7 + req->target.len;
    char *p = tr_arena_alloc(&req->arena, n);
    memcpy(p, "/v1.0/invoke/", 13);
    memcpy(p + 13, app.ptr, app.len);
    memcpy(p + 13 + app.len, "/method", 7);
    memcpy(p + 20 + app.len, req->target.ptr, req->target.len);
    start(req, app, req->target, tr_slice(p, n));
    return true;
}

/* ------------------------------------------------------------ tunnels */

static void tunnel_start(struct inv *x)
{
    const struct tr_addr *addr = &x->sw->sc->app_addr;
    if (x->odc != NULL && !pick_remote(x, &addr)) {
        return; /* answered, or waiting for the registry (on_sync_poll comes back) */
    }
    struct tr_http_client_header *hdrs;
    size_t n = build_headers(x, &hdrs);
    struct tr_http_req *req = take_req(x);
    struct tr_sidecar_tunnel_opts o = {
        .upstream = addr,
        .method = req->method,
        .target = x->target,
        .headers = hdrs,
        .nheaders = n,
        .app_id = x->app_id,
        .list = &x->iw->tunnels,
    };
    tr_sidecar_tunnel_start(req, &o);
    finish(x);
}

/* ------------------------------------------------------------ module */

static int invoke_init(struct tr_sidecar *sc, unsigned index)
{
    mod_index = index;
    struct invoke_mod *m = tr_xcalloc(1, sizeof(*m));
    sc->mod[index] = m;
    m->disc = tr_proxy_discovery_start(sc->nworkers, TR_PROXY_DISCOVERY_WAIT_MS);
    if (m->disc == NULL) {
        return -1;
    }
    tr_proxy_discovery_set_registry(m->disc, &sc->server_addr, sc->server_host);
    struct tr_proxy_cluster_config defaults = {
        .lb = TR_PROXY_LB_ROUND_ROBIN,
        .timeout_ms = INVOKE_TIMEOUT_MS,
        .retry =
            {
                .configured = true,
                .attempts = 2,
                .on = TR_PROXY_RETRY_CONNECT_FAILURE | TR_PROXY_RETRY_RESET,
            },
        .breaker =
            {
                .configured = true,
                .consecutive_failures = 5,
                .open_for_ms = 5000,
            },
        .outlier =
            {
                .configured = true,
                .consecutive_5xx = 3,
                .base_ejection_ms = 10000,
                .max_ejection_percent = 50,
            },
    };
    m->od = tr_proxy_ondemand_new(m->disc, sc->nworkers, &defaults, "dapr_http_port", MAX_APPS);
    int rc = 0;
    rc |= tr_sidecar_route(sc, "*", "/v1.0/invoke/:app/method/*path", on_invoke, TR_ROUTE_STREAM);
    rc |= tr_sidecar_route(sc, "*", "/v1.0/invoke/:app/method", on_invoke_no_method,
                           TR_ROUTE_STREAM);
    TR_ASSERT(rc == 0);
    return 0;
}

static int invoke_worker_start(struct tr_sidecar_worker *sw)
{
    struct invoke_worker *iw = tr_xcalloc(1, sizeof(*iw));
    iw->sw = sw;
    tr_map_init(&iw->apps);
    tr_list_init(&iw->flushq);
    tr_list_init(&iw->live);
    tr_list_init(&iw->tunnels);
    uv_check_init(sw->loop, &iw->flush);
    iw->flush.data = iw;
    sw->mod[mod_index] = iw;
    return 0;
}

static void invoke_worker_drain(struct tr_sidecar_worker *sw)
{
    struct invoke_worker *iw = iw_of(sw);
    if (iw != NULL) {
        tr_sidecar_tunnels_close(&iw->tunnels);
    }
}

static void invoke_worker_stop(struct tr_sidecar_worker *sw)
{
    struct invoke_worker *iw = iw_of(sw);
    if (iw == NULL) {
        return;
    }
    tr_sidecar_tunnels_close(&iw->tunnels);
    /* Requests still in flight: their clients are being closed by the server, which
     * ends each through on_body_end(false); nothing is left here afterwards. */
}

static void on_flush_closed(uv_handle_t *h)
{
    struct invoke_worker *iw = h->data;
    tr_free_null(&iw);
}

static void invoke_worker_dispose(struct tr_sidecar_worker *sw)
{
    struct invoke_worker *iw = iw_of(sw);
    if (iw == NULL) {
        return;
    }
    sw->mod[mod_index] = NULL;
    TR_ASSERT(tr_list_empty(&iw->live));
    tr_proxy_ondemand_worker_dispose(mod_of(sw->sc)->od, sw->id);
    tr_map_dispose(&iw->apps);
    uv_check_stop(&iw->flush);
    uv_close((uv_handle_t *)&iw->flush, on_flush_closed);
}

static void invoke_cleanup(struct tr_sidecar *sc)
{
    struct invoke_mod *m = sc->mod[mod_index];
    if (m == NULL) {
        return;
    }
    tr_proxy_ondemand_free(m->od);
    tr_proxy_discovery_stop(m->disc);
    tr_free_null(&m);
    sc->mod[mod_index] = NULL;
}

const struct tr_sidecar_module tr_sidecar_mod_invoke = {
    .name = "invoke",
    .init = invoke_init,
    .worker_start = invoke_worker_start,
    .worker_drain = invoke_worker_drain,
    .worker_stop = invoke_worker_stop,
    .worker_dispose = invoke_worker_dispose,
    .cleanup = invoke_cleanup,
};
