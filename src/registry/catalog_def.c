/* SPDX-License-Identifier: Apache-2.0 */
/* Service and check definitions: Consul's registration JSON (PascalCase or snake_case
 * field names, durations as Go strings or nanoseconds) validated and turned into one
 * canonical JSON form. The canonical form is what the catalog keeps, compares (an
 * identical re-registration changes nothing) and persists, and it parses back through
 * the same functions on restart. Pure functions: no I/O, no registry state. */
#include "registry/catalog.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"

#define META_MAX_PAIRS 64
#define META_MAX_KEY 128
#define META_MAX_VALUE 512
#define MAX_TAGS 1024
#define MAX_OUTPUT_MAX (1024 * 1024)

static const char *const status_names[TR_CHECK_STATUS_COUNT] = {"passing", "warning", "critical"};
static const char *const type_names[TR_CHECK_TYPE_COUNT] = {"ttl", "http", "tcp", "maintenance"};

/* Check types Consul has and Trellis does not run, by their defining field. */
static const char *const unsupported_types[] = {
    "GRPC",  "Args", "ScriptArgs", "H2PING",       "DockerContainerID",
    "Shell", "UDP",  "OSService",  "AliasService", "AliasNode",
};

const char *tr_check_status_name(enum tr_check_status s)
{
    TR_ASSERT(s < TR_CHECK_STATUS_COUNT);
    return status_names[s];
}

int tr_check_status_parse(struct tr_slice s, enum tr_check_status *out)
{
    for (int i = 0; i < TR_CHECK_STATUS_COUNT; i++) {
        if (tr_slice_eq(s, tr_slice_cstr(status_names[i]))) {
            *out = (enum tr_check_status)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *tr_check_type_name(enum tr_check_type t)
{
    TR_ASSERT(t < TR_CHECK_TYPE_COUNT);
    return type_names[t];
}

/* ------------------------------------------------------------ JSON field access */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Consul accepts "EnableTagOverride", "enable_tag_override", "enableTagOverride": field
 * names compare without underscores and in any letter case. */
static bool key_matches(const char *key, const char *canon)
{
    for (;;) {
        while (*key == '_') {
            key++;
        }
        if (*key == '\0' || *canon == '\0') {
            return *key == '\0' && *canon == '\0';
        }
        if (tolower((unsigned char)*key) != tolower((unsigned char)*canon)) {
            return false;
        }
        key++;
        canon++;
    }
}

/* The member named `canon` (see key_matches), or NULL when absent or null. */
static json_t *field(const json_t *obj, const char *canon)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (key_matches(key, canon)) {
            return json_is_null(v) ? NULL : v;
        }
    }
    return NULL;
}

static bool clean_string(const json_t *v)
{
    return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

/* Optional string member: 0 absent (*out = NULL), 1 present, -EINVAL after a message. */
static int get_string(const json_t *obj, const char *name, const char *label, size_t max,
                      const char **out, char *err, size_t errlen)
{
    json_t *v = field(obj, name);
    *out = NULL;
    if (v == NULL) {
        return 0;
    }
    if (!clean_string(v)) {
        return fail(err, errlen, "invalid %s%s: expected a string", label, name);
    }
    if (json_string_length(v) > max) {
        return fail(err, errlen, "invalid %s%s: longer than %zu bytes", label, name, max);
    }
    *out = json_string_value(v);
    return 1;
}

static int get_bool(const json_t *obj, const char *name, const char *label, bool *out, char *err,
                    size_t errlen)
{
    json_t *v = field(obj, name);
    if (v == NULL) {
        return 0;
    }
    if (!json_is_boolean(v)) {
        return fail(err, errlen, "invalid %s%s: expected true or false", label, name);
    }
    *out = json_is_true(v);
    return 1;
}

static int get_int(const json_t *obj, const char *name, const char *label, json_int_t min,
                   json_int_t max, json_int_t *out, char *err, size_t errlen)
{
    json_t *v = field(obj, name);
    if (v == NULL) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        return fail(err, errlen, "invalid %s%s: expected an integer from %lld to %lld", label, name,
                    (long long)min, (long long)max);
    }
    *out = json_integer_value(v);
    return 1;
}

/* A duration as a Go string ("10s") or an integer of nanoseconds, as Consul takes. */
static int get_duration(const json_t *obj, const char *name, const char *label, uint64_t *ms,
                        char *err, size_t errlen)
{
    json_t *v = field(obj, name);
    if (v == NULL) {
        return 0;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *ms = ((uint64_t)json_integer_value(v) + 999999) / 1000000;
        return 1;
    }
    if (clean_string(v)) {
        if (json_string_length(v) == 0) {
            return 0;
        }
        if (tr_cat_parse_duration(tr_slice(json_string_value(v), json_string_length(v)), ms) == 0) {
            return 1;
        }
        return fail(err, errlen,
                    "invalid %s%s \"%.64s\": expected a duration like \"10s\", \"1m30s\" or "
                    "\"500ms\"",
                    label, name, json_string_value(v));
    }
    return fail(err, errlen, "invalid %s%s: expected a duration string like \"10s\"", label, name);
}

static void set_duration(json_t *o, const char *name, uint64_t ms)
{
    char buf[48];
    tr_cat_format_duration(ms, buf, sizeof(buf));
    json_object_set_new(o, name, json_string(buf));
}

/* ------------------------------------------------------------ services */

static bool meta_key_ok(const char *k)
{
    for (const char *p = k; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-') {
            return false;
        }
    }
    return *k != '\0';
}

