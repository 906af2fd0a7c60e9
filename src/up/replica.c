/* SPDX-License-Identifier: Apache-2.0 */
/* One service replica under trellis up: its ports, its sidecar and its app process, and
 * the states it goes through (see docs/internals/up.md):
 *
 *   ACTIVE:   sidecar started -> (sidecar accepts connections) -> app started ->
 *             health passing -> (no sidecar: registered by trellis up) -> registry
 *             passing = ready. Crashes restart the process with backoff and it goes
 *             back to "not ready" until it passes again.
 *   DRAINING: deregistered -> the gateway no longer lists it -> drain grace.
 *   STOPPING: SIGTERM to the app, and once it is gone to the sidecar (the app may still
 *             be finishing requests that call out through its sidecar).
 *   STOPPED:  ports released, processes closed, freed. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "up/shellwords.h"
#include "up/supervisor.h"

static void on_app_exit(struct tr_up_proc *p);
static void on_app_start(struct tr_up_proc *p);
static void on_sidecar_exit(struct tr_up_proc *p);
static void update_ready(struct tr_up_replica *r);

const char *tr_up__health_name(enum tr_up_health h)
{
    switch (h) {
    case TR_UP_HEALTH_UNKNOWN:
        return "unknown";
    case TR_UP_HEALTH_PASSING:
        return "passing";
    case TR_UP_HEALTH_FAILING:
        return "failing";
    default:
        TR_ASSERT(!"bad health");
        return "?";
    }
}

const char *tr_up__reg_name(enum tr_up_reg r)
{
    switch (r) {
    case TR_UP_REG_MISSING:
        return "missing";
    case TR_UP_REG_CRITICAL:
        return "critical";
    case TR_UP_REG_WARNING:
        return "warning";
    case TR_UP_REG_PASSING:
        return "passing";
    default:
        TR_ASSERT(!"bad registry state");
        return "?";
    }
}

static uint64_t now_ms(const struct tr_up_replica *r)
{
    return uv_now(&r->svc->up->loop);
}

/* ---- creation ---- */

/* The command with ${APP_PORT} and the like filled in from `vars` (the manifest parser
 * checked that every name exists). Returns a NULL-terminated array in one allocation. */
static char **expand_command(const struct tr_up_service_def *def, const char *const *vars)
{
    struct tr_buf words;
    tr_buf_init(&words);
    size_t *offsets = tr_xcalloc(def->argc + 1, sizeof(size_t));
    for (size_t i = 0; i < def->argc; i++) {
        const char *name;
        size_t len;
        offsets[i] = words.len;
        if (tr_up_expand_vars(def->argv[i], vars, &words, &name, &len) != 0) {
            tr_buf_append(&words, def->argv[i], strlen(def->argv[i]));
        }
        tr_buf_append(&words, "", 1);
    }
    size_t table = (def->argc + 1) * sizeof(char *);
    char **argv = tr_xmalloc(table + words.len);
    char *text = (char *)argv + table;
    memcpy(text, tr_buf_data(&words), words.len);
    for (size_t i = 0; i < def->argc; i++) {
        argv[i] = text + offsets[i];
    }
    argv[def->argc] = NULL;
    tr_buf_dispose(&words);
    tr_free_null(&offsets);
    return argv;
}

