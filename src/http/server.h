/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP/1.1 server engine: one struct tr_http_server per worker loop, accepting on
 * that worker's SO_REUSEPORT socket. Each connection parses with llhttp (strict) and has
 * at most one request in flight; pipelined requests wait, unparsed, in its input buffer,
 * which is what keeps responses in order without a queue. Responses are built in the
 * connection's output buffer and flushed once per read batch (try_write first). */
#ifndef TR_HTTP_SERVER_H
#define TR_HTTP_SERVER_H

#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/errors.h"
#include "core/list.h"
#include "core/log.h"
#include "core/timeq.h"
#include "http/router.h"

/* Limits and timeouts, each a named knob (config key / CLI flag in parentheses). */
struct tr_http_limits {
    size_t max_header_bytes;     /* request line + headers (max_header_bytes) -> 431 */
    size_t max_headers;          /* header count (max_headers) -> 431 */
    uint64_t max_body_bytes;     /* (max_body_bytes) -> 413 */
    uint64_t header_timeout_ms;  /* first byte to end of headers (header_timeout) -> 408 */
    uint64_t body_timeout_ms;    /* between two body reads (body_timeout) -> 408 */
    uint64_t idle_timeout_ms;    /* keep-alive idle between requests (idle_timeout) */
    uint64_t write_timeout_ms;   /* client not reading our output (write_timeout) */
    size_t max_connections;      /* per worker (max_connections); extra ones are closed */
    size_t output_high_water;    /* pending output above which producers are paused */
};

void tr_http_limits_default(struct tr_http_limits *l);

struct tr_http_header {
    struct tr_slice name;
    struct tr_slice value;
};

struct tr_http_conn;
struct tr_http_req;
struct tr_http_server;
struct tr_http_spare;

/* Streaming request body: called with each piece as it is parsed. The bytes are only
 * valid during the call. */
typedef void tr_http_body_cb(struct tr_http_req *req, struct tr_slice chunk);
/* Streaming request body finished. complete = false when the client went away or the
 * body was malformed part way (the server then answers the error itself unless the
 * handler had started a response); the handler must not touch `req` afterwards. */
typedef void tr_http_body_end_cb(struct tr_http_req *req, bool complete);
/* The connection can take more output (see tr_http_resp_write). */
typedef void tr_http_drain_cb(struct tr_http_req *req);

struct tr_http_req {
    struct tr_http_conn *conn;
    struct tr_http_server *server;
    struct tr_arena arena;          /* request-scoped; reset when the request ends */
    uint64_t id;                    /* unique per process */
    struct tr_log_ctx log;          /* conn id, request id, peer */

    /* Request head: all slices stay valid until the response has ended. */
    struct tr_slice method;
    uint8_t method_id;              /* llhttp_method_t */
    struct tr_slice target;         /* raw request-target */
    struct tr_slice path;           /* target without the query */
    struct tr_slice query;          /* after '?', without it; empty if none */
    uint8_t version_minor;          /* HTTP/1.x */
    struct tr_http_header *headers; /* in request arena */
    size_t nheaders;
    uint64_t content_length;        /* UINT64_MAX when not given */
    bool chunked;
    bool keep_alive;                /* as the client asked; the server may still close */
    bool expect_continue;

    struct tr_route_match match;    /* params point into path */

    /* Body: buffered routes get it whole in `body`; streaming routes set on_body. */
    struct tr_buf body;
    tr_http_body_cb *on_body;
    tr_http_body_end_cb *on_body_end;
    bool body_complete;
    void *user;                     /* the handler's per-request state */

    /* Response state. */
    int status;
    struct tr_buf resp_headers;     /* extra "Name: value\r\n" lines */
    bool resp_started;              /* status line written */
    bool resp_chunked;
    bool resp_ended;
    bool resp_close;                /* send Connection: close and close after */
    uint64_t resp_remaining;        /* bytes left when Content-Length was declared */
    tr_http_drain_cb *on_drain;
};

/* Server per worker loop. */
struct tr_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct tr_router *router;      /* borrowed; shared read-only between workers */
    struct tr_http_limits limits;
    void *data;                    /* the component's state (tr_http_serve.data) */
    void *worker;                  /* the struct tr_worker serving it, if any */
    void *worker_data;             /* the component's per-worker state */
    unsigned worker_id;
    const char *name;              /* "Server" header and log area */

    struct tr_list conns;          /* all open connections */
    size_t nconns;
    struct tr_timeq q_header;
    struct tr_timeq q_body;
    struct tr_timeq q_idle;
    struct tr_timeq q_write;
    uv_timer_t sweep;
    char *scratch;                 /* shared read buffer for connections with no backlog */
    size_t scratch_size;
    bool scratch_busy;
    struct tr_http_spare *spares;  /* owned; per-request memory of connections gone idle,
                                      handed to the next request that starts (server.c) */
    size_t nspares;
    size_t spare_bytes;
    bool draining;
    bool listening;
    bool closing;
    int pending_closes;
    void (*on_closed)(struct tr_http_server *srv); /* after tr_http_server_close() */
    void (*on_drained)(struct tr_http_server *srv);

    /* Counters (this worker only). */
    uint64_t requests;
    uint64_t accepted;
};

