/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http/router.h"

static void h1(struct tr_http_req *req)
{
    (void)req;
}

static void h2(struct tr_http_req *req)
{
    (void)req;
}

static struct tr_route_match match(const struct tr_router *r, const char *method, const char *path)
{
    struct tr_route_match m;
    tr_router_match(r, tr_slice_cstr(method), tr_slice_cstr(path), &m);
    return m;
}

static void assert_param(const struct tr_route_match *m, size_t i, const char *name,
                         const char *value)
{
    assert_true(i < m->nparams);
    assert_int_equal(m->params[i].name.len, strlen(name));
    assert_memory_equal(m->params[i].name.ptr, name, strlen(name));
    assert_int_equal(m->params[i].value.len, strlen(value));
    if (strlen(value) > 0) {
        assert_memory_equal(m->params[i].value.ptr, value, strlen(value));
    }
}

static void literal_param_and_rest(void **state)
{
    struct tr_router r;
    tr_router_init(&r);
    assert_int_equal(tr_router_add(&r, "GET", "/v1/agent/services", h1, NULL, 0), 0);
    assert_int_equal(tr_router_add(&r, "PUT", "/v1/agent/service/deregister/:id", h2, NULL, 0), 0);
    assert_int_equal(tr_router_add(&r, "GET", "/v1/kv/*key", h1, (void *)1, 0), 0);
    assert_int_equal(tr_router_add(&r, "PUT", "/v1/kv/*key", h2, (void *)2, 0), 0);
    assert_int_equal(tr_router_add(&r, "GET", "/", h1, NULL, 0), 0);

    struct tr_route_match m = match(&r, "GET", "/v1/agent/services");
    assert_non_null(m.route);
    assert_ptr_equal(tr_route_handler(m.route), h1);
    assert_int_equal(m.nparams, 0);

    m = match(&r, "PUT", "/v1/agent/service/deregister/web-1");
    assert_non_null(m.route);
    assert_param(&m, 0, "id", "web-1");

    m = match(&r, "PUT", "/v1/agent/service/deregister/");
    assert_null(m.route);
    m = match(&r, "PUT", "/v1/agent/service/deregister/a/b");
    assert_null(m.route);

    m = match(&r, "GET", "/v1/kv/a/b/c");
    assert_non_null(m.route);
    assert_ptr_equal(tr_route_data(m.route), (void *)1);
    assert_param(&m, 0, "key", "a/b/c");
    m = match(&r, "PUT", "/v1/kv/x");
    assert_ptr_equal(tr_route_data(m.route), (void *)2);
    m = match(&r, "GET", "/v1/kv/");
    assert_non_null(m.route);
    assert_param(&m, 0, "key", "");

    m = match(&r, "GET", "/");
    assert_non_null(m.route);
    m = match(&r, "GET", "/nope");
    assert_null(m.route);
    assert_false(m.method_mismatch);
    m = match(&r, "GET", "");
    assert_null(m.route);
    tr_router_dispose(&r);
}

static void method_mismatch_lists_allow(void **state)
{
    struct tr_router r;
    tr_router_init(&r);
    assert_int_equal(tr_router_add(&r, "GET", "/kv/:k", h1, NULL, 0), 0);
    assert_int_equal(tr_router_add(&r, "PUT", "/kv/:k", h1, NULL, 0), 0);
    assert_int_equal(tr_router_add(&r, "DELETE", "/kv/:k", h1, NULL, 0), 0);
    struct tr_route_match m = match(&r, "POST", "/kv/a");
    assert_null(m.route);
    assert_true(m.method_mismatch);
    assert_string_equal(m.allow, "GET, PUT, DELETE");
    m = match(&r, "DELETE", "/kv/a");
    assert_non_null(m.route);
    assert_false(m.method_mismatch);
    tr_router_dispose(&r);
}

static void any_method_and_trailing_slash(void **state)
{
    struct tr_router r;
    tr_router_init(&r);
    assert_int_equal(tr_router_add(&r, "*", "/echo/", h1, NULL, 0), 0);
    assert_non_null(match(&r, "PATCH", "/echo/").route);
    assert_null(match(&r, "PATCH", "/echo").route);
    tr_router_dispose(&r);
}

static void malformed_patterns_rejected(void **state)
{
    struct tr_router r;
    tr_router_init(&r);
    assert_int_equal(tr_router_add(&r, "GET", "", h1, NULL, 0), -EINVAL);
    assert_int_equal(tr_router_add(&r, "GET", "nope", h1, NULL, 0), -EINVAL);
    assert_int_equal(tr_router_add(&r, "GET", "/a/:", h1, NULL, 0), -EINVAL);
    assert_int_equal(tr_router_add(&r, "GET", "/a/*rest/b", h1, NULL, 0), -EINVAL);
    assert_int_equal(tr_router_add(&r, "GET", "/a//b", h1, NULL, 0), -EINVAL);
    assert_int_equal(tr_router_add(&r, "GET", "/:a/:b/:c/:d/:e/:f/:g/:h/:i", h1, NULL, 0),
                     -EINVAL);
    assert_int_equal(r.nroutes, 0);
    tr_router_dispose(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(literal_param_and_rest),
        cmocka_unit_test(method_mismatch_lists_allow),
        cmocka_unit_test(any_method_and_trailing_slash),
        cmocka_unit_test(malformed_patterns_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
