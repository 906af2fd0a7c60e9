/* SPDX-License-Identifier: Apache-2.0 */
/* Forwarding (see forward.h). One struct exchange per client request:
 *
 *   handler -> route -> cluster -> attempt: pick endpoint, upstream request
 *   client body  --on_body--> pending --req_write--> inflight --write cb--> (kernel)
 *   upstream resp --headers/body--> tr_http_resp_* (pause upstream above high water)
 *   end -> resp_end          error -> retry (if safe) or 502/503/504 JSON
 *   client gone -> cancel upstream
 *
 * The request body is relayed through two buffers: `pending` collects what the client
 * sends, `inflight` is what the upstream write owns until its callback. The client is
 * paused while a write is in flight and `pending` is over the high-water mark, so a
 * slow upstream holds back a fast client through TCP. Until some body byte has been
 * accepted by the upstream's socket, every byte is still held here, which is what
 * makes a retry after a failed connect possible even for requests with a body. */
#include "proxy/forward.h"

#include <stdio.h>
#include <string.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/mem.h"
#include "http/client.h"
#include "proxy/balancer.h"
#include "proxy/endpoints.h"
#include "proxy/guard.h"
#include "proxy/headers.h"
#include "proxy/mirror.h"
#include "proxy/proxy.h"
#include "proxy/ratelimit.h"
#include "proxy/retry.h"
#include "proxy/ring_hash.h"
#include "proxy/route.h"
#include "proxy/stats.h"
#include "proxy/worker.h"

#define BODY_HIGH_WATER (64 * 1024)

struct exchange {
    struct tr_http_req *req; /* NULL once the response ended or the client went away */
    struct tr_proxy_worker *pw;
    struct tr_proxy_gen *gen;
    const struct tr_proxy_route_config *route;
    const struct tr_proxy_cluster_config *cluster;
    struct tr_http_client_req *up; /* the current attempt; NULL between attempts */
    struct tr_proxy_eps *eps;      /* the current attempt's set (held), or NULL */
    int ep;                        /* the current attempt's endpoint */
    struct tr_proxy_eps *last_eps; /* the previous attempt's set: compared, never read (it
                                      may be freed once released) */
    int last_ep;
    char last_name[64];                 /* the previous attempt's endpoint, "ip:port" */
    struct tr_proxy_deadline deadline;  /* the cluster timeout: until response headers */
    struct tr_proxy_deadline try_timer; /* per-try timeout, or the backoff before a retry */
    struct tr_proxy_flush flush;        /* response output waiting for the loop turn's end */
    uint64_t start_ns;
    unsigned attempts;
    int status;
    struct tr_buf pending;       /* client body bytes not yet given to the upstream */
    struct tr_buf inflight;      /* body bytes the upstream write owns */
    struct tr_buf mirror_body;   /* copy of the body for the mirror while mirror_pending */
    struct tr_proxy_waiter wait; /* queued for a connection (circuit_breaker limits) */
    uint64_t hash;
    char rid[40]; /* generated X-Request-Id, or "" */
    bool has_hash;
    bool has_body;
    bool body_done;   /* the client sent its whole body */
    bool body_acked;  /* a body byte reached the upstream's socket: no more retries */
    bool buffer_body; /* a small body: collected whole, then sent as one buffered copy */
    bool body_ended;  /* tr_http_client_req_end() ran for the current attempt */
    bool writing;
    bool client_paused;
    bool resp_started;
    bool retry_after_write; /* a retry waits for the failed attempt's write callback */
    bool retrying;          /* counted in the cluster's retries in flight */
    bool idempotent;
    bool finished;
    bool probe;          /* the current attempt is the breaker's half-open probe */
    bool dequeued;       /* its turn in the connection queue came: ahead of newcomers */
    bool mirror_pending; /* the mirror copy is sent when the body is complete */
};

static void attempt_start(struct exchange *ex);
static void flush_body(struct exchange *ex);

/* ------------------------------------------------------------ finishing */

/* Finished exchanges wait on the worker's free list for the next requests, so that
 * proxying does not call malloc per request (up to FREE_EXCHANGES_MAX). */
#define FREE_EXCHANGES_MAX 64

static struct exchange *ex_new(struct tr_proxy_worker *pw)
{
    struct exchange *ex = pw->free_exchanges;
    if (ex == NULL) {
        return tr_xcalloc(1, sizeof(*ex));
    }
    memcpy(&pw->free_exchanges, ex, sizeof(pw->free_exchanges)); /* the link, see ex_free() */
    pw->nfree_exchanges--;
    memset(ex, 0, sizeof(*ex));
    return ex;
}

static void ex_free(struct exchange *ex)
{
    struct tr_proxy_worker *pw = ex->pw;
    tr_buf_dispose(&ex->pending);
    tr_buf_dispose(&ex->inflight);
    if (pw->closing || pw->nfree_exchanges >= FREE_EXCHANGES_MAX) {
        tr_free_null(&ex);
        return;
    }
    /* A free exchange's first bytes link it to the next one. */
    memcpy(ex, &pw->free_exchanges, sizeof(pw->free_exchanges));
    pw->free_exchanges = ex;
    pw->nfree_exchanges++;
}

void tr_proxy_forward_release(struct tr_proxy_worker *pw)
{
    while (pw->free_exchanges != NULL) {
        struct exchange *ex = pw->free_exchanges;
        memcpy(&pw->free_exchanges, ex, sizeof(pw->free_exchanges));
        tr_free_null(&ex);
    }
    pw->nfree_exchanges = 0;
}

