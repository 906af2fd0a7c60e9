/* SPDX-License-Identifier: Apache-2.0 */
/* JSON shared by the Consul API handlers: the response shapes, named after the Go
 * structs clients decode them into (field names and types must match), and the
 * request helpers for ?dc, ?filter and ?node-meta. */
#include "server/consul.h"

#include <stdio.h>
#include <string.h>

#include "core/base64.h"
#include "core/mem.h"

#define MAX_NODE_META_PARAMS 16

const char *const tr_consul_fields_node[] = {
    "ID",   "Node",        "Address",     "Datacenter", "TaggedAddresses",
    "Meta", "CreateIndex", "ModifyIndex", NULL,
};
const char *const tr_consul_fields_agent_service[] = {
    "ID",      "Service",           "Tags",       "Meta", "Port", "Address", "TaggedAddresses",
    "Weights", "EnableTagOverride", "Datacenter", "Kind", NULL,
};
const char *const tr_consul_fields_service_node[] = {
    "ID",
    "Node",
    "Address",
    "Datacenter",
    "TaggedAddresses",
    "NodeMeta",
    "ServiceKind",
    "ServiceID",
    "ServiceName",
    "ServiceTags",
    "ServiceAddress",
    "ServiceTaggedAddresses",
    "ServiceWeights",
    "ServiceMeta",
    "ServicePort",
    "ServiceEnableTagOverride",
    "CreateIndex",
    "ModifyIndex",
    NULL,
};
const char *const tr_consul_fields_check_service_node[] = {"Node", "Service", "Checks", NULL};
const char *const tr_consul_fields_health_check[] = {
    "Node",     "CheckID",   "Name",        "Status",      "Notes",
    "Output",   "ServiceID", "ServiceName", "ServiceTags", "Type",
    "Interval", "Timeout",   "CreateIndex", "ModifyIndex", NULL,
};

json_t *tr_consul_base64(const char *p, size_t n)
{
    struct tr_buf b;
    tr_buf_init(&b);
    tr_base64_encode(&b, p, n);
    json_t *s = json_stringn(tr_buf_data(&b), b.len);
    tr_buf_dispose(&b);
    return s;
}

/* ------------------------------------------------------------ node */

static json_t *node_tagged_addresses(const struct tr_reg *reg)
{
    return json_pack("{s:s,s:s,s:s,s:s}", "lan", reg->address, "lan_ipv4", reg->address, "wan",
                     reg->address, "wan_ipv4", reg->address);
}

static json_t *node_meta(void)
{
    return json_pack("{s:s}", "consul-network-segment", "");
}

json_t *tr_consul_node(const struct tr_reg *reg)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:i,s:i}", "ID", reg->node_id, "Node",
                     reg->node_name, "Address", reg->address, "Datacenter", reg->datacenter,
                     "TaggedAddresses", node_tagged_addresses(reg), "Meta", node_meta(),
                     "CreateIndex", 1, "ModifyIndex", 1);
}

/* ------------------------------------------------------------ services */

static json_t *def_get(const struct tr_cat_service *s, const char *key)
{
    return json_object_get(s->def, key);
}

static void set_tagged(json_t *o, const char *key, const struct tr_cat_service *s)
{
    json_t *t = def_get(s, "TaggedAddresses");
    if (json_object_size(t) > 0) {
        json_object_set(o, key, t);
    }
}

json_t *tr_consul_agent_service(const struct tr_reg *reg, const struct tr_cat_service *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "ID", json_string(s->id));
    json_object_set_new(o, "Service", json_string(tr_cat_service_name(s)));
    json_object_set(o, "Tags", def_get(s, "Tags"));
    json_object_set(o, "Meta", def_get(s, "Meta"));
    json_object_set(o, "Port", def_get(s, "Port"));
    json_object_set(o, "Address", def_get(s, "Address"));
    set_tagged(o, "TaggedAddresses", s);
    json_object_set(o, "Weights", def_get(s, "Weights"));
    json_object_set(o, "EnableTagOverride", def_get(s, "EnableTagOverride"));
    json_object_set_new(o, "Datacenter", json_string(reg->datacenter));
    return o;
}

