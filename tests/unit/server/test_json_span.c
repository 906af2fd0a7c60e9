/* SPDX-License-Identifier: Apache-2.0 */
/* Raw JSON spans: values found byte-exact, and malformed, truncated or too deep input
 * refused without reading past the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/mem.h"
#include "server/json_span.h"

#define S(x) tr_slice_cstr(x)

static void assert_span(struct tr_slice got, const char *want)
{
    assert_int_equal(got.len, strlen(want));
    assert_memory_equal(got.ptr, want, got.len);
}

static void members_keep_their_text(void **state)
{
    (void)state;
    const char *doc = " {\"key\":\"a\", \"value\" : {\"x\": 0.1, \"s\":\"}\\\"]\"} ,\"n\":1e400 } ";
    struct tr_slice v;
    assert_true(tr_json_span_member(S(doc), "value", &v));
    assert_span(v, "{\"x\": 0.1, \"s\":\"}\\\"]\"}");
    assert_true(tr_json_span_member(S(doc), "n", &v));
    assert_span(v, "1e400");
    assert_true(tr_json_span_member(S(doc), "key", &v));
    assert_span(v, "\"a\"");
    assert_false(tr_json_span_member(S(doc), "missing", &v));
    assert_false(tr_json_span_member(S("[1]"), "value", &v));
    assert_false(tr_json_span_member(S("{}"), "value", &v));
}

static void array_items(void **state)
{
    (void)state;
    struct tr_slice items[4];
    assert_int_equal(tr_json_span_items(S("[ 1 , \"two\", [3,[4]], {\"a\":null} ]"), items, 4), 4);
    assert_span(items[0], "1");
    assert_span(items[1], "\"two\"");
    assert_span(items[2], "[3,[4]]");
    assert_span(items[3], "{\"a\":null}");
    assert_int_equal(tr_json_span_items(S("[]"), items, 4), 0);
    assert_int_equal(tr_json_span_items(S("[1,2,3,4,5,6]"), items, 2), 6);
    assert_int_equal(tr_json_span_items(S("{}"), items, 4), -1);
}

static void malformed_and_truncated(void **state)
{
    (void)state;
    struct tr_slice v;
    const char *bad[] = {"",       "   ",     "[1,",        "{\"a\":",     "{\"a\" 1}",
                         "\"open", "\"esc\\", "[1 2]",      "{\"a\":1,}x", "{1:2}",
                         "[1]]",   "}",       "\"a\" \"b\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(tr_json_span_value(S(bad[i]), &v), -1);
    }
    /* Truncating a valid document anywhere never yields a value. */
    const char *doc = "{\"a\":[1,{\"b\":\"c\\\"d\"}],\"e\":true}";
    for (size_t n = 0; n < strlen(doc); n++) {
        assert_int_equal(tr_json_span_value(tr_slice(doc, n), &v), -1);
    }
    assert_int_equal(tr_json_span_value(S(doc), &v), (ssize_t)strlen(doc));
}

static void depth_is_limited(void **state)
{
    (void)state;
    size_t n = TR_JSON_SPAN_MAX_DEPTH + 10;
    char *deep = tr_xmalloc(2 * n);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    struct tr_slice v;
    assert_int_equal(tr_json_span_value(tr_slice(deep, 2 * n), &v), -1);
    size_t ok = 100;
    assert_int_equal(tr_json_span_value(tr_slice(deep + n - ok, 2 * ok), &v), (ssize_t)(2 * ok));
    tr_free_null(&deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(members_keep_their_text),
        cmocka_unit_test(array_items),
        cmocka_unit_test(malformed_and_truncated),
        cmocka_unit_test(depth_is_limited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
