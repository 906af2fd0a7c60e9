/* SPDX-License-Identifier: Apache-2.0 */
/* The delivery engine (see subscriber.h). Per subscription: at most one fetch in flight
 * (a long poll that asks for as many events as there are free delivery slots), a list
 * of deliveries (each owns its event and its one outstanding call: to the app, to the
 * dead-letter topic, or the nack), and a batch of offsets waiting to be acked (one ack
 * call at a time; offsets acked while it runs go in the next one). Everything runs on
 * worker 0's loop; calls are cancelled before anything they point at is freed. */
#include "sidecar/subscriber.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/list.h"
#include "core/log.h"
#include "core/mem.h"
#include "sidecar/call.h"
#include "sidecar/cloudevent.h"
#include "sidecar/pubsub.h"
#include "sidecar/subscription.h"

#define LOG "pubsub"
#define FETCH_WAIT_MS 20000         /* long poll */
#define FETCH_MARGIN_MS 10000       /* beyond the wait before the fetch call gives up */
#define ACK_TIMEOUT_MARGIN_MS 30000 /* broker ack timeout = delivery timeout + this */
#define RETRY_MIN_MS 100            /* server unreachable: first wait, doubling */
#define RETRY_MAX_MS 2000
#define DISCOVER_TIMEOUT_MS 5000
#define DISCOVER_RETRY_MAX_MS 5000
#define APP_UNREADY_POLL_MS 250
#define EMPTY_PAUSE_MS 50
#define APP_REPLY_MAX_BODY (1u << 20)
#define MAX_ACK_BATCH 10000     /* the broker's limit per request */
#define PAYLOAD_ROOM (3u << 20) /* answer bytes a fetch allows per event */

struct sub;

enum outcome {
    OUT_SUCCESS = 0,
    OUT_RETRY,
    OUT_DROP,
};

struct delivery {
    struct tr_list node; /* in sub->deliveries */
    struct sub *sub;
    uint64_t offset;
    uint32_t attempts;
    struct tr_buf event; /* the CloudEvent, as delivered */
    struct tr_ce_info info;
    struct tr_sidecar_call *call; /* the one outstanding call, or NULL */
    const char *why;              /* what the last failure was, for logs */
};

struct sub {
    struct tr_ps_subscriber *owner;
    struct tr_ps_spec spec;
    struct tr_ps_policy policy;
    const struct tr_ps_component *comp;
    char topic[TR_PS_NAME_MAX + 1]; /* broker names */
    char dlq[TR_PS_NAME_MAX + 1];   /* "" when none */
    struct tr_sidecar_call *fetch;
    struct tr_sidecar_deadline wake; /* next fetch, after a failure or while the app is down */
    unsigned failures;               /* fetches in a row that failed */
    unsigned inflight;               /* deliveries alive */
    struct tr_list deliveries;
    uint64_t *acks; /* owned: offsets to ack, [nacks] */
    size_t nacks;
    size_t acks_cap;
    uint64_t *sending; /* owned: the offsets of the ack call in flight */
    size_t nsending;
    struct tr_sidecar_call *ack_call;
    struct tr_sidecar_deadline ack_wake; /* ack retry after a failure */
    struct tr_buf scratch;               /* base64 payloads of the fetch being read */
};

struct tr_ps_subscriber {
    struct tr_sidecar_worker *sw;
    struct sub *subs; /* owned, [nsubs] */
    size_t nsubs;
    struct tr_sidecar_call *discover;
    struct tr_sidecar_deadline discover_wake;
    unsigned discover_failures;
    bool started;
    bool draining;
    bool stopped;
    bool holding; /* we hold the worker until drained */
};

static void fetch(struct sub *b);
static void flush_acks(struct sub *b);
static void maybe_drained(struct tr_ps_subscriber *s);

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t loop_now(const struct tr_ps_subscriber *s)
{
    return uv_now(s->sw->loop);
}

static const char *group_of(const struct sub *b)
{
    return b->comp->group;
}

/* ------------------------------------------------------------ deliveries */

static void delivery_free(struct delivery *d)
{
    struct sub *b = d->sub;
    TR_ASSERT(d->call == NULL);
    tr_list_remove(&d->node);
    tr_buf_dispose(&d->event);
    tr_free_null(&d);
    b->inflight--;
}

