/* SPDX-License-Identifier: Apache-2.0 */
/* Blocking calls to a trellis server for the CLI. Each call starts one request on the
 * project's HTTP client and turns the private loop until its end or error callback has
 * run; the keep-alive connection is reused by the next call (`trellis services` makes
 * one call per service). */
#include "cli/api.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/client.h"

/* One call in flight: what the callbacks fill in. */
struct call {
    struct tr_cli_resp *resp;
    int err;        /* 0, or the error callback's code */
    unsigned flags; /* the error callback's TR_HTTP_CLIENT_ERR_* */
    bool done;      /* the end or error callback ran */
};

static const char *addr_source(const char *addr_opt, const char **text)
{
    if (addr_opt != NULL) {
        *text = addr_opt;
        return "--addr";
    }
    const char *env = getenv("TRELLIS_ADDR");
    if (env != NULL && env[0] != '\0') {
        *text = env;
        return "TRELLIS_ADDR";
    }
    env = getenv("CONSUL_HTTP_ADDR");
    if (env != NULL && env[0] != '\0') {
        *text = env;
        return "CONSUL_HTTP_ADDR";
    }
    *text = TR_CLI_DEFAULT_ADDR;
    return "the default address";
}

/* Splits "host:port", "[v6]:port" or "host" (port `def_port`) into NUL-terminated
 * parts. Returns NULL or why the text is not an address. */
static const char *split_host_port(const char *hp, char *host, size_t host_size, char *port,
                                   size_t port_size, const char *def_port)
{
    const char *host_start = hp;
    const char *host_end;
    const char *colon;
    if (hp[0] == '[') {
        host_start = hp + 1;
        host_end = strchr(host_start, ']');
        if (host_end == NULL) {
            return "missing ']' after an IPv6 address";
        }
        colon = host_end[1] == ':' ? host_end + 1 : NULL;
        if (host_end[1] != '\0' && colon == NULL) {
            return "expected ':' after ']'";
        }
    } else {
        colon = strrchr(hp, ':');
        host_end = colon != NULL ? colon : hp + strlen(hp);
        if (colon != NULL && strchr(hp, ':') != colon) {
            return "an IPv6 address needs brackets: [::1]:8500";
        }
    }
    size_t host_len = (size_t)(host_end - host_start);
    if (host_len == 0 || host_len >= host_size) {
        return host_len == 0 ? "missing host" : "host too long";
    }
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
    const char *p = colon != NULL ? colon + 1 : def_port;
    uint64_t n = 0;
    if (tr_slice_to_u64(tr_slice_cstr(p), &n) != 0 || n == 0 || n > 65535) {
        return "expected a port number between 1 and 65535";
    }
    snprintf(port, port_size, "%u", (unsigned)n);
    return NULL;
}

static int resolve(struct tr_cli_api *api, const char *host, const char *port)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "trellis %s: cannot resolve trellis server address %s: %s\n", api->cmd,
                api->display, gai_strerror(rc));
        return 1;
    }
    memcpy(&api->addr.ss, res->ai_addr, res->ai_addrlen);
    api->addr.len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int tr_cli_api_open(struct tr_cli_api *api, const char *cmd, const char *addr_opt)
{
    memset(api, 0, sizeof(*api));
    api->cmd = cmd;
    const char *text;
    const char *source = addr_source(addr_opt, &text);
    const char *hp = text;
    const char *def_port = "8500";
    const char *sep = strstr(text, "://");
    if (sep != NULL) {
        if ((size_t)(sep - text) != 4 || strncasecmp(text, "http", 4) != 0) {
            fprintf(stderr, "trellis %s: %s: unsupported scheme in \"%s\" (only http:// is)\n", cmd,
                    source, text);
            return 2;
        }
        hp = sep + 3;
        def_port = "80";
    }
    size_t len = strlen(hp);
    if (len > 0 && hp[len - 1] == '/') {
        len--;
    }
    if (len == 0 || len >= sizeof(api->display) || memchr(hp, '/', len) != NULL) {
        fprintf(stderr, "trellis %s: %s: expected host:port or http://host:port, got \"%s\"\n", cmd,
                source, text);
        return 2;
    }
    memcpy(api->display, hp, len);
    api->display[len] = '\0';
    char host[256];
    char port[8];
    const char *why =
        split_host_port(api->display, host, sizeof(host), port, sizeof(port), def_port);
    if (why != NULL) {
        fprintf(stderr, "trellis %s: %s: %s in \"%s\"\n", cmd, source, why, text);
        return 2;
    }
    return resolve(api, host, port);
}

static void on_closed(void *data)
{
    bool *closed = data;
    *closed = true;
}

void tr_cli_api_close(struct tr_cli_api *api)
{
    if (api->client == NULL) {
        return;
    }
    bool closed = false;
    tr_http_client_close(api->client, on_closed, &closed);
    api->client = NULL;
    uv_run(&api->loop, UV_RUN_DEFAULT);
    TR_ASSERT(closed);
    TR_ASSERT(uv_loop_close(&api->loop) == 0);
}

static void on_headers(struct tr_http_client_req *req, const struct tr_http_client_resp *r,
                       void *data)
{
    struct call *c = data;
    c->resp->status = r->status;
}

static void on_body(struct tr_http_client_req *req, struct tr_slice chunk, void *data)
{
    struct call *c = data;
    if (c->resp->body.len + chunk.len > TR_CLI_MAX_RESPONSE_BYTES) {
        c->err = -EFBIG;
        c->done = true;
        tr_http_client_req_cancel(req);
        return;
    }
    tr_buf_append_slice(&c->resp->body, chunk);
}

