/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/mem.h"
#include "core/timeq.h"

struct item {
    struct tr_timeq_entry e;
    int fired;
    struct tr_timeq *rearm_in; /* re-arm itself from the callback */
    uint64_t now;
};

static void on_fire(struct tr_timeq_entry *e)
{
    struct item *it = tr_container_of(e, struct item, e);
    it->fired++;
    if (it->rearm_in != NULL) {
        tr_timeq_arm(it->rearm_in, &it->e, it->now);
        it->rearm_in = NULL;
    }
}

static void expiry_in_deadline_order(void **state)
{
    struct tr_timeq q;
    tr_timeq_init(&q, 100);
    struct item a = {0}, b = {0}, c = {0};
    tr_timeq_entry_init(&a.e, on_fire);
    tr_timeq_entry_init(&b.e, on_fire);
    tr_timeq_entry_init(&c.e, on_fire);
    tr_timeq_arm(&q, &a.e, 0);
    tr_timeq_arm(&q, &b.e, 10);
    tr_timeq_arm(&q, &c.e, 20);
    assert_int_equal(tr_timeq_next(&q), 100);
    /* Re-arming moves a to the back with a fresh deadline. */
    tr_timeq_arm(&q, &a.e, 50);
    assert_int_equal(tr_timeq_next(&q), 110);
    assert_int_equal(tr_timeq_expire(&q, 109), 0);
    assert_int_equal(tr_timeq_expire(&q, 120), 2);
    assert_int_equal(b.fired, 1);
    assert_int_equal(c.fired, 1);
    assert_int_equal(a.fired, 0);
    assert_true(tr_timeq_armed(&a.e));
    assert_false(tr_timeq_armed(&b.e));
    tr_timeq_cancel(&a.e);
    assert_int_equal(tr_timeq_expire(&q, 1000), 0);
    assert_int_equal(tr_timeq_next(&q), UINT64_MAX);
}

static void callback_may_rearm_into_other_queue(void **state)
{
    struct tr_timeq q1, q2;
    tr_timeq_init(&q1, 10);
    tr_timeq_init(&q2, 1000);
    struct item a = {0};
    tr_timeq_entry_init(&a.e, on_fire);
    a.rearm_in = &q2;
    a.now = 10;
    tr_timeq_arm(&q1, &a.e, 0);
    assert_int_equal(tr_timeq_expire(&q1, 10), 1);
    assert_true(tr_timeq_armed(&a.e));
    assert_int_equal(tr_timeq_next(&q2), 1010);
    assert_int_equal(tr_timeq_next(&q1), UINT64_MAX);
}

static void disabled_queue_never_arms(void **state)
{
    struct tr_timeq q;
    tr_timeq_init(&q, 0);
    struct item a = {0};
    tr_timeq_entry_init(&a.e, on_fire);
    tr_timeq_arm(&q, &a.e, 0);
    assert_false(tr_timeq_armed(&a.e));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(expiry_in_deadline_order),
        cmocka_unit_test(callback_may_rearm_into_other_queue),
        cmocka_unit_test(disabled_queue_never_arms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
