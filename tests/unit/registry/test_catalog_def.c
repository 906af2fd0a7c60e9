/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "registry/catalog.h"

#define S(x) tr_slice_cstr(x)

static int parse_svc(const char *text, json_t **svc, json_t **checks, char *err, size_t n)
{
    json_t *in = json_loads(text, 0, NULL);
    assert_non_null(in);
    int rc = tr_cat_parse_service(in, svc, checks, err, n);
    json_decref(in);
    return rc;
}

static void service_fields_in_any_case(void **state)
{
    json_t *a;
    json_t *ca;
    json_t *b;
    json_t *cb;
    char err[256];
    assert_int_equal(parse_svc("{\"ID\":\"w1\",\"Name\":\"web\",\"Tags\":[\"x\"],\"Port\":80,"
                               "\"EnableTagOverride\":true,\"Meta\":{\"k\":\"v\"},"
                               "\"TaggedAddresses\":{\"lan\":{\"Address\":\"1.2.3.4\","
                               "\"Port\":80}},\"Check\":{\"TTL\":\"5s\"}}",
                               &a, &ca, err, sizeof(err)),
                     0);
    assert_int_equal(parse_svc("{\"id\":\"w1\",\"name\":\"web\",\"tags\":[\"x\"],\"port\":80,"
                               "\"enable_tag_override\":true,\"meta\":{\"k\":\"v\"},"
                               "\"tagged_addresses\":{\"lan\":{\"address\":\"1.2.3.4\","
                               "\"port\":80}},\"check\":{\"ttl\":\"5000ms\"}}",
                               &b, &cb, err, sizeof(err)),
                     0);
    assert_true(json_equal(a, b));
    assert_true(json_equal(ca, cb));
    json_t *w = json_object_get(a, "Weights");
    assert_int_equal(json_integer_value(json_object_get(w, "Passing")), 1);
    json_t *chk = json_array_get(ca, 0);
    assert_string_equal(json_string_value(json_object_get(chk, "CheckID")), "service:w1");
    assert_string_equal(json_string_value(json_object_get(chk, "Name")), "Service 'web' check");
    assert_string_equal(json_string_value(json_object_get(chk, "TTL")), "5s");
    json_decref(a);
    json_decref(b);
    json_decref(ca);
    json_decref(cb);
}

static void inline_check_ids_count_all_checks(void **state)
{
    json_t *svc;
    json_t *checks;
    char err[256];
    assert_int_equal(parse_svc("{\"Name\":\"db\",\"Check\":{\"TTL\":\"1s\"},\"Checks\":[{\"TCP\":"
                               "\"h:1\",\"Interval\":\"10s\"},{\"CheckID\":\"own\",\"HTTP\":"
                               "\"http://h/\",\"Interval\":\"1s\",\"Timeout\":\"500ms\"}]}",
                               &svc, &checks, err, sizeof(err)),
                     0);
    assert_int_equal(json_array_size(checks), 3);
    const char *ids[] = {"service:db:1", "service:db:2", "own"};
    for (size_t i = 0; i < 3; i++) {
        json_t *c = json_array_get(checks, i);
        assert_string_equal(json_string_value(json_object_get(c, "CheckID")), ids[i]);
        assert_string_equal(json_string_value(json_object_get(c, "ServiceID")), "db");
    }
    json_t *h = json_array_get(checks, 2);
    assert_string_equal(json_string_value(json_object_get(h, "Type")), "http");
    assert_string_equal(json_string_value(json_object_get(h, "Method")), "GET");
    assert_string_equal(json_string_value(json_object_get(h, "Timeout")), "500ms");
    json_decref(svc);
    json_decref(checks);
}

