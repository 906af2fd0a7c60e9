/* SPDX-License-Identifier: Apache-2.0 */
/* CloudEvents 1.0 (structured JSON mode) for Dapr pub/sub: the envelope a publish is
 * wrapped in, the checks an event an app publishes itself (application/cloudevents+json)
 * must pass, and the event a subscriber is handed for a broker record. Everything here
 * is a pure function of its input plus the clock and random ids, so it is unit tested
 * and fuzzed without sockets. Payloads and unknown members are copied byte-exact, never
 * parsed and re-dumped: a round trip through a JSON library would respell numbers
 * (0.1 -> 0.10000000000000001) and reorder members. */
#ifndef TR_SIDECAR_CLOUDEVENT_H
#define TR_SIDECAR_CLOUDEVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/slice.h"

#define TR_CE_SPECVERSION "1.0"
#define TR_CE_DEFAULT_TYPE "com.dapr.event.sent" /* Dapr's type for wrapped payloads */
#define TR_CE_DEFAULT_SOURCE "Dapr" /* Dapr's source when an event or a raw record has none */
#define TR_CE_CONTENT_TYPE "application/cloudevents+json"

#define TR_CE_UUID_LEN 36        /* 8-4-4-4-12 hex digits and dashes */
#define TR_CE_TRACEPARENT_LEN 55 /* W3C trace context, version 00 */
#define TR_CE_TIME_MAX 32        /* "2024-05-01T12:00:00.123Z" and its NUL */

/* Content-Type classes, compared case-insensitively and ignoring parameters
 * ("; charset=utf-8"), as Dapr's contenttype package does. */
bool tr_ce_type_is_cloudevent(struct tr_slice content_type); /* application/cloudevents+json */
bool tr_ce_type_is_json(struct tr_slice content_type); /* application/json, any +json, text/json */
bool tr_ce_type_is_binary(struct tr_slice content_type); /* application/octet-stream */

/* Overrides a publish may give as metadata.cloudevent.<name> query parameters. */
enum tr_ce_override {
    TR_CE_OVR_ID = 0,
    TR_CE_OVR_SOURCE,
    TR_CE_OVR_TYPE,
    TR_CE_OVR_SUBJECT,
    TR_CE_OVR_TRACEID,
    TR_CE_OVR_TRACEPARENT,
    TR_CE_OVR_TRACESTATE,
    TR_CE_OVR_COUNT
};

/* The override named `name` ("id", "traceparent"...), or TR_CE_OVR_COUNT if none. */
enum tr_ce_override tr_ce_override_by_name(struct tr_slice name);

/* What a publish request gives the envelope builder. All slices are borrowed. */
struct tr_ce_publish {
    struct tr_slice body;
    struct tr_slice content_type; /* the request's Content-Type; empty means text/plain */
    struct tr_slice pubsub;       /* component name, copied into "pubsubname" */
    struct tr_slice topic;
    struct tr_slice source;      /* the publishing app's id */
    struct tr_slice traceparent; /* the request's header; empty or invalid: a new trace */
    struct tr_slice tracestate;
    struct tr_slice overrides[TR_CE_OVR_COUNT]; /* NULL ptr: not given */
    int64_t ttl_s;   /* metadata.ttlInSeconds, or -1: sets "expiration" */
    uint64_t now_ms; /* wall clock, ms since the epoch */
};

/* Builds the event to store for a publish and appends it to `out`:
 * - Content-Type application/cloudevents+json: the body must be a JSON object and a
 *   valid CloudEvent (specversion "1.0", non-empty string id/source/type, string
 *   datacontenttype/subject/dataschema, RFC 3339 time, not both data and data_base64,
 *   valid base64). Missing id/source/type/specversion are filled in (a new UUID,
 *   "Dapr", "com.dapr.event.sent", "1.0"); topic, pubsubname, traceid, traceparent and
 *   tracestate are set from the request, replacing what the event had, as Dapr does.
 *   Other members, data included, are copied as written. Overrides do not apply.
 * - Any other type: a new envelope around the payload. JSON types embed the payload as
 *   written when it is valid JSON (else as a string); application/octet-stream, and text
 *   that is not valid UTF-8 or holds NUL bytes, go to data_base64; everything else is a
 *   JSON string.
 * Returns 0, or -EINVAL with a one-line reason in `why` (for a 400 answer) when a
 * structured event is rejected. `out` is left as it was on failure. */
