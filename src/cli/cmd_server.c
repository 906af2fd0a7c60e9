/* SPDX-License-Identifier: Apache-2.0 */
/* `trellis server`: the control plane. HTTP workers serve the Consul-compatible API;
 * the registry thread owns the state; a writer thread makes writes durable. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/log.h"
#include "core/mem.h"
#include "http/serve.h"
#include "registry/registry.h"
#include "server/broker_api.h"
#include "server/call.h"
#include "server/consul.h"
#include "server/state_api.h"

struct drain_msg {
    struct tr_msg msg;
    struct tr_reg *reg;
};

/* The broker, for on_drain (the serve config's data is the registry). */
static struct tr_broker *drain_broker;

static int worker_init(struct tr_http_server *srv, struct tr_worker *w)
{
    struct tr_srv_worker *sw = tr_xcalloc(1, sizeof(*sw));
    tr_srv_worker_init(sw, &w->loop, srv->data);
    srv->worker_data = sw;
    return 0;
}

static void on_inbox_closed(struct tr_mailbox *mb)
{
    struct tr_srv_worker *sw = mb->data;
    tr_free_null(&sw);
}

static void worker_dispose(struct tr_http_server *srv, struct tr_worker *w)
{
    (void)w;
    struct tr_srv_worker *sw = srv->worker_data;
    if (sw == NULL) {
        return;
    }
    srv->worker_data = NULL;
    sw->inbox.on_closed = on_inbox_closed;
    tr_srv_worker_close(sw);
}

static void on_drain_msg(struct tr_msg *m)
{
    struct drain_msg *dm = tr_container_of(m, struct drain_msg, msg);
    struct tr_reg *reg = dm->reg;
    tr_free_null(&dm);
    /* Blocking queries answer now, so the HTTP drain is not held up by them. */
    tr_reg_drain(reg);
}

static void on_drain(struct tr_http_serve *cfg)
{
    /* Long-poll fetches answer now too. */
    if (drain_broker != NULL) {
        tr_broker_drain(drain_broker);
    }
    struct drain_msg *dm = tr_xcalloc(1, sizeof(*dm));
    dm->msg.run = on_drain_msg;
    dm->reg = cfg->data;
    if (!tr_reg_post(dm->reg, &dm->msg)) {
        tr_free_null(&dm);
    }
}

static bool takes_value(const char *name)
{
    return strcmp(name, "data-dir") == 0 || strcmp(name, "node-name") == 0 ||
           strcmp(name, "datacenter") == 0 || strcmp(name, "advertise") == 0 ||
           tr_serve_opts_known(name);
}

static int run(int argc, char **argv)
{
    struct tr_serve_opts o;
    tr_serve_opts_init(&o, "127.0.0.1:8500");
    const char *data_dir = "trellis-data";
    struct tr_reg *reg = tr_xcalloc(1, sizeof(*reg));
    for (int i = 1; i < argc;) {
        const char *value;
        const char *name = tr_cli_next_opt(argc, argv, &i, &value, takes_value);
        if (name == NULL) {
            tr_free_null(&reg);
            return tr_cli_usage_error("server", "unexpected argument \"%s\"", argv[i - 1]);
        }
        if (!takes_value(name)) {
            tr_free_null(&reg);
            return tr_cli_usage_error("server", "unknown option --%s", name);
        }
        if (value == NULL) {
            tr_free_null(&reg);
            return tr_cli_usage_error("server", "--%s needs a value", name);
        }
        if (strcmp(name, "data-dir") == 0) {
            data_dir = value;
        } else if (strcmp(name, "node-name") == 0) {
            snprintf(reg->node_name, sizeof(reg->node_name), "%s", value);
        } else if (strcmp(name, "datacenter") == 0) {
            snprintf(reg->datacenter, sizeof(reg->datacenter), "%s", value);
        } else if (strcmp(name, "advertise") == 0) {
            snprintf(reg->address, sizeof(reg->address), "%s", value);
        } else {
            int rc = tr_serve_opts_parse(&o, name, value);
            if (rc <= 0) {
                tr_free_null(&reg);
                return rc < 0 ? 2 : tr_cli_usage_error("server", "unknown option --%s", name);
            }
        }
    }
    char err[512] = "";
    if (tr_reg_open(reg, data_dir, err, sizeof(err)) != 0) {
        TR_LOG_ERROR("server", NULL, "%s", err);
        tr_reg_close(reg);
        tr_free_null(&reg);
        return 1;
    }
    TR_LOG_INFO("server", NULL, "registry loaded from %s (index %llu)", data_dir,
                (unsigned long long)reg->index);
    struct tr_router router;
    tr_router_init(&router);
    TR_ASSERT(tr_consul_kv_routes(&router) == 0);
    TR_ASSERT(tr_consul_catalog_routes(&router) == 0);
    struct tr_broker *broker = NULL;
    if (tr_broker_api_start(&router, data_dir, &broker) != 0) {
        tr_reg_close(reg);
        tr_free_null(&reg);
        tr_router_dispose(&router);
        return 1;
    }
    drain_broker = broker;
    TR_ASSERT(tr_state_api_routes(&router) == 0);
    if (tr_reg_start(reg) != 0) {
        TR_LOG_ERROR("server", NULL, "cannot start the registry threads");
        return 1;
    }
    struct tr_http_serve cfg = {
        .name = "server",
        .listen = o.listen,
        .workers = o.workers,
        .drain_ms = o.drain_ms,
        .limits = o.limits,
        .router = &router,
        .data = reg,
        .worker_init = worker_init,
        .worker_dispose = worker_dispose,
        .on_drain = on_drain,
    };
    int rc = tr_http_serve_run(&cfg);
    drain_broker = NULL;
    tr_broker_api_stop(broker);
    tr_reg_stop(reg);
    tr_reg_close(reg);
    tr_free_null(&reg);
    tr_router_dispose(&router);
    return rc;
}

const struct tr_cli_cmd tr_cli_cmd_server = {
    .name = "server",
    .summary = "the control plane: registry, health checks, KV (Consul-compatible API)",
    .usage = "Usage: trellis server [--listen ADDR] [--data-dir DIR] [--workers N]\n\n"
             "Serves a Consul-compatible HTTP API (agent, catalog, health, kv, status)\n"
             "backed by SQLite in --data-dir. Every acknowledged write is on disk.\n\n"
             "  --listen ADDR       default 127.0.0.1:8500\n"
             "  --data-dir DIR      where the registry is stored (default ./trellis-data)\n"
             "  --node-name NAME    node name reported to clients (default: hostname)\n"
             "  --datacenter NAME   datacenter reported to clients (default dc1)\n"
             "  --advertise IP      node address reported to clients (default 127.0.0.1)\n",
    .serving = true,
    .run = run,
};
