/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 client keep-alive pools: the stale-connection retry rule (as a pure function
 * and end to end), upstreams closing idle or just-reused connections, the reuse probe,
 * idle timeout and the idle cap. */
#include "client_harness.h"

#include "http/client_os.h"
#include "http/pool.h"

static void retry_rule(void **state)
{
    struct tr_http_client_attempt base = {
        .err = UV_ECONNRESET,
        .reused = true,
        .first = true,
        .response_started = false,
        .replayable = true,
        .idempotent = true,
        .peer_acked = true,
    };
    struct tr_http_client_attempt a = base;
    assert_true(tr_http_client_retry_safe(&a));
    a.err = UV_EOF;
    assert_true(tr_http_client_retry_safe(&a));
    a.err = UV_EPIPE;
    assert_true(tr_http_client_retry_safe(&a));
    a.err = UV_ETIMEDOUT; /* a timeout is not the stale-connection race */
    assert_false(tr_http_client_retry_safe(&a));
    a.err = TR_HTTP_CLIENT_E_BAD_RESPONSE;
    assert_false(tr_http_client_retry_safe(&a));
    a = base;
    a.reused = false; /* a fresh connection failing is the upstream's real trouble */
    assert_false(tr_http_client_retry_safe(&a));
    a = base;
    a.first = false; /* once only */
    assert_false(tr_http_client_retry_safe(&a));
    a = base;
    a.response_started = true;
    assert_false(tr_http_client_retry_safe(&a));
    a = base;
    a.replayable = false; /* streamed bytes already handed back to the caller */
    assert_false(tr_http_client_retry_safe(&a));
    a = base;
    a.idempotent = false; /* POST the upstream may have seen */
    assert_false(tr_http_client_retry_safe(&a));
    a.peer_acked = false; /* ...but its kernel never acknowledged a byte of it */
    assert_true(tr_http_client_retry_safe(&a));
    a.replayable = false;
    assert_false(tr_http_client_retry_safe(&a));
}

