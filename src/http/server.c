/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 server connections (see server.h). Life of a connection:
 *   IDLE --first byte--> HEAD --headers--> BODY --message complete--> HANDLER --resp end--> IDLE
 * Each state has its own timeout queue (header, body, idle; write while output waits).
 * Reads land in the worker's scratch buffer when the connection has no backlog, so an
 * idle keep-alive connection holds no buffers at all; bytes that cannot be parsed yet
 * (a pipelined request behind an unfinished response, half a header) move to the
 * connection's own input buffer. The request head is copied span by span into a
 * per-request buffer, so header slices never depend on where the input lived. */
#include "http/server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "core/addr.h"
#include "core/mem.h"
#include "core/query.h"
#include "http/sock.h"

#define SCRATCH_SIZE (64 * 1024)
#define SWEEP_MS 100
#define ARENA_CHUNK 1024
/* Idle connections hold no per-request memory; up to SPARES_MAX sets of it, holding
 * SPARE_BYTES_MAX in all, wait in the server for the next requests (a loop turn may end
 * dozens of exchanges before it starts the next ones). */
#define SPARES_MAX 64
#define SPARE_BYTES_MAX (1024 * 1024)

enum conn_state {
    CS_IDLE = 0, /* between requests */
    CS_HEAD,     /* request line and headers arriving */
    CS_BODY,     /* body arriving */
    CS_HANDLER,  /* message complete; response not yet ended */
};

struct hdr_off {
    uint32_t name_off;
    uint32_t name_len;
    uint32_t value_off;
    uint32_t value_len;
};

/* What a connection needs only while it handles a request: the request arena, the
 * head copy and its header spans, the response header lines and the output buffer. */
struct tr_http_spare {
    struct tr_arena arena;
    struct tr_buf head;
    struct tr_buf resp_headers;
    struct tr_buf out;
    struct hdr_off *hoffs;
    size_t caphoffs;
    size_t bytes; /* allocated by all of the above */
};

struct tr_http_conn {
    uv_tcp_t tcp;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    struct tr_http_server *srv;
    struct tr_list link; /* in srv->conns */
    llhttp_t parser;
    uint64_t id;
    char peer[64];
    struct tr_timeq_entry timer;
    struct tr_timeq *timer_q; /* queue the timer sits in, or NULL */
    enum conn_state state;
    bool first_request;

    struct tr_buf in;    /* unparsed input (backlog) */
    struct tr_buf head;  /* request head bytes: target, header names and values */
    struct hdr_off *hoffs; /* owned; header spans in `head` */
    size_t nhoffs;
    size_t caphoffs;
    uint32_t url_off;
    uint32_t url_len;
    bool field_open;
    bool value_open;
    bool peer_eof;       /* the client half-closed: close once its requests are answered */
    const char *exec_start;  /* bytes given to the current llhttp_execute() */
    const char *exec_end;
    const char *prev_exec_end; /* end of the previous llhttp_execute() input */
    const char *span_end;    /* where the last header value span ended */
    size_t head_size;    /* canonical size of the head so far (what the limit counts) */
    size_t head_raw;     /* raw bytes fed while the head was incomplete (flood guard) */
    bool prev_tail_fold; /* previous input ended in LF + optional SP/HT */
    uint64_t body_bytes;

    struct tr_buf out;   /* output not yet handed to the kernel */
    struct tr_buf wbuf;  /* output owned by the in-flight uv_write */
    bool writing;

    struct tr_http_req req;
    bool handler_called;
    bool msg_complete;
    bool continue_sent;
    bool parser_paused;  /* paused at message complete until the response ends */
    bool in_parser;      /* inside llhttp_execute: callbacks must not re-enter it */
    bool in_read;        /* inside on_read: flush once at the end */
    bool read_paused;    /* reading stopped (backpressure or backlog limit) */
    bool user_paused;    /* the handler asked to pause the body */
    bool close_after;    /* close once the current response is flushed */
    bool closing;
    bool shutting_down;
    bool stop_parsing;   /* framing no longer trustworthy */
    bool upgrade_close;  /* CONNECT: close after the response */
    enum tr_err err;     /* set by a callback that fails the request */
    const char *err_msg;
    char err_buf[160];
};

static uint64_t next_conn_id(void)
{
    static _Atomic uint64_t id = 0;
    return atomic_fetch_add(&id, 1) + 1;
}

static uint64_t next_req_id(void)
{
    static _Atomic uint64_t id = 0;
    return atomic_fetch_add(&id, 1) + 1;
}

void tr_http_limits_default(struct tr_http_limits *l)
{
    l->max_header_bytes = 16 * 1024;
    l->max_headers = 100;
    l->max_body_bytes = 8 * 1024 * 1024;
    l->header_timeout_ms = 10000;
    l->body_timeout_ms = 30000;
    l->idle_timeout_ms = 60000;
    l->write_timeout_ms = 30000;
    l->max_connections = 100000;
    l->output_high_water = 256 * 1024;
}

static void conn_close(struct tr_http_conn *conn);
static void conn_flush(struct tr_http_conn *conn);
static void conn_after_io(struct tr_http_conn *conn);
static void conn_fail(struct tr_http_conn *conn, enum tr_err e, const char *msg);
static size_t conn_execute(struct tr_http_conn *conn, const char *data, size_t len);
static void conn_update_timer(struct tr_http_conn *conn, bool refresh);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ------------------------------------------------------------------ timers */

static void on_conn_timeout(struct tr_timeq_entry *e)
{
    struct tr_http_conn *conn = tr_container_of(e, struct tr_http_conn, timer);
    struct tr_timeq *q = conn->timer_q;
    struct tr_http_server *srv = conn->srv;
    conn->timer_q = NULL;
    if (q == &srv->q_header && conn->state == CS_HEAD) {
        snprintf(conn->err_buf, sizeof(conn->err_buf),
                 "request headers not received within %llu ms",
                 (unsigned long long)srv->limits.header_timeout_ms);
        conn_fail(conn, TR_E_REQUEST_TIMEOUT, conn->err_buf);
    } else if (q == &srv->q_body) {
        snprintf(conn->err_buf, sizeof(conn->err_buf), "no request body bytes for %llu ms",
                 (unsigned long long)srv->limits.body_timeout_ms);
        conn_fail(conn, TR_E_REQUEST_TIMEOUT, conn->err_buf);
    } else {
        /* Idle keep-alive, a first request that never started, or a client that
         * stopped reading: nothing useful can be said, just close. */
        TR_LOG_DEBUG("http", &conn->req.log, "closing connection: %s timeout",
                     q == &srv->q_write ? "write" : "idle");
        conn_close(conn);
    }
    conn_after_io(conn);
}

