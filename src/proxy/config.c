/* SPDX-License-Identifier: Apache-2.0 */
/* Parsing gateway.yaml into a struct tr_proxy_config (see config.h). Every key is
 * checked against its section's list (unknown keys get a did-you-mean), every value
 * with a typed getter, and every cross-reference after all clusters are known, so each
 * mistake is reported once, at its file:line:col. Routes are parsed by config_route.c,
 * the resilience sections (retry, circuit_breaker, outlier, mirror, rate_limit) by
 * config_policy.c. */
#include "proxy/config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "proxy/config_parse.h"
#include "proxy/endpoints.h"
#include "proxy/guard.h"
#include "proxy/stats.h"

static const char *const top_keys[] = {"listen", "admin", "registry", "clusters", "routes", NULL};
static const char *const cluster_keys[] = {
    "name",    "service", "endpoints",       "lb",      "hash_on",
    "timeout", "retry",   "circuit_breaker", "outlier", NULL,
};
static const char *const endpoint_keys[] = {"address", "weight", NULL};

static const char *const lb_names[TR_PROXY_LB_COUNT] = {
    [TR_PROXY_LB_ROUND_ROBIN] = "round_robin",
    [TR_PROXY_LB_LEAST_REQUEST] = "least_request",
    [TR_PROXY_LB_RANDOM] = "random",
    [TR_PROXY_LB_RING_HASH] = "ring_hash",
};

const char *tr_proxy_lb_name(enum tr_proxy_lb lb)
{
    return (unsigned)lb < TR_PROXY_LB_COUNT ? lb_names[lb] : "?";
}

static struct tr_proxy_config *config_new(const char *source, unsigned nworkers)
{
    struct tr_proxy_config *cfg = tr_xcalloc(1, sizeof(*cfg));
    atomic_init(&cfg->refs, 1);
    tr_arena_init(&cfg->arena, 4096);
    tr_buf_init(&cfg->warnings);
    cfg->nworkers = nworkers;
    cfg->source = tr_arena_strndup(&cfg->arena, source, strlen(source));
    return cfg;
}

void tr_proxy_config_ref(struct tr_proxy_config *cfg)
{
    atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
}

void tr_proxy_config_unref(struct tr_proxy_config *cfg)
{
    if (cfg == NULL || atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    for (size_t i = 0; i < cfg->nclusters; i++) {
        tr_proxy_eps_unref(cfg->clusters[i].eps);
        tr_proxy_stats_unref(cfg->clusters[i].stats);
        tr_proxy_guard_unref(cfg->clusters[i].guard);
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        tr_proxy_stats_unref(cfg->routes[i].stats);
        tr_proxy_guard_unref(cfg->routes[i].guard);
    }
    tr_buf_dispose(&cfg->warnings);
    tr_arena_dispose(&cfg->arena);
    tr_free_null(&cfg);
}

int tr_proxy_config_cluster_index(const struct tr_proxy_config *cfg, struct tr_slice name)
{
    for (size_t i = 0; i < cfg->nclusters; i++) {
        if (tr_slice_eq(tr_slice_cstr(cfg->clusters[i].name), name)) {
            return (int)i;
        }
    }
    return -1;
}

/* ---- shared helpers (config_parse.h) ---- */

void tr_proxy__conf_warn(struct tr_proxy_config *cfg, const struct tr_conf_node *n,
                         const char *what)
{
    struct tr_conf_err e;
    (void)tr_conf_errorf(n, &e, "%s: not implemented yet: ignored", what);
    tr_buf_appendf(&cfg->warnings, "%s\n", e.msg);
}

const char *tr_proxy__conf_strdup(struct tr_proxy_config *cfg, const char *s)
{
    return tr_arena_strndup(&cfg->arena, s, strlen(s));
}

int tr_proxy__conf_uint(const struct tr_conf_node *n, uint64_t min, uint64_t max, uint64_t *out,
                        struct tr_conf_err *err)
{
    int64_t v = 0;
    int rc = tr_conf_int(n, (int64_t)min, (int64_t)max, &v, err);
    if (rc == 0) {
        *out = (uint64_t)v;
    }
    return rc;
}

/* Metrics labels and registry paths: letters, digits, '-', '_', '.'. */
static bool is_name(const char *s)
{
    if (*s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.')) {
            return false;
        }
    }
    return true;
}

