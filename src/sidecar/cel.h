/* SPDX-License-Identifier: Apache-2.0 */
/* Routing-rule expressions of Dapr subscriptions (`routes.rules[].match`): a subset of
 * Google's Common Expression Language evaluated against the CloudEvent as `event`.
 * Supported: literals (strings in ' or ", integers, decimals, true, false, null, lists),
 * `event.a.b`, `event["a"]`, `list[0]`, `! - && || == != < <= > >= in`, parentheses,
 * `has(event.a)`, `size(x)` / `x.size()`, `x.startsWith(s)`, `x.endsWith(s)`,
 * `x.contains(s)`. As in CEL, a missing field is an error, `&&`/`||` absorb an error when
 * the other side decides, and comparing values of different types is an error; a rule
 * whose result is an error or not a boolean does not match. Numbers compare by value
 * (CEL keeps int and double apart; JSON cannot). */
#ifndef TR_SIDECAR_CEL_H
#define TR_SIDECAR_CEL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/mem.h"

#define TR_CEL_MAX_LEN 4096 /* bytes of expression text */
#define TR_CEL_MAX_DEPTH 64 /* nesting of the parse tree */

struct tr_cel;

/* Compiles `src` (NUL-terminated). Returns 0 and a new expression in *out (free with
 * tr_cel_free), or -EINVAL with a message naming the position and the problem in
 * `why` ("at 7: unknown identifier \"evnt\" (only event is defined)"). */
TR_MUST_CHECK int tr_cel_compile(const char *src, struct tr_cel **out, char *why, size_t why_len);

/* Evaluates the expression with `event` bound to `event` (borrowed). True only when
 * the result is the boolean true. Never fails: errors are false. */
bool tr_cel_match(const struct tr_cel *e, json_t *event);

void tr_cel_free(struct tr_cel *e);

#endif
