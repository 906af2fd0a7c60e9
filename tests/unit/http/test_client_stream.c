/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 client streaming: large response bodies with pause/resume backpressure,
 * streamed request bodies with per-chunk write callbacks, cancellation at every point
 * and closing the client with requests in flight. */
#include "client_harness.h"

static size_t proc_max(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    unsigned long a = 0;
    unsigned long b = 0;
    unsigned long c = 0;
    int n = fscanf(f, "%lu %lu %lu", &a, &b, &c);
    fclose(f);
    return n == 3 ? c : a;
}

/* More than the kernel can buffer between the two sockets, so that a paused client
 * visibly backs the upstream up. */
static size_t beyond_socket_buffers(void)
{
    return proc_max("/proc/sys/net/ipv4/tcp_rmem") + proc_max("/proc/sys/net/ipv4/tcp_wmem") +
           4u * 1024 * 1024;
}

static void run_big(bool chunked, size_t len)
{
    static const struct step script[] = {{STEP_BIG, NULL, 0}, {STEP_RESPOND, OK_HELLO, 0}};
    struct tr_http_client_config cfg = test_cfg();
    cfg.read_timeout_ms = 500;
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    ctx.srv.big_len = len;
    ctx.srv.big_chunked = chunked;
    struct rec r;
    rec_init(&r, &ctx);
    rec_timer_init(&r);
    r.count_only = true;
    r.pause_every = 3;
    r.long_pause_at = 1024 * 1024;
    r.long_pause_ms = 700; /* longer than read_timeout: paused time must not count */
    send_get(&r);
    ctx_run(&ctx);
    if (r.errors != 0) {
        fail_msg("error %d (%s) after %llu bytes", r.err, tr_http_client_strerror(r.err),
                 (unsigned long long)r.body_total);
    }
    assert_int_equal(r.ends, 1);
    assert_int_equal(r.content_length, chunked ? -1 : (int64_t)len);
    assert_int_equal(r.body_total, len);
    assert_false(r.pattern_bad);
    assert_true(r.body_cbs > 100);
    /* While paused the client stopped reading, so the upstream's writes backed up. */
    assert_true(r.srv_queue_at_long_pause > 0);
    /* And the connection is reusable afterwards. */
    struct rec r2;
    rec_init(&r2, &ctx);
    send_get(&r2);
    ctx_run(&ctx);
    assert_int_equal(r2.ends, 1);
    assert_int_equal(ctx.srv.accepts, 1);
    rec_timer_close(&r);
    ctx_finish(&ctx);
    rec_dispose(&r);
    rec_dispose(&r2);
}

static void large_body_pause_resume(void **state)
{
    run_big(false, beyond_socket_buffers());
}

static void large_chunked_pause_resume(void **state)
{
    run_big(true, beyond_socket_buffers() + 12345);
}

/* A pause holds back the end too, and a resume must finish a response whose last byte
 * was already parsed when the consumer paused. */
static void pause_holds_end(void **state)
{
    static const struct step script[] = {
        {STEP_RESPOND, "HTTP/1.1 204 No Content\r\n\r\n", 0},
        {STEP_RESPOND, OK_HELLO, 0},
        {STEP_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0},
        {STEP_RESPOND, OK_HELLO, 0},
    };
    struct tr_http_client_config cfg = test_cfg();
    cfg.read_timeout_ms = 500;
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r[4];
    for (int i = 0; i < 4; i++) {
        rec_init(&r[i], &ctx);
        rec_timer_init(&r[i]);
        if (i < 3) {
            r[i].pause_in_headers = true;
        } else {
            r[i].pause_every = 1; /* pause in the callback carrying the last byte */
        }
        send_get(&r[i]);
        ctx_run(&ctx);
        if (r[i].ends != 1) {
            fail_msg("request %d: %u ends, %u errors, err %d", i, r[i].ends, r[i].errors, r[i].err);
        }
        assert_int_equal(r[i].errors, 0);
    }
    assert_memory_equal(tr_buf_data(&r[1].body), "hello", 5);
    assert_memory_equal(tr_buf_data(&r[3].body), "hello", 5);
    assert_int_equal(ctx.srv.accepts, 1);
    for (int i = 0; i < 4; i++) {
        rec_timer_close(&r[i]);
    }
    ctx_finish(&ctx);
    for (int i = 0; i < 4; i++) {
        rec_dispose(&r[i]);
    }
}