/* The delivery is over (acked, nacked or abandoned): frees the slot and refills it. */
static void delivery_done(struct delivery *d)
{
    struct sub *b = d->sub;
    delivery_free(d);
    fetch(b);
    maybe_drained(b->owner);
}

static void ack(struct delivery *d)
{
    struct sub *b = d->sub;
    if (b->nacks == b->acks_cap) {
        b->acks_cap = b->acks_cap ? b->acks_cap * 2 : 64;
        b->acks = tr_xrealloc(b->acks, b->acks_cap * sizeof(*b->acks));
    }
    b->acks[b->nacks++] = d->offset;
    flush_acks(b);
    delivery_done(d);
}

static void on_nacked(const struct tr_sidecar_reply *r, void *data)
{
    struct delivery *d = data;
    d->call = NULL;
    if (r->err != 0 || r->status != 200) {
        /* The broker redelivers it after the ack timeout anyway. */
        TR_LOG_DEBUG(LOG, NULL, "topic %s: nack of offset %" PRIu64 " failed: %s",
                     d->sub->spec.topic, d->offset,
                     r->err ? tr_ps_call_strerror(r->err) : "unexpected status");
    }
    delivery_done(d);
}

/* Hands the event back to the broker for redelivery in `delay_ms`. */
static void nack(struct delivery *d, uint64_t delay_ms)
{
    struct sub *b = d->sub;
    char target[96 + 2 * TR_PS_NAME_MAX];
    char body[32];
    snprintf(target, sizeof(target), "/v1/broker/nack/%s/%s?delay=%" PRIu64 "ms", group_of(b),
             b->topic, delay_ms);
    int n = snprintf(body, sizeof(body), "[%" PRIu64 "]", d->offset);
    struct tr_sidecar_call_opts o = {
        .method = TR_SLICE_LIT("POST"),
        .target = tr_slice_cstr(target),
        .body = tr_slice(body, (size_t)n),
        .timeout_ms = 10000,
    };
    if (tr_sidecar_server_call(b->owner->sw, &o, on_nacked, d, &d->call) != 0) {
        d->call = NULL;
        delivery_done(d);
    }
}

static void on_dead_lettered(const struct tr_sidecar_reply *r, void *data)
{
    struct delivery *d = data;
    struct sub *b = d->sub;
    d->call = NULL;
    if (r->err == 0 && r->status == 200) {
        TR_LOG_INFO(LOG, NULL,
                    "topic %s: event %.*s sent to dead-letter topic %s (%s, %" PRIu32
                    " deliveries)",
                    b->spec.topic, TR_SLICE_FMT(d->info.id), b->spec.dead_letter_topic, d->why,
                    d->attempts);
        ack(d);
        return;
    }
    TR_LOG_WARN(LOG, NULL,
                "topic %s: cannot publish event %.*s to dead-letter topic %s (%s); "
                "redelivering it",
                b->spec.topic, TR_SLICE_FMT(d->info.id), b->spec.dead_letter_topic,
                r->err ? tr_ps_call_strerror(r->err) : "server error");
    nack(d, tr_ps_policy_backoff(&b->policy, d->attempts));
}

static void dead_letter(struct delivery *d)
{
    struct sub *b = d->sub;
    if (tr_ps_broker_publish(b->owner->sw, b->dlq, tr_buf_slice(&d->event), on_dead_lettered, d,
                             &d->call) != 0) {
        d->call = NULL;
        nack(d, tr_ps_policy_backoff(&b->policy, d->attempts));
    }
}

/* DROP, 404 or a skipped event: to the dead-letter topic if there is one, else gone. */
static void drop(struct delivery *d, const char *why)
{
    struct sub *b = d->sub;
    d->why = why;
    if (b->dlq[0] != '\0') {
        dead_letter(d);
        return;
    }
    TR_LOG_WARN(LOG, NULL, "topic %s: event %.*s dropped (%s)", b->spec.topic,
                TR_SLICE_FMT(d->info.id), why);
    ack(d);
}

static bool retries_left(const struct sub *b, uint32_t attempts)
{
    return b->policy.max_retries < 0 || (int64_t)attempts <= b->policy.max_retries;
}

