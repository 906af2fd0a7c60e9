/* SPDX-License-Identifier: Apache-2.0 */
/* The discovery thread (see discovery.h). Each watched service runs one blocking query
 * at a time: answer -> publish if the set changed -> next query with the new index;
 * failure -> retry after a backoff (250 ms doubling to 10 s) while the workers keep the
 * last good set. */
#include "proxy/discovery.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/mem.h"
#include "proxy/endpoints.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 10000
#define MIN_QUERY_GAP_MS 50

enum msg_kind {
    MSG_WATCH = 0,
    MSG_REGISTRY,
    MSG_STOP,
};

struct disc_msg {
    struct tr_msg base;
    struct tr_proxy_discovery *d;
    enum msg_kind kind;
    struct tr_proxy_service *svc;
    struct tr_addr addr;
    char host[128];
};

static void query_start(struct tr_proxy_service *s);

/* ------------------------------------------------------------ parsing */

/* Service.Meta[key] as a port number, or 0. */
static json_int_t meta_port(json_t *svc, const char *key)
{
    const char *v = json_string_value(json_object_get(json_object_get(svc, "Meta"), key));
    uint64_t port;
    if (v == NULL || tr_slice_to_u64(tr_slice_cstr(v), &port) != 0 || port > 65535) {
        return 0;
    }
    return (json_int_t)port;
}

static bool endpoint_from_entry(json_t *entry, struct tr_proxy_endpoint *ep, const char *port_meta)
{
    json_t *svc = json_object_get(entry, "Service");
    json_t *node = json_object_get(entry, "Node");
    const char *addr = json_string_value(json_object_get(svc, "Address"));
    if (addr == NULL || *addr == '\0') {
        addr = json_string_value(json_object_get(node, "Address"));
    }
    json_int_t port = port_meta != NULL ? meta_port(svc, port_meta)
                                        : json_integer_value(json_object_get(svc, "Port"));
    if (addr == NULL || port <= 0 || port > 65535) {
        return false;
    }
    char text[128];
    int n = strchr(addr, ':') != NULL ? snprintf(text, sizeof(text), "[%s]:%lld", addr, port)
                                      : snprintf(text, sizeof(text), "%s:%lld", addr, port);
    struct tr_addr a;
    if (n <= 0 || (size_t)n >= sizeof(text) || tr_addr_parse(text, &a) != 0) {
        return false;
    }
    json_int_t weight =
        json_integer_value(json_object_get(json_object_get(svc, "Weights"), "Passing"));
    if (weight <= 0) {
        weight = 1;
    }
    tr_proxy_endpoint_init(ep, &a, (uint32_t)(weight > 1000 ? 1000 : weight));
    return true;
}

struct tr_proxy_eps *tr_proxy_discovery_parse(const char *json, size_t len, unsigned nworkers)
{
    return tr_proxy_discovery_parse_port(json, len, nworkers, NULL);
}

struct tr_proxy_eps *tr_proxy_discovery_parse_port(const char *json, size_t len,
                                                   unsigned nworkers, const char *port_meta)
{
    json_t *root = json_loadb(json, len, 0, NULL);
    if (root == NULL || !json_is_array(root)) {
        json_decref(root);
        return NULL;
    }
    size_t count = json_array_size(root);
    struct tr_proxy_endpoint *eps = tr_xcalloc(count > 0 ? count : 1, sizeof(*eps));
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        if (endpoint_from_entry(json_array_get(root, i), &eps[n], port_meta)) {
            n++;
        }
    }
    json_decref(root);
    struct tr_proxy_eps *set = tr_proxy_eps_new(eps, n, nworkers);
    tr_free_null(&eps);
    return set;
}

/* ------------------------------------------------------------ publishing */

static void publish(struct tr_proxy_service *s, struct tr_proxy_eps *set)
{
    for (unsigned w = 0; w < s->nworkers; w++) {
        tr_proxy_eps_ref(set);
        struct tr_proxy_eps *old =
            atomic_exchange_explicit(&s->slots[w], set, memory_order_acq_rel);
        tr_proxy_eps_unref(old);
    }
    tr_proxy_eps_unref(s->last);
    s->last = set;
    atomic_store(&s->healthy, (unsigned)set->n);
    atomic_fetch_add(&s->updates, 1);
    atomic_store(&s->synced, true);
    TR_LOG_INFO("proxy", NULL, "service \"%s\": %zu healthy endpoint(s)", s->name, set->n);
}

