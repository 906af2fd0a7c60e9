/* SPDX-License-Identifier: Apache-2.0 */
/* Health and metadata: GET /v1.0/healthz (204 once the app is ready),
 * GET /v1.0/healthz/outbound (204 as soon as the sidecar serves: the outbound APIs do
 * not wait for the app, so app and sidecar can start in any order), GET /v1.0/metadata
 * (never empty: SDKs use it as their "sidecar is up" signal) and PUT
 * /v1.0/metadata/<key> (custom attributes shown under "extended"). */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "sidecar/modules.h"
#include "sidecar/sidecar.h"

#define MAX_EXTENDED_KEYS 256
#define MAX_EXTENDED_VALUE (64 * 1024)

static void on_healthz(struct tr_http_req *req)
{
    struct tr_sidecar *sc = tr_sidecar_worker_of(req)->sc;
    struct tr_slice appid;
    if (tr_http_req_query(req, "appid", &appid) &&
        !tr_slice_eq(appid, tr_slice_cstr(sc->opts.app_id))) {
        tr_sidecar_error(req, 500, "ERR_HEALTH_APPID_NOT_MATCH",
                         "dapr app-id does not match: this sidecar serves \"%s\"",
                         sc->opts.app_id);
        return;
    }
    if (!atomic_load(&sc->app_ready)) {
        tr_sidecar_error(req, 500, "ERR_HEALTH_NOT_READY",
                         "dapr is not ready: app \"%s\" on port %d has not passed its health "
                         "check yet",
                         sc->opts.app_id, sc->opts.app_port);
        return;
    }
    tr_http_resp_send(req, 204, TR_SLICE_NULL, TR_SLICE_NULL);
}

static void on_healthz_outbound(struct tr_http_req *req)
{
    tr_http_resp_send(req, 204, TR_SLICE_NULL, TR_SLICE_NULL);
}

static json_t *capabilities(const struct tr_sidecar_component *c)
{
    json_t *caps = json_array();
    switch (c->ctype) {
    case TR_SIDECAR_TYPE_STATE_TRELLIS:
        json_array_append_new(caps, json_string("ETAG"));
        json_array_append_new(caps, json_string("TRANSACTIONAL"));
        break;
    case TR_SIDECAR_TYPE_SECRETS_FILE: {
        const char *mv = tr_sidecar_component_meta(c, "multiValued");
        if (mv != NULL && strcmp(mv, "true") == 0) {
            json_array_append_new(caps, json_string("MULTIPLE_KEY_VALUES_PER_SECRET"));
        }
        break;
    }
    default:
        break;
    }
    return caps;
}

static json_t *app_connection(const struct tr_sidecar *sc)
{
    json_t *health = json_pack("{s:s,s:s,s:i}", "healthProbeInterval", "1s",
                               "healthProbeTimeout", "1s", "healthThreshold", 3);
    if (sc->opts.app_health_path != NULL) {
        json_object_set_new(health, "healthCheckPath", json_string(sc->opts.app_health_path));
    }
    return json_pack("{s:i,s:s,s:s,s:i,s:o}", "port", sc->opts.app_port, "protocol", "http",
                     "channelAddress", "127.0.0.1", "maxConcurrency", -1, "health", health);
}