static int parse_meta(const json_t *in, json_t **out, char *err, size_t errlen)
{
    json_t *v = field(in, "Meta");
    *out = json_object();
    if (v == NULL) {
        return 0;
    }
    if (!json_is_object(v)) {
        return fail(err, errlen, "invalid Meta: expected an object of strings");
    }
    if (json_object_size(v) > META_MAX_PAIRS) {
        return fail(err, errlen, "invalid Meta: more than %d pairs", META_MAX_PAIRS);
    }
    const char *k;
    json_t *mv;
    json_object_foreach(v, k, mv)
    {
        if (!meta_key_ok(k) || strlen(k) > META_MAX_KEY) {
            return fail(err, errlen,
                        "invalid Meta key \"%.64s\": use up to %d letters, digits, '_' and '-'", k,
                        META_MAX_KEY);
        }
        if (strncmp(k, "consul-", 7) == 0) {
            return fail(err, errlen, "invalid Meta key \"%.64s\": the consul- prefix is reserved",
                        k);
        }
        if (!clean_string(mv) || json_string_length(mv) > META_MAX_VALUE) {
            return fail(err, errlen,
                        "invalid Meta value for \"%.64s\": expected a string of up "
                        "to %d bytes",
                        k, META_MAX_VALUE);
        }
        json_object_set(*out, k, mv);
    }
    return 0;
}

static int parse_tags(const json_t *in, json_t **out, char *err, size_t errlen)
{
    json_t *v = field(in, "Tags");
    *out = json_array();
    if (v == NULL) {
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) > MAX_TAGS) {
        return fail(err, errlen, "invalid Tags: expected an array of at most %d strings", MAX_TAGS);
    }
    size_t i;
    json_t *t;
    json_array_foreach(v, i, t)
    {
        if (!clean_string(t) || json_string_length(t) > TR_CAT_MAX_ID) {
            return fail(err, errlen, "invalid Tags[%zu]: expected a string", i);
        }
        json_array_append(*out, t);
    }
    return 0;
}

static int parse_tagged_addresses(const json_t *in, json_t **out, char *err, size_t errlen)
{
    json_t *v = field(in, "TaggedAddresses");
    *out = json_object();
    if (v == NULL) {
        return 0;
    }
    if (!json_is_object(v) || json_object_size(v) > META_MAX_PAIRS) {
        return fail(err, errlen,
                    "invalid TaggedAddresses: expected an object like "
                    "{\"lan\":{\"Address\":\"10.0.0.1\",\"Port\":80}}");
    }
    const char *k;
    json_t *a;
    json_object_foreach(v, k, a)
    {
        char label[96];
        snprintf(label, sizeof(label), "TaggedAddresses.%.64s.", k);
        if (!json_is_object(a)) {
            return fail(err, errlen,
                        "invalid TaggedAddresses.%.64s: expected an object with "
                        "Address and Port",
                        k);
        }
        const char *addr = "";
        json_int_t port = 0;
        if (get_string(a, "Address", label, 256, &addr, err, errlen) < 0 ||
            get_int(a, "Port", label, 0, 65535, &port, err, errlen) < 0) {
            return -EINVAL;
        }
        json_object_set_new(
            *out, k, json_pack("{s:s,s:I}", "Address", addr ? addr : "", "Port", (json_int_t)port));
    }
    return 0;
}

