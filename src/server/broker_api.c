/* SPDX-License-Identifier: Apache-2.0 */
/* /v1/broker/... handlers (see broker_api.h and docs/broker.md). Parsing happens on
 * the HTTP worker so that the broker thread only appends and reads. */
#include "server/broker_api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/arena.h"
#include "core/base64.h"
#include "core/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "server/call.h"
#include "server/json_span.h"

#define FETCH_DEFAULT_MAX 100
#define FETCH_MAX 1000
#define WAIT_MAX_MS 30000
#define MAX_ACK_OFFSETS 10000
#define NACK_DEFAULT_DELAY_MS 1000

struct api_call {
    struct tr_bk_req r;
    struct tr_http_req *req; /* worker thread only; NULL once the client is gone */
    struct tr_srv_worker *sw;
    struct tr_broker *bk;
    struct tr_arena arena;     /* event bytes */
    struct tr_bk_rec_in *recs; /* owned */
    size_t recs_cap;
    uint64_t *offsets; /* owned */
};

static void call_free(struct api_call *c)
{
    tr_buf_dispose(&c->r.out);
    tr_arena_dispose(&c->arena);
    tr_free_null(&c->recs);
    tr_free_null(&c->offsets);
    tr_free_null(&c);
}

static void fail(struct tr_http_req *req, struct api_call *c, enum tr_err e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(struct tr_http_req *req, struct api_call *c, enum tr_err e, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c != NULL) {
        call_free(c);
    }
    tr_http_resp_error(req, e, msg);
}

/* ------------------------------------------------------------ answers */

static void on_reply(struct tr_msg *m)
{
    struct api_call *c = tr_container_of(m, struct api_call, r.msg);
    if (c->req != NULL) {
        c->req->on_body_end = NULL;
        tr_http_resp_send(c->req, c->r.status, tr_slice_cstr(c->r.content_type),
                          tr_buf_slice(&c->r.out));
    }
    call_free(c);
}

/* Broker thread. */
static void on_done(struct tr_bk_req *r)
{
    struct api_call *c = tr_container_of(r, struct api_call, r);
    c->r.msg.run = on_reply;
    if (!tr_mailbox_post(&c->sw->inbox, &c->r.msg)) {
        call_free(c); /* the worker is gone (shutdown) */
    }
}

static void on_abort(struct tr_http_req *req, bool complete)
{
    struct api_call *c = req->user;
    (void)complete;
    c->req = NULL;
    if (c->r.op == TR_BK_FETCH) {
        tr_broker_cancel(c->bk, &c->r);
    }
}

static void submit(struct tr_http_req *req, struct api_call *c)
{
    req->user = c;
    req->on_body_end = on_abort;
    if (!tr_broker_submit(c->bk, &c->r)) {
        req->on_body_end = NULL;
        fail(req, c, TR_E_UNAVAILABLE, "the broker is shutting down");
    }
}

/* ------------------------------------------------------------ parsing helpers */

/* Copies path parameter `i`, percent-decoded, into `out` if it is a valid name. */
static bool param_name(struct tr_http_req *req, size_t i, char *out, const char *what)
{
    struct tr_slice raw = req->match.params[i].value;
    char tmp[TR_BK_NAME_MAX * 3 + 1];
    size_t n = raw.len < sizeof(tmp) ? tr_pct_decode(tmp, raw, false) : sizeof(tmp);
    if (n > TR_BK_NAME_MAX || !tr_bk_name_valid(tmp, n)) {
        fail(req, NULL, TR_E_BAD_PARAM,
             "invalid %s name: expected 1-%d characters of "
             "[A-Za-z0-9._-]",
             what, TR_BK_NAME_MAX);
        return false;
    }
    memcpy(out, tmp, n);
    out[n] = '\0';
    return true;
}

static struct api_call *call_new(struct tr_http_req *req, enum tr_bk_op op)
{
    struct api_call *c = tr_xcalloc(1, sizeof(*c));
    c->req = req;
    c->sw = req->server->worker_data;
    c->bk = tr_route_data(req->match.route);
    c->r.op = op;
    c->r.done = on_done;
    tr_buf_init(&c->r.out);
    tr_arena_init(&c->arena, 16 * 1024);
    return c;
}

static bool query_duration(struct tr_http_req *req, const char *name, uint64_t *out)
{
    struct tr_slice v;
    if (!tr_http_req_query(req, name, &v)) {
        return true;
    }
    char tmp[32];
    if (v.len == 0 || v.len >= sizeof(tmp)) {
        return false;
    }
    memcpy(tmp, v.ptr, v.len);
    tmp[v.len] = '\0';
    return tr_parse_duration_ms(tmp, out) == 0;
}

