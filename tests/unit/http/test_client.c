/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 client: requests on the wire, response framing (keep-alive, chunked, split
 * into 1-byte reads, interim 1xx, HEAD/204/304, read-until-close, malformed and
 * ambiguous framing, header limits), connect failures and timeouts. Loop tests count
 * callbacks, run the loop dry, close every handle and check uv_loop_close() == 0. */
#include "client_harness.h"

#include "http/client_req.h"

/* The lookup table and the word-at-a-time value check against the RFC 9110 grammar,
 * for every byte value at every position of values of every length up to 40. */
static void char_classes(void **state)
{
    for (int c = 0; c < 256; c++) {
        bool tchar = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
        bool vchar = c == '\t' || (c >= 0x20 && c != 0x7f);
        assert_int_equal(tr_http_client__is_tchar((unsigned char)c), tchar);
        char one = (char)c;
        assert_int_equal(tr_http_client__is_token(tr_slice(&one, 1)), tchar);
        char buf[40];
        for (size_t len = 1; len <= sizeof(buf); len++) {
            for (size_t pos = 0; pos < len; pos++) {
                memset(buf, 'a', len);
                buf[pos] = (char)c;
                assert_int_equal(tr_http_client__is_field_value(tr_slice(buf, len)), vchar);
                /* obs-text and HTAB next to it change nothing */
                memset(buf, 0x80 | (int)(len & 0x7f), len);
                buf[len - 1 - pos] = '\t';
                buf[pos] = (char)c;
                assert_int_equal(tr_http_client__is_field_value(tr_slice(buf, len)), vchar);
            }
        }
    }
    assert_true(tr_http_client__is_field_value(tr_slice("", 0)));
    assert_false(tr_http_client__is_token(tr_slice("", 0)));
}

static void request_validation(void **state)
{
    static const struct step script[] = {{STEP_RESPOND, OK_HELLO, 0}};
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), NULL);
    struct rec r;
    rec_init(&r, &ctx);
    struct tr_http_client_req *req = NULL;
    struct tr_http_client_request q = make_req(&r, "GE T", "/", NULL);
    assert_int_equal(tr_http_client_request(ctx.client, &q, &req), -EINVAL);
    q = make_req(&r, "CONNECT", "example.com:443", NULL);
    assert_int_equal(tr_http_client_request(ctx.client, &q, &req), -EINVAL);
    q = make_req(&r, "GET", "/a b", NULL);
    assert_int_equal(tr_http_client_request(ctx.client, &q, &req), -EINVAL);
    q = make_req(&r, "GET", "", NULL);
    assert_int_equal(tr_http_client_request(ctx.client, &q, &req), -EINVAL);
    struct tr_http_client_header bad[][1] = {
        {{TR_SLICE_LIT("X-A"), TR_SLICE_LIT("a\r\nInjected: 1")}},
        {{TR_SLICE_LIT("X A"), TR_SLICE_LIT("a")}},
        {{TR_SLICE_LIT("Content-Length"), TR_SLICE_LIT("5")}},
        {{TR_SLICE_LIT("transfer-encoding"), TR_SLICE_LIT("chunked")}},
        {{TR_SLICE_LIT("X-A"), {"a\0b", 3}}},
    };
    for (size_t i = 0; i < TR_ARRAY_LEN(bad); i++) {
        q = make_req(&r, "GET", "/", NULL);
        q.headers = bad[i];
        q.header_count = 1;
        assert_int_equal(tr_http_client_request(ctx.client, &q, &req), -EINVAL);
    }
    q = make_req(&r, "GET", "/", NULL);
    q.stream_body = true;
    q.body = TR_SLICE_LIT("both");
    assert_int_equal(tr_http_client_request(ctx.client, &q, &req), -EINVAL);
    q = make_req(&r, "GET", "/", NULL);
    q.handler = NULL;
    assert_int_equal(tr_http_client_request(ctx.client, &q, &req), -EINVAL);
    assert_null(req);
    assert_int_equal(stats_of(&ctx).requests, 0);
    ctx_run(&ctx);
    assert_int_equal(ctx.srv.accepts, 0);
    /* After close: -ESHUTDOWN. */
    struct tr_http_client *client = ctx.client;
    tr_http_client_close(client, on_client_closed, &ctx);
    ctx.client = NULL;
    q = make_req(&r, "GET", "/", NULL);
    assert_int_equal(tr_http_client_request(client, &q, &req), -ESHUTDOWN);
    ctx_finish(&ctx);
    rec_dispose(&r);
}

