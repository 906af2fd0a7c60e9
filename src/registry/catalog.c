/* SPDX-License-Identifier: Apache-2.0 */
/* The catalog's state and its mutations (see catalog.h). Every mutation runs as a small
 * transaction: the first real change takes the next registry index, every service name
 * it touches (or the node, for node-level checks) gets that index, the changed objects
 * and the touched indexes are queued for the writer, and only then are the topics
 * marked, so watchers wake after the records are durable. Identical re-registrations
 * change nothing and take no index. */
#include "registry/catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "registry/registry.h"

struct txn {
    struct tr_catalog *cat;
    uint64_t index;       /* 0 until the first change */
    bool catalog;         /* a service definition or the set of services changed */
    bool node;            /* a node-level check changed */
    struct tr_list dirty; /* struct tr_cat_name touched, by dirty_link */
};

static void check_free(struct tr_cat_check *c);

/* ------------------------------------------------------------ small helpers */

static uint64_t loop_now(const struct tr_catalog *cat)
{
    return cat->health.started ? uv_now(&cat->reg->loop) : 0;
}

static struct tr_cat_name *name_get(struct tr_catalog *cat, const char *name, bool create)
{
    struct tr_cat_name *g = tr_map_get(&cat->names, tr_slice_cstr(name));
    if (g != NULL || !create) {
        return g;
    }
    g = tr_xcalloc(1, sizeof(*g));
    g->name = tr_xstrdup(name);
    tr_list_init(&g->instances);
    tr_list_init(&g->dirty_link);
    tr_map_put(&cat->names, tr_slice_cstr(name), g);
    return g;
}

static const char *def_str(const json_t *def, const char *key)
{
    const char *s = json_string_value(json_object_get(def, key));
    return s != NULL ? s : "";
}

