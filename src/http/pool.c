/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP client's connection layer (see pool.h): the client object, pools of idle
 * keep-alive connections keyed by upstream address, connection life cycle, and the
 * constant-timeout queues that one uv timer sweeps. Idle connections keep reading so an
 * upstream close is noticed at once, and are unref'd so they never keep a loop alive. */
#include "http/pool.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <uv.h>

#include "core/mem.h"

/* Bytes asked of the input buffer per read. */
#define READ_SIZE (32u * 1024)
#define POOL_BUCKETS_MIN 16

static void on_timer(uv_timer_t *timer);
static void on_conn_timeout(struct tr_timeq_entry *e);
static void on_connect(uv_connect_t *creq, int status);
static void on_conn_close(uv_handle_t *h);
static void on_handle_close(uv_handle_t *h);
static void maybe_finish_close(struct tr_http_client *client);

void tr_http_client_config_init(struct tr_http_client_config *cfg)
{
    cfg->max_idle_per_upstream = 16;
    cfg->idle_timeout_ms = 30000;
    cfg->connect_timeout_ms = 5000;
    cfg->response_timeout_ms = 30000;
    cfg->read_timeout_ms = 60000;
    cfg->max_header_bytes = 64 * 1024;
    cfg->max_headers = 100;
}

struct tr_http_client *tr_http_client_new(uv_loop_t *loop, const struct tr_http_client_config *cfg)
{
    struct tr_http_client *client = tr_xcalloc(1, sizeof(*client));
    client->loop = loop;
    tr_http_client_config_init(&client->cfg);
    if (cfg != NULL) {
        client->cfg = *cfg;
    }
    if (client->cfg.max_headers == 0) {
        client->cfg.max_headers = 100;
    }
    if (client->cfg.max_header_bytes == 0) {
        client->cfg.max_header_bytes = 64 * 1024;
    }
    /* Neither handle can fail to initialise on a live loop. */
    TR_ASSERT(uv_timer_init(loop, &client->timer) == 0);
    TR_ASSERT(uv_idle_init(loop, &client->deferred_idle) == 0);
    client->timer.data = client;
    client->deferred_idle.data = client;
    uv_unref((uv_handle_t *)&client->timer);
    uv_unref((uv_handle_t *)&client->deferred_idle);
    tr_timeq_init(&client->connect_q, client->cfg.connect_timeout_ms);
    tr_timeq_init(&client->response_q, client->cfg.response_timeout_ms);
    tr_timeq_init(&client->read_q, client->cfg.read_timeout_ms);
    tr_timeq_init(&client->idle_q, client->cfg.idle_timeout_ms);
    tr_list_init(&client->conns);
    tr_list_init(&client->deferred);
    client->nbuckets = POOL_BUCKETS_MIN;
    client->buckets = tr_xcalloc(client->nbuckets, sizeof(*client->buckets));
    client->scratch = tr_xmalloc(client->cfg.max_headers * sizeof(*client->scratch));
    client->next_conn_id = 1;
    return client;
}

void tr_http_client_get_stats(const struct tr_http_client *client, struct tr_http_client_stats *out)
{
    *out = client->stats;
}

void tr_http_client_close(struct tr_http_client *client, tr_http_client_close_cb *cb, void *data)
{
    TR_ASSERT(!client->closing);
    client->closing = true;
    client->close_cb = cb;
    client->close_data = data;
    /* Idle connections first: closing them runs no callback. What is left carries a
     * request, whose error callback may do anything, including cancelling others; so
     * start over from the head after each one. A request inside its own callback is
     * failed when that callback returns. */
    struct tr_list *it;
    struct tr_list *tmp;
    tr_list_foreach_safe(it, tmp, &client->conns)
    {
        struct tr_http_client_conn *conn = tr_container_of(it, struct tr_http_client_conn, link);
        if (conn->req == NULL) {
            tr_http_pool_close(conn);
        }
    }
    it = client->conns.next;
    while (it != &client->conns) {
        struct tr_http_client_conn *conn = tr_container_of(it, struct tr_http_client_conn, link);
        if (conn->req == NULL) {
            it = it->next;
            continue;
        }
        tr_http_client__abort(conn);
        /* A request inside its own callback is only marked: step over it. */
        it = conn->in_parse ? it->next : client->conns.next;
    }
    uv_idle_stop(&client->deferred_idle);
    uv_timer_stop(&client->timer);
    client->pending_closes = 2;
    uv_close((uv_handle_t *)&client->timer, on_handle_close);
    uv_close((uv_handle_t *)&client->deferred_idle, on_handle_close);
}

