/* SPDX-License-Identifier: Apache-2.0 */
/* Dapr resource files (see components.h). A file is split into YAML documents at
 * `---` lines; each document is loaded with the config loader, padded with newlines
 * so that positions in messages are the file's own. Everything a document declares is
 * copied into the result, so the YAML tree is freed at once. */
#include "sidecar/components.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"

static const char *const type_names[TR_SIDECAR_TYPE_COUNT] = {
    [TR_SIDECAR_TYPE_STATE_TRELLIS] = "state.trellis",
    [TR_SIDECAR_TYPE_PUBSUB_TRELLIS] = "pubsub.trellis",
    [TR_SIDECAR_TYPE_SECRETS_FILE] = "secretstores.local.file",
    [TR_SIDECAR_TYPE_SECRETS_ENV] = "secretstores.local.env",
};

static const enum tr_sidecar_comp_kind type_kinds[TR_SIDECAR_TYPE_COUNT] = {
    [TR_SIDECAR_TYPE_STATE_TRELLIS] = TR_SIDECAR_STATE,
    [TR_SIDECAR_TYPE_PUBSUB_TRELLIS] = TR_SIDECAR_PUBSUB,
    [TR_SIDECAR_TYPE_SECRETS_FILE] = TR_SIDECAR_SECRETS,
    [TR_SIDECAR_TYPE_SECRETS_ENV] = TR_SIDECAR_SECRETS,
};

const char *tr_sidecar_comp_kind_name(enum tr_sidecar_comp_kind kind)
{
    switch (kind) {
    case TR_SIDECAR_STATE:
        return "state";
    case TR_SIDECAR_PUBSUB:
        return "pubsub";
    case TR_SIDECAR_SECRETS:
        return "secretstores";
    default:
        return "?";
    }
}

/* ------------------------------------------------------------ freeing */

static void meta_free(struct tr_sidecar_meta_item *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tr_free_null(&m[i].name);
        tr_free_null(&m[i].value);
    }
    tr_free_null(&m);
}

static void comp_dispose(struct tr_sidecar_component *c)
{
    tr_free_null(&c->name);
    tr_free_null(&c->type);
    tr_free_null(&c->version);
    tr_free_null(&c->file);
    meta_free(c->meta, c->nmeta);
    c->meta = NULL;
    c->nmeta = 0;
}

static void sub_dispose(struct tr_sidecar_subscription *s)
{
    tr_free_null(&s->name);
    tr_free_null(&s->file);
    tr_free_null(&s->pubsubname);
    tr_free_null(&s->topic);
    tr_free_null(&s->route);
    for (size_t i = 0; i < s->nrules; i++) {
        tr_free_null(&s->rules[i].match);
        tr_free_null(&s->rules[i].path);
    }
    tr_free_null(&s->rules);
    tr_free_null(&s->dead_letter_topic);
    meta_free(s->meta, s->nmeta);
    s->meta = NULL;
    s->nmeta = 0;
}

void tr_sidecar_components_init(struct tr_sidecar_components *c)
{
    memset(c, 0, sizeof(*c));
    tr_buf_init(&c->warnings);
}

void tr_sidecar_components_dispose(struct tr_sidecar_components *c)
{
    for (size_t i = 0; i < c->ncomps; i++) {
        comp_dispose(&c->comps[i]);
    }
    for (size_t i = 0; i < c->nsubs; i++) {
        sub_dispose(&c->subs[i]);
    }
    tr_free_null(&c->comps);
    tr_free_null(&c->subs);
    tr_buf_dispose(&c->warnings);
    c->ncomps = 0;
    c->nsubs = 0;
}

