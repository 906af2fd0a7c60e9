/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP calls and TCP checks for trellis up (see probe.h), on the project's HTTP client
 * with short timeouts: everything probed is on this machine. */
#include "up/probe.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "core/buf.h"
#include "core/list.h"
#include "http/client.h"

#define CONNECT_TIMEOUT_MS 1000
#define RESPONSE_TIMEOUT_MS 3000
#define TCP_TIMEOUT_MS 1000

struct tr_up_http {
    struct tr_http_client *client;
    struct tr_list calls; /* struct tr_up_call in flight */
};

struct tr_up_call {
    struct tr_list link;
    struct tr_http_client_req *req;
    tr_up_call_cb *cb;
    void *data;
    int status;
    struct tr_buf body;
    bool too_big;
};

struct tr_up_tcp {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_timer_t timer;
    tr_up_tcp_cb *cb; /* NULL once reported or cancelled */
    void *data;
    int pending; /* handles not closed yet */
};

void tr_up_local_addr(uint16_t port, struct tr_addr *out)
{
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *in = (struct sockaddr_in *)&out->ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    out->len = sizeof(*in);
}

struct tr_up_http *tr_up_http_new(uv_loop_t *loop)
{
    struct tr_up_http *h = tr_xcalloc(1, sizeof(*h));
    struct tr_http_client_config cfg;
    tr_http_client_config_init(&cfg);
    cfg.max_idle_per_upstream = 2;
    cfg.idle_timeout_ms = 5000;
    cfg.connect_timeout_ms = CONNECT_TIMEOUT_MS;
    cfg.response_timeout_ms = RESPONSE_TIMEOUT_MS;
    cfg.read_timeout_ms = RESPONSE_TIMEOUT_MS;
    h->client = tr_http_client_new(loop, &cfg);
    tr_list_init(&h->calls);
    return h;
}

static void call_free(struct tr_up_call *c)
{
    tr_list_remove(&c->link);
    tr_buf_dispose(&c->body);
    tr_free_null(&c);
}

void tr_up_call_cancel(struct tr_up_call *c)
{
    if (c == NULL) {
        return;
    }
    tr_http_client_req_cancel(c->req);
    call_free(c);
}

static void on_client_closed(void *data)
{
    struct tr_up_http *h = data;
    tr_free_null(&h);
}

void tr_up_http_free(struct tr_up_http *h)
{
    if (h == NULL) {
        return;
    }
    struct tr_list *it;
    struct tr_list *tmp;
    tr_list_foreach_safe(it, tmp, &h->calls)
    {
        tr_up_call_cancel(tr_container_of(it, struct tr_up_call, link));
    }
    tr_http_client_close(h->client, on_client_closed, h);
}

static void on_headers(struct tr_http_client_req *req, const struct tr_http_client_resp *resp,
                       void *data)
{
    struct tr_up_call *c = data;
    c->status = resp->status;
}

static void on_body(struct tr_http_client_req *req, struct tr_slice chunk, void *data)
{
    struct tr_up_call *c = data;
    if (c->body.len + chunk.len > TR_UP_PROBE_MAX_BODY) {
        c->too_big = true;
        return;
    }
    tr_buf_append_slice(&c->body, chunk);
}

static void finish(struct tr_up_call *c, int status)
{
    tr_up_call_cb *cb = c->cb;
    void *data = c->data;
    struct tr_buf body = c->body;
    tr_buf_init(&c->body);
    call_free(c);
    cb(data, status, tr_buf_slice(&body));
    tr_buf_dispose(&body);
}

static void on_end(struct tr_http_client_req *req, void *data)
{
    struct tr_up_call *c = data;
    finish(c, c->too_big ? -EFBIG : c->status);
}

static void on_error(struct tr_http_client_req *req, int err, unsigned flags, void *data)
{
    finish(data, err < 0 ? err : -EIO);
}

static const struct tr_http_client_handler handler = {
    .on_headers = on_headers,
    .on_body = on_body,
    .on_end = on_end,
    .on_error = on_error,
};

int tr_up_http_call(struct tr_up_http *h, const struct tr_addr *to, const char *method,
                    const char *target, struct tr_slice body, tr_up_call_cb *cb, void *data,
                    struct tr_up_call **out)
{
    struct tr_up_call *c = tr_xcalloc(1, sizeof(*c));
    c->cb = cb;
    c->data = data;
    tr_buf_init(&c->body);
    tr_list_init(&c->link);
    static const struct tr_http_client_header json_ct[] = {
        {TR_SLICE_LIT("Content-Type"), TR_SLICE_LIT("application/json")},
    };
    struct tr_http_client_request r = {
        .upstream = *to,
        .method = tr_slice_cstr(method),
        .target = tr_slice_cstr(target),
        .headers = body.ptr != NULL ? json_ct : NULL,
        .header_count = body.ptr != NULL ? 1 : 0,
        .body = body,
        .handler = &handler,
        .data = c,
    };
    int rc = tr_http_client_request(h->client, &r, &c->req);
    if (rc != 0) {
        tr_free_null(&c);
        return rc;
    }
    tr_list_insert_tail(&h->calls, &c->link);
    if (out != NULL) {
        *out = c;
    }
    return 0;
}

/* ---- TCP checks ---- */

static void on_tcp_closed(uv_handle_t *handle)
{
    struct tr_up_tcp *t = handle->data;
    if (--t->pending == 0) {
        tr_free_null(&t);
    }
}

static void tcp_close(struct tr_up_tcp *t)
{
    uv_timer_stop(&t->timer);
    if (!uv_is_closing((uv_handle_t *)&t->tcp)) {
        uv_close((uv_handle_t *)&t->tcp, on_tcp_closed);
    }
    if (!uv_is_closing((uv_handle_t *)&t->timer)) {
        uv_close((uv_handle_t *)&t->timer, on_tcp_closed);
    }
}

static void tcp_report(struct tr_up_tcp *t, int status)
{
    tr_up_tcp_cb *cb = t->cb;
    t->cb = NULL;
    tcp_close(t);
    if (cb != NULL) {
        cb(t->data, status);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct tr_up_tcp *t = req->data;
    if (status == UV_ECANCELED) {
        return; /* closed by us */
    }
    tcp_report(t, status);
}

static void on_tcp_timeout(uv_timer_t *timer)
{
    tcp_report(timer->data, -ETIMEDOUT);
}

int tr_up_tcp_check(uv_loop_t *loop, const struct tr_addr *to, tr_up_tcp_cb *cb, void *data,
                    struct tr_up_tcp **out)
{
    struct tr_up_tcp *t = tr_xcalloc(1, sizeof(*t));
    t->cb = cb;
    t->data = data;
    uv_tcp_init(loop, &t->tcp);
    uv_timer_init(loop, &t->timer);
    t->tcp.data = t;
    t->timer.data = t;
    t->connect.data = t;
    t->pending = 2;
    int rc = uv_tcp_connect(&t->connect, &t->tcp, (const struct sockaddr *)&to->ss, on_connect);
    if (rc != 0) {
        t->cb = NULL;
        tcp_close(t);
        return rc;
    }
    uv_timer_start(&t->timer, on_tcp_timeout, TCP_TIMEOUT_MS, 0);
    *out = t;
    return 0;
}

void tr_up_tcp_cancel(struct tr_up_tcp *t)
{
    if (t == NULL || t->cb == NULL) {
        return;
    }
    t->cb = NULL;
    tcp_close(t);
}
