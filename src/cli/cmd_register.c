/* SPDX-License-Identifier: Apache-2.0 */
/* `trellis register` and `trellis deregister`: add a service instance (with optional
 * HTTP, TCP and TTL health checks) to the registry and take it out again, through the
 * agent API (/v1/agent/service/register and /deregister/:id). The request body is the
 * one a Consul client sends; options are checked here so mistakes are usage errors. */
#include <stdio.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/mem.h"

#define DEFAULT_CHECK_INTERVAL "10s"

struct reg_opts {
    const char *addr; /* --addr, or NULL */
    const char *name;
    const char *id;
    const char *address;
    const char *http_check;
    const char *tcp_check;
    const char *ttl;
    const char *interval;
    const char *timeout;
    json_t *tags; /* owned: array of strings */
    json_t *meta; /* owned: object of strings */
    long port;    /* -1 when not given */
};

static bool reg_takes_value(const char *name)
{
    (void)name;
    return true; /* every register option has a value */
}

static int check_duration(const char *opt, const char *v)
{
    uint64_t ms = 0;
    if (tr_parse_duration_ms(v, &ms) != 0 || ms == 0) {
        return tr_cli_usage_error(
            "register", "--%s: expected a duration like 500ms, 10s or 1m, got \"%s\"", opt, v);
    }
    return 0;
}

static int set_meta(struct reg_opts *o, const char *v)
{
    const char *eq = strchr(v, '=');
    if (eq == NULL || eq == v) {
        return tr_cli_usage_error("register", "--meta: expected KEY=VALUE, got \"%s\"", v);
    }
    char *key = tr_xstrndup(v, (size_t)(eq - v));
    json_object_set_new(o->meta, key, json_string(eq + 1));
    tr_free_null(&key);
    return 0;
}

static int set_port(struct reg_opts *o, const char *v)
{
    uint64_t n = 0;
    if (tr_slice_to_u64(tr_slice_cstr(v), &n) != 0 || n > 65535) {
        return tr_cli_usage_error(
            "register", "--port: expected a port number between 0 and 65535, got \"%s\"", v);
    }
    o->port = (long)n;
    return 0;
}

/* Stores one option. Returns 0 or the usage error's exit status. */
static int set_opt(struct reg_opts *o, const char *name, const char *v)
{
    json_t *utf8 = json_string(v); /* NULL unless v is valid UTF-8, which JSON needs */
    if (utf8 == NULL) {
        return tr_cli_usage_error("register", "--%s: the value is not valid UTF-8", name);
    }
    json_decref(utf8);
    struct {
        const char *name;
        const char **slot;
    } strings[] = {
        {"addr", &o->addr},
        {"name", &o->name},
        {"id", &o->id},
        {"address", &o->address},
        {"http-check", &o->http_check},
        {"tcp-check", &o->tcp_check},
        {"ttl", &o->ttl},
        {"interval", &o->interval},
        {"timeout", &o->timeout},
    };
    for (size_t i = 0; i < TR_ARRAY_LEN(strings); i++) {
        if (strcmp(name, strings[i].name) == 0) {
            *strings[i].slot = v;
            return 0;
        }
    }
    if (strcmp(name, "tag") == 0) {
        json_array_append_new(o->tags, json_string(v));
        return 0;
    }
    if (strcmp(name, "meta") == 0) {
        return set_meta(o, v);
    }
    if (strcmp(name, "port") == 0) {
        return set_port(o, v);
    }
    return tr_cli_usage_error("register", "unknown option --%s", name);
}

/* Cross-option rules, after every option is known. */
static int validate(const struct reg_opts *o)
{
    if (o->name == NULL || o->name[0] == '\0') {
        return tr_cli_usage_error("register", "--name is required");
    }
    if (o->id != NULL && o->id[0] == '\0') {
        return tr_cli_usage_error("register", "--id must not be empty");
    }
    if ((o->interval != NULL || o->timeout != NULL) && o->http_check == NULL &&
        o->tcp_check == NULL) {
        return tr_cli_usage_error("register", "--%s applies to --http-check and --tcp-check only",
                                  o->interval != NULL ? "interval" : "timeout");
    }
    if (o->http_check != NULL && strncmp(o->http_check, "http://", 7) != 0 &&
        strncmp(o->http_check, "https://", 8) != 0) {
        return tr_cli_usage_error("register",
                                  "--http-check: expected an http:// or https:// URL, got \"%s\"",
                                  o->http_check);
    }
    if (o->tcp_check != NULL && strrchr(o->tcp_check, ':') == NULL) {
        return tr_cli_usage_error("register", "--tcp-check: expected HOST:PORT, got \"%s\"",
                                  o->tcp_check);
    }
    const char *durations[][2] = {
        {"ttl", o->ttl}, {"interval", o->interval}, {"timeout", o->timeout}};
    for (size_t i = 0; i < TR_ARRAY_LEN(durations); i++) {
        if (durations[i][1] != NULL && check_duration(durations[i][0], durations[i][1]) != 0) {
            return 2;
        }
    }
    return 0;
}