static uint64_t def_duration(const json_t *def, const char *key)
{
    uint64_t ms = 0;
    const char *s = def_str(def, key);
    if (s[0] != '\0' && tr_cat_parse_duration(tr_slice_cstr(s), &ms) != 0) {
        ms = 0;
    }
    return ms;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

const char *tr_cat_service_name(const struct tr_cat_service *s)
{
    return s->group->name;
}

const json_t *tr_cat_service_tags(const struct tr_cat_service *s)
{
    return json_object_get(s->def, "Tags");
}

/* ------------------------------------------------------------ persistence */

static void persist_obj(struct tr_catalog *cat, const char *kind, const char *id,
                        const json_t *data, uint64_t create_index, uint64_t modify_index)
{
    char *text = data ? json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    struct tr_reg_record *r =
        tr_reg_record_new(TR_REC_OBJ, kind, id, strlen(id), text, text ? strlen(text) : 0);
    free(text); /* jansson's allocation */
    r->create_index = create_index;
    r->modify_index = modify_index;
    tr_reg_persist(cat->reg, r);
}

static void persist_delete(struct tr_catalog *cat, const char *kind, const char *id)
{
    struct tr_reg_record *r = tr_reg_record_new(TR_REC_OBJ, kind, id, strlen(id), NULL, 0);
    r->deleted = true;
    tr_reg_persist(cat->reg, r);
}

static void persist_service(struct tr_catalog *cat, const struct tr_cat_service *s)
{
    persist_obj(cat, "service", s->id, s->def, s->create_index, s->modify_index);
}

static void persist_check(struct tr_catalog *cat, const struct tr_cat_check *c)
{
    json_t *o = json_pack("{s:O,s:s,s:s}", "Definition", c->def, "Status",
                          tr_check_status_name(c->status), "Output", c->output);
    persist_obj(cat, "check", c->id, o, c->create_index, c->modify_index);
    json_decref(o);
}

static void persist_index(struct tr_catalog *cat, const char *key, uint64_t index)
{
    persist_obj(cat, "index", key, NULL, index, index);
}

/* ------------------------------------------------------------ transactions */

static void txn_init(struct txn *t, struct tr_catalog *cat)
{
    memset(t, 0, sizeof(*t));
    t->cat = cat;
    tr_list_init(&t->dirty);
}

static uint64_t txn_index(struct txn *t)
{
    if (t->index == 0) {
        t->index = tr_reg_next_index(t->cat->reg);
    }
    return t->index;
}

/* Something under `g` changed (NULL: a node-level check). */
static void txn_touch(struct txn *t, struct tr_cat_name *g)
{
    txn_index(t);
    if (g == NULL) {
        t->node = true;
    } else if (!tr_list_linked(&g->dirty_link)) {
        tr_list_insert_tail(&t->dirty, &g->dirty_link);
    }
}

static void notify_name(struct tr_reg *reg, const struct tr_cat_name *g)
{
    char topic[TR_CAT_MAX_ID + 16];
    tr_reg_topic_service(topic, sizeof(topic), g->name);
    tr_reg_changed(reg, topic);
}

/* Persists the touched indexes, then marks the topics: tr_reg_changed() waits for
 * everything queued so far, the objects included. */
static void txn_end(struct txn *t)
{
    struct tr_catalog *cat = t->cat;
    if (t->index == 0) {
        return;
    }
    char key[TR_CAT_MAX_ID + 16];
    struct tr_list *it;
    for (it = t->dirty.next; it != &t->dirty; it = it->next) {
        struct tr_cat_name *g = tr_container_of(it, struct tr_cat_name, dirty_link);
        g->index = t->index;
        snprintf(key, sizeof(key), "svc:%s", g->name);
        persist_index(cat, key, t->index);
    }
    if (t->node) {
        cat->node_index = t->index;
        persist_index(cat, "node", t->index);
    }
    if (t->catalog) {
        cat->catalog_index = t->index;
        persist_index(cat, "catalog", t->index);
    }
    cat->all_index = t->index;
    persist_index(cat, "all", t->index);

    struct tr_list *l;
    while ((l = tr_list_first(&t->dirty)) != NULL) {
        tr_list_remove(l);
        notify_name(cat->reg, tr_container_of(l, struct tr_cat_name, dirty_link));
    }
    if (t->node) {
        /* Node-level checks are part of every service's health. */
        size_t i = 0;
        const struct tr_map_slot *slot;
        while (tr_map_next(&cat->names, &i, &slot)) {
            notify_name(cat->reg, slot->value);
        }
    }
    if (t->catalog) {
        tr_reg_changed(cat->reg, TR_TOPIC_CATALOG);
    }
    tr_reg_changed(cat->reg, TR_TOPIC_HEALTH);
}

/* ------------------------------------------------------------ checks */

/* Derives the checker's fields from the canonical definition (takes the reference). */
static void check_apply_def(struct tr_cat_check *c, json_t *def)
{
    json_decref(c->def);
    c->def = def;
    tr_free_null(&c->host);
    tr_free_null(&c->path);
    const char *type = def_str(def, "Type");
    c->type = TR_CHECK_TTL;
    for (int t = 0; t < TR_CHECK_TYPE_COUNT; t++) {
        if (strcmp(type, tr_check_type_name((enum tr_check_type)t)) == 0) {
            c->type = (enum tr_check_type)t;
        }
    }
    char host[256] = "";
    uint16_t port = 0;
    if (c->type == TR_CHECK_HTTP) {
        const char *target = "";
        if (tr_cat_parse_http_url(def_str(def, "HTTP"), host, sizeof(host), &port, &target) != 0) {
            target = "";
        }
        size_t n = strcspn(target, "#");
        c->path = tr_xmalloc(n + 2);
        snprintf(c->path, n + 2, "%s%.*s", target[0] == '/' ? "" : "/", (int)n, target);
    } else if (c->type == TR_CHECK_TCP) {
        if (tr_cat_split_hostport(def_str(def, "TCP"), host, sizeof(host), &port) != 0) {
            host[0] = '\0';
        }
    }
    c->host = tr_xstrdup(host);
    c->port = port;
    c->interval_ms = def_duration(def, "Interval");
    if (c->interval_ms > 0 && c->interval_ms < TR_CAT_MIN_INTERVAL_MS) {
        c->interval_ms = TR_CAT_MIN_INTERVAL_MS;
    }
    /* Consul: the timeout defaults to 10s, or to the interval when that is shorter. */
    c->timeout_ms = def_duration(def, "Timeout");
    if (c->timeout_ms == 0) {
        c->timeout_ms = TR_CAT_DEFAULT_TIMEOUT_MS;
        if (c->interval_ms > 0 && c->interval_ms < c->timeout_ms) {
            c->timeout_ms = c->interval_ms;
        }
    }
    c->ttl_ms = def_duration(def, "TTL");
    c->dcsa_ms = def_duration(def, "DeregisterCriticalServiceAfter");
    c->success_before_passing =
        (uint64_t)json_integer_value(json_object_get(def, "SuccessBeforePassing"));
    c->failures_before_critical =
        (uint64_t)json_integer_value(json_object_get(def, "FailuresBeforeCritical"));
    json_int_t omax = json_integer_value(json_object_get(def, "OutputMaxSize"));
    c->output_max = omax > 0 ? (size_t)omax : TR_CAT_OUTPUT_MAX;
}

static struct tr_cat_check *check_new(json_t *def)
{
    struct tr_cat_check *c = tr_xcalloc(1, sizeof(*c));
    tr_list_init(&c->svc_link);
    tr_list_init(&c->reap_link);
    c->id = tr_xstrdup(def_str(def, "CheckID"));
    c->output = tr_xstrdup("");
    c->status = TR_CHECK_CRITICAL;
    enum tr_check_status st;
    if (tr_check_status_parse(tr_slice_cstr(def_str(def, "Status")), &st) == 0) {
        c->status = st;
    }
    check_apply_def(c, def);
    return c;
}

static void check_free(struct tr_cat_check *c)
{
    json_decref(c->def);
    tr_free_null(&c->id);
    tr_free_null(&c->host);
    tr_free_null(&c->path);
    tr_free_null(&c->output);
    tr_free_null(&c);
}

static void check_set_output(struct tr_cat_check *c, struct tr_slice output)
{
    size_t n = output.len < c->output_max ? output.len : c->output_max;
    tr_free_null(&c->output);
    c->output = tr_xstrndup(output.ptr ? output.ptr : "", n);
}

static void check_set_status(struct tr_catalog *cat, struct tr_cat_check *c,
                             enum tr_check_status st)
{
    if (st == TR_CHECK_CRITICAL && (c->status != TR_CHECK_CRITICAL || c->critical_since == 0)) {
        c->critical_since = loop_now(cat);
    } else if (st != TR_CHECK_CRITICAL) {
        c->critical_since = 0;
    }
    c->status = st;
}

static struct tr_cat_name *check_owner(const struct tr_cat_check *c)
{
    return c->service != NULL ? c->service->group : NULL;
}

static void check_attach(struct tr_catalog *cat, struct tr_cat_check *c,
                         struct tr_cat_service *owner)
{
    tr_list_remove(&c->svc_link);
    c->service = owner;
    tr_list_insert_tail(owner != NULL ? &owner->checks : &cat->node_checks, &c->svc_link);
    tr_list_remove(&c->reap_link);
    if (c->dcsa_ms > 0 && owner != NULL) {
        tr_list_insert_tail(&cat->reapable, &c->reap_link);
    }
}

static void remove_check(struct txn *t, struct tr_cat_check *c)
{
    struct tr_catalog *cat = t->cat;
    txn_touch(t, check_owner(c));
    persist_delete(cat, "check", c->id);
    tr_cat__health_forget(cat, c);
    tr_list_remove(&c->svc_link);
    tr_list_remove(&c->reap_link);
    tr_map_del(&cat->checks, tr_slice_cstr(c->id));
    check_free(c);
}

/* Adds or replaces check `def` (takes the reference) under `owner` (NULL: node). */
static void upsert_check(struct txn *t, struct tr_cat_service *owner, json_t *def)
{
    struct tr_catalog *cat = t->cat;
    const char *id = def_str(def, "CheckID");
    struct tr_cat_check *c = tr_map_get(&cat->checks, tr_slice_cstr(id));
    if (c != NULL && c->service == owner && json_equal(c->def, def)) {
        json_decref(def);
        return;
    }
    if (c != NULL) {
        /* Consul keeps a re-registered check's status and output. */
        txn_touch(t, check_owner(c));
        tr_cat__health_forget(cat, c);
        check_apply_def(c, def);
    } else {
        c = check_new(def);
        c->create_index = txn_index(t);
        if (c->status == TR_CHECK_CRITICAL) {
            c->critical_since = loop_now(cat);
        }
        tr_map_put(&cat->checks, tr_slice_cstr(c->id), c);
    }
    check_attach(cat, c, owner);
    c->modify_index = txn_index(t);
    c->successes = 0;
    c->failures = 0;
    persist_check(cat, c);
    txn_touch(t, check_owner(c));
    tr_cat__health_schedule(cat, c, true);
}

/* Sets status and output; an explicit (API) update counts an output change as a
 * change, a probe result only a status change (Consul syncs output lazily too). */
static void apply_status(struct txn *t, struct tr_cat_check *c, enum tr_check_status st,
                         struct tr_slice output, bool explicit)
{
    bool same_output = strlen(c->output) == output.len &&
                       (output.len == 0 || memcmp(c->output, output.ptr, output.len) == 0);
    if (st == c->status && (same_output || !explicit)) {
        if (!same_output) {
            check_set_output(c, output);
        }
        return;
    }
    check_set_status(t->cat, c, st);
    check_set_output(c, output);
    c->modify_index = txn_index(t);
    persist_check(t->cat, c);
    txn_touch(t, check_owner(c));
}

void tr_cat__check_result(struct tr_catalog *cat, struct tr_cat_check *chk,
                          enum tr_check_status status, struct tr_slice output)
{
    bool probed = chk->type == TR_CHECK_HTTP || chk->type == TR_CHECK_TCP;
    if (!probed) {
        /* TTL expiry: no thresholds, the check is not run again until updated. */
    } else if (status == TR_CHECK_PASSING) {
        chk->successes++;
        chk->failures = 0;
        if (chk->status != TR_CHECK_PASSING && chk->successes < chk->success_before_passing) {
            return;
        }
    } else if (status == TR_CHECK_CRITICAL) {
        chk->failures++;
        chk->successes = 0;
        if (chk->status != TR_CHECK_CRITICAL && chk->failures < chk->failures_before_critical) {
            return;
        }
    } else {
        chk->successes = 0;
        chk->failures = 0;
    }
    struct txn t;
    txn_init(&t, cat);
    apply_status(&t, chk, status, output, false);
    txn_end(&t);
}

/* ------------------------------------------------------------ services */

static void service_free(struct tr_cat_service *s)
{
    json_decref(s->def);
    tr_free_null(&s->id);
    tr_free_null(&s);
}

static void service_unlink(struct tr_cat_service *s)
{
    tr_list_remove(&s->name_link);
    s->group->count--;
    s->group = NULL;
}

static void service_link(struct tr_catalog *cat, struct tr_cat_service *s, const char *name)
{
    s->group = name_get(cat, name, true);
    tr_list_insert_tail(&s->group->instances, &s->name_link);
    s->group->count++;
}

static bool in_defs(const json_t *defs, const char *check_id)
{
    size_t i;
    json_t *d;
    json_array_foreach(defs, i, d)
    {
        if (strcmp(def_str(d, "CheckID"), check_id) == 0) {
            return true;
        }
    }
    return false;
}

void tr_catalog_register(struct tr_reg *reg, json_t *svc, json_t *checks, bool replace_checks)
{
    struct tr_catalog *cat = reg->catalog;
    struct txn t;
    txn_init(&t, cat);
    const char *id = def_str(svc, "ID");
    const char *name = def_str(svc, "Name");
    struct tr_cat_service *s = tr_map_get(&cat->services, tr_slice_cstr(id));
    if (s != NULL && strcmp(s->group->name, name) != 0) {
        /* Same ID, new name: the instance moves between names. */
        txn_touch(&t, s->group);
        service_unlink(s);
    }
    if (s == NULL) {
        s = tr_xcalloc(1, sizeof(*s));
        s->id = tr_xstrdup(id);
        tr_list_init(&s->name_link);
        tr_list_init(&s->checks);
        s->create_index = txn_index(&t);
        tr_map_put(&cat->services, tr_slice_cstr(s->id), s);
    }
    if (s->group == NULL) {
        service_link(cat, s, name);
    }
    if (s->def == NULL || !json_equal(s->def, svc) || t.index != 0) {
        json_decref(s->def);
        s->def = json_incref(svc);
        s->modify_index = txn_index(&t);
        persist_service(cat, s);
        txn_touch(&t, s->group);
        t.catalog = true;
    }
    json_decref(svc);
    if (replace_checks) {
        struct tr_list *it;
        struct tr_list *tmp;
        tr_list_foreach_safe(it, tmp, &s->checks)
        {
            struct tr_cat_check *c = tr_container_of(it, struct tr_cat_check, svc_link);
            /* Maintenance mode is the operator's, not part of the definition. */
            if (c->type != TR_CHECK_MAINT && !in_defs(checks, c->id)) {
                remove_check(&t, c);
            }
        }
    }
    size_t i;
    json_t *d;
    json_array_foreach(checks, i, d)
    {
        upsert_check(&t, s, json_incref(d));
    }
    json_decref(checks);
    txn_end(&t);
}

int tr_cat__deregister(struct tr_catalog *cat, const char *id)
{
    struct tr_cat_service *s = tr_map_get(&cat->services, tr_slice_cstr(id));
    if (s == NULL) {
        return -ENOENT;
    }
    struct txn t;
    txn_init(&t, cat);
    txn_touch(&t, s->group);
    t.catalog = true;
    struct tr_list *l;
    while ((l = tr_list_first(&s->checks)) != NULL) {
        remove_check(&t, tr_container_of(l, struct tr_cat_check, svc_link));
    }
    persist_delete(cat, "service", s->id);
    service_unlink(s);
    tr_map_del(&cat->services, tr_slice_cstr(s->id));
    service_free(s);
    txn_end(&t);
    return 0;
}

int tr_catalog_deregister(struct tr_reg *reg, struct tr_slice id)
{
    char buf[TR_CAT_MAX_ID + 1];
    if (id.len > TR_CAT_MAX_ID) {
        return -ENOENT;
    }
    memcpy(buf, id.ptr, id.len);
    buf[id.len] = '\0';
    return tr_cat__deregister(reg->catalog, buf);
}

int tr_catalog_check_register(struct tr_reg *reg, json_t *def)
{
    struct tr_catalog *cat = reg->catalog;
    const char *sid = def_str(def, "ServiceID");
    struct tr_cat_service *owner = NULL;
    if (sid[0] != '\0') {
        owner = tr_map_get(&cat->services, tr_slice_cstr(sid));
        if (owner == NULL) {
            json_decref(def);
            return -ENOENT;
        }
    }
    struct txn t;
    txn_init(&t, cat);
    upsert_check(&t, owner, def);
    txn_end(&t);
    return 0;
}

int tr_catalog_check_deregister(struct tr_reg *reg, struct tr_slice id)
{
    struct tr_cat_check *c = tr_catalog_check(reg->catalog, id);
    if (c == NULL) {
        return -ENOENT;
    }
    struct txn t;
    txn_init(&t, reg->catalog);
    remove_check(&t, c);
    txn_end(&t);
    return 0;
}

int tr_catalog_check_update(struct tr_reg *reg, struct tr_slice id, enum tr_check_status status,
                            struct tr_slice output)
{
    struct tr_cat_check *c = tr_catalog_check(reg->catalog, id);
    if (c == NULL) {
        return -ENOENT;
    }
    if (c->type != TR_CHECK_TTL) {
        return -EINVAL;
    }
    tr_cat__health_ttl_reset(reg->catalog, c);
    struct txn t;
    txn_init(&t, reg->catalog);
    apply_status(&t, c, status, output, true);
    txn_end(&t);
    return 0;
}

int tr_catalog_maintenance(struct tr_reg *reg, struct tr_slice service_id, bool enable,
                           struct tr_slice reason)
{
    struct tr_catalog *cat = reg->catalog;
    struct tr_cat_service *s = tr_catalog_service(cat, service_id);
    if (s == NULL) {
        return -ENOENT;
    }
    char id[TR_CAT_MAX_ID + 32];
    snprintf(id, sizeof(id), "_service_maintenance:%s", s->id);
    struct txn t;
    txn_init(&t, cat);
    struct tr_cat_check *c = tr_map_get(&cat->checks, tr_slice_cstr(id));
    if (!enable) {
        if (c != NULL) {
            remove_check(&t, c);
        }
        txn_end(&t);
        return 0;
    }
    json_t *def =
        json_pack("{s:s,s:s,s:s%,s:s,s:s,s:s}", "CheckID", id, "Name", "Service Maintenance Mode",
                  "Notes", reason.ptr ? reason.ptr : "", reason.len, "ServiceID", s->id, "Type",
                  "maintenance", "Status", "critical");
    if (reason.len == 0) {
        json_object_set_new(def, "Notes",
                            json_string("Maintenance mode is enabled for this service, but no "
                                        "reason was provided. This is a default message."));
    }
    upsert_check(&t, s, def);
    txn_end(&t);
    return 0;
}

/* ------------------------------------------------------------ reads */

struct tr_cat_service *tr_catalog_service(const struct tr_catalog *cat, struct tr_slice id)
{
    return tr_map_get(&cat->services, id);
}

struct tr_cat_check *tr_catalog_check(const struct tr_catalog *cat, struct tr_slice id)
{
    return tr_map_get(&cat->checks, id);
}

struct tr_cat_name *tr_catalog_name(const struct tr_catalog *cat, struct tr_slice name)
{
    return tr_map_get(&cat->names, name);
}

uint64_t tr_catalog_service_index(const struct tr_catalog *cat, struct tr_slice name)
{
    const struct tr_cat_name *g = tr_map_get(&cat->names, name);
    return max_u64(max_u64(g ? g->index : 0, cat->node_index), 1);
}

static int by_service_id(const void *a, const void *b)
{
    const struct tr_cat_service *x = *(struct tr_cat_service *const *)a;
    const struct tr_cat_service *y = *(struct tr_cat_service *const *)b;
    return strcmp(x->id, y->id);
}

static int by_check_id(const void *a, const void *b)
{
    const struct tr_cat_check *x = *(struct tr_cat_check *const *)a;
    const struct tr_cat_check *y = *(struct tr_cat_check *const *)b;
    return strcmp(x->id, y->id);
}

static size_t map_values(const struct tr_map *m, void ***out)
{
    *out = m->len > 0 ? tr_xmalloc(m->len * sizeof(void *)) : NULL;
    size_t n = 0;
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(m, &i, &slot)) {
        (*out)[n++] = slot->value;
    }
    return n;
}

