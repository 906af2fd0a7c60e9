/* SPDX-License-Identifier: Apache-2.0 */
/* Endpoints whose port comes from a Service.Meta key (a sidecar's port beside the
 * app's): tr_proxy_discovery_parse_port(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/discovery.h"
#include "proxy/endpoints.h"

static void port_from_meta(void **state)
{
    const char *json =
        "[{\"Node\":{\"Address\":\"10.0.0.1\"},"
        "  \"Service\":{\"Address\":\"127.0.0.1\",\"Port\":8080,"
        "              \"Meta\":{\"dapr_http_port\":\"3500\"}}},"
        " {\"Service\":{\"Address\":\"127.0.0.2\",\"Port\":8081,\"Meta\":{}}},"
        " {\"Service\":{\"Address\":\"127.0.0.3\",\"Port\":8082,"
        "              \"Meta\":{\"dapr_http_port\":\"99999\"}}},"
        " {\"Service\":{\"Address\":\"127.0.0.4\",\"Port\":8083,"
        "              \"Meta\":{\"dapr_http_port\":\"12x\"}}},"
        " {\"Service\":{\"Address\":\"127.0.0.5\",\"Port\":8084,"
        "              \"Meta\":{\"dapr_http_port\":3501}}},"
        " {\"Service\":{\"Address\":\"127.0.0.6\",\"Port\":8085,"
        "              \"Meta\":{\"dapr_http_port\":\"3502\"}}}]";
    struct tr_proxy_eps *s = tr_proxy_discovery_parse_port(json, strlen(json), 1, "dapr_http_port");
    assert_non_null(s);
    /* Missing, out-of-range, non-numeric and non-string values are skipped. */
    assert_int_equal(s->n, 2);
    assert_string_equal(s->eps[0].name, "127.0.0.1:3500");
    assert_string_equal(s->eps[1].name, "127.0.0.6:3502");
    tr_proxy_eps_unref(s);
    /* Without a key: Service.Port as before. */
    s = tr_proxy_discovery_parse_port(json, strlen(json), 1, NULL);
    assert_int_equal(s->n, 6);
    assert_string_equal(s->eps[0].name, "127.0.0.1:8080");
    tr_proxy_eps_unref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(port_from_meta),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
