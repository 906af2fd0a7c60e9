/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/buf.h"
#include "core/arena.h"

static void append_consume_reserve(void **state)
{
    struct tr_buf b;
    tr_buf_init(&b);
    tr_buf_append(&b, "hello ", 6);
    tr_buf_appendf(&b, "%s %d", "world", 42);
    assert_int_equal(b.len, 14);
    assert_memory_equal(tr_buf_data(&b), "hello world 42", 14);
    tr_buf_consume(&b, 6);
    assert_memory_equal(tr_buf_data(&b), "world 42", 8);
    char big[5000];
    memset(big, 'x', sizeof(big));
    tr_buf_append(&b, big, sizeof(big));
    assert_int_equal(b.len, 8 + sizeof(big));
    assert_memory_equal(tr_buf_data(&b), "world 42x", 9);
    tr_buf_consume(&b, b.len);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.off, 0);
    tr_buf_append_u64(&b, 18446744073709551615ull);
    assert_memory_equal(tr_buf_data(&b), "18446744073709551615", 20);
    tr_buf_dispose(&b);
}

static void appendf_long(void **state)
{
    struct tr_buf b;
    tr_buf_init(&b);
    char s[3000];
    memset(s, 'a', sizeof(s) - 1);
    s[sizeof(s) - 1] = '\0';
    tr_buf_appendf(&b, "<%s>", s);
    assert_int_equal(b.len, sizeof(s) + 1);
    assert_int_equal(tr_buf_data(&b)[0], '<');
    assert_int_equal(tr_buf_data(&b)[b.len - 1], '>');
    tr_buf_dispose(&b);
}

static void arena_alloc_reset(void **state)
{
    struct tr_arena a;
    tr_arena_init(&a, 256);
    char *p = tr_arena_strndup(&a, "abc", 3);
    assert_string_equal(p, "abc");
    void *big = tr_arena_alloc(&a, 10000);
    memset(big, 1, 10000);
    for (int i = 0; i < 100; i++) {
        memset(tr_arena_alloc(&a, 100), 2, 100);
    }
    tr_arena_reset(&a);
    assert_non_null(a.chunks);
    tr_arena_dispose(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(append_consume_reserve),
        cmocka_unit_test(appendf_long),
        cmocka_unit_test(arena_alloc_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