static void init_app(struct tr_up_replica *r)
{
    struct tr_up *up = r->svc->up;
    const struct tr_up_service_def *def = r->svc->def;
    char app_port[32];
    char app_id[96];
    char replica[32];
    char addr[96];
    char dapr_port[32];
    snprintf(app_port, sizeof(app_port), "APP_PORT=%u", (unsigned)r->app_port);
    snprintf(app_id, sizeof(app_id), "APP_ID=%s", def->name);
    snprintf(replica, sizeof(replica), "TRELLIS_REPLICA=%u", r->index);
    snprintf(addr, sizeof(addr), "TRELLIS_ADDR=%s", up->server_listen);
    snprintf(dapr_port, sizeof(dapr_port), "DAPR_HTTP_PORT=%u", (unsigned)r->sidecar_port);
    const char **vars = tr_xcalloc(def->nenv + 8, sizeof(char *));
    size_t n = 0;
    vars[n++] = app_port;
    vars[n++] = app_id;
    vars[n++] = replica;
    vars[n++] = addr;
    if (r->has_sidecar) {
        vars[n++] = dapr_port;
    }
    for (size_t i = 0; i < def->nenv; i++) {
        vars[n++] = def->env[i];
    }
    vars[n] = NULL;
    char **argv = expand_command(def, vars);
    tr_up_proc_init(&r->app, &up->env, r->name, (const char *const *)argv, vars, up->m->dir);
    tr_free_null(&argv);
    tr_free_null(&vars);
    r->app.data = r;
    r->app.on_exit = on_app_exit;
    r->app.on_start = on_app_start;
}

static void init_sidecar(struct tr_up_replica *r)
{
    struct tr_up *up = r->svc->up;
    const struct tr_up_service_def *def = r->svc->def;
    char app_port[8];
    char http_port[8];
    char server[80];
    snprintf(app_port, sizeof(app_port), "%u", (unsigned)r->app_port);
    snprintf(http_port, sizeof(http_port), "%u", (unsigned)r->sidecar_port);
    snprintf(server, sizeof(server), "http://%s", up->server_listen);
    const char *argv[20];
    size_t n = 0;
    argv[n++] = up->opts->exe;
    argv[n++] = "sidecar";
    argv[n++] = "--app-id";
    argv[n++] = def->name;
    argv[n++] = "--app-port";
    argv[n++] = app_port;
    argv[n++] = "--http-port";
    argv[n++] = http_port;
    argv[n++] = "--server";
    argv[n++] = server;
    if (up->m->components != NULL) {
        argv[n++] = "--components";
        argv[n++] = up->m->components;
    }
    if (def->health != NULL) {
        argv[n++] = "--app-health-path";
        argv[n++] = def->health;
    }
    argv[n] = NULL;
    char name[96];
    snprintf(name, sizeof(name), "%s.sidecar", r->name);
    static const char *const no_extra[] = {NULL};
    tr_up_proc_init(&r->sidecar, &up->env, name, argv, no_extra, up->m->dir);
    r->sidecar.data = r;
    r->sidecar.on_exit = on_sidecar_exit;
    tr_up_logs_pad(&up->logs, strlen(name));
}

struct tr_up_replica *tr_up__replica_new(struct tr_up_svc *svc, unsigned index, unsigned gen)
{
    struct tr_up *up = svc->up;
    const struct tr_up_service_def *def = svc->def;
    uint16_t app_port = 0;
    uint16_t sidecar_port = 0;
    if (tr_up_ports_take(&up->ports, def->port, &app_port) != 0) {
        tr_up_logs_note(&up->logs, "%s-%u: no free port%s", def->name, index,
                        def->port ? " at or above the manifest's port" : "");
        return NULL;
    }
    if (def->sidecar && tr_up_ports_take(&up->ports, 0, &sidecar_port) != 0) {
        tr_up_ports_release(&up->ports, app_port);
        tr_up_logs_note(&up->logs, "%s-%u: no free port for the sidecar", def->name, index);
        return NULL;
    }
    struct tr_up_replica *r = tr_xcalloc(1, sizeof(*r));
    tr_list_init(&r->link);
    r->svc = svc;
    r->index = index;
    r->gen = gen;
    r->app_port = app_port;
    r->sidecar_port = sidecar_port;
    r->has_sidecar = def->sidecar;
    snprintf(r->name, sizeof(r->name), "%s-%u", def->name, index);
    /* The sidecar registers as <app-id>-<its port> (docs/sidecar.md); trellis up
     * registers sidecar-less replicas the same way with the app's port. */
    snprintf(r->reg_id, sizeof(r->reg_id), "%s-%u", def->name,
             (unsigned)(r->has_sidecar ? sidecar_port : app_port));
    init_app(r);
    if (r->has_sidecar) {
        init_sidecar(r);
    }
    tr_up_logs_pad(&up->logs, strlen(r->name));
    tr_list_insert_tail(&svc->replicas, &r->link);
    return r;
}