static int parse_weights(const json_t *in, json_t **out, char *err, size_t errlen)
{
    json_int_t passing = 1;
    json_int_t warning = 1;
    json_t *v = field(in, "Weights");
    if (v != NULL) {
        if (!json_is_object(v)) {
            return fail(err, errlen, "invalid Weights: expected {\"Passing\":N,\"Warning\":N}");
        }
        if (get_int(v, "Passing", "Weights.", 1, 65535, &passing, err, errlen) < 0 ||
            get_int(v, "Warning", "Weights.", 0, 65535, &warning, err, errlen) < 0) {
            return -EINVAL;
        }
    }
    *out = json_pack("{s:I,s:I}", "Passing", passing, "Warning", warning);
    return 0;
}

/* Fields Trellis cannot honour: a clear 400 instead of silently ignoring them. */
static int refuse_unsupported_service(const json_t *in, char *err, size_t errlen)
{
    const char *kind = NULL;
    if (get_string(in, "Kind", "", 64, &kind, err, errlen) < 0) {
        return -EINVAL;
    }
    if (kind != NULL && kind[0] != '\0') {
        return fail(err, errlen,
                    "Kind \"%s\" is not supported: only plain services (no Connect "
                    "proxies or gateways)",
                    kind);
    }
    json_t *connect = field(in, "Connect");
    if (connect != NULL && json_is_object(connect) && field(connect, "SidecarService") != NULL) {
        return fail(err, errlen, "Connect.SidecarService is not supported");
    }
    return 0;
}

static int service_fields(const json_t *in, json_t *svc, char *err, size_t errlen)
{
    const char *name;
    const char *id;
    const char *address = "";
    json_int_t port = 0;
    bool eto = false;
    int rc = get_string(in, "Name", "", TR_CAT_MAX_ID, &name, err, errlen);
    if (rc < 0) {
        return rc;
    }
    if (name == NULL || name[0] == '\0') {
        return fail(err, errlen, "missing service name: Name is required");
    }
    if (get_string(in, "ID", "", TR_CAT_MAX_ID, &id, err, errlen) < 0 ||
        get_string(in, "Address", "", 256, &address, err, errlen) < 0 ||
        get_int(in, "Port", "", 0, 65535, &port, err, errlen) < 0 ||
        get_bool(in, "EnableTagOverride", "", &eto, err, errlen) < 0 ||
        refuse_unsupported_service(in, err, errlen) < 0) {
        return -EINVAL;
    }
    json_t *tags = NULL;
    json_t *meta = NULL;
    json_t *tagged = NULL;
    json_t *weights = NULL;
    rc = parse_tags(in, &tags, err, errlen);
    json_object_set_new(svc, "Tags", tags);
    rc = rc ? rc : parse_meta(in, &meta, err, errlen);
    json_object_set_new(svc, "Meta", meta);
    rc = rc ? rc : parse_tagged_addresses(in, &tagged, err, errlen);
    json_object_set_new(svc, "TaggedAddresses", tagged);
    rc = rc ? rc : parse_weights(in, &weights, err, errlen);
    json_object_set_new(svc, "Weights", weights);
    json_object_set_new(svc, "ID", json_string(id != NULL && id[0] != '\0' ? id : name));
    json_object_set_new(svc, "Name", json_string(name));
    json_object_set_new(svc, "Address", json_string(address ? address : ""));
    json_object_set_new(svc, "Port", json_integer(port));
    json_object_set_new(svc, "EnableTagOverride", json_boolean(eto));
    return rc;
}

static bool empty_object(const json_t *v)
{
    return json_is_object(v) && json_object_size(v) == 0;
}