static void release_endpoint(struct exchange *ex)
{
    if (ex->eps != NULL) {
        memcpy(ex->last_name, ex->eps->eps[ex->ep].name, sizeof(ex->last_name));
        tr_proxy_worker_eps_release(ex->pw, ex->eps, ex->ep);
        ex->last_eps = ex->eps;
        ex->last_ep = ex->ep;
        ex->eps = NULL;
        tr_proxy_counter_sub(&ex->cluster->stats->blocks[ex->pw->id].upstream_active, 1);
        tr_proxy_guard_freed(tr_proxy_guard_of(ex->cluster->guard, ex->pw->id));
    }
}

/* Lets go of what the resilience features hold for the exchange: its place in the
 * connection queue, the breaker's probe, the mirror's copy of the body. */
static void release_guards(struct exchange *ex)
{
    struct tr_proxy_guard_worker *gw = tr_proxy_guard_of(ex->cluster->guard, ex->pw->id);
    if (tr_list_linked(&ex->wait.link)) {
        tr_proxy_guard_unwait(gw, &ex->wait);
        tr_proxy_counter_sub(&ex->cluster->stats->blocks[ex->pw->id].pending, 1);
    }
    if (ex->probe) {
        ex->probe = false;
        tr_proxy_breaker_abandon(&ex->cluster->guard->breaker);
    }
    if (ex->mirror_pending) {
        ex->mirror_pending = false;
        tr_proxy_mirror_count(ex->pw, ex->route, TR_PROXY_MIRROR_SKIPPED);
    }
    tr_buf_dispose(&ex->mirror_body);
}

/* The exchange is over for the client (status 0: it went away). */
static void finish(struct exchange *ex, int status)
{
    struct tr_proxy_worker *pw = ex->pw;
    ex->finished = true;
    tr_proxy_deadline_cancel(pw, &ex->deadline);
    tr_proxy_deadline_cancel(pw, &ex->try_timer);
    release_endpoint(ex);
    if (tr_list_linked(&ex->wait.link) || ex->probe || ex->mirror_pending ||
        ex->mirror_body.base != NULL) {
        release_guards(ex);
    }
    uint64_t us = (uv_hrtime() - ex->start_ns) / 1000;
    tr_proxy_stats_record(ex->route->stats, pw->id, status, us);
    tr_proxy_stats_record(ex->cluster->stats, pw->id, status, us);
    tr_proxy_counter_sub(&ex->route->stats->blocks[pw->id].active, 1);
    tr_proxy_counter_sub(&ex->cluster->stats->blocks[pw->id].active, 1);
    if (ex->retrying) {
        tr_proxy_counter_sub(&ex->cluster->stats->blocks[pw->id].retries_active, 1);
    }
    pw->active--;
    tr_proxy_gen_release(ex->gen);
    ex->gen = NULL;
    if (!ex->writing) {
        ex_free(ex);
    }
}

/* Detaches from the client request before answering it: ending a response may start
 * the connection's next (pipelined) request in the same struct at once. */
static struct tr_http_req *take_req(struct exchange *ex)
{
    struct tr_http_req *req = ex->req;
    ex->req = NULL;
    tr_proxy_flush_cancel(&ex->flush);
    req->on_body = NULL;
    req->on_body_end = NULL;
    req->user = NULL;
    return req;
}

static const char *cause_name(enum tr_proxy_upstream_err e)
{
    switch (e) {
    case TR_PROXY_UERR_CONNECT:
        return "connect_failure";
    case TR_PROXY_UERR_RESET:
        return "reset";
    case TR_PROXY_UERR_TIMEOUT:
        return "timeout";
    case TR_PROXY_UERR_PROTOCOL:
        return "bad_response";
    case TR_PROXY_UERR_NO_ENDPOINT:
        return "no_endpoint";
    default:
        return "error";
    }
}

/* Answers with 502/503/504 and a JSON body naming the cluster, endpoint and cause. */
static void fail_response(struct exchange *ex, enum tr_proxy_upstream_err cause, int err)
{
    enum tr_err e = cause == TR_PROXY_UERR_TIMEOUT       ? TR_E_GATEWAY_TIMEOUT
                    : cause == TR_PROXY_UERR_NO_ENDPOINT ? TR_E_UNAVAILABLE
                                                         : TR_E_BAD_GATEWAY;
    const struct tr_err_info *info = tr_err_info(e);
    const char *ep = ex->last_name;
    char msg[256];
    if (cause == TR_PROXY_UERR_NO_ENDPOINT) {
        snprintf(msg, sizeof(msg), "cluster \"%s\" has no healthy endpoint", ex->cluster->name);
    } else if (cause == TR_PROXY_UERR_TIMEOUT) {
        snprintf(msg, sizeof(msg), "upstream %s of cluster \"%s\" did not respond in time", ep,
                 ex->cluster->name);
    } else {
        snprintf(msg, sizeof(msg), "upstream %s of cluster \"%s\" failed: %s", ep,
                 ex->cluster->name, tr_http_client_strerror(err));
    }
    struct tr_buf body;
    tr_buf_init(&body);
    tr_buf_appendf(&body, "{\"error\":{\"code\":\"%s\",\"message\":\"", info->code);
    tr_json_escape(&body, tr_slice_cstr(msg));
    tr_buf_appendf(&body,
                   "\",\"cluster\":\"%s\",\"endpoint\":\"%s\",\"cause\":\"%s\","
                   "\"attempts\":%u}}\n",
                   ex->cluster->name, ep, cause_name(cause), ex->attempts);
    TR_LOG_DEBUG("proxy", &ex->req->log, "%d: %s", info->status, msg);
    struct tr_http_req *req = take_req(ex);
    if (ex->rid[0] != '\0') {
        tr_http_resp_header(req, TR_SLICE_LIT("X-Request-Id"), tr_slice_cstr(ex->rid));
    }
    tr_http_resp_send(req, info->status, TR_SLICE_LIT("application/json"), tr_buf_slice(&body));
    tr_buf_dispose(&body);
    finish(ex, info->status);
}

