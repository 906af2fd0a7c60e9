/* SPDX-License-Identifier: Apache-2.0 */
/* Load balancers and the consistent-hash ring: exact sequences for round robin,
 * distributions for the randomised ones, stability of ring_hash under changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "proxy/balancer.h"
#include "proxy/endpoints.h"
#include "proxy/ring_hash.h"

static struct tr_proxy_eps *make_set(const uint32_t *weights, size_t n, unsigned nworkers)
{
    struct tr_proxy_endpoint eps[16];
    for (size_t i = 0; i < n; i++) {
        char text[32];
        struct tr_addr a;
        snprintf(text, sizeof(text), "10.0.0.%zu:80", i + 1);
        assert_int_equal(tr_addr_parse(text, &a), 0);
        tr_proxy_endpoint_init(&eps[i], &a, weights[i]);
    }
    return tr_proxy_eps_new(eps, n, nworkers);
}

static int pick(enum tr_proxy_lb lb, struct tr_proxy_eps *s, uint64_t *rng, int avoid)
{
    struct tr_proxy_pick p = {.worker = 0, .rng = rng, .avoid = avoid};
    return tr_proxy_balancer_pick(lb, s, &p);
}

static void round_robin_is_smooth_and_weighted(void **state)
{
    uint32_t w[] = {5, 1, 1};
    struct tr_proxy_eps *s = make_set(w, 3, 1);
    uint64_t rng = 1;
    /* nginx's smooth weighted round robin: a a b a c a a, never five a in a row. */
    int expect[] = {0, 0, 1, 0, 2, 0, 0};
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < 7; i++) {
            assert_int_equal(pick(TR_PROXY_LB_ROUND_ROBIN, s, &rng, -1), expect[i]);
        }
    }
    tr_proxy_eps_unref(s);
    uint32_t equal[] = {1, 1, 1};
    s = make_set(equal, 3, 1);
    for (int i = 0; i < 30; i++) {
        assert_int_equal(pick(TR_PROXY_LB_ROUND_ROBIN, s, &rng, -1), i % 3);
    }
    tr_proxy_eps_unref(s);
}

static void round_robin_workers_are_independent(void **state)
{
    uint32_t w[] = {1, 1};
    struct tr_proxy_eps *s = make_set(w, 2, 2);
    uint64_t rng = 1;
    struct tr_proxy_pick p0 = {.worker = 0, .rng = &rng, .avoid = -1};
    struct tr_proxy_pick p1 = {.worker = 1, .rng = &rng, .avoid = -1};
    assert_int_equal(tr_proxy_balancer_pick(TR_PROXY_LB_ROUND_ROBIN, s, &p0), 0);
    assert_int_equal(tr_proxy_balancer_pick(TR_PROXY_LB_ROUND_ROBIN, s, &p1), 0);
    assert_int_equal(tr_proxy_balancer_pick(TR_PROXY_LB_ROUND_ROBIN, s, &p0), 1);
    tr_proxy_eps_unref(s);
}

static void avoid_skips_the_failed_endpoint(void **state)
{
    uint32_t w[] = {1, 1, 1};
    struct tr_proxy_eps *s = make_set(w, 3, 1);
    uint64_t rng = 7;
    enum tr_proxy_lb lbs[] = {TR_PROXY_LB_ROUND_ROBIN, TR_PROXY_LB_LEAST_REQUEST,
                              TR_PROXY_LB_RANDOM, TR_PROXY_LB_RING_HASH};
    for (size_t k = 0; k < 4; k++) {
        for (int i = 0; i < 200; i++) {
            struct tr_proxy_pick p = {
                .worker = 0, .rng = &rng, .avoid = 1, .has_hash = true, .hash = (uint64_t)i * 7919};
            int ep = tr_proxy_balancer_pick(lbs[k], s, &p);
            assert_true(ep >= 0 && ep < 3);
            assert_int_not_equal(ep, 1);
        }
    }
    tr_proxy_eps_unref(s);
    /* A single endpoint is still picked: there is nothing else. */
    uint32_t one[] = {1};
    s = make_set(one, 1, 1);
    assert_int_equal(pick(TR_PROXY_LB_ROUND_ROBIN, s, &rng, 0), 0);
    assert_int_equal(pick(TR_PROXY_LB_RANDOM, s, &rng, 0), 0);
    tr_proxy_eps_unref(s);
}

static void empty_set_picks_nothing(void **state)
{
    struct tr_proxy_eps *s = tr_proxy_eps_new(NULL, 0, 1);
    uint64_t rng = 3;
    assert_int_equal(pick(TR_PROXY_LB_ROUND_ROBIN, s, &rng, -1), -1);
    assert_int_equal(pick(TR_PROXY_LB_RING_HASH, s, &rng, -1), -1);
    assert_int_equal(pick(TR_PROXY_LB_ROUND_ROBIN, NULL, &rng, -1), -1);
    tr_proxy_eps_unref(s);
}

static void random_honours_weights(void **state)
{
    uint32_t w[] = {1, 3, 6};
    struct tr_proxy_eps *s = make_set(w, 3, 1);
    uint64_t rng = 12345;
    int counts[3] = {0};
    for (int i = 0; i < 100000; i++) {
        counts[pick(TR_PROXY_LB_RANDOM, s, &rng, -1)]++;
    }
    assert_in_range(counts[0], 9000, 11000);
    assert_in_range(counts[1], 28500, 31500);
    assert_in_range(counts[2], 58500, 61500);
    tr_proxy_eps_unref(s);
}

