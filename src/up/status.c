/* SPDX-License-Identifier: Apache-2.0 */
/* The status document of a running trellis up, and its table (see status.h). RSS comes
 * from /proc/<pid>/status at the moment of the request. */
#include "up/status.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "up/supervisor.h"

#define NCOLS 11

static const char *const header[NCOLS] = {
    "SERVICE",  "REPLICA", "STATE",    "PID", "PORT",      "SIDECAR",
    "RESTARTS", "HEALTH",  "REGISTRY", "RSS", "LAST EXIT",
};

/* ---- the document ---- */

static uint64_t now_of(struct tr_up *up)
{
    return uv_now(&up->loop);
}

static json_t *proc_json(struct tr_up *up, const struct tr_up_proc *p, const char *state)
{
    char last[64];
    tr_up_proc_last_exit(p, last, sizeof(last));
    bool alive = p->state == TR_UP_PROC_RUNNING || p->state == TR_UP_PROC_STOPPING;
    json_t *o = json_pack(
        "{s:s, s:I, s:i, s:s, s:I, s:I}", "state", state != NULL ? state : tr_up_proc_state_name(p),
        "pid", (json_int_t)(alive ? p->pid : 0), "restarts", (int)p->restarts, "last_exit", last,
        "rss_kib", (json_int_t)(alive ? tr_up_rss_kib(p->pid) : 0), "uptime_ms",
        (json_int_t)(alive ? now_of(up) - p->started_ms : 0));
    return o;
}

static json_t *replica_json(struct tr_up *up, const struct tr_up_replica *r)
{
    json_t *o = proc_json(up, &r->app, tr_up__replica_state(r));
    json_object_set_new(o, "service", json_string(r->svc->def->name));
    json_object_set_new(o, "replica", json_integer(r->index));
    json_object_set_new(o, "name", json_string(r->name));
    json_object_set_new(o, "generation", json_integer(r->gen));
    json_object_set_new(o, "app_port", json_integer(r->app_port));
    json_object_set_new(o, "health", json_string(tr_up__health_name(r->health)));
    json_object_set_new(o, "registry", json_string(tr_up__reg_name(r->reg)));
    json_object_set_new(o, "registry_id", json_string(r->reg_id));
    json_object_set_new(o, "ready", json_boolean(r->ready));
    json_object_set_new(o, "crashloop", json_boolean(tr_up_proc_crashlooping(&r->app)));
    if (r->has_sidecar) {
        json_t *sc = proc_json(up, &r->sidecar, NULL);
        json_object_set_new(sc, "port", json_integer(r->sidecar_port));
        json_object_set_new(o, "sidecar", sc);
    } else {
        json_object_set_new(o, "sidecar", json_null());
    }
    return o;
}