/* ---- starting ---- */

static void start_app(struct tr_up_replica *r)
{
    if (r->app_started || r->lc != TR_UP_LC_ACTIVE) {
        return;
    }
    r->app_started = true;
    tr_up_proc_start(&r->app);
    tr_up__wake(r->svc->up);
}

void tr_up__replica_start(struct tr_up_replica *r)
{
    r->created_ms = now_ms(r);
    if (r->has_sidecar) {
        tr_up_proc_start(&r->sidecar);
    } else {
        start_app(r);
    }
    tr_up__wake(r->svc->up);
}

static void on_sidecar_tcp(void *data, int status)
{
    struct tr_up_replica *r = data;
    r->tcp = NULL;
    if (status == 0) {
        start_app(r);
    }
}

static void wait_sidecar(struct tr_up_replica *r, uint64_t now)
{
    if (now - r->created_ms >= TR_UP_SIDECAR_WAIT_MS) {
        tr_up_logs_note(&r->svc->up->logs,
                        "%s: sidecar not listening after %u ms; starting the "
                        "app anyway",
                        r->name, TR_UP_SIDECAR_WAIT_MS);
        start_app(r);
        return;
    }
    if (r->tcp != NULL || r->sidecar.state != TR_UP_PROC_RUNNING) {
        return;
    }
    struct tr_addr a;
    tr_up_local_addr(r->sidecar_port, &a);
    if (tr_up_tcp_check(&r->svc->up->loop, &a, on_sidecar_tcp, r, &r->tcp) != 0) {
        r->tcp = NULL;
    }
}

/* ---- health ---- */

static void set_health(struct tr_up_replica *r, enum tr_up_health h)
{
    enum tr_up_health was = r->health;
    r->health = h;
    r->probe_ms = now_ms(r);
    if (was == TR_UP_HEALTH_PASSING && h == TR_UP_HEALTH_FAILING && r->lc == TR_UP_LC_ACTIVE) {
        tr_up_logs_note(&r->svc->up->logs, "%s: health check failing", r->name);
    }
    update_ready(r);
}

static void on_health_http(void *data, int status, struct tr_slice body)
{
    struct tr_up_replica *r = data;
    r->probe = NULL;
    set_health(r, status >= 200 && status < 300 ? TR_UP_HEALTH_PASSING : TR_UP_HEALTH_FAILING);
}

static void on_health_tcp(void *data, int status)
{
    struct tr_up_replica *r = data;
    r->tcp = NULL;
    set_health(r, status == 0 ? TR_UP_HEALTH_PASSING : TR_UP_HEALTH_FAILING);
}

static uint64_t probe_interval(const struct tr_up_replica *r, uint64_t now)
{
    if (r->ready) {
        return TR_UP_SLOW_TICK_MS;
    }
    /* Fast while it is expected to come up; a replica that stays unhealthy is checked
     * once a second so that it does not keep the whole loop busy. */
    uint64_t since = r->app.started_ms;
    return now - since < r->svc->up->m->startup_timeout_ms ? TR_UP_FAST_TICK_MS
                                                           : TR_UP_SLOW_TICK_MS;
}