size_t tr_catalog_services_sorted(const struct tr_catalog *cat, struct tr_cat_service ***out)
{
    size_t n = map_values(&cat->services, (void ***)out);
    if (n > 1) {
        qsort(*out, n, sizeof(**out), by_service_id);
    }
    return n;
}

size_t tr_catalog_checks_sorted(const struct tr_catalog *cat, struct tr_cat_check ***out)
{
    size_t n = map_values(&cat->checks, (void ***)out);
    if (n > 1) {
        qsort(*out, n, sizeof(**out), by_check_id);
    }
    return n;
}

size_t tr_catalog_instances_sorted(const struct tr_cat_name *group, struct tr_cat_service ***out)
{
    *out = NULL;
    if (group == NULL || group->count == 0) {
        return 0;
    }
    *out = tr_xmalloc(group->count * sizeof(**out));
    size_t n = 0;
    struct tr_list *it;
    for (it = group->instances.next; it != &group->instances; it = it->next) {
        (*out)[n++] = tr_container_of(it, struct tr_cat_service, name_link);
    }
    qsort(*out, n, sizeof(**out), by_service_id);
    return n;
}

static enum tr_check_status worst(const struct tr_list *checks, enum tr_check_status st)
{
    const struct tr_list *it;
    for (it = checks->next; it != checks; it = it->next) {
        const struct tr_cat_check *c = tr_container_of(it, struct tr_cat_check, svc_link);
        if (c->status > st) {
            st = c->status;
        }
    }
    return st;
}

