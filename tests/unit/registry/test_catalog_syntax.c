/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "registry/catalog.h"

#define S(x) tr_slice_cstr(x)

static void durations_parse_go_syntax(void **state)
{
    static const struct {
        const char *text;
        uint64_t ms;
    } good[] = {
        {"10s", 10000},  {"1m30s", 90000},    {"1.5s", 1500},    {"250ms", 250}, {"1h", 3600000},
        {"0", 0},        {"100us", 1},        {"1ns", 1},        {"2m", 120000}, {"+3s", 3000},
        {"0.5m", 30000}, {"1h0m0s", 3600000}, {"1\xc2\xb5s", 1},
    };
    for (size_t i = 0; i < TR_ARRAY_LEN(good); i++) {
        uint64_t ms = 99;
        assert_int_equal(tr_cat_parse_duration(S(good[i].text), &ms), 0);
        assert_int_equal(ms, good[i].ms);
    }
    static const char *const bad[] = {"",
                                      "10",
                                      "10 seconds",
                                      "-5s",
                                      "5 s",
                                      "s",
                                      "1.s5",
                                      "10sec",
                                      "1d",
                                      ".",
                                      "99999999999999999999h",
                                      "1s-"};
    for (size_t i = 0; i < TR_ARRAY_LEN(bad); i++) {
        uint64_t ms;
        assert_int_equal(tr_cat_parse_duration(S(bad[i]), &ms), -EINVAL);
    }
}

static void durations_format_like_go(void **state)
{
    char buf[48];
    static const struct {
        uint64_t ms;
        const char *text;
    } cases[] = {
        {0, "0s"},       {500, "500ms"},     {1000, "1s"},        {1500, "1.5s"},
        {60000, "1m0s"}, {90500, "1m30.5s"}, {3600000, "1h0m0s"}, {3723004, "1h2m3.004s"},
    };
    for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
        tr_cat_format_duration(cases[i].ms, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].text);
        uint64_t back;
        assert_int_equal(tr_cat_parse_duration(S(buf), &back), 0);
        assert_int_equal(back, cases[i].ms);
    }
}

static void urls_and_host_ports(void **state)
{
    char host[256];
    uint16_t port;
    const char *target;
    assert_int_equal(tr_cat_parse_http_url("http://127.0.0.1:8080/health?x=1", host, sizeof(host),
                                           &port, &target),
                     0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_string_equal(target, "/health?x=1");
    assert_int_equal(
        tr_cat_parse_http_url("http://example.com", host, sizeof(host), &port, &target), 0);
    assert_string_equal(host, "example.com");
    assert_int_equal(port, 80);
    assert_string_equal(target, "");
    assert_int_equal(tr_cat_parse_http_url("http://[::1]:81/", host, sizeof(host), &port, &target),
                     0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 81);
    assert_int_equal(tr_cat_parse_http_url("https://a/", host, sizeof(host), &port, &target),
                     -EPROTONOSUPPORT);
    assert_int_equal(tr_cat_parse_http_url("ftp://a/", host, sizeof(host), &port, &target),
                     -EINVAL);
    assert_int_equal(tr_cat_parse_http_url("http://u@a/", host, sizeof(host), &port, &target),
                     -EINVAL);
    assert_int_equal(tr_cat_parse_http_url("http://a:0/", host, sizeof(host), &port, &target),
                     -EINVAL);
    assert_int_equal(tr_cat_parse_http_url("http://a/b c", host, sizeof(host), &port, &target),
                     -EINVAL);
    assert_int_equal(tr_cat_split_hostport("db:5432", host, sizeof(host), &port), 0);
    assert_int_equal(port, 5432);
    assert_int_equal(tr_cat_split_hostport("db", host, sizeof(host), &port), -EINVAL);
    assert_int_equal(tr_cat_split_hostport(":80", host, sizeof(host), &port), -EINVAL);
    assert_int_equal(tr_cat_split_hostport("::1:80", host, sizeof(host), &port), -EINVAL);
    assert_int_equal(tr_cat_split_hostport("a:99999", host, sizeof(host), &port), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(durations_parse_go_syntax),
        cmocka_unit_test(durations_format_like_go),
        cmocka_unit_test(urls_and_host_ports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
