/* SPDX-License-Identifier: Apache-2.0 */
/* gateway.yaml parsing: the issue's example in full, defaults, the one-line form, and
 * one negative case per kind of mistake, each reported at its file:line:col. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/config.h"
#include "proxy/endpoints.h"

static const char issue_example[] =
    "listen: 127.0.0.1:8080\n"
    "admin: 127.0.0.1:9901\n"
    "registry: http://127.0.0.1:8500\n"
    "clusters:\n"
    "  - name: products\n"
    "    service: product\n"
    "    lb: least_request\n"
    "    timeout: 2s\n"
    "    retry: {attempts: 2, on: [connect_failure, reset, 503, gateway_error], "
    "per_try_timeout: 500ms, budget_percent: 20, idempotency_header: Idempotency-Key}\n"
    "    circuit_breaker: {max_connections: 1024, max_pending: 256, max_requests: 1024, "
    "consecutive_failures: 5, open_for: 10s}\n"
    "    outlier: {consecutive_5xx: 5, base_ejection: 30s, max_ejection_percent: 50}\n"
    "  - name: sticky\n"
    "    service: product\n"
    "    lb: ring_hash\n"
    "    hash_on: header:x-user-id\n"
    "  - name: orders-v2\n"
    "    endpoints: [127.0.0.1:9101]\n"
    "  - name: legacy\n"
    "    endpoints: [127.0.0.1:9001, {address: 127.0.0.1:9002, weight: 3}]\n"
    "routes:\n"
    "  - match: {prefix: /products, methods: [GET]}\n"
    "    cluster: products\n"
    "  - match: {prefix: /orders, headers: {x-canary: \"1\"}}\n"
    "    cluster: orders-v2\n"
    "  - match: {prefix: /orders}\n"
    "    split: [{cluster: orders-v2, weight: 10}, {cluster: legacy, weight: 90}]\n"
    "    mirror: {cluster: orders-v2, percent: 100}\n"
    "    rate_limit: {requests_per_second: 100, burst: 200, key: client_ip}\n"
    "    rewrite: {prefix: /api/orders}\n";

static struct tr_proxy_config *parse_ok(const char *text)
{
    struct tr_proxy_config *cfg = NULL;
    struct tr_conf_err err = {{0}};
    int rc = tr_proxy_config_parse("gateway.yaml", text, strlen(text), 2, &cfg, &err);
    if (rc != 0) {
        fail_msg("unexpected error: %s", err.msg);
    }
    return cfg;
}

static void parse_fails(const char *text, const char *expect)
{
    struct tr_proxy_config *cfg = NULL;
    struct tr_conf_err err = {{0}};
    int rc = tr_proxy_config_parse("gateway.yaml", text, strlen(text), 1, &cfg, &err);
    if (rc == 0) {
        tr_proxy_config_unref(cfg);
        fail_msg("accepted, expected: %s", expect);
    }
    if (strstr(err.msg, expect) == NULL) {
        fail_msg("got \"%s\", expected \"%s\"", err.msg, expect);
    }
}

static void issue_example_parses(void **state)
{
    struct tr_proxy_config *cfg = parse_ok(issue_example);
    assert_string_equal(cfg->listen, "127.0.0.1:8080");
    assert_string_equal(cfg->admin, "127.0.0.1:9901");
    assert_true(cfg->has_registry);
    assert_string_equal(cfg->registry_host, "127.0.0.1:8500");
    assert_int_equal(cfg->nclusters, 4);
    const struct tr_proxy_cluster_config *p = &cfg->clusters[0];
    assert_string_equal(p->service, "product");
    assert_null(p->eps);
    assert_int_equal(p->lb, TR_PROXY_LB_LEAST_REQUEST);
    assert_int_equal(p->timeout_ms, 2000);
    assert_true(p->retry.configured);
    assert_int_equal(p->retry.attempts, 2);
    assert_int_equal(p->retry.on, TR_PROXY_RETRY_CONNECT_FAILURE | TR_PROXY_RETRY_RESET |
                                      TR_PROXY_RETRY_503 | TR_PROXY_RETRY_GATEWAY_ERROR);
    assert_int_equal(p->retry.per_try_timeout_ms, 500);
    assert_int_equal(p->retry.budget_percent, 20);
    assert_true(tr_slice_eq(p->retry.idempotency_header, TR_SLICE_LIT("Idempotency-Key")));
    assert_int_equal(p->breaker.max_pending, 256);
    assert_int_equal(p->breaker.open_for_ms, 10000);
    assert_int_equal(p->outlier.base_ejection_ms, 30000);
    assert_int_equal(p->outlier.max_ejection_percent, 50);
    assert_int_equal(cfg->clusters[1].hash_on, TR_PROXY_HASH_HEADER);
    assert_int_equal(cfg->clusters[1].hash_name.len, strlen("x-user-id"));
    const struct tr_proxy_cluster_config *legacy = &cfg->clusters[3];
    assert_int_equal(legacy->eps->n, 2);
    assert_int_equal(legacy->eps->eps[1].weight, 3);
    assert_string_equal(legacy->eps->eps[1].name, "127.0.0.1:9002");
    assert_int_equal(legacy->timeout_ms, TR_PROXY_DEFAULT_TIMEOUT_MS);
    /* Without retry:, connect failures are retried once. */
    assert_false(legacy->retry.configured);
    assert_int_equal(legacy->retry.attempts, 1);
    assert_int_equal(legacy->retry.on, TR_PROXY_RETRY_CONNECT_FAILURE);
    assert_int_equal(legacy->retry.idempotency_header.len, 0);

    assert_int_equal(cfg->nroutes, 3);
    const struct tr_proxy_route_config *r = &cfg->routes[0];
    assert_int_equal(r->nmethods, 1);
    assert_int_equal(r->nsplit, 1);
    assert_int_equal(r->split[0].cluster, 0);
    assert_string_equal(r->name, "/products");
    assert_int_equal(cfg->routes[1].nheaders, 1);
    r = &cfg->routes[2];
    assert_string_equal(r->name, "/orders#2");
    assert_int_equal(r->nsplit, 2);
    assert_int_equal(r->split_total, 100);
    assert_int_equal(r->split[1].cluster, 3);
    assert_true(r->has_mirror);
    assert_int_equal(r->mirror_cluster, 2);
    assert_true(r->has_rate_limit);
    assert_int_equal(r->rate_burst, 200);
    assert_true(r->has_rewrite);
    assert_int_equal(r->rate_max_keys, TR_PROXY_RATE_DEFAULT_KEYS);
    assert_int_equal(r->mirror_percent, 100);
    /* Every resilience section is implemented: nothing to warn about. */
    assert_int_equal(cfg->warnings.len, 0);
    tr_proxy_config_unref(cfg);
}

