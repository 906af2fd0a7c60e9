/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 client for one libuv loop: keep-alive connection pools per upstream address,
 * requests with buffered or streamed bodies, responses delivered as they arrive (headers,
 * body chunks with pause/resume backpressure, end), strict response framing through
 * llhttp, and one transparent retry when a reused pooled connection turns out to be
 * stale. Everything runs on the loop's thread; nothing blocks and nothing locks. */
#ifndef TR_HTTP_CLIENT_H
#define TR_HTTP_CLIENT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/addr.h"
#include "core/mem.h"
#include "core/slice.h"

struct tr_http_client;
struct tr_http_client_req;

struct tr_http_client_config {
    unsigned max_idle_per_upstream; /* idle keep-alive connections kept per upstream; 0 = no
                                       reuse */
    uint64_t idle_timeout_ms;       /* pooled connection closed after idling this long; 0 = never */
    uint64_t connect_timeout_ms;    /* 0 = no limit */
    uint64_t response_timeout_ms;   /* longest wait for the first response byte, counted from
                                       the last request write; 0 = no limit */
    uint64_t read_timeout_ms;       /* longest gap between response reads once the response
                                       started, not counting time paused; 0 = no limit */
    size_t max_header_bytes;        /* status line + header section of one response */
    unsigned max_headers;           /* header fields in one response */
};

/* Fills `cfg` with the defaults: 16 idle per upstream, 30 s idle, 5 s connect, 30 s
 * response, 60 s read, 64 KiB and 100 header fields. */
void tr_http_client_config_init(struct tr_http_client_config *cfg);

/* Error codes given to the error callback. All are negative errno values; the ones
 * below are the client's own, other values are the socket's (UV_ECONNREFUSED, ...). */
#define TR_HTTP_CLIENT_E_CONNECT_TIMEOUT (-ETIMEDOUT) /* connect did not finish in time */
#define TR_HTTP_CLIENT_E_RESPONSE_TIMEOUT (-ETIME)    /* no response byte in time */
#define TR_HTTP_CLIENT_E_READ_TIMEOUT (-ENODATA)      /* response stalled part way */
#define TR_HTTP_CLIENT_E_RESET                                                                     \
    (-ECONNRESET)                                      /* upstream closed or reset before the      \
                                                          response was complete */
#define TR_HTTP_CLIENT_E_BAD_RESPONSE (-EPROTO)        /* malformed or ambiguous framing */
#define TR_HTTP_CLIENT_E_HEADERS_TOO_LARGE (-EMSGSIZE) /* max_header_bytes or max_headers */
#define TR_HTTP_CLIENT_E_CANCELED (-ECANCELED)         /* tr_http_client_close() */

/* Flags given with an error: what had happened before it. */
enum {
    TR_HTTP_CLIENT_ERR_CONNECT = 1u << 0,      /* failed while connecting; nothing was sent */
    TR_HTTP_CLIENT_ERR_STALE_REUSED = 1u << 1, /* a reused pooled connection failed before any
                                                  response byte and the request was not safe
                                                  to retry (see docs/internals/http-client.md);
                                                  the upstream may have processed it */
    TR_HTTP_CLIENT_ERR_RETRIED = 1u << 2,      /* failed on the transparent retry */
    TR_HTTP_CLIENT_ERR_HEADERS_SEEN = 1u << 3, /* the headers callback had already run */
};

/* Names an error code the client reports, in the client's terms. */
const char *tr_http_client_strerror(int err);

struct tr_http_client_header {
    struct tr_slice name;
    struct tr_slice value;
};

/* A final response's head. Slices point into the connection's input buffer and are
 * valid only during the headers callback; copy what must live longer. */
struct tr_http_client_resp {
    int status;             /* 200..999 */
    unsigned version_minor; /* HTTP/1.<minor>: 0 or 1 */
    struct tr_slice reason;
    const struct tr_http_client_header *headers; /* in wire order, values without OWS */
    size_t header_count;
    bool has_body;          /* false for HEAD, 204, 304 and Content-Length: 0 */
    int64_t content_length; /* -1 when not known ahead: chunked, or until close */
};

/* Response callbacks, all on the loop thread. For each request exactly one of `end`
 * and `error` runs, last; after it returns the request handle is gone. */
typedef void tr_http_client_headers_cb(struct tr_http_client_req *req,
                                       const struct tr_http_client_resp *resp, void *data);
/* `chunk` is valid during the call only. */
typedef void tr_http_client_body_cb(struct tr_http_client_req *req, struct tr_slice chunk,
                                    void *data);
typedef void tr_http_client_end_cb(struct tr_http_client_req *req, void *data);
/* `err` is one of the codes above or a socket error; `flags` are TR_HTTP_CLIENT_ERR_*. */
typedef void tr_http_client_error_cb(struct tr_http_client_req *req, int err, unsigned flags,
                                     void *data);
/* A streamed body chunk is released: status 0 once handed to the kernel, negative when
 * it never will be (the request failed, ended or was cancelled first). */
typedef void tr_http_client_write_cb(int status, void *data);
typedef void tr_http_client_close_cb(void *data);

