/* SPDX-License-Identifier: Apache-2.0 */
/* The resilience sections of gateway.yaml: retry, circuit_breaker, outlier (per
 * cluster), mirror and rate_limit (per route), parsed and validated in full; defaults
 * are filled in here, so the engine reads only resolved numbers. */
#include "proxy/config_parse.h"

#include <string.h>

static const char *const retry_keys[] = {
    "attempts", "on", "per_try_timeout", "budget_percent", "idempotency_header", NULL};
static const char *const breaker_keys[] = {"max_connections",      "max_pending", "max_requests",
                                           "consecutive_failures", "open_for",    NULL};
static const char *const outlier_keys[] = {"consecutive_5xx", "base_ejection",
                                           "max_ejection_percent", NULL};
static const char *const mirror_keys[] = {"cluster", "percent", NULL};
static const char *const rate_keys[] = {"requests_per_second", "burst", "key", "max_keys", NULL};

static const struct {
    const char *name;
    unsigned bit;
} retry_on_names[] = {
    {"connect_failure", TR_PROXY_RETRY_CONNECT_FAILURE},
    {"reset", TR_PROXY_RETRY_RESET},
    {"503", TR_PROXY_RETRY_503},
    {"gateway_error", TR_PROXY_RETRY_GATEWAY_ERROR},
    {"5xx", TR_PROXY_RETRY_5XX},
};

void tr_proxy__retry_default(struct tr_proxy_retry_policy *p)
{
    /* Without a retry: section, a request whose connection could not even be opened is
     * tried once more on another endpoint: nothing was sent, so it is always safe. */
    memset(p, 0, sizeof(*p));
    p->attempts = 1;
    p->on = TR_PROXY_RETRY_CONNECT_FAILURE;
}

static int parse_retry_on(struct tr_proxy_retry_policy *p, const struct tr_conf_node *n,
                          struct tr_conf_err *err)
{
    int rc = tr_conf_expect(n, TR_CONF_SEQ, err);
    if (rc != 0) {
        return rc;
    }
    p->on = 0;
    for (size_t i = 0; i < tr_conf_len(n); i++) {
        const struct tr_conf_node *item = tr_conf_item_at(n, i);
        const char *s;
        if ((rc = tr_conf_str(item, &s, err)) != 0) {
            return rc;
        }
        size_t k = 0;
        while (k < TR_ARRAY_LEN(retry_on_names) && strcmp(retry_on_names[k].name, s) != 0) {
            k++;
        }
        if (k == TR_ARRAY_LEN(retry_on_names)) {
            return tr_conf_errorf(item, err,
                                  "retry on: expected connect_failure, reset, 503, "
                                  "gateway_error or 5xx, got \"%.32s\"",
                                  s);
        }
        p->on |= retry_on_names[k].bit;
    }
    return 0;
}