static void retry(struct delivery *d, const char *why)
{
    struct sub *b = d->sub;
    d->why = why;
    if (retries_left(b, d->attempts)) {
        uint64_t delay = tr_ps_policy_backoff(&b->policy, d->attempts);
        TR_LOG_DEBUG(LOG, NULL, "topic %s: event %.*s: %s; retry %" PRIu32 " in %" PRIu64 " ms",
                     b->spec.topic, TR_SLICE_FMT(d->info.id), why, d->attempts, delay);
        nack(d, delay);
        return;
    }
    if (b->dlq[0] != '\0') {
        d->why = "retries exhausted";
        dead_letter(d);
        return;
    }
    /* Nowhere to put it: keep it (Dapr nacks to the broker too) at the slowest pace. */
    TR_LOG_WARN(LOG, NULL,
                "topic %s: event %.*s still failing after %" PRIu32
                " deliveries (%s) and there is no deadLetterTopic; retrying every %" PRIu64 " ms",
                b->spec.topic, TR_SLICE_FMT(d->info.id), d->attempts, why,
                b->policy.max_backoff_ms);
    nack(d, b->policy.max_backoff_ms);
}

/* "status", its name matched without regard to case as Go's encoding/json does. */
static json_t *status_member(json_t *j)
{
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        if (strcasecmp(key, "status") == 0) {
            return v;
        }
    }
    return NULL;
}

/* Dapr's rules for the app's answer (pkg/runtime/subscription/postman/http). */
static enum outcome classify(const struct tr_sidecar_reply *r, const char **why)
{
    if (r->err != 0) {
        *why = r->err == TR_SIDECAR_CALL_E_TIMEOUT ? "the app did not answer in time"
                                                   : "the app could not be reached";
        return OUT_RETRY;
    }
    if (r->status == 404) {
        *why = "the app answered 404";
        return OUT_DROP;
    }
    if (r->status < 200 || r->status > 299) {
        *why = "the app answered an error status";
        return OUT_RETRY;
    }
    json_t *j = json_loadb(r->body.ptr, r->body.len, JSON_DISABLE_EOF_CHECK, NULL);
    json_t *st = status_member(j);
    enum outcome o = OUT_SUCCESS;
    *why = "success";
    /* An empty or non-JSON body, or a status that is not a string, is success. */
    if (json_is_string(st)) {
        const char *s = json_string_value(st);
        if (strcmp(s, "RETRY") == 0) {
            o = OUT_RETRY;
            *why = "the app answered RETRY";
        } else if (strcmp(s, "DROP") == 0) {
            o = OUT_DROP;
            *why = "the app answered DROP";
        } else if (s[0] != '\0' && strcmp(s, "SUCCESS") != 0) {
            o = OUT_RETRY;
            *why = "the app answered an unknown status";
        }
    }
    json_decref(j);
    return o;
}

static void on_app_reply(const struct tr_sidecar_reply *r, void *data)
{
    struct delivery *d = data;
    d->call = NULL;
    const char *why;
    switch (classify(r, &why)) {
    case OUT_SUCCESS:
        ack(d);
        break;
    case OUT_DROP:
        drop(d, why);
        break;
    case OUT_RETRY:
        retry(d, why);
        break;
    }
}

static const char *route_of(struct delivery *d)
{
    const struct tr_ps_spec *spec = &d->sub->spec;
    if (!tr_ps_spec_has_rules(spec)) {
        return tr_ps_spec_route(spec, NULL);
    }
    json_t *ev = json_loadb(tr_buf_data(&d->event), d->event.len, JSON_DECODE_INT_AS_REAL, NULL);
    const char *route = tr_ps_spec_route(spec, ev);
    json_decref(ev);
    return route;
}

static void deliver(struct delivery *d)
{
    struct sub *b = d->sub;
    if (d->info.has_expiration && wall_ms() > d->info.expiration_ms) {
        TR_LOG_INFO(LOG, NULL, "topic %s: event %.*s expired before delivery, dropped",
                    b->spec.topic, TR_SLICE_FMT(d->info.id));
        ack(d);
        return;
    }
    /* Past its retries (a dead-letter publish failed, or the policy changed): no need to
     * bother the app again. */
    if (!retries_left(b, d->attempts - 1) && b->dlq[0] != '\0') {
        d->why = "retries exhausted";
        dead_letter(d);
        return;
    }
    const char *route = route_of(d);
    if (route == NULL) {
        drop(d, "no routing rule matched");
        return;
    }
    struct tr_http_client_header h[3];
    size_t nh = 0;
    h[nh++] = (struct tr_http_client_header){TR_SLICE_LIT("Content-Type"),
                                             TR_SLICE_LIT(TR_CE_CONTENT_TYPE)};
    if (d->info.traceparent.len > 0) {
        h[nh++] = (struct tr_http_client_header){TR_SLICE_LIT("traceparent"), d->info.traceparent};
    }
    if (d->info.tracestate.len > 0) {
        h[nh++] = (struct tr_http_client_header){TR_SLICE_LIT("tracestate"), d->info.tracestate};
    }
    struct tr_sidecar_call_opts o = {
        .method = TR_SLICE_LIT("POST"),
        .target = tr_slice_cstr(route),
        .headers = h,
        .nheaders = nh,
        .body = tr_buf_slice(&d->event),
        .timeout_ms = b->policy.timeout_ms,
        .max_body = APP_REPLY_MAX_BODY,
    };
    if (tr_sidecar_app_call(b->owner->sw, &o, on_app_reply, d, &d->call) != 0) {
        d->call = NULL;
        retry(d, "the delivery could not be started");
    }
}