static void on_metadata(struct tr_http_req *req)
{
    struct tr_sidecar *sc = tr_sidecar_worker_of(req)->sc;
    json_t *comps = json_array();
    for (size_t i = 0; i < sc->comps.ncomps; i++) {
        const struct tr_sidecar_component *c = &sc->comps.comps[i];
        json_array_append_new(comps, json_pack("{s:s,s:s,s:s,s:o}", "name", c->name, "type",
                                               c->type, "version", c->version, "capabilities",
                                               capabilities(c)));
    }
    pthread_mutex_lock(&sc->extended_lock);
    json_t *extended = json_deep_copy(sc->extended);
    pthread_mutex_unlock(&sc->extended_lock);
    json_object_set_new(extended, "daprRuntimeVersion", json_string(TR_SIDECAR_RUNTIME_VERSION));
    json_object_set_new(extended, "trellisServer", json_string(sc->opts.server));
    json_object_set_new(extended, "instanceId", json_string(sc->instance_id));
    json_t *meta = json_pack(
        "{s:s,s:s,s:[],s:[],s:o,s:[],s:[],s:o,s:o,s:{s:s,s:b}}", "id", sc->opts.app_id,
        "runtimeVersion", TR_SIDECAR_RUNTIME_VERSION, "enabledFeatures", "actors", "components",
        comps, "subscriptions", "httpEndpoints", "appConnectionProperties", app_connection(sc),
        "extended", extended, "actorRuntime", "runtimeStatus", "DISABLED", "hostReady", false);
    for (size_t i = 0; tr_sidecar_modules[i] != NULL; i++) {
        if (tr_sidecar_modules[i]->metadata != NULL) {
            tr_sidecar_modules[i]->metadata(sc, meta);
        }
    }
    tr_sidecar_send_json(req, 200, meta);
}

static void on_metadata_put(struct tr_http_req *req)
{
    struct tr_sidecar *sc = tr_sidecar_worker_of(req)->sc;
    char key[256];
    struct tr_slice raw = tr_http_req_param(req, "key");
    if (raw.len == 0 || raw.len >= sizeof(key)) {
        tr_sidecar_error(req, 400, "ERR_MALFORMED_REQUEST",
                         "metadata key must be 1 to 255 bytes");
        return;
    }
    size_t n = tr_pct_decode(key, raw, false);
    key[n] = '\0';
    if (strlen(key) != n || req->body.len > MAX_EXTENDED_VALUE) {
        tr_sidecar_error(req, 400, "ERR_MALFORMED_REQUEST",
                         "metadata key must not contain NUL; value at most %d bytes",
                         MAX_EXTENDED_VALUE);
        return;
    }
    json_t *value = json_stringn(tr_buf_data(&req->body) ? tr_buf_data(&req->body) : "",
                                 req->body.len);
    if (value == NULL) {
        tr_sidecar_error(req, 400, "ERR_MALFORMED_REQUEST", "metadata value must be UTF-8 text");
        return;
    }
    pthread_mutex_lock(&sc->extended_lock);
    bool full = json_object_get(sc->extended, key) == NULL &&
                json_object_size(sc->extended) >= MAX_EXTENDED_KEYS;
    if (!full) {
        json_object_set_new(sc->extended, key, value);
    }
    pthread_mutex_unlock(&sc->extended_lock);
    if (full) {
        json_decref(value);
        tr_sidecar_error(req, 400, "ERR_MALFORMED_REQUEST", "at most %d metadata keys",
                         MAX_EXTENDED_KEYS);
        return;
    }
    tr_http_resp_send(req, 204, TR_SLICE_NULL, TR_SLICE_NULL);
}

static int meta_init(struct tr_sidecar *sc, unsigned index)
{
    (void)index;
    int rc = 0;
    rc |= tr_sidecar_route(sc, "GET", "/v1.0/healthz", on_healthz,
                           TR_ROUTE_BUFFERED | TR_SIDECAR_ROUTE_PUBLIC);
    rc |= tr_sidecar_route(sc, "GET", "/v1.0/healthz/outbound", on_healthz_outbound,
                           TR_ROUTE_BUFFERED | TR_SIDECAR_ROUTE_PUBLIC);
    rc |= tr_sidecar_route(sc, "GET", "/v1.0/metadata", on_metadata, TR_ROUTE_BUFFERED);
    rc |= tr_sidecar_route(sc, "PUT", "/v1.0/metadata/:key", on_metadata_put, TR_ROUTE_BUFFERED);
    TR_ASSERT(rc == 0);
    return 0;
}

const struct tr_sidecar_module tr_sidecar_mod_meta = {
    .name = "metadata",
    .init = meta_init,
};
