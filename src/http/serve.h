/* SPDX-License-Identifier: Apache-2.0 */
/* Serving a router on N workers: binds one SO_REUSEPORT socket per worker on the main
 * thread (so a bad address fails before any thread starts), then runs a
 * tr_http_server on every worker loop until SIGTERM drains them. */
#ifndef TR_HTTP_SERVE_H
#define TR_HTTP_SERVE_H

#include "core/runtime.h"
#include "http/server.h"

struct tr_http_serve {
    const char *name;        /* log area and process role: "echo" */
    const char *listen;      /* "host:port"; port 0 picks a free port */
    unsigned workers;        /* 0 = cores */
    uint64_t drain_ms;
    struct tr_http_limits limits;
    struct tr_router *router; /* shared read-only by all workers */
    void *data;              /* handed to every server as srv->data */
    /* Optional: per-worker setup/teardown on the worker thread. */
    int (*worker_init)(struct tr_http_server *srv, struct tr_worker *w);
    void (*worker_dispose)(struct tr_http_server *srv, struct tr_worker *w);
    /* Optional: main thread, when SIGTERM starts the drain. */
    void (*on_drain)(struct tr_http_serve *cfg);
};

/* Runs until drained. Logs "listening" with the bound address. Returns an exit code. */
int tr_http_serve_run(struct tr_http_serve *cfg);

#endif
