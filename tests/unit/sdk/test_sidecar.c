/* SPDX-License-Identifier: Apache-2.0 */
/* The sidecar client against a fake sidecar (fake_sidecar.h): state with ETags and
 * conflicts, bulk and transactions, optimistic updates under contention, invoke,
 * publish, timeouts and refusals, waiting for readiness, trace-context propagation
 * from a handler, and cancellation at the shutdown deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fake_sidecar.h"

struct env {
    struct fake_sidecar fake;
    struct running_app ra;
    int port;
    struct trellis_sidecar *sc;
};

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->port = app_start(&e->ra, fake_sidecar_app(&e->fake));
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", e->port);
    e->sc = trellis_sidecar_new(addr);
    *state = e;
    return e->port > 0 && e->sc != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    struct env *e = *state;
    trellis_sidecar_free(e->sc);
    int rc = app_stop(&e->ra);
    trellis_app_free(e->ra.app);
    fake_sidecar_dispose(&e->fake);
    free(e);
    return rc;
}

static void state_roundtrip(void **state)
{
    struct env *e = *state;
    struct trellis_json *v = NULL;
    char *etag = NULL;
    assert_int_equal(trellis_state_get(e->sc, "store", "k1", &v, &etag), TRELLIS_ENOTFOUND);
    assert_null(v);
    assert_null(etag);

    struct trellis_json *value = trellis_json_pack("{s:i, s:s}", "n", 1, "s", "a b/c");
    assert_int_equal(trellis_state_save(e->sc, "store", "k1", value, NULL), 0);
    assert_int_equal(trellis_state_get(e->sc, "store", "k1", &v, &etag), 0);
    assert_true(trellis_json_equal(v, value));
    assert_non_null(etag);
    trellis_json_free(v);

    /* A stale ETag loses; the current one wins and changes the ETag. */
    struct trellis_state_opts stale = {.etag = "999"};
    assert_int_equal(trellis_state_save(e->sc, "store", "k1", value, &stale), TRELLIS_ECONFLICT);
    assert_non_null(strstr(trellis_last_error(), "409"));
    struct trellis_state_opts current = {.etag = etag};
    assert_int_equal(trellis_state_save(e->sc, "store", "k1", value, &current), 0);
    assert_int_equal(trellis_state_save(e->sc, "store", "k1", value, &current), TRELLIS_ECONFLICT);
    /* First-write without an ETag creates only. */
    struct trellis_state_opts create = {.first_write = true};
    assert_int_equal(trellis_state_save(e->sc, "store", "k1", value, &create), TRELLIS_ECONFLICT);
    assert_int_equal(trellis_state_save(e->sc, "store", "k2", value, &create), 0);
    /* Delete: stale ETag conflicts, none deletes, missing is fine. */
    assert_int_equal(trellis_state_delete(e->sc, "store", "k1", etag), TRELLIS_ECONFLICT);
    assert_int_equal(trellis_state_delete(e->sc, "store", "k1", NULL), 0);
    assert_int_equal(trellis_state_delete(e->sc, "store", "k1", NULL), 0);
    assert_int_equal(trellis_state_get(e->sc, "store", "k1", &v, NULL), TRELLIS_ENOTFOUND);
    trellis_free(etag);
    trellis_json_free(value);

    /* Keys are percent-encoded in the URL and come back intact. */
    struct trellis_json *s = trellis_json_str("x");
    assert_int_equal(trellis_state_save(e->sc, "store", "odd key?&#", s, NULL), 0);
    assert_int_equal(trellis_state_get(e->sc, "store", "odd key?&#", &v, NULL), 0);
    assert_string_equal(trellis_json_string(v), "x");
    trellis_json_free(v);
    trellis_json_free(s);
    assert_int_equal(trellis_state_get(e->sc, "", "k", &v, NULL), -EINVAL);
}

