/* SPDX-License-Identifier: Apache-2.0 */
/* `trellis services [NAME]`: what the registry holds, as a table or JSON. Without a
 * name it lists the catalog's services and, from one health query per service, how
 * many instances each has and how healthy they are; with a name it lists that
 * service's instances. An instance's health is the worst of its checks, ranked as
 * Consul's discovery clients rank them: maintenance > critical > warning > passing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/table.h"
#include "core/buf.h"
#include "core/mem.h"

enum health {
    HEALTH_PASSING = 0,
    HEALTH_WARNING,
    HEALTH_CRITICAL,
    HEALTH_MAINTENANCE,
    HEALTH_COUNT
};

static const char *const health_names[HEALTH_COUNT] = {"passing", "warning", "critical",
                                                       "maintenance"};

struct svc_opts {
    const char *addr; /* --addr, or NULL */
    const char *name; /* NAME, or NULL for all services */
    bool json;
};

static bool takes_value(const char *name)
{
    return strcmp(name, "addr") == 0;
}

static enum health check_health(const json_t *check)
{
    const char *id = json_string_value(json_object_get(check, "CheckID"));
    const char *status = json_string_value(json_object_get(check, "Status"));
    if (id != NULL && (strncmp(id, "_service_maintenance", 20) == 0 ||
                       strncmp(id, "_node_maintenance", 17) == 0)) {
        return HEALTH_MAINTENANCE;
    }
    if (status == NULL || strcmp(status, "passing") == 0) {
        return HEALTH_PASSING;
    }
    return strcmp(status, "warning") == 0 ? HEALTH_WARNING : HEALTH_CRITICAL;
}

/* The worst of an entry's checks; an instance without checks is passing. */
static enum health entry_health(const json_t *entry)
{
    enum health worst = HEALTH_PASSING;
    size_t i;
    const json_t *check;
    for (i = 0; (check = json_array_get(json_object_get(entry, "Checks"), i)) != NULL; i++) {
        enum health h = check_health(check);
        if (h > worst) {
            worst = h;
        }
    }
    return worst;
}

static void join_tags(struct tr_buf *out, const json_t *tags)
{
    size_t i;
    const json_t *tag;
    for (i = 0; (tag = json_array_get(tags, i)) != NULL; i++) {
        if (i > 0) {
            tr_buf_append(out, ",", 1);
        }
        tr_buf_append_slice(out, tr_slice(json_string_value(tag), json_string_length(tag)));
    }
    tr_buf_append(out, "", 1);
}

/* GETs `target` and parses the JSON body. NULL (after printing why) on any failure. */
static json_t *get_json(struct tr_cli_api *api, const char *target, const char *what)
{
    struct tr_cli_resp resp;
    json_t *v = NULL;
    if (tr_cli_api_call(api, "GET", target, TR_SLICE_NULL, &resp) != 0) {
        /* already reported */
    } else if (resp.status != 200) {
        tr_cli_api_print_status(api, what, &resp);
    } else {
        v = tr_cli_resp_json(api, &resp);
    }
    tr_cli_resp_dispose(&resp);
    return v;
}

