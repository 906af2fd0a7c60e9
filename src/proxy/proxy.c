/* SPDX-License-Identifier: Apache-2.0 */
/* The `trellis proxy` process (see proxy.h): configuration at startup and on SIGHUP,
 * listening sockets, the runtime's worker hooks, and the order things are torn down in
 * (servers drained -> worker state closed -> loop ends; then the discovery thread). */
#include "proxy/proxy.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/addr.h"
#include "core/log.h"
#include "core/mem.h"
#include "proxy/admin.h"
#include "proxy/discovery.h"
#include "proxy/forward.h"
#include "proxy/worker.h"

/* ------------------------------------------------------------ configurations */

static void log_warnings(const struct tr_proxy_config *cfg)
{
    struct tr_slice all = tr_buf_slice(&cfg->warnings);
    while (all.len > 0) {
        const char *nl = memchr(all.ptr, '\n', all.len);
        size_t len = nl != NULL ? (size_t)(nl - all.ptr) : all.len;
        TR_LOG_WARN("proxy", NULL, "%.*s", (int)len, all.ptr);
        all.ptr += len + (nl != NULL);
        all.len -= len + (nl != NULL);
    }
}

/* See proxy.h. */
void tr_proxy_attach(struct tr_proxy *px, struct tr_proxy_config *cfg)
{
    char key[160];
    for (size_t i = 0; i < cfg->nclusters; i++) {
        struct tr_proxy_cluster_config *c = &cfg->clusters[i];
        snprintf(key, sizeof(key), "cluster/%s", c->name);
        c->stats = tr_proxy_stats_get(&px->stats, key);
        c->guard = tr_proxy_guard_get(&px->guards, key, 0);
        if (c->service != NULL) {
            c->svc = tr_proxy_discovery_watch(px->disc, c->service);
        }
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        struct tr_proxy_route_config *r = &cfg->routes[i];
        snprintf(key, sizeof(key), "route/%s", r->name);
        r->stats = tr_proxy_stats_get(&px->stats, key);
        r->guard = tr_proxy_guard_get(&px->guards, key, r->has_rate_limit ? r->rate_max_keys : 0);
    }
    cfg->generation = ++px->generation;
}

/* Hands `cfg` to every worker; each takes it at its next reload command (or start). */
static void publish(struct tr_proxy *px, struct tr_proxy_config *cfg)
{
    for (unsigned i = 0; i < px->nworkers; i++) {
        tr_proxy_config_ref(cfg);
        tr_proxy_config_unref(atomic_exchange(&px->next[i], cfg));
    }
    tr_proxy_config_unref(px->cfg);
    px->cfg = cfg;
}

static int load(struct tr_proxy *px, struct tr_proxy_config **out, struct tr_conf_err *err)
{
    if (px->opts.config_path != NULL) {
        return tr_proxy_config_load(px->opts.config_path, px->nworkers, out, err);
    }
    return tr_proxy_config_from_targets(px->opts.to, px->nworkers, out, err);
}

