/* SPDX-License-Identifier: Apache-2.0 */
/* Buffered calls (see call.h): headers copied into the call, body collected up to a
 * limit, one deadline in the worker's heap, one callback. */
#include "sidecar/call.h"

#include <errno.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
#include "sidecar/sidecar.h"

struct hdr_pos {
    size_t name_off;
    size_t name_len;
    size_t value_off;
    size_t value_len;
};

struct tr_sidecar_call {
    struct tr_sidecar_worker *sw;
    struct tr_http_client_req *req; /* NULL once it ended */
    tr_sidecar_call_cb *cb;
    void *data;
    struct tr_sidecar_deadline deadline;
    int status;
    size_t max_body;
    struct tr_buf body;
    struct tr_buf hbuf; /* copied header names and values */
    struct hdr_pos pos[TR_SIDECAR_CALL_MAX_HEADERS];
    size_t npos;
};

static void call_free(struct tr_sidecar_call *c)
{
    tr_sidecar_deadline_cancel(c->sw, &c->deadline);
    tr_buf_dispose(&c->body);
    tr_buf_dispose(&c->hbuf);
    tr_free_null(&c);
}

static void complete(struct tr_sidecar_call *c, int err)
{
    struct tr_sidecar_reply *r = tr_xcalloc(1, sizeof(*r));
    r->err = err;
    r->status = err == 0 ? c->status : 0;
    if (err == 0) {
        const char *base = tr_buf_data(&c->hbuf);
        for (size_t i = 0; i < c->npos; i++) {
            r->headers[i].name = tr_slice(base + c->pos[i].name_off, c->pos[i].name_len);
            r->headers[i].value = tr_slice(base + c->pos[i].value_off, c->pos[i].value_len);
        }
        r->nheaders = c->npos;
        r->body = c->body.len > 0 ? tr_buf_slice(&c->body) : TR_SLICE_LIT("");
    }
    tr_sidecar_deadline_cancel(c->sw, &c->deadline);
    c->cb(r, c->data);
    tr_free_null(&r);
    call_free(c);
}

static void on_headers(struct tr_http_client_req *req, const struct tr_http_client_resp *resp,
                       void *data)
{
    struct tr_sidecar_call *c = data;
    (void)req;
    c->status = resp->status;
    c->npos = 0;
    tr_buf_reset(&c->hbuf);
    for (size_t i = 0; i < resp->header_count && c->npos < TR_SIDECAR_CALL_MAX_HEADERS; i++) {
        struct hdr_pos *p = &c->pos[c->npos++];
        p->name_off = c->hbuf.len;
        p->name_len = resp->headers[i].name.len;
        tr_buf_append_slice(&c->hbuf, resp->headers[i].name);
        p->value_off = c->hbuf.len;
        p->value_len = resp->headers[i].value.len;
        tr_buf_append_slice(&c->hbuf, resp->headers[i].value);
    }
}

static void on_body(struct tr_http_client_req *req, struct tr_slice chunk, void *data)
{
    struct tr_sidecar_call *c = data;
    if (c->body.len + chunk.len > c->max_body) {
        tr_http_client_req_cancel(req);
        c->req = NULL;
        complete(c, TR_SIDECAR_CALL_E_TOO_BIG);
        return;
    }
    tr_buf_append_slice(&c->body, chunk);
}

static void on_end(struct tr_http_client_req *req, void *data)
{
    struct tr_sidecar_call *c = data;
    (void)req;
    c->req = NULL;
    complete(c, 0);
}

static void on_error(struct tr_http_client_req *req, int err, unsigned flags, void *data)
{
    struct tr_sidecar_call *c = data;
    (void)req;
    (void)flags;
    c->req = NULL;
    complete(c, err);
}

static const struct tr_http_client_handler handler = {
    .on_headers = on_headers,
    .on_body = on_body,
    .on_end = on_end,
    .on_error = on_error,
};

static void on_deadline(struct tr_sidecar_deadline *d)
{
    struct tr_sidecar_call *c = tr_container_of(d, struct tr_sidecar_call, deadline);
    if (c->req != NULL) {
        tr_http_client_req_cancel(c->req);
        c->req = NULL;
    }
    complete(c, TR_SIDECAR_CALL_E_TIMEOUT);
}

