/* SPDX-License-Identifier: Apache-2.0 */
/* The routes: section of gateway.yaml: match (prefix, methods, exact header values),
 * the target (one cluster, or a weighted split), rewrite, name, and the policies parsed
 * by config_policy.c. Cluster references are resolved here, so the clusters: section
 * must have been parsed first (config.c does that whatever the order in the file). */
#include "proxy/config_parse.h"

#include <stdio.h>
#include <string.h>

#include "core/mem.h"

static const char *const route_keys[] = {
    "name", "match", "cluster", "split", "mirror", "rate_limit", "rewrite", NULL,
};
static const char *const match_keys[] = {"prefix", "methods", "headers", NULL};
static const char *const split_keys[] = {"cluster", "weight", NULL};
static const char *const rewrite_keys[] = {"prefix", NULL};

static int parse_methods(struct tr_proxy_config *cfg, struct tr_proxy_route_config *r,
                         const struct tr_conf_node *n, struct tr_conf_err *err)
{
    int rc = tr_conf_expect(n, TR_CONF_SEQ, err);
    if (rc != 0) {
        return rc;
    }
    struct tr_slice *m = tr_arena_alloc(&cfg->arena, (tr_conf_len(n) + 1) * sizeof(*m));
    for (size_t i = 0; i < tr_conf_len(n); i++) {
        const struct tr_conf_node *item = tr_conf_item_at(n, i);
        const char *s;
        if ((rc = tr_conf_str(item, &s, err)) != 0) {
            return rc;
        }
        if (*s == '\0' || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(s)) {
            return tr_conf_errorf(item, err,
                                  "methods: expected upper-case method names like "
                                  "GET (methods are case-sensitive), got \"%.32s\"",
                                  s);
        }
        m[i] = tr_slice_cstr(tr_proxy__conf_strdup(cfg, s));
    }
    r->methods = m;
    r->nmethods = tr_conf_len(n);
    return 0;
}

static int parse_header_matches(struct tr_proxy_config *cfg, struct tr_proxy_route_config *r,
                                const struct tr_conf_node *n, struct tr_conf_err *err)
{
    int rc = tr_conf_expect(n, TR_CONF_MAP, err);
    if (rc != 0) {
        return rc;
    }
    struct tr_proxy_header_match *h =
        tr_arena_alloc(&cfg->arena, (tr_conf_len(n) + 1) * sizeof(*h));
    for (size_t i = 0; i < tr_conf_len(n); i++) {
        const struct tr_conf_pair *p = tr_conf_pair_at(n, i);
        const char *value;
        if ((rc = tr_conf_str(p->value, &value, err)) != 0) {
            return rc;
        }
        const char *name = p->key->u.text.ptr;
        if (*name == '\0' || strpbrk(name, " \t:\"(),/;<=>?@[\\]{}") != NULL) {
            return tr_conf_errorf(p->key, err, "headers: \"%.64s\" is not a header name", name);
        }
        h[i].name = tr_slice_cstr(tr_proxy__conf_strdup(cfg, name));
        h[i].value = tr_slice_cstr(tr_proxy__conf_strdup(cfg, value));
    }
    r->headers = h;
    r->nheaders = tr_conf_len(n);
    return 0;
}

static int parse_path_prefix(struct tr_proxy_config *cfg, const struct tr_conf_node *n,
                             const char *what, struct tr_slice *out, struct tr_conf_err *err)
{
    const char *s;
    int rc = tr_conf_str(n, &s, err);
    if (rc != 0) {
        return rc;
    }
    if (s[0] != '/') {
        return tr_conf_errorf(n, err, "%s: expected a path starting with '/', got \"%.64s\"", what,
                              s);
    }
    for (const char *p = s; *p != '\0'; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '?' || *p == '#') {
            return tr_conf_errorf(n, err,
                                  "%s: \"%.64s\" is not a plain path (no spaces, '?' or "
                                  "'#'; percent-encode other bytes)",
                                  what, s);
        }
    }
    *out = tr_slice_cstr(tr_proxy__conf_strdup(cfg, s));
    return 0;
}

