/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the proxy's request path: raw client bytes go over a real loopback
 * connection into the proxy's HTTP server (tr_proxy_forward on one in-process worker, set
 * up as `trellis proxy` does), through routing (prefix, methods, headers, splits), header
 * rewriting, body buffering or streaming, balancing, retries, the HTTP client and its
 * pools, to an in-process recording upstream; responses come back the same way.
 *
 * Input: byte 0 picks how the client bytes are written (as in fuzz_http_request.c:
 * bit 7 whole, with bit 0 the FIN goes with them; else pieces of 1 + k + k^3/16 bytes,
 * k = bits 0-5; bit 6 a slow reader). Byte 1: bit 0 lowers the proxy's body buffering
 * limit from 64 KiB to 256 bytes, so that streamed bodies are reachable with small
 * inputs; the rest seeds the balancers. Then the client bytes, optionally followed by
 * UPSTREAM_SEP and the bytes the upstream answers requests for /raw... with (then it
 * closes the connection), to fuzz the response side too. Other targets the upstream
 * sees pick its answer by what they contain: /s503, /chunked, /nobody (204), /big
 * (16,000 bytes, to pause the upstream behind a slow reader), /defer (three loop turns
 * later), /close (then it closes, without "Connection: close"); anything else gets 200
 * naming the method, target and body length. The gateway config is config_fmt below.
 *
 * The upstream parses what the proxy sends with a strict parser of its own and aborts
 * (a finding) on anything that is not a well-formed HTTP/1.1 request as a proxy must
 * send it: bare CR/LF, bad request line, a framing header twice or both, chunk syntax,
 * a hop-by-hop header the proxy should have removed, no or two Host fields, or the
 * proxy's Via, X-Forwarded-For or X-Request-Id missing. Per input it also aborts if the
 * upstream got more requests than the proxy's HTTP client sent (smuggling), if the
 * client gets bytes that are not a response, or if a connection or an exchange outlives
 * the client. Waits are in wall time (QUIET_MS without progress), since retry backoffs
 * and TCP's zero-window probes take real time. TRELLIS_FUZZ_VERBOSE=1 prints both
 * sides. */
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
#include "core/buf.h"
#include "core/log.h"
#include "core/mem.h"
#include "http/client.h"
#include "http/router.h"
#include "http/server.h"
#include "proxy/config.h"
#include "proxy/forward.h"
#include "proxy/proxy.h"
#include "proxy/worker.h"

#define MAX_PIECES 1024
#define SPINS 1000    /* busy loop turns before waiting in 1 ms steps */
#define QUIET_MS 3000 /* wall time without progress after which a wait gives up */
#define UPSTREAM_SEP "\n--upstream--\n"
#define MAX_UP_HEAD 65536
#define BIG_BODY 16000 /* the upstream's answer for paths containing /big */

struct up_conn {
    uv_tcp_t tcp;
    struct tr_buf in;
    struct up_conn *next; /* in st->up_conns */
    int defer_turns;      /* > 0: a deferred answer is in `deferred` */
    struct tr_buf deferred;
    bool closing;
};

struct up_write {
    uv_write_t w;
    size_t len;
    char data[];
};

struct fuzz_state {
    uv_loop_t loop;
    /* the upstream: two listeners (a ring_hash cluster needs two endpoints) */
    uv_tcp_t up_listen[2];
    int up_port[2];
    int dead_fd; /* bound, never listening: connections to it are refused */
    int dead_port;
    struct up_conn *up_conns;
    uv_idle_t up_idle;
    uint64_t up_requests; /* complete requests the upstream parsed */
    struct tr_slice raw;  /* this input's answer for /raw... */
    /* the proxy */
    struct tr_proxy px;
    struct tr_proxy_worker *pw;
    struct tr_router router;
    struct tr_addr addr;
    bool verbose;
};

static struct fuzz_state *st;

static void on_up_idle(uv_idle_t *h);

/* ------------------------------------------------------------------ the upstream */

struct up_req {
    struct tr_slice method;
    struct tr_slice target;
    size_t body_len;
};

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool token(struct tr_slice s)
{
    for (size_t i = 0; i < s.len; i++) {
        if (!is_tchar((unsigned char)s.ptr[i])) {
            return false;
        }
    }
    return s.len > 0;
}