static void least_request_prefers_fewer_in_flight(void **state)
{
    uint32_t w[] = {1, 1, 1, 1};
    struct tr_proxy_eps *s = make_set(w, 4, 1);
    uint64_t rng = 99;
    /* Endpoint 2 is busy: it loses every comparison it takes part in. */
    tr_proxy_counter_add(&tr_proxy_eps_load(s, 0, 2)->active, 50);
    int counts[4] = {0};
    for (int i = 0; i < 30000; i++) {
        counts[pick(TR_PROXY_LB_LEAST_REQUEST, s, &rng, -1)]++;
    }
    assert_int_equal(counts[2], 0);
    for (int i = 0; i < 4; i++) {
        if (i != 2) {
            assert_in_range(counts[i], 9000, 11000);
        }
    }
    /* Weights scale capacity: 4 in flight on weight 4 beats 2 in flight on weight 1. */
    tr_proxy_eps_unref(s);
    uint32_t w2[] = {4, 1};
    s = make_set(w2, 2, 1);
    tr_proxy_counter_add(&tr_proxy_eps_load(s, 0, 0)->active, 4);
    tr_proxy_counter_add(&tr_proxy_eps_load(s, 0, 1)->active, 2);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(pick(TR_PROXY_LB_LEAST_REQUEST, s, &rng, -1), 0);
    }
    tr_proxy_eps_unref(s);
}

static int ring_pick(struct tr_proxy_eps *s, const char *key)
{
    uint64_t rng = 1;
    struct tr_proxy_pick p = {
        .worker = 0,
        .rng = &rng,
        .avoid = -1,
        .has_hash = true,
        .hash = tr_proxy_hash64(key, strlen(key), 0),
    };
    return tr_proxy_balancer_pick(TR_PROXY_LB_RING_HASH, s, &p);
}

static void ring_hash_is_sticky_balanced_and_stable(void **state)
{
    uint32_t w[] = {1, 1, 1, 1, 1};
    struct tr_proxy_eps *five = make_set(w, 5, 1);
    struct tr_proxy_eps *four = make_set(w, 4, 1); /* the same minus 10.0.0.5 */
    int counts[5] = {0};
    int moved = 0;
    for (int i = 0; i < 10000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "user-%d", i);
        int a = ring_pick(five, key);
        assert_int_equal(ring_pick(five, key), a); /* sticky */
        counts[a]++;
        int b = ring_pick(four, key);
        if (a != 4) {
            assert_int_equal(a, b); /* only the removed endpoint's keys move */
        } else {
            moved++;
        }
    }
    for (int i = 0; i < 5; i++) {
        assert_in_range(counts[i], 1400, 2600); /* 100 points each: within ~30 % */
    }
    assert_int_equal(moved, counts[4]);
    tr_proxy_eps_unref(five);
    tr_proxy_eps_unref(four);
}

static void ring_hash_weights_and_bounds(void **state)
{
    uint32_t w[] = {1, 3};
    struct tr_proxy_eps *s = make_set(w, 2, 1);
    const struct tr_proxy_ring *ring = tr_proxy_eps_ring(s);
    assert_int_equal(ring->n, 400);
    assert_ptr_equal(tr_proxy_eps_ring(s), ring); /* built once */
    for (size_t i = 1; i < ring->n; i++) {
        assert_true(ring->points[i - 1].hash <= ring->points[i].hash);
    }
    /* Hashes past the last point wrap to the first. */
    assert_int_equal(tr_proxy_ring_lookup(ring, UINT64_MAX), ring->points[0].ep);
    assert_int_equal(tr_proxy_ring_lookup(ring, 0), ring->points[0].ep);
    tr_proxy_eps_unref(s);
    /* Huge weights are scaled down to the point cap. */
    uint32_t big[] = {1000, 1000};
    s = make_set(big, 2, 1);
    assert_true(tr_proxy_eps_ring(s)->n <= TR_PROXY_RING_MAX_POINTS);
    tr_proxy_eps_unref(s);
}

static void hash_is_deterministic(void **state)
{
    assert_int_equal(tr_proxy_hash64("abc", 3, 0), tr_proxy_hash64("abc", 3, 0));
    assert_int_not_equal(tr_proxy_hash64("abc", 3, 0), tr_proxy_hash64("abd", 3, 0));
    assert_int_not_equal(tr_proxy_hash64("abc", 3, 0), tr_proxy_hash64("abc", 3, 1));
    assert_int_not_equal(tr_proxy_hash64("", 0, 0), tr_proxy_hash64("a", 1, 0));
}

static void equal_sets(void **state)
{
    uint32_t w[] = {1, 2};
    uint32_t w2[] = {1, 3};
    struct tr_proxy_eps *a = make_set(w, 2, 1);
    struct tr_proxy_eps *b = make_set(w, 2, 2);
    struct tr_proxy_eps *c = make_set(w2, 2, 1);
    struct tr_proxy_eps *d = make_set(w, 1, 1);
    assert_true(tr_proxy_eps_equal(a, b));
    assert_false(tr_proxy_eps_equal(a, c));
    assert_false(tr_proxy_eps_equal(a, d));
    assert_string_equal(a->eps[1].name, "10.0.0.2:80");
    tr_proxy_eps_unref(a);
    tr_proxy_eps_unref(b);
    tr_proxy_eps_unref(c);
    tr_proxy_eps_unref(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_robin_is_smooth_and_weighted),
        cmocka_unit_test(round_robin_workers_are_independent),
        cmocka_unit_test(avoid_skips_the_failed_endpoint),
        cmocka_unit_test(empty_set_picks_nothing),
        cmocka_unit_test(random_honours_weights),
        cmocka_unit_test(least_request_prefers_fewer_in_flight),
        cmocka_unit_test(ring_hash_is_sticky_balanced_and_stable),
        cmocka_unit_test(ring_hash_weights_and_bounds),
        cmocka_unit_test(hash_is_deterministic),
        cmocka_unit_test(equal_sets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