/* The request on the wire: request line, Host from the address, caller headers,
 * framing chosen by the client. */
static void request_serialization(void **state)
{
    static const struct step script[] = {{STEP_RESPOND, OK_HELLO, 0}};
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), NULL);
    struct rec r1;
    struct rec r2;
    rec_init(&r1, &ctx);
    rec_init(&r2, &ctx);
    struct tr_http_client_header h[] = {{TR_SLICE_LIT("X-Trace"), TR_SLICE_LIT("abc")}};
    struct tr_http_client_request q = make_req(&r1, "GET", "/x?y=1", NULL);
    q.headers = h;
    q.header_count = 1;
    assert_int_equal(tr_http_client_request(ctx.client, &q, &r1.req), 0);
    ctx_run(&ctx);
    struct tr_http_client_header host[] = {{TR_SLICE_LIT("host"), TR_SLICE_LIT("svc.local")}};
    q = make_req(&r2, "POST", "/p", NULL);
    q.headers = host;
    q.header_count = 1;
    assert_int_equal(tr_http_client_request(ctx.client, &q, &r2.req), 0);
    ctx_run(&ctx);
    assert_int_equal(r1.ends + r2.ends, 2);
    char want[256];
    snprintf(want, sizeof(want),
             "GET /x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Trace: abc\r\n\r\n"
             "POST /p HTTP/1.1\r\nhost: svc.local\r\nContent-Length: 0\r\n\r\n",
             tr_addr_port(&ctx.srv.addr));
    assert_int_equal(ctx.srv.raw.len, strlen(want));
    assert_memory_equal(tr_buf_data(&ctx.srv.raw), want, strlen(want));
    ctx_finish(&ctx);
    rec_dispose(&r1);
    rec_dispose(&r2);
}

static void chain_get(struct rec *r)
{
    struct rec *next = r + 1;
    if (next->ctx != NULL) {
        send_get(next);
    }
}

static void keepalive_reuse(void **state)
{
    static const struct step script[] = {
        {STEP_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Seq: 1\r\n\r\nhello", 0},
        {STEP_RESPOND, "HTTP/1.1 201 Created\r\nX-Seq:  2 \r\nContent-Length: 3\r\n\r\nabc", 0},
        {STEP_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Seq: 3\r\n\r\n", 0},
    };
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r[4];
    for (int i = 0; i < 3; i++) {
        rec_init(&r[i], &ctx);
        r[i].want_header = "x-seq";
        r[i].then = chain_get;
    }
    memset(&r[3], 0, sizeof(r[3]));
    send_get(&r[0]);
    ctx_run(&ctx);
    assert_int_equal(ctx.srv.accepts, 1);
    assert_int_equal(ctx.srv.requests, 3);
    assert_int_equal(r[0].status, 200);
    assert_int_equal(r[1].status, 201);
    assert_string_equal(r[0].header, "1");
    assert_string_equal(r[1].header, "2"); /* OWS trimmed */
    assert_int_equal(r[0].content_length, 5);
    assert_true(r[0].has_body);
    assert_false(r[2].has_body);
    assert_int_equal(r[2].content_length, 0);
    assert_memory_equal(tr_buf_data(&r[0].body), "hello", 5);
    assert_memory_equal(tr_buf_data(&r[1].body), "abc", 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].ends, 1);
        assert_int_equal(r[i].errors, 0);
        assert_int_equal(r[i].headers_cbs, 1);
    }
    struct tr_http_client_stats st = stats_of(&ctx);
    assert_int_equal(st.requests, 3);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.reuses, 2);
    assert_int_equal(st.conns_open, 1);
    assert_int_equal(st.conns_idle, 1);
    ctx_finish(&ctx);
    for (int i = 0; i < 3; i++) {
        rec_dispose(&r[i]);
    }
}

