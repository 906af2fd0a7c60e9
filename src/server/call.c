/* SPDX-License-Identifier: Apache-2.0 */
/* Calls between HTTP workers and the registry thread (see call.h). */
#include "server/call.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/query.h"

#define MAX_WAIT_MS (10 * 60 * 1000)
#define DEFAULT_WAIT_MS (5 * 60 * 1000)

struct cancel_msg {
    struct tr_msg msg;
    struct tr_srv_call *call;
    struct tr_reg *reg;
};

static void call_free(struct tr_srv_call *c)
{
    tr_buf_dispose(&c->out);
    tr_arena_dispose(&c->arena);
    tr_free_null(&c);
}

/* ------------------------------------------------------------ worker side */

static void on_reply(struct tr_msg *m)
{
    struct tr_srv_call *c = tr_container_of(m, struct tr_srv_call, msg);
    struct tr_http_req *req = c->req;
    if (req != NULL) {
        req->on_body_end = NULL;
        char num[24];
        if (c->index > 0) {
            snprintf(num, sizeof(num), "%llu", (unsigned long long)c->index);
            tr_http_resp_header(req, TR_SLICE_LIT("X-Consul-Index"), tr_slice_cstr(num));
        }
        if (c->etag.len > 0) {
            tr_http_resp_header(req, TR_SLICE_LIT("ETag"), c->etag);
        }
        tr_http_resp_header(req, TR_SLICE_LIT("X-Consul-KnownLeader"), TR_SLICE_LIT("true"));
        tr_http_resp_header(req, TR_SLICE_LIT("X-Consul-LastContact"), TR_SLICE_LIT("0"));
        tr_http_resp_send(req, c->status, c->content_type, tr_buf_slice(&c->out));
    }
    call_free(c);
}

static void on_cancel(struct tr_msg *m);

/* The client went away while the registry holds the call. */
static void on_abort(struct tr_http_req *req, bool complete)
{
    struct tr_srv_call *c = req->user;
    (void)complete;
    c->req = NULL;
    struct cancel_msg *cm = tr_xcalloc(1, sizeof(*cm));
    cm->msg.run = on_cancel;
    cm->call = c;
    cm->reg = c->worker->reg;
    if (!tr_reg_post(cm->reg, &cm->msg)) {
        tr_free_null(&cm);
    }
}

static void on_exec(struct tr_msg *m);

static int parse_wait(struct tr_slice v, uint64_t *out)
{
    char tmp[32];
    if (v.len == 0 || v.len >= sizeof(tmp)) {
        return -1;
    }
    memcpy(tmp, v.ptr, v.len);
    tmp[v.len] = '\0';
    return tr_parse_duration_ms(tmp, out) == 0 ? 0 : -1;
}

static void on_request(struct tr_http_req *req)
{
    struct tr_srv_worker *sw = req->server->worker_data;
    struct tr_srv_call *c = tr_xcalloc(1, sizeof(*c));
    tr_arena_init(&c->arena, 1024);
    tr_buf_init(&c->out);
    c->worker = sw;
    c->req = req;
    c->exec = (tr_srv_exec *)tr_route_data(req->match.route);
    c->method = tr_arena_slice_dup(&c->arena, req->method);
    c->query = tr_arena_slice_dup(&c->arena, req->query);
    c->body = tr_arena_slice_dup(&c->arena, tr_buf_slice(&req->body));
    c->if_match = tr_arena_slice_dup(&c->arena, tr_http_req_header(req, TR_SLICE_LIT("If-Match")));
    if (req->match.nparams > 0) {
        struct tr_slice raw = req->match.params[0].value;
        /* Path parameters are percent-decoded ("+" stays "+" in a path). */
        char *p = tr_arena_alloc(&c->arena, raw.len + 1);
        size_t n = tr_pct_decode(p, raw, false);
        p[n] = '\0';
        c->param = tr_slice(p, n);
    }
    struct tr_slice v;
    if (tr_http_req_query(req, "index", &v)) {
        if (tr_slice_to_u64(v, &c->min_index) != 0) {
            call_free(c);
            tr_http_resp_error(req, TR_E_BAD_PARAM, "invalid index parameter: expected an integer");
            return;
        }
        c->wait_ms = DEFAULT_WAIT_MS;
        if (tr_http_req_query(req, "wait", &v)) {
            if (parse_wait(v, &c->wait_ms) != 0) {
                call_free(c);
                tr_http_resp_error(req, TR_E_BAD_PARAM,
                                   "invalid wait parameter: expected a duration like 10s or 5m");
                return;
            }
            if (c->wait_ms > MAX_WAIT_MS) {
                c->wait_ms = MAX_WAIT_MS;
            }
        }
        /* Consul adds up to wait/16 of jitter so that watchers spread out. */
        if (c->wait_ms >= 16) {
            c->wait_ms += (uint64_t)rand() % (c->wait_ms / 16);
        }
    }
    req->user = c;
    req->on_body_end = on_abort;
    c->msg.run = on_exec;
    if (!tr_reg_post(sw->reg, &c->msg)) {
        req->on_body_end = NULL;
        call_free(c);
        tr_http_resp_error(req, TR_E_UNAVAILABLE, "registry is shutting down");
    }
}

