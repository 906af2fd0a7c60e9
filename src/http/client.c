/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP client's requests (see client.h): validates and serialises a request, runs
 * it on a connection from pool.c, streams its body, and finishes it exactly once (end,
 * error or cancel). A request that fails on a reused connection before any response
 * byte is replayed once on a fresh connection when that is provably safe
 * (docs/internals/http-client.md). Responses are parsed in client_resp.c. */
#include "http/client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <llhttp.h>
#include <uv.h>

#include "core/buf.h"
#include "core/errors.h"
#include "core/mem.h"
#include "http/client_os.h"
#include "http/client_req.h"
#include "http/pool.h"
#include "http/sock.h"

#define FREE_WRITES_MAX 64
#define FREE_REQS_MAX 64
#define FREE_REQ_BUF_MAX 4096 /* larger request buffers are not kept on the free list */

/* A streamed-body write. libuv owns it from uv_write() to on_chunk_written(). */
struct tr_http_chunk_write {
    uv_write_t w; /* w.data = this */
    struct tr_http_chunk_write *next_free;
    tr_http_client_write_cb *cb; /* NULL for the last-chunk marker */
    void *data;
    char size_line[24]; /* "<hex size>\r\n" in chunked mode */
};

static void on_head_written(uv_write_t *w, int status);
static void on_chunk_written(uv_write_t *w, int status);

const char *tr_http_client_strerror(int err)
{
    switch (err) {
    case TR_HTTP_CLIENT_E_CONNECT_TIMEOUT:
        return "upstream connect timed out";
    case TR_HTTP_CLIENT_E_RESPONSE_TIMEOUT:
        return "upstream response timed out";
    case TR_HTTP_CLIENT_E_READ_TIMEOUT:
        return "upstream stalled while sending the response";
    case TR_HTTP_CLIENT_E_RESET:
        return "upstream closed the connection before the response was complete";
    case TR_HTTP_CLIENT_E_BAD_RESPONSE:
        return "malformed or ambiguous upstream response";
    case TR_HTTP_CLIENT_E_HEADERS_TOO_LARGE:
        return "upstream response headers too large";
    case TR_HTTP_CLIENT_E_CANCELED:
        return "request canceled: client closed";
    default:
        return tr_strerror(err);
    }
}

/* Character classes: every byte but CTLs (and DEL) may appear in a field value; tchar
 * is "!#$%&'*+-.^_`|~", digits and letters. */
#define V TR_HTTP_CLIENT_VCHAR
#define T (TR_HTTP_CLIENT_TCHAR | TR_HTTP_CLIENT_VCHAR)
/* clang-format off */
const unsigned char tr_http_client__ctype[256] = {
    ['\t'] = V, [' '] = V,  ['!'] = T, ['"'] = V, ['#'] = T, ['$'] = T, ['%'] = T,
    ['&'] = T,  ['\''] = T, ['('] = V, [')'] = V, ['*'] = T, ['+'] = T, [','] = V,
    ['-'] = T,  ['.'] = T,  ['/'] = V, ['0' ... '9'] = T,  [':'] = V, [';'] = V,
    ['<'] = V,  ['='] = V,  ['>'] = V, ['?'] = V, ['@'] = V, ['A' ... 'Z'] = T,
    ['['] = V,  ['\\'] = V, [']'] = V, ['^'] = T, ['_'] = T, ['`'] = T,
    ['a' ... 'z'] = T,      ['{'] = V, ['|'] = T, ['}'] = V, ['~'] = T,
    [0x80 ... 0xff] = V,
};
/* clang-format on */
#undef V
#undef T

/* The retry rule. */

static bool is_peer_close(int err)
{
    return err == UV_EOF || err == UV_ECONNRESET || err == UV_EPIPE;
}

bool tr_http_client_method_idempotent(struct tr_slice m)
{
    static const struct tr_slice idempotent[] = {
        TR_SLICE_LIT("GET"),   TR_SLICE_LIT("HEAD"), TR_SLICE_LIT("OPTIONS"),
        TR_SLICE_LIT("TRACE"), TR_SLICE_LIT("PUT"),  TR_SLICE_LIT("DELETE"),
    };
    for (size_t i = 0; i < TR_ARRAY_LEN(idempotent); i++) {
        if (tr_slice_eq(m, idempotent[i])) {
            return true;
        }
    }
    return false;
}

