/* SPDX-License-Identifier: Apache-2.0 */
/* The SDK app over real sockets: routing and accessors, replies and their errors,
 * handlers on the pool not blocking the loop, the start hook and /healthz,
 * subscriptions, and graceful stop with a request in flight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sdk_harness.h"

/* ------------------------------------------------------------ handlers */

static void echo_item(struct trellis_req *req, void *data)
{
    const char *q = trellis_req_query(req, "q");
    const char *flag = trellis_req_query(req, "flag");
    trellis_reply_header(req, "X-Item", trellis_req_param(req, "id"));
    trellis_reply_json(req, 200,
                       trellis_json_pack("{s:s, s:s, s:s, s:s?, s:b, s:s?, s:s?}", "method",
                                         trellis_req_method(req), "path", trellis_req_path(req),
                                         "id", trellis_req_param(req, "id"), "q", q, "flag",
                                         flag != NULL && flag[0] == '\0', "hdr",
                                         trellis_req_header(req, "x-test"), "none",
                                         trellis_req_param(req, "nope")));
}

static void echo_body(struct trellis_req *req, void *data)
{
    size_t len;
    const char *body = trellis_req_body(req, &len);
    trellis_reply(req, 201, "text/plain", body, len);
}

static void sum_json(struct trellis_req *req, void *data)
{
    struct trellis_json *body = trellis_req_json(req);
    if (body == NULL) {
        return; /* 400 already sent */
    }
    int64_t a = 0;
    int64_t b = 0;
    if (!trellis_json_get_int(body, "a", &a) || !trellis_json_get_int(body, "b", &b)) {
        trellis_reply_error(req, 400, "bad_param", "fields \"a\" and \"b\" must be integers");
        return;
    }
    trellis_reply_json(req, 200, trellis_json_pack("{s:I}", "sum", a + b));
    trellis_reply(req, 500, NULL, NULL, 0); /* a second reply is ignored */
}

static void no_reply(struct trellis_req *req, void *data)
{
}

static void bad_headers(struct trellis_req *req, void *data)
{
    int r1 = trellis_reply_header(req, "X-Evil", "a\r\nSet-Cookie: x=1");
    int r2 = trellis_reply_header(req, "Bad Name", "v");
    int r3 = trellis_reply_header(req, "Content-Length", "5");
    int r4 = trellis_reply_header(req, "X-Good", "yes");
    trellis_reply_json(
        req, 200,
        trellis_json_pack("{s:i, s:i, s:i, s:i}", "r1", r1, "r2", r2, "r3", r3, "r4", r4));
}

static void wildcard(struct trellis_req *req, void *data)
{
    trellis_reply(req, 200, "text/plain", trellis_req_param(req, "rest"),
                  strlen(trellis_req_param(req, "rest")));
}

static void basic_app(struct trellis_app *app)
{
    assert_int_equal(trellis_app_route(app, "GET", "/items/{id}", echo_item, NULL), 0);
    assert_int_equal(trellis_app_route(app, "POST", "/echo", echo_body, NULL), 0);
    assert_int_equal(trellis_app_route(app, "POST", "/sum", sum_json, NULL), 0);
    assert_int_equal(trellis_app_route(app, "GET", "/silent", no_reply, NULL), 0);
    assert_int_equal(trellis_app_route(app, "GET", "/headers", bad_headers, NULL), 0);
    assert_int_equal(trellis_app_route(app, "*", "/files/*rest", wildcard, NULL), 0);
}