static void ring_hash_defaults_to_client_ip(void **state)
{
    struct tr_proxy_config *cfg = parse_ok("clusters:\n"
                                           "  - {name: a, lb: ring_hash, endpoints: [1.2.3.4:5]}\n"
                                           "routes:\n"
                                           "  - cluster: a\n");
    assert_int_equal(cfg->clusters[0].hash_on, TR_PROXY_HASH_CLIENT_IP);
    assert_null(cfg->listen);
    assert_string_equal(cfg->routes[0].name, "/");
    assert_int_equal(cfg->warnings.len, 0);
    tr_proxy_config_unref(cfg);
}

static void one_line_form(void **state)
{
    struct tr_proxy_config *cfg = NULL;
    struct tr_conf_err err;
    assert_int_equal(tr_proxy_config_from_targets("127.0.0.1:9001,127.0.0.1:9002", 4, &cfg, &err),
                     0);
    assert_int_equal(cfg->nclusters, 1);
    assert_int_equal(cfg->clusters[0].eps->n, 2);
    assert_int_equal(cfg->clusters[0].eps->nworkers, 4);
    assert_int_equal(cfg->clusters[0].lb, TR_PROXY_LB_ROUND_ROBIN);
    assert_int_equal(cfg->nroutes, 1);
    assert_int_equal(cfg->routes[0].prefix.len, 1);
    tr_proxy_config_unref(cfg);
    assert_int_equal(tr_proxy_config_from_targets("127.0.0.1:9001,,x", 1, &cfg, &err), -EINVAL);
    assert_int_equal(tr_proxy_config_from_targets("example.com:80", 1, &cfg, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "example.com:80"));
    assert_int_equal(tr_proxy_config_from_targets("127.0.0.1:0", 1, &cfg, &err), -EINVAL);
}

