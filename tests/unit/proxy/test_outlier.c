/* SPDX-License-Identifier: Apache-2.0 */
/* Outlier detection: ejection length and forgiveness, the max_ejection_percent cap,
 * consecutive-failure counting per worker, ejections surviving a new endpoint set,
 * and the balancers skipping ejected endpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "proxy/balancer.h"
#include "proxy/endpoints.h"
#include "proxy/outlier.h"

static struct tr_proxy_eps *make_set(size_t first, size_t n, unsigned nworkers)
{
    struct tr_proxy_endpoint eps[16];
    for (size_t i = 0; i < n; i++) {
        char text[32];
        struct tr_addr a;
        snprintf(text, sizeof(text), "10.0.0.%zu:80", first + i);
        assert_int_equal(tr_addr_parse(text, &a), 0);
        tr_proxy_endpoint_init(&eps[i], &a, 1);
    }
    return tr_proxy_eps_new(eps, n, nworkers);
}

static struct tr_proxy_outlier_policy policy(uint64_t n5xx, uint64_t base, uint64_t pct)
{
    struct tr_proxy_outlier_policy p = {
        .configured = true,
        .consecutive_5xx = n5xx,
        .base_ejection_ms = base,
        .max_ejection_percent = pct,
    };
    return p;
}

static void ejection_grows_and_is_forgiven(void **st)
{
    struct tr_proxy_outlier_policy p = policy(5, 1000, 50);
    struct tr_proxy_ejection h = {0};
    assert_int_equal(tr_proxy_outlier_ejection_ms(&p, &h, 0), 1000);
    h.until_ms = 1000;
    /* Ejected again right after coming back: twice as long. */
    assert_int_equal(tr_proxy_outlier_ejection_ms(&p, &h, 1500), 2000);
    h.until_ms = 3500;
    assert_int_equal(h.times, 2);
    /* One base_ejection of good behaviour forgives one ejection: 2 - 1 + 1. */
    assert_int_equal(tr_proxy_outlier_ejection_ms(&p, &h, 4600), 2000);
    h.until_ms = 6600;
    /* Long good behaviour forgives all: back to base. */
    assert_int_equal(tr_proxy_outlier_ejection_ms(&p, &h, 60000), 1000);
    /* Capped at 300 s (or base if longer). */
    h.times = 1000;
    h.until_ms = 60000;
    assert_int_equal(tr_proxy_outlier_ejection_ms(&p, &h, 60000), TR_PROXY_OUTLIER_MAX_EJECTION_MS);
    struct tr_proxy_outlier_policy big = policy(5, 400000, 50);
    h.times = 3;
    assert_int_equal(tr_proxy_outlier_ejection_ms(&big, &h, 60000), 400000);
}

static void max_ejection_percent_is_strict(void **st)
{
    struct tr_proxy_outlier_policy p = policy(5, 1000, 50);
    assert_true(tr_proxy_outlier_may_eject(&p, 0, 2));
    assert_false(tr_proxy_outlier_may_eject(&p, 1, 2));
    assert_true(tr_proxy_outlier_may_eject(&p, 0, 3));
    assert_false(tr_proxy_outlier_may_eject(&p, 1, 3)); /* 2 of 3 is 67 % */
    assert_true(tr_proxy_outlier_may_eject(&p, 1, 4));
    assert_false(tr_proxy_outlier_may_eject(&p, 2, 4));
    p.max_ejection_percent = 10;
    assert_false(tr_proxy_outlier_may_eject(&p, 0, 9));
    assert_true(tr_proxy_outlier_may_eject(&p, 0, 10));
    p.max_ejection_percent = 100;
    assert_true(tr_proxy_outlier_may_eject(&p, 2, 3));
    p.max_ejection_percent = 0;
    assert_false(tr_proxy_outlier_may_eject(&p, 0, 100));
}

static void consecutive_failures_eject_within_the_cap(void **st)
{
    struct tr_proxy_outlier_policy p = policy(3, 1000, 50);
    struct tr_proxy_eps *s = make_set(1, 4, 2);
    struct tr_proxy_outlier o;
    tr_proxy_outlier_init(&o);
    assert_false(tr_proxy_outlier_prepare(&o, s, 0, 100));
    /* Two failures, a success, two failures: not three in a row. */
    assert_false(tr_proxy_outlier_report(&o, &p, s, 0, 0, true, 100));
    assert_false(tr_proxy_outlier_report(&o, &p, s, 0, 0, true, 100));
    assert_false(tr_proxy_outlier_report(&o, &p, s, 0, 0, false, 100));
    assert_false(tr_proxy_outlier_report(&o, &p, s, 0, 0, true, 100));
    assert_false(tr_proxy_outlier_report(&o, &p, s, 0, 0, true, 100));
    assert_true(tr_proxy_outlier_report(&o, &p, s, 0, 0, true, 100));
    assert_true(tr_proxy_ep_ejected(s, 0, 0, 100));
    assert_true(tr_proxy_ep_ejected(s, 0, 0, 1099));
    assert_false(tr_proxy_ep_ejected(s, 0, 0, 1100));
    assert_false(tr_proxy_ep_ejected(s, 1, 0, 100)); /* worker 1 decides for itself */
    assert_true(tr_proxy_outlier_prepare(&o, s, 0, 200));
    assert_false(tr_proxy_outlier_prepare(&o, s, 0, 1100));
    /* A second endpoint: 2 of 4 is 50 %, allowed; a third is not. */
    for (int i = 0; i < 3; i++) {
        tr_proxy_outlier_report(&o, &p, s, 0, 1, true, 200);
    }
    assert_true(tr_proxy_ep_ejected(s, 0, 1, 200));
    for (int i = 0; i < 6; i++) {
        assert_false(tr_proxy_outlier_report(&o, &p, s, 0, 2, true, 300));
    }
    assert_false(tr_proxy_ep_ejected(s, 0, 2, 300));
    /* Once endpoint 0 is back, endpoint 2's next three failures eject it. */
    for (int i = 0; i < 2; i++) {
        assert_false(tr_proxy_outlier_report(&o, &p, s, 0, 2, true, 1200));
    }
    assert_true(tr_proxy_outlier_report(&o, &p, s, 0, 2, true, 1200));
    tr_proxy_outlier_dispose(&o);
    tr_proxy_eps_unref(s);
}

