/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "registry/kv.h"

#define S(x) tr_slice_cstr(x)

static void put_get_cas(void **state)
{
    struct tr_kv kv;
    tr_kv_init(&kv);
    assert_true(tr_kv_put(&kv, S("b"), S("1"), 0, NULL, 10));
    assert_true(tr_kv_put(&kv, S("a"), S("22"), 7, NULL, 11));
    const struct tr_kv_entry *e = tr_kv_get(&kv, S("a"));
    assert_non_null(e);
    assert_int_equal(e->value_len, 2);
    assert_int_equal(e->flags, 7);
    assert_int_equal(e->create_index, 11);
    uint64_t zero = 0;
    assert_false(tr_kv_put(&kv, S("a"), S("x"), 0, &zero, 12)); /* exists */
    uint64_t stale = 10;
    assert_false(tr_kv_put(&kv, S("a"), S("x"), 0, &stale, 12));
    uint64_t cur = 11;
    assert_true(tr_kv_put(&kv, S("a"), S("x"), 0, &cur, 12));
    e = tr_kv_get(&kv, S("a"));
    assert_int_equal(e->create_index, 11);
    assert_int_equal(e->modify_index, 12);
    assert_true(tr_kv_put(&kv, S("c"), S(""), 0, &zero, 13)); /* absent: created */
    assert_int_equal(kv.live, 3);
    const struct tr_kv_entry *first = tr_kv_first_under(&kv, S(""));
    assert_string_equal(first->key, "a");
    assert_string_equal(tr_kv_next_under(tr_kv_next_under(first, S("")), S(""))->key, "c");
    tr_kv_dispose(&kv);
}

static void delete_leaves_tombstones_and_index_never_goes_back(void **state)
{
    struct tr_kv kv;
    tr_kv_init(&kv);
    tr_kv_put(&kv, S("app/a"), S("1"), 0, NULL, 5);
    tr_kv_put(&kv, S("app/b"), S("2"), 0, NULL, 6);
    tr_kv_put(&kv, S("other"), S("3"), 0, NULL, 7);
    assert_int_equal(tr_kv_index(&kv, S("app/"), true), 6);
    size_t changed = 0;
    assert_true(tr_kv_delete(&kv, S("app/b"), false, NULL, 8, &changed));
    assert_int_equal(changed, 1);
    assert_null(tr_kv_get(&kv, S("app/b")));
    assert_non_null(tr_kv_get_any(&kv, S("app/b")));
    /* The prefix's index moved forward to the delete, not back to app/a's 5. */
    assert_int_equal(tr_kv_index(&kv, S("app/"), true), 8);
    assert_int_equal(tr_kv_index(&kv, S("app/b"), false), 8);
    uint64_t wrong = 1;
    assert_false(tr_kv_delete(&kv, S("app/a"), false, &wrong, 9, &changed));
    assert_true(tr_kv_delete(&kv, S("app"), true, NULL, 9, &changed));
    assert_int_equal(changed, 1);
    assert_int_equal(kv.live, 1);
    /* Re-creating a deleted key starts a new CreateIndex. */
    assert_true(tr_kv_put(&kv, S("app/a"), S("n"), 0, NULL, 10));
    assert_int_equal(tr_kv_get(&kv, S("app/a"))->create_index, 10);
    assert_int_equal(tr_kv_reap(&kv, 10), 1); /* app/b's tombstone at 9 */
    assert_null(tr_kv_get_any(&kv, S("app/b")));
    tr_kv_dispose(&kv);
}

static size_t count_under(const struct tr_kv *kv, const char *prefix)
{
    size_t n = 0;
    for (const struct tr_kv_entry *e = tr_kv_first_under(kv, S(prefix)); e != NULL;
         e = tr_kv_next_under(e, S(prefix))) {
        n++;
    }
    return n;
}

static void many_keys_in_any_order_stay_sorted(void **state)
{
    struct tr_kv kv;
    tr_kv_init(&kv);
    char key[32];
    /* Insert 20,000 keys in a scrambled order, then walk them: sorted, all there. */
    for (uint64_t i = 0; i < 20000; i++) {
        uint64_t k = (i * 7919) % 20000;
        snprintf(key, sizeof(key), "k/%06llu", (unsigned long long)k);
        assert_true(tr_kv_put(&kv, S(key), S("v"), 0, NULL, i + 1));
    }
    assert_int_equal(kv.live, 20000);
    size_t n = 0;
    const struct tr_kv_entry *prev = NULL;
    for (const struct tr_kv_entry *e = tr_kv_first_under(&kv, S("k/")); e != NULL;
         e = tr_kv_next_under(e, S("k/"))) {
        if (prev != NULL) {
            assert_true(strcmp(prev->key, e->key) < 0);
        }
        prev = e;
        n++;
    }
    assert_int_equal(n, 20000);
    size_t changed;
    for (uint64_t i = 0; i < 20000; i += 2) {
        snprintf(key, sizeof(key), "k/%06llu", (unsigned long long)i);
        assert_true(tr_kv_delete(&kv, S(key), false, NULL, 30000, &changed));
    }
    assert_int_equal(tr_kv_reap(&kv, 30001), 10000);
    assert_int_equal(count_under(&kv, "k/"), 10000);
    assert_non_null(tr_kv_get(&kv, S("k/000001")));
    assert_null(tr_kv_get_any(&kv, S("k/000002")));
    tr_kv_restore(&kv, S("k/000002"), S("back"), 3, 5, 6, 0, false);
    assert_int_equal(tr_kv_get(&kv, S("k/000002"))->flags, 3);
    assert_int_equal(kv.live, 10001);
    tr_kv_dispose(&kv);
}

static void prefix_range(void **state)
{
    struct tr_kv kv;
    tr_kv_init(&kv);
    const char *keys[] = {"a", "a/", "a/b", "a/c/d", "ab", "b"};
    for (size_t i = 0; i < 6; i++) {
        tr_kv_put(&kv, S(keys[i]), S("v"), 0, NULL, i + 1);
    }
    assert_int_equal(count_under(&kv, "a/"), 3);
    assert_string_equal(tr_kv_first_under(&kv, S("a/"))->key, "a/");
    assert_int_equal(count_under(&kv, "a"), 5);
    assert_int_equal(count_under(&kv, ""), 6);
    assert_int_equal(count_under(&kv, "zz"), 0);
    assert_int_equal(count_under(&kv, "b/"), 0);
    tr_kv_dispose(&kv);
}

static void key_validation(void **state)
{
    assert_null(tr_kv_key_problem(S("a/b/c.d")));
    assert_null(tr_kv_key_problem(S("..a/b..")));
    assert_non_null(tr_kv_key_problem(S("")));
    assert_non_null(tr_kv_key_problem(S("/abs")));
    assert_non_null(tr_kv_key_problem(S("a/../b")));
    assert_non_null(tr_kv_key_problem(S("..")));
    assert_non_null(tr_kv_key_problem(S("a/.")));
    assert_non_null(tr_kv_key_problem(tr_slice("a\0b", 3)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_get_cas),
        cmocka_unit_test(delete_leaves_tombstones_and_index_never_goes_back),
        cmocka_unit_test(prefix_range),
        cmocka_unit_test(many_keys_in_any_order_stay_sorted),
        cmocka_unit_test(key_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
