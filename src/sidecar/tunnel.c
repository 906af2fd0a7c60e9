/* SPDX-License-Identifier: Apache-2.0 */
/* Upgrade tunnels (see tunnel.h). Life of a tunnel:
 *
 *   CONNECTING (the client request still belongs to the HTTP server; a failure is
 *   answered as HTTP) --connected--> head written upstream, client socket taken over
 *   --> RELAY (two struct side, each reading its socket and writing to the other)
 *   --> both sides done or an error --> both handles closed --> freed
 */
#include "sidecar/tunnel.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/mem.h"
#include "sidecar/sidecar.h"

#define LOG "sidecar"
#define HIGH_WATER (256 * 1024)
#define READ_SIZE (64 * 1024)

struct tr_sidecar_tunnel;

struct side {
    uv_tcp_t tcp;
    uv_shutdown_t sreq;
    struct tr_sidecar_tunnel *t;
    struct side *peer;
    size_t unwritten; /* bytes queued on this side's socket, not yet written */
    bool open;        /* handle initialised, not closed */
    bool reading;
    bool eof;         /* this side sent EOF (we shut the peer's write side) */
    bool shut;        /* our write side to this socket is shut */
};

struct write_req {
    uv_write_t req;
    struct side *to;
    size_t len;
    char data[];
};

struct tr_sidecar_tunnel {
    struct tr_list link;        /* in the worker's list while live */
    struct tr_http_req *req;    /* while connecting */
    struct side client;
    struct side up;
    uv_connect_t connect;
    struct tr_buf head;         /* request head for the upstream */
    char app_id[129];
    unsigned pending_closes;
    bool closing;
};

static void tunnel_close(struct tr_sidecar_tunnel *t);

static void tunnel_free(struct tr_sidecar_tunnel *t)
{
    tr_buf_dispose(&t->head);
    tr_free_null(&t);
}

static void on_closed(uv_handle_t *h)
{
    struct side *s = h->data;
    struct tr_sidecar_tunnel *t = s->t;
    if (--t->pending_closes == 0) {
        tunnel_free(t);
    }
}

static void side_close(struct side *s)
{
    if (s->open && !uv_is_closing((uv_handle_t *)&s->tcp)) {
        s->open = false;
        s->t->pending_closes++;
        uv_close((uv_handle_t *)&s->tcp, on_closed);
    }
}

static void tunnel_close(struct tr_sidecar_tunnel *t)
{
    if (t->closing) {
        return;
    }
    t->closing = true;
    if (tr_list_linked(&t->link)) {
        tr_list_remove(&t->link);
    }
    t->pending_closes++; /* ourselves, so that a close callback cannot free t early */
    side_close(&t->client);
    side_close(&t->up);
    if (--t->pending_closes == 0) {
        tunnel_free(t);
    }
}

/* ------------------------------------------------------------ relay */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    struct write_req *w = tr_xmalloc(sizeof(*w) + READ_SIZE);
    buf->base = w->data;
    buf->len = READ_SIZE;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void side_read(struct side *s)
{
    if (s->open && !s->reading && !s->eof && !s->t->closing) {
        s->reading = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) == 0;
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct side *s = req->data;
    (void)status;
    /* Both directions finished: the tunnel is done. */
    if (s->peer->shut && s->shut && !s->t->closing) {
        tunnel_close(s->t);
    }
}

static void maybe_shutdown(struct side *to)
{
    if (to->shut || to->unwritten > 0 || !to->peer->eof || !to->open) {
        return;
    }
    to->shut = true;
    to->sreq.data = to;
    if (uv_shutdown(&to->sreq, (uv_stream_t *)&to->tcp, on_shutdown) != 0) {
        tunnel_close(to->t);
    }
}

static void on_written(uv_write_t *req, int status)
{
    struct write_req *w = tr_container_of(req, struct write_req, req);
    struct side *to = w->to;
    struct tr_sidecar_tunnel *t = to->t;
    to->unwritten -= w->len;
    tr_free_null(&w);
    if (t->closing) {
        return;
    }
    if (status != 0) {
        tunnel_close(t);
        return;
    }
    if (to->unwritten < HIGH_WATER) {
        side_read(to->peer); /* the source may read again */
    }
    maybe_shutdown(to);
}

static int side_write(struct side *to, struct write_req *w, size_t len)
{
    w->to = to;
    w->len = len;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    int err = uv_write(&w->req, (uv_stream_t *)&to->tcp, &b, 1, on_written);
    if (err != 0) {
        tr_free_null(&w);
        return err;
    }
    to->unwritten += len;
    return 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct side *s = stream->data;
    struct tr_sidecar_tunnel *t = s->t;
    struct write_req *w = buf->base != NULL ? tr_container_of(buf->base, struct write_req, data)
                                            : NULL;
    if (nread == 0) {
        tr_free_null(&w);
        return;
    }
    if (nread < 0) {
        tr_free_null(&w);
        uv_read_stop(stream);
        s->reading = false;
        if (nread != UV_EOF) {
            tunnel_close(t);
            return;
        }
        s->eof = true;
        maybe_shutdown(s->peer);
        if (s->eof && s->peer->eof && s->unwritten == 0 && s->peer->unwritten == 0 &&
            s->shut && s->peer->shut) {
            tunnel_close(t);
        }
        return;
    }
    if (side_write(s->peer, w, (size_t)nread) != 0) {
        tunnel_close(t);
        return;
    }
    if (s->peer->unwritten >= HIGH_WATER) {
        uv_read_stop(stream);
        s->reading = false;
    }
}

/* ------------------------------------------------------------ start */

