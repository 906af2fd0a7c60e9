/* SPDX-License-Identifier: Apache-2.0 */
/* Subscriptions (see subscription.h): the /dapr/subscribe parser, declarative
 * Subscriptions, routes and delivery policies. */
#include "sidecar/subscription.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

/* ------------------------------------------------------------ policy */

void tr_ps_policy_init(struct tr_ps_policy *p)
{
    p->max_retries = TR_PS_DEFAULT_MAX_RETRIES;
    p->backoff_ms = TR_PS_DEFAULT_BACKOFF_MS;
    p->max_backoff_ms = TR_PS_DEFAULT_MAX_BACKOFF_MS;
    p->timeout_ms = TR_PS_DEFAULT_TIMEOUT_MS;
    p->max_concurrency = TR_PS_DEFAULT_MAX_CONCURRENCY;
}

static int bad(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A decimal integer in [min, max] spanning the whole string. */
static bool parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

int tr_ps_policy_set(struct tr_ps_policy *p, const char *name, const char *value, char *why,
                     size_t why_len)
{
    static const struct {
        const char *name;
        size_t offset;
    } durations[] = {
        {"retryBackoff", offsetof(struct tr_ps_policy, backoff_ms)},
        {"retryMaxBackoff", offsetof(struct tr_ps_policy, max_backoff_ms)},
        {"deliveryTimeout", offsetof(struct tr_ps_policy, timeout_ms)},
    };
    int64_t v;
    if (strcmp(name, "maxRetries") == 0) {
        if (!parse_int(value, -1, INT32_MAX, &v)) {
            return bad(why, why_len,
                       "maxRetries: expected an integer >= -1 (-1: retry without limit), got "
                       "\"%s\"",
                       value);
        }
        p->max_retries = v;
        return 1;
    }
    if (strcmp(name, "maxConcurrency") == 0) {
        if (!parse_int(value, 1, TR_PS_MAX_CONCURRENCY, &v)) {
            return bad(why, why_len, "maxConcurrency: expected an integer 1-%d, got \"%s\"",
                       TR_PS_MAX_CONCURRENCY, value);
        }
        p->max_concurrency = (unsigned)v;
        return 1;
    }
    for (size_t i = 0; i < TR_ARRAY_LEN(durations); i++) {
        if (strcmp(name, durations[i].name) != 0) {
            continue;
        }
        uint64_t ms;
        /* A day bounds every setting: the broker's ack timeout is derived from them. */
        if (tr_parse_duration_ms(value, &ms) != 0 || ms > 86400000 ||
            (ms == 0 && durations[i].offset == offsetof(struct tr_ps_policy, timeout_ms))) {
            return bad(why, why_len,
                       "%s: expected a duration like 500ms, 10s or 1m (at most 24h), got \"%s\"",
                       name, value);
        }
        *(uint64_t *)((char *)p + durations[i].offset) = ms;
        return 1;
    }
    return 0;
}

uint64_t tr_ps_policy_backoff(const struct tr_ps_policy *p, uint32_t attempts)
{
    uint64_t d = p->backoff_ms;
    for (uint32_t i = 1; i < attempts && d < p->max_backoff_ms; i++) {
        d *= 2;
    }
    return d < p->max_backoff_ms ? d : p->max_backoff_ms;
}

/* ------------------------------------------------------------ specs */

static void rule_dispose(struct tr_ps_rule *r)
{
    tr_free_null(&r->match);
    tr_cel_free(r->expr);
    r->expr = NULL;
    tr_free_null(&r->path);
}

void tr_ps_spec_dispose(struct tr_ps_spec *s)
{
    tr_free_null(&s->pubsub);
    tr_free_null(&s->topic);
    tr_free_null(&s->dead_letter_topic);
    for (size_t i = 0; i < s->nrules; i++) {
        rule_dispose(&s->rules[i]);
    }
    tr_free_null(&s->rules);
    s->nrules = 0;
    json_decref(s->metadata);
    s->metadata = NULL;
    tr_free_null(&s->where);
}

void tr_ps_specs_free(struct tr_ps_spec *specs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tr_ps_spec_dispose(&specs[i]);
    }
    tr_free_null(&specs);
}