TR_MUST_CHECK int tr_ce_envelope(struct tr_buf *out, const struct tr_ce_publish *in, char *why,
                                 size_t why_len);

/* One record as the broker hands it out. Slices borrowed. */
struct tr_ce_record {
    struct tr_slice data; /* JSON text when is_json, else the payload bytes */
    bool is_json;
    struct tr_slice content_type; /* a bytes record's stored type; may be empty */
    struct tr_slice topic;        /* the subscription's (Dapr) topic and component */
    struct tr_slice pubsub;
    struct tr_slice id; /* stable id for a synthesized event (redeliveries
                           keep it): e.g. "<topic>-<offset>" */
    bool raw_payload;   /* the subscription asked for rawPayload */
};

/* Where a record sits in its topic, from a broker fetch answer. */
struct tr_ce_position {
    uint64_t offset;
    uint32_t attempts;     /* deliveries to this group so far, this one included */
    uint64_t published_ms; /* ms since the epoch */
};

/* Parses one line of a broker fetch answer in NDJSON: {"offset":N,"attempts":N,
 * "published_at":N,"metadata":{...},"data":<JSON>|"data_base64":"..."}. Sets rec->data,
 * rec->is_json and rec->content_type (metadata.content_type when a plain string; other
 * members of `rec` are left alone) and `pos`. A base64 payload is decoded into `scratch`
 * (reset first) and rec->data points there; other slices point into `line`. Returns 0,
 * or -EINVAL for a line that is not such an object. */
TR_MUST_CHECK int tr_ce_record_parse(struct tr_slice line, struct tr_ce_record *rec,
                                     struct tr_ce_position *pos, struct tr_buf *scratch);

/* What the subscriber needs from the event it delivers. Slices point into the `out`
 * buffer given to tr_ce_for_delivery() and are empty when absent or when the member is
 * not a plain string (one without escapes). */
struct tr_ce_info {
    struct tr_slice id;
    struct tr_slice type;
    struct tr_slice traceparent;
    struct tr_slice tracestate;
    bool has_expiration;
    uint64_t expiration_ms; /* ms since the epoch */
    bool synthesized;       /* the record was not an event and was wrapped */
};

/* Appends to `out` the CloudEvent to deliver for `rec`, and fills `info`. A JSON object
 * record with a "specversion" member is an event and is passed on as stored. A
 * raw-payload subscription gets every record wrapped as Dapr does (data_base64 of the
 * stored bytes, datacontenttype application/octet-stream, source "Dapr"); anything else
 * that is not an event is wrapped like a publish of its stored content type would be.
 * `out` must be empty: info's slices are offsets into it. Never fails. */
void tr_ce_for_delivery(struct tr_buf *out, const struct tr_ce_record *rec,
                        struct tr_ce_info *info);

/* Random (version 4) UUID, lower-case hex: writes TR_CE_UUID_LEN chars and a NUL. */
void tr_ce_uuid4(char out[TR_CE_UUID_LEN + 1]);

/* Is `s` a W3C traceparent (version 00: "00-<32 hex>-<16 hex>-<2 hex>", ids not all
 * zero, lower-case hex)? */
bool tr_ce_traceparent_valid(struct tr_slice s);
/* A new sampled traceparent with random ids: TR_CE_TRACEPARENT_LEN chars and a NUL. */
void tr_ce_traceparent_new(char out[TR_CE_TRACEPARENT_LEN + 1]);

/* RFC 3339 in UTC with milliseconds: "2024-05-01T12:00:00.123Z". */
void tr_ce_time_format(char out[TR_CE_TIME_MAX], uint64_t ms);
/* Parses an RFC 3339 date-time ("T" or "t" or " ", fraction of any length, "Z" or a
 * +hh:mm offset) into ms since the epoch. Returns 0 or -EINVAL (also for times before
 * 1970). */
TR_MUST_CHECK int tr_ce_time_parse(struct tr_slice s, uint64_t *ms);

/* Does `s` hold valid UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF)? JSON strings must. */
bool tr_ce_utf8_valid(struct tr_slice s);

#endif