static bool ends_with(struct tr_slice s, const char *suffix)
{
    size_t n = strlen(suffix);
    return s.len >= n && memcmp(s.ptr + s.len - n, suffix, n) == 0;
}

static void malformed(const char *why, const char *p, size_t len)
{
    fprintf(stderr, "fuzz: the proxy sent a malformed request (%s):\n%.*s\n", why,
            (int)(len > 2000 ? 2000 : len), p);
    abort();
}

/* What a header line means to the checks below. */
struct up_fields {
    int host;
    int content_length;
    int chunked;
    int via;
    int xff;
    int request_id;
    uint64_t length;
};

static void check_field(struct tr_slice name, struct tr_slice value, struct up_fields *f,
                        const char *p, size_t len)
{
    static const char *const hop[] = {"connection", "keep-alive", "proxy-connection",    "te",
                                      "upgrade",    "trailer",    "proxy-authorization", "expect"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
        if (tr_slice_caseeq(name, tr_slice_cstr(hop[i]))) {
            malformed("hop-by-hop field passed on", p, len);
        }
    }
    for (size_t i = 0; i < value.len; i++) {
        unsigned char c = (unsigned char)value.ptr[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            malformed("control character in a field value", p, len);
        }
    }
    if (tr_slice_caseeq(name, TR_SLICE_LIT("host"))) {
        f->host++;
    } else if (tr_slice_caseeq(name, TR_SLICE_LIT("content-length"))) {
        f->content_length++;
        f->length = 0;
        for (size_t i = 0; i < value.len; i++) {
            if (value.ptr[i] < '0' || value.ptr[i] > '9' || i >= 15) {
                malformed("Content-Length value", p, len);
            }
            f->length = f->length * 10 + (uint64_t)(value.ptr[i] - '0');
        }
        if (value.len == 0) {
            malformed("empty Content-Length", p, len);
        }
    } else if (tr_slice_caseeq(name, TR_SLICE_LIT("transfer-encoding"))) {
        if (!tr_slice_eq(value, TR_SLICE_LIT("chunked"))) {
            malformed("Transfer-Encoding other than chunked", p, len);
        }
        f->chunked++;
    } else if (tr_slice_caseeq(name, TR_SLICE_LIT("via"))) {
        f->via++;
        if (!ends_with(value, "1.1 trellis") && !ends_with(value, "1.0 trellis")) {
            malformed("Via does not end with the proxy", p, len);
        }
    } else if (tr_slice_caseeq(name, TR_SLICE_LIT("x-forwarded-for"))) {
        f->xff++;
        if (!ends_with(value, "127.0.0.1")) {
            malformed("X-Forwarded-For does not end with the client", p, len);
        }
    } else if (tr_slice_caseeq(name, TR_SLICE_LIT("x-request-id"))) {
        f->request_id++;
    }
}

/* The chunked body at `p` (after the head): its end offset, 0 if incomplete. The proxy's
 * client writes bare sizes, no extensions, no trailers. */
