/* SPDX-License-Identifier: Apache-2.0 */
/* CloudEvents envelopes: wrapping raw payloads the way Dapr's runtime does, validating
 * and completing events apps publish themselves, byte-exact payloads, and the event a
 * subscriber gets for each kind of broker record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <errno.h>
#include <string.h>

#include "core/buf.h"
#include "sidecar/cloudevent.h"

#define S(x) tr_slice_cstr(x)
#define NOW_MS 1714564800123ull /* 2024-05-01T12:00:00.123Z */
#define TP "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

static struct tr_ce_publish pub(const char *type, const char *body)
{
    struct tr_ce_publish in;
    memset(&in, 0, sizeof(in));
    in.body = S(body);
    in.content_type = S(type);
    in.pubsub = S("pubsub");
    in.topic = S("orders");
    in.source = S("checkout");
    in.ttl_s = -1;
    in.now_ms = NOW_MS;
    return in;
}

/* Builds and parses the envelope; fails the test if it is not one JSON object. */
static json_t *envelope(const struct tr_ce_publish *in, struct tr_buf *out)
{
    char why[256] = "";
    tr_buf_reset(out);
    assert_int_equal(tr_ce_envelope(out, in, why, sizeof(why)), 0);
    json_error_t jerr;
    json_t *j = json_loadb(tr_buf_data(out), out->len,
                           JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
    if (j == NULL) {
        fail_msg("not JSON: %s: %.*s", jerr.text, (int)out->len, tr_buf_data(out));
    }
    assert_true(json_is_object(j));
    return j;
}

static const char *str(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void assert_str(json_t *j, const char *key, const char *want)
{
    const char *got = str(j, key);
    if (got == NULL) {
        fail_msg("member %s missing or not a string", key);
    }
    assert_string_equal(got, want);
}

static bool contains(const struct tr_buf *b, const char *needle)
{
    return memmem(tr_buf_data(b), b->len, needle, strlen(needle)) != NULL;
}

static void wraps_json_payload_as_written(void **state)
{
    (void)state;
    struct tr_buf out;
    tr_buf_init(&out);
    struct tr_ce_publish in =
        pub("application/json", " {\"price\": 0.1, \"big\": 12345678901234567890} ");
    in.traceparent = S(TP);
    in.tracestate = S("vendor=1");
    json_t *j = envelope(&in, &out);
    assert_str(j, "specversion", "1.0");
    assert_str(j, "source", "checkout");
    assert_str(j, "type", "com.dapr.event.sent");
    assert_str(j, "datacontenttype", "application/json");
    assert_str(j, "topic", "orders");
    assert_str(j, "pubsubname", "pubsub");
    assert_str(j, "traceparent", TP);
    assert_str(j, "traceid", TP);
    assert_str(j, "tracestate", "vendor=1");
    assert_str(j, "time", "2024-05-01T12:00:00.123Z");
    assert_int_equal(strlen(str(j, "id")), TR_CE_UUID_LEN);
    assert_null(json_object_get(j, "expiration"));
    assert_true(json_is_object(json_object_get(j, "data")));
    /* Numbers keep their spelling: no parse-and-dump round trip. */
    assert_true(contains(&out, "\"data\":{\"price\": 0.1, \"big\": 12345678901234567890}"));
    json_decref(j);
    tr_buf_dispose(&out);
}

static void content_types_pick_data_encoding(void **state)
{
    (void)state;
    struct tr_buf out;
    tr_buf_init(&out);

    /* No Content-Type: text/plain, a string. */
    struct tr_ce_publish in = pub("", "hello \"world\"");
    json_t *j = envelope(&in, &out);
    assert_str(j, "datacontenttype", "text/plain");
    assert_str(j, "data", "hello \"world\"");
    json_decref(j);

    /* JSON type but not JSON: falls back to a string, as Dapr does. */
    in = pub("application/json; charset=utf-8", "{not json");
    j = envelope(&in, &out);
    assert_str(j, "datacontenttype", "application/json; charset=utf-8");
    assert_str(j, "data", "{not json");
    json_decref(j);

    /* +json types are JSON; scalars too. */
    in = pub("application/vnd.order+json", "42");
    j = envelope(&in, &out);
    assert_true(json_number_value(json_object_get(j, "data")) == 42);
    json_decref(j);

    /* Binary goes to data_base64. */
    in = pub("application/octet-stream", "hi");
    j = envelope(&in, &out);
    assert_str(j, "data_base64", "aGk=");
    assert_null(json_object_get(j, "data"));
    json_decref(j);

    /* Text that is not UTF-8 cannot be a JSON string: base64 as well. */
    static const char bad_utf8[] = {'a', (char)0xff, 'b', 0};
    in = pub("text/plain", bad_utf8);
    j = envelope(&in, &out);
    assert_str(j, "data_base64", "Yf9i");
    json_decref(j);

    /* NUL bytes too: "\u0000" is JSON, but jansson (and the broker) refuse it. */
    in = pub("text/plain", "");
    in.body = tr_slice("a\0b", 3);
    j = envelope(&in, &out);
    assert_str(j, "data_base64", "YQBi");
    json_decref(j);

    /* Control characters are escaped. */
    in = pub("text/plain", "line1\nline2\t\x01");
    j = envelope(&in, &out);
    assert_str(j, "data", "line1\nline2\t\x01");
    json_decref(j);
    tr_buf_dispose(&out);
}

static void overrides_ttl_and_new_traces(void **state)
{
    (void)state;
    struct tr_buf out;
    tr_buf_init(&out);
    struct tr_ce_publish in = pub("text/plain", "x");
    in.overrides[TR_CE_OVR_ID] = S("my-id");
    in.overrides[TR_CE_OVR_TYPE] = S("order.created");
    in.overrides[TR_CE_OVR_SOURCE] = S("shop");
    in.overrides[TR_CE_OVR_SUBJECT] = S("order/1");
    in.overrides[TR_CE_OVR_TRACEID] = S("tid");
    in.ttl_s = 90;
    json_t *j = envelope(&in, &out);
    assert_str(j, "id", "my-id");
    assert_str(j, "type", "order.created");
    assert_str(j, "source", "shop");
    assert_str(j, "subject", "order/1");
    assert_str(j, "traceid", "tid");
    assert_str(j, "expiration", "2024-05-01T12:01:30.123Z");
    /* No (or an invalid) traceparent on the request: a fresh valid one. */
    assert_true(tr_ce_traceparent_valid(S(str(j, "traceparent"))));
    json_decref(j);

    in = pub("text/plain", "x");
    in.traceparent = S("00-zzzz");
    j = envelope(&in, &out);
    assert_true(tr_ce_traceparent_valid(S(str(j, "traceparent"))));
    assert_string_not_equal(str(j, "traceparent"), "00-zzzz");
    json_decref(j);

    assert_int_equal(tr_ce_override_by_name(S("traceparent")), TR_CE_OVR_TRACEPARENT);
    assert_int_equal(tr_ce_override_by_name(S("data")), TR_CE_OVR_COUNT);
    tr_buf_dispose(&out);
}

static void names_from_urls_stay_valid_json(void **state)
{
    (void)state;
    struct tr_buf out;
    tr_buf_init(&out);
    static const char topic[] = {'t', (char)0xc3, '"', '/', 0, 'z'}; /* cut UTF-8, NUL */
    struct tr_ce_publish in = pub("text/plain", "x");
    in.topic = tr_slice(topic, sizeof(topic));
    json_t *j = envelope(&in, &out);
    assert_str(j, "topic", "t\xef\xbf\xbd\"/\xef\xbf\xbdz");
    json_decref(j);
    tr_buf_dispose(&out);
}

static void structured_events_are_completed(void **state)
{
    (void)state;
    struct tr_buf out;
    tr_buf_init(&out);
    const char *ev = "{\"type\":\"order.created\",\"topic\":\"spoofed\",\"traceparent\":\"x\","
                     "\"myext\":\"keep\",\"data\":{\"n\":1.50}}";
    struct tr_ce_publish in = pub("application/cloudevents+json; charset=utf-8", ev);
    in.traceparent = S(TP);
    json_t *j = envelope(&in, &out);
    assert_str(j, "type", "order.created");
    assert_str(j, "specversion", "1.0");
    assert_str(j, "source", "Dapr");
    assert_int_equal(strlen(str(j, "id")), TR_CE_UUID_LEN);
    assert_str(j, "topic", "orders");
    assert_str(j, "pubsubname", "pubsub");
    assert_str(j, "traceparent", TP);
    assert_str(j, "myext", "keep");
    assert_true(contains(&out, "\"data\":{\"n\":1.50}"));
    assert_null(json_object_get(j, "time")); /* not added to an app's own event */
    json_decref(j);

    /* An escaped spelling of a replaced member is replaced too (no duplicate). */
    in = pub("application/cloudevents+json", "{\"id\":\"a\",\"top\\u0069c\":\"spoofed\"}");
    j = envelope(&in, &out);
    assert_str(j, "topic", "orders");
    assert_str(j, "id", "a");
    json_decref(j);

    /* Overrides apply to wrapped payloads only (as in Dapr). */
    in = pub("application/cloudevents+json", "{\"id\":\"mine\",\"source\":\"s\",\"type\":\"t\"}");
    in.overrides[TR_CE_OVR_ID] = S("other");
    j = envelope(&in, &out);
    assert_str(j, "id", "mine");
    json_decref(j);
    tr_buf_dispose(&out);
}

static void malformed_events_are_refused(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        const char *why; /* a word the reason must contain */
    } cases[] = {
        {"", "not a valid CloudEvent"},
        {"{\"id\":", "line 1"},
        {"[1,2]", "JSON object"},
        {"\"text\"", "JSON object"},
        {"{\"specversion\":\"0.3\"}", "specversion"},
        {"{\"specversion\":1}", "specversion"},
        {"{\"id\":\"\"}", "\"id\""},
        {"{\"id\":7}", "\"id\""},
        {"{\"source\":null}", "\"source\""},
        {"{\"type\":[]}", "\"type\""},
        {"{\"subject\":1}", "\"subject\""},
        {"{\"datacontenttype\":{}}", "\"datacontenttype\""},
        {"{\"time\":\"yesterday\"}", "RFC 3339"},
        {"{\"time\":\"2024-02-30T00:00:00Z\"}", "RFC 3339"},
        {"{\"data\":1,\"data_base64\":\"aGk=\"}", "both"},
        {"{\"data_base64\":\"not base64!\"}", "base64"},
        {"{\"data_base64\":5}", "base64"},
        {"{\"id\":\"a\",\"id\":\"b\"}", "duplicate"},
    };
    struct tr_buf out;
    tr_buf_init(&out);
    tr_buf_append_slice(&out, S("keep"));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tr_ce_publish in = pub("application/cloudevents+json", cases[i].body);
        char why[256] = "";
        assert_int_equal(tr_ce_envelope(&out, &in, why, sizeof(why)), -EINVAL);
        if (strstr(why, cases[i].why) == NULL) {
            fail_msg("case %zu (%s): reason \"%s\" lacks \"%s\"", i, cases[i].body, why,
                     cases[i].why);
        }
        assert_int_equal(out.len, 4); /* untouched */
    }
    tr_buf_dispose(&out);
}

