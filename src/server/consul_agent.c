/* SPDX-License-Identifier: Apache-2.0 */
/* Consul's agent API (/v1/agent), run on the registry thread: service and check
 * registration, TTL updates, maintenance mode, and the agent's own view (self,
 * services, checks, members). Writes answer once durable (TR_CALL_COMMIT); malformed
 * input gets a 400 naming the field, unknown IDs a 404, as Consul's. */
#include "server/consul.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#define CONSUL_API_VERSION "1.17.0" /* the Consul release whose API this matches */

static bool writes_refused(const struct tr_reg *reg, struct tr_srv_call *c)
{
    if (!reg->persist_failed) {
        return false;
    }
    tr_srv_reply_error(c, TR_E_UNAVAILABLE,
                       "writes are refused: persisting to disk failed (see server log)");
    return true;
}

static enum tr_call_result ok_committed(struct tr_srv_call *c)
{
    tr_srv_reply_raw(c, 200, TR_SLICE_LIT("application/json"), TR_SLICE_NULL);
    return TR_CALL_COMMIT;
}

/* ------------------------------------------------------------ self, members */

static json_t *member_json(const struct tr_reg *reg)
{
    return json_pack("{s:s,s:s,s:i,s:{s:s,s:s,s:s,s:s},s:i}", "Name", reg->node_name, "Addr",
                     reg->address, "Port", 8301, "Tags", "dc", reg->datacenter, "role", "consul",
                     "build", CONSUL_API_VERSION, "id", reg->node_id, "Status", 1);
}

static enum tr_call_result agent_self(struct tr_reg *reg, struct tr_srv_call *c)
{
    char services[24];
    char checks[24];
    snprintf(services, sizeof(services), "%zu", reg->catalog->services.len);
    snprintf(checks, sizeof(checks), "%zu", reg->catalog->checks.len);
    /* Every top-level member is an object: the Go client decodes the body as
     * map[string]map[string]interface{}. */
    json_t *o =
        json_pack("{s:{s:s,s:s,s:s,s:s,s:b,s:s,s:s},s:o,s:{s:s},s:{s:{s:s,s:s},s:{s:s}}}", "Config",
                  "Datacenter", reg->datacenter, "PrimaryDatacenter", reg->datacenter, "NodeName",
                  reg->node_name, "NodeID", reg->node_id, "Server", 1, "Revision", "", "Version",
                  CONSUL_API_VERSION, "Member", member_json(reg), "Meta", "consul-network-segment",
                  "", "Stats", "agent", "services", services, "checks", checks, "trellis",
                  "version", TRELLIS_VERSION);
    return tr_srv_reply_json(c, 200, o);
}

static enum tr_call_result agent_members(struct tr_reg *reg, struct tr_srv_call *c)
{
    json_t *arr = json_array();
    json_array_append_new(arr, member_json(reg));
    return tr_srv_reply_json(c, 200, arr);
}

/* ------------------------------------------------------------ reads */

static enum tr_call_result agent_services(struct tr_reg *reg, struct tr_srv_call *c)
{
    struct tr_consul_filter *f;
    if (tr_consul_filter_param(c, tr_consul_fields_agent_service, &f) < 0) {
        return TR_CALL_REPLY;
    }
    enum tr_call_result r = tr_srv_block(reg, c, TR_TOPIC_HEALTH, reg->catalog->all_index);
    if (r != TR_CALL_REPLY) {
        tr_consul_filter_free(f);
        return r;
    }
    struct tr_cat_service **all;
    size_t n = tr_catalog_services_sorted(reg->catalog, &all);
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        json_t *s = tr_consul_agent_service(reg, all[i]);
        if (tr_consul_filter_match(f, s)) {
            json_object_set_new(o, all[i]->id, s);
        } else {
            json_decref(s);
        }
    }
    tr_free_null(&all);
    tr_consul_filter_free(f);
    return tr_srv_reply_json(c, 200, o);
}