static void on_handle_close(uv_handle_t *h)
{
    struct tr_http_client *client = h->data;
    client->pending_closes--;
    maybe_finish_close(client);
}

static void maybe_finish_close(struct tr_http_client *client)
{
    if (!client->closing || client->pending_closes > 0 || client->live_conns > 0) {
        return;
    }
    TR_ASSERT(client->npools == 0);
    tr_http_client__free_writes(client);
    tr_http_client__free_reqs(client);
    tr_buf_dispose(&client->spare_in);
    tr_free_null(&client->buckets);
    tr_free_null(&client->scratch);
    tr_http_client_close_cb *cb = client->close_cb;
    void *data = client->close_data;
    tr_free_null(&client);
    if (cb != NULL) {
        cb(data);
    }
}

/* Pools, hashed by address. */

static uint32_t fnv1a(uint32_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 16777619u;
    }
    return h;
}

/* Hashes and compares only family, address, port (and scope): sockaddr padding may
 * hold anything. */
static uint32_t addr_hash(const struct tr_addr *a)
{
    uint32_t h = 2166136261u;
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)&a->ss;
        h = fnv1a(h, &v4->sin_addr, sizeof(v4->sin_addr));
        return fnv1a(h, &v4->sin_port, sizeof(v4->sin_port));
    }
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&a->ss;
    h = fnv1a(h, &v6->sin6_addr, sizeof(v6->sin6_addr));
    h = fnv1a(h, &v6->sin6_scope_id, sizeof(v6->sin6_scope_id));
    return fnv1a(h, &v6->sin6_port, sizeof(v6->sin6_port));
}

static bool addr_eq(const struct tr_addr *a, const struct tr_addr *b)
{
    if (a->ss.ss_family != b->ss.ss_family) {
        return false;
    }
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)&a->ss;
        const struct sockaddr_in *y = (const struct sockaddr_in *)&b->ss;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->ss;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&b->ss;
    return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

static void pools_rehash(struct tr_http_client *client, size_t nbuckets)
{
    struct tr_http_pool **buckets = tr_xcalloc(nbuckets, sizeof(*buckets));
    for (size_t i = 0; i < client->nbuckets; i++) {
        struct tr_http_pool *pool = client->buckets[i];
        while (pool != NULL) {
            struct tr_http_pool *next = pool->next;
            size_t b = pool->hash & (nbuckets - 1);
            pool->next = buckets[b];
            buckets[b] = pool;
            pool = next;
        }
    }
    tr_free_null(&client->buckets);
    client->buckets = buckets;
    client->nbuckets = nbuckets;
}

struct tr_http_pool *tr_http_pool_get(struct tr_http_client *client, const struct tr_addr *addr)
{
    uint32_t hash = addr_hash(addr);
    for (struct tr_http_pool *pool = client->buckets[hash & (client->nbuckets - 1)]; pool != NULL;
         pool = pool->next) {
        if (pool->hash == hash && addr_eq(&pool->addr, addr)) {
            return pool;
        }
    }
    if (client->npools >= client->nbuckets) {
        pools_rehash(client, client->nbuckets * 2);
    }
    struct tr_http_pool *pool = tr_xcalloc(1, sizeof(*pool));
    pool->client = client;
    pool->addr = *addr;
    pool->hash = hash;
    tr_list_init(&pool->idle);
    size_t b = hash & (client->nbuckets - 1);
    pool->next = client->buckets[b];
    client->buckets[b] = pool;
    client->npools++;
    return pool;
}

/* Pools exist only while they have connections, so a gateway that has talked to many
 * short-lived upstream instances does not keep one per address forever. */