static bool is_ndjson(struct tr_slice type)
{
    return tr_slice_starts_with(type, TR_SLICE_LIT("application/x-ndjson")) ||
           tr_slice_starts_with(type, TR_SLICE_LIT("application/ndjson"));
}

static struct tr_slice arena_json(struct api_call *c, const json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL) {
        return tr_slice("", 0);
    }
    struct tr_slice s = tr_arena_slice_dup(&c->arena, tr_slice_cstr(text));
    free(text); /* jansson's allocation */
    return s;
}

static struct tr_bk_rec_in *add_rec(struct api_call *c)
{
    if (c->r.nrecs == c->recs_cap) {
        c->recs_cap = c->recs_cap ? c->recs_cap * 2 : 16;
        c->recs = tr_xrealloc(c->recs, c->recs_cap * sizeof(*c->recs));
    }
    struct tr_bk_rec_in *rec = &c->recs[c->r.nrecs++];
    memset(rec, 0, sizeof(*rec));
    return rec;
}

/* The common line shape, {"data":"<string>"} with nothing to unescape, taken as is
 * without a JSON parser: the string (quotes included) is already the JSON text to store.
 * Anything else (escapes, non-ASCII, other fields) goes through parse_line(). */
static bool fast_line(struct tr_slice line, struct tr_slice *data)
{
    static const char prefix[] = "{\"data\":\"";
    size_t np = sizeof(prefix) - 1;
    if (line.len < np + 2 || memcmp(line.ptr, prefix, np) != 0 ||
        memcmp(line.ptr + line.len - 2, "\"}", 2) != 0) {
        return false;
    }
    for (size_t i = np; i < line.len - 2; i++) {
        unsigned char c = (unsigned char)line.ptr[i];
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') {
            return false;
        }
    }
    *data = tr_slice(line.ptr + np - 1, line.len - np);
    return true;
}

/* One NDJSON line: {"data": any} or {"data_base64": "..."}, optional "metadata" object
 * of strings. Returns 0, or the error to report (message in `why`). */
static enum tr_err parse_line(struct api_call *c, struct tr_slice line, struct tr_buf *tmp,
                              char *why, size_t why_len)
{
    json_error_t jerr;
    /* Big integers are valid JSON; jansson's integers would refuse them. */
    json_t *j =
        json_loadb(line.ptr, line.len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
    enum tr_err e = TR_E_COUNT;
    if (j == NULL || !json_is_object(j)) {
        snprintf(why, why_len, "not a JSON object%s%s", j ? "" : ": ", j ? "" : jerr.text);
        json_decref(j);
        return TR_E_BAD_JSON;
    }
    struct tr_bk_rec_in *rec = add_rec(c);
    const char *key;
    json_t *v;
    bool have_data = false;
    json_object_foreach(j, key, v)
    {
        if (strcmp(key, "data") == 0 && !have_data) {
            /* Stored as written (served back verbatim, like a single event): a dump would
             * respell numbers (0.10 -> 0.10000000000000001). The line stays in the arena. */
            struct tr_slice raw;
            rec->data = tr_json_span_member(line, "data", &raw) ? raw : arena_json(c, v);
            rec->flags = TR_BK_FLAG_JSON;
            have_data = true;
        } else if (strcmp(key, "data_base64") == 0 && !have_data && json_is_string(v)) {
            tr_buf_reset(tmp);
            if (tr_base64_decode(tmp, tr_slice(json_string_value(v), json_string_length(v))) != 0) {
                snprintf(why, why_len, "data_base64 is not valid base64");
                e = TR_E_BAD_JSON;
                break;
            }
            rec->data = tr_arena_slice_dup(&c->arena, tr_buf_slice(tmp));
            have_data = true;
        } else if (strcmp(key, "metadata") == 0 && json_is_object(v)) {
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv)
            {
                if (!json_is_string(mv)) {
                    snprintf(why, why_len, "metadata values must be strings (\"%s\")", mk);
                    e = TR_E_BAD_JSON;
                }
            }
            rec->meta = arena_json(c, v);
        } else {
            snprintf(why, why_len,
                     "unexpected or duplicate field \"%s\" (expected data or "
                     "data_base64, and metadata)",
                     key);
            e = TR_E_BAD_JSON;
            break;
        }
    }
    json_decref(j);
    if (e == TR_E_COUNT && !have_data) {
        snprintf(why, why_len, "missing data or data_base64");
        e = TR_E_BAD_JSON;
    }
    if (e == TR_E_COUNT && rec->data.len > c->bk->cfg.max_payload) {
        snprintf(why, why_len, "payload of %zu bytes exceeds %zu (TRELLIS_BROKER_MAX_PAYLOAD)",
                 rec->data.len, c->bk->cfg.max_payload);
        e = TR_E_BODY_TOO_LARGE;
    }
    return e;
}

