/* SPDX-License-Identifier: Apache-2.0 */
/* The sidecar client (see client.h): an I/O thread running a libuv loop with the HTTP
 * client's keep-alive pool to the sidecar. A call lives on the caller's stack: the
 * caller posts it to the loop's mailbox and sleeps on its condition variable; the loop
 * sends it, collects the response, and wakes the caller only after the call's timer
 * handle is closed, so nothing of the loop points into the caller's stack afterwards. */
#include "sdk/client.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "core/addr.h"
#include "core/list.h"
#include "core/mailbox.h"
#include "http/client.h"
#include "sdk/sdk.h"
#include "sdk/trace.h"

#define MAX_EXTRA_HEADERS 32

struct trellis_response {
    int status;
    struct tr_buf headers; /* "name\0value\0" pairs */
    struct tr_buf body;    /* a NUL follows the live bytes */
    struct trellis_json *json;
    bool json_tried;
};

struct trellis_sidecar {
    struct tr_addr addr;
    char address[80];
    char *token; /* owned; DAPR_API_TOKEN */
    _Atomic uint64_t timeout_ms;
    _Atomic bool aborted;
    uv_thread_t thread;
    uv_loop_t loop;
    struct tr_mailbox mb;
    struct tr_http_client *client;
    struct tr_list calls; /* loop thread: calls in flight */
    struct tr_msg close_msg;
    bool closing; /* loop thread */
};

