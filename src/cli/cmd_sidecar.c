/* SPDX-License-Identifier: Apache-2.0 */
/* `trellis sidecar`: Dapr's HTTP API beside one app instance (see docs/sidecar.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/addr.h"
#include "sidecar/sidecar.h"

static const char *const value_opts[] = {
    "app-id", "app-port", "http-port", "server", "components", "app-health-path", "host", NULL,
};

static bool takes_value(const char *name)
{
    for (size_t i = 0; value_opts[i] != NULL; i++) {
        if (strcmp(name, value_opts[i]) == 0) {
            return true;
        }
    }
    return tr_serve_opts_known(name);
}

static int parse_port(const char *opt, const char *v, int min, int *out)
{
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n < min || n > 65535) {
        return tr_cli_usage_error("sidecar", "--%s: expected a port number in [%d, 65535], got \"%s\"",
                                  opt, min, v);
    }
    *out = (int)n;
    return 0;
}

static bool valid_app_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 128) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.')) {
            return false;
        }
    }
    return true;
}

/* "--listen host:port" (the serving option) instead of --host/--http-port. */
static int apply_listen(struct tr_sidecar_options *so, const char *listen, char *host,
                        size_t hostlen)
{
    struct tr_addr addr;
    if (tr_addr_parse(listen, &addr) != 0) {
        return tr_cli_usage_error("sidecar", "--listen: expected host:port, got \"%s\"", listen);
    }
    const char *colon = strrchr(listen, ':');
    size_t n = (size_t)(colon - listen);
    if (n >= 2 && listen[0] == '[' && listen[n - 1] == ']') {
        listen++;
        n -= 2;
    }
    if (n == 0 || n >= hostlen) {
        snprintf(host, hostlen, "0.0.0.0");
    } else {
        memcpy(host, listen, n);
        host[n] = '\0';
    }
    so->host = host;
    so->http_port = tr_addr_port(&addr);
    return 0;
}

static int run(int argc, char **argv)
{
    struct tr_serve_opts o;
    tr_serve_opts_init(&o, NULL);
    o.limits.max_body_bytes = TR_SIDECAR_MAX_BODY;
    struct tr_sidecar_options so;
    memset(&so, 0, sizeof(so));
    so.http_port = TR_SIDECAR_DEFAULT_PORT;
    so.host = "127.0.0.1";
    so.server = "http://127.0.0.1:8500";
    so.register_app = true;
    so.app_port = -1;
    for (int i = 1; i < argc;) {
        const char *value;
        const char *name = tr_cli_next_opt(argc, argv, &i, &value, takes_value);
        if (name == NULL) {
            return tr_cli_usage_error("sidecar", "unexpected argument \"%s\"", argv[i - 1]);
        }
        if (strcmp(name, "no-register") == 0) {
            so.register_app = false;
            continue;
        }
        if (!takes_value(name)) {
            return tr_cli_usage_error("sidecar", "unknown option --%s", name);
        }
        if (value == NULL) {
            return tr_cli_usage_error("sidecar", "--%s needs a value", name);
        }
        int rc = 0;
        if (strcmp(name, "app-id") == 0) {
            so.app_id = value;
        } else if (strcmp(name, "app-port") == 0) {
            rc = parse_port(name, value, 1, &so.app_port);
        } else if (strcmp(name, "http-port") == 0) {
            rc = parse_port(name, value, 0, &so.http_port);
        } else if (strcmp(name, "server") == 0) {
            so.server = value;
        } else if (strcmp(name, "components") == 0) {
            so.components_dir = value;
        } else if (strcmp(name, "app-health-path") == 0) {
            if (value[0] != '/') {
                return tr_cli_usage_error("sidecar", "--app-health-path must start with '/', got "
                                                     "\"%s\"", value);
            }
            so.app_health_path = value;
        } else if (strcmp(name, "host") == 0) {
            so.host = value;
        } else {
            rc = tr_serve_opts_parse(&o, name, value);
            if (rc == 0) {
                return tr_cli_usage_error("sidecar", "unknown option --%s", name);
            }
            rc = rc < 0 ? 2 : 0;
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (so.app_id == NULL) {
        return tr_cli_usage_error("sidecar", "--app-id is required");
    }
    if (!valid_app_id(so.app_id)) {
        return tr_cli_usage_error("sidecar", "--app-id: 1 to 128 letters, digits, '-', '_' or '.', "
                                             "got \"%s\"", so.app_id);
    }
    if (so.app_port < 0) {
        return tr_cli_usage_error("sidecar", "--app-port is required");
    }
    char host[128];
    if (o.listen != NULL && apply_listen(&so, o.listen, host, sizeof(host)) != 0) {
        return 2;
    }
    const char *token = getenv("DAPR_API_TOKEN");
    so.api_token = token != NULL && token[0] != '\0' ? token : NULL;
    const char *app_token = getenv("APP_API_TOKEN");
    so.app_api_token = app_token != NULL && app_token[0] != '\0' ? app_token : NULL;
    so.workers = o.workers > 0 ? o.workers : 1;
    so.drain_ms = o.drain_ms;
    so.limits = o.limits;
    return tr_sidecar_run(&so);
}

const struct tr_cli_cmd tr_cli_cmd_sidecar = {
    .name = "sidecar",
    .summary = "Dapr-compatible sidecar: invocation, state, pub/sub, secrets",
    .usage =
        "Usage: trellis sidecar --app-id ID --app-port PORT [--http-port 3500]\n"
        "                       [--server http://127.0.0.1:8500] [--components DIR]\n"
        "                       [--app-health-path /healthz] [--host 127.0.0.1]\n\n"
        "Runs beside one app instance and serves Dapr's HTTP API v1.0 to it, so Dapr\n"
        "SDKs work with DAPR_HTTP_PORT pointing here: service invocation (through the\n"
        "registry, load-balanced and retried), state and pub/sub (stored by trellis\n"
        "server), secrets (local file or environment). Registers the app in the\n"
        "registry with a health check and deregisters on SIGTERM (see docs/sidecar.md).\n\n"
        "  --app-id ID             the app's id (registry service name)\n"
        "  --app-port PORT         where the app listens on 127.0.0.1\n"
        "  --http-port PORT        the Dapr HTTP API port (default 3500; 0 = any free)\n"
        "  --host ADDR             address to listen on (default 127.0.0.1)\n"
        "  --server URL            trellis server (default http://127.0.0.1:8500)\n"
        "  --components DIR        Dapr component and subscription YAML files; without\n"
        "                          it: state store \"statestore\", pub/sub \"pubsub\"\n"
        "  --app-health-path PATH  HTTP health check on the app (default: TCP check)\n"
        "  --no-register           do not register the app in the registry\n"
        "Environment: DAPR_API_TOKEN (require the dapr-api-token header), APP_API_TOKEN\n"
        "(sent to the app). --workers defaults to 1, --max-body-bytes to 4MiB.\n",
    .serving = true,
    .run = run,
};