bool tr_http_client_retry_safe(const struct tr_http_client_attempt *a)
{
    /* Only the stale-pooled-connection race qualifies: the upstream closed a keep-alive
     * connection while our request was on its way. A fresh connection failing, a
     * timeout or any response byte means the upstream is really in trouble or really
     * answered, and that is the caller's call. */
    if (!a->first || !a->reused || a->response_started || !is_peer_close(a->err)) {
        return false;
    }
    if (!a->replayable) {
        return false;
    }
    /* RFC 9110 §9.2.2: idempotent requests may be repeated. Others only when the
     * upstream's kernel never acknowledged a byte of them, so its application cannot
     * have read any. */
    return a->idempotent || !a->peer_acked;
}

/* Requests: validation and serialisation. */

static bool is_target(struct tr_slice s)
{
    if (s.len == 0) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c <= 0x20 || c >= 0x7f) {
            return false;
        }
    }
    return true;
}

struct head_facts {
    bool has_host;
    bool conn_close;
};

static int check_request(const struct tr_http_client_request *r, struct head_facts *f)
{
    const struct tr_http_client_handler *h = r->handler;
    if (h == NULL || h->on_headers == NULL || h->on_end == NULL || h->on_error == NULL) {
        return -EINVAL;
    }
    if (!tr_http_client__is_token(r->method) || tr_slice_eq(r->method, TR_SLICE_LIT("CONNECT"))) {
        return -EINVAL;
    }
    if (!is_target(r->target) || (r->stream_body && r->body.ptr != NULL)) {
        return -EINVAL;
    }
    if (r->stream_body && r->content_length < -1) {
        return -EINVAL;
    }
    /* uv_buf_t lengths are unsigned int; larger bodies must be streamed. */
    if (r->body.len > UINT32_MAX / 2) {
        return -EINVAL;
    }
    if (r->header_count > 0 && r->headers == NULL) {
        return -EINVAL;
    }
    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < r->header_count; i++) {
        struct tr_slice name = r->headers[i].name;
        struct tr_slice value = r->headers[i].value;
        if (!tr_http_client__is_token(name) || !tr_http_client__is_field_value(value)) {
            return -EINVAL;
        }
        /* The client frames the body itself (RFC 9112 §6): a caller's framing header
         * could disagree with what is actually sent. */
        if (tr_slice_caseeq(name, TR_SLICE_LIT("Content-Length")) ||
            tr_slice_caseeq(name, TR_SLICE_LIT("Transfer-Encoding"))) {
            return -EINVAL;
        }
        if (tr_slice_caseeq(name, TR_SLICE_LIT("Host"))) {
            f->has_host = true;
        } else if (tr_slice_caseeq(name, TR_SLICE_LIT("Connection")) &&
                   tr_slice_list_has(value, TR_SLICE_LIT("close"))) {
            f->conn_close = true;
        }
    }
    return 0;
}