static void on_end(struct tr_http_client_req *req, void *data)
{
    struct call *c = data;
    c->done = true;
}

static void on_error(struct tr_http_client_req *req, int err, unsigned flags, void *data)
{
    struct call *c = data;
    c->err = err;
    c->flags = flags;
    c->done = true;
}

static const struct tr_http_client_handler handler = {
    .on_headers = on_headers,
    .on_body = on_body,
    .on_end = on_end,
    .on_error = on_error,
};

static void report_failure(const struct tr_cli_api *api, int err, bool connected)
{
    const char *peer = api->peer_name != NULL ? api->peer_name : "trellis server";
    if (err == -EFBIG) {
        fprintf(stderr, "trellis %s: response from %s at %s is larger than %u MiB\n", api->cmd,
                peer, api->display, TR_CLI_MAX_RESPONSE_BYTES >> 20);
    } else if (!connected) {
        fprintf(stderr, "trellis %s: cannot reach %s at %s: %s\n", api->cmd, peer, api->display,
                tr_http_client_strerror(err));
    } else {
        fprintf(stderr, "trellis %s: request to %s at %s failed: %s\n", api->cmd, peer,
                api->display, tr_http_client_strerror(err));
    }
}

static void start_client(struct tr_cli_api *api)
{
    /* Writing to a server that went away must fail the write, not kill the CLI. */
    signal(SIGPIPE, SIG_IGN);
    TR_ASSERT(uv_loop_init(&api->loop) == 0);
    struct tr_http_client_config cfg;
    tr_http_client_config_init(&cfg);
    cfg.max_idle_per_upstream = 1;
    cfg.connect_timeout_ms = 5000;
    cfg.response_timeout_ms = api->response_timeout_ms ? api->response_timeout_ms : 60000;
    api->client = tr_http_client_new(&api->loop, &cfg);
}

int tr_cli_api_call(struct tr_cli_api *api, const char *method, const char *target,
                    struct tr_slice body, struct tr_cli_resp *resp)
{
    memset(resp, 0, sizeof(*resp));
    tr_cli_buf_init(&resp->body);
    if (api->client == NULL) {
        start_client(api);
    }
    static const struct tr_http_client_header headers[] = {
        {TR_SLICE_LIT("Accept"), TR_SLICE_LIT("application/json")},
        {TR_SLICE_LIT("User-Agent"), TR_SLICE_LIT("trellis-cli")},
    };
    struct call c = {.resp = resp};
    struct tr_http_client_request r = {
        .upstream = api->addr,
        .method = tr_slice_cstr(method),
        .target = tr_slice_cstr(target),
        .headers = headers,
        .header_count = TR_ARRAY_LEN(headers),
        .body = body,
        .handler = &handler,
        .data = &c,
    };
    struct tr_http_client_req *req;
    int err = tr_http_client_request(api->client, &r, &req);
    if (err != 0) {
        report_failure(api, err, false);
        return err;
    }
    while (!c.done) {
        uv_run(&api->loop, UV_RUN_ONCE);
    }
    if (c.err != 0) {
        report_failure(api, c.err, !(c.flags & TR_HTTP_CLIENT_ERR_CONNECT));
        return c.err;
    }
    return 0;
}

void tr_cli_resp_dispose(struct tr_cli_resp *resp)
{
    tr_buf_dispose(&resp->body);
}

/* The human part of an error body: Trellis's {"error":{"message"}}, else the text. */
static struct tr_slice error_message(const struct tr_cli_resp *resp, json_t **owned)
{
    struct tr_slice body = tr_slice_trim(tr_buf_slice(&resp->body));
    *owned = json_loadb(body.ptr, body.len, 0, NULL);
    const char *msg =
        json_string_value(json_object_get(json_object_get(*owned, "error"), "message"));
    if (msg != NULL) {
        return tr_slice_cstr(msg);
    }
    while (body.len > 0 && (body.ptr[body.len - 1] == '\n' || body.ptr[body.len - 1] == '\r')) {
        body.len--;
    }
    return body;
}

void tr_cli_api_print_status(const struct tr_cli_api *api, const char *what,
                             const struct tr_cli_resp *resp)
{
    json_t *owned = NULL;
    struct tr_slice msg = error_message(resp, &owned);
    fprintf(stderr, "trellis %s: %s: server answered %d", api->cmd, what, resp->status);
    if (msg.len > 0) {
        fprintf(stderr, ": %.*s", TR_SLICE_FMT(msg));
    }
    fputc('\n', stderr);
    json_decref(owned);
}

json_t *tr_cli_resp_json(const struct tr_cli_api *api, const struct tr_cli_resp *resp)
{
    json_error_t jerr;
    json_t *v = json_loadb(tr_buf_data(&resp->body), resp->body.len, JSON_DECODE_ANY, &jerr);
    if (v == NULL) {
        fprintf(stderr, "trellis %s: server at %s sent malformed JSON: %s\n", api->cmd,
                api->display, jerr.text);
    }
    return v;
}

void tr_cli_url_escape(struct tr_buf *out, struct tr_slice s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < s.len; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~' ||
                     (keep_slash && ch == '/');
        if (plain) {
            tr_buf_append(out, &s.ptr[i], 1);
        } else {
            char esc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            tr_buf_append(out, esc, sizeof(esc));
        }
    }
}

void tr_cli_buf_init(struct tr_buf *buf)
{
    tr_buf_init(buf);
    tr_buf_reserve(buf, 64);
}

void tr_cli_print_json(const json_t *v)
{
    json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
    fputc('\n', stdout);
}