json_t *tr_up__status(struct tr_up *up)
{
    static const char *const phases[] = {"starting", "starting", "starting",
                                         "running",  "stopping", "stopped"};
    json_t *st = json_object();
    json_object_set_new(st, "name", json_string(up->m->name));
    json_object_set_new(st, "manifest", json_string(up->m->file));
    json_object_set_new(st, "dir", json_string(up->m->dir));
    json_object_set_new(st, "pid", json_integer(getpid()));
    json_object_set_new(st, "phase", json_string(phases[up->phase]));
    json_object_set_new(st, "uptime_ms", json_integer((json_int_t)(now_of(up) - up->started_ms)));
    json_object_set_new(st, "rss_kib", json_integer((json_int_t)tr_up_rss_kib(getpid())));
    uint64_t trellis_rss = 0;
    uint64_t app_rss = 0;
    unsigned trellis_n = 0;
    unsigned app_n = 0;
    unsigned sidecars = 0;
    json_t *server = proc_json(up, &up->server, NULL);
    json_object_set_new(server, "listen", json_string(up->server_listen));
    json_object_set_new(server, "health", json_string(up->server_ready ? "passing" : "failing"));
    trellis_rss += json_integer_value(json_object_get(server, "rss_kib"));
    trellis_n += json_integer_value(json_object_get(server, "pid")) != 0;
    json_object_set_new(st, "server", server);
    if (up->has_gateway) {
        json_t *gw = proc_json(up, &up->gateway, up->gateway_started ? NULL : "starting");
        json_object_set_new(gw, "listen", json_string(up->gateway_listen));
        json_object_set_new(gw, "admin", json_string(up->gateway_admin));
        json_object_set_new(gw, "health", json_string(up->gateway_ready ? "passing" : "failing"));
        trellis_rss += json_integer_value(json_object_get(gw, "rss_kib"));
        trellis_n += json_integer_value(json_object_get(gw, "pid")) != 0;
        json_object_set_new(st, "gateway", gw);
    } else {
        json_object_set_new(st, "gateway", json_null());
    }
    json_t *svcs = json_array();
    for (size_t i = 0; i < up->nsvcs; i++) {
        struct tr_up_svc *svc = &up->svcs[i];
        json_t *reps = json_array();
        struct tr_list *it;
        for (it = svc->replicas.next; it != &svc->replicas; it = it->next) {
            const struct tr_up_replica *r = tr_container_of(it, struct tr_up_replica, link);
            json_t *rj = replica_json(up, r);
            uint64_t rss = json_integer_value(json_object_get(rj, "rss_kib"));
            app_rss += rss;
            app_n += rss > 0;
            json_t *sc = json_object_get(rj, "sidecar");
            if (json_is_object(sc)) {
                uint64_t srss = json_integer_value(json_object_get(sc, "rss_kib"));
                trellis_rss += srss;
                trellis_n += srss > 0;
                sidecars += srss > 0;
            }
            json_array_append_new(reps, rj);
        }
        const char *op = svc->op == NULL                   ? NULL
                         : svc->op->kind == TR_UP_OP_SCALE ? "scale"
                                                           : "rollout";
        json_array_append_new(svcs, json_pack("{s:s, s:i, s:s?, s:s?, s:o}", "name", svc->def->name,
                                              "desired", (int)svc->desired, "health_path",
                                              svc->def->health, "operation", op, "replicas", reps));
    }
    json_object_set_new(st, "services", svcs);
    json_object_set_new(st, "totals",
                        json_pack("{s:I, s:i, s:i, s:I, s:i}", "trellis_rss_kib",
                                  (json_int_t)trellis_rss, "trellis_processes", (int)trellis_n,
                                  "sidecars", (int)sidecars, "services_rss_kib",
                                  (json_int_t)app_rss, "service_processes", (int)app_n));
    return st;
}

/* ---- the table ---- */

const char *tr_up_format_kib(unsigned long long kib, char *buf, size_t size)
{
    if (kib == 0) {
        snprintf(buf, size, "-");
    } else {
        snprintf(buf, size, "%.1f MiB", (double)kib / 1024.0);
    }
    return buf;
}

struct table {
    struct tr_buf cells; /* NUL-terminated strings, NCOLS per row */
    size_t rows;
    size_t width[NCOLS];
};

static void add_row(struct table *t, const char *const *row)
{
    for (size_t c = 0; c < NCOLS; c++) {
        const char *s = row[c] != NULL && row[c][0] != '\0' ? row[c] : "-";
        size_t len = strlen(s);
        if (len > t->width[c]) {
            t->width[c] = len;
        }
        tr_buf_append(&t->cells, s, len + 1);
    }
    t->rows++;
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

static void num(json_t *o, const char *key, char *buf, size_t size)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v) && json_integer_value(v) != 0) {
        snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_integer(v) && strcmp(key, "restarts") == 0) {
        snprintf(buf, size, "0");
    } else {
        snprintf(buf, size, "-");
    }
}

static void proc_row(struct table *t, const char *service, const char *replica, json_t *p,
                     const char *port, const char *sidecar, const char *registry)
{
    char pid[24];
    char restarts[24];
    char rss[32];
    num(p, "pid", pid, sizeof(pid));
    num(p, "restarts", restarts, sizeof(restarts));
    tr_up_format_kib((unsigned long long)json_integer_value(json_object_get(p, "rss_kib")), rss,
                     sizeof(rss));
    const char *row[NCOLS] = {
        service,  replica, str(p, "state"),     pid, port, sidecar, restarts, str(p, "health"),
        registry, rss,     str(p, "last_exit"),
    };
    add_row(t, row);
}