static void chunked_response(void **state)
{
    static const struct step script[] = {
        {STEP_RESPOND,
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n "
         "world\r\n0\r\nX-Trailer: t\r\n\r\n",
         0},
        {STEP_RESPOND, "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n", 0},
    };
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r[3];
    rec_init(&r[0], &ctx);
    rec_init(&r[1], &ctx);
    memset(&r[2], 0, sizeof(r[2]));
    r[0].then = chain_get;
    send_get(&r[0]);
    ctx_run(&ctx);
    assert_int_equal(r[0].ends, 1);
    assert_int_equal(r[0].content_length, -1);
    assert_int_equal(r[0].body.len, 11);
    assert_memory_equal(tr_buf_data(&r[0].body), "hello world", 11);
    assert_int_equal(r[1].ends, 1);
    assert_int_equal(r[1].body.len, 0);
    assert_int_equal(ctx.srv.accepts, 1);
    ctx_finish(&ctx);
    rec_dispose(&r[0]);
    rec_dispose(&r[1]);
}

/* Every byte in its own read: spans, interim response and chunk framing must all
 * survive being split anywhere. */
static void bytewise_response(void **state)
{
    static const struct step script[] = {
        {STEP_BYTEWISE,
         "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-Long-Name: value one\r\n"
         "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
         0},
        {STEP_BYTEWISE, "HTTP/1.1 202 Accepted\r\nContent-Length: 4\r\n\r\nwxyz", 0},
    };
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r[3];
    rec_init(&r[0], &ctx);
    rec_init(&r[1], &ctx);
    memset(&r[2], 0, sizeof(r[2]));
    r[0].want_header = "X-Long-Name";
    r[0].then = chain_get;
    send_get(&r[0]);
    ctx_run(&ctx);
    assert_int_equal(r[0].headers_cbs, 1);
    assert_int_equal(r[0].status, 200);
    assert_string_equal(r[0].header, "value one");
    assert_int_equal(r[0].header_count, 2);
    assert_int_equal(r[0].body.len, 5);
    assert_memory_equal(tr_buf_data(&r[0].body), "abcde", 5);
    assert_int_equal(r[1].status, 202);
    assert_memory_equal(tr_buf_data(&r[1].body), "wxyz", 4);
    assert_true(r[1].body_cbs >= 2); /* delivered as it arrived */
    assert_int_equal(r[0].errors + r[1].errors, 0);
    assert_int_equal(ctx.srv.accepts, 1);
    ctx_finish(&ctx);
    rec_dispose(&r[0]);
    rec_dispose(&r[1]);
}

static void interim_responses(void **state)
{
    static const struct step script[] = {
        {STEP_RESPOND,
         "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
         "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
         0},
    };
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r;
    rec_init(&r, &ctx);
    r.want_header = "link";
    struct tr_http_client_header h[] = {{TR_SLICE_LIT("Expect"), TR_SLICE_LIT("100-continue")}};
    struct tr_http_client_request q = make_req(&r, "POST", "/", "payload");
    q.headers = h;
    q.header_count = 1;
    assert_int_equal(tr_http_client_request(ctx.client, &q, &r.req), 0);
    ctx_run(&ctx);
    assert_int_equal(r.headers_cbs, 1);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.header, ""); /* the 103's headers are not the response's */
    assert_memory_equal(tr_buf_data(&r.body), "ok", 2);
    assert_int_equal(ctx.srv.last_body, 7);
    assert_int_equal(stats_of(&ctx).conns_idle, 1);
    ctx_finish(&ctx);
    rec_dispose(&r);
}

/* Regression (test/response/sample.md:431 through the proxy): llhttp reports an empty
 * field value as a zero-length span after the line break, which was taken for obs-fold
 * and made "Pragma: " answers 502 at the proxy. */
static void empty_header_values(void **state)
{
    static const struct step script[] = {
        {STEP_RESPOND,
         "HTTP/1.1 200 OK\r\nPragma: \r\nX-Empty:\r\nX-After: yes\r\nX-Tab:\t\r\n"
         "Content-Length: 2\r\n\r\nok",
         0},
    };
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r;
    rec_init(&r, &ctx);
    r.want_header = "x-after";
    send_get(&r);
    ctx_run(&ctx);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.header, "yes");
    assert_memory_equal(tr_buf_data(&r.body), "ok", 2);
    ctx_finish(&ctx);
    rec_dispose(&r);
}

