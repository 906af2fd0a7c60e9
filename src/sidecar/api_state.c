/* SPDX-License-Identifier: Apache-2.0 */
/* The state API (Dapr /v1.0/state/...) for `state.trellis` stores: each call becomes
 * one call to the server's /v1/state/{store}/{app-id}/... over the worker's keep-alive
 * pool, and the server's answer — status, ETag, Content-Type, body, Dapr-shaped errors
 * — is relayed as is. The server does the Dapr work (appid||key namespacing, ETags,
 * first/last-write, atomic transactions, validation), so a state call costs the
 * sidecar one copy of each body and no JSON parsing. Query parameters (consistency,
 * concurrency, metadata.*) pass through. */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "sidecar/call.h"
#include "sidecar/modules.h"
#include "sidecar/sidecar.h"

#define STATE_TIMEOUT_MS 30000

struct state_mod {
    bool any; /* at least one state store is configured */
};

static struct state_mod state_mod;

/* The component for the request's :store, or NULL after answering the error. */
static const struct tr_sidecar_component *store_of(struct tr_http_req *req)
{
    struct tr_sidecar *sc = tr_sidecar_worker_of(req)->sc;
    struct tr_slice store = tr_http_req_param(req, "store");
    if (!state_mod.any) {
        tr_sidecar_error(req, 500, "ERR_STATE_STORE_NOT_CONFIGURED",
                         "state store is not configured");
        return NULL;
    }
    const struct tr_sidecar_component *c = tr_sidecar_component(sc, TR_SIDECAR_STATE, store);
    if (c == NULL) {
        tr_sidecar_error(req, 400, "ERR_STATE_STORE_NOT_FOUND", "state store %.*s is not found",
                         (int)(store.len > 200 ? 200 : store.len), store.ptr);
        return NULL;
    }
    return c;
}

/* Relays the server's answer (or turns a failed call into `code`). */
static void on_reply(struct tr_http_req *req, const struct tr_sidecar_reply *r, void *data)
{
    const char *code = data;
    struct tr_sidecar *sc = tr_sidecar_worker_of(req)->sc;
    if (r->err != 0) {
        tr_sidecar_error(req, 500, code, "state store %.*s: trellis server at %s: %s",
                         TR_SLICE_FMT(tr_http_req_param(req, "store")), sc->server_host,
                         tr_http_client_strerror(r->err));
        return;
    }
    struct tr_slice etag = tr_sidecar_reply_header(r, TR_SLICE_LIT("ETag"));
    if (etag.ptr != NULL) {
        tr_http_resp_header(req, TR_SLICE_LIT("ETag"), etag);
    }
    struct tr_slice ct = tr_sidecar_reply_header(r, TR_SLICE_LIT("Content-Type"));
    bool bodyless = r->status == 204 || r->status == 304;
    tr_http_resp_send(req, r->status, bodyless ? TR_SLICE_NULL : ct,
                      bodyless ? TR_SLICE_NULL : r->body);
}

/* Sends `method` /v1/state/{store}/{app}{suffix}?{query} with the request's body. */
static void forward(struct tr_http_req *req, const struct tr_sidecar_component *c,
                    struct tr_slice method, struct tr_slice suffix, const char *code)
{
    struct tr_sidecar *sc = tr_sidecar_worker_of(req)->sc;
    struct tr_buf target;
    tr_buf_init(&target);
    tr_buf_appendf(&target, "/v1/state/%s/%s", c->name, sc->opts.app_id);
    tr_buf_append_slice(&target, suffix);
    if (req->query.len > 0) {
        tr_buf_append(&target, "?", 1);
        tr_buf_append_slice(&target, req->query);
    }
    struct tr_http_client_header hdrs[2];
    size_t n = 0;
    struct tr_slice if_match = tr_http_req_header(req, TR_SLICE_LIT("If-Match"));
    if (if_match.ptr != NULL) {
        hdrs[n++] = (struct tr_http_client_header){TR_SLICE_LIT("If-Match"), if_match};
    }
    bool has_body = method.len != 3 || memcmp(method.ptr, "GET", 3) != 0;
    if (has_body && req->body.len > 0) {
        hdrs[n++] = (struct tr_http_client_header){TR_SLICE_LIT("Content-Type"),
                                                   TR_SLICE_LIT("application/json")};
    }
    struct tr_sidecar_call_opts o = {
        .method = method,
        .target = tr_buf_slice(&target),
        .headers = hdrs,
        .nheaders = n,
        .body = has_body && req->body.len > 0 ? tr_buf_slice(&req->body) : TR_SLICE_NULL,
        .timeout_ms = STATE_TIMEOUT_MS,
    };
    int err = tr_sidecar_req_server_call(req, &o, on_reply, (void *)code);
    tr_buf_dispose(&target);
    if (err != 0) {
        tr_sidecar_error(req, 500, code, "state store %s: cannot reach the trellis server: %s",
                         c->name, tr_strerror(err));
    }
}