static void pool_maybe_free(struct tr_http_pool *pool)
{
    if (pool->nconns > 0) {
        return;
    }
    struct tr_http_client *client = pool->client;
    struct tr_http_pool **pp = &client->buckets[pool->hash & (client->nbuckets - 1)];
    while (*pp != pool) {
        pp = &(*pp)->next;
    }
    *pp = pool->next;
    client->npools--;
    tr_free_null(&pool);
}

/* Connections. */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct tr_http_client_conn *conn = h->data;
    struct tr_http_client *client = conn->pool->client;
    if (conn->in.base == NULL && client->spare_in.base != NULL) {
        conn->in = client->spare_in; /* the last idle connection's buffer */
        tr_buf_init(&client->spare_in);
    }
    char *p = tr_buf_reserve(&conn->in, READ_SIZE);
    buf->base = p;
    buf->len = conn->in.cap - conn->in.off - conn->in.len;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct tr_http_client_conn *conn = stream->data;
    if (nread == 0) {
        return;
    }
    if (nread > 0) {
        tr_buf_commit(&conn->in, (size_t)nread);
    } else {
        tr_http_pool_read_stop(conn);
    }
    switch (conn->state) {
    case TR_HTTP_CLIENT_CONN_ACTIVE:
        tr_http_client__read(conn, nread);
        break;
    case TR_HTTP_CLIENT_CONN_IDLE:
        /* EOF, a reset, or bytes nobody asked for: either way the connection cannot
         * carry another request. */
        conn->pool->client->stats.idle_peer_closes++;
        tr_http_pool_close(conn);
        break;
    default:
        TR_ASSERT(!"read on a connection that is not reading");
    }
}

int tr_http_pool_read_start(struct tr_http_client_conn *conn)
{
    if (conn->reading) {
        return 0;
    }
    int err = uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
    if (err != 0) {
        return err;
    }
    conn->reading = true;
    return 0;
}

void tr_http_pool_read_stop(struct tr_http_client_conn *conn)
{
    if (conn->reading) {
        uv_read_stop((uv_stream_t *)&conn->tcp);
        conn->reading = false;
    }
}

int tr_http_pool_connect(struct tr_http_pool *pool, struct tr_http_client_conn **out)
{
    struct tr_http_client *client = pool->client;
    struct tr_http_client_conn *conn = tr_xcalloc(1, sizeof(*conn));
    int err = uv_tcp_init(client->loop, &conn->tcp);
    if (err != 0) {
        tr_free_null(&conn);
        pool_maybe_free(pool);
        return err;
    }
    conn->tcp.data = conn;
    conn->connect_req.data = conn;
    conn->pool = pool;
    conn->id = client->next_conn_id++;
    conn->state = TR_HTTP_CLIENT_CONN_CONNECTING;
    tr_list_init(&conn->idle_link);
    tr_list_init(&conn->deferred_link);
    tr_timeq_entry_init(&conn->timeout, on_conn_timeout);
    tr_buf_init(&conn->in);
    tr_list_insert_tail(&client->conns, &conn->link);
    pool->nconns++;
    client->live_conns++;
    client->stats.conns_open++;
    /* Requests go out in one write each; do not let Nagle hold the last segment. */
    uv_tcp_nodelay(&conn->tcp, 1);
    err = uv_tcp_connect(&conn->connect_req, &conn->tcp, (const struct sockaddr *)&pool->addr.ss,
                         on_connect);
    if (err != 0) {
        tr_http_pool_close(conn);
        return err;
    }
    client->stats.connects++;
    tr_http_pool_arm(conn, &client->connect_q);
    *out = conn;
    return 0;
}

static void on_connect(uv_connect_t *creq, int status)
{
    struct tr_http_client_conn *conn = creq->data;
    if (conn->state == TR_HTTP_CLIENT_CONN_CLOSING) {
        return; /* cancelled by our own uv_close() */
    }
    TR_ASSERT(conn->state == TR_HTTP_CLIENT_CONN_CONNECTING && conn->req != NULL);
    if (status == 0) {
        conn->connected = true;
        status = tr_http_pool_read_start(conn);
    }
    if (status == 0) {
        conn->state = TR_HTTP_CLIENT_CONN_ACTIVE;
    }
    tr_http_client__connected(conn, status);
}