/* ------------------------------------------------------------ queries */

static void on_retry_timer(uv_timer_t *t)
{
    query_start(t->data);
}

static void schedule(struct tr_proxy_service *s, uint64_t delay_ms)
{
    if (s->disc->stopping) {
        return;
    }
    uv_timer_start(&s->timer, on_retry_timer, delay_ms, 0);
}

static void query_failed(struct tr_proxy_service *s, const char *why)
{
    atomic_fetch_add(&s->errors, 1);
    if (s->failures == 0) {
        TR_LOG_WARN("proxy", NULL,
                    "registry query for service \"%s\" failed: %s; keeping %zu "
                    "known endpoint(s) and retrying",
                    s->name, why, s->last ? s->last->n : 0);
    }
    s->failures++;
    uint64_t delay = BACKOFF_MIN_MS;
    for (unsigned i = 1; i < s->failures && delay < BACKOFF_MAX_MS; i++) {
        delay *= 2;
    }
    schedule(s, delay > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay);
}

static void on_headers(struct tr_http_client_req *req, const struct tr_http_client_resp *resp,
                       void *data)
{
    struct tr_proxy_service *s = data;
    s->status = resp->status;
    s->next_index = 0;
    for (size_t i = 0; i < resp->header_count; i++) {
        if (tr_slice_caseeq(resp->headers[i].name, TR_SLICE_LIT("X-Consul-Index"))) {
            uint64_t v;
            if (tr_slice_to_u64(resp->headers[i].value, &v) == 0) {
                s->next_index = v;
            }
        }
    }
    (void)req;
}

static void on_body(struct tr_http_client_req *req, struct tr_slice chunk, void *data)
{
    struct tr_proxy_service *s = data;
    if (s->body.len + chunk.len > TR_PROXY_DISCOVERY_MAX_BODY) {
        tr_http_client_req_cancel(req);
        s->req = NULL;
        tr_buf_reset(&s->body);
        query_failed(s, "answer larger than 16 MiB");
        return;
    }
    tr_buf_append_slice(&s->body, chunk);
}

static void on_end(struct tr_http_client_req *req, void *data)
{
    struct tr_proxy_service *s = data;
    (void)req;
    s->req = NULL;
    if (s->status != 200) {
        char why[64];
        snprintf(why, sizeof(why), "HTTP %d", s->status);
        tr_buf_reset(&s->body);
        query_failed(s, why);
        return;
    }
    struct tr_proxy_eps *set = tr_proxy_discovery_parse_port(tr_buf_data(&s->body), s->body.len,
                                                             s->disc->nworkers, s->port_meta);
    tr_buf_reset(&s->body);
    tr_buf_shrink(&s->body, 64 * 1024);
    if (set == NULL) {
        query_failed(s, "answer is not a JSON array");
        return;
    }
    if (s->failures > 0) {
        TR_LOG_INFO("proxy", NULL, "registry query for service \"%s\" works again", s->name);
        s->failures = 0;
    }
    if (s->last == NULL || !tr_proxy_eps_equal(s->last, set)) {
        publish(s, set);
    } else {
        tr_proxy_eps_unref(set);
    }
    uint64_t prev = atomic_load(&s->registry_index);
    /* Consul: an index that goes backwards (or 0) means start over. */
    uint64_t idx = s->next_index;
    atomic_store(&s->registry_index, idx < prev || idx == 0 ? 0 : idx);
    uint64_t elapsed = uv_now(&s->disc->loop) - s->query_started;
    bool moved = idx != prev;
    /* A registry that answers at once without a new index would make us spin. */
    schedule(s, !moved && elapsed < MIN_QUERY_GAP_MS ? MIN_QUERY_GAP_MS : 0);
}

static void on_error(struct tr_http_client_req *req, int err, unsigned flags, void *data)
{
    struct tr_proxy_service *s = data;
    (void)req;
    (void)flags;
    s->req = NULL;
    tr_buf_reset(&s->body);
    if (err == TR_HTTP_CLIENT_E_CANCELED || s->disc->stopping) {
        return;
    }
    query_failed(s, tr_http_client_strerror(err));
}

static const struct tr_http_client_handler query_handler = {
    .on_headers = on_headers,
    .on_body = on_body,
    .on_end = on_end,
    .on_error = on_error,
};