static void on_sweep(uv_timer_t *t)
{
    struct tr_http_server *srv = t->data;
    uint64_t now = uv_now(srv->loop);
    tr_timeq_expire(&srv->q_header, now);
    tr_timeq_expire(&srv->q_body, now);
    tr_timeq_expire(&srv->q_idle, now);
    tr_timeq_expire(&srv->q_write, now);
}

static void conn_update_timer(struct tr_http_conn *conn, bool refresh)
{
    struct tr_http_server *srv = conn->srv;
    struct tr_timeq *q = NULL;
    if (conn->closing) {
        q = NULL;
    } else if (conn->writing &&
               (conn->read_paused || conn->state == CS_HANDLER || conn->state == CS_IDLE)) {
        q = &srv->q_write;
    } else if (conn->state == CS_IDLE) {
        q = conn->first_request ? &srv->q_header : &srv->q_idle;
    } else if (conn->state == CS_HEAD) {
        q = &srv->q_header;
    } else if (conn->state == CS_BODY && !conn->user_paused) {
        q = &srv->q_body;
    }
    if (q == NULL) {
        tr_timeq_cancel(&conn->timer);
        conn->timer_q = NULL;
        return;
    }
    if (conn->timer_q != q || refresh || !tr_timeq_armed(&conn->timer)) {
        tr_timeq_arm(q, &conn->timer, uv_now(srv->loop));
        conn->timer_q = q;
    }
}

/* ------------------------------------------------------------ request reset */

/* Takes a spare set for a connection that holds no per-request memory. */
static void conn_take_spare(struct tr_http_conn *conn)
{
    struct tr_http_server *srv = conn->srv;
    if (srv->nspares == 0 || conn->req.arena.chunks != NULL || conn->head.base != NULL ||
        conn->out.base != NULL || conn->hoffs != NULL || conn->req.resp_headers.base != NULL) {
        return;
    }
    struct tr_http_spare *sp = &srv->spares[--srv->nspares];
    srv->spare_bytes -= sp->bytes;
    conn->req.arena = sp->arena;
    conn->head = sp->head;
    conn->req.resp_headers = sp->resp_headers;
    conn->out = sp->out;
    conn->hoffs = sp->hoffs;
    conn->caphoffs = sp->caphoffs;
}

static void req_reset(struct tr_http_conn *conn)
{
    struct tr_http_req *req = &conn->req;
    /* The arena's first chunk and the header line buffer are kept for the next
     * request; conn_release_idle_memory() lets go of them. */
    if (req->arena.chunks != NULL) {
        tr_arena_reset(&req->arena);
    } else {
        tr_arena_init(&req->arena, ARENA_CHUNK);
    }
    struct tr_arena arena = req->arena;
    struct tr_buf resp_headers = req->resp_headers;
    tr_buf_reset(&resp_headers);
    if (resp_headers.cap > SPARE_BYTES_MAX / 16) {
        tr_buf_dispose(&resp_headers);
    }
    tr_buf_dispose(&req->body);
    memset(req, 0, sizeof(*req));
    req->conn = conn;
    req->server = conn->srv;
    req->arena = arena;
    tr_buf_init(&req->body);
    req->resp_headers = resp_headers;
    req->content_length = UINT64_MAX;
    req->log.conn_id = conn->id;
    req->log.peer = conn->peer;
    tr_buf_reset(&conn->head);
    conn->nhoffs = 0;
    conn->url_off = 0;
    conn->url_len = 0;
    conn->field_open = false;
    conn->value_open = false;
    conn->head_size = 0;
    conn->head_raw = 0;
    conn->body_bytes = 0;
    conn->handler_called = false;
    conn->msg_complete = false;
    conn->continue_sent = false;
    conn->user_paused = false;
}

static void spare_dispose(struct tr_http_spare *sp)
{
    tr_arena_dispose(&sp->arena);
    tr_buf_dispose(&sp->head);
    tr_buf_dispose(&sp->resp_headers);
    tr_buf_dispose(&sp->out);
    tr_free_null(&sp->hoffs);
    sp->caphoffs = 0;
}

/* The connection has nothing in flight: give back what an idle connection need not
 * hold, so that thousands of idle keep-alive connections stay cheap. The memory goes
 * to the server's spare sets while there is room, so that the next request on any
 * connection starts without malloc. */
static void conn_release_idle_memory(struct tr_http_conn *conn)
{
    struct tr_http_server *srv = conn->srv;
    tr_buf_shrink(&conn->in, 0);
    struct tr_http_spare sp = {
        .arena = conn->req.arena,
        .head = conn->head,
        .resp_headers = conn->req.resp_headers,
        .out = conn->out,
        .hoffs = conn->hoffs,
        .caphoffs = conn->caphoffs,
    };
    /* The finished request's slices point into these; nothing reads them before the
     * next request resets it. */
    tr_arena_init(&conn->req.arena, ARENA_CHUNK);
    tr_buf_init(&conn->head);
    tr_buf_init(&conn->req.resp_headers);
    tr_buf_init(&conn->out);
    conn->hoffs = NULL;
    conn->caphoffs = 0;
    conn->nhoffs = 0;
    tr_arena_reset(&sp.arena);
    sp.bytes = (sp.arena.chunks != NULL ? ARENA_CHUNK : 0) + sp.head.cap + sp.out.cap +
               sp.resp_headers.cap + sp.caphoffs * sizeof(*sp.hoffs);
    bool keep = srv->spares != NULL && srv->nspares < SPARES_MAX && sp.arena.chunks != NULL &&
                sp.out.len == 0 && srv->spare_bytes + sp.bytes <= SPARE_BYTES_MAX;
    if (!keep) {
        spare_dispose(&sp);
        return;
    }
    tr_buf_reset(&sp.head);
    tr_buf_reset(&sp.resp_headers);
    srv->spares[srv->nspares++] = sp;
    srv->spare_bytes += sp.bytes;
}

/* ------------------------------------------------------------ llhttp hooks */

static struct tr_http_conn *conn_of(llhttp_t *p)
{
    return p->data;
}

static int set_err(struct tr_http_conn *conn, enum tr_err e, const char *msg)
{
    conn->err = e;
    conn->err_msg = msg;
    return HPE_USER;
}

