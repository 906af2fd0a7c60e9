/* SPDX-License-Identifier: Apache-2.0 */
/* Request accessors and replies. Everything here runs on the handler's thread and
 * touches only the request's own copy (struct trellis_req); the loop sends the reply
 * once the handler returns (app.c on_req_done). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/query.h"
#include "sdk/app.h"
#include "sdk/sdk.h"

const char *trellis_req_method(const struct trellis_req *req)
{
    return req->method;
}

const char *trellis_req_path(const struct trellis_req *req)
{
    return req->path;
}

const char *trellis_req_param(const struct trellis_req *req, const char *name)
{
    for (size_t i = 0; i < req->nparams; i++) {
        if (strcmp(req->params[i].name, name) == 0) {
            return req->params[i].value;
        }
    }
    return NULL;
}

const char *trellis_req_query(const struct trellis_req *req, const char *name)
{
    struct trellis_req *r = (struct trellis_req *)req; /* decoding allocates in the arena */
    struct tr_slice value;
    if (name == NULL || !tr_query_get(r->query, name, &r->arena, &value)) {
        return NULL;
    }
    return tr_arena_strndup(&r->arena, value.ptr != NULL ? value.ptr : "", value.len);
}

const char *trellis_req_header(const struct trellis_req *req, const char *name)
{
    size_t n = name == NULL ? 0 : strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strlen(req->headers[i].name) == n && strncasecmp(req->headers[i].name, name, n) == 0) {
            return req->headers[i].value;
        }
    }
    return NULL;
}

const char *trellis_req_body(const struct trellis_req *req, size_t *len)
{
    if (len != NULL) {
        *len = req->body.len;
    }
    const char *data = tr_buf_data(&req->body);
    return data != NULL ? data : "";
}

struct trellis_json *trellis_req_json(struct trellis_req *req)
{
    if (!req->json_tried) {
        req->json_tried = true;
        char err[256];
        if (req->body.len == 0) {
            snprintf(err, sizeof(err), "the request has no body; a JSON value was expected");
        } else {
            req->json =
                trellis_json_parse(tr_buf_data(&req->body), req->body.len, err, sizeof(err));
        }
        if (req->json == NULL) {
            trellis_reply_error(req, 400, "bad_json", "%s", err);
        }
    }
    return req->json;
}

const char *trellis_req_traceparent(const struct trellis_req *req)
{
    return req->traceparent;
}

struct trellis_app *trellis_req_app(const struct trellis_req *req)
{
    return req->app;
}

struct trellis_sidecar *trellis_req_sidecar(const struct trellis_req *req)
{
    return trellis_app_sidecar(req->app);
}

/* ------------------------------------------------------------ replies */

static bool valid_header_value(const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\r' || *v == '\n') {
            return false;
        }
    }
    return true;
}

static bool valid_header_name(const char *n)
{
    if (n[0] == '\0') {
        return false;
    }
    for (; *n != '\0'; n++) {
        char c = *n;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("!#$%&'*+-.^_`|~", c) != NULL;
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Headers the engine writes itself; a second copy would corrupt the framing. */
static bool reserved_header(const char *n)
{
    static const char *const reserved[] = {
        "content-length", "transfer-encoding", "connection", "content-type", "date", "server"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        if (strcasecmp(n, reserved[i]) == 0) {
            return true;
        }
    }
    return false;
}

int trellis_reply_header(struct trellis_req *req, const char *name, const char *value)
{
    if (req->replied || name == NULL || value == NULL || !valid_header_name(name) ||
        !valid_header_value(value) || reserved_header(name)) {
        return -EINVAL;
    }
    tr_buf_append(&req->resp_headers, name, strlen(name) + 1);
    tr_buf_append(&req->resp_headers, value, strlen(value) + 1);
    return 0;
}

bool trellis_replied(const struct trellis_req *req)
{
    return req->replied;
}

static bool claim_reply(struct trellis_req *req, int status)
{
    if (req->replied) {
        trellis_log(TRELLIS_LOG_WARN, "%s %s: second reply (%d) ignored", req->method, req->path,
                    status);
        return false;
    }
    req->replied = true;
    if (status < 100 || status > 999) {
        trellis_log(TRELLIS_LOG_ERROR, "%s %s: invalid status %d replaced by 500", req->method,
                    req->path, status);
        status = 500;
    }
    req->status = status;
    return true;
}

void trellis_reply(struct trellis_req *req, int status, const char *content_type, const void *body,
                   size_t len)
{
    if (!claim_reply(req, status)) {
        return;
    }
    if (content_type != NULL && valid_header_value(content_type)) {
        req->content_type = tr_arena_strndup(&req->arena, content_type, strlen(content_type));
    }
    if (body != NULL && len > 0) {
        tr_buf_append(&req->resp_body, body, len);
    }
}

void trellis_reply_json(struct trellis_req *req, int status, struct trellis_json *body)
{
    if (body == NULL) {
        trellis_reply_error(req, 500, "internal", "could not build the JSON reply: %s",
                            trellis_last_error());
        return;
    }
    char *text = trellis_json_dump(body);
    trellis_json_free(body);
    if (text == NULL) {
        trellis_reply_error(req, 500, "internal", "could not serialise the JSON reply");
        return;
    }
    trellis_reply(req, status, "application/json", text, strlen(text));
    trellis_free(text);
}

void trellis_reply_error(struct trellis_req *req, int status, const char *code, const char *fmt,
                         ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    struct trellis_json *body = trellis_json_pack(
        "{s:{s:s, s:s}}", "error", "code", code != NULL ? code : "error", "message", message);
    if (body == NULL) {
        /* The message was not UTF-8 (it may quote client input). */
        body = trellis_json_pack("{s:{s:s, s:s}}", "error", "code", code != NULL ? code : "error",
                                 "message", "(message is not valid UTF-8)");
    }
    trellis_reply_json(req, status, body);
}