static int service_checks(const json_t *in, const json_t *svc, json_t *out, char *err,
                          size_t errlen)
{
    json_t *one = field(in, "Check");
    json_t *many = field(in, "Checks");
    if (one != NULL && !json_is_object(one)) {
        return fail(err, errlen, "invalid Check: expected an object");
    }
    if (many != NULL && !json_is_array(many)) {
        return fail(err, errlen, "invalid Checks: expected an array of objects");
    }
    /* Consul skips an empty inline check object. */
    json_t *list = json_array();
    if (one != NULL && !empty_object(one)) {
        json_array_append(list, one);
    }
    size_t i;
    json_t *c;
    json_array_foreach(many, i, c)
    {
        if (!json_is_object(c)) {
            json_decref(list);
            return fail(err, errlen, "invalid Checks[%zu]: expected an object", i);
        }
        if (!empty_object(c)) {
            json_array_append(list, c);
        }
    }
    struct tr_cat_check_ctx ctx = {
        .service_id = json_string_value(json_object_get(svc, "ID")),
        .service_name = json_string_value(json_object_get(svc, "Name")),
        .total = json_array_size(list),
    };
    int rc = 0;
    json_array_foreach(list, i, c)
    {
        ctx.position = i + 1;
        json_t *def;
        rc = tr_cat_parse_check(c, &ctx, &def, err, errlen);
        if (rc != 0) {
            break;
        }
        const char *cid = json_string_value(json_object_get(def, "CheckID"));
        size_t j;
        json_t *prev;
        json_array_foreach(out, j, prev)
        {
            if (strcmp(json_string_value(json_object_get(prev, "CheckID")), cid) == 0) {
                rc = fail(err, errlen, "duplicate CheckID \"%.64s\" in the registration", cid);
            }
        }
        json_array_append_new(out, def);
        if (rc != 0) {
            break;
        }
    }
    json_decref(list);
    return rc;
}

int tr_cat_parse_service(const json_t *in, json_t **svc, json_t **checks, char *err, size_t errlen)
{
    *svc = NULL;
    *checks = NULL;
    if (!json_is_object(in)) {
        return fail(err, errlen, "the service definition must be a JSON object");
    }
    json_t *s = json_object();
    json_t *cs = json_array();
    int rc = service_fields(in, s, err, errlen);
    rc = rc ? rc : service_checks(in, s, cs, err, errlen);
    if (rc != 0) {
        json_decref(s);
        json_decref(cs);
        return rc;
    }
    *svc = s;
    *checks = cs;
    return 0;
}

/* ------------------------------------------------------------ checks */

static int check_type(const json_t *in, const struct tr_cat_check_ctx *ctx, const char *label,
                      enum tr_check_type *type, char *err, size_t errlen)
{
    for (size_t i = 0; i < TR_ARRAY_LEN(unsupported_types); i++) {
        json_t *v = field(in, unsupported_types[i]);
        bool set = v != NULL && !(json_is_string(v) && json_string_length(v) == 0) &&
                   !(json_is_array(v) && json_array_size(v) == 0);
        if (set) {
            return fail(err, errlen,
                        "%s%s checks are not supported (supported check types: HTTP, TCP, TTL)",
                        label, unsupported_types[i]);
        }
    }
    json_t *t = json_object_get(in, "Type");
    if (ctx->stored && json_is_string(t) && strcmp(json_string_value(t), "maintenance") == 0) {
        *type = TR_CHECK_MAINT;
        return 0;
    }
    const char *names[] = {"TTL", "HTTP", "TCP"};
    int found = -1;
    for (int i = 0; i < 3; i++) {
        json_t *v = field(in, names[i]);
        if (v == NULL || (json_is_string(v) && json_string_length(v) == 0)) {
            continue;
        }
        if (found >= 0) {
            return fail(err, errlen, "%scheck sets both %s and %s: use one type per check", label,
                        names[found], names[i]);
        }
        found = i;
    }
    if (found < 0) {
        return fail(err, errlen, "%sunknown check type: set one of HTTP, TCP or TTL", label);
    }
    *type = (enum tr_check_type)found;
    return 0;
}

static int check_identity(const json_t *in, const struct tr_cat_check_ctx *ctx, const char *label,
                          json_t *out, char *err, size_t errlen)
{
    const char *id = NULL;
    const char *name = NULL;
    const char *notes = NULL;
    const char *service_id = NULL;
    if (get_string(in, "CheckID", label, TR_CAT_MAX_ID, &id, err, errlen) < 0 ||
        (id == NULL && get_string(in, "ID", label, TR_CAT_MAX_ID, &id, err, errlen) < 0) ||
        get_string(in, "Name", label, TR_CAT_MAX_ID, &name, err, errlen) < 0 ||
        get_string(in, "Notes", label, 4096, &notes, err, errlen) < 0 ||
        get_string(in, "ServiceID", label, TR_CAT_MAX_ID, &service_id, err, errlen) < 0) {
        return -EINVAL;
    }
    char buf[TR_CAT_MAX_ID + 64];
    if (ctx->service_id != NULL) {
        service_id = ctx->service_id;
        if (id == NULL || id[0] == '\0') {
            if (ctx->total > 1) {
                snprintf(buf, sizeof(buf), "service:%s:%zu", ctx->service_id, ctx->position);
            } else {
                snprintf(buf, sizeof(buf), "service:%s", ctx->service_id);
            }
            id = buf;
        }
        json_object_set_new(out, "CheckID", json_string(id));
        if (name == NULL || name[0] == '\0') {
            snprintf(buf, sizeof(buf), "Service '%s' check", ctx->service_name);
            name = buf;
        }
        json_object_set_new(out, "Name", json_string(name));
    } else {
        if (name == NULL || name[0] == '\0') {
            return fail(err, errlen, "missing check name: Name is required");
        }
        json_object_set_new(out, "CheckID", json_string(id != NULL && id[0] ? id : name));
        json_object_set_new(out, "Name", json_string(name));
    }
    json_object_set_new(out, "ServiceID", json_string(service_id ? service_id : ""));
    json_object_set_new(out, "Notes", json_string(notes ? notes : ""));
    return 0;
}