static enum tr_call_result agent_service(struct tr_reg *reg, struct tr_srv_call *c)
{
    struct tr_cat_service *s = tr_catalog_service(reg->catalog, c->param);
    if (s == NULL) {
        return tr_srv_reply_error(c, TR_E_NOT_FOUND, "unknown service ID \"%.*s\"",
                                  TR_SLICE_FMT(c->param));
    }
    char topic[TR_CAT_MAX_ID + 16];
    tr_reg_topic_service(topic, sizeof(topic), tr_cat_service_name(s));
    uint64_t index = tr_catalog_service_index(reg->catalog, tr_slice_cstr(s->group->name));
    enum tr_call_result r = tr_srv_block(reg, c, topic, index);
    if (r != TR_CALL_REPLY) {
        return r;
    }
    /* The wait may have ended with the service gone. */
    s = tr_catalog_service(reg->catalog, c->param);
    if (s == NULL) {
        return tr_srv_reply_error(c, TR_E_NOT_FOUND, "unknown service ID \"%.*s\"",
                                  TR_SLICE_FMT(c->param));
    }
    return tr_srv_reply_json(c, 200, tr_consul_agent_service(reg, s));
}

static enum tr_call_result agent_checks(struct tr_reg *reg, struct tr_srv_call *c)
{
    struct tr_consul_filter *f;
    if (tr_consul_filter_param(c, tr_consul_fields_health_check, &f) < 0) {
        return TR_CALL_REPLY;
    }
    enum tr_call_result r = tr_srv_block(reg, c, TR_TOPIC_HEALTH, reg->catalog->all_index);
    if (r != TR_CALL_REPLY) {
        tr_consul_filter_free(f);
        return r;
    }
    struct tr_cat_check **all;
    size_t n = tr_catalog_checks_sorted(reg->catalog, &all);
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        json_t *j = tr_consul_check(reg, all[i]);
        if (tr_consul_filter_match(f, j)) {
            json_object_set_new(o, all[i]->id, j);
        } else {
            json_decref(j);
        }
    }
    tr_free_null(&all);
    tr_consul_filter_free(f);
    return tr_srv_reply_json(c, 200, o);
}

/* ------------------------------------------------------------ services */

static enum tr_call_result service_register(struct tr_reg *reg, struct tr_srv_call *c)
{
    if (writes_refused(reg, c)) {
        return TR_CALL_REPLY;
    }
    json_t *body = tr_srv_body_json(c);
    if (body == NULL) {
        return TR_CALL_REPLY;
    }
    json_t *svc;
    json_t *checks;
    char err[512];
    int rc = tr_cat_parse_service(body, &svc, &checks, err, sizeof(err));
    json_decref(body);
    if (rc != 0) {
        return tr_srv_reply_error(c, TR_E_BAD_PARAM, "%s", err);
    }
    tr_catalog_register(reg, svc, checks, tr_srv_query_flag(c, "replace-existing-checks"));
    return ok_committed(c);
}

static enum tr_call_result service_deregister(struct tr_reg *reg, struct tr_srv_call *c)
{
    if (c->param.len == 0) {
        return tr_srv_reply_error(c, TR_E_BAD_PARAM, "missing service ID");
    }
    if (writes_refused(reg, c)) {
        return TR_CALL_REPLY;
    }
    if (tr_catalog_deregister(reg, c->param) == -ENOENT) {
        return tr_srv_reply_error(c, TR_E_NOT_FOUND,
                                  "Unknown service ID \"%.*s\". Ensure that "
                                  "the service ID is passed, not the service "
                                  "name.",
                                  TR_SLICE_FMT(c->param));
    }
    return ok_committed(c);
}