static json_t *probe_check(const struct reg_opts *o, const char *kind, const char *target)
{
    json_t *c = json_object();
    json_object_set_new(c, kind, json_string(target));
    json_object_set_new(c, "Interval",
                        json_string(o->interval != NULL ? o->interval : DEFAULT_CHECK_INTERVAL));
    if (o->timeout != NULL) {
        json_object_set_new(c, "Timeout", json_string(o->timeout));
    }
    return c;
}

/* The register body, in the field names Consul's clients send. */
static json_t *register_body(const struct reg_opts *o)
{
    json_t *body = json_object();
    json_object_set_new(body, "Name", json_string(o->name));
    if (o->id != NULL) {
        json_object_set_new(body, "ID", json_string(o->id));
    }
    if (o->address != NULL) {
        json_object_set_new(body, "Address", json_string(o->address));
    }
    if (o->port >= 0) {
        json_object_set_new(body, "Port", json_integer(o->port));
    }
    json_object_set(body, "Tags", o->tags);
    json_object_set(body, "Meta", o->meta);
    json_t *checks = json_array();
    if (o->http_check != NULL) {
        json_array_append_new(checks, probe_check(o, "HTTP", o->http_check));
    }
    if (o->tcp_check != NULL) {
        json_array_append_new(checks, probe_check(o, "TCP", o->tcp_check));
    }
    if (o->ttl != NULL) {
        json_array_append_new(checks, json_pack("{s:s}", "TTL", o->ttl));
    }
    if (json_array_size(checks) == 1) {
        json_object_set(body, "Check", json_array_get(checks, 0));
    } else if (json_array_size(checks) > 1) {
        json_object_set(body, "Checks", checks);
    }
    json_decref(checks);
    return body;
}

static int do_register(const struct reg_opts *o)
{
    struct tr_cli_api api;
    int rc = tr_cli_api_open(&api, "register", o->addr);
    if (rc != 0) {
        return rc;
    }
    json_t *body = register_body(o);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    struct tr_cli_resp resp;
    rc = 1;
    if (tr_cli_api_call(&api, "PUT", "/v1/agent/service/register", tr_slice_cstr(text), &resp) !=
        0) {
        /* already reported */
    } else if (resp.status != 200) {
        tr_cli_api_print_status(&api, o->name, &resp);
    } else {
        printf("registered service %s as %s\n", o->name, o->id != NULL ? o->id : o->name);
        rc = 0;
    }
    tr_cli_resp_dispose(&resp);
    free(text); /* allocated by jansson */
    tr_cli_api_close(&api);
    return rc;
}

static int run_register(int argc, char **argv)
{
    struct reg_opts o = {.tags = json_array(), .meta = json_object(), .port = -1};
    int rc = 0;
    for (int i = 1; i < argc && rc == 0;) {
        const char *value;
        const char *name = tr_cli_next_opt(argc, argv, &i, &value, reg_takes_value);
        if (name == NULL) {
            rc = tr_cli_usage_error("register", "unexpected argument \"%s\"", argv[i - 1]);
        } else if (value == NULL) {
            rc = tr_cli_usage_error("register", "--%s needs a value", name);
        } else {
            rc = set_opt(&o, name, value);
        }
    }
    if (rc == 0) {
        rc = validate(&o);
    }
    if (rc == 0) {
        rc = do_register(&o);
    }
    json_decref(o.tags);
    json_decref(o.meta);
    return rc;
}

static bool dereg_takes_value(const char *name)
{
    return strcmp(name, "addr") == 0;
}