/* ------------------------------------------------------------ circuit breaker */

static const char *const overflow_names[TR_PROXY_OVERFLOW_COUNT] = {
    [TR_PROXY_OVERFLOW_OPEN] = "circuit_open",
    [TR_PROXY_OVERFLOW_MAX_REQUESTS] = "max_requests",
    [TR_PROXY_OVERFLOW_MAX_PENDING] = "max_pending",
    [TR_PROXY_OVERFLOW_PENDING_TIMEOUT] = "pending_timeout",
};

static struct tr_proxy_guard_worker *guard_of(const struct exchange *ex)
{
    return tr_proxy_guard_of(ex->cluster->guard, ex->pw->id);
}

/* Answers 503 at once for the cluster's circuit breaker (open, or a limit reached),
 * with a JSON body naming the cluster and X-Trellis-Overloaded naming the reason. */
static void overload_response(struct exchange *ex, enum tr_proxy_overflow why)
{
    const struct tr_proxy_cluster_config *c = ex->cluster;
    const struct tr_proxy_breaker_policy *p = &c->breaker;
    struct tr_proxy_worker *pw = ex->pw;
    uint64_t retry_after = 1;
    char msg[256];
    switch (why) {
    case TR_PROXY_OVERFLOW_OPEN:
        retry_after = tr_proxy_breaker_retry_after_s(&c->guard->breaker, uv_now(pw->srv.loop));
        snprintf(msg, sizeof(msg), "cluster \"%s\" circuit breaker is open", c->name);
        break;
    case TR_PROXY_OVERFLOW_MAX_REQUESTS:
        snprintf(msg, sizeof(msg), "cluster \"%s\" has max_requests (%llu) requests in flight",
                 c->name, (unsigned long long)p->max_requests);
        break;
    case TR_PROXY_OVERFLOW_MAX_PENDING:
        snprintf(msg, sizeof(msg),
                 "cluster \"%s\" has max_connections (%llu) busy and max_pending (%llu) "
                 "requests waiting",
                 c->name, (unsigned long long)p->max_connections,
                 (unsigned long long)p->max_pending);
        break;
    default:
        snprintf(msg, sizeof(msg),
                 "no connection of cluster \"%s\" (max_connections %llu) became free in time",
                 c->name, (unsigned long long)p->max_connections);
        break;
    }
    tr_proxy_counter_add(&c->stats->blocks[pw->id].overflows[why], 1);
    const struct tr_err_info *info =
        tr_err_info(why == TR_PROXY_OVERFLOW_OPEN ? TR_E_CIRCUIT_OPEN : TR_E_OVERLOADED);
    struct tr_buf body;
    tr_buf_init(&body);
    tr_buf_appendf(&body, "{\"error\":{\"code\":\"%s\",\"message\":\"", info->code);
    tr_json_escape(&body, tr_slice_cstr(msg));
    tr_buf_appendf(&body, "\",\"cluster\":\"%s\",\"reason\":\"%s\",\"attempts\":%u}}\n", c->name,
                   overflow_names[why], ex->attempts);
    struct tr_http_req *req = take_req(ex);
    char secs[24];
    snprintf(secs, sizeof(secs), "%llu", (unsigned long long)retry_after);
    tr_http_resp_header(req, TR_SLICE_LIT("X-Trellis-Overloaded"),
                        tr_slice_cstr(overflow_names[why]));
    tr_http_resp_header(req, TR_SLICE_LIT("Retry-After"), tr_slice_cstr(secs));
    if (ex->rid[0] != '\0') {
        tr_http_resp_header(req, TR_SLICE_LIT("X-Request-Id"), tr_slice_cstr(ex->rid));
    }
    tr_http_resp_send(req, info->status, TR_SLICE_LIT("application/json"), tr_buf_slice(&body));
    tr_buf_dispose(&body);
    finish(ex, info->status);
}

static void report_outcome(struct exchange *ex, bool failed)
{
    const struct tr_proxy_cluster_config *c = ex->cluster;
    struct tr_proxy_worker *pw = ex->pw;
    struct tr_proxy_guard_worker *gw = guard_of(ex);
    struct tr_proxy_stats_block *b = &c->stats->blocks[pw->id];
    uint64_t now = uv_now(pw->srv.loop);
    if (c->breaker.configured &&
        tr_proxy_breaker_report(&c->guard->breaker, &c->breaker, !failed, ex->probe, now)) {
        tr_proxy_counter_add(&b->breaker_opens, 1);
        TR_LOG_WARN("proxy", NULL, "cluster \"%s\": circuit breaker opened for %llu ms", c->name,
                    (unsigned long long)c->breaker.open_for_ms);
    }
    ex->probe = false;
    if (c->outlier.configured && ex->eps != NULL &&
        tr_proxy_outlier_report(&gw->outlier, &c->outlier, ex->eps, pw->id, (size_t)ex->ep, failed,
                                now)) {
        tr_proxy_counter_add(&b->ejections, 1);
        TR_LOG_WARN("proxy", NULL,
                    "cluster \"%s\": endpoint %s ejected by outlier detection "
                    "(worker %u)",
                    c->name, ex->eps->eps[ex->ep].name, pw->id);
    }
}

/* The current attempt's outcome, for the circuit breaker and outlier detection. */
static inline void report(struct exchange *ex, bool failed)
{
    if (ex->cluster->breaker.configured || ex->cluster->outlier.configured) {
        report_outcome(ex, failed);
    }
}

/* ------------------------------------------------------------ client side */

static void on_client_drain(struct tr_http_req *req)
{
    struct exchange *ex = req->user;
    if (ex != NULL && ex->up != NULL) {
        tr_http_client_req_resume(ex->up);
    }
}

