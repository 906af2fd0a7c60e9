/* SPDX-License-Identifier: Apache-2.0 */
/* Method + path-pattern router (see router.h). Patterns are split into segments once,
 * at registration; matching walks the request path segment by segment without
 * copying. The route tables here are small (tens of routes), so a linear scan over
 * pre-split patterns beats a trie on simplicity and is fast enough. */
#include "http/router.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

enum seg_kind {
    SEG_LITERAL = 0,
    SEG_PARAM,
    SEG_REST,
};

struct segment {
    enum seg_kind kind;
    struct tr_slice text; /* literal text, or the param name */
};

struct tr_route {
    char *method;  /* owned; "*" = any */
    char *pattern; /* owned; segment slices point into it */
    struct segment segs[TR_ROUTE_MAX_SEGMENTS];
    size_t nsegs;
    bool trailing_slash;
    tr_http_handler_cb *handler;
    void *data;
    unsigned flags;
};

void tr_router_init(struct tr_router *r)
{
    r->routes = NULL;
    r->nroutes = 0;
    r->cap = 0;
}

void tr_router_dispose(struct tr_router *r)
{
    for (size_t i = 0; i < r->nroutes; i++) {
        tr_free_null(&r->routes[i].method);
        tr_free_null(&r->routes[i].pattern);
    }
    tr_free_null(&r->routes);
    r->nroutes = 0;
    r->cap = 0;
}

static int split_pattern(struct tr_route *route)
{
    const char *p = route->pattern;
    size_t len = strlen(p);
    if (len == 0 || p[0] != '/') {
        return -EINVAL;
    }
    route->trailing_slash = len > 1 && p[len - 1] == '/';
    size_t nparams = 0;
    size_t i = 1;
    while (i < len) {
        size_t start = i;
        while (i < len && p[i] != '/') {
            i++;
        }
        struct tr_slice seg = tr_slice(p + start, i - start);
        i++; /* skip '/' */
        if (seg.len == 0) {
            if (i < len) {
                return -EINVAL; /* "//" inside a pattern */
            }
            break;
        }
        if (route->nsegs == TR_ROUTE_MAX_SEGMENTS) {
            return -EINVAL;
        }
        struct segment *s = &route->segs[route->nsegs++];
        s->kind = SEG_LITERAL;
        s->text = seg;
        if (seg.ptr[0] == ':' || seg.ptr[0] == '*') {
            s->kind = seg.ptr[0] == ':' ? SEG_PARAM : SEG_REST;
            s->text = tr_slice(seg.ptr + 1, seg.len - 1);
            if (s->text.len == 0 || ++nparams > TR_ROUTE_MAX_PARAMS) {
                return -EINVAL;
            }
            if (s->kind == SEG_REST && i < len) {
                return -EINVAL;
            }
        }
    }
    return 0;
}

int tr_router_add(struct tr_router *r, const char *method, const char *pattern,
                  tr_http_handler_cb *handler, void *data, unsigned flags)
{
    if (r->nroutes == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->routes = tr_xrealloc(r->routes, r->cap * sizeof(*r->routes));
    }
    struct tr_route *route = &r->routes[r->nroutes];
    memset(route, 0, sizeof(*route));
    route->method = tr_xstrdup(method);
    route->pattern = tr_xstrdup(pattern);
    route->handler = handler;
    route->data = data;
    route->flags = flags;
    int err = split_pattern(route);
    if (err != 0) {
        tr_free_null(&route->method);
        tr_free_null(&route->pattern);
        return err;
    }
    r->nroutes++;
    return 0;
}

/* Does `path` match the route's segments? Fills params on success. */
static bool match_path(const struct tr_route *route, struct tr_slice path,
                       struct tr_route_match *m)
{
    size_t pos = 1; /* path starts with '/' */
    m->nparams = 0;
    for (size_t k = 0; k < route->nsegs; k++) {
        const struct segment *s = &route->segs[k];
        if (s->kind == SEG_REST) {
            struct tr_route_param *prm = &m->params[m->nparams++];
            prm->name = s->text;
            prm->value = pos <= path.len ? tr_slice(path.ptr + pos, path.len - pos) : TR_SLICE_NULL;
            return true;
        }
        if (pos >= path.len) {
            return false;
        }
        size_t start = pos;
        while (pos < path.len && path.ptr[pos] != '/') {
            pos++;
        }
        struct tr_slice seg = tr_slice(path.ptr + start, pos - start);
        if (s->kind == SEG_LITERAL && !tr_slice_eq(seg, s->text)) {
            return false;
        }
        if (s->kind == SEG_PARAM) {
            if (seg.len == 0) {
                return false;
            }
            struct tr_route_param *prm = &m->params[m->nparams++];
            prm->name = s->text;
            prm->value = seg;
        }
        if (pos < path.len) {
            pos++; /* the '/' */
        } else {
            pos = path.len + 1;
        }
    }
    /* All pattern segments consumed: the path must be consumed too (a trailing '/'
     * matches only a pattern that has one). */
    if (pos == path.len + 1) {
        return !route->trailing_slash;
    }
    return pos == path.len && (route->trailing_slash || route->nsegs == 0);
}

static void add_allow(struct tr_route_match *m, const char *method)
{
    size_t used = strlen(m->allow);
    if (strstr(m->allow, method) != NULL) {
        return;
    }
    snprintf(m->allow + used, sizeof(m->allow) - used, "%s%s", used ? ", " : "", method);
}

void tr_router_match(const struct tr_router *r, struct tr_slice method, struct tr_slice path,
                     struct tr_route_match *m)
{
    m->route = NULL;
    m->nparams = 0;
    m->method_mismatch = false;
    m->allow[0] = '\0';
    if (path.len == 0 || path.ptr[0] != '/') {
        return;
    }
    for (size_t i = 0; i < r->nroutes; i++) {
        const struct tr_route *route = &r->routes[i];
        if (!match_path(route, path, m)) {
            continue;
        }
        bool any = route->method[0] == '*';
        if (any || tr_slice_eq(method, tr_slice_cstr(route->method))) {
            m->route = route;
            m->method_mismatch = false;
            return;
        }
        m->method_mismatch = true;
        add_allow(m, route->method);
    }
    m->nparams = 0;
}

tr_http_handler_cb *tr_route_handler(const struct tr_route *route)
{
    return route->handler;
}

void *tr_route_data(const struct tr_route *route)
{
    return route->data;
}

unsigned tr_route_flags(const struct tr_route *route)
{
    return route->flags;
}