static enum tr_call_result service_maintenance(struct tr_reg *reg, struct tr_srv_call *c)
{
    struct tr_slice enable;
    struct tr_slice reason = TR_SLICE_NULL;
    if (!tr_srv_query(c, "enable", &enable)) {
        return tr_srv_reply_error(c, TR_E_BAD_PARAM, "missing value for enable");
    }
    bool on = tr_slice_eq(enable, TR_SLICE_LIT("true"));
    if (!on && !tr_slice_eq(enable, TR_SLICE_LIT("false"))) {
        return tr_srv_reply_error(c, TR_E_BAD_PARAM,
                                  "invalid value for enable: \"%.*s\" "
                                  "(expected true or false)",
                                  TR_SLICE_FMT(enable));
    }
    tr_srv_query(c, "reason", &reason);
    if (reason.len > 4096) {
        return tr_srv_reply_error(c, TR_E_BAD_PARAM, "reason longer than 4096 bytes");
    }
    if (writes_refused(reg, c)) {
        return TR_CALL_REPLY;
    }
    if (tr_catalog_maintenance(reg, c->param, on, reason) == -ENOENT) {
        return tr_srv_reply_error(c, TR_E_NOT_FOUND, "Unknown service ID \"%.*s\"",
                                  TR_SLICE_FMT(c->param));
    }
    return ok_committed(c);
}

/* ------------------------------------------------------------ checks */

static enum tr_call_result check_register(struct tr_reg *reg, struct tr_srv_call *c)
{
    if (writes_refused(reg, c)) {
        return TR_CALL_REPLY;
    }
    json_t *body = tr_srv_body_json(c);
    if (body == NULL) {
        return TR_CALL_REPLY;
    }
    struct tr_cat_check_ctx ctx = {0};
    json_t *def;
    char err[512];
    int rc = tr_cat_parse_check(body, &ctx, &def, err, sizeof(err));
    json_decref(body);
    if (rc != 0) {
        return tr_srv_reply_error(c, TR_E_BAD_PARAM, "%s", err);
    }
    char sid[TR_CAT_MAX_ID + 1];
    snprintf(sid, sizeof(sid), "%s", json_string_value(json_object_get(def, "ServiceID")));
    if (tr_catalog_check_register(reg, def) == -ENOENT) {
        return tr_srv_reply_error(c, TR_E_BAD_PARAM, "ServiceID \"%s\" does not exist", sid);
    }
    return ok_committed(c);
}

static enum tr_call_result check_deregister(struct tr_reg *reg, struct tr_srv_call *c)
{
    if (writes_refused(reg, c)) {
        return TR_CALL_REPLY;
    }
    if (tr_catalog_check_deregister(reg, c->param) == -ENOENT) {
        return tr_srv_reply_error(c, TR_E_NOT_FOUND, "Unknown check ID \"%.*s\"",
                                  TR_SLICE_FMT(c->param));
    }
    return ok_committed(c);
}

static enum tr_call_result ttl_update(struct tr_reg *reg, struct tr_srv_call *c,
                                      enum tr_check_status st, struct tr_slice output)
{
    if (writes_refused(reg, c)) {
        return TR_CALL_REPLY;
    }
    int rc = tr_catalog_check_update(reg, c->param, st, output);
    if (rc == -ENOENT) {
        return tr_srv_reply_error(c, TR_E_NOT_FOUND, "Unknown check ID \"%.*s\"",
                                  TR_SLICE_FMT(c->param));
    }
    if (rc != 0) {
        return tr_srv_reply_error(c, TR_E_BAD_PARAM, "check \"%.*s\" is not a TTL check",
                                  TR_SLICE_FMT(c->param));
    }
    return ok_committed(c);
}

static enum tr_call_result ttl_with_note(struct tr_reg *reg, struct tr_srv_call *c,
                                         enum tr_check_status st)
{
    struct tr_slice note = TR_SLICE_NULL;
    tr_srv_query(c, "note", &note);
    return ttl_update(reg, c, st, note);
}

static enum tr_call_result check_pass(struct tr_reg *reg, struct tr_srv_call *c)
{
    return ttl_with_note(reg, c, TR_CHECK_PASSING);
}

