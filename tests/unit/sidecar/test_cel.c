/* SPDX-License-Identifier: Apache-2.0 */
/* Routing-rule expressions: what matches, CEL's error semantics, and clear compile
 * errors for what is not supported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "core/mem.h"
#include "sidecar/cel.h"

static json_t *event;

static int setup(void **state)
{
    (void)state;
    const char *text = "{\"type\":\"order.created\",\"source\":\"shop\",\"specversion\":\"1.0\","
                       "\"data\":{\"id\":7,\"total\":12.5,\"tags\":[\"eu\",\"vip\"],"
                       "\"customer\":{\"name\":\"Ana\"},\"note\":null,\"paid\":true}}";
    event = json_loads(text, JSON_DECODE_INT_AS_REAL, NULL);
    return event == NULL;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(event);
    return 0;
}

static bool match(const char *src)
{
    struct tr_cel *e = NULL;
    char why[200];
    if (tr_cel_compile(src, &e, why, sizeof(why)) != 0) {
        fail_msg("\"%s\" did not compile: %s", src, why);
    }
    bool m = tr_cel_match(e, event);
    tr_cel_free(e);
    return m;
}

static void matches(void **state)
{
    (void)state;
    const char *yes[] = {
        "event.type == \"order.created\"",
        "event.type == 'order.created'",
        "event.data.id == 7",
        "event.data.id == 7.0",
        "event.data.total > 10 && event.data.total <= 12.5",
        "event.data.total >= -1",
        "event.data.tags[1] == 'vip'",
        "event['data']['customer'].name == 'Ana'",
        "'eu' in event.data.tags",
        "'customer' in event.data",
        "event.type.startsWith('order.')",
        "event.type.endsWith('created')",
        "event.source.contains('ho')",
        "size(event.data.tags) == 2",
        "event.data.tags.size() == 2",
        "size('héllo') == 5",
        "has(event.data.note)",
        "!has(event.data.missing)",
        "event.data.note == null",
        "event.data.paid",
        "event.data.paid == true && !(event.type == 'x')",
        "event.type in ['a', 'order.created']",
        "event.type != 'x'",
        "event.missing == 1 || event.type == 'order.created'", /* error absorbed */
        "event.type < 'p' && 'b' > 'a'",
        "  ( event.data.id == 7 )  ",
        "event.data.id == 7u",
    };
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (!match(yes[i])) {
            fail_msg("\"%s\" should match", yes[i]);
        }
    }
    const char *no[] = {
        "event.type == 'order.deleted'",
        "event.missing == 1",                      /* error: missing field */
        "event.missing == 1 && event.type == 'x'", /* false wins over error */
        "event.type == 1",                         /* error: types differ */
        "event.type",                              /* not a boolean */
        "event.data.tags[5] == 'x'",               /* out of range */
        "event.data.total < 'x'",                  /* no order */
        "!event.type",                             /* ! of a string */
        "'x' in event.type",                       /* in a string: error */
        "has(event.type.sub)",                     /* has on a non-map */
        "event.data.note == 0",                    /* null vs number: unequal */
        "event.type.startsWith(1)",
    };
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        if (match(no[i])) {
            fail_msg("\"%s\" should not match", no[i]);
        }
    }
}

static void compile_errors(void **state)
{
    (void)state;
    static const struct {
        const char *src;
        const char *why;
    } bad[] = {
        {"", "end of expression"},
        {"evnt.type == 'x'", "unknown identifier \"evnt\""},
        {"event.type == ", "end of expression"},
        {"event.type == 'x", "unterminated string"},
        {"event.type.matches('x')", "unsupported function matches()"},
        {"event.type == 'x' extra", "unexpected"},
        {"(event.type == 'x'", "expected )"},
        {"event.", "field name"},
        {"event[1", "expected ]"},
        {"has(event)", "field selection"},
        {"event.type.startsWith('a', 'b')", "takes 1 argument"},
        {"1 + 2 == 3", "unexpected"},
        {"'\\q'", "unsupported escape"},
        {"1e999 == 1", "malformed number"},
        {"[1, 2", "expected , or ]"},
        {"#", "unexpected character"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct tr_cel *e = NULL;
        char why[200] = "";
        assert_int_equal(tr_cel_compile(bad[i].src, &e, why, sizeof(why)), -EINVAL);
        assert_null(e);
        if (strstr(why, bad[i].why) == NULL || strncmp(why, "at ", 3) != 0) {
            fail_msg("\"%s\": \"%s\" lacks \"%s\"", bad[i].src, why, bad[i].why);
        }
    }
}

static void limits(void **state)
{
    (void)state;
    char why[200];
    struct tr_cel *e = NULL;
    /* Deep nesting is refused, not a stack overflow. */
    size_t n = 10000;
    char *deep = tr_xcalloc(1, n + 16);
    memset(deep, '(', n);
    assert_int_equal(tr_cel_compile(deep, &e, why, sizeof(why)), -EINVAL);
    memset(deep, '!', n);
    assert_int_equal(tr_cel_compile(deep, &e, why, sizeof(why)), -EINVAL);
    memset(deep, 'a', TR_CEL_MAX_LEN + 1);
    assert_int_equal(tr_cel_compile(deep, &e, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "longer than"));
    tr_free_null(&deep);
    /* A long flat chain is fine. */
    char chain[4000] = "true";
    size_t len = 4;
    while (len + 9 < sizeof(chain)) {
        memcpy(chain + len, " && true", 9);
        len += 8;
    }
    assert_true(match(chain));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matches),
        cmocka_unit_test(compile_errors),
        cmocka_unit_test(limits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
