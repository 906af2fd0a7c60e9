/* SPDX-License-Identifier: Apache-2.0 */
/* W3C traceparent parsing and formatting (src/sdk/trace.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "sdk/trace.h"

static int parse(const char *s, struct tr_trace *t)
{
    return tr_trace_parse(tr_slice_cstr(s), t);
}

static void valid_headers(void **state)
{
    struct tr_trace t;
    assert_int_equal(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &t), 0);
    assert_string_equal(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(t.span_id, "00f067aa0ba902b7");
    assert_int_equal(t.flags, 1);
    char out[TR_TRACEPARENT_LEN + 1];
    tr_trace_format(&t, out);
    assert_string_equal(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    /* Surrounding whitespace (OWS) is fine. */
    assert_int_equal(parse(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 ", &t), 0);
    assert_int_equal(t.flags, 0);
    /* A future version may carry more fields after a '-'. */
    assert_int_equal(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-extra", &t), 0);
    assert_int_equal(t.flags, 9);
}

static void invalid_headers(void **state)
{
    struct tr_trace t;
    const char *bad[] = {
        "",
        "00",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",    /* short */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* v00 too long */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version ff */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero span id */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* upper case */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",   /* flags */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  /* v01 no '-' */
        "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(bad[i], &t), -EINVAL);
    }
    assert_int_equal(tr_trace_parse(TR_SLICE_NULL, &t), -EINVAL);
}

static void new_and_child(void **state)
{
    struct tr_trace a;
    struct tr_trace b;
    struct tr_trace c;
    tr_trace_new(&a);
    tr_trace_new(&b);
    assert_string_not_equal(a.trace_id, b.trace_id);
    assert_int_equal(strlen(a.trace_id), 32);
    assert_int_equal(strlen(a.span_id), 16);
    assert_int_equal(a.flags, 1);
    tr_trace_child(&a, &c);
    assert_string_equal(c.trace_id, a.trace_id);
    assert_string_not_equal(c.span_id, a.span_id);
    /* What we format parses back. */
    char out[TR_TRACEPARENT_LEN + 1];
    tr_trace_format(&c, out);
    struct tr_trace d;
    assert_int_equal(parse(out, &d), 0);
    assert_string_equal(d.trace_id, c.trace_id);
    assert_string_equal(d.span_id, c.span_id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_headers),
        cmocka_unit_test(invalid_headers),
        cmocka_unit_test(new_and_child),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
