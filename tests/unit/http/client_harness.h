/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the HTTP client tests (test_client*.c): a tiny scripted libuv server (each
 * request it reads gets the next step of its script: respond, respond byte by byte,
 * close, stay silent, stream a large body, count the request body) and a recorder of
 * one request's callbacks. Header-only since each test file is its own program; the
 * functions are static inline so a file need not use them all. */
#ifndef TR_TESTS_HTTP_CLIENT_HARNESS_H
#define TR_TESTS_HTTP_CLIENT_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <llhttp.h>
#include <uv.h>

#include "core/addr.h"
#include "core/buf.h"
#include "core/mem.h"
#include "http/client.h"

/* ---- The scripted server. ---- */

enum step_kind {
    STEP_RESPOND = 0,   /* write `resp` */
    STEP_RESPOND_CLOSE, /* write `resp`, then close */
    STEP_BYTEWISE,      /* write `resp` one byte per timer tick */
    STEP_CLOSE,         /* close as soon as the request is read */
    STEP_SILENT,        /* never answer */
    STEP_BIG,           /* 200 with srv->big_len pattern bytes, in large writes */
    STEP_COUNT_BODY,    /* 200 whose body is the decimal count of request body bytes */
    STEP_EARLY,         /* write `resp` once the request head is read, before its body */
};

struct step {
    enum step_kind kind;
    const char *resp;
    size_t len; /* 0: strlen(resp) */
};

#define PATTERN_BLOCK (251u * 4096u)
static unsigned char pattern[PATTERN_BLOCK];

struct tsrv;

struct tconn {
    uv_tcp_t tcp;
    uv_timer_t tick;
    llhttp_t parser;
    struct tsrv *srv;
    struct tconn *next;
    const char *drip;
    size_t drip_len;
    size_t drip_off;
    uint64_t req_body;
    char url[64];
    size_t url_len;
    bool early; /* the current request was answered at its head */
    unsigned writes;
    int closes;
    bool closing;
    bool close_after_write;
    char rbuf[65536];
};

struct tsrv {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct tr_addr addr;
    const struct step *script;
    size_t nsteps;
    struct tconn *conns;
    struct tr_buf raw; /* every request byte received */
    size_t big_len;
    bool big_chunked;
    unsigned accepts;
    unsigned requests;
    uint64_t last_body;
    int closes;
};

struct twrite {
    uv_write_t w;
    struct tconn *c;
    char *owned;
    char line[32];
};

static inline void tconn_close(struct tconn *c);

static inline void on_twritten(uv_write_t *w, int status)
{
    struct twrite *tw = w->data;
    struct tconn *c = tw->c;
    c->writes--;
    tr_free_null(&tw->owned);
    tr_free_null(&tw);
    if (c->close_after_write && c->writes == 0) {
        tconn_close(c);
    }
}

static inline void twrite_bufs(struct tconn *c, uv_buf_t *bufs, unsigned n, struct twrite *tw)
{
    tw->c = c;
    tw->w.data = tw;
    assert_int_equal(uv_write(&tw->w, (uv_stream_t *)&c->tcp, bufs, n, on_twritten), 0);
    c->writes++;
}

static inline void twrite(struct tconn *c, const char *p, size_t n)
{
    struct twrite *tw = tr_xcalloc(1, sizeof(*tw));
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    twrite_bufs(c, &b, 1, tw);
}

static inline void on_tconn_close(uv_handle_t *h)
{
    struct tconn *c = h->data;
    struct tsrv *srv = c->srv;
    srv->closes--;
    if (--c->closes == 0) {
        tr_free_null(&c);
    }
}

static inline void tconn_close(struct tconn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    struct tconn **pp = &c->srv->conns;
    while (*pp != c) {
        pp = &(*pp)->next;
    }
    *pp = c->next;
    c->closes = 2;
    c->srv->closes += 2;
    uv_close((uv_handle_t *)&c->tick, on_tconn_close);
    uv_close((uv_handle_t *)&c->tcp, on_tconn_close);
}

static inline void on_tick(uv_timer_t *t)
{
    struct tconn *c = t->data;
    if (c->drip_off == c->drip_len) {
        uv_timer_stop(t);
        return;
    }
    twrite(c, c->drip + c->drip_off, 1);
    c->drip_off++;
}

