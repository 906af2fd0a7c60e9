/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/buf.h"
#include "core/arena.h"
#include "core/slice.h"

#include <ctype.h>

/* The inline ASCII comparison against tolower() over every pair of bytes, and NULs
 * compared like any byte (strncasecmp stops at the first one). */
static void ascii_caseeq(void **state)
{
    static const char *fill[2] = {"kEeP-aLiVe-Tr_1~", "KeEp-AlIvE-tR_1~"};
    for (int x = 0; x < 256; x++) {
        for (int y = 0; y < 256; y++) {
            bool want = x == y || (x < 128 && y < 128 && isalpha(x) && tolower(x) == tolower(y));
            /* Every length up to 16 (the byte-wise, the 8-byte and the overlapping
             * tail paths), the differing pair at the first, last and a middle spot. */
            for (size_t n = 1; n <= 16; n++) {
                size_t spots[3] = {0, n / 2, n - 1};
                for (int k = 0; k < 3; k++) {
                    char a[16];
                    char b[16];
                    memcpy(a, fill[0], n);
                    memcpy(b, fill[1], n);
                    a[spots[k]] = (char)x;
                    b[spots[k]] = (char)y;
                    assert_int_equal(tr_ascii_caseeq(a, b, n), want);
                }
            }
        }
    }
    assert_false(tr_ascii_caseeq("Keep-Alive", "Keep_Alive", 10));
    assert_false(tr_ascii_caseeq("@", "`", 1)); /* 0x40 vs 0x60: not letters */
    assert_false(tr_ascii_caseeq("[", "{", 1));
    assert_true(tr_slice_caseeq(TR_SLICE_LIT("Content-Length"), TR_SLICE_LIT("content-length")));
    assert_false(tr_slice_caseeq(TR_SLICE_LIT("Content-Length"), TR_SLICE_LIT("Content-Lengt")));
    assert_false(tr_slice_caseeq(tr_slice("a\0b", 3), tr_slice("a\0c", 3)));
    assert_true(tr_slice_caseeq(TR_SLICE_NULL, tr_slice("", 0)));
}

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
        cmocka_unit_test(ascii_caseeq),
        cmocka_unit_test(append_consume_reserve),
        cmocka_unit_test(appendf_long),
        cmocka_unit_test(arena_alloc_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
