/* SPDX-License-Identifier: Apache-2.0 */
/* Subscriptions: the /dapr/subscribe parser (v1 route, v2 routes, metadata, bad items
 * left out with a reason), declarative Subscriptions, routing, delivery policies and
 * the Dapr topic -> broker name mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "core/buf.h"
#include "sidecar/pubsub.h"
#include "sidecar/subscription.h"

#define S(x) tr_slice_cstr(x)

static bool has(const struct tr_buf *b, const char *needle)
{
    const char *d = (const char *)tr_buf_data(b);
    return d != NULL && b->len > 0 && memmem(d, b->len, needle, strlen(needle)) != NULL;
}

static void parses_both_shapes(void **state)
{
    (void)state;
    const char *body = "[{\"pubsubname\":\"pubsub\",\"topic\":\"orders\",\"route\":\"orders\","
                       "\"metadata\":{\"rawPayload\":\"true\",\"maxRetries\":3}},"
                       "{\"pubsubname\":\"pubsub\",\"topic\":\"a/b\",\"deadLetterTopic\":\"dlq\","
                       "\"routes\":{\"rules\":[{\"match\":\"event.type == 'x'\",\"path\":\"/x\"},"
                       "{\"match\":\"event.type == 'y'\",\"path\":\"y\"}],\"default\":\"/d\"},"
                       "\"route\":\"/ignored-when-default-exists\"},"
                       "{\"pubsubname\":\"pubsub\",\"topic\":\"only-rules\","
                       "\"routes\":{\"rules\":[{\"match\":\"true\",\"path\":\"/r\"}]}}]";
    struct tr_ps_spec *specs;
    size_t n;
    struct tr_buf w;
    tr_buf_init(&w);
    assert_int_equal(tr_ps_subscribe_parse(S(body), &specs, &n, &w), 0);
    if (w.len != 0) {
        fail_msg("warnings: %.*s", (int)w.len, tr_buf_data(&w));
    }
    assert_int_equal(n, 3);

    assert_string_equal(specs[0].topic, "orders");
    assert_int_equal(specs[0].nrules, 1);
    assert_string_equal(specs[0].rules[0].path, "/orders"); /* a '/' is added */
    assert_null(specs[0].rules[0].match);
    assert_true(specs[0].raw_payload);
    assert_string_equal(json_string_value(json_object_get(specs[0].metadata, "maxRetries")), "3");
    assert_int_equal(specs[0].origin, TR_PS_PROGRAMMATIC);
    assert_null(specs[0].dead_letter_topic);

    assert_string_equal(specs[1].dead_letter_topic, "dlq");
    assert_int_equal(specs[1].nrules, 3); /* two rules, then routes.default */
    assert_string_equal(specs[1].rules[1].path, "/y");
    assert_string_equal(specs[1].rules[2].path, "/d");
    assert_true(tr_ps_spec_has_rules(&specs[1]));

    json_t *x = json_pack("{s:s}", "type", "x");
    json_t *y = json_pack("{s:s}", "type", "y");
    json_t *z = json_pack("{s:s}", "type", "z");
    assert_string_equal(tr_ps_spec_route(&specs[1], x), "/x");
    assert_string_equal(tr_ps_spec_route(&specs[1], y), "/y");
    assert_string_equal(tr_ps_spec_route(&specs[1], z), "/d");
    /* Rules but no default: an event no rule matches has no route (skipped). */
    assert_string_equal(tr_ps_spec_route(&specs[2], z), "/r");
    json_decref(x);
    json_decref(y);
    json_decref(z);
    tr_ps_specs_free(specs, n);
    tr_buf_dispose(&w);
}