struct sdk_call {
    struct tr_msg msg;
    struct trellis_sidecar *sc;
    const struct tr_sdk_call_spec *spec;
    const struct tr_http_client_header *hdrs;
    size_t nhdrs;
    uint64_t timeout_ms;
    /* Loop thread. */
    struct tr_http_client_req *creq;
    uv_timer_t timer;
    bool timer_used;
    struct tr_list link;
    struct trellis_response *resp;
    int err;
    /* Handing the result back. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
};

/* ------------------------------------------------------------ responses */

static struct trellis_response *response_new(void)
{
    struct trellis_response *r = tr_xcalloc(1, sizeof(*r));
    tr_buf_init(&r->headers);
    tr_buf_init(&r->body);
    return r;
}

void trellis_response_free(struct trellis_response *resp)
{
    if (resp == NULL) {
        return;
    }
    tr_buf_dispose(&resp->headers);
    tr_buf_dispose(&resp->body);
    trellis_json_free(resp->json);
    tr_free_null(&resp);
}

int trellis_response_status(const struct trellis_response *resp)
{
    return resp == NULL ? 0 : resp->status;
}

const char *trellis_response_header(const struct trellis_response *resp, const char *name)
{
    if (resp == NULL || name == NULL) {
        return NULL;
    }
    const char *p = tr_buf_data(&resp->headers);
    const char *end = p + resp->headers.len;
    while (p != NULL && p < end) {
        const char *value = p + strlen(p) + 1;
        if (strcasecmp(p, name) == 0) {
            return value;
        }
        p = value + strlen(value) + 1;
    }
    return NULL;
}

const char *trellis_response_body(const struct trellis_response *resp, size_t *len)
{
    if (len != NULL) {
        *len = resp == NULL ? 0 : resp->body.len;
    }
    const char *data = resp == NULL ? NULL : tr_buf_data(&resp->body);
    return data != NULL ? data : "";
}

struct trellis_json *trellis_response_json(struct trellis_response *resp)
{
    if (resp == NULL) {
        return NULL;
    }
    if (!resp->json_tried) {
        resp->json_tried = true;
        if (resp->body.len > 0) {
            resp->json = trellis_json_parse(tr_buf_data(&resp->body), resp->body.len, NULL, 0);
        }
    }
    return resp->json;
}

int tr_sdk_unexpected(const struct trellis_response *resp, const char *what)
{
    size_t len;
    const char *body = trellis_response_body(resp, &len);
    return tr_sdk_fail(TRELLIS_EHTTP, "%s: the sidecar answered %d: %.*s", what,
                       trellis_response_status(resp), (int)(len > 300 ? 300 : len), body);
}

/* ------------------------------------------------------------ loop side */

static void call_signal(struct sdk_call *call)
{
    pthread_mutex_lock(&call->lock);
    call->done = true;
    pthread_cond_signal(&call->cond);
    pthread_mutex_unlock(&call->lock);
}

static void on_timer_closed(uv_handle_t *h)
{
    call_signal(h->data);
}

static void call_complete(struct sdk_call *call, int err)
{
    call->err = err;
    call->creq = NULL;
    if (err != 0) {
        trellis_response_free(call->resp);
        call->resp = NULL;
    }
    if (tr_list_linked(&call->link)) {
        tr_list_remove(&call->link);
    }
    if (call->timer_used) {
        uv_timer_stop(&call->timer);
        uv_close((uv_handle_t *)&call->timer, on_timer_closed);
    } else {
        call_signal(call);
    }
}

static void on_headers(struct tr_http_client_req *creq, const struct tr_http_client_resp *r,
                       void *data)
{
    struct sdk_call *call = data;
    struct trellis_response *resp = response_new();
    resp->status = r->status;
    for (size_t i = 0; i < r->header_count; i++) {
        const struct tr_http_client_header *h = &r->headers[i];
        tr_buf_append_slice(&resp->headers, h->name);
        tr_buf_append(&resp->headers, "", 1);
        tr_buf_append_slice(&resp->headers, h->value);
        tr_buf_append(&resp->headers, "", 1);
    }
    call->resp = resp;
}

static void on_body(struct tr_http_client_req *creq, struct tr_slice chunk, void *data)
{
    struct sdk_call *call = data;
    tr_buf_append_slice(&call->resp->body, chunk);
}

static void on_end(struct tr_http_client_req *creq, void *data)
{
    struct sdk_call *call = data;
    char *nul = tr_buf_reserve(&call->resp->body, 1);
    *nul = '\0';
    call_complete(call, 0);
}

static void on_error(struct tr_http_client_req *creq, int err, unsigned flags, void *data)
{
    call_complete(data, err);
}

static const struct tr_http_client_handler call_handler = {
    .on_headers = on_headers,
    .on_body = on_body,
    .on_end = on_end,
    .on_error = on_error,
};

static void on_call_timeout(uv_timer_t *t)
{
    struct sdk_call *call = t->data;
    if (call->creq != NULL) {
        tr_http_client_req_cancel(call->creq);
    }
    call_complete(call, -ETIMEDOUT);
}

static void run_call(struct tr_msg *msg)
{
    struct sdk_call *call = tr_container_of(msg, struct sdk_call, msg);
    struct trellis_sidecar *sc = call->sc;
    if (sc->closing || atomic_load(&sc->aborted)) {
        call_complete(call, -ECANCELED);
        return;
    }
    const struct tr_sdk_call_spec *spec = call->spec;
    struct tr_http_client_request r = {
        .upstream = sc->addr,
        .method = tr_slice_cstr(spec->method),
        .target = tr_slice_cstr(spec->target),
        .headers = call->hdrs,
        .header_count = call->nhdrs,
        .body = spec->body != NULL ? tr_slice(spec->body, spec->body_len) : TR_SLICE_NULL,
        .content_length = -1,
        .handler = &call_handler,
        .data = call,
    };
    int err = tr_http_client_request(sc->client, &r, &call->creq);
    if (err != 0) {
        call_complete(call, err);
        return;
    }
    tr_list_insert_tail(&sc->calls, &call->link);
    uv_timer_init(&sc->loop, &call->timer);
    call->timer.data = call;
    call->timer_used = true;
    uv_timer_start(&call->timer, on_call_timeout, call->timeout_ms, 0);
}

static void cancel_all(struct trellis_sidecar *sc)
{
    struct tr_list *it;
    struct tr_list *tmp;
    tr_list_foreach_safe(it, tmp, &sc->calls)
    {
        struct sdk_call *call = tr_container_of(it, struct sdk_call, link);
        if (call->creq != NULL) {
            tr_http_client_req_cancel(call->creq);
        }
        call_complete(call, -ECANCELED);
    }
}

struct abort_msg {
    struct tr_msg msg;
    struct trellis_sidecar *sc;
};

static void run_abort(struct tr_msg *msg)
{
    struct abort_msg *am = tr_container_of(msg, struct abort_msg, msg);
    cancel_all(am->sc);
    tr_free_null(&am);
}

static void run_close(struct tr_msg *msg)
{
    struct trellis_sidecar *sc = tr_container_of(msg, struct trellis_sidecar, close_msg);
    sc->closing = true;
    cancel_all(sc);
    tr_http_client_close(sc->client, NULL, NULL);
    sc->client = NULL;
    tr_mailbox_close(&sc->mb);
}

static void io_main(void *arg)
{
    struct trellis_sidecar *sc = arg;
    uv_run(&sc->loop, UV_RUN_DEFAULT);
}

/* ------------------------------------------------------------ public */

struct trellis_sidecar *trellis_sidecar_new(const char *address)
{
    char text[80];
    if (address == NULL) {
        unsigned port = (unsigned)tr_sdk_env_u64("DAPR_HTTP_PORT", 3500, 1, 65535);
        snprintf(text, sizeof(text), "127.0.0.1:%u", port);
        address = text;
    }
    struct tr_addr addr;
    if (tr_addr_parse(address, &addr) != 0) {
        tr_sdk_fail(-EINVAL, "invalid sidecar address \"%s\" (expected host:port)", address);
        return NULL;
    }
    struct trellis_sidecar *sc = tr_xcalloc(1, sizeof(*sc));
    sc->addr = addr;
    snprintf(sc->address, sizeof(sc->address), "%s", address);
    const char *token = getenv("DAPR_API_TOKEN");
    if (token != NULL && token[0] != '\0') {
        sc->token = tr_xstrdup(token);
    }
    atomic_store(&sc->timeout_ms,
                 tr_sdk_env_u64("TRELLIS_SIDECAR_TIMEOUT_MS", 15000, 1, 24ull * 3600 * 1000));
    atomic_store(&sc->aborted, false);
    tr_list_init(&sc->calls);
    sc->close_msg.run = run_close;
    uv_loop_init(&sc->loop);
    TR_ASSERT(tr_mailbox_init(&sc->mb, &sc->loop) == 0);
    struct tr_http_client_config cfg;
    tr_http_client_config_init(&cfg);
    cfg.max_idle_per_upstream = 64;
    cfg.response_timeout_ms = 0; /* each call has its own deadline */
    sc->client = tr_http_client_new(&sc->loop, &cfg);
    int err = uv_thread_create(&sc->thread, io_main, sc);
    if (err != 0) {
        tr_sdk_fail(err, "cannot start the sidecar client's thread: %s", uv_strerror(err));
        run_close(&sc->close_msg);
        uv_run(&sc->loop, UV_RUN_DEFAULT);
        uv_loop_close(&sc->loop);
        tr_free_null(&sc->token);
        tr_free_null(&sc);
        return NULL;
    }
    return sc;
}

void trellis_sidecar_free(struct trellis_sidecar *sc)
{
    if (sc == NULL) {
        return;
    }
    TR_ASSERT(tr_mailbox_post(&sc->mb, &sc->close_msg));
    uv_thread_join(&sc->thread);
    TR_ASSERT(uv_loop_close(&sc->loop) == 0);
    tr_free_null(&sc->token);
    tr_free_null(&sc);
}

void trellis_sidecar_set_timeout(struct trellis_sidecar *sc, uint64_t timeout_ms)
{
    if (sc != NULL && timeout_ms > 0) {
        atomic_store(&sc->timeout_ms, timeout_ms);
    }
}

void tr_sdk_sidecar_abort(struct trellis_sidecar *sc)
{
    atomic_store(&sc->aborted, true);
    struct abort_msg *am = tr_xcalloc(1, sizeof(*am)); /* freed by run_abort */
    am->msg.run = run_abort;
    am->sc = sc;
    if (!tr_mailbox_post(&sc->mb, &am->msg)) {
        tr_free_null(&am);
    }
}

const char *tr_sdk_app_id(void)
{
    const char *id = getenv("APP_ID");
    return id != NULL && id[0] != '\0' ? id : NULL;
}

void tr_sdk_pct_encode(struct tr_buf *out, const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        unsigned char c = *p;
        bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
        if (unreserved || (keep_slash && c == '/')) {
            tr_buf_append(out, (const char *)p, 1);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            tr_buf_append(out, esc, 3);
        }
    }
}