static const char *port_of(const char *listen)
{
    const char *c = strrchr(listen, ':');
    return c != NULL ? c + 1 : listen;
}

static void replica_row(struct table *t, json_t *r)
{
    char replica[24];
    char port[16];
    char sidecar[16] = "";
    num(r, "replica", replica, sizeof(replica));
    num(r, "app_port", port, sizeof(port));
    json_t *sc = json_object_get(r, "sidecar");
    json_t *shown = r;
    json_t *merged = NULL;
    if (json_is_object(sc)) {
        num(sc, "port", sidecar, sizeof(sidecar));
        /* RESTARTS counts the app's and the sidecar's; RSS is the app's alone (the
         * sidecar's is in the JSON and in the Trellis total). */
        merged = json_deep_copy(r);
        json_int_t restarts = json_integer_value(json_object_get(r, "restarts")) +
                              json_integer_value(json_object_get(sc, "restarts"));
        json_object_set_new(merged, "restarts", json_integer(restarts));
        shown = merged;
    }
    proc_row(t, str(r, "service"), replica, shown, port, sidecar, str(r, "registry"));
    json_decref(merged);
}

static void print_table(const struct table *t, struct tr_buf *out)
{
    const char *cell = tr_buf_data(&t->cells);
    for (size_t r = 0; r < t->rows; r++) {
        struct tr_buf line;
        tr_buf_init(&line);
        for (size_t c = 0; c < NCOLS; c++) {
            size_t len = strlen(cell);
            tr_buf_append(&line, cell, len);
            if (c + 1 < NCOLS) {
                for (size_t pad = len; pad < t->width[c] + 2; pad++) {
                    tr_buf_append(&line, " ", 1);
                }
            }
            cell += len + 1;
        }
        while (line.len > 0 && tr_buf_data(&line)[line.len - 1] == ' ') {
            line.len--;
        }
        tr_buf_append_slice(out, tr_buf_slice(&line));
        tr_buf_append(out, "\n", 1);
        tr_buf_dispose(&line);
    }
}

void tr_up_status_format(json_t *st, struct tr_buf *out)
{
    struct table t;
    memset(&t, 0, sizeof(t));
    tr_buf_init(&t.cells);
    add_row(&t, header);
    json_t *server = json_object_get(st, "server");
    if (json_is_object(server)) {
        proc_row(&t, "server", "", server, port_of(str(server, "listen")), "", "");
    }
    json_t *gw = json_object_get(st, "gateway");
    if (json_is_object(gw)) {
        proc_row(&t, "gateway", "", gw, port_of(str(gw, "listen")), "", "");
    }
    size_t i;
    json_t *svc;
    json_array_foreach(json_object_get(st, "services"), i, svc)
    {
        size_t j;
        json_t *r;
        json_array_foreach(json_object_get(svc, "replicas"), j, r)
        {
            replica_row(&t, r);
        }
    }
    print_table(&t, out);
    tr_buf_dispose(&t.cells);
    json_t *tot = json_object_get(st, "totals");
    char a[32];
    char b[32];
    tr_up_format_kib(
        (unsigned long long)json_integer_value(json_object_get(tot, "trellis_rss_kib")), a,
        sizeof(a));
    tr_up_format_kib(
        (unsigned long long)json_integer_value(json_object_get(tot, "services_rss_kib")), b,
        sizeof(b));
    tr_buf_appendf(out,
                   "TOTAL RSS: %s in %" JSON_INTEGER_FORMAT
                   " Trellis processes (server, gateway, %" JSON_INTEGER_FORMAT
                   " sidecars); %s in %" JSON_INTEGER_FORMAT " service processes\n",
                   a, json_integer_value(json_object_get(tot, "trellis_processes")),
                   json_integer_value(json_object_get(tot, "sidecars")), b,
                   json_integer_value(json_object_get(tot, "service_processes")));
}