enum tr_check_status tr_catalog_service_health(const struct tr_catalog *cat,
                                               const struct tr_cat_service *s)
{
    return worst(&s->checks, worst(&cat->node_checks, TR_CHECK_PASSING));
}

/* ------------------------------------------------------------ life cycle */

struct tr_catalog *tr_catalog_new(struct tr_reg *reg)
{
    struct tr_catalog *cat = tr_xcalloc(1, sizeof(*cat));
    cat->reg = reg;
    tr_map_init(&cat->services);
    tr_map_init(&cat->checks);
    tr_map_init(&cat->names);
    tr_list_init(&cat->node_checks);
    tr_list_init(&cat->reapable);
    tr_list_init(&cat->restored);
    tr_heap_init(&cat->health.schedule);
    tr_list_init(&cat->health.probes);
    return cat;
}

static void restore_service(struct tr_catalog *cat, const struct tr_reg_record *r, json_t *data)
{
    json_t *def;
    json_t *checks;
    char err[256];
    if (tr_cat_parse_service(data, &def, &checks, err, sizeof(err)) != 0) {
        TR_LOG_WARN("registry", NULL, "skipping stored service \"%.*s\": %s", (int)r->key_len,
                    r->key, err);
        return;
    }
    json_decref(checks);
    struct tr_cat_service *s = tr_xcalloc(1, sizeof(*s));
    s->id = tr_xstrdup(def_str(def, "ID"));
    s->def = def;
    tr_list_init(&s->name_link);
    tr_list_init(&s->checks);
    s->create_index = r->create_index;
    s->modify_index = r->modify_index;
    struct tr_cat_service *old = tr_map_put(&cat->services, tr_slice_cstr(s->id), s);
    TR_ASSERT(old == NULL);
    service_link(cat, s, def_str(def, "Name"));
}

