/* SPDX-License-Identifier: Apache-2.0 */
/* The health checker: HTTP, TCP and TTL checks run on the registry loop, with no
 * thread per check. Every check sits in one min-heap keyed by its next event — the
 * next run, the deadline of the probe in flight, or the TTL expiry — and a single
 * uv timer fires at the heap's minimum. A probe is a separate object so that a check
 * can go away while its probe is in flight: the probe is then abandoned (its request
 * cancelled, its socket closed) and frees itself once libuv lets go of it. A second
 * timer reaps services whose checks stayed critical past DeregisterCriticalServiceAfter. */
#include "registry/catalog.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/mem.h"
#include "http/client.h"
#include "registry/registry.h"

#define REAP_INTERVAL_MS 1000
#define MAX_USER_HEADERS 64

struct tr_cat_probe {
    struct tr_list link; /* in health.probes until freed */
    struct tr_catalog *cat;
    struct tr_cat_check *check; /* NULL once finished or abandoned */
    enum tr_check_type type;
    char *what;   /* owned: "http://…" or "host:port", for output */
    char *method; /* owned: HTTP method */
    size_t output_max;
    struct tr_addr addr;
    uv_getaddrinfo_t gai;           /* gai.data = probe */
    bool resolving;                 /* gai in flight */
    uv_tcp_t tcp;                   /* tcp.data = probe */
    uv_connect_t connect;           /* connect.data = probe */
    bool tcp_open;                  /* tcp initialised; freed in its close callback */
    struct tr_http_client_req *req; /* in flight, or NULL */
    int http_status;
    char reason[64];
    struct tr_buf body; /* first output_max bytes of the response */
};

static void arm_timer(struct tr_cat_health *h, uv_loop_t *loop);
static void probe_release(struct tr_cat_probe *p);

static uv_loop_t *loop_of(struct tr_catalog *cat)
{
    return &cat->reg->loop;
}

/* ------------------------------------------------------------ schedule */

static void schedule_at(struct tr_catalog *cat, struct tr_cat_check *c, uint64_t when)
{
    struct tr_cat_health *h = &cat->health;
    tr_heap_remove(&h->schedule, &c->sched);
    tr_heap_push(&h->schedule, &c->sched, when);
    arm_timer(h, loop_of(cat));
}

static void on_timer(uv_timer_t *t);

static void arm_timer(struct tr_cat_health *h, uv_loop_t *loop)
{
    struct tr_heap_node *n = tr_heap_min(&h->schedule);
    if (n == NULL || h->stopping) {
        return;
    }
    if (h->timer_due != 0 && h->timer_due <= n->key) {
        return;
    }
    uint64_t now = uv_now(loop);
    h->timer_due = n->key;
    uv_timer_start(&h->timer, on_timer, n->key > now ? n->key - now : 0, 0);
}

/* ------------------------------------------------------------ probes */

static struct tr_cat_probe *probe_new(struct tr_catalog *cat, struct tr_cat_check *c)
{
    struct tr_cat_probe *p = tr_xcalloc(1, sizeof(*p));
    p->cat = cat;
    p->check = c;
    p->type = c->type;
    p->output_max = c->output_max;
    tr_buf_init(&p->body);
    tr_list_insert_tail(&cat->health.probes, &p->link);
    const json_t *def = c->def;
    if (c->type == TR_CHECK_HTTP) {
        p->what = tr_xstrdup(json_string_value(json_object_get(def, "HTTP")));
        p->method = tr_xstrdup(json_string_value(json_object_get(def, "Method")));
    } else {
        p->what = tr_xstrdup(json_string_value(json_object_get(def, "TCP")));
    }
    c->probe = p;
    return p;
}

static void probe_free(struct tr_cat_probe *p)
{
    tr_list_remove(&p->link);
    tr_buf_dispose(&p->body);
    tr_free_null(&p->what);
    tr_free_null(&p->method);
    tr_free_null(&p);
}

static void on_tcp_closed(uv_handle_t *h)
{
    probe_free(h->data);
}