#define BASE "clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n"
#define ROUTE "routes:\n  - cluster: a\n"

static void mistakes_point_at_their_place(void **state)
{
    parse_fails(BASE "    timout: 2s\n" ROUTE,
                "gateway.yaml:4:5: unknown key \"timout\" in cluster section; did you mean "
                "\"timeout\"?");
    parse_fails(BASE "    timeout: fast\n" ROUTE, "gateway.yaml:4:14: expected a duration");
    parse_fails(BASE "    timeout: 0s\n" ROUTE, "gateway.yaml:4:14: timeout: must be more than 0");
    parse_fails(BASE "routes:\n  - cluster: b\n",
                "gateway.yaml:5:14: route refers to unknown cluster \"b\"");
    parse_fails(BASE "routes:\n  - {cluster: a, mirror: {cluster: z}}\n",
                "mirror refers to unknown cluster \"z\"");
    parse_fails(BASE "routes:\n  - {split: [{cluster: a, weight: 0}]}\n",
                "split: the weights add up to 0");
    parse_fails(BASE "routes:\n  - {cluster: a, split: [{cluster: a, weight: 1}]}\n",
                "exactly one of cluster: or split:");
    parse_fails(BASE "routes:\n  - {match: {prefix: api}, cluster: a}\n",
                "prefix: expected a path starting with '/'");
    parse_fails(BASE "routes:\n  - {match: {methods: [get]}, cluster: a}\n",
                "methods are case-sensitive");
    parse_fails(BASE "routes:\n  - {match: {path: /x}, cluster: a}\n",
                "unknown key \"path\" in match section");
    parse_fails(BASE "routes:\n  - {name: x, cluster: a}\n  - {name: x, cluster: a}\n",
                "route name \"x\" is used twice");
    parse_fails(BASE "  - name: a\n    endpoints: [127.0.0.1:2]\n" ROUTE,
                "gateway.yaml:4:11: cluster \"a\" is defined twice");
    parse_fails("clusters:\n  - name: a\n" ROUTE, "needs exactly one of service:");
    parse_fails("clusters:\n  - {name: a, endpoints: []}\n" ROUTE, "at least one address");
    parse_fails("clusters:\n  - {name: a, endpoints: [localhost]}\n" ROUTE,
                "expected an address like 127.0.0.1:9001");
    parse_fails("clusters:\n  - {name: a, endpoints: [{address: 1.2.3.4:5, weight: 0}]}\n" ROUTE,
                "gateway.yaml:2:56: expected an integer between 1 and 1000");
    parse_fails("clusters:\n  - {name: a, endpoints: [{address: 1.2.3.4:5, wieght: 2}]}\n" ROUTE,
                "did you mean \"weight\"?");
    parse_fails("clusters:\n  - {name: 'a b', endpoints: [1.2.3.4:5]}\n" ROUTE,
                "cluster name: expected letters");
    parse_fails(BASE "    lb: least_requests\n" ROUTE, "lb: expected round_robin");
    parse_fails(BASE "    hash_on: header:x\n" ROUTE, "hash_on is only used with lb: ring_hash");
    parse_fails(BASE "    lb: ring_hash\n    hash_on: query:x\n" ROUTE,
                "hash_on: expected header:NAME, cookie:NAME or client_ip");
    parse_fails(BASE "    retry: {on: [timeout]}\n" ROUTE, "retry on: expected connect_failure");
    parse_fails(BASE "    retry: {attempts: 11}\n" ROUTE,
                "gateway.yaml:4:23: expected an integer between 0 and 10");
    parse_fails(BASE "    retry: {budget_percent: 101}\n" ROUTE, "between 0 and 100, got \"101\"");
    parse_fails(BASE "    retry: {idempotency_header: 'Idempotency Key'}\n" ROUTE,
                "retry idempotency_header: expected a header name like Idempotency-Key, "
                "got \"Idempotency Key\"");
    parse_fails(BASE "    retry: {idempotency_header: ''}\n" ROUTE,
                "retry idempotency_header: expected a header name");
    parse_fails(BASE "    retry: {idempotency_header: [a]}\n" ROUTE, "expected a string");
    parse_fails(BASE "    circuit_breaker: {max_request: 1}\n" ROUTE,
                "did you mean \"max_requests\"?");
    parse_fails(BASE "routes:\n  - {cluster: a, rate_limit: {burst: 3}}\n",
                "missing key \"requests_per_second\"");
    parse_fails(BASE "routes:\n  - {cluster: a, rate_limit: {requests_per_second: 1, key: ip}}\n",
                "rate_limit key: expected client_ip");
    parse_fails("registry: https://127.0.0.1:8500\n" BASE ROUTE, "only http:// URLs");
    parse_fails("registry: http://consul:8500\n" BASE ROUTE, "numeric IP or localhost");
    parse_fails("listen: nowhere\n" BASE ROUTE, "gateway.yaml:1:9: expected host:port");
    parse_fails("listn: 1.2.3.4:5\n" BASE ROUTE, "did you mean \"listen\"?");
    parse_fails(BASE, "missing key \"routes\"");
    parse_fails(BASE "routes: []\n", "expected at least one route");
    parse_fails("clusters: {}\n" ROUTE, "expected a sequence");
    parse_fails("clusters:\n  - [1]\n" ROUTE, "expected a mapping");
}