static int head_limit_exceeded(struct tr_http_conn *conn)
{
    size_t limit = conn->srv->limits.max_header_bytes;
    snprintf(conn->err_buf, sizeof(conn->err_buf),
             "request line and headers exceed %zu bytes (max_header_bytes)", limit);
    return set_err(conn, TR_E_HEADERS_TOO_LARGE, conn->err_buf);
}

/* Counts `n` bytes towards the head limit. The count is canonical — method, target,
 * names and values as received, plus one SP, ": " and CRLF where the grammar puts
 * them — so the verdict does not depend on optional whitespace or on how the bytes
 * were split across reads. */
static int head_count(struct tr_http_conn *conn, size_t n)
{
    conn->head_size += n;
    return conn->head_size > conn->srv->limits.max_header_bytes ? head_limit_exceeded(conn) : 0;
}

static int head_append(struct tr_http_conn *conn, const char *at, size_t len)
{
    size_t limit = conn->srv->limits.max_header_bytes;
    if (head_count(conn, len) != 0) {
        return HPE_USER;
    }
    if (conn->head.len + len > limit) {
        snprintf(conn->err_buf, sizeof(conn->err_buf),
                 "request line and headers exceed %zu bytes (max_header_bytes)", limit);
        return set_err(conn, TR_E_HEADERS_TOO_LARGE, conn->err_buf);
    }
    tr_buf_append(&conn->head, at, len);
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct tr_http_conn *conn = conn_of(p);
    conn_take_spare(conn);
    req_reset(conn);
    conn->state = CS_HEAD;
    conn->first_request = false;
    conn->req.id = next_req_id();
    conn->req.log.req_id = conn->req.id;
    conn_update_timer(conn, true);
    /* SP, SP, "HTTP/1.1", CRLF after the request line; CRLF ending the head. */
    return head_count(conn, 1 + 1 + 8 + 2 + 2);
}

static int on_method(llhttp_t *p, const char *at, size_t len)
{
    (void)at;
    return head_count(conn_of(p), len);
}

static int on_method_complete(llhttp_t *p)
{
    /* Known this early so an error answer to HEAD carries no body. */
    conn_of(p)->req.method_id = llhttp_get_method(p);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct tr_http_conn *conn = conn_of(p);
    if (conn->url_len == 0) {
        conn->url_off = (uint32_t)conn->head.len;
    }
    conn->url_len += (uint32_t)len;
    return head_append(conn, at, len);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct tr_http_conn *conn = conn_of(p);
    if (!conn->field_open) {
        size_t max = conn->srv->limits.max_headers;
        if (conn->nhoffs >= max) {
            snprintf(conn->err_buf, sizeof(conn->err_buf),
                     "more than %zu request headers (max_headers)", max);
            return set_err(conn, TR_E_TOO_MANY_HEADERS, conn->err_buf);
        }
        if (conn->nhoffs == conn->caphoffs) {
            conn->caphoffs = conn->caphoffs ? conn->caphoffs * 2 : 16;
            conn->hoffs = tr_xrealloc(conn->hoffs, conn->caphoffs * sizeof(*conn->hoffs));
        }
        struct hdr_off *h = &conn->hoffs[conn->nhoffs++];
        h->name_off = (uint32_t)conn->head.len;
        h->name_len = 0;
        h->value_off = 0;
        h->value_len = 0;
        conn->field_open = true;
    }
    conn->hoffs[conn->nhoffs - 1].name_len += (uint32_t)len;
    return head_append(conn, at, len);
}

static int on_header_field_complete(llhttp_t *p)
{
    struct tr_http_conn *conn = conn_of(p);
    if (!conn->field_open || conn->hoffs[conn->nhoffs - 1].name_len == 0) {
        /* ": value": RFC 9110 §5.1 needs a token; llhttp 8.1 lets it through. */
        return set_err(conn, TR_E_BAD_REQUEST, "empty header name");
    }
    conn->field_open = false;
    return head_count(conn, 4); /* ": " and CRLF */
}

/* Is the first byte of a header value preceded, across optional whitespace, by a line
 * feed? llhttp skips such a fold silently when the value's first line is empty. */
static bool value_follows_line_break(const struct tr_http_conn *conn, const char *at)
{
    const char *q = at;
    while (q > conn->exec_start && (q[-1] == ' ' || q[-1] == '\t')) {
        q--;
    }
    if (q > conn->exec_start) {
        return q[-1] == '\n';
    }
    return conn->prev_tail_fold;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct tr_http_conn *conn = conn_of(p);
    if (conn->nhoffs == 0) {
        return set_err(conn, TR_E_BAD_REQUEST, "header value without a name");
    }
    if (len == 0) {
        /* llhttp marks an empty value with a zero-length span placed after the line
         * break it had to look past; it carries nothing to check or keep. */
        return 0;
    }
    struct hdr_off *h = &conn->hoffs[conn->nhoffs - 1];
    if (!conn->value_open) {
        h->value_off = (uint32_t)conn->head.len;
        conn->value_open = true;
        if (value_follows_line_break(conn, at)) {
            /* "Name:" CRLF SP "value": obs-fold with an empty first line. */
            return set_err(conn, TR_E_BAD_REQUEST,
                           "obsolete line folding (obs-fold) in header value");
        }
    } else if (!(conn->span_end == conn->prev_exec_end && at == conn->exec_start)) {
        /* A value continues in a second span only across two reads; anywhere else
         * llhttp has skipped a line break: obs-fold, which RFC 9112 §5.2 lets a
         * server reject and which smuggling relies on. */
        return set_err(conn, TR_E_BAD_REQUEST,
                       "obsolete line folding (obs-fold) in header value");
    }
    conn->span_end = at + len;
    h->value_len += (uint32_t)len;
    return head_append(conn, at, len);
}

static int on_header_value_complete(llhttp_t *p)
{
    struct tr_http_conn *conn = conn_of(p);
    conn->value_open = false;
    if (conn->nhoffs == 0) {
        return set_err(conn, TR_E_BAD_REQUEST, "header value without a name");
    }
    struct hdr_off *h = &conn->hoffs[conn->nhoffs - 1];
    if (h->value_len == 0) {
        return 0;
    }
    const char *v = tr_buf_data(&conn->head) + h->value_off;
    /* RFC 9110 §5.5: CR, LF and NUL are never allowed in a field value; obs-fold would
     * surface here as CR/LF too. llhttp's strict mode rejects most of these already. */
    for (uint32_t i = 0; i < h->value_len; i++) {
        if (v[i] == '\0' || v[i] == '\r' || v[i] == '\n') {
            return set_err(conn, TR_E_BAD_REQUEST, "invalid character in header value");
        }
    }
    return 0;
}