static int parse_match(struct tr_proxy_config *cfg, struct tr_proxy_route_config *r,
                       const struct tr_conf_node *n, struct tr_conf_err *err)
{
    int rc = tr_conf_check_keys(n, match_keys, "match", err);
    if (rc != 0) {
        return rc;
    }
    const struct tr_conf_node *v;
    r->prefix = TR_SLICE_LIT("/");
    if ((v = tr_conf_get(n, "prefix")) != NULL &&
        (rc = parse_path_prefix(cfg, v, "prefix", &r->prefix, err)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(n, "methods")) != NULL && (rc = parse_methods(cfg, r, v, err)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(n, "headers")) != NULL &&
        (rc = parse_header_matches(cfg, r, v, err)) != 0) {
        return rc;
    }
    return 0;
}

static int parse_split(struct tr_proxy_config *cfg, struct tr_proxy_route_config *r,
                       const struct tr_conf_node *n, struct tr_conf_err *err)
{
    int rc = tr_conf_expect(n, TR_CONF_SEQ, err);
    if (rc != 0) {
        return rc;
    }
    if (tr_conf_len(n) == 0) {
        return tr_conf_errorf(n, err, "split: expected at least one {cluster, weight}");
    }
    struct tr_proxy_split *s = tr_arena_alloc(&cfg->arena, tr_conf_len(n) * sizeof(*s));
    uint64_t total = 0;
    for (size_t i = 0; i < tr_conf_len(n); i++) {
        const struct tr_conf_node *item = tr_conf_item_at(n, i);
        const struct tr_conf_node *c;
        const struct tr_conf_node *w;
        uint64_t weight;
        if ((rc = tr_conf_check_keys(item, split_keys, "split", err)) != 0 ||
            (rc = tr_conf_require(item, "cluster", "split", &c, err)) != 0 ||
            (rc = tr_conf_require(item, "weight", "split", &w, err)) != 0 ||
            (rc = tr_proxy__conf_cluster_ref(cfg, c, "split", &s[i].cluster, err)) != 0 ||
            (rc = tr_proxy__conf_uint(w, 0, 1000000, &weight, err)) != 0) {
            return rc;
        }
        s[i].weight = (uint32_t)weight;
        total += weight;
    }
    if (total == 0) {
        return tr_conf_errorf(n, err, "split: the weights add up to 0");
    }
    r->split = s;
    r->nsplit = tr_conf_len(n);
    r->split_total = (uint32_t)total;
    return 0;
}

static int parse_rewrite(struct tr_proxy_config *cfg, struct tr_proxy_route_config *r,
                         const struct tr_conf_node *n, struct tr_conf_err *err)
{
    const struct tr_conf_node *p;
    int rc;
    if ((rc = tr_conf_check_keys(n, rewrite_keys, "rewrite", err)) != 0 ||
        (rc = tr_conf_require(n, "prefix", "rewrite", &p, err)) != 0 ||
        (rc = parse_path_prefix(cfg, p, "rewrite prefix", &r->rewrite_prefix, err)) != 0) {
        return rc;
    }
    r->has_rewrite = true;
    return 0;
}

static int parse_route_target(struct tr_proxy_config *cfg, struct tr_proxy_route_config *r,
                              const struct tr_conf_node *n, struct tr_conf_err *err)
{
    const struct tr_conf_node *cluster = tr_conf_get(n, "cluster");
    const struct tr_conf_node *split = tr_conf_get(n, "split");
    if ((cluster == NULL) == (split == NULL)) {
        return tr_conf_errorf(n, err, "route needs exactly one of cluster: or split:");
    }
    if (split != NULL) {
        return parse_split(cfg, r, split, err);
    }
    struct tr_proxy_split *s = tr_arena_alloc(&cfg->arena, sizeof(*s));
    int rc = tr_proxy__conf_cluster_ref(cfg, cluster, "route", &s->cluster, err);
    if (rc != 0) {
        return rc;
    }
    s->weight = 1;
    r->split = s;
    r->nsplit = 1;
    r->split_total = 1;
    return 0;
}

