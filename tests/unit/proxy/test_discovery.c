/* SPDX-License-Identifier: Apache-2.0 */
/* Parsing /v1/health/service answers into endpoint sets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/discovery.h"
#include "proxy/endpoints.h"

static struct tr_proxy_eps *parse(const char *json)
{
    return tr_proxy_discovery_parse(json, strlen(json), 2);
}

static void health_answer(void **state)
{
    struct tr_proxy_eps *s = parse(
        "[{\"Node\":{\"Node\":\"n1\",\"Address\":\"10.0.0.1\"},"
        "  \"Service\":{\"ID\":\"a\",\"Service\":\"web\",\"Address\":\"10.1.1.1\",\"Port\":8080,"
        "              \"Weights\":{\"Passing\":3,\"Warning\":1}},\"Checks\":[]},"
        " {\"Node\":{\"Address\":\"10.0.0.2\"},\"Service\":{\"Address\":\"\",\"Port\":9090}},"
        " {\"Node\":{\"Address\":\"10.0.0.3\"},\"Service\":{\"Address\":\"::1\",\"Port\":7}},"
        " {\"Node\":{\"Address\":\"10.0.0.4\"},\"Service\":{\"Address\":\"db.local\",\"Port\":1}},"
        " {\"Node\":{\"Address\":\"10.0.0.5\"},\"Service\":{\"Port\":0}},"
        " {\"Service\":{\"Address\":\"10.0.0.6\"}}]");
    assert_non_null(s);
    assert_int_equal(s->n, 3);
    assert_string_equal(s->eps[0].name, "10.1.1.1:8080");
    assert_int_equal(s->eps[0].weight, 3);
    assert_string_equal(s->eps[1].name, "10.0.0.2:9090"); /* Node.Address fallback */
    assert_int_equal(s->eps[1].weight, 1);
    assert_string_equal(s->eps[2].name, "[::1]:7");
    assert_int_equal(s->nworkers, 2);
    tr_proxy_eps_unref(s);
}

static void empty_and_bad(void **state)
{
    struct tr_proxy_eps *s = parse("[]");
    assert_non_null(s);
    assert_int_equal(s->n, 0);
    tr_proxy_eps_unref(s);
    assert_null(parse("{\"a\":1}"));
    assert_null(parse("[1,"));
    assert_null(parse(""));
    s = parse("[1, \"x\", null, {}]");
    assert_non_null(s);
    assert_int_equal(s->n, 0);
    tr_proxy_eps_unref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(health_answer),
        cmocka_unit_test(empty_and_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