static void client_gone(struct exchange *ex)
{
    ex->req = NULL;
    tr_proxy_flush_cancel(&ex->flush);
    if (ex->up != NULL) {
        tr_http_client_req_cancel(ex->up);
        ex->up = NULL;
    }
    finish(ex, 0);
}

static void maybe_end_body(struct exchange *ex)
{
    if (!ex->has_body || ex->buffer_body || !ex->body_done || ex->writing || ex->pending.len > 0 ||
        ex->up == NULL || ex->body_ended) {
        return;
    }
    ex->body_ended = true;
    if (tr_http_client_req_end(ex->up) != 0) {
        /* Fewer bytes than announced cannot happen for a complete body; be safe. */
        tr_http_client_req_cancel(ex->up);
        ex->up = NULL;
        fail_response(ex, TR_PROXY_UERR_PROTOCOL, TR_HTTP_CLIENT_E_BAD_RESPONSE);
    }
}

/* Keeps a copy of the body for the mirror, up to the mirror's limit. */
static void mirror_collect(struct exchange *ex, struct tr_slice chunk)
{
    if (ex->mirror_body.len + chunk.len > TR_PROXY_MIRROR_MAX_BODY) {
        ex->mirror_pending = false;
        tr_buf_dispose(&ex->mirror_body);
        tr_proxy_mirror_count(ex->pw, ex->route, TR_PROXY_MIRROR_SKIPPED);
        return;
    }
    tr_buf_append_slice(&ex->mirror_body, chunk);
}

static void on_client_body(struct tr_http_req *req, struct tr_slice chunk)
{
    struct exchange *ex = req->user;
    if (ex->mirror_pending) {
        mirror_collect(ex, chunk);
    }
    tr_buf_append_slice(&ex->pending, chunk);
    if (ex->buffer_body) {
        if (ex->pending.len > ex->pw->body_buffer_max) {
            ex->buffer_body = false; /* chunked and larger: streamed after all */
            attempt_start(ex);
        }
        return;
    }
    if (ex->up != NULL && !ex->writing) {
        flush_body(ex);
    } else if (ex->pending.len >= BODY_HIGH_WATER && !ex->client_paused) {
        ex->client_paused = true;
        tr_http_req_pause(req);
    }
}

static void on_deadline(struct tr_proxy_deadline *d);

static void on_client_body_end(struct tr_http_req *req, bool complete)
{
    struct exchange *ex = req->user;
    if (!complete) {
        client_gone(ex);
        return;
    }
    ex->body_done = true;
    if (ex->mirror_pending) {
        ex->mirror_pending = false;
        tr_proxy_mirror_send(ex->pw, ex->gen, ex->route, req, tr_buf_slice(&ex->mirror_body),
                             ex->rid[0] != '\0' ? tr_slice_cstr(ex->rid) : TR_SLICE_NULL);
        tr_buf_dispose(&ex->mirror_body);
    }
    if (ex->has_body && !ex->resp_started) {
        /* The timeout counts from the end of the request, as the upstream cannot be
         * expected to answer before it has it all. */
        tr_proxy_deadline_arm(ex->pw, &ex->deadline,
                              uv_now(ex->pw->srv.loop) + ex->cluster->timeout_ms, on_deadline);
    }
    if (ex->buffer_body) {
        attempt_start(ex); /* the whole body is here: the first attempt */
        return;
    }
    maybe_end_body(ex);
}

/* ------------------------------------------------------------ request body up */

static void on_up_written(int status, void *data)
{
    struct exchange *ex = data;
    ex->writing = false;
    if (status == 0) {
        ex->body_acked = true;
        tr_buf_reset(&ex->inflight);
    }
    /* On failure `inflight` keeps the bytes: a retry sends them again. */
    if (ex->finished) {
        ex_free(ex);
        return;
    }
    if (ex->retry_after_write) {
        ex->retry_after_write = false;
        attempt_start(ex);
        return;
    }
    if (status == 0) {
        flush_body(ex);
        maybe_end_body(ex);
    }
}

static void flush_body(struct exchange *ex)
{
    if (ex->buffer_body || ex->writing || ex->up == NULL || ex->pending.len == 0) {
        return;
    }
    TR_ASSERT(ex->inflight.len == 0);
    struct tr_buf tmp = ex->inflight;
    ex->inflight = ex->pending;
    ex->pending = tmp;
    int err = tr_http_client_req_write(ex->up, tr_buf_slice(&ex->inflight), on_up_written, ex);
    if (err != 0) {
        /* The attempt already failed or ended; its error or end callback decides. */
        struct tr_buf back = ex->pending;
        ex->pending = ex->inflight;
        ex->inflight = back;
        return;
    }
    ex->writing = true;
    if (ex->client_paused && ex->req != NULL) {
        ex->client_paused = false;
        tr_http_req_resume(ex->req);
    }
}

/* ------------------------------------------------------------ retries */

static void on_retry_timer(struct tr_proxy_deadline *d)
{
    struct exchange *ex = tr_container_of(d, struct exchange, try_timer);
    if (ex->writing) {
        ex->retry_after_write = true; /* the failed attempt still owns `inflight` */
        return;
    }
    attempt_start(ex);
}

/* May the request be tried again after what `f` describes? Policy and budget. */
static bool retry_allowed(struct exchange *ex, struct tr_proxy_retry_facts *f)
{
    struct tr_proxy_stats_block *b = &ex->cluster->stats->blocks[ex->pw->id];
    f->policy = &ex->cluster->retry;
    f->attempts = ex->attempts;
    f->idempotent = ex->idempotent;
    f->body_acked = ex->body_acked;
    bool ok = f->status != 0 ? tr_proxy_retry_on_status(f) : tr_proxy_retry_on_error(f);
    if (!ok) {
        return false;
    }
    uint64_t others = tr_proxy_counter_get(&b->retries_active) - (ex->retrying ? 1 : 0);
    return tr_proxy_retry_budget_ok(f->policy, tr_proxy_counter_get(&b->active), others);
}