static void bulk_and_transaction(void **state)
{
    struct env *e = *state;
    struct trellis_json *one = trellis_json_int(1);
    struct trellis_json *two = trellis_json_int(2);
    struct trellis_state_op ops[] = {
        {.kind = TRELLIS_STATE_UPSERT, .key = "a", .value = one},
        {.kind = TRELLIS_STATE_UPSERT, .key = "b", .value = two, .first_write = true},
    };
    assert_int_equal(trellis_state_transaction(e->sc, "s", ops, 2), 0);
    const char *keys[] = {"a", "missing", "b"};
    struct trellis_state_item *items = NULL;
    assert_int_equal(trellis_state_get_bulk(e->sc, "s", keys, 3, &items), 0);
    assert_string_equal(items[0].key, "a");
    assert_int_equal(trellis_json_int_value(items[0].value), 1);
    assert_null(items[1].value);
    assert_null(items[1].etag);
    assert_int_equal(trellis_json_int_value(items[2].value), 2);
    assert_non_null(items[2].etag);

    /* A failing ETag check in a transaction writes nothing. */
    struct trellis_state_op bad[] = {
        {.kind = TRELLIS_STATE_UPSERT, .key = "a", .value = two, .etag = items[0].etag},
        {.kind = TRELLIS_STATE_DELETE, .key = "b", .etag = "12345"},
    };
    assert_int_equal(trellis_state_transaction(e->sc, "s", bad, 2), TRELLIS_ECONFLICT);
    struct trellis_json *v = NULL;
    assert_int_equal(trellis_state_get(e->sc, "s", "a", &v, NULL), 0);
    assert_int_equal(trellis_json_int_value(v), 1);
    trellis_json_free(v);
    bad[1].etag = items[2].etag;
    assert_int_equal(trellis_state_transaction(e->sc, "s", bad, 2), 0);
    assert_int_equal(trellis_state_get(e->sc, "s", "b", &v, NULL), TRELLIS_ENOTFOUND);
    trellis_state_items_free(items, 3);
    struct trellis_state_op nokey[] = {{.kind = TRELLIS_STATE_UPSERT, .value = one}};
    assert_int_equal(trellis_state_transaction(e->sc, "s", nokey, 1), -EINVAL);
    trellis_json_free(one);
    trellis_json_free(two);
}

static int increment(struct trellis_json **value, void *data)
{
    int64_t n = 0;
    if (*value != NULL) {
        trellis_json_get_int(*value, "n", &n);
        trellis_json_free(*value);
    }
    *value = trellis_json_pack("{s:I}", "n", n + 1);
    return TRELLIS_STATE_WRITE;
}

struct incr_arg {
    struct trellis_sidecar *sc;
    int failures;
};

static void *incr_thread(void *arg)
{
    struct incr_arg *a = arg;
    for (int i = 0; i < 25; i++) {
        if (trellis_state_update(a->sc, "s", "counter", increment, NULL) != 0) {
            a->failures++;
        }
    }
    return NULL;
}

static int keep(struct trellis_json **value, void *data)
{
    *(bool *)data = *value != NULL;
    return TRELLIS_STATE_KEEP;
}

static int refuse(struct trellis_json **value, void *data)
{
    return -EPERM;
}

