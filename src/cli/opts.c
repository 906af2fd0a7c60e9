/* SPDX-License-Identifier: Apache-2.0 */
/* Option parsing shared by the subcommands: --name value / --name=value, the
 * serving options (listen address, workers, drain deadline, HTTP limits). */
#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"
#include "core/config.h"
#include "core/log.h"

const char tr_serve_opts_usage[] =
    "Serving options:\n"
    "  --listen ADDR            address to listen on (host:port)\n"
    "  --workers N              worker threads, one event loop each (default: cores)\n"
    "  --drain-timeout DUR      SIGTERM grace period for in-flight requests (default 10s)\n"
    "  --log-level LEVEL        error | warn | info | debug (default info)\n"
    "HTTP limits (each rejection names the limit in its JSON error body):\n"
    "  --max-header-bytes SIZE  request line + headers (default 16KiB) -> 431\n"
    "  --max-headers N          header count (default 100) -> 431\n"
    "  --max-body-bytes SIZE    request body (default 8MiB) -> 413\n"
    "  --header-timeout DUR     first byte to end of headers (default 10s) -> 408\n"
    "  --body-timeout DUR       silence while reading a body (default 30s) -> 408\n"
    "  --idle-timeout DUR       keep-alive idle time (default 60s)\n"
    "  --write-timeout DUR      client not reading responses (default 30s)\n"
    "  --max-connections N      per worker (default 100000)\n";

void tr_serve_opts_init(struct tr_serve_opts *o, const char *default_listen)
{
    o->listen = default_listen;
    o->workers = 0;
    o->drain_ms = 10000;
    tr_http_limits_default(&o->limits);
}

static int parse_u64(const char *opt, const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (*v == '\0' || *v == '-' || *end != '\0' || errno != 0 || n < min || n > max) {
        fprintf(stderr, "trellis: --%s: expected an integer in [%llu, %llu], got \"%s\"\n", opt,
                (unsigned long long)min, (unsigned long long)max, v);
        return -1;
    }
    *out = n;
    return 0;
}

static int parse_dur(const char *opt, const char *v, uint64_t *out)
{
    if (tr_parse_duration_ms(v, out) != 0) {
        fprintf(stderr, "trellis: --%s: expected a duration like 500ms, 10s, 1m, got \"%s\"\n",
                opt, v);
        return -1;
    }
    return 0;
}

static int parse_size(const char *opt, const char *v, uint64_t *out)
{
    if (tr_parse_size(v, out) != 0) {
        fprintf(stderr, "trellis: --%s: expected a size like 4096, 64KiB, 8MiB, got \"%s\"\n", opt,
                v);
        return -1;
    }
    return 0;
}

int tr_serve_opts_parse(struct tr_serve_opts *o, const char *name, const char *v)
{
    struct tr_http_limits *l = &o->limits;
    uint64_t n = 0;
    int rc = 0;
    if (strcmp(name, "listen") == 0) {
        struct tr_addr addr;
        if (tr_addr_parse(v, &addr) != 0) {
            fprintf(stderr, "trellis: --listen: expected host:port (e.g. 127.0.0.1:8080), got "
                            "\"%s\"\n", v);
            return -1;
        }
        o->listen = v;
    } else if (strcmp(name, "workers") == 0) {
        rc = parse_u64(name, v, 1, 256, &n);
        o->workers = (unsigned)n;
    } else if (strcmp(name, "drain-timeout") == 0) {
        rc = parse_dur(name, v, &o->drain_ms);
    } else if (strcmp(name, "log-level") == 0) {
        enum tr_log_level level;
        if (tr_log_level_parse(v, &level) != 0) {
            fprintf(stderr, "trellis: --log-level: expected error, warn, info or debug, got \"%s\"\n",
                    v);
            return -1;
        }
        tr_log_set_level(level);
    } else if (strcmp(name, "max-header-bytes") == 0) {
        rc = parse_size(name, v, &n);
        if (rc == 0 && (n < 256 || n > (1u << 30))) {
            fprintf(stderr, "trellis: --max-header-bytes: must be between 256 and 1GiB\n");
            rc = -1;
        }
        l->max_header_bytes = (size_t)n;
    } else if (strcmp(name, "max-headers") == 0) {
        rc = parse_u64(name, v, 1, 100000, &n);
        l->max_headers = (size_t)n;
    } else if (strcmp(name, "max-body-bytes") == 0) {
        rc = parse_size(name, v, &l->max_body_bytes);
    } else if (strcmp(name, "header-timeout") == 0) {
        rc = parse_dur(name, v, &l->header_timeout_ms);
    } else if (strcmp(name, "body-timeout") == 0) {
        rc = parse_dur(name, v, &l->body_timeout_ms);
    } else if (strcmp(name, "idle-timeout") == 0) {
        rc = parse_dur(name, v, &l->idle_timeout_ms);
    } else if (strcmp(name, "write-timeout") == 0) {
        rc = parse_dur(name, v, &l->write_timeout_ms);
    } else if (strcmp(name, "max-connections") == 0) {
        rc = parse_u64(name, v, 1, 10000000, &n);
        l->max_connections = (size_t)n;
    } else {
        return 0;
    }
    return rc == 0 ? 1 : -1;
}

bool tr_serve_opts_known(const char *name)
{
    static const char *const names[] = {
        "listen",         "workers",       "drain-timeout", "log-level",
        "max-header-bytes", "max-headers", "max-body-bytes", "header-timeout",
        "body-timeout",   "idle-timeout",  "write-timeout", "max-connections",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(names[i], name) == 0) {
            return true;
        }
    }
    return false;
}

const char *tr_cli_next_opt(int argc, char **argv, int *i, const char **value,
                            bool (*takes_value)(const char *name))
{
    static char name[64];
    const char *arg = argv[*i];
    *value = NULL;
    (*i)++;
    if (arg[0] != '-' || arg[1] == '\0') {
        return NULL;
    }
    const char *n = arg + (arg[1] == '-' ? 2 : 1);
    const char *eq = strchr(n, '=');
    size_t len = eq ? (size_t)(eq - n) : strlen(n);
    if (len >= sizeof(name)) {
        len = sizeof(name) - 1;
    }
    memcpy(name, n, len);
    name[len] = '\0';
    if (eq != NULL) {
        *value = eq + 1;
    } else if (takes_value(name)) {
        if (*i >= argc) {
            *value = NULL;
            return name;
        }
        *value = argv[(*i)++];
    }
    return name;
}

int tr_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "trellis %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun 'trellis %s --help' for usage.\n", cmd);
    return 2;
}