static void resilience_defaults_and_limits(void **state)
{
    struct tr_proxy_config *cfg = parse_ok(
        "clusters:\n"
        "  - name: a\n"
        "    endpoints: [1.2.3.4:5]\n"
        "    circuit_breaker: {max_pending: 0}\n"
        "    outlier: {}\n"
        "routes:\n"
        "  - {match: {prefix: /x}, cluster: a, rate_limit: {requests_per_second: 5, key: route, "
        "max_keys: 50}}\n"
        "  - {cluster: a, rate_limit: {requests_per_second: 7, key: 'header:x-user', "
        "max_keys: 50}, mirror: {cluster: a}}\n");
    const struct tr_proxy_cluster_config *c = &cfg->clusters[0];
    assert_true(c->breaker.configured);
    assert_int_equal(c->breaker.max_pending, 0);
    assert_int_equal(c->breaker.max_connections, 1024);
    assert_int_equal(c->breaker.consecutive_failures, 5);
    assert_int_equal(c->breaker.open_for_ms, 10000);
    assert_true(c->outlier.configured);
    assert_int_equal(c->outlier.consecutive_5xx, 5);
    assert_int_equal(c->outlier.base_ejection_ms, 30000);
    assert_int_equal(c->outlier.max_ejection_percent, 10);
    assert_int_equal(cfg->routes[0].rate_key, TR_PROXY_RATE_ROUTE);
    assert_int_equal(cfg->routes[0].rate_max_keys, 1); /* one bucket for the route */
    assert_int_equal(cfg->routes[0].rate_burst, 5);    /* burst defaults to the rate */
    assert_int_equal(cfg->routes[1].rate_key, TR_PROXY_RATE_HEADER);
    assert_int_equal(cfg->routes[1].rate_max_keys, 50);
    assert_true(cfg->routes[1].rate_header.len == 6);
    assert_int_equal(cfg->routes[1].mirror_percent, 100);
    assert_int_equal(cfg->warnings.len, 0);
    tr_proxy_config_unref(cfg);
    parse_fails(BASE "    circuit_breaker: {max_connections: 0}\n" ROUTE,
                "gateway.yaml:4:40: expected an integer between 1 and 10000000");
    parse_fails(BASE
                "routes:\n  - {cluster: a, rate_limit: {requests_per_second: 1, max_keys: 0}}\n",
                "gateway.yaml:5:65: expected an integer between 1 and 10000000");
    parse_fails(BASE "routes:\n  - {cluster: a, mirror: {cluster: a, percent: 101}}\n",
                "expected an integer between 0 and 100");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(issue_example_parses),
        cmocka_unit_test(ring_hash_defaults_to_client_ip),
        cmocka_unit_test(resilience_defaults_and_limits),
        cmocka_unit_test(one_line_form),
        cmocka_unit_test(mistakes_point_at_their_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
