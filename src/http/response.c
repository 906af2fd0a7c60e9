/* SPDX-License-Identifier: Apache-2.0 */
/* Response serialisation: status line, the headers the engine owns (Date, Server,
 * Content-Length or chunked framing, Connection), the handler's headers, then body
 * bytes appended straight into the connection's output buffer. */
#include "http/server.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"

/* Body chunks at least this large are sent at once rather than copied into the output
 * buffer (tr_http__conn_output_now); smaller ones wait to leave with what follows. */
#define WRITE_NOW_MIN 4096

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nServer: trellis\r\n": the
 * start of every response head, kept per thread for the last status answered and
 * rebuilt when the status or the second changes. */
static struct tr_slice head_prefix(int status)
{
    static _Thread_local char line[192];
    static _Thread_local size_t len;
    static _Thread_local int last_status;
    static _Thread_local time_t last_sec;
    time_t now = time(NULL);
    if (len == 0 || now != last_sec || status != last_status) {
        struct tm tm;
        gmtime_r(&now, &tm);
        int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
        n += (int)strftime(line + n, sizeof(line) - (size_t)n,
                           "Date: %a, %d %b %Y %H:%M:%S GMT\r\nServer: trellis\r\n", &tm);
        len = (size_t)n;
        last_sec = now;
        last_status = status;
    }
    return tr_slice(line, len);
}

