/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP client's connection layer, private to src/http/client*.c and pool.c: the
 * client object, per-upstream pools of keep-alive connections, connection life cycle
 * (connect, idle reading, close), and the timeout queues swept by one timer. The request
 * layer (client.c) attaches one request at a time to a connection and is told about its
 * reads, timeouts and connect results through the tr_http_client__* hooks below. */
#ifndef TR_HTTP_POOL_H
#define TR_HTTP_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include <llhttp.h>
#include <uv.h>

#include "core/addr.h"
#include "core/buf.h"
#include "core/list.h"
#include "core/timeq.h"
#include "http/client.h"

struct tr_http_chunk_write;

struct tr_http_pool {
    struct tr_http_pool *next; /* hash chain */
    struct tr_http_client *client;
    struct tr_addr addr;
    struct tr_list idle; /* IDLE connections, least recently used first */
    unsigned nidle;
    unsigned nconns; /* connections of this pool not yet freed; the pool goes with the last */
    uint32_t hash;
};

/* A connection's state. Requests are never pipelined: one exchange at a time.
 *
 *   CONNECTING --connected--> ACTIVE --reusable response, request fully written--> IDLE
 *   IDLE --taken by a request--> ACTIVE
 *   any --error, timeout, cancel, client close, not reusable--> CLOSING (freed in the
 *                                                                close callback) */
enum tr_http_client_conn_state {
    TR_HTTP_CLIENT_CONN_CONNECTING = 0,
    TR_HTTP_CLIENT_CONN_ACTIVE,
    TR_HTTP_CLIENT_CONN_IDLE,
    TR_HTTP_CLIENT_CONN_CLOSING,
};

struct tr_http_client_conn {
    uv_tcp_t tcp; /* tcp.data = conn */
    uv_connect_t connect_req;
    struct tr_list link;          /* in client->conns until CLOSING */
    struct tr_list idle_link;     /* in pool->idle while IDLE */
    struct tr_list deferred_link; /* in client->deferred while a resume is pending */
    struct tr_timeq_entry timeout;
    struct tr_http_pool *pool;
    struct tr_http_client_req *req; /* exchange in progress; set iff CONNECTING/ACTIVE */
    struct tr_buf in;               /* received, not yet consumed; released when idle */
    llhttp_t parser;
    const char *parse_base; /* tr_buf_data(&in) during the current llhttp_execute() */
    size_t parsed;          /* bytes at the front of `in` already given to the parser */
    uint64_t id;
    uint64_t acked_base;     /* peer-acknowledged bytes when the current request started */
    uint64_t idle_since;     /* loop time (ms) the connection last went idle */
    unsigned writes_pending; /* uv_write requests on this connection not yet called back */
    int read_err;            /* UV_EOF or a read error seen and not yet acted on; 0 if none */
    enum tr_http_client_conn_state state;
    bool reused;    /* completed an exchange before the current one */
    bool reading;   /* uv_read_start() in effect */
    bool in_parse;  /* inside llhttp_execute(): request and connection must not be freed */
    bool connected; /* the TCP handshake finished */
};

struct tr_http_client {
    uv_loop_t *loop;
    struct tr_http_client_config cfg;
    uv_timer_t timer;        /* sweeps the timeout queues; unref'd */
    uv_idle_t deferred_idle; /* runs deferred resumes on the next loop turn; unref'd */
    uint64_t timer_due;      /* loop time the timer fires at, while it is active */
    struct tr_timeq connect_q;
    struct tr_timeq response_q;
    struct tr_timeq read_q;
    struct tr_timeq idle_q;
    struct tr_list conns;          /* every connection not CLOSING */
    struct tr_list deferred;       /* connections with a resume pending */
    struct tr_http_pool **buckets; /* owned; pools hashed by address */
    size_t nbuckets;
    size_t npools;
    struct tr_http_client_header *scratch;   /* owned; max_headers entries for the headers cb */
    struct tr_http_chunk_write *free_writes; /* owned; recycled streamed-body write requests */
    unsigned nfree_writes;
    struct tr_http_client_req *free_reqs; /* owned; recycled request objects */
    unsigned nfree_reqs;
    struct tr_buf spare_in; /* owned; an idle connection's input buffer, for the next read */
    struct tr_http_client_stats stats;
    uint64_t next_conn_id;
    unsigned live_conns;     /* connections not yet freed, CLOSING included */
    unsigned pending_closes; /* own handles (timer, idle) being closed */
    bool closing;
    tr_http_client_close_cb *close_cb;
    void *close_data;
};