static bool method_ok(const char *m)
{
    for (const char *p = m; *p != '\0'; p++) {
        if (!isalpha((unsigned char)*p) && *p != '-' && *p != '_') {
            return false;
        }
    }
    return *m != '\0' && strlen(m) <= 32;
}

static int check_header(const json_t *in, const char *label, json_t *out, char *err, size_t errlen)
{
    json_t *h = field(in, "Header");
    if (h == NULL) {
        return 0;
    }
    if (!json_is_object(h)) {
        return fail(err, errlen,
                    "invalid %sHeader: expected an object like "
                    "{\"Name\":[\"value\"]}",
                    label);
    }
    const char *k;
    json_t *vals;
    json_object_foreach(h, k, vals)
    {
        bool ok = json_is_array(vals) && k[0] != '\0' && strcspn(k, " \t\r\n:") == strlen(k);
        size_t i;
        json_t *v;
        json_array_foreach(vals, i, v)
        {
            ok = ok && clean_string(v) &&
                 strcspn(json_string_value(v), "\r\n") == json_string_length(v);
        }
        if (!ok) {
            return fail(err, errlen,
                        "invalid %sHeader \"%.64s\": expected a header name and an "
                        "array of strings",
                        label, k);
        }
    }
    json_object_set(out, "Header", h);
    return 0;
}

static int check_http(const json_t *in, const char *label, json_t *out, char *err, size_t errlen)
{
    const char *url;
    const char *method = NULL;
    const char *body = NULL;
    bool skip = false;
    if (get_string(in, "HTTP", label, 2048, &url, err, errlen) < 0 ||
        get_string(in, "Method", label, 32, &method, err, errlen) < 0 ||
        get_string(in, "Body", label, 64 * 1024, &body, err, errlen) < 0 ||
        get_bool(in, "TLSSkipVerify", label, &skip, err, errlen) < 0) {
        return -EINVAL;
    }
    char host[256];
    uint16_t port;
    const char *target;
    int rc = tr_cat_parse_http_url(url, host, sizeof(host), &port, &target);
    if (rc == -EPROTONOSUPPORT) {
        return fail(err, errlen,
                    "invalid %sHTTP \"%.128s\": https checks are not supported yet, "
                    "use an http:// URL",
                    label, url);
    }
    if (rc != 0) {
        return fail(err, errlen,
                    "invalid %sHTTP \"%.128s\": expected a URL like "
                    "http://127.0.0.1:8080/health",
                    label, url);
    }
    if (method != NULL && method[0] != '\0' && !method_ok(method)) {
        return fail(err, errlen, "invalid %sMethod \"%.32s\"", label, method);
    }
    json_object_set_new(out, "HTTP", json_string(url));
    json_object_set_new(out, "Method", json_string(method && method[0] ? method : "GET"));
    json_object_set_new(out, "Body", json_string(body ? body : ""));
    json_object_set_new(out, "TLSSkipVerify", json_boolean(skip));
    return check_header(in, label, out, err, errlen);
}

