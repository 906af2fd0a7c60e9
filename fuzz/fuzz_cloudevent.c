/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzzes the CloudEvents code (src/sidecar/cloudevent.c). The first byte picks what
 * the rest of the input is:
 *   0: a publish body with Content-Type application/cloudevents+json
 *   1: a publish body with Content-Type application/json
 *   2: a publish body with Content-Type text/plain (maybe not UTF-8)
 *   3: a broker record stored as JSON, for an ordinary subscription
 *   4: a broker record stored as bytes (text/plain), for an ordinary subscription
 *   5: a broker record for a raw-payload subscription
 *   6: an RFC 3339 time
 *   7: a line of a broker fetch answer, then the event delivered for it
 * Whatever the input, an accepted publish and every synthesized delivery must be one
 * valid JSON object without duplicate members, and nothing may read out of bounds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/mem.h"
#include "sidecar/cloudevent.h"

static bool loads(struct tr_slice s, size_t flags)
{
    json_t *j = json_loadb(s.ptr, s.len, flags | JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
    json_decref(j);
    return j != NULL;
}

/* Does the input hold JSON with a duplicate member? Payloads are copied as they are, so
 * the output then has one too (inside data), which is fine. */
static bool has_duplicates(struct tr_slice s)
{
    return loads(s, 0) && !loads(s, JSON_REJECT_DUPLICATES);
}

static void must_be_object(const struct tr_buf *out, const char *what, bool dups_ok)
{
    json_error_t jerr;
    json_t *j = json_loadb(tr_buf_data(out), out->len,
                           (dups_ok ? 0 : JSON_REJECT_DUPLICATES) | JSON_DECODE_INT_AS_REAL, &jerr);
    if (j == NULL || !json_is_object(j)) {
        fprintf(stderr, "%s is not a JSON object (%s): %.*s\n", what,
                j ? "not an object" : jerr.text, (int)out->len, tr_buf_data(out));
        abort();
    }
    json_decref(j);
}

static void publish(struct tr_slice body, const char *type)
{
    struct tr_ce_publish in;
    memset(&in, 0, sizeof(in));
    in.body = body;
    in.content_type = tr_slice_cstr(type);
    in.pubsub = TR_SLICE_LIT("pubsub");
    in.topic = TR_SLICE_LIT("orders");
    in.source = TR_SLICE_LIT("app");
    in.ttl_s = body.len % 2 ? 60 : -1;
    in.now_ms = 1714564800123ull;
    struct tr_buf out;
    tr_buf_init(&out);
    char why[256];
    if (tr_ce_envelope(&out, &in, why, sizeof(why)) == 0) {
        must_be_object(&out, "envelope", has_duplicates(body));
        struct tr_ce_info info;
        struct tr_buf again;
        tr_buf_init(&again);
        struct tr_ce_record rec = {
            .data = tr_buf_slice(&out), .is_json = true, .topic = in.topic, .pubsub = in.pubsub};
        tr_ce_for_delivery(&again, &rec, &info);
        if (info.synthesized) {
            fprintf(stderr, "an envelope was not taken for an event\n");
            abort();
        }
        tr_buf_dispose(&again);
    } else if (out.len != 0 || why[0] == '\0') {
        abort();
    }
    tr_buf_dispose(&out);
}

static void deliver(struct tr_slice data, bool is_json, bool raw)
{
    bool valid = !is_json || loads(data, 0);
    struct tr_ce_record rec = {.data = data,
                               .is_json = is_json,
                               .content_type = is_json ? TR_SLICE_NULL : TR_SLICE_LIT("text/plain"),
                               .topic = TR_SLICE_LIT("t"),
                               .pubsub = TR_SLICE_LIT("p"),
                               .id = TR_SLICE_LIT("t-1"),
                               .raw_payload = raw};
    struct tr_buf out;
    tr_buf_init(&out);
    struct tr_ce_info info;
    tr_ce_for_delivery(&out, &rec, &info);
    if (info.synthesized && valid) {
        must_be_object(&out, "delivery", has_duplicates(data));
    }
    /* The info slices point into the output. */
    const struct tr_slice *s[] = {&info.id, &info.type, &info.traceparent, &info.tracestate};
    for (size_t i = 0; i < 4; i++) {
        if (s[i]->len > 0 && (s[i]->ptr < tr_buf_data(&out) ||
                              s[i]->ptr + s[i]->len > tr_buf_data(&out) + out.len)) {
            abort();
        }
    }
    tr_buf_dispose(&out);
}

static void record(struct tr_slice line)
{
    struct tr_buf scratch;
    tr_buf_init(&scratch);
    struct tr_ce_record rec = {.topic = TR_SLICE_LIT("t"), .pubsub = TR_SLICE_LIT("p")};
    struct tr_ce_position pos;
    if (tr_ce_record_parse(line, &rec, &pos, &scratch) == 0) {
        struct tr_buf out;
        tr_buf_init(&out);
        struct tr_ce_info info;
        tr_ce_for_delivery(&out, &rec, &info);
        tr_buf_dispose(&out);
    }
    tr_buf_dispose(&scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    struct tr_slice rest = tr_slice((const char *)data + 1, size - 1);
    uint64_t ms;
    switch (data[0] % 8) {
    case 0:
        publish(rest, "application/cloudevents+json");
        break;
    case 1:
        publish(rest, "application/json");
        break;
    case 2:
        publish(rest, "text/plain");
        break;
    case 3:
        deliver(rest, true, false);
        break;
    case 4:
        deliver(rest, false, false);
        break;
    case 5:
        deliver(rest, data[0] & 0x80, true);
        break;
    case 7:
        record(rest);
        break;
    default:
        if (tr_ce_time_parse(rest, &ms) == 0) {
            char buf[TR_CE_TIME_MAX];
            tr_ce_time_format(buf, ms);
        }
        break;
    }
    return 0;
}
