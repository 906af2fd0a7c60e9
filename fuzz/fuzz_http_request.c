/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the HTTP/1.1 server's connection path: the input goes over a real
 * loopback TCP connection into a tr_http_server, so llhttp, our callbacks, the scratch/
 * backlog buffers, pipelining, 100-continue, limits, streaming backpressure and the
 * close paths all run exactly as in `trellis echo`.
 *
 * Input format: byte 0 picks how the rest is written, so the server sees it in one read
 * or in many:
 *   bit 7 set        everything in one write; with bit 0 also set, the half-close
 *                    goes out before the server runs, so it reads data and EOF together
 *   bit 7 clear      writes of 1 + k + k^3/16 bytes, k = byte0 & 0x3f (1, 2, 3, 5, 9 ...
 *                    up to 15693; at most MAX_PIECES writes), with the loop run between
 *                    writes
 *   bit 6 set        the client reads the responses only after its last write, through
 *                    a small receive buffer, so the server's output backs up (uv_write,
 *                    on_drain, pausing the streaming echo)
 * then the client half-closes and reads until the server closes. Routes: /stream/ echoes
 * as it reads, /early/ answers before the body, /defer/ answers two loop turns later (so
 * pipelined requests wait in the backlog), /buf and /items/:id are buffered. Every input
 * must leave the server with no connection; the loop, listener and router live for the
 * process.
 * Aborts (a finding) if the server sends bytes that do not start a response, does not
 * take the connection, or keeps a connection open after the client has closed it.
 * TRELLIS_FUZZ_VERBOSE=1 copies the server's output to stderr, for reproducers. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "core/addr.h"
#include "core/log.h"
#include "core/mem.h"
#include "http/router.h"
#include "http/server.h"

#define MAX_PIECES 1024
#define MAX_SPINS 20000 /* loop iterations without progress before giving up */

#define MAX_DEFERRED 4

struct fuzz_state {
    uv_loop_t loop;
    struct tr_router router;
    struct tr_http_server srv;
    struct tr_addr addr;
    char fixed[64];
    uv_idle_t defer_idle;                       /* answers deferred requests */
    struct tr_http_req *deferred[MAX_DEFERRED]; /* borrowed; until answered or cancelled */
    int defer_turns[MAX_DEFERRED];              /* loop turns left before the answer */
};

static struct fuzz_state *st;

/* ------------------------------------------------------------------ handlers */

static void on_echo_drain(struct tr_http_req *req)
{
    tr_http_req_resume(req);
}

static void on_echo_body(struct tr_http_req *req, struct tr_slice chunk)
{
    if (tr_http_resp_write(req, chunk, on_echo_drain)) {
        tr_http_req_pause(req);
    }
}

static void on_echo_end(struct tr_http_req *req, bool complete)
{
    if (complete) {
        tr_http_resp_end(req);
    }
}

/* Streaming: the request head back at once, then the body as it arrives (cmd_echo.c). */
static void on_stream(struct tr_http_req *req)
{
    struct tr_buf head;
    tr_buf_init(&head);
    tr_buf_appendf(&head, "%.*s %.*s HTTP/1.%u\r\n", TR_SLICE_FMT(req->method),
                   TR_SLICE_FMT(req->target), req->version_minor);
    for (size_t i = 0; i < req->nheaders; i++) {
        tr_buf_appendf(&head, "%.*s: %.*s\r\n", TR_SLICE_FMT(req->headers[i].name),
                       TR_SLICE_FMT(req->headers[i].value));
    }
    tr_buf_append(&head, "\r\n", 2);
    uint64_t len = UINT64_MAX;
    if (!req->chunked) {
        len = head.len + (req->content_length == UINT64_MAX ? 0 : req->content_length);
    }
    tr_http_resp_start(req, 200, TR_SLICE_LIT("text/plain"), len);
    tr_http_resp_write(req, tr_buf_slice(&head), NULL);
    tr_buf_dispose(&head);
    req->on_body = on_echo_body;
    req->on_body_end = on_echo_end;
}

/* Streaming route that answers before reading the body: the server drops the rest. */
static void on_early(struct tr_http_req *req)
{
    tr_http_resp_header(req, TR_SLICE_LIT("X-Early"), TR_SLICE_LIT("1"));
    tr_http_resp_send(req, 202, TR_SLICE_LIT("text/plain"), TR_SLICE_LIT("early\n"));
}

/* Buffered: the whole body back, plus what the request helpers make of the input. */
static void on_buffered(struct tr_http_req *req)
{
    struct tr_slice q;
    struct tr_buf out;
    tr_buf_init(&out);
    if (tr_http_req_query(req, "q", &q)) {
        tr_buf_appendf(&out, "q=%.*s\n", TR_SLICE_FMT(q));
    }
    struct tr_slice ct = tr_http_req_header(req, TR_SLICE_LIT("content-type"));
    if (ct.ptr != NULL) {
        tr_buf_appendf(&out, "ct=%.*s\n", TR_SLICE_FMT(ct));
    }
    tr_buf_append(&out, tr_buf_data(&req->body), req->body.len);
    tr_http_resp_send(req, 200, TR_SLICE_LIT("application/octet-stream"), tr_buf_slice(&out));
    tr_buf_dispose(&out);
}