static void start_delivery(struct sub *b, const struct tr_ce_record *rec,
                           const struct tr_ce_position *pos)
{
    struct delivery *d = tr_xcalloc(1, sizeof(*d));
    d->sub = b;
    d->offset = pos->offset;
    d->attempts = pos->attempts ? pos->attempts : 1;
    tr_buf_init(&d->event);
    tr_ce_for_delivery(&d->event, rec, &d->info);
    tr_list_insert_tail(&b->deliveries, &d->node);
    b->inflight++;
    deliver(d);
}

/* ------------------------------------------------------------ acks */

static void on_ack_wake(struct tr_sidecar_deadline *dl)
{
    flush_acks(tr_container_of(dl, struct sub, ack_wake));
}

static void on_acked(const struct tr_sidecar_reply *r, void *data)
{
    struct sub *b = data;
    b->ack_call = NULL;
    if (r->err != 0 || r->status >= 500) {
        /* Server down or restarting: keep the offsets and try again. */
        TR_LOG_DEBUG(LOG, NULL, "topic %s: ack of %zu events failed (%s), retrying", b->spec.topic,
                     b->nsending, r->err ? tr_ps_call_strerror(r->err) : "server error");
        size_t total = b->nsending + b->nacks;
        if (total > b->acks_cap) {
            b->acks_cap = total;
            b->acks = tr_xrealloc(b->acks, b->acks_cap * sizeof(*b->acks));
        }
        memmove(b->acks + b->nsending, b->acks, b->nacks * sizeof(*b->acks));
        memcpy(b->acks, b->sending, b->nsending * sizeof(*b->acks));
        b->nacks = total;
        b->nsending = 0;
        if (!b->owner->stopped) {
            tr_sidecar_deadline_arm(b->owner->sw, &b->ack_wake,
                                    loop_now(b->owner) + RETRY_MAX_MS / 4, on_ack_wake);
        }
        return;
    }
    if (r->status != 200) {
        /* 409: offsets the broker no longer has in flight (it restarted and will deliver
         * them again); 404: it lost the group. Nothing to retry either way. */
        TR_LOG_DEBUG(LOG, NULL, "topic %s: ack answered %d: %.*s", b->spec.topic, r->status,
                     TR_SLICE_FMT(r->body));
    }
    b->nsending = 0;
    flush_acks(b);
    maybe_drained(b->owner);
}

static void flush_acks(struct sub *b)
{
    if (b->ack_call != NULL || b->nacks == 0 || b->owner->stopped ||
        tr_sidecar_deadline_armed(&b->ack_wake)) {
        return;
    }
    size_t n = b->nacks < MAX_ACK_BATCH ? b->nacks : MAX_ACK_BATCH;
    b->sending = tr_xrealloc(b->sending, n * sizeof(*b->sending));
    memcpy(b->sending, b->acks, n * sizeof(*b->acks));
    memmove(b->acks, b->acks + n, (b->nacks - n) * sizeof(*b->acks));
    b->nacks -= n;
    b->nsending = n;
    struct tr_buf body;
    tr_buf_init(&body);
    tr_buf_append(&body, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            tr_buf_append(&body, ",", 1);
        }
        tr_buf_append_u64(&body, b->sending[i]);
    }
    tr_buf_append(&body, "]", 1);
    char target[64 + 2 * TR_PS_NAME_MAX];
    snprintf(target, sizeof(target), "/v1/broker/ack/%s/%s", group_of(b), b->topic);
    struct tr_sidecar_call_opts o = {
        .method = TR_SLICE_LIT("POST"),
        .target = tr_slice_cstr(target),
        .body = tr_buf_slice(&body),
        .timeout_ms = 10000,
    };
    int err = tr_sidecar_server_call(b->owner->sw, &o, on_acked, b, &b->ack_call);
    tr_buf_dispose(&body);
    if (err != 0) {
        b->ack_call = NULL;
        struct tr_sidecar_reply fake = {.err = err};
        on_acked(&fake, b);
    }
}

