/* SPDX-License-Identifier: Apache-2.0 */
/* Consul's catalog and health API (/v1/catalog, /v1/health), run on the registry
 * thread. Every read blocks (?index=&wait=) on the narrowest topic that covers it: a
 * service's own "svc:<name>" for /v1/catalog/service and /v1/health/service, the
 * catalog topic for the service list, the health topic for node- and state-wide
 * views. X-Consul-Index is the matching index, never below 1. */
#include "server/consul.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#define MAX_TAG_PARAMS 32

/* The request's ?tag= values, all of which an instance must carry. */
struct tag_query {
    struct tr_slice tags[MAX_TAG_PARAMS];
    size_t n;
};

static bool get_tags(struct tr_srv_call *c, struct tag_query *q)
{
    q->n = tr_srv_query_all(c, "tag", q->tags, MAX_TAG_PARAMS);
    if (q->n > MAX_TAG_PARAMS) {
        tr_srv_reply_error(c, TR_E_BAD_PARAM, "more than %d tag parameters", MAX_TAG_PARAMS);
        return false;
    }
    return true;
}

static bool has_tags(const struct tr_cat_service *s, const struct tag_query *q)
{
    const json_t *tags = tr_cat_service_tags(s);
    for (size_t i = 0; i < q->n; i++) {
        bool found = false;
        size_t k;
        json_t *t;
        json_array_foreach(tags, k, t)
        {
            found = found ||
                    tr_slice_eq(q->tags[i], tr_slice(json_string_value(t), json_string_length(t)));
        }
        if (!found) {
            return false;
        }
    }
    return true;
}

static bool missing_name(struct tr_srv_call *c, const char *what)
{
    if (c->param.len > 0) {
        return false;
    }
    tr_srv_reply_error(c, TR_E_BAD_PARAM, "missing %s", what);
    return true;
}

static bool is_our_node(const struct tr_reg *reg, struct tr_slice node)
{
    return tr_slice_eq(node, tr_slice_cstr(reg->node_name));
}

/* Common front of every read: ?dc, then ?filter against `roots`. Returns false after
 * setting an error answer. */
static bool read_prologue(struct tr_reg *reg, struct tr_srv_call *c, const char *const *roots,
                          struct tr_consul_filter **f)
{
    *f = NULL;
    if (!tr_consul_dc_ok(reg, c)) {
        return false;
    }
    return tr_consul_filter_param(c, roots, f) >= 0;
}

static enum tr_call_result block_or_drop(struct tr_reg *reg, struct tr_srv_call *c,
                                         const char *topic, uint64_t index,
                                         struct tr_consul_filter **f)
{
    enum tr_call_result r = tr_srv_block(reg, c, topic, index);
    if (r != TR_CALL_REPLY) {
        tr_consul_filter_free(*f);
        *f = NULL;
    }
    return r;
}

/* ------------------------------------------------------------ /v1/catalog */

static int by_name(const void *a, const void *b)
{
    const struct tr_cat_name *x = *(struct tr_cat_name *const *)a;
    const struct tr_cat_name *y = *(struct tr_cat_name *const *)b;
    return strcmp(x->name, y->name);
}

static void add_tags(json_t *set, const json_t *tags)
{
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t)
    {
        bool seen = false;
        size_t k;
        json_t *u;
        json_array_foreach(set, k, u)
        {
            seen = seen || json_equal(t, u);
        }
        if (!seen) {
            json_array_append(set, t);
        }
    }
}