static void delivery_passes_events_through(void **state)
{
    (void)state;
    struct tr_buf out;
    tr_buf_init(&out);
    const char *ev = "{\"specversion\":\"1.0\",\"id\":\"e1\",\"type\":\"t\",\"traceparent\":\"" TP
                     "\",\"tracestate\":\"a=b\",\"expiration\":\"2024-05-01T12:00:00Z\","
                     "\"data\":{\"x\":0.10}}";
    struct tr_ce_record rec = {.data = S(ev),
                               .is_json = true,
                               .topic = S("orders"),
                               .pubsub = S("pubsub"),
                               .id = S("orders-7")};
    struct tr_ce_info info;
    tr_ce_for_delivery(&out, &rec, &info);
    assert_int_equal(out.len, strlen(ev));
    assert_memory_equal(tr_buf_data(&out), ev, out.len);
    assert_false(info.synthesized);
    assert_true(tr_slice_eq(info.id, S("e1")));
    assert_true(tr_slice_eq(info.type, S("t")));
    assert_true(tr_slice_eq(info.traceparent, S(TP)));
    assert_true(tr_slice_eq(info.tracestate, S("a=b")));
    assert_true(info.has_expiration);
    assert_int_equal(info.expiration_ms, 1714564800000ull);
    tr_buf_dispose(&out);
}

