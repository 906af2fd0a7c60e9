/* SPDX-License-Identifier: Apache-2.0 */
/* Route matching order, method and header conditions, split draws, target rewriting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/route.h"

static const char yaml[] =
    "clusters:\n"
    "  - {name: a, endpoints: [127.0.0.1:1]}\n"
    "  - {name: b, endpoints: [127.0.0.1:2]}\n"
    "routes:\n"
    "  - {match: {prefix: /orders, headers: {x-canary: \"1\"}}, cluster: b}\n"
    "  - {match: {prefix: /orders, methods: [GET, HEAD]}, cluster: a, "
    "rewrite: {prefix: /api/orders}}\n"
    "  - {match: {prefix: /mix}, split: [{cluster: a, weight: 1}, {cluster: b, weight: 3}]}\n"
    "  - {match: {prefix: /strip/}, cluster: a, rewrite: {prefix: /}}\n";

static struct tr_proxy_config *load(void)
{
    struct tr_proxy_config *cfg = NULL;
    struct tr_conf_err err;
    assert_int_equal(tr_proxy_config_parse("t.yaml", yaml, strlen(yaml), 1, &cfg, &err), 0);
    return cfg;
}

static const struct tr_proxy_route_config *match(const struct tr_proxy_config *cfg,
                                                 const char *method, const char *path,
                                                 const char *hname, const char *hvalue)
{
    struct tr_http_header h = {tr_slice_cstr(hname ? hname : "x"),
                               tr_slice_cstr(hvalue ? hvalue : "")};
    return tr_proxy_route_match(cfg, tr_slice_cstr(method), tr_slice_cstr(path), &h, hname ? 1 : 0);
}

static void first_match_wins(void **state)
{
    struct tr_proxy_config *cfg = load();
    assert_ptr_equal(match(cfg, "GET", "/orders/1", "X-Canary", "1"), &cfg->routes[0]);
    assert_ptr_equal(match(cfg, "POST", "/orders/1", "x-canary", "1"), &cfg->routes[0]);
    assert_ptr_equal(match(cfg, "GET", "/orders/1", "x-canary", "2"), &cfg->routes[1]);
    assert_ptr_equal(match(cfg, "HEAD", "/orders", NULL, NULL), &cfg->routes[1]);
    assert_null(match(cfg, "POST", "/orders", NULL, NULL));
    assert_null(match(cfg, "get", "/orders", NULL, NULL)); /* methods are case-sensitive */
    assert_null(match(cfg, "GET", "/other", NULL, NULL));
    assert_ptr_equal(match(cfg, "GET", "/mixer", NULL, NULL), &cfg->routes[2]);
    tr_proxy_config_unref(cfg);
}

static void split_draws_by_weight(void **state)
{
    struct tr_proxy_config *cfg = load();
    uint64_t rng = 5;
    int counts[2] = {0};
    for (int i = 0; i < 40000; i++) {
        counts[tr_proxy_route_cluster(&cfg->routes[2], &rng)]++;
    }
    assert_in_range(counts[0], 9500, 10500);
    assert_int_equal(tr_proxy_route_cluster(&cfg->routes[1], &rng), 0);
    tr_proxy_config_unref(cfg);
}

/* `path` is what the server derives from an absolute-form target; NULL for origin-form. */
static void check_target(const struct tr_proxy_route_config *r, const char *target,
                         const char *path, const char *expect)
{
    struct tr_arena a;
    tr_arena_init(&a, 256);
    const char *qm = strchr(target, '?');
    struct tr_slice q =
        qm != NULL ? tr_slice(qm + 1, strlen(qm + 1)) : tr_slice(target + strlen(target), 0);
    struct tr_slice p = path != NULL
                            ? tr_slice_cstr(path)
                            : tr_slice(target, qm ? (size_t)(qm - target) : strlen(target));
    struct tr_slice out = tr_proxy_route_target(r, tr_slice_cstr(target), p, q, &a);
    assert_int_equal(out.len, strlen(expect));
    assert_memory_equal(out.ptr, expect, out.len);
    tr_arena_dispose(&a);
}

static void rewrites(void **state)
{
    struct tr_proxy_config *cfg = load();
    const struct tr_proxy_route_config *rw = &cfg->routes[1];
    check_target(rw, "/orders/7?x=1", NULL, "/api/orders/7?x=1");
    check_target(rw, "/orders", NULL, "/api/orders");
    check_target(rw, "/orders?", NULL, "/api/orders?");
    check_target(&cfg->routes[3], "/strip/a/b", NULL, "/a/b");
    check_target(&cfg->routes[3], "/strip/", NULL, "/");
    /* No rewrite: origin-form passes through; absolute-form becomes origin-form. */
    check_target(&cfg->routes[2], "/mix?y", NULL, "/mix?y");
    check_target(&cfg->routes[2], "http://h/mix/z?q=2", "/mix/z", "/mix/z?q=2");
    tr_proxy_config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_match_wins),
        cmocka_unit_test(split_draws_by_weight),
        cmocka_unit_test(rewrites),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
