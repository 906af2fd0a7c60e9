/* SPDX-License-Identifier: Apache-2.0 */
/* Consul's ?filter= expressions (hashicorp/go-bexpr), the subset clients use:
 *   Sel == "v", Sel != "v", "v" in Sel, "v" not in Sel, Sel contains "v",
 *   Sel not contains "v", Sel is empty, Sel is not empty, Sel matches "re",
 *   Sel not matches "re", combined with and, or, not and parentheses.
 * Selectors are dotted paths into the JSON entry the endpoint returns (ServiceName,
 * Service.Meta.env, Checks.Status — a path through an array matches if any element
 * does). Values are "quoted", `raw`, or bare words (numbers, true/false). The entries
 * are matched as the JSON the endpoint would send, so a filter sees exactly the field
 * names of the response. */
#ifndef TR_SERVER_CONSUL_FILTER_H
#define TR_SERVER_CONSUL_FILTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/slice.h"

#define TR_CONSUL_FILTER_MAX_LEN 4096
#define TR_CONSUL_FILTER_MAX_DEPTH 32

struct tr_consul_filter;

/* Parses `expr`. `roots` is the NULL-terminated list of top-level field names of the
 * entries it will be matched against: a selector whose first segment is not one of
 * them is an error (as bexpr rejects unknown fields). Returns 0 and a filter the
 * caller frees, or -EINVAL with a message naming the problem. */
int tr_consul_filter_parse(struct tr_slice expr, const char *const *roots,
                           struct tr_consul_filter **out, char *err, size_t errlen);
bool tr_consul_filter_match(const struct tr_consul_filter *f, const json_t *entry);
void tr_consul_filter_free(struct tr_consul_filter *f);

#endif