static inline void write_big(struct tconn *c)
{
    struct tsrv *srv = c->srv;
    char head[128];
    int n =
        srv->big_chunked
            ? snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            : snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
                       srv->big_len);
    struct twrite *tw = tr_xcalloc(1, sizeof(*tw));
    tw->owned = tr_xstrndup(head, (size_t)n);
    uv_buf_t hb = uv_buf_init(tw->owned, (unsigned)n);
    twrite_bufs(c, &hb, 1, tw);
    for (size_t off = 0; off < srv->big_len; off += PATTERN_BLOCK) {
        size_t len = srv->big_len - off < PATTERN_BLOCK ? srv->big_len - off : PATTERN_BLOCK;
        tw = tr_xcalloc(1, sizeof(*tw));
        uv_buf_t bufs[3];
        unsigned nb = 0;
        if (srv->big_chunked) {
            int ln = snprintf(tw->line, sizeof(tw->line), "%zx\r\n", len);
            bufs[nb++] = uv_buf_init(tw->line, (unsigned)ln);
        }
        bufs[nb++] = uv_buf_init((char *)pattern, (unsigned)len);
        if (srv->big_chunked) {
            bufs[nb++] = uv_buf_init((char *)"\r\n", 2);
        }
        twrite_bufs(c, bufs, nb, tw);
    }
    if (srv->big_chunked) {
        twrite(c, "0\r\n\r\n", 5);
    }
}

static inline int s_on_message_begin(llhttp_t *p)
{
    struct tconn *c = p->data;
    c->req_body = 0;
    c->url_len = 0;
    return 0;
}

static inline int s_on_url(llhttp_t *p, const char *at, size_t n)
{
    struct tconn *c = p->data;
    size_t room = sizeof(c->url) - c->url_len;
    n = n < room ? n : room;
    memcpy(c->url + c->url_len, at, n);
    c->url_len += n;
    return 0;
}

static inline int s_on_body(llhttp_t *p, const char *at, size_t n)
{
    struct tconn *c = p->data;
    c->req_body += n;
    return 0;
}

static inline const struct step *next_step(struct tsrv *srv)
{
    return &srv->script[srv->requests < srv->nsteps ? srv->requests : srv->nsteps - 1];
}

static inline int s_on_headers_complete(llhttp_t *p)
{
    struct tconn *c = p->data;
    const struct step *st = next_step(c->srv);
    if (st->kind == STEP_EARLY) {
        c->srv->requests++;
        c->early = true;
        twrite(c, st->resp, strlen(st->resp));
    }
    return 0;
}

static inline int s_on_message_complete(llhttp_t *p)
{
    struct tconn *c = p->data;
    struct tsrv *srv = c->srv;
    /* "/silent" is never answered and takes no step of the script. */
    if (c->url_len == 7 && memcmp(c->url, "/silent", 7) == 0) {
        return 0;
    }
    if (c->early) {
        c->early = false;
        srv->last_body = c->req_body;
        return 0;
    }
    const struct step *st = next_step(srv);
    srv->requests++;
    srv->last_body = c->req_body;
    size_t len = st->resp == NULL ? 0 : st->len ? st->len : strlen(st->resp);
    switch (st->kind) {
    case STEP_RESPOND:
        twrite(c, st->resp, len);
        break;
    case STEP_RESPOND_CLOSE:
        twrite(c, st->resp, len);
        c->close_after_write = true;
        break;
    case STEP_BYTEWISE:
        c->drip = st->resp;
        c->drip_len = len;
        c->drip_off = 0;
        uv_timer_start(&c->tick, on_tick, 1, 1);
        break;
    case STEP_CLOSE:
        tconn_close(c);
        return HPE_PAUSED;
    case STEP_SILENT:
    case STEP_EARLY:
        break;
    case STEP_BIG:
        write_big(c);
        break;
    case STEP_COUNT_BODY: {
        char resp[128];
        char body[32];
        int bn = snprintf(body, sizeof(body), "%llu", (unsigned long long)c->req_body);
        int n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", bn,
                         body);
        struct twrite *tw = tr_xcalloc(1, sizeof(*tw));
        tw->owned = tr_xstrndup(resp, (size_t)n);
        uv_buf_t b = uv_buf_init(tw->owned, (unsigned)n);
        twrite_bufs(c, &b, 1, tw);
        break;
    }
    }
    return 0;
}