json_t *tr_consul_health_service(const struct tr_cat_service *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "ID", json_string(s->id));
    json_object_set_new(o, "Service", json_string(tr_cat_service_name(s)));
    json_object_set(o, "Tags", def_get(s, "Tags"));
    json_object_set(o, "Address", def_get(s, "Address"));
    set_tagged(o, "TaggedAddresses", s);
    json_object_set(o, "Meta", def_get(s, "Meta"));
    json_object_set(o, "Port", def_get(s, "Port"));
    json_object_set(o, "Weights", def_get(s, "Weights"));
    json_object_set(o, "EnableTagOverride", def_get(s, "EnableTagOverride"));
    json_object_set_new(o, "CreateIndex", json_integer((json_int_t)s->create_index));
    json_object_set_new(o, "ModifyIndex", json_integer((json_int_t)s->modify_index));
    return o;
}

json_t *tr_consul_service_node(const struct tr_reg *reg, const struct tr_cat_service *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "ID", json_string(reg->node_id));
    json_object_set_new(o, "Node", json_string(reg->node_name));
    json_object_set_new(o, "Address", json_string(reg->address));
    json_object_set_new(o, "Datacenter", json_string(reg->datacenter));
    json_object_set_new(o, "TaggedAddresses", node_tagged_addresses(reg));
    json_object_set_new(o, "NodeMeta", node_meta());
    json_object_set_new(o, "ServiceKind", json_string(""));
    json_object_set_new(o, "ServiceID", json_string(s->id));
    json_object_set_new(o, "ServiceName", json_string(tr_cat_service_name(s)));
    json_object_set(o, "ServiceTags", def_get(s, "Tags"));
    json_object_set(o, "ServiceAddress", def_get(s, "Address"));
    set_tagged(o, "ServiceTaggedAddresses", s);
    json_object_set(o, "ServiceWeights", def_get(s, "Weights"));
    json_object_set(o, "ServiceMeta", def_get(s, "Meta"));
    json_object_set(o, "ServicePort", def_get(s, "Port"));
    json_object_set(o, "ServiceEnableTagOverride", def_get(s, "EnableTagOverride"));
    json_object_set_new(o, "ServiceProxy", json_object());
    json_object_set_new(o, "ServiceConnect", json_object());
    json_object_set_new(o, "CreateIndex", json_integer((json_int_t)s->create_index));
    json_object_set_new(o, "ModifyIndex", json_integer((json_int_t)s->modify_index));
    return o;
}

/* ------------------------------------------------------------ checks */

static const char *const definition_fields[] = {
    "HTTP", "Method",   "Header",  "Body", "TLSSkipVerify",
    "TCP",  "Interval", "Timeout", "TTL",  "DeregisterCriticalServiceAfter",
};

static json_t *check_json(const struct tr_reg *reg, const char *id, const char *name,
                          const char *status, const char *notes, const char *output,
                          const struct tr_cat_service *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "Node", json_string(reg->node_name));
    json_object_set_new(o, "CheckID", json_string(id));
    json_object_set_new(o, "Name", json_string(name));
    json_object_set_new(o, "Status", json_string(status));
    json_object_set_new(o, "Notes", json_string(notes));
    json_object_set_new(o, "Output", json_string(output));
    json_object_set_new(o, "ServiceID", json_string(s ? s->id : ""));
    json_object_set_new(o, "ServiceName", json_string(s ? tr_cat_service_name(s) : ""));
    if (s != NULL) {
        json_object_set(o, "ServiceTags", def_get(s, "Tags"));
    } else {
        json_object_set_new(o, "ServiceTags", json_array());
    }
    return o;
}