static void ejections_survive_a_new_set(void **st)
{
    struct tr_proxy_outlier_policy p = policy(1, 1000, 50);
    struct tr_proxy_eps *a = make_set(1, 3, 1);
    struct tr_proxy_outlier o;
    tr_proxy_outlier_init(&o);
    tr_proxy_outlier_prepare(&o, a, 0, 0);
    assert_true(tr_proxy_outlier_report(&o, &p, a, 0, 1, true, 0)); /* 10.0.0.2 */
    /* The registry sends a new set: 10.0.0.2 moved to index 0, plus a new endpoint. */
    struct tr_proxy_eps *b = make_set(2, 3, 1);
    assert_false(tr_proxy_ep_ejected(b, 0, 0, 10));
    tr_proxy_eps_unref(a); /* the outlier state holds its own reference */
    assert_true(tr_proxy_outlier_prepare(&o, b, 0, 10));
    assert_true(tr_proxy_ep_ejected(b, 0, 0, 10));
    assert_false(tr_proxy_ep_ejected(b, 0, 1, 10));
    /* Ejected again soon after it returns: twice as long (history kept by address). */
    assert_true(tr_proxy_outlier_report(&o, &p, b, 0, 0, true, 1100));
    assert_true(tr_proxy_ep_ejected(b, 0, 0, 3099));
    assert_false(tr_proxy_ep_ejected(b, 0, 0, 3100));
    tr_proxy_outlier_dispose(&o);
    tr_proxy_eps_unref(b);
}

static void balancers_skip_ejected_endpoints(void **st)
{
    const enum tr_proxy_lb lbs[] = {TR_PROXY_LB_ROUND_ROBIN, TR_PROXY_LB_LEAST_REQUEST,
                                    TR_PROXY_LB_RANDOM, TR_PROXY_LB_RING_HASH};
    struct tr_proxy_eps *s = make_set(1, 4, 1);
    atomic_store(&tr_proxy_eps_load(s, 0, 1)->ejected_until, 5000);
    atomic_store(&tr_proxy_eps_load(s, 0, 3)->ejected_until, 5000);
    uint64_t rng = 12345;
    for (size_t k = 0; k < 4; k++) {
        int counts[4] = {0};
        for (int i = 0; i < 400; i++) {
            struct tr_proxy_pick p = {.worker = 0,
                                      .rng = &rng,
                                      .avoid = -1,
                                      .has_hash = true,
                                      .hash = (uint64_t)i * 0x9e3779b97f4a7c15ull,
                                      .check_ejected = true,
                                      .now_ms = 100};
            counts[tr_proxy_balancer_pick(lbs[k], s, &p)]++;
        }
        assert_int_equal(counts[1] + counts[3], 0);
        assert_in_range(counts[0], 100, 300);
        assert_in_range(counts[2], 100, 300);
        /* A key keeps its endpoint while nothing changes (ring hash). */
        struct tr_proxy_pick p = {.worker = 0,
                                  .rng = &rng,
                                  .avoid = -1,
                                  .has_hash = true,
                                  .hash = 42,
                                  .check_ejected = true,
                                  .now_ms = 100};
        if (lbs[k] == TR_PROXY_LB_RING_HASH) {
            int first = tr_proxy_balancer_pick(lbs[k], s, &p);
            for (int i = 0; i < 20; i++) {
                assert_int_equal(tr_proxy_balancer_pick(lbs[k], s, &p), first);
            }
        }
        /* Avoiding one of the two left gives the other; avoiding the only one left
         * still gives it. */
        p.avoid = 0;
        assert_int_equal(tr_proxy_balancer_pick(lbs[k], s, &p), 2);
        atomic_store(&tr_proxy_eps_load(s, 0, 2)->ejected_until, 5000);
        assert_int_equal(tr_proxy_balancer_pick(lbs[k], s, &p), 0);
        /* All ejected: ejections are ignored rather than failing the request. */
        atomic_store(&tr_proxy_eps_load(s, 0, 0)->ejected_until, 5000);
        p.avoid = -1;
        assert_in_range(tr_proxy_balancer_pick(lbs[k], s, &p), 0, 3);
        /* Past the ejection, or without check_ejected, everything is usable again. */
        p.now_ms = 5000;
        int seen = 0;
        for (int i = 0; i < 200; i++) {
            p.hash = (uint64_t)(i + 1) * 0x9e3779b97f4a7c15ull;
            seen |= 1 << tr_proxy_balancer_pick(lbs[k], s, &p);
        }
        assert_int_equal(seen, 15);
        atomic_store(&tr_proxy_eps_load(s, 0, 0)->ejected_until, 0);
        atomic_store(&tr_proxy_eps_load(s, 0, 2)->ejected_until, 0);
    }
    tr_proxy_eps_unref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ejection_grows_and_is_forgiven),
        cmocka_unit_test(max_ejection_percent_is_strict),
        cmocka_unit_test(consecutive_failures_eject_within_the_cap),
        cmocka_unit_test(ejections_survive_a_new_set),
        cmocka_unit_test(balancers_skip_ejected_endpoints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
