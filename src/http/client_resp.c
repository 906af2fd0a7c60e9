/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP client's responses: llhttp in HTTP_RESPONSE mode, strict, parsing in place
 * from the connection's input buffer. Framing llhttp tolerates is refused here (any
 * Transfer-Encoding but a single "chunked", obs-fold, whitespace before the colon), no
 * body is read for HEAD, 1xx, 204 and 304, interim 1xx responses are skipped, and the
 * consumer's pause stops the parser mid-buffer so nothing is delivered while paused. */
#include "http/client_req.h"

#include <string.h>

#include <llhttp.h>
#include <uv.h>

#include "core/buf.h"
#include "core/mem.h"
#include "http/client.h"
#include "http/pool.h"

static int on_message_begin(llhttp_t *p);
static int on_status(llhttp_t *p, const char *at, size_t n);
static int on_header_field(llhttp_t *p, const char *at, size_t n);
static int on_header_field_complete(llhttp_t *p);
static int on_header_value(llhttp_t *p, const char *at, size_t n);
static int on_header_value_complete(llhttp_t *p);
static int on_headers_complete(llhttp_t *p);
static int on_body(llhttp_t *p, const char *at, size_t n);
static int on_message_complete(llhttp_t *p);
static void conn_parse(struct tr_http_client_conn *conn);

