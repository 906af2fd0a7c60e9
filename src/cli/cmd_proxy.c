/* SPDX-License-Identifier: Apache-2.0 */
/* `trellis proxy`: the API gateway / sidecar proxy. Either the one-line form
 * (--to a,b: one round-robin cluster) or a gateway.yaml (--config). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/addr.h"
#include "proxy/proxy.h"

static bool takes_value(const char *name)
{
    return strcmp(name, "config") == 0 || strcmp(name, "to") == 0 || strcmp(name, "admin") == 0 ||
           tr_serve_opts_known(name);
}

static int run(int argc, char **argv)
{
    struct tr_serve_opts o;
    tr_serve_opts_init(&o, NULL);
    struct tr_proxy_options po;
    memset(&po, 0, sizeof(po));
    for (int i = 1; i < argc;) {
        const char *value;
        const char *name = tr_cli_next_opt(argc, argv, &i, &value, takes_value);
        if (name == NULL) {
            return tr_cli_usage_error("proxy", "unexpected argument \"%s\"", argv[i - 1]);
        }
        if (!takes_value(name)) {
            return tr_cli_usage_error("proxy", "unknown option --%s", name);
        }
        if (value == NULL) {
            return tr_cli_usage_error("proxy", "--%s needs a value", name);
        }
        if (strcmp(name, "config") == 0) {
            po.config_path = value;
            continue;
        }
        if (strcmp(name, "to") == 0) {
            po.to = value;
            continue;
        }
        if (strcmp(name, "admin") == 0) {
            struct tr_addr addr;
            if (tr_addr_parse(value, &addr) != 0) {
                return tr_cli_usage_error("proxy", "--admin: expected host:port, got \"%s\"",
                                          value);
            }
            po.admin = value;
            continue;
        }
        int rc = tr_serve_opts_parse(&o, name, value);
        if (rc < 0) {
            return 2;
        }
        if (rc == 0) {
            return tr_cli_usage_error("proxy", "unknown option --%s", name);
        }
    }
    if ((po.config_path == NULL) == (po.to == NULL)) {
        return tr_cli_usage_error("proxy", "give exactly one of --config FILE or --to "
                                           "ADDR[,ADDR...]");
    }
    if (po.to != NULL && o.listen == NULL) {
        return tr_cli_usage_error("proxy", "--to needs --listen ADDR");
    }
    po.listen = o.listen;
    po.workers = o.workers;
    po.drain_ms = o.drain_ms;
    po.limits = o.limits;
    return tr_proxy_run(&po);
}

const struct tr_cli_cmd tr_cli_cmd_proxy = {
    .name = "proxy",
    .summary = "API gateway / sidecar proxy: routes, load balancing, registry discovery",
    .usage = "Usage: trellis proxy --listen ADDR --to ADDR[,ADDR...]\n"
             "       trellis proxy --config gateway.yaml [--listen ADDR] [--admin ADDR]\n\n"
             "Forwards HTTP/1.1 requests to upstream clusters with keep-alive connection\n"
             "pools, streaming both ways. The one-line form makes one round-robin cluster\n"
             "of the --to addresses; --config reads routes and clusters from YAML (see\n"
             "docs/proxy.md). SIGHUP reloads the config file; SIGTERM drains.\n\n"
             "  --config FILE   gateway configuration (YAML)\n"
             "  --to ADDRS      comma-separated upstream addresses (one-line form)\n"
             "  --admin ADDR    admin listener (/metrics, /ready, /clusters); overrides\n"
             "                  the file's admin:\n"
             "  --listen ADDR   overrides the file's listen:\n",
    .serving = true,
    .run = run,
};