static void restore_check(struct tr_catalog *cat, const struct tr_reg_record *r, json_t *data)
{
    struct tr_cat_check_ctx ctx = {.stored = true};
    json_t *def;
    char err[256];
    enum tr_check_status st = TR_CHECK_CRITICAL;
    if (tr_cat_parse_check(json_object_get(data, "Definition"), &ctx, &def, err, sizeof(err)) !=
            0 ||
        tr_check_status_parse(tr_slice_cstr(def_str(data, "Status")), &st) != 0) {
        TR_LOG_WARN("registry", NULL, "skipping stored check \"%.*s\": %s", (int)r->key_len, r->key,
                    err);
        return;
    }
    struct tr_cat_check *c = check_new(def);
    c->status = st;
    check_set_output(c, tr_slice_cstr(def_str(data, "Output")));
    c->create_index = r->create_index;
    c->modify_index = r->modify_index;
    tr_map_put(&cat->checks, tr_slice_cstr(c->id), c);
    tr_list_insert_tail(&cat->restored, &c->svc_link);
}

static void restore_index(struct tr_catalog *cat, const struct tr_reg_record *r)
{
    char key[TR_CAT_MAX_ID + 16];
    snprintf(key, sizeof(key), "%.*s", (int)r->key_len, r->key);
    uint64_t idx = r->modify_index;
    if (strncmp(key, "svc:", 4) == 0) {
        struct tr_cat_name *g = name_get(cat, key + 4, true);
        g->index = max_u64(g->index, idx);
    } else if (strcmp(key, "node") == 0) {
        cat->node_index = max_u64(cat->node_index, idx);
    } else if (strcmp(key, "catalog") == 0) {
        cat->catalog_index = max_u64(cat->catalog_index, idx);
    } else if (strcmp(key, "all") == 0) {
        cat->all_index = max_u64(cat->all_index, idx);
    }
}