static void connect_failed(struct tr_sidecar_tunnel *t, int status)
{
    struct tr_http_req *req = t->req;
    t->req = NULL;
    if (req != NULL) {
        req->user = NULL;
        req->on_body_end = NULL;
        tr_sidecar_error(req, 500, "ERR_DIRECT_INVOKE",
                         "failed to invoke, id: %s, err: cannot open the upgrade connection: %s",
                         t->app_id, tr_strerror(status));
    }
    tunnel_close(t);
}

static void on_connect(uv_connect_t *creq, int status)
{
    struct tr_sidecar_tunnel *t = creq->data;
    if (t->closing) {
        return;
    }
    if (status != 0) {
        connect_failed(t, status);
        return;
    }
    struct tr_http_req *req = t->req;
    if (req == NULL) {
        tunnel_close(t); /* the client went away meanwhile */
        return;
    }
    uv_loop_t *loop = t->up.tcp.loop;
    struct tr_buf rest;
    tr_buf_init(&rest);
    int fd = tr_http_req_takeover(req, &rest);
    if (fd < 0) {
        tr_buf_dispose(&rest);
        connect_failed(t, fd);
        return;
    }
    t->req = NULL; /* gone: the server closed its side */
    uv_tcp_init(loop, &t->client.tcp);
    t->client.tcp.data = &t->client;
    t->client.open = true;
    int err = uv_tcp_open(&t->client.tcp, fd);
    if (err != 0) {
        close(fd);
        tr_buf_dispose(&rest);
        tunnel_close(t);
        return;
    }
    /* The head, then whatever the client sent after it. */
    tr_buf_append_slice(&t->head, tr_buf_slice(&rest));
    tr_buf_dispose(&rest);
    struct write_req *w = tr_xmalloc(sizeof(*w) + t->head.len);
    memcpy(w->data, tr_buf_data(&t->head), t->head.len);
    size_t len = t->head.len;
    tr_buf_dispose(&t->head);
    if (side_write(&t->up, w, len) != 0) {
        tunnel_close(t);
        return;
    }
    side_read(&t->up);
    side_read(&t->client);
}

static void on_client_gone(struct tr_http_req *req, bool complete)
{
    struct tr_sidecar_tunnel *t = req->user;
    if (complete) {
        return; /* the (empty) request is complete; the client is still there */
    }
    req->user = NULL;
    req->on_body_end = NULL;
    t->req = NULL; /* on_connect sees it and closes */
}

static void serialize_head(struct tr_sidecar_tunnel *t, struct tr_http_req *req,
                           const struct tr_sidecar_tunnel_opts *o)
{
    struct tr_buf *b = &t->head;
    tr_buf_append_slice(b, o->method);
    tr_buf_append(b, " ", 1);
    tr_buf_append_slice(b, o->target);
    tr_buf_append_slice(b, TR_SLICE_LIT(" HTTP/1.1\r\n"));
    bool host = false;
    for (size_t i = 0; i < o->nheaders; i++) {
        host |= tr_slice_caseeq(o->headers[i].name, TR_SLICE_LIT("Host"));
        tr_buf_append_slice(b, o->headers[i].name);
        tr_buf_append(b, ": ", 2);
        tr_buf_append_slice(b, o->headers[i].value);
        tr_buf_append(b, "\r\n", 2);
    }
    if (!host) {
        char addr[80];
        tr_addr_format((const struct sockaddr *)&o->upstream->ss, addr, sizeof(addr));
        tr_buf_appendf(b, "Host: %s\r\n", addr);
    }
    tr_buf_append_slice(b, TR_SLICE_LIT("Connection: Upgrade\r\nUpgrade: "));
    tr_buf_append_slice(b, tr_http_req_header(req, TR_SLICE_LIT("Upgrade")));
    tr_buf_append_slice(b, TR_SLICE_LIT("\r\n\r\n"));
}

void tr_sidecar_tunnel_start(struct tr_http_req *req, const struct tr_sidecar_tunnel_opts *o)
{
    struct tr_sidecar_worker *sw = tr_sidecar_worker_of(req);
    struct tr_sidecar_tunnel *t = tr_xcalloc(1, sizeof(*t));
    t->client.t = t;
    t->up.t = t;
    t->client.peer = &t->up;
    t->up.peer = &t->client;
    tr_buf_init(&t->head);
    snprintf(t->app_id, sizeof(t->app_id), "%s", o->app_id);
    tr_list_init(&t->link);
    if (req->chunked || (req->content_length != UINT64_MAX && req->content_length > 0)) {
        req->resp_close = true;
        tr_sidecar_error(req, 400, "ERR_DIRECT_INVOKE",
                         "an Upgrade request must not have a body");
        tunnel_free(t);
        return;
    }
    serialize_head(t, req, o);
    uv_tcp_init(sw->loop, &t->up.tcp);
    t->up.tcp.data = &t->up;
    t->up.open = true;
    t->connect.data = t;
    t->req = req;
    tr_list_insert_tail(o->list, &t->link);
    int err = uv_tcp_connect(&t->connect, &t->up.tcp, (const struct sockaddr *)&o->upstream->ss,
                             on_connect);
    if (err != 0) {
        connect_failed(t, err);
        return;
    }
    req->user = t;
    req->on_body_end = on_client_gone;
}

void tr_sidecar_tunnels_close(struct tr_list *list)
{
    struct tr_list *l;
    while ((l = tr_list_first(list)) != NULL) {
        struct tr_sidecar_tunnel *t = tr_container_of(l, struct tr_sidecar_tunnel, link);
        if (t->req != NULL) {
            struct tr_http_req *req = t->req;
            t->req = NULL;
            req->user = NULL;
            req->on_body_end = NULL;
            req->resp_close = true;
            tr_sidecar_error(req, 503, "ERR_DIRECT_INVOKE", "the sidecar is shutting down");
        }
        tunnel_close(t);
    }
}
