/* SPDX-License-Identifier: Apache-2.0 */
/* Hop-by-hop filtering (RFC 9110 §7.6.1) and the forwarding headers, both ways. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/headers.h"

#define H(n, v)                                                                                    \
    {                                                                                              \
        TR_SLICE_LIT(n), TR_SLICE_LIT(v)                                                           \
    }

static void init_req(struct tr_http_req *req, struct tr_http_header *h, size_t n)
{
    memset(req, 0, sizeof(*req));
    tr_arena_init(&req->arena, 512);
    tr_buf_init(&req->resp_headers);
    req->headers = h;
    req->nheaders = n;
    req->version_minor = 1;
}

static void dispose_req(struct tr_http_req *req)
{
    tr_arena_dispose(&req->arena);
    tr_buf_dispose(&req->resp_headers);
}

static const char *find(const struct tr_http_client_header *h, size_t n, const char *name,
                        char *buf, size_t size)
{
    for (size_t i = 0; i < n; i++) {
        if (tr_slice_caseeq(h[i].name, tr_slice_cstr(name))) {
            snprintf(buf, size, "%.*s", TR_SLICE_FMT(h[i].value));
            return buf;
        }
    }
    return NULL;
}

static void request_side(void **state)
{
    struct tr_http_header in[] = {
        H("Host", "example.test"),
        H("Connection", "keep-alive, X-Secret, Host"),
        H("Connection", "Upgrade"),
        H("X-Secret", "s"),
        H("Keep-Alive", "timeout=5"),
        H("Proxy-Connection", "keep-alive"),
        H("TE", "trailers"),
        H("Transfer-Encoding", "chunked"),
        H("Content-Length", "5"),
        H("Upgrade", "websocket"),
        H("Trailer", "X-T"),
        H("Proxy-Authorization", "Basic x"),
        H("Expect", "100-continue"),
        H("X-Forwarded-For", "1.1.1.1"),
        H("x-forwarded-for", "2.2.2.2"),
        H("X-Forwarded-Proto", "https"),
        H("Via", "1.1 edge"),
        H("Accept", "*/*"),
    };
    struct tr_http_req req;
    init_req(&req, in, TR_ARRAY_LEN(in));
    struct tr_http_client_header out[TR_ARRAY_LEN(in) + TR_PROXY_HEADERS_ADDED];
    struct tr_proxy_fwd fwd = {TR_SLICE_LIT("10.0.0.9"), TR_SLICE_LIT("rid-1")};
    size_t n = tr_proxy_headers_request(&req, &fwd, out, &req.arena);
    char b[128];
    assert_int_equal(n, 6);
    assert_string_equal(find(out, n, "host", b, sizeof(b)), "example.test");
    assert_string_equal(find(out, n, "accept", b, sizeof(b)), "*/*");
    assert_string_equal(find(out, n, "x-forwarded-for", b, sizeof(b)),
                        "1.1.1.1, 2.2.2.2, 10.0.0.9");
    assert_string_equal(find(out, n, "x-forwarded-proto", b, sizeof(b)), "http");
    assert_string_equal(find(out, n, "x-request-id", b, sizeof(b)), "rid-1");
    assert_string_equal(find(out, n, "via", b, sizeof(b)), "1.1 edge, 1.1 trellis");
    dispose_req(&req);

    /* HTTP/1.0 client, no forwarding headers yet, no id to add. */
    struct tr_http_header in2[] = {H("X-Request-Id", "mine")};
    init_req(&req, in2, 1);
    req.version_minor = 0;
    struct tr_proxy_fwd fwd2 = {TR_SLICE_LIT("::1"), TR_SLICE_NULL};
    n = tr_proxy_headers_request(&req, &fwd2, out, &req.arena);
    assert_int_equal(n, 4);
    assert_string_equal(find(out, n, "x-request-id", b, sizeof(b)), "mine");
    assert_string_equal(find(out, n, "x-forwarded-for", b, sizeof(b)), "::1");
    assert_string_equal(find(out, n, "via", b, sizeof(b)), "1.0 trellis");
    dispose_req(&req);
}

/* An absolute-form target's authority replaces Host (RFC 9112 §3.2.2), userinfo
 * dropped; any other target keeps the client's Host (found by the proxy conformance
 * replay, test/request/uri.md:55+host). */