static bool parse_ndjson(struct tr_http_req *req, struct api_call *c)
{
    /* One copy of the body; fast-path events point into it. */
    struct tr_slice body = tr_arena_slice_dup(&c->arena, tr_buf_slice(&req->body));
    struct tr_buf tmp;
    tr_buf_init(&tmp);
    size_t lineno = 0;
    size_t pos = 0;
    while (pos < body.len) {
        const char *nl = memchr(body.ptr + pos, '\n', body.len - pos);
        size_t end = nl ? (size_t)(nl - body.ptr) : body.len;
        struct tr_slice line = tr_slice_trim(tr_slice(body.ptr + pos, end - pos));
        pos = end + 1;
        lineno++;
        if (line.len == 0) {
            continue;
        }
        if (c->r.nrecs >= c->bk->cfg.max_batch) {
            tr_buf_dispose(&tmp);
            fail(req, c, TR_E_BODY_TOO_LARGE,
                 "batch exceeds %zu events "
                 "(TRELLIS_BROKER_MAX_BATCH)",
                 c->bk->cfg.max_batch);
            return false;
        }
        struct tr_slice data;
        if (fast_line(line, &data) && data.len <= c->bk->cfg.max_payload) {
            struct tr_bk_rec_in *rec = add_rec(c);
            rec->data = data;
            rec->flags = TR_BK_FLAG_JSON;
            continue;
        }
        char why[300];
        enum tr_err e = parse_line(c, line, &tmp, why, sizeof(why));
        if (e != TR_E_COUNT) {
            tr_buf_dispose(&tmp);
            fail(req, c, e, "line %zu: %s; nothing was published", lineno, why);
            return false;
        }
    }
    tr_buf_dispose(&tmp);
    if (c->r.nrecs == 0) {
        fail(req, c, TR_E_BAD_PARAM, "no events in the body");
        return false;
    }
    return true;
}

/* A single event: the body is the payload; its Content-Type goes into metadata. */
static bool parse_single(struct tr_http_req *req, struct api_call *c, struct tr_slice type)
{
    struct tr_slice body = tr_buf_slice(&req->body);
    if (body.len > c->bk->cfg.max_payload) {
        fail(req, c, TR_E_BODY_TOO_LARGE,
             "payload of %zu bytes exceeds %zu "
             "(TRELLIS_BROKER_MAX_PAYLOAD)",
             body.len, c->bk->cfg.max_payload);
        return false;
    }
    struct tr_bk_rec_in *rec = add_rec(c);
    rec->data = tr_arena_slice_dup(&c->arena, body);
    if (tr_slice_starts_with(type, TR_SLICE_LIT("application/json"))) {
        json_error_t jerr;
        json_t *j = json_loadb(body.ptr ? body.ptr : "", body.len,
                               JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &jerr);
        if (j == NULL) {
            fail(req, c, TR_E_BAD_JSON,
                 "Content-Type is application/json but the body is not "
                 "JSON: %s",
                 jerr.text);
            return false;
        }
        json_decref(j);
        rec->flags = TR_BK_FLAG_JSON;
    } else if (type.len > 0) {
        struct tr_buf m;
        tr_buf_init(&m);
        tr_buf_append(&m, "{\"content_type\":\"", 17);
        tr_json_escape(&m, type);
        tr_buf_append(&m, "\"}", 2);
        rec->meta = tr_arena_slice_dup(&c->arena, tr_buf_slice(&m));
        tr_buf_dispose(&m);
    }
    return true;
}

/* ------------------------------------------------------------ handlers */

static void on_publish(struct tr_http_req *req)
{
    struct api_call *c = call_new(req, TR_BK_PUBLISH);
    if (!param_name(req, 0, c->r.topic, "topic")) {
        call_free(c);
        return;
    }
    struct tr_slice type = tr_http_req_header(req, TR_SLICE_LIT("Content-Type"));
    bool ok = is_ndjson(type) ? parse_ndjson(req, c) : parse_single(req, c, type);
    if (!ok) {
        return;
    }
    c->r.recs = c->recs;
    submit(req, c);
}

static void on_fetch(struct tr_http_req *req)
{
    struct api_call *c = call_new(req, TR_BK_FETCH);
    if (!param_name(req, 0, c->r.group, "group") || !param_name(req, 1, c->r.topic, "topic")) {
        call_free(c);
        return;
    }
    c->r.max = FETCH_DEFAULT_MAX;
    struct tr_slice v;
    if (tr_http_req_query(req, "max", &v)) {
        uint64_t n;
        if (tr_slice_to_u64(v, &n) != 0 || n == 0 || n > FETCH_MAX) {
            fail(req, c, TR_E_BAD_PARAM, "invalid max parameter: expected 1-%d", FETCH_MAX);
            return;
        }
        c->r.max = (size_t)n;
    }
    if (!query_duration(req, "wait", &c->r.wait_ms) ||
        !query_duration(req, "ack_timeout", &c->r.ack_timeout_ms)) {
        fail(req, c, TR_E_BAD_PARAM,
             "invalid wait or ack_timeout parameter: expected a duration "
             "like 500ms or 10s");
        return;
    }
    if (c->r.wait_ms > WAIT_MAX_MS) {
        c->r.wait_ms = WAIT_MAX_MS;
    }
    struct tr_slice accept = tr_http_req_header(req, TR_SLICE_LIT("Accept"));
    c->r.ndjson = is_ndjson(accept);
    submit(req, c);
}

