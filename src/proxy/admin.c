/* SPDX-License-Identifier: Apache-2.0 */
/* The admin endpoints (see admin.h). Output is built in a tr_buf and sent whole: the
 * documents are small (a few lines per route, cluster and endpoint). Routes and
 * clusters are those of the admin worker's current configuration; their counters are
 * summed over every worker. */
#include "proxy/admin.h"

#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/errors.h"
#include "proxy/breaker.h"
#include "proxy/discovery.h"
#include "proxy/endpoints.h"
#include "proxy/guard.h"
#include "proxy/outlier.h"
#include "proxy/proxy.h"
#include "proxy/stats.h"
#include "proxy/worker.h"

static const char *const class_names[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const uerr_names[TR_PROXY_UERR_COUNT] = {
    [TR_PROXY_UERR_CONNECT] = "connect_failure", [TR_PROXY_UERR_RESET] = "reset",
    [TR_PROXY_UERR_TIMEOUT] = "timeout",         [TR_PROXY_UERR_PROTOCOL] = "bad_response",
    [TR_PROXY_UERR_NO_ENDPOINT] = "no_endpoint",
};
static const char *const overflow_names[TR_PROXY_OVERFLOW_COUNT] = {
    [TR_PROXY_OVERFLOW_OPEN] = "circuit_open",
    [TR_PROXY_OVERFLOW_MAX_REQUESTS] = "max_requests",
    [TR_PROXY_OVERFLOW_MAX_PENDING] = "max_pending",
    [TR_PROXY_OVERFLOW_PENDING_TIMEOUT] = "pending_timeout",
};
static const char *const mirror_names[TR_PROXY_MIRROR_COUNT] = {
    [TR_PROXY_MIRROR_OK] = "ok",
    [TR_PROXY_MIRROR_FAILED] = "failed",
    [TR_PROXY_MIRROR_SKIPPED] = "skipped",
};

/* Prometheus label values escape backslash, double quote and newline. */
static void label(struct tr_buf *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"') {
            tr_buf_append(out, "\\", 1);
            tr_buf_append(out, s, 1);
        } else if (*s == '\n') {
            tr_buf_append(out, "\\n", 2);
        } else {
            tr_buf_append(out, s, 1);
        }
    }
}

