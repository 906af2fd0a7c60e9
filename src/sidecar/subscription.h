/* SPDX-License-Identifier: Apache-2.0 */
/* Pub/sub subscriptions as the subscriber runs them: where they come from (an app's
 * GET /dapr/subscribe answer, Dapr's `SubscriptionJSON` list, or a declarative
 * Subscription file), their routes (CEL rules in order, then the default route), and
 * their delivery policy (retries, backoff, timeout, concurrency) from component and
 * subscription metadata. Parsing is a pure function of its input, so it is fuzzed. */
#ifndef TR_SIDECAR_SUBSCRIPTION_H
#define TR_SIDECAR_SUBSCRIPTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/slice.h"
#include "sidecar/cel.h"
#include "sidecar/components.h"

#define TR_PS_MAX_SUBSCRIPTIONS 1024 /* per app */
#define TR_PS_MAX_RULES 64           /* per subscription */
#define TR_PS_MAX_ROUTE 1024         /* bytes of a route path */

/* How a subscription's events are delivered. Defaults (docs/sidecar.md): 5 retries,
 * exponential backoff from 500 ms doubling up to 10 s, 30 s per delivery, 32 in
 * flight. Settings come from the pubsub component's metadata, then the subscription's. */
struct tr_ps_policy {
    int64_t max_retries;      /* redeliveries after the first attempt; -1 = no limit */
    uint64_t backoff_ms;      /* before the first retry; doubles per retry */
    uint64_t max_backoff_ms;  /* cap of the backoff */
    uint64_t timeout_ms;      /* one delivery: the app must answer within this */
    unsigned max_concurrency; /* deliveries in flight (1..1000) */
};

#define TR_PS_DEFAULT_MAX_RETRIES 5
#define TR_PS_DEFAULT_BACKOFF_MS 500
#define TR_PS_DEFAULT_MAX_BACKOFF_MS 10000
#define TR_PS_DEFAULT_TIMEOUT_MS 30000
#define TR_PS_DEFAULT_MAX_CONCURRENCY 32
#define TR_PS_MAX_CONCURRENCY 1000

void tr_ps_policy_init(struct tr_ps_policy *p);

/* Applies one metadata setting: maxRetries (integer >= -1), retryBackoff,
 * retryMaxBackoff, deliveryTimeout (durations like 500ms, 10s), maxConcurrency
 * (1..1000). Returns 1 if `name` is one of them and `value` is valid, 0 if `name` is
 * not a policy setting, or -EINVAL with `why` naming the setting and what it expects. */
TR_MUST_CHECK int tr_ps_policy_set(struct tr_ps_policy *p, const char *name, const char *value,
                                   char *why, size_t why_len);

/* The wait before redelivering after `attempts` deliveries (1 = the first failed):
 * backoff_ms * 2^(attempts-1), capped at max_backoff_ms. */
uint64_t tr_ps_policy_backoff(const struct tr_ps_policy *p, uint32_t attempts);

struct tr_ps_rule {
    char *match;         /* owned: the CEL text, NULL for the default route */
    struct tr_cel *expr; /* owned: compiled match, NULL for the default route */
    char *path;          /* owned: starts with '/' */
};

enum tr_ps_origin {
    TR_PS_DECLARATIVE = 0,
    TR_PS_PROGRAMMATIC,
};

struct tr_ps_spec {
    char *pubsub;             /* owned */
    char *topic;              /* owned */
    char *dead_letter_topic;  /* owned, NULL when none */
    struct tr_ps_rule *rules; /* owned, [nrules]: match rules in order, then the default */
    size_t nrules;
    json_t *metadata; /* owned: object of string values as given */
    bool raw_payload; /* metadata rawPayload=true */
    enum tr_ps_origin origin;
    char *where; /* owned: "subs.yaml" or "GET /dapr/subscribe item 2", for logs */
};

void tr_ps_spec_dispose(struct tr_ps_spec *s);
void tr_ps_specs_free(struct tr_ps_spec *specs, size_t n);

/* Parses the answer of GET /dapr/subscribe: a JSON array of
 * {pubsubname, topic, route | routes{rules[{match,path}], default}, metadata,
 * deadLetterTopic, bulkSubscribe}. Items that cannot be used (missing names, no route,
 * a match that does not compile, bulkSubscribe, bad metadata values) are left out and
 * described, one line each, in `warnings`. Returns 0 with a new array in *out (possibly
 * empty; free with tr_ps_specs_free), or -EINVAL when the body is not a JSON array
 * (reason in `warnings`). */
TR_MUST_CHECK int tr_ps_subscribe_parse(struct tr_slice body, struct tr_ps_spec **out, size_t *n,
                                        struct tr_buf *warnings);

/* Converts a declarative Subscription (components.c) into `out`. Returns 0, or -EINVAL
 * with `why` (a rule whose match does not compile, no route, bulkSubscribe). */
TR_MUST_CHECK int tr_ps_spec_from_decl(const struct tr_sidecar_subscription *d,
                                       struct tr_ps_spec *out, char *why, size_t why_len);

/* The route for `event` (parsed with JSON_DECODE_INT_AS_REAL): the path of the first
 * rule that matches, else the default route, else NULL (the event is skipped). */
const char *tr_ps_spec_route(const struct tr_ps_spec *s, json_t *event);

/* Does any rule need the event parsed (a match expression)? */
bool tr_ps_spec_has_rules(const struct tr_ps_spec *s);

#endif