static void probe_health(struct tr_up_replica *r, uint64_t now)
{
    if (r->app.state != TR_UP_PROC_RUNNING || r->probe != NULL || r->tcp != NULL) {
        return;
    }
    if (now - r->probe_ms < probe_interval(r, now)) {
        return;
    }
    struct tr_up *up = r->svc->up;
    struct tr_addr a;
    tr_up_local_addr(r->app_port, &a);
    r->probe_ms = now;
    int rc;
    if (r->svc->def->health != NULL) {
        rc = tr_up_http_call(up->http, &a, "GET", r->svc->def->health, TR_SLICE_NULL,
                             on_health_http, r, &r->probe);
        if (rc != 0) {
            r->probe = NULL;
        }
    } else {
        rc = tr_up_tcp_check(&up->loop, &a, on_health_tcp, r, &r->tcp);
        if (rc != 0) {
            r->tcp = NULL;
        }
    }
    if (rc != 0) {
        set_health(r, TR_UP_HEALTH_FAILING);
    }
}

static void update_ready(struct tr_up_replica *r)
{
    bool was = r->ready;
    r->ready = r->lc == TR_UP_LC_ACTIVE && r->app.state == TR_UP_PROC_RUNNING &&
               r->health == TR_UP_HEALTH_PASSING && r->reg == TR_UP_REG_PASSING;
    if (r->ready && !was) {
        uint64_t now = now_ms(r);
        r->ready_ms = now;
        tr_up_logs_note(&r->svc->up->logs, "%s ready: pid %ld, port %u, %" PRIu64 " ms after start",
                        r->name, (long)r->app.pid, (unsigned)r->app_port, now - r->app.started_ms);
    }
}

/* ---- registration (replicas without a sidecar) ---- */

static void on_registered(void *data, int status, struct tr_slice body)
{
    struct tr_up_replica *r = data;
    r->reg_call = NULL;
    if (status == 200) {
        r->registered = true;
        tr_up__wake(r->svc->up);
    } else {
        tr_up_logs_note(&r->svc->up->logs, "%s: registering in the registry failed (%d): %.*s",
                        r->name, status, (int)(body.len > 200 ? 200 : body.len),
                        body.ptr ? body.ptr : "");
    }
}

static void register_app(struct tr_up_replica *r)
{
    struct tr_up *up = r->svc->up;
    const struct tr_up_service_def *def = r->svc->def;
    char target[128];
    char check[1200];
    char replica[16];
    snprintf(replica, sizeof(replica), "%u", r->index);
    json_t *chk;
    if (def->health != NULL) {
        snprintf(check, sizeof(check), "http://127.0.0.1:%u%s", (unsigned)r->app_port, def->health);
        chk = json_pack("{s:s, s:s, s:s}", "HTTP", check, "Interval", "1s", "Timeout", "1s");
    } else {
        snprintf(check, sizeof(check), "127.0.0.1:%u", (unsigned)r->app_port);
        chk = json_pack("{s:s, s:s, s:s}", "TCP", check, "Interval", "1s", "Timeout", "1s");
    }
    json_t *body = json_pack("{s:s, s:s, s:s, s:i, s:{s:s, s:s}, s:o}", "ID", r->reg_id, "Name",
                             def->name, "Address", "127.0.0.1", "Port", (int)r->app_port, "Meta",
                             "replica", replica, "trellis_up", up->m->name, "Check", chk);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    snprintf(target, sizeof(target), "/v1/agent/service/register");
    if (tr_up_http_call(up->http, &up->server_addr, "PUT", target, tr_slice_cstr(text),
                        on_registered, r, &r->reg_call) != 0) {
        r->reg_call = NULL;
    }
    free(text);
}

static void on_deregistered(void *data, int status, struct tr_slice body)
{
    struct tr_up_replica *r = data;
    r->reg_call = NULL;
    if (status == 200 || status == 404) {
        r->deregistered = true;
        r->registered = false;
        r->reg = TR_UP_REG_MISSING;
        tr_up__wake(r->svc->up);
    }
}

static void deregister_target(const struct tr_up_replica *r, char *out, size_t size)
{
    snprintf(out, size, "/v1/agent/service/deregister/%s", r->reg_id);
}