int tr_sdk_call(struct trellis_sidecar *sc, const struct tr_sdk_call_spec *spec,
                struct trellis_response **out)
{
    *out = NULL;
    if (sc == NULL) {
        return tr_sdk_fail(-EINVAL, "no sidecar client");
    }
    struct tr_http_client_header hdrs[8 + MAX_EXTRA_HEADERS];
    size_t n = 0;
    struct tr_trace trace;
    const struct tr_sdk_ctx *ctx = tr_sdk_ctx_current();
    if (ctx != NULL && ctx->trace != NULL) {
        tr_trace_child(ctx->trace, &trace);
    } else {
        tr_trace_new(&trace);
    }
    char traceparent[TR_TRACEPARENT_LEN + 1];
    tr_trace_format(&trace, traceparent);
    hdrs[n++] = (struct tr_http_client_header){TR_SLICE_LIT("traceparent"),
                                               tr_slice(traceparent, TR_TRACEPARENT_LEN)};
    if (ctx != NULL && ctx->tracestate != NULL) {
        hdrs[n++] = (struct tr_http_client_header){TR_SLICE_LIT("tracestate"),
                                                   tr_slice_cstr(ctx->tracestate)};
    }
    if (sc->token != NULL) {
        hdrs[n++] = (struct tr_http_client_header){TR_SLICE_LIT("dapr-api-token"),
                                                   tr_slice_cstr(sc->token)};
    }
    if (spec->content_type != NULL) {
        hdrs[n++] = (struct tr_http_client_header){TR_SLICE_LIT("Content-Type"),
                                                   tr_slice_cstr(spec->content_type)};
    }
    hdrs[n++] = (struct tr_http_client_header){TR_SLICE_LIT("User-Agent"),
                                               TR_SLICE_LIT("trellis-sdk-c/" TRELLIS_VERSION)};
    for (size_t i = 0; spec->headers != NULL && spec->headers[i] != NULL; i += 2) {
        if (spec->headers[i + 1] == NULL || i / 2 >= MAX_EXTRA_HEADERS) {
            return tr_sdk_fail(-EINVAL, "extra headers must be name/value pairs (at most %d)",
                               MAX_EXTRA_HEADERS);
        }
        hdrs[n++] = (struct tr_http_client_header){tr_slice_cstr(spec->headers[i]),
                                                   tr_slice_cstr(spec->headers[i + 1])};
    }
    struct sdk_call call = {
        .msg.run = run_call,
        .sc = sc,
        .spec = spec,
        .hdrs = hdrs,
        .nhdrs = n,
        .timeout_ms = spec->timeout_ms != 0 ? spec->timeout_ms : atomic_load(&sc->timeout_ms),
    };
    tr_list_init(&call.link);
    pthread_mutex_init(&call.lock, NULL);
    pthread_cond_init(&call.cond, NULL);
    bool posted = tr_mailbox_post(&sc->mb, &call.msg);
    if (posted) {
        pthread_mutex_lock(&call.lock);
        while (!call.done) {
            pthread_cond_wait(&call.cond, &call.lock);
        }
        pthread_mutex_unlock(&call.lock);
    }
    pthread_cond_destroy(&call.cond);
    pthread_mutex_destroy(&call.lock);
    if (!posted) {
        return tr_sdk_fail(-ECANCELED, "%s %s: the sidecar client is closed", spec->method,
                           spec->target);
    }
    if (call.err != 0) {
        const char *why = call.err == -ETIMEDOUT   ? "no answer within the timeout"
                          : call.err == -ECANCELED ? "cancelled (shutting down)"
                                                   : tr_http_client_strerror(call.err);
        return tr_sdk_fail(call.err, "%s %s via sidecar %s: %s", spec->method, spec->target,
                           sc->address, why);
    }
    *out = call.resp;
    return 0;
}