static void split_target(struct tr_http_req *req)
{
    struct tr_slice t = req->target;
    size_t start = 0;
    /* absolute-form (RFC 9112 §3.2.2): skip scheme://authority */
    if (t.len > 0 && t.ptr[0] != '/' && t.ptr[0] != '*') {
        const char *sep = memchr(t.ptr, ':', t.len);
        if (sep != NULL && (size_t)(sep - t.ptr) + 3 <= t.len && sep[1] == '/' && sep[2] == '/') {
            start = (size_t)(sep - t.ptr) + 3;
            while (start < t.len && t.ptr[start] != '/' && t.ptr[start] != '?') {
                start++;
            }
        }
    }
    const char *q = memchr(t.ptr + start, '?', t.len - start);
    if (q != NULL) {
        req->path = tr_slice(t.ptr + start, (size_t)(q - t.ptr) - start);
        req->query = tr_slice(q + 1, t.len - (size_t)(q - t.ptr) - 1);
    } else {
        req->path = tr_slice(t.ptr + start, t.len - start);
        req->query = tr_slice(t.ptr + t.len, 0);
    }
    if (req->path.len == 0 && start > 0) {
        req->path = TR_SLICE_LIT("/");
    }
}

/* Builds req->headers from the recorded spans and applies the framing rules llhttp
 * leaves to us. Returns 0 or HPE_USER with conn->err set. */
static int build_head(struct tr_http_conn *conn)
{
    struct tr_http_req *req = &conn->req;
    const char *base = conn->head.len > 0 ? tr_buf_data(&conn->head) : "";
    req->method_id = llhttp_get_method(&conn->parser);
    req->method = tr_slice_cstr(llhttp_method_name((llhttp_method_t)req->method_id));
    req->version_minor = llhttp_get_http_minor(&conn->parser);
    if (llhttp_get_http_major(&conn->parser) != 1 || req->version_minor > 1) {
        return set_err(conn, TR_E_VERSION_UNSUPPORTED, "only HTTP/1.0 and HTTP/1.1 are served");
    }
    req->target = tr_slice(base + conn->url_off, conn->url_len);
    split_target(req);
    req->headers = tr_arena_alloc(&req->arena, (conn->nhoffs + 1) * sizeof(*req->headers));
    req->nheaders = conn->nhoffs;
    int hosts = 0;
    int tes = 0;
    for (size_t i = 0; i < conn->nhoffs; i++) {
        struct hdr_off *h = &conn->hoffs[i];
        struct tr_http_header *hd = &req->headers[i];
        hd->name = tr_slice(base + h->name_off, h->name_len);
        hd->value = tr_slice_trim(tr_slice(base + h->value_off, h->value_len));
        if (tr_slice_caseeq(hd->name, TR_SLICE_LIT("host"))) {
            hosts++;
        } else if (tr_slice_caseeq(hd->name, TR_SLICE_LIT("transfer-encoding"))) {
            tes++;
            /* RFC 9112 §6.1: we implement only chunked; anything else is 501. */
            if (!tr_slice_caseeq(hd->value, TR_SLICE_LIT("chunked"))) {
                return set_err(conn, TR_E_NOT_IMPLEMENTED,
                               "unsupported Transfer-Encoding (only \"chunked\" is accepted)");
            }
        } else if (tr_slice_caseeq(hd->name, TR_SLICE_LIT("expect"))) {
            if (!tr_slice_caseeq(hd->value, TR_SLICE_LIT("100-continue"))) {
                return set_err(conn, TR_E_EXPECTATION_FAILED,
                               "unsupported Expect value (only 100-continue)");
            }
            req->expect_continue = true;
        }
    }
    if (tes > 1) {
        return set_err(conn, TR_E_BAD_REQUEST, "more than one Transfer-Encoding header");
    }
    if (conn->parser.flags & F_CHUNKED) {
        req->chunked = true;
    }
    if (conn->parser.flags & F_CONTENT_LENGTH) {
        if (req->chunked || tes > 0) {
            return set_err(conn, TR_E_BAD_REQUEST,
                           "both Content-Length and Transfer-Encoding present");
        }
        req->content_length = conn->parser.content_length;
    }
    /* RFC 9112 §3.2: exactly one Host in HTTP/1.1. */
    if (hosts > 1 || (hosts == 0 && req->version_minor >= 1)) {
        return set_err(conn, TR_E_BAD_REQUEST,
                       hosts ? "more than one Host header" : "missing Host header");
    }
    req->keep_alive = llhttp_should_keep_alive(&conn->parser);
    if (req->method_id == HTTP_CONNECT) {
        /* What follows a CONNECT head is a tunnel we do not serve: answer and close. */
        req->keep_alive = false;
    }
    return 0;
}

static void call_handler(struct tr_http_conn *conn)
{
    struct tr_http_req *req = &conn->req;
    conn->handler_called = true;
    conn->srv->requests++;
    if (req->match.route == NULL) {
        if (req->match.method_mismatch) {
            tr_http_resp_header(req, TR_SLICE_LIT("Allow"), tr_slice_cstr(req->match.allow));
            snprintf(conn->err_buf, sizeof(conn->err_buf), "method %.*s not allowed here",
                     TR_SLICE_FMT(req->method));
            tr_http_resp_error(req, TR_E_METHOD_NOT_ALLOWED, conn->err_buf);
        } else {
            tr_http_resp_error(req, TR_E_NOT_FOUND, "no route for this path");
        }
        return;
    }
    tr_route_handler(req->match.route)(req);
}

static bool has_body(const struct tr_http_req *req)
{
    return req->chunked || (req->content_length != UINT64_MAX && req->content_length > 0);
}

