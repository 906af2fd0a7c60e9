/* SPDX-License-Identifier: Apache-2.0 */
/* The app's readiness, probed from worker 0: GET --app-health-path (a 2xx is healthy)
 * or, without it, a TCP connect to the app port. Until the first success the probe
 * runs every 100 ms so that a starting app is noticed at once; then every second,
 * and three failures in a row mark the app not ready again (GET /v1.0/healthz answers
 * 500 meanwhile). The first success runs every module's ctl_app_ready hook: that is
 * when pub/sub reads /dapr/subscribe and starts delivering. */
#include <stdlib.h>

#include "core/log.h"
#include "core/mem.h"
#include "sidecar/call.h"
#include "sidecar/modules.h"
#include "sidecar/sidecar.h"

#define LOG "sidecar"
#define STARTUP_INTERVAL_MS 100
#define INTERVAL_MS 1000
#define PROBE_TIMEOUT_MS 1000
#define THRESHOLD 3

struct tcp_probe;

struct probe {
    struct tr_sidecar_worker *sw;
    struct tr_sidecar_deadline tick;    /* next probe, or the TCP probe's timeout */
    struct tr_sidecar_call *call;       /* HTTP probe in flight */
    struct tcp_probe *tcp;              /* TCP probe in flight */
    unsigned failures;
    bool ever_ready;
    bool stopped;
};

struct tcp_probe {
    uv_tcp_t tcp;
    uv_connect_t conn;
    struct probe *owner; /* NULL once abandoned */
};

static unsigned mod_index;

static void probe_start(struct probe *p);

static void on_tick(struct tr_sidecar_deadline *d)
{
    probe_start(tr_container_of(d, struct probe, tick));
}

static void next_probe(struct probe *p)
{
    if (p->stopped) {
        return;
    }
    struct tr_sidecar *sc = p->sw->sc;
    uint64_t wait = atomic_load(&sc->app_ready) ? INTERVAL_MS : STARTUP_INTERVAL_MS;
    tr_sidecar_deadline_arm(p->sw, &p->tick, uv_now(p->sw->loop) + wait, on_tick);
}

static void result(struct probe *p, bool ok, const char *why)
{
    struct tr_sidecar *sc = p->sw->sc;
    if (ok) {
        p->failures = 0;
        if (!atomic_exchange(&sc->app_ready, true)) {
            TR_LOG_INFO(LOG, NULL, "app \"%s\" on port %d is ready", sc->opts.app_id,
                        sc->opts.app_port);
            if (!p->ever_ready) {
                p->ever_ready = true;
                for (size_t i = 0; tr_sidecar_modules[i] != NULL; i++) {
                    if (tr_sidecar_modules[i]->ctl_app_ready != NULL) {
                        tr_sidecar_modules[i]->ctl_app_ready(p->sw);
                    }
                }
            }
        }
    } else if (atomic_load(&sc->app_ready) && ++p->failures >= THRESHOLD) {
        atomic_store(&sc->app_ready, false);
        TR_LOG_WARN(LOG, NULL, "app \"%s\" on port %d failed %d health checks in a row (%s)",
                    sc->opts.app_id, sc->opts.app_port, THRESHOLD, why);
    }
    next_probe(p);
}

/* ------------------------------------------------------------ HTTP */

static void on_http_reply(const struct tr_sidecar_reply *r, void *data)
{
    struct probe *p = data;
    p->call = NULL;
    char why[64];
    if (r->err != 0) {
        snprintf(why, sizeof(why), "%s", tr_http_client_strerror(r->err));
    } else {
        snprintf(why, sizeof(why), "HTTP %d", r->status);
    }
    result(p, r->err == 0 && r->status >= 200 && r->status < 300, why);
}

/* ------------------------------------------------------------ TCP */

static void on_tcp_closed(uv_handle_t *h)
{
    struct tcp_probe *t = h->data;
    tr_free_null(&t);
}