#define UP_CHUNK 16384
#define UP_CHUNKS 64
static char up_data[UP_CHUNK];

struct upload {
    struct rec rec;
    unsigned written;
    unsigned write_cbs;
    unsigned in_flight;
    unsigned max_in_flight;
    int last_status;
    bool cancel_in_write_cb;
};

static void on_up_written(int status, void *data);

static void up_next(struct upload *u)
{
    if (u->written == UP_CHUNKS) {
        assert_int_equal(tr_http_client_req_end(u->rec.req), 0);
        assert_int_equal(tr_http_client_req_end(u->rec.req), -EINVAL);
        return;
    }
    assert_int_equal(
        tr_http_client_req_write(u->rec.req, tr_slice(up_data, UP_CHUNK), on_up_written, u), 0);
    u->written++;
    u->in_flight++;
    u->max_in_flight = u->in_flight > u->max_in_flight ? u->in_flight : u->max_in_flight;
}

static void on_up_written(int status, void *data)
{
    struct upload *u = data;
    u->write_cbs++;
    u->in_flight--;
    u->last_status = status;
    if (status != 0 || u->rec.req == NULL) {
        return;
    }
    if (u->cancel_in_write_cb && u->write_cbs == 3) {
        /* Two more in flight, then cancel: their callbacks must still come. */
        up_next(u);
        up_next(u);
        tr_http_client_req_cancel(u->rec.req);
        u->rec.req = NULL;
        return;
    }
    up_next(u);
}

static void start_upload(struct upload *u, struct ctx *ctx, int64_t content_length)
{
    rec_init(&u->rec, ctx);
    struct tr_http_client_request q = make_req(&u->rec, "POST", "/upload", NULL);
    q.stream_body = true;
    q.content_length = content_length;
    assert_int_equal(tr_http_client_request(ctx->client, &q, &u->rec.req), 0);
    up_next(u);
}

static void streamed_upload(void **state)
{
    static const struct step script[] = {{STEP_COUNT_BODY, NULL, 0}};
    memset(up_data, 'u', sizeof(up_data));
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct upload chunked;
    struct upload sized;
    memset(&chunked, 0, sizeof(chunked));
    memset(&sized, 0, sizeof(sized));
    start_upload(&chunked, &ctx, -1);
    ctx_run(&ctx);
    start_upload(&sized, &ctx, (int64_t)UP_CHUNK * UP_CHUNKS);
    ctx_run(&ctx);
    char want[32];
    snprintf(want, sizeof(want), "%u", UP_CHUNK * UP_CHUNKS);
    struct upload *ups[] = {&chunked, &sized};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ups[i]->rec.ends, 1);
        assert_int_equal(ups[i]->rec.errors, 0);
        assert_int_equal(ups[i]->write_cbs, UP_CHUNKS);
        assert_int_equal(ups[i]->max_in_flight, 1); /* one at a time: backpressure */
        assert_int_equal(ups[i]->rec.body.len, strlen(want));
        assert_memory_equal(tr_buf_data(&ups[i]->rec.body), want, strlen(want));
    }
    /* Both rode the same connection: the chunked terminator left it clean. */
    assert_int_equal(ctx.srv.accepts, 1);
    ctx_finish(&ctx);
    rec_dispose(&chunked.rec);
    rec_dispose(&sized.rec);
}