int tr_proxy__parse_retry(struct tr_proxy_config *cfg, struct tr_proxy_retry_policy *p,
                          const struct tr_conf_node *n, struct tr_conf_err *err)
{
    int rc = tr_conf_check_keys(n, retry_keys, "retry", err);
    if (rc != 0) {
        return rc;
    }
    p->configured = true;
    const struct tr_conf_node *v;
    uint64_t u;
    if ((v = tr_conf_get(n, "attempts")) != NULL) {
        if ((rc = tr_proxy__conf_uint(v, 0, TR_PROXY_MAX_RETRY_ATTEMPTS, &u, err)) != 0) {
            return rc;
        }
        p->attempts = (unsigned)u;
    }
    if ((v = tr_conf_get(n, "on")) != NULL && (rc = parse_retry_on(p, v, err)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(n, "per_try_timeout")) != NULL &&
        (rc = tr_conf_duration_ms(v, &p->per_try_timeout_ms, err)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(n, "budget_percent")) != NULL) {
        if ((rc = tr_proxy__conf_uint(v, 0, 100, &u, err)) != 0) {
            return rc;
        }
        p->budget_percent = (unsigned)u;
    }
    if ((v = tr_conf_get(n, "idempotency_header")) != NULL) {
        const char *s;
        if ((rc = tr_conf_str(v, &s, err)) != 0) {
            return rc;
        }
        /* An HTTP field name is a token (RFC 9110 §5.1). */
        size_t len = strlen(s);
        if (len == 0 || len > 64 ||
            strspn(s, "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != len) {
            return tr_conf_errorf(v, err,
                                  "retry idempotency_header: expected a header name like "
                                  "Idempotency-Key, got \"%.64s\"",
                                  s);
        }
        p->idempotency_header = tr_slice_cstr(tr_proxy__conf_strdup(cfg, s));
    }
    return 0;
}

int tr_proxy__parse_breaker(struct tr_proxy_config *cfg, struct tr_proxy_breaker_policy *p,
                            const struct tr_conf_node *n, struct tr_conf_err *err)
{
    int rc = tr_conf_check_keys(n, breaker_keys, "circuit_breaker", err);
    if (rc != 0) {
        return rc;
    }
    (void)cfg;
    p->configured = true;
    p->max_connections = 1024;
    p->max_pending = 1024;
    p->max_requests = 1024;
    p->consecutive_failures = 5;
    p->open_for_ms = 10000;
    const struct tr_conf_node *v;
    struct {
        const char *key;
        uint64_t *out;
        uint64_t min; /* max_pending: 0 = refuse at once instead of queueing */
    } ints[] = {
        {"max_connections", &p->max_connections, 1},
        {"max_pending", &p->max_pending, 0},
        {"max_requests", &p->max_requests, 1},
        {"consecutive_failures", &p->consecutive_failures, 1},
    };
    for (size_t i = 0; i < TR_ARRAY_LEN(ints); i++) {
        if ((v = tr_conf_get(n, ints[i].key)) != NULL &&
            (rc = tr_proxy__conf_uint(v, ints[i].min, 10000000, ints[i].out, err)) != 0) {
            return rc;
        }
    }
    if ((v = tr_conf_get(n, "open_for")) != NULL &&
        (rc = tr_conf_duration_ms(v, &p->open_for_ms, err)) != 0) {
        return rc;
    }
    return 0;
}

int tr_proxy__parse_outlier(struct tr_proxy_config *cfg, struct tr_proxy_outlier_policy *p,
                            const struct tr_conf_node *n, struct tr_conf_err *err)
{
    int rc = tr_conf_check_keys(n, outlier_keys, "outlier", err);
    if (rc != 0) {
        return rc;
    }
    (void)cfg;
    p->configured = true;
    p->consecutive_5xx = 5;
    p->base_ejection_ms = 30000;
    p->max_ejection_percent = 10;
    const struct tr_conf_node *v;
    if ((v = tr_conf_get(n, "consecutive_5xx")) != NULL &&
        (rc = tr_proxy__conf_uint(v, 1, 1000000, &p->consecutive_5xx, err)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(n, "base_ejection")) != NULL &&
        (rc = tr_conf_duration_ms(v, &p->base_ejection_ms, err)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(n, "max_ejection_percent")) != NULL &&
        (rc = tr_proxy__conf_uint(v, 0, 100, &p->max_ejection_percent, err)) != 0) {
        return rc;
    }
    return 0;
}

int tr_proxy__parse_mirror(struct tr_proxy_config *cfg, struct tr_proxy_route_config *r,
                           const struct tr_conf_node *n, struct tr_conf_err *err)
{
    const struct tr_conf_node *c;
    int rc;
    if ((rc = tr_conf_check_keys(n, mirror_keys, "mirror", err)) != 0 ||
        (rc = tr_conf_require(n, "cluster", "mirror", &c, err)) != 0 ||
        (rc = tr_proxy__conf_cluster_ref(cfg, c, "mirror", &r->mirror_cluster, err)) != 0) {
        return rc;
    }
    uint64_t percent = 100;
    const struct tr_conf_node *v = tr_conf_get(n, "percent");
    if (v != NULL && (rc = tr_proxy__conf_uint(v, 0, 100, &percent, err)) != 0) {
        return rc;
    }
    r->has_mirror = true;
    r->mirror_percent = (unsigned)percent;
    return 0;
}

static int parse_rate_key(struct tr_proxy_config *cfg, struct tr_proxy_route_config *r,
                          const struct tr_conf_node *n, struct tr_conf_err *err)
{
    const char *s;
    int rc = tr_conf_str(n, &s, err);
    if (rc != 0) {
        return rc;
    }
    if (strcmp(s, "client_ip") == 0) {
        r->rate_key = TR_PROXY_RATE_CLIENT_IP;
    } else if (strcmp(s, "route") == 0) {
        r->rate_key = TR_PROXY_RATE_ROUTE;
    } else if (strncmp(s, "header:", 7) == 0 && s[7] != '\0' && strchr(s + 7, ':') == NULL) {
        r->rate_key = TR_PROXY_RATE_HEADER;
        r->rate_header = tr_slice_cstr(tr_proxy__conf_strdup(cfg, s + 7));
    } else {
        return tr_conf_errorf(n, err,
                              "rate_limit key: expected client_ip, header:NAME or route, "
                              "got \"%.64s\"",
                              s);
    }
    return 0;
}

int tr_proxy__parse_rate_limit(struct tr_proxy_config *cfg, struct tr_proxy_route_config *r,
                               const struct tr_conf_node *n, struct tr_conf_err *err)
{
    const struct tr_conf_node *v;
    int rc;
    if ((rc = tr_conf_check_keys(n, rate_keys, "rate_limit", err)) != 0 ||
        (rc = tr_conf_require(n, "requests_per_second", "rate_limit", &v, err)) != 0 ||
        (rc = tr_proxy__conf_uint(v, 1, 100000000, &r->rate_per_second, err)) != 0) {
        return rc;
    }
    r->rate_burst = r->rate_per_second;
    if ((v = tr_conf_get(n, "burst")) != NULL &&
        (rc = tr_proxy__conf_uint(v, 1, 100000000, &r->rate_burst, err)) != 0) {
        return rc;
    }
    r->rate_key = TR_PROXY_RATE_CLIENT_IP;
    if ((v = tr_conf_get(n, "key")) != NULL && (rc = parse_rate_key(cfg, r, v, err)) != 0) {
        return rc;
    }
    r->rate_max_keys = TR_PROXY_RATE_DEFAULT_KEYS;
    if ((v = tr_conf_get(n, "max_keys")) != NULL &&
        (rc = tr_proxy__conf_uint(v, 1, 10000000, &r->rate_max_keys, err)) != 0) {
        return rc;
    }
    if (r->rate_key == TR_PROXY_RATE_ROUTE) {
        r->rate_max_keys = 1;
    }
    r->has_rate_limit = true;
    return 0;
}