/* ------------------------------------------------------------ fetching */

static void on_wake(struct tr_sidecar_deadline *dl)
{
    fetch(tr_container_of(dl, struct sub, wake));
}

static void fetch_failed(struct sub *b, const char *what)
{
    unsigned shift = b->failures < 5 ? b->failures : 5;
    uint64_t delay = (uint64_t)RETRY_MIN_MS << shift;
    if (delay > RETRY_MAX_MS) {
        delay = RETRY_MAX_MS;
    }
    if (b->failures++ == 0) {
        TR_LOG_WARN(LOG, NULL, "topic %s: cannot fetch events from the broker (%s); retrying",
                    b->spec.topic, what);
    }
    tr_sidecar_deadline_arm(b->owner->sw, &b->wake, loop_now(b->owner) + delay, on_wake);
}

static void read_fetch(struct sub *b, struct tr_slice body)
{
    size_t pos = 0;
    while (pos < body.len) {
        const char *nl = memchr(body.ptr + pos, '\n', body.len - pos);
        size_t end = nl ? (size_t)(nl - body.ptr) : body.len;
        struct tr_slice line = tr_slice_trim(tr_slice(body.ptr + pos, end - pos));
        pos = end + 1;
        if (line.len == 0) {
            continue;
        }
        char id[48 + TR_PS_NAME_MAX];
        struct tr_ce_record rec = {
            .topic = tr_slice_cstr(b->spec.topic),
            .pubsub = tr_slice_cstr(b->spec.pubsub),
            .raw_payload = b->spec.raw_payload,
        };
        struct tr_ce_position p;
        if (tr_ce_record_parse(line, &rec, &p, &b->scratch) != 0) {
            TR_LOG_ERROR(LOG, NULL, "topic %s: unreadable delivery from the broker: %.*s",
                         b->spec.topic, (int)(line.len < 200 ? line.len : 200), line.ptr);
            continue;
        }
        /* A stable id for wrapped records: redeliveries keep it, so apps can dedupe. */
        int n = snprintf(id, sizeof(id), "%s-%" PRIu64, b->topic, p.offset);
        rec.id = tr_slice(id, (size_t)n);
        start_delivery(b, &rec, &p);
    }
}

static void on_fetched(const struct tr_sidecar_reply *r, void *data)
{
    struct sub *b = data;
    b->fetch = NULL;
    if (r->err != 0) {
        fetch_failed(b, tr_ps_call_strerror(r->err));
        return;
    }
    if (r->status != 200) {
        char what[160];
        snprintf(what, sizeof(what), "status %d: %.*s", r->status,
                 (int)(r->body.len < 100 ? r->body.len : 100), r->body.ptr);
        fetch_failed(b, what);
        return;
    }
    if (b->failures > 0) {
        TR_LOG_INFO(LOG, NULL, "topic %s: fetching from the broker again", b->spec.topic);
        b->failures = 0;
    }
    if (tr_slice_trim(r->body).len == 0) {
        /* Nothing: the long poll ran out, or the server answered at once because it is
         * shutting down; pause a little so the latter is not a busy loop. */
        tr_sidecar_deadline_arm(b->owner->sw, &b->wake, loop_now(b->owner) + EMPTY_PAUSE_MS,
                                on_wake);
        return;
    }
    read_fetch(b, r->body);
    fetch(b);
}