static bool status_has_body(int status)
{
    return !(status < 200 || status == 204 || status == 304);
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

void tr_http_resp_header(struct tr_http_req *req, struct tr_slice name, struct tr_slice value)
{
    if (req->resp_started) {
        return;
    }
    size_t n = name.len + 2 + value.len + 2;
    char *p = tr_buf_reserve(&req->resp_headers, n);
    p = put(p, name.ptr, name.len);
    p = PUT_LIT(p, ": ");
    if (value.len > 0) {
        p = put(p, value.ptr, value.len);
    }
    PUT_LIT(p, "\r\n");
    req->resp_headers.len += n;
}

/* Decimal digits of v at the end of tmp[24]; returns where they start. */
static char *u64_digits(char tmp[24], uint64_t v)
{
    char *d = tmp + 24;
    do {
        *--d = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    return d;
}

/* The status line, the engine's headers and the handler's, in one reservation. */
static void write_head(struct tr_http_req *req, int status, struct tr_slice content_type,
                       uint64_t content_length)
{
    struct tr_buf *out = tr_http__conn_outbuf(req->conn);
    req->status = status;
    req->resp_started = true;
    bool http10 = req->version_minor == 0;
    if (!req->keep_alive || tr_http__conn_draining(req->conn)) {
        req->resp_close = true;
    }
    if (!status_has_body(status)) {
        req->resp_remaining = 0;
    } else if (content_length != UINT64_MAX) {
        req->resp_remaining = content_length;
    } else if (http10) {
        /* HTTP/1.0 has no chunked coding: the body ends when we close. */
        req->resp_close = true;
        req->resp_remaining = UINT64_MAX;
    } else {
        req->resp_chunked = true;
        req->resp_remaining = UINT64_MAX;
    }
    static const char te[] = "Transfer-Encoding: chunked\r\n";
    static const char conn_close[] = "Connection: close\r\n";
    static const char conn_ka[] = "Connection: keep-alive\r\n";
    char cl[24];
    char *cl_d = NULL;
    size_t cl_len = 0;
    if (status_has_body(status) && content_length != UINT64_MAX) {
        cl_d = u64_digits(cl, content_length);
        cl_len = (size_t)(cl + sizeof(cl) - cl_d);
    }
    struct tr_slice prefix = head_prefix(status);
    size_t need = prefix.len + req->resp_headers.len + 2;
    if (content_type.len > 0) {
        need += sizeof("Content-Type: \r\n") - 1 + content_type.len;
    }
    if (cl_d != NULL) {
        need += sizeof("Content-Length: \r\n") - 1 + cl_len;
    } else if (req->resp_chunked) {
        need += sizeof(te) - 1;
    }
    if (req->resp_close) {
        need += sizeof(conn_close) - 1;
    } else if (http10) {
        need += sizeof(conn_ka) - 1;
    }
    char *start = tr_buf_reserve(out, need);
    char *p = put(start, prefix.ptr, prefix.len);
    if (content_type.len > 0) {
        p = PUT_LIT(p, "Content-Type: ");
        p = put(p, content_type.ptr, content_type.len);
        p = PUT_LIT(p, "\r\n");
    }
    if (cl_d != NULL) {
        p = PUT_LIT(p, "Content-Length: ");
        p = put(p, cl_d, cl_len);
        p = PUT_LIT(p, "\r\n");
    } else if (req->resp_chunked) {
        p = put(p, te, sizeof(te) - 1);
    }
    if (req->resp_close) {
        p = put(p, conn_close, sizeof(conn_close) - 1);
    } else if (http10) {
        p = put(p, conn_ka, sizeof(conn_ka) - 1);
    }
    if (req->resp_headers.len > 0) {
        p = put(p, tr_buf_data(&req->resp_headers), req->resp_headers.len);
    }
    p = PUT_LIT(p, "\r\n");
    TR_ASSERT((size_t)(p - start) == need);
    out->len += need;
}

static bool is_head(const struct tr_http_req *req)
{
    return req->method_id == HTTP_HEAD;
}

void tr_http_resp_start(struct tr_http_req *req, int status, struct tr_slice content_type,
                        uint64_t content_length)
{
    TR_ASSERT(!req->resp_started);
    write_head(req, status, content_type, content_length);
}

bool tr_http_resp_write(struct tr_http_req *req, struct tr_slice data, tr_http_drain_cb *on_drain)
{
    TR_ASSERT(req->resp_started && !req->resp_ended);
    if (data.len > 0 && status_has_body(req->status) && !is_head(req)) {
        struct tr_buf *out = tr_http__conn_outbuf(req->conn);
        if (req->resp_chunked) {
            static const char hex[] = "0123456789abcdef";
            char line[20];
            char *d = line + sizeof(line);
            *--d = '\n';
            *--d = '\r';
            size_t v = data.len;
            do {
                *--d = hex[v & 15];
                v >>= 4;
            } while (v > 0);
            size_t line_len = (size_t)(line + sizeof(line) - d);
            char *p = tr_buf_reserve(out, line_len + data.len + 2);
            p = put(p, d, line_len);
            p = put(p, data.ptr, data.len);
            PUT_LIT(p, "\r\n");
            out->len += line_len + data.len + 2;
        } else {
            size_t n = data.len;
            if (req->resp_remaining != UINT64_MAX) {
                /* Never send more than we announced: that would desync the client. */
                n = n > req->resp_remaining ? (size_t)req->resp_remaining : n;
                req->resp_remaining -= n;
            }
            if (n >= WRITE_NOW_MIN) {
                /* Sent from where it lies (with the head if that still waits), not copied;
                 * no framing follows a Content-Length body, so this costs no extra write. */
                tr_http__conn_output_now(req->conn, tr_slice(data.ptr, n));
            } else {
                tr_buf_append(out, data.ptr, n);
            }
        }
    } else if (req->resp_remaining != UINT64_MAX) {
        req->resp_remaining -= data.len < req->resp_remaining ? data.len : req->resp_remaining;
    }
    bool full = tr_http__conn_pending(req->conn) > req->server->limits.output_high_water;
    req->on_drain = full ? on_drain : NULL;
    return full;
}

void tr_http_resp_end(struct tr_http_req *req)
{
    TR_ASSERT(req->resp_started && !req->resp_ended);
    if (req->resp_chunked && !is_head(req)) {
        tr_buf_append_slice(tr_http__conn_outbuf(req->conn), TR_SLICE_LIT("0\r\n\r\n"));
    }
    if (req->resp_remaining != UINT64_MAX && req->resp_remaining != 0 && !is_head(req)) {
        /* Fewer bytes than announced: the client cannot find the next response. */
        req->resp_close = true;
    }
    req->on_drain = NULL;
    tr_http__req_done(req);
}

void tr_http_resp_abort(struct tr_http_req *req)
{
    TR_ASSERT(req->resp_started && !req->resp_ended);
    req->resp_chunked = false;
    req->resp_remaining = UINT64_MAX;
    req->resp_close = true;
    req->on_drain = NULL;
    tr_http__req_done(req);
}

void tr_http_resp_send(struct tr_http_req *req, int status, struct tr_slice content_type,
                       struct tr_slice body)
{
    write_head(req, status, content_type, body.len);
    if (body.len > 0 && status_has_body(status) && !is_head(req)) {
        tr_buf_append_slice(tr_http__conn_outbuf(req->conn), body);
    }
    req->resp_remaining = 0;
    tr_http_resp_end(req);
}

void tr_http_resp_error(struct tr_http_req *req, enum tr_err e, const char *message)
{
    const struct tr_err_info *info = tr_err_info(e);
    struct tr_buf body;
    tr_buf_init(&body);
    tr_err_json(&body, e, message);
    tr_http_resp_send(req, info->status, TR_SLICE_LIT("application/json"), tr_buf_slice(&body));
    tr_buf_dispose(&body);
}