static int run_deregister(int argc, char **argv)
{
    const char *addr = NULL;
    const char *id = NULL;
    for (int i = 1; i < argc;) {
        const char *value;
        const char *name = tr_cli_next_opt(argc, argv, &i, &value, dereg_takes_value);
        if (name == NULL && id == NULL) {
            id = argv[i - 1];
        } else if (name == NULL) {
            return tr_cli_usage_error("deregister", "unexpected argument \"%s\"", argv[i - 1]);
        } else if (strcmp(name, "addr") != 0) {
            return tr_cli_usage_error("deregister", "unknown option --%s", name);
        } else if (value == NULL) {
            return tr_cli_usage_error("deregister", "--addr needs a value");
        } else {
            addr = value;
        }
    }
    if (id == NULL || id[0] == '\0') {
        return tr_cli_usage_error("deregister", "missing the service ID");
    }
    struct tr_cli_api api;
    int rc = tr_cli_api_open(&api, "deregister", addr);
    if (rc != 0) {
        return rc;
    }
    struct tr_buf target;
    tr_cli_buf_init(&target);
    tr_buf_append_slice(&target, TR_SLICE_LIT("/v1/agent/service/deregister/"));
    tr_cli_url_escape(&target, tr_slice_cstr(id), false);
    tr_buf_append(&target, "", 1);
    struct tr_cli_resp resp;
    rc = 1;
    if (tr_cli_api_call(&api, "PUT", tr_buf_data(&target), TR_SLICE_NULL, &resp) != 0) {
        /* already reported */
    } else if (resp.status != 200) {
        tr_cli_api_print_status(&api, id, &resp);
    } else {
        printf("deregistered %s\n", id);
        rc = 0;
    }
    tr_cli_resp_dispose(&resp);
    tr_buf_dispose(&target);
    tr_cli_api_close(&api);
    return rc;
}

const struct tr_cli_cmd tr_cli_cmd_register = {
    .name = "register",
    .summary = "register a service instance, with optional health checks",
    .usage = "Usage: trellis register --name NAME [--id ID] [--address A] [--port P]\n"
             "                        [--tag T]... [--meta KEY=VALUE]...\n"
             "                        [--http-check URL] [--tcp-check HOST:PORT] [--ttl DUR]\n"
             "                        [--interval DUR] [--timeout DUR] [--addr ADDR]\n\n"
             "Registers one instance of service NAME with the server's agent API\n"
             "(PUT /v1/agent/service/register). Registering an ID again replaces it.\n\n"
             "  --name NAME          service name (required)\n"
             "  --id ID              instance ID, unique on the server (default: NAME)\n"
             "  --address A          address clients should connect to (default: the node's)\n"
             "  --port P             port clients should connect to\n"
             "  --tag T              a tag; repeat for several\n"
             "  --meta KEY=VALUE     a metadata pair; repeat for several\n"
             "  --http-check URL     check health with GET URL: 2xx passing, 429 warning,\n"
             "                       anything else critical\n"
             "  --tcp-check H:P      check health by connecting to H:P\n"
             "  --ttl DUR            a TTL check: critical unless reported passing every DUR\n"
             "  --interval DUR       how often HTTP and TCP checks run (default 10s)\n"
             "  --timeout DUR        how long one HTTP or TCP check may take\n"
             "  --addr ADDR          server address, host:port or http://host:port; default\n"
             "                       $TRELLIS_ADDR, then $CONSUL_HTTP_ADDR, then 127.0.0.1:8500\n\n"
             "New checks start critical until they first pass. Exit status: 0 registered,\n"
             "1 failure (server unreachable or refusing the registration), 2 usage error.\n",
    .run = run_register,
};

const struct tr_cli_cmd tr_cli_cmd_deregister = {
    .name = "deregister",
    .summary = "remove a service instance by its ID",
    .usage = "Usage: trellis deregister ID [--addr ADDR]\n\n"
             "Removes service instance ID and its checks from the registry\n"
             "(PUT /v1/agent/service/deregister/ID).\n\n"
             "  --addr ADDR   server address, host:port or http://host:port; default\n"
             "                $TRELLIS_ADDR, then $CONSUL_HTTP_ADDR, then 127.0.0.1:8500\n\n"
             "Exit status: 0 removed, 1 failure (unknown ID, server unreachable or\n"
             "answering with an error), 2 usage error.\n",
    .run = run_deregister,
};