static void deregister(struct tr_up_replica *r)
{
    struct tr_up *up = r->svc->up;
    char target[160];
    deregister_target(r, target, sizeof(target));
    if (tr_up_http_call(up->http, &up->server_addr, "PUT", target, TR_SLICE_NULL, on_deregistered,
                        r, &r->reg_call) != 0) {
        r->reg_call = NULL;
    }
}

static void on_deregistered_detached(void *data, int status, struct tr_slice body)
{
}

/* ---- the registry's and the gateway's view ---- */

static enum tr_up_reg check_status(const char *s)
{
    if (strcmp(s, "passing") == 0) {
        return TR_UP_REG_PASSING;
    }
    if (strcmp(s, "warning") == 0) {
        return TR_UP_REG_WARNING;
    }
    return TR_UP_REG_CRITICAL;
}

void tr_up__replica_registry(struct tr_up_replica *r, json_t *checks)
{
    enum tr_up_reg worst = TR_UP_REG_MISSING;
    size_t i;
    json_t *c;
    json_array_foreach(checks, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "ServiceID"));
        const char *status = json_string_value(json_object_get(c, "Status"));
        if (id == NULL || status == NULL || strcmp(id, r->reg_id) != 0) {
            continue;
        }
        enum tr_up_reg s = check_status(status);
        if (worst == TR_UP_REG_MISSING || s < worst) {
            worst = s;
        }
    }
    r->reg = worst;
    update_ready(r);
}

void tr_up__replica_gateway(struct tr_up_replica *r, json_t *clusters)
{
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)r->app_port);
    bool found = false;
    size_t i;
    json_t *c;
    json_array_foreach(clusters, i, c)
    {
        const char *svc = json_string_value(json_object_get(c, "service"));
        if (svc == NULL || strcmp(svc, r->svc->def->name) != 0) {
            continue;
        }
        size_t j;
        json_t *ep;
        json_array_foreach(json_object_get(c, "endpoints"), j, ep)
        {
            const char *a = json_string_value(json_object_get(ep, "address"));
            if (a != NULL && strcmp(a, addr) == 0) {
                found = true;
            }
        }
    }
    r->in_gateway = found;
    if (!found && r->lc == TR_UP_LC_DRAINING && r->deregistered && r->gone_ms == 0) {
        r->gone_ms = now_ms(r);
    }
}

/* ---- stopping ---- */

static void on_proc_closed(struct tr_up_proc *p)
{
    struct tr_up_replica *r = p->data;
    if (--r->closes == 0) {
        tr_free_null(&r);
    }
}

static void cancel_calls(struct tr_up_replica *r)
{
    tr_up_call_cancel(r->probe);
    r->probe = NULL;
    tr_up_call_cancel(r->reg_call);
    r->reg_call = NULL;
    tr_up_tcp_cancel(r->tcp);
    r->tcp = NULL;
}

static bool proc_down(const struct tr_up_proc *p)
{
    return p->state == TR_UP_PROC_EXITED || p->state == TR_UP_PROC_IDLE;
}

/* Both processes are gone: release everything. */
static void finish(struct tr_up_replica *r)
{
    if (r->lc == TR_UP_LC_STOPPED) {
        return;
    }
    struct tr_up_svc *svc = r->svc;
    struct tr_up *up = svc->up;
    r->lc = TR_UP_LC_STOPPED;
    r->ready = false;
    cancel_calls(r);
    tr_up_ports_release(&up->ports, r->app_port);
    if (r->has_sidecar) {
        tr_up_ports_release(&up->ports, r->sidecar_port);
    }
    tr_up__op_forget(svc, r);
    tr_list_remove(&r->link);
    if (up->phase != TR_UP_PHASE_STOPPING) {
        tr_up_logs_note(&up->logs, "%s stopped (port %u)", r->name, (unsigned)r->app_port);
    }
    r->closes = r->has_sidecar ? 2 : 1;
    tr_up_proc_close(&r->app, on_proc_closed);
    if (r->has_sidecar) {
        tr_up_proc_close(&r->sidecar, on_proc_closed);
    }
    tr_up__wake(up);
}

