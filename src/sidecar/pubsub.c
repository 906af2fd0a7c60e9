/* SPDX-License-Identifier: Apache-2.0 */
/* The pub/sub module (see pubsub.h): pubsub.trellis components and their settings,
 * POST|PUT /v1.0/publish/{pubsub}/{topic...} (each event wrapped in a CloudEvent unless
 * metadata.rawPayload=true, answered 204 once the broker has it on disk), the bulk
 * publish API, and the subscriptions shown by /v1.0/metadata. The subscriber engine
 * (subscriber.c) runs on worker 0. */
#include "sidecar/pubsub.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/log.h"
#include "sidecar/cloudevent.h"
#include "sidecar/modules.h"
#include "server/json_span.h"
#include "sidecar/subscriber.h"

#define LOG "pubsub"
#define PUBLISH_TIMEOUT_MS 30000
#define MAX_BULK_ENTRIES 10000 /* the broker's batch limit */

static unsigned module_index;

/* ------------------------------------------------------------ names */

static bool hexdigit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

int tr_ps_broker_name(char out[TR_PS_NAME_MAX + 1], struct tr_slice name)
{
    static const char digits[] = "0123456789ABCDEF";
    if (name.len == 0) {
        return -EINVAL;
    }
    bool dots = tr_slice_eq(name, TR_SLICE_LIT(".")) || tr_slice_eq(name, TR_SLICE_LIT(".."));
    size_t k = 0;
    for (size_t i = 0; i < name.len; i++) {
        unsigned char c = (unsigned char)name.ptr[i];
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || (c == '.' && !dots);
        if (c == '_') {
            plain = !(i + 2 < name.len && hexdigit(name.ptr[i + 1]) && hexdigit(name.ptr[i + 2]));
        }
        size_t need = plain ? 1 : 3;
        if (k + need > TR_PS_NAME_MAX) {
            return -ENAMETOOLONG;
        }
        if (plain) {
            out[k++] = (char)c;
        } else {
            out[k++] = '_';
            out[k++] = digits[c >> 4];
            out[k++] = digits[c & 15];
        }
    }
    out[k] = '\0';
    return 0;
}

const char *tr_ps_call_strerror(int err)
{
    if (err == TR_SIDECAR_CALL_E_TIMEOUT) {
        return "timed out";
    }
    if (err == TR_SIDECAR_CALL_E_TOO_BIG) {
        return "the answer was too large";
    }
    return tr_http_client_strerror(err);
}

/* ------------------------------------------------------------ components */

struct tr_ps_module *tr_ps_module_of(const struct tr_sidecar *sc)
{
    return sc->mod[module_index];
}

const struct tr_ps_component *tr_ps_component(const struct tr_sidecar *sc, struct tr_slice name)
{
    const struct tr_sidecar_component *comp = tr_sidecar_component(sc, TR_SIDECAR_PUBSUB, name);
    return comp != NULL && comp->ctype == TR_SIDECAR_TYPE_PUBSUB_TRELLIS ? comp->impl : NULL;
}

void tr_ps_set_subscriptions(struct tr_sidecar *sc, json_t *list)
{
    struct tr_ps_module *m = tr_ps_module_of(sc);
    pthread_mutex_lock(&m->lock);
    json_t *old = m->subscriptions;
    m->subscriptions = list;
    pthread_mutex_unlock(&m->lock);
    json_decref(old);
}