/* Body: [1,2,3] or {"offsets":[1,2,3]}. */
static bool parse_offsets(struct tr_http_req *req, struct api_call *c)
{
    struct tr_slice body = tr_buf_slice(&req->body);
    json_error_t jerr;
    json_t *j = json_loadb(body.ptr ? body.ptr : "", body.len, 0, &jerr);
    json_t *list = json_is_object(j) ? json_object_get(j, "offsets") : j;
    if (!json_is_array(list) || json_array_size(list) == 0) {
        json_decref(j);
        fail(req, c, TR_E_BAD_JSON,
             "body must be a non-empty JSON array of offsets or "
             "{\"offsets\":[...]}");
        return false;
    }
    size_t n = json_array_size(list);
    if (n > MAX_ACK_OFFSETS) {
        json_decref(j);
        fail(req, c, TR_E_BODY_TOO_LARGE, "%zu offsets exceed %d per request", n, MAX_ACK_OFFSETS);
        return false;
    }
    c->offsets = tr_xmalloc(n * sizeof(*c->offsets));
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(list, i);
        if (!json_is_integer(o) || json_integer_value(o) < 0) {
            json_decref(j);
            fail(req, c, TR_E_BAD_JSON, "offset #%zu is not a non-negative integer", i);
            return false;
        }
        c->offsets[i] = (uint64_t)json_integer_value(o);
    }
    json_decref(j);
    c->r.offsets = c->offsets;
    c->r.noffsets = n;
    return true;
}

static void ack_or_nack(struct tr_http_req *req, enum tr_bk_op op)
{
    struct api_call *c = call_new(req, op);
    if (!param_name(req, 0, c->r.group, "group") || !param_name(req, 1, c->r.topic, "topic")) {
        call_free(c);
        return;
    }
    c->r.delay_ms = NACK_DEFAULT_DELAY_MS;
    if (!query_duration(req, "delay", &c->r.delay_ms)) {
        fail(req, c, TR_E_BAD_PARAM, "invalid delay parameter: expected a duration like 1s");
        return;
    }
    if (!parse_offsets(req, c)) {
        return;
    }
    submit(req, c);
}

static void on_ack(struct tr_http_req *req)
{
    ack_or_nack(req, TR_BK_ACK);
}

static void on_nack(struct tr_http_req *req)
{
    ack_or_nack(req, TR_BK_NACK);
}

static void on_topics(struct tr_http_req *req)
{
    submit(req, call_new(req, TR_BK_TOPICS));
}

/* ------------------------------------------------------------ wiring */

int tr_broker_api_start(struct tr_router *r, const char *data_dir, struct tr_broker **out)
{
    struct tr_bk_config cfg;
    int rc = tr_bk_config_from_env(&cfg);
    if (rc != 0) {
        TR_LOG_ERROR("broker", NULL, "invalid TRELLIS_BROKER_* setting");
        return rc;
    }
    struct tr_broker *bk = tr_xcalloc(1, sizeof(*bk));
    rc = tr_broker_open(bk, data_dir, &cfg);
    if (rc == 0) {
        rc = tr_broker_start(bk);
    }
    if (rc != 0) {
        TR_LOG_ERROR("broker", NULL, "cannot open the broker in %s/broker: %s", data_dir,
                     tr_strerror(rc));
        tr_broker_close(bk);
        tr_free_null(&bk);
        return rc;
    }
    rc |= tr_router_add(r, "POST", "/v1/broker/publish/:topic", on_publish, bk, 0);
    rc |= tr_router_add(r, "POST", "/v1/broker/fetch/:group/:topic", on_fetch, bk, 0);
    rc |= tr_router_add(r, "POST", "/v1/broker/ack/:group/:topic", on_ack, bk, 0);
    rc |= tr_router_add(r, "POST", "/v1/broker/nack/:group/:topic", on_nack, bk, 0);
    rc |= tr_router_add(r, "GET", "/v1/broker/topics", on_topics, bk, 0);
    TR_ASSERT(rc == 0);
    *out = bk;
    return 0;
}

void tr_broker_api_stop(struct tr_broker *bk)
{
    tr_broker_stop(bk);
    tr_broker_close(bk);
    tr_free_null(&bk);
}