static void request_host_from_absolute_form(void **state)
{
    static const struct {
        const char *target;
        const char *host; /* NULL: the client's, "example.test" */
    } cases[] = {
        {"http://hypnotoad.org?hail=all", "hypnotoad.org"},
        {"http://hypnotoad.org:1234", "hypnotoad.org:1234"},
        {"http://a%12:b!&*$@hypnotoad.org:1234/toto", "hypnotoad.org:1234"},
        {"https://h.test/x#frag", "h.test"},
        {"http:///nohost", NULL},
        {"/origin?x=http://evil", NULL},
        {"*", NULL},
        {"mailto:x", NULL},
    };
    char b[128];
    for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
        struct tr_http_header in[] = {H("Host", "example.test"), H("Accept", "*/*")};
        struct tr_http_req req;
        init_req(&req, in, TR_ARRAY_LEN(in));
        req.target = tr_slice_cstr(cases[i].target);
        struct tr_http_client_header out[TR_ARRAY_LEN(in) + TR_PROXY_HEADERS_ADDED];
        struct tr_proxy_fwd fwd = {TR_SLICE_LIT("10.0.0.9"), TR_SLICE_NULL};
        size_t n = tr_proxy_headers_request(&req, &fwd, out, &req.arena);
        size_t hosts = 0;
        for (size_t k = 0; k < n; k++) {
            hosts += tr_slice_caseeq(out[k].name, TR_SLICE_LIT("host"));
        }
        assert_int_equal(hosts, 1);
        const char *want = cases[i].host != NULL ? cases[i].host : "example.test";
        assert_string_equal(find(out, n, "host", b, sizeof(b)), want);
        dispose_req(&req);
    }
    /* HTTP/1.0 without Host: the authority is added. */
    struct tr_http_req req;
    init_req(&req, NULL, 0);
    req.version_minor = 0;
    req.target = TR_SLICE_LIT("http://h10.test/");
    struct tr_http_client_header out[TR_PROXY_HEADERS_ADDED];
    struct tr_proxy_fwd fwd = {TR_SLICE_LIT("10.0.0.9"), TR_SLICE_LIT("rid")};
    size_t n = tr_proxy_headers_request(&req, &fwd, out, &req.arena);
    assert_int_equal(n, TR_PROXY_HEADERS_ADDED);
    assert_string_equal(find(out, n, "host", b, sizeof(b)), "h10.test");
    dispose_req(&req);
}

static void response_side(void **state)
{
    struct tr_http_client_header hs[] = {
        H("Content-Type", "text/plain"),
        H("Content-Length", "42"),
        H("Date", "x"),
        H("Server", "up"),
        H("Connection", "close, X-Hop"),
        H("X-Hop", "1"),
        H("Keep-Alive", "timeout=1"),
        H("Transfer-Encoding", "chunked"),
        H("Proxy-Authenticate", "Basic"),
        H("Set-Cookie", "a=1"),
        H("Set-Cookie", "b=2"),
        H("Via", "1.0 inner"),
    };
    struct tr_http_client_resp resp = {
        .status = 200, .version_minor = 1, .headers = hs, .header_count = TR_ARRAY_LEN(hs)};
    struct tr_http_req req;
    init_req(&req, NULL, 0);
    int64_t cl = tr_proxy_headers_response(&req, &resp, TR_SLICE_LIT("rid"));
    assert_int_equal(cl, 42);
    const char expect[] = "Content-Type: text/plain\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
                          "Via: 1.0 inner, 1.1 trellis\r\nX-Request-Id: rid\r\n";
    assert_int_equal(req.resp_headers.len, strlen(expect));
    assert_memory_equal(tr_buf_data(&req.resp_headers), expect, strlen(expect));
    dispose_req(&req);

    /* The upstream's own X-Request-Id wins; no Content-Length gives -1. */
    struct tr_http_client_header hs2[] = {H("X-Request-Id", "up")};
    struct tr_http_client_resp resp2 = {.status = 204, .headers = hs2, .header_count = 1};
    init_req(&req, NULL, 0);
    assert_int_equal(tr_proxy_headers_response(&req, &resp2, TR_SLICE_LIT("rid")), -1);
    const char expect2[] = "X-Request-Id: up\r\nVia: 1.0 trellis\r\n";
    assert_memory_equal(tr_buf_data(&req.resp_headers), expect2, strlen(expect2));
    dispose_req(&req);
}

static void cookies_and_peers(void **state)
{
    struct tr_http_header in[] = {H("Cookie", "a=1; session=abc; b=2"), H("Cookie", "c=3")};
    struct tr_http_req req;
    init_req(&req, in, 2);
    struct tr_slice v = tr_proxy_headers_cookie(&req, TR_SLICE_LIT("session"));
    assert_int_equal(v.len, 3);
    assert_memory_equal(v.ptr, "abc", 3);
    v = tr_proxy_headers_cookie(&req, TR_SLICE_LIT("c"));
    assert_int_equal(v.len, 1);
    assert_null(tr_proxy_headers_cookie(&req, TR_SLICE_LIT("sess")).ptr);
    dispose_req(&req);
    struct tr_slice ip = tr_proxy_peer_ip("127.0.0.1:4242");
    assert_int_equal(ip.len, 9);
    ip = tr_proxy_peer_ip("[::1]:80");
    assert_int_equal(ip.len, 3);
    assert_memory_equal(ip.ptr, "::1", 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_side),
        cmocka_unit_test(request_host_from_absolute_form),
        cmocka_unit_test(response_side),
        cmocka_unit_test(cookies_and_peers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
