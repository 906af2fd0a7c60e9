/* SPDX-License-Identifier: Apache-2.0 */
/* Fire-and-forget copies of requests to a route's mirror cluster (see mirror.h). A
 * mirror request holds its generation (for the cluster and its static endpoints) and
 * its endpoint like a client request does, and lets go of both when it ends; a worker
 * that closes cancels the ones in flight through its HTTP client. */
#include "proxy/mirror.h"

#include "core/mem.h"
#include "http/client.h"
#include "proxy/balancer.h"
#include "proxy/endpoints.h"
#include "proxy/headers.h"
#include "proxy/route.h"

struct mirror {
    struct tr_proxy_worker *pw;
    struct tr_proxy_gen *gen; /* held (users) */
    const struct tr_proxy_route_config *route;
    struct tr_proxy_eps *eps; /* held (tr_proxy_worker_eps_hold) */
    int ep;
    struct tr_http_client_req *up; /* NULL once ended */
    struct tr_proxy_deadline deadline;
};

void tr_proxy_mirror_count(struct tr_proxy_worker *pw, const struct tr_proxy_route_config *route,
                           enum tr_proxy_mirror_result result)
{
    tr_proxy_counter_add(&route->stats->blocks[pw->id].mirror[result], 1);
}

bool tr_proxy_mirror_draw(const struct tr_proxy_route_config *r, uint64_t *rng)
{
    if (r->mirror_percent >= 100) {
        return true;
    }
    return ((tr_proxy_rand(rng) >> 32) * 100 >> 32) < r->mirror_percent;
}

static void mirror_done(struct mirror *m, enum tr_proxy_mirror_result result)
{
    struct tr_proxy_worker *pw = m->pw;
    tr_proxy_deadline_cancel(pw, &m->deadline);
    tr_proxy_worker_eps_release(pw, m->eps, m->ep);
    tr_proxy_mirror_count(pw, m->route, result);
    pw->mirrors--;
    tr_proxy_gen_release(m->gen);
    tr_free_null(&m);
}

static void on_headers(struct tr_http_client_req *up, const struct tr_http_client_resp *resp,
                       void *data)
{
    (void)up;
    (void)resp;
    (void)data; /* the answer is discarded; the body too (no body callback) */
}

static void on_end(struct tr_http_client_req *up, void *data)
{
    (void)up;
    mirror_done(data, TR_PROXY_MIRROR_OK);
}

static void on_error(struct tr_http_client_req *up, int err, unsigned flags, void *data)
{
    (void)up;
    (void)err;
    (void)flags;
    mirror_done(data, TR_PROXY_MIRROR_FAILED);
}

static const struct tr_http_client_handler mirror_handler = {
    .on_headers = on_headers,
    .on_end = on_end,
    .on_error = on_error,
};

static void on_deadline(struct tr_proxy_deadline *d)
{
    struct mirror *m = tr_container_of(d, struct mirror, deadline);
    tr_http_client_req_cancel(m->up);
    mirror_done(m, TR_PROXY_MIRROR_FAILED);
}

void tr_proxy_mirror_send(struct tr_proxy_worker *pw, struct tr_proxy_gen *gen,
                          const struct tr_proxy_route_config *route, struct tr_http_req *req,
                          struct tr_slice body, struct tr_slice request_id)
{
    const struct tr_proxy_cluster_config *c = &gen->cfg->clusters[route->mirror_cluster];
    struct tr_proxy_eps *eps = tr_proxy_worker_eps(pw, c);
    struct tr_proxy_pick pick = {.worker = pw->id, .rng = &pw->rng, .avoid = -1};
    int ep = pw->mirrors < TR_PROXY_MIRROR_MAX_IN_FLIGHT ? tr_proxy_balancer_pick(c->lb, eps, &pick)
                                                         : -1;
    if (ep < 0) {
        tr_proxy_mirror_count(pw, route, TR_PROXY_MIRROR_SKIPPED);
        return;
    }
    struct tr_http_client_header *hdrs =
        tr_arena_alloc(&req->arena, (req->nheaders + TR_PROXY_HEADERS_ADDED + 1) * sizeof(*hdrs));
    struct tr_proxy_fwd fwd = {
        .client_ip = tr_proxy_peer_ip(req->log.peer != NULL ? req->log.peer : ""),
        .request_id = request_id,
    };
    size_t n = tr_proxy_headers_request(req, &fwd, hdrs, &req->arena);
    hdrs[n++] = (struct tr_http_client_header){TR_SLICE_LIT("X-Trellis-Shadow"), TR_SLICE_LIT("1")};
    struct mirror *m = tr_xcalloc(1, sizeof(*m));
    struct tr_http_client_request r = {
        .upstream = eps->eps[ep].addr,
        .method = req->method,
        .target = tr_proxy_route_target(route, req->target, req->path, req->query, &req->arena),
        .headers = hdrs,
        .header_count = n,
        .body = body.len > 0 ? body : TR_SLICE_NULL,
        .handler = &mirror_handler,
        .data = m,
    };
    m->pw = pw;
    m->gen = gen;
    gen->users++;
    m->route = route;
    m->eps = eps;
    m->ep = ep;
    tr_proxy_worker_eps_hold(pw, eps, ep);
    pw->mirrors++;
    if (tr_http_client_request(pw->client, &r, &m->up) != 0) {
        mirror_done(m, TR_PROXY_MIRROR_FAILED);
        return;
    }
    tr_proxy_deadline_arm(pw, &m->deadline, uv_now(pw->srv.loop) + c->timeout_ms, on_deadline);
}