const llhttp_settings_t tr_http_client__parser_settings = {
    .on_message_begin = on_message_begin,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Per response message: a 1xx and the final response each get a fresh one. */
void tr_http_client__reset_message(struct tr_http_client_req *req)
{
    req->kick = false;
    req->headers_done = false;
    req->interim = false;
    req->msg_done = false;
    req->keep_alive = false;
    req->field_open = false;
    req->te_seen = false;
    req->te_bad = false;
    req->reason_off = TR_HTTP_CLIENT_SPAN_NONE;
    req->reason_len = 0;
    tr_buf_reset(&req->spans);
}

void tr_http_client__read(struct tr_http_client_conn *conn, ssize_t nread)
{
    struct tr_http_client_req *req = conn->req;
    if (nread > 0) {
        req->resp_started = true;
        tr_http_pool_arm(conn, &req->client->read_q);
    } else {
        conn->read_err = (int)nread;
    }
    conn_parse(conn);
}

void tr_http_client__deferred(struct tr_http_client_conn *conn)
{
    conn_parse(conn);
}

/* All input is parsed and the read side has ended. */
static void input_ended(struct tr_http_client_conn *conn)
{
    struct tr_http_client_req *req = conn->req;
    int err = conn->read_err;
    if (err == UV_EOF) {
        /* A body delimited by the close ends here (RFC 9112 §6.3 item 8). */
        llhttp_errno_t e = llhttp_finish(&conn->parser);
        if (e == HPE_PAUSED && req->msg_done && !req->interim) {
            tr_http_client__complete(req);
            return;
        }
    }
    tr_http_client__attempt_failed(req, err);
}

static size_t header_room(const struct tr_http_client_conn *conn)
{
    size_t max = conn->pool->client->cfg.max_header_bytes + 1;
    return conn->parsed < max ? max - conn->parsed : 0;
}

/* One llhttp_execute() over the unparsed input. Returns its result. */
static llhttp_errno_t parse_step(struct tr_http_client_conn *conn)
{
    struct tr_http_client_req *req = conn->req;
    size_t avail = conn->in.len - conn->parsed;
    /* During the header section nothing is consumed, so the limit is on `parsed`;
     * feeding at most one byte past it is enough to know. */
    if (!req->headers_done && avail > header_room(conn)) {
        avail = header_room(conn);
    }
    req->kick = false;
    conn->parse_base = conn->in.base != NULL ? tr_buf_data(&conn->in) : "";
    const char *start = conn->parse_base + conn->parsed;
    conn->in_parse = true;
    llhttp_errno_t e = llhttp_execute(&conn->parser, start, avail);
    conn->in_parse = false;
    size_t used = avail;
    if (e != HPE_OK) {
        /* Where it stopped: after the pausing callback's span, or at the bad byte. */
        uintptr_t pos = (uintptr_t)llhttp_get_error_pos(&conn->parser);
        if (pos >= (uintptr_t)start && pos <= (uintptr_t)start + avail) {
            used = pos - (uintptr_t)start;
        }
    }
    conn->parsed += used;
    if (req->headers_done) {
        /* Body bytes were delivered; header slices are dead after the callback. */
        tr_buf_consume(&conn->in, conn->parsed);
        conn->parsed = 0;
    }
    return e;
}

/* Feeds buffered input to the parser until it runs out, the consumer pauses, the
 * response ends or something fails, then acts on what happened. */
static void conn_parse(struct tr_http_client_conn *conn)
{
    struct tr_http_client_req *req = conn->req;
    size_t max_header = req->client->cfg.max_header_bytes;
    while (!req->paused && !req->msg_done && (conn->parsed < conn->in.len || req->kick)) {
        llhttp_errno_t e = parse_step(conn);
        if (req->cancelled) {
            tr_http_client__teardown(req);
            return;
        }
        /* Our callbacks stop the parser with an error when they set this; llhttp may
         * report it as HPE_USER or as that callback's own error code. */
        if (req->deferred_err != 0) {
            tr_http_client__fail(req, req->deferred_err, 0);
            return;
        }
        if (e != HPE_OK && e != HPE_PAUSED) {
            tr_http_client__fail(req, TR_HTTP_CLIENT_E_BAD_RESPONSE, 0);
            return;
        }
        if (!req->headers_done && conn->parsed > max_header) {
            tr_http_client__fail(req, TR_HTTP_CLIENT_E_HEADERS_TOO_LARGE, 0);
            return;
        }
        if (e == HPE_PAUSED) {
            if (req->msg_done && req->interim) {
                /* RFC 9110 §15.2: a 1xx is followed by the final response. */
                req->msg_done = false;
                req->interim = false;
                req->headers_done = false;
                llhttp_resume(&conn->parser);
            } else if (!req->msg_done) {
                llhttp_resume(&conn->parser); /* paused by the consumer */
                req->kick = true;
            }
        }
    }
    if (req->paused) {
        return;
    }
    if (req->msg_done) {
        tr_http_client__complete(req);
        return;
    }
    if (conn->read_err != 0) {
        input_ended(conn);
        return;
    }
    if (tr_http_pool_read_start(conn) != 0) {
        tr_http_client__attempt_failed(req, UV_ECONNRESET);
    }
}

/* Parser callbacks. parse_base is the start of the input buffer for this execute; the
 * whole current header section lies in it, so offsets stay valid across reads. */

static struct tr_http_client_req *parser_req(llhttp_t *p)
{
    return ((struct tr_http_client_conn *)p->data)->req;
}

static uint32_t offset_of(llhttp_t *p, const char *at)
{
    return (uint32_t)(at - ((struct tr_http_client_conn *)p->data)->parse_base);
}

static int parse_fail(struct tr_http_client_req *req, int err)
{
    req->deferred_err = err;
    return HPE_USER;
}

static struct tr_http_client_span *last_span(struct tr_http_client_req *req)
{
    size_t n = req->spans.len / sizeof(struct tr_http_client_span);
    TR_ASSERT(n > 0);
    return (struct tr_http_client_span *)tr_buf_data(&req->spans) + (n - 1);
}

static int on_message_begin(llhttp_t *p)
{
    tr_http_client__reset_message(parser_req(p));
    return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t n)
{
    struct tr_http_client_req *req = parser_req(p);
    uint32_t off = offset_of(p, at);
    if (req->reason_off == TR_HTTP_CLIENT_SPAN_NONE) {
        req->reason_off = off;
    } else if (req->reason_off + req->reason_len != off) {
        return parse_fail(req, TR_HTTP_CLIENT_E_BAD_RESPONSE);
    }
    req->reason_len += (uint32_t)n;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct tr_http_client_req *req = parser_req(p);
    uint32_t off = offset_of(p, at);
    if (!req->field_open) {
        if (req->spans.len / sizeof(struct tr_http_client_span) >= req->client->cfg.max_headers) {
            return parse_fail(req, TR_HTTP_CLIENT_E_HEADERS_TOO_LARGE);
        }
        struct tr_http_client_span h = {off, 0, TR_HTTP_CLIENT_SPAN_NONE, 0};
        tr_buf_append(&req->spans, &h, sizeof(h));
        req->field_open = true;
    }
    struct tr_http_client_span *h = last_span(req);
    if (h->name_off + h->name_len != off) {
        return parse_fail(req, TR_HTTP_CLIENT_E_BAD_RESPONSE);
    }
    h->name_len += (uint32_t)n;
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct tr_http_client_req *req = parser_req(p);
    const struct tr_http_client_span *h = last_span(req);
    const char *base = ((struct tr_http_client_conn *)p->data)->parse_base;
    req->field_open = false;
    /* RFC 9112 §5.1: no whitespace between the name and the colon. */
    if (!tr_http_client__is_token(tr_slice(base + h->name_off, h->name_len))) {
        return parse_fail(req, TR_HTTP_CLIENT_E_BAD_RESPONSE);
    }
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    if (n == 0) {
        /* llhttp marks an empty value ("Pragma: \r\n") with a zero-length span placed
         * after the line break it had to look past: nothing to check or keep, and not
         * a fold (the server's on_header_value does the same). */
        return 0;
    }
    struct tr_http_client_req *req = parser_req(p);
    struct tr_http_client_span *h = last_span(req);
    uint32_t off = offset_of(p, at);
    if (h->value_off == TR_HTTP_CLIENT_SPAN_NONE) {
        /* The value must follow "name:" and optional whitespace on the same line;
         * anything else is an obs-fold continuation, which a recipient may reject
         * (RFC 9112 §5.2) and a proxy must not pass on. */
        const char *base = ((struct tr_http_client_conn *)p->data)->parse_base;
        uint32_t i = off;
        while (i > 0 && (base[i - 1] == ' ' || base[i - 1] == '\t')) {
            i--;
        }
        if (i == 0 || base[i - 1] != ':') {
            return parse_fail(req, TR_HTTP_CLIENT_E_BAD_RESPONSE);
        }
        h->value_off = off;
    } else if (h->value_off + h->value_len != off) {
        return parse_fail(req, TR_HTTP_CLIENT_E_BAD_RESPONSE);
    }
    h->value_len += (uint32_t)n;
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct tr_http_client_req *req = parser_req(p);
    struct tr_http_client_span *h = last_span(req);
    const char *base = ((struct tr_http_client_conn *)p->data)->parse_base;
    if (h->value_off == TR_HTTP_CLIENT_SPAN_NONE) {
        h->value_off = h->name_off; /* empty value */
        h->value_len = 0;
    }
    while (h->value_len > 0 && (base[h->value_off + h->value_len - 1] == ' ' ||
                                base[h->value_off + h->value_len - 1] == '\t')) {
        h->value_len--;
    }
    struct tr_slice value = tr_slice(base + h->value_off, h->value_len);
    if (!tr_http_client__is_field_value(value)) {
        return parse_fail(req, TR_HTTP_CLIENT_E_BAD_RESPONSE);
    }
    struct tr_slice name = tr_slice(base + h->name_off, h->name_len);
    if (tr_slice_caseeq(name, TR_SLICE_LIT("Transfer-Encoding"))) {
        /* Only a single "chunked" is accepted: other codings cannot be decoded here, and
         * chunked twice or not last leaves the length to guesswork (RFC 9112 §6.1). */
        if (req->te_seen || !tr_slice_caseeq(value, TR_SLICE_LIT("chunked"))) {
            req->te_bad = true;
        }
        req->te_seen = true;
    }
    return 0;
}

/* Framing checks llhttp leaves to us, and the interim/no-body decisions. */
static int check_framing(llhttp_t *p, struct tr_http_client_req *req)
{
    int status = llhttp_get_status_code(p);
    if (p->http_major != 1 || p->http_minor > 1 || status < 100 || status > 999) {
        return TR_HTTP_CLIENT_E_BAD_RESPONSE;
    }
    /* Nothing here asks to switch protocols. */
    if (status == 101 || p->upgrade) {
        return TR_HTTP_CLIENT_E_BAD_RESPONSE;
    }
    if (req->te_seen &&
        (req->te_bad || (p->flags & F_CHUNKED) == 0 || (p->flags & F_CONTENT_LENGTH) != 0)) {
        return TR_HTTP_CLIENT_E_BAD_RESPONSE;
    }
    /* RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing. */
    if (req->te_seen && p->http_minor == 0) {
        return TR_HTTP_CLIENT_E_BAD_RESPONSE;
    }
    return 0;
}

static void build_resp(llhttp_t *p, struct tr_http_client_req *req, bool no_body,
                       struct tr_http_client_resp *resp)
{
    const char *base = ((struct tr_http_client_conn *)p->data)->parse_base;
    struct tr_http_client_header *out = req->client->scratch;
    size_t n = req->spans.len / sizeof(struct tr_http_client_span);
    const struct tr_http_client_span *hs =
        (const struct tr_http_client_span *)tr_buf_data(&req->spans);
    for (size_t i = 0; i < n; i++) {
        out[i].name = tr_slice(base + hs[i].name_off, hs[i].name_len);
        out[i].value = tr_slice(base + hs[i].value_off, hs[i].value_len);
    }
    memset(resp, 0, sizeof(*resp));
    resp->status = llhttp_get_status_code(p);
    resp->version_minor = p->http_minor;
    if (req->reason_off != TR_HTTP_CLIENT_SPAN_NONE) {
        resp->reason = tr_slice(base + req->reason_off, req->reason_len);
    }
    resp->headers = out;
    resp->header_count = n;
    bool chunked = (p->flags & F_CHUNKED) != 0;
    bool has_length = (p->flags & F_CONTENT_LENGTH) != 0;
    if (no_body || (!chunked && has_length && p->content_length == 0)) {
        resp->has_body = false;
        resp->content_length = 0;
    } else {
        resp->has_body = true;
        resp->content_length = chunked || !has_length ? -1 : (int64_t)p->content_length;
    }
}

static int on_headers_complete(llhttp_t *p)
{
    struct tr_http_client_req *req = parser_req(p);
    int err = check_framing(p, req);
    if (err != 0) {
        return parse_fail(req, err);
    }
    req->headers_done = true;
    int status = llhttp_get_status_code(p);
    if (status < 200) {
        req->interim = true;
        return 1; /* no body; the final response follows */
    }
    /* RFC 9110 §9.3.2, §15.3.5, §15.4.5: these never have a body, whatever the
     * framing headers say; llhttp cannot know the method. */
    bool no_body = req->is_head || status == 204 || status == 304;
    struct tr_http_client_resp resp;
    build_resp(p, req, no_body, &resp);
    req->headers_seen = true;
    req->handler->on_headers(req, &resp, req->data);
    if (req->cancelled || req->deferred_err != 0) {
        return HPE_USER;
    }
    if (no_body) {
        return 1; /* a pause is honoured at message complete */
    }
    return req->paused ? HPE_PAUSED : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    struct tr_http_client_req *req = parser_req(p);
    if (n == 0) {
        return 0;
    }
    if (req->handler->on_body != NULL) {
        req->handler->on_body(req, tr_slice(at, n), req->data);
    }
    if (req->cancelled || req->deferred_err != 0) {
        return HPE_USER;
    }
    return req->paused ? HPE_PAUSED : 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct tr_http_client_req *req = parser_req(p);
    req->msg_done = true;
    req->keep_alive = llhttp_should_keep_alive(p) != 0;
    /* Stop here: anything after the response is not ours to parse. */
    return HPE_PAUSED;
}