/* Finds or creates the pool for `addr`. */
struct tr_http_pool *tr_http_pool_get(struct tr_http_client *client, const struct tr_addr *addr);

/* A pooled connection idle for less than this (loop time) is reused without the
 * MSG_PEEK probe: its response was read an instant ago, far less than any upstream's
 * keep-alive timeout, so only an upstream that closes right after answering (or is
 * going away) can have closed it, and the retry rule covers that. A few ms rather than
 * one loop turn, so that a busy or preempted worker still skips it under load. */
#define TR_HTTP_POOL_PROBE_AFTER_MS 10

/* Takes the most recently used idle connection of `pool` that still looks alive: each
 * candidate idle for TR_HTTP_POOL_PROBE_AFTER_MS or more is probed with a non-blocking
 * MSG_PEEK recv, and one that reports EOF, an error or unexpected bytes is closed
 * (stats.probe_drops). Returns NULL if none. The connection comes back ACTIVE-ready:
 * removed from the idle list, ref'd, timer cancelled. */
struct tr_http_client_conn *tr_http_pool_take(struct tr_http_pool *pool);

/* Opens a new connection of `pool` and starts connecting; the connection is CONNECTING
 * and reading starts once connected. Returns 0 and the connection, or a socket error
 * (nothing is left behind then). */
TR_MUST_CHECK int tr_http_pool_connect(struct tr_http_pool *pool, struct tr_http_client_conn **out);

/* The exchange on `conn` is over and its framing allows reuse: the connection goes idle
 * in its pool (evicting the least recently used one when full), or is closed when the
 * client is closing, reuse is off, writes are still in flight or input is left over.
 * conn->req must be NULL. */
void tr_http_pool_release(struct tr_http_client_conn *conn);

/* Closes `conn` (idempotent). conn->req must be NULL. Freed in the close callback. */
void tr_http_pool_close(struct tr_http_client_conn *conn);

/* Arms the connection's single timeout in queue `q` (one of the client's), or cancels
 * it when q is NULL. */
void tr_http_pool_arm(struct tr_http_client_conn *conn, struct tr_timeq *q);

TR_MUST_CHECK int tr_http_pool_read_start(struct tr_http_client_conn *conn);
void tr_http_pool_read_stop(struct tr_http_client_conn *conn);

/* Asks for tr_http_client__deferred(conn) to run from the loop on its next turn. */
void tr_http_pool_defer(struct tr_http_client_conn *conn);

/* Hooks into the request layer (client.c), called for a connection that has a request. */
void tr_http_client__connected(struct tr_http_client_conn *conn, int status);
void tr_http_client__read(struct tr_http_client_conn *conn, ssize_t nread);
void tr_http_client__timeout(struct tr_http_client_conn *conn);
void tr_http_client__deferred(struct tr_http_client_conn *conn);
/* The client is closing: fail the request on `conn` with TR_HTTP_CLIENT_E_CANCELED. */
void tr_http_client__abort(struct tr_http_client_conn *conn);
/* Frees the client's recycled write requests and request objects. */
void tr_http_client__free_writes(struct tr_http_client *client);
void tr_http_client__free_reqs(struct tr_http_client *client);

/* The retry rule, as a pure function so it can be tested alone. */
struct tr_http_client_attempt {
    int err;               /* what ended the attempt: UV_EOF, UV_ECONNRESET, a timeout... */
    bool reused;           /* the connection came from the pool */
    bool first;            /* this was the first attempt */
    bool response_started; /* a response byte arrived */
    bool replayable;       /* every request byte written so far is still held by the client */
    bool idempotent;       /* RFC 9110 §9.2.2 */
    bool peer_acked;       /* the peer acknowledged a byte of this request (or unknown) */
};

bool tr_http_client_retry_safe(const struct tr_http_client_attempt *a);

/* RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE (case-sensitive). */
bool tr_http_client_method_idempotent(struct tr_slice method);

#endif