/* Starts the next attempt, after the policy's backoff and once the failed attempt's
 * write (if any) has given the body bytes back. The current attempt must be gone. */
static void retry_start(struct exchange *ex)
{
    struct tr_proxy_stats_block *b = &ex->cluster->stats->blocks[ex->pw->id];
    if (!ex->retrying) {
        ex->retrying = true;
        tr_proxy_counter_add(&b->retries_active, 1);
    }
    tr_proxy_counter_add(&b->retries, 1);
    uint64_t wait = tr_proxy_retry_backoff_ms(&ex->cluster->retry, ex->attempts, &ex->pw->rng);
    if (wait > 0) {
        tr_proxy_deadline_arm(ex->pw, &ex->try_timer, uv_now(ex->pw->srv.loop) + wait,
                              on_retry_timer);
    } else if (ex->writing) {
        ex->retry_after_write = true;
    } else {
        attempt_start(ex);
    }
}

/* ------------------------------------------------------------ upstream response */

static void count_failure(struct exchange *ex, enum tr_proxy_upstream_err e)
{
    struct tr_proxy_worker *pw = ex->pw;
    tr_proxy_counter_add(&ex->cluster->stats->blocks[pw->id].upstream_errors[e], 1);
    if (ex->eps != NULL) {
        tr_proxy_counter_add(&tr_proxy_eps_load(ex->eps, pw->id, (size_t)ex->ep)->failures, 1);
        report(ex, true);
    }
}

static void up_headers(struct tr_http_client_req *up, const struct tr_http_client_resp *resp,
                       void *data)
{
    struct exchange *ex = data;
    report(ex, resp->status >= 500);
    struct tr_proxy_retry_facts f = {.status = resp->status};
    if (resp->status >= 500 && retry_allowed(ex, &f)) {
        tr_http_client_req_cancel(up); /* its connection is closed, not reused */
        ex->up = NULL;
        release_endpoint(ex);
        tr_proxy_deadline_cancel(ex->pw, &ex->try_timer);
        retry_start(ex);
        return;
    }
    ex->resp_started = true;
    tr_proxy_deadline_cancel(ex->pw, &ex->deadline);
    tr_proxy_deadline_cancel(ex->pw, &ex->try_timer);
    ex->status = resp->status;
    struct tr_http_req *req = ex->req;
    int64_t announced = tr_proxy_headers_response(
        req, resp, ex->rid[0] != '\0' ? tr_slice_cstr(ex->rid) : TR_SLICE_NULL);
    uint64_t len;
    if (resp->has_body) {
        len = resp->content_length >= 0 ? (uint64_t)resp->content_length : UINT64_MAX;
    } else if (req->method_id == HTTP_HEAD) {
        len = announced >= 0 ? (uint64_t)announced : UINT64_MAX;
    } else {
        len = 0;
    }
    tr_http_resp_start(req, resp->status, TR_SLICE_NULL, len);
    tr_proxy_flush_later(ex->pw, &ex->flush, req);
}

static void up_body(struct tr_http_client_req *up, struct tr_slice chunk, void *data)
{
    struct exchange *ex = data;
    if (tr_http_resp_write(ex->req, chunk, on_client_drain)) {
        tr_http_client_req_pause(up);
    }
    tr_proxy_flush_later(ex->pw, &ex->flush, ex->req);
}