static void stop_sidecar(struct tr_up_replica *r)
{
    if (!r->has_sidecar || tr_up_proc_stop(&r->sidecar, r->svc->def->stop_timeout_ms) ||
        proc_down(&r->sidecar)) {
        finish(r);
    }
}

static void begin_stop(struct tr_up_replica *r)
{
    r->lc = TR_UP_LC_STOPPING;
    r->ready = false;
    cancel_calls(r);
    if (tr_up_proc_stop(&r->app, r->svc->def->stop_timeout_ms)) {
        stop_sidecar(r);
    }
}

void tr_up__replica_drain(struct tr_up_replica *r)
{
    if (r->lc != TR_UP_LC_ACTIVE) {
        return;
    }
    uint64_t now = now_ms(r);
    r->lc = TR_UP_LC_DRAINING;
    r->ready = false;
    r->drain_ms = now;
    r->gone_ms = 0;
    r->deregistered = false;
    cancel_calls(r);
    /* It is leaving: a crash now is not worth a restart. */
    r->app.supervise = false;
    tr_up_logs_note(&r->svc->up->logs, "%s draining (pid %ld, port %u)", r->name, (long)r->app.pid,
                    (unsigned)r->app_port);
    if (tr_up__server_usable(r->svc->up)) {
        deregister(r);
    } else {
        r->deregistered = true;
    }
    tr_up__wake(r->svc->up);
}

static void drain_tick(struct tr_up_replica *r, uint64_t now)
{
    struct tr_up *up = r->svc->up;
    if (!r->deregistered) {
        if (r->reg_call == NULL) {
            if (tr_up__server_usable(up)) {
                deregister(r);
            } else {
                r->deregistered = true;
            }
        }
        return;
    }
    if (r->gone_ms == 0) {
        bool watch = up->has_gateway && up->gateway_ready && r->svc->gateway_clusters > 0 &&
                     r->app.state == TR_UP_PROC_RUNNING;
        if (!watch) {
            r->gone_ms = now;
        } else if (now - r->drain_ms >= TR_UP_GATEWAY_DRAIN_MS) {
            tr_up_logs_note(&up->logs,
                            "%s: the gateway still lists it after %u ms; stopping it "
                            "anyway",
                            r->name, TR_UP_GATEWAY_DRAIN_MS);
            r->gone_ms = now;
        } else {
            return;
        }
    }
    uint64_t grace = r->app.state == TR_UP_PROC_RUNNING ? up->m->drain_grace_ms : 0;
    if (now - r->gone_ms >= grace) {
        begin_stop(r);
    }
}

void tr_up__replica_stop_now(struct tr_up_replica *r)
{
    if (r->lc == TR_UP_LC_STOPPING || r->lc == TR_UP_LC_STOPPED) {
        return;
    }
    struct tr_up *up = r->svc->up;
    cancel_calls(r);
    if (!r->has_sidecar && r->registered && tr_up__server_usable(up)) {
        /* Best effort, not waited for: the next start cleans up what this misses. */
        char target[160];
        deregister_target(r, target, sizeof(target));
        if (tr_up_http_call(up->http, &up->server_addr, "PUT", target, TR_SLICE_NULL,
                            on_deregistered_detached, up, NULL) != 0) {
            tr_up_logs_note(&up->logs, "%s: could not deregister it", r->name);
        }
    }
    r->lc = TR_UP_LC_STOPPING;
    r->ready = false;
    bool app_down = tr_up_proc_stop(&r->app, r->svc->def->stop_timeout_ms);
    bool sidecar_down =
        !r->has_sidecar || tr_up_proc_stop(&r->sidecar, r->svc->def->stop_timeout_ms);
    if (app_down && sidecar_down) {
        finish(r);
    }
}

/* ---- process events ---- */