static void fetch(struct sub *b)
{
    struct tr_ps_subscriber *s = b->owner;
    if (b->fetch != NULL || s->draining || s->stopped || tr_sidecar_deadline_armed(&b->wake)) {
        return;
    }
    unsigned free_slots = b->policy.max_concurrency - b->inflight;
    if (b->inflight >= b->policy.max_concurrency) {
        return; /* a finished delivery calls us again */
    }
    if (!atomic_load(&s->sw->sc->app_ready)) {
        /* Hold events back while the app fails its health checks. */
        tr_sidecar_deadline_arm(s->sw, &b->wake, loop_now(s) + APP_UNREADY_POLL_MS, on_wake);
        return;
    }
    char target[160 + 2 * TR_PS_NAME_MAX];
    snprintf(target, sizeof(target),
             "/v1/broker/fetch/%s/%s?max=%u&wait=%ums&ack_timeout=%" PRIu64 "ms", group_of(b),
             b->topic, free_slots, FETCH_WAIT_MS, b->policy.timeout_ms + ACK_TIMEOUT_MARGIN_MS);
    struct tr_http_client_header h[] = {
        {TR_SLICE_LIT("Accept"), TR_SLICE_LIT("application/x-ndjson")},
    };
    size_t room = (size_t)free_slots * PAYLOAD_ROOM;
    struct tr_sidecar_call_opts o = {
        .method = TR_SLICE_LIT("POST"),
        .target = tr_slice_cstr(target),
        .headers = h,
        .nheaders = 1,
        .timeout_ms = FETCH_WAIT_MS + FETCH_MARGIN_MS,
        .max_body = room > TR_SIDECAR_CALL_MAX_BODY ? room : TR_SIDECAR_CALL_MAX_BODY,
    };
    int err = tr_sidecar_server_call(s->sw, &o, on_fetched, b, &b->fetch);
    if (err != 0) {
        b->fetch = NULL;
        fetch_failed(b, tr_strerror(err));
    }
}

/* ------------------------------------------------------------ subscriptions */

static json_t *describe(const struct sub *b)
{
    json_t *rules = json_array();
    for (size_t i = 0; i < b->spec.nrules; i++) {
        const struct tr_ps_rule *r = &b->spec.rules[i];
        json_array_append_new(
            rules, json_pack("{s:s,s:s}", "match", r->match ? r->match : "", "path", r->path));
    }
    json_t *o = json_pack("{s:s,s:s,s:O,s:o,s:s}", "pubsubname", b->spec.pubsub, "topic",
                          b->spec.topic, "metadata", b->spec.metadata, "rules", rules, "type",
                          b->spec.origin == TR_PS_DECLARATIVE ? "DECLARATIVE" : "PROGRAMMATIC");
    if (b->spec.dead_letter_topic != NULL) {
        json_object_set_new(o, "deadLetterTopic", json_string(b->spec.dead_letter_topic));
    }
    return o;
}

/* Checks a spec and takes it into the next free sub slot, or logs why not and frees it. */
static void add_sub(struct tr_ps_subscriber *s, struct tr_ps_spec *spec)
{
    const struct tr_sidecar *sc = s->sw->sc;
    const char *problem = NULL;
    char why[300] = "";
    const struct tr_ps_component *comp = tr_ps_component(sc, tr_slice_cstr(spec->pubsub));
    struct sub *b = &s->subs[s->nsubs];
    memset(b, 0, sizeof(*b));
    if (comp == NULL) {
        problem = "there is no pub/sub component of that name";
    }
    for (size_t i = 0; problem == NULL && i < s->nsubs; i++) {
        if (strcmp(s->subs[i].spec.pubsub, spec->pubsub) == 0 &&
            strcmp(s->subs[i].spec.topic, spec->topic) == 0) {
            snprintf(why, sizeof(why), "the topic is already subscribed (by %s)",
                     s->subs[i].spec.where);
            problem = why;
        }
    }
    if (problem == NULL && tr_ps_broker_name(b->topic, tr_slice_cstr(spec->topic)) != 0) {
        problem = "the topic name is too long";
    }
    if (problem == NULL && spec->dead_letter_topic != NULL &&
        tr_ps_broker_name(b->dlq, tr_slice_cstr(spec->dead_letter_topic)) != 0) {
        problem = "the deadLetterTopic name is too long";
    }
    if (problem == NULL) {
        b->policy = comp->policy;
        const char *key;
        json_t *v;
        json_object_foreach(spec->metadata, key, v)
        {
            /* Checked when parsed; applied here over the component's defaults. */
            if (tr_ps_policy_set(&b->policy, key, json_string_value(v), why, sizeof(why)) < 0) {
                problem = why;
                break;
            }
        }
    }
    if (problem != NULL) {
        TR_LOG_WARN(LOG, NULL, "subscription to topic %s of pubsub %s (%s) ignored: %s",
                    spec->topic, spec->pubsub, spec->where, problem);
        tr_ps_spec_dispose(spec);
        return;
    }
    b->owner = s;
    b->spec = *spec;
    memset(spec, 0, sizeof(*spec));
    b->comp = comp;
    tr_list_init(&b->deliveries);
    tr_buf_init(&b->scratch);
    s->nsubs++;
    TR_LOG_INFO(LOG, NULL, "subscribed to topic %s of pubsub %s (%s, %zu route%s%s%s)",
                b->spec.topic, b->spec.pubsub, b->spec.where, b->spec.nrules,
                b->spec.nrules == 1 ? "" : "s", b->dlq[0] ? ", dead letters to " : "",
                b->dlq[0] ? b->spec.dead_letter_topic : "");
}