void tr_catalog_restore(struct tr_reg *reg, const struct tr_reg_record *r)
{
    struct tr_catalog *cat = reg->catalog;
    if (strcmp(r->obj_kind, "index") == 0) {
        restore_index(cat, r);
        return;
    }
    json_error_t jerr;
    json_t *data = json_loadb(r->data ? r->data : "", r->data_len, 0, &jerr);
    if (data == NULL) {
        TR_LOG_WARN("registry", NULL, "skipping stored %s \"%.*s\": %s", r->obj_kind,
                    (int)r->key_len, r->key, jerr.text);
        return;
    }
    if (strcmp(r->obj_kind, "service") == 0) {
        restore_service(cat, r, data);
    } else if (strcmp(r->obj_kind, "check") == 0) {
        restore_check(cat, r, data);
    }
    json_decref(data);
}

void tr_catalog_loaded(struct tr_reg *reg)
{
    struct tr_catalog *cat = reg->catalog;
    struct tr_list *l;
    while ((l = tr_list_first(&cat->restored)) != NULL) {
        tr_list_remove(l);
        struct tr_cat_check *c = tr_container_of(l, struct tr_cat_check, svc_link);
        const char *sid = def_str(c->def, "ServiceID");
        struct tr_cat_service *owner = NULL;
        if (sid[0] != '\0') {
            owner = tr_map_get(&cat->services, tr_slice_cstr(sid));
            if (owner == NULL) {
                TR_LOG_WARN("registry", NULL,
                            "dropping stored check \"%s\" of unknown service "
                            "\"%s\"",
                            c->id, sid);
                tr_map_del(&cat->checks, tr_slice_cstr(c->id));
                check_free(c);
                continue;
            }
        }
        check_attach(cat, c, owner);
        struct tr_cat_name *g = check_owner(c);
        if (g != NULL) {
            g->index = max_u64(g->index, c->modify_index);
        } else {
            cat->node_index = max_u64(cat->node_index, c->modify_index);
        }
        cat->all_index = max_u64(cat->all_index, c->modify_index);
    }
    /* The stored indexes are authoritative; the objects only guard against an older
     * store that lacked them, so that no index a client saw can go backwards. */
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&cat->services, &i, &slot)) {
        struct tr_cat_service *s = slot->value;
        s->group->index = max_u64(s->group->index, s->modify_index);
        cat->catalog_index = max_u64(cat->catalog_index, s->modify_index);
        cat->all_index = max_u64(cat->all_index, s->modify_index);
    }
}

void tr_catalog_start(struct tr_reg *reg)
{
    tr_cat__health_start(reg->catalog);
}

void tr_catalog_stop(struct tr_reg *reg)
{
    tr_cat__health_stop(reg->catalog);
}

void tr_catalog_free(struct tr_reg *reg)
{
    struct tr_catalog *cat = reg->catalog;
    if (cat == NULL) {
        return;
    }
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&cat->checks, &i, &slot)) {
        check_free(slot->value);
    }
    i = 0;
    while (tr_map_next(&cat->services, &i, &slot)) {
        service_free(slot->value);
    }
    i = 0;
    while (tr_map_next(&cat->names, &i, &slot)) {
        struct tr_cat_name *g = slot->value;
        tr_free_null(&g->name);
        tr_free_null(&g);
    }
    tr_map_dispose(&cat->checks);
    tr_map_dispose(&cat->services);
    tr_map_dispose(&cat->names);
    tr_heap_dispose(&cat->health.schedule);
    tr_free_null(&reg->catalog);
}
