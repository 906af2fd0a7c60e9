/* SPDX-License-Identifier: Apache-2.0 */
/* Registration of the app instance in the registry (the Consul agent API of trellis
 * server), from worker 0: service = app id, ID "<app-id>-<sidecar port>", address
 * 127.0.0.1, port = the APP's port (gateways and Consul clients reach the app
 * directly), Meta.dapr_http_port = the sidecar's port (other sidecars send
 * invocations there), and a health check on the app (HTTP on --app-health-path, else
 * TCP) every second. Registration waits for the app's first successful readiness
 * probe, so the registry's first check (which runs at once) finds it up and callers
 * see the instance as soon as it can serve. A server that is not up yet is retried
 * with a backoff. On
 * SIGTERM the instance is deregistered before the worker may exit, so callers stop
 * picking it while in-flight requests drain. */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "sidecar/call.h"
#include "sidecar/modules.h"
#include "sidecar/sidecar.h"

#define LOG "sidecar"
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000
#define DEREGISTER_TIMEOUT_MS 2000

struct reg {
    struct tr_sidecar_worker *sw;
    struct tr_sidecar_call *call;   /* register or deregister in flight */
    struct tr_sidecar_deadline retry;
    unsigned failures;
    bool registered;                /* the server confirmed (or a register may have landed) */
    bool deregistering;
    bool holding;                   /* holds the worker until deregistration ends */
    bool stopped;
};

static unsigned mod_index;

static void reg_send(struct reg *r);

static char *registration_json(const struct tr_sidecar *sc)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", sc->http_port);
    json_t *check = json_pack("{s:s,s:s,s:s,s:s}", "CheckID", "", "Name", "app health",
                              "Interval", "1s", "Timeout", "1s");
    char id[256];
    snprintf(id, sizeof(id), "%s:app", sc->instance_id);
    json_object_set_new(check, "CheckID", json_string(id));
    char target[512];
    if (sc->opts.app_health_path != NULL) {
        snprintf(target, sizeof(target), "http://%s%s", sc->app_host, sc->opts.app_health_path);
        json_object_set_new(check, "HTTP", json_string(target));
    } else {
        json_object_set_new(check, "TCP", json_string(sc->app_host));
    }
    json_t *def = json_pack("{s:s,s:s,s:s,s:i,s:{s:s,s:s},s:o}", "ID", sc->instance_id, "Name",
                            sc->opts.app_id, "Address", "127.0.0.1", "Port", sc->opts.app_port,
                            "Meta", "dapr_http_port", port, "app_id", sc->opts.app_id, "Check",
                            check);
    char *text = json_dumps(def, JSON_COMPACT);
    json_decref(def);
    return text;
}

static void on_retry(struct tr_sidecar_deadline *d)
{
    reg_send(tr_container_of(d, struct reg, retry));
}

static void on_register_reply(const struct tr_sidecar_reply *rp, void *data)
{
    struct reg *r = data;
    struct tr_sidecar *sc = r->sw->sc;
    r->call = NULL;
    if (rp->err == 0 && rp->status == 200) {
        r->registered = true;
        TR_LOG_INFO(LOG, NULL, "registered \"%s\" as %s (app port %d, sidecar port %d) at %s",
                    sc->opts.app_id, sc->instance_id, sc->opts.app_port, sc->http_port,
                    sc->server_host);
        if (r->failures > 0) {
            r->failures = 0;
        }
        return;
    }
    if (r->failures == 0) {
        if (rp->err != 0) {
            TR_LOG_WARN(LOG, NULL, "cannot register with the registry at %s: %s; retrying",
                        sc->server_host, tr_http_client_strerror(rp->err));
        } else {
            TR_LOG_WARN(LOG, NULL, "registry at %s refused the registration: HTTP %d %.*s",
                        sc->server_host, rp->status,
                        (int)(rp->body.len > 300 ? 300 : rp->body.len), rp->body.ptr);
        }
    }
    r->failures++;
    uint64_t delay = BACKOFF_MIN_MS;
    for (unsigned i = 1; i < r->failures && delay < BACKOFF_MAX_MS; i++) {
        delay *= 2;
    }
    if (!r->stopped) {
        tr_sidecar_deadline_arm(r->sw, &r->retry,
                                uv_now(r->sw->loop) + (delay > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay),
                                on_retry);
    }
}