static void update_under_contention(void **state)
{
    struct env *e = *state;
    pthread_t th[8];
    struct incr_arg args[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (struct incr_arg){.sc = e->sc};
        pthread_create(&th[i], NULL, incr_thread, &args[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    struct trellis_json *v = NULL;
    assert_int_equal(trellis_state_get(e->sc, "s", "counter", &v, NULL), 0);
    int64_t n = 0;
    assert_true(trellis_json_get_int(v, "n", &n));
    assert_int_equal(n, 200); /* no increment lost */
    trellis_json_free(v);
    bool existed = false;
    assert_int_equal(trellis_state_update(e->sc, "s", "counter", keep, &existed), 0);
    assert_true(existed);
    assert_int_equal(trellis_state_update(e->sc, "s", "counter", refuse, NULL), -EPERM);
}

static void invoke_calls(void **state)
{
    struct env *e = *state;
    struct trellis_response *resp = NULL;
    struct trellis_json *body = trellis_json_pack("{s:i}", "x", 1);
    assert_int_equal(
        trellis_invoke(e->sc, "inventory", "POST", "/inventory/reserve?q=1", body, NULL, &resp), 0);
    trellis_json_free(body);
    assert_int_equal(trellis_response_status(resp), 200);
    assert_string_equal(trellis_response_header(resp, "x-echo"), "1");
    struct trellis_json *j = trellis_response_json(resp);
    assert_string_equal(trellis_json_get_str(j, "app"), "inventory");
    assert_string_equal(trellis_json_get_str(j, "method"), "POST");
    assert_string_equal(trellis_json_get_str(j, "path"), "inventory/reserve");
    assert_string_equal(trellis_json_get_str(j, "q"), "1");
    assert_string_equal(trellis_json_get_str(j, "body"), "{\"x\":1}");
    assert_string_equal(trellis_json_get_str(j, "content_type"), "application/json");
    assert_non_null(trellis_json_get_str(j, "traceparent"));
    trellis_response_free(resp);

    /* Error statuses are responses, not failures. */
    assert_int_equal(trellis_invoke_raw(e->sc, "x", "GET", "status/418", NULL, 0, NULL, &resp), 0);
    assert_int_equal(trellis_response_status(resp), 418);
    assert_non_null(strstr(trellis_response_body(resp, NULL), "teapot"));
    trellis_response_free(resp);

    /* Extra headers and raw bodies. */
    const char *hdrs[] = {"tracestate", "k=v", NULL};
    struct trellis_call_opts opts = {.content_type = "text/plain", .headers = hdrs};
    assert_int_equal(trellis_invoke_raw(e->sc, "x", "PUT", "p", "raw", 3, &opts, &resp), 0);
    j = trellis_response_json(resp);
    assert_string_equal(trellis_json_get_str(j, "body"), "raw");
    assert_string_equal(trellis_json_get_str(j, "content_type"), "text/plain");
    assert_string_equal(trellis_json_get_str(j, "tracestate"), "k=v");
    trellis_response_free(resp);

    /* A per-call timeout. */
    struct trellis_call_opts quick = {.timeout_ms = 100};
    uint64_t t0 = now_ms();
    assert_int_equal(trellis_invoke(e->sc, "x", "GET", "/slow?sleep_ms=600", NULL, &quick, &resp),
                     -ETIMEDOUT);
    assert_null(resp);
    assert_true(now_ms() - t0 < 500);
    assert_non_null(strstr(trellis_last_error(), "timeout"));
    assert_int_equal(trellis_invoke(e->sc, "", "GET", "/", NULL, NULL, &resp), -EINVAL);
}

static void refused_and_wait(void **state)
{
    struct env *e = *state;
    /* A port nobody listens on: the fake's port after a bind/close would race; use the
     * discard port, which is closed on test machines. */
    struct trellis_sidecar *nobody = trellis_sidecar_new("127.0.0.1:9");
    struct trellis_response *resp = NULL;
    assert_int_equal(trellis_invoke(nobody, "x", "GET", "/", NULL, NULL, &resp), -ECONNREFUSED);
    assert_non_null(strstr(trellis_last_error(), "127.0.0.1:9"));
    uint64_t t0 = now_ms();
    assert_int_equal(trellis_sidecar_wait(nobody, 300), -ETIMEDOUT);
    assert_true(now_ms() - t0 >= 300);
    trellis_sidecar_free(nobody);
    assert_null(trellis_sidecar_new("not an address"));

    e->fake.not_ready_polls = 3;
    assert_int_equal(trellis_sidecar_wait(e->sc, 5000), 0);
    assert_true(e->fake.not_ready_polls < 0);
}

static void publish_events(void **state)
{
    struct env *e = *state;
    struct trellis_json *data = trellis_json_pack("{s:s}", "order_id", "o1");
    assert_int_equal(trellis_publish(e->sc, "pubsub", "orders/eu", data, NULL), 0);
    assert_string_equal(e->fake.last_publish_topic, "pubsub/orders/eu");
    assert_string_equal(e->fake.last_publish_type, "application/json");
    assert_string_equal(e->fake.last_publish_body, "{\"order_id\":\"o1\"}");

    struct trellis_publish_opts opts = {.id = "order.created-o1", .type = "order.created"};
    assert_int_equal(trellis_publish(e->sc, "pubsub", "order.created", data, &opts), 0);
    assert_string_equal(e->fake.last_publish_type, "application/cloudevents+json");
    struct trellis_json *ce =
        trellis_json_parse(e->fake.last_publish_body, strlen(e->fake.last_publish_body), NULL, 0);
    assert_string_equal(trellis_json_get_str(ce, "id"), "order.created-o1");
    assert_string_equal(trellis_json_get_str(ce, "type"), "order.created");
    assert_string_equal(trellis_json_get_str(ce, "specversion"), "1.0");
    assert_string_equal(trellis_json_get_str(ce, "datacontenttype"), "application/json");
    assert_true(trellis_json_equal(trellis_json_get(ce, "data"), data));
    trellis_json_free(ce);

    /* Without an id the client makes a UUID. */
    struct trellis_publish_opts typed = {.type = "t"};
    assert_int_equal(trellis_publish(e->sc, "pubsub", "x", data, &typed), 0);
    ce = trellis_json_parse(e->fake.last_publish_body, strlen(e->fake.last_publish_body), NULL, 0);
    assert_int_equal(strlen(trellis_json_get_str(ce, "id")), 36);
    trellis_json_free(ce);

    assert_int_equal(trellis_publish(e->sc, "pubsub", "fail", data, NULL), TRELLIS_EHTTP);
    assert_non_null(strstr(trellis_last_error(), "500"));
    assert_non_null(strstr(trellis_last_error(), "broker down"));
    assert_int_equal(trellis_publish_raw(e->sc, "pubsub", "t", "text/plain", "hi", 2), 0);
    assert_string_equal(e->fake.last_publish_body, "hi");
    trellis_json_free(data);
}

/* ------------------------------------------------------------ trace propagation */

static void call_twice(struct trellis_req *req, void *data)
{
    struct trellis_sidecar *sc = trellis_req_sidecar(req);
    struct trellis_response *r1 = NULL;
    struct trellis_response *r2 = NULL;
    if (trellis_invoke(sc, "b", "GET", "/x", NULL, NULL, &r1) != 0 ||
        trellis_invoke(sc, "c", "GET", "/y", NULL, NULL, &r2) != 0) {
        trellis_reply_error(req, 502, "bad_gateway", "%s", trellis_last_error());
        trellis_response_free(r1);
        return;
    }
    struct trellis_json *j1 = trellis_response_json(r1);
    struct trellis_json *j2 = trellis_response_json(r2);
    trellis_reply_json(req, 200,
                       trellis_json_pack("{s:s, s:s, s:s?, s:s}", "first",
                                         trellis_json_get_str(j1, "traceparent"), "second",
                                         trellis_json_get_str(j2, "traceparent"), "state",
                                         trellis_json_get_str(j1, "tracestate"), "own",
                                         trellis_req_traceparent(req)));
    trellis_response_free(r1);
    trellis_response_free(r2);
}

static void trace_context_propagates(void **state)
{
    struct env *e = *state;
    char port[16];
    snprintf(port, sizeof(port), "%d", e->port);
    setenv("DAPR_HTTP_PORT", port, 1);
    struct trellis_app *app = trellis_app_new("caller");
    trellis_app_route(app, "GET", "/go", call_twice, NULL);
    struct running_app ra;
    int aport = app_start(&ra, app);
    struct http_result r;
    const char *incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_int_equal(http_do(aport, "GET", "/go",
                             "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                             "\r\ntracestate: vendor=1\r\n",
                             NULL, &r),
                     0);
    assert_int_equal(r.status, 200);
    struct trellis_json *j = trellis_json_parse(r.body, r.body_len, NULL, 0);
    http_result_free(&r);
    const char *first = trellis_json_get_str(j, "first");
    const char *second = trellis_json_get_str(j, "second");
    const char *own = trellis_json_get_str(j, "own");
    /* Same trace id everywhere, a new span id for the request and for each call. */
    assert_memory_equal(first, incoming, 36);
    assert_memory_equal(second, incoming, 36);
    assert_memory_equal(own, incoming, 36);
    assert_string_not_equal(first + 36, incoming + 36);
    assert_string_not_equal(first + 36, second + 36);
    assert_string_not_equal(own + 36, first + 36);
    assert_string_equal(trellis_json_get_str(j, "state"), "vendor=1");
    trellis_json_free(j);

    /* Without a traceparent the request starts a trace its calls share. */
    assert_int_equal(http_do(aport, "GET", "/go", NULL, NULL, &r), 0);
    j = trellis_json_parse(r.body, r.body_len, NULL, 0);
    http_result_free(&r);
    first = trellis_json_get_str(j, "first");
    second = trellis_json_get_str(j, "second");
    assert_memory_equal(first, second, 36);
    assert_memory_not_equal(first, incoming, 36);
    assert_int_equal(trellis_json_typeof(trellis_json_get(j, "state")), TRELLIS_JSON_NULL);
    trellis_json_free(j);
    assert_int_equal(app_stop(&ra), 0);
    trellis_app_free(app);
}

/* ------------------------------------------------------------ shutdown deadline */

static void call_slow(struct trellis_req *req, void *data)
{
    struct trellis_response *resp = NULL;
    int rc =
        trellis_invoke(trellis_req_sidecar(req), "x", "GET", "/s?sleep_ms=1500", NULL, NULL, &resp);
    *(int *)data = rc;
    trellis_response_free(resp);
    trellis_reply(req, 200, NULL, NULL, 0);
}

static void *slow_request(void *arg)
{
    struct http_result r;
    if (http_do(*(int *)arg, "GET", "/slow", NULL, NULL, &r) == 0) {
        http_result_free(&r);
    }
    return NULL;
}

static void deadline_cancels_sidecar_calls(void **state)
{
    struct env *e = *state;
    char port[16];
    snprintf(port, sizeof(port), "%d", e->port);
    setenv("DAPR_HTTP_PORT", port, 1);
    setenv("TRELLIS_DRAIN_MS", "200", 1);
    struct trellis_app *app = trellis_app_new("caller");
    unsetenv("TRELLIS_DRAIN_MS");
    int rc = 1;
    trellis_app_route(app, "GET", "/slow", call_slow, &rc);
    struct running_app ra;
    int aport = app_start(&ra, app);
    pthread_t th;
    pthread_create(&th, NULL, slow_request, &aport);
    sleep_ms(150);
    uint64_t t0 = now_ms();
    trellis_app_stop(app);
    pthread_join(ra.thread, NULL);
    /* The drain deadline (200 ms) cancelled the 1.5 s call. */
    assert_true(now_ms() - t0 < 1000);
    assert_int_equal(ra.rc, 0);
    assert_int_equal(rc, -ECANCELED);
    pthread_join(th, NULL);
    trellis_app_free(app);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(state_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(bulk_and_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(update_under_contention, setup, teardown),
        cmocka_unit_test_setup_teardown(invoke_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_and_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(publish_events, setup, teardown),
        cmocka_unit_test_setup_teardown(trace_context_propagates, setup, teardown),
        cmocka_unit_test_setup_teardown(deadline_cancels_sidecar_calls, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