static void routes_and_accessors(void **state)
{
    struct trellis_app *app = trellis_app_new("test");
    basic_app(app);
    /* Bad patterns and methods are refused. */
    assert_int_equal(trellis_app_route(app, "GET", "no-slash", echo_body, NULL), -EINVAL);
    assert_int_equal(trellis_app_route(app, "GET", "/a/{}", echo_body, NULL), -EINVAL);
    assert_int_equal(trellis_app_route(app, "GET", "/a/{x", echo_body, NULL), -EINVAL);
    assert_int_equal(trellis_app_route(app, "G T", "/a", echo_body, NULL), -EINVAL);
    assert_int_equal(trellis_app_route(app, "GET", "/a", NULL, NULL), -EINVAL);
    struct running_app ra;
    int port = app_start(&ra, app);
    assert_true(port > 0);

    struct http_result r;
    assert_int_equal(http_do(port, "GET", "/items/a%20b?q=x+y&flag", "X-Test: hello\r\n", NULL, &r),
                     0);
    assert_int_equal(r.status, 200);
    struct trellis_json *j = trellis_json_parse(r.body, r.body_len, NULL, 0);
    assert_non_null(j);
    assert_string_equal(trellis_json_get_str(j, "method"), "GET");
    assert_string_equal(trellis_json_get_str(j, "path"), "/items/a%20b");
    assert_string_equal(trellis_json_get_str(j, "id"), "a b");
    assert_string_equal(trellis_json_get_str(j, "q"), "x y");
    assert_true(trellis_json_is_true(trellis_json_get(j, "flag")));
    assert_string_equal(trellis_json_get_str(j, "hdr"), "hello");
    assert_int_equal(trellis_json_typeof(trellis_json_get(j, "none")), TRELLIS_JSON_NULL);
    char v[64];
    assert_true(http_header(&r, "X-Item", v, sizeof(v)));
    assert_string_equal(v, "a b");
    assert_true(http_header(&r, "Content-Type", v, sizeof(v)));
    assert_string_equal(v, "application/json");
    trellis_json_free(j);
    http_result_free(&r);

    assert_int_equal(http_do(port, "POST", "/echo", NULL, "some bytes", &r), 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.body, "some bytes");
    http_result_free(&r);

    assert_int_equal(http_do(port, "DELETE", "/files/a/b/c", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "a/b/c");
    http_result_free(&r);

    /* 404 and 405 come from the router, with JSON bodies. */
    assert_int_equal(http_do(port, "GET", "/nothing", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "not_found"));
    http_result_free(&r);
    assert_int_equal(http_do(port, "PUT", "/echo", NULL, "x", &r), 0);
    assert_int_equal(r.status, 405);
    assert_true(http_header(&r, "Allow", v, sizeof(v)));
    assert_string_equal(v, "POST");
    http_result_free(&r);

    assert_int_equal(app_stop(&ra), 0);
    trellis_app_free(app);
}

static void replies_and_errors(void **state)
{
    struct trellis_app *app = trellis_app_new("test");
    basic_app(app);
    struct running_app ra;
    int port = app_start(&ra, app);
    struct http_result r;

    assert_int_equal(http_do(port, "POST", "/sum", NULL, "{\"a\":2,\"b\":40}", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"sum\":42}");
    http_result_free(&r);

    /* Invalid JSON: 400 bad_json naming the position, from trellis_req_json itself. */
    assert_int_equal(http_do(port, "POST", "/sum", NULL, "{\"a\":2,", &r), 0);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"bad_json\""));
    assert_non_null(strstr(r.body, "line 1"));
    http_result_free(&r);
    assert_int_equal(http_do(port, "POST", "/sum", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "no body"));
    http_result_free(&r);
    assert_int_equal(http_do(port, "POST", "/sum", NULL, "{\"a\":\"2\",\"b\":1}", &r), 0);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "bad_param"));
    http_result_free(&r);

    /* A handler that forgets to reply gives a 500 naming the mistake. */
    assert_int_equal(http_do(port, "GET", "/silent", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 500);
    assert_non_null(strstr(r.body, "did not reply"));
    http_result_free(&r);

    /* Header injection and engine-owned headers are refused; good ones pass. */
    assert_int_equal(http_do(port, "GET", "/headers", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    char expect[128];
    snprintf(expect, sizeof(expect), "{\"r1\":%d,\"r2\":%d,\"r3\":%d,\"r4\":0}", -EINVAL, -EINVAL,
             -EINVAL);
    assert_string_equal(r.body, expect);
    assert_null(strstr(r.head, "Set-Cookie"));
    char v[16];
    assert_true(http_header(&r, "X-Good", v, sizeof(v)));
    http_result_free(&r);

    assert_int_equal(app_stop(&ra), 0);
    trellis_app_free(app);
}

/* ------------------------------------------------------------ concurrency */

static void slow(struct trellis_req *req, void *data)
{
    sleep_ms(300);
    trellis_reply(req, 200, "text/plain", "done", 4);
}

struct client_arg {
    int port;
    int status;
};

static void *slow_client(void *arg)
{
    struct client_arg *ca = arg;
    struct http_result r;
    if (http_do(ca->port, "GET", "/slow", NULL, NULL, &r) == 0) {
        ca->status = r.status;
        http_result_free(&r);
    }
    return NULL;
}

static void handlers_do_not_block_the_loop(void **state)
{
    struct trellis_app *app = trellis_app_new("test");
    assert_int_equal(trellis_app_set_threads(app, 4), 0);
    assert_int_equal(trellis_app_set_threads(app, 0), -EINVAL);
    assert_int_equal(trellis_app_route(app, "GET", "/slow", slow, NULL), 0);
    struct running_app ra;
    int port = app_start(&ra, app);
    pthread_t th[4];
    struct client_arg ca[4];
    uint64_t start = now_ms();
    for (int i = 0; i < 4; i++) {
        ca[i] = (struct client_arg){.port = port};
        pthread_create(&th[i], NULL, slow_client, &ca[i]);
    }
    /* While all four handler threads sleep, the loop still answers health checks. */
    sleep_ms(100);
    struct http_result r;
    uint64_t t0 = now_ms();
    assert_int_equal(http_do(port, "GET", "/healthz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(now_ms() - t0 < 150);
    http_result_free(&r);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ca[i].status, 200);
    }
    /* Four 300 ms handlers on four threads: concurrent, not 1.2 s in a row. */
    assert_true(now_ms() - start < 900);
    assert_int_equal(app_stop(&ra), 0);
    trellis_app_free(app);
}

struct status_arg {
    int port;
    int status;
    char body[256];
};

static void *slow_status_client(void *arg)
{
    struct status_arg *sa = arg;
    struct http_result r;
    if (http_do(sa->port, "GET", "/slow", NULL, NULL, &r) == 0) {
        sa->status = r.status;
        snprintf(sa->body, sizeof(sa->body), "%s", r.body);
        http_result_free(&r);
    }
    return NULL;
}

static void full_queue_is_503(void **state)
{
    setenv("TRELLIS_MAX_QUEUED", "1", 1);
    struct trellis_app *app = trellis_app_new("test");
    unsetenv("TRELLIS_MAX_QUEUED");
    assert_int_equal(trellis_app_set_threads(app, 1), 0);
    assert_int_equal(trellis_app_route(app, "GET", "/slow", slow, NULL), 0);
    struct running_app ra;
    int port = app_start(&ra, app);
    pthread_t th[4];
    struct status_arg sa[4];
    for (int i = 0; i < 4; i++) {
        sa[i] = (struct status_arg){.port = port};
        pthread_create(&th[i], NULL, slow_status_client, &sa[i]);
        sleep_ms(60); /* one runs, one waits, the others find the queue full */
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    assert_int_equal(sa[0].status, 200);
    assert_int_equal(sa[1].status, 200);
    assert_int_equal(sa[2].status, 503);
    assert_int_equal(sa[3].status, 503);
    assert_non_null(strstr(sa[2].body, "TRELLIS_MAX_QUEUED"));
    assert_int_equal(app_stop(&ra), 0);
    trellis_app_free(app);
}

static int health_status(int port);

static void client_gone_mid_handler(void **state)
{
    struct trellis_app *app = trellis_app_new("test");
    assert_int_equal(trellis_app_route(app, "GET", "/slow", slow, NULL), 0);
    struct running_app ra;
    int port = app_start(&ra, app);
    /* Ask, then hang up while the handler sleeps: its reply has nowhere to go. */
    for (int i = 0; i < 3; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        const char *req = "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n";
        assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
        sleep_ms(20);
        if (i > 0) {
            /* A reset rather than a FIN: the engine closes the connection at once. */
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        close(fd);
    }
    sleep_ms(400); /* the handlers return to a loop whose connections are gone */
    assert_int_equal(health_status(port), 200);
    assert_int_equal(app_stop(&ra), 0);
    trellis_app_free(app);
}

/* ------------------------------------------------------------ start hook and stop */

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;

static int gated_start(struct trellis_app *app, void *data)
{
    pthread_mutex_lock(&gate_lock);
    while (!gate_open) {
        pthread_cond_wait(&gate_cond, &gate_lock);
    }
    pthread_mutex_unlock(&gate_lock);
    return *(int *)data;
}

static void open_gate(void)
{
    pthread_mutex_lock(&gate_lock);
    gate_open = true;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

static int health_status(int port)
{
    struct http_result r;
    if (http_do(port, "GET", "/healthz", NULL, NULL, &r) != 0) {
        return -1;
    }
    int status = r.status;
    http_result_free(&r);
    return status;
}

static void start_hook_gates_health(void **state)
{
    gate_open = false;
    int ok = 0;
    struct trellis_app *app = trellis_app_new("test");
    trellis_app_on_start(app, gated_start, &ok);
    struct running_app ra;
    int port = app_start(&ra, app);
    assert_int_equal(health_status(port), 503);
    open_gate();
    int status = 0;
    for (int i = 0; i < 200 && (status = health_status(port)) != 200; i++) {
        sleep_ms(10);
    }
    assert_int_equal(status, 200);
    trellis_app_set_ready(app, false);
    assert_int_equal(health_status(port), 503);
    assert_int_equal(app_stop(&ra), 0);
    trellis_app_free(app);
}

static void failing_start_hook_stops_the_app(void **state)
{
    gate_open = true;
    int fail = -5;
    struct trellis_app *app = trellis_app_new("test");
    trellis_app_on_start(app, gated_start, &fail);
    assert_int_equal(trellis_app_set_listen(app, "127.0.0.1:0"), 0);
    assert_int_equal(trellis_app_run(app), 1); /* it stops by itself */
    trellis_app_free(app);
}

static void graceful_stop_finishes_requests(void **state)
{
    struct trellis_app *app = trellis_app_new("test");
    assert_int_equal(trellis_app_route(app, "GET", "/slow", slow, NULL), 0);
    struct running_app ra;
    int port = app_start(&ra, app);
    pthread_t th;
    struct client_arg ca = {.port = port};
    pthread_create(&th, NULL, slow_client, &ca);
    sleep_ms(100);
    trellis_app_stop(app);
    pthread_join(th, NULL);
    assert_int_equal(ca.status, 200); /* the in-flight request got its answer */
    pthread_join(ra.thread, NULL);
    assert_int_equal(ra.rc, 0);
    /* And nothing listens any more. */
    struct http_result r;
    assert_int_equal(http_do(port, "GET", "/healthz", NULL, NULL, &r), -1);
    trellis_app_free(app);
}

static void stop_before_run_and_bad_listen(void **state)
{
    struct trellis_app *app = trellis_app_new("test");
    assert_int_equal(trellis_app_set_listen(app, "nonsense"), -EINVAL);
    assert_int_equal(trellis_app_set_listen(app, "127.0.0.1:0"), 0);
    trellis_app_stop(app); /* before run: run returns promptly */
    assert_int_equal(trellis_app_run(app), 0);
    assert_int_equal(trellis_app_run(app), 1); /* once per app */
    trellis_app_free(app);

    /* A port in use is an error, not a silent SO_REUSEPORT share. */
    struct trellis_app *a = trellis_app_new("a");
    struct running_app rb;
    int port = app_start(&rb, a);
    struct trellis_app *b = trellis_app_new("b");
    char listen[32];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    assert_int_equal(trellis_app_set_listen(b, listen), 0);
    assert_int_equal(trellis_app_run(b), 1);
    trellis_app_free(b);
    assert_int_equal(app_stop(&rb), 0);
    trellis_app_free(a);
}

/* ------------------------------------------------------------ subscriptions */

struct seen {
    pthread_mutex_t lock;
    char id[64];
    char topic[64];
    char payload[128];
    int64_t n;
    int calls;
};

static enum trellis_event_status on_order(const struct trellis_event *ev, void *data)
{
    struct seen *s = data;
    pthread_mutex_lock(&s->lock);
    s->calls++;
    snprintf(s->id, sizeof(s->id), "%s", trellis_event_id(ev) ? trellis_event_id(ev) : "");
    snprintf(s->topic, sizeof(s->topic), "%s", trellis_event_topic(ev));
    size_t len = 0;
    const char *p = trellis_event_payload(ev, &len);
    snprintf(s->payload, sizeof(s->payload), "%.*s", (int)len, p ? p : "");
    s->n = 0;
    trellis_json_get_int(trellis_event_data(ev), "n", &s->n);
    pthread_mutex_unlock(&s->lock);
    if (s->n < 0) {
        return TRELLIS_EVENT_DROP;
    }
    return s->n == 0 ? TRELLIS_EVENT_RETRY : TRELLIS_EVENT_SUCCESS;
}

static void subscriptions(void **state)
{
    struct seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct trellis_app *app = trellis_app_new("test");
    struct trellis_subscribe_opts opts = {.dead_letter_topic = "dead"};
    assert_int_equal(trellis_app_subscribe(app, "pubsub", "orders", NULL, on_order, &s), 0);
    assert_int_equal(trellis_app_subscribe(app, "pubsub", "a/b", &opts, on_order, &s), 0);
    assert_int_equal(trellis_app_subscribe(app, "", "x", NULL, on_order, &s), -EINVAL);
    struct running_app ra;
    int port = app_start(&ra, app);
    struct http_result r;
    assert_int_equal(http_do(port, "GET", "/dapr/subscribe", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    struct trellis_json *list = trellis_json_parse(r.body, r.body_len, NULL, 0);
    http_result_free(&r);
    assert_int_equal(trellis_json_size(list), 2);
    struct trellis_json *first = trellis_json_at(list, 0);
    assert_string_equal(trellis_json_get_str(first, "pubsubname"), "pubsub");
    assert_string_equal(trellis_json_get_str(first, "topic"), "orders");
    const char *route = trellis_json_get_str(first, "route");
    assert_non_null(route);
    assert_string_equal(trellis_json_get_str(trellis_json_at(list, 1), "deadLetterTopic"), "dead");

    const char *ct = "Content-Type: application/cloudevents+json\r\n";
    assert_int_equal(http_do(port, "POST", route, ct,
                             "{\"specversion\":\"1.0\",\"id\":\"ev-1\",\"topic\":\"orders\","
                             "\"data\":{\"n\":3}}",
                             &r),
                     0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"SUCCESS\"}");
    http_result_free(&r);
    assert_string_equal(s.id, "ev-1");
    assert_string_equal(s.topic, "orders");
    assert_string_equal(s.payload, "{\"n\":3}");
    assert_int_equal(s.n, 3);

    assert_int_equal(http_do(port, "POST", route, ct, "{\"id\":\"ev-2\",\"data\":{\"n\":0}}", &r),
                     0);
    assert_string_equal(r.body, "{\"status\":\"RETRY\"}");
    http_result_free(&r);
    assert_int_equal(http_do(port, "POST", route, ct, "{\"id\":\"ev-3\",\"data\":{\"n\":-1}}", &r),
                     0);
    assert_string_equal(r.body, "{\"status\":\"DROP\"}");
    http_result_free(&r);
    /* data_base64 is decoded for the payload. */
    assert_int_equal(
        http_do(port, "POST", route, ct, "{\"id\":\"ev-4\",\"data_base64\":\"aGk=\"}", &r), 0);
    http_result_free(&r);
    assert_string_equal(s.payload, "hi");
    /* Garbage can never be processed: dropped without calling the handler. */
    int calls = s.calls;
    assert_int_equal(http_do(port, "POST", route, ct, "not json", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"DROP\"}");
    http_result_free(&r);
    assert_int_equal(http_do(port, "POST", route, ct, "[1]", &r), 0);
    assert_string_equal(r.body, "{\"status\":\"DROP\"}");
    http_result_free(&r);
    assert_int_equal(s.calls, calls);
    trellis_json_free(list);
    assert_int_equal(app_stop(&ra), 0);
    trellis_app_free(app);
}

static void no_subscriptions_is_404(void **state)
{
    struct trellis_app *app = trellis_app_new("test");
    struct running_app ra;
    int port = app_start(&ra, app);
    struct http_result r;
    assert_int_equal(http_do(port, "GET", "/dapr/subscribe", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 404); /* Dapr reads 404 as "no subscriptions" */
    http_result_free(&r);
    assert_int_equal(app_stop(&ra), 0);
    trellis_app_free(app);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routes_and_accessors),
        cmocka_unit_test(replies_and_errors),
        cmocka_unit_test(handlers_do_not_block_the_loop),
        cmocka_unit_test(full_queue_is_503),
        cmocka_unit_test(client_gone_mid_handler),
        cmocka_unit_test(start_hook_gates_health),
        cmocka_unit_test(failing_start_hook_stops_the_app),
        cmocka_unit_test(graceful_stop_finishes_requests),
        cmocka_unit_test(stop_before_run_and_bad_listen),
        cmocka_unit_test(subscriptions),
        cmocka_unit_test(no_subscriptions_is_404),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