static int on_headers_complete(llhttp_t *p)
{
    struct tr_http_conn *conn = conn_of(p);
    struct tr_http_req *req = &conn->req;
    int rc = build_head(conn);
    if (rc != 0) {
        return rc;
    }
    uint64_t max_body = conn->srv->limits.max_body_bytes;
    if (req->content_length != UINT64_MAX && req->content_length > max_body) {
        snprintf(conn->err_buf, sizeof(conn->err_buf),
                 "request body of %llu bytes exceeds %llu (max_body_bytes)",
                 (unsigned long long)req->content_length, (unsigned long long)max_body);
        return set_err(conn, TR_E_BODY_TOO_LARGE, conn->err_buf);
    }
    tr_router_match(conn->srv->router, req->method, req->path, &req->match);
    conn->state = has_body(req) ? CS_BODY : CS_HANDLER;
    if (conn->state == CS_BODY && req->expect_continue && req->version_minor >= 1) {
        tr_http__conn_output(conn, TR_SLICE_LIT("HTTP/1.1 100 Continue\r\n\r\n"));
        conn->continue_sent = true;
    }
    bool stream = req->match.route != NULL && (tr_route_flags(req->match.route) & TR_ROUTE_STREAM);
    if (stream || (req->match.route == NULL && conn->state == CS_BODY)) {
        /* Streaming handlers start now; so do 404/405 for requests with a body,
         * whose body is then read and dropped. */
        call_handler(conn);
    }
    conn_update_timer(conn, true);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct tr_http_conn *conn = conn_of(p);
    struct tr_http_req *req = &conn->req;
    uint64_t max_body = conn->srv->limits.max_body_bytes;
    conn->body_bytes += len;
    if (conn->body_bytes > max_body) {
        snprintf(conn->err_buf, sizeof(conn->err_buf),
                 "request body exceeds %llu bytes (max_body_bytes)", (unsigned long long)max_body);
        return set_err(conn, TR_E_BODY_TOO_LARGE, conn->err_buf);
    }
    if (req->resp_ended) {
        return 0; /* answered early: drop the rest of the body */
    }
    if (req->on_body != NULL) {
        req->on_body(req, tr_slice(at, len));
    } else if (!conn->handler_called) {
        tr_buf_append(&req->body, at, len);
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct tr_http_conn *conn = conn_of(p);
    struct tr_http_req *req = &conn->req;
    conn->msg_complete = true;
    req->body_complete = true;
    conn->state = CS_HANDLER;
    conn_update_timer(conn, false);
    if (!conn->handler_called) {
        call_handler(conn);
    } else if (req->on_body_end != NULL && !req->resp_ended) {
        req->on_body_end(req, true);
    }
    if (req->resp_ended) {
        /* Answered synchronously: the request is finished. Keep parsing pipelined
         * requests in this same pass unless the connection is closing. */
        tr_http__req_done(req);
        return conn->close_after || conn->closing ? HPE_PAUSED : 0;
    }
    conn->parser_paused = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_method = on_method,
    .on_method_complete = on_method_complete,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ------------------------------------------------------------ errors */

static enum tr_err map_llhttp_error(llhttp_errno_t e)
{
    switch (e) {
    case HPE_INVALID_VERSION:
        return TR_E_VERSION_UNSUPPORTED;
    case HPE_INVALID_METHOD:
        return TR_E_BAD_REQUEST;
    default:
        return TR_E_BAD_REQUEST;
    }
}

/* The request cannot be trusted any further: answer (if nothing was sent for it yet)
 * with Connection: close, and close once that is flushed. */
static void conn_fail(struct tr_http_conn *conn, enum tr_err e, const char *msg)
{
    struct tr_http_req *req = &conn->req;
    conn->stop_parsing = true;
    conn->close_after = true;
    if (conn->closing) {
        return;
    }
    const struct tr_err_info *info = tr_err_info(e);
    TR_LOG_DEBUG("http", &req->log, "rejecting request: %d %s: %s", info->status, info->code,
                 msg ? msg : info->message);
    if (req->resp_started) {
        conn_close(conn); /* a response is half sent: only closing is left */
        return;
    }
    if (conn->handler_called && req->on_body_end != NULL) {
        /* A streaming handler that has not answered owns the request (a proxy waiting
         * for the rest of the body, or for its upstream): it learns that the body failed
         * and lets go of the request, then the error below is the answer. Without this
         * it kept a pointer to a request that ended under it. */
        tr_http_body_end_cb *cb = req->on_body_end;
        req->on_body_end = NULL;
        req->on_body = NULL;
        cb(req, false);
    }
    /* The response state of a request that never reached its handler is clean. */
    req->resp_close = true;
    tr_http_resp_error(req, e, msg);
}

static void report_parse_error(struct tr_http_conn *conn, llhttp_errno_t err)
{
    if (conn->err_msg != NULL) {
        /* One of our callbacks failed the request and said why. */
        conn_fail(conn, conn->err, conn->err_msg);
        return;
    }
    const char *reason = llhttp_get_error_reason(&conn->parser);
    snprintf(conn->err_buf, sizeof(conn->err_buf), "malformed request: %s (%s)",
             reason ? reason : "parse error", llhttp_errno_name(err));
    conn_fail(conn, map_llhttp_error(err), conn->err_buf);
}

/* ------------------------------------------------------------ parsing */

/* Feeds bytes to llhttp. Returns how many were consumed; the rest must be kept and
 * offered again once the parser is resumed. */
static size_t conn_execute(struct tr_http_conn *conn, const char *data, size_t len)
{
    if (conn->parser_paused || conn->stop_parsing || conn->closing || len == 0) {
        return conn->stop_parsing || conn->closing ? len : 0;
    }
    conn->in_parser = true;
    conn->prev_exec_end = conn->exec_end;
    conn->exec_start = data;
    conn->exec_end = data + len;
    llhttp_errno_t err = llhttp_execute(&conn->parser, data, len);
    conn->in_parser = false;
    size_t used = len;
    if (err == HPE_PAUSED) {
        used = (size_t)(llhttp_get_error_pos(&conn->parser) - data);
        if (!conn->parser_paused) {
            /* Paused after a synchronous response that closes the connection. */
            llhttp_resume(&conn->parser);
            used = len;
        }
    } else if (err == HPE_PAUSED_UPGRADE) {
        used = (size_t)(llhttp_get_error_pos(&conn->parser) - data);
        if (conn->req.method_id == HTTP_CONNECT) {
            /* Tunnels are not served here: the bytes after the head are not HTTP. */
            conn->upgrade_close = true;
            conn->close_after = true;
            conn->stop_parsing = true;
            used = len;
        } else {
            /* We never switch protocols: the request was answered as plain HTTP and
             * the connection carries on as HTTP/1.1 (RFC 9110 §7.8). */
            llhttp_resume_after_upgrade(&conn->parser);
            if (!conn->parser_paused) {
                used += conn_execute(conn, data + used, len - used);
            }
        }
    } else if (err != HPE_OK) {
        report_parse_error(conn, err);
        used = len;
    }
    if (conn->state == CS_HEAD && !conn->stop_parsing && !conn->closing) {
        /* Flood guard for bytes the canonical count skips (optional whitespace). */
        conn->head_raw += len;
        if (conn->head_raw > 2 * conn->srv->limits.max_header_bytes + 1024) {
            head_limit_exceeded(conn);
            conn_fail(conn, conn->err, conn->err_msg);
        }
    }
    /* Remember whether the input ended in LF + optional whitespace, for obs-fold
     * detection when the value starts in the next read. */
    const char *q = data + len;
    while (q > data && (q[-1] == ' ' || q[-1] == '\t')) {
        q--;
    }
    conn->prev_tail_fold = q > data && q[-1] == '\n';
    return used;
}

/* Parses what waits in the input backlog (after a response ended asynchronously). */
static void conn_process_backlog(struct tr_http_conn *conn)
{
    while (conn->in.len > 0 && !conn->parser_paused && !conn->closing && !conn->stop_parsing) {
        size_t used = conn_execute(conn, tr_buf_data(&conn->in), conn->in.len);
        tr_buf_consume(&conn->in, used);
        if (used == 0) {
            break;
        }
    }
    if (conn->stop_parsing) {
        tr_buf_reset(&conn->in);
    }
}

/* ------------------------------------------------------------ I/O */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct tr_http_conn *conn = h->data;
    struct tr_http_server *srv = conn->srv;
    (void)suggested;
    if (conn->in.len == 0 && !srv->scratch_busy) {
        srv->scratch_busy = true;
        *buf = uv_buf_init(srv->scratch, (unsigned)srv->scratch_size);
        return;
    }
    size_t want = 16 * 1024;
    *buf = uv_buf_init(tr_buf_reserve(&conn->in, want), (unsigned)want);
}

static void conn_read_start(struct tr_http_conn *conn)
{
    if (conn->closing || !conn->read_paused) {
        return;
    }
    conn->read_paused = false;
    uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
}

static void conn_read_stop(struct tr_http_conn *conn)
{
    if (conn->closing || conn->read_paused) {
        return;
    }
    conn->read_paused = true;
    uv_read_stop((uv_stream_t *)&conn->tcp);
}

static void on_eof(struct tr_http_conn *conn, ssize_t nread)
{
    struct tr_http_req *req = &conn->req;
    if (nread != UV_EOF) {
        TR_LOG_DEBUG("http", &req->log, "read error: %s", uv_strerror((int)nread));
        conn_close(conn);
        return;
    }
    if (conn->state == CS_HANDLER) {
        /* The client half-closed after a complete request: answer it and whatever
         * complete requests are pipelined behind it, then close. */
        conn->peer_eof = true;
        conn_read_stop(conn);
        return;
    }
    conn_close(conn);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tr_http_conn *conn = s->data;
    struct tr_http_server *srv = conn->srv;
    bool scratch = buf->base == srv->scratch;
    if (nread <= 0) {
        if (scratch) {
            srv->scratch_busy = false;
        }
        if (nread < 0) {
            on_eof(conn, nread);
            conn_after_io(conn);
        }
        return;
    }
    conn->in_read = true;
    if (conn->state == CS_BODY) {
        conn_update_timer(conn, true);
    }
    if (scratch) {
        size_t used = conn_execute(conn, buf->base, (size_t)nread);
        if (used < (size_t)nread && !conn->closing && !conn->stop_parsing) {
            tr_buf_append(&conn->in, buf->base + used, (size_t)nread - used);
        }
        srv->scratch_busy = false;
    } else {
        tr_buf_commit(&conn->in, (size_t)nread);
        size_t used = conn_execute(conn, tr_buf_data(&conn->in), conn->in.len);
        tr_buf_consume(&conn->in, used);
        if (conn->stop_parsing) {
            tr_buf_reset(&conn->in);
        }
    }
    conn->in_read = false;
    conn_after_io(conn);
}

/* After any event: push output, bound the backlog, pick the right timer. */
static void conn_after_io(struct tr_http_conn *conn)
{
    if (conn->closing) {
        return;
    }
    conn_flush(conn);
    if (conn->closing) {
        return;
    }
    size_t backlog_max = conn->srv->limits.max_header_bytes + SCRATCH_SIZE;
    bool over_out = tr_http__conn_pending(conn) > conn->srv->limits.output_high_water;
    bool over_in = conn->in.len > backlog_max;
    if (conn->user_paused || over_out || over_in || conn->stop_parsing || conn->peer_eof) {
        if (!conn->stop_parsing || conn->close_after) {
            conn_read_stop(conn);
        }
    } else {
        conn_read_start(conn);
    }
    conn_update_timer(conn, false);
}

static void on_close(uv_handle_t *h)
{
    struct tr_http_conn *conn = h->data;
    struct tr_http_server *srv = conn->srv;
    tr_list_remove(&conn->link);
    srv->nconns--;
    tr_arena_dispose(&conn->req.arena);
    tr_buf_dispose(&conn->req.body);
    tr_buf_dispose(&conn->req.resp_headers);
    tr_buf_dispose(&conn->in);
    tr_buf_dispose(&conn->head);
    tr_buf_dispose(&conn->out);
    tr_buf_dispose(&conn->wbuf);
    tr_free_null(&conn->hoffs);
    tr_free_null(&conn);
    if (srv->nconns == 0 && srv->draining && srv->on_drained != NULL) {
        srv->on_drained(srv);
    }
}

static void conn_close(struct tr_http_conn *conn)
{
    if (conn->closing) {
        return;
    }
    conn->closing = true;
    tr_timeq_cancel(&conn->timer);
    conn->timer_q = NULL;
    struct tr_http_req *req = &conn->req;
    if (conn->handler_called && !req->resp_ended && req->on_body_end != NULL) {
        /* The handler still owns the request: tell it the client is gone. It must
         * not touch the request after this callback. */
        tr_http_body_end_cb *cb = req->on_body_end;
        req->on_body_end = NULL;
        cb(req, false);
    }
    if (!uv_is_closing((uv_handle_t *)&conn->tcp)) {
        uv_close((uv_handle_t *)&conn->tcp, on_close);
    }
}

static void on_shutdown(uv_shutdown_t *sreq, int status)
{
    struct tr_http_conn *conn = sreq->data;
    (void)status;
    conn_close(conn);
}

/* All output is out and the connection must end: half-close first so the client
 * reads our last response before it sees the connection go away. */
static void conn_finish_close(struct tr_http_conn *conn)
{
    if (conn->shutting_down || conn->closing) {
        return;
    }
    conn->shutting_down = true;
    conn->sreq.data = conn;
    if (uv_shutdown(&conn->sreq, (uv_stream_t *)&conn->tcp, on_shutdown) != 0) {
        conn_close(conn);
    }
}

static void on_write(uv_write_t *wreq, int status)
{
    struct tr_http_conn *conn = wreq->data;
    conn->writing = false;
    tr_buf_reset(&conn->wbuf);
    tr_buf_shrink(&conn->wbuf, 64 * 1024);
    if (conn->closing) {
        return;
    }
    if (status < 0) {
        TR_LOG_DEBUG("http", &conn->req.log, "write failed: %s", uv_strerror(status));
        conn_close(conn);
        return;
    }
    conn_update_timer(conn, true);
    conn_after_io(conn);
}

static void conn_flush(struct tr_http_conn *conn)
{
    if (conn->writing || conn->closing) {
        return;
    }
    if (conn->out.len > 0) {
        uv_buf_t b = uv_buf_init(tr_buf_data(&conn->out), (unsigned)conn->out.len);
        ssize_t n = tr_http_sock_send((uv_stream_t *)&conn->tcp, &b, 1);
        if (n > 0) {
            tr_buf_consume(&conn->out, (size_t)n);
        } else if (n < 0) {
            TR_LOG_DEBUG("http", &conn->req.log, "write failed: %s", uv_strerror((int)n));
            conn_close(conn);
            return;
        }
        if (conn->out.len > 0) {
            /* The kernel is full: hand the rest to uv_write in a buffer of its own. */
            struct tr_buf tmp = conn->wbuf;
            conn->wbuf = conn->out;
            conn->out = tmp;
            uv_buf_t wb = uv_buf_init(tr_buf_data(&conn->wbuf), (unsigned)conn->wbuf.len);
            conn->wreq.data = conn;
            int err = uv_write(&conn->wreq, (uv_stream_t *)&conn->tcp, &wb, 1, on_write);
            if (err != 0) {
                conn_close(conn);
                return;
            }
            conn->writing = true;
            conn_update_timer(conn, true);
            return;
        }
    }
    struct tr_http_req *req = &conn->req;
    if (req->on_drain != NULL && !req->resp_ended) {
        tr_http_drain_cb *cb = req->on_drain;
        req->on_drain = NULL;
        cb(req);
        if (conn->closing || conn->writing) {
            return;
        }
        if (conn->out.len > 0) {
            conn_flush(conn);
            return;
        }
    }
    if (conn->close_after && (conn->state == CS_IDLE || conn->req.resp_ended)) {
        conn_finish_close(conn);
    } else if (conn->peer_eof && conn->state != CS_HANDLER && !conn->in_parser) {
        /* Nothing more can arrive: what is answered is all there will be. */
        conn_finish_close(conn);
    } else if (conn->state == CS_IDLE && conn->in.len == 0) {
        conn_release_idle_memory(conn);
        if (conn->srv->draining) {
            conn_close(conn);
        }
    }
}

/* ------------------------------------------------------------ shared with response.c */

void tr_http__conn_output(struct tr_http_conn *conn, struct tr_slice data)
{
    tr_buf_append(&conn->out, data.ptr, data.len);
}

struct tr_buf *tr_http__conn_outbuf(struct tr_http_conn *conn)
{
    return &conn->out;
}

void tr_http__conn_output_now(struct tr_http_conn *conn, struct tr_slice data)
{
    if (conn->writing || conn->closing || conn->shutting_down) {
        tr_buf_append(&conn->out, data.ptr, data.len);
        return;
    }
    uv_buf_t bufs[2];
    unsigned n = 0;
    if (conn->out.len > 0) {
        bufs[n++] = uv_buf_init(tr_buf_data(&conn->out), (unsigned)conn->out.len);
    }
    bufs[n++] = uv_buf_init((char *)data.ptr, (unsigned)data.len);
    ssize_t sent = tr_http_sock_send((uv_stream_t *)&conn->tcp, bufs, n);
    /* An error is found again, and acted on, by the next flush. */
    size_t done = sent > 0 ? (size_t)sent : 0;
    size_t from_out = done < conn->out.len ? done : conn->out.len;
    tr_buf_consume(&conn->out, from_out);
    done -= from_out;
    tr_buf_append(&conn->out, data.ptr + done, data.len - done);
}

size_t tr_http__conn_pending(const struct tr_http_conn *conn)
{
    return conn->out.len + conn->wbuf.len;
}

bool tr_http__conn_draining(const struct tr_http_conn *conn)
{
    return conn->srv->draining || conn->close_after;
}

/* The response has ended (called from tr_http_resp_end). */
void tr_http__req_done(struct tr_http_req *req)
{
    struct tr_http_conn *conn = req->conn;
    req->resp_ended = true;
    /* A pause asked for by the handler ends with its request (fuzzer find: a paused
     * connection whose message completed in the same read never read again). */
    conn->user_paused = false;
    if (req->resp_close || (req->expect_continue && !conn->continue_sent && !conn->msg_complete)) {
        conn->close_after = true;
        conn->stop_parsing = true;
    }
    if (!conn->msg_complete) {
        /* Answered before the body was read: keep reading and dropping it. */
        if (!conn->in_read && !conn->in_parser) {
            conn_after_io(conn);
        }
        return;
    }
    conn->state = CS_IDLE;
    if (conn->in_parser) {
        return; /* on_message_complete carries on parsing */
    }
    bool was_paused = conn->parser_paused;
    conn->parser_paused = false;
    if (was_paused) {
        llhttp_resume(&conn->parser);
    }
    if (!conn->in_read) {
        conn_process_backlog(conn);
        conn_after_io(conn);
    }
}

/* ------------------------------------------------------------ protocol switch */

int tr_http_req_takeover(struct tr_http_req *req, struct tr_buf *rest)
{
    struct tr_http_conn *conn = req->conn;
    if (req->resp_started || conn->closing || conn->shutting_down) {
        return -EINVAL;
    }
    uv_os_fd_t fd;
    int rc = uv_fileno((uv_handle_t *)&conn->tcp, &fd);
    if (rc != 0) {
        return rc;
    }
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd == -1) {
        return -errno;
    }
    if (rest != NULL && conn->in.len > 0) {
        tr_buf_append_slice(rest, tr_buf_slice(&conn->in));
    }
    /* The request is over for the server: conn_close() must not call the handler
     * back, and nothing queued may be written. uv_close() (not a shutdown) sends no
     * FIN while the duplicate holds the socket. */
    req->on_body = NULL;
    req->on_body_end = NULL;
    req->resp_ended = true;
    tr_buf_reset(&conn->out);
    conn_close(conn);
    return dup_fd;
}