/* A route path as Dapr takes it: a leading '/' is added when missing. */
static char *route_path(const char *route)
{
    size_t n = strlen(route);
    char *p = tr_xmalloc(n + 2);
    size_t k = 0;
    if (route[0] != '/') {
        p[k++] = '/';
    }
    memcpy(p + k, route, n + 1);
    return p;
}

static int route_ok(const char *route, char *why, size_t why_len)
{
    size_t n = strlen(route);
    if (n == 0 || n > TR_PS_MAX_ROUTE) {
        return bad(why, why_len, "route must be 1-%d bytes", TR_PS_MAX_ROUTE);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)route[i];
        /* It becomes a request target: no blanks, controls or fragments. */
        if (c <= 0x20 || c == 0x7f || c == '#') {
            return bad(why, why_len,
                       "route \"%s\" has a character that cannot be in a URL path (byte %zu)",
                       route, i + 1);
        }
    }
    return 0;
}

static int add_rule(struct tr_ps_spec *s, const char *match, const char *path, char *why,
                    size_t why_len)
{
    if (s->nrules >= TR_PS_MAX_RULES + 1) {
        return bad(why, why_len, "more than %d routing rules", TR_PS_MAX_RULES);
    }
    int rc = route_ok(path, why, why_len);
    if (rc != 0) {
        return rc;
    }
    struct tr_ps_rule r = {0};
    if (match != NULL) {
        char cel_why[256];
        if (tr_cel_compile(match, &r.expr, cel_why, sizeof(cel_why)) != 0) {
            return bad(why, why_len, "rule match \"%s\" is not a supported CEL expression: %s",
                       match, cel_why);
        }
        r.match = tr_xstrdup(match);
    }
    r.path = route_path(path);
    s->rules = tr_xrealloc(s->rules, (s->nrules + 1) * sizeof(*s->rules));
    s->rules[s->nrules++] = r;
    return 0;
}

/* Settings every subscription understands, checked up front so that a typo in a value
 * is reported where the subscription is declared. */