static enum tr_call_result catalog_services(struct tr_reg *reg, struct tr_srv_call *c)
{
    struct tr_consul_filter *f;
    if (!read_prologue(reg, c, tr_consul_fields_service_node, &f)) {
        return TR_CALL_REPLY;
    }
    struct tr_catalog *cat = reg->catalog;
    enum tr_call_result r = block_or_drop(reg, c, TR_TOPIC_CATALOG, cat->catalog_index, &f);
    if (r != TR_CALL_REPLY) {
        return r;
    }
    bool node_ok = tr_consul_node_meta_ok(c);
    struct tr_cat_name **names = tr_xmalloc((cat->names.len + 1) * sizeof(*names));
    size_t n = 0;
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&cat->names, &i, &slot)) {
        struct tr_cat_name *g = slot->value;
        if (g->count > 0 && node_ok) {
            names[n++] = g;
        }
    }
    qsort(names, n, sizeof(*names), by_name);
    json_t *o = json_object();
    for (i = 0; i < n; i++) {
        json_t *tags = NULL;
        struct tr_list *it;
        for (it = names[i]->instances.next; it != &names[i]->instances; it = it->next) {
            struct tr_cat_service *s = tr_container_of(it, struct tr_cat_service, name_link);
            if (f != NULL) {
                json_t *sn = tr_consul_service_node(reg, s);
                bool keep = tr_consul_filter_match(f, sn);
                json_decref(sn);
                if (!keep) {
                    continue;
                }
            }
            tags = tags ? tags : json_array();
            add_tags(tags, tr_cat_service_tags(s));
        }
        if (tags != NULL) {
            json_object_set_new(o, names[i]->name, tags);
        }
    }
    tr_free_null(&names);
    tr_consul_filter_free(f);
    return tr_srv_reply_json(c, 200, o);
}

static enum tr_call_result catalog_service(struct tr_reg *reg, struct tr_srv_call *c)
{
    struct tr_consul_filter *f;
    struct tag_query tq;
    if (missing_name(c, "service name") || !get_tags(c, &tq) ||
        !read_prologue(reg, c, tr_consul_fields_service_node, &f)) {
        return TR_CALL_REPLY;
    }
    char topic[TR_CAT_MAX_ID + 16];
    snprintf(topic, sizeof(topic), "svc:%.*s", TR_SLICE_FMT(c->param));
    uint64_t index = tr_catalog_service_index(reg->catalog, c->param);
    enum tr_call_result r = block_or_drop(reg, c, topic, index, &f);
    if (r != TR_CALL_REPLY) {
        return r;
    }
    struct tr_cat_service **inst;
    size_t n = tr_catalog_instances_sorted(tr_catalog_name(reg->catalog, c->param), &inst);
    bool node_ok = tr_consul_node_meta_ok(c);
    json_t *arr = json_array();
    for (size_t i = 0; i < n && node_ok; i++) {
        if (!has_tags(inst[i], &tq)) {
            continue;
        }
        json_t *sn = tr_consul_service_node(reg, inst[i]);
        if (tr_consul_filter_match(f, sn)) {
            json_array_append_new(arr, sn);
        } else {
            json_decref(sn);
        }
    }
    tr_free_null(&inst);
    tr_consul_filter_free(f);
    return tr_srv_reply_json(c, 200, arr);
}

static enum tr_call_result catalog_nodes(struct tr_reg *reg, struct tr_srv_call *c)
{
    struct tr_consul_filter *f;
    if (!read_prologue(reg, c, tr_consul_fields_node, &f)) {
        return TR_CALL_REPLY;
    }
    enum tr_call_result r =
        block_or_drop(reg, c, TR_TOPIC_CATALOG, reg->catalog->catalog_index, &f);
    if (r != TR_CALL_REPLY) {
        return r;
    }
    json_t *arr = json_array();
    json_t *node = tr_consul_node(reg);
    if (tr_consul_node_meta_ok(c) && tr_consul_filter_match(f, node)) {
        json_array_append(arr, node);
    }
    json_decref(node);
    tr_consul_filter_free(f);
    return tr_srv_reply_json(c, 200, arr);
}

