/* SPDX-License-Identifier: Apache-2.0 */
/* The circuit breaker's state machine on a simulated clock, its sharing between
 * threads, and limit shares. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <uv.h>

#include "proxy/breaker.h"

static struct tr_proxy_breaker_policy policy(uint64_t failures, uint64_t open_for_ms)
{
    struct tr_proxy_breaker_policy p = {
        .configured = true,
        .max_connections = 10,
        .max_pending = 10,
        .max_requests = 10,
        .consecutive_failures = failures,
        .open_for_ms = open_for_ms,
    };
    return p;
}

static uint64_t state(const struct tr_proxy_breaker *b)
{
    return atomic_load(&b->state);
}

static void opens_after_consecutive_failures_only(void **st)
{
    struct tr_proxy_breaker b;
    memset(&b, 0, sizeof(b));
    struct tr_proxy_breaker_policy p = policy(3, 1000);
    assert_int_equal(tr_proxy_breaker_admit(&b, 0), TR_PROXY_BREAKER_PASS);
    assert_false(tr_proxy_breaker_report(&b, &p, false, false, 10));
    assert_false(tr_proxy_breaker_report(&b, &p, false, false, 11));
    assert_false(tr_proxy_breaker_report(&b, &p, true, false, 12)); /* a success resets */
    assert_false(tr_proxy_breaker_report(&b, &p, false, false, 13));
    assert_false(tr_proxy_breaker_report(&b, &p, false, false, 14));
    assert_int_equal(state(&b), TR_PROXY_BREAKER_CLOSED);
    assert_true(tr_proxy_breaker_report(&b, &p, false, false, 15));
    assert_int_equal(state(&b), TR_PROXY_BREAKER_OPEN);
    assert_int_equal(atomic_load(&b.open_until_ms), 1015);
    /* Open: refused until open_for has passed; late outcomes change nothing. */
    assert_false(tr_proxy_breaker_would_admit(&b, 16));
    assert_int_equal(tr_proxy_breaker_admit(&b, 1014), TR_PROXY_BREAKER_REJECT);
    assert_false(tr_proxy_breaker_report(&b, &p, true, false, 20));
    assert_false(tr_proxy_breaker_report(&b, &p, false, false, 21));
    assert_int_equal(state(&b), TR_PROXY_BREAKER_OPEN);
    assert_int_equal(tr_proxy_breaker_retry_after_s(&b, 16), 1); /* 999 ms left */
    assert_int_equal(tr_proxy_breaker_retry_after_s(&b, 14), 2); /* 1001 ms left */
}

static void half_open_lets_one_probe_through(void **st)
{
    struct tr_proxy_breaker b;
    memset(&b, 0, sizeof(b));
    struct tr_proxy_breaker_policy p = policy(1, 500);
    assert_true(tr_proxy_breaker_report(&b, &p, false, false, 100));
    assert_int_equal(tr_proxy_breaker_admit(&b, 599), TR_PROXY_BREAKER_REJECT);
    assert_int_equal(tr_proxy_breaker_admit(&b, 600), TR_PROXY_BREAKER_PROBE);
    assert_int_equal(state(&b), TR_PROXY_BREAKER_HALF_OPEN);
    /* While the probe is out, everyone else is refused. */
    assert_false(tr_proxy_breaker_would_admit(&b, 601));
    assert_int_equal(tr_proxy_breaker_admit(&b, 700), TR_PROXY_BREAKER_REJECT);
    /* A non-probe outcome in half-open is ignored. */
    assert_false(tr_proxy_breaker_report(&b, &p, true, false, 701));
    assert_int_equal(state(&b), TR_PROXY_BREAKER_HALF_OPEN);
    /* The probe fails: open again, for open_for from now. */
    assert_true(tr_proxy_breaker_report(&b, &p, false, true, 800));
    assert_int_equal(state(&b), TR_PROXY_BREAKER_OPEN);
    assert_int_equal(tr_proxy_breaker_admit(&b, 1299), TR_PROXY_BREAKER_REJECT);
    assert_int_equal(tr_proxy_breaker_admit(&b, 1300), TR_PROXY_BREAKER_PROBE);
    /* The probe succeeds: closed, and failures count from zero. */
    assert_false(tr_proxy_breaker_report(&b, &p, true, true, 1310));
    assert_int_equal(state(&b), TR_PROXY_BREAKER_CLOSED);
    assert_int_equal(atomic_load(&b.failures), 0);
    assert_int_equal(tr_proxy_breaker_admit(&b, 1311), TR_PROXY_BREAKER_PASS);
    assert_int_equal(tr_proxy_breaker_admit(&b, 1312), TR_PROXY_BREAKER_PASS);
}