int tr_proxy__conf_cluster_ref(const struct tr_proxy_config *cfg, const struct tr_conf_node *n,
                               const char *what, unsigned *out, struct tr_conf_err *err)
{
    const char *name;
    int rc = tr_conf_str(n, &name, err);
    if (rc != 0) {
        return rc;
    }
    int idx = tr_proxy_config_cluster_index(cfg, tr_slice_cstr(name));
    if (idx < 0) {
        return tr_conf_errorf(n, err, "%s refers to unknown cluster \"%.64s\"", what, name);
    }
    *out = (unsigned)idx;
    return 0;
}

/* ---- addresses ---- */

static int parse_hostport(const struct tr_conf_node *n, struct tr_addr *out,
                          struct tr_conf_err *err)
{
    const char *s;
    int rc = tr_conf_str(n, &s, err);
    if (rc != 0) {
        return rc;
    }
    if (tr_addr_parse(s, out) != 0 || tr_addr_port(out) == 0) {
        return tr_conf_errorf(n, err,
                              "expected an address like 127.0.0.1:9001 (numeric IP or localhost, "
                              "port 1-65535), got \"%.64s\"",
                              s);
    }
    return 0;
}

static int parse_listen(struct tr_proxy_config *cfg, const struct tr_conf_node *n, const char **out,
                        struct tr_conf_err *err)
{
    const char *s;
    struct tr_addr addr;
    int rc = tr_conf_str(n, &s, err);
    if (rc != 0) {
        return rc;
    }
    if (tr_addr_parse(s, &addr) != 0) {
        return tr_conf_errorf(n, err, "expected host:port like 127.0.0.1:8080, got \"%.64s\"", s);
    }
    *out = tr_proxy__conf_strdup(cfg, s);
    return 0;
}

static int parse_registry(struct tr_proxy_config *cfg, const struct tr_conf_node *n,
                          struct tr_conf_err *err)
{
    const char *s;
    int rc = tr_conf_str(n, &s, err);
    if (rc != 0) {
        return rc;
    }
    const char *hp = s;
    if (strncmp(s, "http://", 7) == 0) {
        hp = s + 7;
    } else if (strstr(s, "://") != NULL) {
        return tr_conf_errorf(n, err, "registry: only http:// URLs are supported, got \"%.64s\"",
                              s);
    }
    size_t len = strcspn(hp, "/");
    if (hp[len] == '/' && hp[len + 1] != '\0') {
        return tr_conf_errorf(n, err,
                              "registry: expected http://host:port without a path, "
                              "got \"%.64s\"",
                              s);
    }
    char text[128];
    if (len == 0 || len >= sizeof(text)) {
        return tr_conf_errorf(n, err, "registry: expected http://host:port, got \"%.64s\"", s);
    }
    memcpy(text, hp, len);
    text[len] = '\0';
    if (tr_addr_parse(text, &cfg->registry) != 0 || tr_addr_port(&cfg->registry) == 0) {
        return tr_conf_errorf(n, err,
                              "registry: expected http://host:port with a numeric IP or "
                              "localhost, got \"%.64s\"",
                              s);
    }
    cfg->has_registry = true;
    cfg->registry_host = tr_proxy__conf_strdup(cfg, text);
    return 0;
}

/* ---- clusters ---- */

static int parse_endpoint(const struct tr_conf_node *n, struct tr_proxy_endpoint *ep,
                          struct tr_conf_err *err)
{
    struct tr_addr addr;
    uint64_t weight = 1;
    int rc;
    if (n->kind == TR_CONF_MAP) {
        const struct tr_conf_node *a;
        if ((rc = tr_conf_check_keys(n, endpoint_keys, "endpoint", err)) != 0 ||
            (rc = tr_conf_require(n, "address", "endpoint", &a, err)) != 0 ||
            (rc = parse_hostport(a, &addr, err)) != 0) {
            return rc;
        }
        const struct tr_conf_node *w = tr_conf_get(n, "weight");
        if (w != NULL &&
            (rc = tr_proxy__conf_uint(w, 1, TR_PROXY_MAX_ENDPOINT_WEIGHT, &weight, err)) != 0) {
            return rc;
        }
    } else if ((rc = parse_hostport(n, &addr, err)) != 0) {
        return rc;
    }
    tr_proxy_endpoint_init(ep, &addr, (uint32_t)weight);
    return 0;
}