static void delivery_wraps_other_records(void **state)
{
    (void)state;
    struct tr_buf out;
    tr_buf_init(&out);
    struct tr_ce_info info;
    json_t *j;

    /* JSON that is not an event (published straight to the broker). */
    struct tr_ce_record rec = {.data = S("{\"n\":1}"),
                               .is_json = true,
                               .topic = S("orders"),
                               .pubsub = S("pubsub"),
                               .id = S("orders-7")};
    tr_ce_for_delivery(&out, &rec, &info);
    j = json_loadb(tr_buf_data(&out), out.len, 0, NULL);
    assert_non_null(j);
    assert_true(info.synthesized);
    assert_str(j, "id", "orders-7");
    assert_true(tr_slice_eq(info.id, S("orders-7")));
    assert_str(j, "datacontenttype", "application/json");
    assert_str(j, "topic", "orders");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "data"), "n")), 1);
    json_decref(j);

    /* Bytes with their stored type. */
    rec = (struct tr_ce_record){.data = S("plain words"),
                                .content_type = S("text/plain"),
                                .topic = S("t"),
                                .pubsub = S("p")};
    tr_buf_reset(&out);
    tr_ce_for_delivery(&out, &rec, &info);
    j = json_loadb(tr_buf_data(&out), out.len, 0, NULL);
    assert_str(j, "data", "plain words");
    assert_int_equal(strlen(str(j, "id")), TR_CE_UUID_LEN); /* no stable id given */
    json_decref(j);

    /* An event published with rawPayload=true (bytes of a JSON type) is an event. */
    const char *ce = "{\"specversion\":\"1.0\",\"id\":\"raw-ce\",\"type\":\"t\"}";
    rec = (struct tr_ce_record){.data = S(ce), .content_type = S("application/cloudevents+json"),
                                .topic = S("t"), .pubsub = S("p")};
    tr_buf_reset(&out);
    tr_ce_for_delivery(&out, &rec, &info);
    assert_false(info.synthesized);
    assert_true(tr_slice_eq(info.id, S("raw-ce")));
    /* ...but only if it really is JSON: bytes are not checked by the broker. */
    rec.data = S("{\"specversion\":\"1.0\", broken");
    tr_buf_reset(&out);
    tr_ce_for_delivery(&out, &rec, &info);
    assert_true(info.synthesized);
    j = json_loadb(tr_buf_data(&out), out.len, 0, NULL);
    assert_str(j, "data", "{\"specversion\":\"1.0\", broken");
    json_decref(j);

    /* Raw-payload subscriptions get everything as base64, events included. */
    rec = (struct tr_ce_record){.data = S("{\"specversion\":\"1.0\"}"),
                                .is_json = true,
                                .topic = S("t"),
                                .pubsub = S("p"),
                                .id = S("t-1"),
                                .raw_payload = true};
    tr_buf_reset(&out);
    tr_ce_for_delivery(&out, &rec, &info);
    j = json_loadb(tr_buf_data(&out), out.len, 0, NULL);
    assert_str(j, "datacontenttype", "application/octet-stream");
    assert_str(j, "source", "Dapr");
    assert_str(j, "data_base64", "eyJzcGVjdmVyc2lvbiI6IjEuMCJ9");
    assert_true(info.synthesized);
    json_decref(j);
    tr_buf_dispose(&out);
}

