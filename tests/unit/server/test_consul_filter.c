/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "server/consul_filter.h"

static const char *const roots[] = {"ServiceName", "ServiceTags", "ServiceMeta", "ServicePort",
                                    "Checks",      "Service",     NULL};

static const char entry_json[] =
    "{\"ServiceName\":\"web\",\"ServiceTags\":[\"prod\",\"v2\"],\"ServiceMeta\":{\"env\":"
    "\"prod\",\"team\":\"a\"},\"ServicePort\":8080,\"Checks\":[{\"Status\":\"passing\"},"
    "{\"Status\":\"critical\"}],\"Service\":{\"Meta\":{},\"Tags\":[]}}";

static bool match(const char *expr)
{
    json_t *entry = json_loads(entry_json, 0, NULL);
    assert_non_null(entry);
    struct tr_consul_filter *f;
    char err[256];
    if (tr_consul_filter_parse(tr_slice_cstr(expr), roots, &f, err, sizeof(err)) != 0) {
        fail_msg("\"%s\" did not parse: %s", expr, err);
    }
    bool m = tr_consul_filter_match(f, entry);
    tr_consul_filter_free(f);
    json_decref(entry);
    return m;
}

static void operators(void **state)
{
    assert_true(match("ServiceName == \"web\""));
    assert_true(match("ServiceName==\"web\""));
    assert_true(match("ServiceName == web"));
    assert_false(match("ServiceName == \"db\""));
    assert_true(match("ServiceName != \"db\""));
    assert_true(match("\"prod\" in ServiceTags"));
    assert_false(match("\"dev\" in ServiceTags"));
    assert_true(match("\"dev\" not in ServiceTags"));
    assert_true(match("ServiceTags contains \"v2\""));
    assert_true(match("ServiceTags not contains \"v3\""));
    assert_true(match("ServiceMeta.env == \"prod\""));
    assert_true(match("servicemeta.env == `prod`"));
    assert_false(match("ServiceMeta.missing == \"x\""));
    assert_true(match("ServiceMeta.missing != \"x\""));
    assert_true(match("\"team\" in ServiceMeta"));
    assert_true(match("ServicePort == 8080"));
    assert_true(match("Service.Meta is empty"));
    assert_true(match("ServiceTags is not empty"));
    assert_true(match("Checks.Status == critical"));
    assert_false(match("Checks.Status == warning"));
    assert_true(match("ServiceName matches \"^w.b$\""));
    assert_true(match("ServiceName not matches \"^db\""));
}

static void boolean_logic(void **state)
{
    assert_true(match("ServiceName==\"a\" or ServiceName==\"web\""));
    assert_false(match("ServiceName==\"a\" or ServiceName==\"b\""));
    assert_true(match("ServiceName == \"web\" and \"prod\" in ServiceTags"));
    assert_false(match("not ServiceName == \"web\""));
    assert_true(match("not (ServiceName == \"a\" or ServiceName == \"b\")"));
    /* and binds tighter than or */
    assert_true(match("ServiceName == \"x\" and ServicePort == 1 or ServicePort == 8080"));
    assert_false(match("ServiceName == \"x\" and (ServicePort == 1 or ServicePort == 8080)"));
}

static void errors_name_the_problem(void **state)
{
    static const struct {
        const char *expr;
        const char *needle;
    } bad[] = {
        {"", "empty"},
        {"Bogus == \"x\"", "unknown field \"Bogus\""},
        {"ServiceName ==", "expected a value"},
        {"ServiceName ~ \"x\"", "expected ==, !=, in"},
        {"ServiceName = \"x\"", "unexpected character"},
        {"(ServiceName == \"x\"", "missing )"},
        {"ServiceName == \"x\" extra", "unexpected"},
        {"ServiceName == \"x", "unterminated"},
        {"ServiceName is full", "empty"},
        {"\"x\" == ServiceName", "selector"},
        {"ServiceName matches \"(\"", "regular expression"},
        {"ServiceName..x == 1", "invalid selector"},
        {"\"x\" in \"y\"", "selector"},
    };
    for (size_t i = 0; i < TR_ARRAY_LEN(bad); i++) {
        struct tr_consul_filter *f = (struct tr_consul_filter *)1;
        char err[256] = "";
        assert_int_equal(
            tr_consul_filter_parse(tr_slice_cstr(bad[i].expr), roots, &f, err, sizeof(err)),
            -EINVAL);
        assert_null(f);
        if (strstr(err, bad[i].needle) == NULL) {
            fail_msg("\"%s\": \"%s\" does not mention \"%s\"", bad[i].expr, err, bad[i].needle);
        }
    }
    /* Depth is bounded. */
    char deep[400];
    size_t n = 0;
    for (int i = 0; i < 40; i++) {
        deep[n++] = '(';
    }
    n += (size_t)snprintf(deep + n, sizeof(deep) - n, "ServicePort == 1");
    for (int i = 0; i < 40; i++) {
        deep[n++] = ')';
    }
    deep[n] = '\0';
    struct tr_consul_filter *f;
    char err[256];
    assert_int_equal(tr_consul_filter_parse(tr_slice_cstr(deep), roots, &f, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "deeper"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(operators),
        cmocka_unit_test(boolean_logic),
        cmocka_unit_test(errors_name_the_problem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
