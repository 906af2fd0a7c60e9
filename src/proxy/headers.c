/* SPDX-License-Identifier: Apache-2.0 */
/* Hop-by-hop filtering and forwarding headers (see headers.h). */
#include "proxy/headers.h"

#include <ctype.h>
#include <string.h>

#define MAX_CONN_TOKENS 16

enum field {
    F_OTHER = 0,
    F_HOP,      /* hop-by-hop in both directions */
    F_FRAME,    /* Content-Length: redone by the engine */
    F_REQ_HOP,  /* Proxy-Authorization, Expect: request side only */
    F_RESP_HOP, /* Proxy-Authenticate, Date, Server: response side only (engine adds its own) */
    F_XFF,
    F_XFP,
    F_VIA,
    F_REQUEST_ID,
    F_HOST,
};

static bool is(struct tr_slice name, const char *lit, size_t len)
{
    return name.len == len && tr_ascii_caseeq(name.ptr, lit, len);
}

#define IS(name, lit) is((name), (lit), sizeof(lit) - 1)

static enum field classify(struct tr_slice n)
{
    if (n.len == 0) {
        return F_OTHER;
    }
    switch (tolower((unsigned char)n.ptr[0])) {
    case 'c':
        return IS(n, "connection") ? F_HOP : IS(n, "content-length") ? F_FRAME : F_OTHER;
    case 'd':
        return IS(n, "date") ? F_RESP_HOP : F_OTHER;
    case 'e':
        return IS(n, "expect") ? F_REQ_HOP : F_OTHER;
    case 'h':
        return IS(n, "host") ? F_HOST : F_OTHER;
    case 'k':
        return IS(n, "keep-alive") ? F_HOP : F_OTHER;
    case 'p':
        if (IS(n, "proxy-connection")) {
            return F_HOP;
        }
        if (IS(n, "proxy-authorization")) {
            return F_REQ_HOP;
        }
        return IS(n, "proxy-authenticate") ? F_RESP_HOP : F_OTHER;
    case 's':
        return IS(n, "server") ? F_RESP_HOP : F_OTHER;
    case 't':
        return IS(n, "te") || IS(n, "transfer-encoding") || IS(n, "trailer") ? F_HOP : F_OTHER;
    case 'u':
        return IS(n, "upgrade") ? F_HOP : F_OTHER;
    case 'v':
        return IS(n, "via") ? F_VIA : F_OTHER;
    case 'x':
        if (IS(n, "x-forwarded-for")) {
            return F_XFF;
        }
        if (IS(n, "x-forwarded-proto")) {
            return F_XFP;
        }
        return IS(n, "x-request-id") ? F_REQUEST_ID : F_OTHER;
    default:
        return F_OTHER;
    }
}

/* The field names listed in Connection headers (RFC 9110 §7.6.1). */
struct conn_tokens {
    struct tr_slice t[MAX_CONN_TOKENS];
    size_t n;
};

static void add_tokens(struct conn_tokens *ct, struct tr_slice value)
{
    size_t start = 0;
    for (size_t i = 0; i <= value.len; i++) {
        if (i < value.len && value.ptr[i] != ',') {
            continue;
        }
        struct tr_slice tok = tr_slice_trim(tr_slice(value.ptr + start, i - start));
        start = i + 1;
        if (tok.len > 0 && ct->n < MAX_CONN_TOKENS) {
            ct->t[ct->n++] = tok;
        }
    }
}

static bool named_by_connection(const struct conn_tokens *ct, struct tr_slice name)
{
    for (size_t i = 0; i < ct->n; i++) {
        if (tr_slice_caseeq(ct->t[i], name)) {
            return true;
        }
    }
    return false;
}

/* Appends ", <add>" to a joined value, or starts it. */
static void join(struct tr_slice *acc, struct tr_slice add, struct tr_arena *a)
{
    if (acc->ptr == NULL) {
        *acc = add;
        return;
    }
    char *p = tr_arena_alloc(a, acc->len + 2 + add.len);
    memcpy(p, acc->ptr, acc->len);
    memcpy(p + acc->len, ", ", 2);
    memcpy(p + acc->len + 2, add.ptr, add.len);
    *acc = tr_slice(p, acc->len + 2 + add.len);
}

/* The host[:port] of an absolute-form request-target ("http://u@h:1/p?q" -> "h:1"), or a
 * NULL slice for any other form or an empty authority. The same test as the server's
 * split_target(): a scheme, then "://". */
static struct tr_slice target_authority(struct tr_slice t)
{
    if (t.len == 0 || t.ptr[0] == '/' || t.ptr[0] == '*') {
        return TR_SLICE_NULL;
    }
    const char *sep = memchr(t.ptr, ':', t.len);
    if (sep == NULL || (size_t)(sep - t.ptr) + 3 > t.len || sep[1] != '/' || sep[2] != '/') {
        return TR_SLICE_NULL;
    }
    size_t start = (size_t)(sep - t.ptr) + 3;
    size_t end = start;
    while (end < t.len && t.ptr[end] != '/' && t.ptr[end] != '?' && t.ptr[end] != '#') {
        end++;
    }
    /* RFC 9110 §4.2.4: userinfo is not part of the host and is not sent on. */
    for (size_t i = end; i > start; i--) {
        if (t.ptr[i - 1] == '@') {
            start = i;
            break;
        }
    }
    return end > start ? tr_slice(t.ptr + start, end - start) : TR_SLICE_NULL;
}