static void tcp_abandon(struct probe *p)
{
    struct tcp_probe *t = p->tcp;
    if (t == NULL) {
        return;
    }
    p->tcp = NULL;
    t->owner = NULL;
    if (!uv_is_closing((uv_handle_t *)&t->tcp)) {
        uv_close((uv_handle_t *)&t->tcp, on_tcp_closed);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct tcp_probe *t = req->data;
    struct probe *p = t->owner;
    if (!uv_is_closing((uv_handle_t *)&t->tcp)) {
        uv_close((uv_handle_t *)&t->tcp, on_tcp_closed);
    }
    if (p == NULL) {
        return;
    }
    p->tcp = NULL;
    tr_sidecar_deadline_cancel(p->sw, &p->tick);
    result(p, status == 0, status == 0 ? "" : tr_strerror(status));
}

static void on_tcp_timeout(struct tr_sidecar_deadline *d)
{
    struct probe *p = tr_container_of(d, struct probe, tick);
    tcp_abandon(p);
    result(p, false, "connect timed out");
}

static void probe_tcp(struct probe *p)
{
    struct tcp_probe *t = tr_xcalloc(1, sizeof(*t));
    t->owner = p;
    t->tcp.data = t;
    t->conn.data = t;
    uv_tcp_init(p->sw->loop, &t->tcp);
    int err = uv_tcp_connect(&t->conn, &t->tcp, (const struct sockaddr *)&p->sw->sc->app_addr.ss,
                             on_connect);
    if (err != 0) {
        t->owner = NULL;
        uv_close((uv_handle_t *)&t->tcp, on_tcp_closed);
        result(p, false, tr_strerror(err));
        return;
    }
    p->tcp = t;
    tr_sidecar_deadline_arm(p->sw, &p->tick, uv_now(p->sw->loop) + PROBE_TIMEOUT_MS,
                            on_tcp_timeout);
}

/* ------------------------------------------------------------ probes */

static void probe_start(struct probe *p)
{
    if (p->stopped) {
        return;
    }
    const char *path = p->sw->sc->opts.app_health_path;
    if (path == NULL) {
        probe_tcp(p);
        return;
    }
    struct tr_sidecar_call_opts o = {
        .method = TR_SLICE_LIT("GET"),
        .target = tr_slice_cstr(path),
        .timeout_ms = PROBE_TIMEOUT_MS,
        .max_body = 64 * 1024,
    };
    int err = tr_sidecar_app_call(p->sw, &o, on_http_reply, p, &p->call);
    if (err != 0) {
        p->call = NULL;
        result(p, false, tr_strerror(err));
    }
}

static int app_init(struct tr_sidecar *sc, unsigned index)
{
    (void)sc;
    mod_index = index;
    return 0;
}

static int app_worker_start(struct tr_sidecar_worker *sw)
{
    if (sw->id != 0) {
        return 0;
    }
    struct probe *p = tr_xcalloc(1, sizeof(*p));
    p->sw = sw;
    sw->mod[mod_index] = p;
    probe_start(p);
    return 0;
}

static void app_worker_stop(struct tr_sidecar_worker *sw)
{
    struct probe *p = sw->mod[mod_index];
    if (p == NULL) {
        return;
    }
    p->stopped = true;
    tr_sidecar_deadline_cancel(sw, &p->tick);
    if (p->call != NULL) {
        tr_sidecar_call_cancel(p->call);
        p->call = NULL;
    }
    tcp_abandon(p);
}

static void app_worker_drain(struct tr_sidecar_worker *sw)
{
    app_worker_stop(sw);
}

static void app_worker_dispose(struct tr_sidecar_worker *sw)
{
    app_worker_stop(sw);
    struct probe *p = sw->mod[mod_index];
    sw->mod[mod_index] = NULL;
    tr_free_null(&p);
}

const struct tr_sidecar_module tr_sidecar_mod_app = {
    .name = "app-health",
    .init = app_init,
    .worker_start = app_worker_start,
    .worker_drain = app_worker_drain,
    .worker_stop = app_worker_stop,
    .worker_dispose = app_worker_dispose,
};