static const llhttp_settings_t srv_settings = {
    .on_message_begin = s_on_message_begin,
    .on_url = s_on_url,
    .on_headers_complete = s_on_headers_complete,
    .on_body = s_on_body,
    .on_message_complete = s_on_message_complete,
};

static inline void s_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct tconn *c = h->data;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static inline void s_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tconn *c = s->data;
    if (nread < 0) {
        tconn_close(c);
        return;
    }
    tr_buf_append(&c->srv->raw, buf->base, (size_t)nread);
    llhttp_errno_t e = llhttp_execute(&c->parser, buf->base, (size_t)nread);
    if (e == HPE_PAUSED) {
        return; /* STEP_CLOSE: the connection is closing */
    }
    assert_int_equal(e, HPE_OK);
}

static inline void on_tconn(uv_stream_t *listener, int status)
{
    struct tsrv *srv = listener->data;
    assert_int_equal(status, 0);
    struct tconn *c = tr_xcalloc(1, sizeof(*c));
    c->srv = srv;
    assert_int_equal(uv_tcp_init(srv->loop, &c->tcp), 0);
    assert_int_equal(uv_timer_init(srv->loop, &c->tick), 0);
    c->tcp.data = c;
    c->tick.data = c;
    assert_int_equal(uv_accept(listener, (uv_stream_t *)&c->tcp), 0);
    uv_unref((uv_handle_t *)&c->tcp);
    uv_unref((uv_handle_t *)&c->tick);
    uv_tcp_nodelay(&c->tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &srv_settings);
    c->parser.data = c;
    c->next = srv->conns;
    srv->conns = c;
    srv->accepts++;
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, s_alloc, s_on_read), 0);
}

/* Server handles are unref'd: only the client's work keeps a test loop running. */
static inline void tsrv_start(struct tsrv *srv, uv_loop_t *loop, const struct step *script,
                              size_t n)
{
    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    srv->script = script;
    srv->nsteps = n;
    tr_buf_init(&srv->raw);
    assert_int_equal(tr_addr_parse("127.0.0.1:0", &srv->addr), 0);
    int fd = tr_listen_socket(&srv->addr, 128);
    assert_true(fd >= 0);
    assert_int_equal(uv_tcp_init(loop, &srv->listener), 0);
    assert_int_equal(uv_tcp_open(&srv->listener, fd), 0);
    srv->listener.data = srv;
    assert_int_equal(uv_listen((uv_stream_t *)&srv->listener, 128, on_tconn), 0);
    uv_unref((uv_handle_t *)&srv->listener);
}

/* Closes every accepted connection, as an upstream dropping idle keep-alives does. */
static inline void tsrv_drop_conns(struct tsrv *srv)
{
    while (srv->conns != NULL) {
        tconn_close(srv->conns);
    }
}

static inline void on_listener_close(uv_handle_t *h)
{
    struct tsrv *srv = h->data;
    srv->closes--;
}

static inline void tsrv_close(struct tsrv *srv)
{
    tsrv_drop_conns(srv);
    srv->closes++;
    uv_close((uv_handle_t *)&srv->listener, on_listener_close);
}

/* ---- Client-side harness. ---- */

struct ctx {
    uv_loop_t loop;
    struct tsrv srv;
    struct tr_http_client *client;
    uv_timer_t watchdog;
    uv_timer_t timer;
    void (*timer_fn)(struct ctx *ctx);
    void *timer_arg;
    bool closed;
};

static inline void on_watchdog(uv_timer_t *t)
{
    fprintf(stderr, "test hung: watchdog fired\n");
    abort();
}

static inline void ctx_init(struct ctx *ctx, const struct step *script, size_t n,
                            const struct tr_http_client_config *cfg)
{
    memset(ctx, 0, sizeof(*ctx));
    assert_int_equal(uv_loop_init(&ctx->loop), 0);
    tsrv_start(&ctx->srv, &ctx->loop, script, n);
    ctx->client = tr_http_client_new(&ctx->loop, cfg);
    assert_int_equal(uv_timer_init(&ctx->loop, &ctx->watchdog), 0);
    uv_timer_start(&ctx->watchdog, on_watchdog, 20000, 0);
    uv_unref((uv_handle_t *)&ctx->watchdog);
    assert_int_equal(uv_timer_init(&ctx->loop, &ctx->timer), 0);
    ctx->timer.data = ctx;
}