static void delivery_survives_garbage(void **state)
{
    (void)state;
    /* Records the walk cannot make sense of are wrapped, never read past. */
    const char *bad[] = {
        "{",         "{\"specversion\"",  "{\"a\":\"\\",        "{\"a\":[1,{\"b\":",
        "{\"a\" 1}", "[\"specversion\"]", "{\"specversion\":}", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct tr_buf out;
        tr_buf_init(&out);
        struct tr_ce_info info;
        struct tr_ce_record rec = {.data = tr_slice(bad[i], strlen(bad[i])),
                                   .is_json = true,
                                   .topic = S("t"),
                                   .pubsub = S("p")};
        char *copy = tr_xstrndup(bad[i], strlen(bad[i])); /* exact bounds for ASan */
        rec.data = tr_slice(copy, strlen(bad[i]));
        tr_ce_for_delivery(&out, &rec, &info);
        tr_free_null(&copy);
        assert_true(out.len > 0);
        tr_buf_dispose(&out);
    }
}

static void uuids_and_traceparents(void **state)
{
    (void)state;
    char a[TR_CE_UUID_LEN + 1];
    char b[TR_CE_UUID_LEN + 1];
    tr_ce_uuid4(a);
    tr_ce_uuid4(b);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, b);
    assert_int_equal(a[14], '4');
    assert_true(strchr("89ab", a[19]) != NULL);
    assert_int_equal(a[8], '-');
    assert_int_equal(a[23], '-');

    char tp[TR_CE_TRACEPARENT_LEN + 1];
    for (int i = 0; i < 100; i++) {
        tr_ce_traceparent_new(tp);
        assert_true(tr_ce_traceparent_valid(S(tp)));
    }
    assert_true(tr_ce_traceparent_valid(S(TP)));
    assert_false(
        tr_ce_traceparent_valid(S("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")));
    assert_false(
        tr_ce_traceparent_valid(S("00-00000000000000000000000000000000-b7ad6b7169203331-01")));
    assert_false(
        tr_ce_traceparent_valid(S("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01")));
    assert_false(
        tr_ce_traceparent_valid(S("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01")));
    assert_false(
        tr_ce_traceparent_valid(S("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x")));
    assert_false(tr_ce_traceparent_valid(S("")));
}