static void head_204_304_no_body(void **state)
{
    static const struct step script[] = {
        {STEP_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", 0},
        {STEP_RESPOND, "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", 0},
        {STEP_RESPOND, "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 0},
        {STEP_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0},
    };
    struct tr_http_client_config cfg = test_cfg();
    cfg.read_timeout_ms = 500;
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r[4];
    for (int i = 0; i < 4; i++) {
        rec_init(&r[i], &ctx);
    }
    send_req(&r[0], "HEAD", "/", NULL);
    ctx_run(&ctx);
    for (int i = 1; i < 4; i++) {
        send_get(&r[i]);
        ctx_run(&ctx);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].ends, 1);
        assert_int_equal(r[i].errors, 0);
        assert_false(r[i].has_body);
        assert_int_equal(r[i].body_cbs, 0);
    }
    assert_int_equal(r[1].status, 204);
    assert_int_equal(r[2].status, 304);
    assert_memory_equal(tr_buf_data(&r[3].body), "ok", 2);
    assert_int_equal(ctx.srv.accepts, 1);
    ctx_finish(&ctx);
    for (int i = 0; i < 4; i++) {
        rec_dispose(&r[i]);
    }
}

/* No length: the body runs to EOF and the connection is not reused. Likewise after
 * Connection: close, an HTTP/1.0 response, or stray bytes after the response. */
static void not_reusable_responses(void **state)
{
    static const struct step script[] = {
        {STEP_RESPOND_CLOSE, "HTTP/1.1 200 OK\r\n\r\nhello world", 0},
        {STEP_RESPOND, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 0},
        {STEP_RESPOND, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 0},
        {STEP_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK", 0},
        {STEP_RESPOND, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
         0},
        {STEP_RESPOND, OK_HELLO, 0},
    };
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r[6];
    for (int i = 0; i < 6; i++) {
        rec_init(&r[i], &ctx);
        send_get(&r[i]);
        ctx_run(&ctx);
        assert_int_equal(r[i].ends, 1);
        assert_int_equal(r[i].errors, 0);
    }
    assert_int_equal(r[0].content_length, -1);
    assert_true(r[0].has_body);
    assert_int_equal(r[0].body.len, 11);
    assert_memory_equal(tr_buf_data(&r[0].body), "hello world", 11);
    assert_memory_equal(tr_buf_data(&r[3].body), "ok", 2);
    /* One connection each for the first four; the keep-alive HTTP/1.0 one is reused. */
    assert_int_equal(ctx.srv.accepts, 5);
    assert_int_equal(stats_of(&ctx).reuses, 1);
    ctx_finish(&ctx);
    for (int i = 0; i < 6; i++) {
        rec_dispose(&r[i]);
    }
}

struct bad_case {
    const char *name;
    const char *resp;
    size_t len;
    int err;
    bool headers_seen;
};

static void run_bad_case(const struct bad_case *bc, const struct tr_http_client_config *cfg)
{
    struct step script[] = {{STEP_RESPOND, bc->resp, bc->len}};
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), cfg);
    struct rec r;
    rec_init(&r, &ctx);
    send_get(&r);
    ctx_run(&ctx);
    if (r.errors != 1 || r.err != bc->err) {
        fail_msg("%s: errors %u err %d (%s)", bc->name, r.errors, r.err,
                 tr_http_client_strerror(r.err));
    }
    assert_int_equal(r.ends, 0);
    assert_int_equal(r.headers_cbs, bc->headers_seen ? 1 : 0);
    assert_int_equal((r.flags & TR_HTTP_CLIENT_ERR_HEADERS_SEEN) != 0, bc->headers_seen);
    assert_int_equal(stats_of(&ctx).conns_open, 0);
    ctx_finish(&ctx);
    rec_dispose(&r);
}

#define BAD TR_HTTP_CLIENT_E_BAD_RESPONSE