static size_t chunked_end(const char *p, size_t len, size_t *body_len, const char *all,
                          size_t all_len)
{
    size_t off = 0;
    *body_len = 0;
    for (;;) {
        size_t start = off;
        uint64_t size = 0;
        while (off < len && off - start < 16 &&
               ((p[off] >= '0' && p[off] <= '9') || (p[off] >= 'a' && p[off] <= 'f') ||
                (p[off] >= 'A' && p[off] <= 'F'))) {
            char c = p[off++];
            size = size * 16 + (uint64_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        }
        if (off + 2 > len) {
            return 0;
        }
        if (off == start || p[off] != '\r' || p[off + 1] != '\n') {
            malformed("chunk size line", all, all_len);
        }
        off += 2;
        if (size == 0) {
            if (off + 2 > len) {
                return 0;
            }
            if (p[off] != '\r' || p[off + 1] != '\n') {
                malformed("trailer section", all, all_len);
            }
            return off + 2;
        }
        if (off + size + 2 > len) {
            return 0;
        }
        if (p[off + size] != '\r' || p[off + size + 1] != '\n') {
            malformed("chunk data not followed by CRLF", all, all_len);
        }
        off += size + 2;
        *body_len += size;
    }
}

/* Strict parse of one request at `p`: bytes consumed, or 0 when more is needed. Aborts
 * on anything malformed. */
static size_t up_parse(const char *p, size_t len, struct up_req *out)
{
    const char *end = NULL;
    for (size_t i = 0; i + 3 < len; i++) {
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') {
            end = p + i;
            break;
        }
    }
    if (end == NULL) {
        if (len > MAX_UP_HEAD) {
            malformed("head over 64 KiB", p, len);
        }
        return 0;
    }
    size_t head_len = (size_t)(end - p);
    for (size_t i = 0; i < head_len; i++) {
        bool crlf = p[i] == '\r' && i + 1 < head_len && p[i + 1] == '\n';
        bool lf_of_crlf = p[i] == '\n' && i > 0 && p[i - 1] == '\r';
        if ((p[i] == '\r' && !crlf) || (p[i] == '\n' && !lf_of_crlf)) {
            malformed("bare CR or LF in the head", p, len);
        }
    }
    /* request line */
    const char *line_end = memchr(p, '\r', head_len + 1);
    const char *sp1 = memchr(p, ' ', (size_t)(line_end - p));
    const char *sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
    if (sp1 == NULL || sp2 == NULL) {
        malformed("request line", p, len);
    }
    out->method = tr_slice(p, (size_t)(sp1 - p));
    out->target = tr_slice(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    struct tr_slice version = tr_slice(sp2 + 1, (size_t)(line_end - sp2 - 1));
    if (!token(out->method) || out->target.len == 0 ||
        !tr_slice_eq(version, TR_SLICE_LIT("HTTP/1.1"))) {
        malformed("request line", p, len);
    }
    for (size_t i = 0; i < out->target.len; i++) {
        unsigned char c = (unsigned char)out->target.ptr[i];
        if (c <= 0x20 || c == 0x7f) {
            malformed("request-target", p, len);
        }
    }
    /* header lines */
    struct up_fields f = {0};
    const char *q = line_end + 2;
    while (q < end) {
        const char *eol = memchr(q, '\r', (size_t)(end - q) + 1);
        const char *colon = memchr(q, ':', (size_t)(eol - q));
        if (colon == NULL || !token(tr_slice(q, (size_t)(colon - q)))) {
            malformed("header line", p, len);
        }
        const char *v = colon + 1;
        const char *v_end = eol;
        while (v < v_end && (*v == ' ' || *v == '\t')) {
            v++;
        }
        while (v_end > v && (v_end[-1] == ' ' || v_end[-1] == '\t')) {
            v_end--;
        }
        check_field(tr_slice(q, (size_t)(colon - q)), tr_slice(v, (size_t)(v_end - v)), &f, p, len);
        q = eol + 2;
    }
    if (f.host != 1 || f.via != 1 || f.xff != 1 || f.request_id == 0) {
        malformed("one Host, Via and X-Forwarded-For, an X-Request-Id", p, len);
    }
    if (f.content_length > 1 || f.chunked > 1 || (f.content_length && f.chunked)) {
        malformed("framing headers", p, len);
    }
    size_t body_off = head_len + 4;
    if (f.chunked) {
        size_t n = chunked_end(p + body_off, len - body_off, &out->body_len, p, len);
        return n == 0 ? 0 : body_off + n;
    }
    out->body_len = f.content_length ? f.length : 0;
    if (len - body_off < out->body_len) {
        return 0;
    }
    return body_off + out->body_len;
}

static void on_up_written(uv_write_t *w, int status)
{
    (void)status;
    struct up_write *uw = tr_container_of(w, struct up_write, w);
    tr_free_null(&uw);
}

static void up_send(struct up_conn *c, const char *p, size_t len)
{
    if (len == 0 || c->closing) {
        return;
    }
    struct up_write *uw = tr_xmalloc(sizeof(*uw) + len);
    uw->len = len;
    memcpy(uw->data, p, len);
    uv_buf_t b = uv_buf_init(uw->data, (unsigned)len);
    if (uv_write(&uw->w, (uv_stream_t *)&c->tcp, &b, 1, on_up_written) != 0) {
        tr_free_null(&uw);
    }
}

static void on_up_closed(uv_handle_t *h)
{
    struct up_conn *c = h->data;
    for (struct up_conn **pp = &st->up_conns; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    tr_buf_dispose(&c->in);
    tr_buf_dispose(&c->deferred);
    tr_free_null(&c);
}

/* Closes after what was written (libuv writes in order, and uv_close lets queued writes
 * fail, so shut the write side down first). */
static void on_up_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    uv_handle_t *h = (uv_handle_t *)req->handle;
    tr_free_null(&req);
    if (!uv_is_closing(h)) {
        uv_close(h, on_up_closed);
    }
}

static void up_close(struct up_conn *c, bool after_writes)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (after_writes) {
        uv_shutdown_t *req = tr_xmalloc(sizeof(*req));
        if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_up_shutdown) == 0) {
            return;
        }
        tr_free_null(&req);
    }
    uv_close((uv_handle_t *)&c->tcp, on_up_closed);
}

