/* SPDX-License-Identifier: Apache-2.0 */
/* Response serialisation: status line, the headers the engine owns (Date, Server,
 * Content-Length or chunked framing, Connection), the handler's headers, then body
 * bytes appended straight into the connection's output buffer. */
#include "http/server.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"

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

/* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n", rebuilt at most once a second per thread. */
static struct tr_slice date_header(void)
{
    static _Thread_local char line[64];
    static _Thread_local time_t last;
    static _Thread_local size_t len;
    time_t now = time(NULL);
    if (now != last || len == 0) {
        struct tm tm;
        gmtime_r(&now, &tm);
        len = strftime(line, sizeof(line), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        last = now;
    }
    return tr_slice(line, len);
}

static bool status_has_body(int status)
{
    return !(status < 200 || status == 204 || status == 304);
}

void tr_http_resp_header(struct tr_http_req *req, struct tr_slice name, struct tr_slice value)
{
    if (req->resp_started) {
        return;
    }
    tr_buf_append_slice(&req->resp_headers, name);
    tr_buf_append(&req->resp_headers, ": ", 2);
    tr_buf_append_slice(&req->resp_headers, value);
    tr_buf_append(&req->resp_headers, "\r\n", 2);
}

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
    tr_buf_append(out, "HTTP/1.1 ", 9);
    tr_buf_append_u64(out, (unsigned)status);
    tr_buf_append(out, " ", 1);
    const char *reason = reason_phrase(status);
    tr_buf_append(out, reason, strlen(reason));
    tr_buf_append(out, "\r\n", 2);
    tr_buf_append_slice(out, date_header());
    tr_buf_append_slice(out, TR_SLICE_LIT("Server: trellis\r\n"));
    if (content_type.len > 0) {
        tr_buf_append_slice(out, TR_SLICE_LIT("Content-Type: "));
        tr_buf_append_slice(out, content_type);
        tr_buf_append(out, "\r\n", 2);
    }
    if (!status_has_body(status)) {
        req->resp_remaining = 0;
    } else if (content_length != UINT64_MAX) {
        tr_buf_append_slice(out, TR_SLICE_LIT("Content-Length: "));
        tr_buf_append_u64(out, content_length);
        tr_buf_append(out, "\r\n", 2);
        req->resp_remaining = content_length;
    } else if (http10) {
        /* HTTP/1.0 has no chunked coding: the body ends when we close. */
        req->resp_close = true;
        req->resp_remaining = UINT64_MAX;
    } else {
        tr_buf_append_slice(out, TR_SLICE_LIT("Transfer-Encoding: chunked\r\n"));
        req->resp_chunked = true;
        req->resp_remaining = UINT64_MAX;
    }
    if (req->resp_close) {
        tr_buf_append_slice(out, TR_SLICE_LIT("Connection: close\r\n"));
    } else if (http10) {
        tr_buf_append_slice(out, TR_SLICE_LIT("Connection: keep-alive\r\n"));
    }
    tr_buf_append(out, tr_buf_data(&req->resp_headers), req->resp_headers.len);
    tr_buf_append(out, "\r\n", 2);
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
            tr_buf_appendf(out, "%zx\r\n", data.len);
            tr_buf_append_slice(out, data);
            tr_buf_append(out, "\r\n", 2);
        } else {
            size_t n = data.len;
            if (req->resp_remaining != UINT64_MAX) {
                /* Never send more than we announced: that would desync the client. */
                n = n > req->resp_remaining ? (size_t)req->resp_remaining : n;
                req->resp_remaining -= n;
            }
            tr_buf_append(out, data.ptr, n);
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