/* Reads a pubsub.trellis component's metadata: consumerID and the delivery policy. */
static int component_init(struct tr_sidecar *sc, struct tr_sidecar_component *comp)
{
    struct tr_ps_component *pc = tr_xcalloc(1, sizeof(*pc));
    pc->comp = comp;
    tr_ps_policy_init(&pc->policy);
    comp->impl = pc;
    const char *group = sc->opts.app_id;
    for (size_t i = 0; i < comp->nmeta; i++) {
        const struct tr_sidecar_meta_item *m = &comp->meta[i];
        char why[300];
        int rc = tr_ps_policy_set(&pc->policy, m->name, m->value, why, sizeof(why));
        if (rc < 0) {
            fprintf(stderr, "trellis sidecar: %s: component %s: metadata %s\n", comp->file,
                    comp->name, why);
            return -EINVAL;
        }
        if (rc == 0 && strcmp(m->name, "consumerID") == 0) {
            group = m->value;
        } else if (rc == 0) {
            TR_LOG_WARN(LOG, NULL,
                        "%s: component %s: metadata %s is not a pubsub.trellis setting, ignored",
                        comp->file, comp->name, m->name);
        }
    }
    if (tr_ps_broker_name(pc->group, tr_slice_cstr(group)) != 0) {
        fprintf(stderr,
                "trellis sidecar: %s: component %s: consumer group \"%s\" is empty or "
                "too long\n",
                comp->file ? comp->file : "(default)", comp->name, group);
        return -EINVAL;
    }
    return 0;
}

/* ------------------------------------------------------------ publishing */

int tr_ps_broker_publish(struct tr_sidecar_worker *sw, const char *topic, struct tr_slice event,
                         tr_sidecar_call_cb *cb, void *data, struct tr_sidecar_call **out)
{
    char target[32 + TR_PS_NAME_MAX];
    snprintf(target, sizeof(target), "/v1/broker/publish/%s", topic);
    struct tr_http_client_header h[] = {
        {TR_SLICE_LIT("Content-Type"), TR_SLICE_LIT("application/json")},
    };
    struct tr_sidecar_call_opts o = {
        .method = TR_SLICE_LIT("POST"),
        .target = tr_slice_cstr(target),
        .headers = h,
        .nheaders = 1,
        .body = event,
        .timeout_ms = PUBLISH_TIMEOUT_MS,
    };
    return tr_sidecar_server_call(sw, &o, cb, data, out);
}

/* What a publish request names and asks for, checked. Strings live in the request arena. */
struct publish {
    struct tr_slice pubsub;
    struct tr_slice topic;
    char broker_topic[TR_PS_NAME_MAX + 1];
    bool raw_payload;
    struct tr_ce_publish ce;
};

static struct tr_slice decoded(struct tr_http_req *req, struct tr_slice raw, bool plus)
{
    char *p = tr_arena_alloc(&req->arena, raw.len + 1);
    size_t n = raw.len ? tr_pct_decode(p, raw, plus) : 0;
    p[n] = '\0';
    return tr_slice(p, n);
}

static bool meta_bool(struct tr_slice v)
{
    return tr_slice_caseeq(v, TR_SLICE_LIT("true"));
}

/* metadata.* query parameters: rawPayload, ttlInSeconds, cloudevent.<attribute>. */
static bool read_metadata(struct tr_http_req *req, struct publish *p)
{
    struct tr_slice q = req->query;
    while (q.len > 0) {
        const char *amp = memchr(q.ptr, '&', q.len);
        size_t n = amp ? (size_t)(amp - q.ptr) : q.len;
        struct tr_slice pair = tr_slice(q.ptr, n);
        q = amp ? tr_slice(amp + 1, q.len - n - 1) : tr_slice(q.ptr + n, 0);
        const char *eq = memchr(pair.ptr, '=', pair.len);
        struct tr_slice name =
            decoded(req, eq ? tr_slice(pair.ptr, (size_t)(eq - pair.ptr)) : pair, true);
        struct tr_slice value =
            eq ? decoded(req, tr_slice(eq + 1, pair.len - (size_t)(eq - pair.ptr) - 1), true)
               : TR_SLICE_LIT("");
        static const struct tr_slice prefix = TR_SLICE_LIT("metadata.");
        static const struct tr_slice ce_prefix = TR_SLICE_LIT("metadata.cloudevent.");
        if (!tr_slice_starts_with(name, prefix)) {
            continue;
        }
        if (tr_slice_eq(name, TR_SLICE_LIT("metadata.rawPayload"))) {
            p->raw_payload = meta_bool(value);
        } else if (tr_slice_eq(name, TR_SLICE_LIT("metadata.ttlInSeconds"))) {
            uint64_t ttl;
            if (tr_slice_to_u64(value, &ttl) != 0 || ttl > 10u * 365 * 86400) {
                tr_sidecar_error(req, 400, "ERR_PUBSUB_PUBLISH_MESSAGE",
                                 "metadata.ttlInSeconds: expected a whole number of seconds, "
                                 "got \"%.*s\"",
                                 TR_SLICE_FMT(value));
                return false;
            }
            p->ce.ttl_s = (int64_t)ttl;
        } else if (tr_slice_starts_with(name, ce_prefix)) {
            struct tr_slice attr = tr_slice(name.ptr + ce_prefix.len, name.len - ce_prefix.len);
            enum tr_ce_override o = tr_ce_override_by_name(attr);
            if (o != TR_CE_OVR_COUNT) {
                p->ce.overrides[o] = value;
            }
        }
    }
    return true;
}