/* ------------------------------------------------------------ request helpers */

struct tr_slice tr_http_req_header(const struct tr_http_req *req, struct tr_slice name)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (tr_slice_caseeq(req->headers[i].name, name)) {
            return req->headers[i].value;
        }
    }
    return TR_SLICE_NULL;
}

struct tr_slice tr_http_req_param(const struct tr_http_req *req, const char *name)
{
    struct tr_slice n = tr_slice_cstr(name);
    for (size_t i = 0; i < req->match.nparams; i++) {
        if (tr_slice_eq(req->match.params[i].name, n)) {
            return req->match.params[i].value;
        }
    }
    return TR_SLICE_NULL;
}

bool tr_http_req_query(struct tr_http_req *req, const char *name, struct tr_slice *value)
{
    return tr_query_get(req->query, name, &req->arena, value);
}

void tr_http_req_pause(struct tr_http_req *req)
{
    struct tr_http_conn *conn = req->conn;
    conn->user_paused = true;
    if (!conn->in_read) {
        conn_read_stop(conn);
    }
    conn_update_timer(conn, false);
}

void tr_http_req_resume(struct tr_http_req *req)
{
    struct tr_http_conn *conn = req->conn;
    if (!conn->user_paused) {
        return;
    }
    conn->user_paused = false;
    if (!conn->in_read && !conn->in_parser) {
        conn_after_io(conn);
    }
}