/* Is the pooled connection still open and silent? The idle read notices a close on the
 * next loop turn; this catches one that arrived since then, in the same turn, which is
 * the window of the stale-connection race. */
static bool probe_alive(struct tr_http_client_conn *conn)
{
    uv_os_fd_t fd;
    if (uv_fileno((const uv_handle_t *)&conn->tcp, &fd) != 0) {
        return false;
    }
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static void idle_remove(struct tr_http_client_conn *conn)
{
    tr_list_remove(&conn->idle_link);
    conn->pool->nidle--;
    conn->pool->client->stats.conns_idle--;
}

struct tr_http_client_conn *tr_http_pool_take(struct tr_http_pool *pool)
{
    struct tr_http_client *client = pool->client;
    uint64_t now = uv_now(client->loop);
    while (!tr_list_empty(&pool->idle)) {
        struct tr_http_client_conn *conn =
            tr_container_of(pool->idle.prev, struct tr_http_client_conn, idle_link);
        if (now - conn->idle_since >= TR_HTTP_POOL_PROBE_AFTER_MS && !probe_alive(conn)) {
            client->stats.probe_drops++;
            tr_http_pool_close(conn);
            continue;
        }
        idle_remove(conn);
        tr_http_pool_arm(conn, NULL);
        uv_ref((uv_handle_t *)&conn->tcp);
        conn->state = TR_HTTP_CLIENT_CONN_ACTIVE;
        return conn;
    }
    return NULL;
}

void tr_http_pool_release(struct tr_http_client_conn *conn)
{
    TR_ASSERT(conn->req == NULL && conn->state == TR_HTTP_CLIENT_CONN_ACTIVE);
    struct tr_http_pool *pool = conn->pool;
    struct tr_http_client *client = pool->client;
    /* A write still in flight means the response overtook the request; a conservative
     * client does not guess where the upstream's reading stopped. */
    if (client->closing || client->cfg.max_idle_per_upstream == 0 || conn->in.len != 0 ||
        conn->read_err != 0 || conn->writes_pending > 0) {
        tr_http_pool_close(conn);
        return;
    }
    if (tr_http_pool_read_start(conn) != 0) {
        tr_http_pool_close(conn);
        return;
    }
    if (pool->nidle >= client->cfg.max_idle_per_upstream) {
        struct tr_http_client_conn *oldest =
            tr_container_of(pool->idle.next, struct tr_http_client_conn, idle_link);
        tr_http_pool_close(oldest);
    }
    conn->reused = true;
    conn->parsed = 0;
    conn->idle_since = uv_now(client->loop);
    conn->state = TR_HTTP_CLIENT_CONN_IDLE;
    /* An idle connection holds no buffer; the client keeps one for the next read. */
    if (client->spare_in.base == NULL && conn->in.cap <= 2 * READ_SIZE) {
        client->spare_in = conn->in;
        tr_buf_reset(&client->spare_in);
        tr_buf_init(&conn->in);
    } else {
        tr_buf_dispose(&conn->in);
    }
    tr_list_insert_tail(&pool->idle, &conn->idle_link);
    pool->nidle++;
    client->stats.conns_idle++;
    uv_unref((uv_handle_t *)&conn->tcp);
    tr_http_pool_arm(conn, &client->idle_q);
}

void tr_http_pool_close(struct tr_http_client_conn *conn)
{
    if (conn->state == TR_HTTP_CLIENT_CONN_CLOSING) {
        return;
    }
    TR_ASSERT(conn->req == NULL);
    struct tr_http_client *client = conn->pool->client;
    if (conn->state == TR_HTTP_CLIENT_CONN_IDLE) {
        idle_remove(conn);
    }
    tr_list_remove(&conn->link);
    if (tr_list_linked(&conn->deferred_link)) {
        tr_list_remove(&conn->deferred_link);
    }
    tr_timeq_cancel(&conn->timeout);
    conn->state = TR_HTTP_CLIENT_CONN_CLOSING;
    conn->reading = false;
    client->stats.conns_open--;
    uv_close((uv_handle_t *)&conn->tcp, on_conn_close);
}

/* libuv has run every write and connect callback of the handle before this. */
static void on_conn_close(uv_handle_t *h)
{
    struct tr_http_client_conn *conn = h->data;
    struct tr_http_pool *pool = conn->pool;
    struct tr_http_client *client = pool->client;
    TR_ASSERT(conn->writes_pending == 0);
    tr_buf_dispose(&conn->in);
    tr_free_null(&conn);
    pool->nconns--;
    pool_maybe_free(pool);
    client->live_conns--;
    maybe_finish_close(client);
}

/* Timeouts: one entry per connection, in the queue of whatever it is waiting for. */

static void timer_schedule(struct tr_http_client *client, uint64_t deadline)
{
    if (uv_is_closing((const uv_handle_t *)&client->timer)) {
        return;
    }
    if (uv_is_active((const uv_handle_t *)&client->timer) && client->timer_due <= deadline) {
        return;
    }
    uint64_t now = uv_now(client->loop);
    client->timer_due = deadline;
    uv_timer_start(&client->timer, on_timer, deadline > now ? deadline - now : 0, 0);
}

void tr_http_pool_arm(struct tr_http_client_conn *conn, struct tr_timeq *q)
{
    if (q == NULL) {
        tr_timeq_cancel(&conn->timeout);
        return;
    }
    struct tr_http_client *client = conn->pool->client;
    tr_timeq_arm(q, &conn->timeout, uv_now(client->loop));
    if (tr_timeq_armed(&conn->timeout)) {
        timer_schedule(client, conn->timeout.deadline);
    }
}

static void on_timer(uv_timer_t *timer)
{
    struct tr_http_client *client = timer->data;
    struct tr_timeq *queues[] = {&client->connect_q, &client->response_q, &client->read_q,
                                 &client->idle_q};
    uint64_t now = uv_now(client->loop);
    for (size_t i = 0; i < TR_ARRAY_LEN(queues); i++) {
        tr_timeq_expire(queues[i], now);
    }
    /* Entries re-armed since only move later, so the timer may have gone off early;
     * set it for the earliest deadline left. */
    uint64_t next = UINT64_MAX;
    for (size_t i = 0; i < TR_ARRAY_LEN(queues); i++) {
        uint64_t d = tr_timeq_next(queues[i]);
        next = d < next ? d : next;
    }
    uv_timer_stop(&client->timer);
    if (next != UINT64_MAX) {
        timer_schedule(client, next);
    }
}

static void on_conn_timeout(struct tr_timeq_entry *e)
{
    struct tr_http_client_conn *conn = tr_container_of(e, struct tr_http_client_conn, timeout);
    switch (conn->state) {
    case TR_HTTP_CLIENT_CONN_IDLE:
        conn->pool->client->stats.idle_timeouts++;
        tr_http_pool_close(conn);
        break;
    case TR_HTTP_CLIENT_CONN_CONNECTING:
    case TR_HTTP_CLIENT_CONN_ACTIVE:
        tr_http_client__timeout(conn);
        break;
    default:
        TR_ASSERT(!"timeout on a closing connection");
    }
}

/* Deferred work: resumes run from the loop, not from inside the caller's call. */

static void on_deferred(uv_idle_t *idle)
{
    struct tr_http_client *client = idle->data;
    /* Work deferred while this runs waits for the next turn. */
    size_t n = 0;
    for (struct tr_list *l = client->deferred.next; l != &client->deferred; l = l->next) {
        n++;
    }
    while (n-- > 0 && !tr_list_empty(&client->deferred)) {
        struct tr_http_client_conn *conn =
            tr_container_of(client->deferred.next, struct tr_http_client_conn, deferred_link);
        tr_list_remove(&conn->deferred_link);
        if (conn->req != NULL) {
            tr_http_client__deferred(conn);
        }
    }
    if (tr_list_empty(&client->deferred)) {
        uv_idle_stop(&client->deferred_idle);
    }
}

void tr_http_pool_defer(struct tr_http_client_conn *conn)
{
    struct tr_http_client *client = conn->pool->client;
    if (tr_list_linked(&conn->deferred_link) || client->closing) {
        return;
    }
    tr_list_insert_tail(&client->deferred, &conn->deferred_link);
    uv_idle_start(&client->deferred_idle, on_deferred);
}