int tr_sidecar_call(struct tr_sidecar_worker *sw, const struct tr_sidecar_call_opts *o,
                    tr_sidecar_call_cb *cb, void *data, struct tr_sidecar_call **out)
{
    if (sw->client == NULL) {
        return -ESHUTDOWN;
    }
    struct tr_sidecar_call *c = tr_xcalloc(1, sizeof(*c));
    c->sw = sw;
    c->cb = cb;
    c->data = data;
    c->max_body = o->max_body > 0 ? o->max_body : TR_SIDECAR_CALL_MAX_BODY;
    tr_buf_init(&c->body);
    tr_buf_init(&c->hbuf);
    struct tr_http_client_header *hdrs =
        tr_xcalloc(o->nheaders + 1, sizeof(struct tr_http_client_header));
    size_t n = 0;
    if (o->host.ptr != NULL) {
        hdrs[n++] = (struct tr_http_client_header){TR_SLICE_LIT("Host"), o->host};
    }
    for (size_t i = 0; i < o->nheaders; i++) {
        if (o->host.ptr != NULL && tr_slice_caseeq(o->headers[i].name, TR_SLICE_LIT("Host"))) {
            continue;
        }
        hdrs[n++] = o->headers[i];
    }
    struct tr_http_client_request r = {
        .upstream = *o->to,
        .method = o->method,
        .target = o->target,
        .headers = hdrs,
        .header_count = n,
        .body = o->body,
        .handler = &handler,
        .data = c,
    };
    int err = tr_http_client_request(sw->client, &r, &c->req);
    tr_free_null(&hdrs);
    if (err != 0) {
        tr_buf_dispose(&c->body);
        tr_buf_dispose(&c->hbuf);
        tr_free_null(&c);
        return err;
    }
    uint64_t timeout = o->timeout_ms > 0 ? o->timeout_ms : TR_SIDECAR_CALL_TIMEOUT_MS;
    tr_sidecar_deadline_arm(sw, &c->deadline, uv_now(sw->loop) + timeout, on_deadline);
    if (out != NULL) {
        *out = c;
    }
    return 0;
}

int tr_sidecar_server_call(struct tr_sidecar_worker *sw, struct tr_sidecar_call_opts *o,
                           tr_sidecar_call_cb *cb, void *data, struct tr_sidecar_call **out)
{
    o->to = &sw->sc->server_addr;
    o->host = tr_slice_cstr(sw->sc->server_host);
    return tr_sidecar_call(sw, o, cb, data, out);
}

int tr_sidecar_app_call(struct tr_sidecar_worker *sw, struct tr_sidecar_call_opts *o,
                        tr_sidecar_call_cb *cb, void *data, struct tr_sidecar_call **out)
{
    o->to = &sw->sc->app_addr;
    o->host = tr_slice_cstr(sw->sc->app_host);
    const char *token = sw->sc->opts.app_api_token;
    if (token == NULL) {
        return tr_sidecar_call(sw, o, cb, data, out);
    }
    struct tr_http_client_header *hdrs =
        tr_xcalloc(o->nheaders + 1, sizeof(struct tr_http_client_header));
    memcpy(hdrs, o->headers, o->nheaders * sizeof(*hdrs));
    hdrs[o->nheaders] =
        (struct tr_http_client_header){TR_SLICE_LIT("dapr-api-token"), tr_slice_cstr(token)};
    struct tr_sidecar_call_opts copy = *o;
    copy.headers = hdrs;
    copy.nheaders = o->nheaders + 1;
    int err = tr_sidecar_call(sw, &copy, cb, data, out);
    tr_free_null(&hdrs);
    return err;
}

void tr_sidecar_call_cancel(struct tr_sidecar_call *call)
{
    if (call->req != NULL) {
        tr_http_client_req_cancel(call->req);
        call->req = NULL;
    }
    call_free(call);
}

/* ------------------------------------------------------------ request-bound calls */

struct bound {
    struct tr_http_req *req;
    struct tr_sidecar_call *call;
    tr_sidecar_req_cb *cb;
    void *data;
};

static void on_client_gone(struct tr_http_req *req, bool complete)
{
    struct bound *b = req->user;
    (void)complete;
    req->user = NULL;
    req->on_body_end = NULL;
    if (b == NULL) {
        return;
    }
    if (b->call != NULL) {
        tr_sidecar_call_cancel(b->call);
    }
    tr_free_null(&b);
}

static void on_bound_reply(const struct tr_sidecar_reply *r, void *data)
{
    struct bound *b = data;
    struct tr_http_req *req = b->req;
    req->user = NULL;
    req->on_body_end = NULL;
    tr_sidecar_req_cb *cb = b->cb;
    void *cb_data = b->data;
    tr_free_null(&b);
    cb(req, r, cb_data);
}

static int bound_start(struct tr_http_req *req, struct tr_sidecar_call_opts *o,
                       tr_sidecar_req_cb *cb, void *data, bool server)
{
    struct tr_sidecar_worker *sw = tr_sidecar_worker_of(req);
    struct bound *b = tr_xcalloc(1, sizeof(*b));
    b->req = req;
    b->cb = cb;
    b->data = data;
    int err = server ? tr_sidecar_server_call(sw, o, on_bound_reply, b, &b->call)
                     : tr_sidecar_call(sw, o, on_bound_reply, b, &b->call);
    if (err != 0) {
        tr_free_null(&b);
        return err;
    }
    req->user = b;
    req->on_body_end = on_client_gone;
    return 0;
}

int tr_sidecar_req_call(struct tr_http_req *req, struct tr_sidecar_call_opts *o,
                        tr_sidecar_req_cb *cb, void *data)
{
    return bound_start(req, o, cb, data, false);
}

int tr_sidecar_req_server_call(struct tr_http_req *req, struct tr_sidecar_call_opts *o,
                               tr_sidecar_req_cb *cb, void *data)
{
    return bound_start(req, o, cb, data, true);
}

struct tr_slice tr_sidecar_reply_header(const struct tr_sidecar_reply *r, struct tr_slice name)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        if (tr_slice_caseeq(r->headers[i].name, name)) {
            return r->headers[i].value;
        }
    }
    return TR_SLICE_NULL;
}
