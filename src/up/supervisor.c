/* SPDX-License-Identifier: Apache-2.0 */
/* trellis up's orchestrator (see up.h and docs/internals/up.md): start-up in order
 * (server; stale registrations removed; gateway and every replica in parallel), the
 * poll loop that watches health, the registry and the gateway, and the orderly stop
 * (gateway, then services and sidecars, then server). */
#include "up/up.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "up/control.h"
#include "up/gateway.h"
#include "up/status.h"
#include "up/supervisor.h"

extern char **environ;

static void on_tick(uv_timer_t *t);
static void start_services(struct tr_up *up);
static void announce(struct tr_up *up, bool complete);

int tr_up_state_path(const char *dir, const char *name, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/%s%s%s", dir, TR_UP_STATE_DIR, name[0] ? "/" : "", name);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static uint64_t now_ms(struct tr_up *up)
{
    return uv_now(&up->loop);
}

/* ---- the poll loop ---- */

void tr_up__wake(struct tr_up *up)
{
    if (up->phase == TR_UP_PHASE_DONE || uv_is_closing((uv_handle_t *)&up->tick)) {
        return;
    }
    uint64_t due = now_ms(up) + TR_UP_FAST_TICK_MS;
    if (!uv_is_active((uv_handle_t *)&up->tick) || up->tick_due > due) {
        up->tick_due = due;
        uv_timer_start(&up->tick, on_tick, TR_UP_FAST_TICK_MS, 0);
    }
}

bool tr_up__server_usable(const struct tr_up *up)
{
    return up->server_ready && up->server.state == TR_UP_PROC_RUNNING;
}

static bool all_ready(struct tr_up *up)
{
    for (size_t i = 0; i < up->nsvcs; i++) {
        struct tr_up_svc *svc = &up->svcs[i];
        unsigned n = 0;
        struct tr_list *it;
        for (it = svc->replicas.next; it != &svc->replicas; it = it->next) {
            struct tr_up_replica *r = tr_container_of(it, struct tr_up_replica, link);
            if (r->lc == TR_UP_LC_ACTIVE && !r->ready) {
                return false;
            }
            n += r->lc == TR_UP_LC_ACTIVE;
        }
        if (n < svc->desired) {
            return false;
        }
    }
    return !up->has_gateway || up->gateway_ready;
}

static bool busy(struct tr_up *up, uint64_t now)
{
    if (up->phase != TR_UP_PHASE_RUNNING) {
        return true;
    }
    if (up->has_gateway && !up->gateway_ready && up->gateway.state == TR_UP_PROC_RUNNING) {
        return true;
    }
    if (!up->server_ready && up->server.state == TR_UP_PROC_RUNNING) {
        return true;
    }
    for (size_t i = 0; i < up->nsvcs; i++) {
        struct tr_up_svc *svc = &up->svcs[i];
        if (svc->op != NULL) {
            return true;
        }
        struct tr_list *it;
        for (it = svc->replicas.next; it != &svc->replicas; it = it->next) {
            if (tr_up__replica_busy(tr_container_of(it, struct tr_up_replica, link), now)) {
                return true;
            }
        }
    }
    return false;
}

/* ---- fatal start-up errors ---- */

static void fatal(struct tr_up *up, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fatal(struct tr_up *up, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tr_up_logs_note(&up->logs, "%s", msg);
    dprintf(STDERR_FILENO, "trellis up: %s\n", msg);
    up->fatal = true;
    up->exit_code = 1;
    tr_up__stop(up, "start-up failed");
}

/* ---- the server ---- */

static void on_server_answer(void *data, int status, struct tr_slice body)
{
    struct tr_up *up = data;
    up->server_call = NULL;
    bool ok = status == 200;
    if (ok && !up->server_ready) {
        up->server_ready = true;
        tr_up_logs_note(&up->logs, "server ready on %s after %" PRIu64 " ms", up->server_listen,
                        now_ms(up) - up->server.started_ms);
    } else if (!ok && up->server_ready) {
        up->server_ready = false;
        tr_up_logs_note(&up->logs, "server not answering: %s",
                        status < 0 ? uv_strerror(status) : "error status");
    }
    tr_up__wake(up);
}

static void poll_server(struct tr_up *up, uint64_t now, uint64_t every)
{
    if (up->server_call != NULL || up->server.state != TR_UP_PROC_RUNNING ||
        now - up->server_poll_ms < every) {
        return;
    }
    up->server_poll_ms = now;
    if (tr_up_http_call(up->http, &up->server_addr, "GET", "/v1/status/leader", TR_SLICE_NULL,
                        on_server_answer, up, &up->server_call) != 0) {
        up->server_call = NULL;
    }
}

static void on_server_exit(struct tr_up_proc *p)
{
    struct tr_up *up = p->data;
    up->server_ready = false;
    tr_up_call_cancel(up->server_call);
    up->server_call = NULL;
    if (up->phase == TR_UP_PHASE_SERVER || up->phase == TR_UP_PHASE_CLEANUP) {
        char what[64];
        fatal(up, "the server exited while starting (%s); see %s/logs/server.log",
              tr_up_proc_last_exit(p, what, sizeof(what)), up->state_dir);
        return;
    }
    tr_up__wake(up);
}

static void start_server(struct tr_up *up)
{
    char workers[16];
    snprintf(workers, sizeof(workers), "%u", up->m->server_workers);
    const char *argv[] = {up->opts->exe,     "server",     "--listen",
                          up->server_listen, "--data-dir", up->m->data_dir,
                          "--workers",       workers,      NULL};
    static const char *const no_extra[] = {NULL};
    tr_up_proc_init(&up->server, &up->env, "server", argv, no_extra, up->m->dir);
    up->server.data = up;
    up->server.on_exit = on_server_exit;
    tr_up_proc_start(&up->server);
}

/* ---- registrations a previous run left behind ---- */

static void cleanup_done(struct tr_up *up)
{
    if (up->cleanup_pending == 0 && up->phase == TR_UP_PHASE_CLEANUP) {
        start_services(up);
    }
}

static void on_stale_deregistered(void *data, int status, struct tr_slice body)
{
    struct tr_up *up = data;
    up->cleanup_pending--;
    cleanup_done(up);
}

static bool ours(struct tr_up *up, const char *service)
{
    return service != NULL && tr_up_manifest_service(up->m, service) != NULL;
}

static void on_agent_services(void *data, int status, struct tr_slice body)
{
    struct tr_up *up = data;
    up->registry_call = NULL;
    up->cleanup_pending--;
    json_t *services = status == 200 ? json_loadb(body.ptr, body.len, 0, NULL) : NULL;
    if (services == NULL) {
        tr_up_logs_note(&up->logs,
                        "could not list the registry's services (%d); stale "
                        "registrations from an earlier run may remain",
                        status);
    }
    const char *id;
    json_t *svc;
    unsigned removed = 0;
    json_object_foreach(services, id, svc)
    {
        if (!ours(up, json_string_value(json_object_get(svc, "Service")))) {
            continue;
        }
        char target[300];
        snprintf(target, sizeof(target), "/v1/agent/service/deregister/%.200s", id);
        if (tr_up_http_call(up->http, &up->server_addr, "PUT", target, TR_SLICE_NULL,
                            on_stale_deregistered, up, NULL) == 0) {
            up->cleanup_pending++;
            removed++;
        }
    }
    if (removed > 0) {
        tr_up_logs_note(&up->logs, "removing %u registrations left by an earlier run", removed);
    }
    json_decref(services);
    cleanup_done(up);
}

static void start_cleanup(struct tr_up *up)
{
    up->phase = TR_UP_PHASE_CLEANUP;
    up->cleanup_pending = 1;
    if (tr_up_http_call(up->http, &up->server_addr, "GET", "/v1/agent/services", TR_SLICE_NULL,
                        on_agent_services, up, &up->registry_call) != 0) {
        up->registry_call = NULL;
        up->cleanup_pending = 0;
        cleanup_done(up);
    }
}

/* ---- the gateway ---- */

static void on_gateway_exit(struct tr_up_proc *p)
{
    struct tr_up *up = p->data;
    up->gateway_ready = false;
    tr_up_call_cancel(up->gateway_call);
    up->gateway_call = NULL;
    if (up->phase == TR_UP_PHASE_STARTING) {
        char what[64];
        fatal(up, "the gateway exited while starting (%s); see %s/logs/gateway.log",
              tr_up_proc_last_exit(p, what, sizeof(what)), up->state_dir);
        return;
    }
    tr_up__wake(up);
}

static void on_gateway_ready(void *data, int status, struct tr_slice body)
{
    struct tr_up *up = data;
    up->gateway_call = NULL;
    bool ok = status == 200;
    if (ok && !up->gateway_ready) {
        tr_up_logs_note(&up->logs, "gateway ready on %s after %" PRIu64 " ms", up->gateway_listen,
                        now_ms(up) - up->gateway.started_ms);
    }
    up->gateway_ready = ok;
    tr_up__wake(up);
}

static void poll_gateway(struct tr_up *up, uint64_t now)
{
    uint64_t every = up->gateway_ready ? TR_UP_SLOW_TICK_MS : TR_UP_FAST_TICK_MS;
    if (!up->gateway_started || up->gateway_call != NULL ||
        up->gateway.state != TR_UP_PROC_RUNNING || now - up->gateway_poll_ms < every) {
        return;
    }
    up->gateway_poll_ms = now;
    if (tr_up_http_call(up->http, &up->gateway_admin_addr, "GET", "/ready", TR_SLICE_NULL,
                        on_gateway_ready, up, &up->gateway_call) != 0) {
        up->gateway_call = NULL;
    }
}

static void start_gateway(struct tr_up *up)
{
    char workers[16];
    snprintf(workers, sizeof(workers), "%u", up->m->gateway_workers);
    const char *argv[] = {up->opts->exe, "proxy", "--config", up->gateway_yaml,
                          "--workers",   workers, NULL};
    static const char *const no_extra[] = {NULL};
    tr_up_proc_init(&up->gateway, &up->env, "gateway", argv, no_extra, up->m->dir);
    up->gateway.data = up;
    up->gateway.on_exit = on_gateway_exit;
    up->gateway_started = true;
    tr_up_proc_start(&up->gateway);
}

/* ---- watching the registry and the gateway's endpoints ---- */

static void each_replica(struct tr_up *up, void (*fn)(struct tr_up_replica *r, void *arg),
                         void *arg)
{
    for (size_t i = 0; i < up->nsvcs; i++) {
        struct tr_list *it;
        struct tr_list *tmp;
        tr_list_foreach_safe(it, tmp, &up->svcs[i].replicas)
        {
            fn(tr_container_of(it, struct tr_up_replica, link), arg);
        }
    }
}

static void apply_registry(struct tr_up_replica *r, void *arg)
{
    tr_up__replica_registry(r, arg);
}

static void on_registry_checks(void *data, int status, struct tr_slice body)
{
    struct tr_up *up = data;
    up->registry_call = NULL;
    json_t *checks = status == 200 ? json_loadb(body.ptr, body.len, 0, NULL) : NULL;
    if (json_is_array(checks)) {
        each_replica(up, apply_registry, checks);
    }
    json_decref(checks);
    tr_up__wake(up);
}

/* Does a replica wait for the registry (healthy but not yet passing there, or draining
 * and not yet deregistered)? */
static void wants_registry(struct tr_up_replica *r, void *arg)
{
    bool *want = arg;
    if (r->lc == TR_UP_LC_ACTIVE && r->health == TR_UP_HEALTH_PASSING &&
        r->reg != TR_UP_REG_PASSING) {
        *want = true;
    }
}

static void poll_registry(struct tr_up *up, uint64_t now)
{
    if (up->registry_call != NULL || !tr_up__server_usable(up)) {
        return;
    }
    bool fast = false;
    each_replica(up, wants_registry, &fast);
    if (now - up->registry_ms < (fast ? TR_UP_FAST_TICK_MS : TR_UP_SLOW_TICK_MS)) {
        return;
    }
    up->registry_ms = now;
    if (tr_up_http_call(up->http, &up->server_addr, "GET", "/v1/health/state/any", TR_SLICE_NULL,
                        on_registry_checks, up, &up->registry_call) != 0) {
        up->registry_call = NULL;
    }
}

static void apply_gateway(struct tr_up_replica *r, void *arg)
{
    tr_up__replica_gateway(r, arg);
}

static void on_clusters(void *data, int status, struct tr_slice body)
{
    struct tr_up *up = data;
    up->clusters_call = NULL;
    json_t *doc = status == 200 ? json_loadb(body.ptr, body.len, 0, NULL) : NULL;
    json_t *clusters = json_object_get(doc, "clusters");
    if (json_is_array(clusters)) {
        for (size_t i = 0; i < up->nsvcs; i++) {
            up->svcs[i].gateway_clusters = 0;
        }
        size_t i;
        json_t *c;
        json_array_foreach(clusters, i, c)
        {
            const char *name = json_string_value(json_object_get(c, "service"));
            for (size_t s = 0; name != NULL && s < up->nsvcs; s++) {
                if (strcmp(up->svcs[s].def->name, name) == 0) {
                    up->svcs[s].gateway_clusters++;
                }
            }
        }
        each_replica(up, apply_gateway, clusters);
    }
    json_decref(doc);
    tr_up__wake(up);
}

static void wants_gateway(struct tr_up_replica *r, void *arg)
{
    bool *want = arg;
    if (r->lc == TR_UP_LC_DRAINING && r->gone_ms == 0) {
        *want = true;
    }
    if (r->lc == TR_UP_LC_ACTIVE && r->ready && !r->in_gateway && r->svc->gateway_clusters > 0) {
        *want = true;
    }
}

static void poll_clusters(struct tr_up *up, uint64_t now)
{
    if (!up->has_gateway || !up->gateway_ready || up->clusters_call != NULL) {
        return;
    }
    bool fast = false;
    each_replica(up, wants_gateway, &fast);
    if (now - up->clusters_ms < (fast ? TR_UP_FAST_TICK_MS : TR_UP_SLOW_TICK_MS)) {
        return;
    }
    up->clusters_ms = now;
    if (tr_up_http_call(up->http, &up->gateway_admin_addr, "GET", "/clusters", TR_SLICE_NULL,
                        on_clusters, up, &up->clusters_call) != 0) {
        up->clusters_call = NULL;
    }
}

/* ---- start-up ---- */

static void start_services(struct tr_up *up)
{
    up->phase = TR_UP_PHASE_STARTING;
    if (up->has_gateway) {
        start_gateway(up);
    }
    for (size_t i = 0; i < up->nsvcs; i++) {
        struct tr_up_svc *svc = &up->svcs[i];
        for (unsigned n = 1; n <= svc->desired; n++) {
            struct tr_up_replica *r = tr_up__replica_new(svc, n, 0);
            if (r != NULL) {
                tr_up__replica_start(r);
            }
        }
    }
    tr_up__wake(up);
}

static void starting_tick(struct tr_up *up, uint64_t now)
{
    if (all_ready(up)) {
        announce(up, true);
        return;
    }
    if (now - up->started_ms > up->m->startup_timeout_ms) {
        announce(up, false);
    }
}

/* ---- the orderly stop ---- */

static void stop_replica(struct tr_up_replica *r, void *arg)
{
    tr_up__replica_stop_now(r);
}

static void kill_replica(struct tr_up_replica *r, void *arg)
{
    tr_up_proc_kill(&r->app);
    if (r->has_sidecar) {
        tr_up_proc_kill(&r->sidecar);
    }
}

static bool replicas_left(struct tr_up *up)
{
    for (size_t i = 0; i < up->nsvcs; i++) {
        if (!tr_list_empty(&up->svcs[i].replicas)) {
            return true;
        }
    }
    return false;
}

static bool proc_down(const struct tr_up_proc *p)
{
    return p->state == TR_UP_PROC_EXITED || p->state == TR_UP_PROC_IDLE;
}

static void on_closed_noop(struct tr_up_proc *p)
{
}

static void finish(struct tr_up *up)
{
    up->phase = TR_UP_PHASE_DONE;
    uv_timer_stop(&up->tick);
    uv_close((uv_handle_t *)&up->tick, NULL);
    tr_up_proc_close(&up->server, on_closed_noop);
    if (up->gateway_started) {
        tr_up_proc_close(&up->gateway, on_closed_noop);
    }
    tr_up_call_cancel(up->server_call);
    tr_up_call_cancel(up->gateway_call);
    tr_up_call_cancel(up->clusters_call);
    tr_up_call_cancel(up->registry_call);
    up->server_call = up->gateway_call = up->clusters_call = up->registry_call = NULL;
    tr_up_http_free(up->http);
    up->http = NULL;
    tr_up__control_close(up);
    uv_close((uv_handle_t *)&up->sig_term, NULL);
    uv_close((uv_handle_t *)&up->sig_int, NULL);
    uv_close((uv_handle_t *)&up->sig_hup, NULL);
    tr_up_logs_note(&up->logs, "stopped in %" PRIu64 " ms", now_ms(up) - up->stop_ms);
    if (up->opts->out_fd >= 0 && !up->fatal) {
        dprintf(up->opts->out_fd, "trellis up: %s stopped\n", up->m->name);
    }
}

static void stop_tick(struct tr_up *up)
{
    switch (up->stop_stage) {
    case TR_UP_STOP_GATEWAY:
        if (up->gateway_started && !proc_down(&up->gateway)) {
            return;
        }
        up->stop_stage = TR_UP_STOP_SERVICES;
        each_replica(up, stop_replica, NULL);
        /* fallthrough */
    case TR_UP_STOP_SERVICES:
        if (replicas_left(up)) {
            return;
        }
        up->stop_stage = TR_UP_STOP_SERVER;
        tr_up_call_cancel(up->server_call);
        up->server_call = NULL;
        tr_up_proc_stop(&up->server, up->m->stop_timeout_ms);
        /* fallthrough */
    case TR_UP_STOP_SERVER:
        if (!proc_down(&up->server)) {
            return;
        }
        up->stop_stage = TR_UP_STOP_FINISHED;
        finish(up);
        return;
    case TR_UP_STOP_FINISHED:
        return;
    default:
        TR_ASSERT(!"bad stop stage");
    }
}

void tr_up__stop(struct tr_up *up, const char *why)
{
    if (up->phase == TR_UP_PHASE_DONE) {
        return;
    }
    if (up->phase == TR_UP_PHASE_STOPPING) {
        tr_up_logs_note(&up->logs, "%s again: killing everything now", why);
        if (up->gateway_started) {
            tr_up_proc_stop(&up->gateway, 0);
            tr_up_proc_kill(&up->gateway);
        }
        each_replica(up, stop_replica, NULL);
        each_replica(up, kill_replica, NULL);
        tr_up_proc_kill(&up->server);
        return;
    }
    up->phase = TR_UP_PHASE_STOPPING;
    up->stop_ms = now_ms(up);
    up->stop_stage = TR_UP_STOP_GATEWAY;
    tr_up_logs_note(&up->logs,
                    "%s: stopping the gateway, then services and sidecars, then the "
                    "server",
                    why);
    for (size_t i = 0; i < up->nsvcs; i++) {
        tr_up__op_abort(&up->svcs[i], "trellis up is stopping");
    }
    tr_up_call_cancel(up->gateway_call);
    tr_up_call_cancel(up->clusters_call);
    up->gateway_call = up->clusters_call = NULL;
    if (up->gateway_started) {
        tr_up_proc_stop(&up->gateway, up->m->stop_timeout_ms);
    }
    tr_up__wake(up);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct tr_up *up = s->data;
    tr_up__stop(up, signum == SIGINT ? "SIGINT" : signum == SIGTERM ? "SIGTERM" : "SIGHUP");
}

/* ---- the tick ---- */

static void on_tick(uv_timer_t *t)
{
    struct tr_up *up = t->data;
    uint64_t now = now_ms(up);
    switch (up->phase) {
    case TR_UP_PHASE_SERVER:
        if (up->server_ready) {
            start_cleanup(up);
            break;
        }
        if (now - up->started_ms > up->m->startup_timeout_ms) {
            fatal(up, "the server did not answer on %s within %" PRIu64 " ms", up->server_listen,
                  up->m->startup_timeout_ms);
            break;
        }
        poll_server(up, now, TR_UP_FAST_TICK_MS);
        break;
    case TR_UP_PHASE_CLEANUP:
        break;
    case TR_UP_PHASE_STARTING:
    case TR_UP_PHASE_RUNNING:
        poll_server(up, now, up->server_ready ? TR_UP_SLOW_TICK_MS : TR_UP_FAST_TICK_MS);
        poll_gateway(up, now);
        poll_registry(up, now);
        poll_clusters(up, now);
        for (size_t i = 0; i < up->nsvcs; i++) {
            struct tr_list *it;
            struct tr_list *tmp;
            tr_list_foreach_safe(it, tmp, &up->svcs[i].replicas)
            {
                tr_up__replica_tick(tr_container_of(it, struct tr_up_replica, link), now);
            }
            tr_up__op_tick(&up->svcs[i], now);
        }
        if (up->phase == TR_UP_PHASE_STARTING) {
            starting_tick(up, now);
        }
        break;
    case TR_UP_PHASE_STOPPING:
        stop_tick(up);
        break;
    case TR_UP_PHASE_DONE:
        return;
    default:
        TR_ASSERT(!"bad phase");
    }
    if (up->phase == TR_UP_PHASE_DONE) {
        return;
    }
    uint64_t delay = busy(up, now) ? TR_UP_FAST_TICK_MS : TR_UP_SLOW_TICK_MS;
    up->tick_due = now + delay;
    uv_timer_start(&up->tick, on_tick, delay, 0);
}

/* ---- what to open ---- */

static void announce(struct tr_up *up, bool complete)
{
    up->phase = TR_UP_PHASE_RUNNING;
    uint64_t took = now_ms(up) - up->started_ms;
    unsigned replicas = 0;
    for (size_t i = 0; i < up->nsvcs; i++) {
        struct tr_list *it;
        for (it = up->svcs[i].replicas.next; it != &up->svcs[i].replicas; it = it->next) {
            replicas++;
        }
    }
    if (complete) {
        tr_up_logs_note(&up->logs, "all %u replicas of %zu services healthy in %" PRIu64 " ms",
                        replicas, up->nsvcs, took);
    } else {
        tr_up_logs_note(&up->logs,
                        "not everything is healthy after %" PRIu64 " ms; still "
                        "trying (see the table below)",
                        took);
    }
    if (up->opts->out_fd < 0) {
        return;
    }
    json_t *st = tr_up__status(up);
    struct tr_buf out;
    tr_buf_init(&out);
    tr_buf_appendf(&out, "\n%s is %s (%" PRIu64 " ms)\n\n", up->m->name,
                   complete ? "up" : "partly up", took);
    tr_up_status_format(st, &out);
    json_decref(st);
    tr_buf_appendf(&out, "\n");
    if (up->has_gateway) {
        tr_buf_appendf(&out, "  gateway    http://%s/\n", up->gateway_listen);
        tr_buf_appendf(&out, "  endpoints  http://%s/clusters\n", up->gateway_admin);
    }
    tr_buf_appendf(&out, "  registry   http://%s/v1/catalog/services\n", up->server_listen);
    tr_buf_appendf(&out, "  logs       %s/logs/ (trellis logs -f)\n", up->state_dir);
    tr_buf_appendf(&out, "  manage     trellis ps | trellis scale SERVICE=N | trellis rollout "
                         "SERVICE | trellis down (or Ctrl-C)\n\n");
    ssize_t w = write(up->opts->out_fd, tr_buf_data(&out), out.len);
    (void)w;
    tr_buf_dispose(&out);
}

/* ---- setting up ---- */

/* An address from the manifest: keeps a fixed port after checking it is free, or picks
 * one for port 0. `what` names the key in messages. */
static int resolve_addr(struct tr_up *up, const char *spec, const char *what, char *out,
                        size_t size, struct tr_addr *local)
{
    struct tr_addr a;
    TR_ASSERT(tr_addr_parse(spec, &a) == 0);
    const char *colon = strrchr(spec, ':');
    char host[64];
    snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
    if (host[0] == '\0' || strcmp(host, "*") == 0 || strcmp(host, "localhost") == 0) {
        snprintf(host, sizeof(host), "%s", host[0] == 'l' ? "127.0.0.1" : "0.0.0.0");
    }
    uint16_t port = (uint16_t)tr_addr_port(&a);
    if (port == 0) {
        int rc = tr_up_ports_take(&up->ports, 0, &port);
        if (rc != 0) {
            dprintf(STDERR_FILENO, "trellis up: %s: no free port\n", what);
            return rc;
        }
    } else {
        int rc = tr_up_ports_claim(&up->ports, host, port);
        if (rc != 0) {
            dprintf(2,
                    "trellis up: %s %s is in use (%s): is another trellis up or server "
                    "running? Use port 0 in %s to pick a free one\n",
                    what, spec, uv_strerror(rc), up->m->file);
            return rc;
        }
    }
    int w = snprintf(out, size, "%s:%u", host, (unsigned)port);
    if (w < 0 || (size_t)w >= size) {
        dprintf(STDERR_FILENO, "trellis up: %s: address %s is too long\n", what, host);
        return -ENAMETOOLONG;
    }
    /* trellis up itself talks to it on the loopback address when it listens on any. */
    tr_up_local_addr(port, local);
    if (strcmp(host, "0.0.0.0") != 0) {
        char text[96];
        int t = snprintf(text, sizeof(text), "%s:%u", host, (unsigned)port);
        if (t < 0 || (size_t)t >= sizeof(text) || tr_addr_parse(text, local) != 0) {
            tr_up_local_addr(port, local);
        }
    }
    return 0;
}

static int write_gateway_yaml(struct tr_up *up)
{
    char registry[96];
    snprintf(registry, sizeof(registry), "http://%s", up->server_listen);
    if (strncmp(up->server_listen, "0.0.0.0:", 8) == 0) {
        snprintf(registry, sizeof(registry), "http://127.0.0.1:%s", up->server_listen + 8);
    }
    struct tr_buf yaml;
    tr_buf_init(&yaml);
    struct tr_conf_err err = {""};
    int rc =
        tr_up_gateway_yaml(up->m, up->gateway_listen, up->gateway_admin, registry, &yaml, &err);
    if (rc != 0) {
        dprintf(2, "trellis up: %s\n", err.msg);
        tr_buf_dispose(&yaml);
        return rc;
    }
    rc = tr_up_state_path(up->m->dir, "gateway.yaml", up->gateway_yaml, sizeof(up->gateway_yaml));
    FILE *f = rc == 0 ? fopen(up->gateway_yaml, "w") : NULL;
    if (f == NULL) {
        dprintf(2, "trellis up: cannot write %s: %s\n", up->gateway_yaml, strerror(errno));
        tr_buf_dispose(&yaml);
        return -EIO;
    }
    fprintf(f, "# Written by trellis up from the gateway section of %s; edits are lost.\n",
            up->m->file);
    fwrite(tr_buf_data(&yaml), 1, yaml.len, f);
    rc = fclose(f) == 0 ? 0 : -EIO;
    tr_buf_dispose(&yaml);
    return rc;
}

/* Takes .trellis/up.lock for the life of the process, so that two trellis up never run
 * in one directory. */
static int take_lock(struct tr_up *up)
{
    char path[4200];
    TR_ASSERT(tr_up_state_path(up->m->dir, TR_UP_LOCK_FILE, path, sizeof(path)) == 0);
    up->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (up->lock_fd < 0) {
        dprintf(2, "trellis up: cannot open %s: %s\n", path, strerror(errno));
        return -errno;
    }
    if (flock(up->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        dprintf(2, "trellis up: already running for %s (see %s; stop it with trellis down)\n",
                up->m->dir, up->control_path);
        close(up->lock_fd);
        up->lock_fd = -1;
        return -EBUSY;
    }
    return 0;
}

static int prepare(struct tr_up *up)
{
    int rc = tr_up_state_path(up->m->dir, "", up->state_dir, sizeof(up->state_dir));
    if (rc == 0) {
        rc = tr_up_state_path(up->m->dir, TR_UP_CONTROL_FILE, up->control_path,
                              sizeof(up->control_path));
    }
    if (rc != 0) {
        dprintf(2, "trellis up: %s: path too long\n", up->m->dir);
        return rc;
    }
    if (mkdir(up->state_dir, 0755) != 0 && errno != EEXIST) {
        dprintf(2, "trellis up: cannot create %s: %s\n", up->state_dir, strerror(errno));
        return -errno;
    }
    if ((rc = take_lock(up)) != 0) {
        return rc;
    }
    char logdir[4200];
    snprintf(logdir, sizeof(logdir), "%s/%s", up->state_dir, TR_UP_LOG_DIR);
    if ((rc = tr_up_logs_open(&up->logs, logdir, up->opts->out_fd)) != 0) {
        dprintf(2, "trellis up: cannot open the logs in %s: %s\n", logdir, uv_strerror(rc));
        return rc;
    }
    up->logs_open = true;
    if ((rc = resolve_addr(up, up->m->server_listen, "server.listen", up->server_listen,
                           sizeof(up->server_listen), &up->server_addr)) != 0) {
        return rc;
    }
    if (up->m->gateway != NULL) {
        up->has_gateway = true;
        struct tr_addr unused;
        if ((rc = resolve_addr(up, up->m->gateway_listen, "gateway.listen", up->gateway_listen,
                               sizeof(up->gateway_listen), &unused)) != 0) {
            return rc;
        }
        if ((rc = resolve_addr(up, up->m->gateway_admin ? up->m->gateway_admin : "127.0.0.1:0",
                               "gateway.admin", up->gateway_admin, sizeof(up->gateway_admin),
                               &up->gateway_admin_addr)) != 0) {
            return rc;
        }
        if ((rc = write_gateway_yaml(up)) != 0) {
            return rc;
        }
    }
    return 0;
}

static void init_services(struct tr_up *up)
{
    tr_up_logs_pad(&up->logs, up->has_gateway ? strlen("gateway") : strlen("server"));
    up->nsvcs = up->m->nservices;
    up->svcs = tr_xcalloc(up->nsvcs + 1, sizeof(*up->svcs));
    for (size_t i = 0; i < up->nsvcs; i++) {
        struct tr_up_svc *svc = &up->svcs[i];
        svc->up = up;
        svc->def = &up->m->services[i];
        svc->desired = svc->def->replicas;
        tr_list_init(&svc->replicas);
        char name[96];
        snprintf(name, sizeof(name), "%s-%u%s", svc->def->name, svc->desired > 0 ? svc->desired : 1,
                 svc->def->sidecar ? ".sidecar" : "");
        tr_up_logs_pad(&up->logs, strlen(name));
    }
}

static void init_signals(struct tr_up *up)
{
    uv_signal_t *sigs[] = {&up->sig_term, &up->sig_int, &up->sig_hup};
    int nums[] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&up->loop, sigs[i]);
        sigs[i]->data = up;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
}

int tr_up_run(const struct tr_up_manifest *m, const struct tr_up_options *opts)
{
    signal(SIGPIPE, SIG_IGN);
    struct tr_up *up = tr_xcalloc(1, sizeof(*up));
    up->m = m;
    up->opts = opts;
    up->lock_fd = -1;
    uv_loop_init(&up->loop);
    tr_up_ports_init(&up->ports);
    up->env.loop = &up->loop;
    up->env.exe = opts->exe;
    up->env.logs = &up->logs;
    up->env.base_env = (const char *const *)environ;
    up->env.self = getpid();
    int rc = prepare(up);
    if (rc == 0) {
        rc = tr_up__control_open(up);
        if (rc != 0) {
            dprintf(2, "trellis up: cannot open the control API: %s\n", uv_strerror(rc));
        }
    }
    if (rc != 0) {
        if (up->logs_open) {
            tr_up_logs_close(&up->logs);
        }
        if (up->lock_fd >= 0) {
            close(up->lock_fd);
        }
        tr_up_ports_dispose(&up->ports);
        uv_run(&up->loop, UV_RUN_DEFAULT);
        uv_loop_close(&up->loop);
        tr_free_null(&up);
        return 1;
    }
    init_services(up);
    init_signals(up);
    up->http = tr_up_http_new(&up->loop);
    uv_timer_init(&up->loop, &up->tick);
    up->tick.data = up;
    up->started_ms = now_ms(up);
    tr_up_logs_note(&up->logs, "starting %s from %s (control API on %s)", m->name, m->file,
                    up->control_addr);
    start_server(up);
    up->phase = TR_UP_PHASE_SERVER;
    tr_up__wake(up);
    uv_run(&up->loop, UV_RUN_DEFAULT);
    /* Everything is closed; the loop is empty. */
    if (uv_loop_close(&up->loop) != 0) {
        uv_run(&up->loop, UV_RUN_DEFAULT);
        uv_loop_close(&up->loop);
    }
    tr_router_dispose(&up->router);
    tr_up_logs_close(&up->logs);
    close(up->lock_fd);
    tr_up_ports_dispose(&up->ports);
    int code = up->exit_code;
    tr_free_null(&up->svcs);
    tr_free_null(&up);
    return code;
}
