/* SPDX-License-Identifier: Apache-2.0 */
/* `trellis echo`: a minimal fast HTTP server for tests and benchmarks. It answers
 * every request with a fixed body of --body-size bytes, or with --echo streams the
 * request (head and body) back as it arrives, with backpressure both ways. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/mem.h"
#include "http/serve.h"

struct echo {
    char *body; /* owned; --body-size bytes, read-only once serving */
    size_t body_len;
};

static void on_fixed(struct tr_http_req *req)
{
    struct echo *e = req->server->data;
    tr_http_resp_send(req, 200, TR_SLICE_LIT("text/plain"), tr_slice(e->body, e->body_len));
}

static void on_echo_drain(struct tr_http_req *req)
{
    tr_http_req_resume(req);
}

static void on_echo_body(struct tr_http_req *req, struct tr_slice chunk)
{
    if (tr_http_resp_write(req, chunk, on_echo_drain)) {
        tr_http_req_pause(req);
    }
}

static void on_echo_end(struct tr_http_req *req, bool complete)
{
    if (complete) {
        tr_http_resp_end(req);
    }
}

/* Streams back "METHOD target HTTP/1.x", the headers, a blank line, then the body. */
static void on_echo(struct tr_http_req *req)
{
    struct tr_buf head;
    tr_buf_init(&head);
    tr_buf_appendf(&head, "%.*s %.*s HTTP/1.%u\r\n", TR_SLICE_FMT(req->method),
                   TR_SLICE_FMT(req->target), req->version_minor);
    for (size_t i = 0; i < req->nheaders; i++) {
        tr_buf_appendf(&head, "%.*s: %.*s\r\n", TR_SLICE_FMT(req->headers[i].name),
                       TR_SLICE_FMT(req->headers[i].value));
    }
    tr_buf_append(&head, "\r\n", 2);
    uint64_t len = UINT64_MAX;
    if (!req->chunked) {
        len = head.len + (req->content_length == UINT64_MAX ? 0 : req->content_length);
    }
    tr_http_resp_start(req, 200, TR_SLICE_LIT("text/plain"), len);
    tr_http_resp_write(req, tr_buf_slice(&head), NULL);
    tr_buf_dispose(&head);
    req->on_body = on_echo_body;
    req->on_body_end = on_echo_end;
}

static bool takes_value(const char *name)
{
    return strcmp(name, "body-size") == 0 || tr_serve_opts_known(name);
}

static int run(int argc, char **argv)
{
    struct tr_serve_opts o;
    tr_serve_opts_init(&o, "127.0.0.1:8080");
    uint64_t body_size = 2;
    bool echo_mode = false;
    for (int i = 1; i < argc;) {
        const char *value;
        const char *name = tr_cli_next_opt(argc, argv, &i, &value, takes_value);
        if (name == NULL) {
            return tr_cli_usage_error("echo", "unexpected argument \"%s\"", argv[i - 1]);
        }
        if (strcmp(name, "echo") == 0) {
            echo_mode = true;
            continue;
        }
        if (!takes_value(name)) {
            return tr_cli_usage_error("echo", "unknown option --%s", name);
        }
        if (value == NULL) {
            return tr_cli_usage_error("echo", "--%s needs a value", name);
        }
        if (strcmp(name, "body-size") == 0) {
            if (tr_parse_size(value, &body_size) != 0 || body_size > 64u * 1024 * 1024) {
                return tr_cli_usage_error("echo", "--body-size: expected a size up to 64MiB, "
                                                  "got \"%s\"", value);
            }
            continue;
        }
        int rc = tr_serve_opts_parse(&o, name, value);
        if (rc < 0) {
            return 2;
        }
        if (rc == 0) {
            return tr_cli_usage_error("echo", "unknown option --%s", name);
        }
    }
    struct echo e = {.body = tr_xmalloc(body_size), .body_len = body_size};
    memset(e.body, 'x', body_size);
    struct tr_router router;
    tr_router_init(&router);
    int err = echo_mode ? tr_router_add(&router, "*", "/*path", on_echo, NULL, TR_ROUTE_STREAM)
                        : tr_router_add(&router, "*", "/*path", on_fixed, NULL, TR_ROUTE_BUFFERED);
    TR_ASSERT(err == 0);
    struct tr_http_serve cfg = {
        .name = "echo",
        .listen = o.listen,
        .workers = o.workers,
        .drain_ms = o.drain_ms,
        .limits = o.limits,
        .router = &router,
        .data = &e,
    };
    int rc = tr_http_serve_run(&cfg);
    tr_router_dispose(&router);
    tr_free_null(&e.body);
    return rc;
}

const struct tr_cli_cmd tr_cli_cmd_echo = {
    .name = "echo",
    .summary = "a minimal fast HTTP server (test upstream, benchmarks)",
    .usage = "Usage: trellis echo [--listen ADDR] [--workers N] [--body-size BYTES] [--echo]\n\n"
             "Answers every request with 200 and a fixed body of --body-size bytes\n"
             "(default 2), or with --echo streams the request back: request line,\n"
             "headers, blank line, body.\n\n"
             "  --body-size SIZE   size of the fixed body (4096, 16KiB; max 64MiB)\n"
             "  --echo             echo the request instead of the fixed body\n",
    .serving = true,
    .run = run,
};