static int parse_endpoints(struct tr_proxy_config *cfg, struct tr_proxy_cluster_config *c,
                           const struct tr_conf_node *n, struct tr_conf_err *err)
{
    int rc = tr_conf_expect(n, TR_CONF_SEQ, err);
    if (rc != 0) {
        return rc;
    }
    size_t count = tr_conf_len(n);
    if (count == 0) {
        return tr_conf_errorf(n, err, "endpoints: expected at least one address");
    }
    struct tr_proxy_endpoint *eps = tr_xcalloc(count, sizeof(*eps));
    for (size_t i = 0; i < count; i++) {
        rc = parse_endpoint(tr_conf_item_at(n, i), &eps[i], err);
        if (rc != 0) {
            tr_free_null(&eps);
            return rc;
        }
    }
    c->eps = tr_proxy_eps_new(eps, count, cfg->nworkers);
    tr_free_null(&eps);
    return 0;
}

static int parse_lb(struct tr_proxy_cluster_config *c, const struct tr_conf_node *n,
                    struct tr_conf_err *err)
{
    const char *s;
    int rc = tr_conf_str(n, &s, err);
    if (rc != 0) {
        return rc;
    }
    for (unsigned i = 0; i < TR_PROXY_LB_COUNT; i++) {
        if (strcmp(s, lb_names[i]) == 0) {
            c->lb = (enum tr_proxy_lb)i;
            return 0;
        }
    }
    return tr_conf_errorf(n, err,
                          "lb: expected round_robin, least_request, random or ring_hash, "
                          "got \"%.64s\"",
                          s);
}

static int parse_hash_on(struct tr_proxy_config *cfg, struct tr_proxy_cluster_config *c,
                         const struct tr_conf_node *n, struct tr_conf_err *err)
{
    const char *s;
    int rc = tr_conf_str(n, &s, err);
    if (rc != 0) {
        return rc;
    }
    const char *name = NULL;
    if (strcmp(s, "client_ip") == 0) {
        c->hash_on = TR_PROXY_HASH_CLIENT_IP;
    } else if (strncmp(s, "header:", 7) == 0) {
        c->hash_on = TR_PROXY_HASH_HEADER;
        name = s + 7;
    } else if (strncmp(s, "cookie:", 7) == 0) {
        c->hash_on = TR_PROXY_HASH_COOKIE;
        name = s + 7;
    } else {
        return tr_conf_errorf(n, err,
                              "hash_on: expected header:NAME, cookie:NAME or client_ip, "
                              "got \"%.64s\"",
                              s);
    }
    if (name != NULL) {
        if (*name == '\0' || strpbrk(name, " \t:;,=\"") != NULL) {
            return tr_conf_errorf(n, err,
                                  "hash_on: \"%.64s\" needs a header or cookie name "
                                  "after the colon",
                                  s);
        }
        c->hash_name = tr_slice_cstr(tr_proxy__conf_strdup(cfg, name));
    }
    return 0;
}

static int parse_cluster_source(struct tr_proxy_config *cfg, struct tr_proxy_cluster_config *c,
                                const struct tr_conf_node *n, struct tr_conf_err *err)
{
    const struct tr_conf_node *svc = tr_conf_get(n, "service");
    const struct tr_conf_node *eps = tr_conf_get(n, "endpoints");
    if ((svc == NULL) == (eps == NULL)) {
        return tr_conf_errorf(n, err,
                              "cluster \"%.64s\" needs exactly one of service: (from the "
                              "registry) or endpoints: (static)",
                              c->name);
    }
    if (eps != NULL) {
        return parse_endpoints(cfg, c, eps, err);
    }
    const char *name;
    int rc = tr_conf_str(svc, &name, err);
    if (rc != 0) {
        return rc;
    }
    if (!is_name(name)) {
        return tr_conf_errorf(svc, err,
                              "service: expected a name of letters, digits, '-', '_' "
                              "and '.', got \"%.64s\"",
                              name);
    }
    c->service = tr_proxy__conf_strdup(cfg, name);
    return 0;
}