static int check_metadata(struct tr_ps_spec *s, char *why, size_t why_len)
{
    const char *key;
    json_t *v;
    struct tr_ps_policy scratch;
    tr_ps_policy_init(&scratch);
    json_object_foreach(s->metadata, key, v)
    {
        const char *value = json_string_value(v);
        if (strcmp(key, "rawPayload") == 0) {
            if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
                return bad(why, why_len, "metadata rawPayload: expected true or false, got \"%s\"",
                           value);
            }
            s->raw_payload = value[0] == 't';
        } else if (tr_ps_policy_set(&scratch, key, value, why, why_len) < 0) {
            return -EINVAL;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ /dapr/subscribe */

static const char *str_member(json_t *item, const char *key, bool *wrong_type)
{
    json_t *v = json_object_get(item, key);
    if (v != NULL && !json_is_string(v) && !json_is_null(v)) {
        *wrong_type = true;
    }
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Metadata values as strings: the JS SDK stringifies them, other SDKs may not. */
static int metadata_of(json_t *item, json_t **out, char *why, size_t why_len)
{
    json_t *m = json_object_get(item, "metadata");
    *out = json_object();
    if (m == NULL || json_is_null(m)) {
        return 0;
    }
    if (!json_is_object(m)) {
        return bad(why, why_len, "metadata must be an object of strings");
    }
    const char *key;
    json_t *v;
    json_object_foreach(m, key, v)
    {
        if (json_is_string(v)) {
            json_object_set(*out, key, v);
        } else if (json_is_number(v) && fabs(json_number_value(v)) < 9e15 &&
                   json_number_value(v) == floor(json_number_value(v))) {
            /* Numbers were read as reals (big integers are valid JSON): 3 is "3". */
            char text[32];
            snprintf(text, sizeof(text), "%" PRId64, (int64_t)json_number_value(v));
            json_object_set_new(*out, key, json_string(text));
        } else if (json_is_boolean(v) || json_is_number(v)) {
            char *text = json_dumps(v, JSON_ENCODE_ANY);
            json_object_set_new(*out, key, json_string(text));
            free(text); /* jansson's allocation */
        } else {
            return bad(why, why_len, "metadata \"%s\" must be a string", key);
        }
    }
    return 0;
}

static int parse_routes(json_t *item, struct tr_ps_spec *s, char *why, size_t why_len)
{
    json_t *routes = json_object_get(item, "routes");
    bool wrong = false;
    const char *route = str_member(item, "route", &wrong);
    if (wrong) {
        return bad(why, why_len, "route must be a string");
    }
    const char *def = NULL;
    if (routes != NULL && !json_is_null(routes)) {
        if (!json_is_object(routes)) {
            return bad(why, why_len, "routes must be an object {rules, default}");
        }
        def = str_member(routes, "default", &wrong);
        json_t *rules = json_object_get(routes, "rules");
        if (wrong || (rules != NULL && !json_is_null(rules) && !json_is_array(rules))) {
            return bad(why, why_len, "routes.default must be a string and routes.rules a list");
        }
        size_t i;
        json_t *r;
        json_array_foreach(rules, i, r)
        {
            const char *match = json_is_object(r) ? str_member(r, "match", &wrong) : NULL;
            const char *path = json_is_object(r) ? str_member(r, "path", &wrong) : NULL;
            if (wrong || match == NULL || path == NULL || match[0] == '\0') {
                return bad(why, why_len, "routes.rules[%zu] needs a match and a path (strings)", i);
            }
            int rc = add_rule(s, match, path, why, why_len);
            if (rc != 0) {
                return rc;
            }
        }
    }
    /* Dapr: the rules in order, then routes.default, else route. */
    if (def != NULL && def[0] != '\0') {
        return add_rule(s, NULL, def, why, why_len);
    }
    if (route != NULL && route[0] != '\0') {
        return add_rule(s, NULL, route, why, why_len);
    }
    if (s->nrules == 0) {
        return bad(why, why_len, "no route (route, routes.default or routes.rules)");
    }
    return 0;
}

static int parse_item(json_t *item, struct tr_ps_spec *s, char *why, size_t why_len)
{
    if (!json_is_object(item)) {
        return bad(why, why_len, "not an object");
    }
    bool wrong = false;
    const char *pubsub = str_member(item, "pubsubname", &wrong);
    const char *topic = str_member(item, "topic", &wrong);
    const char *dlq = str_member(item, "deadLetterTopic", &wrong);
    if (wrong || pubsub == NULL || topic == NULL || pubsub[0] == '\0' || topic[0] == '\0') {
        return bad(why, why_len, "pubsubname and topic must be non-empty strings");
    }
    s->pubsub = tr_xstrdup(pubsub);
    s->topic = tr_xstrdup(topic);
    s->dead_letter_topic = dlq != NULL && dlq[0] != '\0' ? tr_xstrdup(dlq) : NULL;
    json_t *bulk = json_object_get(item, "bulkSubscribe");
    if (json_is_object(bulk) && json_is_true(json_object_get(bulk, "enabled"))) {
        return bad(why, why_len, "bulkSubscribe is not supported");
    }
    int rc = metadata_of(item, &s->metadata, why, why_len);
    if (rc == 0) {
        rc = check_metadata(s, why, why_len);
    }
    if (rc == 0) {
        rc = parse_routes(item, s, why, why_len);
    }
    return rc;
}

int tr_ps_subscribe_parse(struct tr_slice body, struct tr_ps_spec **out, size_t *n,
                          struct tr_buf *warnings)
{
    json_error_t jerr;
    json_t *list = json_loadb(body.ptr ? body.ptr : "", body.len, JSON_DECODE_INT_AS_REAL, &jerr);
    if (!json_is_array(list)) {
        tr_buf_appendf(warnings,
                       "GET /dapr/subscribe: expected a JSON array of subscriptions%s%s\n",
                       list ? "" : ": ", list ? "" : jerr.text);
        json_decref(list);
        return -EINVAL;
    }
    size_t count = json_array_size(list);
    if (count > TR_PS_MAX_SUBSCRIPTIONS) {
        tr_buf_appendf(warnings, "GET /dapr/subscribe: %zu subscriptions, only the first %d used\n",
                       count, TR_PS_MAX_SUBSCRIPTIONS);
        count = TR_PS_MAX_SUBSCRIPTIONS;
    }
    struct tr_ps_spec *specs = tr_xcalloc(count ? count : 1, sizeof(*specs));
    size_t k = 0;
    for (size_t i = 0; i < count; i++) {
        struct tr_ps_spec *s = &specs[k];
        char why[512];
        s->origin = TR_PS_PROGRAMMATIC;
        if (parse_item(json_array_get(list, i), s, why, sizeof(why)) != 0) {
            tr_buf_appendf(warnings,
                           "GET /dapr/subscribe item %zu (pubsub %s, topic %s) ignored: %s\n", i,
                           s->pubsub ? s->pubsub : "?", s->topic ? s->topic : "?", why);
            tr_ps_spec_dispose(s);
            memset(s, 0, sizeof(*s));
            continue;
        }
        char where[64];
        snprintf(where, sizeof(where), "GET /dapr/subscribe item %zu", i);
        s->where = tr_xstrdup(where);
        k++;
    }
    json_decref(list);
    *out = specs;
    *n = k;
    return 0;
}

int tr_ps_spec_from_decl(const struct tr_sidecar_subscription *d, struct tr_ps_spec *out, char *why,
                         size_t why_len)
{
    memset(out, 0, sizeof(*out));
    out->origin = TR_PS_DECLARATIVE;
    out->where = tr_xstrdup(d->file ? d->file : "?");
    out->pubsub = tr_xstrdup(d->pubsubname ? d->pubsubname : "");
    out->topic = tr_xstrdup(d->topic ? d->topic : "");
    out->dead_letter_topic =
        d->dead_letter_topic && d->dead_letter_topic[0] ? tr_xstrdup(d->dead_letter_topic) : NULL;
    out->metadata = json_object();
    int rc = 0;
    if (d->bulk) {
        rc = bad(why, why_len, "bulkSubscribe is not supported");
    }
    for (size_t i = 0; rc == 0 && i < d->nmeta; i++) {
        json_object_set_new(out->metadata, d->meta[i].name, json_string(d->meta[i].value));
    }
    if (rc == 0) {
        rc = check_metadata(out, why, why_len);
    }
    for (size_t i = 0; rc == 0 && i < d->nrules; i++) {
        if (d->rules[i].match == NULL || d->rules[i].match[0] == '\0') {
            rc = bad(why, why_len, "routes.rules[%zu] has no match", i);
            break;
        }
        rc = add_rule(out, d->rules[i].match, d->rules[i].path, why, why_len);
    }
    if (rc == 0 && d->route != NULL && d->route[0] != '\0') {
        rc = add_rule(out, NULL, d->route, why, why_len);
    }
    if (rc == 0 && out->nrules == 0) {
        rc = bad(why, why_len, "no route (spec.routes.default, spec.route or rules)");
    }
    if (rc == 0 && (out->pubsub[0] == '\0' || out->topic[0] == '\0')) {
        rc = bad(why, why_len, "spec.pubsubname and spec.topic are required");
    }
    if (rc != 0) {
        tr_ps_spec_dispose(out);
    }
    return rc;
}

/* ------------------------------------------------------------ routing */

const char *tr_ps_spec_route(const struct tr_ps_spec *s, json_t *event)
{
    for (size_t i = 0; i < s->nrules; i++) {
        const struct tr_ps_rule *r = &s->rules[i];
        if (r->expr == NULL || (event != NULL && tr_cel_match(r->expr, event))) {
            return r->path;
        }
    }
    return NULL;
}

bool tr_ps_spec_has_rules(const struct tr_ps_spec *s)
{
    return s->nrules > 0 && s->rules[0].expr != NULL;
}