const char *tr_sidecar_component_meta(const struct tr_sidecar_component *comp, const char *name)
{
    for (size_t i = 0; i < comp->nmeta; i++) {
        if (strcmp(comp->meta[i].name, name) == 0) {
            return comp->meta[i].value;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ parsing helpers */

/* A scalar's text, or "" for a YAML null; -EINVAL for a mapping or sequence. */
static int scalar_or_empty(const struct tr_conf_node *n, const char **out,
                           struct tr_conf_err *err)
{
    if (tr_conf_is_null(n)) {
        *out = "";
        return 0;
    }
    return tr_conf_str(n, out, err);
}

/* Names of components, topics and subscriptions: they end up in URL paths and file
 * names on the server, so printable ASCII without '/', at most 255 bytes. */
static int check_name(const struct tr_conf_node *n, const char *what, const char *s,
                      struct tr_conf_err *err)
{
    size_t len = strlen(s);
    if (len == 0 || len > TR_SIDECAR_MAX_NAME) {
        return tr_conf_errorf(n, err, "%s must be 1 to %d characters", what,
                              TR_SIDECAR_MAX_NAME);
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '-' || ch == '_' || ch == '.';
        if (!ok) {
            return tr_conf_errorf(n, err,
                                  "%s \"%.64s\" may only contain letters, digits, '-', '_' and '.'",
                                  what, s);
        }
    }
    return 0;
}

static int required_str(const struct tr_conf_node *map, const char *key, const char *section,
                        const char **out, struct tr_conf_err *err)
{
    const struct tr_conf_node *n;
    int rc = tr_conf_require(map, key, section, &n, err);
    if (rc == 0) {
        rc = tr_conf_str(n, out, err);
    }
    return rc;
}

/* Does `scopes` (absent or a sequence of app ids) include `app_id`? */
static int in_scopes(const struct tr_conf_node *scopes, const char *app_id, bool *out,
                     struct tr_conf_err *err)
{
    *out = true;
    if (scopes == NULL || tr_conf_is_null(scopes)) {
        return 0;
    }
    int rc = tr_conf_expect(scopes, TR_CONF_SEQ, err);
    if (rc != 0) {
        return rc;
    }
    *out = false;
    for (size_t i = 0; i < tr_conf_len(scopes); i++) {
        const char *s;
        rc = tr_conf_str(tr_conf_item_at(scopes, i), &s, err);
        if (rc != 0) {
            return rc;
        }
        if (strcmp(s, app_id) == 0) {
            *out = true;
        }
    }
    return 0;
}

/* spec.metadata of a Component: a sequence of {name, value}. */
static int parse_meta_list(const struct tr_conf_node *list, struct tr_sidecar_meta_item **out,
                           size_t *nout, struct tr_conf_err *err)
{
    static const char *const item_keys[] = {"name", "value", "secretKeyRef", "envRef", NULL};
    *out = NULL;
    *nout = 0;
    if (list == NULL || tr_conf_is_null(list)) {
        return 0;
    }
    int rc = tr_conf_expect(list, TR_CONF_SEQ, err);
    if (rc != 0) {
        return rc;
    }
    size_t n = tr_conf_len(list);
    struct tr_sidecar_meta_item *items = tr_xcalloc(n > 0 ? n : 1, sizeof(*items));
    size_t done = 0;
    for (; done < n; done++) {
        const struct tr_conf_node *it = tr_conf_item_at(list, done);
        const char *name = NULL;
        const char *value = "";
        rc = tr_conf_check_keys(it, item_keys, "spec.metadata item", err);
        if (rc == 0) {
            rc = required_str(it, "name", "spec.metadata item", &name, err);
        }
        if (rc == 0 && tr_conf_get(it, "secretKeyRef") != NULL) {
            rc = tr_conf_errorf(tr_conf_get(it, "secretKeyRef"), err,
                                "secretKeyRef is not supported: give the value directly");
        }
        if (rc == 0 && tr_conf_get(it, "envRef") != NULL) {
            const char *var;
            rc = tr_conf_str(tr_conf_get(it, "envRef"), &var, err);
            value = rc == 0 && getenv(var) != NULL ? getenv(var) : "";
        }
        if (rc == 0 && tr_conf_get(it, "value") != NULL) {
            rc = scalar_or_empty(tr_conf_get(it, "value"), &value, err);
        }
        for (size_t k = 0; rc == 0 && k < done; k++) {
            if (strcmp(items[k].name, name) == 0) {
                rc = tr_conf_errorf(it, err, "metadata \"%.64s\" is given twice", name);
            }
        }
        if (rc != 0) {
            break;
        }
        items[done].name = tr_xstrdup(name);
        items[done].value = tr_xstrdup(value);
    }
    if (rc != 0) {
        meta_free(items, done);
        return rc;
    }
    *out = items;
    *nout = n;
    return 0;
}

/* spec.metadata of a Subscription: a mapping of strings. */
static int parse_meta_map(const struct tr_conf_node *map, struct tr_sidecar_meta_item **out,
                          size_t *nout, struct tr_conf_err *err)
{
    *out = NULL;
    *nout = 0;
    if (map == NULL || tr_conf_is_null(map)) {
        return 0;
    }
    int rc = tr_conf_expect(map, TR_CONF_MAP, err);
    if (rc != 0) {
        return rc;
    }
    size_t n = tr_conf_len(map);
    struct tr_sidecar_meta_item *items = tr_xcalloc(n > 0 ? n : 1, sizeof(*items));
    size_t done = 0;
    for (; done < n; done++) {
        const struct tr_conf_pair *p = tr_conf_pair_at(map, done);
        const char *value;
        rc = scalar_or_empty(p->value, &value, err);
        if (rc != 0) {
            break;
        }
        items[done].name = tr_xstrndup(p->key->u.text.ptr, p->key->u.text.len);
        items[done].value = tr_xstrdup(value);
    }
    if (rc != 0) {
        meta_free(items, done);
        return rc;
    }
    *out = items;
    *nout = n;
    return 0;
}

/* ------------------------------------------------------------ documents */

static int parse_type(const struct tr_conf_node *n, const char *type,
                      enum tr_sidecar_comp_type *out, struct tr_conf_err *err)
{
    for (int t = 0; t < TR_SIDECAR_TYPE_COUNT; t++) {
        if (strcmp(type, type_names[t]) == 0) {
            *out = (enum tr_sidecar_comp_type)t;
            return 0;
        }
    }
    return tr_conf_errorf(n, err,
                          "unknown component type \"%.100s\" (supported: state.trellis, "
                          "pubsub.trellis, secretstores.local.file, secretstores.local.env)",
                          type);
}

static int add_component(struct tr_sidecar_components *c, const char *file,
                         const struct tr_conf_node *root, struct tr_conf_err *err)
{
    static const char *const spec_keys[] = {"type",     "version",      "metadata",
                                            "initTimeout", "ignoreErrors", NULL};
    const struct tr_conf_node *meta = NULL;
    const struct tr_conf_node *spec = NULL;
    const char *name = NULL;
    const char *type = NULL;
    const char *version = "v1";
    int rc = tr_conf_require(root, "metadata", "Component", &meta, err);
    if (rc == 0) {
        rc = tr_conf_expect(meta, TR_CONF_MAP, err);
    }
    if (rc == 0) {
        rc = required_str(meta, "name", "metadata", &name, err);
    }
    if (rc == 0) {
        rc = check_name(tr_conf_get(meta, "name"), "component name", name, err);
    }
    if (rc == 0) {
        rc = tr_conf_require(root, "spec", "Component", &spec, err);
    }
    if (rc == 0) {
        rc = tr_conf_check_keys(spec, spec_keys, "spec", err);
    }
    if (rc == 0) {
        rc = required_str(spec, "type", "spec", &type, err);
    }
    enum tr_sidecar_comp_type ctype = TR_SIDECAR_TYPE_STATE_TRELLIS;
    if (rc == 0) {
        rc = parse_type(tr_conf_get(spec, "type"), type, &ctype, err);
    }
    if (rc == 0 && tr_conf_get(spec, "version") != NULL) {
        rc = tr_conf_str(tr_conf_get(spec, "version"), &version, err);
        if (rc == 0 && strcmp(version, "v1") != 0) {
            rc = tr_conf_errorf(tr_conf_get(spec, "version"), err,
                                "component type %s has no version \"%.32s\" (only v1)", type,
                                version);
        }
    }
    struct tr_sidecar_meta_item *items = NULL;
    size_t nitems = 0;
    if (rc == 0) {
        rc = parse_meta_list(tr_conf_get(spec, "metadata"), &items, &nitems, err);
    }
    if (rc != 0) {
        return rc;
    }
    if (c->ncomps >= TR_SIDECAR_MAX_COMPONENTS) {
        meta_free(items, nitems);
        snprintf(err->msg, sizeof(err->msg), "%s: more than %d components", file,
                 TR_SIDECAR_MAX_COMPONENTS);
        return -E2BIG;
    }
    c->comps = tr_xrealloc(c->comps, (c->ncomps + 1) * sizeof(*c->comps));
    struct tr_sidecar_component *comp = &c->comps[c->ncomps++];
    memset(comp, 0, sizeof(*comp));
    comp->name = tr_xstrdup(name);
    comp->type = tr_xstrdup(type);
    comp->version = tr_xstrdup(version);
    comp->file = tr_xstrdup(file);
    comp->ctype = ctype;
    comp->kind = type_kinds[ctype];
    comp->meta = items;
    comp->nmeta = nitems;
    return 0;
}

static int parse_routes(struct tr_sidecar_subscription *s, const struct tr_conf_node *routes,
                        struct tr_conf_err *err)
{
    static const char *const keys[] = {"rules", "default", NULL};
    static const char *const rule_keys[] = {"match", "path", NULL};
    int rc = tr_conf_check_keys(routes, keys, "spec.routes", err);
    const struct tr_conf_node *def = tr_conf_get(routes, "default");
    const char *text;
    if (rc == 0 && def != NULL) {
        rc = tr_conf_str(def, &text, err);
        if (rc == 0) {
            s->route = tr_xstrdup(text);
        }
    }
    const struct tr_conf_node *rules = tr_conf_get(routes, "rules");
    if (rc != 0 || rules == NULL || tr_conf_is_null(rules)) {
        return rc;
    }
    rc = tr_conf_expect(rules, TR_CONF_SEQ, err);
    if (rc != 0) {
        return rc;
    }
    size_t n = tr_conf_len(rules);
    s->rules = tr_xcalloc(n > 0 ? n : 1, sizeof(*s->rules));
    for (size_t i = 0; i < n; i++) {
        const struct tr_conf_node *r = tr_conf_item_at(rules, i);
        const char *match = "";
        const char *path;
        rc = tr_conf_check_keys(r, rule_keys, "spec.routes.rules item", err);
        if (rc == 0) {
            rc = required_str(r, "path", "spec.routes.rules item", &path, err);
        }
        if (rc == 0 && tr_conf_get(r, "match") != NULL) {
            rc = scalar_or_empty(tr_conf_get(r, "match"), &match, err);
        }
        if (rc != 0) {
            return rc;
        }
        s->rules[i].match = tr_xstrdup(match);
        s->rules[i].path = tr_xstrdup(path);
        s->nrules = i + 1;
    }
    return 0;
}

static int parse_bulk(struct tr_sidecar_subscription *s, const struct tr_conf_node *b,
                      struct tr_conf_err *err)
{
    static const char *const keys[] = {"enabled", "maxMessagesCount", "maxAwaitDurationMs", NULL};
    int rc = tr_conf_check_keys(b, keys, "spec.bulkSubscribe", err);
    int64_t v;
    if (rc == 0 && tr_conf_get(b, "enabled") != NULL) {
        rc = tr_conf_bool(tr_conf_get(b, "enabled"), &s->bulk, err);
    }
    if (rc == 0 && tr_conf_get(b, "maxMessagesCount") != NULL) {
        rc = tr_conf_int(tr_conf_get(b, "maxMessagesCount"), 1, 10000, &v, err);
        s->bulk_max_messages = rc == 0 ? (unsigned)v : 0;
    }
    if (rc == 0 && tr_conf_get(b, "maxAwaitDurationMs") != NULL) {
        rc = tr_conf_int(tr_conf_get(b, "maxAwaitDurationMs"), 0, 3600000, &v, err);
        s->bulk_max_await_ms = rc == 0 ? (unsigned)v : 0;
    }
    return rc;
}

static int parse_subscription(struct tr_sidecar_subscription *s, const struct tr_conf_node *root,
                              bool v2, struct tr_conf_err *err)
{
    static const char *const spec_keys[] = {"topic",           "route",         "routes",
                                            "pubsubname",      "deadLetterTopic", "metadata",
                                            "bulkSubscribe",   NULL};
    const struct tr_conf_node *meta = NULL;
    const struct tr_conf_node *spec = NULL; /* NULL until found: tr_conf_get() takes it */
    const char *text;
    int rc = tr_conf_require(root, "metadata", "Subscription", &meta, err);
    if (rc == 0) {
        rc = tr_conf_expect(meta, TR_CONF_MAP, err);
    }
    if (rc == 0) {
        rc = required_str(meta, "name", "metadata", &text, err);
        s->name = rc == 0 ? tr_xstrdup(text) : NULL;
    }
    if (rc == 0) {
        rc = tr_conf_require(root, "spec", "Subscription", &spec, err);
    }
    if (rc == 0) {
        rc = tr_conf_check_keys(spec, spec_keys, "spec", err);
    }
    if (rc == 0) {
        rc = required_str(spec, "topic", "spec", &text, err);
        s->topic = rc == 0 ? tr_xstrdup(text) : NULL;
    }
    if (rc == 0) {
        rc = required_str(spec, "pubsubname", "spec", &text, err);
        s->pubsubname = rc == 0 ? tr_xstrdup(text) : NULL;
    }
    if (rc == 0) {
        rc = check_name(tr_conf_get(spec, "pubsubname"), "pubsubname", s->pubsubname, err);
    }
    const struct tr_conf_node *routes = tr_conf_get(spec, "routes");
    const struct tr_conf_node *route = tr_conf_get(spec, "route");
    if (rc == 0 && routes != NULL) {
        rc = parse_routes(s, routes, err);
    }
    if (rc == 0 && route != NULL && s->route == NULL) {
        rc = tr_conf_str(route, &text, err);
        s->route = rc == 0 ? tr_xstrdup(text) : NULL;
    }
    if (rc == 0 && s->route == NULL && s->nrules == 0) {
        rc = tr_conf_errorf(spec, err, "subscription \"%.64s\" has no route: give %s", s->name,
                            v2 ? "spec.routes.default (or spec.routes.rules)" : "spec.route");
    }
    if (rc == 0 && tr_conf_get(spec, "deadLetterTopic") != NULL) {
        rc = tr_conf_str(tr_conf_get(spec, "deadLetterTopic"), &text, err);
        s->dead_letter_topic = rc == 0 ? tr_xstrdup(text) : NULL;
    }
    if (rc == 0) {
        rc = parse_meta_map(tr_conf_get(spec, "metadata"), &s->meta, &s->nmeta, err);
    }
    if (rc == 0 && tr_conf_get(spec, "bulkSubscribe") != NULL) {
        rc = parse_bulk(s, tr_conf_get(spec, "bulkSubscribe"), err);
    }
    return rc;
}

static int add_subscription(struct tr_sidecar_components *c, const char *file,
                            const struct tr_conf_node *root, bool v2, struct tr_conf_err *err)
{
    struct tr_sidecar_subscription s;
    memset(&s, 0, sizeof(s));
    int rc = parse_subscription(&s, root, v2, err);
    if (rc == 0 && c->nsubs >= TR_SIDECAR_MAX_SUBSCRIPTIONS) {
        snprintf(err->msg, sizeof(err->msg), "%s: more than %d subscriptions", file,
                 TR_SIDECAR_MAX_SUBSCRIPTIONS);
        rc = -E2BIG;
    }
    if (rc != 0) {
        sub_dispose(&s);
        return rc;
    }
    s.file = tr_xstrdup(file);
    c->subs = tr_xrealloc(c->subs, (c->nsubs + 1) * sizeof(*c->subs));
    c->subs[c->nsubs++] = s;
    return 0;
}

static void warnf(struct tr_sidecar_components *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void warnf(struct tr_sidecar_components *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tr_buf_vappendf(&c->warnings, fmt, ap);
    va_end(ap);
    tr_buf_append(&c->warnings, "\n", 1);
}

static int parse_document(struct tr_sidecar_components *c, const char *file,
                          const struct tr_conf_node *root, const char *app_id,
                          struct tr_conf_err *err)
{
    const struct tr_conf_node *n;
    const char *api_version;
    const char *kind;
    int rc = tr_conf_expect(root, TR_CONF_MAP, err);
    if (rc == 0) {
        rc = required_str(root, "kind", "document", &kind, err);
    }
    if (rc == 0) {
        rc = required_str(root, "apiVersion", "document", &api_version, err);
    }
    if (rc != 0) {
        return rc;
    }
    bool comp = strcmp(kind, "Component") == 0;
    bool sub = strcmp(kind, "Subscription") == 0;
    if (!comp && !sub) {
        warnf(c, "%s:%u: skipping kind \"%.64s\" (only Component and Subscription are used)", file,
              root->line, kind);
        return 0;
    }
    n = tr_conf_get(root, "apiVersion");
    bool v2 = strcmp(api_version, "dapr.io/v2alpha1") == 0;
    if (comp ? strcmp(api_version, "dapr.io/v1alpha1") != 0
             : (!v2 && strcmp(api_version, "dapr.io/v1alpha1") != 0)) {
        return tr_conf_errorf(n, err, "%s needs apiVersion %s, got \"%.64s\"", kind,
                              comp ? "dapr.io/v1alpha1" : "dapr.io/v2alpha1 or dapr.io/v1alpha1",
                              api_version);
    }
    if (tr_conf_get(root, "auth") != NULL) {
        return tr_conf_errorf(tr_conf_get(root, "auth"), err,
                              "auth.secretStore is not supported (secretKeyRef is not either)");
    }
    bool mine;
    rc = in_scopes(tr_conf_get(root, "scopes"), app_id, &mine, err);
    if (rc != 0) {
        return rc;
    }
    /* Validate before looking at scopes, so a broken file fails for every app. */
    struct tr_sidecar_components tmp;
    tr_sidecar_components_init(&tmp);
    rc = comp ? add_component(&tmp, file, root, err) : add_subscription(&tmp, file, root, v2, err);
    if (rc == 0 && !mine) {
        warnf(c, "%s:%u: %s \"%s\" is scoped to other apps; skipped", file, root->line, kind,
              comp ? tmp.comps[0].name : tmp.subs[0].name);
    } else if (rc == 0 && comp) {
        if (c->ncomps >= TR_SIDECAR_MAX_COMPONENTS) {
            snprintf(err->msg, sizeof(err->msg), "%s: more than %d components", file,
                     TR_SIDECAR_MAX_COMPONENTS);
            rc = -E2BIG;
        } else {
            c->comps = tr_xrealloc(c->comps, (c->ncomps + 1) * sizeof(*c->comps));
            c->comps[c->ncomps++] = tmp.comps[0];
            tmp.ncomps = 0;
        }
    } else if (rc == 0) {
        if (c->nsubs >= TR_SIDECAR_MAX_SUBSCRIPTIONS) {
            snprintf(err->msg, sizeof(err->msg), "%s: more than %d subscriptions", file,
                     TR_SIDECAR_MAX_SUBSCRIPTIONS);
            rc = -E2BIG;
        } else {
            c->subs = tr_xrealloc(c->subs, (c->nsubs + 1) * sizeof(*c->subs));
            c->subs[c->nsubs++] = tmp.subs[0];
            tmp.nsubs = 0;
        }
    }
    tr_sidecar_components_dispose(&tmp);
    return rc;
}

/* Only whitespace and comments? */
static bool blank_document(const char *p, size_t len)
{
    bool comment = false;
    for (size_t i = 0; i < len; i++) {
        char ch = p[i];
        if (ch == '\n') {
            comment = false;
        } else if (comment) {
            continue;
        } else if (ch == '#') {
            comment = true;
        } else if (ch != ' ' && ch != '\t' && ch != '\r') {
            return false;
        }
    }
    return true;
}

/* Is the line at p (up to len) a document separator: "---" with optional trailing
 * blanks or comment? */
static bool separator_line(const char *p, size_t len)
{
    if (len < 3 || memcmp(p, "---", 3) != 0) {
        return false;
    }
    for (size_t i = 3; i < len; i++) {
        if (p[i] == '#') {
            return true;
        }
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') {
            return false;
        }
    }
    return true;
}

static int parse_chunk(struct tr_sidecar_components *c, const char *name, const char *data,
                       size_t len, unsigned first_line, const char *app_id,
                       struct tr_conf_err *err)
{
    if (blank_document(data, len)) {
        return 0;
    }
    /* Pad with the lines before the chunk so positions are the file's. */
    struct tr_buf text;
    tr_buf_init(&text);
    for (unsigned i = 1; i < first_line; i++) {
        tr_buf_append(&text, "\n", 1);
    }
    tr_buf_append(&text, data, len);
    struct tr_conf *conf;
    int rc = tr_conf_load_mem(name, tr_buf_data(&text), text.len, &conf, err);
    tr_buf_dispose(&text);
    if (rc != 0) {
        return rc;
    }
    rc = parse_document(c, name, tr_conf_root(conf), app_id, err);
    tr_conf_free(conf);
    return rc;
}

int tr_sidecar_components_parse(struct tr_sidecar_components *c, const char *name,
                                const char *data, size_t len, const char *app_id,
                                struct tr_conf_err *err)
{
    if (len > TR_CONF_MAX_BYTES) {
        snprintf(err->msg, sizeof(err->msg), "%s: larger than %u bytes", name, TR_CONF_MAX_BYTES);
        return -EFBIG;
    }
    struct tr_sidecar_components tmp;
    tr_sidecar_components_init(&tmp);
    int rc = 0;
    size_t start = 0;
    unsigned start_line = 1;
    unsigned line = 1;
    for (size_t i = 0; i <= len && rc == 0; line++) {
        const char *nl = i < len ? memchr(data + i, '\n', len - i) : NULL;
        size_t end = nl != NULL ? (size_t)(nl - data) : len;
        if (separator_line(data + i, end - i)) {
            rc = parse_chunk(&tmp, name, data + start, i - start, start_line, app_id, err);
            start = nl != NULL ? end + 1 : len;
            start_line = line + 1;
        }
        if (nl == NULL) {
            break;
        }
        i = end + 1;
    }
    if (rc == 0 && start < len) {
        rc = parse_chunk(&tmp, name, data + start, len - start, start_line, app_id, err);
    }
    if (rc == 0 && (c->ncomps + tmp.ncomps > TR_SIDECAR_MAX_COMPONENTS ||
                    c->nsubs + tmp.nsubs > TR_SIDECAR_MAX_SUBSCRIPTIONS)) {
        snprintf(err->msg, sizeof(err->msg), "%s: too many components or subscriptions", name);
        rc = -E2BIG;
    }
    if (rc != 0) {
        tr_sidecar_components_dispose(&tmp);
        return rc;
    }
    if (tmp.ncomps > 0) {
        c->comps = tr_xrealloc(c->comps, (c->ncomps + tmp.ncomps) * sizeof(*c->comps));
        memcpy(c->comps + c->ncomps, tmp.comps, tmp.ncomps * sizeof(*c->comps));
        c->ncomps += tmp.ncomps;
        tmp.ncomps = 0;
    }
    if (tmp.nsubs > 0) {
        c->subs = tr_xrealloc(c->subs, (c->nsubs + tmp.nsubs) * sizeof(*c->subs));
        memcpy(c->subs + c->nsubs, tmp.subs, tmp.nsubs * sizeof(*c->subs));
        c->nsubs += tmp.nsubs;
        tmp.nsubs = 0;
    }
    tr_buf_append_slice(&c->warnings, tr_buf_slice(&tmp.warnings));
    tr_sidecar_components_dispose(&tmp);
    return 0;
}

/* ------------------------------------------------------------ directories */

static int read_file(const char *path, struct tr_buf *out, struct tr_conf_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        int e = errno;
        snprintf(err->msg, sizeof(err->msg), "%s: %s", path, strerror(e));
        return -e;
    }
    int rc = 0;
    for (;;) {
        if (out->len > TR_CONF_MAX_BYTES) {
            snprintf(err->msg, sizeof(err->msg), "%s: larger than %u bytes", path,
                     TR_CONF_MAX_BYTES);
            rc = -EFBIG;
            break;
        }
        char *p = tr_buf_reserve(out, 64 * 1024);
        ssize_t n = read(fd, p, 64 * 1024);
        if (n == -1 && errno == EINTR) {
            continue;
        }
        if (n == -1) {
            rc = -errno;
            snprintf(err->msg, sizeof(err->msg), "%s: %s", path, strerror(errno));
            break;
        }
        if (n == 0) {
            break;
        }
        tr_buf_commit(out, (size_t)n);
    }
    close(fd);
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool yaml_name(const char *n)
{
    size_t len = strlen(n);
    return n[0] != '.' && ((len > 5 && strcmp(n + len - 5, ".yaml") == 0) ||
                           (len > 4 && strcmp(n + len - 4, ".yml") == 0));
}

static int check_duplicates(const struct tr_sidecar_components *c, struct tr_conf_err *err)
{
    for (size_t i = 0; i < c->ncomps; i++) {
        for (size_t k = 0; k < i; k++) {
            if (c->comps[k].kind == c->comps[i].kind &&
                strcmp(c->comps[k].name, c->comps[i].name) == 0) {
                snprintf(err->msg, sizeof(err->msg),
                         "%s: component \"%s\" is already defined in %s", c->comps[i].file,
                         c->comps[i].name, c->comps[k].file);
                return -EINVAL;
            }
        }
    }
    return 0;
}

int tr_sidecar_components_load_dir(struct tr_sidecar_components *c, const char *dir,
                                   const char *app_id, struct tr_conf_err *err)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        int e = errno;
        snprintf(err->msg, sizeof(err->msg), "--components %s: %s", dir, strerror(e));
        return -e;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (yaml_name(de->d_name)) {
            names = tr_xrealloc(names, (n + 1) * sizeof(*names));
            names[n++] = tr_xstrdup(de->d_name);
        }
    }
    closedir(d);
    if (n > 0) {
        qsort(names, n, sizeof(*names), cmp_names);
    }
    int rc = 0;
    struct tr_buf path;
    struct tr_buf text;
    tr_buf_init(&path);
    tr_buf_init(&text);
    for (size_t i = 0; i < n && rc == 0; i++) {
        tr_buf_reset(&path);
        tr_buf_appendf(&path, "%s/%s", dir, names[i]);
        tr_buf_append(&path, "", 1);
        tr_buf_reset(&text);
        struct stat st;
        if (stat(tr_buf_data(&path), &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        rc = read_file(tr_buf_data(&path), &text, err);
        if (rc == 0) {
            rc = tr_sidecar_components_parse(c, tr_buf_data(&path), tr_buf_data(&text) ? tr_buf_data(&text) : "",
                                             text.len, app_id, err);
        }
    }
    for (size_t i = 0; i < n; i++) {
        tr_free_null(&names[i]);
    }
    tr_free_null(&names);
    tr_buf_dispose(&path);
    tr_buf_dispose(&text);
    if (rc == 0) {
        rc = check_duplicates(c, err);
    }
    return rc;
}

static void add_default(struct tr_sidecar_components *c, const char *name,
                        enum tr_sidecar_comp_type t)
{
    c->comps = tr_xrealloc(c->comps, (c->ncomps + 1) * sizeof(*c->comps));
    struct tr_sidecar_component *comp = &c->comps[c->ncomps++];
    memset(comp, 0, sizeof(*comp));
    comp->name = tr_xstrdup(name);
    comp->type = tr_xstrdup(type_names[t]);
    comp->version = tr_xstrdup("v1");
    comp->file = tr_xstrdup("(default)");
    comp->ctype = t;
    comp->kind = type_kinds[t];
    comp->is_default = true;
}

void tr_sidecar_components_defaults(struct tr_sidecar_components *c)
{
    add_default(c, "statestore", TR_SIDECAR_TYPE_STATE_TRELLIS);
    add_default(c, "pubsub", TR_SIDECAR_TYPE_PUBSUB_TRELLIS);
}