/* Lets go of whatever the probe still holds; frees it now or from a callback. */
static void probe_release(struct tr_cat_probe *p)
{
    TR_ASSERT(p->check == NULL);
    if (p->resolving) {
        uv_cancel((uv_req_t *)&p->gai); /* on_resolved releases it again */
        return;
    }
    if (p->req != NULL) {
        struct tr_http_client_req *req = p->req;
        p->req = NULL;
        tr_http_client_req_cancel(req);
    }
    if (p->tcp_open) {
        if (!uv_is_closing((uv_handle_t *)&p->tcp)) {
            uv_close((uv_handle_t *)&p->tcp, on_tcp_closed);
        }
        return;
    }
    probe_free(p);
}

/* The check no longer wants this probe's result. */
static void probe_abandon(struct tr_cat_check *c)
{
    struct tr_cat_probe *p = c->probe;
    if (p == NULL) {
        return;
    }
    c->probe = NULL;
    p->check = NULL;
    probe_release(p);
}

/* The probe has its answer: record it, schedule the next run, let the probe go. */
static void probe_finish(struct tr_cat_probe *p, enum tr_check_status st, const char *output)
{
    struct tr_cat_check *c = p->check;
    if (c != NULL) {
        c->probe = NULL;
        p->check = NULL;
        struct tr_catalog *cat = p->cat;
        schedule_at(cat, c, uv_now(loop_of(cat)) + c->interval_ms);
        tr_cat__check_result(cat, c, st, tr_slice_cstr(output));
    }
    probe_release(p);
}

static void probe_fail(struct tr_cat_probe *p, const char *why)
{
    char out[512];
    if (p->type == TR_CHECK_HTTP) {
        snprintf(out, sizeof(out), "HTTP %s %s: %s", p->method, p->what, why);
    } else {
        snprintf(out, sizeof(out), "dial tcp %s: %s", p->what, why);
    }
    probe_finish(p, TR_CHECK_CRITICAL, out);
}

/* ---- HTTP */

static void on_http_headers(struct tr_http_client_req *req, const struct tr_http_client_resp *resp,
                            void *data)
{
    struct tr_cat_probe *p = data;
    p->http_status = resp->status;
    snprintf(p->reason, sizeof(p->reason), "%.*s", TR_SLICE_FMT(resp->reason));
}

static void on_http_body(struct tr_http_client_req *req, struct tr_slice chunk, void *data)
{
    struct tr_cat_probe *p = data;
    size_t room = p->output_max > p->body.len ? p->output_max - p->body.len : 0;
    tr_buf_append(&p->body, chunk.ptr, chunk.len < room ? chunk.len : room);
}

static void on_http_end(struct tr_http_client_req *req, void *data)
{
    struct tr_cat_probe *p = data;
    p->req = NULL;
    /* Consul: 2xx passing, 429 Too Many Requests warning, anything else critical. */
    enum tr_check_status st = TR_CHECK_CRITICAL;
    if (p->http_status >= 200 && p->http_status <= 299) {
        st = TR_CHECK_PASSING;
    } else if (p->http_status == 429) {
        st = TR_CHECK_WARNING;
    }
    struct tr_buf out;
    tr_buf_init(&out);
    tr_buf_appendf(&out, "HTTP %s %s: %d %s Output: ", p->method, p->what, p->http_status,
                   p->reason);
    tr_buf_append_slice(&out, tr_buf_slice(&p->body));
    tr_buf_append(&out, "", 1);
    probe_finish(p, st, tr_buf_data(&out));
    tr_buf_dispose(&out);
}

static void on_http_error(struct tr_http_client_req *req, int err, unsigned flags, void *data)
{
    struct tr_cat_probe *p = data;
    p->req = NULL;
    probe_fail(p, tr_http_client_strerror(err));
}

static const struct tr_http_client_handler http_handler = {
    .on_headers = on_http_headers,
    .on_body = on_http_body,
    .on_end = on_http_end,
    .on_error = on_http_error,
};