/* Splits and checks /v1.0/publish/<pubsub>/<topic...>; answers the error itself. */
static bool read_target(struct tr_http_req *req, struct publish *p)
{
    struct tr_sidecar *sc = tr_sidecar_worker_of(req)->sc;
    struct tr_slice rest = tr_http_req_param(req, "rest");
    const char *slash = rest.len ? memchr(rest.ptr, '/', rest.len) : NULL;
    size_t n = slash ? (size_t)(slash - rest.ptr) : rest.len;
    p->pubsub = decoded(req, tr_slice(rest.ptr, n), false);
    p->topic =
        slash ? decoded(req, tr_slice(slash + 1, rest.len - n - 1), false) : TR_SLICE_LIT("");
    bool any = false;
    for (size_t i = 0; i < sc->comps.ncomps; i++) {
        any |= sc->comps.comps[i].kind == TR_SIDECAR_PUBSUB;
    }
    if (!any) {
        tr_sidecar_error(req, 400, "ERR_PUBSUB_NOT_CONFIGURED", "no pubsub is configured");
        return false;
    }
    if (p->pubsub.len == 0) {
        tr_sidecar_error(req, 404, "ERR_PUBSUB_EMPTY", "pubsub name is empty");
        return false;
    }
    if (tr_ps_component(sc, p->pubsub) == NULL) {
        tr_sidecar_error(req, 404, "ERR_PUBSUB_NOT_FOUND", "pubsub %.*s not found",
                         TR_SLICE_FMT(p->pubsub));
        return false;
    }
    if (p->topic.len == 0) {
        tr_sidecar_error(req, 404, "ERR_TOPIC_NAME_EMPTY", "topic is empty in pubsub %.*s",
                         TR_SLICE_FMT(p->pubsub));
        return false;
    }
    if (!tr_ce_utf8_valid(p->topic) || memchr(p->topic.ptr, '\0', p->topic.len) != NULL) {
        tr_sidecar_error(req, 400, "ERR_MALFORMED_REQUEST",
                         "topic name in pubsub %.*s is not valid UTF-8 text",
                         TR_SLICE_FMT(p->pubsub));
        return false;
    }
    if (tr_ps_broker_name(p->broker_topic, p->topic) != 0) {
        tr_sidecar_error(req, 400, "ERR_MALFORMED_REQUEST",
                         "topic name \"%.*s\" is too long: at most %d bytes once characters "
                         "outside [A-Za-z0-9._-] are escaped as 3",
                         TR_SLICE_FMT(p->topic), TR_PS_NAME_MAX);
        return false;
    }
    return true;
}