int trellis_sidecar_wait(struct trellis_sidecar *sc, uint64_t timeout_ms)
{
    tr_sdk_clear_error();
    uint64_t start = uv_hrtime() / 1000000;
    const char *target = "/v1.0/healthz/outbound";
    for (;;) {
        struct trellis_response *resp = NULL;
        struct tr_sdk_call_spec spec = {.method = "GET", .target = target, .timeout_ms = 1000};
        int rc = tr_sdk_call(sc, &spec, &resp);
        int status = trellis_response_status(resp);
        trellis_response_free(resp);
        if (rc == 0 && status >= 200 && status < 300) {
            return 0;
        }
        if (rc == 0 && status == 404 && strcmp(target, "/v1.0/metadata") != 0) {
            target = "/v1.0/metadata"; /* a sidecar without the outbound probe */
            continue;
        }
        if (rc == -ECANCELED || rc == -EINVAL) {
            return rc;
        }
        uint64_t now = uv_hrtime() / 1000000;
        if (now - start >= timeout_ms) {
            return tr_sdk_fail(-ETIMEDOUT, "the sidecar at %s was not ready within %llu ms (%s)",
                               sc->address, (unsigned long long)timeout_ms,
                               rc != 0 ? trellis_strerror(rc) : "not ready");
        }
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
}