/* Sets up `srv` on `loop` accepting on `fd` (a listening socket from
 * tr_listen_socket(); ownership passes to the server). Returns 0 or a negative errno. */
TR_MUST_CHECK int tr_http_server_init(struct tr_http_server *srv, uv_loop_t *loop, int fd,
                                      struct tr_router *router,
                                      const struct tr_http_limits *limits);
/* Stops accepting, closes idle connections, lets in-flight requests finish with
 * Connection: close; calls srv->on_drained once no connection is left. */
void tr_http_server_drain(struct tr_http_server *srv);
/* Closes everything now; srv->on_closed fires when the last handle is closed. */
void tr_http_server_close(struct tr_http_server *srv);

/* --- Request helpers --- */

/* First header named `name` (case-insensitive), or a NULL slice. */
struct tr_slice tr_http_req_header(const struct tr_http_req *req, struct tr_slice name);
/* Route parameter by name, or a NULL slice. */
struct tr_slice tr_http_req_param(const struct tr_http_req *req, const char *name);
/* Query parameter `name` (first occurrence), percent-decoded into the request arena.
 * Returns true if present (value may be empty, as in "?stale"). */
bool tr_http_req_query(struct tr_http_req *req, const char *name, struct tr_slice *value);

/* Pauses / resumes reading the request body (streaming routes); while paused the
 * socket is not read, so the client is held back by TCP flow control. */
void tr_http_req_pause(struct tr_http_req *req);
void tr_http_req_resume(struct tr_http_req *req);

/* --- Responses (see response.c) --- */

/* Adds a response header; name and value are copied. Call before the first byte. */
void tr_http_resp_header(struct tr_http_req *req, struct tr_slice name, struct tr_slice value);
/* A complete response with Content-Length. `content_type` may be a NULL slice. */
void tr_http_resp_send(struct tr_http_req *req, int status, struct tr_slice content_type,
                       struct tr_slice body);
/* A JSON error {"error":{"code","message"}} with the table's status. */
void tr_http_resp_error(struct tr_http_req *req, enum tr_err e, const char *message);
/* Streaming: status line and headers now; body follows with tr_http_resp_write.
 * content_length = UINT64_MAX selects chunked encoding. */
void tr_http_resp_start(struct tr_http_req *req, int status, struct tr_slice content_type,
                        uint64_t content_length);
/* Queues body bytes. Returns true when the connection's pending output is above the
 * high-water mark: the caller should stop producing until on_drain fires. */
bool tr_http_resp_write(struct tr_http_req *req, struct tr_slice data, tr_http_drain_cb *on_drain);
/* Ends the response (terminating chunk if chunked). The request must not be touched
 * afterwards: the connection may reuse it for the next request at once. */
void tr_http_resp_end(struct tr_http_req *req);
/* Pushes queued response bytes to the socket now. Output is otherwise flushed when the
 * connection's own read or write event ends, which is enough for handlers that answer
 * from those events; a handler producing output from another source (a proxy's
 * upstream connection, a timer) calls this after tr_http_resp_start/write. May run the
 * request's on_drain callback before it returns. */
void tr_http_resp_flush(struct tr_http_req *req);
/* Abandons a response whose head was sent but whose body cannot be completed (a
 * proxy's upstream failed half way): no terminating chunk is written and the
 * connection closes once what is queued is flushed, so the client sees a truncated
 * message rather than a complete-looking one. The request must not be touched
 * afterwards. */
void tr_http_resp_abort(struct tr_http_req *req);

/* Protocol switch (Upgrade): takes the client's socket out of the server. Returns a
 * duplicate of its descriptor, owned by the caller (uv_tcp_open() it on this loop),
 * or a negative errno, in which case the request is still the caller's to answer.
 * On success the server closes its side without sending anything (the socket stays
 * open through the duplicate), appends to `rest` (if not NULL) the bytes it had
 * received after the request and not parsed, and the request must not be touched
 * again. Only before a response started. */
TR_MUST_CHECK int tr_http_req_takeover(struct tr_http_req *req, struct tr_buf *rest);

/* Internal, shared by server.c and response.c. */
void tr_http__conn_output(struct tr_http_conn *conn, struct tr_slice data);
struct tr_buf *tr_http__conn_outbuf(struct tr_http_conn *conn);
/* Appends `data` to the output, sending what it can of the output and `data` at once
 * (one sendmsg) when nothing is being written: large body chunks are then not copied. */
void tr_http__conn_output_now(struct tr_http_conn *conn, struct tr_slice data);
void tr_http__req_done(struct tr_http_req *req);
size_t tr_http__conn_pending(const struct tr_http_conn *conn);
bool tr_http__conn_draining(const struct tr_http_conn *conn);

#endif
