/* SPDX-License-Identifier: Apache-2.0 */
/* Broker requests on the broker thread: publish, fetch (long-poll), ack, nack, topic
 * stats. Each builds its JSON answer in req->out. */
#include "broker/broker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/base64.h"
#include "core/errors.h"
#include "core/log.h"

#define FETCH_MAX 1000

static bool reply_error(struct tr_bk_req *r, enum tr_err e, const char *msg)
{
    r->status = tr_err_info(e)->status;
    r->content_type = "application/json";
    tr_buf_reset(&r->out);
    tr_err_json(&r->out, e, msg);
    tr_broker__answer(r);
    return true;
}

static bool reply_ok(struct tr_bk_req *r, const char *type)
{
    r->status = 200;
    r->content_type = type;
    tr_broker__answer(r);
    return true;
}

/* ------------------------------------------------------------ publish */

static bool run_publish(struct tr_broker *bk, struct tr_bk_req *r)
{
    if (bk->stopping) {
        return reply_error(r, TR_E_UNAVAILABLE, "the broker is shutting down");
    }
    if (bk->round_error != 0) {
        return reply_error(r, TR_E_UNAVAILABLE, "the broker's storage failed; see the log");
    }
    int err;
    struct tr_bk_topic *t = tr_broker__topic(bk, r->topic, true, &err);
    if (t == NULL) {
        return reply_error(r, TR_E_INTERNAL, "cannot open the topic");
    }
    uint64_t first;
    err = tr_bk_log_append(&t->log, r->recs, r->nrecs, tr_broker__wall_ms(), &first);
    if (err != 0) {
        TR_LOG_ERROR("broker", NULL, "topic %s: append failed: %s", r->topic, tr_strerror(err));
        return reply_error(r, err == -ENOSPC ? TR_E_UNAVAILABLE : TR_E_INTERNAL,
                           "the events could not be written");
    }
    r->status = 200;
    r->content_type = "application/json";
    tr_buf_reset(&r->out);
    tr_buf_appendf(&r->out,
                   "{\"topic\":\"%s\",\"first_offset\":%" PRIu64 ",\"last_offset\":%" PRIu64
                   ",\"count\":%zu}",
                   r->topic, first, first + r->nrecs - 1, r->nrecs);
    tr_broker__wait_round(bk, r);
    return false;
}

/* ------------------------------------------------------------ fetch */

static void encode_delivery(struct tr_bk_req *r, const struct tr_bk_record *rec, uint32_t attempts)
{
    tr_buf_appendf(&r->out, "{\"offset\":%" PRIu64 ",\"attempts\":%u,\"published_at\":%" PRIu64,
                   rec->offset, attempts, rec->timestamp_ms);
    if (rec->meta.len > 0) {
        tr_buf_append(&r->out, ",\"metadata\":", 12);
        tr_buf_append_slice(&r->out, rec->meta);
    }
    if (rec->flags & TR_BK_FLAG_JSON) {
        tr_buf_append(&r->out, ",\"data\":", 8);
        tr_buf_append_slice(&r->out, rec->data);
    } else {
        tr_buf_append(&r->out, ",\"data_base64\":\"", 16);
        tr_base64_encode(&r->out, rec->data.ptr, rec->data.len);
        tr_buf_append(&r->out, "\"", 1);
    }
    tr_buf_append(&r->out, "}", 1);
}

/* Polls the group; answers and returns true if there is something (or `final`). */
static bool try_fetch(struct tr_broker *bk, struct tr_bk_topic *t, struct tr_bk_req *r, bool final)
{
    struct tr_bk_group *g = tr_bk_topic_group(t, r->group, true);
    struct tr_bk_delivery d[FETCH_MAX];
    size_t max = r->max < FETCH_MAX ? r->max : FETCH_MAX;
    uint64_t timeout = r->ack_timeout_ms ? r->ack_timeout_ms : bk->cfg.ack_timeout_ms;
    size_t n = tr_bk_group_poll(g, tr_broker__wall_ms(), t->durable_end, timeout, d, max);
    if (n == 0 && !final) {
        return false;
    }
    tr_buf_reset(&r->out);
    if (!r->ndjson) {
        tr_buf_append(&r->out, "{\"messages\":[", 13);
    }
    size_t written = 0;
    struct tr_bk_record recs[64];
    for (size_t i = 0; i < n;) {
        /* Consecutive offsets (the usual case) come from one read. */
        size_t run = 1;
        while (i + run < n && run < TR_ARRAY_LEN(recs) && d[i + run].offset == d[i].offset + run) {
            run++;
        }
        ssize_t got = tr_bk_log_read_run(&t->log, d[i].offset, run, &bk->scratch, recs);
        if (got < 0) {
            /* Lost to corruption or a gap: nothing to deliver, ever. */
            TR_LOG_WARN("broker", NULL, "topic %s: offset %" PRIu64 " unreadable (%s), skipped",
                        t->name, d[i].offset, tr_strerror((int)got));
            if (tr_bk_group_ack(g, d[i].offset) < 0) {
                TR_ASSERT(0 && "a delivery just handed out is in flight");
            }
            i++;
            continue;
        }
        for (ssize_t k = 0; k < got; k++, i++) {
            if (written++ > 0 && !r->ndjson) {
                tr_buf_append(&r->out, ",", 1);
            }
            encode_delivery(r, &recs[k], d[i].attempts);
            if (r->ndjson) {
                tr_buf_append(&r->out, "\n", 1);
            }
        }
    }
    if (written == 0 && !final) {
        return false;
    }
    if (!r->ndjson) {
        tr_buf_append(&r->out, "]}", 2);
    }
    return reply_ok(r, r->ndjson ? "application/x-ndjson" : "application/json");
}

