/* SPDX-License-Identifier: Apache-2.0 */
/* The public JSON API: parse errors name the position, builders take references,
 * getters type-check, pack/unpack report the field. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "trellis/trellis.h"

static void parse_and_dump(void **state)
{
    const char *text = "{\"b\":1,\"a\":[true,null,\"x\"],\"r\":1.5}";
    struct trellis_json *j = trellis_json_parse(text, strlen(text), NULL, 0);
    assert_non_null(j);
    assert_int_equal(trellis_json_typeof(j), TRELLIS_JSON_OBJECT);
    assert_int_equal(trellis_json_size(j), 3);
    char *out = trellis_json_dump(j);
    assert_string_equal(out, text); /* insertion order kept */
    trellis_free(out);
    struct trellis_json *a = trellis_json_get(j, "a");
    assert_int_equal(trellis_json_typeof(a), TRELLIS_JSON_ARRAY);
    assert_true(trellis_json_is_true(trellis_json_at(a, 0)));
    assert_int_equal(trellis_json_typeof(trellis_json_at(a, 1)), TRELLIS_JSON_NULL);
    assert_string_equal(trellis_json_string(trellis_json_at(a, 2)), "x");
    assert_null(trellis_json_at(a, 3));
    assert_true(trellis_json_number(trellis_json_get(j, "r")) == 1.5);
    trellis_json_free(j);

    /* Scalars parse too (state values may be strings). */
    j = trellis_json_parse("\"hi\"", 4, NULL, 0);
    assert_string_equal(trellis_json_string(j), "hi");
    trellis_json_free(j);
}

static void parse_errors_name_position(void **state)
{
    char err[128];
    assert_null(trellis_json_parse("{\"a\":\n  tru}", 12, err, sizeof(err)));
    assert_non_null(strstr(err, "line 2"));
    assert_string_equal(trellis_last_error(), err);
    assert_null(trellis_json_parse("", 0, err, sizeof(err)));
    assert_null(trellis_json_parse("{} {}", 5, err, sizeof(err))); /* trailing garbage */
    assert_null(trellis_json_parse(NULL, 0, NULL, 0));
    /* Nesting beyond the limit is refused, not a stack overflow. */
    size_t depth = 5000;
    char *deep = malloc(depth * 2);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    assert_null(trellis_json_parse(deep, depth * 2, err, sizeof(err)));
    free(deep);
}

static void getters_check_types(void **state)
{
    struct trellis_json *j = trellis_json_pack("{s:s, s:I, s:b, s:f}", "name", "x", "n",
                                               (int64_t)1 << 40, "ok", 1, "f", 2.5);
    assert_non_null(j);
    int64_t n = 0;
    bool b = false;
    assert_string_equal(trellis_json_get_str(j, "name"), "x");
    assert_null(trellis_json_get_str(j, "n"));
    assert_null(trellis_json_get_str(j, "missing"));
    assert_true(trellis_json_get_int(j, "n", &n));
    assert_int_equal(n, (int64_t)1 << 40);
    assert_false(trellis_json_get_int(j, "name", &n));
    assert_false(trellis_json_get_int(j, "f", &n)); /* a real is not an int */
    assert_true(trellis_json_get_bool(j, "ok", &b));
    assert_true(b);
    assert_false(trellis_json_get_bool(j, "n", &b));
    /* Getters on non-objects are NULL, not crashes. */
    assert_null(trellis_json_get(trellis_json_get(j, "name"), "x"));
    assert_null(trellis_json_get(NULL, "x"));
    trellis_json_free(j);
}