static bool same_text(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int reload(struct tr_runtime *rt)
{
    struct tr_proxy *px = rt->data;
    if (px->opts.config_path == NULL) {
        TR_LOG_WARN("proxy", NULL, "SIGHUP: nothing to reload (started with --to, not --config)");
        return -1;
    }
    struct tr_proxy_config *cfg;
    struct tr_conf_err err;
    if (load(px, &cfg, &err) != 0) {
        atomic_fetch_add(&px->reloads_failed, 1);
        TR_LOG_ERROR("proxy", NULL, "reload rejected, the running configuration stays: %s",
                     err.msg);
        return -1;
    }
    if (px->opts.listen == NULL && !same_text(cfg->listen, px->cfg->listen)) {
        TR_LOG_WARN("proxy", NULL, "listen changed in %s: a restart is needed; still on %s",
                    cfg->source, px->listen);
    }
    if (px->opts.admin == NULL && !same_text(cfg->admin, px->cfg->admin)) {
        TR_LOG_WARN("proxy", NULL, "admin changed in %s: a restart is needed", cfg->source);
    }
    if (cfg->has_registry) {
        bool moved =
            !px->cfg->has_registry || strcmp(cfg->registry_host, px->cfg->registry_host) != 0;
        if (moved) {
            tr_proxy_discovery_set_registry(px->disc, &cfg->registry, cfg->registry_host);
        }
    }
    tr_proxy_attach(px, cfg);
    log_warnings(cfg);
    publish(px, cfg);
    atomic_fetch_add(&px->reloads_ok, 1);
    TR_LOG_INFO("proxy", NULL, "configuration generation %llu: %zu cluster(s), %zu route(s)",
                (unsigned long long)cfg->generation, cfg->nclusters, cfg->nroutes);
    return 0;
}

/* ------------------------------------------------------------ sockets */

static int bind_listeners(struct tr_proxy *px)
{
    struct tr_addr addr;
    if (tr_addr_parse(px->listen, &addr) != 0) {
        TR_LOG_ERROR("proxy", NULL, "invalid listen address \"%s\"", px->listen);
        return -1;
    }
    int rc = tr_listen_probe(&addr);
    if (rc != 0) {
        TR_LOG_ERROR("proxy", NULL, "cannot listen on %s: %s", px->listen, tr_strerror(rc));
        return -1;
    }
    for (unsigned i = 0; i < px->nworkers; i++) {
        int fd = tr_listen_socket(&addr, 1024);
        if (fd < 0) {
            TR_LOG_ERROR("proxy", NULL, "cannot listen on %s: %s", px->listen, tr_strerror(fd));
            return -1;
        }
        px->fds[i] = fd;
    }
    char text[80];
    if (px->admin != NULL) {
        struct tr_addr a;
        if (tr_addr_parse(px->admin, &a) != 0) {
            TR_LOG_ERROR("proxy", NULL, "invalid admin address \"%s\"", px->admin);
            return -1;
        }
        rc = tr_listen_probe(&a);
        if (rc == 0) {
            rc = tr_listen_socket(&a, 128);
        }
        if (rc < 0) {
            TR_LOG_ERROR("proxy", NULL, "cannot listen on admin address %s: %s", px->admin,
                         tr_strerror(rc));
            return -1;
        }
        px->admin_fd = rc;
        tr_addr_format((struct sockaddr *)&a.ss, text, sizeof(text));
        TR_LOG_INFO("proxy", NULL, "admin endpoint on %s (/metrics, /ready, /clusters)", text);
    }
    tr_addr_format((struct sockaddr *)&addr.ss, text, sizeof(text));
    TR_LOG_INFO("proxy", NULL, "listening on %s with %u workers", text, px->nworkers);
    return 0;
}

static void close_fds(struct tr_proxy *px)
{
    for (unsigned i = 0; i < px->nworkers; i++) {
        if (px->fds[i] >= 0) {
            close(px->fds[i]);
            px->fds[i] = -1;
        }
    }
    if (px->admin_fd >= 0) {
        close(px->admin_fd);
        px->admin_fd = -1;
    }
}

/* ------------------------------------------------------------ runtime hooks */

static int prepare(struct tr_runtime *rt)
{
    struct tr_proxy *px = rt->data;
    if (bind_listeners(px) != 0) {
        close_fds(px);
        return -1;
    }
    return 0;
}

static void on_worker_closed(struct tr_proxy_worker *pw)
{
    tr_worker_finish(pw->w);
}

static void on_server_closed(struct tr_http_server *srv)
{
    struct tr_proxy_worker *pw = srv->worker_data;
    if (srv == &pw->srv) {
        pw->srv_live = false;
    } else {
        pw->admin_live = false;
    }
    if (!pw->srv_live && !pw->admin_live && !pw->closing) {
        tr_proxy_worker_close(pw, on_worker_closed);
    }
}

static void on_server_drained(struct tr_http_server *srv)
{
    tr_http_server_close(srv);
}

static int server_start(struct tr_proxy_worker *pw, struct tr_http_server *srv, int *fd,
                        struct tr_router *router, const struct tr_http_limits *limits,
                        const char *name)
{
    int err = tr_http_server_init(srv, &pw->w->loop, *fd, router, limits);
    *fd = -1; /* the server owns it now, even on failure */
    srv->name = name;
    srv->data = pw->proxy;
    srv->worker = pw->w;
    srv->worker_data = pw;
    srv->worker_id = pw->id;
    srv->on_closed = on_server_closed;
    srv->on_drained = on_server_drained;
    return err;
}

static void close_servers(struct tr_proxy_worker *pw)
{
    bool any = pw->srv_live || pw->admin_live;
    if (pw->srv_live) {
        tr_http_server_close(&pw->srv);
    }
    if (pw->admin_live) {
        tr_http_server_close(&pw->admin);
    }
    if (!any && !pw->closing) {
        tr_proxy_worker_close(pw, on_worker_closed);
    }
}

static int worker_start(struct tr_worker *w)
{
    struct tr_proxy *px = w->rt->data;
    struct tr_proxy_worker *pw = &px->workers[w->id];
    pw->proxy = px;
    pw->w = w;
    pw->id = w->id;
    w->data = pw;
    int err = tr_proxy_worker_init(pw, &w->loop);
    if (err != 0) {
        return err;
    }
    pw->srv_live = true;
    err = server_start(pw, &pw->srv, &px->fds[w->id], &px->router, &px->opts.limits, "proxy");
    if (err == 0 && w->id == 0 && px->admin_fd >= 0) {
        pw->has_admin = true;
        pw->admin_live = true;
        err = server_start(pw, &pw->admin, &px->admin_fd, &px->admin_router, &px->admin_limits,
                           "admin");
    }
    if (err != 0) {
        TR_LOG_ERROR("proxy", NULL, "worker %u cannot serve: %s", w->id, tr_strerror(err));
        close_servers(pw);
        return err;
    }
    return 0;
}

static void worker_drain(struct tr_worker *w)
{
    struct tr_proxy_worker *pw = w->data;
    pw->draining = true;
    if (pw->admin_live) {
        tr_http_server_drain(&pw->admin);
    }
    if (pw->srv_live) {
        tr_http_server_drain(&pw->srv);
    }
}

static void worker_stop(struct tr_worker *w)
{
    close_servers(w->data);
}

static void worker_reload(struct tr_worker *w)
{
    tr_proxy_worker_update(w->data);
}

static void drain(struct tr_runtime *rt)
{
    struct tr_proxy *px = rt->data;
    atomic_store(&px->draining, true);
}

static const struct tr_runtime_ops proxy_ops = {
    .prepare = prepare,
    .drain = drain,
    .worker_start = worker_start,
    .worker_drain = worker_drain,
    .worker_stop = worker_stop,
    .reload = reload,
    .worker_reload = worker_reload,
};

/* ------------------------------------------------------------ entry */

static int setup(struct tr_proxy *px)
{
    struct tr_conf_err err;
    struct tr_proxy_config *cfg;
    if (load(px, &cfg, &err) != 0) {
        fprintf(stderr, "trellis proxy: %s\n", err.msg);
        return 2;
    }
    px->listen = px->opts.listen != NULL ? px->opts.listen : cfg->listen;
    px->admin = px->opts.admin != NULL ? px->opts.admin : cfg->admin;
    if (px->listen == NULL) {
        fprintf(stderr, "trellis proxy: %s has no listen: address and no --listen was given\n",
                cfg->source);
        tr_proxy_config_unref(cfg);
        return 2;
    }
    px->disc = tr_proxy_discovery_start(px->nworkers, TR_PROXY_DISCOVERY_WAIT_MS);
    if (px->disc == NULL) {
        tr_proxy_config_unref(cfg);
        return 1;
    }
    if (cfg->has_registry) {
        tr_proxy_discovery_set_registry(px->disc, &cfg->registry, cfg->registry_host);
    }
    tr_proxy_attach(px, cfg);
    log_warnings(cfg);
    publish(px, cfg);
    return 0;
}

static void teardown(struct tr_proxy *px)
{
    for (unsigned i = 0; i < px->nworkers; i++) {
        tr_proxy_config_unref(atomic_exchange(&px->next[i], NULL));
    }
    /* Workers have exited: nothing reads the slots or the services any more. */
    tr_proxy_discovery_stop(px->disc);
    tr_proxy_config_unref(px->cfg);
    px->cfg = NULL;
    close_fds(px);
    tr_proxy_stats_set_dispose(&px->stats);
    tr_proxy_guard_set_dispose(&px->guards);
    tr_router_dispose(&px->router);
    tr_router_dispose(&px->admin_router);
    tr_free_null(&px->fds);
    tr_free_null(&px->workers);
    tr_free_null(&px->next);
}

int tr_proxy_run(const struct tr_proxy_options *opts)
{
    struct tr_proxy px;
    memset(&px, 0, sizeof(px));
    px.opts = *opts;
    px.nworkers = opts->workers > 0 ? opts->workers : tr_runtime_default_workers();
    px.admin_fd = -1;
    px.fds = tr_xmalloc(px.nworkers * sizeof(*px.fds));
    for (unsigned i = 0; i < px.nworkers; i++) {
        px.fds[i] = -1;
    }
    px.workers = tr_xcalloc(px.nworkers, sizeof(*px.workers));
    px.next = tr_xcalloc(px.nworkers, sizeof(*px.next));
    tr_proxy_stats_set_init(&px.stats, px.nworkers);
    tr_proxy_guard_set_init(&px.guards, px.nworkers);
    tr_router_init(&px.router);
    tr_router_init(&px.admin_router);
    tr_http_limits_default(&px.admin_limits);
    px.admin_limits.max_connections = 256;
    int rc = setup(&px);
    if (rc == 0) {
        int err = tr_router_add(&px.router, "*", "/*path", tr_proxy_forward, NULL, TR_ROUTE_STREAM);
        TR_ASSERT(err == 0 && tr_proxy_admin_routes(&px.admin_router) == 0);
        struct tr_runtime rt = {
            .ops = &proxy_ops,
            .data = &px,
            .name = "proxy",
            .nworkers = px.nworkers,
            .drain_ms = opts->drain_ms,
        };
        rc = tr_runtime_run(&rt);
    }
    teardown(&px);
    return rc;
}
