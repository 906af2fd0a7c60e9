/* SPDX-License-Identifier: Apache-2.0 */
/* Private to config.c and config_policy.c: the helpers both parsers use. */
#ifndef TR_PROXY_CONFIG_PARSE_H
#define TR_PROXY_CONFIG_PARSE_H

#include "core/config.h"
#include "proxy/config.h"

/* Records "file:line:col: <what>: not implemented yet: ignored" in cfg->warnings. */
void tr_proxy__conf_warn(struct tr_proxy_config *cfg, const struct tr_conf_node *n,
                         const char *what);
/* Copies `s` into the config's arena. */
const char *tr_proxy__conf_strdup(struct tr_proxy_config *cfg, const char *s);
/* An integer in [min, max]. */
TR_MUST_CHECK int tr_proxy__conf_uint(const struct tr_conf_node *n, uint64_t min, uint64_t max,
                                      uint64_t *out, struct tr_conf_err *err);
/* A cluster name that must already be defined; `what` names the referring key. */
TR_MUST_CHECK int tr_proxy__conf_cluster_ref(const struct tr_proxy_config *cfg,
                                             const struct tr_conf_node *n, const char *what,
                                             unsigned *out, struct tr_conf_err *err);

/* config_route.c: the routes: section (clusters must be parsed already). */
TR_MUST_CHECK int tr_proxy__parse_routes(struct tr_proxy_config *cfg,
                                         const struct tr_conf_node *root, struct tr_conf_err *err);

/* config_policy.c */
void tr_proxy__retry_default(struct tr_proxy_retry_policy *p);
TR_MUST_CHECK int tr_proxy__parse_retry(struct tr_proxy_config *cfg,
                                        struct tr_proxy_retry_policy *p,
                                        const struct tr_conf_node *n, struct tr_conf_err *err);
TR_MUST_CHECK int tr_proxy__parse_breaker(struct tr_proxy_config *cfg,
                                          struct tr_proxy_breaker_policy *p,
                                          const struct tr_conf_node *n, struct tr_conf_err *err);
TR_MUST_CHECK int tr_proxy__parse_outlier(struct tr_proxy_config *cfg,
                                          struct tr_proxy_outlier_policy *p,
                                          const struct tr_conf_node *n, struct tr_conf_err *err);
TR_MUST_CHECK int tr_proxy__parse_mirror(struct tr_proxy_config *cfg,
                                         struct tr_proxy_route_config *r,
                                         const struct tr_conf_node *n, struct tr_conf_err *err);
TR_MUST_CHECK int tr_proxy__parse_rate_limit(struct tr_proxy_config *cfg,
                                             struct tr_proxy_route_config *r,
                                             const struct tr_conf_node *n, struct tr_conf_err *err);

#endif
