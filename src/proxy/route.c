/* SPDX-License-Identifier: Apache-2.0 */
/* Route matching and target rewriting (see route.h). Routes are few and checked in
 * order; the common route (a prefix, maybe a method) is rejected after one memcmp. */
#include "proxy/route.h"

#include <string.h>

#include "proxy/balancer.h"

static bool method_ok(const struct tr_proxy_route_config *r, struct tr_slice method)
{
    if (r->nmethods == 0) {
        return true;
    }
    for (size_t i = 0; i < r->nmethods; i++) {
        if (tr_slice_eq(r->methods[i], method)) {
            return true;
        }
    }
    return false;
}

static bool headers_ok(const struct tr_proxy_route_config *r, const struct tr_http_header *h,
                       size_t n)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        bool found = false;
        for (size_t k = 0; k < n && !found; k++) {
            found = tr_slice_caseeq(h[k].name, r->headers[i].name) &&
                    tr_slice_eq(h[k].value, r->headers[i].value);
        }
        if (!found) {
            return false;
        }
    }
    return true;
}

const struct tr_proxy_route_config *
tr_proxy_route_match(const struct tr_proxy_config *cfg, struct tr_slice method,
                     struct tr_slice path, const struct tr_http_header *headers, size_t nheaders)
{
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct tr_proxy_route_config *r = &cfg->routes[i];
        if (tr_slice_starts_with(path, r->prefix) && method_ok(r, method) &&
            headers_ok(r, headers, nheaders)) {
            return r;
        }
    }
    return NULL;
}

unsigned tr_proxy_route_cluster(const struct tr_proxy_route_config *r, uint64_t *rng)
{
    if (r->nsplit == 1) {
        return r->split[0].cluster;
    }
    uint64_t x = ((tr_proxy_rand(rng) >> 32) * r->split_total) >> 32;
    for (size_t i = 0; i < r->nsplit; i++) {
        if (x < r->split[i].weight) {
            return r->split[i].cluster;
        }
        x -= r->split[i].weight;
    }
    return r->split[r->nsplit - 1].cluster;
}

struct tr_slice tr_proxy_route_target(const struct tr_proxy_route_config *r, struct tr_slice target,
                                      struct tr_slice path, struct tr_slice query,
                                      struct tr_arena *a)
{
    bool origin_form = target.len > 0 && target.ptr[0] == '/';
    if (!r->has_rewrite && origin_form) {
        return target;
    }
    struct tr_slice rest = tr_slice(path.ptr + r->prefix.len, path.len - r->prefix.len);
    struct tr_slice head = r->has_rewrite ? r->rewrite_prefix : r->prefix;
    /* "?query" is kept as sent, including a bare "?" */
    bool has_query = query.len > 0 || (query.ptr > target.ptr && query.ptr[-1] == '?');
    size_t len = head.len + rest.len + (has_query ? 1 + query.len : 0);
    /* "/api" + "" stays "/api"; a rewrite to "/" of "/v1/x" gives "//x": collapse it. */
    if (head.len > 0 && head.ptr[head.len - 1] == '/' && rest.len > 0 && rest.ptr[0] == '/') {
        rest.ptr++;
        rest.len--;
        len--;
    }
    char *out = tr_arena_alloc(a, len + 1);
    size_t off = 0;
    memcpy(out + off, head.ptr, head.len);
    off += head.len;
    memcpy(out + off, rest.ptr, rest.len);
    off += rest.len;
    if (has_query) {
        out[off++] = '?';
        memcpy(out + off, query.ptr, query.len);
        off += query.len;
    }
    out[off] = '\0';
    if (off == 0) {
        return TR_SLICE_LIT("/");
    }
    return tr_slice(out, off);
}