static void query_start(struct tr_proxy_service *s)
{
    struct tr_proxy_discovery *d = s->disc;
    if (d->stopping || s->req != NULL || !d->has_registry) {
        return;
    }
    char target[512];
    uint64_t index = atomic_load(&s->registry_index);
    snprintf(target, sizeof(target), "/v1/health/service/%s?passing&index=%llu&wait=%llums",
             s->name, (unsigned long long)index, (unsigned long long)d->wait_ms);
    struct tr_http_client_header hdr[] = {
        {TR_SLICE_LIT("Host"), tr_slice_cstr(d->registry_host)},
        {TR_SLICE_LIT("Accept"), TR_SLICE_LIT("application/json")},
    };
    struct tr_http_client_request r = {
        .upstream = d->registry,
        .method = TR_SLICE_LIT("GET"),
        .target = tr_slice_cstr(target),
        .headers = hdr,
        .header_count = TR_ARRAY_LEN(hdr),
        .handler = &query_handler,
        .data = s,
    };
    s->status = 0;
    s->query_started = uv_now(&d->loop);
    int err = tr_http_client_request(d->client, &r, &s->req);
    if (err != 0) {
        s->req = NULL;
        query_failed(s, tr_strerror(err));
    }
}

/* ------------------------------------------------------------ thread side */