static void bad_input_names_the_field(void **state)
{
    static const struct {
        const char *json;
        const char *needle;
    } cases[] = {
        {"{}", "Name"},
        {"{\"Name\":7}", "Name"},
        {"{\"Name\":\"a\",\"Port\":\"80\"}", "Port"},
        {"{\"Name\":\"a\",\"Port\":-1}", "Port"},
        {"{\"Name\":\"a\",\"Tags\":[1]}", "Tags[0]"},
        {"{\"Name\":\"a\",\"Meta\":{\"bad key\":\"v\"}}", "Meta key"},
        {"{\"Name\":\"a\",\"Meta\":{\"consul-x\":\"v\"}}", "reserved"},
        {"{\"Name\":\"a\",\"Weights\":{\"Passing\":0}}", "Weights.Passing"},
        {"{\"Name\":\"a\",\"Check\":{\"TTL\":\"10 seconds\"}}", "Check.TTL"},
        {"{\"Name\":\"a\",\"Check\":{\"Interval\":\"10s\"}}", "unknown check type"},
        {"{\"Name\":\"a\",\"Check\":{\"HTTP\":\"http://h/\",\"TCP\":\"h:1\",\"Interval\":\"1s\"}}",
         "both HTTP and TCP"},
        {"{\"Name\":\"a\",\"Check\":{\"GRPC\":\"h:1\",\"Interval\":\"1s\"}}", "GRPC checks are "
                                                                              "not supported"},
        {"{\"Name\":\"a\",\"Check\":{\"ScriptArgs\":[\"x\"]}}", "ScriptArgs"},
        {"{\"Name\":\"a\",\"Check\":{\"DockerContainerID\":\"x\"}}", "DockerContainerID"},
        {"{\"Name\":\"a\",\"Check\":{\"TTL\":\"1s\",\"Interval\":\"1s\"}}", "cannot both"},
        {"{\"Name\":\"a\",\"Checks\":[{\"TTL\":\"1s\"},{\"TTL\":\"0s\"}]}", "Checks[1].TTL"},
        {"{\"Name\":\"a\",\"Checks\":[{\"CheckID\":\"x\",\"TTL\":\"1s\"},{\"CheckID\":\"x\","
         "\"TTL\":\"1s\"}]}",
         "duplicate CheckID"},
        {"{\"Name\":\"a\",\"Check\":{\"HTTP\":\"http://h/\",\"Interval\":\"1s\",\"Header\":"
         "{\"X\":\"v\"}}}",
         "Header"},
        {"{\"Name\":\"a\",\"Check\":{\"HTTP\":\"http://h/\",\"Interval\":\"1s\",\"Method\":"
         "\"G T\"}}",
         "Method"},
        {"{\"Name\":\"a\",\"Kind\":\"mesh-gateway\"}", "Kind"},
        {"{\"Name\":\"a\",\"Connect\":{\"SidecarService\":{}}}", "SidecarService"},
        {"{\"Name\":\"a\\u0000b\"}", "Name"},
    };
    for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
        json_t *svc = (json_t *)1;
        json_t *checks = (json_t *)1;
        char err[256] = "";
        json_t *in = json_loads(cases[i].json, JSON_ALLOW_NUL, NULL);
        assert_non_null(in);
        assert_int_equal(tr_cat_parse_service(in, &svc, &checks, err, sizeof(err)), -EINVAL);
        if (strstr(err, cases[i].needle) == NULL) {
            fail_msg("case %zu: \"%s\" does not mention \"%s\"", i, err, cases[i].needle);
        }
        assert_null(svc);
        assert_null(checks);
        json_decref(in);
    }
}

static void standalone_check_and_stored_types(void **state)
{
    struct tr_cat_check_ctx ctx = {0};
    json_t *def;
    char err[256];
    json_t *in = json_loads("{\"Name\":\"mem\",\"TTL\":\"30s\",\"Status\":\"passing\","
                            "\"DeregisterCriticalServiceAfter\":90000000000}",
                            0, NULL);
    assert_int_equal(tr_cat_parse_check(in, &ctx, &def, err, sizeof(err)), 0);
    assert_string_equal(json_string_value(json_object_get(def, "CheckID")), "mem");
    assert_string_equal(json_string_value(json_object_get(def, "ServiceID")), "");
    assert_string_equal(json_string_value(json_object_get(def, "Status")), "passing");
    assert_string_equal(json_string_value(json_object_get(def, "DeregisterCriticalServiceAfter")),
                        "1m30s");
    /* The canonical form parses back to itself. */
    json_t *again;
    ctx.stored = true;
    assert_int_equal(tr_cat_parse_check(def, &ctx, &again, err, sizeof(err)), 0);
    assert_true(json_equal(def, again));
    json_decref(again);
    json_decref(def);
    json_decref(in);
    /* Maintenance checks exist only as stored definitions. */
    in = json_loads("{\"Name\":\"m\",\"Type\":\"maintenance\",\"ServiceID\":\"s\"}", 0, NULL);
    ctx.stored = false;
    assert_int_equal(tr_cat_parse_check(in, &ctx, &def, err, sizeof(err)), -EINVAL);
    ctx.stored = true;
    assert_int_equal(tr_cat_parse_check(in, &ctx, &def, err, sizeof(err)), 0);
    json_decref(def);
    json_decref(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(service_fields_in_any_case),
        cmocka_unit_test(inline_check_ids_count_all_checks),
        cmocka_unit_test(bad_input_names_the_field),
        cmocka_unit_test(standalone_check_and_stored_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