static void streamed_length_mismatch(void **state)
{
    static const struct step script[] = {{STEP_COUNT_BODY, NULL, 0}};
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r;
    rec_init(&r, &ctx);
    struct tr_http_client_request q = make_req(&r, "POST", "/", NULL);
    q.stream_body = true;
    q.content_length = 4;
    assert_int_equal(tr_http_client_request(ctx.client, &q, &r.req), 0);
    assert_int_equal(tr_http_client_req_write(r.req, TR_SLICE_LIT("12345"), NULL, NULL), -EINVAL);
    assert_int_equal(tr_http_client_req_write(r.req, TR_SLICE_LIT(""), NULL, NULL), -EINVAL);
    assert_int_equal(tr_http_client_req_write(r.req, TR_SLICE_LIT("12"), NULL, NULL), 0);
    assert_int_equal(tr_http_client_req_end(r.req), -EINVAL); /* 2 of 4 bytes */
    tr_http_client_req_cancel(r.req);
    r.req = NULL;
    /* A buffered request cannot stream. */
    struct rec r2;
    rec_init(&r2, &ctx);
    send_req(&r2, "POST", "/", "x");
    assert_int_equal(tr_http_client_req_write(r2.req, TR_SLICE_LIT("y"), NULL, NULL), -EINVAL);
    assert_int_equal(tr_http_client_req_end(r2.req), -EINVAL);
    ctx_run(&ctx);
    assert_int_equal(r.ends + r.errors, 0);
    assert_int_equal(r2.ends, 1);
    ctx_finish(&ctx);
    rec_dispose(&r);
    rec_dispose(&r2);
}

/* The upstream answers before the streamed body is complete: the response is
 * delivered, the connection is not reused (the upstream stopped reading somewhere), and
 * every chunk's write callback still runs. */
static void early_response_not_reused(void **state)
{
    static const struct step script[] = {
        {STEP_EARLY, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n", 0},
        {STEP_RESPOND, OK_HELLO, 0},
    };
    memset(up_data, 'u', sizeof(up_data));
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct upload u;
    memset(&u, 0, sizeof(u));
    start_upload(&u, &ctx, -1);
    ctx_run(&ctx);
    assert_int_equal(u.rec.ends, 1);
    assert_int_equal(u.rec.status, 413);
    assert_true(u.written < UP_CHUNKS);
    assert_int_equal(u.write_cbs, u.written);
    assert_int_equal(u.in_flight, 0);
    struct rec r;
    rec_init(&r, &ctx);
    send_get(&r);
    ctx_run(&ctx);
    assert_int_equal(r.ends, 1);
    assert_int_equal(ctx.srv.accepts, 2);
    ctx_finish(&ctx);
    rec_dispose(&u.rec);
    rec_dispose(&r);
}

static void cancel_soon(struct ctx *ctx)
{
    struct rec *r = ctx->timer_arg;
    tr_http_client_req_cancel(r->req);
    r->req = NULL;
    if (r->resume_timer_used) {
        uv_timer_stop(&r->resume_timer);
    }
}

static void cancel_everywhere(void **state)
{
    static const struct step script[] = {
        {STEP_RESPOND, OK_HELLO, 0}, {STEP_BIG, NULL, 0},
        {STEP_SILENT, NULL, 0},      {STEP_RESPOND, "HTTP/1.1 204 No Content\r\n\r\n", 0},
        {STEP_COUNT_BODY, NULL, 0},
    };
    memset(up_data, 'u', sizeof(up_data));
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    ctx.srv.big_len = 8u * 1024 * 1024;
    /* While connecting. */
    struct rec r[5];
    rec_init(&r[0], &ctx);
    send_get(&r[0]);
    tr_http_client_req_cancel(r[0].req);
    ctx_run(&ctx);
    /* Inside the headers callback, then inside a body callback. */
    rec_init(&r[1], &ctx);
    r[1].cancel_in_headers = true;
    send_get(&r[1]);
    ctx_run(&ctx);
    rec_init(&r[2], &ctx);
    r[2].cancel_in_body = true;
    send_get(&r[2]);
    ctx_run(&ctx);
    /* Waiting for a response that never comes, from a timer. */
    rec_init(&r[3], &ctx);
    send_get(&r[3]);
    ctx.timer_arg = &r[3];
    ctx_after(&ctx, 30, cancel_soon);
    ctx_run(&ctx);
    /* Paused in the headers callback with the end of the response held back. */
    rec_init(&r[4], &ctx);
    rec_timer_init(&r[4]);
    r[4].pause_in_headers = true;
    r[4].resume_after_ms = 60000;
    send_get(&r[4]);
    ctx.timer_arg = &r[4];
    ctx_after(&ctx, 100, cancel_soon);
    ctx_run(&ctx);
    /* From a streamed body's write callback: later chunks are released too. */
    struct upload u;
    memset(&u, 0, sizeof(u));
    u.cancel_in_write_cb = true;
    start_upload(&u, &ctx, -1);
    ctx_run(&ctx);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(r[i].ends, 0);
        assert_int_equal(r[i].errors, 0);
    }
    assert_int_equal(r[4].headers_cbs, 1);
    assert_int_equal(r[0].headers_cbs, 0);
    assert_int_equal(r[1].headers_cbs, 1);
    assert_int_equal(r[1].body_cbs, 0);
    assert_int_equal(r[2].body_cbs, 1);
    assert_int_equal(u.write_cbs, 5);
    assert_int_equal(u.in_flight, 0);
    assert_int_equal(u.rec.ends + u.rec.errors, 0);
    assert_int_equal(stats_of(&ctx).conns_open, 0);
    rec_timer_close(&r[4]);
    ctx_finish(&ctx);
    for (int i = 0; i < 5; i++) {
        rec_dispose(&r[i]);
    }
    rec_dispose(&u.rec);
}