static bool framing_header(const char *name)
{
    return strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0 ||
           strcasecmp(name, "Connection") == 0;
}

static void http_start(struct tr_cat_probe *p, const struct tr_cat_check *c)
{
    const json_t *def = c->def;
    struct tr_http_client_header hdrs[MAX_USER_HEADERS + 4];
    size_t n = 0;
    bool has_host = false;
    bool has_ua = false;
    const char *k;
    json_t *vals;
    json_object_foreach(json_object_get(def, "Header"), k, vals)
    {
        size_t i;
        json_t *v;
        json_array_foreach(vals, i, v)
        {
            if (n < MAX_USER_HEADERS && !framing_header(k)) {
                hdrs[n++] = (struct tr_http_client_header){tr_slice_cstr(k),
                                                           tr_slice_cstr(json_string_value(v))};
                has_host = has_host || strcasecmp(k, "Host") == 0;
                has_ua = has_ua || strcasecmp(k, "User-Agent") == 0;
            }
        }
    }
    /* As Go's client: Host is the URL's authority; no keep-alive, like Consul's checks. */
    const char *auth = p->what + 7;
    if (!has_host) {
        hdrs[n++] = (struct tr_http_client_header){TR_SLICE_LIT("Host"),
                                                   tr_slice(auth, strcspn(auth, "/?#"))};
    }
    if (!has_ua) {
        hdrs[n++] = (struct tr_http_client_header){TR_SLICE_LIT("User-Agent"),
                                                   TR_SLICE_LIT("Consul Health Check")};
    }
    hdrs[n++] = (struct tr_http_client_header){TR_SLICE_LIT("Accept"),
                                               TR_SLICE_LIT("text/plain, text/*, */*")};
    hdrs[n++] = (struct tr_http_client_header){TR_SLICE_LIT("Connection"), TR_SLICE_LIT("close")};
    const char *body = json_string_value(json_object_get(def, "Body"));
    struct tr_http_client_request r = {
        .upstream = p->addr,
        .method = tr_slice_cstr(p->method),
        .target = tr_slice_cstr(c->path),
        .headers = hdrs,
        .header_count = n,
        .body = body != NULL && body[0] != '\0' ? tr_slice_cstr(body) : TR_SLICE_NULL,
        .handler = &http_handler,
        .data = p,
    };
    int rc = tr_http_client_request(p->cat->health.http, &r, &p->req);
    if (rc != 0) {
        p->req = NULL;
        probe_fail(p, tr_http_client_strerror(rc));
    }
}

/* ---- TCP */

static void on_tcp_connect(uv_connect_t *req, int status)
{
    struct tr_cat_probe *p = req->data;
    if (p->check == NULL) {
        return; /* abandoned: the handle is closing */
    }
    if (status != 0) {
        char why[128];
        snprintf(why, sizeof(why), "connect: %s", uv_strerror(status));
        probe_fail(p, why);
        return;
    }
    char out[512];
    snprintf(out, sizeof(out), "TCP connect %s: Success", p->what);
    probe_finish(p, TR_CHECK_PASSING, out);
}

static void tcp_start(struct tr_cat_probe *p)
{
    uv_tcp_init(loop_of(p->cat), &p->tcp);
    p->tcp.data = p;
    p->connect.data = p;
    p->tcp_open = true;
    int rc =
        uv_tcp_connect(&p->connect, &p->tcp, (const struct sockaddr *)&p->addr.ss, on_tcp_connect);
    if (rc != 0) {
        char why[128];
        snprintf(why, sizeof(why), "connect: %s", uv_strerror(rc));
        probe_fail(p, why);
    }
}

/* ---- address resolution */