static void bad_items_are_left_out_with_a_reason(void **state)
{
    (void)state;
    static const struct {
        const char *item;
        const char *why;
    } cases[] = {
        {"5", "not an object"},
        {"{\"topic\":\"t\",\"route\":\"/r\"}", "pubsubname and topic"},
        {"{\"pubsubname\":\"p\",\"topic\":\"\",\"route\":\"/r\"}", "pubsubname and topic"},
        {"{\"pubsubname\":\"p\",\"topic\":7,\"route\":\"/r\"}", "pubsubname and topic"},
        {"{\"pubsubname\":\"p\",\"topic\":\"t\"}", "no route"},
        {"{\"pubsubname\":\"p\",\"topic\":\"t\",\"route\":5}", "route must be a string"},
        {"{\"pubsubname\":\"p\",\"topic\":\"t\",\"route\":\"/a b\"}", "cannot be in a URL"},
        {"{\"pubsubname\":\"p\",\"topic\":\"t\",\"routes\":{\"rules\":[{\"match\":\"evnt.x\","
         "\"path\":\"/r\"}]}}",
         "not a supported CEL expression"},
        {"{\"pubsubname\":\"p\",\"topic\":\"t\",\"routes\":{\"rules\":[{\"path\":\"/r\"}]}}",
         "needs a match and a path"},
        {"{\"pubsubname\":\"p\",\"topic\":\"t\",\"routes\":[]}", "routes must be an object"},
        {"{\"pubsubname\":\"p\",\"topic\":\"t\",\"route\":\"/r\",\"metadata\":[]}",
         "metadata must be an object"},
        {"{\"pubsubname\":\"p\",\"topic\":\"t\",\"route\":\"/r\",\"metadata\":{\"a\":{}}}",
         "must be a string"},
        {"{\"pubsubname\":\"p\",\"topic\":\"t\",\"route\":\"/r\","
         "\"metadata\":{\"rawPayload\":\"yes\"}}",
         "rawPayload"},
        {"{\"pubsubname\":\"p\",\"topic\":\"t\",\"route\":\"/r\","
         "\"metadata\":{\"deliveryTimeout\":\"soon\"}}",
         "deliveryTimeout"},
        {"{\"pubsubname\":\"p\",\"topic\":\"t\",\"route\":\"/r\","
         "\"bulkSubscribe\":{\"enabled\":true}}",
         "bulkSubscribe is not supported"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[1024];
        snprintf(body, sizeof(body),
                 "[%s,{\"pubsubname\":\"p\",\"topic\":\"good\",\"route\":\"/g\"}]", cases[i].item);
        struct tr_ps_spec *specs;
        size_t n;
        struct tr_buf w;
        tr_buf_init(&w);
        assert_int_equal(tr_ps_subscribe_parse(S(body), &specs, &n, &w), 0);
        assert_int_equal(n, 1); /* the good one stays */
        assert_string_equal(specs[0].topic, "good");
        if (!has(&w, cases[i].why) || !has(&w, "item 0")) {
            fail_msg("case %zu: warnings \"%.*s\" lack \"%s\"", i, (int)w.len, tr_buf_data(&w),
                     cases[i].why);
        }
        tr_ps_specs_free(specs, n);
        tr_buf_dispose(&w);
    }
    /* Not a list at all. */
    struct tr_ps_spec *specs = NULL;
    size_t n = 0;
    struct tr_buf w;
    tr_buf_init(&w);
    assert_int_equal(tr_ps_subscribe_parse(S("{\"a\":1}"), &specs, &n, &w), -EINVAL);
    assert_true(has(&w, "JSON array"));
    tr_buf_reset(&w);
    assert_int_equal(tr_ps_subscribe_parse(S("not json"), &specs, &n, &w), -EINVAL);
    assert_int_equal(tr_ps_subscribe_parse(S("[]"), &specs, &n, &w), 0);
    assert_int_equal(n, 0);
    tr_ps_specs_free(specs, n);
    tr_buf_dispose(&w);
}

static void declarative_subscriptions(void **state)
{
    (void)state;
    struct tr_sidecar_route_rule rules[] = {{.match = "event.data.n > 1", .path = "big"}};
    struct tr_sidecar_meta_item meta[] = {{.name = "maxRetries", .value = "-1"}};
    struct tr_sidecar_subscription d = {
        .name = "s",
        .file = "subs.yaml",
        .pubsubname = "pubsub",
        .topic = "orders",
        .route = "/orders",
        .rules = rules,
        .nrules = 1,
        .dead_letter_topic = "dead",
        .meta = meta,
        .nmeta = 1,
    };
    struct tr_ps_spec spec;
    char why[300];
    assert_int_equal(tr_ps_spec_from_decl(&d, &spec, why, sizeof(why)), 0);
    assert_int_equal(spec.origin, TR_PS_DECLARATIVE);
    assert_int_equal(spec.nrules, 2);
    assert_string_equal(spec.rules[0].path, "/big");
    assert_string_equal(spec.rules[1].path, "/orders");
    assert_string_equal(spec.dead_letter_topic, "dead");
    assert_string_equal(spec.where, "subs.yaml");
    tr_ps_spec_dispose(&spec);

    rules[0].match = "event.(";
    assert_int_equal(tr_ps_spec_from_decl(&d, &spec, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "CEL"));
    rules[0].match = "true";
    d.bulk = true;
    assert_int_equal(tr_ps_spec_from_decl(&d, &spec, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "bulkSubscribe"));
    d.bulk = false;
    d.route = NULL;
    d.nrules = 0;
    assert_int_equal(tr_ps_spec_from_decl(&d, &spec, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "no route"));
}

static void policies(void **state)
{
    (void)state;
    struct tr_ps_policy p;
    char why[200];
    tr_ps_policy_init(&p);
    assert_int_equal(p.max_retries, TR_PS_DEFAULT_MAX_RETRIES);
    /* Exponential, capped. */
    assert_int_equal(tr_ps_policy_backoff(&p, 1), 500);
    assert_int_equal(tr_ps_policy_backoff(&p, 2), 1000);
    assert_int_equal(tr_ps_policy_backoff(&p, 3), 2000);
    assert_int_equal(tr_ps_policy_backoff(&p, 6), 10000);
    assert_int_equal(tr_ps_policy_backoff(&p, 4000000000u), 10000);

    assert_int_equal(tr_ps_policy_set(&p, "maxRetries", "-1", why, sizeof(why)), 1);
    assert_int_equal(p.max_retries, -1);
    assert_int_equal(tr_ps_policy_set(&p, "retryBackoff", "1.5s", why, sizeof(why)), 1);
    assert_int_equal(p.backoff_ms, 1500);
    assert_int_equal(tr_ps_policy_set(&p, "deliveryTimeout", "2m", why, sizeof(why)), 1);
    assert_int_equal(p.timeout_ms, 120000);
    assert_int_equal(tr_ps_policy_set(&p, "maxConcurrency", "1", why, sizeof(why)), 1);
    assert_int_equal(p.max_concurrency, 1);
    assert_int_equal(tr_ps_policy_set(&p, "somethingElse", "x", why, sizeof(why)), 0);

    static const char *const bad[][2] = {
        {"maxRetries", "-2"},     {"maxRetries", "3x"},       {"maxRetries", ""},
        {"maxConcurrency", "0"},  {"maxConcurrency", "1001"}, {"retryBackoff", "10"},
        {"deliveryTimeout", "0"}, {"retryMaxBackoff", "25h"}, {"deliveryTimeout", "-1s"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        assert_int_equal(tr_ps_policy_set(&p, bad[i][0], bad[i][1], why, sizeof(why)), -EINVAL);
        assert_non_null(strstr(why, bad[i][0]));
    }
}

static void broker_names(void **state)
{
    (void)state;
    char out[TR_PS_NAME_MAX + 1];
    static const char *const same[] = {"orders", "order.created", "order_created", "A-Z_x9", "x_1",
                                       "_",      "a_b_c"};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        assert_int_equal(tr_ps_broker_name(out, S(same[i])), 0);
        assert_string_equal(out, same[i]);
    }
    static const char *const mapped[][2] = {
        {"a/b", "a_2Fb"},
        {"a b", "a_20b"},
        {".", "_2E"},
        {"..", "_2E_2E"},
        {"a_2F", "a_5F2F"},
        {"x_FF", "x_5FFF"},
        {"x_ff", "x_ff"},
        {"\xc3\xa9t\xc3\xa9", "_C3_A9t_C3_A9"},
        {"a/../b", "a_2F.._2Fb"},
    };
    for (size_t i = 0; i < sizeof(mapped) / sizeof(mapped[0]); i++) {
        assert_int_equal(tr_ps_broker_name(out, S(mapped[i][0])), 0);
        assert_string_equal(out, mapped[i][1]);
    }
    /* One-to-one: "a/" and the literal "a_2F" differ. */
    char other[TR_PS_NAME_MAX + 1];
    assert_int_equal(tr_ps_broker_name(out, S("a/")), 0);
    assert_int_equal(tr_ps_broker_name(other, S("a_2F")), 0);
    assert_string_not_equal(out, other);
    assert_int_equal(tr_ps_broker_name(out, S("")), -EINVAL);
    char long_name[300];
    memset(long_name, 'a', 255);
    long_name[255] = '\0';
    assert_int_equal(tr_ps_broker_name(out, S(long_name)), 0);
    long_name[254] = '/'; /* 254 + 3 > 255 */
    assert_int_equal(tr_ps_broker_name(out, S(long_name)), -ENAMETOOLONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_both_shapes),
        cmocka_unit_test(bad_items_are_left_out_with_a_reason),
        cmocka_unit_test(declarative_subscriptions),
        cmocka_unit_test(policies),
        cmocka_unit_test(broker_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