static bool run_fetch(struct tr_broker *bk, struct tr_bk_req *r)
{
    int err;
    struct tr_bk_topic *t = tr_broker__topic(bk, r->topic, true, &err);
    if (t == NULL) {
        return reply_error(r, TR_E_INTERNAL, "cannot open the topic");
    }
    bool final = r->wait_ms == 0 || bk->stopping || bk->draining;
    if (try_fetch(bk, t, r, final)) {
        return true;
    }
    r->deadline_ms = uv_now(&bk->loop) + r->wait_ms;
    tr_list_insert_tail(&t->waiters, &r->link);
    return false;
}

bool tr_bk_ops_fetch_retry(struct tr_broker *bk, struct tr_bk_req *r, bool timed_out)
{
    int err;
    struct tr_bk_topic *t = tr_broker__topic(bk, r->topic, false, &err);
    TR_ASSERT(t != NULL);
    return try_fetch(bk, t, r, timed_out);
}

/* ------------------------------------------------------------ ack / nack */

static bool run_ack(struct tr_broker *bk, struct tr_bk_req *r, bool ack)
{
    int err;
    struct tr_bk_topic *t = tr_broker__topic(bk, r->topic, false, &err);
    struct tr_bk_group *g = t ? tr_bk_topic_group(t, r->group, false) : NULL;
    if (g == NULL) {
        char msg[600];
        snprintf(msg, sizeof(msg), "no consumer group \"%s\" on topic \"%s\"", r->group, r->topic);
        return reply_error(r, TR_E_NOT_FOUND, msg);
    }
    uint64_t now = tr_broker__wall_ms();
    size_t done = 0;
    size_t unknown = 0;
    struct tr_buf bad;
    tr_buf_init(&bad);
    for (size_t i = 0; i < r->noffsets; i++) {
        int rc = ack ? tr_bk_group_ack(g, r->offsets[i])
                     : tr_bk_group_nack(g, r->offsets[i], now, r->delay_ms);
        if (rc < 0) {
            if (unknown++ < 20) {
                tr_buf_appendf(&bad, "%s%" PRIu64, unknown > 1 ? "," : "", r->offsets[i]);
            }
        } else {
            done++;
        }
    }
    if (ack && done > 0) {
        t->offsets_dirty = t->offsets_dirty || g->committed != g->persisted;
    }
    if (unknown > 0) {
        char msg[600];
        snprintf(msg, sizeof(msg),
                 "%zu offset(s) not in flight for group \"%s\" (%.*s%s); "
                 "the other %zu were %s",
                 unknown, r->group, TR_SLICE_FMT(tr_buf_slice(&bad)), unknown > 20 ? ",..." : "",
                 done, ack ? "acked" : "nacked");
        tr_buf_dispose(&bad);
        return reply_error(r, TR_E_CONFLICT, msg);
    }
    tr_buf_dispose(&bad);
    tr_buf_reset(&r->out);
    tr_buf_appendf(&r->out, "{\"%s\":%zu}", ack ? "acked" : "nacked", done);
    return reply_ok(r, "application/json");
}

/* ------------------------------------------------------------ stats */

static void encode_topic(struct tr_buf *out, const struct tr_bk_topic *t)
{
    uint64_t first = tr_bk_log_first(&t->log);
    tr_buf_appendf(out,
                   "{\"name\":\"%s\",\"size_bytes\":%" PRIu64 ",\"segments\":%zu,"
                   "\"first_offset\":%" PRIu64 ",\"next_offset\":%" PRIu64
                   ",\"durable_offset\":%" PRIu64 ",\"groups\":[",
                   t->name, t->log.total_bytes, t->log.nsegs, first, t->log.next_offset,
                   t->durable_end);
    size_t i = 0;
    size_t n = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&t->groups, &i, &slot)) {
        const struct tr_bk_group *g = slot->value;
        tr_buf_appendf(out,
                       "%s{\"name\":\"%s\",\"committed\":%" PRIu64 ",\"next\":%" PRIu64
                       ",\"lag\":%" PRIu64 ",\"in_flight\":%zu,\"redelivered\":%" PRIu64 "}",
                       n++ ? "," : "", g->name, g->committed, g->next,
                       t->log.next_offset - g->committed, g->unacked, g->redelivered);
    }
    tr_buf_append(out, "]}", 2);
}

static bool run_topics(struct tr_broker *bk, struct tr_bk_req *r)
{
    tr_buf_reset(&r->out);
    tr_buf_append(&r->out, "{\"topics\":[", 11);
    size_t i = 0;
    size_t n = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&bk->topics, &i, &slot)) {
        if (n++ > 0) {
            tr_buf_append(&r->out, ",", 1);
        }
        encode_topic(&r->out, slot->value);
    }
    tr_buf_append(&r->out, "]}", 2);
    return reply_ok(r, "application/json");
}

bool tr_bk_ops_run(struct tr_broker *bk, struct tr_bk_req *r)
{
    switch (r->op) {
    case TR_BK_PUBLISH:
        return run_publish(bk, r);
    case TR_BK_FETCH:
        return run_fetch(bk, r);
    case TR_BK_ACK:
        return run_ack(bk, r, true);
    case TR_BK_NACK:
        return run_ack(bk, r, false);
    case TR_BK_TOPICS:
        return run_topics(bk, r);
    default:
        TR_ASSERT(0);
    }
    return true;
}