int tr_srv_route(struct tr_router *r, const char *method, const char *pattern, tr_srv_exec *exec)
{
    return tr_router_add(r, method, pattern, on_request, (void *)exec, TR_ROUTE_BUFFERED);
}

/* ------------------------------------------------------------ registry side */

static void post_reply(struct tr_srv_call *c)
{
    c->msg.run = on_reply;
    if (!tr_mailbox_post(&c->worker->inbox, &c->msg)) {
        /* The worker is gone (shutdown): nobody will write the answer. */
        call_free(c);
    }
}

static void on_commit_done(struct tr_reg_commit *cm, int status)
{
    struct tr_srv_call *c = tr_container_of(cm, struct tr_srv_call, commit);
    if (status != 0) {
        tr_buf_reset(&c->out);
        tr_srv_reply_error(c, TR_E_INTERNAL, "the write could not be made durable: %s",
                           tr_strerror(status));
    }
    post_reply(c);
}

static void dispatch(struct tr_reg *reg, struct tr_srv_call *c, enum tr_call_result r)
{
    switch (r) {
    case TR_CALL_REPLY:
        if (c->index > reg->committed_index && reg->seq > reg->committed_seq) {
            /* The answer shows a change that is not on disk yet: hold it until it is,
             * so no client sees data or an index that a crash could take back. */
            c->commit.done = on_commit_done;
            tr_reg_after_commit(reg, &c->commit);
            break;
        }
        post_reply(c);
        break;
    case TR_CALL_PARKED:
        break;
    case TR_CALL_COMMIT:
        c->commit.done = on_commit_done;
        tr_reg_after_commit(reg, &c->commit);
        break;
    default:
        TR_ASSERT(0);
    }
}

static void on_wake(struct tr_reg_waiter *w, bool timed_out)
{
    struct tr_srv_call *c = tr_container_of(w, struct tr_srv_call, waiter);
    struct tr_reg *reg = c->worker->reg;
    c->timed_out = timed_out;
    tr_buf_reset(&c->out);
    dispatch(reg, c, c->exec(reg, c));
}

static void on_exec(struct tr_msg *m)
{
    struct tr_srv_call *c = tr_container_of(m, struct tr_srv_call, msg);
    struct tr_reg *reg = c->worker->reg;
    c->waiter.wake = on_wake;
    c->status = 200;
    dispatch(reg, c, c->exec(reg, c));
}

static void on_cancel(struct tr_msg *m)
{
    struct cancel_msg *cm = tr_container_of(m, struct cancel_msg, msg);
    struct tr_srv_call *c = cm->call;
    /* Only a parked call is still ours; any other has been answered already (its
     * answer is in flight to the worker, which drops it). */
    if (tr_reg_waiting(&c->waiter)) {
        tr_reg_unwait(cm->reg, &c->waiter);
        post_reply(c);
    }
    tr_free_null(&cm);
}

enum tr_call_result tr_srv_block(struct tr_reg *reg, struct tr_srv_call *c, const char *topic,
                                 uint64_t index)
{
    c->index = index > 0 ? index : 1;
    if (c->min_index > 0 && index <= c->min_index && !c->timed_out && !reg->draining) {
        tr_reg_wait(reg, &c->waiter, topic, c->wait_ms);
        return TR_CALL_PARKED;
    }
    return TR_CALL_REPLY;
}

/* ------------------------------------------------------------ helpers */

bool tr_srv_query(struct tr_srv_call *c, const char *name, struct tr_slice *value)
{
    return tr_query_get(c->query, name, &c->arena, value);
}

size_t tr_srv_query_all(struct tr_srv_call *c, const char *name, struct tr_slice *out,
                        size_t max)
{
    return tr_query_all(c->query, name, &c->arena, out, max);
}

