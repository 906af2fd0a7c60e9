/* SPDX-License-Identifier: Apache-2.0 */
/* src/broker/group.c: offsets, acks out of order, redelivery timing on an injected
 * clock, nack backoff, the window bound, retention skipping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include "broker/group.h"

static void delivers_in_order_and_commits(void **state)
{
    struct tr_bk_group g;
    tr_bk_group_init(&g, "g", 0, 16);
    struct tr_bk_delivery d[8];
    assert_int_equal(tr_bk_group_poll(&g, 0, 5, 1000, d, 8), 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(d[i].offset, (uint64_t)i);
        assert_int_equal(d[i].attempts, 1);
    }
    assert_int_equal(tr_bk_group_poll(&g, 0, 5, 1000, d, 8), 0);
    /* Out-of-order acks: committed only moves over a contiguous acked prefix. */
    assert_int_equal(tr_bk_group_ack(&g, 2), 0);
    assert_int_equal(g.committed, 0);
    assert_int_equal(tr_bk_group_ack(&g, 0), 0);
    assert_int_equal(g.committed, 1);
    assert_int_equal(tr_bk_group_ack(&g, 1), 0);
    assert_int_equal(g.committed, 3);
    assert_int_equal(tr_bk_group_ack(&g, 1), 1);       /* again: harmless */
    assert_int_equal(tr_bk_group_ack(&g, 5), -ENOENT); /* never delivered */
    assert_int_equal(g.unacked, 2);
    tr_bk_group_dispose(&g);
}

static void redelivers_after_timeout(void **state)
{
    struct tr_bk_group g;
    tr_bk_group_init(&g, "g", 10, 16);
    struct tr_bk_delivery d[8];
    assert_int_equal(tr_bk_group_poll(&g, 1000, 13, 500, d, 8), 3);
    assert_int_equal(tr_bk_group_ack(&g, 11), 0);
    assert_false(tr_bk_group_has_work(&g, 1499, 13));
    assert_int_equal(tr_bk_group_poll(&g, 1499, 13, 500, d, 8), 0);
    assert_true(tr_bk_group_has_work(&g, 1500, 13));
    assert_int_equal(tr_bk_group_poll(&g, 1500, 13, 500, d, 8), 2);
    assert_int_equal(d[0].offset, 10);
    assert_int_equal(d[0].attempts, 2);
    assert_int_equal(d[1].offset, 12);
    assert_int_equal(g.redelivered, 2);
    /* The new deadline counts from the redelivery. */
    assert_int_equal(tr_bk_group_poll(&g, 1999, 13, 500, d, 8), 0);
    assert_int_equal(tr_bk_group_poll(&g, 2000, 13, 500, d, 8), 2);
    assert_int_equal(d[0].attempts, 3);
    tr_bk_group_dispose(&g);
}

static void nack_backoff(void **state)
{
    struct tr_bk_group g;
    tr_bk_group_init(&g, "g", 0, 16);
    struct tr_bk_delivery d[8];
    assert_int_equal(tr_bk_group_poll(&g, 0, 2, 60000, d, 8), 2);
    assert_int_equal(tr_bk_group_nack(&g, 1, 100, 250), 0);
    assert_int_equal(tr_bk_group_nack(&g, 7, 100, 250), -ENOENT);
    assert_int_equal(tr_bk_group_poll(&g, 349, 2, 60000, d, 8), 0);
    assert_int_equal(tr_bk_group_poll(&g, 350, 2, 60000, d, 8), 1);
    assert_int_equal(d[0].offset, 1);
    assert_int_equal(d[0].attempts, 2);
    /* A nacked-then-acked delivery is never handed out again. */
    assert_int_equal(tr_bk_group_nack(&g, 0, 400, 0), 0);
    assert_int_equal(tr_bk_group_ack(&g, 0), 0);
    assert_int_equal(tr_bk_group_poll(&g, 1000, 2, 60000, d, 8), 0);
    assert_int_equal(tr_bk_group_nack(&g, 0, 1000, 0), -ENOENT);
    tr_bk_group_dispose(&g);
}

static void window_bounds_in_flight(void **state)
{
    struct tr_bk_group g;
    tr_bk_group_init(&g, "g", 0, 16);
    struct tr_bk_delivery d[64];
    assert_int_equal(tr_bk_group_poll(&g, 0, 100, 1000, d, 64), 16);
    assert_int_equal(tr_bk_group_poll(&g, 0, 100, 1000, d, 64), 0);
    assert_false(tr_bk_group_has_work(&g, 0, 100));
    assert_int_equal(tr_bk_group_ack(&g, 0), 0);
    assert_int_equal(tr_bk_group_poll(&g, 0, 100, 1000, d, 64), 1);
    assert_int_equal(d[0].offset, 16);
    tr_bk_group_dispose(&g);
}

static void skip_after_retention(void **state)
{
    struct tr_bk_group g;
    tr_bk_group_init(&g, "g", 0, 16);
    struct tr_bk_delivery d[8];
    assert_int_equal(tr_bk_group_poll(&g, 0, 4, 1000, d, 8), 4);
    tr_bk_group_skip_to(&g, 2);
    assert_int_equal(g.committed, 2);
    assert_int_equal(g.unacked, 2);
    tr_bk_group_skip_to(&g, 50);
    assert_int_equal(g.committed, 50);
    assert_int_equal(g.next, 50);
    assert_int_equal(g.unacked, 0);
    assert_int_equal(tr_bk_group_poll(&g, 0, 52, 1000, d, 8), 2);
    assert_int_equal(d[0].offset, 50);
    tr_bk_group_dispose(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(delivers_in_order_and_commits),
        cmocka_unit_test(redelivers_after_timeout),
        cmocka_unit_test(nack_backoff),
        cmocka_unit_test(window_bounds_in_flight),
        cmocka_unit_test(skip_after_retention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