static bool method_has_content(struct tr_slice m)
{
    return tr_slice_eq(m, TR_SLICE_LIT("POST")) || tr_slice_eq(m, TR_SLICE_LIT("PUT")) ||
           tr_slice_eq(m, TR_SLICE_LIT("PATCH"));
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

/* The request head (and a buffered body) in `out`, written in one pass after one
 * reservation of the exact size. */
static void serialize(struct tr_http_client_req *req, const struct tr_http_client_request *r,
                      const struct head_facts *f)
{
    static const struct tr_slice cl0 = TR_SLICE_LIT("Content-Length: 0\r\n");
    static const struct tr_slice te = TR_SLICE_LIT("Transfer-Encoding: chunked\r\n");
    char host[64];
    size_t host_len = 0;
    if (!f->has_host) {
        tr_addr_format((const struct sockaddr *)&r->upstream.ss, host, sizeof(host));
        host_len = strlen(host);
    }
    char num[24];
    size_t num_len = 0;
    if (req->body == TR_HTTP_CLIENT_BODY_BUFFER || req->body == TR_HTTP_CLIENT_BODY_STREAM_LENGTH) {
        uint64_t v = req->body == TR_HTTP_CLIENT_BODY_BUFFER ? r->body.len : req->body_left;
        size_t i = sizeof(num);
        do {
            num[--i] = (char)('0' + v % 10);
            v /= 10;
        } while (v > 0);
        num_len = sizeof(num) - i;
        memmove(num, num + i, num_len);
    }
    /* RFC 9110 §8.6: announce an empty body for methods that define content. */
    bool empty_cl = req->body == TR_HTTP_CLIENT_BODY_NONE && method_has_content(r->method);
    size_t need = r->method.len + 1 + r->target.len + sizeof(" HTTP/1.1\r\n") - 1 + 2;
    if (!f->has_host) {
        need += sizeof("Host: \r\n") - 1 + host_len;
    }
    for (size_t i = 0; i < r->header_count; i++) {
        need += r->headers[i].name.len + 2 + r->headers[i].value.len + 2;
    }
    need += empty_cl ? cl0.len : 0;
    need += num_len > 0 ? sizeof("Content-Length: \r\n") - 1 + num_len : 0;
    need += req->body == TR_HTTP_CLIENT_BODY_STREAM_CHUNKED ? te.len : 0;
    need += req->body == TR_HTTP_CLIENT_BODY_BUFFER ? r->body.len : 0;
    char *start = tr_buf_reserve(&req->out, need);
    char *p = start;
    p = put(p, r->method.ptr, r->method.len);
    *p++ = ' ';
    p = put(p, r->target.ptr, r->target.len);
    p = PUT_LIT(p, " HTTP/1.1\r\n");
    if (!f->has_host) {
        p = PUT_LIT(p, "Host: ");
        p = put(p, host, host_len);
        p = PUT_LIT(p, "\r\n");
    }
    for (size_t i = 0; i < r->header_count; i++) {
        const struct tr_http_client_header *h = &r->headers[i];
        p = put(p, h->name.ptr, h->name.len);
        p = PUT_LIT(p, ": ");
        if (h->value.len > 0) {
            p = put(p, h->value.ptr, h->value.len);
        }
        p = PUT_LIT(p, "\r\n");
    }
    if (empty_cl) {
        p = put(p, cl0.ptr, cl0.len);
    } else if (num_len > 0) {
        p = PUT_LIT(p, "Content-Length: ");
        p = put(p, num, num_len);
        p = PUT_LIT(p, "\r\n");
    } else if (req->body == TR_HTTP_CLIENT_BODY_STREAM_CHUNKED) {
        p = put(p, te.ptr, te.len);
    }
    p = PUT_LIT(p, "\r\n");
    if (req->body == TR_HTTP_CLIENT_BODY_BUFFER && r->body.len > 0) {
        p = put(p, r->body.ptr, r->body.len);
    }
    TR_ASSERT((size_t)(p - start) == need);
    req->out.len += need;
}

/* Requests: life cycle. */

/* A finished request object goes back to its client's free list, keeping its buffers
 * when they are small, so a steady stream of requests does not touch malloc. */
static void req_free(struct tr_http_client_req *req)
{
    req->done = true;
    req->conn = NULL;
    /* A head write still in flight (on a failed attempt's connection) points into
     * `out`; on_head_written() finishes the job. */
    if (req->head_writes_pending > 0) {
        return;
    }
    struct tr_http_client *client = req->client;
    if (client->nfree_reqs >= FREE_REQS_MAX || client->closing) {
        tr_buf_dispose(&req->out);
        tr_buf_dispose(&req->spans);
        tr_free_null(&req);
        return;
    }
    if (req->out.cap > FREE_REQ_BUF_MAX) {
        tr_buf_dispose(&req->out);
    }
    if (req->spans.cap > FREE_REQ_BUF_MAX) {
        tr_buf_dispose(&req->spans);
    }
    req->next_free = client->free_reqs;
    client->free_reqs = req;
    client->nfree_reqs++;
}

/* A zeroed request object, from the free list if it has one. */
static struct tr_http_client_req *req_new(struct tr_http_client *client)
{
    struct tr_http_client_req *req = client->free_reqs;
    if (req == NULL) {
        req = tr_xcalloc(1, sizeof(*req));
        tr_buf_init(&req->out);
        tr_buf_init(&req->spans);
        return req;
    }
    client->free_reqs = req->next_free;
    client->nfree_reqs--;
    struct tr_buf out = req->out;
    struct tr_buf spans = req->spans;
    memset(req, 0, sizeof(*req));
    req->out = out;
    req->spans = spans;
    tr_buf_reset(&req->out);
    tr_buf_reset(&req->spans);
    return req;
}

void tr_http_client__free_reqs(struct tr_http_client *client)
{
    while (client->free_reqs != NULL) {
        struct tr_http_client_req *req = client->free_reqs;
        client->free_reqs = req->next_free;
        tr_buf_dispose(&req->out);
        tr_buf_dispose(&req->spans);
        tr_free_null(&req);
    }
    client->nfree_reqs = 0;
}

static struct tr_http_client_conn *req_detach(struct tr_http_client_req *req)
{
    struct tr_http_client_conn *conn = req->conn;
    conn->req = NULL;
    req->conn = NULL;
    if (tr_list_linked(&conn->deferred_link)) {
        tr_list_remove(&conn->deferred_link);
    }
    return conn;
}

static int map_err(int err)
{
    return is_peer_close(err) ? TR_HTTP_CLIENT_E_RESET : err;
}

void tr_http_client__fail(struct tr_http_client_req *req, int err, unsigned flags)
{
    if (req->conn != NULL) {
        tr_http_pool_close(req_detach(req));
    }
    if (req->headers_seen) {
        flags |= TR_HTTP_CLIENT_ERR_HEADERS_SEEN;
    }
    if (req->attempts > 1) {
        flags |= TR_HTTP_CLIENT_ERR_RETRIED;
    }
    req->done = true;
    req->handler->on_error(req, err, flags, req->data);
    req_free(req);
}

/* Cancelled: no callback, no reuse (the exchange stopped at an unknown point). */
void tr_http_client__teardown(struct tr_http_client_req *req)
{
    if (req->conn != NULL) {
        tr_http_pool_close(req_detach(req));
    }
    req_free(req);
}

void tr_http_client__complete(struct tr_http_client_req *req)
{
    struct tr_http_client_conn *conn = req->conn;
    tr_buf_consume(&conn->in, conn->parsed);
    conn->parsed = 0;
    bool reusable = req->keep_alive && !req->conn_close && req->sent_all && !req->write_failed;
    req_detach(req);
    /* Pool first, so that a request started from the end callback can reuse it. */
    if (reusable) {
        tr_http_pool_release(conn);
    } else {
        tr_http_pool_close(conn);
    }
    req->done = true;
    req->handler->on_end(req, req->data);
    req_free(req);
}

/* Runs one attempt: a pooled connection if `allow_pool` and one is alive, else a new
 * one; writes the head (and buffered body) at once, queued behind the connect. */
static int attempt_start(struct tr_http_client_req *req, bool allow_pool)
{
    struct tr_http_client *client = req->client;
    struct tr_http_pool *pool = tr_http_pool_get(client, &req->upstream);
    struct tr_http_client_conn *conn = allow_pool ? tr_http_pool_take(pool) : NULL;
    if (conn == NULL) {
        int err = tr_http_pool_connect(pool, &conn);
        if (err != 0) {
            return err;
        }
    } else {
        client->stats.reuses++;
    }
    TR_ASSERT(req->attempts < TR_HTTP_CLIENT_MAX_ATTEMPTS && conn->in.len == 0);
    uv_write_t *w = &req->head_writes[req->attempts++];
    conn->req = req;
    req->conn = conn;
    conn->parsed = 0;
    conn->read_err = 0;
    req->resp_started = false;
    req->write_failed = false;
    tr_http_client__reset_message(req);
    llhttp_init(&conn->parser, HTTP_RESPONSE, &tr_http_client__parser_settings);
    conn->parser.data = conn;
    /* The baseline for "did the upstream acknowledge any of this request?"; only a
     * non-idempotent request on a reused connection ever asks. */
    conn->acked_base = UINT64_MAX;
    uv_os_fd_t fd;
    if (conn->reused && !req->idempotent && uv_fileno((uv_handle_t *)&conn->tcp, &fd) == 0 &&
        tr_http_client_os_bytes_acked(fd, &conn->acked_base) != 0) {
        conn->acked_base = UINT64_MAX;
    }
    uv_buf_t b = uv_buf_init(tr_buf_data(&req->out), (unsigned)req->out.len);
    /* On a connected socket with nothing queued, write now: a head that fits in the
     * socket buffer then costs one send and no write request, whose completion would
     * make libuv re-register the socket with epoll. Whatever is left (or an error,
     * which uv_write then reports from the loop as before) goes through uv_write. */
    size_t sent = 0;
    if (conn->state == TR_HTTP_CLIENT_CONN_ACTIVE && conn->writes_pending == 0) {
        ssize_t n = tr_http_sock_send((uv_stream_t *)&conn->tcp, &b, 1);
        sent = n > 0 ? (size_t)n : 0;
    }
    if (sent < req->out.len) {
        b = uv_buf_init(tr_buf_data(&req->out) + sent, (unsigned)(req->out.len - sent));
        w->data = req;
        int err = uv_write(w, (uv_stream_t *)&conn->tcp, &b, 1, on_head_written);
        if (err != 0) {
            tr_http_pool_close(req_detach(req));
            return err;
        }
        req->head_writes_pending++;
        conn->writes_pending++;
    }
    req->sent_all = req->body == TR_HTTP_CLIENT_BODY_NONE ||
                    req->body == TR_HTTP_CLIENT_BODY_BUFFER || req->stream_ended;
    if (conn->state == TR_HTTP_CLIENT_CONN_ACTIVE) {
        tr_http_pool_arm(conn, &client->response_q);
    }
    return 0;
}

int tr_http_client_request(struct tr_http_client *client, const struct tr_http_client_request *r,
                           struct tr_http_client_req **out)
{
    if (client->closing) {
        return -ESHUTDOWN;
    }
    struct head_facts facts;
    int err = check_request(r, &facts);
    if (err != 0) {
        return err;
    }
    struct tr_http_client_req *req = req_new(client);
    req->client = client;
    req->handler = r->handler;
    req->data = r->data;
    req->upstream = r->upstream;
    req->idempotent = tr_http_client_method_idempotent(r->method);
    req->is_head = tr_slice_eq(r->method, TR_SLICE_LIT("HEAD"));
    req->conn_close = facts.conn_close;
    if (r->stream_body) {
        req->body = r->content_length >= 0 ? TR_HTTP_CLIENT_BODY_STREAM_LENGTH
                                           : TR_HTTP_CLIENT_BODY_STREAM_CHUNKED;
        req->body_left = r->content_length >= 0 ? (uint64_t)r->content_length : 0;
    } else {
        req->body = r->body.ptr != NULL ? TR_HTTP_CLIENT_BODY_BUFFER : TR_HTTP_CLIENT_BODY_NONE;
    }
    serialize(req, r, &facts);
    err = attempt_start(req, true);
    if (err != 0) {
        req_free(req);
        return err;
    }
    client->stats.requests++;
    *out = req;
    return 0;
}

/* Writing. */

static void conn_write_failed(struct tr_http_client_conn *conn, int status)
{
    struct tr_http_client_req *req = conn->req;
    if (is_peer_close(status)) {
        /* The upstream went away. The read side reports that too, but only after any
         * response it sent first (an early 413, say), so let it decide. */
        req->write_failed = true;
        return;
    }
    tr_http_client__attempt_failed(req, status);
}

static void on_head_written(uv_write_t *w, int status)
{
    struct tr_http_client_req *req = w->data;
    struct tr_http_client_conn *conn = w->handle->data;
    conn->writes_pending--;
    req->head_writes_pending--;
    if (req->done) {
        if (req->head_writes_pending == 0) {
            req_free(req);
        }
        return;
    }
    if (conn->req != req) {
        return; /* an earlier attempt's connection */
    }
    if (status < 0) {
        conn_write_failed(conn, status);
    } else if (req->sent_all && !req->resp_started && !req->paused) {
        tr_http_pool_arm(conn, &req->client->response_q);
    }
}

static struct tr_http_chunk_write *write_get(struct tr_http_client *client)
{
    struct tr_http_chunk_write *cw = client->free_writes;
    if (cw == NULL) {
        return tr_xmalloc(sizeof(*cw));
    }
    client->free_writes = cw->next_free;
    client->nfree_writes--;
    return cw;
}

static void write_put(struct tr_http_client *client, struct tr_http_chunk_write *cw)
{
    if (client->nfree_writes >= FREE_WRITES_MAX || client->closing) {
        tr_free_null(&cw);
        return;
    }
    cw->next_free = client->free_writes;
    client->free_writes = cw;
    client->nfree_writes++;
}

void tr_http_client__free_writes(struct tr_http_client *client)
{
    while (client->free_writes != NULL) {
        struct tr_http_chunk_write *cw = client->free_writes;
        client->free_writes = cw->next_free;
        tr_free_null(&cw);
    }
    client->nfree_writes = 0;
}

static int chunk_submit(struct tr_http_client_req *req, struct tr_http_chunk_write *cw,
                        uv_buf_t *bufs, unsigned nbufs)
{
    struct tr_http_client_conn *conn = req->conn;
    cw->w.data = cw;
    int err = uv_write(&cw->w, (uv_stream_t *)&conn->tcp, bufs, nbufs, on_chunk_written);
    if (err != 0) {
        write_put(req->client, cw);
        return err;
    }
    conn->writes_pending++;
    req->chunk_written = true;
    return 0;
}

int tr_http_client_req_write(struct tr_http_client_req *req, struct tr_slice chunk,
                             tr_http_client_write_cb *cb, void *data)
{
    if (req->done || req->cancelled || req->stream_ended || chunk.len == 0 ||
        chunk.len > UINT32_MAX / 2) {
        return -EINVAL;
    }
    if (req->body != TR_HTTP_CLIENT_BODY_STREAM_LENGTH &&
        req->body != TR_HTTP_CLIENT_BODY_STREAM_CHUNKED) {
        return -EINVAL;
    }
    if (req->body == TR_HTTP_CLIENT_BODY_STREAM_LENGTH && chunk.len > req->body_left) {
        return -EINVAL;
    }
    struct tr_http_chunk_write *cw = write_get(req->client);
    cw->cb = cb;
    cw->data = data;
    uv_buf_t bufs[3];
    unsigned n = 0;
    if (req->body == TR_HTTP_CLIENT_BODY_STREAM_CHUNKED) {
        int len = snprintf(cw->size_line, sizeof(cw->size_line), "%zx\r\n", chunk.len);
        bufs[n++] = uv_buf_init(cw->size_line, (unsigned)len);
    }
    bufs[n++] = uv_buf_init((char *)chunk.ptr, (unsigned)chunk.len);
    if (req->body == TR_HTTP_CLIENT_BODY_STREAM_CHUNKED) {
        bufs[n++] = uv_buf_init((char *)"\r\n", 2);
    }
    int err = chunk_submit(req, cw, bufs, n);
    if (err != 0) {
        return err;
    }
    if (req->body == TR_HTTP_CLIENT_BODY_STREAM_LENGTH) {
        req->body_left -= chunk.len;
    }
    return 0;
}

int tr_http_client_req_end(struct tr_http_client_req *req)
{
    if (req->done || req->cancelled || req->stream_ended) {
        return -EINVAL;
    }
    if (req->body != TR_HTTP_CLIENT_BODY_STREAM_LENGTH &&
        req->body != TR_HTTP_CLIENT_BODY_STREAM_CHUNKED) {
        return -EINVAL;
    }
    if (req->body == TR_HTTP_CLIENT_BODY_STREAM_LENGTH && req->body_left != 0) {
        return -EINVAL;
    }
    if (req->body == TR_HTTP_CLIENT_BODY_STREAM_CHUNKED) {
        struct tr_http_chunk_write *cw = write_get(req->client);
        cw->cb = NULL;
        cw->data = NULL;
        uv_buf_t b = uv_buf_init((char *)"0\r\n\r\n", 5);
        int err = chunk_submit(req, cw, &b, 1);
        if (err != 0) {
            return err;
        }
    }
    req->stream_ended = true;
    req->sent_all = true;
    struct tr_http_client_conn *conn = req->conn;
    if (conn->state == TR_HTTP_CLIENT_CONN_ACTIVE && !req->resp_started && !req->paused) {
        tr_http_pool_arm(conn, &req->client->response_q);
    }
    return 0;
}

static void on_chunk_written(uv_write_t *w, int status)
{
    struct tr_http_chunk_write *cw = w->data;
    struct tr_http_client_conn *conn = w->handle->data;
    struct tr_http_client *client = conn->pool->client;
    tr_http_client_write_cb *cb = cw->cb;
    void *data = cw->data;
    conn->writes_pending--;
    write_put(client, cw);
    struct tr_http_client_req *req = conn->req;
    if (req != NULL && status < 0 && status != UV_ECANCELED) {
        conn_write_failed(conn, status);
    } else if (req != NULL && status == 0 && !req->resp_started && !req->paused) {
        /* Still sending: the response timeout counts from the last progress. */
        tr_http_pool_arm(conn, &client->response_q);
    }
    if (cb != NULL) {
        cb(status, data);
    }
}

/* Reading: the hooks pool.c calls, and the parse loop. */

void tr_http_client__connected(struct tr_http_client_conn *conn, int status)
{
    struct tr_http_client_req *req = conn->req;
    if (status != 0) {
        tr_http_client__fail(req, status, TR_HTTP_CLIENT_ERR_CONNECT);
        return;
    }
    if (req->paused) {
        tr_http_pool_read_stop(conn);
        tr_http_pool_arm(conn, NULL);
        return;
    }
    tr_http_pool_arm(conn, &req->client->response_q);
}

void tr_http_client__timeout(struct tr_http_client_conn *conn)
{
    struct tr_http_client_req *req = conn->req;
    if (conn->state == TR_HTTP_CLIENT_CONN_CONNECTING) {
        tr_http_client__fail(req, TR_HTTP_CLIENT_E_CONNECT_TIMEOUT, TR_HTTP_CLIENT_ERR_CONNECT);
        return;
    }
    tr_http_client__fail(
        req, req->resp_started ? TR_HTTP_CLIENT_E_READ_TIMEOUT : TR_HTTP_CLIENT_E_RESPONSE_TIMEOUT,
        0);
}

void tr_http_client__abort(struct tr_http_client_conn *conn)
{
    struct tr_http_client_req *req = conn->req;
    if (conn->in_parse) {
        req->deferred_err = TR_HTTP_CLIENT_E_CANCELED;
        return;
    }
    tr_http_client__fail(req, TR_HTTP_CLIENT_E_CANCELED, 0);
}

static bool peer_acked(struct tr_http_client_conn *conn)
{
    uv_os_fd_t fd;
    uint64_t acked;
    if (conn->acked_base == UINT64_MAX || uv_fileno((uv_handle_t *)&conn->tcp, &fd) != 0 ||
        tr_http_client_os_bytes_acked(fd, &acked) != 0) {
        return true; /* cannot tell: assume the worst */
    }
    return acked != conn->acked_base;
}

void tr_http_client__attempt_failed(struct tr_http_client_req *req, int err)
{
    struct tr_http_client_conn *conn = req->conn;
    struct tr_http_client_attempt a = {
        .err = err,
        .reused = conn->reused,
        .first = req->attempts == 1,
        .response_started = req->resp_started,
        .replayable = !req->chunk_written,
        .idempotent = req->idempotent,
        .peer_acked = true,
    };
    if (!a.idempotent && a.reused && a.first && a.replayable && !a.response_started) {
        a.peer_acked = peer_acked(conn);
    }
    if (tr_http_client_retry_safe(&a)) {
        req->client->stats.retries++;
        tr_http_pool_close(req_detach(req));
        int rc = attempt_start(req, false);
        if (rc != 0) {
            tr_http_client__fail(req, rc, TR_HTTP_CLIENT_ERR_CONNECT);
        }
        return;
    }
    unsigned flags = 0;
    if (a.reused && !a.response_started && is_peer_close(err)) {
        flags |= TR_HTTP_CLIENT_ERR_STALE_REUSED;
    }
    tr_http_client__fail(req, map_err(err), flags);
}

/* Consumer controls. */

void tr_http_client_req_pause(struct tr_http_client_req *req)
{
    if (req->done || req->cancelled || req->paused) {
        return;
    }
    req->paused = true;
    struct tr_http_client_conn *conn = req->conn;
    if (conn->state == TR_HTTP_CLIENT_CONN_ACTIVE) {
        tr_http_pool_read_stop(conn);
        /* Time spent paused is the consumer's, not the upstream's. */
        tr_http_pool_arm(conn, NULL);
    }
}

void tr_http_client_req_resume(struct tr_http_client_req *req)
{
    if (req->done || req->cancelled || !req->paused) {
        return;
    }
    req->paused = false;
    struct tr_http_client_conn *conn = req->conn;
    if (conn->state != TR_HTTP_CLIENT_CONN_ACTIVE) {
        return;
    }
    struct tr_http_client *client = req->client;
    tr_http_pool_arm(conn, req->resp_started ? &client->read_q : &client->response_q);
    if (!conn->in_parse) {
        tr_http_pool_defer(conn);
    }
}

void tr_http_client_req_cancel(struct tr_http_client_req *req)
{
    if (req->done || req->cancelled) {
        return;
    }
    req->cancelled = true;
    if (req->conn->in_parse) {
        return; /* conn_parse() tears down when the parser returns */
    }
    tr_http_client__teardown(req);
}