static void builders_take_references(void **state)
{
    struct trellis_json *o = trellis_json_object();
    assert_int_equal(trellis_json_set(o, "list", trellis_json_array()), 0);
    assert_int_equal(trellis_json_append(trellis_json_get(o, "list"), trellis_json_int(7)), 0);
    assert_int_equal(trellis_json_set_str(o, "s", "v"), 0);
    assert_int_equal(trellis_json_set_int(o, "i", -3), 0);
    assert_int_equal(trellis_json_set_bool(o, "t", true), 0);
    /* A non-UTF-8 string is refused; set then fails without leaking. */
    assert_null(trellis_json_str("\xff"));
    assert_int_equal(trellis_json_set_str(o, "bad", "\xff\xfe"), -EINVAL);
    /* Setting on a non-object consumes the value and fails. */
    assert_int_equal(trellis_json_set(trellis_json_get(o, "list"), "k", trellis_json_int(1)),
                     -EINVAL);
    assert_int_equal(trellis_json_append(o, trellis_json_int(1)), -EINVAL);
    char *out = trellis_json_dump(o);
    assert_string_equal(out, "{\"list\":[7],\"s\":\"v\",\"i\":-3,\"t\":true}");
    trellis_free(out);
    assert_int_equal(trellis_json_del(o, "s"), 0);
    assert_int_equal(trellis_json_del(o, "s"), TRELLIS_ENOTFOUND);
    assert_int_equal(trellis_json_remove(trellis_json_get(o, "list"), 0), 0);
    assert_int_equal(trellis_json_remove(trellis_json_get(o, "list"), 0), -EINVAL);

    struct trellis_json *copy = trellis_json_copy(o);
    assert_true(trellis_json_equal(o, copy));
    trellis_json_set_int(copy, "i", 4);
    assert_false(trellis_json_equal(o, copy));
    trellis_json_free(copy);

    struct trellis_json *ref = trellis_json_ref(o);
    trellis_json_free(o);
    assert_int_equal(trellis_json_size(ref), 3);
    trellis_json_free(ref);
    trellis_json_free(NULL);
}

static void iteration_in_order(void **state)
{
    struct trellis_json *o = trellis_json_pack("{s:i, s:i, s:i}", "z", 1, "a", 2, "m", 3);
    const char *keys[3];
    int64_t sum = 0;
    size_t n = 0;
    for (void *it = trellis_json_iter(o); it != NULL; it = trellis_json_iter_next(o, it)) {
        keys[n++] = trellis_json_iter_key(it);
        sum += trellis_json_int_value(trellis_json_iter_value(it));
    }
    assert_int_equal(n, 3);
    assert_string_equal(keys[0], "z");
    assert_string_equal(keys[2], "m");
    assert_int_equal(sum, 6);
    trellis_json_free(o);
}

static void unpack_names_the_field(void **state)
{
    struct trellis_json *j = trellis_json_pack("{s:s, s:i}", "sku", "p1", "qty", 2);
    const char *sku = NULL;
    int qty = 0;
    char err[200];
    assert_int_equal(
        trellis_json_unpack(j, err, sizeof(err), "{s:s, s:i}", "sku", &sku, "qty", &qty), 0);
    assert_string_equal(sku, "p1");
    assert_int_equal(qty, 2);
    int missing = 0;
    assert_int_equal(trellis_json_unpack(j, err, sizeof(err), "{s:i}", "count", &missing),
                     TRELLIS_EBADJSON);
    assert_non_null(strstr(err, "count"));
    assert_int_equal(trellis_json_unpack(j, err, sizeof(err), "{s:i}", "sku", &missing),
                     TRELLIS_EBADJSON);
    assert_non_null(strstr(err, "integer")); /* jansson: "Expected integer, got string" */
    assert_int_equal(trellis_json_unpack(NULL, err, sizeof(err), "{s:i}", "sku", &missing),
                     TRELLIS_EBADJSON);
    trellis_json_free(j);
    /* A bad pack format fails cleanly. */
    assert_null(trellis_json_pack("{s:s}", "k", NULL));
    assert_true(strlen(trellis_last_error()) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_and_dump),      cmocka_unit_test(parse_errors_name_position),
        cmocka_unit_test(getters_check_types), cmocka_unit_test(builders_take_references),
        cmocka_unit_test(iteration_in_order),  cmocka_unit_test(unpack_names_the_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