static void help(struct tr_buf *out, const char *name, const char *type, const char *text)
{
    tr_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static void sample(struct tr_buf *out, const char *metric, const char *key, const char *value,
                   const char *extra, uint64_t v)
{
    tr_buf_appendf(out, "%s{%s=\"", metric, key);
    label(out, value);
    tr_buf_appendf(out, "\"%s} %llu\n", extra != NULL ? extra : "", (unsigned long long)v);
}

static uint64_t get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void histogram(struct tr_buf *out, const char *metric, const char *key, const char *value,
                      struct tr_proxy_stats_block *b)
{
    uint64_t cum = 0;
    char extra[64];
    char bucket[96];
    snprintf(bucket, sizeof(bucket), "%s_bucket", metric);
    for (size_t i = 0; i <= TR_PROXY_LAT_BUCKETS; i++) {
        cum += get(&b->lat_bucket[i]);
        if (i < TR_PROXY_LAT_BUCKETS) {
            snprintf(extra, sizeof(extra), ",le=\"%g\"", tr_proxy_lat_bounds_us[i] / 1e6);
        } else {
            snprintf(extra, sizeof(extra), ",le=\"+Inf\"");
        }
        sample(out, bucket, key, value, extra, cum);
    }
    tr_buf_appendf(out, "%s_sum{%s=\"", metric, key);
    label(out, value);
    tr_buf_appendf(out, "\"} %.6f\n", get(&b->lat_sum_us) / 1e6);
    tr_buf_appendf(out, "%s_count{%s=\"", metric, key);
    label(out, value);
    tr_buf_appendf(out, "\"} %llu\n", (unsigned long long)cum);
}

static void by_class(struct tr_buf *out, const char *metric, const char *key, const char *value,
                     struct tr_proxy_stats_block *b)
{
    char extra[32];
    for (int c = 0; c < 6; c++) {
        snprintf(extra, sizeof(extra), ",class=\"%s\"", class_names[c]);
        sample(out, metric, key, value, extra, get(&b->status[c]));
    }
}

static void route_metrics(struct tr_buf *out, const struct tr_proxy_config *cfg)
{
    struct tr_proxy_stats_block *sums = tr_xcalloc(cfg->nroutes, sizeof(*sums));
    for (size_t i = 0; i < cfg->nroutes; i++) {
        tr_proxy_stats_sum(cfg->routes[i].stats, &sums[i]);
    }
    help(out, "trellis_proxy_requests_total", "counter", "Requests received, by route.");
    for (size_t i = 0; i < cfg->nroutes; i++) {
        sample(out, "trellis_proxy_requests_total", "route", cfg->routes[i].name, NULL,
               get(&sums[i].requests));
    }
    help(out, "trellis_proxy_responses_total", "counter",
         "Responses by route and status class (none: the client went away first).");
    for (size_t i = 0; i < cfg->nroutes; i++) {
        by_class(out, "trellis_proxy_responses_total", "route", cfg->routes[i].name, &sums[i]);
    }
    help(out, "trellis_proxy_active_requests", "gauge", "Requests in flight, by route.");
    for (size_t i = 0; i < cfg->nroutes; i++) {
        sample(out, "trellis_proxy_active_requests", "route", cfg->routes[i].name, NULL,
               get(&sums[i].active));
    }
    help(out, "trellis_proxy_request_duration_seconds", "histogram",
         "Time from the request head to the end of the response, by route.");
    for (size_t i = 0; i < cfg->nroutes; i++) {
        histogram(out, "trellis_proxy_request_duration_seconds", "route", cfg->routes[i].name,
                  &sums[i]);
    }
    help(out, "trellis_proxy_rate_limited_total", "counter",
         "Requests answered 429 by the route's rate limit.");
    for (size_t i = 0; i < cfg->nroutes; i++) {
        sample(out, "trellis_proxy_rate_limited_total", "route", cfg->routes[i].name, NULL,
               get(&sums[i].rate_limited));
    }
    help(out, "trellis_proxy_mirror_requests_total", "counter",
         "Mirrored (shadow) requests by outcome: ok (answered, discarded), failed, skipped.");
    char extra[32];
    for (size_t i = 0; i < cfg->nroutes; i++) {
        for (int r = 0; r < TR_PROXY_MIRROR_COUNT; r++) {
            snprintf(extra, sizeof(extra), ",result=\"%s\"", mirror_names[r]);
            sample(out, "trellis_proxy_mirror_requests_total", "route", cfg->routes[i].name, extra,
                   get(&sums[i].mirror[r]));
        }
    }
    tr_free_null(&sums);
}

/* Gauge values: 0 closed (or no breaker), 1 open, 2 half-open. */
static enum tr_proxy_breaker_state breaker_state(const struct tr_proxy_cluster_config *c)
{
    if (!c->breaker.configured) {
        return TR_PROXY_BREAKER_CLOSED;
    }
    return (enum tr_proxy_breaker_state)get(&c->guard->breaker.state);
}

/* Endpoints of `eps` ejected on at least one worker; the longest remaining ejection in
 * *remaining_ms and the number of workers in *workers when `i` is given. */
static bool ep_ejected(struct tr_proxy_eps *eps, size_t i, unsigned nworkers, uint64_t now,
                       uint64_t *remaining_ms, unsigned *workers)
{
    *remaining_ms = 0;
    *workers = 0;
    for (unsigned w = 0; w < nworkers; w++) {
        uint64_t until = get(&tr_proxy_eps_load(eps, w, i)->ejected_until);
        if (until > now) {
            (*workers)++;
            if (until - now > *remaining_ms) {
                *remaining_ms = until - now;
            }
        }
    }
    return *workers > 0;
}

static size_t ejected_count(struct tr_proxy_worker *pw, const struct tr_proxy_cluster_config *c)
{
    struct tr_proxy_eps *eps = tr_proxy_worker_eps(pw, c);
    uint64_t now = uv_now(pw->srv.loop);
    size_t k = 0;
    uint64_t remaining;
    unsigned workers;
    for (size_t i = 0; eps != NULL && i < eps->n; i++) {
        k += ep_ejected(eps, i, pw->proxy->nworkers, now, &remaining, &workers) ? 1 : 0;
    }
    return k;
}

static void resilience_metrics(struct tr_buf *out, struct tr_proxy_worker *pw,
                               const struct tr_proxy_config *cfg, struct tr_proxy_stats_block *sums)
{
    size_t n = cfg->nclusters;
    const char *m = "trellis_proxy_cluster_active_connections";
    help(out, m, "gauge", "Upstream connections busy with a request of the cluster.");
    for (size_t i = 0; i < n; i++) {
        sample(out, m, "cluster", cfg->clusters[i].name, NULL, get(&sums[i].upstream_active));
    }
    m = "trellis_proxy_cluster_pending_requests";
    help(out, m, "gauge", "Requests waiting for a connection (circuit_breaker max_connections).");
    for (size_t i = 0; i < n; i++) {
        sample(out, m, "cluster", cfg->clusters[i].name, NULL, get(&sums[i].pending));
    }
    m = "trellis_proxy_circuit_breaker_state";
    help(out, m, "gauge", "Circuit breaker: 0 closed, 1 open, 2 half-open.");
    for (size_t i = 0; i < n; i++) {
        sample(out, m, "cluster", cfg->clusters[i].name, NULL, breaker_state(&cfg->clusters[i]));
    }
    m = "trellis_proxy_circuit_breaker_opens_total";
    help(out, m, "counter", "Times the circuit breaker opened.");
    for (size_t i = 0; i < n; i++) {
        sample(out, m, "cluster", cfg->clusters[i].name, NULL, get(&sums[i].breaker_opens));
    }
    m = "trellis_proxy_circuit_breaker_rejections_total";
    help(out, m, "counter", "Requests answered 503 by the circuit breaker, by reason.");
    char extra[48];
    for (size_t i = 0; i < n; i++) {
        for (int r = 0; r < TR_PROXY_OVERFLOW_COUNT; r++) {
            snprintf(extra, sizeof(extra), ",reason=\"%s\"", overflow_names[r]);
            sample(out, m, "cluster", cfg->clusters[i].name, extra, get(&sums[i].overflows[r]));
        }
    }
    m = "trellis_proxy_outlier_ejections_total";
    help(out, m, "counter", "Endpoints ejected by outlier detection (summed over workers).");
    for (size_t i = 0; i < n; i++) {
        sample(out, m, "cluster", cfg->clusters[i].name, NULL, get(&sums[i].ejections));
    }
    m = "trellis_proxy_outlier_ejected_endpoints";
    help(out, m, "gauge", "Endpoints ejected now (on at least one worker).");
    for (size_t i = 0; i < n; i++) {
        sample(out, m, "cluster", cfg->clusters[i].name, NULL,
               ejected_count(pw, &cfg->clusters[i]));
    }
}

static void cluster_metrics(struct tr_buf *out, struct tr_proxy_worker *pw,
                            const struct tr_proxy_config *cfg)
{
    size_t n = cfg->nclusters;
    struct tr_proxy_stats_block *sums = tr_xcalloc(n, sizeof(*sums));
    for (size_t i = 0; i < n; i++) {
        tr_proxy_stats_sum(cfg->clusters[i].stats, &sums[i]);
    }
    const char *m = "trellis_proxy_cluster_requests_total";
    help(out, m, "counter", "Requests sent to a cluster (retries not counted).");
    for (size_t i = 0; i < n; i++) {
        sample(out, m, "cluster", cfg->clusters[i].name, NULL, get(&sums[i].requests));
    }
    m = "trellis_proxy_cluster_responses_total";
    help(out, m, "counter", "Responses by cluster and status class.");
    for (size_t i = 0; i < n; i++) {
        by_class(out, m, "cluster", cfg->clusters[i].name, &sums[i]);
    }
    m = "trellis_proxy_cluster_active_requests";
    help(out, m, "gauge", "Requests in flight, by cluster.");
    for (size_t i = 0; i < n; i++) {
        sample(out, m, "cluster", cfg->clusters[i].name, NULL, get(&sums[i].active));
    }
    m = "trellis_proxy_upstream_requests_total";
    help(out, m, "counter", "Attempts sent upstream, retries included.");
    for (size_t i = 0; i < n; i++) {
        sample(out, m, "cluster", cfg->clusters[i].name, NULL, get(&sums[i].upstream_requests));
    }
    m = "trellis_proxy_upstream_errors_total";
    help(out, m, "counter", "Failed upstream attempts by cause.");
    char extra[48];
    for (size_t i = 0; i < n; i++) {
        for (int e = 0; e < TR_PROXY_UERR_COUNT; e++) {
            snprintf(extra, sizeof(extra), ",cause=\"%s\"", uerr_names[e]);
            sample(out, m, "cluster", cfg->clusters[i].name, extra,
                   get(&sums[i].upstream_errors[e]));
        }
    }
    m = "trellis_proxy_upstream_connect_failures_total";
    help(out, m, "counter", "Upstream connections that could not be opened.");
    for (size_t i = 0; i < n; i++) {
        sample(out, m, "cluster", cfg->clusters[i].name, NULL,
               get(&sums[i].upstream_errors[TR_PROXY_UERR_CONNECT]));
    }
    m = "trellis_proxy_retries_total";
    help(out, m, "counter", "Retries started by the retry policy.");
    for (size_t i = 0; i < n; i++) {
        sample(out, m, "cluster", cfg->clusters[i].name, NULL, get(&sums[i].retries));
    }
    m = "trellis_proxy_cluster_endpoints";
    help(out, m, "gauge", "Endpoints the cluster balances over (registry: passing only).");
    for (size_t i = 0; i < n; i++) {
        struct tr_proxy_eps *eps = tr_proxy_worker_eps(pw, &cfg->clusters[i]);
        sample(out, m, "cluster", cfg->clusters[i].name, NULL, eps != NULL ? eps->n : 0);
    }
    resilience_metrics(out, pw, cfg, sums);
    m = "trellis_proxy_cluster_request_duration_seconds";
    help(out, m, "histogram", "Time from the request head to the end of the response.");
    for (size_t i = 0; i < n; i++) {
        histogram(out, m, "cluster", cfg->clusters[i].name, &sums[i]);
    }
    tr_free_null(&sums);
}

static void gauge_line(struct tr_buf *out, const char *name, const char *type, const char *text,
                       uint64_t v)
{
    help(out, name, type, text);
    tr_buf_appendf(out, "%s %llu\n", name, (unsigned long long)v);
}

static void process_metrics(struct tr_buf *out, struct tr_proxy *px)
{
    uint64_t conns = 0;
    uint64_t up = 0;
    uint64_t idle = 0;
    uint64_t connects = 0;
    uint64_t reuses = 0;
    uint64_t stale = 0;
    for (unsigned i = 0; i < px->nworkers; i++) {
        struct tr_proxy_worker_gauges *g = &px->workers[i].gauges;
        conns += get(&g->client_conns);
        up += get(&g->upstream_conns);
        idle += get(&g->upstream_idle);
        connects += get(&g->upstream_connects);
        reuses += get(&g->upstream_reuses);
        stale += get(&g->stale_retries);
    }
    gauge_line(out, "trellis_proxy_active_connections", "gauge",
               "Open client connections (refreshed every second).", conns);
    help(out, "trellis_proxy_upstream_connections", "gauge",
         "Open upstream connections by state (refreshed every second).");
    tr_buf_appendf(out, "trellis_proxy_upstream_connections{state=\"active\"} %llu\n",
                   (unsigned long long)(up - idle));
    tr_buf_appendf(out, "trellis_proxy_upstream_connections{state=\"idle\"} %llu\n",
                   (unsigned long long)idle);
    gauge_line(out, "trellis_proxy_upstream_connects_total", "counter",
               "Upstream connections opened.", connects);
    gauge_line(out, "trellis_proxy_upstream_reuses_total", "counter",
               "Requests sent on a pooled keep-alive connection.", reuses);
    gauge_line(out, "trellis_proxy_upstream_stale_retries_total", "counter",
               "Requests replayed on a fresh connection after a pooled one turned out closed.",
               stale);
    gauge_line(out, "trellis_proxy_config_generation", "gauge",
               "Configuration generation serving new requests.", px->workers[0].gauges.generation);
    help(out, "trellis_proxy_config_reloads_total", "counter", "SIGHUP reloads by result.");
    tr_buf_appendf(out, "trellis_proxy_config_reloads_total{result=\"ok\"} %llu\n",
                   (unsigned long long)atomic_load(&px->reloads_ok));
    tr_buf_appendf(out, "trellis_proxy_config_reloads_total{result=\"rejected\"} %llu\n",
                   (unsigned long long)atomic_load(&px->reloads_failed));
}

static struct tr_proxy_worker *worker_of(struct tr_http_req *req)
{
    struct tr_proxy_worker *pw = req->server->worker_data;
    tr_proxy_worker_update(pw);
    return pw;
}

static void on_metrics(struct tr_http_req *req)
{
    struct tr_proxy_worker *pw = worker_of(req);
    struct tr_proxy_gen *gen = tr_proxy_gen_acquire(pw);
    struct tr_buf out;
    tr_buf_init(&out);
    route_metrics(&out, gen->cfg);
    cluster_metrics(&out, pw, gen->cfg);
    process_metrics(&out, pw->proxy);
    tr_proxy_gen_release(gen);
    tr_http_resp_send(req, 200, TR_SLICE_LIT("text/plain; version=0.0.4; charset=utf-8"),
                      tr_buf_slice(&out));
    tr_buf_dispose(&out);
}

static void on_ready(struct tr_http_req *req)
{
    struct tr_proxy_worker *pw = worker_of(req);
    const struct tr_proxy_config *cfg = pw->gen->cfg;
    const char *waiting = NULL;
    for (size_t i = 0; i < cfg->nclusters && waiting == NULL; i++) {
        const struct tr_proxy_cluster_config *c = &cfg->clusters[i];
        if (c->svc != NULL && !atomic_load(&c->svc->synced)) {
            waiting = c->name;
        }
    }
    struct tr_buf out;
    tr_buf_init(&out);
    int status = 200;
    if (atomic_load(&pw->proxy->draining)) {
        status = 503;
        tr_buf_appendf(&out, "{\"ready\":false,\"reason\":\"draining\"}\n");
    } else if (waiting != NULL) {
        status = 503;
        tr_buf_appendf(&out,
                       "{\"ready\":false,\"reason\":\"cluster %s waits for its first "
                       "registry answer\"}\n",
                       waiting);
    } else {
        tr_buf_appendf(&out, "{\"ready\":true,\"generation\":%llu}\n",
                       (unsigned long long)cfg->generation);
    }
    tr_http_resp_send(req, status, TR_SLICE_LIT("application/json"), tr_buf_slice(&out));
    tr_buf_dispose(&out);
}

static void json_str(struct tr_buf *out, const char *s)
{
    tr_buf_append(out, "\"", 1);
    tr_json_escape(out, tr_slice_cstr(s));
    tr_buf_append(out, "\"", 1);
}

static void endpoints_json(struct tr_buf *out, struct tr_proxy_worker *pw, struct tr_proxy_eps *eps)
{
    struct tr_proxy *px = pw->proxy;
    uint64_t now = uv_now(pw->srv.loop);
    tr_buf_appendf(out, "\"endpoints\":[");
    for (size_t i = 0; eps != NULL && i < eps->n; i++) {
        uint64_t active = 0;
        uint64_t requests = 0;
        uint64_t failures = 0;
        for (unsigned w = 0; w < px->nworkers; w++) {
            struct tr_proxy_ep_load *l = tr_proxy_eps_load(eps, w, i);
            active += get(&l->active);
            requests += get(&l->requests);
            failures += get(&l->failures);
        }
        tr_buf_appendf(out, "%s{\"address\":", i > 0 ? "," : "");
        json_str(out, eps->eps[i].name);
        uint64_t remaining;
        unsigned workers;
        bool ejected = ep_ejected(eps, i, px->nworkers, now, &remaining, &workers);
        tr_buf_appendf(out,
                       ",\"weight\":%u,\"health\":\"%s\",\"in_flight\":%llu,"
                       "\"requests\":%llu,\"failures\":%llu",
                       eps->eps[i].weight, ejected ? "ejected" : "healthy",
                       (unsigned long long)active, (unsigned long long)requests,
                       (unsigned long long)failures);
        if (ejected) {
            tr_buf_appendf(out, ",\"ejected_workers\":%u,\"ejected_remaining_ms\":%llu", workers,
                           (unsigned long long)remaining);
        }
        tr_buf_append(out, "}", 1);
    }
    tr_buf_appendf(out, "]");
}

static void breaker_json(struct tr_buf *out, struct tr_proxy_worker *pw,
                         const struct tr_proxy_cluster_config *c, struct tr_proxy_stats_block *sum)
{
    tr_buf_appendf(out, "\"active_connections\":%llu,\"pending\":%llu,\"circuit_breaker\":",
                   (unsigned long long)get(&sum->upstream_active),
                   (unsigned long long)get(&sum->pending));
    const struct tr_proxy_breaker_policy *p = &c->breaker;
    if (!p->configured) {
        tr_buf_appendf(out, "null,");
        return;
    }
    tr_buf_appendf(out,
                   "{\"state\":\"%s\",\"max_connections\":%llu,\"max_pending\":%llu,"
                   "\"max_requests\":%llu,\"consecutive_failures\":%llu,\"open_for_ms\":%llu,"
                   "\"opens\":%llu,\"rejected\":{",
                   tr_proxy_breaker_state_name(breaker_state(c)),
                   (unsigned long long)p->max_connections, (unsigned long long)p->max_pending,
                   (unsigned long long)p->max_requests, (unsigned long long)p->consecutive_failures,
                   (unsigned long long)p->open_for_ms,
                   (unsigned long long)get(&sum->breaker_opens));
    for (int r = 0; r < TR_PROXY_OVERFLOW_COUNT; r++) {
        tr_buf_appendf(out, "%s\"%s\":%llu", r > 0 ? "," : "", overflow_names[r],
                       (unsigned long long)get(&sum->overflows[r]));
    }
    struct tr_proxy_breaker *b = &c->guard->breaker;
    uint64_t now = uv_now(pw->srv.loop);
    uint64_t until = get(&b->open_until_ms);
    tr_buf_appendf(out, "},\"failures\":%llu", (unsigned long long)get(&b->failures));
    if (get(&b->state) == TR_PROXY_BREAKER_OPEN) {
        tr_buf_appendf(out, ",\"open_remaining_ms\":%llu",
                       (unsigned long long)(until > now ? until - now : 0));
    }
    tr_buf_appendf(out, "},");
}

static void outlier_json(struct tr_buf *out, struct tr_proxy_worker *pw,
                         const struct tr_proxy_cluster_config *c, struct tr_proxy_stats_block *sum)
{
    const struct tr_proxy_outlier_policy *p = &c->outlier;
    tr_buf_appendf(out, "\"outlier\":");
    if (!p->configured) {
        tr_buf_appendf(out, "null,");
        return;
    }
    tr_buf_appendf(out,
                   "{\"consecutive_5xx\":%llu,\"base_ejection_ms\":%llu,"
                   "\"max_ejection_percent\":%llu,\"ejections\":%llu,\"ejected\":%zu},",
                   (unsigned long long)p->consecutive_5xx, (unsigned long long)p->base_ejection_ms,
                   (unsigned long long)p->max_ejection_percent,
                   (unsigned long long)get(&sum->ejections), ejected_count(pw, c));
}

static void cluster_json(struct tr_buf *out, struct tr_proxy_worker *pw,
                         const struct tr_proxy_cluster_config *c)
{
    struct tr_proxy_stats_block sum;
    tr_proxy_stats_sum(c->stats, &sum);
    tr_buf_appendf(out, "{\"name\":");
    json_str(out, c->name);
    tr_buf_appendf(out, ",\"lb\":\"%s\",\"timeout_ms\":%llu,\"in_flight\":%llu,",
                   tr_proxy_lb_name(c->lb), (unsigned long long)c->timeout_ms,
                   (unsigned long long)get(&sum.active));
    if (c->svc != NULL) {
        tr_buf_appendf(out, "\"source\":\"registry\",\"service\":");
        json_str(out, c->service);
        tr_buf_appendf(out,
                       ",\"registry\":{\"synced\":%s,\"index\":%llu,\"updates\":%llu,"
                       "\"errors\":%llu},",
                       atomic_load(&c->svc->synced) ? "true" : "false",
                       (unsigned long long)atomic_load(&c->svc->registry_index),
                       (unsigned long long)atomic_load(&c->svc->updates),
                       (unsigned long long)atomic_load(&c->svc->errors));
    } else {
        tr_buf_appendf(out, "\"source\":\"static\",");
    }
    breaker_json(out, pw, c, &sum);
    outlier_json(out, pw, c, &sum);
    endpoints_json(out, pw, tr_proxy_worker_eps(pw, c));
    tr_buf_appendf(out, "}");
}

static void on_clusters(struct tr_http_req *req)
{
    struct tr_proxy_worker *pw = worker_of(req);
    struct tr_proxy_gen *gen = tr_proxy_gen_acquire(pw);
    const struct tr_proxy_config *cfg = gen->cfg;
    struct tr_buf out;
    tr_buf_init(&out);
    tr_buf_appendf(&out, "{\"generation\":%llu,\"clusters\":[",
                   (unsigned long long)cfg->generation);
    for (size_t i = 0; i < cfg->nclusters; i++) {
        if (i > 0) {
            tr_buf_append(&out, ",", 1);
        }
        cluster_json(&out, pw, &cfg->clusters[i]);
    }
    tr_buf_appendf(&out, "]}\n");
    tr_proxy_gen_release(gen);
    tr_http_resp_send(req, 200, TR_SLICE_LIT("application/json"), tr_buf_slice(&out));
    tr_buf_dispose(&out);
}

int tr_proxy_admin_routes(struct tr_router *r)
{
    int rc = tr_router_add(r, "GET", "/metrics", on_metrics, NULL, TR_ROUTE_BUFFERED);
    rc |= tr_router_add(r, "GET", "/ready", on_ready, NULL, TR_ROUTE_BUFFERED);
    rc |= tr_router_add(r, "GET", "/clusters", on_clusters, NULL, TR_ROUTE_BUFFERED);
    return rc != 0 ? -EINVAL : 0;
}