static struct tr_slice key_suffix(struct tr_http_req *req, struct tr_arena *a)
{
    struct tr_slice key = tr_http_req_param(req, "key");
    char *p = tr_arena_alloc(a, key.len + 1);
    p[0] = '/';
    memcpy(p + 1, key.ptr, key.len);
    return tr_slice(p, key.len + 1);
}

static void on_save(struct tr_http_req *req)
{
    const struct tr_sidecar_component *c = store_of(req);
    if (c != NULL) {
        forward(req, c, TR_SLICE_LIT("POST"), TR_SLICE_LIT(""), "ERR_STATE_SAVE");
    }
}

static void on_get(struct tr_http_req *req)
{
    const struct tr_sidecar_component *c = store_of(req);
    if (c != NULL) {
        forward(req, c, TR_SLICE_LIT("GET"), key_suffix(req, &req->arena), "ERR_STATE_GET");
    }
}

static void on_delete(struct tr_http_req *req)
{
    const struct tr_sidecar_component *c = store_of(req);
    if (c != NULL) {
        forward(req, c, TR_SLICE_LIT("DELETE"), key_suffix(req, &req->arena), "ERR_STATE_DELETE");
    }
}

static void on_bulk(struct tr_http_req *req)
{
    const struct tr_sidecar_component *c = store_of(req);
    if (c != NULL) {
        forward(req, c, TR_SLICE_LIT("POST"), TR_SLICE_LIT("/bulk"), "ERR_STATE_BULK_GET");
    }
}

static void on_transaction(struct tr_http_req *req)
{
    const struct tr_sidecar_component *c = store_of(req);
    if (c != NULL) {
        forward(req, c, TR_SLICE_LIT("POST"), TR_SLICE_LIT("/transaction"),
                "ERR_STATE_TRANSACTION");
    }
}

static void on_query(struct tr_http_req *req)
{
    const struct tr_sidecar_component *c = store_of(req);
    if (c != NULL) {
        tr_sidecar_error(req, 500, "ERR_STATE_QUERY",
                         "state store %s does not support querying", c->name);
    }
}

static int state_init(struct tr_sidecar *sc, unsigned index)
{
    (void)index;
    for (size_t i = 0; i < sc->comps.ncomps; i++) {
        const struct tr_sidecar_component *c = &sc->comps.comps[i];
        if (c->kind != TR_SIDECAR_STATE) {
            continue;
        }
        state_mod.any = true;
        for (size_t k = 0; k < c->nmeta; k++) {
            const char *n = c->meta[k].name;
            if (strcmp(n, "keyPrefix") == 0 && strcmp(c->meta[k].value, "appid") != 0) {
                fprintf(stderr,
                        "trellis sidecar: %s: state store \"%s\": keyPrefix \"%s\" is not "
                        "supported (keys are always prefixed with the app id)\n",
                        c->file, c->name, c->meta[k].value);
                return -1;
            }
            if (strcmp(n, "keyPrefix") != 0) {
                TR_LOG_WARN("sidecar", NULL,
                            "%s: state store \"%s\": metadata \"%s\" is ignored by state.trellis",
                            c->file, c->name, n);
            }
        }
    }
    /* PUT is accepted wherever Dapr accepts it. The key pattern is last: "bulk" and
     * "transaction" are only special for POST/PUT. */
    static const char *const writes[] = {"POST", "PUT"};
    int rc = 0;
    for (size_t i = 0; i < 2; i++) {
        rc |= tr_sidecar_route(sc, writes[i], "/v1.0/state/:store", on_save, TR_ROUTE_BUFFERED);
        rc |= tr_sidecar_route(sc, writes[i], "/v1.0/state/:store/bulk", on_bulk,
                               TR_ROUTE_BUFFERED);
        rc |= tr_sidecar_route(sc, writes[i], "/v1.0/state/:store/transaction", on_transaction,
                               TR_ROUTE_BUFFERED);
        rc |= tr_sidecar_route(sc, writes[i], "/v1.0-alpha1/state/:store/query", on_query,
                               TR_ROUTE_BUFFERED);
    }
    rc |= tr_sidecar_route(sc, "GET", "/v1.0/state/:store/*key", on_get, TR_ROUTE_BUFFERED);
    rc |= tr_sidecar_route(sc, "DELETE", "/v1.0/state/:store/*key", on_delete, TR_ROUTE_BUFFERED);
    TR_ASSERT(rc == 0);
    return 0;
}

const struct tr_sidecar_module tr_sidecar_mod_state = {
    .name = "state",
    .init = state_init,
};