static enum tr_call_result catalog_node(struct tr_reg *reg, struct tr_srv_call *c)
{
    if (missing_name(c, "node name") || !tr_consul_dc_ok(reg, c)) {
        return TR_CALL_REPLY;
    }
    enum tr_call_result r = tr_srv_block(reg, c, TR_TOPIC_HEALTH, reg->catalog->all_index);
    if (r != TR_CALL_REPLY) {
        return r;
    }
    if (!is_our_node(reg, c->param)) {
        /* Consul answers an unknown node with a null body. */
        return tr_srv_reply_json(c, 200, json_null());
    }
    struct tr_cat_service **all;
    size_t n = tr_catalog_services_sorted(reg->catalog, &all);
    json_t *services = json_object();
    for (size_t i = 0; i < n; i++) {
        json_object_set_new(services, all[i]->id, tr_consul_health_service(all[i]));
    }
    tr_free_null(&all);
    return tr_srv_reply_json(
        c, 200, json_pack("{s:o,s:o}", "Node", tr_consul_node(reg), "Services", services));
}

static enum tr_call_result catalog_datacenters(struct tr_reg *reg, struct tr_srv_call *c)
{
    json_t *arr = json_array();
    json_array_append_new(arr, json_string(reg->datacenter));
    return tr_srv_reply_json(c, 200, arr);
}

/* ------------------------------------------------------------ /v1/health */

static enum tr_call_result health_service(struct tr_reg *reg, struct tr_srv_call *c)
{
    struct tr_consul_filter *f;
    struct tag_query tq;
    if (missing_name(c, "service name") || !get_tags(c, &tq) ||
        !read_prologue(reg, c, tr_consul_fields_check_service_node, &f)) {
        return TR_CALL_REPLY;
    }
    char topic[TR_CAT_MAX_ID + 16];
    snprintf(topic, sizeof(topic), "svc:%.*s", TR_SLICE_FMT(c->param));
    struct tr_catalog *cat = reg->catalog;
    enum tr_call_result r =
        block_or_drop(reg, c, topic, tr_catalog_service_index(cat, c->param), &f);
    if (r != TR_CALL_REPLY) {
        return r;
    }
    /* ?passing (the Go client sends passing=1): only instances whose every check,
     * node-level ones included, is passing. */
    bool passing = tr_srv_query_flag(c, "passing");
    bool node_ok = tr_consul_node_meta_ok(c);
    struct tr_cat_service **inst;
    size_t n = tr_catalog_instances_sorted(tr_catalog_name(cat, c->param), &inst);
    json_t *arr = json_array();
    for (size_t i = 0; i < n && node_ok; i++) {
        if (!has_tags(inst[i], &tq) ||
            (passing && tr_catalog_service_health(cat, inst[i]) != TR_CHECK_PASSING)) {
            continue;
        }
        json_t *e = tr_consul_check_service_node(reg, inst[i]);
        if (tr_consul_filter_match(f, e)) {
            json_array_append_new(arr, e);
        } else {
            json_decref(e);
        }
    }
    tr_free_null(&inst);
    tr_consul_filter_free(f);
    return tr_srv_reply_json(c, 200, arr);
}

static void append_filtered(json_t *arr, json_t *check, const struct tr_consul_filter *f)
{
    if (tr_consul_filter_match(f, check)) {
        json_array_append_new(arr, check);
    } else {
        json_decref(check);
    }
}

static enum tr_call_result health_checks(struct tr_reg *reg, struct tr_srv_call *c)
{
    struct tr_consul_filter *f;
    if (missing_name(c, "service name") ||
        !read_prologue(reg, c, tr_consul_fields_health_check, &f)) {
        return TR_CALL_REPLY;
    }
    char topic[TR_CAT_MAX_ID + 16];
    snprintf(topic, sizeof(topic), "svc:%.*s", TR_SLICE_FMT(c->param));
    struct tr_catalog *cat = reg->catalog;
    enum tr_call_result r =
        block_or_drop(reg, c, topic, tr_catalog_service_index(cat, c->param), &f);
    if (r != TR_CALL_REPLY) {
        return r;
    }
    struct tr_cat_service **inst;
    size_t n = tr_catalog_instances_sorted(tr_catalog_name(cat, c->param), &inst);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        struct tr_list *it;
        for (it = inst[i]->checks.next; it != &inst[i]->checks; it = it->next) {
            const struct tr_cat_check *chk = tr_container_of(it, struct tr_cat_check, svc_link);
            append_filtered(arr, tr_consul_check(reg, chk), f);
        }
    }
    tr_free_null(&inst);
    tr_consul_filter_free(f);
    return tr_srv_reply_json(c, 200, arr);
}