size_t tr_proxy_headers_request(const struct tr_http_req *req, const struct tr_proxy_fwd *fwd,
                                struct tr_http_client_header *out, struct tr_arena *a)
{
    /* RFC 9112 §3.2.2: with an absolute-form target the recipient ignores Host and uses
     * the target's authority; the upstream gets origin-form, so it gets that as Host. */
    struct tr_slice authority = target_authority(req->target);
    struct conn_tokens ct = {.n = 0};
    for (size_t i = 0; i < req->nheaders; i++) {
        if (IS(req->headers[i].name, "connection")) {
            add_tokens(&ct, req->headers[i].value);
        }
    }
    struct tr_slice xff = TR_SLICE_NULL;
    struct tr_slice via = TR_SLICE_NULL;
    size_t n = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct tr_http_header *h = &req->headers[i];
        enum field f = classify(h->name);
        switch (f) {
        case F_HOP:
        case F_FRAME:
        case F_REQ_HOP:
        case F_XFP:
            continue;
        case F_XFF:
            join(&xff, h->value, a);
            continue;
        case F_VIA:
            join(&via, h->value, a);
            continue;
        case F_HOST:
            if (authority.ptr != NULL) {
                continue; /* replaced below */
            }
            break; /* Host is end-to-end even if Connection names it */
        default:
            if (ct.n > 0 && named_by_connection(&ct, h->name)) {
                continue;
            }
            break;
        }
        out[n].name = h->name;
        out[n].value = h->value;
        n++;
    }
    if (authority.ptr != NULL) {
        out[n++] = (struct tr_http_client_header){TR_SLICE_LIT("Host"), authority};
    }
    join(&xff, fwd->client_ip, a);
    out[n++] = (struct tr_http_client_header){TR_SLICE_LIT("X-Forwarded-For"), xff};
    out[n++] =
        (struct tr_http_client_header){TR_SLICE_LIT("X-Forwarded-Proto"), TR_SLICE_LIT("http")};
    if (fwd->request_id.ptr != NULL) {
        out[n++] = (struct tr_http_client_header){TR_SLICE_LIT("X-Request-Id"), fwd->request_id};
    }
    join(&via, req->version_minor == 0 ? TR_SLICE_LIT("1.0 trellis") : TR_SLICE_LIT("1.1 trellis"),
         a);
    out[n++] = (struct tr_http_client_header){TR_SLICE_LIT("Via"), via};
    return n;
}

int64_t tr_proxy_headers_response(struct tr_http_req *req, const struct tr_http_client_resp *resp,
                                  struct tr_slice request_id)
{
    struct conn_tokens ct = {.n = 0};
    for (size_t i = 0; i < resp->header_count; i++) {
        if (IS(resp->headers[i].name, "connection")) {
            add_tokens(&ct, resp->headers[i].value);
        }
    }
    struct tr_slice via = TR_SLICE_NULL;
    int64_t content_length = -1;
    bool has_request_id = false;
    for (size_t i = 0; i < resp->header_count; i++) {
        const struct tr_http_client_header *h = &resp->headers[i];
        switch (classify(h->name)) {
        case F_HOP:
        case F_RESP_HOP:
            continue;
        case F_FRAME: {
            uint64_t v;
            if (tr_slice_to_u64(h->value, &v) == 0 && v <= INT64_MAX) {
                content_length = (int64_t)v;
            }
            continue;
        }
        case F_VIA:
            join(&via, h->value, &req->arena);
            continue;
        case F_REQUEST_ID:
            has_request_id = true;
            break;
        default:
            if (ct.n > 0 && named_by_connection(&ct, h->name)) {
                continue;
            }
            break;
        }
        tr_http_resp_header(req, h->name, h->value);
    }
    join(&via, resp->version_minor == 0 ? TR_SLICE_LIT("1.0 trellis") : TR_SLICE_LIT("1.1 trellis"),
         &req->arena);
    tr_http_resp_header(req, TR_SLICE_LIT("Via"), via);
    if (request_id.ptr != NULL && !has_request_id) {
        tr_http_resp_header(req, TR_SLICE_LIT("X-Request-Id"), request_id);
    }
    return content_length;
}

struct tr_slice tr_proxy_peer_ip(const char *peer)
{
    size_t len = strlen(peer);
    if (len > 0 && peer[0] == '[') {
        const char *end = strchr(peer, ']');
        return end != NULL ? tr_slice(peer + 1, (size_t)(end - peer) - 1) : tr_slice(peer, len);
    }
    const char *colon = strrchr(peer, ':');
    return colon != NULL ? tr_slice(peer, (size_t)(colon - peer)) : tr_slice(peer, len);
}

struct tr_slice tr_proxy_headers_cookie(const struct tr_http_req *req, struct tr_slice name)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!IS(req->headers[i].name, "cookie")) {
            continue;
        }
        struct tr_slice v = req->headers[i].value;
        size_t start = 0;
        for (size_t k = 0; k <= v.len; k++) {
            if (k < v.len && v.ptr[k] != ';') {
                continue;
            }
            struct tr_slice pair = tr_slice_trim(tr_slice(v.ptr + start, k - start));
            start = k + 1;
            const char *eq = memchr(pair.ptr, '=', pair.len);
            if (eq == NULL) {
                continue;
            }
            struct tr_slice key = tr_slice_trim(tr_slice(pair.ptr, (size_t)(eq - pair.ptr)));
            if (tr_slice_eq(key, name)) {
                return tr_slice(eq + 1, pair.len - (size_t)(eq - pair.ptr) - 1);
            }
        }
    }
    return TR_SLICE_NULL;
}