/* Declarative subscriptions first, then the app's: a topic both name is the file's. */
static void run(struct tr_ps_subscriber *s, struct tr_ps_spec *specs, size_t n)
{
    const struct tr_sidecar_components *comps = &s->sw->sc->comps;
    s->subs = tr_xcalloc(comps->nsubs + n + 1, sizeof(*s->subs));
    for (size_t i = 0; i < comps->nsubs; i++) {
        struct tr_ps_spec spec;
        char why[512];
        if (tr_ps_spec_from_decl(&comps->subs[i], &spec, why, sizeof(why)) != 0) {
            TR_LOG_WARN(LOG, NULL, "%s: subscription %s ignored: %s", comps->subs[i].file,
                        comps->subs[i].name, why);
            continue;
        }
        add_sub(s, &spec);
    }
    for (size_t i = 0; i < n; i++) {
        add_sub(s, &specs[i]);
    }
    json_t *list = json_array();
    for (size_t i = 0; i < s->nsubs; i++) {
        json_array_append_new(list, describe(&s->subs[i]));
    }
    tr_ps_set_subscriptions(s->sw->sc, list);
    for (size_t i = 0; i < s->nsubs; i++) {
        fetch(&s->subs[i]);
    }
}

static void discover(struct tr_ps_subscriber *s);

static void on_discover_wake(struct tr_sidecar_deadline *dl)
{
    discover(tr_container_of(dl, struct tr_ps_subscriber, discover_wake));
}

static void discover_later(struct tr_ps_subscriber *s, const char *what)
{
    if (s->discover_failures++ == 0) {
        TR_LOG_WARN(LOG, NULL, "GET /dapr/subscribe: %s; retrying until the app answers", what);
    }
    uint64_t delay = 250u << (s->discover_failures < 5 ? s->discover_failures : 5);
    if (delay > DISCOVER_RETRY_MAX_MS) {
        delay = DISCOVER_RETRY_MAX_MS;
    }
    tr_sidecar_deadline_arm(s->sw, &s->discover_wake, loop_now(s) + delay, on_discover_wake);
}

static void log_warnings(const struct tr_buf *w)
{
    struct tr_slice rest = tr_buf_slice(w);
    while (rest.len > 0) {
        const char *nl = memchr(rest.ptr, '\n', rest.len);
        size_t n = nl ? (size_t)(nl - rest.ptr) : rest.len;
        TR_LOG_WARN(LOG, NULL, "%.*s", (int)n, rest.ptr);
        rest = nl ? tr_slice(nl + 1, rest.len - n - 1) : tr_slice(rest.ptr + n, 0);
    }
}

static void on_discovered(const struct tr_sidecar_reply *r, void *data)
{
    struct tr_ps_subscriber *s = data;
    s->discover = NULL;
    if (r->err != 0) {
        discover_later(s, tr_ps_call_strerror(r->err));
        return;
    }
    if (r->status >= 500) {
        char what[64];
        snprintf(what, sizeof(what), "the app answered %d", r->status);
        discover_later(s, what);
        return;
    }
    struct tr_ps_spec *specs = NULL;
    size_t n = 0;
    if (r->status == 200) {
        struct tr_buf warnings;
        tr_buf_init(&warnings);
        if (tr_ps_subscribe_parse(r->body, &specs, &n, &warnings) != 0) {
            specs = NULL;
            n = 0;
        }
        log_warnings(&warnings);
        tr_buf_dispose(&warnings);
    } else if (r->status != 404) {
        /* 404 is "no subscriptions" (Dapr); anything else is the app's mistake. */
        TR_LOG_WARN(LOG, NULL, "GET /dapr/subscribe answered %d: no programmatic subscriptions",
                    r->status);
    }
    run(s, specs, n);
    tr_ps_specs_free(specs, n);
}