static bool path_has(struct tr_slice target, const char *what)
{
    size_t n = strlen(what);
    for (size_t i = 0; i + n <= target.len; i++) {
        if (memcmp(target.ptr + i, what, n) == 0) {
            return true;
        }
    }
    return false;
}

/* The upstream's answer, chosen by what the target contains. */
static void up_respond(struct up_conn *c, const struct up_req *r)
{
    bool head = tr_slice_eq(r->method, TR_SLICE_LIT("HEAD"));
    struct tr_buf out;
    tr_buf_init(&out);
    if (tr_slice_starts_with(r->target, TR_SLICE_LIT("/raw"))) {
        up_send(c, st->raw.ptr, st->raw.len);
        up_close(c, true);
        tr_buf_dispose(&out);
        return;
    }
    if (path_has(r->target, "/s503")) {
        tr_buf_appendf(&out, "HTTP/1.1 503 Busy\r\nContent-Length: 5\r\n\r\n%s",
                       head ? "" : "busy\n");
    } else if (path_has(r->target, "/chunked")) {
        tr_buf_appendf(&out, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s",
                       head ? "" : "5\r\nhello\r\n7;x=1\r\n, world\r\n0\r\nX-T: 1\r\n\r\n");
    } else if (path_has(r->target, "/nobody")) {
        tr_buf_appendf(&out, "HTTP/1.1 204 No Content\r\nX-Up: 1\r\n\r\n");
    } else if (path_has(r->target, "/big")) {
        /* More than the proxy's 4 KiB output high-water mark and what a slow reader's
         * socket buffers take: the upstream request gets paused. */
        tr_buf_appendf(&out, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", BIG_BODY);
        if (!head) {
            memset(tr_buf_reserve(&out, BIG_BODY), 'b', BIG_BODY);
            tr_buf_commit(&out, BIG_BODY);
        }
    } else {
        char body[160];
        int n =
            snprintf(body, sizeof(body), "%.*s %.*s %zu\n", TR_SLICE_FMT(r->method),
                     (int)(r->target.len > 100 ? 100 : r->target.len), r->target.ptr, r->body_len);
        tr_buf_appendf(&out, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Up: 1\r\n\r\n%s", n,
                       head ? "" : body);
    }
    if (path_has(r->target, "/defer")) {
        c->defer_turns = 3; /* answered from the idle handle */
        tr_buf_append_slice(&c->deferred, tr_buf_slice(&out));
        uv_idle_start(&st->up_idle, on_up_idle);
    } else {
        up_send(c, tr_buf_data(&out), out.len);
        if (path_has(r->target, "/close")) {
            up_close(c, true); /* without "Connection: close": the pool finds out later */
        }
    }
    tr_buf_dispose(&out);
}

static void up_process(struct up_conn *c)
{
    while (!c->closing && c->defer_turns == 0 && c->in.len > 0) {
        struct up_req r;
        size_t n = up_parse(tr_buf_data(&c->in), c->in.len, &r);
        if (n == 0) {
            return;
        }
        st->up_requests++;
        if (st->verbose) {
            fprintf(stderr, "--- upstream got:\n%.*s\n", (int)n, tr_buf_data(&c->in));
        }
        up_respond(c, &r);
        tr_buf_consume(&c->in, n);
    }
}

static void on_up_idle(uv_idle_t *h)
{
    bool waiting = false;
    for (struct up_conn *c = st->up_conns; c != NULL; c = c->next) {
        if (c->defer_turns > 0 && --c->defer_turns == 0) {
            up_send(c, tr_buf_data(&c->deferred), c->deferred.len);
            tr_buf_reset(&c->deferred);
            up_process(c);
        }
        waiting = waiting || c->defer_turns > 0;
    }
    if (!waiting) {
        uv_idle_stop(h);
    }
}

static void up_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    static char buf[65536];
    (void)h;
    (void)suggested;
    *b = uv_buf_init(buf, sizeof(buf));
}