static void on_item(struct tr_http_req *req)
{
    struct tr_slice id = tr_http_req_param(req, "id");
    struct tr_slice v;
    bool stale = tr_http_req_query(req, "stale", &v);
    struct tr_buf out;
    tr_buf_init(&out);
    tr_buf_appendf(&out, "{\"id\":\"%.*s\",\"stale\":%s}", TR_SLICE_FMT(id),
                   stale ? "true" : "false");
    tr_http_resp_send(req, 200, TR_SLICE_LIT("application/json"), tr_buf_slice(&out));
    tr_buf_dispose(&out);
}

static void on_defer_idle(uv_idle_t *h)
{
    /* Answering lets the connection parse its next request, which may defer again and
     * restart the idle handle: take this turn's requests out first. */
    struct tr_http_req *turn[MAX_DEFERRED] = {NULL};
    bool waiting = false;
    for (size_t i = 0; i < MAX_DEFERRED; i++) {
        if (st->deferred[i] != NULL && --st->defer_turns[i] <= 0) {
            turn[i] = st->deferred[i];
            st->deferred[i] = NULL;
        }
        waiting = waiting || st->deferred[i] != NULL;
    }
    if (!waiting) {
        uv_idle_stop(h);
    }
    for (size_t i = 0; i < MAX_DEFERRED; i++) {
        struct tr_http_req *req = turn[i];
        if (req == NULL) {
            continue;
        }
        req->on_body_end = NULL;
        struct tr_buf out;
        tr_buf_init(&out);
        tr_buf_appendf(&out, "deferred %zu body bytes\n", req->body.len);
        tr_http_resp_send(req, 200, TR_SLICE_LIT("text/plain"), tr_buf_slice(&out));
        tr_buf_dispose(&out);
    }
}

/* The connection closed before the deferred answer: forget the request. */
static void on_defer_cancel(struct tr_http_req *req, bool complete)
{
    for (size_t i = 0; i < MAX_DEFERRED; i++) {
        if (st->deferred[i] == req) {
            st->deferred[i] = NULL;
        }
    }
}

/* Buffered, answered two loop turns later (like a handler waiting on an upstream), so
 * pipelined requests wait unparsed and more input or EOF can arrive meanwhile. */
static void on_defer(struct tr_http_req *req)
{
    for (size_t i = 0; i < MAX_DEFERRED; i++) {
        if (st->deferred[i] == NULL) {
            st->deferred[i] = req;
            st->defer_turns[i] = 2;
            req->on_body_end = on_defer_cancel;
            uv_idle_start(&st->defer_idle, on_defer_idle);
            return;
        }
    }
    tr_http_resp_send(req, 503, TR_SLICE_NULL, TR_SLICE_NULL);
}

static void on_fixed(struct tr_http_req *req)
{
    tr_http_resp_send(req, 200, TR_SLICE_LIT("text/plain"), tr_slice_cstr(st->fixed));
}

/* ------------------------------------------------------------------ setup */

static void add_route(const char *method, const char *pattern, tr_http_handler_cb *h,
                      unsigned flags)
{
    if (tr_router_add(&st->router, method, pattern, h, NULL, flags) != 0) {
        fprintf(stderr, "fuzz: bad route %s %s\n", method, pattern);
        abort();
    }
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    tr_log_set_level(TR_LOG_LEVEL_ERROR);
    st = tr_xcalloc(1, sizeof(*st));
    snprintf(st->fixed, sizeof(st->fixed), "fixed body\n");
    if (uv_loop_init(&st->loop) != 0) {
        abort();
    }
    uv_idle_init(&st->loop, &st->defer_idle);
    tr_router_init(&st->router);
    add_route("*", "/stream/*rest", on_stream, TR_ROUTE_STREAM);
    add_route("*", "/early/*rest", on_early, TR_ROUTE_STREAM);
    add_route("*", "/defer/*rest", on_defer, TR_ROUTE_BUFFERED);
    add_route("POST", "/buf", on_buffered, TR_ROUTE_BUFFERED);
    add_route("PUT", "/buf", on_buffered, TR_ROUTE_BUFFERED);
    add_route("GET", "/items/:id", on_item, TR_ROUTE_BUFFERED);
    add_route("GET", "/*path", on_fixed, TR_ROUTE_BUFFERED);
    if (tr_addr_parse("127.0.0.1:0", &st->addr) != 0) {
        abort();
    }
    int fd = tr_listen_socket(&st->addr, 128);
    if (fd < 0) {
        fprintf(stderr, "fuzz: listen: %s\n", strerror(-fd));
        abort();
    }
    /* Accepted sockets inherit this: a small, fixed send buffer (loopback would otherwise
     * take megabytes) lets a slow reader back the server's output up into uv_write. */
    int sndbuf = 4096;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    /* Small limits, so that inputs of a few KiB reach every 413/431 path and the echo
     * route's backpressure; timeouts stay long so that a run is deterministic. */
    struct tr_http_limits limits;
    tr_http_limits_default(&limits);
    limits.max_header_bytes = 2048;
    limits.max_headers = 16;
    limits.max_body_bytes = 8192;
    limits.output_high_water = 4096;
    if (tr_http_server_init(&st->srv, &st->loop, fd, &st->router, &limits) != 0) {
        abort();
    }
}