void tr_http_resp_flush(struct tr_http_req *req)
{
    struct tr_http_conn *conn = req->conn;
    if (conn->closing || conn->in_read || conn->in_parser) {
        return; /* the connection's own event handler flushes when it returns */
    }
    conn_after_io(conn);
}

/* ------------------------------------------------------------ accept / server */

static void on_connection(uv_stream_t *listener, int status)
{
    struct tr_http_server *srv = listener->data;
    if (status < 0) {
        TR_LOG_WARN(srv->name, NULL, "accept failed: %s", uv_strerror(status));
        return;
    }
    struct tr_http_conn *conn = tr_xcalloc(1, sizeof(*conn));
    conn->srv = srv;
    conn->id = next_conn_id();
    uv_tcp_init(srv->loop, &conn->tcp);
    conn->tcp.data = conn;
    tr_list_insert_tail(&srv->conns, &conn->link);
    srv->nconns++;
    tr_timeq_entry_init(&conn->timer, on_conn_timeout);
    if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0) {
        conn_close(conn);
        return;
    }
    srv->accepted++;
    if (srv->nconns > srv->limits.max_connections || srv->draining) {
        TR_LOG_WARN(srv->name, NULL, "closing new connection: %zu open (max_connections)",
                    srv->nconns - 1);
        conn_close(conn);
        return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&ss, &len) == 0) {
        tr_addr_format((struct sockaddr *)&ss, conn->peer, sizeof(conn->peer));
    }
    llhttp_init(&conn->parser, HTTP_REQUEST, &parser_settings);
    conn->parser.data = conn;
    conn->first_request = true;
    req_reset(conn);
    conn->state = CS_IDLE;
    conn->read_paused = true;
    conn_read_start(conn);
    conn_update_timer(conn, true);
}