json_t *tr_consul_check(const struct tr_reg *reg, const struct tr_cat_check *c)
{
    const json_t *def = c->def;
    json_t *o = check_json(reg, c->id, json_string_value(json_object_get(def, "Name")),
                           tr_check_status_name(c->status),
                           json_string_value(json_object_get(def, "Notes")), c->output, c->service);
    json_object_set_new(o, "Type",
                        json_string(c->type == TR_CHECK_MAINT ? "" : tr_check_type_name(c->type)));
    const char *interval = json_string_value(json_object_get(def, "Interval"));
    const char *timeout = json_string_value(json_object_get(def, "Timeout"));
    json_object_set_new(o, "Interval", json_string(interval ? interval : ""));
    json_object_set_new(o, "Timeout", json_string(timeout ? timeout : ""));
    json_object_set_new(o, "ExposedPort", json_integer(0));
    json_t *d = json_object();
    for (size_t i = 0; i < TR_ARRAY_LEN(definition_fields); i++) {
        json_t *v = json_object_get(def, definition_fields[i]);
        if (v != NULL) {
            json_object_set(d, definition_fields[i], v);
        }
    }
    json_object_set_new(o, "Definition", d);
    json_object_set_new(o, "CreateIndex", json_integer((json_int_t)c->create_index));
    json_object_set_new(o, "ModifyIndex", json_integer((json_int_t)c->modify_index));
    return o;
}

json_t *tr_consul_serf_check(const struct tr_reg *reg)
{
    json_t *o = check_json(reg, "serfHealth", "Serf Health Status", "passing", "",
                           "Agent alive and reachable", NULL);
    json_object_set_new(o, "Type", json_string(""));
    json_object_set_new(o, "Interval", json_string(""));
    json_object_set_new(o, "Timeout", json_string(""));
    json_object_set_new(o, "ExposedPort", json_integer(0));
    json_object_set_new(o, "Definition", json_object());
    json_object_set_new(o, "CreateIndex", json_integer(1));
    json_object_set_new(o, "ModifyIndex", json_integer(1));
    return o;
}

static void append_checks(json_t *arr, const struct tr_reg *reg, const struct tr_list *checks)
{
    const struct tr_list *it;
    for (it = checks->next; it != checks; it = it->next) {
        const struct tr_cat_check *c = tr_container_of(it, struct tr_cat_check, svc_link);
        json_array_append_new(arr, tr_consul_check(reg, c));
    }
}

json_t *tr_consul_check_service_node(const struct tr_reg *reg, const struct tr_cat_service *s)
{
    json_t *checks = json_array();
    json_array_append_new(checks, tr_consul_serf_check(reg));
    append_checks(checks, reg, &reg->catalog->node_checks);
    append_checks(checks, reg, &s->checks);
    return json_pack("{s:o,s:o,s:o}", "Node", tr_consul_node(reg), "Service",
                     tr_consul_health_service(s), "Checks", checks);
}

/* ------------------------------------------------------------ request helpers */

bool tr_consul_dc_ok(const struct tr_reg *reg, struct tr_srv_call *c)
{
    struct tr_slice dc;
    if (!tr_srv_query(c, "dc", &dc) || dc.len == 0 ||
        tr_slice_eq(dc, tr_slice_cstr(reg->datacenter))) {
        return true;
    }
    /* Consul's answer for a datacenter it cannot reach. */
    tr_srv_reply_error(c, TR_E_INTERNAL, "No path to datacenter \"%.*s\"", TR_SLICE_FMT(dc));
    return false;
}

int tr_consul_filter_param(struct tr_srv_call *c, const char *const *roots,
                           struct tr_consul_filter **f)
{
    struct tr_slice expr;
    *f = NULL;
    if (!tr_srv_query(c, "filter", &expr) || tr_slice_trim(expr).len == 0) {
        return 0;
    }
    char err[256];
    if (tr_consul_filter_parse(expr, roots, f, err, sizeof(err)) != 0) {
        tr_srv_reply_error(c, TR_E_BAD_PARAM, "unsupported or invalid filter \"%.*s\": %s",
                           expr.len > 200 ? 200 : (int)expr.len, expr.ptr, err);
        return -1;
    }
    return 1;
}

bool tr_consul_node_meta_ok(struct tr_srv_call *c)
{
    struct tr_slice pairs[MAX_NODE_META_PARAMS];
    size_t n = tr_srv_query_all(c, "node-meta", pairs, MAX_NODE_META_PARAMS);
    for (size_t i = 0; i < n && i < MAX_NODE_META_PARAMS; i++) {
        /* The node's only meta is consul-network-segment="" (as Consul's). */
        if (!tr_slice_eq(pairs[i], TR_SLICE_LIT("consul-network-segment:")) &&
            !tr_slice_eq(pairs[i], TR_SLICE_LIT("consul-network-segment"))) {
            return false;
        }
    }
    return true;
}