bool tr_srv_query_flag(struct tr_srv_call *c, const char *name)
{
    struct tr_slice v;
    if (!tr_srv_query(c, name, &v)) {
        return false;
    }
    return !(tr_slice_eq(v, TR_SLICE_LIT("false")) || tr_slice_eq(v, TR_SLICE_LIT("0")));
}

int tr_srv_query_u64(struct tr_srv_call *c, const char *name, uint64_t *out)
{
    struct tr_slice v;
    if (!tr_srv_query(c, name, &v)) {
        return 0;
    }
    if (tr_slice_to_u64(v, out) != 0) {
        tr_srv_reply_error(c, TR_E_BAD_PARAM, "invalid %s parameter \"%.*s\": expected an unsigned "
                                               "integer", name, TR_SLICE_FMT(v));
        return -1;
    }
    return 1;
}

enum tr_call_result tr_srv_reply_json(struct tr_srv_call *c, int status, json_t *json)
{
    c->status = status;
    c->content_type = TR_SLICE_LIT("application/json");
    tr_buf_reset(&c->out);
    char *text = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text != NULL) {
        tr_buf_append(&c->out, text, strlen(text));
        free(text);
    }
    json_decref(json);
    return TR_CALL_REPLY;
}

enum tr_call_result tr_srv_reply_raw(struct tr_srv_call *c, int status, struct tr_slice type,
                                     struct tr_slice body)
{
    c->status = status;
    c->content_type = type;
    tr_buf_reset(&c->out);
    tr_buf_append_slice(&c->out, body);
    return TR_CALL_REPLY;
}

enum tr_call_result tr_srv_reply_error(struct tr_srv_call *c, enum tr_err e, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    c->status = tr_err_info(e)->status;
    c->content_type = TR_SLICE_LIT("application/json");
    tr_buf_reset(&c->out);
    tr_err_json(&c->out, e, msg);
    return TR_CALL_REPLY;
}

json_t *tr_srv_body_json(struct tr_srv_call *c)
{
    json_error_t jerr;
    json_t *j = json_loadb(c->body.ptr ? c->body.ptr : "", c->body.len, JSON_REJECT_DUPLICATES,
                           &jerr);
    if (j == NULL) {
        tr_srv_reply_error(c, TR_E_BAD_JSON, "request body is not valid JSON: %s (line %d, "
                                              "column %d)", jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        tr_srv_reply_error(c, TR_E_BAD_JSON, "request body must be a JSON object");
        return NULL;
    }
    return j;
}

/* ------------------------------------------------------------ workers */

void tr_srv_worker_init(struct tr_srv_worker *sw, uv_loop_t *loop, struct tr_reg *reg)
{
    sw->reg = reg;
    TR_ASSERT(tr_mailbox_init(&sw->inbox, loop) == 0);
    sw->inbox.data = sw;
}

void tr_srv_worker_close(struct tr_srv_worker *sw)
{
    tr_mailbox_close(&sw->inbox);
}

int tr_srv_call_sync(struct tr_reg *reg, const struct tr_router *router, const char *method,
                     struct tr_slice target, struct tr_slice body, struct tr_buf *out)
{
    const char *q = memchr(target.ptr, '?', target.len);
    struct tr_slice path = q ? tr_slice(target.ptr, (size_t)(q - target.ptr)) : target;
    struct tr_route_match m;
    tr_router_match(router, tr_slice_cstr(method), path, &m);
    if (m.route == NULL) {
        return m.method_mismatch ? 405 : 404;
    }
    struct tr_srv_call *c = tr_xcalloc(1, sizeof(*c));
    tr_arena_init(&c->arena, 1024);
    tr_buf_init(&c->out);
    c->exec = (tr_srv_exec *)tr_route_data(m.route);
    c->method = tr_slice_cstr(method);
    c->query = q ? tr_slice(q + 1, target.len - path.len - 1) : tr_slice("", 0);
    c->body = body;
    if (m.nparams > 0) {
        struct tr_slice raw = m.params[0].value;
        char *p = tr_arena_alloc(&c->arena, raw.len + 1);
        size_t n = tr_pct_decode(p, raw, false);
        p[n] = '\0';
        c->param = tr_slice(p, n);
    }
    c->status = 200;
    c->timed_out = true; /* never park */
    c->exec(reg, c);
    int status = c->status;
    if (out != NULL) {
        tr_buf_append_slice(out, tr_buf_slice(&c->out));
    }
    call_free(c);
    return status;
}