static void reg_send(struct reg *r)
{
    if (r->stopped) {
        return;
    }
    char *body = registration_json(r->sw->sc);
    struct tr_http_client_header h[] = {
        {TR_SLICE_LIT("Content-Type"), TR_SLICE_LIT("application/json")},
    };
    struct tr_sidecar_call_opts o = {
        .method = TR_SLICE_LIT("PUT"),
        .target = TR_SLICE_LIT("/v1/agent/service/register"),
        .headers = h,
        .nheaders = 1,
        .body = tr_slice_cstr(body),
        .timeout_ms = 5000,
    };
    int err = tr_sidecar_server_call(r->sw, &o, on_register_reply, r, &r->call);
    free(body);
    if (err != 0) {
        r->call = NULL;
        struct tr_sidecar_reply rp = {.err = err};
        on_register_reply(&rp, r);
    }
}

static void on_deregister_reply(const struct tr_sidecar_reply *rp, void *data)
{
    struct reg *r = data;
    struct tr_sidecar *sc = r->sw->sc;
    r->call = NULL;
    if (rp->err == 0 && (rp->status == 200 || rp->status == 404)) {
        TR_LOG_INFO(LOG, NULL, "deregistered %s", sc->instance_id);
    } else {
        TR_LOG_WARN(LOG, NULL, "deregistering %s failed: %s", sc->instance_id,
                    rp->err != 0 ? tr_http_client_strerror(rp->err) : "unexpected status");
    }
    if (r->holding) {
        r->holding = false;
        tr_sidecar_worker_release(r->sw);
    }
}

static int reg_init(struct tr_sidecar *sc, unsigned index)
{
    (void)sc;
    mod_index = index;
    return 0;
}

static int reg_worker_start(struct tr_sidecar_worker *sw)
{
    if (sw->id != 0 || !sw->sc->opts.register_app) {
        return 0;
    }
    struct reg *r = tr_xcalloc(1, sizeof(*r));
    r->sw = sw;
    sw->mod[mod_index] = r;
    return 0;
}

static void reg_app_ready(struct tr_sidecar_worker *sw)
{
    struct reg *r = sw->mod[mod_index];
    if (r != NULL && !r->registered && r->call == NULL && !r->deregistering) {
        reg_send(r);
    }
}

static void reg_worker_drain(struct tr_sidecar_worker *sw)
{
    struct reg *r = sw->mod[mod_index];
    if (r == NULL || r->deregistering) {
        return;
    }
    r->deregistering = true;
    tr_sidecar_deadline_cancel(sw, &r->retry);
    bool maybe = r->registered || r->call != NULL;
    if (r->call != NULL) {
        tr_sidecar_call_cancel(r->call);
        r->call = NULL;
    }
    if (!maybe) {
        return;
    }
    char target[320];
    snprintf(target, sizeof(target), "/v1/agent/service/deregister/%s", sw->sc->instance_id);
    struct tr_sidecar_call_opts o = {
        .method = TR_SLICE_LIT("PUT"),
        .target = tr_slice_cstr(target),
        .timeout_ms = DEREGISTER_TIMEOUT_MS,
    };
    if (tr_sidecar_server_call(sw, &o, on_deregister_reply, r, &r->call) != 0) {
        r->call = NULL;
        TR_LOG_WARN(LOG, NULL, "cannot deregister %s", sw->sc->instance_id);
        return;
    }
    r->holding = true;
    tr_sidecar_worker_hold(sw);
}

static void reg_worker_stop(struct tr_sidecar_worker *sw)
{
    struct reg *r = sw->mod[mod_index];
    if (r == NULL) {
        return;
    }
    r->stopped = true;
    tr_sidecar_deadline_cancel(sw, &r->retry);
    if (r->call != NULL) {
        tr_sidecar_call_cancel(r->call);
        r->call = NULL;
    }
    if (r->holding) {
        r->holding = false;
        tr_sidecar_worker_release(sw);
    }
}

static void reg_worker_dispose(struct tr_sidecar_worker *sw)
{
    struct reg *r = sw->mod[mod_index];
    sw->mod[mod_index] = NULL;
    tr_free_null(&r);
}

const struct tr_sidecar_module tr_sidecar_mod_registration = {
    .name = "registration",
    .init = reg_init,
    .worker_start = reg_worker_start,
    .ctl_app_ready = reg_app_ready,
    .worker_drain = reg_worker_drain,
    .worker_stop = reg_worker_stop,
    .worker_dispose = reg_worker_dispose,
};