static void restart_all(struct tr_proxy_discovery *d)
{
    struct tr_list *it;
    struct tr_list *tmp;
    tr_list_foreach_safe(it, tmp, &d->watching)
    {
        struct tr_proxy_service *s = tr_container_of(it, struct tr_proxy_service, link);
        if (s->req != NULL) {
            tr_http_client_req_cancel(s->req);
            s->req = NULL;
        }
        uv_timer_stop(&s->timer);
        s->failures = 0;
        atomic_store(&s->registry_index, 0);
        query_start(s);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct tr_proxy_discovery *d = h->loop->data;
    d->pending_closes--;
}

static void on_client_closed(void *data)
{
    struct tr_proxy_discovery *d = data;
    d->pending_closes--;
}

static void on_mailbox_closed(struct tr_mailbox *mb)
{
    struct tr_proxy_discovery *d = mb->data;
    d->pending_closes--;
}

static void stop_all(struct tr_proxy_discovery *d)
{
    d->stopping = true;
    struct tr_list *it;
    struct tr_list *tmp;
    tr_list_foreach_safe(it, tmp, &d->watching)
    {
        struct tr_proxy_service *s = tr_container_of(it, struct tr_proxy_service, link);
        if (s->req != NULL) {
            tr_http_client_req_cancel(s->req);
            s->req = NULL;
        }
        if (s->timer_live) {
            s->timer_live = false;
            d->pending_closes++;
            uv_close((uv_handle_t *)&s->timer, on_handle_closed);
        }
    }
    d->pending_closes += 2;
    tr_http_client_close(d->client, on_client_closed, d);
    d->client = NULL;
    d->mailbox.data = d;
    d->mailbox.on_closed = on_mailbox_closed;
    tr_mailbox_close(&d->mailbox);
}

static void on_msg(struct tr_msg *m)
{
    struct disc_msg *msg = tr_container_of(m, struct disc_msg, base);
    struct tr_proxy_discovery *d = msg->d;
    switch (msg->kind) {
    case MSG_WATCH:
        if (!d->stopping) {
            struct tr_proxy_service *s = msg->svc;
            uv_timer_init(&d->loop, &s->timer);
            s->timer.data = s;
            s->timer_live = true;
            tr_list_insert_tail(&d->watching, &s->link);
            query_start(s);
        }
        break;
    case MSG_REGISTRY:
        d->has_registry = true;
        d->registry = msg->addr;
        snprintf(d->registry_host, sizeof(d->registry_host), "%s", msg->host);
        if (!d->stopping) {
            restart_all(d);
        }
        break;
    case MSG_STOP:
        if (!d->stopping) {
            stop_all(d);
        }
        break;
    default:
        TR_ASSERT(!"unknown discovery message");
    }
    tr_free_null(&msg);
}

static void thread_main(void *arg)
{
    struct tr_proxy_discovery *d = arg;
    struct tr_http_client_config cfg;
    tr_http_client_config_init(&cfg);
    cfg.max_idle_per_upstream = 4;
    cfg.connect_timeout_ms = 2000;
    cfg.response_timeout_ms = d->wait_ms + d->wait_ms / 16 + 5000;
    d->client = tr_http_client_new(&d->loop, &cfg);
    uv_run(&d->loop, UV_RUN_DEFAULT);
}

static void post(struct tr_proxy_discovery *d, struct disc_msg *msg)
{
    msg->d = d;
    msg->base.run = on_msg;
    if (!tr_mailbox_post(&d->mailbox, &msg->base)) {
        tr_free_null(&msg);
    }
}

/* ------------------------------------------------------------ main thread side */

struct tr_proxy_discovery *tr_proxy_discovery_start(unsigned nworkers, uint64_t wait_ms)
{
    struct tr_proxy_discovery *d = tr_xcalloc(1, sizeof(*d));
    d->nworkers = nworkers;
    d->wait_ms = wait_ms;
    tr_list_init(&d->watching);
    tr_map_init(&d->by_name);
    uv_loop_init(&d->loop);
    d->loop.data = d;
    if (tr_mailbox_init(&d->mailbox, &d->loop) != 0) {
        TR_ASSERT(!"cannot create the discovery mailbox");
    }
    if (uv_thread_create(&d->thread, thread_main, d) != 0) {
        TR_LOG_ERROR("proxy", NULL, "cannot start the discovery thread");
        tr_mailbox_close(&d->mailbox);
        uv_run(&d->loop, UV_RUN_DEFAULT);
        uv_loop_close(&d->loop);
        tr_map_dispose(&d->by_name);
        tr_free_null(&d);
        return NULL;
    }
    return d;
}

void tr_proxy_discovery_set_registry(struct tr_proxy_discovery *d, const struct tr_addr *addr,
                                     const char *host)
{
    struct disc_msg *msg = tr_xcalloc(1, sizeof(*msg));
    msg->kind = MSG_REGISTRY;
    msg->addr = *addr;
    snprintf(msg->host, sizeof(msg->host), "%s", host);
    post(d, msg);
}

struct tr_proxy_service *tr_proxy_discovery_watch(struct tr_proxy_discovery *d, const char *name)
{
    return tr_proxy_discovery_watch_meta(d, name, NULL);
}

struct tr_proxy_service *tr_proxy_discovery_watch_meta(struct tr_proxy_discovery *d,
                                                       const char *name, const char *port_meta)
{
    struct tr_proxy_service *s = tr_map_get(&d->by_name, tr_slice_cstr(name));
    if (s != NULL) {
        return s;
    }
    s = tr_xcalloc(1, sizeof(*s));
    s->name = tr_xstrdup(name);
    s->port_meta = port_meta != NULL ? tr_xstrdup(port_meta) : NULL;
    s->index = (unsigned)d->nall;
    s->nworkers = d->nworkers;
    s->disc = d;
    s->slots = tr_xcalloc(d->nworkers, sizeof(*s->slots));
    tr_list_init(&s->link);
    tr_buf_init(&s->body);
    if (d->nall == d->capall) {
        d->capall = d->capall ? d->capall * 2 : 8;
        d->all = tr_xrealloc(d->all, d->capall * sizeof(*d->all));
    }
    d->all[d->nall++] = s;
    tr_map_put(&d->by_name, tr_slice_cstr(name), s);
    struct disc_msg *msg = tr_xcalloc(1, sizeof(*msg));
    msg->kind = MSG_WATCH;
    msg->svc = s;
    post(d, msg);
    return s;
}

void tr_proxy_discovery_stop(struct tr_proxy_discovery *d)
{
    if (d == NULL) {
        return;
    }
    struct disc_msg *msg = tr_xcalloc(1, sizeof(*msg));
    msg->kind = MSG_STOP;
    post(d, msg);
    uv_thread_join(&d->thread);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&d->loop) != 0) {
        TR_LOG_WARN("proxy", NULL, "discovery loop still had open handles");
    }
    for (size_t i = 0; i < d->nall; i++) {
        struct tr_proxy_service *s = d->all[i];
        for (unsigned w = 0; w < s->nworkers; w++) {
            tr_proxy_eps_unref(atomic_load(&s->slots[w]));
        }
        tr_proxy_eps_unref(s->last);
        tr_buf_dispose(&s->body);
        tr_free_null(&s->slots);
        tr_free_null(&s->name);
        tr_free_null(&s->port_meta);
        tr_free_null(&s);
    }
    tr_free_null(&d->all);
    tr_map_dispose(&d->by_name);
    tr_free_null(&d);
}
