/* SPDX-License-Identifier: Apache-2.0 */
/* GCRA token buckets: exact admission on a simulated clock, Retry-After rounding, the
 * bounded key table (expiry and take-over), and the shared table under two threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <uv.h>

#include "proxy/ratelimit.h"

#define MS 1000000ull
#define S 1000000000ull

static void burst_then_rate(void **st)
{
    uint64_t tat = 0;
    uint64_t next;
    uint64_t wait;
    uint64_t t0 = 5 * S;
    /* rate 50/s (one token per 20 ms), burst 10: ten at once, then one per 20 ms. */
    for (int i = 0; i < 10; i++) {
        assert_true(tr_proxy_gcra(tat, t0, 50, 10, &next, &wait));
        tat = next;
    }
    assert_false(tr_proxy_gcra(tat, t0, 50, 10, &next, &wait));
    assert_int_equal(wait, 20 * MS);
    assert_false(tr_proxy_gcra(tat, t0 + 19 * MS, 50, 10, &next, &wait));
    assert_int_equal(wait, 1 * MS);
    assert_true(tr_proxy_gcra(tat, t0 + 20 * MS, 50, 10, &next, &wait));
    tat = next;
    assert_false(tr_proxy_gcra(tat, t0 + 20 * MS, 50, 10, &next, &wait));
    /* After a long idle time the bucket is full again, not fuller. */
    int ok = 0;
    for (int i = 0; i < 20; i++) {
        if (tr_proxy_gcra(tat, t0 + 100 * S, 50, 10, &next, &wait)) {
            tat = next;
            ok++;
        }
    }
    assert_int_equal(ok, 10);
}

/* Admitted requests over `secs` seconds of a client asking every `step` ns. */
static int admitted(struct tr_proxy_ratelimit *rl, uint64_t key, uint64_t rate, uint64_t burst,
                    uint64_t t0, uint64_t secs, uint64_t step)
{
    int ok = 0;
    uint64_t wait;
    for (uint64_t t = t0; t < t0 + secs * S; t += step) {
        ok += tr_proxy_ratelimit_take(rl, key, rate, burst, t, &wait) ? 1 : 0;
    }
    return ok;
}

static void table_keys_are_independent(void **st)
{
    struct tr_proxy_ratelimit *rl = tr_proxy_ratelimit_new(100);
    /* 2 s at 50/s with burst 10, asked every millisecond: 10 + 100 (+1 for t = 2 s). */
    int a = admitted(rl, 111, 50, 10, S, 2, MS);
    assert_in_range(a, 109, 111);
    /* Another key has its own full bucket. */
    int b = admitted(rl, 222, 50, 10, S, 1, MS);
    assert_in_range(b, 59, 61);
    /* Key 0 is a key too (stored as 1). */
    uint64_t wait;
    assert_true(tr_proxy_ratelimit_take(rl, 0, 1, 1, S, &wait));
    assert_false(tr_proxy_ratelimit_take(rl, 0, 1, 1, S, &wait));
    assert_int_equal(wait, S);
    tr_proxy_ratelimit_free(rl);
    tr_proxy_ratelimit_free(NULL);
}

static void retry_after_rounds_up(void **st)
{
    assert_int_equal(tr_proxy_ratelimit_retry_after_s(0), 1);
    assert_int_equal(tr_proxy_ratelimit_retry_after_s(1), 1);
    assert_int_equal(tr_proxy_ratelimit_retry_after_s(S), 1);
    assert_int_equal(tr_proxy_ratelimit_retry_after_s(S + 1), 2);
    assert_int_equal(tr_proxy_ratelimit_retry_after_s(2500 * MS), 3);
}

static void table_is_bounded_and_expires(void **st)
{
    /* 4 keys -> 8 slots: one probe window covers the whole table. */
    struct tr_proxy_ratelimit *rl = tr_proxy_ratelimit_new(4);
    assert_int_equal(rl->mask + 1, 8);
    uint64_t wait;
    /* 1000 keys, each using its single token at t = 1 s: every slot is live, and each
     * newcomer takes over the slot of an older key (8 slots for 1000 keys). */
    for (uint64_t k = 1; k <= 1000; k++) {
        assert_true(tr_proxy_ratelimit_take(rl, k, 1, 1, S, &wait));
    }
    /* The newest 8 keys still hold their buckets: refused. */
    int refused = 0;
    for (uint64_t k = 993; k <= 1000; k++) {
        refused += tr_proxy_ratelimit_take(rl, k, 1, 1, S + 1, &wait) ? 0 : 1;
    }
    assert_int_equal(refused, 8);
    /* A new key takes over the fullest live slot with a full bucket of its own ... */
    assert_true(tr_proxy_ratelimit_take(rl, 5000, 1, 1, S + 2, &wait));
    assert_false(tr_proxy_ratelimit_take(rl, 5000, 1, 1, S + 3, &wait));
    /* ... and the key it evicted (1000, from slot 0) starts over too: the lax side. */
    assert_true(tr_proxy_ratelimit_take(rl, 1000, 1, 1, S + 4, &wait));
    /* One second later every bucket is full again: expired slots are free for anyone. */
    for (uint64_t k = 2000; k < 2008; k++) {
        assert_true(tr_proxy_ratelimit_take(rl, k, 1, 1, 3 * S, &wait));
    }
    tr_proxy_ratelimit_free(rl);
    /* A per-route limit is one slot. */
    rl = tr_proxy_ratelimit_new(1);
    assert_int_equal(rl->mask, 0);
    assert_true(tr_proxy_ratelimit_take(rl, 1, 10, 2, S, &wait));
    assert_true(tr_proxy_ratelimit_take(rl, 1, 10, 2, S, &wait));
    assert_false(tr_proxy_ratelimit_take(rl, 1, 10, 2, S, &wait));
    tr_proxy_ratelimit_free(rl);
}

struct racer {
    struct tr_proxy_ratelimit *rl;
    uint64_t t0;
    int ok;
};

static void race(void *arg)
{
    struct racer *r = arg;
    r->ok = admitted(r->rl, 77, 1000, 100, r->t0, 1, 10000);
}

static void shared_between_threads(void **st)
{
    /* Two threads on one key over the same simulated second: together they get the
     * bucket's share once, not twice (burst 100 + 1000/s). */
    struct tr_proxy_ratelimit *rl = tr_proxy_ratelimit_new(16);
    struct racer a = {.rl = rl, .t0 = 10 * S};
    struct racer b = {.rl = rl, .t0 = 10 * S + 5000};
    uv_thread_t ta;
    uv_thread_t tb;
    assert_int_equal(uv_thread_create(&ta, race, &a), 0);
    assert_int_equal(uv_thread_create(&tb, race, &b), 0);
    uv_thread_join(&ta);
    uv_thread_join(&tb);
    assert_in_range(a.ok + b.ok, 1095, 1101);
    tr_proxy_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_then_rate),        cmocka_unit_test(table_keys_are_independent),
        cmocka_unit_test(retry_after_rounds_up),  cmocka_unit_test(table_is_bounded_and_expires),
        cmocka_unit_test(shared_between_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