static void rfc3339_times(void **state)
{
    (void)state;
    uint64_t ms;
    char buf[TR_CE_TIME_MAX];
    tr_ce_time_format(buf, NOW_MS);
    assert_string_equal(buf, "2024-05-01T12:00:00.123Z");
    assert_int_equal(tr_ce_time_parse(S(buf), &ms), 0);
    assert_int_equal(ms, NOW_MS);
    assert_int_equal(tr_ce_time_parse(S("1970-01-01T00:00:00Z"), &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(tr_ce_time_parse(S("2024-05-01T14:00:00.5+02:00"), &ms), 0);
    assert_int_equal(ms, 1714564800500ull);
    assert_int_equal(tr_ce_time_parse(S("2024-05-01t11:30:00.123456789-00:30"), &ms), 0);
    assert_int_equal(ms, 1714564800123ull);
    assert_int_equal(tr_ce_time_parse(S("2024-02-29T00:00:00Z"), &ms), 0); /* leap year */
    const char *bad[] = {"",
                         "2024-05-01",
                         "2024-05-01T12:00:00",
                         "2024-05-01T12:00:00.Z",
                         "2023-02-29T00:00:00Z",
                         "2024-13-01T00:00:00Z",
                         "2024-05-01T24:00:00Z",
                         "2024-05-01T12:00:00+0200",
                         "2024-05-01T12:00:00Zjunk",
                         "1969-12-31T23:59:59Z",
                         "2024-05-01X12:00:00Z",
                         "20x4-05-01T12:00:00Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tr_ce_time_parse(S(bad[i]), &ms) != -EINVAL) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }
}

static void utf8_validation(void **state)
{
    (void)state;
    assert_true(tr_ce_utf8_valid(S("plain ascii")));
    assert_true(tr_ce_utf8_valid(S("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80")));
    assert_false(tr_ce_utf8_valid(S("\xc0\xaf")));         /* overlong '/' */
    assert_false(tr_ce_utf8_valid(S("\xe0\x80\xaf")));     /* overlong */
    assert_false(tr_ce_utf8_valid(S("\xed\xa0\x80")));     /* surrogate */
    assert_false(tr_ce_utf8_valid(S("\xf4\x90\x80\x80"))); /* past U+10FFFF */
    assert_false(tr_ce_utf8_valid(S("\xe2\x82")));         /* truncated */
    assert_false(tr_ce_utf8_valid(S("\x80")));
}

static void content_type_classes(void **state)
{
    (void)state;
    assert_true(tr_ce_type_is_cloudevent(S("Application/CloudEvents+JSON ; charset=utf-8")));
    assert_false(tr_ce_type_is_cloudevent(S("application/cloudevents-batch+json")));
    assert_true(tr_ce_type_is_json(S("application/json")));
    assert_true(tr_ce_type_is_json(S("application/problem+json; x=y")));
    assert_false(tr_ce_type_is_json(S("application/jsonx")));
    assert_false(tr_ce_type_is_json(S("+json")));
    assert_false(tr_ce_type_is_json(S("")));
    assert_true(tr_ce_type_is_binary(S("application/octet-stream")));
    assert_false(tr_ce_type_is_binary(S("text/plain")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wraps_json_payload_as_written),
        cmocka_unit_test(content_types_pick_data_encoding),
        cmocka_unit_test(overrides_ttl_and_new_traces),
        cmocka_unit_test(names_from_urls_stay_valid_json),
        cmocka_unit_test(structured_events_are_completed),
        cmocka_unit_test(malformed_events_are_refused),
        cmocka_unit_test(delivery_passes_events_through),
        cmocka_unit_test(delivery_wraps_other_records),
        cmocka_unit_test(delivery_survives_garbage),
        cmocka_unit_test(uuids_and_traceparents),
        cmocka_unit_test(rfc3339_times),
        cmocka_unit_test(utf8_validation),
        cmocka_unit_test(content_type_classes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