static void abandoned_probe_lets_the_next_one_probe(void **st)
{
    struct tr_proxy_breaker b;
    memset(&b, 0, sizeof(b));
    struct tr_proxy_breaker_policy p = policy(2, 100);
    tr_proxy_breaker_report(&b, &p, false, false, 0);
    tr_proxy_breaker_report(&b, &p, false, false, 0);
    assert_int_equal(tr_proxy_breaker_admit(&b, 100), TR_PROXY_BREAKER_PROBE);
    assert_int_equal(tr_proxy_breaker_admit(&b, 101), TR_PROXY_BREAKER_REJECT);
    tr_proxy_breaker_abandon(&b);
    assert_int_equal(tr_proxy_breaker_admit(&b, 102), TR_PROXY_BREAKER_PROBE);
    /* Abandoning outside half-open does nothing. */
    tr_proxy_breaker_report(&b, &p, true, true, 103);
    tr_proxy_breaker_abandon(&b);
    assert_int_equal(state(&b), TR_PROXY_BREAKER_CLOSED);
    assert_int_equal(tr_proxy_breaker_retry_after_s(&b, 103), 1);
}

struct racer {
    struct tr_proxy_breaker *b;
    const struct tr_proxy_breaker_policy *p;
    int probes;
    int opened;
};

static void race_admit(void *arg)
{
    struct racer *r = arg;
    for (int i = 0; i < 1000; i++) {
        r->probes += tr_proxy_breaker_admit(r->b, 5000) == TR_PROXY_BREAKER_PROBE ? 1 : 0;
    }
}

static void race_fail(void *arg)
{
    struct racer *r = arg;
    for (int i = 0; i < 1000; i++) {
        r->opened += tr_proxy_breaker_report(r->b, r->p, false, false, 100) ? 1 : 0;
    }
}

/* The breaker is shared by the workers: racing threads open it once and take one
 * probe between them. */
static void shared_between_threads(void **st)
{
    struct tr_proxy_breaker b;
    memset(&b, 0, sizeof(b));
    struct tr_proxy_breaker_policy p = policy(10, 1000);
    struct racer r[4];
    uv_thread_t t[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (struct racer){.b = &b, .p = &p};
        assert_int_equal(uv_thread_create(&t[i], race_fail, &r[i]), 0);
    }
    int opened = 0;
    for (int i = 0; i < 4; i++) {
        uv_thread_join(&t[i]);
        opened += r[i].opened;
    }
    assert_int_equal(opened, 1);
    assert_int_equal(state(&b), TR_PROXY_BREAKER_OPEN);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(uv_thread_create(&t[i], race_admit, &r[i]), 0);
    }
    int probes = 0;
    for (int i = 0; i < 4; i++) {
        uv_thread_join(&t[i]);
        probes += r[i].probes;
    }
    assert_int_equal(probes, 1);
    assert_int_equal(state(&b), TR_PROXY_BREAKER_HALF_OPEN);
}

static void limits_are_split_over_workers(void **st)
{
    assert_int_equal(tr_proxy_breaker_share(1024, 1, 0), 1024);
    assert_int_equal(tr_proxy_breaker_share(1024, 2, 0), 512);
    assert_int_equal(tr_proxy_breaker_share(1024, 2, 1), 512);
    /* 10 over 3 workers: 4 + 3 + 3. */
    assert_int_equal(tr_proxy_breaker_share(10, 3, 0), 4);
    assert_int_equal(tr_proxy_breaker_share(10, 3, 1), 3);
    assert_int_equal(tr_proxy_breaker_share(10, 3, 2), 3);
    uint64_t total = 0;
    for (unsigned w = 0; w < 7; w++) {
        total += tr_proxy_breaker_share(100, 7, w);
    }
    assert_int_equal(total, 100);
    /* Never 0: a worker with no share would refuse everything. */
    assert_int_equal(tr_proxy_breaker_share(1, 4, 3), 1);
    assert_string_equal(tr_proxy_breaker_state_name(TR_PROXY_BREAKER_HALF_OPEN), "half_open");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(opens_after_consecutive_failures_only),
        cmocka_unit_test(half_open_lets_one_probe_through),
        cmocka_unit_test(abandoned_probe_lets_the_next_one_probe),
        cmocka_unit_test(shared_between_threads),
        cmocka_unit_test(limits_are_split_over_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