static int parse_route(struct tr_proxy_config *cfg, struct tr_proxy_route_config *r,
                       const struct tr_conf_node *n, struct tr_conf_err *err)
{
    int rc = tr_conf_check_keys(n, route_keys, "route", err);
    if (rc != 0) {
        return rc;
    }
    const struct tr_conf_node *v;
    r->prefix = TR_SLICE_LIT("/");
    if ((v = tr_conf_get(n, "match")) != NULL && (rc = parse_match(cfg, r, v, err)) != 0) {
        return rc;
    }
    if ((rc = parse_route_target(cfg, r, n, err)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(n, "name")) != NULL) {
        const char *name;
        if ((rc = tr_conf_str(v, &name, err)) != 0) {
            return rc;
        }
        r->name = tr_proxy__conf_strdup(cfg, name);
    }
    if ((v = tr_conf_get(n, "rewrite")) != NULL && (rc = parse_rewrite(cfg, r, v, err)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(n, "mirror")) != NULL &&
        (rc = tr_proxy__parse_mirror(cfg, r, v, err)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(n, "rate_limit")) != NULL &&
        (rc = tr_proxy__parse_rate_limit(cfg, r, v, err)) != 0) {
        return rc;
    }
    return 0;
}

static bool route_name_taken(const struct tr_proxy_config *cfg, size_t upto, const char *name)
{
    for (size_t i = 0; i < upto; i++) {
        if (cfg->routes[i].name != NULL && strcmp(cfg->routes[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

/* Routes without name: are labelled by their prefix; repeats get "#2", "#3"... */
static void name_routes(struct tr_proxy_config *cfg)
{
    for (size_t i = 0; i < cfg->nroutes; i++) {
        struct tr_proxy_route_config *r = &cfg->routes[i];
        if (r->name != NULL) {
            continue;
        }
        char name[160];
        snprintf(name, sizeof(name), "%.*s", TR_SLICE_FMT(r->prefix));
        for (unsigned k = 2; route_name_taken(cfg, cfg->nroutes, name); k++) {
            snprintf(name, sizeof(name), "%.*s#%u", TR_SLICE_FMT(r->prefix), k);
        }
        r->name = tr_proxy__conf_strdup(cfg, name);
    }
}

int tr_proxy__parse_routes(struct tr_proxy_config *cfg, const struct tr_conf_node *root,
                           struct tr_conf_err *err)
{
    const struct tr_conf_node *n;
    int rc = tr_conf_require(root, "routes", NULL, &n, err);
    if (rc != 0 || (rc = tr_conf_expect(n, TR_CONF_SEQ, err)) != 0) {
        return rc;
    }
    if (tr_conf_len(n) == 0) {
        return tr_conf_errorf(n, err, "routes: expected at least one route");
    }
    cfg->routes = tr_arena_alloc(&cfg->arena, tr_conf_len(n) * sizeof(*cfg->routes));
    memset(cfg->routes, 0, tr_conf_len(n) * sizeof(*cfg->routes));
    for (size_t i = 0; i < tr_conf_len(n); i++) {
        const struct tr_conf_node *item = tr_conf_item_at(n, i);
        rc = parse_route(cfg, &cfg->routes[i], item, err);
        cfg->nroutes = i + 1;
        if (rc != 0) {
            return rc;
        }
        const char *name = cfg->routes[i].name;
        if (name != NULL && route_name_taken(cfg, i, name)) {
            return tr_conf_errorf(tr_conf_get(item, "name"), err,
                                  "route name \"%.64s\" is used twice", name);
        }
    }
    name_routes(cfg);
    return 0;
}