static void up_end(struct tr_http_client_req *up, void *data)
{
    struct exchange *ex = data;
    (void)up;
    ex->up = NULL;
    struct tr_http_req *req = take_req(ex);
    tr_http_resp_end(req);
    finish(ex, ex->status);
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

/* The response was half sent: the client must see a broken message, not a short one
 * that looks complete. */
static void abort_response(struct exchange *ex)
{
    struct tr_http_req *req = take_req(ex);
    tr_http_resp_abort(req);
    finish(ex, ex->status);
}

static void up_error(struct tr_http_client_req *up, int err, unsigned flags, void *data)
{
    struct exchange *ex = data;
    (void)up;
    ex->up = NULL;
    enum tr_proxy_upstream_err e = classify(err, flags);
    count_failure(ex, e);
    release_endpoint(ex);
    tr_proxy_deadline_cancel(ex->pw, &ex->try_timer);
    TR_LOG_DEBUG("proxy", ex->req != NULL ? &ex->req->log : NULL,
                 "upstream %s of cluster \"%s\": %s", ex->last_name, ex->cluster->name,
                 tr_http_client_strerror(err));
    if (ex->resp_started) {
        abort_response(ex);
        return;
    }
    struct tr_proxy_retry_facts f = {
        .err = e,
        .headers_seen = (flags & TR_HTTP_CLIENT_ERR_HEADERS_SEEN) != 0,
    };
    if (retry_allowed(ex, &f)) {
        retry_start(ex);
        return;
    }
    fail_response(ex, e, err);
}

static const struct tr_http_client_handler up_handler = {
    .on_headers = up_headers,
    .on_body = up_body,
    .on_end = up_end,
    .on_error = up_error,
};

/* ------------------------------------------------------------ timeouts */

static void on_deadline(struct tr_proxy_deadline *d)
{
    struct exchange *ex = tr_container_of(d, struct exchange, deadline);
    if (tr_list_linked(&ex->wait.link)) {
        overload_response(ex, TR_PROXY_OVERFLOW_PENDING_TIMEOUT); /* still waiting */
        return;
    }
    tr_proxy_deadline_cancel(ex->pw, &ex->try_timer);
    ex->retry_after_write = false;
    if (ex->up != NULL) {
        tr_http_client_req_cancel(ex->up);
        ex->up = NULL;
        count_failure(ex, TR_PROXY_UERR_TIMEOUT);
        release_endpoint(ex);
    }
    fail_response(ex, TR_PROXY_UERR_TIMEOUT, TR_HTTP_CLIENT_E_RESPONSE_TIMEOUT);
}

static void on_try_timeout(struct tr_proxy_deadline *d)
{
    struct exchange *ex = tr_container_of(d, struct exchange, try_timer);
    if (ex->up == NULL) {
        return;
    }
    tr_http_client_req_cancel(ex->up);
    ex->up = NULL;
    count_failure(ex, TR_PROXY_UERR_TIMEOUT);
    release_endpoint(ex);
    struct tr_proxy_retry_facts f = {.err = TR_PROXY_UERR_TIMEOUT};
    if (retry_allowed(ex, &f)) {
        retry_start(ex);
        return;
    }
    fail_response(ex, TR_PROXY_UERR_TIMEOUT, TR_HTTP_CLIENT_E_RESPONSE_TIMEOUT);
}

/* ------------------------------------------------------------ attempts */

static uint64_t request_hash(const struct exchange *ex, struct tr_http_req *req, bool *has)
{
    const struct tr_proxy_cluster_config *c = ex->cluster;
    struct tr_slice key = TR_SLICE_NULL;
    switch (c->hash_on) {
    case TR_PROXY_HASH_HEADER:
        key = tr_http_req_header(req, c->hash_name);
        break;
    case TR_PROXY_HASH_COOKIE:
        key = tr_proxy_headers_cookie(req, c->hash_name);
        break;
    case TR_PROXY_HASH_CLIENT_IP:
        key = tr_proxy_peer_ip(req->log.peer != NULL ? req->log.peer : "");
        break;
    default:
        break;
    }
    *has = key.ptr != NULL;
    return key.ptr != NULL ? tr_proxy_hash64(key.ptr, key.len, 0) : 0;
}

static int send_request(struct exchange *ex, const struct tr_addr *addr)
{
    struct tr_http_req *req = ex->req;
    struct tr_http_client_header *hdrs =
        tr_arena_alloc(&req->arena, (req->nheaders + TR_PROXY_HEADERS_ADDED) * sizeof(*hdrs));
    struct tr_proxy_fwd fwd = {
        .client_ip = tr_proxy_peer_ip(req->log.peer != NULL ? req->log.peer : ""),
        .request_id = ex->rid[0] != '\0' ? tr_slice_cstr(ex->rid) : TR_SLICE_NULL,
    };
    size_t n = tr_proxy_headers_request(req, &fwd, hdrs, &req->arena);
    struct tr_http_client_request r = {
        .upstream = *addr,
        .method = req->method,
        .target = tr_proxy_route_target(ex->route, req->target, req->path, req->query, &req->arena),
        .headers = hdrs,
        .header_count = n,
        .handler = &up_handler,
        .data = ex,
    };
    if (ex->buffer_body) {
        /* The client keeps its copy, so a stale pooled connection can be replayed. */
        r.body = ex->pending.len > 0 ? tr_buf_slice(&ex->pending) : TR_SLICE_LIT("");
    } else if (ex->has_body) {
        r.stream_body = true;
        r.content_length = req->chunked ? -1 : (int64_t)req->content_length;
    }
    return tr_http_client_request(ex->pw->client, &r, &ex->up);
}

static void on_connection_free(struct tr_proxy_waiter *w)
{
    struct exchange *ex = tr_container_of(w, struct exchange, wait);
    tr_proxy_counter_sub(&ex->cluster->stats->blocks[ex->pw->id].pending, 1);
    ex->dequeued = true;
    attempt_start(ex);
}

/* The circuit breaker's say before an attempt. Returns true to go on; false when the
 * request was answered (open, max_pending) or queued until a connection frees
 * (max_connections). Limits are this worker's share of the cluster's. */
static bool breaker_gate(struct exchange *ex)
{
    const struct tr_proxy_cluster_config *c = ex->cluster;
    struct tr_proxy_worker *pw = ex->pw;
    struct tr_proxy_guard_worker *gw = guard_of(ex);
    struct tr_proxy_stats_block *b = &c->stats->blocks[pw->id];
    uint64_t now = uv_now(pw->srv.loop);
    struct tr_proxy_breaker *breaker = &c->guard->breaker;
    if (!tr_proxy_breaker_would_admit(breaker, now)) {
        overload_response(ex, TR_PROXY_OVERFLOW_OPEN);
        return false;
    }
    unsigned nw = ex->gen->cfg->nworkers;
    uint64_t conns = tr_proxy_breaker_share(c->breaker.max_connections, nw, pw->id);
    bool first = ex->dequeued || tr_list_empty(&gw->queue); /* no overtaking the queue */
    ex->dequeued = false;
    if (!first || tr_proxy_counter_get(&b->upstream_active) >= conns) {
        uint64_t waiting = c->breaker.max_pending > 0
                               ? tr_proxy_breaker_share(c->breaker.max_pending, nw, pw->id)
                               : 0;
        if (tr_proxy_counter_get(&b->pending) >= waiting) {
            overload_response(ex, TR_PROXY_OVERFLOW_MAX_PENDING);
            return false;
        }
        ex->wait.active = &b->upstream_active;
        ex->wait.limit = conns;
        ex->wait.run = on_connection_free;
        tr_proxy_guard_wait(gw, pw, &ex->wait);
        tr_proxy_counter_add(&b->pending, 1);
        return false;
    }
    enum tr_proxy_breaker_verdict v = tr_proxy_breaker_admit(breaker, now);
    if (v == TR_PROXY_BREAKER_REJECT) {
        overload_response(ex, TR_PROXY_OVERFLOW_OPEN); /* another worker's request probes */
        return false;
    }
    ex->probe = v == TR_PROXY_BREAKER_PROBE;
    return true;
}

/* The index in `eps` of the endpoint the previous attempt failed on, or -1: a retry goes
 * elsewhere when it can. Found by name when the set changed in between (the registry's
 * update for a replica that just died arrives exactly then). */
static int avoid_index(const struct exchange *ex, const struct tr_proxy_eps *eps)
{
    if (eps == NULL || ex->last_ep < 0) {
        return -1;
    }
    if (eps == ex->last_eps) {
        return ex->last_ep;
    }
    for (size_t i = 0; i < eps->n; i++) {
        if (strcmp(eps->eps[i].name, ex->last_name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void attempt_start(struct exchange *ex)
{
    struct tr_proxy_worker *pw = ex->pw;
    const struct tr_proxy_cluster_config *c = ex->cluster;
    if (c->breaker.configured && !breaker_gate(ex)) {
        return;
    }
    struct tr_proxy_eps *eps = tr_proxy_worker_eps(pw, c);
    struct tr_proxy_pick pick = {
        .worker = pw->id,
        .rng = &pw->rng,
        .has_hash = ex->has_hash,
        .hash = ex->hash,
        .avoid = avoid_index(ex, eps),
    };
    if (c->outlier.configured) {
        pick.now_ms = uv_now(pw->srv.loop);
        pick.check_ejected =
            tr_proxy_outlier_prepare(&guard_of(ex)->outlier, eps, pw->id, pick.now_ms);
    }
    int ep = tr_proxy_balancer_pick(c->lb, eps, &pick);
    if (ep < 0) {
        count_failure(ex, TR_PROXY_UERR_NO_ENDPOINT);
        fail_response(ex, TR_PROXY_UERR_NO_ENDPOINT, 0);
        return;
    }
    ex->eps = eps;
    ex->ep = ep;
    tr_proxy_worker_eps_hold(pw, eps, ep);
    ex->attempts++;
    tr_proxy_counter_add(&c->stats->blocks[pw->id].upstream_requests, 1);
    tr_proxy_counter_add(&c->stats->blocks[pw->id].upstream_active, 1);
    /* A failed earlier attempt's unsent bytes go first. */
    if (ex->inflight.len > 0) {
        tr_buf_append_slice(&ex->inflight, tr_buf_slice(&ex->pending));
        struct tr_buf tmp = ex->pending;
        ex->pending = ex->inflight;
        ex->inflight = tmp;
        tr_buf_reset(&ex->inflight);
    }
    ex->body_ended = false;
    int err = send_request(ex, &eps->eps[ep].addr);
    if (err != 0) {
        ex->up = NULL;
        up_error(NULL, err, TR_HTTP_CLIENT_ERR_CONNECT, ex);
        return;
    }
    if (c->retry.per_try_timeout_ms > 0) {
        tr_proxy_deadline_arm(pw, &ex->try_timer,
                              uv_now(pw->srv.loop) + c->retry.per_try_timeout_ms, on_try_timeout);
    }
    flush_body(ex);
    maybe_end_body(ex);
}

/* ------------------------------------------------------------ entry */

/* RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE. */
static bool method_idempotent(uint8_t m)
{
    return m == HTTP_GET || m == HTTP_HEAD || m == HTTP_OPTIONS || m == HTTP_TRACE ||
           m == HTTP_PUT || m == HTTP_DELETE;
}

/* A random (version 4) UUID, from the worker's generator: unique enough to correlate
 * logs and traces, not a secret. */
static void gen_request_id(struct exchange *ex)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t r[2] = {tr_proxy_rand(&ex->pw->rng), tr_proxy_rand(&ex->pw->rng)};
    unsigned char b[16];
    memcpy(b, r, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10xx */
    char *out = ex->rid;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *out++ = '-';
        }
        unsigned v = b[i];
        out[0] = hex[v >> 4];
        out[1] = hex[v & 15];
        out += 2;
    }
    *out = '\0';
}

/* Takes a token from the route's bucket for this request's key; without one, answers
 * 429 with Retry-After and returns true. */
static bool rate_limited(struct tr_proxy_worker *pw, const struct tr_proxy_route_config *r,
                         struct tr_http_req *req)
{
    struct tr_slice key = TR_SLICE_NULL;
    if (r->rate_key == TR_PROXY_RATE_CLIENT_IP) {
        key = tr_proxy_peer_ip(req->log.peer != NULL ? req->log.peer : "");
    } else if (r->rate_key == TR_PROXY_RATE_HEADER) {
        key = tr_http_req_header(req, r->rate_header); /* absent: one shared bucket */
    }
    uint64_t h = key.len > 0 ? tr_proxy_hash64(key.ptr, key.len, 0) : 1;
    uint64_t wait_ns;
    if (tr_proxy_ratelimit_take(r->guard->rl, h, r->rate_per_second, r->rate_burst, uv_hrtime(),
                                &wait_ns)) {
        return false;
    }
    struct tr_proxy_stats_block *b = &r->stats->blocks[pw->id];
    tr_proxy_counter_add(&b->requests, 1);
    tr_proxy_counter_add(&b->rate_limited, 1);
    tr_proxy_stats_record(r->stats, pw->id, 429, 0);
    static const char *const key_names[] = {
        [TR_PROXY_RATE_CLIENT_IP] = "client_ip",
        [TR_PROXY_RATE_HEADER] = "header",
        [TR_PROXY_RATE_ROUTE] = "route",
    };
    uint64_t after = tr_proxy_ratelimit_retry_after_s(wait_ns);
    struct tr_buf body;
    tr_buf_init(&body);
    tr_buf_appendf(&body,
                   "{\"error\":{\"code\":\"%s\",\"message\":\"rate limit of %llu requests per "
                   "second (burst %llu) per %s exceeded\",\"route\":\"",
                   tr_err_info(TR_E_TOO_MANY_REQUESTS)->code,
                   (unsigned long long)r->rate_per_second, (unsigned long long)r->rate_burst,
                   key_names[r->rate_key]);
    tr_json_escape(&body, tr_slice_cstr(r->name));
    tr_buf_appendf(&body, "\",\"retry_after\":%llu}}\n", (unsigned long long)after);
    char secs[24];
    snprintf(secs, sizeof(secs), "%llu", (unsigned long long)after);
    tr_http_resp_header(req, TR_SLICE_LIT("Retry-After"), tr_slice_cstr(secs));
    tr_http_resp_send(req, 429, TR_SLICE_LIT("application/json"), tr_buf_slice(&body));
    tr_buf_dispose(&body);
    return true;
}

/* Sends the mirror copy now (no body) or when the body is complete (kept up to the
 * mirror's limit), for the route's share of requests. */
static void mirror_start(struct exchange *ex, struct tr_http_req *req)
{
    if (!tr_proxy_mirror_draw(ex->route, &ex->pw->rng)) {
        return;
    }
    if (!ex->has_body) {
        tr_proxy_mirror_send(ex->pw, ex->gen, ex->route, req, TR_SLICE_NULL,
                             ex->rid[0] != '\0' ? tr_slice_cstr(ex->rid) : TR_SLICE_NULL);
    } else if (!req->chunked && req->content_length > TR_PROXY_MIRROR_MAX_BODY) {
        tr_proxy_mirror_count(ex->pw, ex->route, TR_PROXY_MIRROR_SKIPPED);
    } else {
        ex->mirror_pending = true;
    }
}

static void not_found(struct tr_http_req *req)
{
    char msg[200];
    snprintf(msg, sizeof(msg), "no route matches %.*s %.*s", TR_SLICE_FMT(req->method),
             (int)(req->path.len > 120 ? 120 : req->path.len), req->path.ptr);
    tr_http_resp_error(req, TR_E_NOT_FOUND, msg);
}

void tr_proxy_forward(struct tr_http_req *req)
{
    struct tr_proxy_worker *pw = req->server->worker_data;
    struct tr_proxy_gen *gen = tr_proxy_gen_acquire(pw);
    const struct tr_proxy_route_config *route =
        tr_proxy_route_match(gen->cfg, req->method, req->path, req->headers, req->nheaders);
    if (route == NULL) {
        tr_proxy_gen_release(gen);
        not_found(req);
        return;
    }
    if (route->has_rate_limit && rate_limited(pw, route, req)) {
        tr_proxy_gen_release(gen);
        return;
    }
    struct exchange *ex = ex_new(pw);
    ex->req = req;
    ex->pw = pw;
    ex->gen = gen;
    ex->route = route;
    ex->cluster = &gen->cfg->clusters[tr_proxy_route_cluster(route, &pw->rng)];
    ex->start_ns = uv_hrtime();
    ex->ep = -1;
    ex->last_ep = -1;
    const struct tr_proxy_retry_policy *rp = &ex->cluster->retry;
    ex->idempotent = tr_proxy_retry_idempotent(rp, method_idempotent(req->method_id),
                                               rp->idempotency_header.len > 0
                                                   ? tr_http_req_header(req, rp->idempotency_header)
                                                   : TR_SLICE_NULL);
    ex->has_body = req->chunked || (req->content_length != UINT64_MAX && req->content_length > 0);
    /* Small bodies are read whole first and go up buffered: the HTTP client then holds a
     * copy, so a stale pooled connection (the idle keep-alive race) is replayed and the
     * retry policy can resend it (nginx's proxy_request_buffering, for small bodies). */
    ex->buffer_body = ex->has_body && (req->chunked || req->content_length <= pw->body_buffer_max);
    tr_buf_init(&ex->pending);
    tr_buf_init(&ex->inflight);
    tr_list_init(&ex->flush.link); /* (mirror_body: zeroed, an empty buffer) */
    tr_list_init(&ex->wait.link);
    pw->active++;
    tr_proxy_counter_add(&route->stats->blocks[pw->id].requests, 1);
    tr_proxy_counter_add(&route->stats->blocks[pw->id].active, 1);
    tr_proxy_counter_add(&ex->cluster->stats->blocks[pw->id].requests, 1);
    tr_proxy_counter_add(&ex->cluster->stats->blocks[pw->id].active, 1);
    if (tr_http_req_header(req, TR_SLICE_LIT("X-Request-Id")).ptr == NULL) {
        gen_request_id(ex);
    }
    if (ex->cluster->lb == TR_PROXY_LB_RING_HASH) {
        ex->hash = request_hash(ex, req, &ex->has_hash);
    }
    req->user = ex;
    req->on_body_end = on_client_body_end;
    if (ex->has_body) {
        req->on_body = on_client_body;
    }
    tr_proxy_deadline_arm(pw, &ex->deadline, uv_now(pw->srv.loop) + ex->cluster->timeout_ms,
                          on_deadline);
    const struct tr_proxy_cluster_config *c = ex->cluster;
    if (c->breaker.configured &&
        tr_proxy_counter_get(&c->stats->blocks[pw->id].active) - 1 >=
            tr_proxy_breaker_share(c->breaker.max_requests, gen->cfg->nworkers, pw->id)) {
        overload_response(ex, TR_PROXY_OVERFLOW_MAX_REQUESTS);
        return;
    }
    if (route->has_mirror) {
        mirror_start(ex, req);
    }
    if (!ex->buffer_body) {
        attempt_start(ex); /* else once the body is complete (on_client_body_end) */
    }
}