static void discover(struct tr_ps_subscriber *s)
{
    if (s->draining || s->stopped) {
        return;
    }
    struct tr_http_client_header h[] = {
        {TR_SLICE_LIT("Content-Type"), TR_SLICE_LIT("application/json")},
    };
    struct tr_sidecar_call_opts o = {
        .method = TR_SLICE_LIT("GET"),
        .target = TR_SLICE_LIT("/dapr/subscribe"),
        .headers = h,
        .nheaders = 1,
        .timeout_ms = DISCOVER_TIMEOUT_MS,
    };
    int err = tr_sidecar_app_call(s->sw, &o, on_discovered, s, &s->discover);
    if (err != 0) {
        s->discover = NULL;
        discover_later(s, tr_strerror(err));
    }
}

/* ------------------------------------------------------------ life cycle */

struct tr_ps_subscriber *tr_ps_subscriber_new(struct tr_sidecar_worker *sw)
{
    struct tr_ps_subscriber *s = tr_xcalloc(1, sizeof(*s));
    s->sw = sw;
    return s;
}

void tr_ps_subscriber_start(struct tr_ps_subscriber *s)
{
    if (s->started || s->draining || s->stopped) {
        return;
    }
    s->started = true;
    discover(s);
}

static bool idle(const struct tr_ps_subscriber *s)
{
    for (size_t i = 0; i < s->nsubs; i++) {
        const struct sub *b = &s->subs[i];
        if (b->inflight > 0 || b->ack_call != NULL || b->nacks > 0) {
            return false;
        }
    }
    return true;
}

static void maybe_drained(struct tr_ps_subscriber *s)
{
    if (s->holding && (s->stopped || idle(s))) {
        s->holding = false;
        tr_sidecar_worker_release(s->sw);
    }
}

void tr_ps_subscriber_drain(struct tr_ps_subscriber *s)
{
    if (s->draining || s->stopped) {
        return;
    }
    s->draining = true;
    if (s->discover != NULL) {
        tr_sidecar_call_cancel(s->discover);
        s->discover = NULL;
    }
    tr_sidecar_deadline_cancel(s->sw, &s->discover_wake);
    for (size_t i = 0; i < s->nsubs; i++) {
        struct sub *b = &s->subs[i];
        if (b->fetch != NULL) {
            tr_sidecar_call_cancel(b->fetch);
            b->fetch = NULL;
        }
        tr_sidecar_deadline_cancel(s->sw, &b->wake);
    }
    if (!idle(s)) {
        s->holding = true;
        tr_sidecar_worker_hold(s->sw);
    }
}

void tr_ps_subscriber_stop(struct tr_ps_subscriber *s)
{
    if (s->stopped) {
        return;
    }
    tr_ps_subscriber_drain(s);
    s->stopped = true;
    for (size_t i = 0; i < s->nsubs; i++) {
        struct sub *b = &s->subs[i];
        if (b->ack_call != NULL) {
            tr_sidecar_call_cancel(b->ack_call);
            b->ack_call = NULL;
        }
        tr_sidecar_deadline_cancel(s->sw, &b->ack_wake);
        struct tr_list *it;
        struct tr_list *tmp;
        tr_list_foreach_safe(it, tmp, &b->deliveries)
        {
            struct delivery *d = tr_container_of(it, struct delivery, node);
            if (d->call != NULL) {
                tr_sidecar_call_cancel(d->call);
                d->call = NULL;
            }
            delivery_free(d);
        }
        if (b->nacks > 0) {
            TR_LOG_WARN(LOG, NULL,
                        "topic %s: %zu acks not sent at shutdown; those events will be "
                        "delivered again",
                        b->spec.topic, b->nacks);
        }
    }
    maybe_drained(s);
}

void tr_ps_subscriber_free(struct tr_ps_subscriber *s)
{
    if (s == NULL) {
        return;
    }
    TR_ASSERT(s->stopped || !s->started);
    for (size_t i = 0; i < s->nsubs; i++) {
        struct sub *b = &s->subs[i];
        tr_ps_spec_dispose(&b->spec);
        tr_free_null(&b->acks);
        tr_free_null(&b->sending);
        tr_buf_dispose(&b->scratch);
    }
    tr_free_null(&s->subs);
    tr_free_null(&s);
}