static void close_with_requests_in_flight(void **state)
{
    static const struct step script[] = {{STEP_SILENT, NULL, 0}};
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r[3];
    for (int i = 0; i < 3; i++) {
        rec_init(&r[i], &ctx);
        send_get(&r[i]);
    }
    /* Let the requests reach the server, then close the client under them. */
    uv_run(&ctx.loop, UV_RUN_NOWAIT);
    uv_run(&ctx.loop, UV_RUN_NOWAIT);
    tr_http_client_close(ctx.client, on_client_closed, &ctx);
    ctx.client = NULL;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].errors, 1); /* before close() returned */
        assert_int_equal(r[i].err, TR_HTTP_CLIENT_E_CANCELED);
    }
    ctx_finish(&ctx);
    for (int i = 0; i < 3; i++) {
        rec_dispose(&r[i]);
    }
}

/* Closing the client from inside a request's own callback fails that request once the
 * callback returns. */
static void close_from_callback(void **state)
{
    static const struct step script[] = {{STEP_RESPOND, OK_HELLO, 0}};
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r[2];
    rec_init(&r[0], &ctx);
    rec_init(&r[1], &ctx);
    send_req(&r[1], "GET", "/silent", NULL); /* in flight on its own connection */
    r[0].close_client_in_headers = true;
    send_get(&r[0]);
    ctx_run(&ctx);
    assert_true(ctx.closed);
    ctx_finish(&ctx);
    assert_int_equal(r[0].headers_cbs, 1);
    assert_int_equal(r[0].errors, 1);
    assert_int_equal(r[0].err, TR_HTTP_CLIENT_E_CANCELED);
    assert_int_equal(r[0].flags, TR_HTTP_CLIENT_ERR_HEADERS_SEEN);
    assert_int_equal(r[0].body_cbs + r[0].ends, 0);
    assert_int_equal(r[1].errors, 1);
    rec_dispose(&r[0]);
    rec_dispose(&r[1]);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(large_body_pause_resume),  cmocka_unit_test(large_chunked_pause_resume),
        cmocka_unit_test(pause_holds_end),          cmocka_unit_test(streamed_upload),
        cmocka_unit_test(streamed_length_mismatch), cmocka_unit_test(early_response_not_reused),
        cmocka_unit_test(cancel_everywhere),        cmocka_unit_test(close_with_requests_in_flight),
        cmocka_unit_test(close_from_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