static void bad_framing(void **state)
{
    static const struct bad_case cases[] = {
        {"CL+TE", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
         BAD, false},
        {"TE+CL", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0,
         BAD, false},
        {"TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", 0, BAD, false},
        {"TE gzip,chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
         0, BAD, false},
        {"TE chunked,gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc", 0,
         BAD, false},
        {"TE twice",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
         "0\r\n\r\n",
         0, BAD, false},
        {"TE empty", "HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\nabc", 0, BAD, false},
        {"CL twice same", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", 0,
         BAD, false},
        {"CL twice differ", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
         0, BAD, false},
        {"CL list", "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", 0, BAD, false},
        {"CL junk", "HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok", 0, BAD, false},
        {"obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n", 0, BAD, false},
        {"obs-fold empty", "HTTP/1.1 200 OK\r\nX-A:\r\n b\r\nContent-Length: 0\r\n\r\n", 0, BAD,
         false},
        {"space before colon", "HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length: 0\r\n\r\n", 0, BAD,
         false},
        {"NUL in value", "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n", 44, BAD,
         false},
        {"CR in value", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n", 0, BAD, false},
        {"LF in value", "HTTP/1.1 200 OK\r\nX-A: a\nb\r\nContent-Length: 0\r\n\r\n", 0, BAD, false},
        {"TE in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, BAD,
         false},
        {"HTTP/2.0", "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0, BAD, false},
        {"HTTP/1.2", "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n", 0, BAD, false},
        {"status 099", "HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n", 0, BAD, false},
        {"101 upgrade",
         "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", 0,
         BAD, false},
        {"garbage", "SSH-2.0-OpenSSH_9.2\r\n", 0, BAD, false},
        {"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n", 0,
         BAD, true},
        {"truncated body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0, 0, true},
    };
    struct tr_http_client_config cfg = test_cfg();
    cfg.read_timeout_ms = 300;
    for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
        struct bad_case bc = cases[i];
        if (bc.err == 0) {
            bc.err = TR_HTTP_CLIENT_E_READ_TIMEOUT; /* the upstream keeps the socket open */
        }
        run_bad_case(&bc, &cfg);
    }
}

static void truncated_by_close(void **state)
{
    static const struct step script[] = {
        {STEP_RESPOND_CLOSE, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0},
    };
    struct tr_http_client_config cfg = test_cfg();
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r;
    rec_init(&r, &ctx);
    send_get(&r);
    ctx_run(&ctx);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.err, TR_HTTP_CLIENT_E_RESET);
    assert_int_equal(r.flags, TR_HTTP_CLIENT_ERR_HEADERS_SEEN);
    assert_memory_equal(tr_buf_data(&r.body), "abc", 3);
    ctx_finish(&ctx);
    rec_dispose(&r);
}

static void header_limits(void **state)
{
    static char big[2200];
    snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nX-Big: %0*d\r\nContent-Length: 0\r\n\r\n", 2000,
             7);
    struct tr_http_client_config cfg = test_cfg();
    cfg.max_header_bytes = 1024;
    cfg.max_headers = 3;
    struct bad_case too_big = {"too large", big, 0, TR_HTTP_CLIENT_E_HEADERS_TOO_LARGE, false};
    run_bad_case(&too_big, &cfg);
    struct bad_case too_many = {
        "too many", "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nContent-Length: 0\r\n\r\n", 0,
        TR_HTTP_CLIENT_E_HEADERS_TOO_LARGE, false};
    run_bad_case(&too_many, &cfg);
    /* Exactly at both limits is fine. */
    static char edge[1100];
    const char *fmt = "HTTP/1.1 200 OK\r\nA: 1\r\nX: %0*d\r\nContent-Length: 0\r\n\r\n";
    int base = snprintf(NULL, 0, fmt, 1, 0) - 1;
    snprintf(edge, sizeof(edge), fmt, 1024 - base, 0);
    assert_int_equal(strlen(edge), 1024);
    struct step script[] = {{STEP_RESPOND, edge, 0}};
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r;
    rec_init(&r, &ctx);
    send_get(&r);
    ctx_run(&ctx);
    assert_int_equal(r.ends, 1);
    assert_int_equal(r.header_count, 3);
    ctx_finish(&ctx);
    rec_dispose(&r);
}

static void connect_refused(void **state)
{
    static const struct step script[] = {{STEP_RESPOND, OK_HELLO, 0}};
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), NULL);
    struct tr_addr dead;
    assert_int_equal(tr_addr_parse("127.0.0.1:0", &dead), 0);
    int fd = tr_listen_socket(&dead, 1);
    assert_true(fd >= 0);
    close(fd); /* the port is now (almost certainly) closed */
    struct rec r;
    rec_init(&r, &ctx);
    struct tr_http_client_request q = make_req(&r, "GET", "/", NULL);
    q.upstream = dead;
    assert_int_equal(tr_http_client_request(ctx.client, &q, &r.req), 0);
    ctx_run(&ctx);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.err, UV_ECONNREFUSED);
    assert_int_equal(r.flags, TR_HTTP_CLIENT_ERR_CONNECT);
    assert_int_equal(stats_of(&ctx).conns_open, 0);
    ctx_finish(&ctx);
    rec_dispose(&r);
}