struct tr_http_client_handler {
    tr_http_client_headers_cb *on_headers; /* required */
    tr_http_client_body_cb *on_body;       /* NULL discards the body */
    tr_http_client_end_cb *on_end;         /* required */
    tr_http_client_error_cb *on_error;     /* required */
};

/* What to send. Everything is copied or serialised by tr_http_client_request(), so the
 * caller's storage may go away when it returns. The client frames the request itself:
 * `headers` must not contain Content-Length or Transfer-Encoding; Host is added from
 * `upstream` unless given. */
struct tr_http_client_request {
    struct tr_addr upstream;
    struct tr_slice method; /* token, case-sensitive: "GET"; CONNECT is refused */
    struct tr_slice target; /* origin-form "/path?query" (or absolute-form) */
    const struct tr_http_client_header *headers;
    size_t header_count;
    /* Buffered body, copied and sent with Content-Length (so the request can be replayed
     * on a retry). NULL ptr = no body; POST/PUT/PATCH then send Content-Length: 0. */
    struct tr_slice body;
    /* Streamed body instead: the caller sends it with tr_http_client_req_write() and
     * tr_http_client_req_end(). `content_length` announces its size, or -1 to send it
     * chunked. */
    bool stream_body;
    int64_t content_length;
    const struct tr_http_client_handler *handler; /* borrowed; must outlive the request */
    void *data;                                   /* passed to every callback */
};

/* Creates a client on `loop` (which must be this thread's). `cfg` is copied; NULL takes
 * the defaults. Aborts on OOM. */
struct tr_http_client *tr_http_client_new(uv_loop_t *loop, const struct tr_http_client_config *cfg);

/* Call once. Fails every request in flight with TR_HTTP_CLIENT_E_CANCELED (their error
 * callbacks run before this returns; one inside its own callback fails when that
 * returns), closes every connection and the client's own handles, then calls `cb` (may
 * be NULL) from the loop and frees the client. Afterwards the loop holds nothing of the
 * client, so uv_loop_close() can succeed. Until then new requests get -ESHUTDOWN. */
void tr_http_client_close(struct tr_http_client *client, tr_http_client_close_cb *cb, void *data);

/* Starts a request: takes a pooled connection to `r->upstream` or connects a new one.
 * Returns 0 and the request handle in `*out` (valid until its end/error callback has run
 * or it is cancelled); no callback runs before this returns. Fails with -EINVAL for a bad
 * method, target or header (or a framing header), -ESHUTDOWN while the client closes,
 * or a socket error if no connection could be started. */
TR_MUST_CHECK int tr_http_client_request(struct tr_http_client *client,
                                         const struct tr_http_client_request *r,
                                         struct tr_http_client_req **out);

/* Streams `chunk` as the next part of the body. The bytes are borrowed, not copied: they
 * must stay valid until `cb(status, data)` runs, exactly once, from the loop (possibly
 * after the request's end/error callback or a cancel, with a negative status). Wait for
 * it before writing more to get backpressure. Returns -EINVAL if the request does not
 * stream its body, was ended, or the chunk is empty or would exceed its content_length,
 * or a socket error; `cb` is not called then. */
TR_MUST_CHECK int tr_http_client_req_write(struct tr_http_client_req *req, struct tr_slice chunk,
                                           tr_http_client_write_cb *cb, void *data);

/* Ends a streamed body (sends the last chunk when chunked). Returns -EINVAL if the
 * request does not stream, was already ended, or fewer than content_length bytes were
 * written; the request is then unusable and should be cancelled. */
TR_MUST_CHECK int tr_http_client_req_end(struct tr_http_client_req *req);

/* Backpressure for the response: pause stops reading from the upstream and holds back
 * body and end callbacks (from the next one on, even within the chunk being delivered);
 * resume restarts them from the loop, never from inside this call. */
void tr_http_client_req_pause(struct tr_http_client_req *req);
void tr_http_client_req_resume(struct tr_http_client_req *req);

/* Abandons the request at any point, including from inside its own callbacks: no
 * further callback runs for it except the write callbacks of chunks already accepted
 * (each still runs once), its connection is closed, and the handle is gone. No-op from
 * inside its end/error callback. */
void tr_http_client_req_cancel(struct tr_http_client_req *req);

struct tr_http_client_stats {
    uint64_t requests;         /* tr_http_client_request() calls that started */
    uint64_t connects;         /* connections opened */
    uint64_t reuses;           /* requests sent on a pooled connection */
    uint64_t retries;          /* transparent retries after a stale pooled connection */
    uint64_t probe_drops;      /* pooled connections found closed when about to be reused */
    uint64_t idle_peer_closes; /* pooled connections the upstream closed (or wrote to) */
    uint64_t idle_timeouts;    /* pooled connections closed by idle_timeout_ms */
    uint64_t conns_open;       /* connections currently open */
    uint64_t conns_idle;       /* of which idle in a pool */
};

void tr_http_client_get_stats(const struct tr_http_client *client,
                              struct tr_http_client_stats *out);

#endif