static void probe_launch(struct tr_cat_probe *p)
{
    if (p->type == TR_CHECK_HTTP) {
        http_start(p, p->check);
    } else {
        tcp_start(p);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct tr_cat_probe *p = req->data;
    p->resolving = false;
    if (p->check == NULL) {
        uv_freeaddrinfo(res);
        probe_release(p);
        return;
    }
    if (status != 0 || res == NULL) {
        char why[256];
        snprintf(why, sizeof(why), "lookup %s: %s", p->check->host, uv_strerror(status));
        uv_freeaddrinfo(res);
        probe_fail(p, why);
        return;
    }
    memcpy(&p->addr.ss, res->ai_addr, res->ai_addrlen);
    p->addr.len = (socklen_t)res->ai_addrlen;
    uv_freeaddrinfo(res);
    probe_launch(p);
}

static void probe_start(struct tr_catalog *cat, struct tr_cat_check *c)
{
    struct tr_cat_probe *p = probe_new(cat, c);
    char hostport[300];
    bool v6 = strchr(c->host, ':') != NULL;
    snprintf(hostport, sizeof(hostport), v6 ? "[%s]:%u" : "%s:%u", c->host, (unsigned)c->port);
    if (tr_addr_parse(hostport, &p->addr) == 0) {
        probe_launch(p);
        return;
    }
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)c->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    p->gai.data = p;
    int rc = uv_getaddrinfo(loop_of(cat), &p->gai, on_resolved, c->host, port, &hints);
    if (rc != 0) {
        char why[256];
        snprintf(why, sizeof(why), "lookup %s: %s", c->host, uv_strerror(rc));
        probe_fail(p, why);
        return;
    }
    p->resolving = true;
}

/* ------------------------------------------------------------ timers */

static void run_due(struct tr_catalog *cat, struct tr_cat_check *c, uint64_t now)
{
    char out[TR_CAT_OUTPUT_MAX + 128];
    char dur[48];
    switch (c->type) {
    case TR_CHECK_TTL:
        /* Stays critical until the next update restarts the clock. */
        snprintf(out, sizeof(out), "TTL expired (last output before timeout follows): %s",
                 c->output);
        tr_cat__check_result(cat, c, TR_CHECK_CRITICAL, tr_slice_cstr(out));
        break;
    case TR_CHECK_HTTP:
    case TR_CHECK_TCP:
        if (c->probe != NULL) {
            struct tr_cat_probe *p = c->probe;
            tr_cat_format_duration(c->timeout_ms, dur, sizeof(dur));
            if (c->type == TR_CHECK_HTTP) {
                snprintf(out, sizeof(out), "HTTP %s %s: timed out after %s", p->method, p->what,
                         dur);
            } else {
                snprintf(out, sizeof(out), "dial tcp %s: i/o timeout after %s", p->what, dur);
            }
            probe_abandon(c);
            schedule_at(cat, c, now + c->interval_ms);
            tr_cat__check_result(cat, c, TR_CHECK_CRITICAL, tr_slice_cstr(out));
            break;
        }
        schedule_at(cat, c, now + c->timeout_ms);
        probe_start(cat, c);
        break;
    case TR_CHECK_MAINT:
        break;
    default:
        TR_ASSERT(0);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct tr_catalog *cat = t->data;
    struct tr_cat_health *h = &cat->health;
    uint64_t now = uv_now(loop_of(cat));
    h->timer_due = 0;
    struct tr_heap_node *n;
    while (!h->stopping && (n = tr_heap_min(&h->schedule)) != NULL && n->key <= now) {
        struct tr_cat_check *c = tr_container_of(n, struct tr_cat_check, sched);
        tr_heap_remove(&h->schedule, n);
        run_due(cat, c, now);
    }
    arm_timer(h, loop_of(cat));
}

static void on_reap(uv_timer_t *t)
{
    struct tr_catalog *cat = t->data;
    uint64_t now = uv_now(loop_of(cat));
    /* Collect first: deregistering edits the list being walked. */
    char **ids = NULL;
    size_t n = 0;
    size_t cap = 0;
    struct tr_list *it;
    for (it = cat->reapable.next; it != &cat->reapable; it = it->next) {
        struct tr_cat_check *c = tr_container_of(it, struct tr_cat_check, reap_link);
        if (c->status != TR_CHECK_CRITICAL || c->critical_since == 0 || c->service == NULL ||
            now - c->critical_since < c->dcsa_ms) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            ids = tr_xrealloc(ids, cap * sizeof(*ids));
        }
        ids[n++] = tr_xstrdup(c->service->id);
    }
    for (size_t i = 0; i < n; i++) {
        if (tr_cat__deregister(cat, ids[i]) == 0) {
            TR_LOG_INFO("registry", NULL,
                        "deregistered service \"%s\": critical for longer "
                        "than its DeregisterCriticalServiceAfter",
                        ids[i]);
        }
        tr_free_null(&ids[i]);
    }
    tr_free_null(&ids);
}