static int check_timing(const json_t *in, enum tr_check_type type, const char *label, json_t *out,
                        char *err, size_t errlen)
{
    uint64_t interval = 0;
    uint64_t timeout = 0;
    uint64_t ttl = 0;
    uint64_t dcsa = 0;
    if (get_duration(in, "Interval", label, &interval, err, errlen) < 0 ||
        get_duration(in, "Timeout", label, &timeout, err, errlen) < 0 ||
        get_duration(in, "TTL", label, &ttl, err, errlen) < 0 ||
        get_duration(in, "DeregisterCriticalServiceAfter", label, &dcsa, err, errlen) < 0) {
        return -EINVAL;
    }
    if (type == TR_CHECK_TTL) {
        if (ttl == 0) {
            return fail(err, errlen, "invalid %sTTL: must be greater than 0", label);
        }
        if (interval > 0) {
            return fail(err, errlen, "%sInterval and TTL cannot both be specified", label);
        }
        set_duration(out, "TTL", ttl);
    } else if (type == TR_CHECK_HTTP || type == TR_CHECK_TCP) {
        if (interval == 0) {
            return fail(err, errlen,
                        "%sInterval is required for HTTP and TCP checks (e.g. "
                        "\"10s\")",
                        label);
        }
        set_duration(out, "Interval", interval);
        if (timeout > 0) {
            set_duration(out, "Timeout", timeout);
        }
    }
    if (dcsa > 0) {
        set_duration(out, "DeregisterCriticalServiceAfter", dcsa);
    }
    return 0;
}

static int check_extras(const json_t *in, const char *label, json_t *out, char *err, size_t errlen)
{
    json_int_t sbp = 0;
    json_int_t fbc = 0;
    json_int_t omax = 0;
    const char *status = NULL;
    if (get_int(in, "SuccessBeforePassing", label, 0, 1000, &sbp, err, errlen) < 0 ||
        get_int(in, "FailuresBeforeCritical", label, 0, 1000, &fbc, err, errlen) < 0 ||
        get_int(in, "OutputMaxSize", label, 0, MAX_OUTPUT_MAX, &omax, err, errlen) < 0 ||
        get_string(in, "Status", label, 16, &status, err, errlen) < 0) {
        return -EINVAL;
    }
    if (sbp > 0) {
        json_object_set_new(out, "SuccessBeforePassing", json_integer(sbp));
    }
    if (fbc > 0) {
        json_object_set_new(out, "FailuresBeforeCritical", json_integer(fbc));
    }
    if (omax > 0) {
        json_object_set_new(out, "OutputMaxSize", json_integer(omax));
    }
    if (status != NULL && status[0] != '\0') {
        enum tr_check_status st;
        if (tr_check_status_parse(tr_slice_cstr(status), &st) != 0) {
            return fail(err, errlen,
                        "invalid %sStatus \"%.16s\": expected passing, warning or "
                        "critical",
                        label, status);
        }
        json_object_set_new(out, "Status", json_string(status));
    }
    return 0;
}

int tr_cat_parse_check(const json_t *in, const struct tr_cat_check_ctx *ctx, json_t **out,
                       char *err, size_t errlen)
{
    *out = NULL;
    char label[32] = "";
    if (ctx->service_id != NULL) {
        if (ctx->total > 1) {
            snprintf(label, sizeof(label), "Checks[%zu].", ctx->position - 1);
        } else {
            snprintf(label, sizeof(label), "Check.");
        }
    }
    if (!json_is_object(in)) {
        return fail(err, errlen, "the check definition must be a JSON object");
    }
    enum tr_check_type type = TR_CHECK_TTL;
    if (check_type(in, ctx, label, &type, err, errlen) != 0) {
        return -EINVAL;
    }
    json_t *def = json_object();
    int rc = check_identity(in, ctx, label, def, err, errlen);
    json_object_set_new(def, "Type", json_string(tr_check_type_name(type)));
    if (rc == 0 && type == TR_CHECK_HTTP) {
        rc = check_http(in, label, def, err, errlen);
    } else if (rc == 0 && type == TR_CHECK_TCP) {
        const char *tcp;
        char host[256];
        uint16_t port;
        rc = get_string(in, "TCP", label, 300, &tcp, err, errlen) < 0 ? -EINVAL : 0;
        if (rc == 0 && tr_cat_split_hostport(tcp, host, sizeof(host), &port) != 0) {
            rc = fail(err, errlen, "invalid %sTCP \"%.128s\": expected host:port", label, tcp);
        }
        if (rc == 0) {
            json_object_set_new(def, "TCP", json_string(tcp));
        }
    }
    rc = rc ? rc : check_timing(in, type, label, def, err, errlen);
    rc = rc ? rc : check_extras(in, label, def, err, errlen);
    if (rc != 0) {
        json_decref(def);
        return -EINVAL;
    }
    *out = def;
    return 0;
}