static void init_publish(struct tr_http_req *req, struct publish *p)
{
    struct tr_sidecar *sc = tr_sidecar_worker_of(req)->sc;
    memset(p, 0, sizeof(*p));
    p->ce.ttl_s = -1;
    p->ce.source = tr_slice_cstr(sc->opts.app_id);
    p->ce.traceparent = tr_http_req_header(req, TR_SLICE_LIT("traceparent"));
    p->ce.tracestate = tr_http_req_header(req, TR_SLICE_LIT("tracestate"));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    p->ce.now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The broker's answer to a publish, in Dapr's terms. */
static void answer(struct tr_http_req *req, const struct tr_sidecar_reply *r,
                   struct tr_slice pubsub, struct tr_slice topic)
{
    if (r->err == 0 && r->status == 200) {
        tr_http_resp_send(req, 204, TR_SLICE_NULL, TR_SLICE_NULL);
        return;
    }
    if (r->err != 0) {
        tr_sidecar_error(req, 500, "ERR_PUBSUB_PUBLISH_MESSAGE",
                         "error when publish to topic %.*s in pubsub %.*s: the trellis server "
                         "did not answer (%s); the event may or may not be stored",
                         TR_SLICE_FMT(topic), TR_SLICE_FMT(pubsub), tr_ps_call_strerror(r->err));
        return;
    }
    /* 400 (not JSON) and 413 (too large) are the publisher's; the rest is ours. */
    int status = r->status == 400 || r->status == 413 ? r->status : 500;
    json_t *j = json_loadb(r->body.ptr, r->body.len, 0, NULL);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    tr_sidecar_error(req, status, "ERR_PUBSUB_PUBLISH_MESSAGE",
                     "error when publish to topic %.*s in pubsub %.*s: trellis server answered "
                     "%d: %s",
                     TR_SLICE_FMT(topic), TR_SLICE_FMT(pubsub), r->status,
                     msg ? msg : "(no message)");
    json_decref(j);
}

static void on_published(struct tr_http_req *req, const struct tr_sidecar_reply *r, void *data)
{
    struct publish *p = data;
    answer(req, r, p->pubsub, p->topic);
}

static void on_publish(struct tr_http_req *req)
{
    struct publish *p = tr_arena_alloc(&req->arena, sizeof(*p));
    init_publish(req, p);
    if (!read_target(req, p) || !read_metadata(req, p)) {
        return;
    }
    struct tr_slice type = tr_http_req_header(req, TR_SLICE_LIT("Content-Type"));
    struct tr_slice body = tr_buf_slice(&req->body);
    struct tr_buf event;
    tr_buf_init(&event);
    struct tr_http_client_header h[1];
    if (p->raw_payload) {
        /* No envelope: the broker keeps the bytes and their type. */
        tr_buf_append_slice(&event, body);
        h[0] = (struct tr_http_client_header){TR_SLICE_LIT("Content-Type"),
                                              type.len ? type : TR_SLICE_LIT("text/plain")};
    } else {
        p->ce.body = body;
        p->ce.content_type = type;
        p->ce.pubsub = p->pubsub;
        p->ce.topic = p->topic;
        char why[512];
        if (tr_ce_envelope(&event, &p->ce, why, sizeof(why)) != 0) {
            tr_buf_dispose(&event);
            /* Dapr answers 500 here; the request is at fault, so Trellis says 400. */
            tr_sidecar_error(req, 400, "ERR_PUBSUB_CLOUD_EVENTS_SER",
                             "cannot create cloudevent: %s", why);
            return;
        }
        h[0] = (struct tr_http_client_header){TR_SLICE_LIT("Content-Type"),
                                              TR_SLICE_LIT("application/json")};
    }
    char target[32 + TR_PS_NAME_MAX];
    snprintf(target, sizeof(target), "/v1/broker/publish/%s", p->broker_topic);
    struct tr_sidecar_call_opts o = {
        .method = TR_SLICE_LIT("POST"),
        .target = tr_slice_cstr(target),
        .headers = h,
        .nheaders = 1,
        .body = event.len ? tr_buf_slice(&event) : TR_SLICE_LIT(""),
        .timeout_ms = PUBLISH_TIMEOUT_MS,
    };
    int err = tr_sidecar_req_server_call(req, &o, on_published, p);
    tr_buf_dispose(&event);
    if (err != 0) {
        struct tr_sidecar_reply fake = {.err = err};
        answer(req, &fake, p->pubsub, p->topic);
    }
}

/* ------------------------------------------------------------ bulk publish */

/* Body: [{"entryId","event","contentType","metadata"?}]. All entries go to the broker in
 * one NDJSON batch: it stores all of them or none, so failures are all-or-nothing. */
struct bulk {
    struct publish p;
    struct tr_slice *ids; /* in the request arena: the entry ids, for failedEntries */
    size_t nids;
};

static void bulk_fail(struct tr_http_req *req, struct bulk *b, int status, const char *msg)
{
    json_t *failed = json_array();
    for (size_t i = 0; i < b->nids; i++) {
        json_array_append_new(
            failed, json_pack("{s:s%,s:s}", "entryId", b->ids[i].ptr, b->ids[i].len, "error", msg));
    }
    json_t *o = json_pack("{s:o,s:s,s:s}", "failedEntries", failed, "errorCode",
                          "ERR_PUBSUB_PUBLISH_MESSAGE", "message", msg);
    tr_sidecar_send_json(req, status, o);
}

static void on_bulk_published(struct tr_http_req *req, const struct tr_sidecar_reply *r, void *data)
{
    struct bulk *b = data;
    if (r->err == 0 && r->status == 200) {
        tr_http_resp_send(req, 204, TR_SLICE_NULL, TR_SLICE_NULL);
    } else {
        char msg[400];
        json_t *j = r->err ? NULL : json_loadb(r->body.ptr, r->body.len, 0, NULL);
        const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        snprintf(msg, sizeof(msg), "error when publish to topic %.*s in pubsub %.*s: %s",
                 TR_SLICE_FMT(b->p.topic), TR_SLICE_FMT(b->p.pubsub),
                 r->err ? tr_ps_call_strerror(r->err)
                 : m    ? m
                        : "trellis server error");
        json_decref(j);
        bulk_fail(req, b, r->err == 0 && (r->status == 400 || r->status == 413) ? r->status : 500,
                  msg);
    }
}

/* A member matched without regard to case, as Go's encoding/json (Dapr's runtime) does:
 * the JS SDK sends "entryID" for the documented "entryId". */
static json_t *member_ci(json_t *obj, const char *name)
{
    const char *key;
    json_t *v;
    json_t *exact = json_object_get(obj, name);
    if (exact != NULL) {
        return exact;
    }
    json_object_foreach(obj, key, v)
    {
        if (strcasecmp(key, name) == 0) {
            return v;
        }
    }
    return NULL;
}

/* One entry into an NDJSON line {"data": <event>}. */
static int bulk_entry(struct tr_http_req *req, struct bulk *b, json_t *entry,
                      struct tr_slice raw_entry, size_t i, struct tr_buf *out, char *why,
                      size_t why_len)
{
    json_t *id = member_ci(entry, "entryId");
    json_t *ev = member_ci(entry, "event");
    json_t *ct = member_ci(entry, "contentType");
    if (!json_is_string(id) || json_string_length(id) == 0 || ev == NULL ||
        (ct != NULL && !json_is_string(ct))) {
        snprintf(why, why_len,
                 "entry %zu: expected {\"entryId\": non-empty string, \"event\": any, "
                 "\"contentType\": string}",
                 i);
        return -EINVAL;
    }
    b->ids[b->nids++] =
        tr_arena_slice_dup(&req->arena, tr_slice(json_string_value(id), json_string_length(id)));
    struct tr_slice type =
        ct ? tr_slice(json_string_value(ct), json_string_length(ct))
           : (json_is_string(ev) ? TR_SLICE_LIT("text/plain") : TR_SLICE_LIT("application/json"));
    /* A string event is the payload itself; anything else is JSON text, taken as
     * written (a dump would respell numbers) unless the member name was spelled
     * differently. */
    struct tr_slice payload = tr_slice(json_string_value(ev), json_string_length(ev));
    char *text = NULL;
    if (!json_is_string(ev) && !tr_json_span_member(raw_entry, "event", &payload)) {
        text = json_dumps(ev, JSON_COMPACT | JSON_ENCODE_ANY);
        payload = tr_slice_cstr(text);
    }
    struct tr_ce_publish in = b->p.ce;
    in.body = payload;
    in.content_type = type;
    in.pubsub = b->p.pubsub;
    in.topic = b->p.topic;
    struct tr_buf one;
    tr_buf_init(&one);
    int rc = tr_ce_envelope(&one, &in, why, why_len);
    free(text); /* jansson's allocation */
    if (rc != 0) {
        tr_buf_dispose(&one);
        return rc;
    }
    tr_buf_append_slice(out, TR_SLICE_LIT("{\"data\":"));
    tr_buf_append_slice(out, tr_buf_slice(&one));
    tr_buf_append_slice(out, TR_SLICE_LIT("}\n"));
    tr_buf_dispose(&one);
    return 0;
}

static void on_bulk_publish(struct tr_http_req *req)
{
    struct bulk *b = tr_arena_alloc(&req->arena, sizeof(*b));
    init_publish(req, &b->p);
    if (!read_target(req, &b->p) || !read_metadata(req, &b->p)) {
        return;
    }
    struct tr_slice body = tr_buf_slice(&req->body);
    json_error_t jerr;
    json_t *list = json_loadb(body.ptr ? body.ptr : "", body.len,
                              JSON_DECODE_INT_AS_REAL | JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_array(list) || json_array_size(list) == 0 ||
        json_array_size(list) > MAX_BULK_ENTRIES) {
        json_decref(list);
        tr_sidecar_error(req, 400, "ERR_MALFORMED_REQUEST",
                         "the body must be a JSON array of 1-%d entries {entryId, event, "
                         "contentType}",
                         MAX_BULK_ENTRIES);
        return;
    }
    b->ids = tr_arena_alloc(&req->arena, json_array_size(list) * sizeof(*b->ids));
    b->nids = 0;
    struct tr_slice *raw = tr_arena_alloc(&req->arena, json_array_size(list) * sizeof(*raw));
    if (tr_json_span_items(body, raw, json_array_size(list)) != (ssize_t)json_array_size(list)) {
        /* Cannot happen for an array jansson read; without spans events are dumped. */
        memset(raw, 0, json_array_size(list) * sizeof(*raw));
    }
    struct tr_buf lines;
    tr_buf_init(&lines);
    size_t i;
    json_t *entry;
    json_array_foreach(list, i, entry)
    {
        char why[512];
        if (bulk_entry(req, b, entry, raw[i], i, &lines, why, sizeof(why)) != 0) {
            json_decref(list);
            tr_buf_dispose(&lines);
            tr_sidecar_error(req, 400, "ERR_PUBSUB_CLOUD_EVENTS_SER",
                             "cannot create cloudevent: %s", why);
            return;
        }
    }
    json_decref(list);
    char target[32 + TR_PS_NAME_MAX];
    snprintf(target, sizeof(target), "/v1/broker/publish/%s", b->p.broker_topic);
    struct tr_http_client_header h[] = {
        {TR_SLICE_LIT("Content-Type"), TR_SLICE_LIT("application/x-ndjson")},
    };
    struct tr_sidecar_call_opts o = {
        .method = TR_SLICE_LIT("POST"),
        .target = tr_slice_cstr(target),
        .headers = h,
        .nheaders = 1,
        .body = tr_buf_slice(&lines),
        .timeout_ms = PUBLISH_TIMEOUT_MS,
    };
    int err = tr_sidecar_req_server_call(req, &o, on_bulk_published, b);
    tr_buf_dispose(&lines);
    if (err != 0) {
        struct tr_sidecar_reply fake = {.err = err};
        on_bulk_published(req, &fake, b);
    }
}

/* ------------------------------------------------------------ module hooks */

static int ps_init(struct tr_sidecar *sc, unsigned index)
{
    module_index = index;
    struct tr_ps_module *m = tr_xcalloc(1, sizeof(*m));
    m->index = index;
    pthread_mutex_init(&m->lock, NULL);
    m->subscriptions = json_array();
    sc->mod[index] = m;
    for (size_t i = 0; i < sc->comps.ncomps; i++) {
        struct tr_sidecar_component *comp = &sc->comps.comps[i];
        if (comp->kind == TR_SIDECAR_PUBSUB && comp->ctype == TR_SIDECAR_TYPE_PUBSUB_TRELLIS &&
            component_init(sc, comp) != 0) {
            return -EINVAL;
        }
    }
    static const char *const methods[] = {"POST", "PUT"};
    int rc = 0;
    for (size_t i = 0; i < TR_ARRAY_LEN(methods); i++) {
        rc |= tr_sidecar_route(sc, methods[i], "/v1.0/publish/bulk/*rest", on_bulk_publish,
                               TR_ROUTE_BUFFERED);
        rc |= tr_sidecar_route(sc, methods[i], "/v1.0-alpha1/publish/bulk/*rest", on_bulk_publish,
                               TR_ROUTE_BUFFERED);
        rc |=
            tr_sidecar_route(sc, methods[i], "/v1.0/publish/*rest", on_publish, TR_ROUTE_BUFFERED);
    }
    return rc;
}

static int ps_worker_start(struct tr_sidecar_worker *sw)
{
    if (sw->id == 0) {
        sw->mod[module_index] = tr_ps_subscriber_new(sw);
    }
    return 0;
}

static void ps_app_ready(struct tr_sidecar_worker *sw)
{
    if (sw->mod[module_index] != NULL) {
        tr_ps_subscriber_start(sw->mod[module_index]);
    }
}

static void ps_drain(struct tr_sidecar_worker *sw)
{
    if (sw->mod[module_index] != NULL) {
        tr_ps_subscriber_drain(sw->mod[module_index]);
    }
}

static void ps_stop(struct tr_sidecar_worker *sw)
{
    if (sw->mod[module_index] != NULL) {
        tr_ps_subscriber_stop(sw->mod[module_index]);
    }
}

static void ps_dispose(struct tr_sidecar_worker *sw)
{
    tr_ps_subscriber_free(sw->mod[module_index]);
    sw->mod[module_index] = NULL;
}

static void ps_metadata(struct tr_sidecar *sc, json_t *meta)
{
    struct tr_ps_module *m = tr_ps_module_of(sc);
    json_t *out = json_object_get(meta, "subscriptions");
    /* A deep copy under the lock: jansson's reference counts are not for sharing
     * values between threads. */
    pthread_mutex_lock(&m->lock);
    json_t *copy = json_deep_copy(m->subscriptions);
    pthread_mutex_unlock(&m->lock);
    json_array_extend(out, copy);
    json_decref(copy);
}

static void ps_cleanup(struct tr_sidecar *sc)
{
    struct tr_ps_module *m = tr_ps_module_of(sc);
    for (size_t i = 0; i < sc->comps.ncomps; i++) {
        struct tr_sidecar_component *comp = &sc->comps.comps[i];
        if (comp->kind == TR_SIDECAR_PUBSUB && comp->ctype == TR_SIDECAR_TYPE_PUBSUB_TRELLIS) {
            tr_free_null(&comp->impl);
        }
    }
    if (m == NULL) {
        return;
    }
    json_decref(m->subscriptions);
    pthread_mutex_destroy(&m->lock);
    tr_free_null(&m);
    sc->mod[module_index] = NULL;
}

const struct tr_sidecar_module tr_sidecar_mod_pubsub = {
    .name = "pubsub",
    .init = ps_init,
    .worker_start = ps_worker_start,
    .ctl_app_ready = ps_app_ready,
    .worker_drain = ps_drain,
    .worker_stop = ps_stop,
    .worker_dispose = ps_dispose,
    .metadata = ps_metadata,
    .cleanup = ps_cleanup,
};