static void method_idempotent(void **state)
{
    const char *yes[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    const char *no[] = {"POST", "PATCH", "CONNECT", "get", "GETX", ""};
    for (size_t i = 0; i < TR_ARRAY_LEN(yes); i++) {
        assert_true(tr_http_client_method_idempotent(tr_slice_cstr(yes[i])));
    }
    for (size_t i = 0; i < TR_ARRAY_LEN(no); i++) {
        assert_false(tr_http_client_method_idempotent(tr_slice_cstr(no[i])));
    }
}

/* tcpi_bytes_acked counts what the peer's kernel took in, which the retry rule uses to
 * prove a non-idempotent request was never seen. */
static void os_bytes_acked(void **state)
{
    struct tr_addr addr;
    assert_int_equal(tr_addr_parse("127.0.0.1:0", &addr), 0);
    int lfd = tr_listen_socket(&addr, 4);
    assert_true(lfd >= 0);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(cfd >= 0);
    assert_int_equal(connect(cfd, (struct sockaddr *)&addr.ss, addr.len), 0);
    /* The counter starts at 1 on Linux (the SYN): only differences mean anything. */
    uint64_t base = 0;
    assert_int_equal(tr_http_client_os_bytes_acked(cfd, &base), 0);
    uint64_t acked = base;
    char buf[100];
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(write(cfd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
    for (int i = 0; i < 200 && acked - base != sizeof(buf); i++) {
        usleep(5000);
        assert_int_equal(tr_http_client_os_bytes_acked(cfd, &acked), 0);
    }
    assert_int_equal(acked - base, sizeof(buf));
    assert_int_equal(tr_http_client_os_bytes_acked(-1, &acked), -EBADF);
    close(cfd);
    close(lfd);
}

static struct rec *g_next;
static const char *g_next_method;
static const char *g_next_body;

static void send_method_next(struct rec *r)
{
    send_req(g_next, g_next_method, "/", g_next_body);
}

static void second_get_later(struct ctx *ctx)
{
    send_get(g_next);
}

static void drop_then_wait(struct ctx *ctx)
{
    tsrv_drop_conns(&ctx->srv);
    ctx_after(ctx, 30, second_get_later);
}

static void after_first_drop_later(struct rec *r)
{
    ctx_after(r->ctx, 20, drop_then_wait);
}

/* The upstream closes the idle connection; the client notices while idle and the next
 * GET goes out on a new connection without any error. */
static void idle_close_by_upstream(void **state)
{
    static const struct step script[] = {{STEP_RESPOND, OK_HELLO, 0}};
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r[2];
    rec_init(&r[0], &ctx);
    rec_init(&r[1], &ctx);
    r[0].then = after_first_drop_later;
    g_next = &r[1];
    send_get(&r[0]);
    ctx_run(&ctx);
    assert_int_equal(r[0].ends + r[1].ends, 2);
    assert_int_equal(r[0].errors + r[1].errors, 0);
    assert_int_equal(ctx.srv.accepts, 2);
    struct tr_http_client_stats st = stats_of(&ctx);
    assert_int_equal(st.idle_peer_closes, 1);
    assert_int_equal(st.retries, 0);
    assert_int_equal(st.reuses, 0);
    ctx_finish(&ctx);
    rec_dispose(&r[0]);
    rec_dispose(&r[1]);
}

static void babble_then_wait(struct ctx *ctx)
{
    /* Some servers say goodbye to idle connections with a 408 and keep them open. */
    static const char bye[] = "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n";
    twrite(ctx->srv.conns, bye, sizeof(bye) - 1);
    ctx_after(ctx, 30, second_get_later);
}

static void after_first_babble(struct rec *r)
{
    ctx_after(r->ctx, 20, babble_then_wait);
}

/* Bytes nobody asked for on an idle connection: it is dropped, never parsed as the
 * next request's response. */
static void idle_unexpected_bytes(void **state)
{
    static const struct step script[] = {{STEP_RESPOND, OK_HELLO, 0}};
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r[2];
    rec_init(&r[0], &ctx);
    rec_init(&r[1], &ctx);
    r[0].then = after_first_babble;
    g_next = &r[1];
    send_get(&r[0]);
    ctx_run(&ctx);
    assert_int_equal(r[1].ends, 1);
    assert_int_equal(r[1].status, 200);
    assert_int_equal(r[0].errors + r[1].errors, 0);
    assert_int_equal(ctx.srv.accepts, 2);
    assert_int_equal(stats_of(&ctx).idle_peer_closes, 1);
    ctx_finish(&ctx);
    rec_dispose(&r[0]);
    rec_dispose(&r[1]);
}

static void drop_and_send_at_once(struct ctx *ctx)
{
    tsrv_drop_conns(&ctx->srv);
    send_get(g_next); /* same loop turn: the idle read has not seen the FIN yet */
}

/* Idle long enough to be probed when taken (TR_HTTP_POOL_PROBE_AFTER_MS). */
static void after_first_drop_now(struct rec *r)
{
    ctx_after(r->ctx, TR_HTTP_POOL_PROBE_AFTER_MS + 20, drop_and_send_at_once);
}

static void idle_close_race_probe(void **state)
{
    static const struct step script[] = {{STEP_RESPOND, OK_HELLO, 0}};
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r[2];
    rec_init(&r[0], &ctx);
    rec_init(&r[1], &ctx);
    r[0].then = after_first_drop_now;
    g_next = &r[1];
    send_get(&r[0]);
    ctx_run(&ctx);
    assert_int_equal(r[0].ends + r[1].ends, 2);
    assert_int_equal(r[0].errors + r[1].errors, 0);
    assert_int_equal(ctx.srv.accepts, 2);
    struct tr_http_client_stats st = stats_of(&ctx);
    assert_int_equal(st.probe_drops, 1);
    assert_int_equal(st.retries, 0);
    ctx_finish(&ctx);
    rec_dispose(&r[0]);
    rec_dispose(&r[1]);
}

/* The upstream answers and closes at once, without Connection: close. The next request
 * goes out from the end callback, on the connection just pooled: too fresh to be
 * probed (TR_HTTP_POOL_PROBE_AFTER_MS), so the write meets the close. The retry rule
 * still hides it: a GET is replayed, and so is a POST, because the closed upstream's
 * kernel acknowledged none of its bytes. */
static void close_after_answer_reused_at_once(const char *method, const char *body)
{
    static const struct step script[] = {
        {STEP_RESPOND_CLOSE, OK_HELLO, 0},
        {STEP_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh", 0},
    };
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r[2];
    rec_init(&r[0], &ctx);
    rec_init(&r[1], &ctx);
    r[0].then = send_method_next;
    g_next = &r[1];
    g_next_method = method;
    g_next_body = body;
    send_get(&r[0]);
    ctx_run(&ctx);
    assert_int_equal(r[0].ends, 1);
    assert_int_equal(r[1].errors, 0);
    assert_int_equal(r[1].ends, 1);
    assert_int_equal(r[1].status, 200);
    assert_memory_equal(tr_buf_data(&r[1].body), "fresh", 5);
    assert_int_equal(ctx.srv.accepts, 2);
    struct tr_http_client_stats st = stats_of(&ctx);
    /* Sent on the closed connection and retried (the usual case), or, if the loop saw
     * the FIN before the request went out, never sent on it. */
    assert_int_equal(st.retries + st.probe_drops + st.idle_peer_closes, 1);
    ctx_finish(&ctx);
    rec_dispose(&r[0]);
    rec_dispose(&r[1]);
}

static void close_after_answer_get(void **state)
{
    close_after_answer_reused_at_once("GET", NULL);
}

static void close_after_answer_post(void **state)
{
    close_after_answer_reused_at_once("POST", "a=1");
}

/* A reused connection gets its head written at once; what the socket does not take (a
 * buffered body far larger than its send buffer) follows through the loop, in order. */
static void reused_large_buffered_body(void **state)
{
    static const struct step script[] = {
        {STEP_RESPOND, OK_HELLO, 0},
        {STEP_COUNT_BODY, NULL, 0},
    };
    size_t n = 8u << 20;
    char *big = tr_xmalloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r[2];
    rec_init(&r[0], &ctx);
    rec_init(&r[1], &ctx);
    r[0].then = send_method_next;
    g_next = &r[1];
    g_next_method = "PUT";
    g_next_body = big;
    send_get(&r[0]);
    ctx_run(&ctx);
    assert_int_equal(r[1].errors, 0);
    assert_int_equal(r[1].ends, 1);
    assert_int_equal(r[1].body.len, 7);
    assert_memory_equal(tr_buf_data(&r[1].body), "8388608", 7);
    assert_int_equal(ctx.srv.accepts, 1);
    assert_int_equal(stats_of(&ctx).reuses, 1);
    /* Every request byte arrived once, in order: the head, then the body. */
    assert_int_equal(ctx.srv.raw.len > n, true);
    assert_memory_equal(tr_buf_data(&ctx.srv.raw) + ctx.srv.raw.len - 16, "xxxxxxxxxxxxxxxx", 16);
    ctx_finish(&ctx);
    rec_dispose(&r[0]);
    rec_dispose(&r[1]);
    tr_free_null(&big);
}

struct stale_case {
    const char *method;
    const char *body;
    const struct step *script;
    size_t nsteps;
};

static struct rec *g_second;

static const struct stale_case *g_case;

static void send_second(struct rec *r)
{
    send_req(g_second, g_case->method, "/", g_case->body);
}

/* First request answered; the second, on the reused connection, meets an upstream that
 * reads it and closes. */
static void run_stale(const struct stale_case *sc, struct ctx *ctx, struct rec *r)
{
    struct tr_http_client_config cfg = test_cfg();
    ctx_init(ctx, sc->script, sc->nsteps, &cfg);
    rec_init(&r[0], ctx);
    rec_init(&r[1], ctx);
    g_second = &r[1];
    g_case = sc;
    r[0].then = send_second;
    send_get(&r[0]);
    ctx_run(ctx);
    assert_int_equal(r[0].ends, 1);
}

static const struct step close_once[] = {
    {STEP_RESPOND, OK_HELLO, 0},
    {STEP_CLOSE, NULL, 0},
    {STEP_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nretry", 0},
};

static void stale_get_retried(void **state)
{
    struct stale_case sc = {"GET", NULL, close_once, 3};
    struct ctx ctx;
    struct rec r[2];
    run_stale(&sc, &ctx, r);
    assert_int_equal(r[1].errors, 0);
    assert_int_equal(r[1].ends, 1);
    assert_memory_equal(tr_buf_data(&r[1].body), "retry", 5);
    assert_int_equal(ctx.srv.accepts, 2);
    assert_int_equal(ctx.srv.requests, 3);
    struct tr_http_client_stats st = stats_of(&ctx);
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.reuses, 1);
    ctx_finish(&ctx);
    rec_dispose(&r[0]);
    rec_dispose(&r[1]);
}

/* PUT is idempotent: retried with its buffered body replayed. */
static void stale_put_retried(void **state)
{
    static const struct step script[] = {
        {STEP_RESPOND, OK_HELLO, 0},
        {STEP_CLOSE, NULL, 0},
        {STEP_COUNT_BODY, NULL, 0},
    };
    struct stale_case sc = {"PUT", "0123456789", script, 3};
    struct ctx ctx;
    struct rec r[2];
    run_stale(&sc, &ctx, r);
    assert_int_equal(r[1].errors, 0);
    assert_memory_equal(tr_buf_data(&r[1].body), "10", 2);
    assert_int_equal(stats_of(&ctx).retries, 1);
    ctx_finish(&ctx);
    rec_dispose(&r[0]);
    rec_dispose(&r[1]);
}

/* POST the upstream's kernel acknowledged: it may have been processed, so no retry,
 * and the error says why. */
static void stale_post_reported(void **state)
{
    struct stale_case sc = {"POST", "a=1", close_once, 3};
    struct ctx ctx;
    struct rec r[2];
    run_stale(&sc, &ctx, r);
    assert_int_equal(r[1].ends, 0);
    assert_int_equal(r[1].errors, 1);
    assert_int_equal(r[1].err, TR_HTTP_CLIENT_E_RESET);
    assert_int_equal(r[1].flags, TR_HTTP_CLIENT_ERR_STALE_REUSED);
    assert_int_equal(ctx.srv.accepts, 1);
    assert_int_equal(ctx.srv.requests, 2);
    assert_int_equal(stats_of(&ctx).retries, 0);
    ctx_finish(&ctx);
    rec_dispose(&r[0]);
    rec_dispose(&r[1]);
}

/* The retry fails too: one retry only, and the error says it was the retry. */
static void stale_retry_fails(void **state)
{
    static const struct step script[] = {
        {STEP_RESPOND, OK_HELLO, 0},
        {STEP_CLOSE, NULL, 0},
        {STEP_CLOSE, NULL, 0},
        {STEP_RESPOND, OK_HELLO, 0},
    };
    struct stale_case sc = {"GET", NULL, script, 4};
    struct ctx ctx;
    struct rec r[2];
    run_stale(&sc, &ctx, r);
    assert_int_equal(r[1].errors, 1);
    assert_int_equal(r[1].err, TR_HTTP_CLIENT_E_RESET);
    assert_int_equal(r[1].flags, TR_HTTP_CLIENT_ERR_RETRIED);
    assert_int_equal(ctx.srv.accepts, 2);
    assert_int_equal(ctx.srv.requests, 3);
    assert_int_equal(stats_of(&ctx).retries, 1);
    ctx_finish(&ctx);
    rec_dispose(&r[0]);
    rec_dispose(&r[1]);
}

/* A fresh connection closed after the request: not the stale race, no retry. */
static void fresh_close_not_retried(void **state)
{
    static const struct step script[] = {{STEP_CLOSE, NULL, 0}, {STEP_RESPOND, OK_HELLO, 0}};
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r;
    rec_init(&r, &ctx);
    send_get(&r);
    ctx_run(&ctx);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.err, TR_HTTP_CLIENT_E_RESET);
    assert_int_equal(r.flags, 0);
    assert_int_equal(ctx.srv.accepts, 1);
    assert_int_equal(stats_of(&ctx).retries, 0);
    ctx_finish(&ctx);
    rec_dispose(&r);
}

static void idle_timeout_prunes(void **state)
{
    static const struct step script[] = {{STEP_RESPOND, OK_HELLO, 0}};
    struct tr_http_client_config cfg = test_cfg();
    cfg.idle_timeout_ms = 50;
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r[2];
    rec_init(&r[0], &ctx);
    rec_init(&r[1], &ctx);
    send_get(&r[0]);
    ctx_run(&ctx);
    assert_int_equal(stats_of(&ctx).conns_idle, 1);
    /* The idle connection is unref'd: wait on a timer of our own. */
    g_next = &r[1];
    ctx_after(&ctx, 150, second_get_later);
    ctx_run(&ctx);
    struct tr_http_client_stats st = stats_of(&ctx);
    assert_int_equal(st.idle_timeouts, 1);
    assert_int_equal(st.reuses, 0);
    assert_int_equal(r[1].ends, 1);
    assert_int_equal(ctx.srv.accepts, 2);
    ctx_finish(&ctx);
    rec_dispose(&r[0]);
    rec_dispose(&r[1]);
}

static void max_idle_evicts(void **state)
{
    static const struct step script[] = {{STEP_RESPOND, OK_HELLO, 0}};
    struct tr_http_client_config cfg = test_cfg();
    cfg.max_idle_per_upstream = 2;
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r[4];
    for (int i = 0; i < 4; i++) {
        rec_init(&r[i], &ctx);
        send_get(&r[i]);
    }
    ctx_run(&ctx);
    assert_int_equal(ctx.srv.accepts, 4);
    struct tr_http_client_stats st = stats_of(&ctx);
    assert_int_equal(st.conns_idle, 2);
    assert_int_equal(st.conns_open, 2);
    ctx_finish(&ctx);
    for (int i = 0; i < 4; i++) {
        rec_dispose(&r[i]);
    }
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(retry_rule),
        cmocka_unit_test(method_idempotent),
        cmocka_unit_test(os_bytes_acked),
        cmocka_unit_test(idle_close_by_upstream),
        cmocka_unit_test(idle_unexpected_bytes),
        cmocka_unit_test(idle_close_race_probe),
        cmocka_unit_test(close_after_answer_get),
        cmocka_unit_test(close_after_answer_post),
        cmocka_unit_test(reused_large_buffered_body),
        cmocka_unit_test(stale_get_retried),
        cmocka_unit_test(stale_put_retried),
        cmocka_unit_test(stale_post_reported),
        cmocka_unit_test(stale_retry_fails),
        cmocka_unit_test(fresh_close_not_retried),
        cmocka_unit_test(idle_timeout_prunes),
        cmocka_unit_test(max_idle_evicts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