/* A loopback listener that never accepts, with a zero backlog already full: further
 * SYNs are dropped, so connect() hangs until our timeout. */
static void connect_timeout(void **state)
{
    static const struct step script[] = {{STEP_RESPOND, OK_HELLO, 0}};
    struct tr_http_client_config cfg = test_cfg();
    cfg.connect_timeout_ms = 100;
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct tr_addr addr;
    assert_int_equal(tr_addr_parse("127.0.0.1:0", &addr), 0);
    int lfd = tr_listen_socket(&addr, 0);
    assert_true(lfd >= 0);
    int fillers[3];
    for (size_t i = 0; i < TR_ARRAY_LEN(fillers); i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        assert_true(fillers[i] >= 0);
        int rc = connect(fillers[i], (struct sockaddr *)&addr.ss, addr.len);
        assert_true(rc == 0 || errno == EINPROGRESS);
    }
    usleep(20000);
    struct rec r;
    rec_init(&r, &ctx);
    struct tr_http_client_request q = make_req(&r, "GET", "/", NULL);
    q.upstream = addr;
    uv_update_time(&ctx.loop); /* timeouts count from loop time */
    uint64_t t0 = uv_hrtime();
    assert_int_equal(tr_http_client_request(ctx.client, &q, &r.req), 0);
    ctx_run(&ctx);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.err, TR_HTTP_CLIENT_E_CONNECT_TIMEOUT);
    assert_int_equal(r.flags, TR_HTTP_CLIENT_ERR_CONNECT);
    assert_true(ms >= 90 && ms < 5000);
    ctx_finish(&ctx);
    for (size_t i = 0; i < TR_ARRAY_LEN(fillers); i++) {
        close(fillers[i]);
    }
    close(lfd);
    rec_dispose(&r);
}

static void response_timeout(void **state)
{
    static const struct step script[] = {{STEP_SILENT, NULL, 0}};
    struct tr_http_client_config cfg = test_cfg();
    cfg.response_timeout_ms = 80;
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r;
    rec_init(&r, &ctx);
    uint64_t t0 = uv_hrtime();
    send_get(&r);
    ctx_run(&ctx);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.err, TR_HTTP_CLIENT_E_RESPONSE_TIMEOUT);
    assert_int_equal(r.flags, 0);
    assert_true(ms >= 70);
    assert_int_equal(ctx.srv.requests, 1);
    ctx_finish(&ctx);
    rec_dispose(&r);
}

static void read_timeout(void **state)
{
    static const struct step script[] = {
        {STEP_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", 0},
    };
    struct tr_http_client_config cfg = test_cfg();
    cfg.read_timeout_ms = 80;
    cfg.response_timeout_ms = 10000; /* the read timeout, not this, must end it */
    struct ctx ctx;
    ctx_init(&ctx, script, TR_ARRAY_LEN(script), &cfg);
    struct rec r;
    rec_init(&r, &ctx);
    uv_update_time(&ctx.loop);
    uint64_t t0 = uv_hrtime();
    send_get(&r);
    ctx_run(&ctx);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.err, TR_HTTP_CLIENT_E_READ_TIMEOUT);
    assert_true(ms >= 70 && ms < 5000);
    assert_int_equal(r.flags, TR_HTTP_CLIENT_ERR_HEADERS_SEEN);
    assert_memory_equal(tr_buf_data(&r.body), "ab", 2);
    ctx_finish(&ctx);
    rec_dispose(&r);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(char_classes),          cmocka_unit_test(request_validation),
        cmocka_unit_test(request_serialization), cmocka_unit_test(keepalive_reuse),
        cmocka_unit_test(chunked_response),      cmocka_unit_test(bytewise_response),
        cmocka_unit_test(interim_responses),     cmocka_unit_test(empty_header_values),
        cmocka_unit_test(head_204_304_no_body),  cmocka_unit_test(not_reusable_responses),
        cmocka_unit_test(bad_framing),           cmocka_unit_test(truncated_by_close),
        cmocka_unit_test(header_limits),         cmocka_unit_test(connect_refused),
        cmocka_unit_test(connect_timeout),       cmocka_unit_test(response_timeout),
        cmocka_unit_test(read_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