static void on_app_exit(struct tr_up_proc *p)
{
    struct tr_up_replica *r = p->data;
    tr_up_call_cancel(r->probe);
    r->probe = NULL;
    if (r->lc == TR_UP_LC_ACTIVE) {
        tr_up_tcp_cancel(r->tcp);
        r->tcp = NULL;
    }
    r->health = TR_UP_HEALTH_UNKNOWN;
    update_ready(r);
    switch (r->lc) {
    case TR_UP_LC_ACTIVE:
        tr_up__wake(r->svc->up);
        return;
    case TR_UP_LC_DRAINING:
        /* Exited on its own while draining: nothing left to wait for. */
        if (proc_down(p)) {
            begin_stop(r);
        }
        return;
    case TR_UP_LC_STOPPING:
        if (!r->has_sidecar || proc_down(&r->sidecar)) {
            finish(r);
        } else if (r->sidecar.state != TR_UP_PROC_STOPPING) {
            stop_sidecar(r);
        }
        return;
    case TR_UP_LC_STOPPED:
        return;
    default:
        TR_ASSERT(!"bad lifecycle");
    }
}

static void on_app_start(struct tr_up_proc *p)
{
    struct tr_up_replica *r = p->data;
    r->health = TR_UP_HEALTH_UNKNOWN;
    r->probe_ms = 0;
    tr_up__wake(r->svc->up);
}

static void on_sidecar_exit(struct tr_up_proc *p)
{
    struct tr_up_replica *r = p->data;
    if (r->lc == TR_UP_LC_STOPPING && proc_down(p) && proc_down(&r->app)) {
        finish(r);
    }
}

/* ---- the tick ---- */

void tr_up__replica_tick(struct tr_up_replica *r, uint64_t now)
{
    switch (r->lc) {
    case TR_UP_LC_ACTIVE:
        if (!r->app_started) {
            wait_sidecar(r, now);
            return;
        }
        probe_health(r, now);
        if (!r->has_sidecar && !r->registered && r->reg_call == NULL &&
            r->health == TR_UP_HEALTH_PASSING && tr_up__server_usable(r->svc->up)) {
            register_app(r);
        }
        return;
    case TR_UP_LC_DRAINING:
        drain_tick(r, now);
        return;
    case TR_UP_LC_STOPPING:
    case TR_UP_LC_STOPPED:
        return;
    default:
        TR_ASSERT(!"bad lifecycle");
    }
}

bool tr_up__replica_busy(const struct tr_up_replica *r, uint64_t now)
{
    switch (r->lc) {
    case TR_UP_LC_ACTIVE:
        if (!r->app_started) {
            return true;
        }
        if (r->ready || r->app.state != TR_UP_PROC_RUNNING) {
            return false;
        }
        return now - r->app.started_ms < r->svc->up->m->startup_timeout_ms;
    case TR_UP_LC_DRAINING:
        return true;
    default:
        return false;
    }
}

const char *tr_up__replica_state(const struct tr_up_replica *r)
{
    switch (r->lc) {
    case TR_UP_LC_DRAINING:
        return "draining";
    case TR_UP_LC_STOPPING:
        return "stopping";
    case TR_UP_LC_STOPPED:
        return "stopped";
    case TR_UP_LC_ACTIVE:
        break;
    default:
        TR_ASSERT(!"bad lifecycle");
    }
    if (!r->app_started) {
        return r->has_sidecar && tr_up_proc_crashlooping(&r->sidecar) ? "crashloop" : "starting";
    }
    if (r->app.state != TR_UP_PROC_RUNNING || tr_up_proc_crashlooping(&r->app)) {
        return tr_up_proc_state_name(&r->app);
    }
    if (r->has_sidecar && r->sidecar.state != TR_UP_PROC_RUNNING) {
        return tr_up_proc_crashlooping(&r->sidecar) ? "crashloop" : "sidecar-down";
    }
    if (r->ready) {
        return "running";
    }
    return r->ready_ms > r->app.started_ms ? "unhealthy" : "starting";
}
