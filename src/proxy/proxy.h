/* SPDX-License-Identifier: Apache-2.0 */
/* `trellis proxy`: the process. The main thread binds the listeners, owns the current
 * configuration and, on SIGHUP, parses and validates the file again; an accepted
 * configuration is handed to every worker through an atomic slot (see worker.h), a
 * rejected one is logged and the old one keeps serving. SIGTERM drains. */
#ifndef TR_PROXY_PROXY_H
#define TR_PROXY_PROXY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "core/runtime.h"
#include "http/router.h"
#include "http/server.h"
#include "proxy/config.h"
#include "proxy/guard.h"
#include "proxy/stats.h"

struct tr_proxy_discovery;
struct tr_proxy_worker;

/* What `trellis proxy` was started with. */
struct tr_proxy_options {
    const char *config_path; /* --config, or NULL with --to */
    const char *to;          /* --to, or NULL with --config */
    const char *listen;      /* --listen override, or NULL */
    const char *admin;       /* --admin override, or NULL */
    unsigned workers;        /* 0 = cores */
    uint64_t drain_ms;
    struct tr_http_limits limits;
};

struct tr_proxy {
    struct tr_proxy_options opts;
    struct tr_proxy_config *cfg; /* main thread's reference to the current config */
    const char *listen;          /* effective addresses (fixed at startup) */
    const char *admin;
    struct tr_router router;
    struct tr_router admin_router;
    struct tr_http_limits admin_limits;
    int *fds;     /* one listening socket per worker */
    int admin_fd; /* -1 without admin */
    unsigned nworkers;
    struct tr_proxy_worker *workers;         /* [nworkers] */
    _Atomic(struct tr_proxy_config *) *next; /* [nworkers]: config not yet taken */
    struct tr_proxy_discovery *disc;
    struct tr_proxy_stats_set stats;
    struct tr_proxy_guard_set guards; /* breaker, outlier and rate-limit state by name */
    uint64_t generation;
    _Atomic uint64_t reloads_ok;
    _Atomic uint64_t reloads_failed;
    _Atomic bool draining;
    uint64_t started_ms;
};

/* Runs the proxy until SIGTERM drains it. Returns the exit code (2 for a bad
 * configuration, after printing where). */
int tr_proxy_run(const struct tr_proxy_options *opts);

/* Gives a parsed `cfg` what only the process has: stats and resilience state carried over
 * by name from px->stats and px->guards, registry watches (px->disc; only needed when a
 * cluster uses service:), the next generation number. Main thread, before the config is
 * published; fuzz/fuzz_proxy.c uses it to run the request path without the runtime. */
void tr_proxy_attach(struct tr_proxy *px, struct tr_proxy_config *cfg);

#endif