static json_t *get_health(struct tr_cli_api *api, const char *name)
{
    struct tr_buf target;
    tr_cli_buf_init(&target);
    tr_buf_append_slice(&target, TR_SLICE_LIT("/v1/health/service/"));
    tr_cli_url_escape(&target, tr_slice_cstr(name), false);
    tr_buf_append(&target, "", 1);
    json_t *v = get_json(api, tr_buf_data(&target), name);
    tr_buf_dispose(&target);
    if (v != NULL && !json_is_array(v)) {
        fprintf(stderr, "trellis %s: health of \"%s\": expected a JSON array\n", api->cmd, name);
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* One instance for --json: the facts the table shows, with their JSON types. */
static json_t *instance_json(const json_t *entry)
{
    const json_t *svc = json_object_get(entry, "Service");
    const json_t *node = json_object_get(entry, "Node");
    const char *addr = json_string_value(json_object_get(svc, "Address"));
    if (addr == NULL || addr[0] == '\0') {
        addr = json_string_value(json_object_get(node, "Address"));
    }
    json_t *tags = json_object_get(svc, "Tags");
    json_t *meta = json_object_get(svc, "Meta");
    return json_pack("{s:O?, s:O?, s:O?, s:s?, s:O?, s:o, s:o, s:s}", "id",
                     json_object_get(svc, "ID"), "service", json_object_get(svc, "Service"), "node",
                     json_object_get(node, "Node"), "address", addr, "port",
                     json_object_get(svc, "Port"), "tags",
                     json_is_array(tags) ? json_incref(tags) : json_array(), "meta",
                     json_is_object(meta) ? json_incref(meta) : json_object(), "status",
                     health_names[entry_health(entry)]);
}

static int show_instances(struct tr_cli_api *api, const struct svc_opts *o)
{
    json_t *arr = get_health(api, o->name);
    if (arr == NULL) {
        return 1;
    }
    int rc = 0;
    json_t *out = json_array();
    size_t i;
    const json_t *entry;
    for (i = 0; (entry = json_array_get(arr, i)) != NULL; i++) {
        json_array_append_new(out, instance_json(entry));
    }
    if (o->json) {
        tr_cli_print_json(out);
    } else if (json_array_size(out) == 0) {
        fprintf(stderr, "trellis %s: no instances of service \"%s\"\n", api->cmd, o->name);
        rc = 1;
    } else {
        static const char *const header[] = {"ID", "NODE", "ADDRESS", "PORT", "STATUS", "TAGS"};
        struct tr_cli_table t;
        tr_cli_table_init(&t, TR_ARRAY_LEN(header), header);
        json_t *inst;
        for (i = 0; (inst = json_array_get(out, i)) != NULL; i++) {
            char port[16];
            snprintf(port, sizeof(port), "%lld",
                     (long long)json_integer_value(json_object_get(inst, "port")));
            struct tr_buf tags;
            tr_cli_buf_init(&tags);
            join_tags(&tags, json_object_get(inst, "tags"));
            const char *row[] = {json_string_value(json_object_get(inst, "id")),
                                 json_string_value(json_object_get(inst, "node")),
                                 json_string_value(json_object_get(inst, "address")),
                                 port,
                                 json_string_value(json_object_get(inst, "status")),
                                 tr_buf_data(&tags)};
            tr_cli_table_add(&t, row);
            tr_buf_dispose(&tags);
        }
        tr_cli_table_print(&t, stdout);
        tr_cli_table_dispose(&t);
    }
    json_decref(out);
    json_decref(arr);
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* {"name", "tags", "instances", "passing", "warning", "critical"} for one service;
 * maintenance counts as critical. NULL if its health could not be read. */
static json_t *service_summary(struct tr_cli_api *api, const char *name, json_t *tags)
{
    json_t *arr = get_health(api, name);
    if (arr == NULL) {
        return NULL;
    }
    size_t counts[HEALTH_COUNT] = {0};
    size_t i;
    const json_t *entry;
    for (i = 0; (entry = json_array_get(arr, i)) != NULL; i++) {
        counts[entry_health(entry)]++;
    }
    size_t total = json_array_size(arr);
    json_decref(arr);
    return json_pack("{s:s, s:o, s:I, s:I, s:I, s:I}", "name", name, "tags",
                     json_is_array(tags) ? json_incref(tags) : json_array(), "instances",
                     (json_int_t)total, "passing", (json_int_t)counts[HEALTH_PASSING], "warning",
                     (json_int_t)counts[HEALTH_WARNING], "critical",
                     (json_int_t)(counts[HEALTH_CRITICAL] + counts[HEALTH_MAINTENANCE]));
}

static void print_summaries(const json_t *out)
{
    static const char *const header[] = {"SERVICE", "INSTANCES", "PASSING",
                                         "WARNING", "CRITICAL",  "TAGS"};
    static const char *const counts[] = {"instances", "passing", "warning", "critical"};
    struct tr_cli_table t;
    tr_cli_table_init(&t, TR_ARRAY_LEN(header), header);
    size_t i;
    const json_t *s;
    for (i = 0; (s = json_array_get(out, i)) != NULL; i++) {
        char num[TR_ARRAY_LEN(counts)][24];
        for (size_t k = 0; k < TR_ARRAY_LEN(counts); k++) {
            snprintf(num[k], sizeof(num[k]), "%lld",
                     (long long)json_integer_value(json_object_get(s, counts[k])));
        }
        struct tr_buf tags;
        tr_cli_buf_init(&tags);
        join_tags(&tags, json_object_get(s, "tags"));
        const char *row[] = {json_string_value(json_object_get(s, "name")),
                             num[0],
                             num[1],
                             num[2],
                             num[3],
                             tr_buf_data(&tags)};
        tr_cli_table_add(&t, row);
        tr_buf_dispose(&tags);
    }
    tr_cli_table_print(&t, stdout);
    tr_cli_table_dispose(&t);
}

static int show_services(struct tr_cli_api *api, const struct svc_opts *o)
{
    json_t *catalog = get_json(api, "/v1/catalog/services", "services");
    if (catalog == NULL) {
        return 1;
    }
    if (!json_is_object(catalog)) {
        fprintf(stderr, "trellis %s: catalog: expected a JSON object\n", api->cmd);
        json_decref(catalog);
        return 1;
    }
    size_t n = json_object_size(catalog);
    const char **names = tr_xcalloc(n + 1, sizeof(*names));
    size_t k = 0;
    for (void *it = json_object_iter(catalog); it != NULL;
         it = json_object_iter_next(catalog, it)) {
        names[k++] = json_object_iter_key(it);
    }
    qsort(names, n, sizeof(*names), cmp_names);
    json_t *out = json_array();
    int rc = 0;
    for (k = 0; k < n && rc == 0; k++) {
        json_t *s = service_summary(api, names[k], json_object_get(catalog, names[k]));
        if (s == NULL) {
            rc = 1;
        } else {
            json_array_append_new(out, s);
        }
    }
    if (rc != 0) {
        /* reported by service_summary() */
    } else if (o->json) {
        tr_cli_print_json(out);
    } else if (n == 0) {
        fprintf(stderr, "no services registered\n");
    } else {
        print_summaries(out);
    }
    json_decref(out);
    tr_free_null(&names);
    json_decref(catalog);
    return rc;
}

static int run(int argc, char **argv)
{
    struct svc_opts o = {0};
    for (int i = 1; i < argc;) {
        const char *value;
        const char *name = tr_cli_next_opt(argc, argv, &i, &value, takes_value);
        if (name == NULL) {
            if (o.name != NULL) {
                return tr_cli_usage_error("services", "unexpected argument \"%s\"", argv[i - 1]);
            }
            o.name = argv[i - 1];
        } else if (strcmp(name, "json") == 0) {
            if (value != NULL) {
                return tr_cli_usage_error("services", "--json takes no value");
            }
            o.json = true;
        } else if (strcmp(name, "addr") == 0) {
            if (value == NULL) {
                return tr_cli_usage_error("services", "--addr needs a value");
            }
            o.addr = value;
        } else {
            return tr_cli_usage_error("services", "unknown option --%s", name);
        }
    }
    struct tr_cli_api api;
    int rc = tr_cli_api_open(&api, "services", o.addr);
    if (rc != 0) {
        return rc;
    }
    rc = o.name != NULL ? show_instances(&api, &o) : show_services(&api, &o);
    tr_cli_api_close(&api);
    return rc;
}

const struct tr_cli_cmd tr_cli_cmd_services = {
    .name = "services",
    .summary = "list registered services and their health",
    .usage = "Usage: trellis services [NAME] [--json] [--addr ADDR]\n\n"
             "Without NAME: one row per service in the catalog, with its number of\n"
             "instances, how many are passing, warning or critical (maintenance counts\n"
             "as critical) and the tags its instances carry. With NAME: one row per\n"
             "instance (ID, node, address, port, status, tags).\n\n"
             "An instance's status is the worst of its health checks; an instance\n"
             "without checks is passing.\n\n"
             "  --json        print JSON instead of a table: without NAME an array of\n"
             "                {name, tags, instances, passing, warning, critical}; with\n"
             "                NAME an array of {id, service, node, address, port, tags,\n"
             "                meta, status}\n"
             "  --addr ADDR   server address, host:port or http://host:port; default\n"
             "                $TRELLIS_ADDR, then $CONSUL_HTTP_ADDR, then 127.0.0.1:8500\n\n"
             "Exit status: 0 success, 1 failure (server unreachable or answering with\n"
             "an error, NAME has no instances), 2 usage error.\n",
    .run = run,
};