static void on_up_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct up_conn *c = s->data;
    if (n < 0) {
        up_close(c, false);
        return;
    }
    tr_buf_append(&c->in, b->base, (size_t)n);
    up_process(c);
}

static void on_up_connection(uv_stream_t *server, int status)
{
    if (status != 0) {
        return;
    }
    struct up_conn *c = tr_xcalloc(1, sizeof(*c));
    tr_buf_init(&c->in);
    tr_buf_init(&c->deferred);
    uv_tcp_init(&st->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_up_closed);
        c->closing = true;
        c->next = st->up_conns;
        st->up_conns = c;
        return;
    }
    c->next = st->up_conns;
    st->up_conns = c;
    uv_read_start((uv_stream_t *)&c->tcp, up_alloc, on_up_read);
}

static int up_listen(uv_tcp_t *t)
{
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_init(&st->loop, t);
    if (uv_tcp_bind(t, (const struct sockaddr *)&sa, 0) != 0 ||
        uv_listen((uv_stream_t *)t, 128, on_up_connection) != 0) {
        abort();
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* ------------------------------------------------------------------ the proxy */

static const char config_fmt[] =
    "clusters:\n"
    "  - {name: up, endpoints: [127.0.0.1:%1$d]}\n"
    "  - name: both\n"
    "    lb: least_request\n"
    "    endpoints: [127.0.0.1:%3$d, {address: 127.0.0.1:%1$d, weight: 2}]\n"
    "  - name: retry\n"
    "    endpoints: [127.0.0.1:%1$d, 127.0.0.1:%2$d]\n"
    "    retry: {attempts: 2, on: [503, reset, gateway_error], per_try_timeout: 30s, "
    "idempotency_header: Idempotency-Key}\n"
    "  - {name: hash, lb: ring_hash, hash_on: 'header:x-user', "
    "endpoints: [127.0.0.1:%1$d, 127.0.0.1:%2$d]}\n"
    "  - {name: cookie, lb: ring_hash, hash_on: 'cookie:sid', "
    "endpoints: [127.0.0.1:%1$d, 127.0.0.1:%2$d]}\n"
    "  - {name: rnd, lb: random, endpoints: [127.0.0.1:%1$d, {address: 127.0.0.1:%2$d, weight: "
    "5}]}\n"
    "  - {name: gone, endpoints: [127.0.0.1:%3$d], retry: {attempts: 0}}\n"
    "  - {name: raw, endpoints: [127.0.0.1:%1$d], retry: {attempts: 0}}\n"
    "routes:\n"
    "  - {match: {prefix: /raw}, cluster: raw}\n"
    "  - match: {prefix: /api, methods: [GET, HEAD, POST, PUT]}\n"
    "    cluster: up\n"
    "    rewrite: {prefix: /v2}\n"
    "  - {match: {prefix: /canary, headers: {x-canary: '1'}}, cluster: hash}\n"
    "  - {match: {prefix: /canary}, cluster: cookie}\n"
    "  - match: {prefix: /split}\n"
    "    split: [{cluster: up, weight: 1}, {cluster: both, weight: 1}, {cluster: rnd, weight: 2}]\n"
    "  - {match: {prefix: /retry}, cluster: retry}\n"
    "  - {match: {prefix: /gone}, cluster: gone}\n"
    "  - {match: {prefix: /strip/}, cluster: up, rewrite: {prefix: /}}\n"
    "  - {match: {prefix: /, methods: [DELETE, OPTIONS, PATCH, TRACE]}, cluster: rnd}\n"
    "  - {match: {prefix: /}, cluster: both}\n";

static void setup_upstream(void)
{
    uv_idle_init(&st->loop, &st->up_idle);
    st->up_port[0] = up_listen(&st->up_listen[0]);
    st->up_port[1] = up_listen(&st->up_listen[1]);
    /* A port that is bound but not listening refuses connections, and stays ours. */
    struct tr_addr dead;
    if (tr_addr_parse("127.0.0.1:0", &dead) != 0) {
        abort();
    }
    st->dead_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (st->dead_fd == -1 || bind(st->dead_fd, (struct sockaddr *)&dead.ss, dead.len) == -1) {
        abort();
    }
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    getsockname(st->dead_fd, (struct sockaddr *)&sa, &len);
    st->dead_port = ntohs(sa.sin_port);
}

static void setup_proxy(void)
{
    struct tr_proxy *px = &st->px;
    px->nworkers = 1;
    px->admin_fd = -1;
    px->workers = tr_xcalloc(1, sizeof(*px->workers));
    px->next = tr_xcalloc(1, sizeof(*px->next));
    tr_proxy_stats_set_init(&px->stats, 1);
    tr_proxy_guard_set_init(&px->guards, 1);
    char yaml[sizeof(config_fmt) + 256];
    int n = snprintf(yaml, sizeof(yaml), config_fmt, st->up_port[0], st->up_port[1], st->dead_port);
    struct tr_proxy_config *cfg;
    struct tr_conf_err err;
    if (tr_proxy_config_parse("fuzz-gateway.yaml", yaml, (size_t)n, 1, &cfg, &err) != 0) {
        fprintf(stderr, "fuzz: bad gateway config: %s\n", err.msg);
        abort();
    }
    tr_proxy_attach(px, cfg);
    px->cfg = cfg;
    tr_proxy_config_ref(cfg);
    atomic_store(&px->next[0], cfg); /* the worker takes this reference */

    struct tr_proxy_worker *pw = &px->workers[0];
    st->pw = pw;
    pw->proxy = px;
    pw->id = 0;
    if (tr_proxy_worker_init(pw, &st->loop) != 0) {
        abort();
    }
    tr_router_init(&st->router);
    if (tr_router_add(&st->router, "*", "/*path", tr_proxy_forward, NULL, TR_ROUTE_STREAM) != 0) {
        abort();
    }
    if (tr_addr_parse("127.0.0.1:0", &st->addr) != 0) {
        abort();
    }
    int fd = tr_listen_socket(&st->addr, 128);
    if (fd < 0) {
        abort();
    }
    /* Accepted sockets inherit a small send buffer, so a slow reader backs the proxy's
     * output up and upstream reads get paused. */
    int sndbuf = 4096;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    struct tr_http_limits limits;
    tr_http_limits_default(&limits);
    limits.max_header_bytes = 2048;
    limits.max_headers = 16;
    limits.max_body_bytes = 16384;
    limits.output_high_water = 4096;
    if (tr_http_server_init(&pw->srv, &st->loop, fd, &st->router, &limits) != 0) {
        abort();
    }
    pw->srv.name = "proxy";
    pw->srv.data = px;
    pw->srv.worker_data = pw;
    pw->srv_live = true;
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    tr_log_set_level(TR_LOG_LEVEL_ERROR);
    st = tr_xcalloc(1, sizeof(*st));
    st->verbose = getenv("TRELLIS_FUZZ_VERBOSE") != NULL;
    if (uv_loop_init(&st->loop) != 0) {
        abort();
    }
    setup_upstream();
    setup_proxy();
}

/* ------------------------------------------------------------------ the client */

struct client {
    int fd;
    bool closed_by_server;
    size_t received;
    char first[9];
};

static void pump(void)
{
    uv_run(&st->loop, UV_RUN_NOWAIT);
}

/* Waiting without progress: busy for SPINS turns, then in 1 ms sleeps, since some
 * progress takes wall time (a retry's backoff; TCP's zero-window probes, 200 ms and more,
 * when a slow reader's tiny window reopens). Returns false once QUIET_MS have passed. */
struct quiet {
    int spins;
    uint64_t since_ms;
};

static void quiet_reset(struct quiet *q)
{
    q->spins = 0;
    q->since_ms = uv_hrtime() / 1000000;
}

static bool quiet_wait(struct quiet *q)
{
    if (++q->spins < SPINS) {
        return true;
    }
    if (uv_hrtime() / 1000000 - q->since_ms > QUIET_MS) {
        return false;
    }
    usleep(1000);
    return true;
}

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
            if (st->verbose) {
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
        c->closed_by_server = true;
        progress = true;
    }
    return progress;
}

static bool client_write(struct client *c, const uint8_t *p, size_t len, bool read_now,
                         bool eof_now)
{
    struct quiet q;
    quiet_reset(&q);
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            quiet_reset(&q);
            continue;
        }
        if (n == -1 && errno == EINTR) {
            continue;
        }
        if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK) {
            return false;
        }
        /* The kernel buffers are full: let the proxy read, and drain its output. */
        pump();
        if (client_read(c)) {
            quiet_reset(&q);
        }
        if (c->closed_by_server || !quiet_wait(&q)) {
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

static void client_connect(struct client *c, bool small_rcvbuf)
{
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd == -1) {
        abort();
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (small_rcvbuf) {
        /* Before connect, so the window is small from the start. Not smaller: on loopback
         * a 1 KiB buffer advertises windows of a few hundred bytes, each reopened only by
         * a 200 ms zero-window probe, which makes a 16 KB response take seconds. */
        int size = 4096;
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    }
    if (connect(c->fd, (struct sockaddr *)&st->addr.ss, st->addr.len) == -1 &&
        errno != EINPROGRESS) {
        abort();
    }
}

/* Runs the loop until the proxy has no client connection and no exchange left. */
static void settle(void)
{
    struct tr_proxy_worker *pw = st->pw;
    struct quiet q;
    quiet_reset(&q);
    while ((pw->srv.nconns > 0 || pw->active > 0) && quiet_wait(&q)) {
        pump();
    }
    if (pw->srv.nconns > 0 || pw->active > 0) {
        fprintf(stderr, "fuzz: %zu connection(s), %llu exchange(s) left after the client closed\n",
                pw->srv.nconns, (unsigned long long)pw->active);
        abort();
    }
    if (pw->gen->users != 1) {
        fprintf(stderr, "fuzz: the generation still has %u users\n", pw->gen->users);
        abort();
    }
}

static const uint8_t *find_sep(const uint8_t *p, size_t len)
{
    size_t n = sizeof(UPSTREAM_SEP) - 1;
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(p + i, UPSTREAM_SEP, n) == 0) {
            return p + i;
        }
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (st == NULL) {
        setup();
    }
    if (size < 2) {
        return 0;
    }
    uint8_t mode = data[0];
    uint8_t opts = data[1];
    const uint8_t *p = data + 2;
    size_t len = size - 2;
    const uint8_t *sep = find_sep(p, len);
    st->raw = TR_SLICE_NULL;
    if (sep != NULL) {
        const uint8_t *raw = sep + sizeof(UPSTREAM_SEP) - 1;
        st->raw = tr_slice((const char *)raw, (size_t)(p + len - raw));
        len = (size_t)(sep - p);
    }
    struct tr_proxy_worker *pw = st->pw;
    pw->body_buffer_max = (opts & 1) ? 256 : TR_PROXY_BODY_BUFFER_MAX;
    pw->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)opts << 17) ^ 1;

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
    struct tr_http_client_stats before;
    tr_http_client_get_stats(pw->client, &before);
    uint64_t up_before = st->up_requests;

    struct client c;
    client_connect(&c, read_late);
    uint64_t accepted = pw->srv.accepted;
    struct quiet q;
    quiet_reset(&q);
    while (pw->srv.accepted == accepted && quiet_wait(&q)) {
        pump();
    }
    if (pw->srv.accepted == accepted) {
        fprintf(stderr, "fuzz: the proxy did not accept the connection\n");
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
    /* After the half-close the proxy must answer what it has and close. */
    quiet_reset(&q);
    while (!c.closed_by_server && quiet_wait(&q)) {
        pump();
        if (client_read(&c)) {
            quiet_reset(&q);
        }
    }
    if (c.received > 0 && memcmp(c.first, "HTTP/1.1 ", c.received < 9 ? c.received : 9) != 0) {
        fprintf(stderr, "fuzz: the proxy sent something that is not a response: %.9s\n", c.first);
        abort();
    }
    close(c.fd);
    settle();
    /* Every request the upstream parsed was sent by the proxy's HTTP client: as a request
     * of its own or as its one replay on a fresh connection. More means the upstream read
     * a request the proxy did not send: smuggling. */
    struct tr_http_client_stats after;
    tr_http_client_get_stats(pw->client, &after);
    uint64_t sent = (after.requests - before.requests) + (after.retries - before.retries);
    for (int i = 0; i < 100; i++) {
        pump(); /* the upstream may still be reading what the proxy sent last */
    }
    if (st->up_requests - up_before > sent) {
        fprintf(stderr, "fuzz: the upstream parsed %llu requests, the proxy sent %llu\n",
                (unsigned long long)(st->up_requests - up_before), (unsigned long long)sent);
        abort();
    }
    return 0;
}