static enum tr_call_result check_warn(struct tr_reg *reg, struct tr_srv_call *c)
{
    return ttl_with_note(reg, c, TR_CHECK_WARNING);
}

static enum tr_call_result check_fail(struct tr_reg *reg, struct tr_srv_call *c)
{
    return ttl_with_note(reg, c, TR_CHECK_CRITICAL);
}

static json_t *member_ci(const json_t *o, const char *name)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        if (strcasecmp(k, name) == 0) {
            return v;
        }
    }
    return NULL;
}

static enum tr_call_result check_update(struct tr_reg *reg, struct tr_srv_call *c)
{
    json_t *body = tr_srv_body_json(c);
    if (body == NULL) {
        return TR_CALL_REPLY;
    }
    json_t *status = member_ci(body, "Status");
    json_t *output = member_ci(body, "Output");
    enum tr_check_status st;
    if (!json_is_string(status) ||
        tr_check_status_parse(tr_slice(json_string_value(status), json_string_length(status)),
                              &st) != 0) {
        json_decref(body);
        return tr_srv_reply_error(c, TR_E_BAD_PARAM,
                                  "invalid Status: expected \"passing\", \"warning\" or "
                                  "\"critical\"");
    }
    if (output != NULL && !json_is_string(output) && !json_is_null(output)) {
        json_decref(body);
        return tr_srv_reply_error(c, TR_E_BAD_PARAM, "invalid Output: expected a string");
    }
    struct tr_slice out = json_is_string(output)
                              ? tr_slice(json_string_value(output), json_string_length(output))
                              : TR_SLICE_NULL;
    enum tr_call_result r = ttl_update(reg, c, st, out);
    json_decref(body);
    return r;
}

int tr_consul_agent_routes(struct tr_router *r)
{
    int rc = 0;
    rc |= tr_srv_route(r, "GET", "/v1/agent/self", agent_self);
    rc |= tr_srv_route(r, "GET", "/v1/agent/members", agent_members);
    rc |= tr_srv_route(r, "GET", "/v1/agent/services", agent_services);
    rc |= tr_srv_route(r, "GET", "/v1/agent/checks", agent_checks);
    rc |= tr_srv_route(r, "PUT", "/v1/agent/service/register", service_register);
    /* Consul before 1.0 took these writes as GET too, and python-consul 0.7 (Debian's
     * python3-consul) still sends GET: accept both. */
    rc |= tr_srv_route(r, "PUT", "/v1/agent/service/deregister/*id", service_deregister);
    rc |= tr_srv_route(r, "GET", "/v1/agent/service/deregister/*id", service_deregister);
    rc |= tr_srv_route(r, "PUT", "/v1/agent/service/maintenance/*id", service_maintenance);
    rc |= tr_srv_route(r, "GET", "/v1/agent/service/*id", agent_service);
    rc |= tr_srv_route(r, "PUT", "/v1/agent/check/register", check_register);
    rc |= tr_srv_route(r, "PUT", "/v1/agent/check/deregister/*id", check_deregister);
    rc |= tr_srv_route(r, "GET", "/v1/agent/check/deregister/*id", check_deregister);
    rc |= tr_srv_route(r, "PUT", "/v1/agent/check/pass/*id", check_pass);
    rc |= tr_srv_route(r, "GET", "/v1/agent/check/pass/*id", check_pass);
    rc |= tr_srv_route(r, "PUT", "/v1/agent/check/warn/*id", check_warn);
    rc |= tr_srv_route(r, "GET", "/v1/agent/check/warn/*id", check_warn);
    rc |= tr_srv_route(r, "PUT", "/v1/agent/check/fail/*id", check_fail);
    rc |= tr_srv_route(r, "GET", "/v1/agent/check/fail/*id", check_fail);
    rc |= tr_srv_route(r, "PUT", "/v1/agent/check/update/*id", check_update);
    return rc;
}