/* Every check on the node (serfHealth first) whose status is `want` (-1: any). */
static json_t *node_checks(struct tr_reg *reg, int want, const struct tr_consul_filter *f)
{
    json_t *arr = json_array();
    if (want < 0 || want == TR_CHECK_PASSING) {
        append_filtered(arr, tr_consul_serf_check(reg), f);
    }
    struct tr_cat_check **all;
    size_t n = tr_catalog_checks_sorted(reg->catalog, &all);
    for (size_t i = 0; i < n; i++) {
        if (want < 0 || (int)all[i]->status == want) {
            append_filtered(arr, tr_consul_check(reg, all[i]), f);
        }
    }
    tr_free_null(&all);
    return arr;
}

static enum tr_call_result health_state(struct tr_reg *reg, struct tr_srv_call *c)
{
    int want = -1;
    if (!tr_slice_eq(c->param, TR_SLICE_LIT("any"))) {
        enum tr_check_status st;
        if (tr_check_status_parse(c->param, &st) != 0) {
            return tr_srv_reply_error(c, TR_E_BAD_PARAM,
                                      "invalid state \"%.*s\": expected any, "
                                      "passing, warning or critical",
                                      TR_SLICE_FMT(c->param));
        }
        want = (int)st;
    }
    struct tr_consul_filter *f;
    if (!read_prologue(reg, c, tr_consul_fields_health_check, &f)) {
        return TR_CALL_REPLY;
    }
    enum tr_call_result r = block_or_drop(reg, c, TR_TOPIC_HEALTH, reg->catalog->all_index, &f);
    if (r != TR_CALL_REPLY) {
        return r;
    }
    json_t *arr = tr_consul_node_meta_ok(c) ? node_checks(reg, want, f) : json_array();
    tr_consul_filter_free(f);
    return tr_srv_reply_json(c, 200, arr);
}

static enum tr_call_result health_node(struct tr_reg *reg, struct tr_srv_call *c)
{
    struct tr_consul_filter *f;
    if (missing_name(c, "node name") || !read_prologue(reg, c, tr_consul_fields_health_check, &f)) {
        return TR_CALL_REPLY;
    }
    enum tr_call_result r = block_or_drop(reg, c, TR_TOPIC_HEALTH, reg->catalog->all_index, &f);
    if (r != TR_CALL_REPLY) {
        return r;
    }
    json_t *arr = is_our_node(reg, c->param) ? node_checks(reg, -1, f) : json_array();
    tr_consul_filter_free(f);
    return tr_srv_reply_json(c, 200, arr);
}

int tr_consul_catalog_routes(struct tr_router *r)
{
    int rc = tr_consul_agent_routes(r);
    rc |= tr_srv_route(r, "GET", "/v1/catalog/services", catalog_services);
    rc |= tr_srv_route(r, "GET", "/v1/catalog/service/*name", catalog_service);
    rc |= tr_srv_route(r, "GET", "/v1/catalog/nodes", catalog_nodes);
    rc |= tr_srv_route(r, "GET", "/v1/catalog/node/*node", catalog_node);
    rc |= tr_srv_route(r, "GET", "/v1/catalog/datacenters", catalog_datacenters);
    rc |= tr_srv_route(r, "GET", "/v1/health/service/*name", health_service);
    rc |= tr_srv_route(r, "GET", "/v1/health/checks/*name", health_checks);
    rc |= tr_srv_route(r, "GET", "/v1/health/state/*state", health_state);
    rc |= tr_srv_route(r, "GET", "/v1/health/node/*node", health_node);
    return rc;
}