static int parse_cluster(struct tr_proxy_config *cfg, struct tr_proxy_cluster_config *c,
                         const struct tr_conf_node *n, struct tr_conf_err *err)
{
    const struct tr_conf_node *v;
    const char *name;
    int rc;
    if ((rc = tr_conf_check_keys(n, cluster_keys, "cluster", err)) != 0 ||
        (rc = tr_conf_require(n, "name", "cluster", &v, err)) != 0 ||
        (rc = tr_conf_str(v, &name, err)) != 0) {
        return rc;
    }
    if (!is_name(name)) {
        return tr_conf_errorf(v, err,
                              "cluster name: expected letters, digits, '-', '_' and '.', "
                              "got \"%.64s\"",
                              name);
    }
    if (tr_proxy_config_cluster_index(cfg, tr_slice_cstr(name)) >= 0) {
        return tr_conf_errorf(v, err, "cluster \"%.64s\" is defined twice", name);
    }
    c->name = tr_proxy__conf_strdup(cfg, name);
    c->timeout_ms = TR_PROXY_DEFAULT_TIMEOUT_MS;
    tr_proxy__retry_default(&c->retry);
    if ((rc = parse_cluster_source(cfg, c, n, err)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(n, "lb")) != NULL && (rc = parse_lb(c, v, err)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(n, "hash_on")) != NULL) {
        if ((rc = parse_hash_on(cfg, c, v, err)) != 0) {
            return rc;
        }
        if (c->lb != TR_PROXY_LB_RING_HASH) {
            return tr_conf_errorf(v, err,
                                  "hash_on is only used with lb: ring_hash (cluster "
                                  "\"%.64s\" uses %s)",
                                  c->name, lb_names[c->lb]);
        }
    } else if (c->lb == TR_PROXY_LB_RING_HASH) {
        c->hash_on = TR_PROXY_HASH_CLIENT_IP;
    }
    if ((v = tr_conf_get(n, "timeout")) != NULL) {
        if ((rc = tr_conf_duration_ms(v, &c->timeout_ms, err)) != 0) {
            return rc;
        }
        if (c->timeout_ms == 0) {
            return tr_conf_errorf(v, err, "timeout: must be more than 0");
        }
    }
    if ((v = tr_conf_get(n, "retry")) != NULL &&
        (rc = tr_proxy__parse_retry(cfg, &c->retry, v, err)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(n, "circuit_breaker")) != NULL &&
        (rc = tr_proxy__parse_breaker(cfg, &c->breaker, v, err)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(n, "outlier")) != NULL &&
        (rc = tr_proxy__parse_outlier(cfg, &c->outlier, v, err)) != 0) {
        return rc;
    }
    return 0;
}

static int parse_clusters(struct tr_proxy_config *cfg, const struct tr_conf_node *root,
                          struct tr_conf_err *err)
{
    const struct tr_conf_node *n;
    int rc = tr_conf_require(root, "clusters", NULL, &n, err);
    if (rc != 0 || (rc = tr_conf_expect(n, TR_CONF_SEQ, err)) != 0) {
        return rc;
    }
    if (tr_conf_len(n) == 0) {
        return tr_conf_errorf(n, err, "clusters: expected at least one cluster");
    }
    cfg->clusters = tr_arena_alloc(&cfg->arena, tr_conf_len(n) * sizeof(*cfg->clusters));
    memset(cfg->clusters, 0, tr_conf_len(n) * sizeof(*cfg->clusters));
    for (size_t i = 0; i < tr_conf_len(n); i++) {
        struct tr_proxy_cluster_config *c = &cfg->clusters[i];
        rc = parse_cluster(cfg, c, tr_conf_item_at(n, i), err);
        cfg->nclusters = i + 1; /* so that unref frees what this one holds */
        if (rc != 0) {
            return rc;
        }
        if (c->service != NULL && !cfg->has_registry) {
            return tr_conf_errorf(tr_conf_get(tr_conf_item_at(n, i), "service"), err,
                                  "cluster \"%.64s\" uses service: but no registry: is "
                                  "configured",
                                  c->name);
        }
    }
    return 0;
}

/* ---- top level ---- */