/* ------------------------------------------------------------------ one input */

struct client {
    int fd;
    bool verbose;          /* TRELLIS_FUZZ_VERBOSE: copy the responses to stderr */
    bool closed_by_server; /* EOF or reset seen */
    size_t received;
    char first[9]; /* the first bytes of the response stream */
};

static void pump(void)
{
    uv_run(&st->loop, UV_RUN_NOWAIT);
}

/* Reads whatever the server sent. Returns true if anything happened. */
static bool client_read(struct client *c)
{
    bool progress = false;
    char buf[16384];
    while (!c->closed_by_server) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n > 0) {
            if (c->received < sizeof(c->first)) {
                size_t k = sizeof(c->first) - c->received;
                memcpy(c->first + c->received, buf, (size_t)n < k ? (size_t)n : k);
            }
            c->received += (size_t)n;
            if (c->verbose) {
                fwrite(buf, 1, (size_t)n, stderr);
            }
            progress = true;
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (n == -1 && errno == EINTR) {
            continue;
        }
        c->closed_by_server = true; /* 0 = EOF, or ECONNRESET */
        progress = true;
    }
    return progress;
}

/* Writes all of `p`, running the server and reading its output while the socket is
 * full. Returns false if the server stopped taking bytes (closed, or stuck). */
static bool client_write(struct client *c, const uint8_t *p, size_t len, bool read_now,
                         bool eof_now)
{
    int spins = 0;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            spins = 0;
            continue;
        }
        if (n == -1 && errno == EINTR) {
            continue;
        }
        if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK) {
            return false;
        }
        /* The kernel buffers are full: let the server read and drain its output. */
        pump();
        client_read(c);
        if (c->closed_by_server || ++spins > MAX_SPINS) {
            return false;
        }
    }
    if (eof_now) {
        shutdown(c->fd, SHUT_WR);
    }
    pump();
    if (read_now) {
        client_read(c);
    }
    return true;
}

static int client_connect(struct client *c, bool small_rcvbuf)
{
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd == -1) {
        return -errno;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (small_rcvbuf) {
        /* Before connect, so the window is small from the start (the kernel rounds up). */
        int size = 1024;
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    }
    if (connect(c->fd, (struct sockaddr *)&st->addr.ss, st->addr.len) == -1 &&
        errno != EINPROGRESS) {
        int err = -errno;
        close(c->fd);
        return err;
    }
    return 0;
}

/* Runs the loop until the server has no connection left. */
static void settle(void)
{
    for (int i = 0; i < MAX_SPINS && st->srv.nconns > 0; i++) {
        pump();
    }
    if (st->srv.nconns > 0) {
        /* A connection outlived its closed peer with nothing left to read or write:
         * it would hold its memory until a timeout, if one is armed. */
        fprintf(stderr, "fuzz: %zu connection(s) still open after the client closed\n",
                st->srv.nconns);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (st == NULL) {
        setup();
    }
    if (size == 0) {
        return 0;
    }
    uint8_t mode = data[0];
    const uint8_t *p = data + 1;
    size_t len = size - 1;
    size_t piece = len;
    bool read_late = (mode & 0x40) != 0;
    bool eof_with_data = (mode & 0x81) == 0x81 && len > 0;
    if (!(mode & 0x80)) {
        size_t k = mode & 0x3f;
        piece = 1 + k + k * k * k / 16;
        if (len / piece >= MAX_PIECES) {
            piece = len / MAX_PIECES + 1;
        }
    }

    struct client c;
    if (client_connect(&c, read_late) != 0) {
        abort();
    }
    c.verbose = getenv("TRELLIS_FUZZ_VERBOSE") != NULL;
    if (c.verbose) {
        fprintf(stderr, "\n--- input of %zu bytes, mode 0x%02x\n", size, mode);
    }
    uint64_t accepted = st->srv.accepted;
    for (int i = 0; i < MAX_SPINS && st->srv.accepted == accepted; i++) {
        pump();
    }
    if (st->srv.accepted == accepted) {
        fprintf(stderr, "fuzz: the server did not accept the connection\n");
        abort();
    }

    bool ok = true;
    for (size_t off = 0; ok && off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        ok = client_write(&c, p + off, n, !read_late, eof_with_data && off + n == len);
    }
    if (ok && !eof_with_data) {
        shutdown(c.fd, SHUT_WR);
    }
    /* After the half-close the server must answer what it has and close. */
    int idle = 0;
    while (!c.closed_by_server && idle < MAX_SPINS) {
        pump();
        idle = client_read(&c) ? 0 : idle + 1;
    }
    if (c.received > 0 && memcmp(c.first, "HTTP/1.1 ", c.received < 9 ? c.received : 9) != 0) {
        fprintf(stderr, "fuzz: the server sent something that is not a response: %.9s\n", c.first);
        abort();
    }
    close(c.fd);
    settle();
    return 0;
}