static inline void ctx_run(struct ctx *ctx)
{
    uv_run(&ctx->loop, UV_RUN_DEFAULT);
}

static inline void on_timer_fire(uv_timer_t *t)
{
    struct ctx *ctx = t->data;
    ctx->timer_fn(ctx);
}

/* Runs fn(ctx) after `ms`; the pending timer keeps the loop alive. */
static inline void ctx_after(struct ctx *ctx, uint64_t ms, void (*fn)(struct ctx *ctx))
{
    ctx->timer_fn = fn;
    uv_timer_start(&ctx->timer, on_timer_fire, ms, 0);
}

static inline void on_client_closed(void *data)
{
    struct ctx *ctx = data;
    ctx->closed = true;
}

static inline void on_noop_close(uv_handle_t *h)
{
}

static inline void ctx_finish(struct ctx *ctx)
{
    if (ctx->client != NULL) {
        tr_http_client_close(ctx->client, on_client_closed, ctx);
        ctx->client = NULL;
    }
    tsrv_close(&ctx->srv);
    uv_close((uv_handle_t *)&ctx->watchdog, on_noop_close);
    uv_close((uv_handle_t *)&ctx->timer, on_noop_close);
    uv_run(&ctx->loop, UV_RUN_DEFAULT);
    assert_true(ctx->closed);
    assert_int_equal(ctx->srv.closes, 0);
    assert_int_equal(uv_loop_close(&ctx->loop), 0);
    tr_buf_dispose(&ctx->srv.raw);
}

static inline struct tr_http_client_stats stats_of(struct ctx *ctx)
{
    struct tr_http_client_stats st;
    tr_http_client_get_stats(ctx->client, &st);
    return st;
}

/* One request's outcome, and how its callbacks should behave. */
struct rec {
    struct ctx *ctx;
    struct tr_http_client_req *req;
    int status;
    unsigned headers_cbs;
    unsigned body_cbs;
    unsigned ends;
    unsigned errors;
    int err;
    unsigned flags;
    bool has_body;
    int64_t content_length;
    struct tr_buf body;
    bool count_only; /* check big bodies against the pattern instead of keeping them */
    bool pattern_bad;
    uint64_t body_total;     /* bytes delivered */
    const char *want_header; /* copy this header's value into `header` */
    char header[64];
    unsigned header_count;
    void (*then)(struct rec *r); /* after end or error */
    bool cancel_in_headers;
    bool cancel_in_body;
    bool pause_in_headers;
    bool close_client_in_headers;
    unsigned pause_every;     /* pause in every n-th body callback; resumed by a timer */
    uint64_t resume_after_ms; /* pause_in_headers: resume after this long (0: 30 ms) */
    bool paused;
    uint64_t long_pause_at; /* once this many body bytes arrived, pause long_pause_ms */
    uint64_t long_pause_ms;
    size_t srv_queue_at_long_pause;
    uv_timer_t resume_timer;
    bool resume_timer_used;
};

static inline void rec_init(struct rec *r, struct ctx *ctx)
{
    memset(r, 0, sizeof(*r));
    r->ctx = ctx;
    r->content_length = -2;
    tr_buf_init(&r->body);
}

static inline void rec_dispose(struct rec *r)
{
    tr_buf_dispose(&r->body);
}

static inline void on_resume_timer(uv_timer_t *t)
{
    struct rec *r = t->data;
    if (r->long_pause_at != 0 && r->body_total >= r->long_pause_at && r->long_pause_ms != 0) {
        struct tconn *c = r->ctx->srv.conns;
        r->srv_queue_at_long_pause = c != NULL ? c->tcp.write_queue_size : 0;
        r->long_pause_ms = 0;
    }
    r->paused = false;
    tr_http_client_req_resume(r->req);
}