static int parse_root(struct tr_proxy_config *cfg, const struct tr_conf_node *root,
                      struct tr_conf_err *err)
{
    int rc = tr_conf_check_keys(root, top_keys, NULL, err);
    if (rc != 0) {
        return rc;
    }
    const struct tr_conf_node *v;
    if ((v = tr_conf_get(root, "listen")) != NULL &&
        (rc = parse_listen(cfg, v, &cfg->listen, err)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(root, "admin")) != NULL &&
        (rc = parse_listen(cfg, v, &cfg->admin, err)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(root, "registry")) != NULL && (rc = parse_registry(cfg, v, err)) != 0) {
        return rc;
    }
    if ((rc = parse_clusters(cfg, root, err)) != 0) {
        return rc;
    }
    return tr_proxy__parse_routes(cfg, root, err);
}

int tr_proxy_config_parse(const char *name, const char *data, size_t len, unsigned nworkers,
                          struct tr_proxy_config **out, struct tr_conf_err *err)
{
    struct tr_conf *conf;
    int rc = tr_conf_load_mem(name, data, len, &conf, err);
    if (rc != 0) {
        return rc;
    }
    struct tr_proxy_config *cfg = config_new(name, nworkers);
    rc = parse_root(cfg, tr_conf_root(conf), err);
    tr_conf_free(conf);
    if (rc != 0) {
        tr_proxy_config_unref(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

int tr_proxy_config_load(const char *path, unsigned nworkers, struct tr_proxy_config **out,
                         struct tr_conf_err *err)
{
    struct tr_conf *conf;
    int rc = tr_conf_load_file(path, &conf, err);
    if (rc != 0) {
        return rc;
    }
    struct tr_proxy_config *cfg = config_new(path, nworkers);
    rc = parse_root(cfg, tr_conf_root(conf), err);
    tr_conf_free(conf);
    if (rc != 0) {
        tr_proxy_config_unref(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

int tr_proxy_config_from_targets(const char *to, unsigned nworkers, struct tr_proxy_config **out,
                                 struct tr_conf_err *err)
{
    size_t count = 1;
    for (const char *p = to; *p != '\0'; p++) {
        count += *p == ',';
    }
    struct tr_proxy_endpoint *eps = tr_xcalloc(count, sizeof(*eps));
    size_t n = 0;
    for (const char *p = to;;) {
        size_t len = strcspn(p, ",");
        char text[128];
        struct tr_addr addr;
        if (len == 0 || len >= sizeof(text)) {
            snprintf(err->msg, sizeof(err->msg),
                     "--to: expected host:port[,host:port...], got "
                     "\"%.64s\"",
                     to);
            tr_free_null(&eps);
            return -EINVAL;
        }
        memcpy(text, p, len);
        text[len] = '\0';
        if (tr_addr_parse(text, &addr) != 0 || tr_addr_port(&addr) == 0) {
            snprintf(err->msg, sizeof(err->msg),
                     "--to: \"%s\" is not an address like "
                     "127.0.0.1:9001",
                     text);
            tr_free_null(&eps);
            return -EINVAL;
        }
        tr_proxy_endpoint_init(&eps[n++], &addr, 1);
        if (p[len] == '\0') {
            break;
        }
        p += len + 1;
    }
    struct tr_proxy_config *cfg = config_new("--to", nworkers);
    cfg->clusters = tr_arena_alloc(&cfg->arena, sizeof(*cfg->clusters));
    memset(cfg->clusters, 0, sizeof(*cfg->clusters));
    cfg->nclusters = 1;
    struct tr_proxy_cluster_config *c = &cfg->clusters[0];
    c->name = "default";
    c->lb = TR_PROXY_LB_ROUND_ROBIN;
    c->timeout_ms = TR_PROXY_DEFAULT_TIMEOUT_MS;
    tr_proxy__retry_default(&c->retry);
    c->eps = tr_proxy_eps_new(eps, n, nworkers);
    tr_free_null(&eps);
    struct tr_proxy_split *s = tr_arena_alloc(&cfg->arena, sizeof(*s));
    s->cluster = 0;
    s->weight = 1;
    cfg->routes = tr_arena_alloc(&cfg->arena, sizeof(*cfg->routes));
    memset(cfg->routes, 0, sizeof(*cfg->routes));
    cfg->nroutes = 1;
    cfg->routes[0].name = "/";
    cfg->routes[0].prefix = TR_SLICE_LIT("/");
    cfg->routes[0].split = s;
    cfg->routes[0].nsplit = 1;
    cfg->routes[0].split_total = 1;
    *out = cfg;
    return 0;
}