/* ------------------------------------------------------------ entry points */

void tr_cat__health_schedule(struct tr_catalog *cat, struct tr_cat_check *c, bool fresh)
{
    struct tr_cat_health *h = &cat->health;
    if (!h->started || h->stopping) {
        return;
    }
    probe_abandon(c);
    tr_heap_remove(&h->schedule, &c->sched);
    uint64_t now = uv_now(loop_of(cat));
    switch (c->type) {
    case TR_CHECK_TTL:
        schedule_at(cat, c, now + c->ttl_ms);
        break;
    case TR_CHECK_HTTP:
    case TR_CHECK_TCP:
        /* A new check runs now; restored ones spread over their interval. */
        schedule_at(cat, c, fresh ? now : now + (uint64_t)rand() % (c->interval_ms + 1));
        break;
    default:
        break;
    }
}

void tr_cat__health_forget(struct tr_catalog *cat, struct tr_cat_check *c)
{
    probe_abandon(c);
    tr_heap_remove(&cat->health.schedule, &c->sched);
}

void tr_cat__health_ttl_reset(struct tr_catalog *cat, struct tr_cat_check *c)
{
    if (cat->health.started && !cat->health.stopping && c->type == TR_CHECK_TTL) {
        schedule_at(cat, c, uv_now(loop_of(cat)) + c->ttl_ms);
    }
}

void tr_cat__health_start(struct tr_catalog *cat)
{
    struct tr_cat_health *h = &cat->health;
    uv_loop_t *loop = loop_of(cat);
    struct tr_http_client_config cfg;
    tr_http_client_config_init(&cfg);
    /* Each check opens its own connection (Consul disables keep-alive for checks); the
     * check's Timeout is enforced by the schedule, not by the client. */
    cfg.max_idle_per_upstream = 0;
    cfg.connect_timeout_ms = 0;
    cfg.response_timeout_ms = 0;
    cfg.read_timeout_ms = 0;
    h->http = tr_http_client_new(loop, &cfg);
    uv_timer_init(loop, &h->timer);
    h->timer.data = cat;
    uv_timer_init(loop, &h->reap_timer);
    h->reap_timer.data = cat;
    uv_timer_start(&h->reap_timer, on_reap, REAP_INTERVAL_MS, REAP_INTERVAL_MS);
    h->started = true;
    uint64_t now = uv_now(loop);
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&cat->checks, &i, &slot)) {
        struct tr_cat_check *c = slot->value;
        if (c->status == TR_CHECK_CRITICAL) {
            c->critical_since = now;
        }
        tr_cat__health_schedule(cat, c, false);
    }
}

void tr_cat__health_stop(struct tr_catalog *cat)
{
    struct tr_cat_health *h = &cat->health;
    if (!h->started || h->stopping) {
        return;
    }
    h->stopping = true;
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&cat->checks, &i, &slot)) {
        struct tr_cat_check *c = slot->value;
        probe_abandon(c);
        tr_heap_remove(&h->schedule, &c->sched);
    }
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, NULL);
    uv_timer_stop(&h->reap_timer);
    uv_close((uv_handle_t *)&h->reap_timer, NULL);
    tr_http_client_close(h->http, NULL, NULL);
    h->http = NULL;
}