static inline void r_on_headers(struct tr_http_client_req *req,
                                const struct tr_http_client_resp *resp, void *data)
{
    struct rec *r = data;
    assert_ptr_equal(req, r->req);
    r->headers_cbs++;
    r->status = resp->status;
    r->has_body = resp->has_body;
    r->content_length = resp->content_length;
    r->header_count = (unsigned)resp->header_count;
    for (size_t i = 0; r->want_header != NULL && i < resp->header_count; i++) {
        if (tr_slice_caseeq(resp->headers[i].name, tr_slice_cstr(r->want_header))) {
            snprintf(r->header, sizeof(r->header), "%.*s", TR_SLICE_FMT(resp->headers[i].value));
        }
    }
    if (r->close_client_in_headers) {
        tr_http_client_close(r->ctx->client, on_client_closed, r->ctx);
        r->ctx->client = NULL;
        return;
    }
    if (r->cancel_in_headers) {
        tr_http_client_req_cancel(req);
        return;
    }
    if (r->pause_in_headers) {
        tr_http_client_req_pause(req);
        r->paused = true;
        uv_timer_start(&r->resume_timer, on_resume_timer,
                       r->resume_after_ms != 0 ? r->resume_after_ms : 30, 0);
    }
}

static inline void r_on_body(struct tr_http_client_req *req, struct tr_slice chunk, void *data)
{
    struct rec *r = data;
    assert_false(r->paused); /* nothing may arrive while paused */
    r->body_cbs++;
    if (r->count_only) {
        const unsigned char *p = (const unsigned char *)chunk.ptr;
        for (size_t i = 0; i < chunk.len; i++) {
            r->pattern_bad |= p[i] != (unsigned char)((r->body_total + i) % 251);
        }
    } else {
        tr_buf_append_slice(&r->body, chunk);
    }
    r->body_total += chunk.len;
    if (r->cancel_in_body) {
        tr_http_client_req_cancel(req);
        return;
    }
    if (r->long_pause_ms != 0 && r->body_total >= r->long_pause_at) {
        tr_http_client_req_pause(req);
        r->paused = true;
        uv_timer_start(&r->resume_timer, on_resume_timer, r->long_pause_ms, 0);
        return;
    }
    if (r->pause_every != 0 && r->body_cbs % r->pause_every == 0) {
        tr_http_client_req_pause(req);
        r->paused = true;
        uv_timer_start(&r->resume_timer, on_resume_timer, 0, 0);
    }
}

static inline void r_on_end(struct tr_http_client_req *req, void *data)
{
    struct rec *r = data;
    assert_false(r->paused);
    r->ends++;
    r->req = NULL;
    if (r->then != NULL) {
        r->then(r);
    }
}

static inline void r_on_error(struct tr_http_client_req *req, int err, unsigned flags, void *data)
{
    struct rec *r = data;
    r->errors++;
    r->err = err;
    r->flags = flags;
    r->req = NULL;
    if (r->then != NULL) {
        r->then(r);
    }
}

static const struct tr_http_client_handler rec_handler = {
    .on_headers = r_on_headers,
    .on_body = r_on_body,
    .on_end = r_on_end,
    .on_error = r_on_error,
};

static inline void rec_timer_init(struct rec *r)
{
    assert_int_equal(uv_timer_init(&r->ctx->loop, &r->resume_timer), 0);
    r->resume_timer.data = r;
    r->resume_timer_used = true;
}

static inline void rec_timer_close(struct rec *r)
{
    if (r->resume_timer_used) {
        uv_close((uv_handle_t *)&r->resume_timer, on_noop_close);
    }
}

static inline struct tr_http_client_request make_req(struct rec *r, const char *method,
                                                     const char *target, const char *body)
{
    struct tr_http_client_request q;
    memset(&q, 0, sizeof(q));
    q.upstream = r->ctx->srv.addr;
    q.method = tr_slice_cstr(method);
    q.target = tr_slice_cstr(target);
    q.body = body != NULL ? tr_slice_cstr(body) : TR_SLICE_NULL;
    q.handler = &rec_handler;
    q.data = r;
    return q;
}

static inline void send_req(struct rec *r, const char *method, const char *target, const char *body)
{
    struct tr_http_client_request q = make_req(r, method, target, body);
    assert_int_equal(tr_http_client_request(r->ctx->client, &q, &r->req), 0);
}

static inline void send_get(struct rec *r)
{
    send_req(r, "GET", "/", NULL);
}

static inline struct tr_http_client_config test_cfg(void)
{
    struct tr_http_client_config cfg;
    tr_http_client_config_init(&cfg);
    cfg.response_timeout_ms = 2000;
    cfg.read_timeout_ms = 2000;
    return cfg;
}

#define OK_HELLO "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

/* Call first in main(). */
static inline void harness_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < PATTERN_BLOCK; i++) {
        pattern[i] = (unsigned char)(i % 251);
    }
}

#endif
