/* SPDX-License-Identifier: Apache-2.0 */
/* tr_http_serve_run: the glue between the runtime's workers and the HTTP server. */
#include "http/serve.h"

#include <unistd.h>

#include "core/addr.h"
#include "core/log.h"
#include "core/mem.h"

struct serve_state {
    struct tr_http_serve *cfg;
    int *fds;                      /* one listening socket per worker */
    struct tr_http_server *servers; /* one per worker */
};

static int prepare(struct tr_runtime *rt)
{
    struct serve_state *st = rt->data;
    struct tr_addr addr;
    if (tr_addr_parse(st->cfg->listen, &addr) != 0) {
        TR_LOG_ERROR(rt->name, NULL, "invalid listen address \"%s\" (expected host:port)",
                     st->cfg->listen);
        return -1;
    }
    /* SO_REUSEPORT would let us share a port another server already holds; a plain
     * bind first makes "address already in use" an error, as users expect. */
    int probe = tr_listen_probe(&addr);
    if (probe != 0) {
        TR_LOG_ERROR(rt->name, NULL, "cannot listen on %s: %s", st->cfg->listen,
                     tr_strerror(probe));
        return -1;
    }
    st->fds = tr_xcalloc(rt->nworkers, sizeof(int));
    for (unsigned i = 0; i < rt->nworkers; i++) {
        int fd = tr_listen_socket(&addr, 1024);
        if (fd < 0) {
            TR_LOG_ERROR(rt->name, NULL, "cannot listen on %s: %s", st->cfg->listen,
                         tr_strerror(fd));
            for (unsigned k = 0; k < i; k++) {
                close(st->fds[k]);
            }
            tr_free_null(&st->fds);
            return -1;
        }
        st->fds[i] = fd;
    }
    char text[80];
    tr_addr_format((struct sockaddr *)&addr.ss, text, sizeof(text));
    TR_LOG_INFO(rt->name, NULL, "listening on %s with %u workers", text, rt->nworkers);
    st->servers = tr_xcalloc(rt->nworkers, sizeof(*st->servers));
    return 0;
}

static void on_server_closed(struct tr_http_server *srv)
{
    struct tr_worker *w = srv->worker;
    struct serve_state *st = w->rt->data;
    if (st->cfg->worker_dispose != NULL) {
        st->cfg->worker_dispose(srv, w);
    }
    tr_worker_finish(w);
}

static void on_server_drained(struct tr_http_server *srv)
{
    tr_http_server_close(srv);
}

static int worker_start(struct tr_worker *w)
{
    struct serve_state *st = w->rt->data;
    struct tr_http_server *srv = &st->servers[w->id];
    int err = tr_http_server_init(srv, &w->loop, st->fds[w->id], st->cfg->router,
                                  &st->cfg->limits);
    srv->name = st->cfg->name;
    srv->data = st->cfg->data;
    srv->worker = w;
    w->data = srv;
    srv->on_closed = on_server_closed;
    srv->on_drained = on_server_drained;
    srv->worker_id = w->id;
    if (err != 0) {
        TR_LOG_ERROR(st->cfg->name, NULL, "worker %u cannot serve: %s", w->id, tr_strerror(err));
        tr_http_server_close(srv);
        return err;
    }
    if (st->cfg->worker_init != NULL && st->cfg->worker_init(srv, w) != 0) {
        tr_http_server_close(srv);
        return -1;
    }
    return 0;
}

static void worker_drain(struct tr_worker *w)
{
    tr_http_server_drain(w->data);
}

static void worker_stop(struct tr_worker *w)
{
    tr_http_server_close(w->data);
}

static void drain(struct tr_runtime *rt)
{
    struct serve_state *st = rt->data;
    if (st->cfg->on_drain != NULL) {
        st->cfg->on_drain(st->cfg);
    }
}

static const struct tr_runtime_ops serve_ops = {
    .prepare = prepare,
    .drain = drain,
    .worker_start = worker_start,
    .worker_drain = worker_drain,
    .worker_stop = worker_stop,
};

int tr_http_serve_run(struct tr_http_serve *cfg)
{
    struct serve_state st = {.cfg = cfg};
    struct tr_runtime rt = {
        .ops = &serve_ops,
        .data = &st,
        .name = cfg->name,
        .nworkers = cfg->workers,
        .drain_ms = cfg->drain_ms,
    };
    int rc = tr_runtime_run(&rt);
    tr_free_null(&st.fds);
    tr_free_null(&st.servers);
    return rc;
}
