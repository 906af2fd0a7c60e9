/* SPDX-License-Identifier: Apache-2.0 */
/* Retry decisions: what may be retried, how often, after how long, within what budget. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "proxy/retry.h"

static struct tr_proxy_retry_policy policy(unsigned attempts, unsigned on)
{
    struct tr_proxy_retry_policy p = {.configured = true, .attempts = attempts, .on = on};
    return p;
}

static void connect_failures_retry_every_method(void **state)
{
    struct tr_proxy_retry_policy p = policy(1, TR_PROXY_RETRY_CONNECT_FAILURE);
    struct tr_proxy_retry_facts f = {.policy = &p, .err = TR_PROXY_UERR_CONNECT, .attempts = 1};
    assert_true(tr_proxy_retry_on_error(&f)); /* POST: nothing was sent */
    f.attempts = 2;
    assert_false(tr_proxy_retry_on_error(&f)); /* one retry only */
    f.attempts = 1;
    f.body_acked = true;
    assert_false(tr_proxy_retry_on_error(&f));
    f.body_acked = false;
    f.err = TR_PROXY_UERR_RESET;
    f.idempotent = true;
    assert_false(tr_proxy_retry_on_error(&f)); /* reset not in `on` */
}

static void other_failures_need_idempotence(void **state)
{
    struct tr_proxy_retry_policy p = policy(3, TR_PROXY_RETRY_RESET | TR_PROXY_RETRY_GATEWAY_ERROR);
    struct tr_proxy_retry_facts f = {.policy = &p, .err = TR_PROXY_UERR_RESET, .attempts = 1};
    assert_false(tr_proxy_retry_on_error(&f));
    f.idempotent = true;
    assert_true(tr_proxy_retry_on_error(&f));
    f.headers_seen = true;
    assert_false(tr_proxy_retry_on_error(&f)); /* the response had started */
    f.headers_seen = false;
    f.err = TR_PROXY_UERR_TIMEOUT;
    assert_true(tr_proxy_retry_on_error(&f));
    f.err = TR_PROXY_UERR_PROTOCOL;
    assert_true(tr_proxy_retry_on_error(&f));
    f.err = TR_PROXY_UERR_NO_ENDPOINT;
    assert_false(tr_proxy_retry_on_error(&f));
    f.err = TR_PROXY_UERR_CONNECT;
    assert_false(tr_proxy_retry_on_error(&f)); /* connect_failure not in `on` */
    f.err = TR_PROXY_UERR_RESET;
    f.attempts = 4;
    assert_false(tr_proxy_retry_on_error(&f));
}

static void statuses(void **state)
{
    struct tr_proxy_retry_policy p = policy(2, TR_PROXY_RETRY_503);
    struct tr_proxy_retry_facts f = {
        .policy = &p, .status = 503, .attempts = 1, .idempotent = true};
    assert_true(tr_proxy_retry_on_status(&f));
    f.status = 502;
    assert_false(tr_proxy_retry_on_status(&f));
    p.on = TR_PROXY_RETRY_GATEWAY_ERROR;
    assert_true(tr_proxy_retry_on_status(&f));
    f.status = 500;
    assert_false(tr_proxy_retry_on_status(&f));
    p.on = TR_PROXY_RETRY_5XX;
    assert_true(tr_proxy_retry_on_status(&f));
    f.status = 404;
    assert_false(tr_proxy_retry_on_status(&f));
    f.status = 500;
    f.idempotent = false;
    assert_false(tr_proxy_retry_on_status(&f));
    f.idempotent = true;
    f.attempts = 3;
    assert_false(tr_proxy_retry_on_status(&f));
}

/* A policy's idempotency_header makes a request carrying it (non-empty) retryable like
 * an idempotent one; without the header, or without the setting, POST stays unsafe. */
static void idempotency_header_opts_in(void **state)
{
    struct tr_proxy_retry_policy p = policy(2, TR_PROXY_RETRY_RESET | TR_PROXY_RETRY_GATEWAY_ERROR);
    struct tr_slice key = TR_SLICE_LIT("order-42");
    assert_true(tr_proxy_retry_idempotent(&p, true, TR_SLICE_NULL)); /* GET */
    assert_false(tr_proxy_retry_idempotent(&p, false, key));         /* not configured */
    p.idempotency_header = TR_SLICE_LIT("Idempotency-Key");
    assert_true(tr_proxy_retry_idempotent(&p, false, key));
    assert_false(tr_proxy_retry_idempotent(&p, false, TR_SLICE_NULL));    /* header absent */
    assert_false(tr_proxy_retry_idempotent(&p, false, TR_SLICE_LIT(""))); /* empty value */

    /* What it feeds: a POST reset before a response is retried only with the key, and
     * never once a streamed body byte reached the upstream. */
    struct tr_proxy_retry_facts f = {.policy = &p, .err = TR_PROXY_UERR_RESET, .attempts = 1};
    f.idempotent = tr_proxy_retry_idempotent(&p, false, key);
    assert_true(tr_proxy_retry_on_error(&f));
    f.status = 502;
    assert_true(tr_proxy_retry_on_status(&f));
    f.body_acked = true;
    assert_false(tr_proxy_retry_on_status(&f));
    f.body_acked = false;
    f.idempotent = tr_proxy_retry_idempotent(&p, false, TR_SLICE_NULL);
    assert_false(tr_proxy_retry_on_status(&f));
}

static void backoff_is_jittered_exponential(void **state)
{
    struct tr_proxy_retry_policy p = policy(5, TR_PROXY_RETRY_5XX);
    uint64_t rng = 42;
    uint64_t max[6] = {0};
    for (int i = 0; i < 5000; i++) {
        for (unsigned n = 1; n <= 5; n++) {
            uint64_t w = tr_proxy_retry_backoff_ms(&p, n, &rng);
            max[n] = w > max[n] ? w : max[n];
        }
    }
    assert_in_range(max[1], 20, 25);
    assert_in_range(max[2], 45, 50);
    assert_in_range(max[3], 95, 100);
    assert_in_range(max[4], 195, 200);
    assert_in_range(max[5], 240, 250);
    struct tr_proxy_retry_policy dflt = policy(1, TR_PROXY_RETRY_CONNECT_FAILURE);
    dflt.configured = false;
    assert_int_equal(tr_proxy_retry_backoff_ms(&dflt, 1, &rng), 0);
}

static void budget(void **state)
{
    struct tr_proxy_retry_policy p = policy(2, TR_PROXY_RETRY_5XX);
    assert_true(tr_proxy_retry_budget_ok(&p, 1000, 999)); /* no budget configured */
    p.budget_percent = 20;
    assert_true(tr_proxy_retry_budget_ok(&p, 100, 19));
    assert_false(tr_proxy_retry_budget_ok(&p, 100, 20));
    assert_true(tr_proxy_retry_budget_ok(&p, 1, 2)); /* three are always allowed */
    assert_false(tr_proxy_retry_budget_ok(&p, 1, 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connect_failures_retry_every_method),
        cmocka_unit_test(other_failures_need_idempotence),
        cmocka_unit_test(statuses),
        cmocka_unit_test(idempotency_header_opts_in),
        cmocka_unit_test(backoff_is_jittered_exponential),
        cmocka_unit_test(budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