int tr_http_server_init(struct tr_http_server *srv, uv_loop_t *loop, int fd,
                        struct tr_router *router, const struct tr_http_limits *limits)
{
    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    srv->router = router;
    srv->limits = *limits;
    if (srv->name == NULL) {
        srv->name = "http";
    }
    tr_list_init(&srv->conns);
    tr_timeq_init(&srv->q_header, limits->header_timeout_ms);
    tr_timeq_init(&srv->q_body, limits->body_timeout_ms);
    tr_timeq_init(&srv->q_idle, limits->idle_timeout_ms);
    tr_timeq_init(&srv->q_write, limits->write_timeout_ms);
    srv->scratch_size = SCRATCH_SIZE;
    srv->scratch = tr_xmalloc(SCRATCH_SIZE);
    srv->spares = tr_xcalloc(SPARES_MAX, sizeof(*srv->spares));
    int err = uv_tcp_init(loop, &srv->listener);
    if (err != 0) {
        tr_free_null(&srv->scratch);
        tr_free_null(&srv->spares);
        return err;
    }
    srv->listener.data = srv;
    srv->pending_closes = 1;
    err = uv_tcp_open(&srv->listener, fd);
    if (err == 0) {
        err = uv_listen((uv_stream_t *)&srv->listener, 1024, on_connection);
    }
    uv_timer_init(loop, &srv->sweep);
    srv->sweep.data = srv;
    srv->pending_closes++;
    uv_timer_start(&srv->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_unref((uv_handle_t *)&srv->sweep);
    srv->listening = err == 0;
    return err;
}

static void on_server_handle_closed(uv_handle_t *h)
{
    struct tr_http_server *srv = h->data;
    if (--srv->pending_closes == 0) {
        tr_free_null(&srv->scratch);
        for (size_t i = 0; i < srv->nspares; i++) {
            spare_dispose(&srv->spares[i]);
        }
        srv->nspares = 0;
        srv->spare_bytes = 0;
        tr_free_null(&srv->spares);
        if (srv->on_closed != NULL) {
            srv->on_closed(srv);
        }
    }
}

static void stop_listening(struct tr_http_server *srv)
{
    if (!uv_is_closing((uv_handle_t *)&srv->listener)) {
        uv_close((uv_handle_t *)&srv->listener, on_server_handle_closed);
    }
    srv->listening = false;
}

void tr_http_server_drain(struct tr_http_server *srv)
{
    srv->draining = true;
    stop_listening(srv);
    struct tr_list *it;
    struct tr_list *tmp;
    tr_list_foreach_safe(it, tmp, &srv->conns)
    {
        struct tr_http_conn *conn = tr_container_of(it, struct tr_http_conn, link);
        if (conn->state == CS_IDLE && conn->in.len == 0 && !conn->writing) {
            conn_close(conn);
        } else {
            conn->close_after = true;
        }
    }
    if (srv->nconns == 0 && srv->on_drained != NULL) {
        srv->on_drained(srv);
    }
}

void tr_http_server_close(struct tr_http_server *srv)
{
    srv->draining = true;
    srv->closing = true;
    stop_listening(srv);
    struct tr_list *it;
    struct tr_list *tmp;
    tr_list_foreach_safe(it, tmp, &srv->conns)
    {
        conn_close(tr_container_of(it, struct tr_http_conn, link));
    }
    if (!uv_is_closing((uv_handle_t *)&srv->sweep)) {
        uv_close((uv_handle_t *)&srv->sweep, on_server_handle_closed);
    }
}
