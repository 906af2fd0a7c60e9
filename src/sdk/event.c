/* SPDX-License-Identifier: Apache-2.0 */
/* Pub/sub on the app side, per Dapr's app contract: the GET /dapr/subscribe answer
 * (v1 form: one route per subscription) and deliveries, which arrive as CloudEvents and
 * are answered 200 {"status":"SUCCESS"|"RETRY"|"DROP"}. A body that is not a JSON
 * object can never be processed, so it is dropped rather than retried forever. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/mem.h"
#include "sdk/app.h"
#include "sdk/sdk.h"

struct trellis_event {
    struct trellis_req *req;
    json_t *ce;   /* owned by req->json */
    json_t *data; /* borrowed from ce; NULL if none */
    struct tr_buf payload;
    bool payload_ready;
    bool has_payload;
};

void tr_sdk_subscribe_json(struct trellis_app *app)
{
    json_t *list = json_array();
    for (size_t i = 0; i < app->nsubs; i++) {
        const struct tr_sdk_sub *sub = app->subs[i];
        json_t *s = json_pack("{s:s, s:s, s:s}", "pubsubname", sub->pubsub, "topic", sub->topic,
                              "route", sub->route);
        if (s == NULL) {
            trellis_log(TRELLIS_LOG_ERROR, "subscription to %s/%s skipped: not valid UTF-8",
                        sub->pubsub, sub->topic);
            continue;
        }
        if (sub->dead_letter_topic != NULL) {
            json_object_set_new(s, "deadLetterTopic", json_string(sub->dead_letter_topic));
        }
        if (sub->raw_payload) {
            json_object_set_new(s, "metadata", json_pack("{s:s}", "rawPayload", "true"));
        }
        json_array_append_new(list, s);
    }
    char *text = json_dumps(list, JSON_COMPACT);
    app->subscribe_json = tr_xstrdup(text != NULL ? text : "[]");
    free(text);
    json_decref(list);
}

static void reply_status(struct trellis_req *req, const char *status)
{
    char body[48];
    int n = snprintf(body, sizeof(body), "{\"status\":\"%s\"}", status);
    trellis_reply(req, 200, "application/json", body, (size_t)n);
}

/* A delivery without a traceparent header still carries the publisher's trace in the
 * CloudEvent's own traceparent attribute. */
static void trace_from_event(struct trellis_req *req, json_t *ce)
{
    const char *tp = json_string_value(json_object_get(ce, "traceparent"));
    struct tr_trace parent;
    if (req->trace_from_caller || tp == NULL || tr_trace_parse(tr_slice_cstr(tp), &parent) != 0) {
        return;
    }
    tr_trace_child(&parent, &req->trace);
    tr_trace_format(&req->trace, req->traceparent);
    req->trace_from_caller = true;
}

void tr_sdk_event_run(struct trellis_req *req)
{
    const struct tr_sdk_sub *sub = req->route->sub;
    char err[200] = "";
    json_t *ce = NULL;
    if (req->body.len > 0) {
        ce = (json_t *)trellis_json_parse(tr_buf_data(&req->body), req->body.len, err, sizeof(err));
    }
    if (!json_is_object(ce)) {
        trellis_log(TRELLIS_LOG_WARN, "dropping a delivery on %s/%s: %s", sub->pubsub, sub->topic,
                    ce == NULL ? (err[0] ? err : "empty body") : "body is not a JSON object");
        json_decref(ce);
        reply_status(req, "DROP");
        return;
    }
    req->json = (struct trellis_json *)ce;
    req->json_tried = true;
    trace_from_event(req, ce);
    struct trellis_event ev = {.req = req, .ce = ce, .data = json_object_get(ce, "data")};
    tr_buf_init(&ev.payload);
    enum trellis_event_status st = sub->cb(&ev, sub->data);
    tr_buf_dispose(&ev.payload);
    if (req->replied) {
        return; /* the handler is not supposed to reply; keep what it sent */
    }
    switch (st) {
    case TRELLIS_EVENT_SUCCESS:
        reply_status(req, "SUCCESS");
        break;
    case TRELLIS_EVENT_DROP:
        reply_status(req, "DROP");
        break;
    case TRELLIS_EVENT_RETRY:
    default:
        reply_status(req, "RETRY");
        break;
    }
}

static const char *attr(const struct trellis_event *ev, const char *name)
{
    return json_string_value(json_object_get(ev->ce, name));
}

const char *trellis_event_id(const struct trellis_event *ev)
{
    return attr(ev, "id");
}

const char *trellis_event_type(const struct trellis_event *ev)
{
    return attr(ev, "type");
}

const char *trellis_event_source(const struct trellis_event *ev)
{
    return attr(ev, "source");
}

const char *trellis_event_subject(const struct trellis_event *ev)
{
    return attr(ev, "subject");
}

const char *trellis_event_topic(const struct trellis_event *ev)
{
    const char *t = attr(ev, "topic");
    return t != NULL ? t : ev->req->route->sub->topic;
}

const char *trellis_event_pubsub(const struct trellis_event *ev)
{
    const char *p = attr(ev, "pubsubname");
    return p != NULL ? p : ev->req->route->sub->pubsub;
}

const char *trellis_event_content_type(const struct trellis_event *ev)
{
    return attr(ev, "datacontenttype");
}

struct trellis_json *trellis_event_data(const struct trellis_event *ev)
{
    return (struct trellis_json *)ev->data;
}

const void *trellis_event_payload(const struct trellis_event *ev, size_t *len)
{
    struct trellis_event *e = (struct trellis_event *)ev; /* the payload is decoded lazily */
    if (!e->payload_ready) {
        e->payload_ready = true;
        const char *b64 = attr(ev, "data_base64");
        if (b64 != NULL) {
            e->has_payload = tr_base64_decode(&e->payload, tr_slice_cstr(b64)) == 0;
        } else if (json_is_string(e->data)) {
            tr_buf_append(&e->payload, json_string_value(e->data), json_string_length(e->data));
            e->has_payload = true;
        } else if (e->data != NULL) {
            char *text = json_dumps(e->data, JSON_COMPACT | JSON_ENCODE_ANY);
            if (text != NULL) {
                tr_buf_append(&e->payload, text, strlen(text));
                free(text);
                e->has_payload = true;
            }
        }
        tr_buf_append(&e->payload, "", 1);
        e->payload.len--; /* NUL-terminated, not counted */
    }
    if (len != NULL) {
        *len = e->has_payload ? e->payload.len : 0;
    }
    return e->has_payload ? tr_buf_data(&e->payload) : NULL;
}

struct trellis_json *trellis_event_cloudevent(const struct trellis_event *ev)
{
    return (struct trellis_json *)ev->ce;
}

struct trellis_app *trellis_event_app(const struct trellis_event *ev)
{
    return ev->req->app;
}

struct trellis_sidecar *trellis_event_sidecar(const struct trellis_event *ev)
{
    return trellis_app_sidecar(ev->req->app);
}
